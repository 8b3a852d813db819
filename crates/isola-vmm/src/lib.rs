//! isola's VM isolation level: a small KVM virtual machine monitor built on the rust-vmm crates.
//!
//! Read `vm.rs` first (one VM from start to end), then `vmm_process.rs` and `jail/` (the VMM as
//! its own jailed process, and what it may still do), then `boot.rs` (loading Linux), `cpu.rs`
//! (a vCPU's boot state), `long_mode.rs`, `devices/`, `virtio/` (and `net_worker.rs`, the network device's own thread). `probe.rs` is what `isola doctor` runs
//! to tell whether this host's KVM can run an unmodified guest at all.

mod boot;
mod cpu;
pub mod devices;
pub mod explain;
mod host_input;
pub mod host_relay;
pub mod initramfs;
pub mod jail;
pub mod layout;
mod long_mode;
mod mptable;
mod net_worker;
pub mod probe;
mod vcpus;
pub mod virtio;
pub mod vm;
pub mod vmm_process;
