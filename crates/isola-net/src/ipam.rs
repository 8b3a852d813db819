//! Address leases: one file per taken address, `<leases>/<network>/<A.B.C.D>`, holding the id
//! of the workload that has it. A lease is made whole or not at all (written under a temporary
//! name, then hard-linked to the address: the link fails if another run took the address
//! first), so concurrent runs never share one. Leases live under the run directory, as the
//! bridges they belong to do not outlive a reboot; a killed owner's lease is freed by `sweep`.

use crate::{Ipv4Net, NetError};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// What a sweep found: leases of live owners left, and of dead ones freed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Swept {
    pub left: usize,
    pub freed: usize,
}

/// The leases of one network (or any set of keys claimed by owners: see `ports`).
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
        self.with_claim_file(owner, |claim| {
            for n in 2.. {
                let Some(addr) = net.host(n) else { break };
                if claim(&addr.to_string())? {
                    return Ok(addr);
                }
            }
            Err(NetError::Exhausted(self.name()))
        })
    }

    /// Takes `key` for `owner`; false if another owner has it.
    pub fn claim(&self, key: &str, owner: &str) -> Result<bool, NetError> {
        self.with_claim_file(owner, |claim| claim(key))
    }

    /// Runs `f` with a claimer: an owner's file written once under a temporary name, then
    /// hard-linked to each key tried (the link fails if the key is taken).
    fn with_claim_file<T>(
        &self,
        owner: &str,
        f: impl FnOnce(&dyn Fn(&str) -> Result<bool, NetError>) -> Result<T, NetError>,
    ) -> Result<T, NetError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| io(&self.dir, e))?;
        let tmp = self.dir.join(format!(".{owner}.tmp"));
        std::fs::write(&tmp, owner).map_err(|e| io(&tmp, e))?;
        let claim = |key: &str| {
            let lease = self.dir.join(key);
            match std::fs::hard_link(&tmp, &lease) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(io(&lease, e)),
            }
        };
        let taken = f(&claim);
        let _ = std::fs::remove_file(&tmp);
        taken
    }

    /// Gives `addr` back.
    pub fn release(&self, addr: Ipv4Addr) {
        self.release_key(&addr.to_string());
    }

    /// Gives `key` back.
    pub fn release_key(&self, key: &str) {
        let _ = std::fs::remove_file(self.dir.join(key));
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

    /// Every lease and half-made one: (its file, whether half-made, its owner).
    fn entries(&self) -> Vec<(PathBuf, bool, String)> {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        rd.flatten()
            .map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                match name.strip_prefix('.').and_then(|n| n.strip_suffix(".tmp")) {
                    Some(owner) => (e.path(), true, owner.to_string()),
                    None => {
                        let owner = std::fs::read_to_string(e.path()).unwrap_or_default();
                        (e.path(), false, owner)
                    }
                }
            })
            .collect()
    }

    /// Whether an owner `pick` picks holds a lease (or a half-made one).
    pub fn held_by(&self, pick: impl Fn(&str) -> bool) -> bool {
        self.entries().iter().any(|(_, _, owner)| pick(owner))
    }

    /// Frees the leases (and half-made ones) of owners `alive` says are gone.
    pub fn sweep(&self, alive: impl Fn(&str) -> bool) -> Swept {
        let mut swept = Swept::default();
        for (path, half_made, owner) in self.entries() {
            if alive(&owner) {
                swept.left += usize::from(!half_made);
            } else {
                swept.freed += usize::from(std::fs::remove_file(path).is_ok());
            }
        }
        swept
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
        let swept = leases.sweep(|owner| owner != "owner7");
        assert_eq!(swept, Swept { left: 60, freed: 1 });
        assert!(leases.list().iter().all(|(_, o)| o != "owner7"));
        assert_eq!(leases.allocate(&net, "again").unwrap(), freed);
        let _ = std::fs::remove_dir_all(&root);
    }
}
