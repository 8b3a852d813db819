//! While the workload runs: its output to the host channel (stdout and stderr frames, or one
//! terminal stream with -t), what the host sends to it (stdin, signals, window sizes), and
//! reaping every child (init is PID 1). Ends once the workload has exited and its output is
//! drained; anything it left running is killed then, as in a container whose PID 1 ends.

use crate::channel::Channel;
use crate::exec_session::Session;
use crate::setup::mark;
use isola_guest_contract::boot::Phase;
use isola_guest_contract::frame::{ToGuest, ToHost};

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

/// The workload's side of the relay, and the exec sessions beside it.
struct Ctx<'a> {
    pid: libc::pid_t,
    master: Option<libc::c_int>,
    pending: Vec<u8>,
    stdin_eof: bool,
    sessions: Vec<Session>,
    seccomp: Option<&'a isola_seccomp::Filter>,
}

/// Carries out one frame from the host.
fn apply(m: ToGuest, cx: &mut Ctx, ch: &mut Channel) {
    match m {
        ToGuest::Stdin(b) => cx.pending.extend_from_slice(&b),
        ToGuest::StdinEof => cx.stdin_eof = true,
        // SAFETY: kill(2) of our own child (PID 1 of its namespace: as in a container, only
        // signals it handles reach it).
        ToGuest::Signal(sig) => unsafe {
            libc::kill(cx.pid, sig);
        },
        ToGuest::Resize { rows, cols } => {
            if let Some(m) = cx.master {
                set_window_size(m, rows, cols);
            }
        }
        ToGuest::Start => {} // running already
        ToGuest::Hosts(body) => {
            if let Err(e) = crate::network::replace_hosts(&body) {
                crate::setup::console(&format!("isola-guest-init: /etc/hosts: {e}\n"));
            }
        }
        ToGuest::Exec { session, plan } => {
            match crate::exec_session::spawn(session, &plan, cx.pid, cx.seccomp) {
                Ok(s) => cx.sessions.push(s),
                Err(e) => {
                    ch.session(&ToHost::ExecStderr {
                        session,
                        data: format!("isola: {e}\n").into_bytes(),
                    });
                    ch.session(&ToHost::ExecExit { session, code: 125 });
                }
            }
        }
        ToGuest::ExecStdin { session, data } => {
            if let Some(s) = cx.sessions.iter_mut().find(|s| s.id == session) {
                if data.is_empty() {
                    s.stdin_eof = true;
                } else {
                    s.pending.extend_from_slice(&data);
                }
            }
        }
        ToGuest::ExecSignal { session, signal } => {
            if let Some(s) = cx.sessions.iter().find(|s| s.id == session) {
                // SAFETY: kill(2) of a session's process, our child, not yet reaped.
                unsafe { libc::kill(s.pid, signal) };
            }
        }
        ToGuest::ListProcesses { session } => {
            let list = isola_guest_contract::processes::encode(&crate::processes::list());
            ch.session(&ToHost::Processes { session, list });
        }
        ToGuest::ExecResize {
            session,
            rows,
            cols,
        } => {
            if let Some(m) = cx
                .sessions
                .iter()
                .find(|s| s.id == session)
                .and_then(|s| s.master)
            {
                set_window_size(m, rows, cols);
            }
        }
    }
}

/// Writes what is pending into a non-blocking stdin; drops it once the reader is gone.
fn feed(fd: libc::c_int, pending: &mut Vec<u8>, revents: libc::c_short) {
    // SAFETY: write from our buffer into the non-blocking descriptor we own.
    let n = unsafe { libc::write(fd, pending.as_ptr().cast(), pending.len()) };
    if n > 0 {
        pending.drain(..n as usize);
    } else if revents & (libc::POLLERR | libc::POLLHUP) != 0 {
        pending.clear(); // the process closed its stdin
    }
}

/// Closes a stdin once its end of file has come and everything before it went in (a pty
/// gets the end-of-file key first).
fn close_stdin(w: &mut Option<libc::c_int>, eof: bool, pending: &[u8], pty: bool) {
    if !(eof && pending.is_empty()) {
        return;
    }
    if let Some(fd) = w.take() {
        if pty {
            // SAFETY: a one-byte write to the non-blocking pty master copy we own.
            unsafe { libc::write(fd, [VEOF].as_ptr().cast(), 1) };
        }
        // SAFETY: closing the pipe (or master copy) we own: the process reads EOF.
        unsafe { libc::close(fd) };
    }
}

fn status_of(status: libc::c_int) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        125
    }
}

/// Relays until the workload `pid` has exited and its output is drained; returns its status
/// as the container level reports it (the exit code, or 128+N for signal N). Exec sessions the
/// host starts meanwhile are relayed beside it and end with it.
pub fn relay(
    pid: libc::pid_t,
    outputs: Outputs,
    mut in_w: Option<libc::c_int>,
    ch: &mut Channel,
    seccomp: Option<&isola_seccomp::Filter>,
) -> Result<i32, String> {
    // (descriptor, is stderr, still open)
    let mut sources: Vec<(libc::c_int, bool, bool)> = match outputs {
        Outputs::Pipes(out, err) => vec![(out, false, true), (err, true, true)],
        Outputs::Terminal(master) => vec![(master, false, true)],
    };
    let mut cx = Ctx {
        pid,
        master: match outputs {
            Outputs::Terminal(m) => Some(m),
            Outputs::Pipes(..) => None,
        },
        pending: Vec::new(),
        stdin_eof: false,
        sessions: Vec::new(),
        seccomp,
    };
    let mut status_code = None;
    let mut buf = vec![0u8; 65536];
    // What the host sent while the workload waited for its start.
    for m in ch.take_held() {
        apply(m, &mut cx, ch);
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
        let backlog = cx.pending.len() + cx.sessions.iter().map(|s| s.pending.len()).sum::<usize>();
        if backlog < STDIN_BACKLOG {
            fds.push(pollfd(ch.fd(), libc::POLLIN));
        }
        if let (Some(w), false) = (in_w, cx.pending.is_empty()) {
            fds.push(pollfd(w, libc::POLLOUT));
        }
        for s in &cx.sessions {
            fds.extend(
                s.outputs
                    .iter()
                    .filter(|o| o.2)
                    .map(|o| pollfd(o.0, libc::POLLIN)),
            );
            if let (Some(w), false) = (s.stdin, s.pending.is_empty()) {
                fds.push(pollfd(w, libc::POLLOUT));
            }
        }
        // SAFETY: poll on descriptors we own, with a bounded timeout so exits are noticed.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 50) };
        for f in &fds {
            if f.revents == 0 {
                continue;
            }
            if f.fd == ch.fd() {
                for m in ch.receive() {
                    apply(m, &mut cx, ch);
                }
            } else if Some(f.fd) == in_w {
                feed(f.fd, &mut cx.pending, f.revents);
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
            } else if let Some(s) = cx.sessions.iter_mut().find(|s| s.stdin == Some(f.fd)) {
                feed(f.fd, &mut s.pending, f.revents);
            } else if let Some(s) = cx
                .sessions
                .iter_mut()
                .find(|s| s.outputs.iter().any(|o| o.0 == f.fd && o.2))
            {
                let id = s.id;
                let o = s
                    .outputs
                    .iter_mut()
                    .find(|o| o.0 == f.fd)
                    .unwrap_or_else(|| unreachable!());
                // SAFETY: read into our buffer from a session's pipe (or pty master) we own.
                let n = unsafe { libc::read(f.fd, buf.as_mut_ptr().cast(), buf.len()) };
                if n > 0 {
                    let data = buf[..n as usize].to_vec();
                    ch.session(&if o.1 {
                        ToHost::ExecStderr { session: id, data }
                    } else {
                        ToHost::ExecStdout { session: id, data }
                    });
                } else if n == 0 || f.revents & (libc::POLLHUP | libc::POLLERR) != 0 {
                    o.2 = false;
                }
            }
        }
        close_stdin(&mut in_w, cx.stdin_eof, &cx.pending, cx.master.is_some());
        for s in &mut cx.sessions {
            close_stdin(&mut s.stdin, s.stdin_eof, &s.pending, s.master.is_some());
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
                status_code = Some(status_of(status));
                // SAFETY: kill(-1) signals every process but init itself.
                unsafe { libc::kill(-1, libc::SIGKILL) };
            } else if let Some(s) = cx.sessions.iter_mut().find(|s| s.pid == r) {
                s.status = Some(status_of(status));
            }
        }
        for s in cx.sessions.iter().filter(|s| s.done()) {
            ch.session(&ToHost::ExecExit {
                session: s.id,
                code: s.status.unwrap_or(125),
            });
            for fd in s.outputs.iter().map(|o| o.0).chain(s.stdin) {
                // SAFETY: the session's descriptors, ours, closed once as it is dropped.
                unsafe { libc::close(fd) };
            }
        }
        cx.sessions.retain(|s| !s.done());
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
