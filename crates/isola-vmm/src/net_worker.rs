//! The network device's data path, on a thread of its own beside the vCPUs: KVM signals an
//! ioeventfd when the guest notifies the receive or transmit queue (the write never leaves the
//! kernel as a VM exit), the tap signals when a frame arrives, and each wakes this thread to
//! run the queue; the device interrupts the guest through its irqfd. A vCPU only ever handles
//! the device's register accesses, never a frame.

use crate::virtio::mmio::MmioTransport;
use crate::virtio::net::{RX, TX};
use event_manager::{EventManager, EventOps, EventSet, Events, MutEventSubscriber, SubscriberOps};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Mutex;
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

/// What wakes the thread: the guest's queue notifications (ioeventfds KVM signals), the tap.
pub struct Wakers<'a> {
    pub rx_kick: &'a EventFd,
    pub tx_kick: &'a EventFd,
    pub tap: RawFd,
}

const STOP: u32 = 0;
const RX_KICK: u32 = 1;
const TX_KICK: u32 = 2;
const TAP: u32 = 3;

struct Worker<'a> {
    device: &'a Mutex<MmioTransport>,
    mem: &'a GuestMemoryMmap,
    wakers: Wakers<'a>,
    stop: RawFd,
    stopped: bool,
}

impl Worker<'_> {
    fn run_queue(&self, index: usize) {
        lock(self.device).notify(index, self.mem);
    }
}

impl MutEventSubscriber for Worker<'_> {
    fn init(&mut self, ops: &mut EventOps) {
        let w = &self.wakers;
        let _ = ops.add(Events::with_data_raw(self.stop, STOP, EventSet::IN));
        let _ = ops.add(Events::with_data(w.rx_kick, RX_KICK, EventSet::IN));
        let _ = ops.add(Events::with_data(w.tx_kick, TX_KICK, EventSet::IN));
        // Edge-triggered: a frame the guest has no buffer for stays in the tap (and one in the
        // device) without waking this thread again and again; the guest's next receive-queue
        // notification takes them.
        let _ = ops.add(Events::with_data_raw(
            w.tap,
            TAP,
            EventSet::IN | EventSet::EDGE_TRIGGERED,
        ));
    }

    fn process(&mut self, events: Events, _ops: &mut EventOps) {
        match events.data() {
            STOP => self.stopped = true,
            RX_KICK => {
                let _ = self.wakers.rx_kick.read();
                self.run_queue(RX);
            }
            TX_KICK => {
                let _ = self.wakers.tx_kick.read();
                self.run_queue(TX);
            }
            TAP => self.run_queue(RX),
            _ => {}
        }
    }
}

/// Runs the device's queues as their wakers say, until `stop` is signalled.
pub fn run(
    device: &Mutex<MmioTransport>,
    mem: &GuestMemoryMmap,
    wakers: Wakers,
    stop: &EventFd,
) -> Result<(), String> {
    let mut manager: EventManager<Worker> =
        EventManager::new().map_err(|e| format!("event manager: {e:?}"))?;
    let id = manager.add_subscriber(Worker {
        device,
        mem,
        wakers,
        stop: stop.as_raw_fd(),
        stopped: false,
    });
    loop {
        manager.run().map_err(|e| format!("event manager: {e:?}"))?;
        let worker = manager
            .subscriber_mut(id)
            .map_err(|e| format!("event manager: {e:?}"))?;
        if worker.stopped {
            return Ok(());
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
