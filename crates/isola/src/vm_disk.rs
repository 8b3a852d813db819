//! The link between one image format and two back ends: the image's unpacked root filesystem
//! (the same tree container isolation mounts as its overlay's lower layer) as a read-only ext4
//! disk image for VM isolation. Built once per chain ID with `mke2fs -t ext4 -d`, kept beside the
//! image store, and reused by every VM run of that image.

use crate::paths::Paths;
use anyhow::{bail, Context, Result};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Bytes and inodes a tree needs (files rounded up to 4 KiB blocks).
fn tree_usage(dir: &Path) -> Result<(u64, u64)> {
    let mut bytes = 0;
    let mut inodes = 1;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).with_context(|| d.display().to_string())? {
            let e = e.with_context(|| d.display().to_string())?;
            let m = e
                .metadata()
                .with_context(|| e.path().display().to_string())?;
            inodes += 1;
            bytes += m.size().div_ceil(4096) * 4096;
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    Ok((bytes, inodes))
}

/// The disk image for `chain` (building it from `lower` if it is not there yet).
pub fn root_disk(paths: &Paths, chain: &str, lower: &Path) -> Result<PathBuf> {
    let dir = paths.vm_images();
    let file = dir.join(format!("{chain}.ext4"));
    if file.is_file() {
        return Ok(file);
    }
    std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
    let tmp = dir.join(format!(".{chain}.{}.ext4", std::process::id()));
    build(lower, &tmp)?;
    if let Err(e) = std::fs::rename(&tmp, &file) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| file.display().to_string());
    }
    Ok(file)
}

/// Writes `tree` as an ext4 image to `file` (nothing is left there on failure).
pub fn build(tree: &Path, file: &Path) -> Result<()> {
    let (bytes, inodes) = tree_usage(tree)?;
    // Generous: the file is sparse, so room that is never used costs no disk.
    let size_mib = (bytes * 2).div_ceil(1 << 20) + 64;
    let out = Command::new("mke2fs")
        .args([
            "-q",
            "-F",
            "-t",
            "ext4",
            "-b",
            "4096",
            "-m",
            "0",
            "-L",
            "isola-root",
        ])
        .args(["-O", "^has_journal,^resize_inode", "-E", "root_owner=0:0"])
        .arg("-N")
        .arg((inodes * 2 + 1024).to_string())
        .arg("-d")
        .arg(tree)
        .arg(file)
        .arg(format!("{size_mib}M"))
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) => {
            let _ = std::fs::remove_file(file);
            bail!("mke2fs (from e2fsprogs) could not be run: {e}");
        }
    };
    if !out.status.success() {
        let _ = std::fs::remove_file(file);
        bail!(
            "mke2fs -d {} failed: {}",
            tree.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
