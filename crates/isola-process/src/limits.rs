//! `linux.resources` as cgroup v2 files: what the container level writes on the container's
//! cgroup and what the guest init writes on the workload's, so `--memory`, `--cpus` and
//! `--pids-limit` mean the same behind either wall.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One cgroup v2 file to write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitFile {
    /// The controller the file belongs to (it must be enabled in the parent).
    pub controller: String,
    pub file: String,
    pub value: String,
    /// Written only where the kernel has the file (memory.swap.max needs swap accounting).
    pub if_present: bool,
}

impl LimitFile {
    /// Writes the file in the cgroup directory `dir` (an optional one the kernel lacks is
    /// skipped); a failure comes with the path written.
    pub fn write_in(&self, dir: &Path) -> Result<(), (PathBuf, std::io::Error)> {
        let path = dir.join(&self.file);
        if self.if_present && !path.exists() {
            return Ok(());
        }
        std::fs::write(&path, &self.value).map_err(|e| (path, e))
    }
}

/// The files for `res`, in the order to write them.
#[cfg(feature = "spec")]
pub fn cgroup_v2(res: &oci_spec::runtime::LinuxResources) -> Vec<LimitFile> {
    let mut out = Vec::new();
    let mut push = |controller: &str, file: &str, value: String, if_present| {
        out.push(LimitFile {
            controller: controller.into(),
            file: file.into(),
            value,
            if_present,
        })
    };
    if let Some(limit) = res.memory().as_ref().and_then(|m| m.limit()) {
        if limit > 0 {
            push("memory", "memory.max", limit.to_string(), false);
            // OCI's swap is memory+swap; v2's swap.max is swap alone.
            let swap = res
                .memory()
                .as_ref()
                .and_then(|m| m.swap())
                .unwrap_or(limit);
            push(
                "memory",
                "memory.swap.max",
                (swap.max(limit) - limit).to_string(),
                true,
            );
        }
    }
    if let Some(cpu) = res.cpu() {
        if let Some(quota) = cpu.quota().filter(|q| *q > 0) {
            let period = cpu.period().unwrap_or(100_000);
            push("cpu", "cpu.max", format!("{quota} {period}"), false);
        }
    }
    if let Some(pids) = res.pids() {
        push("pids", "pids.max", pids_max(pids.limit()), false);
    }
    out
}

/// A pids limit as pids.max (and v1's file) take it: 0 or less is no limit.
pub fn pids_max(limit: i64) -> String {
    if limit > 0 {
        limit.to_string()
    } else {
        "max".to_string()
    }
}

#[cfg(all(test, feature = "spec"))]
mod tests {
    use super::*;
    use oci_spec::runtime::{
        LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResourcesBuilder,
    };

    #[test]
    fn docker_flags_become_the_same_files() {
        let res = LinuxResourcesBuilder::default()
            .memory(
                LinuxMemoryBuilder::default()
                    .limit(64 << 20)
                    .build()
                    .unwrap(),
            )
            .cpu(
                LinuxCpuBuilder::default()
                    .quota(50_000)
                    .period(100_000u64)
                    .build()
                    .unwrap(),
            )
            .pids(LinuxPidsBuilder::default().limit(10).build().unwrap())
            .build()
            .unwrap();
        let files: Vec<(String, String)> = cgroup_v2(&res)
            .into_iter()
            .map(|f| (f.file, f.value))
            .collect();
        assert_eq!(
            files,
            [
                ("memory.max", "67108864"),
                ("memory.swap.max", "0"),
                ("cpu.max", "50000 100000"),
                ("pids.max", "10"),
            ]
            .map(|(f, v)| (f.to_string(), v.to_string()))
        );
        let unlimited = LinuxResourcesBuilder::default()
            .pids(LinuxPidsBuilder::default().limit(-1).build().unwrap())
            .build()
            .unwrap();
        assert_eq!(cgroup_v2(&unlimited)[0].value, "max");
    }
}
