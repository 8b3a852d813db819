//! `--console-socket`: the caller (conmon, containerd's shim) listens on a unix socket and gets
//! the master end of the workload's terminal over it, as one message carrying the descriptor
//! (SCM_RIGHTS) and its name, as runc sends it.

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

pub fn connect(path: &Path) -> std::io::Result<UnixStream> {
    UnixStream::connect(path)
}

/// Sends the terminal's master end.
pub fn send(socket: &UnixStream, master: &OwnedFd) -> std::io::Result<()> {
    let iov = [std::io::IoSlice::new(b"/dev/ptmx")];
    let fds = [master.as_raw_fd()];
    sendmsg::<()>(
        socket.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )?;
    Ok(())
}
