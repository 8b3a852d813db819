//! Container records: one directory per container under the data root holding its bundle
//! (`config.json`, `rootfs/` = overlay mount point, `upper/`, `work/`) and `record.json`
//! (name, image, status, exit code, owner). The cleanup pass lives here too.

use crate::paths::Paths;
use anyhow::{bail, Context, Result};
use isola_container::state;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub name: String,
    pub image: String,
    pub command: Vec<String>,
    pub isolation: String,
    /// Seconds since the epoch.
    pub created: u64,
    /// creating | running | exited
    pub status: String,
    pub exit_code: Option<i32>,
    pub auto_remove: bool,
    pub owner_pid: i32,
    pub owner_start_time: u64,
}

impl Record {
    pub fn dir(&self, paths: &Paths) -> PathBuf {
        paths.bundles().join(&self.id)
    }

    pub fn save(&self, paths: &Paths) -> Result<()> {
        let dir = self.dir(paths);
        let tmp = dir.join(".record.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)
            .with_context(|| tmp.display().to_string())?;
        std::fs::rename(&tmp, dir.join("record.json"))
            .with_context(|| dir.display().to_string())?;
        Ok(())
    }

    pub fn load(dir: &Path) -> Result<Record> {
        let p = dir.join("record.json");
        let bytes = std::fs::read(&p).with_context(|| p.display().to_string())?;
        serde_json::from_slice(&bytes).with_context(|| p.display().to_string())
    }

    pub fn owner_alive(&self) -> bool {
        state::is_alive(self.owner_pid, self.owner_start_time)
    }
}

/// Every container record (unreadable ones skipped).
pub fn list(paths: &Paths) -> Vec<Record> {
    let mut out: Vec<Record> = std::fs::read_dir(paths.bundles())
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| Record::load(&e.path()).ok())
                .collect()
        })
        .unwrap_or_default();
    out.sort_by_key(|r| std::cmp::Reverse(r.created));
    out
}

/// Finds a container by exact name, full ID or unique ID prefix.
pub fn find(paths: &Paths, key: &str) -> Result<Record> {
    let all = list(paths);
    if let Some(r) = all.iter().find(|r| r.name == key || r.id == key) {
        return Ok(r.clone());
    }
    let matches: Vec<&Record> = all.iter().filter(|r| r.id.starts_with(key)).collect();
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] => bail!("no such container: {key}"),
        _ => bail!("container ID prefix {key:?} is ambiguous"),
    }
}

/// Unmounts the container's rootfs and deletes its directory.
pub fn remove_bundle(paths: &Paths, id: &str) -> Result<()> {
    let dir = paths.bundles().join(id);
    isola_oci::overlay::unmount(&dir.join("rootfs"))?;
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| dir.display().to_string()),
    }
}

/// Removes what isola processes that died (kill -9, a crash, a reboot) left behind: the
/// container's processes, cgroups and state directory, its rootfs mount, and the container
/// itself if it was started with --rm; and the temp files of imports, pulls, unpacks and disk
/// builds (`leftovers`). Returns the IDs of the containers it cleaned.
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
    // Then bundles whose owner is gone but whose status says they were still going.
    for mut r in list(paths) {
        if r.status == "exited" || r.owner_alive() {
            continue;
        }
        let _ = isola_oci::overlay::unmount(&r.dir(paths).join("rootfs"));
        if r.isolation == "vm" {
            // The VMM died with its isola (parent-death signal); its cgroup did not.
            if let Ok(hier) = isola_container::cgroups::Hierarchies::detect() {
                let path = crate::commands::run_vm::vmm_cgroup_path(&r.id);
                let _ = isola_container::cgroups::Cgroup::existing(&hier, &path).remove();
            }
        }
        if r.auto_remove || r.status == "creating" {
            let _ = remove_bundle(paths, &r.id);
        } else {
            r.status = "exited".into();
            r.exit_code = Some(137);
            let _ = r.save(paths);
        }
        if !cleaned.contains(&r.id) {
            cleaned.push(r.id.clone());
        }
    }
    // And what killed imports, pulls, unpacks and disk builds left in the image side; a
    // failure here is left for `isola image prune` to report.
    let _ = crate::leftovers::remove_dead(paths);
    cleaned
}

/// A fresh random container ID (64 hex characters, like docker's).
pub fn new_id() -> Result<String> {
    let mut bytes = [0u8; 32];
    let mut f = std::fs::File::open("/dev/urandom").context("/dev/urandom")?;
    std::io::Read::read_exact(&mut f, &mut bytes).context("/dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
