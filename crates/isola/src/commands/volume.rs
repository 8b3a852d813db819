//! `isola volume create|ls|rm|inspect|prune`: the named volumes workloads mount with `-v
//! NAME:PATH` (see `volumes::store`). A volume any container (running or exited) still names
//! is in use and stays, as docker's.

use crate::paths::Paths;
use crate::records::{self, Record};
use crate::volumes::request::valid_volume_name;
use crate::volumes::store::{Volume, VolumeStore};
use anyhow::{bail, Result};

/// The containers whose mounts name volume `name`.
fn users<'r>(all: &'r [Record], name: &str) -> Vec<&'r Record> {
    all.iter()
        .filter(|r| crate::volumes::uses(&r.mounts, name))
        .collect()
}

pub fn create(paths: &Paths, name: Option<&str>) -> Result<i32> {
    let name = match name {
        Some(n) if !valid_volume_name(n) => bail!(
            "volume name {n:?}: expected 2-128 letters, digits, '_', '.' or '-', starting with a letter or digit"
        ),
        Some(n) => n.to_string(),
        None => records::new_id()?,
    };
    let store = VolumeStore::new(paths);
    let _lock = store.lock()?;
    store.remove_leftovers();
    // As docker: creating one that exists is no error.
    store.get_or_create(&name, false)?;
    println!("{name}");
    Ok(0)
}

pub fn ls(paths: &Paths, quiet: bool) -> Result<i32> {
    let volumes = VolumeStore::new(paths).list();
    let mut out = String::new();
    if !quiet {
        out.push_str("DRIVER    VOLUME NAME\n");
    }
    for v in &volumes {
        if !quiet {
            out.push_str("local     ");
        }
        out.push_str(&v.name);
        out.push('\n');
    }
    print!("{out}");
    Ok(0)
}

/// Removes each volume; one in use or unknown is said on stderr and the rest go on, as docker
/// does. Exit 1 if any failed.
pub fn rm(paths: &Paths, names: &[String]) -> Result<i32> {
    records::cleanup(paths);
    let store = VolumeStore::new(paths);
    let _lock = store.lock()?;
    let all = records::list(paths);
    let mut code = 0;
    for name in names {
        let using = users(&all, name);
        let result = match using.first() {
            Some(r) => Err(anyhow::anyhow!(
                "volume {name} is in use by container {} ({}); remove it first",
                r.name,
                &r.id[..12]
            )),
            None => store.remove(name),
        };
        match result {
            Ok(()) => println!("{name}"),
            Err(e) => {
                eprintln!("isola: {e:#}");
                code = 1;
            }
        }
    }
    Ok(code)
}

fn inspect_one(store: &VolumeStore, v: &Volume, all: &[Record]) -> serde_json::Value {
    let containers: Vec<serde_json::Value> = users(all, &v.name)
        .into_iter()
        .map(|r| serde_json::json!({"Id": r.id, "Name": r.name}))
        .collect();
    serde_json::json!({
        "Name": v.name,
        "Driver": "local",
        "Mountpoint": store.data(&v.name),
        "CreatedAt": isola_container::state::rfc3339(v.created, 0),
        "Scope": "local",
        "Anonymous": v.anonymous,
        "Containers": containers,
    })
}

/// Prints a JSON array of the volumes named; an unknown one fails the command (exit 1) after
/// the ones found are printed, as docker does.
pub fn inspect(paths: &Paths, names: &[String]) -> Result<i32> {
    let store = VolumeStore::new(paths);
    let all = records::list(paths);
    let mut out = Vec::new();
    let mut code = 0;
    for name in names {
        match store.get(name) {
            Ok(v) => out.push(inspect_one(&store, &v, &all)),
            Err(e) => {
                eprintln!("isola: {e:#}");
                code = 1;
            }
        }
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::Value::from(out))?
    );
    Ok(code)
}

/// Removes the volumes no container names: the anonymous ones, or all with `--all` (docker's
/// `volume prune [-a]`).
pub fn prune(paths: &Paths, all_volumes: bool) -> Result<i32> {
    records::cleanup(paths);
    let store = VolumeStore::new(paths);
    let _lock = store.lock()?;
    store.remove_leftovers();
    let all = records::list(paths);
    let mut out = String::from("Deleted Volumes:\n");
    for v in store.list() {
        if (v.anonymous || all_volumes) && users(&all, &v.name).is_empty() {
            store.remove(&v.name)?;
            out.push_str(&v.name);
            out.push('\n');
        }
    }
    print!("{out}");
    Ok(0)
}
