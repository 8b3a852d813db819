//! What isola asks of netfilter, through nftables' `nft` program (Debian's `nftables`
//! package): one table, `inet isola`, that holds everything isola adds and nothing else.
//!
//! - Each network with a bridge: its outbound traffic masqueraded behind the host's address,
//!   its bridge kept apart from every other isola bridge (docker's isolation between networks),
//!   and the host's loopback shut to it (see below). Rules labelled `network NAME`, removed
//!   with its bridge; the table goes with the last network's rules.
//! - Each published port (`-p`): a DNAT from the host port to the workload's address, labelled
//!   `workload ID`, removed when the workload ends, or by the next isola command after a kill.
//!
//! Connections to a published port from the host's own 127.0.0.1 are DNATed in the kernel too
//! (`output` hook), not through a proxy process as docker's userland proxy does: no process per
//! port to keep alive and account for, the workload sees no proxy's address, and a run with
//! `-p` costs two `nft` calls. The price is `route_localnet` on the bridge (a packet from
//! 127.0.0.1 must be allowed to leave through it) — which would also let a workload address the
//! host's loopback services through its gateway (CVE-2020-8558, kube-proxy's); the `input`
//! rule drops such packets unless they answer a connection the host made.
//!
//! Every change is made under one lock, as a single `nft -f` transaction.

use crate::{NetError, Network};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

const TABLE: &str = "inet isola";

/// Every isola bridge's name starts so (`isola0`, `isola-<id>`).
const BRIDGE_PATTERN: &str = "isola*";

/// The chains, hooked where docker's would be; the `publish` chain holds the port rules and is
/// entered for packets to any of the host's own addresses.
const BASE: &str = r#"table inet isola {
  comment "isola: bridge networks and published ports (isola adds and removes what is here)"
  chain prerouting {
    type nat hook prerouting priority -100; policy accept;
    fib daddr type local jump publish
  }
  chain output {
    type nat hook output priority -100; policy accept;
    fib daddr type local jump publish
  }
  chain publish {
  }
  chain postrouting {
    type nat hook postrouting priority 100; policy accept;
  }
  chain forward {
    type filter hook forward priority 0; policy accept;
  }
  chain input {
    type filter hook input priority 0; policy accept;
  }
}
"#;

/// A port published from the host to a workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortRule {
    pub proto: crate::ports::Proto,
    /// The host address it listens on; `None`: every address of the host.
    pub host_ip: Option<std::net::Ipv4Addr>,
    pub host_port: u16,
    pub addr: std::net::Ipv4Addr,
    pub port: u16,
}

/// The table's keeper: `lock` serialises isola's changes to it.
pub struct Firewall {
    lock: PathBuf,
}

fn network_label(name: &str) -> String {
    format!("network {name}")
}

fn workload_label(id: &str) -> String {
    format!("workload {id}")
}

/// Runs `nft ARGS`, `script` on its standard input; its output, or its complaint.
fn nft(args: &[&str], script: Option<&str>) -> Result<String, NetError> {
    let mut child = Command::new("nft")
        .args(args)
        .stdin(if script.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            NetError::Io(if e.kind() == std::io::ErrorKind::NotFound {
                NFT_MISSING.into()
            } else {
                format!("running nft: {e}")
            })
        })?;
    if let (Some(text), Some(mut stdin)) = (script, child.stdin.take()) {
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| NetError::Io(format!("writing to nft: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| NetError::Io(format!("running nft: {e}")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(NetError::Io(format!(
            "nft {}: {}",
            args.join(" "),
            err.lines().next().unwrap_or("failed").trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

const NFT_MISSING: &str = "bridge networks need nftables' `nft` program, which is not installed (Debian: apt install nftables)";

/// Applies an nft script (one transaction); for `probe`.
pub fn run_script(script: &str) -> Result<(), NetError> {
    nft(&["-f", "-"], Some(script)).map(drop)
}

/// A rule of the table: its chain, handle and label.
struct Rule {
    chain: String,
    handle: u64,
    label: String,
}

/// The table's labelled rules, or `None` if there is no table.
fn rules() -> Result<Option<Vec<Rule>>, NetError> {
    let text = match nft(&["-j", "-a", "list", "table", "inet", "isola"], None) {
        Ok(t) => t,
        // No table, or no nft to have made one: nothing of isola's is there.
        Err(NetError::Io(e)) if e.contains("No such file or directory") || e == NFT_MISSING => {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| NetError::Io(format!("nft's listing: {e}")))?;
    let items = json["nftables"].as_array().cloned().unwrap_or_default();
    Ok(Some(
        items
            .iter()
            .filter_map(|i| {
                let r = i.get("rule")?;
                Some(Rule {
                    chain: r["chain"].as_str()?.to_string(),
                    handle: r["handle"].as_u64()?,
                    label: r["comment"].as_str()?.to_string(),
                })
            })
            .collect(),
    ))
}

fn deletions(rules: &[Rule], doomed: impl Fn(&str) -> bool) -> String {
    rules
        .iter()
        .filter(|r| doomed(&r.label))
        .map(|r| format!("delete rule {TABLE} {} handle {}\n", r.chain, r.handle))
        .collect()
}

fn sysctl(path: &str, value: &str) -> Result<(), NetError> {
    std::fs::write(path, value).map_err(|e| NetError::Io(format!("{path}: {e}")))
}

impl Firewall {
    pub fn new(lock: PathBuf) -> Firewall {
        Firewall { lock }
    }

    fn locked(&self) -> Result<nix::fcntl::Flock<std::fs::File>, NetError> {
        crate::exclusive_lock(&self.lock)
    }

    /// The table's rules, the table made first if it is not there.
    fn rules_made(&self) -> Result<Vec<Rule>, NetError> {
        match rules()? {
            Some(r) => Ok(r),
            None => {
                nft(&["-f", "-"], Some(BASE))?;
                Ok(Vec::new())
            }
        }
    }

    /// The rules of `network`, whose bridge has just been made (any earlier ones replaced), and
    /// the host forwarding packets, as a router must.
    pub fn add_network(&self, network: &Network) -> Result<(), NetError> {
        let _lock = self.locked()?;
        let rules = self.rules_made()?;
        let label = network_label(&network.name);
        let (br, subnet) = (&network.bridge, network.subnet);
        let mut script = deletions(&rules, |l| l == label);
        script.push_str(&format!(
            "add rule {TABLE} postrouting ip saddr {subnet} oifname != \"{br}\" masquerade comment \"{label}\"\n\
             add rule {TABLE} postrouting oifname \"{br}\" ip saddr 127.0.0.0/8 masquerade comment \"{label}\"\n\
             add rule {TABLE} forward iifname \"{br}\" oifname \"{BRIDGE_PATTERN}\" oifname != \"{br}\" drop comment \"{label}\"\n\
             add rule {TABLE} input iifname \"{br}\" ip daddr 127.0.0.0/8 ct state != {{ established, related }} drop comment \"{label}\"\n"
        ));
        nft(&["-f", "-"], Some(&script))?;
        sysctl("/proc/sys/net/ipv4/ip_forward", "1")?;
        sysctl(&format!("/proc/sys/net/ipv4/conf/{br}/route_localnet"), "1")
    }

    /// Takes network `name`'s rules away; the table too once no network has any.
    pub fn remove_network(&self, name: &str) -> Result<(), NetError> {
        let _lock = self.locked()?;
        let Some(rules) = rules()? else {
            return Ok(());
        };
        let label = network_label(name);
        let mut script = deletions(&rules, |l| l == label);
        if rules
            .iter()
            .all(|r| r.label == label || !r.label.starts_with("network "))
        {
            script = format!("delete table {TABLE}\n");
        }
        if script.is_empty() {
            return Ok(());
        }
        nft(&["-f", "-"], Some(&script)).map(drop)
    }

    /// Publishes `ports` for workload `owner`.
    pub fn publish(&self, owner: &str, ports: &[PortRule]) -> Result<(), NetError> {
        if ports.is_empty() {
            return Ok(());
        }
        let _lock = self.locked()?;
        self.rules_made()?;
        let label = workload_label(owner);
        let script: String = ports
            .iter()
            .map(|p| {
                let dst = p.host_ip.map_or("meta nfproto ipv4".into(), |ip| format!("ip daddr {ip}"));
                format!(
                    "add rule {TABLE} publish {dst} {} dport {} dnat ip to {}:{} comment \"{label}\"\n",
                    p.proto.as_str(),
                    p.host_port,
                    p.addr,
                    p.port
                )
            })
            .collect();
        nft(&["-f", "-"], Some(&script)).map(drop)
    }

    /// Takes away the port rules of every workload `ended` says has ended.
    pub fn unpublish(&self, ended: impl Fn(&str) -> bool) -> Result<(), NetError> {
        let _lock = self.locked()?;
        let Some(rules) = rules()? else {
            return Ok(());
        };
        let script = deletions(&rules, |l| l.strip_prefix("workload ").is_some_and(&ended));
        if script.is_empty() {
            return Ok(());
        }
        nft(&["-f", "-"], Some(&script)).map(drop)
    }
}
