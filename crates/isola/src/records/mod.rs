//! Container records: one directory per container under the data root holding its bundle
//! (`config.json`, `rootfs/` = overlay mount point, `upper/`, `work/`) and `record.json`
//! (name, image, status, exit code, owner). The isola that runs a container holds a lock on
//! its directory for as long as it lives (`claim`), so a directory nobody holds belongs to
//! nobody alive; the cleanup pass (`cleanup`) removes what dead owners left.

mod claim;
mod cleanup;

pub use claim::{claim, name_in_use, reclaim, Claim};
pub use cleanup::cleanup;

use crate::paths::Paths;
use anyhow::{bail, Context, Result};
use isola_container::state;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub name: String,
    pub image: String,
    pub command: Vec<String>,
    pub isolation: String,
    /// Seconds since the epoch.
    pub created: u64,
    /// creating | running | restarting | exited
    pub status: String,
    pub exit_code: Option<i32>,
    pub auto_remove: bool,
    pub owner_pid: i32,
    pub owner_start_time: u64,
    /// Its published ports, as `ps` shows them (`0.0.0.0:8080->80/tcp`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
    /// Its binds, volumes and tmpfs mounts (`-v`, `--mount`, `--tmpfs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<crate::volumes::MountRecord>,
    /// When the workload started and ended, nanoseconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_ns: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_ns: Option<u64>,
    /// Started with `-d`: its output is in the log (`isola logs`).
    #[serde(default)]
    pub detached: bool,
    /// `--label`s.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
    /// What `isola stop` sends first, and how long it waits (`--stop-signal`, `--stop-timeout`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<u64>,
    /// How it is started, kept so that `isola start` and its restart policy start it again.
    #[serde(default)]
    pub launch: Launch,
    /// Times its monitor started it again (`--restart`).
    #[serde(default)]
    pub restart_count: u32,
    /// The kernel's OOM killer ended its last run.
    #[serde(default)]
    pub oom_killed: bool,
}

/// What a container needs to be started again, beside its bundle (`config.json`, `upper/`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Launch {
    /// `--network`: none, host, or a network's name.
    pub network: String,
    /// `-p`, as given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub publish: Vec<String>,
    /// `--restart`, as given (see `restart_policy`).
    pub restart: String,
    /// The image's unpacked root filesystem (the overlay's lower layer) and its chain ID (a
    /// VM's root disk is built from them).
    pub lower: PathBuf,
    pub chain: String,
    /// `--timeout` (VM level).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_timeout: Option<u64>,
    /// `-i`: its stdin is kept open (detached: a pipe its monitor holds).
    #[serde(default)]
    pub interactive: bool,
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

    /// Whether its workload is still going (running, starting or restarting, its monitor alive).
    pub fn is_going(&self) -> bool {
        self.status != "exited" && self.owner_alive()
    }
}

/// A container directory whose `record.json` is missing or cannot be read: its ID (the
/// directory's name) and why.
#[derive(Clone, Debug)]
pub struct Damaged {
    pub id: String,
    pub why: String,
}

/// One container directory: a readable record, or a damaged one.
#[derive(Clone, Debug)]
pub enum Entry {
    /// Boxed: a record is many times the size of a damaged entry.
    Ok(Box<Record>),
    Damaged(Damaged),
}

impl Entry {
    pub fn id(&self) -> &str {
        match self {
            Entry::Ok(r) => &r.id,
            Entry::Damaged(d) => &d.id,
        }
    }
}

/// Every container directory (names starting with '.' are isola's own work files).
pub fn scan(paths: &Paths) -> Vec<Entry> {
    let mut out: Vec<Entry> = std::fs::read_dir(paths.bundles())
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .map(|e| match Record::load(&e.path()) {
                    Ok(r) => Entry::Ok(Box::new(r)),
                    Err(err) => Entry::Damaged(Damaged {
                        id: e.file_name().to_string_lossy().into_owned(),
                        why: format!("{err:#}"),
                    }),
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort_by_key(|e| match e {
        Entry::Ok(r) => std::cmp::Reverse(r.created),
        Entry::Damaged(_) => std::cmp::Reverse(u64::MAX),
    });
    out
}

/// Every readable container record.
pub fn list(paths: &Paths) -> Vec<Record> {
    scan(paths)
        .into_iter()
        .filter_map(|e| match e {
            Entry::Ok(r) => Some(*r),
            Entry::Damaged(_) => None,
        })
        .collect()
}

/// The IDs of the containers in `entries` whose isola is alive (the owners a network lease
/// may have).
pub fn running_ids(entries: &[Entry]) -> Vec<String> {
    entries
        .iter()
        .filter_map(|e| match e {
            Entry::Ok(r) if r.owner_alive() => Some(r.id.clone()),
            _ => None,
        })
        .collect()
}

/// Finds a container by exact name, full ID or unique ID prefix (a damaged one by its ID).
pub fn find(paths: &Paths, key: &str) -> Result<Entry> {
    let all = scan(paths);
    let exact = all.iter().find(|e| match e {
        Entry::Ok(r) => r.name == key || r.id == key,
        Entry::Damaged(d) => d.id == key,
    });
    if let Some(e) = exact {
        return Ok(e.clone());
    }
    let matches: Vec<&Entry> = all.iter().filter(|e| e.id().starts_with(key)).collect();
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] => bail!("no such container: {key}"),
        _ => bail!("container ID prefix {key:?} is ambiguous"),
    }
}

/// The lock of a container directory if no live isola holds it (None: its owner is alive,
/// or the directory is gone).
pub fn lock_if_unowned(dir: &Path) -> Option<Flock<std::fs::File>> {
    let f = std::fs::File::open(dir).ok()?;
    Flock::lock(f, FlockArg::LockExclusiveNonblock).ok()
}

/// Unmounts the container's rootfs and deletes its directory: renamed to `.removing-ID`
/// first, so a kill part way leaves no half container under its ID (the cleanup pass
/// finishes the job).
pub fn remove_bundle(paths: &Paths, id: &str) -> Result<()> {
    let dir = paths.bundles().join(id);
    // Held while the tree goes, so the cleanup pass leaves `.removing-ID` to us (when our
    // caller holds the lock already, it is theirs that keeps it away).
    let _lock = lock_if_unowned(&dir);
    isola_oci::overlay::unmount(&dir.join("rootfs"))?;
    // Its anonymous volumes go with it.
    if let Ok(r) = Record::load(&dir) {
        crate::volumes::remove_anonymous(paths, &r.mounts);
    }
    let doomed = paths.bundles().join(format!(".removing-{id}"));
    match std::fs::rename(&dir, &doomed) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("renaming {}", dir.display())),
    }
    remove_tree(&doomed)
}

/// `remove_dir_all`, where a tree already gone counts as removed.
pub(crate) fn remove_tree(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| dir.display().to_string()),
    }
}

/// A fresh random container ID (64 hex characters, like docker's).
pub fn new_id() -> Result<String> {
    let mut bytes = [0u8; 32];
    let mut f = std::fs::File::open("/dev/urandom").context("/dev/urandom")?;
    std::io::Read::read_exact(&mut f, &mut bytes).context("/dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Nanoseconds since the epoch.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

pub fn now() -> u64 {
    now_ns() / 1_000_000_000
}
