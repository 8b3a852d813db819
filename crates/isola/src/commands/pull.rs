//! `isola pull REF`, and the pull `isola run` does for an image it does not have.

use crate::cli::PullArgs;
use crate::commands::images::human;
use crate::paths::Paths;
use anyhow::{anyhow, Result};
use isola_oci::registry::{self, Credentials, Location, PullEvent, PullOptions, Pulled};
use isola_oci::{Reference, Store};

pub fn pull(paths: &Paths, a: PullArgs) -> Result<i32> {
    let reference: Reference = a.image.parse()?;
    let credentials = a
        .user
        .as_deref()
        .map(|u| {
            Credentials::parse(u).ok_or_else(|| anyhow!("--user {u:?}: expected USER:PASSWORD"))
        })
        .transpose()?;
    let opts = PullOptions {
        insecure: a.insecure,
        platform: a.platform.clone(),
        credentials,
    };
    let store = Store::open(paths.images())?;
    let pulled = pull_image(&store, &reference, &opts, a.quiet)?;
    println!("{reference} {}", pulled.manifest_digest);
    Ok(0)
}

/// Pulls `reference` into `store`, reporting each blob on stderr unless `quiet`.
pub fn pull_image(
    store: &Store,
    reference: &Reference,
    opts: &PullOptions,
    quiet: bool,
) -> Result<Pulled> {
    let location = Location::of(&reference.name, opts.insecure);
    // Said once the registry has answered with a manifest: a pull that fails before that is
    // one line, the error.
    let mut report = |e: PullEvent| {
        if quiet {
            return;
        }
        match e {
            PullEvent::Manifest { digest, layers } => eprintln!(
                "Pulling {reference} from {}: manifest {} ({layers} layers)",
                location.base(),
                digest.short()
            ),
            PullEvent::Present { digest, size } => {
                eprintln!("  {} {:>8} already present", digest.short(), human(size))
            }
            PullEvent::Fetching { digest, size } => {
                eprintln!("  {} {:>8} fetching", digest.short(), human(size))
            }
            PullEvent::Fetched { digest, .. } => eprintln!("  {} done", digest.short()),
        }
    };
    registry::pull(store, reference, opts, &mut report)
        .map_err(|e| anyhow!("pulling {reference}: {e}"))
}
