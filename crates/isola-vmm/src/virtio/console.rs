//! A virtio console (device type 3) with one port, used as isola's host↔guest channel. What
//! the guest transmits is a stream of frames (see `isola_vmm::channel`) carrying the workload's
//! stdout, stderr and exit status; this device hands the bytes to a frame sink.

use super::VirtioDevice;
use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestMemoryMmap};

const QUEUE_SIZE: u16 = 256;
const RX: usize = 0;
const TX: usize = 1;
/// The most one chain may carry; longer (or looping) chains are cut here.
const MAX_CHAIN_BYTES: usize = 1 << 20;

/// Receives what the guest transmits, in order.
pub type ByteSink = Box<dyn FnMut(&[u8]) + Send>;

pub struct Console {
    sink: ByteSink,
    sizes: [u16; 2],
}

impl Console {
    /// `sink` receives the bytes the guest transmits, in order.
    pub fn new(sink: ByteSink) -> Console {
        Console {
            sink,
            sizes: [QUEUE_SIZE, QUEUE_SIZE],
        }
    }
}

/// Drains a transmit queue: every chain's readable bytes go to `sink`, each chain is returned
/// as used. Malformed chains (addresses outside guest memory, loops, zero lengths) are cut
/// short or skipped — never trusted, never a panic. Returns whether anything was used.
pub fn drain_tx(queue: &mut Queue, mem: &GuestMemoryMmap, sink: &mut dyn FnMut(&[u8])) -> bool {
    let mut used_any = false;
    while let Some(chain) = queue.pop_descriptor_chain(mem) {
        let head = chain.head_index();
        let mut bytes = Vec::new();
        for desc in chain {
            if desc.is_write_only() {
                continue;
            }
            let len = (desc.len() as usize).min(MAX_CHAIN_BYTES - bytes.len());
            if len == 0 {
                continue;
            }
            let start = bytes.len();
            bytes.resize(start + len, 0);
            if mem.read_slice(&mut bytes[start..], desc.addr()).is_err() {
                bytes.truncate(start); // outside guest memory: drop this descriptor
            }
            if bytes.len() >= MAX_CHAIN_BYTES {
                break;
            }
        }
        if !bytes.is_empty() {
            sink(&bytes);
        }
        if queue.add_used(mem, head, 0).is_err() {
            break;
        }
        used_any = true;
    }
    used_any
}

impl VirtioDevice for Console {
    fn device_type(&self) -> u32 {
        3
    }

    fn features(&self) -> u64 {
        0
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &self.sizes
    }

    fn read_config(&self, _offset: u64, data: &mut [u8]) {
        data.iter_mut().for_each(|b| *b = 0);
    }

    fn process_queue(&mut self, index: usize, queue: &mut Queue, mem: &GuestMemoryMmap) -> bool {
        match index {
            TX => drain_tx(queue, mem, &mut *self.sink),
            RX => false, // input to the guest comes later (stdin)
            _ => false,
        }
    }
}
