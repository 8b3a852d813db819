//! Supervising a running container from the outside: forward the signals isola receives, relay
//! the console when there is one, reap the init and turn its wait status into docker's exit code.

use crate::console_relay::ConsoleRelay;
use crate::stdio_relay::StdioRelay;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::os::fd::{AsFd, OwnedFd};

/// Signals isola passes on to the workload.
pub const FORWARDED: &[Signal] = &[
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

fn handled() -> SigSet {
    let mut set = SigSet::empty();
    for s in FORWARDED {
        set.add(*s);
    }
    set.add(Signal::SIGCHLD);
    set
}

/// Blocks the forwarded signals and SIGCHLD so none is lost before the monitor reads them.
/// Call before creating the container; its init restores an empty mask before exec.
pub fn block_signals() -> std::io::Result<()> {
    handled().thread_block().map_err(Into::into)
}

/// docker's exit code for a wait status: the exit code, or 128 + signal number.
pub fn exit_code(status: WaitStatus) -> i32 {
    match status {
        WaitStatus::Exited(_, code) => code,
        WaitStatus::Signaled(_, sig, _) => 128 + sig as i32,
        _ => 125,
    }
}

/// What carries the workload's stdio: its terminal, or pipes.
pub(crate) enum Relay {
    Console(ConsoleRelay),
    Pipes(StdioRelay),
}

impl Relay {
    fn poll_fds(&self) -> Vec<nix::poll::PollFd<'_>> {
        match self {
            Relay::Console(c) => c.poll_fds(),
            Relay::Pipes(p) => p.poll_fds(),
        }
    }

    fn pump(&mut self, ready: &[bool]) -> std::io::Result<()> {
        match self {
            Relay::Console(c) => c.pump(ready),
            Relay::Pipes(p) => {
                p.pump(ready);
                Ok(())
            }
        }
    }

    fn drain(&mut self) {
        match self {
            Relay::Console(c) => c.drain(),
            Relay::Pipes(p) => p.drain(),
        }
    }

    fn copy_window_size(&self) {
        if let Relay::Console(c) = self {
            c.copy_window_size();
        }
    }
}

/// Waits for `pid` to exit, forwarding signals and relaying its stdio. Returns the exit code.
pub(crate) fn supervise(pid: i32, mut relay: Option<Relay>) -> std::io::Result<i32> {
    let sfd = SignalFd::with_flags(&handled(), SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)?;
    let child = Pid::from_raw(pid);
    loop {
        if let Some(status) = reap(child)? {
            if let Some(r) = relay.as_mut() {
                r.drain();
            }
            return Ok(exit_code(status));
        }
        let mut fds = vec![nix::poll::PollFd::new(
            sfd.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        if let Some(r) = relay.as_ref() {
            fds.extend(r.poll_fds());
        }
        match nix::poll::poll(&mut fds, nix::poll::PollTimeout::NONE) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        if ready[0] {
            while let Ok(Some(info)) = sfd.read_signal() {
                let signo = info.ssi_signo as i32;
                if signo == libc::SIGCHLD {
                    continue;
                }
                if signo == libc::SIGWINCH {
                    if let Some(r) = relay.as_ref() {
                        r.copy_window_size();
                    }
                    continue;
                }
                // SAFETY: kill(2) of our own child with a signal number the kernel gave us.
                unsafe { libc::kill(pid, signo) };
            }
        }
        if let Some(r) = relay.as_mut() {
            r.pump(&ready[1..])?;
        }
    }
}

fn reap(child: Pid) -> std::io::Result<Option<WaitStatus>> {
    match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::StillAlive) => Ok(None),
        Ok(s @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => Ok(Some(s)),
        Ok(_) => Ok(None),
        Err(nix::errno::Errno::EINTR) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Waits for our child `pid` (whose stdio are its own), forwarding the signals isola gets to it
/// (call `block_signals` first); returns docker's exit code.
pub fn forward_until_exit(pid: i32) -> std::io::Result<i32> {
    supervise(pid, None)
}

/// Waits for our child `pid` while relaying the terminal whose master is `master` to isola's
/// own (stdin too with `interactive`, the host terminal raw meanwhile), forwarding signals and
/// window sizes (call `block_signals` first); returns docker's exit code.
pub fn relay_console_until_exit(
    pid: i32,
    master: OwnedFd,
    interactive: bool,
) -> std::io::Result<i32> {
    supervise(
        pid,
        Some(Relay::Console(ConsoleRelay::new(master, interactive)?)),
    )
}

/// Waits for the init without supervising (used when setup failed).
pub fn wait_quietly(pid: i32) -> Option<i32> {
    loop {
        match waitpid(Pid::from_raw(pid), None) {
            Ok(s @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => {
                return Some(exit_code(s))
            }
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return None,
        }
    }
}
