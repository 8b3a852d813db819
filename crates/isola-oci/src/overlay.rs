//! A container's writable rootfs: an overlay of the image's cached, read-only rootfs (lower)
//! and a per-container directory that takes every write (upper). Removing the upper directory
//! removes every trace of the run; the image's rootfs is never modified.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn c(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))
}

/// Mounts `lower` + `upper` (with `work`) at `target`, `nodev`: a device node a layer carries
/// is never a door to the host's device (the container's own /dev is a separate tmpfs).
pub fn mount(lower: &Path, upper: &Path, work: &Path, target: &Path) -> io::Result<()> {
    for p in [lower, upper, work] {
        if p.as_os_str().as_bytes().iter().any(|b| b",:\\".contains(b)) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{}: overlay paths may not contain ',', ':' or '\\'",
                    p.display()
                ),
            ));
        }
    }
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        upper.display(),
        work.display()
    );
    let data = CString::new(data)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
    let target_c = c(target)?;
    // SAFETY: mount(2) with NUL-terminated strings that outlive the call.
    let r = unsafe {
        libc::mount(
            c"overlay".as_ptr(),
            target_c.as_ptr(),
            c"overlay".as_ptr(),
            libc::MS_NODEV,
            data.as_ptr().cast(),
        )
    };
    if r != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("mounting overlay at {}: {e}", target.display()),
        ));
    }
    Ok(())
}

/// Unmounts `target` (lazily, so a busy mount still goes); not mounted is fine.
pub fn unmount(target: &Path) -> io::Result<()> {
    let t = c(target)?;
    // SAFETY: umount2(2) with a NUL-terminated path.
    let r = unsafe { libc::umount2(t.as_ptr(), libc::MNT_DETACH | libc::UMOUNT_NOFOLLOW) };
    if r != 0 {
        let e = io::Error::last_os_error();
        if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOENT)) {
            return Ok(());
        }
        return Err(io::Error::new(
            e.kind(),
            format!("unmounting {}: {e}", target.display()),
        ));
    }
    Ok(())
}

/// Whether an overlay is mounted on `path`: every overlay mount has a device of its own, so
/// `path` is then on another device than the directory holding it (one stat each; a bind of
/// the same filesystem would not be seen, and isola mounts only overlays there).
pub fn is_mounted(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let dev = |p: &Path| std::fs::metadata(p).map(|m| m.dev()).ok();
    match (dev(path), path.parent().and_then(dev)) {
        (Some(own), Some(parent)) => own != parent,
        _ => false,
    }
}
