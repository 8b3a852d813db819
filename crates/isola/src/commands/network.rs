//! `isola network create|ls|rm|inspect`: the networks workloads join (see isola-net).

use crate::paths::Paths;
use crate::records;
use anyhow::Result;
use isola_net::{NetError, Network};

pub fn create(paths: &Paths, name: &str, subnet: Option<&str>) -> Result<i32> {
    let id = records::new_id()?;
    let network = paths.network_store().create(name, subnet, &id)?;
    println!("{}", network.id);
    Ok(0)
}

pub fn ls(paths: &Paths, quiet: bool) -> Result<i32> {
    let networks = paths.network_store().list();
    if quiet {
        for n in &networks {
            println!("{}", n.name);
        }
        return Ok(0);
    }
    println!(
        "{:<14}{:<24}{:<20}{:<16}BRIDGE",
        "NETWORK ID", "NAME", "SUBNET", "GATEWAY"
    );
    for n in &networks {
        println!(
            "{:<14}{:<24}{:<20}{:<16}{}",
            &n.id[..12],
            n.name,
            n.subnet.to_string(),
            n.gateway.to_string(),
            n.bridge
        );
    }
    Ok(0)
}

/// Removes each network; one that cannot be removed is said on stderr and the rest go on, as
/// docker does. Exit 1 if any failed.
pub fn rm(paths: &Paths, names: &[String]) -> Result<i32> {
    let store = paths.network_store();
    let running = records::running_ids(&records::scan(paths));
    let mut code = 0;
    for name in names {
        match store.remove(name, |owner| running.iter().any(|id| id == owner)) {
            Ok(n) => {
                // Its bridge and rules go with it.
                if let Err(e) = isola_net::attach::remove_bridge(&store, &n) {
                    eprintln!("isola: warning: {e}");
                }
                println!("{}", n.name)
            }
            Err(e) => {
                eprintln!("isola: {e}");
                code = 1;
            }
        }
    }
    Ok(code)
}

fn inspect_one(paths: &Paths, n: &Network) -> serde_json::Value {
    let leases = paths.network_store().leases(&n.name);
    let workloads: Vec<serde_json::Value> = leases
        .list()
        .into_iter()
        .map(|(addr, owner)| serde_json::json!({"id": owner, "ipv4": addr.to_string()}))
        .collect();
    serde_json::json!({
        "Name": n.name,
        "Id": n.id,
        "Created": n.created,
        "Driver": "bridge",
        "Bridge": n.bridge,
        "Subnet": n.subnet.to_string(),
        "Gateway": n.gateway.to_string(),
        "Predefined": n.predefined,
        "Workloads": workloads,
    })
}

/// Prints a JSON array of the networks named; an unknown one fails the command (exit 1) after
/// the ones found are printed, as docker does.
pub fn inspect(paths: &Paths, names: &[String]) -> Result<i32> {
    let store = paths.network_store();
    let mut out = Vec::new();
    let mut code = 0;
    for name in names {
        match store.get(name) {
            Ok(n) => out.push(inspect_one(paths, &n)),
            Err(e @ NetError::NotFound(_)) => {
                eprintln!("isola: {e}");
                code = 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::Value::from(out))?
    );
    Ok(code)
}
