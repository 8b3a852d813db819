//! `isola pull REF`, and the pull `isola run` does for an image it does not have. Layers are
//! unpacked as they arrive (on a second thread, in order) while later ones are still fetched,
//! as `docker pull` leaves an image ready for its first run.

use crate::cli::PullArgs;
use crate::commands::progress::BlobReport;
use anyhow::{anyhow, Result};
use isola_oci::registry::{self, Credentials, Location, PullEvent, PullOptions, Pulled};
use isola_oci::rootfs::{chain_id_of, RootfsCache};
use isola_oci::{Digest, Reference, Store};
use std::path::PathBuf;
use std::sync::mpsc;

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
    let cache = paths.rootfs();
    let (pulled, rootfs) = pull_image(&store, &cache, &reference, &opts, a.quiet)?;
    if !a.quiet {
        eprintln!("Unpacked to {}", rootfs.display());
    }
    println!("{reference} {}", pulled.manifest_digest);
    Ok(0)
}

/// Pulls `reference` into `store` and unpacks it into `cache`, reporting each blob on stderr
/// unless `quiet`. Returns what was pulled and the unpacked rootfs.
pub fn pull_image(
    store: &Store,
    cache: &RootfsCache,
    reference: &Reference,
    opts: &PullOptions,
    quiet: bool,
) -> Result<(Pulled, PathBuf)> {
    let location = Location::of(&reference.name, opts.insecure);
    let mut report = BlobReport::new(quiet);
    // Held until the tag is written and the rootfs unpacked: a prune meanwhile would see the
    // new blobs and rootfs as unreachable.
    let writing = store.lock_writing()?;
    std::thread::scope(|scope| {
        let (to_unpacker, layers_in) = mpsc::channel::<(Digest, Digest)>();
        let mut to_unpacker = Some(to_unpacker);
        let mut layers_in = Some(layers_in);
        let mut diff_ids: Vec<Digest> = Vec::new();
        let mut unpacker = None;
        // Said once the registry has answered with a manifest: a pull that fails before that
        // is one line, the error.
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
            PullEvent::Layers { diff_ids: d } => {
                diff_ids = d.to_vec();
                let rx = layers_in.take().expect("one config per pull");
                let expected = d.len();
                let chain = chain_id_of(d);
                let bar = report.unpacking(expected);
                unpacker =
                    Some(scope.spawn(move || unpack(store, cache, chain, expected, rx, bar)));
            }
            PullEvent::LayerReady { index, digest } => {
                if let (Some(tx), Some(diff)) = (&to_unpacker, diff_ids.get(index)) {
                    // A send fails only when the unpacker stopped on an error it returns.
                    let _ = tx.send((digest.clone(), diff.clone()));
                }
            }
        };
        let pulled = registry::pull(store, reference, opts, &mut on_event);
        // No more layers: the unpacker finishes (all arrived) or discards its work.
        to_unpacker.take();
        let unpacked = unpacker.map(|h| h.join().expect("the unpacker does not panic"));
        drop(writing);
        let pulled = pulled.map_err(|e| anyhow!("pulling {reference}: {e}"))?;
        match unpacked {
            Some(Ok(rootfs)) => Ok((pulled, rootfs)),
            Some(Err(e)) => {
                // Blobs that match their digests but do not make the filesystem the config
                // says (a wrong diff ID, a hostile entry): the image is not kept under a name.
                if let Ok(deleting) = store.lock_deleting(|| {}) {
                    let _ = store.untag(&deleting, &pulled.reference.tagged());
                }
                Err(anyhow!("unpacking {reference}: {e}"))
            }
            None => Err(anyhow!("pulling {reference}: no image config came")),
        }
    })
}

/// Applies layers as they come, in order, into a new rootfs for `chain` (unless it is cached
/// already), moving `bar` on; the rootfs is kept only when all `expected` layers arrived and
/// applied.
fn unpack(
    store: &Store,
    cache: &RootfsCache,
    chain: Option<Digest>,
    expected: usize,
    layers: mpsc::Receiver<(Digest, Digest)>,
    bar: Option<indicatif::ProgressBar>,
) -> Result<PathBuf, isola_oci::StoreError> {
    let chain = chain
        .ok_or_else(|| isola_oci::StoreError::Invalid("the image has no layers".to_string()))?;
    let Some(mut unpacking) = cache.begin(&chain)? else {
        if let Some(bar) = bar {
            bar.finish_with_message("already unpacked");
        }
        return Ok(cache.path_for(&chain));
    };
    let mut applied = 0;
    for (layer, diff_id) in layers {
        if let Some(bar) = &bar {
            bar.set_message(layer.short().to_string());
        }
        unpacking.apply(store, &layer, &diff_id)?;
        applied += 1;
        if let Some(bar) = &bar {
            bar.set_position(applied as u64);
        }
    }
    if let Some(bar) = &bar {
        bar.finish_with_message(if applied == expected {
            "done"
        } else {
            "broken off"
        });
    }
    if applied != expected {
        // The pull broke off; dropping `unpacking` removes the partial rootfs.
        return Err(isola_oci::StoreError::Invalid(format!(
            "{applied} of {expected} layers arrived"
        )));
    }
    unpacking.finish()
}
