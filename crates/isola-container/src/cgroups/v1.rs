//! cgroup v1: one directory per hierarchy. A container joins every mounted hierarchy (one it did
//! not join would have the host's root cgroup as its cgroup-namespace root, as seen from inside),
//! and the `devices` controller carries its device allowlist.

use super::WORKLOAD;
use super::{io_err, remove_tree, tree_pids, write_file, CgroupError, Hierarchies, Layout};
use oci_spec::runtime::LinuxResources;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct V1Cgroup {
    /// (the hierarchy's controllers, e.g. "cpu,cpuacct"; the container's directory in it).
    dirs: Vec<(String, PathBuf)>,
}

impl V1Cgroup {
    fn dirs_for(hier: &Hierarchies, rel: &str) -> Vec<(String, PathBuf)> {
        let rel = rel.trim_start_matches('/');
        let mut dirs: Vec<(String, PathBuf)> = hier
            .v1_mounts
            .iter()
            .map(|(mount, ctrls)| (ctrls.clone(), mount.join(rel)))
            .collect();
        // Hybrid: the cgroup2 mount beside them is a hierarchy too (without controllers here).
        if let (Layout::Hybrid, Some(v2)) = (hier.layout, &hier.v2) {
            dirs.push(("cgroup2".to_string(), v2.join(rel)));
        }
        dirs
    }

    pub fn existing(hier: &Hierarchies, rel: &str) -> V1Cgroup {
        V1Cgroup {
            dirs: Self::dirs_for(hier, rel),
        }
    }

    pub fn create(
        hier: &Hierarchies,
        rel: &str,
        res: &LinuxResources,
    ) -> Result<V1Cgroup, CgroupError> {
        for (ctrl, why) in super::wanted_controllers(res) {
            if !hier.v1.contains_key(ctrl) {
                return Err(CgroupError::MissingController {
                    controller: ctrl,
                    why,
                });
            }
        }
        let cg = V1Cgroup {
            dirs: Self::dirs_for(hier, rel),
        };
        let result = (|| {
            for (ctrls, dir) in &cg.dirs {
                make_dirs(dir, ctrls)?;
            }
            // Devices first, on the container's cgroup: the workload's cgroup below it starts
            // with a copy of that list and can never widen it.
            if let Some(dir) = cg.dir("devices") {
                for d in res.devices().as_deref().unwrap_or_default() {
                    let file = if d.allow() {
                        "devices.allow"
                    } else {
                        "devices.deny"
                    };
                    write_file(&dir.join(file), &d.to_string())?;
                }
            }
            cg.apply(res, |d| d.to_path_buf())?;
            for (ctrls, dir) in &cg.dirs {
                make_dirs(&dir.join(WORKLOAD), ctrls)?;
            }
            // The same limits on the workload's own cgroup, which is all it sees: a workload
            // that raised them there would still meet the ones above.
            cg.apply(res, |d| d.join(WORKLOAD))
        })();
        if let Err(e) = result {
            let _ = cg.rmdir();
            return Err(e);
        }
        Ok(cg)
    }

    fn dir(&self, ctrl: &str) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|(c, _)| c.split(',').any(|c| c == ctrl))
            .map(|(_, d)| d.as_path())
    }

    fn apply(
        &self,
        res: &LinuxResources,
        at: impl Fn(&Path) -> PathBuf,
    ) -> Result<(), CgroupError> {
        if let Some(mem) = res.memory() {
            if let (Some(limit), Some(dir)) = (mem.limit(), self.dir("memory")) {
                let dir = at(dir);
                write_file(&dir.join("memory.limit_in_bytes"), &limit.to_string())?;
                let memsw = dir.join("memory.memsw.limit_in_bytes");
                if memsw.exists() {
                    let swap = mem.swap().unwrap_or(limit).max(limit);
                    write_file(&memsw, &swap.to_string())?;
                }
            }
        }
        if let Some(cpu) = res.cpu() {
            if let (Some(quota), Some(dir)) = (cpu.quota(), self.dir("cpu")) {
                let dir = at(dir);
                let period = cpu.period().unwrap_or(100_000);
                write_file(&dir.join("cpu.cfs_period_us"), &period.to_string())?;
                write_file(&dir.join("cpu.cfs_quota_us"), &quota.to_string())?;
            }
        }
        if let Some(pids) = res.pids() {
            if let Some(dir) = self.dir("pids") {
                write_file(&at(dir).join("pids.max"), &super::pids_max(pids.limit()))?;
            }
        }
        Ok(())
    }

    pub fn placement(&self) -> super::Placement {
        let mut p = super::Placement::default();
        for (ctrls, dir) in &self.dirs {
            if ctrls == "cgroup2" {
                p.born_into = Some(dir.join(WORKLOAD));
            } else {
                p.self_join.push(dir.join(WORKLOAD).join("tasks"));
            }
        }
        p
    }

    pub fn add_pid(&self, pid: i32) -> Result<(), CgroupError> {
        for (_, dir) in &self.dirs {
            write_file(&dir.join(WORKLOAD).join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// v1 counts an OOM kill only in the memory cgroup of the killed task: the workload's, or
    /// one it made below it.
    pub fn oom_killed(&self) -> bool {
        self.dir("memory").is_some_and(|dir| {
            super::tree(dir)
                .iter()
                .any(|d| super::oom_kill_counted(&d.join("memory.oom_control")))
        })
    }

    /// The freezer hierarchy's `freezer.state`: FREEZING until every task has stopped.
    pub fn freeze(&self, frozen: bool) -> Result<(), CgroupError> {
        let dir = self.dir("freezer").ok_or(CgroupError::MissingController {
            controller: "freezer",
            why: "pause and resume",
        })?;
        let file = dir.join("freezer.state");
        let want = if frozen { "FROZEN" } else { "THAWED" };
        for _ in 0..1000 {
            write_file(&file, want)?;
            let now = std::fs::read_to_string(&file).map_err(|e| io_err(&file, e))?;
            if now.trim() == want {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        Err(io_err(
            &file,
            std::io::Error::other(format!("did not become {want}")),
        ))
    }

    pub fn frozen(&self) -> bool {
        self.dir("freezer").is_some_and(|d| {
            std::fs::read_to_string(d.join("freezer.state")).is_ok_and(|s| s.trim() == "FROZEN")
        })
    }

    pub fn pids(&self) -> Vec<i32> {
        let mut all: Vec<i32> = self.dirs.iter().flat_map(|(_, d)| tree_pids(d)).collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    pub fn rmdir(&self) -> Result<(), CgroupError> {
        let mut first_err = None;
        for (_, dir) in &self.dirs {
            if let Err(e) = remove_tree(dir) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    pub fn paths(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|(_, d)| d.clone()).collect()
    }
}

/// Creates `dir` and any missing parents. A new cpuset cgroup starts with no CPUs and no memory
/// nodes (no task could join it): each level copies its parent's.
fn make_dirs(dir: &Path, ctrls: &str) -> Result<(), CgroupError> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        make_dirs(parent, ctrls)?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_err(dir, e)),
    }
    if ctrls.split(',').any(|c| c == "cpuset") {
        if let Some(parent) = dir.parent() {
            for file in ["cpuset.cpus", "cpuset.mems"] {
                let mine = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
                if mine.trim().is_empty() {
                    let theirs = std::fs::read_to_string(parent.join(file))
                        .map_err(|e| io_err(&parent.join(file), e))?;
                    write_file(&dir.join(file), theirs.trim())?;
                }
            }
        }
    }
    Ok(())
}
