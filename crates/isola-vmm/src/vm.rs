//! One microVM, start to end: KVM VM with an in-kernel interrupt controller and PIT, guest
//! memory, the kernel and initramfs loaded, legacy devices on I/O ports, one vCPU run on the
//! calling thread until the guest resets the machine, triple-faults, or the time limit passes.

use crate::boot::load_linux;
use crate::cpu;
use crate::devices::i8042::I8042;
use crate::devices::serial::{Sink, Uart};
use crate::devices::EventFdTrigger;
use crate::layout::*;
use crate::virtio::console::Console;
use crate::virtio::mmio::MmioTransport;
use kvm_bindings::{
    kvm_pit_config, kvm_userspace_memory_region, KVM_MAX_CPUID_ENTRIES, KVM_PIT_SPEAKER_DUMMY,
};
use kvm_ioctls::{Kvm, VcpuExit};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
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

    let channel_irq = EventFd::new(libc::EFD_NONBLOCK).map_err(|e| format!("eventfd: {e}"))?;
    vm.register_irqfd(&channel_irq, VIRTIO_FIRST_IRQ)
        .map_err(|e| format!("KVM_IRQFD: {e}"))?;
    let mut channel = MmioTransport::new(Box::new(Console::new(cfg.channel)), channel_irq);
    let cmdline = format!(
        "{} virtio_mmio.device=4K@{:#x}:{}",
        cfg.cmdline, VIRTIO_MMIO_BASE, VIRTIO_FIRST_IRQ
    );
    let loaded = load_linux(&mem, mem_size, &cfg.kernel, cfg.initrd.as_deref(), &cmdline)?;

    let irq = EventFdTrigger::new().map_err(|e| format!("eventfd: {e}"))?;
    vm.register_irqfd(&irq.0, COM_IRQS[0])
        .map_err(|e| format!("KVM_IRQFD: {e}"))?;
    let mut uarts = [Uart::new(COM_PORTS[0], irq, cfg.console.clone())];
    let mut i8042 = I8042::new(EventFdTrigger::new().map_err(|e| format!("eventfd: {e}"))?);

    let supported = kvm
        .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
        .map_err(|e| format!("KVM_GET_SUPPORTED_CPUID: {e}"))?;
    let mut vcpu = vm
        .create_vcpu(0)
        .map_err(|e| format!("KVM_CREATE_VCPU: {e}"))?;
    cpu::configure(&vcpu, &mem, loaded.entry, &supported, 0, 1)?;

    if let Some(t) = cfg.timeout {
        arm_timeout(t);
    }
    let mut marks = Vec::new();
    let exit = loop {
        if TIMED_OUT.load(Ordering::SeqCst) {
            break VmExit::Timeout;
        }
        match vcpu.run() {
            Ok(VcpuExit::IoIn(port, data)) => {
                let v = if let Some(u) = uarts.iter_mut().find(|u| u.handles(port)) {
                    u.read(port)
                } else if I8042::handles(port) {
                    i8042.read(port)
                } else {
                    0xff
                };
                data.iter_mut().for_each(|b| *b = v);
            }
            Ok(VcpuExit::IoOut(port, data)) => {
                let v = data.first().copied().unwrap_or(0);
                if let Some(u) = uarts.iter_mut().find(|u| u.handles(port)) {
                    u.write(port, v);
                } else if I8042::handles(port) {
                    if i8042.write(port, v) {
                        break VmExit::Reset;
                    }
                } else if port == BOOT_TIMER_PORT {
                    marks.push((v, started.elapsed()));
                }
            }
            Ok(VcpuExit::MmioRead(addr, data)) => {
                if (VIRTIO_MMIO_BASE..VIRTIO_MMIO_BASE + VIRTIO_MMIO_SIZE).contains(&addr) {
                    channel.read(addr - VIRTIO_MMIO_BASE, data);
                } else {
                    data.iter_mut().for_each(|b| *b = 0xff);
                }
            }
            Ok(VcpuExit::MmioWrite(addr, data)) => {
                if (VIRTIO_MMIO_BASE..VIRTIO_MMIO_BASE + VIRTIO_MMIO_SIZE).contains(&addr) {
                    channel.write(addr - VIRTIO_MMIO_BASE, data, &mem);
                }
            }
            Ok(VcpuExit::Shutdown) | Ok(VcpuExit::Hlt) => break VmExit::Shutdown,
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
    };
    if cfg.timeout.is_some() {
        // SAFETY: cancels the pending alarm; no memory is involved.
        unsafe { libc::alarm(0) };
    }
    Ok(VmOutcome {
        exit,
        marks,
        started,
    })
}
