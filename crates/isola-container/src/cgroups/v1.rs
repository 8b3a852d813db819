//! cgroup v1: one directory per controller hierarchy.

use super::{io_err, read_pids, rmdir, write_file, CgroupError, Hierarchies};
use oci_spec::runtime::LinuxResources;
use std::path::{Path, PathBuf};

/// The controllers a container joins, and the limit each one carries.
const JOINED: &[&str] = &["memory", "cpu", "pids"];

#[derive(Debug)]
pub struct V1Cgroup {
    /// controller → directory (co-mounted controllers share a directory).
    dirs: Vec<(String, PathBuf)>,
}

impl V1Cgroup {
    fn dirs_for(hier: &Hierarchies, rel: &str) -> Vec<(String, PathBuf)> {
        let mut dirs: Vec<(String, PathBuf)> = Vec::new();
        for ctrl in JOINED {
            if let Some(mount) = hier.v1.get(*ctrl) {
                dirs.push((ctrl.to_string(), mount.join(rel.trim_start_matches('/'))));
            }
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
        let wants_memory = res.memory().as_ref().and_then(|m| m.limit()).is_some();
        let wants_cpu = res.cpu().as_ref().and_then(|c| c.quota()).is_some();
        let wants_pids = res.pids().is_some();
        for (ctrl, wanted, why) in [
            ("memory", wants_memory, "--memory"),
            ("cpu", wants_cpu, "--cpus"),
            ("pids", wants_pids, "--pids-limit"),
        ] {
            if wanted && !hier.v1.contains_key(ctrl) {
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
            for dir in cg.unique_dirs() {
                std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
            }
            cg.apply(res)
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
            .find(|(c, _)| c == ctrl)
            .map(|(_, d)| d.as_path())
    }

    fn apply(&self, res: &LinuxResources) -> Result<(), CgroupError> {
        if let Some(mem) = res.memory() {
            if let (Some(limit), Some(dir)) = (mem.limit(), self.dir("memory")) {
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
                let period = cpu.period().unwrap_or(100_000);
                write_file(&dir.join("cpu.cfs_period_us"), &period.to_string())?;
                write_file(&dir.join("cpu.cfs_quota_us"), &quota.to_string())?;
            }
        }
        if let Some(pids) = res.pids() {
            if let Some(dir) = self.dir("pids") {
                let v = if pids.limit() > 0 {
                    pids.limit().to_string()
                } else {
                    "max".to_string()
                };
                write_file(&dir.join("pids.max"), &v)?;
            }
        }
        Ok(())
    }

    pub fn add_pid(&self, pid: i32) -> Result<(), CgroupError> {
        for dir in self.unique_dirs() {
            write_file(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    pub fn oom_killed(&self) -> bool {
        self.dir("memory")
            .and_then(|d| std::fs::read_to_string(d.join("memory.oom_control")).ok())
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("oom_kill ").map(|v| v.trim() != "0"))
            })
            .unwrap_or(false)
    }

    pub fn pids(&self) -> Vec<i32> {
        let mut all: Vec<i32> = self
            .unique_dirs()
            .into_iter()
            .flat_map(|d| read_pids(&d.join("cgroup.procs")))
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    pub fn rmdir(&self) -> Result<(), CgroupError> {
        let mut first_err = None;
        for dir in self.unique_dirs() {
            if let Err(e) = rmdir(dir) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    pub fn paths(&self) -> Vec<PathBuf> {
        self.unique_dirs()
            .into_iter()
            .map(Path::to_path_buf)
            .collect()
    }

    fn unique_dirs(&self) -> Vec<&Path> {
        let mut out: Vec<&Path> = Vec::new();
        for (_, d) in &self.dirs {
            if !out.contains(&d.as_path()) {
                out.push(d);
            }
        }
        out
    }
}
