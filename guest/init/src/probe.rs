//! `isola compare`'s probe: started as `/dev/init --probe` (the same binary as guest init and
//! the tiny init, bound at both levels, run as-is on the host for the bare column), it prints
//! one JSON object of what a process sees from where it runs — measured, never a table:
//! kernel release, PID 1, processes, mounts, devices, network interfaces, cgroup limits,
//! capabilities, seccomp mode, CPUs and memory.

use serde_json::{json, Value};

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim_end().to_string())
}

fn names(dir: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A field of /proc/self/status.
fn status(key: &str) -> Option<String> {
    read("/proc/self/status")?
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .map(|v| v.trim().to_string())
}

/// This process's cgroup limits: cgroup v2's files where its cgroup is, else (a hybrid
/// host's containers are limited in v1) the v1 controllers'.
fn cgroup_limits() -> Value {
    let own = read("/proc/self/cgroup").unwrap_or_default();
    // Its cgroup's directory under a hierarchy's mount (the mount itself inside a cgroup
    // namespace, where the path reads "/").
    let dir = |mount: &str, controller: &str| -> String {
        let path = own
            .lines()
            .filter_map(|l| {
                let mut parts = l.splitn(3, ':').skip(1);
                Some((parts.next()?, parts.next()?))
            })
            .find(|(c, _)| c.split(',').any(|x| x == controller))
            .map(|(_, p)| p.trim_end_matches('/').to_string())
            .unwrap_or_default();
        let d = format!("{mount}{path}");
        if std::path::Path::new(&d).is_dir() {
            d
        } else {
            mount.to_string()
        }
    };
    let v2 = dir("/sys/fs/cgroup", "");
    let f = |n: &str| read(&format!("{v2}/{n}"));
    if f("memory.max").is_some() || !std::path::Path::new("/sys/fs/cgroup/memory").is_dir() {
        return json!({"version": 2, "memory.max": f("memory.max"), "cpu.max": f("cpu.max"), "pids.max": f("pids.max")});
    }
    let v1 = |c: &str, n: &str| read(&format!("{}/{n}", dir(&format!("/sys/fs/cgroup/{c}"), c)));
    json!({"version": 1, "memory.limit_in_bytes": v1("memory", "memory.limit_in_bytes"),
           "cpu.cfs_quota_us": v1("cpu", "cpu.cfs_quota_us"), "pids.max": v1("pids", "pids.max")})
}

pub fn main() -> ! {
    // SAFETY: uname fills a zeroed utsname we own.
    let release = unsafe {
        let mut u: libc::utsname = std::mem::zeroed();
        libc::uname(&mut u);
        std::ffi::CStr::from_ptr(u.release.as_ptr())
            .to_string_lossy()
            .into_owned()
    };
    let pid1 = read("/proc/1/cmdline")
        .map(|c| c.split('\0').next().unwrap_or_default().to_string())
        .unwrap_or_else(|| "(not visible)".into());
    let processes = names("/proc")
        .iter()
        .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        .count();
    let mounts = read("/proc/self/mountinfo").map_or(0, |m| m.lines().count());
    let mem_kib: u64 = read("/proc/meminfo")
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0);
    let out = json!({
        "kernel": release,
        "pid1": pid1,
        "my_pid": std::process::id(),
        "processes": processes,
        "mounts": mounts,
        "devices": names("/dev").len(),
        "interfaces": names("/sys/class/net"),
        "cgroup": cgroup_limits(),
        "cap_eff": status("CapEff"),
        "seccomp": status("Seccomp"),
        "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "memory_mib": mem_kib / 1024,
    });
    println!("{out}");
    std::process::exit(0)
}
