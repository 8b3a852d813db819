//! One microVM, start to end: KVM VM with an in-kernel interrupt controller and PIT, guest
//! memory, the kernel and initramfs loaded, legacy devices on I/O ports, virtio devices on
//! MMIO (the channel console, the root disk, a network interface), the vCPUs run until the
//! guest resets the machine, triple-faults, or the time limit passes — and beside them a
//! thread moving the front end's input frames into the guest and, with a network interface,
//! one running its queues (`net_worker.rs`). This runs inside the VMM process
//! (`vmm_process.rs` starts it, jailed, and relays for it).

use crate::boot::load_linux;
use crate::cpu;
use crate::devices::boot_timer::BootTimer;
use crate::devices::i8042::I8042;
use crate::devices::serial::{Sink, Uart};
use crate::devices::EventFdTrigger;
use crate::explain::{self, say as explain};
use crate::host_input;
use crate::jail::filters::ThreadKind;
use crate::jail::Jail;
use crate::layout::*;
use crate::mptable;
pub use crate::mptable::MAX_CPUS;
use crate::vcpus::{self, Bus};
use crate::virtio::block::Block;
use crate::virtio::console::{Console, Input};
use crate::virtio::fs::Fs;
use crate::virtio::mmio::MmioTransport;
use crate::virtio::net::{Net, Tap};
use kvm_bindings::{
    kvm_pit_config, kvm_userspace_memory_region, CpuId, KVM_MAX_CPUID_ENTRIES,
    KVM_PIT_SPEAKER_DUMMY,
};
use kvm_ioctls::{Cap, IoEventAddress, Kvm};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use vm_memory::{FileOffset, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;

/// What to boot.
pub struct Machine {
    pub kernel: PathBuf,
    pub initrd: Option<Vec<u8>>,
    /// The kernel command line; isola appends the virtio-mmio device declarations.
    pub cmdline: String,
    pub mem_mib: u64,
    /// vCPUs, 1 to `MAX_CPUS`.
    pub cpus: u8,
    /// The root filesystem image, served read-only as /dev/vda.
    pub root_disk: Option<std::fs::File>,
    /// A network interface: virtio-net on a tap device of the host.
    pub net: Option<NetDevice>,
    /// Host directories: virtio-fs, served by a vhost-user back end (virtiofsd).
    pub fs: Option<FsDevice>,
    pub timeout: Option<Duration>,
    /// How long the kernel may take to start guest init.
    pub boot_timeout: Duration,
}

/// The guest's network interface: the host's tap device behind it (opened non-blocking, with
/// IFF_VNET_HDR and a 12-byte header) and the interface's MAC address.
pub struct NetDevice {
    pub tap: OwnedFd,
    pub mac: [u8; 6],
}

/// The guest's shared directories: a connection to the vhost-user back end serving them, and
/// the tag the guest mounts them by.
pub struct FsDevice {
    pub socket: std::os::unix::net::UnixStream,
    pub tag: String,
}

/// Guest memory. Private anonymous memory unless `shared`: the host's transparent huge pages
/// apply to it as to any process's (with THP on, a guest's first touch of 2 MiB is one fault,
/// not 512 — a third of the boot in the emulated test host, measured with tests/bench/vm), and
/// it is what Firecracker gives its guests. `shared` (a vhost-user back end must map it too):
/// a memfd mapped shared, its size sealed; shmem gets no huge pages unless the host says so.
fn guest_memory(size: usize, shared: bool) -> Result<GuestMemoryMmap, String> {
    if !shared {
        return GuestMemoryMmap::from_ranges(&[(GuestAddress(0), size)]).map_err(|e| e.to_string());
    }
    // SAFETY: memfd_create with a NUL-terminated name; the descriptor is owned right away.
    let file = unsafe {
        let fd = libc::memfd_create(
            c"isola-guest".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        );
        if fd < 0 {
            return Err(format!("memfd_create: {}", std::io::Error::last_os_error()));
        }
        std::fs::File::from_raw_fd(fd)
    };
    file.set_len(size as u64)
        .map_err(|e| format!("sizing guest memory: {e}"))?;
    // SAFETY: fcntl on our own descriptor; the seals only forbid resizing it from now on.
    if unsafe {
        libc::fcntl(
            file.as_raw_fd(),
            libc::F_ADD_SEALS,
            libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL,
        )
    } != 0
    {
        return Err(format!(
            "sealing guest memory: {}",
            std::io::Error::last_os_error()
        ));
    }
    let region = (GuestAddress(0), size, Some(FileOffset::new(file, 0)));
    GuestMemoryMmap::from_ranges_with_files([region]).map_err(|e| e.to_string())
}

/// Where the VM's output goes and where its input comes from, inside the VMM process.
pub struct VmIo {
    /// Where COM1 (the kernel console) goes.
    pub console: Sink,
    /// Receives what the guest sends on the host channel (a virtio console).
    pub channel: crate::virtio::console::ByteSink,
    /// Channel frames for the guest (stdin, signals, window sizes), already encoded.
    pub control: RawFd,
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
    /// Guest init had not started when the boot time limit passed; the VM was stopped.
    BootTimeout,
}

/// What happened, with the boot timer's marks (phase byte, time since VMM start).
pub struct VmOutcome {
    pub exit: VmExit,
    pub marks: Vec<(u8, Duration)>,
    pub started: Instant,
    /// Guest memory the guest touched (resident at the end), in bytes.
    pub guest_resident: u64,
    /// When the vCPUs first entered the guest (the kernel's entry point), since VMM start.
    pub guest_entry: Duration,
    /// VM exits isola handled: (port I/O, MMIO).
    pub exits: (u64, u64),
    /// The VMM process's peak RSS in bytes (guest memory it touched included); 0 if unknown.
    pub vmm_peak_rss: u64,
}

/// A line on the kernel console from the VMM itself.
fn say(console: &Sink, what: &str) {
    let mut log = console.clone();
    let _ = std::io::Write::write_all(&mut log, format!("isola: {what}\n").as_bytes());
}

/// Bytes of `len` at `addr` (one mapping of ours) that are resident.
fn resident_bytes(addr: *mut u8, len: usize) -> u64 {
    let page = 4096;
    let mut vec = vec![0u8; len.div_ceil(page)];
    // SAFETY: mincore only reads the page tables of our own mapping [addr, addr+len) and
    // writes one byte per page into `vec`, which is that long.
    let r = unsafe { libc::mincore(addr.cast(), len, vec.as_mut_ptr()) };
    if r != 0 {
        return 0;
    }
    vec.iter().filter(|b| *b & 1 != 0).count() as u64 * page as u64
}

/// Says that the guest's queue notifications at `base` go to eventfds, not to the VMM.
fn explain_ioeventfd(kind: &str, base: u64) {
    explain(|| {
        format!(
            "KVM_IOEVENTFD: the {kind} device's queue notifications (writes to {:#x}) signal \
             an eventfd inside the host kernel: no exit to the VMM",
            base + crate::virtio::mmio::QUEUE_NOTIFY
        )
    });
}

/// Says vCPU `index`'s CPUID (what differs from KVM's offer) and, for the boot CPU, its
/// registers at entry.
fn explain_vcpu(vcpu: &kvm_ioctls::VcpuFd, index: u8, kvm_cpuid: &CpuId, cpuid: &CpuId) {
    explain(|| {
        format!(
            "KVM_CREATE_VCPU {index}; KVM_SET_CPUID2 with KVM's offer changed: {}",
            explain::cpuid_changes(kvm_cpuid, cpuid).join("; ")
        )
    });
    if index != 0 {
        explain(|| format!("vCPU {index} waits for the kernel's INIT and SIPI to start"));
        return;
    }
    explain(|| {
        "KVM_SET_MSRS: SYSENTER and SYSCALL MSRs 0, TSC 0, MISC_ENABLE fast strings; \
         KVM_SET_LAPIC: LINT0 takes the PIC's interrupts (ExtINT), LINT1 NMIs"
            .into()
    });
    explain(|| match (vcpu.get_regs(), vcpu.get_sregs()) {
        (Ok(r), Ok(s)) => format!(
            "vCPU 0 at entry (KVM_SET_REGS, KVM_SET_SREGS), already in 64-bit mode with the \
             first GiB identity-mapped: {}",
            explain::registers(&r, &s)
        ),
        (Err(e), _) | (_, Err(e)) => format!("vCPU 0's registers: {e}"),
    });
}

/// Runs `cfg` to its end. The process enters `jail` once every descriptor exists, and each
/// thread confines itself as it starts. `started` is when the front end began.
pub fn run(cfg: Machine, io: VmIo, jail: &Jail, started: Instant) -> Result<VmOutcome, String> {
    let mem_size = cfg.mem_mib << 20;
    if mem_size < (16 << 20) {
        return Err(format!(
            "guest memory {} MiB is too small to boot (minimum 16 MiB)",
            cfg.mem_mib
        ));
    }
    let kvm = Kvm::new().map_err(|e| format!("/dev/kvm: {e}"))?;
    let shared_memory = cfg.fs.is_some();
    explain(|| {
        format!(
            "opened /dev/kvm (KVM API version {})",
            kvm.get_api_version()
        )
    });
    let mem = guest_memory(mem_size as usize, shared_memory)
        .map_err(|e| format!("guest memory ({} MiB): {e}", cfg.mem_mib))?;
    let vm = kvm.create_vm().map_err(|e| format!("KVM_CREATE_VM: {e}"))?;
    explain(|| format!("KVM_CREATE_VM: a new VM, descriptor {}", vm.as_raw_fd()));
    vm.set_tss_address(0xfffb_d000)
        .map_err(|e| format!("KVM_SET_TSS_ADDR: {e}"))?;
    explain(|| {
        "KVM_SET_TSS_ADDR 0xfffbd000: three pages below 4 GiB that KVM keeps for itself \
         (on Intel, for emulating real mode)"
            .into()
    });
    vm.create_irq_chip()
        .map_err(|e| format!("KVM_CREATE_IRQCHIP: {e}"))?;
    explain(|| {
        "KVM_CREATE_IRQCHIP: the interrupt controllers (two 8259 PICs, an IOAPIC, a local APIC \
         per vCPU) are emulated inside the host kernel, not by the VMM"
            .into()
    });
    let pit = kvm_pit_config {
        flags: KVM_PIT_SPEAKER_DUMMY,
        ..Default::default()
    };
    vm.create_pit2(pit)
        .map_err(|e| format!("KVM_CREATE_PIT2: {e}"))?;
    explain(|| "KVM_CREATE_PIT2: the 8254 timer, in the host kernel too".into());
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
    explain(|| {
        format!(
            "KVM_SET_USER_MEMORY_REGION slot 0: guest physical {:#x}-{:#x} ({} MiB) is the \
             VMM's memory at {:#x}, {}; the guest's pages are the host's only once it \
             touches them",
            0,
            mem_size - 1,
            cfg.mem_mib,
            host_addr as u64,
            if shared_memory {
                "a memfd mapped shared (virtiofsd maps it too), sealed against resizing"
            } else {
                "private anonymous memory (huge pages where the host's THP allows)"
            }
        )
    });

    // Virtio devices: the channel console, the root disk, the network interface; device i
    // has its register window at VIRTIO_MMIO_BASE + i * 4 KiB and IRQ VIRTIO_FIRST_IRQ + i.
    let input: Input = Default::default();
    let mut devices: Vec<Box<dyn crate::virtio::VirtioDevice>> =
        vec![Box::new(Console::new(io.channel, input.clone()))];
    if let Some(disk) = cfg.root_disk {
        devices.push(Box::new(Block::new(Box::new(disk))));
    }
    // The network device's queue notifications, as KVM signals them (see net_worker.rs).
    let mut net_path = None;
    if let Some(net) = cfg.net {
        let kick = || EventFd::new(libc::EFD_NONBLOCK).map_err(|e| format!("eventfd: {e}"));
        let (rx_kick, tx_kick) = (kick()?, kick()?);
        let base = VIRTIO_MMIO_BASE + devices.len() as u64 * VIRTIO_MMIO_SIZE;
        let notify = IoEventAddress::Mmio(base + crate::virtio::mmio::QUEUE_NOTIFY);
        vm.register_ioevent(&rx_kick, &notify, crate::virtio::net::RX as u32)
            .and_then(|()| vm.register_ioevent(&tx_kick, &notify, crate::virtio::net::TX as u32))
            .map_err(|e| format!("KVM_IOEVENTFD: {e}"))?;
        explain_ioeventfd("network", base);
        net_path = Some((devices.len(), rx_kick, tx_kick, net.tap.as_raw_fd()));
        devices.push(Box::new(Net::new(Box::new(Tap(net.tap)), net.mac)));
    }
    // The shared directories' queue notifications go straight to the back end.
    if let Some(fs) = cfg.fs {
        let kick = || EventFd::new(libc::EFD_NONBLOCK).map_err(|e| format!("eventfd: {e}"));
        let kicks = [kick()?, kick()?];
        let base = VIRTIO_MMIO_BASE + devices.len() as u64 * VIRTIO_MMIO_SIZE;
        let notify = IoEventAddress::Mmio(base + crate::virtio::mmio::QUEUE_NOTIFY);
        for (i, k) in kicks.iter().enumerate() {
            vm.register_ioevent(k, &notify, i as u32)
                .map_err(|e| format!("KVM_IOEVENTFD: {e}"))?;
        }
        explain_ioeventfd("filesystem (served by virtiofsd)", base);
        devices.push(Box::new(Fs::connect(fs.socket, &fs.tag, kicks)?));
    }
    let mut cmdline = cfg.cmdline.clone();
    let mut transports = Vec::new();
    let kinds = devices
        .iter()
        .map(|d| explain::virtio_kind(d.device_type()))
        .collect();
    for (i, device) in devices.into_iter().enumerate() {
        let irq = EventFd::new(libc::EFD_NONBLOCK).map_err(|e| format!("eventfd: {e}"))?;
        let gsi = VIRTIO_FIRST_IRQ + i as u32;
        vm.register_irqfd(&irq, gsi)
            .map_err(|e| format!("KVM_IRQFD: {e}"))?;
        let base = VIRTIO_MMIO_BASE + i as u64 * VIRTIO_MMIO_SIZE;
        explain(|| {
            format!(
                "device: virtio-mmio #{i} ({}), registers at {base:#x} (4 KiB, each access an \
                 MMIO exit), interrupt GSI {gsi} raised through an eventfd (KVM_IRQFD)",
                explain::virtio_kind(device.device_type())
            )
        });
        cmdline.push_str(&format!(" virtio_mmio.device=4K@{base:#x}:{gsi}"));
        transports.push(Mutex::new(MmioTransport::new(device, irq)));
    }
    let loaded = load_linux(&mem, mem_size, &cfg.kernel, cfg.initrd.as_deref(), &cmdline)?;
    drop(cfg.initrd); // it is in guest memory now

    let irq = EventFdTrigger::new().map_err(|e| format!("eventfd: {e}"))?;
    vm.register_irqfd(&irq.0, COM_IRQS[0])
        .map_err(|e| format!("KVM_IRQFD: {e}"))?;
    explain(|| {
        format!(
            "device: COM1, an 8250 serial port at I/O ports {:#x}-{:#x}, IRQ {} — the kernel \
             console (isola keeps it, --debug shows it)",
            COM_PORTS[0],
            COM_PORTS[0] + 7,
            COM_IRQS[0]
        )
    });
    explain(|| {
        format!(
            "device: an i8042 controller at ports {I8042_DATA:#x} and {I8042_COMMAND:#x} — the \
             guest resets the machine through it; device: the boot timer at port \
             {BOOT_TIMER_PORT:#x} — guest init writes a byte at each step"
        )
    });
    let bus = Bus {
        uart: Mutex::new(Uart::new(COM_PORTS[0], irq, io.console.clone())),
        i8042: Mutex::new(I8042::new(
            EventFdTrigger::new().map_err(|e| format!("eventfd: {e}"))?,
        )),
        virtio: transports,
        mem: &mem,
        marks: Mutex::new(BootTimer::new(started)),
        started,
        stop: AtomicBool::new(false),
        ending: Mutex::default(),
        threads: Mutex::default(),
        supervisor: Default::default(),
        io_exits: AtomicU64::new(0),
        mmio_exits: AtomicU64::new(0),
        exit_log: explain::ExitLog::new(started, kinds),
    };

    let mut supported = kvm
        .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
        .map_err(|e| format!("KVM_GET_SUPPORTED_CPUID: {e}"))?;
    let kvm_cpuid = explain::is_on().then(|| supported.clone());
    explain(|| {
        format!(
            "KVM_GET_SUPPORTED_CPUID: {} CPUID entries this host's KVM can offer a guest",
            supported.as_slice().len()
        )
    });
    if kvm.check_extension(Cap::TscDeadlineTimer) {
        // KVM's in-kernel APIC has the TSC-deadline timer but leaves announcing it to the
        // VMM. Announced, the guest kernel skips calibrating its APIC timer (100 ms of boot).
        for e in supported
            .as_mut_slice()
            .iter_mut()
            .filter(|e| e.function == 1)
        {
            e.ecx |= 1 << 24;
        }
    }
    mptable::write(&mem, cfg.cpus, MPTABLE)?;
    explain(|| {
        format!(
            "MP table at {MPTABLE:#x}: {} CPU(s) and the IOAPIC, for the kernel's SMP bring-up",
            cfg.cpus
        )
    });
    let mut vcpus = Vec::new();
    for index in 0..cfg.cpus {
        let vcpu = vm
            .create_vcpu(u64::from(index))
            .map_err(|e| format!("KVM_CREATE_VCPU {index}: {e}"))?;
        let cpuid = cpu::configure(&vcpu, &mem, loaded.entry, &supported, index, cfg.cpus)?;
        if let Some(kvm_cpuid) = &kvm_cpuid {
            explain_vcpu(&vcpu, index, kvm_cpuid, &cpuid);
        }
        vcpus.push(vcpu);
    }

    let stop = EventFd::new(libc::EFD_NONBLOCK).map_err(|e| format!("eventfd: {e}"))?;
    drop(kvm); // /dev/kvm itself: every VM and vCPU descriptor exists now
    jail.enter().map_err(|e| format!("jailing the VMM: {e}"))?;
    let guest_entry = started.elapsed();
    explain(|| {
        format!(
            "KVM_RUN on {} vCPU thread(s) from {:.1} ms: the guest runs until it needs the \
             VMM; its exits as they come:",
            cfg.cpus,
            guest_entry.as_secs_f64() * 1000.0
        )
    });
    let exit = std::thread::scope(|scope| {
        let (console, input, mem, stop, bus) = (&io.console, &input, &mem, &stop, &bus);
        scope.spawn(move || {
            vcpus::keep_vcpu_signals_away();
            if let Err(e) = jail.confine_thread(ThreadKind::Input) {
                say(console, &e);
                return;
            }
            let guest = host_input::Guest {
                console: &bus.virtio[0],
                input,
                mem,
            };
            match host_input::forward(io.control, guest, stop) {
                Ok(host_input::Ended::Stopped) => {}
                Ok(host_input::Ended::FrontEndGone) => {
                    // isola is gone (killed before the parent-death signal was armed):
                    // nobody is left to read the output, so the VM ends too.
                    bus.end(Err("isola (the front end) is gone".into()));
                }
                // Without it the workload gets no stdin or signals; say so on the console.
                Err(e) => say(console, &e),
            }
        });
        if let Some((index, rx_kick, tx_kick, tap)) = &net_path {
            scope.spawn(move || {
                vcpus::keep_vcpu_signals_away();
                if let Err(e) = jail.confine_thread(ThreadKind::Net) {
                    say(console, &e);
                    return;
                }
                let wakers = crate::net_worker::Wakers {
                    rx_kick,
                    tx_kick,
                    tap: *tap,
                };
                // Without it the guest's network is dead; say so on the console.
                if let Err(e) = crate::net_worker::run(&bus.virtio[*index], mem, wakers, stop) {
                    say(console, &e);
                }
            });
        }
        let exit = vcpus::run_all(scope, vcpus, bus, cfg.timeout, cfg.boot_timeout, jail);
        let _ = stop.write(1);
        exit
    });
    if explain::is_on() {
        bus.exit_log.say_counts();
    }
    let marks = bus
        .marks
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_marks();
    Ok(VmOutcome {
        exit: exit?,
        marks,
        started,
        guest_resident: resident_bytes(host_addr, mem_size as usize),
        guest_entry,
        exits: (
            bus.io_exits.load(Ordering::Relaxed),
            bus.mmio_exits.load(Ordering::Relaxed),
        ),
        vmm_peak_rss: 0,
    })
}
