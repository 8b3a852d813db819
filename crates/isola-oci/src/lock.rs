//! Advisory locks (`flock`) on lock files, released on drop or when the holder dies — so a
//! SIGKILLed isola never leaves one held. The store's writers (import, pull, tag) hold the store
//! lock shared while their blobs are not yet reachable from a tag, its deleters (rmi, prune)
//! exclusive; one unpack of a rootfs at a time holds that rootfs's lock.

use crate::StoreError;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Shared (many holders) or exclusive (one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Shared,
    Exclusive,
}

/// A held lock; dropping it releases it.
#[derive(Debug)]
pub struct FileLock {
    file: File,
    path: PathBuf,
    mode: Mode,
}

impl FileLock {
    /// Takes the lock on `path` (creating the file), waiting for conflicting holders.
    pub fn acquire(path: &Path, mode: Mode) -> Result<FileLock, StoreError> {
        Ok(Self::take(path, mode, true)?.expect("a blocking lock is always had"))
    }

    /// Takes the lock only if nobody holds a conflicting one: None when somebody does.
    pub fn try_acquire(path: &Path, mode: Mode) -> Result<Option<FileLock>, StoreError> {
        Self::take(path, mode, false)
    }

    fn take(path: &Path, mode: Mode, wait: bool) -> Result<Option<FileLock>, StoreError> {
        let op = match mode {
            Mode::Shared => libc::LOCK_SH,
            Mode::Exclusive => libc::LOCK_EX,
        } | if wait { 0 } else { libc::LOCK_NB };
        loop {
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(path)
                .map_err(|e| StoreError::io(path, e))?;
            // SAFETY: flock on a descriptor this function owns; no memory is involved.
            if unsafe { libc::flock(file.as_raw_fd(), op) } != 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EWOULDBLOCK) && !wait {
                    return Ok(None);
                }
                return Err(StoreError::io(path, e));
            }
            // The holder we waited for may have deleted the file (`remove`); a lock on the
            // unlinked inode excludes nobody, so take the one now at `path` instead.
            let held = file.metadata().map_err(|e| StoreError::io(path, e))?;
            match std::fs::metadata(path) {
                Ok(now) if now.dev() == held.dev() && now.ino() == held.ino() => {
                    return Ok(Some(FileLock {
                        file,
                        path: path.to_path_buf(),
                        mode,
                    }))
                }
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(StoreError::io(path, e)),
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Deletes the lock file while still holding it exclusively (waiters then retry on a new
    /// file). A shared holder leaves the file alone: others may hold it too.
    pub fn remove(self) -> Result<(), StoreError> {
        if self.mode != Mode::Exclusive {
            return Ok(());
        }
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(StoreError::io(&self.path, e)),
            _ => Ok(()),
        }
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // SAFETY: flock on a descriptor we own; closing it would release the lock anyway.
        unsafe { libc::flock(self.file.as_raw_fd(), libc::LOCK_UN) };
    }
}
