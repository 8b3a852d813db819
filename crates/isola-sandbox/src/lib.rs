//! One sandbox lifecycle over an OCI bundle (config.json + rootfs), with two back ends: the
//! container level (isola-container: namespaces, cgroups, pivot_root on the host kernel) and
//! the VM level (isola-vmm: its own microVM and guest kernel, `vm`). Both take the same bundle
//! and the same stdio, and do the same things with them:
//!
//! - owned, by the process that made it: [`create`] → [`Sandbox::start`] → [`Sandbox::wait`]
//!   → [`Sandbox::delete`] (or [`Sandbox::detach`], leaving it to later operations);
//! - by id, from any process (an OCI runtime's separate commands): [`Detached`]'s status,
//!   start, kill, pause, delete, and [`exec`] and [`processes`].
//!
//! The level is chosen once, by [`Level::of_bundle`]; nothing above this crate branches on it.

mod console;
mod container_backend;
pub mod exec;
mod processes;
pub mod vm;

pub use exec::{exec, ExecRequest};
pub use isola_container::detached::{Detached, Status};
pub use isola_container::{Attach, ContainerError};
pub use isola_net::attach::Endpoint;
pub use processes::{processes, GuestProcess, Processes};

use oci_spec::runtime::Spec;
use std::path::Path;

/// The annotation that runs a bundle VM-isolated (Kata's `io.katacontainers.*` style).
pub const ISOLATION_ANNOTATION: &str = "org.isola.isolation";

/// Where the workload runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// Namespaces and cgroups on the host kernel.
    Container,
    /// Its own VM, behind a guest kernel and isola's VMM.
    Vm,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Container => "container",
            Level::Vm => "vm",
        }
    }

    /// A bundle's level: its `org.isola.isolation` annotation, else `default`.
    pub fn of_bundle(spec: &Spec, bundle: &Path, default: Level) -> Result<Level, Error> {
        let annotated = spec
            .annotations()
            .as_ref()
            .and_then(|a| a.get(ISOLATION_ANNOTATION));
        match annotated.map(String::as_str) {
            None => Ok(default),
            Some("container") => Ok(Level::Container),
            Some("vm") => Ok(Level::Vm),
            Some(other) => Err(Error::Config(format!(
                "{}: annotation {ISOLATION_ANNOTATION}={other:?}: expected \"container\" or \"vm\"",
                bundle.join("config.json").display()
            ))),
        }
    }

    /// The level a state directory records.
    pub fn of_state(c: &Detached) -> Level {
        Level::recorded(&c.state.isolation)
    }

    /// The level a record names (`as_str`'s word; anything but "vm" is the container level).
    pub fn recorded(name: &str) -> Level {
        if name == "vm" {
            Level::Vm
        } else {
            Level::Container
        }
    }
}

/// What can go wrong with a sandbox.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Container(#[from] ContainerError),
    /// The bundle asks for something isola cannot do (the message names the field).
    #[error("{0}")]
    Config(String),
    /// The VM could not be made, or ended without the workload's status.
    #[error("{0}")]
    Vm(String),
    /// Talking to the caller (its console socket, pid file) or to the sandbox failed.
    #[error("{0}")]
    Io(String),
}

impl Error {
    /// The exit status docker would report: the container level's own (125, 126, 127), else 125.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Container(e) => e.exit_code(),
            _ => 125,
        }
    }
}

/// How to create a sandbox.
pub struct CreateOptions<'a> {
    pub id: &'a str,
    pub bundle: &'a Path,
    /// Directory holding one state directory per sandbox (a runtime's `--root`).
    pub state_root: &'a Path,
    pub level: Level,
    /// Who stays with the workload, and so who carries its stdio (see [`Attach`]).
    pub attach: Attach,
    /// With a terminal: where its master goes (an OCI runtime's `--console-socket`).
    pub console_socket: Option<&'a Path>,
    /// How VMs boot here (unused at the container level).
    pub vm: &'a vm::VmConfig,
}

/// A sandbox this process created.
pub trait Sandbox {
    /// The process a caller waits for and signals: the container's init, or a VM's monitor
    /// (isola's host half of the VM: its exit status is the workload's, its signals go in).
    fn pid(&self) -> i32;
    /// Lets the workload run (126/127 here when it cannot, at the container level).
    fn start(&mut self) -> Result<(), Error>;
    /// Until the workload ends, relaying its stdio and passing it the signals this process
    /// gets; returns docker's exit status.
    fn wait(&mut self) -> Result<i32, Error>;
    /// After `wait`: whether the kernel's OOM killer killed in the workload's cgroup (the
    /// host's for a container, the guest's for a VM). False where it cannot be known (a VM
    /// monitored by another process).
    fn oom_killed(&self) -> bool {
        false
    }
    /// Removes everything create made, killing what still runs.
    fn delete(self: Box<Self>) -> Result<(), Error>;
    /// Leaves the sandbox to live on without this process (a runtime's `create`).
    fn detach(self: Box<Self>);
    /// Where its network interface goes: into a container's network namespace (a veth end),
    /// or a tap device behind a VM's virtio-net device, handed over with `plug`.
    fn network_endpoint(&self) -> Endpoint;
    /// Gives a VM its network interface, before it starts.
    fn plug(&mut self, nic: vm::Nic) -> Result<(), Error>;
}

/// Creates a sandbox from a bundle: set up, the workload not started yet.
pub fn create(o: &CreateOptions) -> Result<Box<dyn Sandbox>, Error> {
    match o.level {
        Level::Container => container_backend::create(o),
        Level::Vm => vm::create(o),
    }
}
