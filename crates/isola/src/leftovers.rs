//! What isola processes that were killed leave in the image side of the data root: temp blobs
//! and index updates of imports and pulls, half-unpacked or half-deleted root filesystems, and
//! half-built VM disks. Each is named with its writer's PID; those whose writer is gone are
//! removed by the cleanup pass every run makes, and by `isola image prune`.

use crate::paths::Paths;
use anyhow::{Context, Result};
use isola_oci::store::{remove_dead_temps, writer_alive};
use std::path::Path;

/// How many leftovers of each kind were removed, and their bytes.
#[derive(Default)]
pub struct Removed {
    pub blobs: usize,
    pub roots: usize,
    pub disks: usize,
    pub bytes: u64,
}

/// Removes the leftovers of writers that are no longer running.
pub fn remove_dead(paths: &Paths) -> Result<Removed> {
    let mut removed = Removed::default();
    let (blobs, bytes) = remove_dead_temps(&paths.images())?;
    removed.blobs = blobs;
    removed.bytes = bytes;
    let cache = paths.rootfs();
    for root in cache.dead_leftovers() {
        let size = disk_usage(&root);
        cache.remove_path(&root)?;
        removed.roots += 1;
        removed.bytes += size;
    }
    // A VM disk is built as .CHAIN.PID.ext4 and renamed to CHAIN.ext4 when mke2fs is done.
    if let Ok(rd) = std::fs::read_dir(paths.vm_images()) {
        for e in rd.filter_map(|e| e.ok()) {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".ext4")) else {
                continue;
            };
            if writer_alive(rest.rsplit('.').next()) {
                continue;
            }
            let size = disk_usage(&e.path());
            match std::fs::remove_file(e.path()) {
                Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                    return Err(err).with_context(|| e.path().display().to_string())
                }
                _ => {}
            }
            removed.disks += 1;
            removed.bytes += size;
        }
    }
    Ok(removed)
}

/// Bytes a file or tree takes on disk, as du counts them: allocated blocks (sparse disk images
/// count as used), a file with several hard links in the tree once.
pub fn disk_usage(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(m) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if seen.insert((m.dev(), m.ino())) {
            total += m.blocks() * 512;
        }
        if m.is_dir() {
            if let Ok(rd) = std::fs::read_dir(&p) {
                stack.extend(rd.filter_map(|e| e.ok()).map(|e| e.path()));
            }
        }
    }
    total
}
