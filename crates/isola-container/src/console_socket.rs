//! `--console-socket`: the caller (conmon, containerd's shim) listens on a unix socket and gets
//! the master end of the workload's terminal over it, as one message carrying the descriptor
//! (SCM_RIGHTS) and its name, as runc sends it.

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
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
    let mut cmsg = nix::cmsg_space!([RawFd; 1]);
    loop {
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        match recvmsg::<()>(
            connection.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(r) => {
                let mut got = None;
                for c in r.cmsgs()? {
                    if let ControlMessageOwned::ScmRights(fds) = c {
                        for f in fds {
                            // SAFETY: SCM_RIGHTS handed us a fresh descriptor we now own.
                            let owned = unsafe { OwnedFd::from_raw_fd(f) };
                            got.get_or_insert(owned);
                        }
                    }
                }
                return got.ok_or_else(|| {
                    std::io::Error::other("no terminal came over the console socket")
                });
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}
