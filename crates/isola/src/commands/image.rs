//! `isola image inspect` (an image as JSON) and `isola image prune` (what no tagged image
//! needs: unreferenced blobs, unpacked root filesystems, VM disks, and the leftovers of
//! imports, unpacks and disk builds that died).

use crate::paths::Paths;
use anyhow::Result;
use isola_oci::rootfs::{chain_id, RootfsCache};
use isola_oci::store::{descriptor_digest, writer_alive};
use isola_oci::{Reference, Store};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

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

/// Bytes a file or tree takes on disk (allocated blocks: sparse disk images count as used).
fn disk_usage(path: &Path) -> u64 {
    let Ok(m) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    let mut total = m.blocks() * 512;
    if m.is_dir() {
        if let Ok(rd) = std::fs::read_dir(path) {
            total += rd
                .filter_map(|e| e.ok())
                .map(|e| disk_usage(&e.path()))
                .sum::<u64>();
        }
    }
    total
}

pub fn prune(paths: &Paths) -> Result<i32> {
    crate::records::cleanup(paths);
    let store = Store::open(paths.images())?;
    let live: HashSet<String> = store
        .images()?
        .iter()
        .filter_map(|i| chain_id(i).ok())
        .map(|c| c.hex().to_string())
        .collect();
    let (blobs, mut bytes) = store.prune()?;

    // Unpacked roots are named CHAIN, or .tmp-SHORT-PID while an unpack runs.
    let cache = RootfsCache::new(paths.rootfs_cache());
    let mut roots = 0;
    for path in cache.entries() {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let doomed = match name.strip_prefix(".tmp-") {
            Some(rest) => !writer_alive(rest.rsplit('-').next()),
            None => !live.contains(name.as_ref()),
        };
        if doomed {
            let size = disk_usage(&path);
            cache.remove_path(&path)?;
            roots += 1;
            bytes += size;
        }
    }

    // VM disks are named CHAIN.ext4, or .CHAIN.PID.ext4 while mke2fs builds one.
    let mut disks = 0;
    if let Ok(rd) = std::fs::read_dir(paths.vm_images()) {
        for e in rd.filter_map(|e| e.ok()) {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(stem) = name.strip_suffix(".ext4") else {
                continue;
            };
            let doomed = match stem.strip_prefix('.') {
                Some(rest) => !writer_alive(rest.rsplit('.').next()),
                None => !live.contains(stem),
            };
            if doomed {
                let size = disk_usage(&e.path());
                std::fs::remove_file(e.path())?;
                disks += 1;
                bytes += size;
            }
        }
    }
    println!(
        "Deleted {blobs} blobs, {roots} unpacked root filesystems, {disks} VM disks; reclaimed {}",
        crate::commands::images::human(bytes)
    );
    Ok(0)
}
