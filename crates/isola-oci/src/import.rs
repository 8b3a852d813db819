//! `isola import`: a directory, a tar, tar.gz or tar.zst of a root filesystem, or an OCI image
//! layout becomes a tagged image in the store.

use crate::archive_kind::{dir_kind, unsupported_compression, TarWatch};
use crate::digest::{Digest, HashingReader};
use crate::reference::Reference;
use crate::store::{descriptor_digest, parse_manifest, Store};
use crate::StoreError;
use oci_spec::image::{
    Arch, Config, Descriptor, ImageConfiguration, ImageIndex, ImageManifest, ImageManifestBuilder,
    MediaType, Os, RootFs,
};
use std::fs::File;
use std::io::{self, BufReader, Read, Seek};
use std::path::Path;

/// Image config settings given on the command line; they override the source's own.
#[derive(Clone, Debug, Default)]
pub struct ConfigOverrides {
    pub cmd: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
}

/// What an import produced.
#[derive(Debug)]
pub struct Imported {
    pub reference: Reference,
    pub manifest_digest: Digest,
}

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Imports `source` as `reference`.
pub fn import(
    store: &Store,
    source: &str,
    reference: &Reference,
    overrides: &ConfigOverrides,
) -> Result<Imported, StoreError> {
    // Held until the tag is written: a prune meanwhile would see the new blobs as unreachable.
    let _writing = store.lock_writing()?;
    let path = Path::new(source);
    let (layout_dir, layout_ref) = split_layout_source(source);
    if layout_dir.join("oci-layout").is_file() {
        return import_layout(store, layout_dir, layout_ref, reference, overrides);
    }
    let meta = std::fs::metadata(path).map_err(|e| StoreError::io(path, e))?;
    let (layer, diff_id, media) = if meta.is_dir() {
        if let Some(kind) = dir_kind(path) {
            return Err(StoreError::Invalid(kind.refusal(path)));
        }
        layer_from_dir(store, path)?
    } else {
        layer_from_tar(store, path)?
    };
    let mut config = ImageConfiguration::default();
    config.set_architecture(Arch::Amd64);
    config.set_os(Os::Linux);
    let mut rootfs = RootFs::default();
    rootfs.set_diff_ids(vec![diff_id.to_string()]);
    config.set_rootfs(rootfs);
    let mut runtime = Config::default();
    runtime.set_env(Some(vec![DEFAULT_PATH.to_string()]));
    config.set_config(Some(runtime));
    let layer_size = std::fs::metadata(store.blob_path(&layer))
        .map_err(|e| StoreError::io(&store.blob_path(&layer), e))?
        .len();
    let layers = vec![Descriptor::new(media, layer_size, oci_digest(&layer)?)];
    write_image(store, reference, config, layers, overrides)
}

/// `DIR` or `DIR:REF` (skopeo's `oci:DIR:REF` form without the transport).
fn split_layout_source(source: &str) -> (&Path, Option<&str>) {
    if Path::new(source).join("oci-layout").is_file() {
        return (Path::new(source), None);
    }
    match source.rsplit_once(':') {
        Some((dir, r)) if Path::new(dir).join("oci-layout").is_file() => (Path::new(dir), Some(r)),
        _ => (Path::new(source), None),
    }
}

pub(crate) fn oci_digest(d: &Digest) -> Result<oci_spec::image::Digest, StoreError> {
    d.to_string()
        .parse()
        .map_err(|e: oci_spec::OciSpecError| StoreError::Invalid(e.to_string()))
}

/// Applies overrides, writes config and manifest blobs, and tags the result.
fn write_image(
    store: &Store,
    reference: &Reference,
    mut config: ImageConfiguration,
    layers: Vec<Descriptor>,
    overrides: &ConfigOverrides,
) -> Result<Imported, StoreError> {
    let mut runtime = config.config().clone().unwrap_or_default();
    if let Some(cmd) = &overrides.cmd {
        runtime.set_cmd(Some(cmd.clone()));
    }
    if let Some(ep) = &overrides.entrypoint {
        runtime.set_entrypoint(Some(ep.clone()));
    }
    if !overrides.env.is_empty() {
        let mut env = runtime.env().clone().unwrap_or_default();
        for kv in &overrides.env {
            let key = kv
                .split_once('=')
                .map(|(k, _)| k)
                .ok_or_else(|| StoreError::Invalid(format!("--env {kv:?}: expected KEY=VALUE")))?;
            env.retain(|e| e.split_once('=').map(|(k, _)| k) != Some(key));
            env.push(kv.clone());
        }
        runtime.set_env(Some(env));
    }
    if let Some(w) = &overrides.workdir {
        if !w.starts_with('/') {
            return Err(StoreError::Invalid(format!(
                "--workdir {w:?}: must be an absolute path"
            )));
        }
        runtime.set_working_dir(Some(w.clone()));
    }
    if let Some(u) = &overrides.user {
        runtime.set_user(Some(u.clone()));
    }
    config.set_config(Some(runtime));
    let config_bytes =
        serde_json::to_vec(&config).map_err(|e| StoreError::Invalid(e.to_string()))?;
    let (config_digest, config_size) = store.put_blob_bytes(&config_bytes)?;
    let manifest: ImageManifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(Descriptor::new(
            MediaType::ImageConfig,
            config_size,
            oci_digest(&config_digest)?,
        ))
        .layers(layers)
        .build()
        .map_err(|e| StoreError::Invalid(e.to_string()))?;
    let manifest_bytes =
        serde_json::to_vec(&manifest).map_err(|e| StoreError::Invalid(e.to_string()))?;
    let (manifest_digest, manifest_size) = store.put_blob_bytes(&manifest_bytes)?;
    store.tag(
        reference,
        Descriptor::new(
            MediaType::ImageManifest,
            manifest_size,
            oci_digest(&manifest_digest)?,
        ),
    )?;
    Ok(Imported {
        reference: reference.clone(),
        manifest_digest,
    })
}

/// Packs a directory into an uncompressed layer (entries sorted, so the digest is stable).
fn layer_from_dir(store: &Store, dir: &Path) -> Result<(Digest, Digest, MediaType), StoreError> {
    // Read permission on the top directory is the first thing that can fail; say so clearly.
    std::fs::read_dir(dir).map_err(|e| StoreError::io(dir, e))?;
    let (digest, _) = store.put_blob_from_writer(|w| {
        let mut builder = tar::Builder::new(w);
        builder.follow_symlinks(false);
        // Sparse files as plain data: unpack (as docker's) takes no GNU sparse entries.
        builder.sparse(false);
        append_sorted(&mut builder, dir, Path::new(""))?;
        builder.finish()
    })?;
    Ok((digest.clone(), digest, MediaType::ImageLayer))
}

fn append_sorted<W: io::Write>(
    builder: &mut tar::Builder<W>,
    src: &Path,
    rel: &Path,
) -> io::Result<()> {
    let here = src.join(rel);
    let mut names: Vec<_> = std::fs::read_dir(&here)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", here.display())))?
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .map(|e| e.file_name())
        .collect();
    names.sort();
    for name in names {
        let child_rel = rel.join(&name);
        let child = src.join(&child_rel);
        let meta = std::fs::symlink_metadata(&child)?;
        let appended = if is_special(&meta) {
            append_special(builder, &meta, &child_rel)
        } else {
            builder.append_path_with_name(&child, &child_rel)
        };
        appended.map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", child.display())))?;
        if meta.is_dir() {
            append_sorted(builder, src, &child_rel)?;
        }
    }
    Ok(())
}

fn is_special(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    t.is_char_device() || t.is_block_device() || t.is_fifo() || t.is_socket()
}

/// A device node or FIFO, under its name relative to the root (the tar crate's own
/// `append_path_with_name` writes these under their absolute host path). A socket is skipped,
/// as tar and docker do: it cannot be archived, and means nothing without its server.
fn append_special<W: io::Write>(
    builder: &mut tar::Builder<W>,
    meta: &std::fs::Metadata,
    name: &Path,
) -> io::Result<()> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let t = meta.file_type();
    let kind = if t.is_char_device() {
        tar::EntryType::Char
    } else if t.is_block_device() {
        tar::EntryType::Block
    } else if t.is_fifo() {
        tar::EntryType::Fifo
    } else {
        return Ok(());
    };
    let mut header = tar::Header::new_gnu();
    header.set_metadata_in_mode(meta, tar::HeaderMode::Complete);
    header.set_entry_type(kind);
    header.set_size(0);
    let rdev = meta.rdev();
    header.set_device_major(libc::major(rdev))?;
    header.set_device_minor(libc::minor(rdev))?;
    builder.append_data(&mut header, name, io::empty())
}

/// Stores a tar, tar.gz or tar.zst as a layer; computes its diff_id and checks it is a readable
/// tar of a root filesystem (not an image archive).
fn layer_from_tar(store: &Store, path: &Path) -> Result<(Digest, Digest, MediaType), StoreError> {
    let mut file = File::open(path).map_err(|e| StoreError::io(path, e))?;
    let mut head = [0u8; 6];
    let n = read_head(&mut file, &mut head).map_err(|e| StoreError::io(path, e))?;
    file.rewind().map_err(|e| StoreError::io(path, e))?;
    let head = &head[..n];
    if let Some(format) = unsupported_compression(head) {
        return Err(StoreError::Invalid(format!(
            "{}: {format}-compressed tar is not supported; decompress it, or use tar, tar.gz \
             or tar.zst",
            path.display()
        )));
    }
    let (media, reader): (MediaType, Box<dyn Read>) = if head.starts_with(&[0x1f, 0x8b]) {
        (
            MediaType::ImageLayerGzip,
            Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(file))),
        )
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        let decoder = zstd::stream::read::Decoder::new(file).map_err(|e| not_a_tar(path, e))?;
        (MediaType::ImageLayerZstd, Box::new(decoder))
    } else {
        (MediaType::ImageLayer, Box::new(BufReader::new(file)))
    };
    // First pass: parse and hash the uncompressed stream, watching for an image archive.
    let mut hashing = HashingReader::new(reader);
    let mut watch = TarWatch::default();
    {
        let mut archive = tar::Archive::new(&mut hashing);
        let mut count = 0usize;
        for entry in archive.entries().map_err(|e| not_a_tar(path, e))? {
            let mut entry = entry.map_err(|e| not_a_tar(path, e))?;
            watch.see(&mut entry);
            count += 1;
        }
        if count == 0 {
            return Err(StoreError::Invalid(format!(
                "{}: the tar archive is empty",
                path.display()
            )));
        }
    }
    if let Some(kind) = watch.kind() {
        return Err(StoreError::Invalid(kind.refusal(path)));
    }
    let (diff_id, _) = hashing.finish().map_err(|e| not_a_tar(path, e))?;
    let file = File::open(path).map_err(|e| StoreError::io(path, e))?;
    let (digest, _) = store.put_blob(BufReader::new(file))?;
    Ok((digest, diff_id, media))
}

/// Reads up to `buf.len()` bytes (fewer only at end of file).
fn read_head(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn not_a_tar(path: &Path, e: io::Error) -> StoreError {
    StoreError::Invalid(format!(
        "{}: not a readable tar archive: {e}",
        path.display()
    ))
}

/// Copies one image out of an OCI image layout, verifying every blob.
fn import_layout(
    store: &Store,
    dir: &Path,
    wanted: Option<&str>,
    reference: &Reference,
    overrides: &ConfigOverrides,
) -> Result<Imported, StoreError> {
    let index_path = dir.join("index.json");
    let index: ImageIndex = serde_json::from_slice(
        &std::fs::read(&index_path).map_err(|e| StoreError::io(&index_path, e))?,
    )
    .map_err(|e| StoreError::Invalid(format!("{}: {e}", index_path.display())))?;
    let candidates: Vec<&Descriptor> = index
        .manifests()
        .iter()
        .filter(|d| match wanted {
            None => true,
            Some(w) => {
                let name = d
                    .annotations()
                    .as_ref()
                    .and_then(|a| a.get(crate::store::REF_NAME));
                name.map(String::as_str) == Some(w)
            }
        })
        .collect();
    let desc = match candidates.as_slice() {
        [one] => (*one).clone(),
        [] => {
            return Err(StoreError::NotFound(format!(
                "{}: no image{} in the layout",
                dir.display(),
                wanted.map(|w| format!(" named {w:?}")).unwrap_or_default()
            )))
        }
        _ => {
            return Err(StoreError::Invalid(format!(
                "{}: the layout holds {} images; name one as {}:REF",
                dir.display(),
                candidates.len(),
                dir.display()
            )))
        }
    };
    let manifest_digest = descriptor_digest(&desc)?;
    let manifest_bytes = read_layout_blob(dir, &manifest_digest)?;
    let manifest = match desc.media_type() {
        MediaType::ImageIndex => {
            let nested: ImageIndex = serde_json::from_slice(&manifest_bytes)
                .map_err(|e| StoreError::Invalid(format!("index {manifest_digest}: {e}")))?;
            let pick = nested
                .manifests()
                .iter()
                .find(|m| {
                    m.platform()
                        .as_ref()
                        .is_some_and(|p| *p.architecture() == Arch::Amd64 && *p.os() == Os::Linux)
                })
                .ok_or_else(|| {
                    StoreError::NotFound(format!("index {manifest_digest}: no linux/amd64 image"))
                })?;
            let d = descriptor_digest(pick)?;
            parse_manifest(&read_layout_blob(dir, &d)?, &d)?
        }
        _ => parse_manifest(&manifest_bytes, &manifest_digest)?,
    };
    let config_digest = descriptor_digest(manifest.config())?;
    let config: ImageConfiguration =
        serde_json::from_slice(&read_layout_blob(dir, &config_digest)?)
            .map_err(|e| StoreError::Invalid(format!("image config {config_digest}: {e}")))?;
    for layer in manifest.layers() {
        match layer.media_type() {
            MediaType::ImageLayer | MediaType::ImageLayerGzip | MediaType::ImageLayerZstd => {}
            MediaType::Other(t) if t == "application/vnd.docker.image.rootfs.diff.tar.gzip" => {}
            other => {
                return Err(StoreError::Invalid(format!(
                    "layer {}: media type {other} is not supported yet",
                    layer.digest()
                )))
            }
        }
        let d = descriptor_digest(layer)?;
        if !store.has_blob(&d) {
            let src = dir.join("blobs/sha256").join(d.hex());
            let f = File::open(&src).map_err(|e| StoreError::io(&src, e))?;
            let (got, _) = store.put_blob(BufReader::new(f))?;
            if got != d {
                let _ = std::fs::remove_file(store.blob_path(&got));
                return Err(StoreError::Corrupt {
                    path: src,
                    expected: d,
                    actual: got,
                });
            }
        }
    }
    write_image(
        store,
        reference,
        config,
        manifest.layers().clone(),
        overrides,
    )
}

fn read_layout_blob(dir: &Path, digest: &Digest) -> Result<Vec<u8>, StoreError> {
    let path = dir.join("blobs/sha256").join(digest.hex());
    let bytes = std::fs::read(&path).map_err(|e| StoreError::io(&path, e))?;
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
