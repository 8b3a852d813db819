//! `isola cp [-a] SRC DEST`, one of them `CONTAINER:PATH`: files and trees between the host
//! and a container, running or stopped, at both levels, with docker's rules for where they
//! land (DEST an existing directory: into it; else DEST is the copy's name; `SRC/.`: the
//! directory's contents). Copies are owned by root (the destination's) unless `-a` keeps
//! their owners.
//!
//! - A container: its root as it sees it — `/proc/PID/root` of its init while it runs (its
//!   volumes and tmpfs included), else its root overlay mounted for the copy (its container
//!   directory held, so it is not started meanwhile). Every path is resolved inside the
//!   container's root (isola-inroot), and every step is an `*at` call on one name, so no link
//!   the workload made redirects a read or write onto the host.
//! - A running VM: a tar stream through `isola exec` and the image's own `tar` (`cp_tar`); a
//!   stopped VM's root changes are gone with its memory, so from one the image's files are
//!   copied, and into one nothing.

use crate::commands::{cp_tar, launch};
use crate::paths::Paths;
use crate::records::{self, Entry, Record};
use anyhow::{anyhow, bail, Context, Result};
use isola_inroot::copy::{copy_children, copy_entry, Owners};
use isola_inroot::Root;
use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// One side of the copy.
enum Side {
    Host(String),
    Container(Box<Record>, String),
}

fn side(paths: &Paths, arg: &str) -> Result<Side> {
    // docker's rule: NAME:PATH when the part before the first ':' has no '/' (a host path
    // with a ':' is written ./a:b).
    match arg.split_once(':') {
        Some((name, path)) if !name.is_empty() && !name.contains('/') => {
            match records::find(paths, name)? {
                Entry::Ok(r) => Ok(Side::Container(r, path.to_string())),
                Entry::Damaged(d) => bail!("container {name}: {}", d.why),
            }
        }
        _ => {
            // Relative to the working directory (the host side is resolved from /).
            let abs = std::path::absolute(arg).with_context(|| arg.to_string())?;
            let mut abs = abs.to_string_lossy().into_owned();
            for tail in ["/.", "/"] {
                if arg.ends_with(tail) && !abs.ends_with(tail) {
                    abs.push_str(tail); // kept: they change what is copied where
                }
            }
            Ok(Side::Host(abs))
        }
    }
}

pub fn cp(paths: &Paths, src: &str, dst: &str, archive: bool) -> Result<i32> {
    records::cleanup(paths);
    let owners = if archive {
        Owners::Kept
    } else {
        Owners::All(0, 0)
    };
    match (side(paths, src)?, side(paths, dst)?) {
        (Side::Container(r, from), Side::Host(to)) => {
            let from = container_path(&from)?;
            if r.isolation == "vm" && r.is_going() {
                return cp_tar::from_vm(&r, &from, Path::new(&to), owners).map(|()| 0);
            }
            let view = View::open(paths, &r, false)?;
            copy(&view.root, &from, &Root::open("/")?, &to, owners)?;
        }
        (Side::Host(from), Side::Container(r, to)) => {
            let to = container_path(&to)?;
            if r.isolation == "vm" {
                if !r.is_going() {
                    bail!("container {}: a stopped VM's root is gone with its memory; copy into it while it runs (or use a volume)", r.name);
                }
                return cp_tar::into_vm(&r, Path::new(&from), &to, archive).map(|()| 0);
            }
            let view = View::open(paths, &r, true)?;
            copy(&Root::open("/")?, &from, &view.root, &to, owners)?;
        }
        (Side::Host(_), Side::Host(_)) => {
            bail!("isola cp {src} {dst}: one of them must be CONTAINER:PATH")
        }
        (Side::Container(..), Side::Container(..)) => {
            bail!("isola cp {src} {dst}: copying between two containers is not supported; copy through the host")
        }
    }
    Ok(0)
}

fn container_path(p: &str) -> Result<String> {
    if p.is_empty() {
        bail!("CONTAINER:PATH with an empty PATH (the root is CONTAINER:/)");
    }
    // Relative paths are from the root, as docker takes them.
    Ok(if p.starts_with('/') {
        p.to_string()
    } else {
        format!("/{p}")
    })
}

/// A container's root as the copy sees it, and what holds it that way until the copy is done.
struct View {
    root: Root,
    /// A stopped container's root overlay, mounted for the copy.
    mounted: Option<PathBuf>,
    _claim: Option<records::Claim>,
}

impl View {
    fn open(paths: &Paths, r: &Record, writing: bool) -> Result<View> {
        if r.isolation == "vm" {
            // Only reads come here: the image's files.
            let root = Root::open(&r.launch.lower)
                .with_context(|| format!("container {}: its image's root", r.name))?;
            return Ok(View {
                root,
                mounted: None,
                _claim: None,
            });
        }
        if r.is_going() {
            let st = isola_container::state::State::load(&paths.states().join(&r.id))?;
            let root = Root::open(format!("/proc/{}/root", st.pid))
                .with_context(|| format!("container {}: its root", r.name))?;
            // Opened first, checked after: the root held is the init's, not a reused PID's.
            if !isola_container::state::is_alive(st.pid, st.pid_start_time) {
                bail!(
                    "container {} ended while the copy began; copy again",
                    r.name
                );
            }
            return Ok(View {
                root,
                mounted: None,
                _claim: None,
            });
        }
        let claim = records::reclaim(paths, &r.id)?;
        let dir = r.dir(paths);
        launch::mount_root(&dir, &r.launch.lower)?;
        let rootfs = dir.join("rootfs");
        let view = View {
            root: Root::open(&rootfs)?,
            mounted: Some(rootfs),
            _claim: Some(claim),
        };
        let _ = writing; // a stopped container's writes land in its upper directory
        Ok(view)
    }
}

impl Drop for View {
    fn drop(&mut self) {
        if let Some(m) = &self.mounted {
            let _ = isola_oci::overlay::unmount(m);
        }
    }
}

/// What a source path names: an entry (its parent and name), or a directory's contents
/// (`DIR/.`).
fn source(root: &Root, path: &str) -> Result<(OwnedFd, Option<std::ffi::OsString>)> {
    let contents = path.ends_with("/.") || path == "/" || path == ".";
    let trimmed = path.trim_end_matches("/.");
    if contents || isola_inroot::split_parent(Path::new(trimmed))?.is_none() {
        let dir = root
            .open_at(Path::new(trimmed), libc::O_RDONLY | libc::O_DIRECTORY, true)
            .with_context(|| format!("{path}: not a directory"))?;
        return Ok((dir, None));
    }
    let (parent, name) = root
        .parent_of(Path::new(trimmed), false)
        .with_context(|| path.to_string())?;
    let parent = reopen_dir(&parent)?;
    if isola_inroot::lstat_at(std::os::fd::AsRawFd::as_raw_fd(&parent), name)?.is_none() {
        bail!("{path}: no such file or directory");
    }
    Ok((parent, Some(name.to_os_string())))
}

fn reopen_dir(fd: &OwnedFd) -> Result<OwnedFd> {
    Ok(isola_inroot::reopen_dir(fd)
        .map_err(|e| anyhow!("reopening a directory: {e}"))?
        .into())
}

fn is_dir(root: &Root, path: &str) -> bool {
    root.open_at(Path::new(path), libc::O_PATH | libc::O_DIRECTORY, true)
        .is_ok()
}

/// docker cp's placement: `from` in `src` copied to `to` in `dst`.
fn copy(src: &Root, from: &str, dst: &Root, to: &str, owners: Owners) -> Result<()> {
    let (src_dir, name) = source(src, from)?;
    let fail = |e: std::io::Error| anyhow!("copying {from} to {to}: {e}");
    let Some(name) = name else {
        // The contents of a directory: into `to`, made if missing.
        let into = dst
            .mkdir_all(Path::new(to), 0o755)
            .map_err(|e| anyhow!("{to}: {e}"))?;
        return copy_children(&src_dir, &reopen_dir(&into)?, owners, 0).map_err(fail);
    };
    let (into, as_name) = if is_dir(dst, to) {
        let d = dst
            .open_at(Path::new(to), libc::O_PATH | libc::O_DIRECTORY, true)
            .map_err(|e| anyhow!("{to}: {e}"))?;
        (d, name.clone())
    } else {
        if to.ends_with('/') {
            bail!("{to}: no such directory");
        }
        let (parent, n) = dst
            .parent_of(Path::new(to), false)
            .map_err(|e| anyhow!("{to}: its directory: {e}"))?;
        (parent, n.to_os_string())
    };
    copy_entry(
        &src_dir,
        &name,
        &reopen_dir(&into)?,
        OsStr::new(&as_name),
        owners,
    )
    .map_err(fail)
}
