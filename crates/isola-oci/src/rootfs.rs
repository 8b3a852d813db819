//! The unpacked-rootfs cache: each image's layers applied once, in order, into a directory named
//! by the layers' chain ID, and shared read-only by every container (as an overlay lower layer)
//! and later by the VM disk image builder.

use crate::digest::Digest;
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
}

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
    pub fn new(dir: impl Into<PathBuf>) -> RootfsCache {
        RootfsCache { dir: dir.into() }
    }

    pub fn path_for(&self, chain: &Digest) -> PathBuf {
        self.dir.join(chain.hex())
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

    /// Starts unpacking the rootfs of chain ID `chain` — or None when it is cached already.
    pub fn begin(&self, chain: &Digest) -> Result<Option<Unpacking<'_>>, StoreError> {
        let dest = self.path_for(chain);
        if dest.is_dir() {
            return Ok(None);
        }
        fs::create_dir_all(&self.dir).map_err(|e| StoreError::io(&self.dir, e))?;
        let tmp = self
            .dir
            .join(format!(".tmp-{}-{}", chain.short(), std::process::id()));
        self.remove_path(&tmp)?;
        fs::DirBuilder::new()
            .mode(0o755)
            .create(&tmp)
            .map_err(|e| StoreError::io(&tmp, e))?;
        let root = match Root::open(&tmp) {
            Ok(r) => r,
            Err(e) => {
                let _ = self.remove_path(&tmp);
                return Err(StoreError::io(&tmp, e));
            }
        };
        Ok(Some(Unpacking {
            cache: self,
            tmp,
            dest,
            root,
            finished: false,
        }))
    }

    /// Removes a cached rootfs (never following symlinks inside it).
    pub fn remove(&self, chain: &Digest) -> Result<(), StoreError> {
        self.remove_path(&self.path_for(chain))
    }

    /// Every cached chain ID, and leftover temp dirs of unpacks that died.
    pub fn entries(&self) -> Vec<PathBuf> {
        fs::read_dir(&self.dir)
            .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default()
    }

    pub fn remove_path(&self, path: &Path) -> Result<(), StoreError> {
        let parent = Root::open(&self.dir).map_err(|e| StoreError::io(&self.dir, e))?;
        let name = path.file_name().unwrap_or(OsStr::new(""));
        remove_all_at(parent.fd(), name).map_err(|e| StoreError::io(path, e))
    }
}

/// A rootfs being unpacked, layer by layer, in a temp directory; `finish` makes it the cached
/// rootfs. Dropped unfinished (a layer failed, a pull broke off), the temp directory goes.
pub struct Unpacking<'a> {
    cache: &'a RootfsCache,
    tmp: PathBuf,
    dest: PathBuf,
    root: Root,
    finished: bool,
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

    /// Every layer applied: the rootfs takes its place in the cache.
    pub fn finish(mut self) -> Result<PathBuf, StoreError> {
        self.finished = true;
        match fs::rename(&self.tmp, &self.dest) {
            Ok(()) => Ok(self.dest.clone()),
            Err(_) if self.dest.is_dir() => {
                // Another isola finished the same rootfs first; keep theirs.
                self.cache.remove_path(&self.tmp)?;
                Ok(self.dest.clone())
            }
            Err(e) => {
                let _ = self.cache.remove_path(&self.tmp);
                Err(StoreError::io(&self.dest, e))
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
