//! The workload's cgroup (cgroup v2, mounted at /sys/fs/cgroup in the image's root): the
//! bundle's memory, CPU and PID limits, applied the way the container level applies them, so
//! `--memory`, `--cpus` and `--pids-limit` mean the same behind either wall.

use isola_process::Plan;
use std::fs::File;

const ROOT: &str = "/sys/fs/cgroup";

fn write(path: &str, v: &str) -> Result<(), String> {
    std::fs::write(path, v).map_err(|e| format!("{path} <- {v:?}: {e}"))
}

/// Makes /sys/fs/cgroup/workload with the bundle's limits; returns its cgroup.procs, open for
/// writing (the workload writes "0" to it to join before it execs).
pub fn workload_cgroup(plan: &Plan) -> Result<File, String> {
    crate::setup::mount(
        "cgroup2",
        ROOT,
        "cgroup2",
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        "",
    )?;
    let limits = &plan.limits;
    let mut controllers: Vec<String> = limits
        .iter()
        .map(|f| format!("+{}", f.controller))
        .collect();
    controllers.dedup();
    if !controllers.is_empty() {
        write(
            &format!("{ROOT}/cgroup.subtree_control"),
            &controllers.join(" "),
        )?;
    }
    let cg = format!("{ROOT}/workload");
    std::fs::create_dir_all(&cg).map_err(|e| format!("{cg}: {e}"))?;
    for f in limits {
        f.write_in(std::path::Path::new(&cg))
            .map_err(|(path, e)| format!("{} <- {:?}: {e}", path.display(), f.value))?;
    }
    let procs = format!("{cg}/cgroup.procs");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&procs)
        .map_err(|e| format!("{procs}: {e}"))
}

/// Moves the calling process into the workload's cgroup (an exec session joins it).
pub fn join_workload() -> Result<(), String> {
    write(&format!("{ROOT}/workload/cgroup.procs"), "0")
}

/// Whether the kernel's OOM killer killed in the workload's cgroup (`oom_kill` in its
/// memory.events; the file is there only with the memory controller on).
pub fn oom_killed() -> bool {
    std::fs::read_to_string(format!("{ROOT}/workload/memory.events"))
        .map(|t| {
            t.lines()
                .filter_map(|l| l.strip_prefix("oom_kill "))
                .any(|n| n.trim() != "0")
        })
        .unwrap_or(false)
}
