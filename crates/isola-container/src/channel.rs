//! The parent ↔ container-init channel: a SOCK_SEQPACKET socketpair (close-on-exec), so the
//! parent sees end-of-stream exactly when the init's execve succeeds. Messages are one datagram
//! each; a descriptor (the console master) can ride along.

use nix::sys::socket::{
    sendmsg, socketpair, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType,
};
use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// One end of the channel.
pub struct Channel {
    fd: OwnedFd,
}

/// What travels over the channel.
#[derive(Debug, PartialEq, Eq)]
pub enum Message {
    /// Parent → init: you are in your cgroups; go on with setup.
    Joined,
    /// Init → parent: setup done, waiting for `Start`.
    Ready,
    /// Parent → init: exec the workload.
    Start,
    /// Init → parent: here is the console master (the fd comes with it).
    Console,
    /// Init → parent: setup or exec failed; `code` is the exit status docker would report.
    Failed { code: i32, message: String },
}

impl Message {
    fn encode(&self) -> Vec<u8> {
        match self {
            Message::Joined => b"J".to_vec(),
            Message::Ready => b"R".to_vec(),
            Message::Start => b"S".to_vec(),
            Message::Console => b"C".to_vec(),
            Message::Failed { code, message } => format!("F{code}\n{message}").into_bytes(),
        }
    }

    fn decode(b: &[u8]) -> io::Result<Message> {
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "malformed channel message");
        Ok(match b.first() {
            Some(b'J') => Message::Joined,
            Some(b'R') => Message::Ready,
            Some(b'S') => Message::Start,
            Some(b'C') => Message::Console,
            Some(b'F') => {
                let text = String::from_utf8_lossy(&b[1..]);
                let (code, message) = text.split_once('\n').ok_or_else(bad)?;
                Message::Failed {
                    code: code.parse().map_err(|_| bad())?,
                    message: message.to_string(),
                }
            }
            _ => return Err(bad()),
        })
    }
}

/// A connected pair: (parent end, init end).
pub fn pair() -> io::Result<(Channel, Channel)> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    Ok((Channel { fd: a }, Channel { fd: b }))
}

impl Channel {
    pub fn send(&self, msg: &Message) -> io::Result<()> {
        self.send_with_fd(msg, None)
    }

    pub fn send_with_fd(&self, msg: &Message, fd: Option<RawFd>) -> io::Result<()> {
        let bytes = msg.encode();
        let iov = [IoSlice::new(&bytes)];
        let fds;
        let cmsgs: Vec<ControlMessage> = match fd {
            Some(f) => {
                fds = [f];
                vec![ControlMessage::ScmRights(&fds)]
            }
            None => Vec::new(),
        };
        sendmsg::<()>(
            self.fd.as_raw_fd(),
            &iov,
            &cmsgs,
            MsgFlags::MSG_NOSIGNAL,
            None,
        )?;
        Ok(())
    }

    /// The next message, `None` at end of stream (the peer exec'd or died).
    pub fn recv(&self) -> io::Result<Option<(Message, Option<OwnedFd>)>> {
        let mut buf = vec![0u8; 4096];
        let (n, fd) = crate::fd_passing::recv_with_fd(self.fd.as_raw_fd(), &mut buf)?;
        if n == 0 {
            return Ok(None);
        }
        Ok(Some((Message::decode(&buf[..n])?, fd)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_eof() {
        let (a, b) = pair().unwrap();
        a.send(&Message::Failed {
            code: 127,
            message: "exec: \"x\": not found".into(),
        })
        .unwrap();
        let (m, fd) = b.recv().unwrap().unwrap();
        assert!(fd.is_none());
        assert_eq!(
            m,
            Message::Failed {
                code: 127,
                message: "exec: \"x\": not found".into()
            }
        );
        drop(a);
        assert!(b.recv().unwrap().is_none());
    }
}
