//! The virtio-fs device (device ID 26): host directories for the guest, served by a vhost-user
//! back end — virtiofsd, a process of its own that the front end starts and connects. This
//! VMM only speaks the control protocol (rust-vmm's `vhost` crate): before the jail, the
//! exchanges that need an answer (owner, features); at activation, on the vCPU that wrote
//! DRIVER_OK, the rest — accepted features, the guest memory (its memfd), and per queue its
//! size, ring addresses, start index, interrupt (the transport's irqfd) and kick (the KVM
//! ioeventfd of its QueueNotify) — each one `sendmsg`, no reply asked for (no REPLY_ACK), as
//! Firecracker does. From then on the guest and virtiofsd trade requests through the rings in
//! shared memory without this process: KVM signals the kicks to virtiofsd, virtiofsd the
//! interrupts to KVM.

use super::{Activation, VirtioDevice, VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX};
use std::os::unix::net::UnixStream;
use vhost::vhost_user::message::{VhostUserProtocolFeatures, VhostUserVirtioFeatures};
use vhost::vhost_user::{Frontend, VhostUserFrontend};
use vhost::{VhostBackend, VhostUserMemoryRegionInfo, VringConfigData};
use virtio_queue::{Queue, QueueT};
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;

/// Queue 0 carries FUSE's high-priority requests (FORGET, INTERRUPT), queue 1 the rest:
/// virtiofsd of QEMU 7.2 serves one request queue.
pub const QUEUES: usize = 2;
/// 1024 descriptors: a FUSE request of up to 1 MiB (the guest takes 4 fewer pages than this).
const QUEUE_SIZE: u16 = 1024;
/// VIRTIO_RING_F_INDIRECT_DESC.
const F_INDIRECT_DESC: u64 = 1 << 28;
/// The device's features the guest may have, when the back end has them (none of virtio-fs's
/// own: Linux knows none; never the vhost-user protocol's bits 26 and 30).
const GUEST_FEATURES: u64 = VIRTIO_F_VERSION_1 | VIRTIO_RING_F_EVENT_IDX | F_INDIRECT_DESC;
/// The configuration's tag field: UTF-8, NUL padded.
pub const TAG_LEN: usize = 36;

pub struct Fs {
    frontend: Frontend,
    /// The KVM ioeventfds of the two queues' notifications (datamatch: the queue's index).
    kicks: [EventFd; QUEUES],
    /// tag[36], then num_request_queues (le32).
    config: [u8; TAG_LEN + 4],
    /// What the back end can do, as `GET_FEATURES` said.
    backend_features: u64,
    activated: bool,
}

/// Errors of the control protocol, named for the message that failed.
fn failed<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> String + '_ {
    move |e| format!("virtio-fs back end (virtiofsd): {what}: {e}")
}

impl Fs {
    /// Takes the connection to the back end and does the exchanges that need an answer; the
    /// guest will find the device by `tag`. Runs before the jail.
    pub fn connect(socket: UnixStream, tag: &str, kicks: [EventFd; QUEUES]) -> Result<Fs, String> {
        if tag.is_empty() || tag.len() > TAG_LEN {
            return Err(format!("virtio-fs tag {tag:?}: 1 to {TAG_LEN} bytes"));
        }
        let mut frontend = Frontend::from_stream(socket, QUEUES as u64);
        frontend.set_owner().map_err(failed("SET_OWNER"))?;
        let backend_features = frontend.get_features().map_err(failed("GET_FEATURES"))?;
        if backend_features & VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits() != 0 {
            // None taken (above all not REPLY_ACK: after the jail nothing waits for a reply).
            frontend
                .get_protocol_features()
                .map_err(failed("GET_PROTOCOL_FEATURES"))?;
            frontend
                .set_protocol_features(VhostUserProtocolFeatures::empty())
                .map_err(failed("SET_PROTOCOL_FEATURES"))?;
        }
        let mut config = [0u8; TAG_LEN + 4];
        config[..tag.len()].copy_from_slice(tag.as_bytes());
        config[TAG_LEN..].copy_from_slice(&1u32.to_le_bytes());
        Ok(Fs {
            frontend,
            kicks,
            config,
            backend_features,
            activated: false,
        })
    }

    /// The rest of the protocol, once the driver is ready: see the module's head.
    fn start_backend(
        &mut self,
        features: u64,
        queues: &[Queue],
        mem: &GuestMemoryMmap,
        irq: &EventFd,
    ) -> Result<(), vhost::Error> {
        let protocol = self.backend_features & VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits();
        self.frontend.set_features(features | protocol)?;
        let regions: Vec<VhostUserMemoryRegionInfo> = mem
            .iter()
            .map(VhostUserMemoryRegionInfo::from_guest_region)
            .collect::<Result<_, _>>()?;
        self.frontend.set_mem_table(&regions)?;
        let host = |a: GuestAddress| -> Result<u64, vhost::Error> {
            mem.get_host_address(a)
                .map(|p| p as u64)
                .map_err(|_| vhost::Error::InvalidGuestMemory)
        };
        for (i, q) in queues.iter().enumerate() {
            self.frontend.set_vring_num(i, q.size())?;
            let addresses = VringConfigData {
                queue_max_size: q.max_size(),
                queue_size: q.size(),
                flags: 0,
                desc_table_addr: host(GuestAddress(q.desc_table()))?,
                used_ring_addr: host(GuestAddress(q.used_ring()))?,
                avail_ring_addr: host(GuestAddress(q.avail_ring()))?,
                log_addr: None,
            };
            self.frontend.set_vring_addr(i, &addresses)?;
            self.frontend.set_vring_base(i, q.next_avail())?;
            self.frontend.set_vring_call(i, irq)?;
            self.frontend.set_vring_kick(i, &self.kicks[i])?;
        }
        if protocol != 0 {
            // Acked PROTOCOL_FEATURES, the rings start disabled.
            for i in 0..queues.len() {
                self.frontend.set_vring_enable(i, true)?;
            }
        }
        Ok(())
    }
}

impl VirtioDevice for Fs {
    fn device_type(&self) -> u32 {
        26
    }

    fn features(&self) -> u64 {
        self.backend_features & GUEST_FEATURES
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE; QUEUES]
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        let start = offset as usize;
        if let Some(src) = self.config.get(start..start.saturating_add(data.len())) {
            data.copy_from_slice(src);
        }
    }

    /// A notification KVM did not take (or the sweep at DRIVER_OK): passed on to the back end.
    fn process_queue(&mut self, index: usize, _queue: &mut Queue, _mem: &GuestMemoryMmap) -> bool {
        if let Some(k) = self.kicks.get(index) {
            let _ = k.write(1);
        }
        false
    }

    fn activate(&mut self, features: u64, a: Activation) -> Result<(), String> {
        if self.activated {
            // virtiofsd cannot take a queue again without being stopped first (GET_VRING_BASE,
            // which needs a reply): a driver reset ends the device.
            return Err(
                "virtio-fs: the driver reset the device; it cannot be started again".into(),
            );
        }
        self.activated = true;
        self.start_backend(features, a.queues, a.mem, a.irq)
            .map_err(failed("starting the queues"))
    }

    /// The back end signals the irqfd itself: the interrupt is always for used buffers.
    fn interrupts_from_backend(&self) -> bool {
        true
    }
}
