//! The host side of a workload's stdio when it has no terminal: pipes, never isola's own
//! descriptors. A file or terminal isola's stdout points at is then out of the workload's reach:
//! it cannot reopen it through /proc/self/fd (to truncate or read it), read keystrokes from a
//! terminal opened read-write, or push input into it with TIOCSTI. isola copies the pipes to its
//! own stdout and stderr, and with `-i` its stdin into the workload's.

use nix::poll::{PollFd, PollFlags};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

/// The workload's ends of the pipes, for the init to put at 0, 1 and 2.
pub struct WorkloadStdio {
    /// A pipe from the relay with `-i`, else /dev/null.
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

pub struct StdioRelay {
    stdout: Option<std::fs::File>,
    stderr: Option<std::fs::File>,
    /// Where isola's stdin goes, while it is open.
    stdin: Option<std::fs::File>,
    /// Input read from isola's stdin that the workload has not taken yet.
    pending: Vec<u8>,
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)
}

fn set_nonblocking(fd: i32) {
    // SAFETY: fcntl flag manipulation on a descriptor we hold.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
}

fn host_stdin() -> BorrowedFd<'static> {
    // SAFETY: fd 0 stays open for the life of the process.
    unsafe { BorrowedFd::borrow_raw(0) }
}

/// Makes the pipes: the relay keeps one end of each, the workload gets the other.
pub fn pipes(interactive: bool) -> io::Result<(StdioRelay, WorkloadStdio)> {
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (in_relay, in_workload) = if interactive {
        let (r, w) = pipe()?;
        set_nonblocking(w.as_raw_fd());
        (Some(std::fs::File::from(w)), r)
    } else {
        (None, std::fs::File::open("/dev/null")?.into())
    };
    set_nonblocking(out_r.as_raw_fd());
    set_nonblocking(err_r.as_raw_fd());
    Ok((
        StdioRelay {
            stdout: Some(out_r.into()),
            stderr: Some(err_r.into()),
            stdin: in_relay,
            pending: Vec::new(),
        },
        WorkloadStdio {
            stdin: in_workload,
            stdout: out_w,
            stderr: err_w,
        },
    ))
}

/// Copies what `from` has now to `to`; returns false at end of file (or a broken `to`).
fn copy_available(from: &mut std::fs::File, to: &mut dyn Write) -> bool {
    let mut buf = [0u8; 65536];
    loop {
        match from.read(&mut buf) {
            Ok(0) => return false,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    return false;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let _ = to.flush();
                return true;
            }
            Err(_) => return false,
        }
    }
}

impl StdioRelay {
    /// What to wait for, in the order `pump` expects: stdout, stderr, then isola's stdin (when
    /// nothing is pending) or the workload's stdin pipe (when something is).
    pub fn poll_fds(&self) -> Vec<PollFd<'_>> {
        let mut v = Vec::new();
        for f in [&self.stdout, &self.stderr].into_iter().flatten() {
            v.push(PollFd::new(f.as_fd(), PollFlags::POLLIN));
        }
        if let Some(w) = &self.stdin {
            if self.pending.is_empty() {
                v.push(PollFd::new(host_stdin(), PollFlags::POLLIN));
            } else {
                v.push(PollFd::new(w.as_fd(), PollFlags::POLLOUT));
            }
        }
        v
    }

    /// Moves what is ready; `ready` follows the order of `poll_fds`.
    pub fn pump(&mut self, ready: &[bool]) {
        let mut i = 0;
        if let Some(f) = self.stdout.as_mut() {
            if ready[i] && !copy_available(f, &mut io::stdout().lock()) {
                self.stdout = None;
            }
            i += 1;
        }
        if let Some(f) = self.stderr.as_mut() {
            if ready[i] && !copy_available(f, &mut io::stderr().lock()) {
                self.stderr = None;
            }
            i += 1;
        }
        if self.stdin.is_some() && ready.get(i).copied().unwrap_or(false) {
            if self.pending.is_empty() {
                let mut buf = [0u8; 65536];
                match nix::unistd::read(0, &mut buf) {
                    // End of isola's input: close the pipe, the workload reads end of file.
                    Ok(0) | Err(nix::errno::Errno::EBADF | nix::errno::Errno::EIO) => {
                        self.stdin = None
                    }
                    Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                    Err(_) => {}
                }
            }
            self.flush_input();
        }
    }

    fn flush_input(&mut self) {
        let Some(w) = self.stdin.as_mut() else {
            return;
        };
        while !self.pending.is_empty() {
            match w.write(&self.pending) {
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    // The workload closed its stdin: what is left has no reader.
                    self.pending.clear();
                    self.stdin = None;
                    return;
                }
            }
        }
    }

    /// After the workload is gone: copies what is left in the pipes.
    pub fn drain(&mut self) {
        if let Some(f) = self.stdout.as_mut() {
            copy_available(f, &mut io::stdout().lock());
        }
        if let Some(f) = self.stderr.as_mut() {
            copy_available(f, &mut io::stderr().lock());
        }
    }
}
