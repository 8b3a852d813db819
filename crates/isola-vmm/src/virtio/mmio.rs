//! The virtio-mmio transport (virtio spec 1.1, section 4.2.2), version 2: the register window
//! the guest's virtio_mmio driver finds through `virtio_mmio.device=4K@ADDR:IRQ` on the kernel
//! command line. Register accesses arrive as KVM MMIO exits; queue notifications go to the
//! device, and its "used buffers" interrupt goes back through an irqfd.

use super::{Activation, VirtioDevice, VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX};
use virtio_queue::{Queue, QueueT};
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

const MAGIC: u32 = 0x7472_6976; // "virt"
const VERSION: u32 = 2;
const VENDOR: u32 = 0x4c4f_5349; // "ISOL"
const STATUS_DRIVER_OK: u32 = 4;
const STATUS_DEVICE_NEEDS_RESET: u32 = 0x40;
const STATUS_FAILED: u32 = 0x80;
const INT_USED_RING: u32 = 1;
/// The QueueNotify register: the driver writes a queue's index here to notify it.
pub const QUEUE_NOTIFY: u64 = 0x050;

pub struct MmioTransport {
    device: Box<dyn VirtioDevice>,
    queues: Vec<Queue>,
    queue_sel: u32,
    device_features_sel: u32,
    driver_features_sel: u32,
    driver_features: u64,
    status: u32,
    interrupt_status: u32,
    irq: EventFd,
}

fn put(data: &mut [u8], v: u32) {
    let b = v.to_le_bytes();
    let n = data.len().min(4);
    data[..n].copy_from_slice(&b[..n]);
}

fn get(data: &[u8]) -> u32 {
    let mut b = [0u8; 4];
    let n = data.len().min(4);
    b[..n].copy_from_slice(&data[..n]);
    u32::from_le_bytes(b)
}

impl MmioTransport {
    pub fn new(device: Box<dyn VirtioDevice>, irq: EventFd) -> MmioTransport {
        let queues = device
            .queue_max_sizes()
            .iter()
            .map(|s| Queue::new(*s).expect("queue sizes are powers of two"))
            .collect();
        MmioTransport {
            device,
            queues,
            queue_sel: 0,
            device_features_sel: 0,
            driver_features_sel: 0,
            driver_features: 0,
            status: 0,
            interrupt_status: 0,
            irq,
        }
    }

    fn queue(&mut self) -> Option<&mut Queue> {
        self.queues.get_mut(self.queue_sel as usize)
    }

    fn features(&self) -> u64 {
        self.device.features() | VIRTIO_F_VERSION_1
    }

    pub fn read(&mut self, offset: u64, data: &mut [u8]) {
        if offset >= 0x100 {
            self.device.read_config(offset - 0x100, data);
            return;
        }
        let v = match offset {
            0x000 => MAGIC,
            0x004 => VERSION,
            0x008 => self.device.device_type(),
            0x00c => VENDOR,
            0x010 => {
                let f = self.features();
                if self.device_features_sel == 0 {
                    f as u32
                } else if self.device_features_sel == 1 {
                    (f >> 32) as u32
                } else {
                    0
                }
            }
            0x034 => self.queue().map_or(0, |q| q.max_size() as u32),
            0x044 => self.queue().map_or(0, |q| q.ready() as u32),
            // A back end's interrupts bypass `interrupt_status`: each is for used buffers.
            0x060 if self.device.interrupts_from_backend() => INT_USED_RING,
            0x060 => self.interrupt_status,
            0x070 => self.status,
            0x0fc => 0, // config generation: the configuration never changes
            _ => 0,
        };
        put(data, v);
    }

    /// Handles a register write; `mem` is needed when a queue is notified.
    pub fn write(&mut self, offset: u64, data: &[u8], mem: &GuestMemoryMmap) {
        if offset >= 0x100 {
            return; // no writable configuration
        }
        let v = get(data);
        let set_half = |old: u64, high: bool, v: u32| {
            if high {
                (old & 0xffff_ffff) | ((v as u64) << 32)
            } else {
                (old & !0xffff_ffff) | v as u64
            }
        };
        match offset {
            0x014 => self.device_features_sel = v,
            0x020 if self.driver_features_sel < 2 => {
                let high = self.driver_features_sel == 1;
                // The driver may only accept what was offered.
                self.driver_features = set_half(self.driver_features, high, v) & self.features();
            }
            0x024 => self.driver_features_sel = v,
            0x030 => self.queue_sel = v,
            0x038 => {
                if let Some(q) = self.queue() {
                    q.set_size(v as u16);
                }
            }
            0x044 => {
                if let Some(q) = self.queue() {
                    q.set_ready(v == 1);
                }
            }
            QUEUE_NOTIFY => self.notify(v as usize, mem),
            0x064 => self.interrupt_status &= !v,
            0x070 => {
                if v == 0 {
                    self.reset();
                } else {
                    let was_ok = self.status & STATUS_DRIVER_OK != 0;
                    self.status = v;
                    if !was_ok && v & STATUS_DRIVER_OK != 0 {
                        let activation = Activation {
                            queues: &self.queues,
                            mem,
                            irq: &self.irq,
                        };
                        if self
                            .device
                            .activate(self.driver_features, activation)
                            .is_err()
                        {
                            self.status |= STATUS_DEVICE_NEEDS_RESET;
                            return;
                        }
                        let event_idx = self.driver_features & VIRTIO_RING_F_EVENT_IDX != 0;
                        self.queues
                            .iter_mut()
                            .for_each(|q| q.set_event_idx(event_idx));
                        // Buffers the driver offered before it was ready may be waiting for
                        // input the host already has.
                        (0..self.queues.len()).for_each(|i| self.notify(i, mem));
                    }
                }
            }
            0x080 => self
                .queue()
                .into_iter()
                .for_each(|q| q.set_desc_table_address(Some(v), None)),
            0x084 => self
                .queue()
                .into_iter()
                .for_each(|q| q.set_desc_table_address(None, Some(v))),
            0x090 => self
                .queue()
                .into_iter()
                .for_each(|q| q.set_avail_ring_address(Some(v), None)),
            0x094 => self
                .queue()
                .into_iter()
                .for_each(|q| q.set_avail_ring_address(None, Some(v))),
            0x0a0 => self
                .queue()
                .into_iter()
                .for_each(|q| q.set_used_ring_address(Some(v), None)),
            0x0a4 => self
                .queue()
                .into_iter()
                .for_each(|q| q.set_used_ring_address(None, Some(v))),
            _ => {}
        }
    }

    fn reset(&mut self) {
        self.status = 0;
        self.interrupt_status = 0;
        self.driver_features = 0;
        self.queue_sel = 0;
        self.queues.iter_mut().for_each(|q| q.reset());
    }

    /// Runs the device on queue `index`: the guest notified it, or the host has input for it.
    /// Nothing happens until the driver is ready and the queue lies inside guest memory.
    pub fn notify(&mut self, index: usize, mem: &GuestMemoryMmap) {
        if self.status & STATUS_DRIVER_OK == 0 || self.status & STATUS_FAILED != 0 {
            return;
        }
        let Some(queue) = self.queues.get_mut(index) else {
            return;
        };
        if !queue.ready() || !queue.is_valid(mem) {
            return; // a queue placed outside guest memory is ignored, never trusted
        }
        let used = self.device.process_queue(index, queue, mem);
        // With VIRTIO_RING_F_EVENT_IDX the driver says when it wants an interrupt (its used
        // event index); without, every used buffer gets one, as before.
        let wanted = self.driver_features & VIRTIO_RING_F_EVENT_IDX == 0
            || queue.needs_notification(mem).unwrap_or(true);
        if used && wanted {
            self.interrupt_status |= INT_USED_RING;
            let _ = self.irq.write(1);
        }
    }
}
