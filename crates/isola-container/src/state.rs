//! The state of a container on disk (`<state root>/<id>/state.json`), as the OCI runtime spec's
//! `state` operation describes it plus what isola needs to clean up after a crash: who owns the
//! container (pid + start time, so a recycled pid is not mistaken for it) and its cgroups.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    pub oci_version: String,
    pub id: String,
    /// creating | created | running | stopped
    pub status: String,
    pub pid: i32,
    pub pid_start_time: u64,
    pub bundle: PathBuf,
    /// The cgroup path relative to each hierarchy, e.g. `/isola/<id>`.
    pub cgroups_path: String,
    /// The isola process that supervises this container.
    pub owner_pid: i32,
    pub owner_start_time: u64,
}

/// Field 22 of /proc/<pid>/stat: the process's start time in clock ticks since boot.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: skip past its last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

/// Whether `pid` is still the process that had `start`.
pub fn is_alive(pid: i32, start: u64) -> bool {
    pid > 0 && start_time(pid) == Some(start)
}

impl State {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("state.json")
    }

    pub fn load(dir: &Path) -> std::io::Result<State> {
        let bytes = std::fs::read(Self::path(dir))?;
        serde_json::from_slice(&bytes).map_err(std::io::Error::other)
    }

    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        let tmp = dir.join(".state.json.tmp");
        std::fs::write(
            &tmp,
            serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?,
        )?;
        std::fs::rename(&tmp, Self::path(dir))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn own_start_time_is_readable() {
        let me = std::process::id() as i32;
        let t = super::start_time(me).unwrap();
        assert!(super::is_alive(me, t));
        assert!(!super::is_alive(me, t + 1));
    }
}
