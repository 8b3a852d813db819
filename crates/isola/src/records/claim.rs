//! Making a container's directory and record, with its name claimed atomically: the check
//! that no other container has the name and the save of the new record happen under one lock
//! (`locks/containers.lock`), so of many runs racing for one `--name` exactly one gets it.

use super::{list, lock_if_unowned, remove_tree, Record};
use crate::paths::Paths;
use anyhow::{anyhow, bail, Context, Result};
use isola_oci::lock::{FileLock, Mode};
use nix::fcntl::Flock;

/// A made container directory; the lock on it is held until this is dropped (the end of the
/// isola that runs the container), which tells the cleanup pass its owner is alive.
pub struct Claim {
    _lock: Flock<std::fs::File>,
}

/// Why a name cannot be had.
pub fn name_in_use(name: &str) -> anyhow::Error {
    anyhow!("the container name {name:?} is already in use; remove it with `isola rm {name}`")
}

/// The lock that orders name claims and the cleanup pass's removal of record-less directories.
pub(super) fn names_lock(paths: &Paths) -> Result<FileLock> {
    let path = paths.locks().join("containers.lock");
    FileLock::acquire(&path, Mode::Exclusive).map_err(|e| anyhow!("{e}"))
}

/// Makes `record`'s directory and saves the record in it, unless another container has its
/// name. Nothing is left behind on error.
pub fn claim(paths: &Paths, record: &Record) -> Result<Claim> {
    let bundles = paths.bundles();
    std::fs::create_dir_all(&bundles).with_context(|| bundles.display().to_string())?;
    let _names = names_lock(paths)?;
    if list(paths).iter().any(|r| r.name == record.name) {
        return Err(name_in_use(&record.name));
    }
    let dir = record.dir(paths);
    std::fs::create_dir(&dir).with_context(|| dir.display().to_string())?;
    let made = (|| {
        // Nobody else can hold it: the cleanup pass locks a record-less directory only under
        // the names lock, which we hold.
        let Some(lock) = lock_if_unowned(&dir) else {
            bail!("{}: locked by another process", dir.display());
        };
        record.save(paths)?;
        Ok(Claim { _lock: lock })
    })();
    if made.is_err() {
        let _ = remove_tree(&dir);
    }
    made
}

/// Takes the directory of container `id`, which exists, for this isola (`isola start`);
/// fails if another isola holds it.
pub fn reclaim(paths: &Paths, id: &str) -> Result<Claim> {
    match lock_if_unowned(&paths.bundles().join(id)) {
        Some(lock) => Ok(Claim { _lock: lock }),
        None => bail!("container {id} is being run, started or removed by another isola"),
    }
}
