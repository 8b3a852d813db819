//! A runtime's `exec` in the VM: another process in the workload's namespaces (its PID
//! namespace, which init's children join since init made it; its cgroup and mount
//! namespaces), under the workload's cgroup and seccomp filter, with its own pipes or pty. The
//! host's `Exec` frame starts it; `relay.rs` carries its stdio under its session number.

use crate::process::become_process;
use crate::stdio::ProcessStdio;
use isola_process::Plan;

/// One running session, as the relay tracks it.
pub struct Session {
    pub id: u32,
    pub pid: libc::pid_t,
    /// (descriptor, is stderr, still open): two pipes, or one pty master.
    pub outputs: Vec<(libc::c_int, bool, bool)>,
    /// Its terminal's master, when it has one (for window sizes).
    pub master: Option<libc::c_int>,
    /// Where its stdin goes (non-blocking); `None` once closed.
    pub stdin: Option<libc::c_int>,
    pub pending: Vec<u8>,
    pub stdin_eof: bool,
    pub status: Option<i32>,
}

impl Session {
    pub fn done(&self) -> bool {
        self.status.is_some() && self.outputs.iter().all(|o| !o.2)
    }
}

/// Starts session `id` running `plan` (JSON) beside the workload `workload`.
pub fn spawn(
    id: u32,
    plan: &[u8],
    workload: libc::pid_t,
    seccomp: Option<&isola_seccomp::Filter>,
) -> Result<Session, String> {
    let plan: Plan = serde_json::from_slice(plan).map_err(|e| format!("exec: the process: {e}"))?;
    plan.args.first().ok_or("exec: process.args is empty")?;
    let ns = |name: &str| -> Result<libc::c_int, String> {
        let path = format!("/proc/{workload}/ns/{name}\0");
        // SAFETY: open(2) of a NUL-terminated path.
        let fd = unsafe { libc::open(path.as_ptr().cast(), libc::O_RDONLY | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(format!(
                "exec: {}: {}",
                path.trim_end_matches('\0'),
                std::io::Error::last_os_error()
            ));
        }
        Ok(fd)
    };
    crate::processes::mount_proc().map_err(|e| format!("exec: {e}"))?;
    let (cgroup_ns, mount_ns) = (ns("cgroup")?, ns("mnt")?);
    let stdio = ProcessStdio::open(plan.terminal, plan.console_size, true)?;
    // SAFETY: fork(2) in single-threaded PID 1; the child joins, sets up and execs or _exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("exec: fork: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: descriptors we own; setns on namespace files we opened; see become_process.
        unsafe {
            stdio.install();
            let joined = crate::cgroup::join_workload().and_then(|()| {
                for (fd, what) in [
                    (cgroup_ns, libc::CLONE_NEWCGROUP),
                    (mount_ns, libc::CLONE_NEWNS),
                ] {
                    if libc::setns(fd, what) != 0 {
                        return Err(format!(
                            "joining the workload's namespaces: {}",
                            std::io::Error::last_os_error()
                        ));
                    }
                }
                Ok(())
            });
            if let Err(e) = joined {
                let line = format!("isola: exec: {e}\n");
                libc::write(2, line.as_ptr().cast(), line.len());
                libc::_exit(125);
            }
        }
        become_process(&plan, seccomp);
    }
    stdio.close_theirs();
    for fd in [cgroup_ns, mount_ns] {
        // SAFETY: the namespace files we opened, closed once.
        unsafe { libc::close(fd) };
    }
    let outputs = match stdio.pty {
        Some((master, _)) => vec![(master, false, true)],
        None => vec![(stdio.out_r, false, true), (stdio.err_r, true, true)],
    };
    Ok(Session {
        id,
        pid,
        outputs,
        master: stdio.pty.map(|(master, _)| master),
        stdin: stdio.in_w,
        pending: Vec::new(),
        stdin_eof: false,
        status: None,
    })
}
