//! Named volumes: directories isola keeps for workloads, `<data>/volumes/NAME/_data` (docker's
//! layout) with `volume.json` beside it. A volume is made whole or not at all (built under a
//! temporary name, then renamed into place), on `isola volume create` or on first use by a run;
//! made empty, it is filled from the image's content at the path it is mounted on (copy-up).
//! One lock serializes what changes the set of volumes or fills one, so a volume is never
//! removed while a run is taking it nor filled twice.

use crate::paths::Paths;
use anyhow::{bail, Context, Result};
use isola_oci::lock::{FileLock, Mode};
use serde::{Deserialize, Serialize};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Volume {
    pub name: String,
    /// Seconds since the epoch.
    pub created: u64,
    /// Made for one workload (`-v /path`) and removed with it.
    #[serde(default)]
    pub anonymous: bool,
    /// Whether copy-up has been decided (filled, or found the image had nothing there): a
    /// volume is filled once, when first mounted, as docker does.
    #[serde(default)]
    pub initialized: bool,
}

pub struct VolumeStore {
    dir: PathBuf,
}

impl VolumeStore {
    pub fn new(paths: &Paths) -> VolumeStore {
        VolumeStore {
            dir: paths.volumes(),
        }
    }

    /// Held while the set of volumes changes or one is filled.
    pub fn lock(&self) -> Result<FileLock> {
        std::fs::create_dir_all(&self.dir).with_context(|| self.dir.display().to_string())?;
        Ok(FileLock::acquire(&self.dir.join(".lock"), Mode::Exclusive)?)
    }

    fn dir_of(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Where its content is, the source a workload's mount binds.
    pub fn data(&self, name: &str) -> PathBuf {
        self.dir_of(name).join("_data")
    }

    pub fn get(&self, name: &str) -> Result<Volume> {
        let p = self.dir_of(name).join("volume.json");
        match std::fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b).with_context(|| p.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                bail!("no such volume: {name}")
            }
            Err(e) => Err(e).with_context(|| p.display().to_string()),
        }
    }

    fn save(&self, v: &Volume, dir: &Path) -> Result<()> {
        let p = dir.join("volume.json");
        let tmp = dir.join(".volume.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(v)?)
            .with_context(|| tmp.display().to_string())?;
        std::fs::rename(&tmp, &p).with_context(|| p.display().to_string())
    }

    /// The volume `name`, made if it is not there (with the lock held). `Ok((volume, made))`.
    pub fn get_or_create(&self, name: &str, anonymous: bool) -> Result<(Volume, bool)> {
        match self.get(name) {
            Ok(v) => return Ok((v, false)),
            Err(_) if !self.dir_of(name).exists() => {}
            Err(e) => return Err(e),
        }
        let tmp = self.dir.join(format!(".{name}.tmp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let made = (|| {
            std::fs::create_dir_all(tmp.join("_data"))?;
            let v = Volume {
                name: name.to_string(),
                created: crate::records::now(),
                anonymous,
                initialized: false,
            };
            self.save(&v, &tmp)?;
            std::fs::rename(&tmp, self.dir_of(name))
                .with_context(|| self.dir_of(name).display().to_string())?;
            Ok(v)
        })();
        if made.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        made.map(|v| (v, true))
    }

    /// Every volume, by name.
    pub fn list(&self) -> Vec<Volume> {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut all: Vec<Volume> = rd
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .filter_map(|e| self.get(&e.file_name().to_string_lossy()).ok())
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Removes the volume and its content (with the lock held, once nothing uses it).
    pub fn remove(&self, name: &str) -> Result<()> {
        self.get(name)?;
        let dir = self.dir_of(name);
        // Out of sight first, so a half-removed volume is never taken for a whole one.
        let gone = self
            .dir
            .join(format!(".{name}.removing-{}", std::process::id()));
        std::fs::rename(&dir, &gone).with_context(|| dir.display().to_string())?;
        crate::records::remove_tree(&gone)
    }

    /// On its first mount: fills the volume from `image_dir` (the image's directory at the
    /// mount's path, opened inside the image's root; none if the image has nothing there),
    /// then marks it initialized (with the lock held).
    pub fn initialize(&self, v: &mut Volume, image_dir: Option<OwnedFd>) -> Result<()> {
        if v.initialized {
            return Ok(());
        }
        let data = self.data(&v.name);
        if let Some(src) = image_dir {
            let dst: OwnedFd = std::fs::File::open(&data)
                .with_context(|| data.display().to_string())?
                .into();
            isola_inroot::copy::copy_dir_contents(&src, &dst)
                .with_context(|| format!("filling volume {} from the image", v.name))?;
        }
        v.initialized = true;
        self.save(v, &self.dir_of(&v.name))
    }

    /// Removes what killed creates and removes left (`.NAME.tmp-PID`, `.NAME.removing-PID`
    /// of a PID no longer running), with the lock held.
    pub fn remove_leftovers(&self) {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let pid = name
                .rsplit_once(".tmp-")
                .or_else(|| name.rsplit_once(".removing-"))
                .map(|(_, pid)| pid);
            if pid.is_some() && !isola_oci::store::writer_alive(pid) {
                let _ = crate::records::remove_tree(&e.path());
            }
        }
    }
}
