//! `isola image inspect` (an image as JSON) and `isola image prune` (what no tagged image
//! needs: unreferenced blobs, unpacked root filesystems, VM disks, and the leftovers of
//! imports, unpacks and disk builds that died).

use crate::commands::images::{waiting_for_writers, warn_damaged};
use crate::leftovers::{self, disk_usage};
use crate::paths::Paths;
use anyhow::Result;
use isola_oci::rootfs::{chain_id, RootfsCache};
use isola_oci::store::descriptor_digest;
use isola_oci::{Digest, Reference, Store};
use serde_json::{json, Value};
use std::collections::HashSet;

pub fn inspect(paths: &Paths, images: &[String]) -> Result<i32> {
    let store = Store::open(paths.images())?;
    let mut out = Vec::new();
    for name in images {
        let reference: Reference = name.parse()?;
        let img = store.resolve(&reference)?;
        let layers: Vec<Value> = img
            .manifest
            .layers()
            .iter()
            .map(|l| {
                Ok(json!({
                    "Digest": descriptor_digest(l)?.to_string(),
                    "MediaType": l.media_type().to_string(),
                    "Size": l.size(),
                }))
            })
            .collect::<Result<_, isola_oci::StoreError>>()?;
        let config = &img.config;
        out.push(json!({
            "Id": img.config_digest.to_string(),
            "RepoTags": [format!("{}:{}", img.name, img.tag)],
            "ManifestDigest": img.manifest_digest.to_string(),
            "Created": config.created(),
            "Author": config.author(),
            "Architecture": config.architecture().to_string(),
            "Os": config.os().to_string(),
            "Config": config.config(),
            "RootFS": {"Type": "layers", "Layers": config.rootfs().diff_ids()},
            "ChainId": chain_id(&img)?.to_string(),
            "Layers": layers,
            "Size": img.size(),
        }));
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(0)
}

pub fn prune(paths: &Paths) -> Result<i32> {
    let store = Store::open(paths.images())?;
    // Imports and pulls finish first: their blobs are unreachable until they tag them.
    let deleting = store.lock_deleting(waiting_for_writers)?;
    let dead = leftovers::remove_dead(paths)?;
    crate::records::cleanup(paths);
    let listing = store.images()?;
    warn_damaged(&listing.damaged);
    let live: HashSet<String> = listing
        .images
        .iter()
        .filter_map(|i| chain_id(i).ok())
        .map(|c| c.hex().to_string())
        .collect();
    let (blobs, mut bytes) = store.prune(&deleting)?;
    bytes += dead.bytes;

    // Unpacked roots are named CHAIN; one no image needs, or one without its completion
    // marker (never used as it is), goes.
    let cache = paths.rootfs();
    let mut roots = dead.roots;
    for path in cache.entries() {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if name.starts_with('.') {
            continue; // an unpack or delete in progress (dead ones are gone already)
        }
        if live.contains(name.as_ref()) && RootfsCache::is_complete(&path) {
            continue;
        }
        let size = disk_usage(&path);
        match format!("sha256:{name}").parse::<Digest>() {
            Ok(chain) => cache.remove(&chain)?,
            Err(_) => cache.remove_entry(&path)?,
        }
        roots += 1;
        bytes += size;
    }
    for chain in cache.locked_chains() {
        if !live.contains(&chain) {
            cache.remove_idle_lock(&chain)?;
        }
    }

    // VM disks are named CHAIN.ext4 (and .CHAIN.PID.ext4 while mke2fs builds one).
    let mut disks = dead.disks;
    if let Ok(rd) = std::fs::read_dir(paths.vm_images()) {
        for e in rd.filter_map(|e| e.ok()) {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(stem) = name.strip_suffix(".ext4") else {
                continue;
            };
            if stem.starts_with('.') || live.contains(stem) {
                continue;
            }
            let size = disk_usage(&e.path());
            std::fs::remove_file(e.path())?;
            disks += 1;
            bytes += size;
        }
    }
    println!(
        "Deleted {} blobs, {roots} unpacked root filesystems, {disks} VM disks; reclaimed {}",
        blobs + dead.blobs,
        crate::commands::images::human(bytes)
    );
    Ok(0)
}
