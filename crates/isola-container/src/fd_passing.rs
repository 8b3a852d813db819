//! Receiving a message that may carry a descriptor (SCM_RIGHTS): the init channel's messages
//! and a console socket's terminal master both arrive this way.

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use std::io::{self, IoSliceMut};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// One message from socket `fd` into `buf`: its length (0 at end of stream) and the first
/// descriptor that came with it (received close-on-exec; any others are closed).
pub fn recv_with_fd(fd: RawFd, buf: &mut [u8]) -> io::Result<(usize, Option<OwnedFd>)> {
    let mut cmsg = nix::cmsg_space!([RawFd; 1]);
    loop {
        let mut iov = [IoSliceMut::new(buf)];
        match recvmsg::<()>(fd, &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC) {
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
                return Ok((r.bytes, got));
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}
