//! The workload's cgroup (cgroup v2, mounted at /sys/fs/cgroup in the image's root): the
//! bundle's memory, CPU and PID limits, applied the way the container level applies them, so
//! `--memory`, `--cpus` and `--pids-limit` mean the same behind either wall.

use serde_json::Value;
use std::fs::File;

const ROOT: &str = "/sys/fs/cgroup";

fn write(path: &str, v: &str) -> Result<(), String> {
    std::fs::write(path, v).map_err(|e| format!("{path} <- {v:?}: {e}"))
}

/// The limits in `linux.resources` as cgroup v2 files: (controller, file, value).
pub fn limits(spec: &Value) -> Vec<(&'static str, &'static str, String)> {
    let r = |p: &str| spec.pointer(&format!("/linux/resources{p}"));
    let positive = |p: &str| r(p).and_then(Value::as_i64).filter(|v| *v > 0);
    let mut out = Vec::new();
    if let Some(limit) = positive("/memory/limit") {
        out.push(("memory", "memory.max", limit.to_string()));
    }
    if let (Some(quota), Some(period)) = (positive("/cpu/quota"), positive("/cpu/period")) {
        out.push(("cpu", "cpu.max", format!("{quota} {period}")));
    }
    if let Some(limit) = positive("/pids/limit") {
        out.push(("pids", "pids.max", limit.to_string()));
    }
    out
}

/// Makes /sys/fs/cgroup/workload with the bundle's limits; returns its cgroup.procs, open for
/// writing (the workload writes "0" to it to join before it execs).
pub fn workload_cgroup(spec: &Value) -> Result<File, String> {
    crate::setup::mount(
        "cgroup2",
        ROOT,
        "cgroup2",
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        "",
    )?;
    let limits = limits(spec);
    let controllers: Vec<String> = limits.iter().map(|(c, _, _)| format!("+{c}")).collect();
    if !controllers.is_empty() {
        write(
            &format!("{ROOT}/cgroup.subtree_control"),
            &controllers.join(" "),
        )?;
    }
    let cg = format!("{ROOT}/workload");
    std::fs::create_dir_all(&cg).map_err(|e| format!("{cg}: {e}"))?;
    for (_, file, value) in &limits {
        write(&format!("{cg}/{file}"), value)?;
    }
    let procs = format!("{cg}/cgroup.procs");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&procs)
        .map_err(|e| format!("{procs}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_become_cgroup_v2_files() {
        let spec: Value = serde_json::from_str(
            r#"{"linux": {"resources": {"memory": {"limit": 67108864, "swap": 67108864},
                "cpu": {"quota": 150000, "period": 100000}, "pids": {"limit": 10}}}}"#,
        )
        .unwrap();
        assert_eq!(
            limits(&spec),
            vec![
                ("memory", "memory.max", "67108864".to_string()),
                ("cpu", "cpu.max", "150000 100000".to_string()),
                ("pids", "pids.max", "10".to_string()),
            ]
        );
        let none: Value = serde_json::from_str(r#"{"linux": {"resources": {}}}"#).unwrap();
        assert!(limits(&none).is_empty());
    }
}
