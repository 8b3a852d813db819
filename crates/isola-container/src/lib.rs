//! isola's container isolation level: the workload runs on the host kernel, fenced by
//! namespaces (pid, mount, uts, ipc, net, cgroup), a pivot_root into its own rootfs, cgroup
//! limits, a reduced capability set and no_new_privs.
//!
//! Read it top to bottom: `container` (the lifecycle seen from the host), `init` (the steps
//! inside the new namespaces), then `rootfs`, `devices`, `identity`, `network`, `cgroups`.

pub mod cgroups;
mod channel;
mod clone_init;
mod console_relay;
pub mod console_socket;
pub mod container;
pub mod detached;
mod devices;
mod fd_passing;
pub mod host_checks;
mod init;
mod join;
pub mod monitor;
pub mod mount_options;
mod network;
mod rootfs;
pub use isola_seccomp as seccomp;
pub mod state;
mod stdio_relay;

pub use container::{clean_stale, create, load_spec, Attach, Container, CreateOptions};
pub use join::ExecOptions;

/// What can go wrong creating or running a container.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("{0}")]
    Config(String),
    #[error("container with id exists: {0}")]
    Exists(String),
    /// No container with this id (runc's words: podman and containerd match them).
    #[error("container does not exist")]
    NotFound(String),
    /// The operation does not fit the container's status (runc's message).
    #[error("{0}")]
    WrongState(String),
    #[error(transparent)]
    Cgroup(#[from] cgroups::CgroupError),
    /// Setup or exec failed inside the init; `code` is the exit status to report (125, 126, 127).
    #[error("{message}")]
    Setup { code: i32, message: String },
    #[error("{0}")]
    Io(String),
}

impl ContainerError {
    /// The exit status docker would report for this failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            ContainerError::Setup { code, .. } => *code,
            _ => 125,
        }
    }
}
