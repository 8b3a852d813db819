//! `isola run --explain` at the VM level: what the VMM asks of KVM and what the guest asks of
//! the VMM, in words with the real values. The switch and where the lines go are
//! `isola_process::explain`'s (in the VMM, its report pipe; isola relays them to its stderr).
//! Here: the VM's exits as they come — the first `FIRST_EXITS` each on a line, then counted by
//! device and said when the machine ends — and the words for CPUID and register state.
//! Off, a vCPU exit costs one relaxed load more.

use crate::layout::*;
pub use isola_process::explain::{is_on, say};
use kvm_bindings::{kvm_regs, kvm_sregs, CpuId};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// Exits said one by one; the rest are only counted.
pub const FIRST_EXITS: u64 = 40;

/// A virtio device's kind, by its device ID.
pub fn virtio_kind(device_type: u32) -> &'static str {
    match device_type {
        1 => "network",
        2 => "block",
        3 => "console",
        26 => "filesystem",
        _ => "device",
    }
}

/// What is at an I/O port of this machine.
fn port_device(port: u16) -> &'static str {
    let com = |i: usize| (COM_PORTS[i]..COM_PORTS[i] + 8).contains(&port);
    if com(0) {
        "COM1 serial (the kernel console)"
    } else if com(1) || com(2) || com(3) {
        "COM2-4 (no device: reads 0xff)"
    } else if port == I8042_DATA || port == I8042_COMMAND {
        "i8042 controller"
    } else if port == BOOT_TIMER_PORT {
        "boot timer"
    } else {
        "no device (reads 0xff)"
    }
}

/// The virtio-mmio register at `offset` in a device's window (virtio 1.1, 4.2.2).
fn mmio_register(offset: u64) -> &'static str {
    match offset {
        0x000 => "MagicValue",
        0x004 => "Version",
        0x008 => "DeviceID",
        0x00c => "VendorID",
        0x010 => "DeviceFeatures",
        0x014 => "DeviceFeaturesSel",
        0x020 => "DriverFeatures",
        0x024 => "DriverFeaturesSel",
        0x030 => "QueueSel",
        0x034 => "QueueNumMax",
        0x038 => "QueueNum",
        0x044 => "QueueReady",
        0x050 => "QueueNotify",
        0x060 => "InterruptStatus",
        0x064 => "InterruptACK",
        0x070 => "Status",
        0x080..=0x0a4 => "a queue's ring address",
        0x0fc => "ConfigGeneration",
        o if o >= 0x100 => "device configuration",
        _ => "reserved",
    }
}

/// One exit from KVM_RUN to the VMM, as the vCPU saw it.
pub enum Exit<'a> {
    PortIn(u16, usize),
    PortOut(u16, &'a [u8]),
    MmioRead(u64, usize),
    MmioWrite(u64, &'a [u8]),
    /// KVM_EXIT_SHUTDOWN or KVM_EXIT_HLT: the vCPU cannot go on.
    Stopped(&'static str),
}

/// The exits of every vCPU of one VM.
pub struct ExitLog {
    started: Instant,
    /// The virtio devices in window order, by kind.
    virtio: Vec<&'static str>,
    seen: AtomicU64,
    counts: Mutex<BTreeMap<String, u64>>,
}

fn value(data: &[u8]) -> u64 {
    data.iter().rev().fold(0, |v, b| v << 8 | u64::from(*b))
}

impl ExitLog {
    pub fn new(started: Instant, virtio: Vec<&'static str>) -> ExitLog {
        ExitLog {
            started,
            virtio,
            seen: AtomicU64::new(0),
            counts: Mutex::default(),
        }
    }

    fn mmio_device(&self, addr: u64) -> (String, u64) {
        let Some(offset) = addr.checked_sub(VIRTIO_MMIO_BASE) else {
            return ("no device (reads 0xff)".into(), 0);
        };
        match self.virtio.get((offset / VIRTIO_MMIO_SIZE) as usize) {
            Some(kind) => (
                format!("virtio-mmio #{} ({kind})", offset / VIRTIO_MMIO_SIZE),
                offset % VIRTIO_MMIO_SIZE,
            ),
            None => ("no device (reads 0xff)".into(), 0),
        }
    }

    /// Notes `exit` when explaining (one relaxed load when not): said if among the first,
    /// counted always.
    #[inline]
    pub fn note(&self, exit: Exit) {
        if is_on() {
            self.record(exit);
        }
    }

    fn record(&self, exit: Exit) {
        let (kind, detail) = match exit {
            Exit::PortIn(port, len) => {
                let d = port_device(port);
                (
                    format!("port I/O in from {d}"),
                    format!("port I/O in, {len} byte(s) from {port:#x}, {d}"),
                )
            }
            Exit::PortOut(port, data) => {
                let d = port_device(port);
                (
                    format!("port I/O out to {d}"),
                    format!("port I/O out, {:#x} to {port:#x}, {d}", value(data)),
                )
            }
            Exit::MmioRead(addr, len) => {
                let (d, offset) = self.mmio_device(addr);
                (
                    format!("MMIO read of {d}"),
                    format!(
                        "MMIO read, {len} byte(s) at {addr:#x}, {d} register {}",
                        mmio_register(offset)
                    ),
                )
            }
            Exit::MmioWrite(addr, data) => {
                let (d, offset) = self.mmio_device(addr);
                (
                    format!("MMIO write to {d}"),
                    format!(
                        "MMIO write, {:#x} at {addr:#x}, {d} register {}",
                        value(data),
                        mmio_register(offset)
                    ),
                )
            }
            Exit::Stopped(why) => (why.to_string(), why.to_string()),
        };
        let n = self.seen.fetch_add(1, Ordering::Relaxed) + 1;
        if n <= FIRST_EXITS {
            let ms = self.started.elapsed().as_secs_f64() * 1000.0;
            say(|| format!("exit {n} at {ms:.1} ms: {detail}"));
            if n == FIRST_EXITS {
                say(|| "(further exits are counted, and said when the VM ends)".into());
            }
        }
        *crate::vcpus::lock(&self.counts).entry(kind).or_default() += 1;
    }

    /// Says the count of each kind of exit, most frequent first.
    pub fn say_counts(&self) {
        let counts = crate::vcpus::lock(&self.counts);
        let mut by_count: Vec<(&String, &u64)> = counts.iter().collect();
        by_count.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let total: u64 = counts.values().sum();
        say(|| {
            format!(
                "the VMM handled {total} exits; exits KVM handles inside the host kernel \
                 (interrupt controllers, timers, ioeventfd notifications, HLT) never reach it"
            )
        });
        for (kind, n) in by_count {
            say(|| format!("  {n:>6} × {kind}"));
        }
    }
}

/// The entries of `now` that differ from `kvm`'s (same leaf and subleaf), register by register.
pub fn cpuid_changes(kvm: &CpuId, now: &CpuId) -> Vec<String> {
    let mut out = Vec::new();
    for e in now.as_slice() {
        let Some(k) = kvm
            .as_slice()
            .iter()
            .find(|k| k.function == e.function && k.index == e.index)
        else {
            out.push(format!("leaf {:#x}.{} added", e.function, e.index));
            continue;
        };
        for (name, was, is) in [
            ("eax", k.eax, e.eax),
            ("ebx", k.ebx, e.ebx),
            ("ecx", k.ecx, e.ecx),
            ("edx", k.edx, e.edx),
        ] {
            if was != is {
                out.push(format!(
                    "leaf {:#x}.{} {name} {was:#010x} → {is:#010x}",
                    e.function, e.index
                ));
            }
        }
    }
    out
}

/// A vCPU's registers in words.
pub fn registers(regs: &kvm_regs, sregs: &kvm_sregs) -> String {
    format!(
        "rip {:#x}, rsp {:#x}, rsi {:#x}, rflags {:#x}; cr0 {:#x}, cr3 {:#x}, cr4 {:#x}, \
         efer {:#x}; cs selector {:#x} (long mode {})",
        regs.rip,
        regs.rsp,
        regs.rsi,
        regs.rflags,
        sregs.cr0,
        sregs.cr3,
        sregs.cr4,
        sregs.efer,
        sregs.cs.selector,
        if sregs.cs.l != 0 { "on" } else { "off" },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_and_registers_are_named_by_what_is_there() {
        assert_eq!(port_device(0x3fd), "COM1 serial (the kernel console)");
        assert_eq!(port_device(0x2f9), "COM2-4 (no device: reads 0xff)");
        assert_eq!(port_device(0x64), "i8042 controller");
        assert_eq!(mmio_register(0x050), "QueueNotify");
        assert_eq!(mmio_register(0x104), "device configuration");
        let log = ExitLog::new(Instant::now(), vec!["console", "block"]);
        assert_eq!(
            log.mmio_device(VIRTIO_MMIO_BASE + 0x1070),
            ("virtio-mmio #1 (block)".to_string(), 0x70)
        );
        assert_eq!(
            log.mmio_device(VIRTIO_MMIO_BASE + 0x2000).0,
            "no device (reads 0xff)"
        );
        assert_eq!(value(&[0x34, 0x12]), 0x1234);
    }
}
