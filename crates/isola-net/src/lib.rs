//! isola's networks, docker's model at both isolation levels: named networks (the default one
//! is `bridge`), each an IPv4 subnet behind a Linux bridge, and one address per workload on it.
//!
//! Read: `subnet.rs` (IPv4 prefixes: parse, overlap, hosts), `store.rs` (the networks: create,
//! list, remove, with the checks that keep subnets apart from each other and from the host's
//! routes), `ipam.rs` (address leases: one file each, made atomically, so concurrent runs never
//! share an address and a killed owner's lease is found and freed), `netlink.rs` (bridges, veth
//! pairs, addresses and routes, asked of the kernel directly), `tap.rs` (a VM's tap device),
//! `firewall.rs` (masquerading, isolation and published ports in nftables), `ports.rs` (`-p`),
//! `attach.rs` (a workload — a container's network namespace or a VM's tap — put on a network).

pub mod attach;
pub mod firewall;
pub mod ipam;
pub mod netlink;
pub mod ports;
pub mod probe;
pub mod store;
pub mod subnet;
pub mod tap;

pub use store::{Network, NetworkStore};
pub use subnet::Ipv4Net;

/// What can go wrong with networks; each message names the value at fault.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// Malformed input (a name, a subnet).
    #[error("{0}")]
    Invalid(String),
    #[error("network {0:?} already exists")]
    Exists(String),
    #[error("no such network: {0:?}")]
    NotFound(String),
    /// The subnet would overlap another network's or a route of this host.
    #[error("{0}")]
    Overlap(String),
    /// Workloads still use the network.
    #[error("network {name:?} is in use by {users} workload(s)")]
    InUse { name: String, users: usize },
    /// A pre-defined network (`bridge`) cannot be removed.
    #[error("{0:?} is a pre-defined network and cannot be removed")]
    Predefined(String),
    /// A host port cannot be published (taken, or none free).
    #[error("{0}")]
    Port(String),
    /// No address is left on the network.
    #[error("network {0:?} has no free address left")]
    Exhausted(String),
    #[error("{0}")]
    Io(String),
}

/// Holds an exclusive `flock` on `path` (made, with its directory, if missing) until dropped.
pub(crate) fn exclusive_lock(
    path: &std::path::Path,
) -> Result<nix::fcntl::Flock<std::fs::File>, NetError> {
    let io = |e: std::io::Error| NetError::Io(format!("{}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io)?;
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| io(e.into()))
}
