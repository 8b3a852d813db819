//! `isola pull REF`, and the pull `isola run` does for an image it does not have.

use crate::cli::PullArgs;
use crate::commands::progress::BlobReport;
use anyhow::{anyhow, Result};
use isola_oci::registry::{self, Credentials, Location, PullEvent, PullOptions, Pulled};
use isola_oci::rootfs::RootfsCache;
use isola_oci::{Reference, Store};

/// `--user USER:PASSWORD`.
pub fn credentials(user: Option<&str>) -> Result<Option<Credentials>> {
    user.map(|u| {
        Credentials::parse(u).ok_or_else(|| anyhow!("--user {u:?}: expected USER:PASSWORD"))
    })
    .transpose()
}

pub fn pull(paths: &crate::paths::Paths, a: PullArgs) -> Result<i32> {
    let reference: Reference = a.image.parse()?;
    let opts = PullOptions {
        insecure: a.insecure,
        platform: a.platform.clone(),
        credentials: credentials(a.user.as_deref())?,
    };
    let store = Store::open(paths.images())?;
    let pulled = pull_image(&store, &reference, &opts, a.quiet)?;
    // As `docker pull` does: the image is unpacked too, ready for its first run.
    let image = store.resolve(&pulled.reference)?;
    let rootfs = RootfsCache::new(paths.rootfs_cache()).ensure(&store, &image)?;
    if !a.quiet {
        eprintln!("Unpacked to {}", rootfs.display());
    }
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
    let mut report = BlobReport::new(quiet);
    // Said once the registry has answered with a manifest: a pull that fails before that is
    // one line, the error.
    let mut on_event = |e: PullEvent| match e {
        PullEvent::Manifest { digest, layers } => report.say(&format!(
            "Pulling {reference} from {}: manifest {} ({layers} layers)",
            location.base(),
            digest.short()
        )),
        PullEvent::Present { digest, size } => report.present(digest, size),
        PullEvent::Fetching { digest, size } => report.start(digest, size, "fetching"),
        PullEvent::Progress { digest, bytes } => report.progress(digest, bytes),
        PullEvent::Fetched { digest, .. } => report.done(digest),
    };
    registry::pull(store, reference, opts, &mut on_event)
        .map_err(|e| anyhow!("pulling {reference}: {e}"))
}
