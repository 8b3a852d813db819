//! `--init`'s contract: isola's tiny init is at `PATH` in the workload's root and runs as
//! `PATH -- CMD...`; it takes `SIGNALS` (and SIGCHLD) with sigwaitinfo. They are blocked from
//! before it is executed (`exec` does it): sent between the fork and its first instruction,
//! a signal to a namespace's PID 1 that neither handles nor blocks it would be lost.

/// Where the tiny init is bound in the workload's root, at both levels.
pub const PATH: &str = "/dev/init";

/// What the tiny init passes on to its command (SIGKILL and SIGSTOP cannot be caught).
pub const SIGNALS: &[libc::c_int] = &[
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

/// Whether `args` start the tiny init.
pub fn is_tiny_init(args: &[String]) -> bool {
    args.len() >= 2 && args[0] == PATH && args[1] == "--"
}

/// The set the tiny init waits on: `SIGNALS` and SIGCHLD.
pub fn waited_set() -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set before sigaddset reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in SIGNALS {
            libc::sigaddset(&mut set, *s);
        }
        libc::sigaddset(&mut set, libc::SIGCHLD);
        set
    }
}
