//! What the host sends into the guest while it runs: the workload's stdin (with -i) and the
//! signals isola receives (SIGINT, SIGTERM, SIGHUP, ...), as channel frames on the console's
//! receive queue. One subscriber on a rust-vmm `event-manager` loop (epoll), on its own thread
//! beside the vCPUs, until told to stop.

use crate::channel::{encode, RESIZE, SIGNAL, STDIN};
use crate::virtio::console::{Input, RX};
use crate::virtio::mmio::MmioTransport;
use crate::vm::WindowSize;
use event_manager::{EventManager, EventOps, EventSet, Events, MutEventSubscriber, SubscriberOps};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;
use std::time::Duration;
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;
use vmm_sys_util::timerfd::TimerFd;

/// Input the guest has not taken yet; past this, stdin is not read (back-pressure).
const BACKLOG: usize = 1 << 20;
/// While input waits for the guest (not ready yet, or its buffers full), it is offered again
/// this often.
const RETRY: Duration = Duration::from_millis(10);

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
fn next_signal(fd: RawFd) -> Option<i32> {
    // SAFETY: signalfd_siginfo is plain data; read(2) fills at most its size.
    unsafe {
        let mut info: libc::signalfd_siginfo = std::mem::zeroed();
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        let n = libc::read(fd, (&mut info as *mut libc::signalfd_siginfo).cast(), size);
        (n as usize == size).then_some(info.ssi_signo as i32)
    }
}

/// Where the host's input goes, and what it comes from.
pub struct Guest<'a> {
    pub console: &'a Mutex<MmioTransport>,
    pub input: &'a Input,
    pub mem: &'a GuestMemoryMmap,
}

impl Guest<'_> {
    fn backlog(&self) -> usize {
        lock(self.input).len()
    }

    /// Queues frames and offers them to the guest.
    fn send(&self, frames: Vec<u8>) {
        if !frames.is_empty() {
            lock(self.input).extend(frames);
        }
        lock(self.console).notify(RX, self.mem);
    }
}

/// Event sources, told apart by the data the event manager hands back.
const STOP: u32 = 0;
const SIGNALS: u32 = 1;
const STDIN_READY: u32 = 2;
const RETRY_TICK: u32 = 3;

/// The subscriber: stdin until its end of file, signals until stopped.
struct HostInput<'a> {
    guest: Guest<'a>,
    stdin: Option<RawFd>,
    /// Stdin that epoll cannot watch (a regular file): read whenever there is room.
    stdin_unpollable: bool,
    /// Stdin is in the epoll set (it leaves while the backlog is full).
    stdin_watched: bool,
    signals: RawFd,
    window_size: Option<WindowSize>,
    stop: RawFd,
    stopped: bool,
    /// Ticks every `RETRY` while input waits for the guest; disarmed otherwise.
    retry: TimerFd,
    buf: Vec<u8>,
}

impl HostInput<'_> {
    /// Reads one chunk of stdin into frames; end of file sends the empty frame and stops.
    fn read_stdin(&mut self, frames: &mut Vec<u8>, ops: Option<&mut EventOps>) {
        let Some(fd) = self.stdin else { return };
        // SAFETY: read into our buffer from isola's stdin.
        let n = unsafe { libc::read(fd, self.buf.as_mut_ptr().cast(), self.buf.len()) };
        if n > 0 {
            frames.extend(encode(STDIN, &self.buf[..n as usize]));
            return;
        }
        let err = std::io::Error::last_os_error().raw_os_error();
        if n < 0 && matches!(err, Some(libc::EAGAIN) | Some(libc::EINTR)) {
            return;
        }
        frames.extend(encode(STDIN, &[]));
        if let (Some(ops), true) = (ops, self.stdin_watched) {
            let _ = ops.remove(Events::empty_raw(fd));
        }
        self.stdin = None;
        self.stdin_watched = false;
        self.stdin_unpollable = false;
    }

    fn read_signals(&mut self, frames: &mut Vec<u8>) {
        while let Some(sig) = next_signal(self.signals) {
            match self.window_size {
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

    /// Back-pressure: stdin is watched only while the guest keeps up.
    fn watch_stdin(&mut self, ops: &mut EventOps) {
        let (Some(fd), false) = (self.stdin, self.stdin_unpollable) else {
            return;
        };
        let room = self.guest.backlog() < BACKLOG;
        let ev = Events::with_data_raw(fd, STDIN_READY, EventSet::IN);
        if room && !self.stdin_watched {
            self.stdin_watched = ops.add(ev).is_ok();
        } else if !room && self.stdin_watched {
            self.stdin_watched = ops.remove(ev).is_err();
        }
    }

    /// The retry tick: offer waiting input again (the guest may have added buffers), and
    /// read stdin that epoll cannot watch.
    fn retry(&mut self, frames: &mut Vec<u8>) {
        let _ = self.retry.wait();
        if self.stdin_unpollable && self.guest.backlog() < BACKLOG {
            self.read_stdin(frames, None);
        }
        self.guest.send(Vec::new());
    }

    /// The tick runs only while something waits: input for the guest, or unpollable stdin.
    fn arm_retry(&mut self) {
        let waiting = self.guest.backlog() > 0 || self.stdin_unpollable;
        if waiting != self.retry.is_armed().unwrap_or(false) {
            let _ = if waiting {
                self.retry.reset(RETRY, Some(RETRY))
            } else {
                self.retry.clear()
            };
        }
    }
}

impl MutEventSubscriber for HostInput<'_> {
    fn init(&mut self, ops: &mut EventOps) {
        let _ = ops.add(Events::with_data_raw(self.stop, STOP, EventSet::IN));
        let _ = ops.add(Events::with_data_raw(self.signals, SIGNALS, EventSet::IN));
        let _ = ops.add(Events::with_data(&self.retry, RETRY_TICK, EventSet::IN));
        if let Some(fd) = self.stdin {
            let ev = Events::with_data_raw(fd, STDIN_READY, EventSet::IN);
            match ops.add(ev) {
                Ok(()) => self.stdin_watched = true,
                // epoll refuses regular files (always readable): read those on the idle path.
                Err(_) => self.stdin_unpollable = true,
            }
        }
        self.arm_retry();
    }

    fn process(&mut self, events: Events, ops: &mut EventOps) {
        let mut frames = Vec::new();
        match events.data() {
            STOP => self.stopped = true,
            SIGNALS => self.read_signals(&mut frames),
            STDIN_READY => self.read_stdin(&mut frames, Some(ops)),
            RETRY_TICK => self.retry(&mut frames),
            _ => {}
        }
        if !frames.is_empty() {
            self.guest.send(frames);
        }
        self.watch_stdin(ops);
        self.arm_retry();
    }
}

/// Forwards until `stop` is signalled: stdin (if given) until its end of file, and every
/// signal arriving on `signals` — SIGWINCH as the terminal's new size when `window_size` is
/// given (the guest's pty then signals its foreground processes itself).
pub fn forward(
    stdin: Option<RawFd>,
    signals: &OwnedFd,
    window_size: Option<WindowSize>,
    guest: Guest,
    stop: &EventFd,
) -> Result<(), String> {
    let mut manager: EventManager<HostInput> =
        EventManager::new().map_err(|e| format!("event manager: {e:?}"))?;
    let id = manager.add_subscriber(HostInput {
        guest,
        stdin,
        stdin_unpollable: false,
        stdin_watched: false,
        signals: signals.as_raw_fd(),
        window_size,
        stop: stop.as_raw_fd(),
        stopped: false,
        retry: TimerFd::new().map_err(|e| format!("timerfd: {e}"))?,
        buf: vec![0u8; 64 << 10],
    });
    loop {
        manager.run().map_err(|e| format!("event manager: {e:?}"))?;
        let subscriber = manager
            .subscriber_mut(id)
            .map_err(|e| format!("event manager: {e:?}"))?;
        if subscriber.stopped {
            return Ok(());
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
