//! The workload's mounts beyond its root (see isola-guest-contract's `mounts`): host
//! directories from the virtio-fs device, bound in at their paths, and tmpfs mounts. Each path
//! is resolved inside the image's root (openat2 RESOLVE_IN_ROOT, mounted through
//! /proc/self/fd), as the container level does, so the image's symlinks cannot carry a mount
//! elsewhere in the guest.

use crate::setup::mount;
use isola_guest_contract::mounts::{self, GuestMount, FS_TAG};
use isola_guest_contract::GuestError;
use std::os::fd::AsRawFd;
use std::path::Path;

/// Where the virtio-fs device's export is mounted, outside the image's root.
const SHARED: &str = "/isola/shared";

/// The mounts the host asked for (none: no file).
pub fn read() -> Result<Vec<GuestMount>, GuestError> {
    match std::fs::read_to_string(mounts::MOUNTS) {
        Ok(t) => mounts::decode(&t).map_err(GuestError::setup),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(GuestError::setup(format!("{}: {e}", mounts::MOUNTS))),
    }
}

/// Mounts them in the image's root at `root`, in order.
pub fn mount_all(root: &str, list: &[GuestMount]) -> Result<(), GuestError> {
    if list.is_empty() {
        return Ok(());
    }
    if list.iter().any(|m| matches!(m, GuestMount::Shared { .. })) {
        mount(
            FS_TAG,
            SHARED,
            "virtiofs",
            libc::MS_NOSUID | libc::MS_NODEV,
            "",
        )
        .map_err(|e| GuestError::setup(format!("the host's shared directories: {e}")))?;
    }
    let inside =
        isola_inroot::Root::open(root).map_err(|e| GuestError::setup(format!("{root}: {e}")))?;
    for m in list {
        let (dest, read_only) = match m {
            GuestMount::Init { .. } => continue, // once /dev is there: `mount_tiny_init`
            GuestMount::Shared {
                destination,
                read_only,
                ..
            }
            | GuestMount::Tmpfs {
                destination,
                read_only,
                ..
            } => (destination, *read_only),
        };
        let fail = |e: String| GuestError::setup(format!("mount at {dest}: {e}"));
        let target = inside
            .mkdir_all(Path::new(dest), 0o755)
            .map_err(|e| fail(e.to_string()))?;
        let at = format!("/proc/self/fd/{}", target.as_raw_fd());
        let ro = if read_only { libc::MS_RDONLY } else { 0 };
        match m {
            GuestMount::Shared { index, .. } => {
                let from = format!("{SHARED}/{index}");
                mount(&from, &at, "", libc::MS_BIND | libc::MS_REC, "").map_err(fail)?;
                if read_only {
                    // The back end's own bind is read-only too; this makes the guest say so
                    // (EROFS) before it asks.
                    remount_bind(&inside, dest, libc::MS_RDONLY).map_err(fail)?;
                }
            }
            GuestMount::Tmpfs { options, exec, .. } => {
                let noexec = if *exec { 0 } else { libc::MS_NOEXEC };
                let flags = libc::MS_NOSUID | libc::MS_NODEV | noexec | ro;
                mount("tmpfs", &at, "tmpfs", flags, options).map_err(fail)?;
            }
            GuestMount::Init { .. } => {}
        }
    }
    Ok(())
}

/// `--init`: this very binary (isola's tiny init as well as guest init) bound read-only and
/// nosuid at its path in the root at `root`, once the root's /dev is mounted.
pub fn mount_tiny_init(root: &str, list: &[GuestMount]) -> Result<(), GuestError> {
    for m in list {
        let GuestMount::Init { destination: dest } = m else {
            continue;
        };
        let fail = |e: String| GuestError::setup(format!("--init at {dest}: {e}"));
        let inside = isola_inroot::Root::open(root).map_err(|e| fail(e.to_string()))?;
        let (parent, name) = inside
            .parent_of(Path::new(dest), true)
            .map_err(|e| fail(e.to_string()))?;
        let target = isola_inroot::open_in_root(
            parent.as_raw_fd(),
            Path::new(name),
            libc::O_CREAT | libc::O_RDONLY,
            0o755,
            false,
        )
        .map_err(|e| fail(e.to_string()))?;
        let at = format!("/proc/self/fd/{}", target.as_raw_fd());
        mount("/proc/self/exe", &at, "", libc::MS_BIND, "").map_err(&fail)?;
        remount_bind(&inside, dest, libc::MS_RDONLY | libc::MS_NOSUID).map_err(fail)?;
    }
    Ok(())
}

/// Remounts the bind at `dest` in the root with `flags`. The path is opened anew: a
/// descriptor taken before the bind names what is under it.
fn remount_bind(
    inside: &isola_inroot::Root,
    dest: &str,
    flags: libc::c_ulong,
) -> Result<(), String> {
    let again = inside
        .open_at(Path::new(dest), libc::O_PATH, true)
        .map_err(|e| e.to_string())?;
    let at = format!("/proc/self/fd/{}", again.as_raw_fd());
    mount("", &at, "", libc::MS_BIND | libc::MS_REMOUNT | flags, "")
}
