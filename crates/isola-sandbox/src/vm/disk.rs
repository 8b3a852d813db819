//! The link between one image format and two back ends: a root filesystem tree (an image's
//! unpacked rootfs, the same tree container isolation mounts as its overlay's lower layer, or a
//! bundle's rootfs) as a read-only ext4 disk image for VM isolation, written by
//! `mke2fs -t ext4 -d`. An image's disk is built once per chain ID and shared by every VM run of
//! it (`shared`); a runtime bundle's is the container's own (`build`).

use crate::Error;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Bytes and inodes a tree needs (files rounded up to 4 KiB blocks).
fn tree_usage(dir: &Path) -> Result<(u64, u64), Error> {
    let io = |p: &Path, e: std::io::Error| Error::Vm(format!("{}: {e}", p.display()));
    let mut bytes = 0;
    let mut inodes = 1;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).map_err(|e| io(&d, e))? {
            let e = e.map_err(|e| io(&d, e))?;
            let m = e.metadata().map_err(|err| io(&e.path(), err))?;
            inodes += 1;
            bytes += m.size().div_ceil(4096) * 4096;
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    Ok((bytes, inodes))
}

/// How far a disk build is: (bytes written, bytes the tree holds) — an estimate, as mke2fs
/// says nothing while it copies.
pub type Progress<'a> = &'a dyn Fn(u64, u64);

/// The shared disk image for `chain` in `dir` (building it from `tree` if it is not there yet,
/// telling `progress` how far it is).
pub fn shared(dir: &Path, chain: &str, tree: &Path, progress: Progress) -> Result<PathBuf, Error> {
    let file = dir.join(format!("{chain}.ext4"));
    if file.is_file() {
        return Ok(file);
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::Vm(format!("{}: {e}", dir.display())))?;
    let tmp = dir.join(format!(".{chain}.{}.ext4", std::process::id()));
    build(tree, &tmp, progress)?;
    if let Err(e) = std::fs::rename(&tmp, &file) {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::Vm(format!("{}: {e}", file.display())));
    }
    Ok(file)
}

/// Writes `tree` as an ext4 image to `file` (nothing is left there on failure); while mke2fs
/// copies, `progress` hears every 10 ms how many bytes the image holds so far.
pub fn build(tree: &Path, file: &Path, progress: Progress) -> Result<(), Error> {
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
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            // The image is sparse: the blocks it has are what mke2fs has written.
            while child.try_wait()?.is_none() {
                let written = std::fs::metadata(file).map_or(0, |m| m.blocks() * 512);
                progress(written, bytes);
                std::thread::sleep(Duration::from_millis(10));
            }
            child.wait_with_output()
        });
    let out = match out {
        Ok(o) => o,
        Err(e) => {
            let _ = std::fs::remove_file(file);
            return Err(Error::Vm(format!(
                "mke2fs (from e2fsprogs) could not be run: {e}"
            )));
        }
    };
    if !out.status.success() {
        let _ = std::fs::remove_file(file);
        return Err(Error::Vm(format!(
            "mke2fs -d {} failed: {}",
            tree.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}
