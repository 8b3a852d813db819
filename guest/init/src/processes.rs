//! A runtime's `ps` of a VM: the workload's processes, read from the guest's /proc and
//! numbered as the workload's PID namespace numbers them.

use isola_guest_contract::processes::GuestProcess;

/// Init's own root has no /proc (the workload mounts its own, in its namespaces): one for
/// init's eyes only, once, to reach the workload's processes and namespaces.
pub fn mount_proc() -> Result<(), String> {
    if std::path::Path::new("/proc/self").exists() {
        return Ok(());
    }
    crate::setup::mount(
        "proc",
        "/proc",
        "proc",
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        "",
    )
}

/// A process's (pid in the workload's namespace, global parent pid, real uid), from its
/// status file; `None` for init and its helpers, which are outside the workload's namespace.
fn status(pid: u32) -> Option<(u32, u32, u32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.split_whitespace().collect::<Vec<_>>())
    };
    let nspid = field("NSpid:")?;
    if nspid.len() < 2 {
        return None;
    }
    let inner = nspid.last()?.parse().ok()?;
    let ppid = field("PPid:")?.first()?.parse().ok()?;
    let uid = field("Uid:")?.first()?.parse().ok()?;
    Some((inner, ppid, uid))
}

fn command(pid: u32) -> String {
    let args = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let words: Vec<String> = args
        .split(|b| *b == 0)
        .filter(|w| !w.is_empty())
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect();
    if words.is_empty() {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        format!("[{}]", comm.trim())
    } else {
        words.join(" ")
    }
}

/// Every process in the workload's PID namespace (exec sessions' too), by pid.
pub fn list() -> Vec<GuestProcess> {
    if mount_proc().is_err() {
        return Vec::new();
    }
    let mut global = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            if let Some((inner, ppid, uid)) = status(pid) {
                global.push((pid, inner, ppid, uid));
            }
        }
    }
    // A parent outside the namespace (init) is 0, as the namespace sees it.
    let inner_of = |g: u32| global.iter().find(|p| p.0 == g).map_or(0, |p| p.1);
    let mut out: Vec<GuestProcess> = global
        .iter()
        .map(|&(pid, inner, ppid, uid)| GuestProcess {
            pid: inner,
            ppid: inner_of(ppid),
            uid,
            command: command(pid),
        })
        .collect();
    out.sort_by_key(|p| p.pid);
    out
}
