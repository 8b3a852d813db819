//! `--init`: the workload's PID 1 when the user asks for one (docker's tini). The same binary
//! as guest init, started as `/dev/init -- CMD ARGS...` (bound there read-only at both
//! levels): it runs CMD as its child, passes on every signal it is sent, reaps every process
//! that ends in the namespace (orphans come to PID 1), and exits with CMD's status (128+N if
//! a signal N ended it) once CMD has ended.

use std::ffi::CString;

/// Signals passed on to the child (SIGCHLD is init's own; SIGKILL and SIGSTOP cannot be
/// caught).
const FORWARDED: &[libc::c_int] = &[
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
    libc::SIGCONT,
    libc::SIGALRM,
    libc::SIGPIPE,
];

fn say(msg: &str) {
    let line = format!("isola-init: {msg}\n");
    // SAFETY: write(2) from a live buffer.
    unsafe { libc::write(2, line.as_ptr().cast(), line.len()) };
}

/// Runs `args` (CMD ARGS...) under this process; never returns.
pub fn main(args: &[String]) -> ! {
    if args.is_empty() {
        say("usage: /dev/init -- CMD [ARGS...]");
        std::process::exit(125);
    }
    let argv: Vec<CString> = args
        .iter()
        .map(|a| CString::new(a.as_bytes()).unwrap_or_default())
        .collect();
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    // SAFETY: sigset operations on a local set; sigprocmask of this single-threaded process.
    // Blocked, a signal sent to a namespace's init is kept for sigwaitinfo below instead of
    // being dropped (PID 1 has no default actions).
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe {
        libc::sigemptyset(&mut set);
        for s in FORWARDED {
            libc::sigaddset(&mut set, *s);
        }
        libc::sigaddset(&mut set, libc::SIGCHLD);
        libc::sigprocmask(libc::SIG_BLOCK, &set, &mut old);
    }
    // SAFETY: fork(2) of a single-threaded process; the child restores the mask and execs
    // (execvp searches PATH as a shell would), writing and _exiting if it cannot.
    let child = unsafe { libc::fork() };
    if child < 0 {
        say(&format!("fork: {}", std::io::Error::last_os_error()));
        std::process::exit(125);
    }
    if child == 0 {
        // SAFETY: see above; argv_ptrs is NUL-terminated and its strings live.
        unsafe {
            libc::sigprocmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
            libc::execvp(argv_ptrs[0], argv_ptrs.as_ptr());
            let e = std::io::Error::last_os_error();
            let code = if e.raw_os_error() == Some(libc::ENOENT) {
                127
            } else {
                126
            };
            let line = format!("isola-init: exec {}: {e}\n", args[0]);
            libc::write(2, line.as_ptr().cast(), line.len());
            libc::_exit(code);
        }
    }
    loop {
        // SAFETY: sigwaitinfo into a local siginfo, with the set blocked above.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let sig = unsafe { libc::sigwaitinfo(&set, &mut info) };
        if sig < 0 {
            continue; // EINTR
        }
        if sig != libc::SIGCHLD {
            // SAFETY: kill(2) of our own child (not yet reaped: its PID is still its).
            unsafe { libc::kill(child, sig) };
            continue;
        }
        // Every ended process: our child's status ends us, the others are just reaped.
        loop {
            let mut status = 0;
            // SAFETY: waitpid(2) into a local.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                break;
            }
            if pid == child {
                let code = if libc::WIFEXITED(status) {
                    libc::WEXITSTATUS(status)
                } else {
                    128 + libc::WTERMSIG(status)
                };
                std::process::exit(code);
            }
        }
    }
}
