//! A virtio console (device type 3) with one port, used as isola's host↔guest channel. What
//! the guest transmits is a stream of frames (see `isola_guest_contract::frame`) carrying the workload's
//! stdout, stderr and exit status; this device hands the bytes to a frame sink. What the host
//! queues in `Input` (stdin and signal frames) goes into the buffers the guest offers on the
//! receive queue.

use super::VirtioDevice;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestMemoryMmap};

/// Bytes waiting to go to the guest.
pub type Input = Arc<Mutex<VecDeque<u8>>>;

/// The receive queue's size. Linux's virtio_console fills the whole queue with page-sized
/// buffers at start-up and notifies the device once per buffer (`add_inbuf` kicks each time),
/// an exit to the VMM each: 16 buffers (64 KiB of input in flight) cost 16 exits where 256
/// cost 256 — a quarter of a second at a millisecond an exit in the emulated test host.
const RX_QUEUE_SIZE: u16 = 16;
/// The transmit queue's: the guest sends one buffer at a time and waits for it.
const TX_QUEUE_SIZE: u16 = 16;
/// The receive queue (host to guest) and the transmit queue (guest to host).
pub const RX: usize = 0;
pub const TX: usize = 1;
/// The most one chain may carry; longer (or looping) chains are cut here.
const MAX_CHAIN_BYTES: usize = 1 << 20;

/// Receives what the guest transmits, in order.
pub type ByteSink = Box<dyn FnMut(&[u8]) + Send>;

pub struct Console {
    sink: ByteSink,
    input: Input,
    /// Input flows only once the guest has transmitted something: its end is then set up
    /// (guest init sends a ready frame after putting /dev/hvc0 in raw mode).
    guest_ready: bool,
    sizes: [u16; 2],
}

impl Console {
    /// `sink` receives the bytes the guest transmits, in order; `input` holds what is to be
    /// sent to the guest.
    pub fn new(sink: ByteSink, input: Input) -> Console {
        Console {
            sink,
            input,
            guest_ready: false,
            sizes: [RX_QUEUE_SIZE, TX_QUEUE_SIZE],
        }
    }
}

/// Moves pending input into the buffers the guest offers on the receive queue, in order.
/// Buffers outside guest memory or not writable get nothing and are returned as used with a
/// length of 0. Returns whether anything was used.
pub fn fill_rx(queue: &mut Queue, mem: &GuestMemoryMmap, pending: &mut VecDeque<u8>) -> bool {
    let mut used_any = false;
    while !pending.is_empty() {
        let Some(chain) = queue.pop_descriptor_chain(mem) else {
            break;
        };
        let head = chain.head_index();
        let mut written = 0u32;
        for desc in chain {
            if !desc.is_write_only() || pending.is_empty() {
                continue;
            }
            let n = (desc.len() as usize).min(pending.len());
            let bytes: Vec<u8> = pending.iter().take(n).copied().collect();
            if mem.write_slice(&bytes, desc.addr()).is_ok() {
                pending.drain(..n);
                written += n as u32;
            }
        }
        if queue.add_used(mem, head, written).is_err() {
            break;
        }
        used_any = true;
    }
    used_any
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
            TX => {
                let sink = &mut self.sink;
                let mut sent = false;
                let used = drain_tx(queue, mem, &mut |b: &[u8]| {
                    sent = true;
                    sink(b)
                });
                // Input that arrived early goes in at the host's next try (host_input.rs).
                self.guest_ready |= sent;
                used
            }
            RX if self.guest_ready => {
                let mut pending = self.input.lock().unwrap_or_else(|p| p.into_inner());
                fill_rx(queue, mem, &mut pending)
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::virtio::testing::{desc, mem, MEM, N, W};
    use virtio_queue::desc::RawDescriptor;
    use virtio_queue::mock::MockSplitQueue;
    use vm_memory::GuestAddress;

    fn tx(m: &GuestMemoryMmap, descs: &[RawDescriptor]) -> (Vec<u8>, u16) {
        let vq = MockSplitQueue::new(m, 16);
        vq.add_desc_chains(descs, 0).unwrap();
        let mut q: Queue = vq.create_queue().unwrap();
        let mut got = Vec::new();
        drain_tx(&mut q, m, &mut |b| got.extend_from_slice(b));
        (got, vq.used().idx().load())
    }

    #[test]
    fn transmitted_bytes_reach_the_sink_in_order() {
        let m = mem();
        m.write_slice(b"hello ", GuestAddress(0x8_0000)).unwrap();
        m.write_slice(b"world", GuestAddress(0x9_0000)).unwrap();
        let (got, used) = tx(
            &m,
            &[
                desc(0x8_0000, 6, N, 1),
                desc(0x9_0000, 5, 0, 0),
                desc(0x8_0000, 5, 0, 0),
            ],
        );
        assert_eq!(got, b"hello worldhello");
        assert_eq!(used, 2);
    }

    #[test]
    fn malformed_transmit_chains_are_returned_and_skipped() {
        let m = mem();
        m.write_slice(b"ok", GuestAddress(0x8_0000)).unwrap();
        let cases: &[&[RawDescriptor]] = &[
            // Outside guest memory, straddling its end, and at the top of the address space.
            &[desc(MEM as u64 * 2, 16, 0, 0)],
            &[desc(MEM as u64 - 1, 16, 0, 0)],
            &[desc(u64::MAX - 1, 16, 0, 0)],
            // Zero length, a huge length, a loop, a next index past the table.
            &[desc(0x8_0000, 0, 0, 0)],
            &[desc(0x8_0000, u32::MAX, 0, 0)],
            &[desc(0x8_0000, 2, N, 1), desc(0x8_0000, 2, N, 0)],
            &[desc(0x8_0000, 2, N, 500)],
            // Write-only buffers carry nothing to the host.
            &[desc(0x8_0000, 2, W, 0)],
        ];
        for (i, chain) in cases.iter().enumerate() {
            let (got, used) = tx(&m, chain);
            assert_eq!(used, 1, "case {i}: the chain must be returned");
            assert!(got.len() <= MAX_CHAIN_BYTES, "case {i}");
            assert!(got.iter().all(|b| b"ok\0".contains(b)), "case {i}: {got:?}");
        }
    }

    #[test]
    fn input_fills_receive_buffers_in_order_and_waits_for_more() {
        let m = mem();
        let vq = MockSplitQueue::new(&m, 16);
        vq.add_desc_chains(&[desc(0x8_0000, 4, W, 0), desc(0x9_0000, 4, W, 0)], 0)
            .unwrap();
        let mut q: Queue = vq.create_queue().unwrap();
        let mut pending: VecDeque<u8> = b"abcdefghij".iter().copied().collect();
        assert!(fill_rx(&mut q, &m, &mut pending));
        let mut a = [0u8; 4];
        m.read_slice(&mut a, GuestAddress(0x8_0000)).unwrap();
        assert_eq!(&a, b"abcd");
        m.read_slice(&mut a, GuestAddress(0x9_0000)).unwrap();
        assert_eq!(&a, b"efgh");
        // No more buffers: the rest waits, nothing is lost.
        assert_eq!(pending, b"ij".iter().copied().collect::<VecDeque<u8>>());
        assert!(!fill_rx(&mut q, &m, &mut pending));
    }

    #[test]
    fn bad_receive_buffers_take_nothing() {
        let m = mem();
        let vq = MockSplitQueue::new(&m, 16);
        vq.add_desc_chains(
            &[
                desc(MEM as u64 * 2, 4, W, 0),
                desc(0x8_0000, 4, 0, 0),
                desc(0x9_0000, 0, W, 0),
                desc(0xa_0000, 8, W, 0),
            ],
            0,
        )
        .unwrap();
        let mut q: Queue = vq.create_queue().unwrap();
        let mut pending: VecDeque<u8> = b"xyz".iter().copied().collect();
        assert!(fill_rx(&mut q, &m, &mut pending));
        assert!(pending.is_empty());
        let mut a = [0u8; 3];
        m.read_slice(&mut a, GuestAddress(0xa_0000)).unwrap();
        assert_eq!(&a, b"xyz");
        assert_eq!(vq.used().idx().load(), 4);
    }
}
