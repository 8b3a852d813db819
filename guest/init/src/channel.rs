//! The host channel: the virtio console's one port, /dev/hvc0 in raw mode, carrying frames
//! `[kind: u8][length: u32 LE][payload]` both ways (see `isola_vmm::channel`). To the host: the
//! workload's stdout and stderr, then its exit status or an error. From the host: stdin (an
//! empty frame is end of file) and signals to forward.

use crate::setup::open_raw;
use std::os::fd::{AsRawFd, RawFd};

const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const EXIT: u8 = 3;
const ERROR: u8 = 4;
const STDIN: u8 = 5;
const SIGNAL: u8 = 6;
const READY: u8 = 7;
const RESIZE: u8 = 8;
/// A larger length than this from the host means the stream is corrupt.
const MAX_PAYLOAD: usize = 1 << 20;

/// What the host sent.
#[derive(Debug, PartialEq, Eq)]
pub enum FromHost {
    Stdin(Vec<u8>),
    StdinEof,
    Signal(i32),
    /// The host terminal's new size: rows, columns.
    Resize(u16, u16),
}

pub struct Channel {
    hvc: std::fs::File,
    inbox: Vec<u8>,
}

impl Channel {
    /// Opens the channel in raw mode and tells the host it may send.
    pub fn open() -> Result<Channel, String> {
        let mut ch = Channel {
            hvc: std::fs::File::from(open_raw("/dev/hvc0", libc::O_RDWR)?),
            inbox: Vec::new(),
        };
        ch.frame(READY, &[]);
        Ok(ch)
    }

    pub fn fd(&self) -> RawFd {
        self.hvc.as_raw_fd()
    }

    /// Sends one frame.
    fn frame(&mut self, kind: u8, payload: &[u8]) {
        let mut v = Vec::with_capacity(5 + payload.len());
        v.push(kind);
        v.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        v.extend_from_slice(payload);
        let _ = std::io::Write::write_all(&mut self.hvc, &v);
    }

    pub fn stdout(&mut self, b: &[u8]) {
        self.frame(STDOUT, b);
    }

    pub fn stderr(&mut self, b: &[u8]) {
        self.frame(STDERR, b);
    }

    pub fn error(&mut self, msg: &str) {
        self.frame(ERROR, msg.as_bytes());
    }

    /// The exit status, last; waits until the host has every byte.
    pub fn exit(&mut self, code: i32) {
        self.frame(EXIT, &code.to_le_bytes());
        // SAFETY: tcdrain on the descriptor we own.
        unsafe { libc::tcdrain(self.hvc.as_raw_fd()) };
    }

    /// Reads what the host sent (call when the descriptor is readable); returns complete
    /// frames. A corrupt stream ends input: it is reported as end of file.
    pub fn receive(&mut self) -> Vec<FromHost> {
        let mut buf = [0u8; 16384];
        // SAFETY: read into a local buffer from the descriptor we own.
        let n = unsafe { libc::read(self.hvc.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n > 0 {
            self.inbox.extend_from_slice(&buf[..n as usize]);
        }
        decode(&mut self.inbox)
    }
}

/// Takes every complete frame off the front of `inbox`.
fn decode(inbox: &mut Vec<u8>) -> Vec<FromHost> {
    let mut out = Vec::new();
    while inbox.len() >= 5 {
        let len = u32::from_le_bytes([inbox[1], inbox[2], inbox[3], inbox[4]]) as usize;
        if len > MAX_PAYLOAD {
            inbox.clear();
            out.push(FromHost::StdinEof);
            break;
        }
        if inbox.len() < 5 + len {
            break;
        }
        let payload = inbox[5..5 + len].to_vec();
        let kind = inbox[0];
        inbox.drain(..5 + len);
        match kind {
            STDIN if payload.is_empty() => out.push(FromHost::StdinEof),
            STDIN => out.push(FromHost::Stdin(payload)),
            SIGNAL if payload.len() == 4 => out.push(FromHost::Signal(i32::from_le_bytes([
                payload[0], payload[1], payload[2], payload[3],
            ]))),
            RESIZE if payload.len() == 4 => out.push(FromHost::Resize(
                u16::from_le_bytes([payload[0], payload[1]]),
                u16::from_le_bytes([payload[2], payload[3]]),
            )),
            _ => {} // unknown frames are skipped
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_in_any_chunking() {
        let mut stream = vec![
            STDIN, 2, 0, 0, 0, b'h', b'i', SIGNAL, 4, 0, 0, 0, 15, 0, 0, 0,
        ];
        stream.extend_from_slice(&[9, 1, 0, 0, 0, 0, STDIN, 0, 0, 0, 0]);
        stream.extend_from_slice(&[RESIZE, 4, 0, 0, 0, 33, 0, 77, 0]);
        let mut inbox = Vec::new();
        let mut got = Vec::new();
        for b in stream {
            inbox.push(b);
            got.extend(decode(&mut inbox));
        }
        assert_eq!(
            got,
            [
                FromHost::Stdin(b"hi".to_vec()),
                FromHost::Signal(15),
                FromHost::StdinEof,
                FromHost::Resize(33, 77)
            ]
        );
    }

    #[test]
    fn a_huge_length_ends_input() {
        let mut inbox = vec![STDIN, 0xff, 0xff, 0xff, 0xff, 1, 2];
        assert_eq!(decode(&mut inbox), [FromHost::StdinEof]);
        assert!(inbox.is_empty());
    }
}
