//! `isola run --network NAME`: the workload's /etc/hosts and /etc/resolv.conf (files of its
//! bundle: bound into a container, copied into a VM's guest), and the workload put on the
//! network between create and start (a container's network namespace, a VM's tap device).

use crate::paths::Paths;
use crate::records::{self, Record};
use crate::Exit;
use anyhow::{Context, Result};
use isola_guest_contract::network::GuestNetwork;
use isola_net::attach::Attachment;
use isola_net::ports::PortSpec;
use isola_net::NetError;
use isola_oci::lock::{FileLock, Mode};
use isola_sandbox::vm::Nic;
use isola_sandbox::Sandbox;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::Path;

const HOSTS_HEAD: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n";

/// The files as the container starts with them: localhost only, and the host's resolvers (as
/// docker does). Its own line is added once it has an address.
pub fn write_files(dir: &Path) -> Result<()> {
    let hosts = dir.join("hosts");
    std::fs::write(&hosts, HOSTS_HEAD).with_context(|| hosts.display().to_string())?;
    let resolv = dir.join("resolv.conf");
    let host_resolv = std::fs::read("/etc/resolv.conf").unwrap_or_default();
    std::fs::write(&resolv, host_resolv).with_context(|| resolv.display().to_string())?;
    Ok(())
}

/// Puts the sandbox on `network` with `ports` published (a VM gets its interface plugged),
/// and names it and its peers on a user-defined network in its /etc/hosts.
pub fn join(
    paths: &Paths,
    network: &isola_net::Network,
    ports: &[PortSpec],
    dir: &Path,
    record: &Record,
    sandbox: &mut dyn Sandbox,
) -> Result<Attachment> {
    let store = paths.network_store();
    let endpoint = sandbox.network_endpoint();
    let mut att = isola_net::attach::attach(&store, network, &record.id, endpoint, ports).map_err(
        |e| match e {
            NetError::Port(msg) => Exit(125, msg),
            e => Exit(125, format!("--network {}: {e}", network.name)),
        },
    )?;
    let mut lines = format!("{}\t{} {}\n", att.addr, &record.id[..12], record.name);
    if !network.predefined {
        // As docker's user-defined networks: the workloads already on it, by name.
        let all = records::list(paths);
        for (addr, owner) in store.leases(&network.name).list() {
            if let Some(peer) = all.iter().find(|r| r.id == owner && r.id != record.id) {
                lines.push_str(&peer_line(addr, &peer.name));
            }
        }
    }
    let hosts = dir.join("hosts");
    // Appended in place: the container's mount is of this very file.
    let written = std::fs::OpenOptions::new()
        .append(true)
        .open(&hosts)
        .and_then(|mut f| f.write_all(lines.as_bytes()));
    let plugged = written
        .with_context(|| hosts.display().to_string())
        .and_then(|()| plug(&mut att, dir, sandbox));
    if let Err(e) = plugged {
        isola_net::attach::detach(&store, &att);
        return Err(e);
    }
    tell_peers(
        paths,
        &att.network,
        &att.owner,
        &peer_line(att.addr, &record.name),
        Change::Joined,
    );
    Ok(att)
}

/// Takes the ended workload named `name` off its network, and out of its peers' /etc/hosts.
pub fn leave(paths: &Paths, att: &Attachment, name: &str) {
    forget(paths, &att.network, att.addr, &att.owner, name);
    isola_net::attach::detach(&paths.network_store(), att);
}

/// Takes workload `owner` out of its peers' /etc/hosts: when it leaves, and for one whose
/// isola died (kill -9), from the cleanup pass before its address is freed.
pub fn forget(
    paths: &Paths,
    network: &isola_net::Network,
    addr: Ipv4Addr,
    owner: &str,
    name: &str,
) {
    tell_peers(paths, network, owner, &peer_line(addr, name), Change::Left);
}

#[derive(PartialEq)]
enum Change {
    Joined,
    Left,
}

/// On a user-defined network, tells the workloads on it that `owner` joined or left: its
/// `line` appended to, or taken out of, their /etc/hosts (each a file of its bundle, bound
/// into a container and edited in place, watched by a VM's front end which sends the guest
/// each new version; under one lock so concurrent joins and leaves lose no line). Best effort:
/// a peer's file that cannot be edited is skipped.
fn tell_peers(
    paths: &Paths,
    network: &isola_net::Network,
    owner: &str,
    line: &str,
    change: Change,
) {
    if network.predefined {
        return;
    }
    let lock = paths.net_run().join("hosts.lock");
    let Ok(_lock) = FileLock::acquire(&lock, Mode::Exclusive) else {
        return;
    };
    for (_, peer) in paths.network_store().leases(&network.name).list() {
        if peer == owner {
            continue;
        }
        let hosts = paths.bundles().join(&peer).join("hosts");
        let _ = match change {
            // Unless the peer, joining at the same time, named it already.
            Change::Joined => std::fs::read_to_string(&hosts).and_then(|text| {
                if text.split_inclusive('\n').any(|l| l == line) {
                    return Ok(());
                }
                std::fs::OpenOptions::new()
                    .append(true)
                    .open(&hosts)
                    .and_then(|mut f| f.write_all(line.as_bytes()))
            }),
            Change::Left => std::fs::read_to_string(&hosts).and_then(|text| {
                let kept: String = text.split_inclusive('\n').filter(|l| *l != line).collect();
                if kept.len() == text.len() {
                    return Ok(());
                }
                // Rewritten in place (the same inode is mounted in the peer).
                std::fs::OpenOptions::new()
                    .write(true)
                    .truncate(true)
                    .open(&hosts)
                    .and_then(|mut f| f.write_all(kept.as_bytes()))
            }),
        };
    }
}

/// How a workload's peers name it in their /etc/hosts: one line, the same whoever writes it
/// (a joiner naming those there, or telling them of itself), so a line is found and never
/// written twice.
fn peer_line(addr: Ipv4Addr, name: &str) -> String {
    format!("{addr}\t{name}\n")
}

/// A VM's interface: its tap, its address, and the files its guest puts in /etc.
fn plug(att: &mut Attachment, dir: &Path, sandbox: &mut dyn Sandbox) -> Result<()> {
    let Some(tap) = att.tap.take() else {
        return Ok(());
    };
    let resolv = dir.join("resolv.conf");
    let nic = Nic {
        tap,
        guest: GuestNetwork {
            address: att.addr,
            prefix: att.network.subnet.prefix,
            gateway: att.network.gateway,
            mac: att.mac,
        },
        hosts: dir.join("hosts"),
        resolv_conf: std::fs::read(&resolv).with_context(|| resolv.display().to_string())?,
    };
    sandbox
        .plug(nic)
        .map_err(|e| Exit(125, format!("--network {}: {e}", att.network.name)).into())
}
