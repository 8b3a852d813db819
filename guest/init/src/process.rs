//! Running the workload as the bundle's process spec says, and reporting its status the way
//! the container level does: the exit code, 128+N for signal N, 126/127 when it cannot run.
//! What the spec means (lookup, rlimits, user, groups, capabilities, no_new_privs) is
//! `isola-process`, the module the container init calls too.

use crate::channel::Channel;
use crate::relay::{relay, Outputs};
use crate::setup::mark;
use crate::stdio::ProcessStdio;
use isola_guest_contract::boot::Phase;
use isola_process::{exec, identity, Plan};
use std::ffi::CString;

/// The bundle's seccomp filter, if it has one.
pub fn seccomp_filter() -> Result<Option<isola_seccomp::Filter>, String> {
    const PATH: &str = isola_guest_contract::boot::SECCOMP;
    match std::fs::read(PATH) {
        Ok(b) => isola_seccomp::Filter::from_bytes(&b)
            .map(Some)
            .map_err(|e| format!("{PATH}: {e}")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{PATH}: {e}")),
    }
}

/// Forks the workload and waits for it, reaping everything else meanwhile (we are PID 1).
pub fn run_workload(
    plan: &Plan,
    seccomp: Option<&isola_seccomp::Filter>,
    with_stdin: bool,
    ch: &mut Channel,
) -> Result<i32, String> {
    plan.args.first().ok_or("process.args is empty")?;
    let _ = std::fs::create_dir_all(&plan.cwd);

    // The workload writes into two pipes; init frames what comes out onto the channel. With
    // -i, a third pipe carries what the host sends as stdin; without it, stdin is /dev/null.
    // With a terminal (-t), a pty instead: its slave is all three, its master what init
    // relays (both ways, with -i).
    let stdio = ProcessStdio::open(plan.terminal, plan.console_size, with_stdin)?;
    let c = |s: &str| CString::new(s).unwrap_or_default();
    let proc_ = c("proc");
    let slash_proc = c("/proc");

    // The workload's own cgroup, with the bundle's limits (--memory, --cpus, --pids-limit) as
    // in a container: the same OOM kill (137), the same quota, the same fork failures.
    let cgroup_procs = crate::cgroup::workload_cgroup(plan)?;
    let cgroup2 = c("cgroup2");
    let cgroup_dir = c("/sys/fs/cgroup");
    let slash = c("/");
    let zero = b"0\n";
    // The workload is PID 1 of its own PID namespace and sees only its own processes, as in a
    // container: the same `ps`, and the same rules for signals sent to PID 1.
    // SAFETY: unshare takes no pointers; it applies to the children forked from here on.
    if unsafe { libc::unshare(libc::CLONE_NEWPID) } != 0 {
        return Err(format!(
            "unshare(CLONE_NEWPID): {}",
            std::io::Error::last_os_error()
        ));
    }
    mark(Phase::WorkloadStart);
    // The tiny init (`--init`) takes its signals with sigwaitinfo: blocked from the fork on,
    // a signal the host passes on before it runs waits for it instead of reaching a PID 1
    // that would drop it. (Any other workload starts with the mask empty.)
    let tiny_init = isola_process::tiny_init::is_tiny_init(&plan.args);
    // SAFETY: zeroed sigset_t is filled by sigprocmask before it is read back.
    let mut before: libc::sigset_t = unsafe { std::mem::zeroed() };
    if tiny_init {
        let set = isola_process::tiny_init::waited_set();
        // SAFETY: sigprocmask of this single-threaded process, the old mask kept.
        unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, &mut before) };
    }
    // SAFETY: fork(2) in a single-threaded PID 1; the child only calls async-signal-safe
    // functions on data prepared above, then execve or _exit.
    let pid = unsafe { libc::fork() };
    if tiny_init && pid != 0 {
        // SAFETY: the mask this process had before, restored.
        unsafe { libc::sigprocmask(libc::SIG_SETMASK, &before, std::ptr::null_mut()) };
    }
    if pid < 0 {
        return Err(format!("fork: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: see above; all pointers refer to live, NUL-terminated buffers.
        unsafe {
            stdio.install();
            let fail = |code: i32, msg: &str| -> ! {
                let line = format!("isola: {msg}\n");
                libc::write(2, line.as_ptr().cast(), line.len());
                libc::_exit(code)
            };
            let err = || std::io::Error::last_os_error();
            // "0" moves the writer: the workload joins its cgroup before exec.
            use std::os::fd::AsRawFd;
            if libc::write(cgroup_procs.as_raw_fd(), zero.as_ptr().cast(), zero.len()) < 0 {
                fail(125, &format!("joining the workload's cgroup: {}", err()));
            }
            // Its own cgroup and mount namespaces, as in a container: /proc/self/cgroup reads
            // 0::/ and /sys/fs/cgroup is its own cgroup, read-only; /proc shows its PIDs only.
            if libc::unshare(libc::CLONE_NEWCGROUP | libc::CLONE_NEWNS) != 0 {
                fail(125, &format!("unshare(cgroup, mount): {}", err()));
            }
            let nothing = std::ptr::null();
            let sealed = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
            if libc::mount(
                nothing,
                slash.as_ptr(),
                nothing,
                libc::MS_REC | libc::MS_PRIVATE,
                nothing.cast(),
            ) != 0
                || libc::umount2(cgroup_dir.as_ptr(), libc::MNT_DETACH) != 0
                || libc::mount(
                    cgroup2.as_ptr(),
                    cgroup_dir.as_ptr(),
                    cgroup2.as_ptr(),
                    sealed | libc::MS_RDONLY,
                    nothing.cast(),
                ) != 0
            {
                fail(125, &format!("mounting /sys/fs/cgroup: {}", err()));
            }
            if libc::mount(
                proc_.as_ptr(),
                slash_proc.as_ptr(),
                proc_.as_ptr(),
                sealed,
                nothing.cast(),
            ) != 0
            {
                fail(
                    125,
                    &format!("mounting /proc in the workload's PID namespace: {}", err()),
                );
            }
            become_process(plan, seccomp);
        }
    }
    stdio.close_theirs();
    let outputs = match stdio.pty {
        Some((master, _)) => Outputs::Terminal(master),
        None => Outputs::Pipes(stdio.out_r, stdio.err_r),
    };
    relay(pid, outputs, stdio.in_w, ch, seccomp)
}

/// The last steps of the workload and of an exec session, in the child: rlimits, seccomp, user
/// and capabilities, cwd, umask, lookup, exec. Never returns: a failure is reported on stderr
/// (the container level's words) and ends the child with docker's status.
pub fn become_process(plan: &Plan, seccomp: Option<&isola_seccomp::Filter>) -> ! {
    let fail = |code: i32, msg: &str| -> ! {
        let line = format!("isola: {msg}\n");
        // SAFETY: write(2) of a live buffer to our stderr, then _exit.
        unsafe {
            libc::write(2, line.as_ptr().cast(), line.len());
            libc::_exit(code)
        }
    };
    if let Err(e) = identity::apply_rlimits(&plan.rlimits) {
        fail(125, &e);
    }
    // The bundle's seccomp filter, as the container init installs it: last before exec with
    // no_new_privs; otherwise while still root (installing needs CAP_SYS_ADMIN).
    if let (Some(f), false) = (seccomp, plan.no_new_privileges) {
        if let Err(e) = f.install() {
            fail(125, &e);
        }
    }
    // User, groups, capabilities and no_new_privs, as in a container.
    if let Err(e) = identity::become_user(plan) {
        fail(125, &e);
    }
    if let Err(e) = std::env::set_current_dir(&plan.cwd) {
        fail(125, &format!("chdir {}: {e}", plan.cwd.display()));
    }
    // SAFETY: umask takes an integer only.
    unsafe { libc::umask(plan.umask as libc::mode_t) };
    let cmd = plan.args.first().map(String::as_str).unwrap_or_default();
    let path = match exec::resolve(cmd, &plan.env) {
        Ok(p) => p,
        Err(f) => fail(f.code, &f.message),
    };
    if plan.no_new_privileges {
        if let Some(Err(e)) = seccomp.map(|f| f.install()) {
            fail(125, &e);
        }
    }
    let f = exec::exec(&path, &plan.args, &plan.env);
    fail(f.code, &f.message)
}

/// A pty pair in the root's own devpts instance, sized `size` (rows, columns): (master, slave).
pub fn open_pty(size: Option<(u16, u16)>) -> Result<(libc::c_int, libc::c_int), String> {
    let err = |what: &str| format!("{what}: {}", std::io::Error::last_os_error());
    // SAFETY: posix_openpt/grantpt/unlockpt on the master we open; ptsname_r writes a
    // NUL-terminated name into our buffer of the length we pass; the slave is opened by it.
    unsafe {
        let master = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        if master < 0 {
            return Err(err("opening /dev/ptmx"));
        }
        if libc::grantpt(master) != 0 || libc::unlockpt(master) != 0 {
            return Err(err("unlocking the pty"));
        }
        let mut name = [0 as libc::c_char; 64];
        if libc::ptsname_r(master, name.as_mut_ptr(), name.len()) != 0 {
            return Err(err("ptsname"));
        }
        let slave = libc::open(
            name.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        if slave < 0 {
            return Err(err("opening the pty slave"));
        }
        if let Some((rows, cols)) = size {
            crate::relay::set_window_size(master, rows, cols);
        }
        Ok((master, slave))
    }
}

pub fn pipe() -> Result<(libc::c_int, libc::c_int), String> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!("pipe: {}", std::io::Error::last_os_error()));
    }
    Ok((fds[0], fds[1]))
}
