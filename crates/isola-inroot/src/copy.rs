//! Copying a directory tree between two open directories, never following a symbolic link:
//! what docker's volume copy-up does (an image's content at a mount point copied into a new,
//! empty volume), and `isola cp` between a container's root and the host. Either side may be
//! a (possibly hostile) root; every step is an `*at` call on a descriptor with one plain name,
//! so no symlink in either tree redirects a read or a write. Directories, regular files and
//! symbolic links are copied with their mode and modification time, and their owner or one
//! given; device nodes, FIFOs and sockets are skipped (isola never makes a device node on the
//! host). What is there already is merged into (directories) or replaced (files, links).

use crate::{cstr, list_dir, lstat_at};
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// How deep a tree may go (a guard against a pathological image, not a filesystem limit).
const MAX_DEPTH: u32 = 256;

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn open_child(dirfd: RawFd, name: &OsStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    let c = cstr(name)?;
    // SAFETY: openat with a single-component name in a directory descriptor we hold (the mode
    // is read only with O_CREAT); the result is checked and owned.
    let fd = unsafe {
        libc::openat(
            dirfd,
            c.as_ptr(),
            flags | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0o600 as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Who owns the copies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owners {
    /// As the originals.
    Kept,
    /// All this UID and GID (`docker cp` without -a: the destination's root).
    All(libc::uid_t, libc::gid_t),
}

/// Owner, permissions and modification time of `st` onto `name` in `dirfd` (the link itself
/// for a symbolic link, whose permissions do not exist).
fn copy_attributes(
    dirfd: RawFd,
    name: &OsStr,
    st: &libc::stat,
    link: bool,
    owners: Owners,
) -> io::Result<()> {
    let c = cstr(name)?;
    let (uid, gid) = match owners {
        Owners::Kept => (st.st_uid, st.st_gid),
        Owners::All(u, g) => (u, g),
    };
    // SAFETY: *at calls on a descriptor we hold with a single-component name; the timespec
    // array lives across the call.
    unsafe {
        check(libc::fchownat(
            dirfd,
            c.as_ptr(),
            uid,
            gid,
            libc::AT_SYMLINK_NOFOLLOW,
        ))?;
        if !link {
            // After chown, which clears the setuid and setgid bits.
            check(libc::fchmodat(dirfd, c.as_ptr(), st.st_mode & 0o7777, 0))?;
        }
        let times = [
            libc::timespec {
                tv_sec: st.st_atime,
                tv_nsec: st.st_atime_nsec,
            },
            libc::timespec {
                tv_sec: st.st_mtime,
                tv_nsec: st.st_mtime_nsec,
            },
        ];
        check(libc::utimensat(
            dirfd,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        ))
    }
}

/// Copies what is in directory `src` into directory `dst` (both open, `O_RDONLY |
/// O_DIRECTORY`); `dst` itself takes `src`'s owner and permissions, as a volume's root takes
/// those of the image directory it is filled from.
pub fn copy_dir_contents(src: &OwnedFd, dst: &OwnedFd) -> io::Result<()> {
    // SAFETY: stat is plain data, for which all zeroes is a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat fills `st` for a descriptor we hold.
    check(unsafe { libc::fstat(src.as_raw_fd(), &mut st) })?;
    copy_children(src, dst, Owners::Kept, 0)?;
    // SAFETY: fchown/fchmod of a descriptor we hold.
    unsafe {
        check(libc::fchown(dst.as_raw_fd(), st.st_uid, st.st_gid))?;
        check(libc::fchmod(dst.as_raw_fd(), st.st_mode & 0o7777))
    }
}

/// Copies entry `name` of directory `src` (it may be any kind; a symbolic link is copied as
/// one) to `to` in directory `dst`.
pub fn copy_entry(
    src: &OwnedFd,
    name: &OsStr,
    dst: &OwnedFd,
    to: &OsStr,
    owners: Owners,
) -> io::Result<()> {
    let st = lstat_at(src.as_raw_fd(), name)?
        .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
    copy_one(src, name, &st, dst, to, owners, 0)
}

/// Copies what is in directory `src` into directory `dst` (merging).
pub fn copy_children(src: &OwnedFd, dst: &OwnedFd, owners: Owners, depth: u32) -> io::Result<()> {
    if depth > MAX_DEPTH {
        return Err(io::Error::other(format!(
            "deeper than {MAX_DEPTH} directories"
        )));
    }
    for name in list_dir(src)? {
        let Some(st) = lstat_at(src.as_raw_fd(), &name)? else {
            continue; // gone since the listing
        };
        copy_one(src, &name, &st, dst, &name, owners, depth)?;
    }
    Ok(())
}

fn copy_one(
    src: &OwnedFd,
    name: &OsStr,
    st: &libc::stat,
    dst: &OwnedFd,
    to: &OsStr,
    owners: Owners,
    depth: u32,
) -> io::Result<()> {
    let c = cstr(to)?;
    let (s, d) = (src.as_raw_fd(), dst.as_raw_fd());
    match st.st_mode & libc::S_IFMT {
        libc::S_IFDIR => {
            // SAFETY: mkdirat with a single-component name in a directory we hold.
            let made = unsafe { libc::mkdirat(d, c.as_ptr(), 0o700) };
            if made < 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EEXIST) {
                return Err(io::Error::last_os_error());
            }
            let from = open_child(s, name, libc::O_RDONLY | libc::O_DIRECTORY)?;
            // O_NOFOLLOW: what is there must be a directory itself, not a link to one.
            let into = open_child(d, to, libc::O_RDONLY | libc::O_DIRECTORY)?;
            copy_children(&from, &into, owners, depth + 1)?;
            copy_attributes(d, to, st, false, owners)?;
        }
        libc::S_IFREG => {
            let mut from = File::from(open_child(s, name, libc::O_RDONLY)?);
            let mut into = File::from(open_child(
                d,
                to,
                libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC,
            )?);
            io::copy(&mut from, &mut into)?;
            drop(into);
            copy_attributes(d, to, st, false, owners)?;
        }
        libc::S_IFLNK => {
            let target = crate::readlink_at(s, name)?.unwrap_or_default();
            let t = cstr(target.as_os_str())?;
            // SAFETY: unlinkat/symlinkat with a single-component name in a directory we hold;
            // the target string is stored, nothing is resolved.
            unsafe {
                if lstat_at(d, to)?.is_some_and(|old| old.st_mode & libc::S_IFMT != libc::S_IFDIR) {
                    check(libc::unlinkat(d, c.as_ptr(), 0))?;
                }
                check(libc::symlinkat(t.as_ptr(), d, c.as_ptr()))?;
            }
            copy_attributes(d, to, st, true, owners)?;
        }
        _ => {} // devices, FIFOs, sockets
    }
    Ok(())
}
