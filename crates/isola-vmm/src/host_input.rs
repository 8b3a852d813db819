//! What the host sends into the guest while it runs, inside the VMM: the channel frames isola's
//! front end encoded (stdin, signals, window sizes; see `host_relay.rs`) arrive on the control
//! pipe and go onto the console's receive queue. One subscriber on a rust-vmm `event-manager`
//! loop (epoll), on its own thread beside the vCPUs, until told to stop.

use crate::virtio::console::{Input, RX};
use crate::virtio::mmio::MmioTransport;
use event_manager::{EventManager, EventOps, EventSet, Events, MutEventSubscriber, SubscriberOps};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Mutex;
use std::time::Duration;
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;
use vmm_sys_util::timerfd::TimerFd;

/// Input the guest has not taken yet; past this, the control pipe is not read (back-pressure).
const BACKLOG: usize = 1 << 20;
/// While input waits for the guest (not ready yet, or its buffers full), it is offered again
/// this often.
const RETRY: Duration = Duration::from_millis(10);

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
const CONTROL_READY: u32 = 1;
const RETRY_TICK: u32 = 2;

/// The subscriber: the control pipe until its end of file (the front end is gone) or until
/// stopped.
struct HostInput<'a> {
    guest: Guest<'a>,
    control: Option<RawFd>,
    /// The control pipe is in the epoll set (it leaves while the backlog is full).
    control_watched: bool,
    stop: RawFd,
    stopped: bool,
    /// Ticks every `RETRY` while input waits for the guest; disarmed otherwise.
    retry: TimerFd,
    buf: Vec<u8>,
}

impl HostInput<'_> {
    /// Reads one chunk of frames and offers them to the guest.
    fn read_control(&mut self, ops: &mut EventOps) {
        let Some(fd) = self.control else { return };
        // SAFETY: read into our buffer from the control pipe.
        let n = unsafe { libc::read(fd, self.buf.as_mut_ptr().cast(), self.buf.len()) };
        if n > 0 {
            self.guest.send(self.buf[..n as usize].to_vec());
            return;
        }
        let err = std::io::Error::last_os_error().raw_os_error();
        if n < 0 && matches!(err, Some(libc::EAGAIN) | Some(libc::EINTR)) {
            return;
        }
        if self.control_watched {
            let _ = ops.remove(Events::empty_raw(fd));
        }
        self.control = None;
        self.control_watched = false;
    }

    /// Back-pressure: the pipe is watched only while the guest keeps up.
    fn watch_control(&mut self, ops: &mut EventOps) {
        let Some(fd) = self.control else { return };
        let room = self.guest.backlog() < BACKLOG;
        let ev = Events::with_data_raw(fd, CONTROL_READY, EventSet::IN);
        if room && !self.control_watched {
            self.control_watched = ops.add(ev).is_ok();
        } else if !room && self.control_watched {
            self.control_watched = ops.remove(ev).is_err();
        }
    }

    /// The tick runs only while input waits for the guest (it may have added buffers).
    fn arm_retry(&mut self) {
        let waiting = self.guest.backlog() > 0;
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
        let _ = ops.add(Events::with_data(&self.retry, RETRY_TICK, EventSet::IN));
        self.watch_control(ops);
        self.arm_retry();
    }

    fn process(&mut self, events: Events, ops: &mut EventOps) {
        match events.data() {
            STOP => self.stopped = true,
            CONTROL_READY => self.read_control(ops),
            RETRY_TICK => {
                let _ = self.retry.wait();
                self.guest.send(Vec::new());
            }
            _ => {}
        }
        self.watch_control(ops);
        self.arm_retry();
    }
}

/// Why forwarding ended.
pub enum Ended {
    /// `stop` was signalled: the VM ended.
    Stopped,
    /// The control pipe reached its end: isola, which holds the other end, is gone.
    FrontEndGone,
}

/// Forwards the front end's frames from `control` until `stop` is signalled or the front end
/// is gone.
pub fn forward(control: RawFd, guest: Guest, stop: &EventFd) -> Result<Ended, String> {
    let mut manager: EventManager<HostInput> =
        EventManager::new().map_err(|e| format!("event manager: {e:?}"))?;
    let id = manager.add_subscriber(HostInput {
        guest,
        control: Some(control),
        control_watched: false,
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
            return Ok(Ended::Stopped);
        }
        if subscriber.control.is_none() {
            return Ok(Ended::FrontEndGone);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
