//! The unpacked-rootfs cache: each image's layers applied once, in order, into a directory named
//! by the layers' chain ID, and shared read-only by every container (as an overlay lower layer)
//! and later by the VM disk image builder.

use crate::digest::Digest;
use crate::store::{Image, Store};
use crate::unpack::apply_layer_blob;
use crate::StoreError;
use isola_inroot::{remove_all_at, Root};
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
    let mut chain: Option<Digest> = None;
    for d in image.config.rootfs().diff_ids() {
        let diff: Digest = d
            .parse()
            .map_err(|e: crate::digest::BadDigest| StoreError::Invalid(e.to_string()))?;
        chain = Some(match chain {
            None => diff,
            Some(prev) => Digest::of(format!("{prev} {diff}").as_bytes()),
        });
    }
    chain.ok_or_else(|| {
        StoreError::Invalid(format!("image {}:{} has no layers", image.name, image.tag))
    })
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
        let dest = self.path_for(&chain);
        if dest.is_dir() {
            return Ok(dest);
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
        let result = (|| {
            let root = Root::open(&tmp).map_err(|e| StoreError::io(&tmp, e))?;
            let layers = image.layer_digests()?;
            for (layer, diff_id) in layers.iter().zip(image.config.rootfs().diff_ids()) {
                let diff_id: Digest = diff_id
                    .parse()
                    .map_err(|e: crate::digest::BadDigest| StoreError::Invalid(e.to_string()))?;
                apply_layer_blob(store, layer, &diff_id, &root)?;
            }
            Ok(())
        })();
        if let Err(e) = result {
            let _ = self.remove_path(&tmp);
            return Err(e);
        }
        match fs::rename(&tmp, &dest) {
            Ok(()) => Ok(dest),
            Err(_) if dest.is_dir() => {
                // Another isola finished the same rootfs first; keep theirs.
                self.remove_path(&tmp)?;
                Ok(dest)
            }
            Err(e) => {
                let _ = self.remove_path(&tmp);
                Err(StoreError::io(&dest, e))
            }
        }
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
