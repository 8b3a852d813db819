//! What the host sends into the guest while it runs: the workload's stdin (with -i) and the
//! signals isola receives (SIGINT, SIGTERM, SIGHUP, ...), as channel frames on the console's
//! receive queue. Runs on its own thread beside the vCPU, until told to stop.

use crate::channel::{encode, RESIZE, SIGNAL, STDIN};
use crate::virtio::console::{Input, RX};
use crate::virtio::mmio::MmioTransport;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

/// Input the guest has not taken yet; past this, stdin is not read (back-pressure).
const BACKLOG: usize = 1 << 20;

/// Blocks `signals` in the calling thread (and the threads it starts from now on), so that
/// they queue for a signalfd instead of ending isola. They stay blocked: isola forwards them
/// to the guest while the VM runs and exits right after it.
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

/// The next queued signal's number, if any.
fn next_signal(fd: &OwnedFd) -> Option<i32> {
    // SAFETY: signalfd_siginfo is plain data; read(2) fills at most its size.
    unsafe {
        let mut info: libc::signalfd_siginfo = std::mem::zeroed();
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        let n = libc::read(
            fd.as_raw_fd(),
            (&mut info as *mut libc::signalfd_siginfo).cast(),
            size,
        );
        (n as usize == size).then_some(info.ssi_signo as i32)
    }
}

fn poll_in(fd: RawFd) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

/// Forwards until `stop` is signalled: stdin (if given) until its end of file, and every
/// signal arriving on `signals` — SIGWINCH as the terminal's new size when `window_size` is
/// given (the guest's pty then signals its foreground processes itself).
pub fn forward(
    stdin: Option<RawFd>,
    signals: &OwnedFd,
    window_size: Option<crate::vm::WindowSize>,
    console: &Mutex<MmioTransport>,
    input: &Input,
    mem: &GuestMemoryMmap,
    stop: &EventFd,
) {
    let mut stdin = stdin;
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let backlog = lock(input).len();
        let mut fds = vec![poll_in(stop.as_raw_fd()), poll_in(signals.as_raw_fd())];
        if let Some(fd) = stdin.filter(|_| backlog < BACKLOG) {
            fds.push(poll_in(fd));
        }
        // While input waits (the guest not ready, or its buffers full), look again every
        // 10 ms; otherwise sleep until something happens.
        let timeout = if backlog > 0 { 10 } else { -1 };
        // SAFETY: poll on descriptors that stay open for this call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if n <= 0 {
            if backlog > 0 {
                // Input still waiting: offer it again (the guest may have added buffers).
                lock(console).notify(RX, mem);
            }
            continue;
        }
        if fds[0].revents != 0 {
            return;
        }
        let mut frames = Vec::new();
        if fds[1].revents != 0 {
            while let Some(sig) = next_signal(signals) {
                match window_size {
                    Some(size) if sig == libc::SIGWINCH => {
                        if let Some((rows, cols)) = size() {
                            let mut b = rows.to_le_bytes().to_vec();
                            b.extend_from_slice(&cols.to_le_bytes());
                            frames.extend(encode(RESIZE, &b));
                        }
                    }
                    _ => frames.extend(encode(SIGNAL, &sig.to_le_bytes())),
                }
            }
        }
        if let Some(f) = fds.get(2).filter(|f| f.revents != 0) {
            // SAFETY: read into our buffer from isola's stdin.
            let n = unsafe { libc::read(f.fd, buf.as_mut_ptr().cast(), buf.len()) };
            if n > 0 {
                frames.extend(encode(STDIN, &buf[..n as usize]));
            } else if n == 0 || f.revents & (libc::POLLHUP | libc::POLLERR) != 0 {
                frames.extend(encode(STDIN, &[]));
                stdin = None;
            }
        }
        if !frames.is_empty() {
            lock(input).extend(frames);
            lock(console).notify(RX, mem);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
