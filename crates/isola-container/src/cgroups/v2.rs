//! cgroup v2: one unified tree; controllers are enabled top-down through cgroup.subtree_control.

use super::{io_err, read_pids, rmdir, write_file, CgroupError, Hierarchies};
use oci_spec::runtime::LinuxResources;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct V2Cgroup {
    path: PathBuf,
}

impl V2Cgroup {
    fn path_for(hier: &Hierarchies, rel: &str) -> PathBuf {
        hier.v2
            .clone()
            .unwrap_or_else(|| PathBuf::from("/sys/fs/cgroup"))
            .join(rel.trim_start_matches('/'))
    }

    pub fn existing(hier: &Hierarchies, rel: &str) -> V2Cgroup {
        V2Cgroup {
            path: Self::path_for(hier, rel),
        }
    }

    pub fn create(
        hier: &Hierarchies,
        rel: &str,
        res: &LinuxResources,
    ) -> Result<V2Cgroup, CgroupError> {
        let root = hier.v2.clone().ok_or(CgroupError::NoCgroupFs)?;
        let available = hier.controllers();
        let mut wanted: Vec<&'static str> = Vec::new();
        for (ctrl, asked, why) in [
            (
                "memory",
                res.memory().as_ref().and_then(|m| m.limit()).is_some(),
                "--memory",
            ),
            (
                "cpu",
                res.cpu().as_ref().and_then(|c| c.quota()).is_some(),
                "--cpus",
            ),
            ("pids", res.pids().is_some(), "--pids-limit"),
        ] {
            if available.iter().any(|a| a == ctrl) {
                wanted.push(ctrl);
            } else if asked {
                return Err(CgroupError::MissingController {
                    controller: ctrl,
                    why,
                });
            }
        }
        let path = Self::path_for(hier, rel);
        // Enable the controllers on every level between the root and the container's parent.
        let mut level = root.clone();
        let enable: String = wanted.iter().map(|c| format!("+{c} ")).collect();
        if let Ok(rest) = path.parent().unwrap_or(&root).strip_prefix(&root) {
            if !enable.is_empty() {
                write_file(&level.join("cgroup.subtree_control"), enable.trim())?;
            }
            for comp in rest.components() {
                level = level.join(comp);
                std::fs::create_dir_all(&level).map_err(|e| io_err(&level, e))?;
                if !enable.is_empty() {
                    write_file(&level.join("cgroup.subtree_control"), enable.trim())?;
                }
            }
        }
        std::fs::create_dir(&path).map_err(|e| io_err(&path, e))?;
        let cg = V2Cgroup { path };
        if let Err(e) = cg.apply(res) {
            let _ = cg.rmdir();
            return Err(e);
        }
        Ok(cg)
    }

    fn apply(&self, res: &LinuxResources) -> Result<(), CgroupError> {
        if let Some(mem) = res.memory() {
            if let Some(limit) = mem.limit() {
                write_file(&self.path.join("memory.max"), &limit.to_string())?;
                let swap_max = self.path.join("memory.swap.max");
                if swap_max.exists() {
                    // OCI's swap is memory+swap; v2's swap.max is swap alone.
                    let swap = mem.swap().unwrap_or(limit).max(limit) - limit;
                    write_file(&swap_max, &swap.to_string())?;
                }
            }
        }
        if let Some(cpu) = res.cpu() {
            if let Some(quota) = cpu.quota() {
                let period = cpu.period().unwrap_or(100_000);
                write_file(&self.path.join("cpu.max"), &format!("{quota} {period}"))?;
            }
        }
        if let Some(pids) = res.pids() {
            let v = if pids.limit() > 0 {
                pids.limit().to_string()
            } else {
                "max".to_string()
            };
            write_file(&self.path.join("pids.max"), &v)?;
        }
        Ok(())
    }

    pub fn add_pid(&self, pid: i32) -> Result<(), CgroupError> {
        write_file(&self.path.join("cgroup.procs"), &pid.to_string())
    }

    pub fn oom_killed(&self) -> bool {
        std::fs::read_to_string(self.path.join("memory.events"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("oom_kill ").map(|v| v.trim() != "0"))
            })
            .unwrap_or(false)
    }

    pub fn pids(&self) -> Vec<i32> {
        read_pids(&self.path.join("cgroup.procs"))
    }

    pub fn rmdir(&self) -> Result<(), CgroupError> {
        rmdir(&self.path)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}
