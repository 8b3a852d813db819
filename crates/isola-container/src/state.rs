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
    /// The isola process that supervises this container (0: none, a runtime's detached
    /// container that lives until `delete`).
    pub owner_pid: i32,
    pub owner_start_time: u64,
    /// When it was created, RFC 3339 in UTC (what runc's `state` prints).
    #[serde(default)]
    pub created: String,
    /// The bundle's annotations, as `state` reports them.
    #[serde(default)]
    pub annotations: std::collections::BTreeMap<String, String>,
    /// The root filesystem's host path.
    #[serde(default)]
    pub rootfs: PathBuf,
    /// "container" or "vm".
    #[serde(default)]
    pub isolation: String,
}

/// Now as RFC 3339 in UTC with nanoseconds, e.g. `2026-11-25T20:31:07.123456789Z`.
pub fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(now.as_secs(), now.subsec_nanos())
}

/// Seconds since the epoch as a UTC date and time (days to civil date: Howard Hinnant's
/// algorithm).
pub fn rfc3339(secs: u64, nanos: u32) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Field 22 of /proc/<pid>/stat: the process's start time in clock ticks since boot.
pub fn start_time(pid: i32) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

/// The fields of /proc/<pid>/stat after the command name (field 3, the state, first).
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: skip past its last ')'.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    Some(rest.split(' ').map(String::from).collect())
}

/// Whether `pid` is still the process that had `start`, and has not exited (a zombie waiting
/// for its parent to reap it has).
pub fn is_alive(pid: i32, start: u64) -> bool {
    if pid <= 0 {
        return false;
    }
    let Some(fields) = stat_fields(pid) else {
        return false;
    };
    let exited = matches!(fields.first().map(String::as_str), Some("Z" | "X"));
    !exited && fields.get(19).and_then(|t| t.parse().ok()) == Some(start)
}

/// The bundle's root filesystem as a host path (`root.path`, relative to the bundle unless
/// absolute); `None` when config.json has no root.
pub fn rootfs_of(spec: &oci_spec::runtime::Spec, bundle: &Path) -> Option<PathBuf> {
    let p = spec.root().as_ref()?.path();
    Some(if p.is_absolute() {
        p.clone()
    } else {
        bundle.join(p)
    })
}

impl State {
    /// A new container's state: `creating`, no process and no owner yet.
    pub fn new(
        spec: &oci_spec::runtime::Spec,
        id: &str,
        bundle: &Path,
        cgroups_path: String,
        isolation: &str,
    ) -> State {
        State {
            oci_version: spec.version().clone(),
            id: id.to_string(),
            status: "creating".into(),
            pid: 0,
            pid_start_time: 0,
            bundle: bundle.to_path_buf(),
            cgroups_path,
            owner_pid: 0,
            owner_start_time: 0,
            created: now_rfc3339(),
            annotations: spec
                .annotations()
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            rootfs: rootfs_of(spec, bundle).unwrap_or_default(),
            isolation: isolation.into(),
        }
    }

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

    #[test]
    fn dates_are_civil_utc() {
        assert_eq!(super::rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        // `date -u -d @1795724467`: Thu Nov 26 20:21:07 UTC 2026.
        assert_eq!(
            super::rfc3339(1_795_724_467, 5),
            "2026-11-26T20:21:07.000000005Z"
        );
        assert_eq!(
            super::rfc3339(951_782_400, 0),
            "2000-02-29T00:00:00.000000000Z"
        );
    }
}
