//! Address leases: one file per taken address, `<leases>/<network>/<A.B.C.D>`, holding the id
//! of the workload that has it. A lease is made whole or not at all (written under a temporary
//! name, then hard-linked to the address: the link fails if another run took the address
//! first), so concurrent runs never share one. Leases live under the run directory, as the
//! bridges they belong to do not outlive a reboot; a killed owner's lease is freed by `sweep`.

use crate::{Ipv4Net, NetError};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// The leases of one network.
pub struct Leases {
    dir: PathBuf,
}

fn io(p: &Path, e: std::io::Error) -> NetError {
    NetError::Io(format!("{}: {e}", p.display()))
}

impl Leases {
    pub fn new(root: &Path, network: &str) -> Leases {
        Leases {
            dir: root.join(network),
        }
    }

    /// Takes the lowest free host address (the first is the gateway's) for `owner`.
    pub fn allocate(&self, net: &Ipv4Net, owner: &str) -> Result<Ipv4Addr, NetError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| io(&self.dir, e))?;
        let tmp = self.dir.join(format!(".{owner}.tmp"));
        std::fs::write(&tmp, owner).map_err(|e| io(&tmp, e))?;
        let taken = (|| {
            for n in 2.. {
                let Some(addr) = net.host(n) else { break };
                let lease = self.dir.join(addr.to_string());
                match std::fs::hard_link(&tmp, &lease) {
                    Ok(()) => return Ok(addr),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                    Err(e) => return Err(io(&lease, e)),
                }
            }
            Err(NetError::Exhausted(self.name()))
        })();
        let _ = std::fs::remove_file(&tmp);
        taken
    }

    /// Gives `addr` back.
    pub fn release(&self, addr: Ipv4Addr) {
        let _ = std::fs::remove_file(self.dir.join(addr.to_string()));
    }

    /// Every lease: the address and its owner.
    pub fn list(&self) -> Vec<(Ipv4Addr, String)> {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out: Vec<(Ipv4Addr, String)> = rd
            .flatten()
            .filter_map(|e| {
                let addr = e.file_name().to_str()?.parse().ok()?;
                let owner = std::fs::read_to_string(e.path()).ok()?;
                Some((addr, owner))
            })
            .collect();
        out.sort();
        out
    }

    /// Frees the leases (and half-made ones) of owners `alive` says are gone; returns how many
    /// leases remain.
    pub fn sweep(&self, alive: impl Fn(&str) -> bool) -> usize {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return 0;
        };
        let mut left = 0;
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let owner = match name.strip_prefix('.').and_then(|n| n.strip_suffix(".tmp")) {
                Some(owner) => owner.to_string(),
                None => std::fs::read_to_string(e.path()).unwrap_or_default(),
            };
            if alive(&owner) {
                left += usize::from(!name.starts_with('.'));
            } else {
                let _ = std::fs::remove_file(e.path());
            }
        }
        left
    }

    /// Removes the (empty) directory of a network that is gone.
    pub fn remove_all(&self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    fn name(&self) -> String {
        self.dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_owners_get_distinct_addresses_and_the_dead_are_swept() {
        let root = std::env::temp_dir().join(format!("isola-ipam-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let net: Ipv4Net = "10.90.0.0/26".parse().unwrap();
        let threads: Vec<_> = (0..40)
            .map(|i| {
                let root = root.clone();
                std::thread::spawn(move || {
                    Leases::new(&root, "n")
                        .allocate(&net, &format!("owner{i}"))
                        .unwrap()
                })
            })
            .collect();
        let mut got: Vec<Ipv4Addr> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        got.sort();
        got.dedup();
        assert_eq!(got.len(), 40, "every owner its own address");
        assert!(!got.contains(&net.gateway()));
        let leases = Leases::new(&root, "n");
        // A /26 has 62 hosts: the gateway, then 61 for workloads.
        for i in 40..61 {
            leases.allocate(&net, &format!("owner{i}")).unwrap();
        }
        assert!(matches!(
            leases.allocate(&net, "one-too-many"),
            Err(NetError::Exhausted(_))
        ));
        let freed = leases
            .list()
            .into_iter()
            .find(|(_, o)| o == "owner7")
            .map(|(a, _)| a)
            .unwrap();
        let left = leases.sweep(|owner| owner != "owner7");
        assert_eq!(left, 60);
        assert!(leases.list().iter().all(|(_, o)| o != "owner7"));
        assert_eq!(leases.allocate(&net, "again").unwrap(), freed);
        let _ = std::fs::remove_dir_all(&root);
    }
}
