//! The front end's side of a jailed VMM: isola keeps every host descriptor (its stdin, stdout,
//! stderr, terminal, signals) and the VMM gets pipes. What isola receives — stdin with -i, the
//! signals it forwards, the terminal's new size — is encoded here as channel frames and written
//! to the control pipe; what the guest sends (the channel) and the kernel log come back on
//! their own pipes, and the VMM's last words on the report pipe. One poll loop, until the VMM
//! has closed all three.

use crate::devices::serial::Sink;
use crate::virtio::console::ByteSink;
use isola_guest_contract::frame::{Frame, ToGuest};
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Reads the host terminal's (rows, columns), if it has one.
pub type WindowSize = fn() -> Option<(u16, u16)>;

/// Frames not yet taken by the VMM; past this, stdin is not read (back-pressure).
const BACKLOG: usize = 1 << 20;

/// Where the VM's output goes and what the host sends in, on isola's side.
pub struct HostIo {
    /// Where COM1 (the kernel console) goes.
    pub console: Sink,
    /// Receives what the guest sends on the host channel (a virtio console).
    pub channel: ByteSink,
    /// Forwarded to the guest as stdin frames until its end of file.
    pub stdin: Option<RawFd>,
    /// Signals forwarded to the guest while the VM runs (blocked in isola for good).
    pub forward_signals: Vec<i32>,
    /// With a terminal in the guest: reads the host terminal's (rows, columns); SIGWINCH then
    /// sends the new size instead of the signal.
    pub window_size: Option<WindowSize>,
    /// When the guest waits for `Start` (a runtime's `create`): readable once the workload may
    /// start (a runtime's `start` wrote to it); `Start` is sent then.
    pub start: Option<OwnedFd>,
    /// More descriptors to watch for the owner (a runtime monitor's exec clients, the
    /// workload's hosts file).
    pub sidebands: Vec<Box<dyn Sideband>>,
}

/// Descriptors the relay watches for its owner; what they bring becomes frames for the guest.
pub trait Sideband {
    /// The descriptors to wait on for reading, now.
    fn fds(&self) -> Vec<RawFd>;
    /// `fd` is readable (or closed): frames for the guest go onto `to_guest`.
    fn ready(&mut self, fd: RawFd, to_guest: &mut Vec<u8>);
}

/// isola's ends of the pipes to the VMM.
pub struct FrontEnd {
    pub control: OwnedFd,
    pub channel: OwnedFd,
    pub console: OwnedFd,
    pub report: OwnedFd,
}

/// Blocks `signals` in the calling thread (and the processes and threads it starts from now
/// on), so that they queue for a signalfd instead of ending isola. They stay blocked: isola
/// forwards them to the guest while the VM runs and exits right after it.
pub fn block_signals(signals: &[i32]) -> Result<OwnedFd, String> {
    let set = vmm_sys_util::signal::create_sigset(signals)
        .map_err(|e| format!("signals {signals:?}: {e}"))?;
    // SAFETY: pthread_sigmask and signalfd with a valid set and no old-set pointer; the new
    // descriptor is owned right away.
    unsafe {
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        let fd = libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC);
        if fd < 0 {
            return Err(format!("signalfd: {}", std::io::Error::last_os_error()));
        }
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// The next queued signal's number on a signalfd, if any.
pub fn next_signal(fd: RawFd) -> Option<i32> {
    // SAFETY: signalfd_siginfo is plain data; read(2) fills at most its size.
    unsafe {
        let mut info: libc::signalfd_siginfo = std::mem::zeroed();
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        let n = libc::read(fd, (&mut info as *mut libc::signalfd_siginfo).cast(), size);
        (n as usize == size).then_some(info.ssi_signo as i32)
    }
}

/// One read(2): Some(bytes read, 0 at end of file), None when it would block or was interrupted.
fn read_some(fd: RawFd, buf: &mut [u8]) -> Option<usize> {
    // SAFETY: read into a live buffer of its own length.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n >= 0 {
        return Some(n as usize);
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EINTR) => None,
        _ => Some(0),
    }
}

/// Relays until the VMM has closed its channel, console and report pipes (it has ended);
/// returns what it wrote on the report pipe.
pub fn relay(io: &mut HostIo, signals: &OwnedFd, pipes: FrontEnd) -> Vec<u8> {
    // SAFETY: fcntl on a pipe end we own.
    unsafe {
        let fd = pipes.control.as_raw_fd();
        libc::fcntl(
            fd,
            libc::F_SETFL,
            libc::fcntl(fd, libc::F_GETFL) | libc::O_NONBLOCK,
        );
    }
    let mut control = Some(pipes.control);
    let mut stdin = io.stdin;
    let mut pending: Vec<u8> = Vec::new();
    let mut report = Report::default();
    let mut open = [true; 3]; // channel, console, report
    let outputs = [&pipes.channel, &pipes.console, &pipes.report].map(|p| p.as_raw_fd());
    let mut buf = vec![0u8; 64 << 10];
    while open.iter().any(|o| *o) {
        let mut fds: Vec<libc::pollfd> = Vec::with_capacity(8);
        let poll = |fd, events| libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        for (i, fd) in outputs.iter().enumerate() {
            fds.push(poll(if open[i] { *fd } else { -1 }, libc::POLLIN));
        }
        fds.push(poll(signals.as_raw_fd(), libc::POLLIN));
        let read_stdin = stdin.filter(|_| pending.len() < BACKLOG && control.is_some());
        fds.push(poll(read_stdin.unwrap_or(-1), libc::POLLIN));
        fds.push(poll(
            io.start.as_ref().map_or(-1, |s| s.as_raw_fd()),
            libc::POLLIN,
        ));
        let write_control = control.as_ref().filter(|_| !pending.is_empty());
        fds.push(poll(
            write_control.map_or(-1, |c| c.as_raw_fd()),
            libc::POLLOUT,
        ));
        // (which sideband, its descriptor)
        let side: Vec<(usize, RawFd)> = if control.is_some() && pending.len() < BACKLOG {
            io.sidebands
                .iter()
                .enumerate()
                .flat_map(|(i, s)| s.fds().into_iter().map(move |fd| (i, fd)))
                .collect()
        } else {
            Vec::new()
        };
        fds.extend(side.iter().map(|(_, fd)| poll(*fd, libc::POLLIN)));
        // SAFETY: poll over our own array of pollfds, its true length given.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if n < 0 {
            continue; // EINTR
        }
        for i in 0..3 {
            if fds[i].revents == 0 {
                continue;
            }
            match read_some(outputs[i], &mut buf) {
                Some(0) => open[i] = false,
                Some(n) => match i {
                    0 => (io.channel)(&buf[..n]),
                    1 => {
                        let _ = io.console.write_all(&buf[..n]);
                    }
                    _ => report.take(&buf[..n]),
                },
                None => {}
            }
        }
        if fds[3].revents != 0 {
            while let Some(sig) = next_signal(signals.as_raw_fd()) {
                match io.window_size {
                    Some(size) if sig == libc::SIGWINCH => {
                        if let Some((rows, cols)) = size() {
                            pending.extend(ToGuest::Resize { rows, cols }.encode());
                        }
                    }
                    _ => pending.extend(ToGuest::Signal(sig).encode()),
                }
            }
        }
        if fds[5].revents != 0 {
            io.start = None;
            pending.extend(ToGuest::Start.encode());
        }
        for ((i, fd), p) in side.iter().zip(&fds[7..]) {
            if p.revents != 0 {
                io.sidebands[*i].ready(*fd, &mut pending);
            }
        }
        if let (Some(fd), true) = (stdin, fds[4].revents != 0) {
            match read_some(fd, &mut buf) {
                Some(0) => {
                    pending.extend(ToGuest::StdinEof.encode());
                    stdin = None;
                }
                Some(n) => pending.extend(ToGuest::Stdin(buf[..n].to_vec()).encode()),
                None => {}
            }
        }
        if let Some(c) = &control {
            if !pending.is_empty() {
                // SAFETY: write from our live buffer to the control pipe (non-blocking).
                let n =
                    unsafe { libc::write(c.as_raw_fd(), pending.as_ptr().cast(), pending.len()) };
                if n > 0 {
                    pending.drain(..n as usize);
                } else if n < 0
                    && !matches!(
                        std::io::Error::last_os_error().raw_os_error(),
                        Some(libc::EAGAIN) | Some(libc::EINTR)
                    )
                {
                    // The VMM is gone (EPIPE): nothing more goes in.
                    control = None;
                    pending.clear();
                }
            }
        }
    }
    report.end()
}

/// The report pipe's bytes: `explain: ...` lines go to isola's stderr as they come, the rest
/// is the VMM's report.
#[derive(Default)]
struct Report {
    partial: Vec<u8>,
    kept: Vec<u8>,
}

impl Report {
    fn take(&mut self, bytes: &[u8]) {
        self.partial.extend_from_slice(bytes);
        while let Some(end) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            if line.starts_with(isola_process::explain::PREFIX.as_bytes()) {
                let _ = std::io::stderr().write_all(&line);
            } else {
                self.kept.extend_from_slice(&line);
            }
        }
    }

    fn end(mut self) -> Vec<u8> {
        self.kept.append(&mut self.partial);
        self.kept
    }
}
