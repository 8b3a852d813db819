//! Seccomp: the second wall after capabilities. Rules in the OCI runtime spec's form
//! (`linux.seccomp` of a bundle's config.json, which isola's default profile is also written in,
//! and the jailed VMM's per-thread allowlists) are compiled into a classic BPF program. The
//! container init installs its filter as its last step before exec, so every system call of the
//! workload passes through it; each VMM thread installs its own as it starts.
//!
//! `compile.rs` (feature `compile`, on by default: it needs oci-spec) turns rules into a
//! program; `filter.rs` installs one and carries it as bytes (all the guest init needs);
//! `bpf.rs` assembles and interprets classic BPF.

// The assembler half serves only the compiler; the interpreter serves `Filter::verdict` too.
#[cfg_attr(not(feature = "compile"), allow(dead_code))]
mod bpf;
#[cfg(feature = "compile")]
mod compile;
mod filter;
mod syscalls_x86_64;

#[cfg(feature = "compile")]
pub use compile::{compile, compile_spec};
pub use filter::Filter;
use syscalls_x86_64::SYSCALLS;

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;

/// The number of a system call on x86-64 (a linear search: for tests and single look-ups;
/// `compile` builds a map once).
pub fn syscall_number(name: &str) -> Option<u32> {
    SYSCALLS.iter().find(|(n, _)| *n == name).map(|(_, nr)| *nr)
}

/// The name of an x86-64 system call number.
pub fn syscall_name(nr: u32) -> Option<&'static str> {
    SYSCALLS
        .iter()
        .find(|(_, n)| *n == nr)
        .map(|(name, _)| *name)
}
