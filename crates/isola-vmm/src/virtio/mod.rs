//! Virtio devices: the MMIO transport (`mmio.rs`, the registers the guest driver programs) is
//! separate from each device's logic (`console.rs`, `block.rs`, `net.rs`), which only sees queues and guest memory —
//! so it can be tested without KVM.

pub mod block;
pub mod console;
pub mod fs;
pub mod mmio;
pub mod net;

use virtio_queue::Queue;
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

/// VIRTIO_F_VERSION_1: the modern (non-legacy) interface, the only one isola offers.
pub const VIRTIO_F_VERSION_1: u64 = 1 << 32;
/// VIRTIO_RING_F_EVENT_IDX: each side tells the other from which index on it wants to be
/// notified, so a busy queue runs without a notification or interrupt per buffer. A device
/// that offers it keeps the rings' event indexes up to date (see `net.rs`).
pub const VIRTIO_RING_F_EVENT_IDX: u64 = 1 << 29;

/// What a virtio device is, to its transport.
pub trait VirtioDevice: Send {
    /// Virtio device ID (3 = console, 2 = block, ...).
    fn device_type(&self) -> u32;
    /// Feature bits offered to the driver.
    fn features(&self) -> u64;
    /// Maximum size of each queue; the length is the number of queues.
    fn queue_max_sizes(&self) -> &[u16];
    /// Reads from the device-specific configuration space.
    fn read_config(&self, offset: u64, data: &mut [u8]);
    /// The driver notified queue `index`; returns true if the guest should be interrupted.
    fn process_queue(&mut self, index: usize, queue: &mut Queue, mem: &GuestMemoryMmap) -> bool;
    /// The driver is ready, having accepted `features` (of those offered); a device whose
    /// queues run elsewhere (a vhost-user back end) hands them over. An error fails the device
    /// (DEVICE_NEEDS_RESET).
    fn activate(&mut self, _features: u64, _queues: Activation) -> Result<(), String> {
        Ok(())
    }
    /// Whether something other than the transport raises its interrupt (a vhost-user back end
    /// writing the irqfd): the transport then reports every interrupt as one for used buffers.
    fn interrupts_from_backend(&self) -> bool {
        false
    }
}

/// What a device gets at activation: its queues as the driver set them up, guest memory, and
/// the transport's interrupt.
pub struct Activation<'a> {
    pub queues: &'a [Queue],
    pub mem: &'a GuestMemoryMmap,
    pub irq: &'a EventFd,
}

/// What the devices' tests build their queues and guest memory from.
#[cfg(test)]
pub(crate) mod testing {
    use virtio_bindings::bindings::virtio_ring::{VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
    use virtio_queue::desc::{split::Descriptor as SplitDescriptor, RawDescriptor};
    use vm_memory::{GuestAddress, GuestMemoryMmap};

    /// The tests' guest memory: 1 MiB at address 0.
    pub const MEM: usize = 1 << 20;
    /// Descriptor flags: another follows; the device writes this one.
    pub const N: u32 = VRING_DESC_F_NEXT;
    pub const W: u32 = VRING_DESC_F_WRITE;

    pub fn mem() -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM)]).unwrap()
    }

    pub fn desc(addr: u64, len: u32, flags: u32, next: u16) -> RawDescriptor {
        RawDescriptor::from(SplitDescriptor::new(addr, len, flags as u16, next))
    }
}
