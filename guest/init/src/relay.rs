//! While the workload runs: its output to the host channel (stdout and stderr frames, or one
//! terminal stream with -t), what the host sends to it (stdin, signals, window sizes), and
//! reaping every child (init is PID 1). Ends once the workload has exited and its output is
//! drained; anything it left running is killed then, as in a container whose PID 1 ends.

use crate::channel::Channel;
use crate::setup::mark;
use isola_guest_contract::boot::Phase;
use isola_guest_contract::frame::ToGuest;

/// Where the workload's output comes from.
pub enum Outputs {
    /// Two pipes: stdout, stderr.
    Pipes(libc::c_int, libc::c_int),
    /// A pty master: one stream, sent as stdout (as `docker run -t` does).
    Terminal(libc::c_int),
}

/// Stdin bytes held for the workload; past this, init stops taking more from the host (which
/// then stops reading its own stdin).
const STDIN_BACKLOG: usize = 1 << 20;
/// End of input on a terminal: what a typed Ctrl-D sends (the container level does the same).
const VEOF: u8 = 4;

/// Gives the pty behind `master` a window size; its foreground processes get SIGWINCH.
pub fn set_window_size(master: libc::c_int, rows: u16, cols: u16) {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from the pointer we pass.
    unsafe { libc::ioctl(master, libc::TIOCSWINSZ, &ws) };
}

/// Carries out one frame from the host.
fn apply(
    m: ToGuest,
    pid: libc::pid_t,
    master: Option<libc::c_int>,
    pending: &mut Vec<u8>,
    stdin_eof: &mut bool,
) {
    match m {
        ToGuest::Stdin(b) => pending.extend_from_slice(&b),
        ToGuest::StdinEof => *stdin_eof = true,
        // SAFETY: kill(2) of our own child (PID 1 of its namespace: as in a container, only
        // signals it handles reach it).
        ToGuest::Signal(sig) => unsafe {
            libc::kill(pid, sig);
        },
        ToGuest::Resize { rows, cols } => {
            if let Some(m) = master {
                set_window_size(m, rows, cols);
            }
        }
        ToGuest::Start => {} // running already
    }
}

/// Relays until the workload `pid` has exited and its output is drained; returns its status
/// as the container level reports it (the exit code, or 128+N for signal N).
pub fn relay(
    pid: libc::pid_t,
    outputs: Outputs,
    mut in_w: Option<libc::c_int>,
    ch: &mut Channel,
) -> Result<i32, String> {
    // (descriptor, is stderr, still open)
    let mut sources: Vec<(libc::c_int, bool, bool)> = match outputs {
        Outputs::Pipes(out, err) => vec![(out, false, true), (err, true, true)],
        Outputs::Terminal(master) => vec![(master, false, true)],
    };
    let master = match outputs {
        Outputs::Terminal(m) => Some(m),
        Outputs::Pipes(..) => None,
    };
    let mut status_code = None;
    let mut buf = vec![0u8; 65536];
    let mut pending: Vec<u8> = Vec::new();
    let mut stdin_eof = false;
    // What the host sent while the workload waited for its start.
    for m in ch.take_held() {
        apply(m, pid, master, &mut pending, &mut stdin_eof);
    }
    loop {
        if sources.iter().all(|s| !s.2) && status_code.is_some() {
            break;
        }
        let mut fds: Vec<libc::pollfd> = sources
            .iter()
            .filter(|s| s.2)
            .map(|s| pollfd(s.0, libc::POLLIN))
            .collect();
        if pending.len() < STDIN_BACKLOG {
            fds.push(pollfd(ch.fd(), libc::POLLIN));
        }
        if let (Some(w), false) = (in_w, pending.is_empty()) {
            fds.push(pollfd(w, libc::POLLOUT));
        }
        // SAFETY: poll on descriptors we own, with a bounded timeout so exits are noticed.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 50) };
        for f in &fds {
            if f.revents == 0 {
                continue;
            }
            if f.fd == ch.fd() {
                for m in ch.receive() {
                    apply(m, pid, master, &mut pending, &mut stdin_eof);
                }
            } else if Some(f.fd) == in_w {
                // SAFETY: write from our buffer into the non-blocking descriptor we own.
                let n = unsafe { libc::write(f.fd, pending.as_ptr().cast(), pending.len()) };
                if n > 0 {
                    pending.drain(..n as usize);
                } else if f.revents & (libc::POLLERR | libc::POLLHUP) != 0 {
                    pending.clear(); // the workload closed its stdin
                }
            } else if let Some(s) = sources.iter_mut().find(|s| s.0 == f.fd) {
                // SAFETY: read into our buffer from a pipe (or pty master) we own.
                let n = unsafe { libc::read(f.fd, buf.as_mut_ptr().cast(), buf.len()) };
                if n > 0 {
                    if s.1 {
                        ch.stderr(&buf[..n as usize]);
                    } else {
                        ch.stdout(&buf[..n as usize]);
                    }
                } else if n == 0 || f.revents & (libc::POLLHUP | libc::POLLERR) != 0 {
                    // End of file; a pty master reads EIO once no slave is left.
                    s.2 = false;
                }
            }
        }
        if stdin_eof && pending.is_empty() {
            if let Some(w) = in_w.take() {
                if master.is_some() {
                    // SAFETY: a one-byte write to the non-blocking pty master copy we own.
                    unsafe { libc::write(w, [VEOF].as_ptr().cast(), 1) };
                }
                // SAFETY: closing the pipe (or master copy) we own: the workload reads EOF.
                unsafe { libc::close(w) };
            }
        }
        loop {
            let mut status = 0;
            // SAFETY: reap any child without blocking; we are PID 1.
            let r = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if r <= 0 {
                break;
            }
            if r == pid {
                mark(Phase::WorkloadExit);
                status_code = Some(if libc::WIFEXITED(status) {
                    libc::WEXITSTATUS(status)
                } else if libc::WIFSIGNALED(status) {
                    128 + libc::WTERMSIG(status)
                } else {
                    125
                });
                // SAFETY: kill(-1) signals every process but init itself.
                unsafe { libc::kill(-1, libc::SIGKILL) };
            }
        }
    }
    Ok(status_code.unwrap_or(125))
}

fn pollfd(fd: libc::c_int, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}
