//! `--console-socket`: the workload's terminal master goes to the caller. At the VM level that
//! terminal is a pty on the host whose slave becomes the controlling terminal and stdio of the
//! process that relays it to the guest's pty (the monitor for the workload, the client for an
//! exec session).

use crate::Error;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

/// Connects to the caller's socket and sends it `master`.
pub fn send_master(socket: &Path, master: &OwnedFd) -> Result<(), Error> {
    isola_container::console_socket::connect(socket)
        .and_then(|s| isola_container::console_socket::send(&s, master))
        .map_err(|e| Error::Io(format!("--console-socket {}: {e}", socket.display())))
}

/// A new pty whose master went to `socket`; returns its slave.
pub fn for_console_socket(socket: &Path) -> Result<OwnedFd, Error> {
    let pty = nix::pty::openpty(None, None).map_err(|e| Error::Io(format!("openpty: {e}")))?;
    send_master(socket, &pty.master)?;
    Ok(pty.slave)
}

/// In a process that has just made its own session: `slave` becomes its controlling terminal
/// (its size changes then arrive as SIGWINCH) and its stdin, stdout and stderr.
pub fn take(slave: &OwnedFd) -> Result<(), String> {
    // SAFETY: TIOCSCTTY with arg 0 on the pty slave we opened, in our new session.
    if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) } < 0 {
        return Err(format!("TIOCSCTTY: {}", std::io::Error::last_os_error()));
    }
    for target in 0..3 {
        nix::unistd::dup2(slave.as_raw_fd(), target).map_err(|e| format!("dup2: {e}"))?;
    }
    Ok(())
}
