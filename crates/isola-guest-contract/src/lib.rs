//! The one contract between isola's host side (`isola-vmm`, `isola`) and its guest init: both
//! compile against this crate, so neither can drift from the other. No dependencies: the guest
//! init is a small static binary.
//!
//! - `frame.rs`: the channel (a virtio console): typed frames each way, one encoder, one decoder;
//! - `processes.rs`: the workload's processes, as a runtime's `ps` of a VM gets them;
//! - `network.rs`: a VM's place on a network (its eth0, /etc/hosts, /etc/resolv.conf);
//! - `mounts.rs`: a VM workload's shared directories (virtio-fs) and tmpfs mounts;
//! - `boot.rs`: what the host puts in the initramfs and on the kernel command line, and the boot
//!   timer's phases;
//! - `GuestError`: what went wrong in the guest, by kind, so the host branches on a kind rather
//!   than on matched text.
//!
//! The host always ships the guest init it was built with (it is in the initramfs), so both ends
//! run the same version: anything the decoder does not know is corruption, not a newer peer.

pub mod boot;
pub mod frame;
pub mod mounts;
pub mod network;
pub mod processes;

/// Why the guest could not run the workload, by kind (sent in an `Error` frame).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The root disk image would not mount: the host's cached disk is damaged.
    RootDisk = 1,
    /// Anything else (config.json, mounts, the workload's cgroup, exec preparation).
    Setup = 2,
}

/// An error in the guest: its kind and a one-line message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestError {
    pub kind: ErrorKind,
    pub message: String,
}

impl GuestError {
    pub fn setup(message: impl Into<String>) -> GuestError {
        GuestError {
            kind: ErrorKind::Setup,
            message: message.into(),
        }
    }

    pub fn root_disk(message: impl Into<String>) -> GuestError {
        GuestError {
            kind: ErrorKind::RootDisk,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for GuestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<String> for GuestError {
    fn from(message: String) -> GuestError {
        GuestError::setup(message)
    }
}

impl From<&str> for GuestError {
    fn from(message: &str) -> GuestError {
        GuestError::setup(message)
    }
}
