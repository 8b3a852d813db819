//! A virtio network device (device type 1) backed by a tap device on the host: every frame the
//! guest transmits is written to the tap, every frame read from the tap goes into a buffer the
//! guest offers. The tap is opened with a 12-byte virtio-net header per frame (IFF_VNET_HDR,
//! TUNSETVNETHDRSZ), the very header a VIRTIO_F_VERSION_1 driver puts before each frame, so
//! frames pass through whole, header included, without being parsed here.
//!
//! Queue work runs on the network thread (`net_worker.rs`), woken by KVM ioeventfds when the
//! guest notifies a queue and by the tap when a frame arrives; the vCPUs only see register
//! accesses.

use super::console::drain_tx;
use super::VirtioDevice;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestMemoryMmap};

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
const TUNSETOFFLOAD: libc::c_ulong = 0x4004_54d0;
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

/// Where frames go and come from: a tap device, or (in tests) anything else.
pub trait Port: Send {
    /// One frame, header first, or WouldBlock when there is none.
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    /// Sends one frame, header first.
    fn send(&mut self, frame: &[u8]) -> io::Result<()>;
    /// Lets the port hand over frames with these offloads (TUN_F_* flags).
    fn set_offloads(&mut self, flags: u32) -> io::Result<()>;
}

/// A tap device's descriptor (non-blocking, opened with IFF_VNET_HDR and a 12-byte header).
pub struct Tap(pub OwnedFd);

impl Port for Tap {
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: read(2) into `buf`, which is `buf.len()` bytes long.
        let n = unsafe { libc::read(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: write(2) from `frame`; a tap takes a frame per write, whole or not at all.
        let n = unsafe { libc::write(self.0.as_raw_fd(), frame.as_ptr().cast(), frame.len()) };
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

pub struct Net {
    port: Box<dyn Port>,
    mac: [u8; 6],
    /// A frame read from the port that found no buffer yet; it goes first when one comes.
    pending: Option<Vec<u8>>,
    buf: Vec<u8>,
    sizes: [u16; 2],
}

impl Net {
    pub fn new(port: Box<dyn Port>, mac: [u8; 6]) -> Net {
        Net {
            port,
            mac,
            pending: None,
            buf: vec![0u8; MAX_FRAME],
            sizes: [QUEUE_SIZE, QUEUE_SIZE],
        }
    }

    /// Moves frames from the port into the guest's receive buffers, one frame per buffer chain,
    /// until the port has none or the guest no buffer. Returns whether a buffer was used.
    fn receive(&mut self, queue: &mut Queue, mem: &GuestMemoryMmap) -> bool {
        let mut used_any = false;
        loop {
            let frame = match self.pending.take() {
                Some(f) => f,
                None => match self.port.recv(&mut self.buf) {
                    Ok(0) => return used_any,
                    Ok(n) => self.buf[..n].to_vec(),
                    // Nothing more (WouldBlock), or a failing tap: either way, nothing to pass.
                    Err(_) => return used_any,
                },
            };
            let Some(chain) = queue.pop_descriptor_chain(mem) else {
                self.pending = Some(frame);
                return used_any;
            };
            let head = chain.head_index();
            let mut written = 0usize;
            for desc in chain {
                if !desc.is_write_only() || written == frame.len() {
                    continue;
                }
                let n = (desc.len() as usize).min(frame.len() - written);
                if mem
                    .write_slice(&frame[written..written + n], desc.addr())
                    .is_ok()
                {
                    written += n;
                }
            }
            // A frame longer than the buffers is cut short; the guest's driver drops it.
            if queue.add_used(mem, head, written as u32).is_err() {
                return used_any;
            }
            used_any = true;
        }
    }
}

impl VirtioDevice for Net {
    fn device_type(&self) -> u32 {
        1
    }

    fn features(&self) -> u64 {
        F_MAC | OFFLOADS | super::VIRTIO_RING_F_EVENT_IDX
    }

    fn activate(&mut self, features: u64) {
        // Refused (an old kernel), the tap hands over plain frames, which every driver takes.
        let _ = self.port.set_offloads(tap_offloads(features));
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
                    used |= self.receive(queue, mem);
                    // Notified again when buffers come: a frame may be waiting for one. If
                    // some came in between, they are filled now.
                    if !(queue.enable_notification(mem).unwrap_or(false) && self.pending.is_some())
                    {
                        return used;
                    }
                }
            }
            TX => {
                let port = &mut self.port;
                let mut used = false;
                // Without notifications while draining; on again, and drained again if the
                // driver added frames in between (what it added then did not notify).
                loop {
                    let _ = queue.disable_notification(mem);
                    // A frame the tap refuses (its queue full, the link down) is dropped, as a
                    // wire would drop it; TCP sends it again.
                    used |= drain_tx(queue, mem, &mut |frame: &[u8]| {
                        let _ = port.send(frame);
                    });
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
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};
    use virtio_bindings::bindings::virtio_ring::{VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
    use virtio_queue::desc::{split::Descriptor as SplitDescriptor, RawDescriptor};
    use virtio_queue::mock::MockSplitQueue;
    use vm_memory::GuestAddress;

    const MEM: usize = 1 << 20;
    const N: u32 = VRING_DESC_F_NEXT;
    const W: u32 = VRING_DESC_F_WRITE;

    fn mem() -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM)]).unwrap()
    }

    fn desc(addr: u64, len: u32, flags: u32, next: u16) -> RawDescriptor {
        RawDescriptor::from(SplitDescriptor::new(addr, len, flags as u16, next))
    }

    /// Frames waiting to come in, and the frames that went out.
    #[derive(Clone, Default)]
    struct Wire {
        incoming: Arc<Mutex<VecDeque<Vec<u8>>>>,
        sent: Arc<Mutex<Vec<Vec<u8>>>>,
        offloads: Arc<Mutex<Vec<u32>>>,
    }

    impl Port for Wire {
        fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let f = self
                .incoming
                .lock()
                .unwrap()
                .pop_front()
                .ok_or(io::ErrorKind::WouldBlock)?;
            buf[..f.len()].copy_from_slice(&f);
            Ok(f.len())
        }
        fn send(&mut self, frame: &[u8]) -> io::Result<()> {
            self.sent.lock().unwrap().push(frame.to_vec());
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
        // The third found no buffer: it waits, and nothing behind it overtakes it.
        assert_eq!(net.pending.as_deref(), Some(&b"third"[..]));
        wire.incoming.lock().unwrap().push_back(b"fourth".to_vec());
        assert!(!net.process_queue(RX, &mut q, &m));
        assert_eq!(net.pending.as_deref(), Some(&b"third"[..]));
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
        net.activate(net.features());
        net.activate(F_MAC | F_GUEST_TSO4);
        net.activate(F_MAC | F_GUEST_CSUM | F_GUEST_TSO6);
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
