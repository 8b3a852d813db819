//! `--init`: the workload's PID 1 when the user asks for one (docker's tini). The same binary
//! as guest init, started as `/dev/init -- CMD ARGS...` (bound there read-only at both
//! levels; see isola-process's `tiny_init`): it runs CMD as its child — found and exec'd as
//! without `--init`, same statuses and messages — passes on every signal it is sent, reaps
//! every process that ends in the namespace (orphans come to PID 1), and exits with CMD's
//! status (128+N if signal N ended it) once CMD has ended.

use isola_process::exec::{exec, resolve, ExecFailure};

fn fail(f: ExecFailure) -> ! {
    let line = format!("isola: {}\n", f.message);
    // SAFETY: write(2) from a live buffer, then _exit without running anything else.
    unsafe {
        libc::write(2, line.as_ptr().cast(), line.len());
        libc::_exit(f.code)
    }
}

/// Runs `args` (CMD ARGS...) under this process; never returns.
pub fn main(args: &[String]) -> ! {
    if args.is_empty() {
        fail(ExecFailure {
            code: 125,
            message: "usage: /dev/init -- CMD [ARGS...]".into(),
        });
    }
    let env: Vec<String> = std::env::vars().map(|(k, v)| format!("{k}={v}")).collect();
    // Blocked since before our exec (isola-process's `exec`); blocked again in case we were
    // started some other way. A blocked signal to a namespace's init is kept for sigwaitinfo.
    let set = isola_process::tiny_init::waited_set();
    // SAFETY: sigprocmask of this single-threaded process with a set made above.
    unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    // SAFETY: fork(2) of a single-threaded process; the child empties its mask and execs.
    let child = unsafe { libc::fork() };
    if child < 0 {
        fail(ExecFailure {
            code: 125,
            message: format!("fork: {}", std::io::Error::last_os_error()),
        });
    }
    if child == 0 {
        // SAFETY: an empty set for sigprocmask, as a fresh process would have.
        unsafe {
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        }
        let path = resolve(&args[0], &env).unwrap_or_else(|f| fail(f));
        fail(exec(&path, args, &env));
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
