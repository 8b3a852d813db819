//! The networks: `<dir>/<name>.json` for each user-defined one, and `bridge`, the pre-defined
//! default. Creating one checks, under the store's lock, that its name is free and that its
//! subnet overlaps neither another network's nor a route of this host (the network namespace
//! isola runs in).

use crate::firewall::Firewall;
use crate::ipam::Leases;
use crate::ports::PortClaims;
use crate::{Ipv4Net, NetError};
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// The default network's name (docker's), its subnet and its bridge.
pub const DEFAULT_NETWORK: &str = "bridge";
pub const DEFAULT_SUBNET: Ipv4Net = Ipv4Net {
    addr: Ipv4Addr::new(10, 87, 0, 0),
    prefix: 16,
};
pub const DEFAULT_BRIDGE: &str = "isola0";
/// Where user-defined networks' subnets are taken from when none is given: 10.88.0.0/24,
/// 10.88.1.0/24, ... (the first that overlaps nothing).
const AUTO_POOL: (u8, u8) = (10, 88);

/// One network.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Network {
    pub name: String,
    pub id: String,
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    /// The Linux bridge its workloads' interfaces are attached to.
    pub bridge: String,
    /// Seconds since the epoch.
    pub created: u64,
    /// `bridge` is; it cannot be removed.
    #[serde(default)]
    pub predefined: bool,
}

impl Network {
    fn default_network() -> Network {
        Network {
            name: DEFAULT_NETWORK.into(),
            id: "0".repeat(64),
            subnet: DEFAULT_SUBNET,
            gateway: DEFAULT_SUBNET.gateway(),
            bridge: DEFAULT_BRIDGE.into(),
            created: 0,
            predefined: true,
        }
    }
}

/// The networks' directory, and the run-time directory of their leases (see `ipam`), the
/// host ports published (`ports`) and the firewall's lock.
pub struct NetworkStore {
    dir: PathBuf,
    run: PathBuf,
}

fn io(p: &Path, e: std::io::Error) -> NetError {
    NetError::Io(format!("{}: {e}", p.display()))
}

/// docker's rule for names: a letter or digit, then letters, digits, `_ . -`; 1 to 64.
fn check_name(name: &str) -> Result<(), NetError> {
    let b = name.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(NetError::Invalid(format!(
            "network name {name:?}: expected 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit"
        )))
    }
}

/// The IPv4 routes of this network namespace (`/proc/net/route`): (interface, destination),
/// the default route left out.
pub fn host_routes() -> Vec<(String, Ipv4Net)> {
    let text = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let hex = |s: &str| u32::from_str_radix(s, 16).ok();
            // Little-endian hex, as the kernel prints them.
            let dest = Ipv4Addr::from(hex(f.get(1)?)?.swap_bytes());
            let mask = hex(f.get(7)?)?.swap_bytes();
            let prefix = mask.count_ones() as u8;
            (prefix > 0).then(|| (f[0].to_string(), Ipv4Net::containing(dest, prefix)))
        })
        .collect()
}

impl NetworkStore {
    pub fn new(dir: PathBuf, run: PathBuf) -> NetworkStore {
        NetworkStore { dir, run }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    /// The leases of network `name`.
    pub fn leases(&self, name: &str) -> Leases {
        Leases::new(&self.run.join("leases"), name)
    }

    /// The host ports published to workloads.
    pub fn ports(&self) -> PortClaims<'_> {
        PortClaims::new(&self.run)
    }

    /// isola's nftables table.
    pub fn firewall(&self) -> Firewall {
        Firewall::new(self.run.join("firewall.lock"))
    }

    /// Every network, `bridge` first, then by name.
    pub fn list(&self) -> Vec<Network> {
        let mut out = vec![Network::default_network()];
        let mut user: Vec<Network> = std::fs::read_dir(&self.dir)
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                    .filter_map(|e| serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok())
                    .collect()
            })
            .unwrap_or_default();
        user.sort_by(|a: &Network, b| a.name.cmp(&b.name));
        out.extend(user);
        out
    }

    /// The network called `name`, or whose id starts with it (at least 4 characters).
    pub fn get(&self, name: &str) -> Result<Network, NetError> {
        let all = self.list();
        if let Some(n) = all.iter().find(|n| n.name == name) {
            return Ok(n.clone());
        }
        let by_id: Vec<&Network> = all
            .iter()
            .filter(|n| name.len() >= 4 && !n.predefined && n.id.starts_with(name))
            .collect();
        match by_id.as_slice() {
            [one] => Ok((*one).clone()),
            _ => Err(NetError::NotFound(name.to_string())),
        }
    }

    /// Holds the store's lock until dropped.
    fn lock(&self) -> Result<nix::fcntl::Flock<std::fs::File>, NetError> {
        crate::exclusive_lock(&self.dir.join(".lock"))
    }

    /// What `subnet` must not overlap: every network and this host's routes (but those of
    /// isola's own bridges, which are networks already).
    fn check_free(&self, subnet: &Ipv4Net, networks: &[Network]) -> Result<(), NetError> {
        if let Some(n) = networks.iter().find(|n| n.subnet.overlaps(subnet)) {
            return Err(NetError::Overlap(format!(
                "subnet {subnet} overlaps network {:?} ({})",
                n.name, n.subnet
            )));
        }
        let bridges: Vec<&str> = networks.iter().map(|n| n.bridge.as_str()).collect();
        if let Some((dev, route)) = host_routes()
            .into_iter()
            .find(|(dev, r)| r.overlaps(subnet) && !bridges.contains(&dev.as_str()))
        {
            return Err(NetError::Overlap(format!(
                "subnet {subnet} overlaps this host's route to {route} (on {dev})"
            )));
        }
        Ok(())
    }

    /// Creates network `name` on `subnet` (else the first free /24 of 10.88.0.0/16).
    pub fn create(&self, name: &str, subnet: Option<&str>, id: &str) -> Result<Network, NetError> {
        check_name(name)?;
        let subnet: Option<Ipv4Net> = subnet.map(str::parse).transpose()?;
        let _lock = self.lock()?;
        let networks = self.list();
        if networks.iter().any(|n| n.name == name) {
            return Err(NetError::Exists(name.to_string()));
        }
        let subnet = match subnet {
            Some(s) => {
                self.check_free(&s, &networks)?;
                s
            }
            None => (0..=255u8)
                .map(|third| Ipv4Net {
                    addr: Ipv4Addr::new(AUTO_POOL.0, AUTO_POOL.1, third, 0),
                    prefix: 24,
                })
                .find(|s| self.check_free(s, &networks).is_ok())
                .ok_or_else(|| {
                    NetError::Overlap(format!(
                        "no free /24 left in {}.{}.0.0/16: give --subnet",
                        AUTO_POOL.0, AUTO_POOL.1
                    ))
                })?,
        };
        let network = Network {
            name: name.to_string(),
            id: id.to_string(),
            subnet,
            gateway: subnet.gateway(),
            // IFNAMSIZ leaves 15 characters.
            bridge: format!("isola-{}", &id[..id.len().min(9)]),
            created: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            predefined: false,
        };
        let file = self.file(name);
        let tmp = self.dir.join(format!(".{name}.json.tmp"));
        let body = serde_json::to_vec_pretty(&network).map_err(|e| NetError::Io(e.to_string()))?;
        std::fs::write(&tmp, body)
            .and_then(|()| std::fs::rename(&tmp, &file))
            .map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                io(&file, e)
            })?;
        Ok(network)
    }

    /// Removes network `name`: refused for `bridge` and while a live workload (as `alive`
    /// says) holds an address on it.
    pub fn remove(&self, name: &str, alive: impl Fn(&str) -> bool) -> Result<Network, NetError> {
        let _lock = self.lock()?;
        let network = self.get(name)?;
        if network.predefined {
            return Err(NetError::Predefined(network.name));
        }
        let leases = self.leases(&network.name);
        let users = leases.sweep(alive).left;
        if users > 0 {
            return Err(NetError::InUse {
                name: network.name,
                users,
            });
        }
        let file = self.file(&network.name);
        std::fs::remove_file(&file).map_err(|e| io(&file, e))?;
        leases.remove_all();
        Ok(network)
    }
}
