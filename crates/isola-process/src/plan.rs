//! What to exec, resolved from the OCI spec once: the plan both inits carry out. The container
//! init makes it from its bundle's config.json; for a VM the host makes it and the guest init
//! gets it as JSON in its initramfs (so the guest needs no OCI parser), with the same code.

use crate::limits::LimitFile;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The largest uid or gid a workload may have: (uid_t)-1 is "leave unchanged" to setresuid,
/// so 4294967295 would keep the workload root; ids above 2^31-1 are refused altogether.
pub const MAX_ID: u32 = i32::MAX as u32;

/// One rlimit: the kernel's resource number and its limits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rlimit {
    /// The name as config.json gives it (for messages).
    pub name: String,
    pub resource: u32,
    pub soft: u64,
    pub hard: u64,
}

/// Capability sets as bit masks (bit N = capability number N). Capabilities the running
/// kernel does not know are left out when they are applied.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapabilitySets {
    pub bounding: u64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
}

/// The workload's process, resolved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: PathBuf,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub umask: u32,
    pub rlimits: Vec<Rlimit>,
    pub capabilities: CapabilitySets,
    pub no_new_privileges: bool,
    pub terminal: bool,
    /// The terminal's size at start: (rows, columns).
    pub console_size: Option<(u16, u16)>,
    pub hostname: Option<String>,
    /// `linux.resources` as cgroup v2 files.
    pub limits: Vec<LimitFile>,
    /// `root.readonly` (`--read-only`): the root is read-only, its mounts as they are.
    #[serde(default)]
    pub readonly_root: bool,
}

#[cfg(feature = "spec")]
pub use from_spec::check_ids;

#[cfg(feature = "spec")]
mod from_spec {
    use super::*;
    use oci_spec::runtime::{Capabilities, Spec};
    use std::str::FromStr;

    fn resource(name: &str) -> Option<libc::__rlimit_resource_t> {
        Some(match name {
            "RLIMIT_CPU" => libc::RLIMIT_CPU,
            "RLIMIT_FSIZE" => libc::RLIMIT_FSIZE,
            "RLIMIT_DATA" => libc::RLIMIT_DATA,
            "RLIMIT_STACK" => libc::RLIMIT_STACK,
            "RLIMIT_CORE" => libc::RLIMIT_CORE,
            "RLIMIT_RSS" => libc::RLIMIT_RSS,
            "RLIMIT_NPROC" => libc::RLIMIT_NPROC,
            "RLIMIT_NOFILE" => libc::RLIMIT_NOFILE,
            "RLIMIT_MEMLOCK" => libc::RLIMIT_MEMLOCK,
            "RLIMIT_AS" => libc::RLIMIT_AS,
            "RLIMIT_LOCKS" => libc::RLIMIT_LOCKS,
            "RLIMIT_SIGPENDING" => libc::RLIMIT_SIGPENDING,
            "RLIMIT_MSGQUEUE" => libc::RLIMIT_MSGQUEUE,
            "RLIMIT_NICE" => libc::RLIMIT_NICE,
            "RLIMIT_RTPRIO" => libc::RLIMIT_RTPRIO,
            "RLIMIT_RTTIME" => libc::RLIMIT_RTTIME,
            _ => return None,
        })
    }

    fn mask(set: &Option<Capabilities>, field: &str) -> Result<u64, String> {
        let mut m = 0;
        for c in set.iter().flatten() {
            let name = c.to_string();
            let name = if name.starts_with("CAP_") {
                name
            } else {
                format!("CAP_{name}")
            };
            let cap = caps::Capability::from_str(&name)
                .map_err(|_| format!("process.capabilities.{field}: unknown capability {name}"))?;
            m |= 1u64 << cap.index();
        }
        Ok(m)
    }

    /// Refuses uids and gids above `MAX_ID`, naming the field.
    pub fn check_ids(p: &oci_spec::runtime::Process) -> Result<(), String> {
        let user = p.user();
        let ids = [("uid", user.uid()), ("gid", user.gid())]
            .into_iter()
            .chain(
                user.additional_gids()
                    .iter()
                    .flatten()
                    .map(|g| ("additionalGids", *g)),
            );
        for (field, id) in ids {
            if id > MAX_ID {
                return Err(format!(
                    "process.user.{field} {id} is out of range (0 to {MAX_ID})"
                ));
            }
        }
        Ok(())
    }

    impl Plan {
        /// Resolves `spec`'s process (and hostname and cgroup limits).
        pub fn from_spec(spec: &Spec) -> Result<Plan, String> {
            let p = spec
                .process()
                .as_ref()
                .ok_or("config.json has no process")?;
            check_ids(p)?;
            let user = p.user();
            let rlimits = p
                .rlimits()
                .as_deref()
                .unwrap_or_default()
                .iter()
                .map(|r| {
                    let name = r.typ().to_string();
                    let resource = resource(&name)
                        .ok_or_else(|| format!("process.rlimits: unknown rlimit {name}"))?;
                    Ok(Rlimit {
                        name,
                        resource,
                        soft: r.soft(),
                        hard: r.hard(),
                    })
                })
                .collect::<Result<_, String>>()?;
            let c = p.capabilities().clone().unwrap_or_default();
            Ok(Plan {
                args: p.args().clone().unwrap_or_default(),
                env: p.env().clone().unwrap_or_default(),
                cwd: p.cwd().clone(),
                uid: user.uid(),
                gid: user.gid(),
                groups: user.additional_gids().clone().unwrap_or_default(),
                umask: user.umask().unwrap_or(0o022),
                rlimits,
                capabilities: CapabilitySets {
                    bounding: mask(c.bounding(), "bounding")?,
                    effective: mask(c.effective(), "effective")?,
                    permitted: mask(c.permitted(), "permitted")?,
                    inheritable: mask(c.inheritable(), "inheritable")?,
                    ambient: mask(c.ambient(), "ambient")?,
                },
                no_new_privileges: p.no_new_privileges().unwrap_or(false),
                terminal: p.terminal().unwrap_or(false),
                console_size: p
                    .console_size()
                    .as_ref()
                    .map(|s| (s.height() as u16, s.width() as u16)),
                hostname: spec.hostname().clone(),
                limits: spec
                    .linux()
                    .as_ref()
                    .and_then(|l| l.resources().as_ref())
                    .map(crate::limits::cgroup_v2)
                    .unwrap_or_default(),
                readonly_root: spec
                    .root()
                    .as_ref()
                    .and_then(|r| r.readonly())
                    .unwrap_or(false),
            })
        }
    }
}

#[cfg(all(test, feature = "spec"))]
mod tests {
    use super::*;

    #[test]
    fn a_spec_resolves_and_survives_json() {
        let spec: oci_spec::runtime::Spec = serde_json::from_str(
            r#"{"ociVersion": "1.0.2", "hostname": "h", "root": {"path": "rootfs"},
                "process": {"args": ["sh"], "cwd": "/tmp", "env": ["A=1"],
                  "user": {"uid": 1000, "gid": 10, "additionalGids": [100]},
                  "rlimits": [{"type": "RLIMIT_RTTIME", "soft": 1, "hard": 2}],
                  "capabilities": {"bounding": ["CAP_KILL", "CAP_CHOWN"], "effective": ["CAP_KILL"]},
                  "noNewPrivileges": true},
                "linux": {"resources": {"pids": {"limit": 10}}}}"#,
        )
        .unwrap();
        let plan = Plan::from_spec(&spec).unwrap();
        assert_eq!(
            (plan.uid, plan.gid, plan.groups.clone()),
            (1000, 10, vec![100])
        );
        assert_eq!(plan.rlimits[0].resource, libc::RLIMIT_RTTIME);
        assert_eq!(plan.capabilities.bounding, (1 << 5) | (1 << 0));
        assert_eq!(plan.capabilities.effective, 1 << 5);
        assert_eq!(plan.limits[0].file, "pids.max");
        assert_eq!(plan.hostname.as_deref(), Some("h"));
        let back: Plan = serde_json::from_str(&serde_json::to_string(&plan).unwrap()).unwrap();
        assert_eq!(back, plan);
    }
}
