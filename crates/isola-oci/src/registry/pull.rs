//! `isola pull`: a manifest (through an index to this host's platform, or the one asked for),
//! its config and layers into the store — each blob checked against its digest, blobs already
//! there not fetched again — and the tag last, so an interrupted pull leaves only complete,
//! verified blobs that the next pull reuses.

use super::client::Client;
use super::{Credentials, RegistryError};
use crate::digest::Digest;
use crate::reference::Reference;
use crate::store::{descriptor_digest, parse_manifest, Store};
use oci_spec::image::{Descriptor, ImageIndex, MediaType};

#[derive(Clone, Debug, Default)]
pub struct PullOptions {
    /// Plain HTTP even off loopback.
    pub insecure: bool,
    /// `os/arch[/variant]`; default this host's (linux/amd64).
    pub platform: Option<String>,
    pub credentials: Option<Credentials>,
}

/// What a pull reports as it goes.
pub enum PullEvent<'a> {
    /// The manifest is resolved: this many layers of these sizes.
    Manifest { digest: &'a Digest, layers: usize },
    /// A blob is already in the store.
    Present { digest: &'a Digest, size: u64 },
    /// A blob is being fetched.
    Fetching { digest: &'a Digest, size: u64 },
    /// This many bytes of a blob being fetched have arrived.
    Progress { digest: &'a Digest, bytes: u64 },
    /// A blob arrived and matched its digest.
    Fetched { digest: &'a Digest, size: u64 },
    /// The config is in: the image's layers unpack to these diff IDs, bottom first.
    Layers { diff_ids: &'a [Digest] },
    /// Layer `index` (bottom first) is in the store, verified: it can be unpacked while the
    /// next ones arrive.
    LayerReady { index: usize, digest: &'a Digest },
}

pub struct Pulled {
    /// What the image is tagged as in the store now.
    pub reference: Reference,
    pub manifest_digest: Digest,
    pub fetched_bytes: u64,
}

const INDEX_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

fn is_index(media: &str, bytes: &[u8]) -> bool {
    INDEX_TYPES.contains(&media)
        || (media.is_empty()
            && serde_json::from_slice::<serde_json::Value>(bytes)
                .is_ok_and(|v| v.get("manifests").is_some()))
}

/// `os/arch[/variant]` as the image spec spells them.
fn wanted_platform(opts: &PullOptions) -> Result<(String, String, Option<String>), RegistryError> {
    let p = opts
        .platform
        .clone()
        .unwrap_or_else(|| format!("linux/{}", host_arch()));
    let parts: Vec<&str> = p.split('/').collect();
    match parts.as_slice() {
        [os, arch] => Ok((os.to_string(), arch.to_string(), None)),
        [os, arch, variant] => Ok((os.to_string(), arch.to_string(), Some(variant.to_string()))),
        _ => Err(RegistryError::Invalid(format!(
            "--platform {p:?}: expected OS/ARCH[/VARIANT], e.g. linux/amd64"
        ))),
    }
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The index entry for the wanted platform.
fn choose(index: &ImageIndex, opts: &PullOptions) -> Result<Descriptor, RegistryError> {
    let (os, arch, variant) = wanted_platform(opts)?;
    let mut available = Vec::new();
    for d in index.manifests() {
        let Some(p) = d.platform() else { continue };
        let (pos, parch) = (p.os().to_string(), p.architecture().to_string());
        let pvar = p.variant().clone();
        available.push(match &pvar {
            Some(v) => format!("{pos}/{parch}/{v}"),
            None => format!("{pos}/{parch}"),
        });
        if pos == os && parch == arch && (variant.is_none() || variant == pvar) {
            return Ok(d.clone());
        }
    }
    let wanted = match variant {
        Some(v) => format!("{os}/{arch}/{v}"),
        None => format!("{os}/{arch}"),
    };
    Err(RegistryError::Invalid(format!(
        "no image for platform {wanted} in the index (it has: {})",
        if available.is_empty() {
            "no platforms".to_string()
        } else {
            available.join(", ")
        }
    )))
}

/// Pulls `reference` into `store` and tags it there under the same name.
pub fn pull(
    store: &Store,
    reference: &Reference,
    opts: &PullOptions,
    progress: &mut dyn FnMut(PullEvent),
) -> Result<Pulled, RegistryError> {
    let mut client = Client::for_repository(
        &reference.name,
        opts.insecure,
        opts.credentials.clone(),
        "pull",
    );
    let wanted = match &reference.digest {
        Some(d) => d.to_string(),
        None => reference.tag.clone(),
    };
    let (mut bytes, mut media) = client.manifest(&wanted)?;
    let base = client.location.base();
    let url = |r: &str| format!("{base}/manifests/{r}");
    let mut digest = Digest::of(&bytes);
    if let Some(d) = &reference.digest {
        if &digest != d {
            return Err(RegistryError::Digest {
                url: url(&wanted),
                expected: d.clone(),
                actual: digest,
            });
        }
    }
    if is_index(&media, &bytes) {
        let index: ImageIndex = serde_json::from_slice(&bytes).map_err(|e| {
            RegistryError::Invalid(format!("{}: not an image index: {e}", url(&wanted)))
        })?;
        let entry = choose(&index, opts)?;
        let entry_digest = descriptor_digest(&entry)?;
        (bytes, media) = client.manifest(&entry_digest.to_string())?;
        digest = Digest::of(&bytes);
        if digest != entry_digest {
            return Err(RegistryError::Digest {
                url: url(&entry_digest.to_string()),
                expected: entry_digest,
                actual: digest,
            });
        }
    }
    // An index posing as a manifest (or anything else) is refused here.
    let manifest = parse_manifest(&bytes, &digest)?;
    progress(PullEvent::Manifest {
        digest: &digest,
        layers: manifest.layers().len(),
    });
    let mut fetched = 0;
    let mut fetch = |desc: &Descriptor, progress: &mut dyn FnMut(PullEvent)| {
        let d = descriptor_digest(desc)?;
        if store.has_blob(&d) {
            progress(PullEvent::Present {
                digest: &d,
                size: desc.size(),
            });
            return Ok(d);
        }
        progress(PullEvent::Fetching {
            digest: &d,
            size: desc.size(),
        });
        let size = client.blob_into(&d, store, &mut |bytes| {
            progress(PullEvent::Progress { digest: &d, bytes })
        })?;
        fetched += size;
        progress(PullEvent::Fetched { digest: &d, size });
        Ok::<_, RegistryError>(d)
    };
    // The config first: it must parse and name one diff_id per layer before any layer is
    // fetched (and before a tag points at the image).
    fetch(manifest.config(), progress)?;
    let (_, config) = store.image_config(&manifest, &digest)?;
    let diff_ids = crate::rootfs::config_diff_ids(&config)?;
    progress(PullEvent::Layers {
        diff_ids: &diff_ids,
    });
    for (index, desc) in manifest.layers().iter().enumerate() {
        let d = fetch(desc, progress)?;
        progress(PullEvent::LayerReady { index, digest: &d });
    }
    // The manifest's own bytes, unchanged, so its digest stays the registry's.
    let (stored, size) = store.put_blob_bytes(&bytes)?;
    debug_assert_eq!(stored, digest);
    let media_type = if media.is_empty() {
        MediaType::ImageManifest
    } else {
        MediaType::from(media.as_str())
    };
    let desc = Descriptor::new(
        media_type,
        size,
        oci_spec::image::Digest::try_from(digest.to_string())
            .map_err(|e| RegistryError::Invalid(e.to_string()))?,
    );
    // Pulled by digest, the image is tagged with that digest (which may be an index's), so
    // `NAME@DIGEST` finds it again.
    let tagged = Reference {
        name: reference.name.clone(),
        tag: match &reference.digest {
            Some(d) => crate::store::digest_tag(d),
            None => reference.tag.clone(),
        },
        digest: None,
    };
    store.tag(&tagged, desc)?;
    Ok(Pulled {
        reference: tagged,
        manifest_digest: digest,
        fetched_bytes: fetched,
    })
}
