//! isola's VM isolation level: a small KVM virtual machine monitor built on the rust-vmm crates.
//! So far it holds the probe that tells whether this host's KVM can run an unmodified guest.

pub mod probe;
