//! Data in and out of a workload: `-v`, `--mount` and `--tmpfs` (`request`), the named volumes
//! they can take (`store`), and what a run does with them — each request resolved into the
//! mount its record keeps (an anonymous volume named, a missing `-v` host directory made), the
//! volumes made and filled before the workload starts, and the bundle's mounts.

pub mod request;
pub mod store;

use crate::paths::Paths;
use anyhow::{bail, Context, Result};
use oci_spec::runtime::Mount;
use request::{MountKind, MountRequest};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use store::VolumeStore;

/// A workload's mount as its record keeps it (what `inspect` shows as Mounts).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountRecord {
    /// bind | volume | tmpfs
    #[serde(rename = "type")]
    pub kind: String,
    /// The volume's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The host path bound in (a volume's: its `_data`); empty for a tmpfs.
    pub source: String,
    pub destination: String,
    pub rw: bool,
    /// A volume made for this workload alone, removed with it.
    #[serde(default)]
    pub anonymous: bool,
    /// A volume filled from the image on its first mount.
    #[serde(default)]
    pub copy: bool,
    /// A tmpfs's mount options (size, mode, noexec).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

/// Each request as this workload will have it: anonymous volumes named, bind sources checked
/// (`-v` makes a missing one, as docker does; `--mount` refuses it). Nothing of the store is
/// made yet.
pub fn resolve(paths: &Paths, requests: &[MountRequest]) -> Result<Vec<MountRecord>> {
    let store = VolumeStore::new(paths);
    let mut out = Vec::new();
    for r in requests {
        let rw = !r.read_only;
        out.push(match &r.kind {
            MountKind::Bind { source, create } => {
                let p = Path::new(source);
                if !p.exists() {
                    if !*create {
                        bail!(
                            "--mount: bind source {source} does not exist (-v makes a missing directory; --mount does not)"
                        );
                    }
                    std::fs::create_dir_all(p).with_context(|| format!("-v: making {source}"))?;
                }
                MountRecord {
                    kind: "bind".into(),
                    name: None,
                    source: source.clone(),
                    destination: r.destination.clone(),
                    rw,
                    anonymous: false,
                    copy: false,
                    options: Vec::new(),
                }
            }
            MountKind::Volume { name, copy } => {
                let (name, anonymous) = match name {
                    Some(n) => (n.clone(), false),
                    None => (crate::records::new_id()?, true),
                };
                MountRecord {
                    kind: "volume".into(),
                    source: store.data(&name).display().to_string(),
                    name: Some(name),
                    destination: r.destination.clone(),
                    rw,
                    anonymous,
                    copy: *copy,
                    options: Vec::new(),
                }
            }
            MountKind::Tmpfs { size, mode, exec } => {
                let mut options = vec![format!("mode={mode:o}")];
                if let Some(s) = size {
                    options.push(format!("size={s}"));
                }
                if !exec {
                    options.push("noexec".into());
                }
                MountRecord {
                    kind: "tmpfs".into(),
                    name: None,
                    source: String::new(),
                    destination: r.destination.clone(),
                    rw,
                    anonymous: false,
                    copy: false,
                    options,
                }
            }
        });
    }
    Ok(out)
}

/// Makes the volumes `mounts` name that are not there yet and fills each from the image
/// (`image_root`, the image's unpacked root) on its first mount: the image's directory at the
/// mount's path, opened inside the image's root so no symlink of the image reaches the host.
pub fn prepare(paths: &Paths, mounts: &[MountRecord], image_root: &Path) -> Result<()> {
    let volumes: Vec<&MountRecord> = mounts.iter().filter(|m| m.kind == "volume").collect();
    if volumes.is_empty() {
        return Ok(());
    }
    let store = VolumeStore::new(paths);
    let _lock = store.lock()?;
    let root =
        isola_inroot::Root::open(image_root).with_context(|| image_root.display().to_string())?;
    for m in volumes {
        let name = m.name.as_deref().unwrap_or_default();
        let (mut v, _) = store.get_or_create(name, m.anonymous)?;
        if m.copy && !v.initialized {
            let dir = root
                .open_at(
                    Path::new(&m.destination),
                    libc::O_RDONLY | libc::O_DIRECTORY,
                    true,
                )
                .ok();
            store.initialize(&mut v, dir)?;
        }
    }
    Ok(())
}

/// The bundle's mounts for `mounts`, parents before what is mounted inside them.
pub fn oci_mounts(mounts: &[MountRecord]) -> Result<Vec<Mount>> {
    let mut sorted: Vec<&MountRecord> = mounts.iter().collect();
    sorted.sort_by_key(|m| m.destination.matches('/').count());
    sorted
        .into_iter()
        .map(|m| {
            let mut o = Mount::default();
            o.set_destination(PathBuf::from(&m.destination));
            let access = if m.rw { "rw" } else { "ro" };
            let options: Vec<String> = if m.kind == "tmpfs" {
                o.set_typ(Some("tmpfs".into()));
                o.set_source(Some("tmpfs".into()));
                ["nosuid", "nodev", access]
                    .into_iter()
                    .map(String::from)
                    .chain(m.options.iter().cloned())
                    .collect()
            } else {
                o.set_typ(Some("bind".into()));
                o.set_source(Some(PathBuf::from(&m.source)));
                vec!["rbind".into(), access.into(), "rprivate".into()]
            };
            o.set_options(Some(options));
            Ok(o)
        })
        .collect()
}

/// Whether a record's mounts take volume `name`.
pub fn uses(mounts: &[MountRecord], name: &str) -> bool {
    mounts
        .iter()
        .any(|m| m.kind == "volume" && m.name.as_deref() == Some(name))
}

/// Removes the anonymous volumes of a workload that is being removed.
pub fn remove_anonymous(paths: &Paths, mounts: &[MountRecord]) {
    let anonymous: Vec<&str> = mounts
        .iter()
        .filter(|m| m.anonymous)
        .filter_map(|m| m.name.as_deref())
        .collect();
    if anonymous.is_empty() {
        return;
    }
    let store = VolumeStore::new(paths);
    let Ok(_lock) = store.lock() else {
        return;
    };
    for name in anonymous {
        if let Err(e) = store.remove(name) {
            if store.get(name).is_ok() {
                eprintln!("isola: warning: removing anonymous volume {name}: {e:#}");
            }
        }
    }
}
