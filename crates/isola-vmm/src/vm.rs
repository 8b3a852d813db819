//! One microVM, start to end: KVM VM with an in-kernel interrupt controller and PIT, guest
//! memory, the kernel and initramfs loaded, legacy devices on I/O ports, virtio devices on
//! MMIO (the channel console, the root disk), one vCPU run on the calling thread until the
//! guest resets the machine, triple-faults, or the time limit passes — and beside it a thread
//! forwarding the host's stdin and signals to the guest.

use crate::boot::load_linux;
use crate::cpu;
use crate::devices::i8042::I8042;
use crate::devices::serial::{Sink, Uart};
use crate::devices::EventFdTrigger;
use crate::host_input;
use crate::layout::*;
use crate::virtio::block::Block;
use crate::virtio::console::{Console, Input};
use crate::virtio::mmio::MmioTransport;
use kvm_bindings::{
    kvm_pit_config, kvm_userspace_memory_region, KVM_MAX_CPUID_ENTRIES, KVM_PIT_SPEAKER_DUMMY,
};
use kvm_ioctls::{Kvm, VcpuExit};
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;

/// What to boot and where its output goes.
pub struct VmConfig {
    pub kernel: PathBuf,
    pub initrd: Option<Vec<u8>>,
    /// The kernel command line; isola appends the virtio-mmio device declarations.
    pub cmdline: String,
    pub mem_mib: u64,
    /// Where COM1 (the kernel console) goes.
    pub console: Sink,
    /// Receives what the guest sends on the host channel (a virtio console).
    pub channel: crate::virtio::console::ByteSink,
    /// The root filesystem image, served read-only as /dev/vda.
    pub root_disk: Option<std::fs::File>,
    /// Forwarded to the guest as stdin frames until its end of file.
    pub stdin: Option<RawFd>,
    /// Signals forwarded to the guest while the VM runs (blocked in isola for good).
    pub forward_signals: Vec<i32>,
    pub timeout: Option<Duration>,
}

/// How the VM ended.
#[derive(Debug, PartialEq, Eq)]
pub enum VmExit {
    /// The guest reset the machine (its normal way out: `reboot`, or a panic with panic=-1).
    Reset,
    /// The guest triple-faulted.
    Shutdown,
    /// The time limit passed; the VM was stopped.
    Timeout,
}

/// What happened, with the boot timer's marks (phase byte, time since VMM start).
pub struct VmOutcome {
    pub exit: VmExit,
    pub marks: Vec<(u8, Duration)>,
    pub started: Instant,
}

static TIMED_OUT: AtomicBool = AtomicBool::new(false);

extern "C" fn on_alarm(_: libc::c_int) {
    TIMED_OUT.store(true, Ordering::SeqCst);
}

/// Arms SIGALRM to interrupt KVM_RUN after `t` (the handler only sets a flag).
fn arm_timeout(t: Duration) {
    TIMED_OUT.store(false, Ordering::SeqCst);
    // SAFETY: sigaction with a handler that only touches an atomic; no SA_RESTART, so KVM_RUN
    // returns EINTR when the alarm fires.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_alarm as *const () as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGALRM, &sa, std::ptr::null_mut());
        libc::alarm(t.as_secs().max(1) as libc::c_uint);
    }
}

pub fn run(cfg: VmConfig) -> Result<VmOutcome, String> {
    let started = Instant::now();
    let mem_size = cfg.mem_mib << 20;
    if mem_size < (16 << 20) {
        return Err(format!(
            "guest memory {} MiB is too small to boot (minimum 16 MiB)",
            cfg.mem_mib
        ));
    }
    let kvm = Kvm::new().map_err(|e| format!("/dev/kvm: {e}"))?;
    let mem: GuestMemoryMmap =
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), mem_size as usize)])
            .map_err(|e| format!("guest memory ({} MiB): {e}", cfg.mem_mib))?;
    let vm = kvm.create_vm().map_err(|e| format!("KVM_CREATE_VM: {e}"))?;
    vm.set_tss_address(0xfffb_d000)
        .map_err(|e| format!("KVM_SET_TSS_ADDR: {e}"))?;
    vm.create_irq_chip()
        .map_err(|e| format!("KVM_CREATE_IRQCHIP: {e}"))?;
    let pit = kvm_pit_config {
        flags: KVM_PIT_SPEAKER_DUMMY,
        ..Default::default()
    };
    vm.create_pit2(pit)
        .map_err(|e| format!("KVM_CREATE_PIT2: {e}"))?;
    let host_addr = mem
        .get_host_address(GuestAddress(0))
        .map_err(|e| format!("guest memory: {e}"))?;
    let region = kvm_userspace_memory_region {
        slot: 0,
        guest_phys_addr: 0,
        memory_size: mem_size,
        userspace_addr: host_addr as u64,
        flags: 0,
    };
    // SAFETY: the region is `mem`'s one mapping of `mem_size` bytes; `mem` is declared before
    // `vm`, so it outlives the VM and every vCPU run.
    unsafe { vm.set_user_memory_region(region) }
        .map_err(|e| format!("KVM_SET_USER_MEMORY_REGION: {e}"))?;

    // Virtio devices: the channel console, then the root disk; device i has its register
    // window at VIRTIO_MMIO_BASE + i * 4 KiB and IRQ VIRTIO_FIRST_IRQ + i.
    let input: Input = Default::default();
    let mut devices: Vec<Box<dyn crate::virtio::VirtioDevice>> =
        vec![Box::new(Console::new(cfg.channel, input.clone()))];
    if let Some(disk) = cfg.root_disk {
        devices.push(Box::new(Block::new(Box::new(disk))));
    }
    let mut cmdline = cfg.cmdline.clone();
    let mut transports = Vec::new();
    for (i, device) in devices.into_iter().enumerate() {
        let irq = EventFd::new(libc::EFD_NONBLOCK).map_err(|e| format!("eventfd: {e}"))?;
        let gsi = VIRTIO_FIRST_IRQ + i as u32;
        vm.register_irqfd(&irq, gsi)
            .map_err(|e| format!("KVM_IRQFD: {e}"))?;
        let base = VIRTIO_MMIO_BASE + i as u64 * VIRTIO_MMIO_SIZE;
        cmdline.push_str(&format!(" virtio_mmio.device=4K@{base:#x}:{gsi}"));
        transports.push(Mutex::new(MmioTransport::new(device, irq)));
    }
    let loaded = load_linux(&mem, mem_size, &cfg.kernel, cfg.initrd.as_deref(), &cmdline)?;

    let irq = EventFdTrigger::new().map_err(|e| format!("eventfd: {e}"))?;
    vm.register_irqfd(&irq.0, COM_IRQS[0])
        .map_err(|e| format!("KVM_IRQFD: {e}"))?;
    let bus = Bus {
        uart: Mutex::new(Uart::new(COM_PORTS[0], irq, cfg.console.clone())),
        i8042: Mutex::new(I8042::new(
            EventFdTrigger::new().map_err(|e| format!("eventfd: {e}"))?,
        )),
        virtio: transports,
        mem: &mem,
        marks: Mutex::default(),
        started,
    };

    let supported = kvm
        .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
        .map_err(|e| format!("KVM_GET_SUPPORTED_CPUID: {e}"))?;
    let mut vcpu = vm
        .create_vcpu(0)
        .map_err(|e| format!("KVM_CREATE_VCPU: {e}"))?;
    cpu::configure(&vcpu, &mem, loaded.entry, &supported, 0, 1)?;

    let signals = host_input::block_signals(&cfg.forward_signals)?;
    let stop = EventFd::new(libc::EFD_NONBLOCK).map_err(|e| format!("eventfd: {e}"))?;
    if let Some(t) = cfg.timeout {
        arm_timeout(t);
    }
    let exit = std::thread::scope(|scope| {
        scope.spawn(|| {
            host_input::forward(cfg.stdin, &signals, &bus.virtio[0], &input, &mem, &stop)
        });
        let exit = run_vcpu(&mut vcpu, &bus);
        let _ = stop.write(1);
        exit
    });
    if cfg.timeout.is_some() {
        // SAFETY: cancels the pending alarm; no memory is involved.
        unsafe { libc::alarm(0) };
    }
    let marks = std::mem::take(&mut *lock(&bus.marks));
    Ok(VmOutcome {
        exit: exit?,
        marks,
        started,
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Everything a vCPU exit may reach: the devices on I/O ports and on MMIO, guest memory, the
/// boot timer's marks.
struct Bus<'a> {
    uart: Mutex<Uart>,
    i8042: Mutex<I8042>,
    virtio: Vec<Mutex<MmioTransport>>,
    mem: &'a GuestMemoryMmap,
    marks: Mutex<Vec<(u8, Duration)>>,
    started: Instant,
}

impl Bus<'_> {
    /// The virtio transport whose register window holds `addr`, and the offset in it.
    fn virtio_at(&self, addr: u64) -> Option<(&Mutex<MmioTransport>, u64)> {
        let offset = addr.checked_sub(VIRTIO_MMIO_BASE)?;
        let t = self.virtio.get((offset / VIRTIO_MMIO_SIZE) as usize)?;
        Some((t, offset % VIRTIO_MMIO_SIZE))
    }
}

/// Runs a vCPU until the guest resets or shuts down the machine, or the time limit passes.
fn run_vcpu(vcpu: &mut kvm_ioctls::VcpuFd, bus: &Bus) -> Result<VmExit, String> {
    loop {
        if TIMED_OUT.load(Ordering::SeqCst) {
            return Ok(VmExit::Timeout);
        }
        match vcpu.run() {
            Ok(VcpuExit::IoIn(port, data)) => {
                let v = {
                    let mut uart = lock(&bus.uart);
                    if uart.handles(port) {
                        uart.read(port)
                    } else if I8042::handles(port) {
                        lock(&bus.i8042).read(port)
                    } else {
                        0xff
                    }
                };
                data.iter_mut().for_each(|b| *b = v);
            }
            Ok(VcpuExit::IoOut(port, data)) => {
                let v = data.first().copied().unwrap_or(0);
                let mut uart = lock(&bus.uart);
                if uart.handles(port) {
                    uart.write(port, v);
                } else if I8042::handles(port) {
                    if lock(&bus.i8042).write(port, v) {
                        return Ok(VmExit::Reset);
                    }
                } else if port == BOOT_TIMER_PORT {
                    lock(&bus.marks).push((v, bus.started.elapsed()));
                }
            }
            Ok(VcpuExit::MmioRead(addr, data)) => match bus.virtio_at(addr) {
                Some((t, offset)) => lock(t).read(offset, data),
                None => data.iter_mut().for_each(|b| *b = 0xff),
            },
            Ok(VcpuExit::MmioWrite(addr, data)) => {
                if let Some((t, offset)) = bus.virtio_at(addr) {
                    lock(t).write(offset, data, bus.mem);
                }
            }
            Ok(VcpuExit::Shutdown) | Ok(VcpuExit::Hlt) => return Ok(VmExit::Shutdown),
            Ok(VcpuExit::InternalError) => {
                return Err(
                    "KVM could not emulate a guest instruction (KVM_EXIT_INTERNAL_ERROR); \
                     is this a nested PVM host? see `isola doctor`"
                        .into(),
                )
            }
            Ok(VcpuExit::FailEntry(reason, _)) => {
                return Err(format!(
                    "KVM could not enter the guest (hardware entry failure {reason:#x})"
                ))
            }
            Ok(other) => return Err(format!("unexpected VM exit {other:?}")),
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => continue,
            Err(e) => return Err(format!("KVM_RUN: {e}")),
        }
    }
}
