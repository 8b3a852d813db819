//! Cgroups: where limits are enforced. One interface over the three layouts a host can have:
//! pure v2 (unified), pure v1 (one hierarchy per controller) and hybrid (v1 controllers plus an
//! almost empty v2 mount, as on these machines). The layout is read from /proc/self/mountinfo.

mod device_filter;
mod hierarchy;
mod v1;
mod v2;

pub use hierarchy::{Hierarchies, Layout};

use oci_spec::runtime::LinuxResources;
use std::io;
use std::path::PathBuf;

/// Why a cgroup could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cgroup controller {controller:?} is not available on this host (needed for {why})")]
    MissingController {
        controller: &'static str,
        why: &'static str,
    },
    /// The message carries the I/O error (not also its `source()`: said once by `{:#}`).
    #[error("{}: {cause}", path.display())]
    Io { path: PathBuf, cause: io::Error },
    #[error("no cgroup filesystem is mounted")]
    NoCgroupFs,
    #[error("cgroup {} is still busy after every process in it was killed; remove it with rmdir once they are gone", path.display())]
    Busy { path: PathBuf },
}

/// The workload's cgroup, below the container's.
pub const WORKLOAD: &str = "workload";

/// The controllers `res` needs, with the flag that asked for each.
pub(crate) fn wanted_controllers(res: &LinuxResources) -> Vec<(&'static str, &'static str)> {
    let mut out = Vec::new();
    if res.memory().as_ref().and_then(|m| m.limit()).is_some() {
        out.push(("memory", "--memory"));
    }
    if res.cpu().as_ref().and_then(|c| c.quota()).is_some() {
        out.push(("cpu", "--cpus"));
    }
    if res.pids().is_some() {
        out.push(("pids", "--pids-limit"));
    }
    if res.devices().as_ref().is_some_and(|d| !d.is_empty()) {
        out.push(("devices", "the device allowlist"));
    }
    out
}

/// pids.max for an OCI pids limit (0 or less: no limit).
pub(crate) use isola_process::limits::pids_max;

pub(crate) fn io_err(path: &std::path::Path, source: io::Error) -> CgroupError {
    CgroupError::Io {
        path: path.to_path_buf(),
        cause: source,
    }
}

/// Where a container's cgroup goes: `linux.cgroupsPath`, or `/isola/<id>`. systemd's form
/// (`slice:prefix:name`, as callers of `--systemd-cgroup` give it) becomes the path systemd
/// would use, made through cgroupfs: `/a.slice/a-b.slice/prefix-name.scope`.
pub fn container_path(spec: &oci_spec::runtime::Spec, id: &str) -> String {
    let Some(path) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().clone())
        .map(|p| p.to_string_lossy().into_owned())
    else {
        return format!("/isola/{id}");
    };
    let parts: Vec<&str> = path.split(':').collect();
    match parts.as_slice() {
        [slice, prefix, name] if !path.starts_with('/') => {
            let mut out = String::new();
            let slice = if slice.is_empty() {
                "system.slice"
            } else {
                slice
            };
            // systemd nests a-b-c.slice in a.slice/a-b.slice.
            let stem = slice.trim_end_matches(".slice");
            let mut acc = String::new();
            for (i, piece) in stem.split('-').enumerate() {
                if i > 0 {
                    acc.push('-');
                }
                acc.push_str(piece);
                out.push_str(&format!("/{acc}.slice"));
            }
            let unit = if name.ends_with(".slice") {
                name.to_string()
            } else if prefix.is_empty() {
                format!("{name}.scope")
            } else {
                format!("{prefix}-{name}.scope")
            };
            format!("{out}/{unit}")
        }
        _ => path,
    }
}

/// How a new process enters a container's workload cgroup without the kernel's global
/// migration lock: a write of a pid to `cgroup.procs` takes that lock for writing, and its
/// first taking waits out an RCU grace period (~10-15 ms here, most of a runtime's `create`).
/// Instead the process is born into the cgroup2 one (clone3's `CLONE_INTO_CGROUP`, which takes
/// the lock only for reading) and moves itself into each v1 one (a thread writing "0" to
/// `tasks` skips the lock).
#[derive(Debug, Default)]
pub struct Placement {
    /// The cgroup2 workload directory (unified layout, or the hybrid layout's cgroup2 mount).
    pub born_into: Option<PathBuf>,
    /// The v1 workload cgroups' `tasks` files.
    pub self_join: Vec<PathBuf>,
}

impl Placement {
    /// In the new process: moves the calling thread (the whole of a single-threaded process)
    /// into each v1 workload cgroup.
    pub fn join_v1(&self) -> Result<(), CgroupError> {
        self.self_join.iter().try_for_each(|f| write_file(f, "0"))
    }

    /// Where clone3 could not place `pid` at birth (an older kernel): the cgroup2 one the
    /// usual way, through `cgroup.procs`.
    pub fn add_to_v2(&self, pid: i32) -> Result<(), CgroupError> {
        match &self.born_into {
            Some(dir) => write_file(&dir.join("cgroup.procs"), &pid.to_string()),
            None => Ok(()),
        }
    }
}

/// A container's cgroup, in whichever layout the host has.
#[derive(Debug)]
pub enum Cgroup {
    V1(v1::V1Cgroup),
    V2(v2::V2Cgroup),
}

impl Cgroup {
    /// Creates the cgroup at `rel` (e.g. `/isola/<id>`) and applies `resources`. On error
    /// nothing is left behind.
    pub fn create(
        hier: &Hierarchies,
        rel: &str,
        resources: Option<&LinuxResources>,
    ) -> Result<Cgroup, CgroupError> {
        let empty = LinuxResources::default();
        let res = resources.unwrap_or(&empty);
        match hier.layout {
            Layout::Unified => Ok(Cgroup::V2(v2::V2Cgroup::create(hier, rel, res)?)),
            Layout::Legacy | Layout::Hybrid => {
                Ok(Cgroup::V1(v1::V1Cgroup::create(hier, rel, res)?))
            }
        }
    }

    /// Re-opens an existing cgroup (for cleanup after a crash).
    pub fn existing(hier: &Hierarchies, rel: &str) -> Cgroup {
        match hier.layout {
            Layout::Unified => Cgroup::V2(v2::V2Cgroup::existing(hier, rel)),
            Layout::Legacy | Layout::Hybrid => Cgroup::V1(v1::V1Cgroup::existing(hier, rel)),
        }
    }

    /// How a new process enters the workload cgroup cheaply (see `Placement`).
    pub fn placement(&self) -> Placement {
        match self {
            Cgroup::V1(c) => c.placement(),
            Cgroup::V2(c) => c.placement(),
        }
    }

    pub fn add_pid(&self, pid: i32) -> Result<(), CgroupError> {
        match self {
            Cgroup::V1(c) => c.add_pid(pid),
            Cgroup::V2(c) => c.add_pid(pid),
        }
    }

    /// Whether the kernel's OOM killer killed something in this cgroup.
    pub fn oom_killed(&self) -> bool {
        match self {
            Cgroup::V1(c) => c.oom_killed(),
            Cgroup::V2(c) => c.oom_killed(),
        }
    }

    /// Freezes (`true`) or thaws every process in the cgroup, and waits until the kernel says
    /// it is done.
    pub fn freeze(&self, frozen: bool) -> Result<(), CgroupError> {
        match self {
            Cgroup::V1(c) => c.freeze(frozen),
            Cgroup::V2(c) => c.freeze(frozen),
        }
    }

    /// Whether the cgroup is frozen.
    pub fn frozen(&self) -> bool {
        match self {
            Cgroup::V1(c) => c.frozen(),
            Cgroup::V2(c) => c.frozen(),
        }
    }

    /// The pids still in the cgroup.
    pub fn pids(&self) -> Vec<i32> {
        match self {
            Cgroup::V1(c) => c.pids(),
            Cgroup::V2(c) => c.pids(),
        }
    }

    /// Kills whatever is left and removes the cgroup directories.
    pub fn remove(&self) -> Result<(), CgroupError> {
        for _ in 0..200 {
            let pids = self.pids();
            for p in &pids {
                // SAFETY: kill(2) with a pid read from the cgroup; at worst ESRCH.
                unsafe { libc::kill(*p, libc::SIGKILL) };
            }
            match self.try_rmdir() {
                Ok(()) => return Ok(()),
                Err(CgroupError::Io { cause: source, .. })
                    if source.raw_os_error() == Some(libc::EBUSY) =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Err(e) => return Err(e),
            }
        }
        self.try_rmdir().map_err(|e| match e {
            CgroupError::Io {
                path,
                cause: source,
            } if source.raw_os_error() == Some(libc::EBUSY) => CgroupError::Busy { path },
            e => e,
        })
    }

    fn try_rmdir(&self) -> Result<(), CgroupError> {
        match self {
            Cgroup::V1(c) => c.rmdir(),
            Cgroup::V2(c) => c.rmdir(),
        }
    }

    /// Host paths of the cgroup directories (for the record in the state file).
    pub fn paths(&self) -> Vec<PathBuf> {
        match self {
            Cgroup::V1(c) => c.paths(),
            Cgroup::V2(c) => vec![c.path().to_path_buf()],
        }
    }
}

pub(crate) fn write_file(path: &std::path::Path, value: &str) -> Result<(), CgroupError> {
    isola_process::explain::say(|| {
        format!(
            "cgroup: {:?} written to {}",
            value.trim_end(),
            path.display()
        )
    });
    std::fs::write(path, value).map_err(|e| io_err(path, e))
}

/// The cgroup directories directly below `dir` (the workload may have made its own).
pub(crate) fn subdirs(dir: &std::path::Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// The pids in `dir` and every cgroup below it.
pub(crate) fn tree_pids(dir: &std::path::Path) -> Vec<i32> {
    tree(dir)
        .iter()
        .flat_map(|d| {
            std::fs::read_to_string(d.join("cgroup.procs"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect()
}

/// Whether the `oom_kill` counter in a memory events file (v2 memory.events, v1
/// memory.oom_control) is above zero.
pub(crate) fn oom_kill_counted(file: &std::path::Path) -> bool {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("oom_kill ").map(|v| v.trim() != "0"))
        })
        .unwrap_or(false)
}

/// `dir` and every cgroup below it, parents first.
pub(crate) fn tree(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        let below = subdirs(&out[i]);
        out.extend(below);
        i += 1;
    }
    out
}

/// Removes `dir` and every cgroup below it, deepest first.
pub(crate) fn remove_tree(dir: &std::path::Path) -> Result<(), CgroupError> {
    for d in tree(dir).iter().rev() {
        match std::fs::remove_dir(d) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(d, e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod path_tests {
    #[test]
    fn systemd_paths_become_cgroupfs_paths() {
        let mut spec = oci_spec::runtime::Spec::default();
        let mut at = |p: Option<&str>| {
            let mut linux = spec.linux().clone().unwrap_or_default();
            linux.set_cgroups_path(p.map(Into::into));
            spec.set_linux(Some(linux));
            super::container_path(&spec, "id1")
        };
        assert_eq!(at(None), "/isola/id1");
        assert_eq!(
            at(Some("/libpod_parent/libpod-x")),
            "/libpod_parent/libpod-x"
        );
        assert_eq!(
            at(Some("system.slice:cri-containerd:abc")),
            "/system.slice/cri-containerd-abc.scope"
        );
        assert_eq!(
            at(Some("machine-libpod.slice:libpod:abc")),
            "/machine.slice/machine-libpod.slice/libpod-abc.scope"
        );
    }
}
