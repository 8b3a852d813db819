//! The channel's framing, both ways over one virtio console port:
//! `[kind: u8][length: u32 LE][payload]`. The guest sends the workload's stdout and stderr as
//! they come and, last, its exit status (or an error); the host sends stdin (an empty frame is
//! end of file), signals to forward, the terminal's size and, when peers join or leave its
//! network, the workload's /etc/hosts. The guest sends `Ready` first, once
//! its end is in raw mode: until then the host sends nothing (a tty not yet raw would echo or
//! interpret what arrives).

use crate::{ErrorKind, GuestError};
use std::marker::PhantomData;

/// The largest payload; a larger length means a corrupt stream.
pub const MAX_PAYLOAD: usize = 1 << 20;

const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const EXIT: u8 = 3;
const ERROR: u8 = 4;
const STDIN: u8 = 5;
const SIGNAL: u8 = 6;
const READY: u8 = 7;
const RESIZE: u8 = 8;
const CREATED: u8 = 9;
const START: u8 = 10;
const EXEC: u8 = 11;
const EXEC_STDIN: u8 = 12;
const EXEC_SIGNAL: u8 = 13;
const EXEC_STDOUT: u8 = 14;
const EXEC_STDERR: u8 = 15;
const EXEC_EXIT: u8 = 16;
const EXEC_RESIZE: u8 = 17;
const LIST_PROCESSES: u8 = 18;
const PROCESSES: u8 = 19;
const HOSTS: u8 = 20;
const OOM_KILLED: u8 = 21;

/// Guest to host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToHost {
    Ready,
    /// Set up and waiting for `ToGuest::Start` (only when booted with `boot::WAIT_FOR_START`).
    Created,
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    /// The kernel's OOM killer killed in the workload's cgroup (sent before `Exit`).
    OomKilled,
    Exit(i32),
    Error(GuestError),
    /// Output of an exec session (a runtime's `exec`: another process in the workload's
    /// namespaces).
    ExecStdout {
        session: u32,
        data: Vec<u8>,
    },
    ExecStderr {
        session: u32,
        data: Vec<u8>,
    },
    /// The session's process ended with this status (125-127 when it could not run; its
    /// stderr said why).
    ExecExit {
        session: u32,
        code: i32,
    },
    /// The workload's processes (`processes::encode`), for the session that asked; it ends
    /// that session.
    Processes {
        session: u32,
        list: Vec<u8>,
    },
}

/// Host to guest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToGuest {
    Stdin(Vec<u8>),
    StdinEof,
    Signal(i32),
    /// The host terminal's new size.
    Resize {
        rows: u16,
        cols: u16,
    },
    /// Run the workload (a runtime's `start`, when booted with `boot::WAIT_FOR_START`).
    Start,
    /// Start an exec session: `plan` is the process (isola-process's `Plan`, as JSON).
    Exec {
        session: u32,
        plan: Vec<u8>,
    },
    /// Stdin for a session (empty: end of file).
    ExecStdin {
        session: u32,
        data: Vec<u8>,
    },
    ExecSignal {
        session: u32,
        signal: i32,
    },
    /// The session's terminal has a new size (a session with `process.terminal`).
    ExecResize {
        session: u32,
        rows: u16,
        cols: u16,
    },
    /// Asks for the workload's processes (answered with `ToHost::Processes`).
    ListProcesses {
        session: u32,
    },
    /// The workload's /etc/hosts as it is now, whole (a peer joined or left its network).
    Hosts(Vec<u8>),
}

/// One direction's frames.
pub trait Frame: Sized {
    fn encode(&self) -> Vec<u8>;
    /// The frame a complete `(kind, payload)` is, if it is one of this direction's.
    fn parse(kind: u8, payload: &[u8]) -> Option<Self>;
}

fn framed(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(5 + payload.len());
    v.push(kind);
    v.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    v.extend_from_slice(payload);
    v
}

/// A session number and the rest of the payload.
fn session(payload: &[u8]) -> Option<(u32, &[u8])> {
    let (id, rest) = payload.split_at_checked(4)?;
    Some((u32::from_le_bytes(id.try_into().ok()?), rest))
}

fn with_session(kind: u8, session: u32, rest: &[u8]) -> Vec<u8> {
    let mut p = session.to_le_bytes().to_vec();
    p.extend_from_slice(rest);
    framed(kind, &p)
}

impl ToGuest {
    /// The same frame for another session (the monitor numbers a client's sessions).
    pub fn for_session(self, id: u32) -> ToGuest {
        match self {
            ToGuest::Exec { plan, .. } => ToGuest::Exec { session: id, plan },
            ToGuest::ExecStdin { data, .. } => ToGuest::ExecStdin { session: id, data },
            ToGuest::ExecSignal { signal, .. } => ToGuest::ExecSignal {
                session: id,
                signal,
            },
            ToGuest::ExecResize { rows, cols, .. } => ToGuest::ExecResize {
                session: id,
                rows,
                cols,
            },
            ToGuest::ListProcesses { .. } => ToGuest::ListProcesses { session: id },
            other => other,
        }
    }
}

impl ToHost {
    /// The exec session a frame belongs to, if it is a session's.
    pub fn session(&self) -> Option<u32> {
        match self {
            ToHost::ExecStdout { session, .. }
            | ToHost::ExecStderr { session, .. }
            | ToHost::ExecExit { session, .. }
            | ToHost::Processes { session, .. } => Some(*session),
            _ => None,
        }
    }

    /// Whether this frame is the last of its session.
    pub fn ends_session(&self) -> bool {
        matches!(self, ToHost::ExecExit { .. } | ToHost::Processes { .. })
    }
}

/// A terminal size: rows, then columns.
fn size(rows: u16, cols: u16) -> [u8; 4] {
    let [r0, r1] = rows.to_le_bytes();
    let [c0, c1] = cols.to_le_bytes();
    [r0, r1, c0, c1]
}

fn parse_size(payload: &[u8]) -> Option<(u16, u16)> {
    match payload {
        [r0, r1, c0, c1] => Some((
            u16::from_le_bytes([*r0, *r1]),
            u16::from_le_bytes([*c0, *c1]),
        )),
        _ => None,
    }
}

fn int(payload: &[u8]) -> Option<i32> {
    Some(i32::from_le_bytes(payload.try_into().ok()?))
}

impl Frame for ToHost {
    fn encode(&self) -> Vec<u8> {
        match self {
            ToHost::Ready => framed(READY, &[]),
            ToHost::Created => framed(CREATED, &[]),
            ToHost::Stdout(b) => framed(STDOUT, b),
            ToHost::Stderr(b) => framed(STDERR, b),
            ToHost::OomKilled => framed(OOM_KILLED, &[]),
            ToHost::Exit(code) => framed(EXIT, &code.to_le_bytes()),
            ToHost::Error(e) => {
                let mut p = vec![e.kind as u8];
                p.extend_from_slice(e.message.as_bytes());
                framed(ERROR, &p)
            }
            ToHost::ExecStdout { session, data } => with_session(EXEC_STDOUT, *session, data),
            ToHost::ExecStderr { session, data } => with_session(EXEC_STDERR, *session, data),
            ToHost::ExecExit { session, code } => {
                with_session(EXEC_EXIT, *session, &code.to_le_bytes())
            }
            ToHost::Processes { session, list } => with_session(PROCESSES, *session, list),
        }
    }

    fn parse(kind: u8, payload: &[u8]) -> Option<ToHost> {
        Some(match kind {
            READY if payload.is_empty() => ToHost::Ready,
            CREATED if payload.is_empty() => ToHost::Created,
            STDOUT => ToHost::Stdout(payload.to_vec()),
            STDERR => ToHost::Stderr(payload.to_vec()),
            OOM_KILLED if payload.is_empty() => ToHost::OomKilled,
            EXIT => ToHost::Exit(int(payload)?),
            EXEC_STDOUT => {
                let (session, data) = session(payload)?;
                ToHost::ExecStdout {
                    session,
                    data: data.to_vec(),
                }
            }
            EXEC_STDERR => {
                let (session, data) = session(payload)?;
                ToHost::ExecStderr {
                    session,
                    data: data.to_vec(),
                }
            }
            EXEC_EXIT => {
                let (session, code) = session(payload)?;
                ToHost::ExecExit {
                    session,
                    code: int(code)?,
                }
            }
            PROCESSES => {
                let (session, list) = session(payload)?;
                ToHost::Processes {
                    session,
                    list: list.to_vec(),
                }
            }
            ERROR => {
                let (k, msg) = payload.split_first()?;
                let kind = [ErrorKind::RootDisk, ErrorKind::Setup]
                    .into_iter()
                    .find(|x| *x as u8 == *k)?;
                ToHost::Error(GuestError {
                    kind,
                    message: String::from_utf8_lossy(msg).into_owned(),
                })
            }
            _ => return None,
        })
    }
}

impl Frame for ToGuest {
    fn encode(&self) -> Vec<u8> {
        match self {
            ToGuest::Stdin(b) => framed(STDIN, b),
            ToGuest::StdinEof => framed(STDIN, &[]),
            ToGuest::Signal(sig) => framed(SIGNAL, &sig.to_le_bytes()),
            ToGuest::Resize { rows, cols } => framed(RESIZE, &size(*rows, *cols)),
            ToGuest::Start => framed(START, &[]),
            ToGuest::Exec { session, plan } => with_session(EXEC, *session, plan),
            ToGuest::ExecStdin { session, data } => with_session(EXEC_STDIN, *session, data),
            ToGuest::ExecSignal { session, signal } => {
                with_session(EXEC_SIGNAL, *session, &signal.to_le_bytes())
            }
            ToGuest::ExecResize {
                session,
                rows,
                cols,
            } => with_session(EXEC_RESIZE, *session, &size(*rows, *cols)),
            ToGuest::ListProcesses { session } => with_session(LIST_PROCESSES, *session, &[]),
            ToGuest::Hosts(b) => framed(HOSTS, b),
        }
    }

    fn parse(kind: u8, payload: &[u8]) -> Option<ToGuest> {
        Some(match kind {
            STDIN if payload.is_empty() => ToGuest::StdinEof,
            STDIN => ToGuest::Stdin(payload.to_vec()),
            SIGNAL => ToGuest::Signal(int(payload)?),
            RESIZE => {
                let (rows, cols) = parse_size(payload)?;
                ToGuest::Resize { rows, cols }
            }
            START if payload.is_empty() => ToGuest::Start,
            HOSTS => ToGuest::Hosts(payload.to_vec()),
            EXEC => {
                let (session, plan) = session(payload)?;
                ToGuest::Exec {
                    session,
                    plan: plan.to_vec(),
                }
            }
            EXEC_STDIN => {
                let (session, data) = session(payload)?;
                ToGuest::ExecStdin {
                    session,
                    data: data.to_vec(),
                }
            }
            EXEC_SIGNAL => {
                let (session, signal) = session(payload)?;
                ToGuest::ExecSignal {
                    session,
                    signal: int(signal)?,
                }
            }
            LIST_PROCESSES => match session(payload)? {
                (session, []) => ToGuest::ListProcesses { session },
                _ => return None,
            },
            EXEC_RESIZE => {
                let (session, size) = session(payload)?;
                let (rows, cols) = parse_size(size)?;
                ToGuest::ExecResize {
                    session,
                    rows,
                    cols,
                }
            }
            _ => return None,
        })
    }
}

/// A stream that stopped making sense: an unknown kind, a length past `MAX_PAYLOAD`, or a
/// payload that does not fit its kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Corrupt {
    pub kind: u8,
    pub len: usize,
}

impl std::fmt::Display for Corrupt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "corrupt channel frame (kind {}, length {})",
            self.kind, self.len
        )
    }
}

/// Incremental decoder of one direction: feed it bytes in any chunking, take complete frames.
/// Once the stream is corrupt it says so once and yields nothing more.
pub struct Decoder<F> {
    buf: Vec<u8>,
    corrupt: bool,
    frames: PhantomData<F>,
}

impl<F> Default for Decoder<F> {
    fn default() -> Self {
        Decoder {
            buf: Vec::new(),
            corrupt: false,
            frames: PhantomData,
        }
    }
}

impl<F: Frame> Decoder<F> {
    /// The frames `bytes` completed, and the corruption that ended the stream (once).
    pub fn feed(&mut self, bytes: &[u8]) -> (Vec<F>, Option<Corrupt>) {
        if self.corrupt {
            return (Vec::new(), None);
        }
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        let mut at = 0;
        while self.buf.len() - at >= 5 {
            let b = &self.buf[at..];
            let kind = b[0];
            let len = u32::from_le_bytes([b[1], b[2], b[3], b[4]]) as usize;
            if len > MAX_PAYLOAD {
                return (out, Some(self.fail(kind, len)));
            }
            if b.len() < 5 + len {
                break;
            }
            match F::parse(kind, &b[5..5 + len]) {
                Some(f) => out.push(f),
                None => return (out, Some(self.fail(kind, len))),
            }
            at += 5 + len;
        }
        self.buf.drain(..at);
        (out, None)
    }

    fn fail(&mut self, kind: u8, len: usize) -> Corrupt {
        self.corrupt = true;
        self.buf = Vec::new();
        Corrupt { kind, len }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all<F: Frame>(stream: &[u8], chunk: usize) -> (Vec<F>, Option<Corrupt>) {
        let mut d = Decoder::<F>::default();
        let mut frames = Vec::new();
        let mut corrupt = None;
        for c in stream.chunks(chunk) {
            let (f, e) = d.feed(c);
            frames.extend(f);
            corrupt = corrupt.or(e);
        }
        (frames, corrupt)
    }

    #[test]
    fn every_frame_survives_any_chunking_both_ways() {
        let to_host = vec![
            ToHost::Ready,
            ToHost::OomKilled,
            ToHost::Created,
            ToHost::ExecStdout {
                session: 3,
                data: b"x".to_vec(),
            },
            ToHost::ExecStderr {
                session: 4,
                data: Vec::new(),
            },
            ToHost::ExecExit {
                session: 3,
                code: 127,
            },
            ToHost::Processes {
                session: 5,
                list: b"1\t0\t0\tsh\n".to_vec(),
            },
            ToHost::Stdout(b"hello\n".to_vec()),
            ToHost::Stderr(Vec::new()),
            ToHost::Error(GuestError::root_disk("bad disk")),
            ToHost::Error(GuestError::setup("no process")),
            ToHost::Exit(-7),
        ];
        let to_guest = vec![
            ToGuest::Stdin(b"hi".to_vec()),
            ToGuest::Signal(15),
            ToGuest::Resize { rows: 33, cols: 77 },
            ToGuest::Start,
            ToGuest::Exec {
                session: 1,
                plan: b"{}".to_vec(),
            },
            ToGuest::ExecStdin {
                session: 1,
                data: Vec::new(),
            },
            ToGuest::ExecSignal {
                session: 9,
                signal: 15,
            },
            ToGuest::ExecResize {
                session: 9,
                rows: 40,
                cols: 100,
            },
            ToGuest::ListProcesses { session: 2 },
            ToGuest::Hosts(b"10.0.0.2\tpeer\n".to_vec()),
            ToGuest::StdinEof,
        ];
        let host_stream: Vec<u8> = to_host.iter().flat_map(Frame::encode).collect();
        let guest_stream: Vec<u8> = to_guest.iter().flat_map(Frame::encode).collect();
        for chunk in [1, 2, 3, 7, 1000] {
            assert_eq!(decode_all(&host_stream, chunk), (to_host.clone(), None));
            assert_eq!(decode_all(&guest_stream, chunk), (to_guest.clone(), None));
        }
    }

    #[test]
    fn unknown_kinds_oversize_lengths_and_misfit_payloads_are_corrupt_in_both_directions() {
        let ok = ToHost::Stdout(b"x".to_vec()).encode();
        for bad in [
            vec![99, 0, 0, 0, 0],                 // unknown kind
            vec![STDIN, 0, 0, 0, 0],              // host-bound decoder: a guest-bound kind
            vec![EXIT, 2, 0, 0, 0, 1, 2],         // exit status of 2 bytes
            vec![ERROR, 1, 0, 0, 0, 9],           // unknown error kind
            vec![STDOUT, 0xff, 0xff, 0xff, 0xff], // past MAX_PAYLOAD
        ] {
            let mut stream = ok.clone();
            stream.extend(&bad);
            stream.extend(&ok);
            let (frames, corrupt) = decode_all::<ToHost>(&stream, 1);
            assert_eq!(frames, vec![ToHost::Stdout(b"x".to_vec())], "{bad:?}");
            assert_eq!(corrupt.map(|c| c.kind), Some(bad[0]), "{bad:?}");
        }
        for bad in [vec![STDOUT, 0, 0, 0, 0], vec![RESIZE, 2, 0, 0, 0, 1, 2]] {
            let (frames, corrupt) = decode_all::<ToGuest>(&bad, 3);
            assert!(frames.is_empty());
            assert_eq!(corrupt.map(|c| c.kind), Some(bad[0]));
        }
    }

    #[test]
    fn corruption_is_reported_once() {
        let mut d = Decoder::<ToHost>::default();
        assert!(d.feed(&[99, 0, 0, 0, 0]).1.is_some());
        assert_eq!(d.feed(&ToHost::Ready.encode()), (vec![], None));
    }
}
