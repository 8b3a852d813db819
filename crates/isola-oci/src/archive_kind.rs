//! Telling an image archive from a root filesystem. `isola import` takes a root filesystem (a
//! directory, tar, tar.gz or tar.zst) or an OCI image layout; given what `docker save`,
//! `podman save` or `skopeo copy ... dir:` write, it would otherwise store the archive's own
//! files (manifest.json, blobs) as a root filesystem. Those are recognised and refused with the
//! command that converts them.

use std::io::Read;
use std::path::Path;

/// An image archive format that is not a root filesystem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageArchive {
    /// `docker save` / `podman save`: manifest.json (a list of Config + Layers) and layer tars.
    DockerArchive,
    /// `podman save --format oci-archive`, `skopeo copy ... oci-archive:`: a tarred OCI layout.
    OciArchive,
    /// `skopeo copy ... dir:`: manifest.json, version and digest-named files.
    SkopeoDir,
}

impl ImageArchive {
    /// One line: what `source` looks like, what import takes, and how to convert it.
    pub fn refusal(self, source: &Path) -> String {
        let s = source.display();
        let (what, convert) = match self {
            ImageArchive::DockerArchive if source.is_dir() => (
                "an extracted docker-archive (docker save / podman save)",
                format!(
                    "convert it with `tar -cf X.tar -C {s} . && skopeo copy docker-archive:X.tar \
                     oci:DIR:latest` and import DIR"
                ),
            ),
            ImageArchive::DockerArchive => (
                "a docker-archive (docker save / podman save)",
                format!(
                    "convert it with `skopeo copy docker-archive:{s} oci:DIR:latest` and import DIR"
                ),
            ),
            ImageArchive::OciArchive => (
                "an oci-archive (a tarred OCI image layout)",
                format!("extract it with `mkdir DIR && tar -xf {s} -C DIR` and import DIR"),
            ),
            ImageArchive::SkopeoDir => (
                "a skopeo dir: layout (manifest.json, version and digest-named blobs)",
                format!("convert it with `skopeo copy dir:{s} oci:DIR:latest` and import DIR"),
            ),
        };
        format!(
            "{s} looks like {what}; isola import takes a root filesystem (a directory, tar, \
             tar.gz or tar.zst) or an OCI image layout: {convert}"
        )
    }
}

/// What a directory given to import is, when it is an image archive rather than a rootfs.
pub fn dir_kind(dir: &Path) -> Option<ImageArchive> {
    let manifest = std::fs::read(dir.join("manifest.json")).ok();
    let version = std::fs::read(dir.join("version")).ok();
    if let (Some(_), Some(v)) = (&manifest, &version) {
        if v.starts_with(b"Directory Transport Version") {
            return Some(ImageArchive::SkopeoDir);
        }
    }
    if manifest.as_deref().is_some_and(is_docker_archive_manifest) {
        return Some(ImageArchive::DockerArchive);
    }
    None
}

/// Whether `bytes` is a docker-archive manifest.json: a list of objects with Config and Layers.
fn is_docker_archive_manifest(bytes: &[u8]) -> bool {
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(serde_json::Value::Array(items)) => {
            !items.is_empty()
                && items
                    .iter()
                    .all(|i| i.get("Config").is_some() && i.get("Layers").is_some())
        }
        _ => false,
    }
}

/// Watches a tar's top-level entries go by (import's first pass) to tell an image archive.
#[derive(Default)]
pub struct TarWatch {
    docker_manifest: bool,
    oci_layout: bool,
    oci_index: bool,
}

/// manifest.json is small; anything bigger is not a docker-archive manifest.
const MAX_MANIFEST: u64 = 1 << 20;

impl TarWatch {
    /// Looks at one entry; reads it only when it is a top-level manifest.json.
    pub fn see<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) {
        let Ok(path) = entry.path() else {
            return;
        };
        let name = path.to_string_lossy();
        let name = name.trim_start_matches("./").trim_end_matches('/');
        match name {
            "oci-layout" => self.oci_layout = true,
            "index.json" => self.oci_index = true,
            "manifest.json" if entry.size() <= MAX_MANIFEST => {
                let mut bytes = Vec::new();
                if entry.read_to_end(&mut bytes).is_ok() {
                    self.docker_manifest |= is_docker_archive_manifest(&bytes);
                }
            }
            _ => {}
        }
    }

    /// The archive format the entries seen make, if any.
    pub fn kind(&self) -> Option<ImageArchive> {
        if self.docker_manifest {
            Some(ImageArchive::DockerArchive)
        } else if self.oci_layout && self.oci_index {
            Some(ImageArchive::OciArchive)
        } else {
            None
        }
    }
}

/// A compression import does not read, named from the file's first bytes.
pub fn unsupported_compression(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Some("xz")
    } else if head.starts_with(b"BZh") {
        Some("bzip2")
    } else if head.starts_with(&[0x04, 0x22, 0x4d, 0x18]) {
        Some("lz4")
    } else {
        None
    }
}
