//! A read-only virtio block device (device type 2): the image's root filesystem as a disk.
//! Requests are served by `serve_requests`, plain code over a queue, guest memory and a
//! `Disk`, so it is tested without KVM — including with chains a hostile guest could build.

use super::VirtioDevice;
use std::os::unix::fs::FileExt;
use virtio_queue::desc::split::Descriptor;
use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

const QUEUE_SIZE: u16 = 256;
/// VIRTIO_BLK_F_RO: the device is read-only; the driver never writes.
const VIRTIO_BLK_F_RO: u64 = 1 << 5;
pub const SECTOR: u64 = 512;

const T_IN: u32 = 0;
const T_GET_ID: u32 = 8;
const S_OK: u8 = 0;
const S_IOERR: u8 = 1;
const S_UNSUPP: u8 = 2;
/// The ID the guest reads with VIRTIO_BLK_T_GET_ID (at most 20 bytes).
const DISK_ID: &[u8] = b"isola-root";
/// Bytes moved per read from the disk file.
const CHUNK: usize = 128 << 10;

/// What the device reads from: the disk image file, or bytes in memory (tests).
pub trait Disk: Send {
    /// Size in bytes.
    fn size(&self) -> u64;
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()>;
}

impl Disk for std::fs::File {
    fn size(&self) -> u64 {
        self.metadata().map_or(0, |m| m.len())
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.read_exact_at(buf, offset)
    }
}

impl Disk for Vec<u8> {
    fn size(&self) -> u64 {
        self.as_slice().len() as u64
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| std::io::ErrorKind::InvalidInput)?;
        let src = start
            .checked_add(buf.len())
            .and_then(|end| self.get(start..end))
            .ok_or(std::io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

pub struct Block {
    disk: Box<dyn Disk>,
    /// Capacity in sectors; a partial last sector is not exposed.
    sectors: u64,
    sizes: [u16; 1],
}

impl Block {
    pub fn new(disk: Box<dyn Disk>) -> Block {
        let sectors = disk.size() / SECTOR;
        Block {
            disk,
            sectors,
            sizes: [QUEUE_SIZE],
        }
    }
}

/// Serves one request: `descs` are the chain's descriptors in order (header, data..., status).
/// Returns the status and how many bytes were written into the guest's buffers before it.
fn serve(descs: &[Descriptor], mem: &GuestMemoryMmap, disk: &dyn Disk, sectors: u64) -> (u8, u32) {
    let Some((header, rest)) = descs.split_first() else {
        return (S_IOERR, 0);
    };
    let data = &rest[..rest.len().saturating_sub(1)];
    if header.is_write_only() || header.len() < 16 {
        return (S_IOERR, 0);
    }
    let mut raw = [0u8; 16];
    if mem.read_slice(&mut raw, header.addr()).is_err() {
        return (S_IOERR, 0);
    }
    let (Ok(kind), Ok(sector)) = (
        <[u8; 4]>::try_from(&raw[..4]),
        <[u8; 8]>::try_from(&raw[8..]),
    ) else {
        return (S_IOERR, 0);
    };
    match u32::from_le_bytes(kind) {
        T_IN => read_sectors(data, mem, disk, u64::from_le_bytes(sector), sectors),
        T_GET_ID => {
            let Some(d) = data.first().filter(|d| d.is_write_only()) else {
                return (S_IOERR, 0);
            };
            let n = DISK_ID.len().min(d.len() as usize);
            match mem.write_slice(&DISK_ID[..n], d.addr()) {
                Ok(()) => (S_OK, n as u32),
                Err(_) => (S_IOERR, 0),
            }
        }
        // Writes (1), flushes (4), discards...: the disk is read-only and says so in its
        // features; anything else is unsupported.
        _ => (S_UNSUPP, 0),
    }
}

fn read_sectors(
    data: &[Descriptor],
    mem: &GuestMemoryMmap,
    disk: &dyn Disk,
    sector: u64,
    sectors: u64,
) -> (u8, u32) {
    let total: u64 = data.iter().map(|d| u64::from(d.len())).sum();
    let end = sector
        .checked_mul(SECTOR)
        .and_then(|start| start.checked_add(total).map(|end| (start, end)));
    let Some((mut offset, end)) = end else {
        return (S_IOERR, 0);
    };
    if end > sectors * SECTOR || data.iter().any(|d| !d.is_write_only()) {
        return (S_IOERR, 0);
    }
    let mut buf = vec![0u8; CHUNK.min(total as usize)];
    let mut written = 0u32;
    for d in data {
        let mut done = 0usize;
        let len = d.len() as usize;
        if !GuestMemoryBackend::check_range(mem, d.addr(), len) {
            return (S_IOERR, written);
        }
        while done < len {
            let n = (len - done).min(CHUNK);
            let chunk = &mut buf[..n];
            let addr = GuestAddress(d.addr().0 + done as u64);
            if disk.read_at(chunk, offset).is_err() || mem.write_slice(chunk, addr).is_err() {
                return (S_IOERR, written);
            }
            done += n;
            offset += n as u64;
            written += n as u32;
        }
    }
    (S_OK, written)
}

/// Serves every available request. Malformed chains (no status descriptor, addresses outside
/// guest memory, loops, zero lengths, reads past the end of the disk) get an error status
/// where one can be written and are returned as used — never trusted, never a panic.
/// Returns whether anything was used.
pub fn serve_requests(
    queue: &mut Queue,
    mem: &GuestMemoryMmap,
    disk: &dyn Disk,
    sectors: u64,
) -> bool {
    let mut used_any = false;
    while let Some(chain) = queue.pop_descriptor_chain(mem) {
        let head = chain.head_index();
        // The chain iterator stops after queue-size descriptors, so a loop ends here.
        let descs: Vec<Descriptor> = chain.collect();
        let (status, mut len) = serve(&descs, mem, disk, sectors);
        let status_desc = descs
            .last()
            .filter(|d| descs.len() >= 2 && d.is_write_only() && d.len() >= 1);
        if let Some(s) = status_desc {
            if mem.write_obj(status, s.addr()).is_ok() {
                len += 1;
            }
        }
        if queue.add_used(mem, head, len).is_err() {
            break;
        }
        used_any = true;
    }
    used_any
}

impl VirtioDevice for Block {
    fn device_type(&self) -> u32 {
        2
    }

    fn features(&self) -> u64 {
        VIRTIO_BLK_F_RO
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &self.sizes
    }

    /// The configuration space starts with the capacity in sectors (u64); the rest is zero.
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        let cap = self.sectors.to_le_bytes();
        for (i, b) in data.iter_mut().enumerate() {
            *b = offset
                .checked_add(i as u64)
                .and_then(|o| cap.get(o as usize))
                .copied()
                .unwrap_or(0);
        }
    }

    fn process_queue(&mut self, index: usize, queue: &mut Queue, mem: &GuestMemoryMmap) -> bool {
        index == 0 && serve_requests(queue, mem, &*self.disk, self.sectors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::virtio::testing::{desc, mem, MEM, N, W};
    use virtio_queue::desc::RawDescriptor;
    use virtio_queue::mock::MockSplitQueue;

    const HDR: u64 = 0x10_0000 - 0x1000;

    fn disk() -> Vec<u8> {
        (0..64 * 1024u32).map(|i| (i % 251) as u8).collect()
    }

    fn header(mem: &GuestMemoryMmap, kind: u32, sector: u64) {
        mem.write_obj(kind.to_le(), GuestAddress(HDR)).unwrap();
        mem.write_obj(sector.to_le(), GuestAddress(HDR + 8))
            .unwrap();
    }

    /// Runs the device over `descs` (one or more chains); returns the used ring's first
    /// (id, len) and whether an interrupt was due.
    fn run(mem: &GuestMemoryMmap, descs: &[RawDescriptor]) -> (Option<(u32, u32)>, bool) {
        let vq = MockSplitQueue::new(mem, 16);
        vq.add_desc_chains(descs, 0).unwrap();
        let mut q: Queue = vq.create_queue().unwrap();
        let d = disk();
        let sectors = d.size() / SECTOR;
        let used = serve_requests(&mut q, mem, &d, sectors);
        let idx = vq.used().idx().load();
        let first = (idx > 0).then(|| {
            let e = vq.used().ring().ref_at(0).unwrap().load();
            (e.id(), e.len())
        });
        (first, used)
    }

    #[test]
    fn reads_sectors_into_the_guests_buffers() {
        let m = mem();
        header(&m, T_IN, 3);
        let (used, irq) = run(
            &m,
            &[
                desc(HDR, 16, N, 1),
                desc(0x8_0000, 512, N | W, 2),
                desc(0x9_0000, 1024, N | W, 3),
                desc(HDR + 0x100, 1, W, 0),
            ],
        );
        assert!(irq);
        assert_eq!(used, Some((0, 1537)));
        let d = disk();
        let mut got = vec![0u8; 512];
        m.read_slice(&mut got, GuestAddress(0x8_0000)).unwrap();
        assert_eq!(got, d[3 * 512..4 * 512]);
        let mut got = vec![0u8; 1024];
        m.read_slice(&mut got, GuestAddress(0x9_0000)).unwrap();
        assert_eq!(got, d[4 * 512..6 * 512]);
        assert_eq!(m.read_obj::<u8>(GuestAddress(HDR + 0x100)).unwrap(), S_OK);
    }

    #[test]
    fn answers_its_id() {
        let m = mem();
        header(&m, T_GET_ID, 0);
        run(
            &m,
            &[
                desc(HDR, 16, N, 1),
                desc(0x8_0000, 20, N | W, 2),
                desc(HDR + 0x100, 1, W, 0),
            ],
        );
        let mut got = vec![0u8; DISK_ID.len()];
        m.read_slice(&mut got, GuestAddress(0x8_0000)).unwrap();
        assert_eq!(got, DISK_ID);
    }

    fn status_of(m: &GuestMemoryMmap) -> u8 {
        m.read_obj::<u8>(GuestAddress(HDR + 0x100)).unwrap()
    }

    #[test]
    fn writes_are_refused_and_nothing_changes() {
        let m = mem();
        header(&m, 1, 0);
        m.write_slice(&[7u8; 512], GuestAddress(0x8_0000)).unwrap();
        run(
            &m,
            &[
                desc(HDR, 16, N, 1),
                desc(0x8_0000, 512, N, 2),
                desc(HDR + 0x100, 1, W, 0),
            ],
        );
        assert_eq!(status_of(&m), S_UNSUPP);
    }

    #[test]
    fn a_read_past_the_end_of_the_disk_is_an_error() {
        let m = mem();
        let last = 64 * 1024 / 512 - 1;
        for sector in [last, u64::MAX / 512, u64::MAX] {
            header(&m, T_IN, sector);
            m.write_obj(0xffu8, GuestAddress(HDR + 0x100)).unwrap();
            run(
                &m,
                &[
                    desc(HDR, 16, N, 1),
                    desc(0x8_0000, 1024, N | W, 2),
                    desc(HDR + 0x100, 1, W, 0),
                ],
            );
            assert_eq!(status_of(&m), S_IOERR, "sector {sector}");
        }
    }

    #[test]
    fn buffers_outside_guest_memory_are_an_error_not_a_panic() {
        let m = mem();
        header(&m, T_IN, 0);
        for (addr, len) in [
            (MEM as u64 - 100, 512u32),
            (MEM as u64 * 4, 512),
            (u64::MAX - 10, 512),
            (0x8_0000, 0x7fff_ffff),
        ] {
            m.write_obj(0xffu8, GuestAddress(HDR + 0x100)).unwrap();
            let (used, _) = run(
                &m,
                &[
                    desc(HDR, 16, N, 1),
                    desc(addr, len, N | W, 2),
                    desc(HDR + 0x100, 1, W, 0),
                ],
            );
            assert!(
                used.is_some(),
                "{addr:#x}+{len}: the chain must be returned"
            );
            assert_eq!(status_of(&m), S_IOERR, "{addr:#x}+{len}");
        }
        // The header itself outside guest memory.
        let (used, _) = run(
            &m,
            &[desc(u64::MAX - 4, 16, N, 1), desc(HDR + 0x100, 1, W, 0)],
        );
        assert_eq!(used, Some((0, 1)));
        assert_eq!(status_of(&m), S_IOERR);
    }

    #[test]
    fn malformed_chains_are_returned_with_an_error() {
        let m = mem();
        header(&m, T_IN, 0);
        let cases: &[&[RawDescriptor]] = &[
            // A loop: 0 -> 1 -> 0 -> ...
            &[desc(HDR, 16, N, 1), desc(0x8_0000, 512, N | W, 0)],
            // Zero-length header, data and status.
            &[
                desc(HDR, 0, N, 1),
                desc(0x8_0000, 0, N | W, 2),
                desc(HDR + 0x100, 0, W, 0),
            ],
            // A lone header: nowhere to put a status.
            &[desc(HDR, 16, 0, 0)],
            // A write-only header.
            &[desc(HDR, 16, N | W, 1), desc(HDR + 0x100, 1, W, 0)],
            // A read-only status.
            &[desc(HDR, 16, N, 1), desc(HDR + 0x100, 1, 0, 0)],
            // A next index past the end of the table.
            &[desc(HDR, 16, N, 999)],
            // Data the device would have to write into a read-only buffer.
            &[
                desc(HDR, 16, N, 1),
                desc(0x8_0000, 512, N, 2),
                desc(HDR + 0x100, 1, W, 0),
            ],
        ];
        for (i, chain) in cases.iter().enumerate() {
            let (used, irq) = run(&m, chain);
            assert!(irq, "case {i}");
            assert_eq!(used.map(|u| u.0), Some(0), "case {i}");
        }
    }

    #[test]
    fn config_space_holds_the_capacity() {
        let b = Block::new(Box::new(vec![0u8; 10 * 512 + 100]));
        let mut cap = [0u8; 8];
        b.read_config(0, &mut cap);
        assert_eq!(u64::from_le_bytes(cap), 10);
        let mut far = [0xaau8; 4];
        b.read_config(u64::MAX - 1, &mut far);
        assert_eq!(far, [0; 4]);
    }
}
