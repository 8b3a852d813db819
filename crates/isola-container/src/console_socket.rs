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

/// The caller's side: the master end, from one connection accepted on its socket.
pub fn receive(connection: &UnixStream) -> std::io::Result<OwnedFd> {
    let mut buf = [0u8; 256];
    let (_, fd) = crate::fd_passing::recv_with_fd(connection.as_raw_fd(), &mut buf)?;
    fd.ok_or_else(|| std::io::Error::other("no terminal came over the console socket"))
}
