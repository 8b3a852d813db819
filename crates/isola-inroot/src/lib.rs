//! Filesystem operations confined to a root directory.
//!
//! Unpacking a hostile layer, creating a mount point in an image's rootfs, or reading an image's
//! `/etc/passwd` must never touch anything outside that rootfs, whatever symlinks or `..` the image
//! holds. Every lookup here goes through `openat2(2)` with `RESOLVE_IN_ROOT`, which makes the
//! kernel resolve the path as if the root directory were `/`: absolute symlinks and `..` stay
//! inside. Creation then uses the `*at` calls on the resolved parent with a plain final name, and
//! never follows a symlink in that final component.

pub mod copy;
pub mod read_only;

use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

/// A directory that paths are resolved inside of.
pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

fn cstr(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Splits a path inside the root into its parent and final name, dropping `.`, leading `/`
/// and refusing `..` as the final component. `None` for the root itself.
pub fn split_parent(path: &Path) -> io::Result<Option<(PathBuf, &OsStr)>> {
    let mut parts: Vec<&OsStr> = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => parts.push(p),
            Component::ParentDir => {
                if parts.pop().is_none() {
                    // `..` above the root is the root, as the kernel resolves it.
                }
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    match parts.pop() {
        None => Ok(None),
        Some(name) => Ok(Some((parts.iter().collect(), name))),
    }
}

impl Root {
    /// Opens `path` as a root.
    pub fn open(path: impl Into<PathBuf>) -> io::Result<Root> {
        let path = path.into();
        let c = cstr(path.as_os_str())?;
        // SAFETY: plain open(2) of a NUL-terminated path; the result is checked and owned.
        let fd = check(unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        })?;
        // SAFETY: fd was just returned by open and is owned by no one else.
        Ok(Root {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Opens `path` resolved inside the root with open flags `flags` (O_CLOEXEC is added).
    /// `follow_last` = false refuses a symlink as the final component (ELOOP).
    pub fn open_at(
        &self,
        path: &Path,
        flags: libc::c_int,
        follow_last: bool,
    ) -> io::Result<OwnedFd> {
        open_in_root(self.fd(), path, flags, 0, follow_last)
    }

    /// Opens a file inside the root for reading (symlinks resolved inside the root).
    pub fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        use std::io::Read;
        let fd = self.open_at(path, libc::O_RDONLY, true)?;
        let mut f = File::from(fd);
        let mut out = Vec::new();
        f.read_to_end(&mut out)?;
        Ok(out)
    }

    /// Opens the directory that will hold `path`'s final component, creating missing
    /// directories (mode 0755, owned by the caller) on the way. Returns the parent and the name.
    pub fn parent_of<'p>(&self, path: &'p Path, create: bool) -> io::Result<(OwnedFd, &'p OsStr)> {
        let (parent, name) = split_parent(path)?.ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "path is the root itself")
        })?;
        let dir = if create {
            self.mkdir_all(&parent, 0o755)?
        } else {
            self.open_at(&parent, libc::O_PATH | libc::O_DIRECTORY, true)?
        };
        Ok((dir, name))
    }

    /// `mkdir -p` inside the root; returns an O_PATH descriptor of the final directory.
    /// A symlink on the way is followed inside the root (its target is created), as `mkdir -p`
    /// run in a chroot would.
    pub fn mkdir_all(&self, path: &Path, mode: libc::mode_t) -> io::Result<OwnedFd> {
        self.mkdir_all_depth(path, mode, 0)
    }

    fn mkdir_all_depth(&self, path: &Path, mode: libc::mode_t, depth: u32) -> io::Result<OwnedFd> {
        if depth > 40 {
            return Err(io::Error::from_raw_os_error(libc::ELOOP));
        }
        match self.open_at(path, libc::O_PATH | libc::O_DIRECTORY, true) {
            Ok(fd) => return Ok(fd),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(e),
        }
        let Some((parent, name)) = split_parent(path)? else {
            return self.open_at(Path::new("/"), libc::O_PATH | libc::O_DIRECTORY, true);
        };
        let pfd = self.mkdir_all_depth(&parent, mode, depth + 1)?;
        let c = cstr(name)?;
        // SAFETY: mkdirat on a directory descriptor we own with a single-component name.
        let r = unsafe { libc::mkdirat(pfd.as_raw_fd(), c.as_ptr(), mode) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EEXIST) {
                return Err(e);
            }
            // A dangling symlink: create what it points to, inside the root.
            if let Some(target) = readlink_at(pfd.as_raw_fd(), name)? {
                let inside = if target.is_absolute() {
                    target
                } else {
                    parent.join(target)
                };
                self.mkdir_all_depth(&inside, mode, depth + 1)?;
                return self.open_at(path, libc::O_PATH | libc::O_DIRECTORY, true);
            }
        }
        // The new directory (or one a racing creator made) is opened without following a
        // symlink in its name, then re-checked to be a directory by O_DIRECTORY.
        open_in_root(
            pfd.as_raw_fd(),
            Path::new(name),
            libc::O_PATH | libc::O_DIRECTORY,
            0,
            false,
        )
    }
}

/// A directory descriptor (an O_PATH one, say) opened again for reading: the same directory,
/// through its descriptor, no path looked up again.
pub fn reopen_dir(fd: &OwnedFd) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// The target of symlink `name` in `dirfd`, or `None` if it is not a symlink.
pub fn readlink_at(dirfd: RawFd, name: &OsStr) -> io::Result<Option<PathBuf>> {
    let c = cstr(name)?;
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: readlinkat writes at most buf.len() bytes into buf.
    let n = unsafe { libc::readlinkat(dirfd, c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EINVAL) {
            return Ok(None);
        }
        return Err(e);
    }
    buf.truncate(n as usize);
    Ok(Some(PathBuf::from(std::ffi::OsString::from_vec(buf))))
}

/// openat2(dirfd, path, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS [| RESOLVE_NO_SYMLINKS on last]).
pub fn open_in_root(
    dirfd: RawFd,
    path: &Path,
    flags: libc::c_int,
    mode: libc::mode_t,
    follow_last: bool,
) -> io::Result<OwnedFd> {
    let rel: PathBuf = path
        .components()
        .filter(|c| !matches!(c, Component::RootDir | Component::Prefix(_)))
        .collect();
    let rel = if rel.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        rel
    };
    let c = cstr(rel.as_os_str())?;
    let mut flags = flags | libc::O_CLOEXEC;
    if !follow_last {
        flags |= libc::O_NOFOLLOW;
    }
    // SAFETY: open_how is a plain C struct; zeroed is a valid value that we then fill in.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = flags as u64;
    how.mode = if flags & libc::O_CREAT != 0 {
        mode as u64
    } else {
        0
    };
    how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: openat2 reads `how` (size passed) and the NUL-terminated path; the returned fd
    // is checked and then owned.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dirfd,
            c.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        let e = io::Error::last_os_error();
        // O_NOFOLLOW on a symlink with O_PATH gives the link itself; without O_PATH it is ELOOP.
        return Err(e);
    }
    // SAFETY: a fresh descriptor from openat2.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `fstatat(dirfd, name, AT_SYMLINK_NOFOLLOW)`; `None` if it does not exist.
pub fn lstat_at(dirfd: RawFd, name: &OsStr) -> io::Result<Option<libc::stat>> {
    let c = cstr(name)?;
    // SAFETY: stat is a plain C struct filled by the kernel.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstatat writes only into `st`.
    let r = unsafe { libc::fstatat(dirfd, c.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENOENT) {
            return Ok(None);
        }
        return Err(e);
    }
    Ok(Some(st))
}

pub fn is_dir(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

/// Removes `name` in `dirfd` and, if it is a directory, everything under it, never following
/// symlinks. Missing is fine.
pub fn remove_all_at(dirfd: RawFd, name: &OsStr) -> io::Result<()> {
    let Some(st) = lstat_at(dirfd, name)? else {
        return Ok(());
    };
    let c = cstr(name)?;
    if is_dir(&st) {
        clear_dir_at(dirfd, name, &|_| true)?;
        // SAFETY: unlinkat with a single-component name in a directory descriptor we hold.
        check(unsafe { libc::unlinkat(dirfd, c.as_ptr(), libc::AT_REMOVEDIR) })?;
    } else {
        // SAFETY: as above, for a non-directory.
        check(unsafe { libc::unlinkat(dirfd, c.as_ptr(), 0) })?;
    }
    Ok(())
}

/// Removes the children of directory `name` in `dirfd` for which `remove` returns true.
pub fn clear_dir_at(dirfd: RawFd, name: &OsStr, remove: &dyn Fn(&OsStr) -> bool) -> io::Result<()> {
    let dir = open_in_root(
        dirfd,
        Path::new(name),
        libc::O_RDONLY | libc::O_DIRECTORY,
        0,
        false,
    )?;
    for child in list_dir(&dir)? {
        if remove(&child) {
            remove_all_at(dir.as_raw_fd(), &child)?;
        }
    }
    Ok(())
}

/// The names in an open directory (without `.` and `..`).
pub fn list_dir(dir: &OwnedFd) -> io::Result<Vec<std::ffi::OsString>> {
    // SAFETY: dup of a descriptor we own; fdopendir takes ownership of the duplicate.
    let dup = check(unsafe { libc::fcntl(dir.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) })?;
    // SAFETY: `dup` is a valid directory descriptor; on failure we close it ourselves.
    let dp = unsafe { libc::fdopendir(dup) };
    if dp.is_null() {
        let e = io::Error::last_os_error();
        // SAFETY: fdopendir failed, so `dup` is still ours to close.
        unsafe { libc::close(dup) };
        return Err(e);
    }
    // SAFETY: rewinddir on the stream we just opened (the shared offset may be past the start).
    unsafe { libc::rewinddir(dp) };
    let mut out = Vec::new();
    loop {
        // SAFETY: readdir on a valid stream; the entry is copied before the next call.
        let ent = unsafe { libc::readdir(dp) };
        if ent.is_null() {
            break;
        }
        // SAFETY: d_name is NUL-terminated within the dirent the kernel filled.
        let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) };
        let b = name.to_bytes();
        if b != b"." && b != b".." {
            out.push(OsStr::from_bytes(b).to_os_string());
        }
    }
    // SAFETY: closes the stream and `dup` with it.
    unsafe { libc::closedir(dp) };
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_cannot_leave_the_root() {
        let outside = tempfile::tempdir().unwrap();
        let root_dir = tempfile::tempdir().unwrap();
        symlink(outside.path(), root_dir.path().join("escape")).unwrap();
        symlink("../../../..", root_dir.path().join("up")).unwrap();
        let root = Root::open(root_dir.path()).unwrap();
        root.mkdir_all(Path::new("escape/made"), 0o755).unwrap();
        root.mkdir_all(Path::new("up/made2"), 0o755).unwrap();
        assert!(!outside.path().join("made").exists());
        assert!(root_dir
            .path()
            .join(outside.path().strip_prefix("/").unwrap())
            .join("made")
            .is_dir());
        assert!(root_dir.path().join("made2").is_dir());
    }

    #[test]
    fn remove_all_does_not_follow_symlinks() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("keep"), b"x").unwrap();
        let root_dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(root_dir.path().join("d")).unwrap();
        symlink(outside.path(), root_dir.path().join("d/link")).unwrap();
        let root = Root::open(root_dir.path()).unwrap();
        remove_all_at(root.fd(), OsStr::new("d")).unwrap();
        assert!(outside.path().join("keep").exists());
        assert!(!root_dir.path().join("d").exists());
    }

    #[test]
    fn split_parent_normalises() {
        let (p, n) = split_parent(Path::new("/a/./b/../c")).unwrap().unwrap();
        assert_eq!((p, n), (PathBuf::from("a"), OsStr::new("c")));
        assert!(split_parent(Path::new("/..")).unwrap().is_none());
    }
}
