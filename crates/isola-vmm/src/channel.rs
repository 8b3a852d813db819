//! The host↔guest channel's framing: `[kind: u8][length: u32 LE][payload]`. The guest sends
//! the workload's stdout and stderr as they come and, last, its exit status (or an error); the
//! host sends stdin (an empty frame is end of file) and signals to forward.

/// Frame kinds, guest to host.
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const EXIT: u8 = 3;
pub const ERROR: u8 = 4;
/// Sent first, once the guest's end is in raw mode: until then the host sends nothing (a tty
/// not yet raw would echo or interpret what arrives).
pub const READY: u8 = 7;
/// Frame kinds, host to guest.
pub const STDIN: u8 = 5;
pub const SIGNAL: u8 = 6;
/// With a terminal: its new size, rows then columns, each a u16 LE.
pub const RESIZE: u8 = 8;

/// The largest payload accepted; a larger length means a corrupt stream.
pub const MAX_PAYLOAD: usize = 1 << 20;

/// What a complete frame means.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    Exit(i32),
    Error(String),
    Ready,
}

/// Incremental decoder: feed it bytes in any chunking, take complete frames.
#[derive(Default)]
pub struct Decoder {
    buf: Vec<u8>,
    corrupt: bool,
}

impl Decoder {
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Frame> {
        if self.corrupt {
            return Vec::new();
        }
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        loop {
            if self.buf.len() < 5 {
                break;
            }
            let kind = self.buf[0];
            let len =
                u32::from_le_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
            if len > MAX_PAYLOAD || !(STDOUT..=ERROR).contains(&kind) && kind != READY {
                self.corrupt = true;
                out.push(Frame::Error(format!(
                    "corrupt channel frame (kind {kind}, length {len})"
                )));
                break;
            }
            if self.buf.len() < 5 + len {
                break;
            }
            let payload: Vec<u8> = self.buf[5..5 + len].to_vec();
            self.buf.drain(..5 + len);
            out.push(match kind {
                READY => Frame::Ready,
                STDOUT => Frame::Stdout(payload),
                STDERR => Frame::Stderr(payload),
                EXIT => {
                    let mut b = [0u8; 4];
                    let n = payload.len().min(4);
                    b[..n].copy_from_slice(&payload[..n]);
                    Frame::Exit(i32::from_le_bytes(b))
                }
                _ => Frame::Error(String::from_utf8_lossy(&payload).into_owned()),
            });
        }
        out
    }
}

/// Encodes one frame.
pub fn encode(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(5 + payload.len());
    v.push(kind);
    v.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    v.extend_from_slice(payload);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_survive_any_chunking() {
        let mut stream = encode(STDOUT, b"hello\n");
        stream.extend(encode(STDERR, b"oops\n"));
        stream.extend(encode(EXIT, &7i32.to_le_bytes()));
        for chunk in [1, 2, 3, 7, 100] {
            let mut d = Decoder::default();
            let frames: Vec<Frame> = stream.chunks(chunk).flat_map(|c| d.feed(c)).collect();
            assert_eq!(
                frames,
                vec![
                    Frame::Stdout(b"hello\n".to_vec()),
                    Frame::Stderr(b"oops\n".to_vec()),
                    Frame::Exit(7)
                ]
            );
        }
    }

    #[test]
    fn garbage_is_reported_once_and_then_ignored() {
        let mut d = Decoder::default();
        let frames = d.feed(&[9, 0xff, 0xff, 0xff, 0xff, 1, 2, 3]);
        assert!(matches!(frames.as_slice(), [Frame::Error(_)]));
        assert!(d.feed(&encode(STDOUT, b"x")).is_empty());
    }
}
