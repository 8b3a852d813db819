//! A detached workload's log, in docker's json-file format: one JSON object per line,
//! `{"log":"TEXT\n","stream":"stdout"|"stderr","time":"RFC3339Nano"}`, a line of output per
//! entry (a line longer than 16 KiB split, as docker splits it). The writer is a thread of the
//! workload's monitor reading the two pipes its stdout and stderr became; the reader serves
//! `isola logs`.

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

/// The file, in the container's directory.
pub const FILE: &str = "log.json";
/// Longest entry: a longer line is split (docker's 16 KiB).
const MAX_ENTRY: usize = 16 << 10;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub log: String,
    pub stream: String,
    pub time: String,
}

/// One stream's bytes not yet ended by a newline.
struct Pending {
    stream: &'static str,
    fd: OwnedFd,
    buf: Vec<u8>,
    open: bool,
}

/// Appends entries; a write that fails (a full disk) loses its entry, counted, and the next
/// one that succeeds is preceded by a line saying how many were lost.
struct Sink {
    file: std::fs::File,
    /// The file's length: where a failed write is cut back to, so no half entry stays to
    /// spoil the next one.
    len: u64,
    lost: u64,
    why: String,
}

impl Sink {
    /// Appends `line` whole or not at all.
    fn append(&mut self, line: &str) -> std::io::Result<()> {
        match self.file.write_all(line.as_bytes()) {
            Ok(()) => {
                self.len += line.len() as u64;
                Ok(())
            }
            Err(e) => {
                let _ = self.file.set_len(self.len);
                Err(e)
            }
        }
    }

    fn put(&mut self, stream: &str, bytes: &[u8]) {
        let entry = |stream: &str, text: String| {
            let e = Entry {
                log: text,
                stream: stream.to_string(),
                time: isola_container::state::now_rfc3339(),
            };
            let mut line = serde_json::to_string(&e).unwrap_or_default();
            line.push('\n');
            line
        };
        if self.lost > 0 {
            let note = format!(
                "isola: {} lines of output were lost ({})\n",
                self.lost, self.why
            );
            if self.append(&entry("stderr", note)).is_err() {
                self.lost += 1;
                return;
            }
            self.lost = 0;
        }
        let line = entry(stream, String::from_utf8_lossy(bytes).into_owned());
        if let Err(e) = self.append(&line) {
            self.lost += 1;
            self.why = e.to_string();
        }
    }
}

/// Writes what arrives on `stdout` and `stderr` (read ends of pipes) to `path` until both are
/// closed. Runs on its own thread.
pub fn write(path: &Path, stdout: OwnedFd, stderr: OwnedFd) -> std::io::Result<()> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let len = file.metadata()?.len();
    let mut sink = Sink {
        file,
        len,
        lost: 0,
        why: String::new(),
    };
    let mut streams = [
        Pending {
            stream: "stdout",
            fd: stdout,
            buf: Vec::new(),
            open: true,
        },
        Pending {
            stream: "stderr",
            fd: stderr,
            buf: Vec::new(),
            open: true,
        },
    ];
    let mut chunk = vec![0u8; 64 << 10];
    while streams.iter().any(|s| s.open) {
        let mut fds: Vec<libc::pollfd> = streams
            .iter()
            .map(|s| libc::pollfd {
                fd: if s.open { s.fd.as_raw_fd() } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: poll over our own array, its true length given.
        if unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) } < 0 {
            continue; // EINTR
        }
        for (s, p) in streams.iter_mut().zip(&fds) {
            if p.revents == 0 {
                continue;
            }
            // SAFETY: read into our buffer, its true length given, from a pipe we own.
            let n = unsafe { libc::read(s.fd.as_raw_fd(), chunk.as_mut_ptr().cast(), chunk.len()) };
            if n <= 0 {
                if n == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                    s.open = false;
                    if !s.buf.is_empty() {
                        sink.put(s.stream, &s.buf);
                        s.buf.clear();
                    }
                }
                continue;
            }
            s.buf.extend_from_slice(&chunk[..n as usize]);
            while let Some(end) = s.buf.iter().position(|b| *b == b'\n').map(|i| i + 1).or((s
                .buf
                .len()
                >= MAX_ENTRY)
                .then_some(MAX_ENTRY))
            {
                let end = end.min(MAX_ENTRY);
                sink.put(s.stream, &s.buf[..end]);
                s.buf.drain(..end);
            }
        }
    }
    Ok(())
}

/// The whole entries of the log at `path` from byte `offset` on, and the offset after the
/// last of them (a line still being written is left for the next call; one that does not
/// parse is skipped).
pub fn read_from(path: &Path, offset: u64) -> (Vec<Entry>, u64) {
    use std::io::{Read, Seek};
    let mut bytes = Vec::new();
    let read = std::fs::File::open(path).and_then(|mut f| {
        f.seek(std::io::SeekFrom::Start(offset))?;
        f.read_to_end(&mut bytes)
    });
    if read.is_err() {
        return (Vec::new(), offset);
    }
    let whole = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let entries = String::from_utf8_lossy(&bytes[..whole])
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    (entries, offset + whole as u64)
}
