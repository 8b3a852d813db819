//! The unpacked-rootfs cache: each image's layers applied once, in order, and shared read-only
//! by every container (as an overlay lower layer) and by the VM disk image builder.
//!
//! One entry per chain ID: `CACHE/CHAIN/fs` is the tree and `CACHE/CHAIN/complete` the marker
//! that says every layer applied. An unpack builds the entry as `.tmp-SHORT-PID`, writes the
//! marker last and renames the entry into place; a delete renames the entry to
//! `.del-SHORT-PID-NANOS` first and removes it after, so a kill at any point never leaves a
//! part of a tree under its chain's name. An entry without the marker (an older isola's cache,
//! or a tree an older isola half deleted) is never used: it is removed and unpacked again.
//! One unpack per chain at a time: the others wait on the chain's lock file, then find it done.

use crate::digest::Digest;
use crate::lock::{FileLock, Mode};
use crate::store::{Image, Store};
use crate::unpack::apply_layer_blob;
use crate::StoreError;
use isola_inroot::{remove_all_at, Root};
use oci_spec::image::ImageConfiguration;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// Where unpacked image root filesystems live.
pub struct RootfsCache {
    dir: PathBuf,
    locks: PathBuf,
}

/// The marker an entry holds once its tree is complete.
const COMPLETE: &str = "complete";
/// The tree inside an entry.
const TREE: &str = "fs";

/// The OCI chain ID of an image's layers: the identity of the filesystem they build.
pub fn chain_id(image: &Image) -> Result<Digest, StoreError> {
    let diff_ids = diff_ids(image)?;
    chain_id_of(&diff_ids).ok_or_else(|| {
        StoreError::Invalid(format!("image {}:{} has no layers", image.name, image.tag))
    })
}

/// The chain ID of layers with these diff IDs, bottom first (none for no layers).
pub fn chain_id_of(diff_ids: &[Digest]) -> Option<Digest> {
    let mut chain: Option<Digest> = None;
    for diff in diff_ids {
        chain = Some(match chain {
            None => diff.clone(),
            Some(prev) => Digest::of(format!("{prev} {diff}").as_bytes()),
        });
    }
    chain
}

/// The image's diff IDs, bottom first.
pub fn diff_ids(image: &Image) -> Result<Vec<Digest>, StoreError> {
    config_diff_ids(&image.config)
}

/// An image config's diff IDs, bottom first.
pub fn config_diff_ids(config: &ImageConfiguration) -> Result<Vec<Digest>, StoreError> {
    config
        .rootfs()
        .diff_ids()
        .iter()
        .map(|d| {
            d.parse()
                .map_err(|e: crate::digest::BadDigest| StoreError::Invalid(e.to_string()))
        })
        .collect()
}

impl RootfsCache {
    /// The cache in `dir`, with its per-chain lock files in `locks`.
    pub fn new(dir: impl Into<PathBuf>, locks: impl Into<PathBuf>) -> RootfsCache {
        RootfsCache {
            dir: dir.into(),
            locks: locks.into(),
        }
    }

    /// The entry (tree and marker) of chain ID `chain`.
    pub fn entry_for(&self, chain: &Digest) -> PathBuf {
        self.dir.join(chain.hex())
    }

    /// The unpacked tree of chain ID `chain` (there only once `is_complete`).
    pub fn path_for(&self, chain: &Digest) -> PathBuf {
        self.entry_for(chain).join(TREE)
    }

    /// Whether the entry at `entry` holds a complete tree.
    pub fn is_complete(entry: &Path) -> bool {
        entry.join(COMPLETE).is_file() && entry.join(TREE).is_dir()
    }

    fn lock_path(&self, chain_hex: &str) -> PathBuf {
        self.locks.join(format!("rootfs-{chain_hex}.lock"))
    }

    fn lock(&self, chain: &Digest) -> Result<FileLock, StoreError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.locks)
            .map_err(|e| StoreError::io(&self.locks, e))?;
        FileLock::acquire(&self.lock_path(chain.hex()), Mode::Exclusive)
    }

    /// The image's unpacked rootfs, unpacking it first if it is not cached. Unpacking happens in
    /// a temp directory renamed into place only when every layer applied and verified, so a
    /// cached rootfs is always complete.
    pub fn ensure(&self, store: &Store, image: &Image) -> Result<PathBuf, StoreError> {
        let chain = chain_id(image)?;
        let Some(mut unpacking) = self.begin(&chain)? else {
            return Ok(self.path_for(&chain));
        };
        for (layer, diff_id) in image.layer_digests()?.iter().zip(diff_ids(image)?) {
            unpacking.apply(store, layer, &diff_id)?;
        }
        unpacking.finish()
    }

    /// Starts unpacking the rootfs of chain ID `chain` — or None when it is cached already
    /// (after waiting for another isola that is unpacking it).
    pub fn begin(&self, chain: &Digest) -> Result<Option<Unpacking<'_>>, StoreError> {
        let entry = self.entry_for(chain);
        if Self::is_complete(&entry) {
            return Ok(None);
        }
        let lock = self.lock(chain)?;
        if Self::is_complete(&entry) {
            // Another isola unpacked it while this one waited.
            return Ok(None);
        }
        // Not complete: whatever is there is no rootfs to trust.
        self.remove_entry(&entry)?;
        fs::create_dir_all(&self.dir).map_err(|e| StoreError::io(&self.dir, e))?;
        let tmp = self
            .dir
            .join(format!(".tmp-{}-{}", chain.short(), std::process::id()));
        self.remove_path(&tmp)?;
        let tree = tmp.join(TREE);
        for d in [&tmp, &tree] {
            fs::DirBuilder::new()
                .mode(0o755)
                .create(d)
                .map_err(|e| StoreError::io(d, e))?;
        }
        let root = match Root::open(&tree) {
            Ok(r) => r,
            Err(e) => {
                let _ = self.remove_path(&tmp);
                return Err(StoreError::io(&tree, e));
            }
        };
        Ok(Some(Unpacking {
            cache: self,
            tmp,
            entry,
            root,
            finished: false,
            _lock: lock,
        }))
    }

    /// Removes a cached rootfs (rename first, then delete; never following symlinks inside),
    /// waiting for an unpack of it to end, and its lock file.
    pub fn remove(&self, chain: &Digest) -> Result<(), StoreError> {
        let lock = self.lock(chain)?;
        self.remove_entry(&self.entry_for(chain))?;
        lock.remove()
    }

    /// Removes the entry of a chain whose lock is held, or a dead unpack's leftover: renamed out
    /// of its name first, so a kill midway leaves a `.del-` directory, never a half tree.
    pub fn remove_entry(&self, entry: &Path) -> Result<(), StoreError> {
        let name = entry.file_name().unwrap_or_default().to_string_lossy();
        let short: String = name
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(12)
            .collect();
        let doomed = self.dir.join(format!(
            ".del-{short}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        match fs::rename(entry, &doomed) {
            Ok(()) => self.remove_path(&doomed),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io(entry, e)),
        }
    }

    /// Removes the lock file of a chain that has no entry, unless an isola holds it.
    pub fn remove_idle_lock(&self, chain_hex: &str) -> Result<(), StoreError> {
        match FileLock::try_acquire(&self.lock_path(chain_hex), Mode::Exclusive)? {
            Some(lock) => lock.remove(),
            None => Ok(()),
        }
    }

    /// The chain IDs (hex) that have a lock file.
    pub fn locked_chains(&self) -> Vec<String> {
        fs::read_dir(&self.locks)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter_map(|e| {
                        let n = e.file_name().to_string_lossy().into_owned();
                        Some(
                            n.strip_prefix("rootfs-")?
                                .strip_suffix(".lock")?
                                .to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every cached chain ID, and leftover temp dirs of unpacks and deletes that died.
    pub fn entries(&self) -> Vec<PathBuf> {
        fs::read_dir(&self.dir)
            .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default()
    }

    /// The leftovers of unpacks and deletes whose isola is gone (`.tmp-SHORT-PID`,
    /// `.del-SHORT-PID-NANOS`), for `remove_path`.
    pub fn dead_leftovers(&self) -> Vec<PathBuf> {
        self.entries()
            .into_iter()
            .filter(|path| {
                let name = path.file_name().unwrap_or_default().to_string_lossy();
                let pid = if let Some(rest) = name.strip_prefix(".tmp-") {
                    rest.rsplit('-').next()
                } else if let Some(rest) = name.strip_prefix(".del-") {
                    rest.split('-').nth(1)
                } else {
                    return false;
                };
                !crate::store::writer_alive(pid)
            })
            .collect()
    }

    pub fn remove_path(&self, path: &Path) -> Result<(), StoreError> {
        let parent = match Root::open(&self.dir) {
            Ok(p) => p,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(StoreError::io(&self.dir, e)),
        };
        let name = path.file_name().unwrap_or(OsStr::new(""));
        remove_all_at(parent.fd(), name).map_err(|e| StoreError::io(path, e))
    }
}

/// A rootfs being unpacked, layer by layer, in a temp directory; `finish` makes it the cached
/// rootfs. Dropped unfinished (a layer failed, a pull broke off), the temp directory goes.
/// It holds the chain's lock: other isolas wanting the same rootfs wait for it.
pub struct Unpacking<'a> {
    cache: &'a RootfsCache,
    tmp: PathBuf,
    entry: PathBuf,
    root: Root,
    finished: bool,
    _lock: FileLock,
}

impl Unpacking<'_> {
    /// Applies the next layer (bottom first), checked against its digest and diff ID.
    pub fn apply(
        &mut self,
        store: &Store,
        layer: &Digest,
        diff_id: &Digest,
    ) -> Result<(), StoreError> {
        Ok(apply_layer_blob(store, layer, diff_id, &self.root)?)
    }

    /// Every layer applied: the marker is written, and the rootfs takes its place in the cache.
    pub fn finish(mut self) -> Result<PathBuf, StoreError> {
        self.finished = true;
        let marker = self.tmp.join(COMPLETE);
        let published = fs::write(&marker, b"every layer applied and verified\n")
            .map_err(|e| StoreError::io(&marker, e))
            .and_then(|()| {
                fs::rename(&self.tmp, &self.entry).map_err(|e| StoreError::io(&self.entry, e))
            });
        match published {
            Ok(()) => Ok(self.entry.join(TREE)),
            Err(e) => {
                let _ = self.cache.remove_path(&self.tmp);
                Err(e)
            }
        }
    }
}

impl Drop for Unpacking<'_> {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.cache.remove_path(&self.tmp);
        }
    }
}
