//! cgroup v2: one unified tree; controllers are enabled top-down through cgroup.subtree_control,
//! and the device allowlist is an eBPF program attached to the container's cgroup.

use super::WORKLOAD;
use super::{device_filter, io_err, remove_tree, tree_pids, write_file, CgroupError, Hierarchies};
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
        for (ctrl, why) in super::wanted_controllers(res) {
            if ctrl != "devices" && !available.iter().any(|a| a == ctrl) {
                return Err(CgroupError::MissingController {
                    controller: ctrl,
                    why,
                });
            }
        }
        let wanted: Vec<&str> = ["memory", "cpu", "pids"]
            .into_iter()
            .filter(|c| available.iter().any(|a| a == c))
            .collect();
        let path = Self::path_for(hier, rel);
        // Enable the controllers on every level from the root down to the container's own
        // cgroup, whose child (the workload's) then has them too.
        let enable: String = wanted.iter().map(|c| format!("+{c} ")).collect();
        let enable = enable.trim();
        let rest = path
            .strip_prefix(&root)
            .map_err(|_| io_err(&path, std::io::Error::other("not below the cgroup2 root")))?;
        if !enable.is_empty() {
            write_file(&root.join("cgroup.subtree_control"), enable)?;
        }
        let mut level = root.clone();
        let last = rest.components().count();
        for (i, comp) in rest.components().enumerate() {
            level = level.join(comp);
            if i + 1 == last {
                std::fs::create_dir(&level).map_err(|e| io_err(&level, e))?;
            } else {
                std::fs::create_dir_all(&level).map_err(|e| io_err(&level, e))?;
            }
            if !enable.is_empty() {
                if let Err(e) = write_file(&level.join("cgroup.subtree_control"), enable) {
                    if i + 1 == last {
                        let _ = std::fs::remove_dir(&level);
                    }
                    return Err(e);
                }
            }
        }
        let cg = V2Cgroup { path };
        let result = (|| {
            if let Some(devices) = res.devices().as_deref().filter(|d| !d.is_empty()) {
                device_filter::attach(&cg.path, devices)?;
            }
            apply(&cg.path, res)?;
            let leaf = cg.path.join(WORKLOAD);
            std::fs::create_dir(&leaf).map_err(|e| io_err(&leaf, e))?;
            // The same limits on the workload's own cgroup, which is all it sees: a workload
            // that raised them there would still meet the ones above.
            apply(&leaf, res)
        })();
        if let Err(e) = result {
            let _ = cg.rmdir();
            return Err(e);
        }
        Ok(cg)
    }

    pub fn placement(&self) -> super::Placement {
        super::Placement {
            born_into: Some(self.path.join(WORKLOAD)),
            self_join: Vec::new(),
        }
    }

    pub fn add_pid(&self, pid: i32) -> Result<(), CgroupError> {
        write_file(
            &self.path.join(WORKLOAD).join("cgroup.procs"),
            &pid.to_string(),
        )
    }

    /// memory.events counts OOM kills anywhere below.
    pub fn oom_killed(&self) -> bool {
        super::oom_kill_counted(&self.path.join("memory.events"))
    }

    /// `cgroup.freeze`; `cgroup.events` says `frozen 1` once every task has stopped.
    pub fn freeze(&self, frozen: bool) -> Result<(), CgroupError> {
        write_file(
            &self.path.join("cgroup.freeze"),
            if frozen { "1" } else { "0" },
        )?;
        for _ in 0..1000 {
            if self.frozen() == frozen {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let events = self.path.join("cgroup.events");
        Err(io_err(
            &events,
            std::io::Error::other("the freeze did not take effect"),
        ))
    }

    pub fn frozen(&self) -> bool {
        std::fs::read_to_string(self.path.join("cgroup.events"))
            .is_ok_and(|s| s.lines().any(|l| l == "frozen 1"))
    }

    pub fn pids(&self) -> Vec<i32> {
        tree_pids(&self.path)
    }

    pub fn rmdir(&self) -> Result<(), CgroupError> {
        remove_tree(&self.path)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn apply(dir: &Path, res: &LinuxResources) -> Result<(), CgroupError> {
    for f in isola_process::limits::cgroup_v2(res) {
        f.write_in(dir).map_err(|(path, e)| io_err(&path, e))?;
    }
    Ok(())
}
