//! One VM of a bundle's spec, booted and relayed to its end in this process: the bundle's
//! process, resolved (isola-process's `Plan`), and the guest init travel in a small initramfs
//! written here; the root filesystem is a read-only ext4 disk (`disk.rs`); stdin, stdout,
//! stderr, signals, exec sessions and the exit status cross the virtio console.

use super::hosts_watch::HostsWatch;
use super::shares::Virtiofsd;
use super::{terminal, VmConfig};
use crate::Error;
use isola_container::cgroups::{Cgroup, Hierarchies};
use isola_guest_contract::boot::{self, Phase};
use isola_guest_contract::frame::{Decoder, ToHost};
use isola_guest_contract::network;
use isola_guest_contract::{ErrorKind, GuestError};
use isola_vmm::devices::serial::Sink;
use isola_vmm::host_relay::{HostIo, Sideband, WindowSize};
use isola_vmm::initramfs::Cpio;
use isola_vmm::vm::{FsDevice, Machine, NetDevice, VmExit};
use isola_vmm::vmm_process::{self, JailConfig};
use oci_spec::runtime::Spec;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long the guest kernel may take to start init; `ISOLA_BOOT_TIMEOUT` (seconds) overrides.
const DEFAULT_BOOT_TIMEOUT_S: u64 = 60;

fn boot_timeout() -> Result<Duration, Error> {
    match std::env::var("ISOLA_BOOT_TIMEOUT") {
        Err(_) => Ok(Duration::from_secs(DEFAULT_BOOT_TIMEOUT_S)),
        Ok(v) => match v.parse::<u64>() {
            Ok(s) if s > 0 => Ok(Duration::from_secs(s)),
            _ => Err(Error::Vm(format!(
                "ISOLA_BOOT_TIMEOUT {v:?}: expected whole seconds, at least 1"
            ))),
        },
    }
}

/// How the guest said the workload ended.
#[derive(Default)]
struct Ending {
    code: Option<i32>,
    oom_killed: bool,
    error: Option<GuestError>,
}

/// How the workload ended: its status, and whether the guest's OOM killer killed in its cgroup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ended {
    pub code: i32,
    pub oom_killed: bool,
}

/// Writes all of `b` to `fd` (isola's stdout or stderr), giving up when it is closed.
pub fn write_all(fd: i32, mut b: &[u8]) {
    while !b.is_empty() {
        // SAFETY: write(2) from a live buffer to isola's own stdout/stderr.
        let n = unsafe { libc::write(fd, b.as_ptr().cast(), b.len()) };
        if n <= 0 {
            return;
        }
        b = &b[n as usize..];
    }
}
const KERNEL_CMDLINE: &str = "console=ttyS0 reboot=k panic=-1 nomodule 8250.nr_uarts=1";

/// The signals forwarded to the workload, as in container isolation.
pub const FORWARDED_SIGNALS: &[i32] = &[
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
];

/// What the VMM process may use beyond guest memory (its own code, heap, page tables, the root
/// disk's page cache) before its cgroup's memory bound stops it.
const VMM_HEADROOM_MIB: u64 = 64;
/// Threads the VMM process may have: a vCPU each, the input thread, the supervisor, spare.
const VMM_THREADS_BEYOND_VCPUS: i64 = 4;

/// Tasks virtiofsd takes, when the VM has shared directories: its main thread, the parent its
/// namespace sandbox leaves waiting, a thread per queue, spare.
const VIRTIOFSD_TASKS: i64 = 8;

/// The cgroup at `path` that bounds the VMM process (and `extra_tasks` more: virtiofsd's).
fn vmm_cgroup(path: &str, mem_mib: u64, cpus: u8, extra_tasks: i64) -> Result<Cgroup, Error> {
    use oci_spec::runtime::{LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResourcesBuilder};
    let memory = ((mem_mib + VMM_HEADROOM_MIB) << 20) as i64;
    let resources = LinuxResourcesBuilder::default()
        .memory(
            LinuxMemoryBuilder::default()
                .limit(memory)
                .swap(memory)
                .build()
                .map_err(spec_error)?,
        )
        .pids(
            LinuxPidsBuilder::default()
                .limit(i64::from(cpus) + VMM_THREADS_BEYOND_VCPUS + extra_tasks)
                .build()
                .map_err(spec_error)?,
        )
        .build()
        .map_err(spec_error)?;
    let failed =
        |e: isola_container::cgroups::CgroupError| Error::Vm(format!("the VMM's cgroup: {e}"));
    let hier = Hierarchies::detect().map_err(failed)?;
    Cgroup::create(&hier, path, Some(&resources)).map_err(failed)
}

fn spec_error(e: oci_spec::OciSpecError) -> Error {
    Error::Vm(e.to_string())
}

/// A runtime's `create`: the guest sets up and waits; `created` runs when it says so, and the
/// workload starts once `start` is readable.
pub struct StartGate {
    pub start: std::os::fd::OwnedFd,
    pub created: Box<dyn FnMut() + Send>,
}

/// One VM of a bundle's spec.
pub struct VmJob {
    pub spec: Spec,
    /// The root disk (the bundle's rootfs as ext4, read-only).
    pub disk: PathBuf,
    /// The disk is the image's shared cache: removed if the guest finds it damaged.
    pub disk_is_cache: bool,
    /// The VMM process's cgroup (bounding its memory and threads).
    pub cgroup_path: String,
    /// Forward isola's stdin to the workload.
    pub stdin: bool,
    /// A terminal in the guest sized like isola's (and raw mode with `stdin`).
    pub tty: bool,
    pub gate: Option<StartGate>,
    /// A monitor's exec sessions (see `exec_hub`).
    pub exec_hub: Option<super::exec_hub::SharedHub>,
    /// Its network interface.
    pub nic: Option<super::Nic>,
}

/// Boots the VM, relays until it ends; returns the workload's exit status.
pub fn run_job(config: &VmConfig, job: VmJob) -> Result<Ended, Error> {
    let VmJob { mut spec, .. } = job;
    let (kernel, init) = (config.kernel(), config.init());
    let (mem_mib, cpus) = super::size::vm_size(&spec)?;
    if job.tty {
        // The pty inside starts with the size of isola's own terminal.
        if let Some(size) = terminal::window_size() {
            if let Some(process) = spec.process_mut() {
                let size = oci_spec::runtime::BoxBuilder::default()
                    .height(u64::from(size.0))
                    .width(u64::from(size.1))
                    .build()
                    .map_err(spec_error)?;
                process.set_console_size(Some(size));
            }
        }
    }
    let disk_path = job.disk;
    let root_disk = std::fs::File::open(&disk_path)
        .map_err(|e| Error::Vm(format!("{}: {e}", disk_path.display())))?;
    isola_process::explain::say(|| {
        let size = root_disk.metadata().map_or(0, |m| m.len());
        format!(
            "root disk: {} ({} MiB, an ext4 image of the root filesystem), served read-only \
             as the guest's /dev/vda",
            disk_path.display(),
            size.div_ceil(1 << 20)
        )
    });
    // Sized up front and the init binary dropped once copied in: what the VMM holds beyond
    // guest memory stays small (see --timings' memory line).
    let init_bytes =
        std::fs::read(&init).map_err(|e| Error::Vm(format!("{}: {e}", init.display())))?;
    // The process spec read here, once, by the code the container init uses too: the guest
    // init carries the plan out and needs no OCI parser of its own.
    let plan = isola_process::Plan::from_spec(&spec)
        .map_err(|e| Error::Vm(format!("config.json: {e}")))?;
    let plan = serde_json::to_vec(&plan).map_err(|e| Error::Vm(e.to_string()))?;
    let mut initrd = Cpio::with_capacity(init_bytes.len() + plan.len() + 16384);
    initrd.file(boot::INIT, 0o755, &init_bytes);
    drop(init_bytes);
    initrd.dir(boot::ISOLA_DIR, 0o755);
    initrd.file(boot::PROCESS, 0o644, &plan);
    // The bundle's seccomp filter, compiled here: the guest init installs it as the container
    // init does (one compiler, one reading of linux.seccomp).
    let filter =
        isola_seccomp::compile_spec(&spec).map_err(|e| Error::Vm(format!("config.json: {e}")))?;
    if let Some(filter) = filter {
        initrd.file(boot::SECCOMP, 0o644, &filter.to_bytes());
    }
    // Its network: what guest init configures eth0 with, and the workload's /etc files.
    // Its hosts file watched from here on: a peer joining later is named in the guest too.
    let mut sidebands: Vec<Box<dyn Sideband>> = Vec::new();
    let net = match job.nic {
        Some(nic) => {
            let (watch, hosts) = HostsWatch::start(&nic.hosts)?;
            sidebands.push(Box::new(watch));
            initrd.file(network::NETWORK, 0o644, nic.guest.encode().as_bytes());
            initrd.file(network::HOSTS, 0o644, &hosts);
            initrd.file(network::RESOLV_CONF, 0o644, &nic.resolv_conf);
            Some(NetDevice {
                tap: nic.tap,
                mac: nic.guest.mac,
            })
        }
        None => None,
    };
    // Its mounts: host directories through virtio-fs (virtiofsd, started below, on a
    // connection the VMM takes), tmpfs mounts made by guest init.
    let (mounts, shares) = super::shares::from_spec(&spec);
    if !mounts.is_empty() {
        initrd.file(
            isola_guest_contract::mounts::MOUNTS,
            0o644,
            isola_guest_contract::mounts::encode(&mounts).as_bytes(),
        );
    }
    let initrd = initrd.finish();
    isola_process::explain::say(|| {
        format!(
            "initramfs built in memory ({} KiB): guest init as /init, the process plan read \
             from config.json, the seccomp filter, the network and mounts to set up. Guest init \
             (PID 1 of the guest) does inside what the container init does on the host — \
             mounts, cgroup limits, identity, exec — where the VMM does not see it",
            initrd.len().div_ceil(1024)
        )
    });
    // For booting the very same guest under another VMM (tests/bench/vm does, with QEMU).
    if let Some(out) = std::env::var_os("ISOLA_DEBUG_INITRAMFS").filter(|v| !v.is_empty()) {
        std::fs::write(&out, &initrd).map_err(|e| {
            Error::Vm(format!(
                "ISOLA_DEBUG_INITRAMFS {}: {e}",
                Path::new(&out).display()
            ))
        })?;
    }
    let (start, mut created) = match job.gate {
        Some(g) => (Some(g.start), Some(g.created)),
        None => (None, None),
    };

    let console = Arc::new(Mutex::new(Vec::new()));
    let ending: Arc<Mutex<Ending>> = Arc::default();
    let hub = job.exec_hub.clone();
    if let Some(h) = &hub {
        sidebands.push(Box::new(super::exec_hub::HubSide(h.clone())));
    }
    let channel = {
        let ending = ending.clone();
        let hub = hub.clone();
        let mut decoder = Decoder::<ToHost>::default();
        Box::new(move |bytes: &[u8]| {
            let (frames, corrupt) = decoder.feed(bytes);
            let ending = || ending.lock().unwrap_or_else(|p| p.into_inner());
            for frame in frames {
                match frame {
                    ToHost::Ready => {}
                    ToHost::Created => {
                        if let Some(f) = created.as_mut() {
                            f();
                        }
                    }
                    f @ (ToHost::ExecStdout { .. }
                    | ToHost::ExecStderr { .. }
                    | ToHost::ExecExit { .. }
                    | ToHost::Processes { .. }) => {
                        if let Some(h) = &hub {
                            h.lock().unwrap_or_else(|p| p.into_inner()).deliver(&f);
                        }
                    }
                    ToHost::Stdout(b) => write_all(1, &b),
                    ToHost::Stderr(b) => write_all(2, &b),
                    ToHost::OomKilled => ending().oom_killed = true,
                    ToHost::Exit(code) => ending().code = Some(code),
                    ToHost::Error(e) => ending().error = Some(e),
                }
            }
            if let Some(c) = corrupt {
                ending().error = Some(GuestError::setup(c.to_string()));
            }
        })
    };
    let mut cmdline = format!("{KERNEL_CMDLINE} rdinit={}", boot::INIT);
    cmdline.push_str(if config.debug {
        " printk.time=1"
    } else {
        " quiet"
    });
    // Extra guest kernel parameters, for looking into the guest (e.g. initcall_debug).
    if let Some(extra) = std::env::var("ISOLA_GUEST_CMDLINE")
        .ok()
        .filter(|e| !e.is_empty())
    {
        cmdline.push(' ');
        cmdline.push_str(&extra);
    }
    if job.stdin {
        cmdline.push(' ');
        cmdline.push_str(boot::STDIN_FLAG);
    }
    if start.is_some() {
        cmdline.push(' ');
        cmdline.push_str(boot::WAIT_FOR_START);
    }
    // With -t and -i on a terminal, isola's terminal goes raw: the guest's pty interprets keys.
    let _raw = (job.tty && job.stdin)
        .then(terminal::RawMode::enter)
        .flatten();
    let boot_timeout = boot_timeout()?;
    // virtiofsd last, after everything that can fail on its own: from here on the VMM's end of
    // its connection (in `machine`) is what ends it.
    let (virtiofsd, fs) = if shares.is_empty() {
        (None, None)
    } else {
        let (back_end, socket) = Virtiofsd::start(&config.run_dir, &shares)?;
        let fs = FsDevice {
            socket,
            tag: isola_guest_contract::mounts::FS_TAG.to_string(),
        };
        (Some(back_end), Some(fs))
    };
    let machine = Machine {
        kernel,
        initrd: Some(initrd),
        cmdline,
        mem_mib,
        cpus,
        root_disk: Some(root_disk),
        net,
        fs,
        timeout: config.timeout.map(Duration::from_secs),
        boot_timeout,
    };
    let host = HostIo {
        console: Sink::Buffer(console.clone()),
        channel,
        stdin: job.stdin.then_some(0),
        forward_signals: FORWARDED_SIGNALS.to_vec(),
        // With -t, a window size change becomes the pty's new size, not a bare SIGWINCH.
        window_size: job.tty.then_some(terminal::window_size as WindowSize),
        start,
        sidebands,
    };
    // The back end is bounded with the VMM: one limit for everything the VM runs on the host.
    let extra_tasks = if virtiofsd.is_some() {
        VIRTIOFSD_TASKS
    } else {
        0
    };
    let cgroup =
        vmm_cgroup(&job.cgroup_path, mem_mib, cpus, extra_tasks).and_then(|c| match &virtiofsd {
            Some(v) => c
                .add_pid(v.pid() as i32)
                .map(|()| c)
                .map_err(|e| Error::Vm(format!("placing virtiofsd in the VM's cgroup: {e}"))),
            None => Ok(c),
        });
    let cgroup = match cgroup {
        Ok(c) => c,
        Err(e) => {
            drop(machine); // the VMM's end of virtiofsd's connection: it ends on the close
            let _ = virtiofsd.map(Virtiofsd::stop);
            return Err(e);
        }
    };
    let jail = JailConfig {
        // The jail's empty root is mounted on the run directory, in the VMM's own mount
        // namespace.
        dir: config.run_dir.clone(),
        place: Box::new(|pid| {
            cgroup
                .add_pid(pid)
                .map_err(|e| format!("placing the VMM in its cgroup: {e}"))
        }),
    };
    let outcome = vmm_process::run(machine, host, jail);
    let back_end_failed = virtiofsd.and_then(Virtiofsd::stop);
    let oom = cgroup.oom_killed();
    if let Err(e) = cgroup.remove() {
        eprintln!("isola: warning: removing the VMM's cgroup: {e}");
    }
    if oom {
        return Err(Error::Vm(format!(
            "the VMM went over its memory bound ({} MiB: guest memory plus {VMM_HEADROOM_MIB} MiB) and the kernel killed it",
            mem_mib + VMM_HEADROOM_MIB
        )));
    }
    if let Some(why) = back_end_failed {
        eprintln!("isola: warning: virtiofsd (the VM's shared directories) failed: {why}");
    }
    let outcome = outcome.map_err(|e| Error::Vm(e.to_string()))?;

    let log =
        String::from_utf8_lossy(&console.lock().unwrap_or_else(|p| p.into_inner())).into_owned();
    if config.debug {
        eprint!("{log}");
    }
    if let Some(t) = config.timings {
        let end = outcome.started.elapsed();
        // Image, rootfs cache, root disk, initramfs and the KVM check, before the VMM.
        let before = outcome.started.saturating_duration_since(t);
        eprintln!(
            "timings: isola start -{:.1} ms",
            before.as_secs_f64() * 1000.0
        );
        eprintln!("timings: vmm start 0.0 ms");
        eprintln!(
            "timings: kernel entry {:.1} ms",
            outcome.guest_entry.as_secs_f64() * 1000.0
        );
        for (phase, t) in &outcome.marks {
            let name = Phase::from_byte(*phase).map_or("mark", Phase::name);
            eprintln!("timings: {name} {:.1} ms", t.as_secs_f64() * 1000.0);
        }
        eprintln!("timings: vm gone {:.1} ms", end.as_secs_f64() * 1000.0);
        eprintln!(
            "timings: exits to isola: {} port I/O, {} MMIO",
            outcome.exits.0, outcome.exits.1
        );
        // Peak RSS of the VMM process and how much of it is guest memory.
        let peak = outcome.vmm_peak_rss;
        let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
        eprintln!(
            "timings: memory: peak RSS {:.1} MiB, guest memory touched {:.1} MiB, VMM overhead {:.1} MiB",
            mib(peak),
            mib(outcome.guest_resident),
            mib(peak.saturating_sub(outcome.guest_resident))
        );
    }
    let ending = std::mem::take(&mut *ending.lock().unwrap_or_else(|p| p.into_inner()));
    if let Some(err) = ending.error {
        if err.kind == ErrorKind::RootDisk && job.disk_is_cache {
            // A damaged cached image: drop it, so the next run builds it again.
            let _ = std::fs::remove_file(&disk_path);
            return Err(Error::Vm(format!(
                "{err} ({} was removed; the next run rebuilds it)",
                disk_path.display()
            )));
        }
        return Err(Error::Vm(err.to_string()));
    }
    if let Some(code) = ending.code {
        return Ok(Ended {
            code,
            oom_killed: ending.oom_killed,
        });
    }
    let why = match outcome.exit {
        VmExit::Timeout => format!(
            "the workload did not finish within --timeout {}s; the VM was stopped",
            config.timeout.unwrap_or(0)
        ),
        VmExit::BootTimeout => format!(
            "the guest did not boot within {}s (its init never started); the VM was stopped",
            boot_timeout.as_secs()
        ),
        VmExit::Shutdown => "the guest triple-faulted before the workload finished".to_string(),
        VmExit::Reset => {
            "the guest kernel stopped before the workload finished (kernel panic?)".to_string()
        }
    };
    let tail: Vec<&str> = log.lines().rev().take(3).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(Error::Vm(format!(
        "{why}{}",
        if tail.is_empty() {
            String::new()
        } else {
            format!("; kernel log ends: {}", tail.join(" | "))
        }
    )))
}
