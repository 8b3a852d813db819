//! `isola push`: an image from the store to a registry — the config and layers it lacks
//! (each checked with a HEAD first, uploaded whole otherwise), then the manifest's own bytes
//! under the tag, so the registry's digest is the store's.

use super::client::Client;
use super::{Credentials, RegistryError};
use crate::digest::Digest;
use crate::reference::Reference;
use crate::store::{descriptor_digest, Image, Store};

#[derive(Clone, Debug, Default)]
pub struct PushOptions {
    /// Plain HTTP even off loopback.
    pub insecure: bool,
    pub credentials: Option<Credentials>,
}

/// What a push reports as it goes.
pub enum PushEvent<'a> {
    /// Starting: the manifest and how many layers it has.
    Manifest { digest: &'a Digest, layers: usize },
    /// The registry has this blob already.
    Present { digest: &'a Digest, size: u64 },
    /// A blob is being uploaded.
    Uploading { digest: &'a Digest, size: u64 },
    /// This many bytes of a blob being uploaded have gone.
    Progress { digest: &'a Digest, bytes: u64 },
    /// A blob was accepted.
    Uploaded { digest: &'a Digest, size: u64 },
}

pub struct Pushed {
    pub manifest_digest: Digest,
    pub uploaded_bytes: u64,
}

/// Pushes `image` from `store` to `destination` (a tag; a digest is what the push produces,
/// not something to push to).
pub fn push(
    store: &Store,
    image: &Image,
    destination: &Reference,
    opts: &PushOptions,
    progress: &mut dyn FnMut(PushEvent),
) -> Result<Pushed, RegistryError> {
    if destination.digest.is_some() {
        // (The caller names the destination.)
        return Err(RegistryError::Invalid(
            "push to NAME[:TAG]; the registry gives the digest".to_string(),
        ));
    }
    let mut client = Client::for_repository(
        &destination.name,
        opts.insecure,
        opts.credentials.clone(),
        "pull,push",
    );
    let manifest_bytes = store.read_blob(&image.manifest_digest)?;
    let mut uploaded = 0;
    for (i, desc) in std::iter::once(image.manifest.config())
        .chain(image.manifest.layers())
        .enumerate()
    {
        let digest = descriptor_digest(desc)?;
        let size = desc.size();
        let present = client.has_blob(&digest)?;
        // Said once the registry has answered: a push that fails before is one line.
        if i == 0 {
            progress(PushEvent::Manifest {
                digest: &image.manifest_digest,
                layers: image.manifest.layers().len(),
            });
        }
        if present {
            progress(PushEvent::Present {
                digest: &digest,
                size,
            });
            continue;
        }
        progress(PushEvent::Uploading {
            digest: &digest,
            size,
        });
        client.upload_blob(&digest, &store.blob_path(&digest), &mut |bytes| {
            progress(PushEvent::Progress {
                digest: &digest,
                bytes,
            })
        })?;
        uploaded += size;
        progress(PushEvent::Uploaded {
            digest: &digest,
            size,
        });
    }
    let said = client.put_manifest(
        &destination.tag,
        &image.manifest_media_type,
        &manifest_bytes,
    )?;
    if let Some(said) = said {
        if said != image.manifest_digest.to_string() {
            return Err(RegistryError::Invalid(format!(
                "{}/manifests/{}: the registry stored the manifest as {said}, not {}",
                client.location.base(),
                destination.tag,
                image.manifest_digest
            )));
        }
    }
    Ok(Pushed {
        manifest_digest: image.manifest_digest.clone(),
        uploaded_bytes: uploaded,
    })
}
