//! A workload on a bridge network, as CNI's bridge and portmap plugins would put it there: the
//! network's bridge (made on first use, with the gateway's address and the network's firewall
//! rules), a veth pair whose host end is on the bridge and whose other end is `eth0` in the
//! workload's network namespace (a container) or a tap device on the bridge behind its
//! virtio-net device (a VM), an address leased for it, a default route through the gateway,
//! and its published ports.

use crate::firewall::PortRule;
use crate::netlink::{self, Netlink};
use crate::ports::PortSpec;
use crate::{NetError, Network, NetworkStore};
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;

/// The interface a workload sees.
pub const WORKLOAD_LINK: &str = "eth0";

/// Where a workload's interface goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// A container: `eth0` of a veth pair, in the network namespace of this process.
    Namespace(i32),
    /// A VM: a tap device on the bridge, for its virtio-net device (the guest configures
    /// its own interface, from what it is given).
    Tap,
}

/// A workload's place on a network.
#[derive(Debug)]
pub struct Attachment {
    pub network: Network,
    pub addr: Ipv4Addr,
    /// Its link on the bridge: the veth's host end, or the VM's tap.
    pub host_link: String,
    /// Its published ports, each with its host port.
    pub ports: Vec<PortSpec>,
    /// Its id.
    pub owner: String,
    /// A VM's tap device (to hand to its VMM), and the MAC address its interface takes.
    pub tap: Option<std::os::fd::OwnedFd>,
    pub mac: [u8; 6],
}

/// The bridge of `network` in this network namespace: made (with the gateway's address, up,
/// its firewall rules in place) unless it is there. Concurrent runs may race to make it; the
/// loser finds it made.
fn ensure_bridge(
    store: &NetworkStore,
    nl: &mut Netlink,
    network: &Network,
) -> Result<(), NetError> {
    if netlink::index(&network.bridge).is_ok() {
        return Ok(());
    }
    match nl.add_bridge(&network.bridge) {
        Ok(()) => {}
        Err(_) if netlink::index(&network.bridge).is_ok() => return Ok(()),
        Err(e) => return Err(e),
    }
    let made = (|| {
        nl.add_address(&network.bridge, network.gateway, network.subnet.prefix)?;
        nl.set_up(&network.bridge)?;
        store.firewall().add_network(network)
    })();
    if made.is_err() {
        // Half a bridge would be found and used by the next run.
        let _ = nl.delete_link(&network.bridge);
    }
    made
}

/// Takes away what `ensure_bridge` made for `network` in this network namespace (if a workload
/// ever made it here): its bridge, then its firewall rules. Both are tried; the first failure
/// is returned.
pub fn remove_bridge(store: &NetworkStore, network: &Network) -> Result<(), NetError> {
    let link = match netlink::index(&network.bridge) {
        Ok(_) => Netlink::open().and_then(|mut nl| nl.delete_link(&network.bridge)),
        Err(_) => Ok(()),
    };
    let rules = store.firewall().remove_network(&network.name);
    link.and(rules)
}

/// Puts workload `owner` (its id) on `network` at `endpoint`, and publishes `ports` to it.
pub fn attach(
    store: &NetworkStore,
    network: &Network,
    owner: &str,
    endpoint: Endpoint,
    ports: &[PortSpec],
) -> Result<Attachment, NetError> {
    let leases = store.leases(&network.name);
    let addr = leases.allocate(&network.subnet, owner)?;
    let short = &owner[..owner.len().min(11)];
    let host_link = match endpoint {
        Endpoint::Namespace(_) => format!("veth{short}"),
        Endpoint::Tap => format!("tap{short}"),
    };
    let o = addr.octets();
    let mut att = Attachment {
        network: network.clone(),
        addr,
        host_link,
        ports: Vec::new(),
        owner: owner.to_string(),
        tap: None,
        // docker's: locally administered, then the address.
        mac: [0x02, 0x42, o[0], o[1], o[2], o[3]],
    };
    let plumbed = match endpoint {
        Endpoint::Namespace(pid) => plumb(store, &att, pid),
        Endpoint::Tap => plug_tap(store, &att).map(|tap| att.tap = Some(tap)),
    };
    let done = plumbed.and_then(|()| {
        att.ports = store.ports().claim(ports, owner)?;
        store.firewall().publish(owner, &port_rules(&att))
    });
    if let Err(e) = done {
        // The workload lives on (its creator removes it): its veth is taken away here (a
        // tap goes with its descriptor).
        if att.tap.take().is_none() {
            if let Ok(mut nl) = Netlink::open() {
                let _ = nl.delete_link(&att.host_link);
            }
        }
        detach(store, &att);
        return Err(e);
    }
    Ok(att)
}

fn port_rules(att: &Attachment) -> Vec<PortRule> {
    att.ports
        .iter()
        .filter_map(|p| {
            Some(PortRule {
                proto: p.proto,
                host_ip: p.host_ip,
                host_port: p.host_port?,
                addr: att.addr,
                port: p.port,
            })
        })
        .collect()
}

/// A tap device on the network's bridge, up; it goes when its descriptor closes.
fn plug_tap(store: &NetworkStore, att: &Attachment) -> Result<std::os::fd::OwnedFd, NetError> {
    let mut nl = Netlink::open()?;
    ensure_bridge(store, &mut nl, &att.network)?;
    let tap = crate::tap::open(&att.host_link)?;
    nl.set_master(&att.host_link, &att.network.bridge)?;
    nl.set_up(&att.host_link)?;
    Ok(tap)
}

fn plumb(store: &NetworkStore, att: &Attachment, pid: i32) -> Result<(), NetError> {
    let ns_path = format!("/proc/{pid}/ns/net");
    let ns = std::fs::File::open(&ns_path).map_err(|e| NetError::Io(format!("{ns_path}: {e}")))?;
    let mut nl = Netlink::open()?;
    ensure_bridge(store, &mut nl, &att.network)?;
    nl.add_veth(
        &att.host_link,
        WORKLOAD_LINK,
        Some(ns.as_raw_fd()),
        Some(att.mac),
    )?;
    nl.set_master(&att.host_link, &att.network.bridge)?;
    nl.set_up(&att.host_link)?;
    // Inside: a thread of ours enters the workload's namespace (only that thread moves).
    let (addr, prefix, gateway) = (att.addr, att.network.subnet.prefix, att.network.gateway);
    std::thread::spawn(move || -> Result<(), NetError> {
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| NetError::Io(format!("entering {ns_path}: {e}")))?;
        let mut inside = Netlink::open()?;
        inside.set_up("lo")?;
        inside.set_up(WORKLOAD_LINK)?;
        inside.add_address(WORKLOAD_LINK, addr, prefix)?;
        inside.add_default_route(gateway)
    })
    .join()
    .map_err(|_| NetError::Io("configuring the workload's interface: the thread panicked".into()))?
}

/// Takes an ended workload off its network: its port rules, its ports and its lease. Its veth
/// pair goes with its network namespace, which the kernel tears down once the workload's last
/// process is gone; deleting the host end here instead would cost a network-wide RCU wait
/// (12-28 ms measured here) on every run's way out.
pub fn detach(store: &NetworkStore, att: &Attachment) {
    if !att.ports.is_empty() {
        if let Err(e) = store.firewall().unpublish(|id| id == att.owner) {
            // Left for the next isola command's cleanup (the claims stay until then).
            eprintln!(
                "isola: warning: unpublishing the ports of {}: {e}",
                att.owner
            );
            return;
        }
        store.ports().release(&att.ports);
    }
    store.leases(&att.network.name).release(att.addr);
}
