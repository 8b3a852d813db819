//! The cleanup pass every command makes: removes what isola processes that died (kill -9, a
//! crash, a reboot) left behind — a container's processes, cgroups and state directory, its
//! rootfs mount, the container itself if it was started with --rm or never got going, a
//! directory whose record is missing or damaged, a half-removed container, its network address
//! lease, name in its peers' /etc/hosts and published ports, an exited container's root left
//! mounted by a killed `isola cp` — and the temp files of imports, pulls, unpacks and disk builds (`leftovers`).

use super::{claim::names_lock, lock_if_unowned, remove_bundle, remove_tree, scan};
use super::{Damaged, Entry, Record};
use crate::paths::Paths;
use isola_container::cgroups::{Cgroup, Hierarchies};

/// Runs the pass; returns the IDs of the containers it cleaned.
pub fn cleanup(paths: &Paths) -> Vec<String> {
    let mut cleaned = Vec::new();
    // Run state first: processes and cgroups.
    if let Ok(rd) = std::fs::read_dir(paths.states()) {
        for e in rd.filter_map(|e| e.ok()) {
            if let Ok(Some(st)) = isola_container::clean_stale(&e.path()) {
                cleaned.push(st.id);
            }
        }
    }
    // Then containers whose owner is gone but whose status says they were still going.
    let entries = scan(paths);
    let running = super::running_ids(&entries);
    // (id, name) of every readable record, before the loop below removes some.
    let names: Vec<(String, String)> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Ok(r) => Some((r.id.clone(), r.name.clone())),
            Entry::Damaged(_) => None,
        })
        .collect();
    for entry in entries {
        let id = match entry {
            Entry::Ok(r) => clean_record(paths, *r),
            Entry::Damaged(d) => clean_damaged(paths, d),
        };
        if let Some(id) = id {
            if !cleaned.contains(&id) {
                cleaned.push(id);
            }
        }
    }
    remove_half_removed(paths);
    // Addresses of workloads whose isola is gone (their veths went with their namespaces),
    // their names in their peers' /etc/hosts, and their published ports: the rules first (a
    // port is claimed before its rule is made).
    let store = paths.network_store();
    // An owner is alive if it was at the scan above, or is now: a run or start that began since
    // writes its record, with itself as owner, before it takes an address or a port, and must
    // not lose them (or its half-made claim) to this pass.
    let alive = |owner: &str| {
        running.iter().any(|id| id == owner)
            || (!owner.is_empty()
                && owner.chars().all(|c| c.is_ascii_hexdigit())
                && Record::load(&paths.bundles().join(owner)).is_ok_and(|r| r.owner_alive()))
    };
    for n in store.list() {
        let leases = store.leases(&n.name);
        for (addr, owner) in leases.list() {
            match names.iter().find(|(id, _)| *id == owner) {
                Some((_, name)) if !alive(&owner) => {
                    crate::commands::run_network::forget(paths, &n, addr, &owner, name)
                }
                _ => {}
            }
        }
        leases.sweep(alive);
    }
    if store.ports().held_by(|owner| !alive(owner)) {
        match store.firewall().unpublish(|owner| !alive(owner)) {
            Ok(()) => {
                store.ports().sweep(alive);
            }
            Err(e) => eprintln!("isola: warning: removing the port rules of ended workloads: {e}"),
        }
    }
    // And what killed imports, pulls, unpacks and disk builds left in the image side; a
    // failure here is left for `isola image prune` to report.
    let _ = crate::leftovers::remove_dead(paths);
    // The directories of VMs' virtio-fs back ends whose isola was killed.
    isola_sandbox::vm::shares::remove_dead(&paths.run, isola_oci::store::writer_alive);
    cleaned
}

/// A readable record: if its owner died before it exited, records the exit (137) or removes it.
fn clean_record(paths: &Paths, mut r: Record) -> Option<String> {
    if r.status == "exited" {
        // An exited container's root mounted by an `isola cp` that was killed part way.
        let (dir, rootfs) = (r.dir(paths), r.dir(paths).join("rootfs"));
        if isola_oci::overlay::is_mounted(&rootfs) {
            if let Some(_lock) = lock_if_unowned(&dir) {
                let _ = isola_oci::overlay::unmount(&rootfs);
            }
        }
        return None;
    }
    if r.owner_alive() {
        return None;
    }
    let _lock = lock_if_unowned(&r.dir(paths))?;
    let _ = isola_oci::overlay::unmount(&r.dir(paths).join("rootfs"));
    remove_cgroup(&r.id);
    if r.auto_remove || r.status == "creating" {
        let _ = remove_bundle(paths, &r.id);
    } else {
        r.status = "exited".into();
        r.exit_code = Some(137);
        r.finished_ns = Some(super::now_ns());
        let _ = r.save(paths);
    }
    Some(r.id)
}

/// A directory without a readable record whose owner is gone: one a kill stopped before its
/// record was written, or one whose record was damaged since. Either is removed.
fn clean_damaged(paths: &Paths, d: Damaged) -> Option<String> {
    let dir = paths.bundles().join(&d.id);
    // Under the names lock: a run makes a directory and writes its record holding it.
    let _names = names_lock(paths).ok()?;
    let _lock = lock_if_unowned(&dir)?;
    if super::Record::load(&dir).is_ok() || !dir.exists() {
        return None; // written (or removed) since the scan
    }
    if dir.join("record.json").exists() {
        eprintln!("isola: warning: container {}: {}; removing it", d.id, d.why);
    }
    let _ = isola_oci::overlay::unmount(&dir.join("rootfs"));
    remove_cgroup(&d.id);
    let _ = remove_bundle(paths, &d.id);
    Some(d.id)
}

/// The cgroup `/isola/ID` of a container whose owner is gone: a VM's VMM cgroup (the VMM died
/// with its isola, its cgroup did not); a container's own is removed with its state.
fn remove_cgroup(id: &str) {
    if let Ok(hier) = Hierarchies::detect() {
        let path = crate::commands::run::cgroup_path(id);
        let _ = Cgroup::existing(&hier, &path).remove();
    }
}

/// `.removing-ID` directories whose remover was killed part way.
fn remove_half_removed(paths: &Paths) {
    let Ok(rd) = std::fs::read_dir(paths.bundles()) else {
        return;
    };
    for e in rd.filter_map(|e| e.ok()) {
        if !e.file_name().to_string_lossy().starts_with(".removing-") {
            continue;
        }
        if let Some(_lock) = lock_if_unowned(&e.path()) {
            let _ = isola_oci::overlay::unmount(&e.path().join("rootfs"));
            let _ = remove_tree(&e.path());
        }
    }
}
