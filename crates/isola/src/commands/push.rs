//! `isola push IMAGE [DESTINATION]` and `isola tag SOURCE TARGET`.

use crate::cli::PushArgs;
use crate::commands::progress::BlobReport;
use crate::commands::pull::credentials;
use crate::paths::Paths;
use anyhow::{anyhow, bail, Result};
use isola_oci::registry::{self, Location, PushEvent, PushOptions};
use isola_oci::store::descriptor_digest;
use isola_oci::{Reference, Store};

pub fn push(paths: &Paths, a: PushArgs) -> Result<i32> {
    let source: Reference = a.image.parse()?;
    let destination = match &a.destination {
        None => source.clone(),
        Some(d) => {
            let mut r: Reference = d.parse()?;
            // A destination without a tag keeps the source's.
            if !has_tag(d) {
                r.tag = source.tag.clone();
            }
            r
        }
    };
    let store = Store::open(paths.images())?;
    let image = store.resolve(&source)?;
    let opts = PushOptions {
        insecure: a.insecure,
        credentials: credentials(a.user.as_deref())?,
    };
    let location = Location::of(&destination.name, opts.insecure);
    let mut report = BlobReport::new(a.quiet);
    let mut on_event = |e: PushEvent| match e {
        PushEvent::Manifest { digest, layers } => report.say(&format!(
            "Pushing {} to {}: manifest {} ({layers} layers)",
            source.tagged(),
            location.base(),
            digest.short()
        )),
        PushEvent::Present { digest, size } => report.present(digest, size),
        PushEvent::Uploading { digest, size } => report.start(digest, size, "uploading"),
        PushEvent::Progress { digest, bytes } => report.progress(digest, bytes),
        PushEvent::Uploaded { digest, .. } => report.done(digest),
    };
    let pushed = registry::push(&store, &image, &destination, &opts, &mut on_event)
        .map_err(|e| anyhow!("pushing {} to {destination}: {e}", source.tagged()))?;
    drop(report);
    println!("{} {}", destination.tagged(), pushed.manifest_digest);
    Ok(0)
}

/// Whether a reference names its tag (`a/b:1`, not `host:5000/a/b`).
fn has_tag(s: &str) -> bool {
    let last = s.rsplit('/').next().unwrap_or(s);
    !s.contains('@') && last.contains(':')
}

/// `isola tag SOURCE TARGET`: another name for the same manifest.
pub fn tag(paths: &Paths, source: &str, target: &str) -> Result<i32> {
    let source: Reference = source.parse()?;
    let target_ref: Reference = target.parse()?;
    if target_ref.digest.is_some() {
        bail!("{target}: a tag is NAME[:TAG], not a digest");
    }
    let store = Store::open(paths.images())?;
    // Held until the new tag is written, so a concurrent rmi cannot delete the blobs under it.
    let _writing = store.lock_writing()?;
    let image = store.resolve(&source)?;
    let tags = store.tags()?;
    let desc = tags
        .iter()
        .find(|(_, d)| descriptor_digest(d).ok().as_ref() == Some(&image.manifest_digest))
        .map(|(_, d)| d.clone())
        .ok_or_else(|| anyhow!("no such image: {source}"))?;
    let mut desc = desc;
    desc.set_annotations(None);
    store.tag(&target_ref, desc)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn tags_are_told_from_ports() {
        assert!(super::has_tag("a/b:1"));
        assert!(super::has_tag("127.0.0.1:5000/a/b:1"));
        assert!(!super::has_tag("127.0.0.1:5000/a/b"));
        assert!(!super::has_tag("a/b"));
    }
}
