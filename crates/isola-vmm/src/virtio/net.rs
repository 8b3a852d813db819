//! A virtio network device (device type 1) backed by a tap device on the host: every frame the
//! guest transmits is written to the tap, every frame read from the tap goes into a buffer the
//! guest offers. The tap is opened with a 12-byte virtio-net header per frame (IFF_VNET_HDR,
//! TUNSETVNETHDRSZ), the very header a VIRTIO_F_VERSION_1 driver puts before each frame, so
//! frames pass through whole, header included, without being parsed here.
//!
//! Queue work runs on the network thread (`net_worker.rs`), woken by KVM ioeventfds when the
//! guest notifies a queue and by the tap when a frame arrives; the vCPUs only see register
//! accesses. Frames move between the tap and guest memory through iovecs (one copy, the
//! kernel's); offloads (checksum, TSO) and event-index suppression keep the trips per byte low.
//! What is left per frame is a VM exit or an interrupt. vhost-net (the host kernel serving the
//! queues, as QEMU can and Firecracker does not) is left out on purpose: it would put guest-made
//! descriptors in front of host kernel code instead of this jailed thread, and measured in the
//! emulated test host it bought QEMU 8-16% (tests/bench/network), where a frame's price is the
//! VM exits and interrupts around it, which it does not remove.

use super::VirtioDevice;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vm_memory::{GuestMemoryBackend, GuestMemoryMmap};

/// The receive queue (host to guest) and the transmit queue.
pub const RX: usize = 0;
pub const TX: usize = 1;
const QUEUE_SIZE: u16 = 256;
/// VIRTIO_NET_F_MAC: the device has a MAC address in its configuration space.
const F_MAC: u64 = 1 << 5;
/// Offloads, as Firecracker offers them: frames both ways may carry a partial checksum
/// (CSUM: from the guest; GUEST_CSUM: to it) and be TCP segments of up to 64 KiB the other
/// side cuts (HOST_TSO*: from the guest; GUEST_TSO*: to it). Without them every 1500-byte
/// frame is a trip through the device, and each trip is a VM exit or an interrupt.
const F_CSUM: u64 = 1 << 0;
const F_GUEST_CSUM: u64 = 1 << 1;
const F_GUEST_TSO4: u64 = 1 << 7;
const F_GUEST_TSO6: u64 = 1 << 8;
const F_HOST_TSO4: u64 = 1 << 11;
const F_HOST_TSO6: u64 = 1 << 12;
const OFFLOADS: u64 =
    F_CSUM | F_GUEST_CSUM | F_GUEST_TSO4 | F_GUEST_TSO6 | F_HOST_TSO4 | F_HOST_TSO6;
// <linux/if_tun.h>: what the tap may hand us (the guest's side of the offloads).
pub const TUNSETOFFLOAD: libc::c_ulong = 0x4004_54d0;
const TUN_F_CSUM: u32 = 0x01;
const TUN_F_TSO4: u32 = 0x02;
const TUN_F_TSO6: u32 = 0x04;

/// The tap offloads matching what the driver accepted: a frame the tap hands over must be one
/// the guest takes.
pub fn tap_offloads(acked: u64) -> u32 {
    let mut f = 0;
    if acked & F_GUEST_CSUM != 0 {
        f |= TUN_F_CSUM;
        if acked & F_GUEST_TSO4 != 0 {
            f |= TUN_F_TSO4;
        }
        if acked & F_GUEST_TSO6 != 0 {
            f |= TUN_F_TSO6;
        }
    }
    f
}
/// A header and the largest frame a tap hands over (64 KiB of IP plus the Ethernet header).
const MAX_FRAME: usize = 12 + 65536 + 14;

/// Where frames go and come from: a tap device, or (in tests) anything else. Frames move
/// straight between the port and guest memory, through iovecs over the guest's buffers (one
/// copy, by the kernel), never through a buffer of the VMM's.
pub trait Port: Send {
    /// One frame, header first, scattered over `bufs`; WouldBlock when there is none. A frame
    /// longer than the buffers is cut short.
    fn recv(&mut self, bufs: &[libc::iovec]) -> io::Result<usize>;
    /// Sends one frame, header first, gathered from `bufs`.
    fn send(&mut self, bufs: &[libc::iovec]) -> io::Result<()>;
    /// Lets the port hand over frames with these offloads (TUN_F_* flags).
    fn set_offloads(&mut self, flags: u32) -> io::Result<()>;
}

/// A tap device's descriptor (non-blocking, opened with IFF_VNET_HDR and a 12-byte header).
pub struct Tap(pub OwnedFd);

impl Port for Tap {
    fn recv(&mut self, bufs: &[libc::iovec]) -> io::Result<usize> {
        // SAFETY: readv(2) writes only into the iovecs, each a range of guest memory that
        // `GuestBuffers` checked lies inside the mapping and keeps mapped meanwhile. The guest
        // may touch those bytes concurrently; they are its own buffers and nothing of the
        // VMM's is read from them.
        let n = unsafe { libc::readv(self.0.as_raw_fd(), bufs.as_ptr(), bufs.len() as i32) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    fn send(&mut self, bufs: &[libc::iovec]) -> io::Result<()> {
        // SAFETY: writev(2) only reads the iovecs (ranges of guest memory, checked and kept
        // mapped as above); a tap takes one frame per write, whole or not at all.
        let n = unsafe { libc::writev(self.0.as_raw_fd(), bufs.as_ptr(), bufs.len() as i32) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    fn set_offloads(&mut self, flags: u32) -> io::Result<()> {
        // SAFETY: TUNSETOFFLOAD takes its flags by value; no memory is passed.
        if unsafe { libc::ioctl(self.0.as_raw_fd(), TUNSETOFFLOAD, flags as libc::c_ulong) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// The buffers of one descriptor chain as iovecs: its write-only ones (a receive) or its
/// readable ones (a transmit), each checked to lie inside guest memory (a buffer that does
/// not is left out, never trusted), at most `MAX_FRAME` bytes in all. The guards keep the
/// memory mapped while the iovecs are in use.
struct GuestBuffers {
    iovecs: Vec<libc::iovec>,
    _guards: Vec<vm_memory::volatile_memory::PtrGuardMut>,
}

impl GuestBuffers {
    fn of<D>(chain: impl Iterator<Item = D>, mem: &GuestMemoryMmap, write_only: bool) -> Self
    where
        D: std::borrow::Borrow<virtio_queue::desc::split::Descriptor>,
    {
        let (mut iovecs, mut guards, mut total) = (Vec::new(), Vec::new(), 0usize);
        for desc in chain {
            let desc = desc.borrow();
            let len = (desc.len() as usize).min(MAX_FRAME - total);
            if desc.is_write_only() != write_only || len == 0 {
                continue;
            }
            let Ok(slice) = mem.get_slice(desc.addr(), len) else {
                continue;
            };
            let guard = slice.ptr_guard_mut();
            iovecs.push(libc::iovec {
                iov_base: guard.as_ptr().cast(),
                iov_len: len,
            });
            guards.push(guard);
            total += len;
        }
        GuestBuffers {
            iovecs,
            _guards: guards,
        }
    }
}

/// What a receive stopped for.
#[derive(PartialEq)]
enum RanOut {
    Frames,
    Buffers,
}

pub struct Net {
    port: Box<dyn Port>,
    mac: [u8; 6],
    sizes: [u16; 2],
}

impl Net {
    pub fn new(port: Box<dyn Port>, mac: [u8; 6]) -> Net {
        Net {
            port,
            mac,
            sizes: [QUEUE_SIZE, QUEUE_SIZE],
        }
    }

    /// Sends every frame the guest queued, each read by the kernel straight from its buffers.
    /// A frame the tap refuses (its queue full, the link down) is dropped, as a wire would drop
    /// it; TCP sends it again. Every chain is returned.
    fn transmit(&mut self, queue: &mut Queue, mem: &GuestMemoryMmap) -> bool {
        let mut used_any = false;
        while let Some(chain) = queue.pop_descriptor_chain(mem) {
            let head = chain.head_index();
            let bufs = GuestBuffers::of(chain, mem, false);
            if !bufs.iovecs.is_empty() {
                let _ = self.port.send(&bufs.iovecs);
            }
            if queue.add_used(mem, head, 0).is_err() {
                break;
            }
            used_any = true;
        }
        used_any
    }

    /// Moves frames from the port into the guest's receive buffers, one frame per buffer chain
    /// (the kernel writes it there), until the port has none or the guest no buffer (the frame
    /// then waits in the tap). Returns whether a buffer was used, and which ran out.
    fn receive(&mut self, queue: &mut Queue, mem: &GuestMemoryMmap) -> (bool, RanOut) {
        let mut used_any = false;
        while let Some(chain) = queue.pop_descriptor_chain(mem) {
            let head = chain.head_index();
            let bufs = GuestBuffers::of(chain, mem, true);
            // A chain with no buffer the device may write is returned empty.
            let n = if bufs.iovecs.is_empty() {
                0
            } else {
                match self.port.recv(&bufs.iovecs) {
                    Ok(n) if n > 0 => n,
                    // No frame (WouldBlock), or a failing tap: the chain waits for the next.
                    _ => {
                        queue.go_to_previous_position();
                        return (used_any, RanOut::Frames);
                    }
                }
            };
            if queue.add_used(mem, head, n as u32).is_err() {
                return (used_any, RanOut::Frames);
            }
            used_any = true;
        }
        (used_any, RanOut::Buffers)
    }
}

impl VirtioDevice for Net {
    fn device_type(&self) -> u32 {
        1
    }

    fn features(&self) -> u64 {
        F_MAC | OFFLOADS | super::VIRTIO_RING_F_EVENT_IDX
    }

    fn activate(&mut self, features: u64, _: super::Activation) -> Result<(), String> {
        // Refused (an old kernel), the tap hands over plain frames, which every driver takes.
        let _ = self.port.set_offloads(tap_offloads(features));
        Ok(())
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &self.sizes
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        for (i, b) in data.iter_mut().enumerate() {
            *b = usize::try_from(offset)
                .ok()
                .and_then(|o| self.mac.get(o + i))
                .copied()
                .unwrap_or(0);
        }
    }

    fn process_queue(&mut self, index: usize, queue: &mut Queue, mem: &GuestMemoryMmap) -> bool {
        match index {
            RX => {
                let mut used = false;
                loop {
                    let _ = queue.disable_notification(mem);
                    let (filled, ran_out) = self.receive(queue, mem);
                    used |= filled;
                    // Notified again when buffers come (a frame may be waiting in the tap for
                    // one); buffers that came in between, unnotified, are filled now.
                    let more = queue.enable_notification(mem).unwrap_or(false);
                    if !(more && ran_out == RanOut::Buffers) {
                        return used;
                    }
                }
            }
            TX => {
                let mut used = false;
                // Without notifications while draining; on again, and drained again if the
                // driver added frames in between (what it added then did not notify).
                loop {
                    let _ = queue.disable_notification(mem);
                    used |= self.transmit(queue, mem);
                    if !queue.enable_notification(mem).unwrap_or(false) {
                        return used;
                    }
                }
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::virtio::testing::{desc, mem, MEM, N, W};
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};
    use virtio_queue::mock::MockSplitQueue;
    use vm_memory::{Bytes, GuestAddress};

    /// Frames waiting to come in, and the frames that went out.
    #[derive(Clone, Default)]
    struct Wire {
        incoming: Arc<Mutex<VecDeque<Vec<u8>>>>,
        sent: Arc<Mutex<Vec<Vec<u8>>>>,
        offloads: Arc<Mutex<Vec<u32>>>,
    }

    impl Port for Wire {
        fn recv(&mut self, bufs: &[libc::iovec]) -> io::Result<usize> {
            let f = self
                .incoming
                .lock()
                .unwrap()
                .pop_front()
                .ok_or(io::ErrorKind::WouldBlock)?;
            let mut done = 0;
            for b in bufs {
                let n = b.iov_len.min(f.len() - done);
                // SAFETY: each iovec is a range of the test's guest memory, mapped and
                // `iov_len` bytes long (GuestBuffers made it), that nothing else touches now.
                unsafe { std::ptr::copy_nonoverlapping(f[done..].as_ptr(), b.iov_base.cast(), n) };
                done += n;
            }
            Ok(done)
        }
        fn send(&mut self, bufs: &[libc::iovec]) -> io::Result<()> {
            let mut frame = Vec::new();
            for b in bufs {
                // SAFETY: as in `recv`; read only.
                frame.extend_from_slice(unsafe {
                    std::slice::from_raw_parts(b.iov_base.cast::<u8>(), b.iov_len)
                });
            }
            self.sent.lock().unwrap().push(frame);
            Ok(())
        }
        fn set_offloads(&mut self, flags: u32) -> io::Result<()> {
            self.offloads.lock().unwrap().push(flags);
            Ok(())
        }
    }

    #[test]
    fn frames_go_one_per_buffer_and_wait_for_buffers_in_order() {
        let m = mem();
        let wire = Wire::default();
        wire.incoming.lock().unwrap().extend([
            b"first".to_vec(),
            b"second".to_vec(),
            b"third".to_vec(),
        ]);
        let mut net = Net::new(Box::new(wire.clone()), [2, 0, 0, 0, 0, 1]);
        let vq = MockSplitQueue::new(&m, 16);
        vq.add_desc_chains(&[desc(0x8_0000, 64, W, 0), desc(0x9_0000, 64, W, 0)], 0)
            .unwrap();
        let mut q: Queue = vq.create_queue().unwrap();
        assert!(net.process_queue(RX, &mut q, &m));
        let mut got = [0u8; 6];
        m.read_slice(&mut got[..5], GuestAddress(0x8_0000)).unwrap();
        assert_eq!(&got[..5], b"first");
        m.read_slice(&mut got, GuestAddress(0x9_0000)).unwrap();
        assert_eq!(&got, b"second");
        assert_eq!(vq.used().idx().load(), 2);
        // The third found no buffer: it waits on the wire, in order.
        assert_eq!(wire.incoming.lock().unwrap().front().unwrap(), b"third");
        assert!(!net.process_queue(RX, &mut q, &m));
        assert_eq!(wire.incoming.lock().unwrap().len(), 1);
    }

    #[test]
    fn transmitted_chains_go_out_whole_and_malformed_ones_are_returned() {
        let m = mem();
        m.write_slice(b"hdr-", GuestAddress(0x8_0000)).unwrap();
        m.write_slice(b"frame", GuestAddress(0x9_0000)).unwrap();
        let wire = Wire::default();
        let mut net = Net::new(Box::new(wire.clone()), [2, 0, 0, 0, 0, 1]);
        let vq = MockSplitQueue::new(&m, 16);
        vq.add_desc_chains(
            &[
                desc(0x8_0000, 4, N, 1),
                desc(0x9_0000, 5, 0, 0),
                desc(MEM as u64 * 2, 16, 0, 0),
            ],
            0,
        )
        .unwrap();
        let mut q: Queue = vq.create_queue().unwrap();
        assert!(net.process_queue(TX, &mut q, &m));
        assert_eq!(
            wire.sent.lock().unwrap().as_slice(),
            &[b"hdr-frame".to_vec()]
        );
        assert_eq!(vq.used().idx().load(), 2, "every chain is returned");
    }

    #[test]
    fn the_mac_is_the_configuration() {
        let net = Net::new(Box::new(Wire::default()), [2, 1, 2, 3, 4, 5]);
        let mut b = [0u8; 8];
        net.read_config(0, &mut b);
        assert_eq!(b, [2, 1, 2, 3, 4, 5, 0, 0]);
        let mut b = [0u8; 2];
        net.read_config(4, &mut b);
        assert_eq!(b, [4, 5]);
    }

    #[test]
    fn the_tap_hands_over_only_the_offloads_the_driver_took() {
        let wire = Wire::default();
        let mut net = Net::new(Box::new(wire.clone()), [2, 0, 0, 0, 0, 1]);
        let (mem, irq) = (mem(), vmm_sys_util::eventfd::EventFd::new(0).unwrap());
        for features in [
            net.features(),
            F_MAC | F_GUEST_TSO4,
            F_MAC | F_GUEST_CSUM | F_GUEST_TSO6,
        ] {
            let a = crate::virtio::Activation {
                queues: &[],
                mem: &mem,
                irq: &irq,
            };
            net.activate(features, a).unwrap();
        }
        assert_eq!(
            *wire.offloads.lock().unwrap(),
            [
                TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6,
                0,
                TUN_F_CSUM | TUN_F_TSO6
            ]
        );
    }
}
