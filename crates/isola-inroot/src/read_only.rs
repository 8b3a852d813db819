//! A mount made read-only with every mount below it: `mount_setattr(2)` with AT_RECURSIVE and
//! MOUNT_ATTR_RDONLY. A remount (MS_REMOUNT | MS_RDONLY) changes the top mount only, so an
//! `rbind ro` of a tree with mounts inside would leave those writable.

use std::ffi::CStr;
use std::io;
use std::os::fd::RawFd;

/// struct mount_attr of linux/mount.h.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;

/// Makes the mount at `path` (relative to `dirfd`; empty: the mount `dirfd` itself names) and
/// every mount below it read-only. Async-signal-safe: one system call, no allocation (usable
/// between fork and exec).
pub fn read_only_recursive(dirfd: RawFd, path: &CStr) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let mut flags = libc::AT_RECURSIVE;
    if path.is_empty() {
        flags |= libc::AT_EMPTY_PATH;
    }
    // SAFETY: mount_setattr reads `size` bytes of `attr`, a live mount_attr, and the
    // NUL-terminated path; it changes mount flags only.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            dirfd,
            path.as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
