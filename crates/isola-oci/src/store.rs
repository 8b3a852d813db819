//! The image store: an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/<hex>`).
//!
//! Blobs are content addressed and written atomically (temp file, fsync, rename), so an
//! interrupted write never leaves a half blob under a real name. Every read is verified against
//! its digest. Tags live in `index.json` as manifest descriptors annotated with
//! `org.opencontainers.image.ref.name = NAME:TAG`.

use crate::digest::{Digest, HashingReader, HashingWriter};
use crate::lock::{FileLock, Mode};
use crate::reference::Reference;
use crate::StoreError;
use oci_spec::image::{
    Descriptor, ImageConfiguration, ImageIndex, ImageIndexBuilder, ImageManifest, MediaType,
};
use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// The annotation naming a manifest in `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// An OCI image layout on disk.
pub struct Store {
    root: PathBuf,
}

/// One tagged image, resolved from the index with its manifest and config read and verified.
#[derive(Clone, Debug)]
pub struct Image {
    pub name: String,
    pub tag: String,
    pub manifest_digest: Digest,
    /// The manifest's media type, as its descriptor in the index says.
    pub manifest_media_type: String,
    pub manifest: ImageManifest,
    pub config_digest: Digest,
    pub config: ImageConfiguration,
}

impl Image {
    /// Size of the image as stored: manifest config and layers (compressed, as in the store).
    pub fn size(&self) -> u64 {
        self.manifest.config().size() + self.manifest.layers().iter().map(|l| l.size()).sum::<u64>()
    }

    /// The layer digests, bottom first.
    pub fn layer_digests(&self) -> Result<Vec<Digest>, StoreError> {
        self.manifest
            .layers()
            .iter()
            .map(descriptor_digest)
            .collect()
    }
}

/// The sha256 digest named by a descriptor (other algorithms are refused).
pub fn descriptor_digest(d: &Descriptor) -> Result<Digest, StoreError> {
    d.digest()
        .to_string()
        .parse()
        .map_err(|e: crate::digest::BadDigest| StoreError::Invalid(e.to_string()))
}

/// The store held for writing (import, pull, tag): blobs written under it may not be reachable
/// from a tag yet, so no deleter runs until it is dropped. Many writers may hold it at once.
pub struct Writing(#[allow(dead_code)] FileLock);

/// The store held for deleting (rmi, prune): no writer has blobs in flight while it is held.
pub struct Deleting(#[allow(dead_code)] FileLock);

/// A tag whose image cannot be read (a blob missing, damaged or not what it claims to be).
#[derive(Debug)]
pub struct Damaged {
    /// `name:tag`.
    pub tag: String,
    pub error: StoreError,
}

/// Every tagged image: those that read back whole, and those that do not.
#[derive(Debug, Default)]
pub struct Listing {
    pub images: Vec<Image>,
    pub damaged: Vec<Damaged>,
}

impl Store {
    /// Opens the layout at `root`, creating an empty one if the directory has none.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store, StoreError> {
        let root = root.into();
        let store = Store { root };
        let layout = store.root.join("oci-layout");
        if !layout.exists() {
            fs::create_dir_all(store.root.join("blobs/sha256"))
                .map_err(|e| StoreError::io(&store.root, e))?;
            write_atomic(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        if !store.root.join("index.json").exists() {
            store.write_index(&empty_index()?)?;
        }
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).exists()
    }

    /// Writes a blob from a stream; returns its digest and size. Idempotent.
    pub fn put_blob(&self, reader: impl Read) -> Result<(Digest, u64), StoreError> {
        let dir = self.root.join("blobs/sha256");
        let (tmp_path, file) = temp_file(&dir)?;
        let result = (|| {
            let mut w = HashingWriter::new(io::BufWriter::new(BlobFile { file, failed: None }));
            let mut reader = reader;
            io::copy(&mut reader, &mut w).map_err(|e| StoreError::io(&tmp_path, e))?;
            self.commit_temp(&tmp_path, w)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp_path);
        }
        result
    }

    /// Writes a blob produced by `produce` into a writer; returns its digest and size.
    pub fn put_blob_from_writer(
        &self,
        produce: impl FnOnce(&mut HashingWriter<io::BufWriter<BlobFile>>) -> io::Result<()>,
    ) -> Result<(Digest, u64), StoreError> {
        let dir = self.root.join("blobs/sha256");
        let (tmp_path, file) = temp_file(&dir)?;
        let result = (|| {
            let mut w = HashingWriter::new(io::BufWriter::new(BlobFile { file, failed: None }));
            if let Err(e) = produce(&mut w) {
                // A failed write is the store's (a full disk, say): name the store's file, not
                // whatever the data was being read from.
                return Err(match w.get_ref().get_ref().failed {
                    Some(errno) => StoreError::io(&tmp_path, io::Error::from_raw_os_error(errno)),
                    None => StoreError::Invalid(e.to_string()),
                });
            }
            self.commit_temp(&tmp_path, w)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp_path);
        }
        result
    }

    fn commit_temp(
        &self,
        tmp_path: &Path,
        w: HashingWriter<io::BufWriter<BlobFile>>,
    ) -> Result<(Digest, u64), StoreError> {
        let (buf, digest, size) = w.finish();
        let file = buf
            .into_inner()
            .map_err(|e| StoreError::io(tmp_path, e.into_error()))?
            .file;
        file.sync_all().map_err(|e| StoreError::io(tmp_path, e))?;
        let dest = self.blob_path(&digest);
        fs::rename(tmp_path, &dest).map_err(|e| StoreError::io(&dest, e))?;
        Ok((digest, size))
    }

    pub fn put_blob_bytes(&self, bytes: &[u8]) -> Result<(Digest, u64), StoreError> {
        self.put_blob(bytes)
    }

    /// Opens a blob for streaming. The reader fails at end of stream if the content does not
    /// match the digest, so a consumer must read to the end before trusting what it read.
    pub fn open_blob(&self, digest: &Digest) -> Result<VerifiedReader<File>, StoreError> {
        let path = self.blob_path(digest);
        let file = File::open(&path).map_err(|e| StoreError::io(&path, e))?;
        Ok(VerifiedReader {
            inner: Some(HashingReader::new(file)),
            expected: digest.clone(),
            path,
        })
    }

    /// Reads a whole (small) blob and verifies it.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>, StoreError> {
        let path = self.blob_path(digest);
        let bytes = fs::read(&path).map_err(|e| StoreError::io(&path, e))?;
        let actual = Digest::of(&bytes);
        if &actual != digest {
            return Err(StoreError::Corrupt {
                path,
                expected: digest.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    pub fn read_index(&self) -> Result<ImageIndex, StoreError> {
        let path = self.root.join("index.json");
        let bytes = fs::read(&path).map_err(|e| StoreError::io(&path, e))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| StoreError::Invalid(format!("{}: {e}", path.display())))
    }

    fn write_index(&self, index: &ImageIndex) -> Result<(), StoreError> {
        let bytes =
            serde_json::to_vec_pretty(index).map_err(|e| StoreError::Invalid(e.to_string()))?;
        write_atomic(&self.root.join("index.json"), &bytes)
    }

    /// Serialises updates of `index.json`.
    fn lock_index(&self) -> Result<FileLock, StoreError> {
        FileLock::acquire(&self.root.join("index.lock"), Mode::Exclusive)
    }

    fn store_lock(&self) -> PathBuf {
        self.root.join("store.lock")
    }

    /// Holds the store for writing blobs and then a tag; waits while a deleter runs.
    pub fn lock_writing(&self) -> Result<Writing, StoreError> {
        Ok(Writing(FileLock::acquire(
            &self.store_lock(),
            Mode::Shared,
        )?))
    }

    /// Holds the store for deleting; `waiting` is called first if a writer holds it (the call
    /// then blocks until every writer is done).
    pub fn lock_deleting(&self, waiting: impl FnOnce()) -> Result<Deleting, StoreError> {
        let path = self.store_lock();
        if let Some(l) = FileLock::try_acquire(&path, Mode::Exclusive)? {
            return Ok(Deleting(l));
        }
        waiting();
        Ok(Deleting(FileLock::acquire(&path, Mode::Exclusive)?))
    }

    /// Points `name:tag` at a manifest already in the store (replacing any previous target).
    pub fn tag(&self, reference: &Reference, manifest: Descriptor) -> Result<(), StoreError> {
        let _lock = self.lock_index()?;
        let mut index = self.read_index()?;
        let name = reference.tagged();
        let mut manifests: Vec<Descriptor> = index
            .manifests()
            .iter()
            .filter(|d| ref_name(d) != Some(name.as_str()))
            .cloned()
            .collect();
        let mut desc = manifest;
        let mut annotations = desc.annotations().clone().unwrap_or_default();
        annotations.insert(REF_NAME.to_string(), name);
        desc.set_annotations(Some(annotations));
        manifests.push(desc);
        index.set_manifests(manifests);
        self.write_index(&index)
    }

    /// Every tag in the store: `name:tag` → manifest descriptor.
    pub fn tags(&self) -> Result<BTreeMap<String, Descriptor>, StoreError> {
        Ok(self
            .read_index()?
            .manifests()
            .iter()
            .filter_map(|d| ref_name(d).map(|n| (n.to_string(), d.clone())))
            .collect())
    }

    /// Resolves a reference to an image in the store, reading and verifying manifest and config.
    pub fn resolve(&self, reference: &Reference) -> Result<Image, StoreError> {
        let (full, desc) = self.find(reference)?;
        let (name, tag) = split_tag(&full);
        self.load_image(name.to_string(), tag.to_string(), &desc)
    }

    /// The tag (`name:tag`) a reference names and its manifest descriptor, reading no blob.
    pub fn find(&self, reference: &Reference) -> Result<(String, Descriptor), StoreError> {
        let tags = self.tags()?;
        let found = match &reference.digest {
            Some(digest) => {
                let by_digest = format!("{}:{}", reference.name, digest_tag(digest));
                tags.into_iter().find(|(n, d)| {
                    *n == by_digest
                        || split_tag(n).0 == reference.name
                            && descriptor_digest(d).ok().as_ref() == Some(digest)
                })
            }
            None => tags.into_iter().find(|(n, _)| *n == reference.tagged()),
        };
        found.ok_or_else(|| StoreError::NotFound(reference.to_string()))
    }

    /// Reads and verifies the image a tag's manifest descriptor names.
    pub fn load_image(
        &self,
        name: String,
        tag: String,
        desc: &Descriptor,
    ) -> Result<Image, StoreError> {
        let manifest_digest = descriptor_digest(desc)?;
        let bytes = self.read_blob(&manifest_digest)?;
        let manifest = parse_manifest(&bytes, &manifest_digest)?;
        let (config_digest, config) = self.image_config(&manifest, &manifest_digest)?;
        Ok(Image {
            name,
            tag,
            manifest_digest,
            manifest_media_type: desc.media_type().to_string(),
            manifest,
            config_digest,
            config,
        })
    }

    /// The config `manifest` (whose digest is `digest`) names, checked to give one diff_id
    /// per layer.
    pub fn image_config(
        &self,
        manifest: &ImageManifest,
        digest: &Digest,
    ) -> Result<(Digest, ImageConfiguration), StoreError> {
        let config_digest = descriptor_digest(manifest.config())?;
        let config: ImageConfiguration =
            serde_json::from_slice(&self.read_blob(&config_digest)?)
                .map_err(|e| StoreError::Invalid(format!("image config {config_digest}: {e}")))?;
        if config.rootfs().diff_ids().len() != manifest.layers().len() {
            return Err(StoreError::Invalid(format!(
                "manifest {digest} has {} layers but its config has {} diff_ids",
                manifest.layers().len(),
                config.rootfs().diff_ids().len()
            )));
        }
        Ok((config_digest, config))
    }

    /// All tagged images, sorted by name; one that cannot be read is listed as damaged, so one
    /// bad blob never hides the rest of the store.
    pub fn images(&self) -> Result<Listing, StoreError> {
        let mut out = Listing::default();
        for (full, desc) in self.tags()? {
            let (name, tag) = split_tag(&full);
            match self.load_image(name.to_string(), tag.to_string(), &desc) {
                Ok(image) => out.images.push(image),
                Err(error) => out.damaged.push(Damaged { tag: full, error }),
            }
        }
        Ok(out)
    }

    /// Removes the tag `name:tag`, then every blob no remaining tag reaches. Returns the removed
    /// blob count.
    pub fn untag(&self, _deleting: &Deleting, full_tag: &str) -> Result<usize, StoreError> {
        let index = {
            let _lock = self.lock_index()?;
            let mut index = self.read_index()?;
            let before = index.manifests().len();
            let kept: Vec<Descriptor> = index
                .manifests()
                .iter()
                .filter(|d| ref_name(d) != Some(full_tag))
                .cloned()
                .collect();
            if kept.len() == before {
                return Err(StoreError::NotFound(full_tag.to_string()));
            }
            index.set_manifests(kept);
            self.write_index(&index)?;
            index
        };
        Ok(self.collect_garbage(&index)?.0)
    }

    /// Deletes blobs no tag reaches and the temp files of blob writers that are gone (an
    /// interrupted import or pull); returns how many files and bytes.
    pub fn prune(&self, _deleting: &Deleting) -> Result<(usize, u64), StoreError> {
        let index = {
            let _lock = self.lock_index()?;
            self.read_index()?
        };
        let (n, bytes) = self.collect_garbage(&index)?;
        let (temps, temp_bytes) = remove_dead_temps(&self.root)?;
        Ok((n + temps, bytes + temp_bytes))
    }

    /// Deletes blobs that no manifest in `index` references (temp files are left to
    /// `remove_dead_temps`). Returns how many files and bytes.
    fn collect_garbage(&self, index: &ImageIndex) -> Result<(usize, u64), StoreError> {
        let mut live = HashSet::new();
        for desc in index.manifests() {
            // A descriptor with a digest that cannot even be parsed reaches nothing.
            let Ok(digest) = descriptor_digest(desc) else {
                continue;
            };
            if let Ok(bytes) = self.read_blob(&digest) {
                if let Ok(m) = parse_manifest(&bytes, &digest) {
                    let reached = std::iter::once(m.config()).chain(m.layers());
                    live.extend(
                        reached
                            .filter_map(|d| descriptor_digest(d).ok())
                            .map(|d| d.hex().to_string()),
                    );
                }
            }
            live.insert(digest.hex().to_string());
        }
        let dir = self.root.join("blobs/sha256");
        let mut removed = (0, 0);
        for entry in fs::read_dir(&dir).map_err(|e| StoreError::io(&dir, e))? {
            let entry = entry.map_err(|e| StoreError::io(&dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(".tmp-") || live.contains(&name) {
                continue;
            }
            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
            remove_file_if_there(&entry.path())?;
            removed.0 += 1;
            removed.1 += size;
        }
        Ok(removed)
    }
}

/// Removes the temp files (blobs and `index.json` updates, named `.tmp-PID-NANOS-ATTEMPT`) that
/// writers which are no longer running left in the store at `root` (an import or pull that was
/// killed). Creates nothing; a store that is not there has none. Returns how many and bytes.
pub fn remove_dead_temps(root: &Path) -> Result<(usize, u64), StoreError> {
    let mut removed = (0, 0);
    for dir in [root.to_path_buf(), root.join("blobs/sha256")] {
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(StoreError::io(&dir, e)),
        };
        for entry in rd {
            let entry = entry.map_err(|e| StoreError::io(&dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix(".tmp-") else {
                continue;
            };
            if writer_alive(rest.split('-').next()) {
                continue;
            }
            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
            remove_file_if_there(&entry.path())?;
            removed.0 += 1;
            removed.1 += size;
        }
    }
    Ok(removed)
}

/// Removes a file; one another cleaner removed first is not an error.
fn remove_file_if_there(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(StoreError::io(path, e)),
        _ => Ok(()),
    }
}

/// `name:tag` split at the tag's colon (a registry port is before the last '/').
pub fn split_tag(full: &str) -> (&str, &str) {
    let last_slash = full.rfind('/').map_or(0, |i| i + 1);
    match full[last_slash..].rfind(':') {
        Some(i) => (&full[..last_slash + i], &full[last_slash + i + 1..]),
        None => (full, "latest"),
    }
}

/// The tag an image pulled as `NAME@DIGEST` is stored under.
pub fn digest_tag(digest: &Digest) -> String {
    format!("sha256-{}", digest.hex())
}

/// Whether the process whose PID is `pid` (as written in a temp file's name) still runs; a
/// name that holds no PID counts as alive (it is left alone).
pub fn writer_alive(pid: Option<&str>) -> bool {
    match pid.and_then(|p| p.parse::<libc::pid_t>().ok()) {
        Some(pid) if pid > 0 => {
            // SAFETY: kill with signal 0 only checks whether the process exists.
            let r = unsafe { libc::kill(pid, 0) };
            r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
        }
        _ => true,
    }
}

/// Parses an image manifest, refusing indexes and other documents that pretend to be one.
pub fn parse_manifest(bytes: &[u8], digest: &Digest) -> Result<ImageManifest, StoreError> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| StoreError::Invalid(format!("manifest {digest}: {e}")))?;
    if value.get("manifests").is_some() {
        return Err(StoreError::Invalid(format!(
            "manifest {digest} also has a \"manifests\" field (an index posing as a manifest)"
        )));
    }
    let manifest: ImageManifest = serde_json::from_value(value)
        .map_err(|e| StoreError::Invalid(format!("manifest {digest}: {e}")))?;
    match manifest.media_type() {
        None | Some(MediaType::ImageManifest) => {}
        Some(MediaType::Other(t))
            if t == "application/vnd.docker.distribution.manifest.v2+json" => {}
        Some(other) => {
            return Err(StoreError::Invalid(format!(
                "manifest {digest} has media type {other}, not an image manifest"
            )))
        }
    }
    Ok(manifest)
}

fn ref_name(d: &Descriptor) -> Option<&str> {
    d.annotations().as_ref()?.get(REF_NAME).map(String::as_str)
}

fn empty_index() -> Result<ImageIndex, StoreError> {
    ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(Vec::<Descriptor>::new())
        .build()
        .map_err(|e| StoreError::Invalid(e.to_string()))
}

/// A fresh, exclusively created temp file in `dir`.
/// A blob being written: remembers the first failed write's errno, so the error can name the
/// store rather than the data's source.
pub struct BlobFile {
    file: File,
    failed: Option<i32>,
}

impl io::Write for BlobFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf).inspect_err(|e| {
            self.failed = self.failed.or(e.raw_os_error());
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

pub(crate) fn temp_file(dir: &Path) -> Result<(PathBuf, File), StoreError> {
    for attempt in 0..100u32 {
        let path = dir.join(format!(".tmp-{}-{}-{attempt}", std::process::id(), nanos()));
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(f) => return Ok((path, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(StoreError::io(&path, e)),
        }
    }
    Err(StoreError::Invalid(format!(
        "cannot create a temp file in {}",
        dir.display()
    )))
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Writes a small file atomically: temp file, fsync, rename.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let (tmp, mut f) = temp_file(dir)?;
    let r = f
        .write_all(bytes)
        .and_then(|_| f.sync_all())
        .and_then(|_| fs::rename(&tmp, path));
    if let Err(e) = r {
        let _ = fs::remove_file(&tmp);
        return Err(StoreError::io(path, e));
    }
    Ok(())
}

/// A blob reader that checks the digest when the stream ends.
pub struct VerifiedReader<R> {
    inner: Option<HashingReader<R>>,
    expected: Digest,
    path: PathBuf,
}

impl<R: Read> Read for VerifiedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(inner) = self.inner.as_mut() else {
            return Ok(0);
        };
        let n = inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            let (actual, _) = self.inner.take().expect("present").finish()?;
            if actual != self.expected {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "blob {} is corrupt: content hashes to {actual}",
                        self.path.display()
                    ),
                ));
            }
        }
        Ok(n)
    }
}
