//! What `isola doctor` asks of this host's networking: each thing a bridge network needs is
//! tried for real, in a network namespace made for the probe (its thread's own, gone with it),
//! so nothing is left on the host.

use crate::netlink::Netlink;

/// One check: what was tried, and how it went (what works, or why not).
pub struct Probe {
    pub name: &'static str,
    pub result: Result<String, String>,
}

fn try_all() -> Vec<Probe> {
    let mut out = Vec::new();
    let links = Netlink::open().and_then(|mut nl| {
        nl.add_bridge("isola-probe")?;
        nl.add_veth("isola-probe0", "isola-probe1", None, None)?;
        nl.set_master("isola-probe0", "isola-probe")
    });
    out.push(Probe {
        name: "bridge, veth",
        result: links
            .map(|()| "a bridge and a veth pair on it can be made (bridge networks)".into())
            .map_err(|e| e.to_string()),
    });
    out.push(Probe {
        name: "tun",
        result: crate::tap::open("isola-probet")
            .map(|_| "/dev/net/tun makes tap devices (VMs on bridge networks)".into())
            .map_err(|e| e.to_string()),
    });
    let script = "table ip isola-probe {\n  chain post {\n    type nat hook postrouting priority 100; policy accept;\n    ip saddr 10.0.0.0/8 masquerade\n  }\n}\n";
    out.push(Probe {
        name: "nftables",
        result: crate::firewall::run_script(script)
            .map(|()| "nft applies NAT rules (masquerading, published ports)".into())
            .map_err(|e| e.to_string()),
    });
    out
}

/// Runs the probes in a scratch network namespace.
pub fn probe() -> Vec<Probe> {
    std::thread::spawn(|| {
        // Only this thread moves, and it ends with the probe: the namespace goes with it.
        if let Err(e) = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET) {
            return vec![Probe {
                name: "network namespaces",
                result: Err(format!("unshare(CLONE_NEWNET): {e}")),
            }];
        }
        try_all()
    })
    .join()
    .unwrap_or_default()
}
