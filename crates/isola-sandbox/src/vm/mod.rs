//! The VM level behind the lifecycle: the bundle's process in its own microVM (isola-vmm),
//! behind a guest kernel, with isola's guest init carrying out the same resolved process
//! (`Plan`) the container init does.
//!
//! Read: `boot` (one VM, booted and relayed to its end), `monitor` (a VM that outlives its
//! creator: a monitor process of its own, booted at `create`, released at `start`),
//! `in_process` (a VM this process relays itself, as `isola run` does), then `disk`, `size`,
//! `exec_hub` and `exec_client` (exec sessions), `terminal`.

mod boot;
pub mod disk;
pub(crate) mod exec_client;
mod exec_hub;
mod hosts_watch;
mod in_process;
mod monitor;
pub mod shares;
mod size;
mod terminal;

pub use size::{DEFAULT_MEMORY_MIB, MEMORY_ANNOTATION, VCPUS_ANNOTATION};

use crate::{Attach, CreateOptions, Error, Sandbox};
use std::path::PathBuf;
use std::time::Instant;

/// A VM's network interface: the host's tap device behind its virtio-net device, what guest
/// init configures eth0 with, and the workload's /etc/hosts and /etc/resolv.conf.
pub struct Nic {
    pub tap: std::os::fd::OwnedFd,
    pub guest: isola_guest_contract::network::GuestNetwork,
    /// The workload's hosts file on the host: its changes reach the guest while it runs.
    pub hosts: PathBuf,
    pub resolv_conf: Vec<u8>,
}

/// How VMs boot on this host.
#[derive(Clone, Debug)]
pub struct VmConfig {
    /// The guest kernel (`vmlinux`, else `bzImage`) and the guest `init`.
    pub guest_dir: PathBuf,
    /// isola's run directory: the VMM's empty jail root is mounted on it, in the VMM's own
    /// mount namespace.
    pub run_dir: PathBuf,
    /// A root disk built already and shared by every run of an image (removed if the guest
    /// finds it damaged, so the next run rebuilds it); without one, the sandbox's own is built
    /// from the bundle's rootfs.
    pub shared_disk: Option<PathBuf>,
    /// Seconds the workload may run before the VM is stopped.
    pub timeout: Option<u64>,
    /// The guest kernel's log on stderr.
    pub debug: bool,
    /// Each phase's time on stderr, counted from this instant (when isola started).
    pub timings: Option<Instant>,
}

impl VmConfig {
    pub fn new(guest_dir: PathBuf, run_dir: PathBuf) -> VmConfig {
        VmConfig {
            guest_dir,
            run_dir,
            shared_disk: None,
            timeout: None,
            debug: false,
            timings: None,
        }
    }

    /// The guest kernel: an ELF vmlinux, else a bzImage.
    pub fn kernel(&self) -> PathBuf {
        ["vmlinux", "bzImage"]
            .iter()
            .map(|k| self.guest_dir.join(k))
            .find(|k| k.exists())
            .unwrap_or_else(|| self.guest_dir.join("vmlinux"))
    }

    pub fn init(&self) -> PathBuf {
        self.guest_dir.join("init")
    }
}

/// A VM sandbox: relayed by this process (`Attach::Monitor`), or by a monitor process of its
/// own that outlives this one (`Attach::Detached`).
pub fn create(o: &CreateOptions) -> Result<Box<dyn Sandbox>, Error> {
    let (spec, _) = isola_container::load_spec(o.bundle)?;
    // A bad size annotation is named before anything is made.
    size::vm_size(&spec)?;
    match o.attach {
        Attach::Monitor { interactive } => in_process::create(o, spec, interactive),
        Attach::Detached { .. } => monitor::create(o, spec),
    }
}
