//! One reading of the OCI runtime spec's process, for both isolation levels: the container init
//! (crates/isola-container) and the guest init (guest/init) call these same functions, so a
//! workload gets the same command lookup (126/127 and their messages), rlimits, user, groups,
//! capabilities, no_new_privs and cgroup limits behind either wall — by construction, not only
//! because the parity suite checks.
//!
//! - `plan.rs`: the spec's process resolved once (feature `spec`, which needs oci-spec, makes
//!   it; the guest init only reads it);
//! - `exec.rs`: finding the command on PATH and exec'ing it, with docker's exit codes;
//! - `identity.rs`: rlimits, user and groups, capabilities, no_new_privs, a new session keyring;
//! - `limits.rs`: `linux.resources` as cgroup v2 files;
//! - `tiny_init.rs`: where `--init`'s tiny init is, and the signals it takes;
//! - `explain.rs`: `--explain`'s switch and its lines, for both levels.

pub mod exec;
pub mod explain;
pub mod identity;
pub mod limits;
pub mod plan;
pub mod tiny_init;

pub use plan::Plan;
