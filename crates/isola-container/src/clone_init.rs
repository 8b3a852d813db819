//! The init's birth: a fork-like clone into its new namespaces and, where the kernel can
//! (clone3, Linux 5.7+), straight into its cgroup2 workload cgroup, so no `cgroup.procs` write
//! (and no wait for the kernel's global migration lock) is needed for it (see
//! `cgroups::Placement`).

use crate::cgroups::Placement;
use crate::ContainerError;
use std::os::fd::{AsRawFd, OwnedFd};

/// clone3's flag: the child starts in the cgroup2 directory `clone_args.cgroup` names.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Clones this process with namespace `flags`; returns the child's pid (0 in the child) and
/// whether it was born in `placement.born_into`.
pub fn clone_init(
    flags: libc::c_int,
    placement: &Placement,
) -> Result<(i32, bool), ContainerError> {
    let dir: Option<OwnedFd> = placement.born_into.as_ref().and_then(|d| {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(d)
            .ok()
            .map(OwnedFd::from)
    });
    if let Some(dir) = &dir {
        // SAFETY: clone_args is plain data; all zeros is "no pidfd, no tids, no stack, no tls".
        let mut args: libc::clone_args = unsafe { std::mem::zeroed() };
        args.flags = flags as u64 | CLONE_INTO_CGROUP;
        args.exit_signal = libc::SIGCHLD as u64;
        args.cgroup = dir.as_raw_fd() as u64;
        // SAFETY: clone3 without CLONE_VM and without a stack behaves like fork(2): the child
        // gets a copy of this single-threaded process (isola starts no threads) and the caller
        // runs only `init_main` in it, which ends in execve or _exit. The kernel reads `args`
        // (of the size passed) before returning.
        let pid = unsafe {
            libc::syscall(
                libc::SYS_clone3,
                &args as *const libc::clone_args,
                std::mem::size_of::<libc::clone_args>(),
            )
        };
        match pid {
            p if p >= 0 => return Ok((p as i32, true)),
            // An older kernel (no clone3, or no CLONE_INTO_CGROUP): clone, and place it after.
            _ if matches!(
                std::io::Error::last_os_error().raw_os_error(),
                Some(libc::ENOSYS | libc::E2BIG | libc::EINVAL)
            ) => {}
            _ => {
                return Err(ContainerError::Io(format!(
                    "clone3 into {}: {}",
                    placement
                        .born_into
                        .as_deref()
                        .unwrap_or(std::path::Path::new("?"))
                        .display(),
                    std::io::Error::last_os_error()
                )))
            }
        }
    }
    // SAFETY: clone(2) without CLONE_VM behaves like fork(2), as above.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if pid < 0 {
        return Err(ContainerError::Io(format!(
            "clone: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok((pid as i32, false))
}
