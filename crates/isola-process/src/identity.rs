//! Who the workload is: rlimits, user and groups, capabilities, no_new_privs.
//! Order matters: rlimits while still root (raising a hard limit needs CAP_SYS_RESOURCE), the
//! bounding set while CAP_SETPCAP is held, then uid/gid with PR_SET_KEEPCAPS so the permitted
//! set survives, then the configured effective/permitted/inheritable/ambient sets.

use caps::{CapSet, Capability as Cap, CapsHashSet};
use oci_spec::runtime::{Capabilities, Process};
use std::str::FromStr;

type Result<T> = std::result::Result<T, String>;

/// A new, empty session keyring named `isola`: keys in the session keyring of whoever ran
/// isola are not the workload's (runc does the same). The default seccomp profile also refuses
/// every keyring call; this matters when the profile is off.
pub fn join_new_session_keyring() -> Result<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    // SAFETY: keyctl with a NUL-terminated name that lives across the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_JOIN_SESSION_KEYRING,
            c"isola".as_ptr(),
        )
    };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        // A kernel without keyrings has nothing to leak.
        if e.raw_os_error() != Some(libc::ENOSYS) {
            return Err(format!("joining a new session keyring: {e}"));
        }
    }
    Ok(())
}

pub fn apply_rlimits(process: &Process) -> Result<()> {
    for r in process.rlimits().as_deref().unwrap_or_default() {
        let name = r.typ().to_string();
        let resource = rlimit_resource(&name).ok_or_else(|| format!("unknown rlimit {name}"))?;
        let lim = libc::rlimit {
            rlim_cur: r.soft(),
            rlim_max: r.hard(),
        };
        // SAFETY: setrlimit reads one rlimit struct.
        if unsafe { libc::setrlimit(resource, &lim) } != 0 {
            return Err(format!(
                "setrlimit {name}: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

fn rlimit_resource(name: &str) -> Option<libc::__rlimit_resource_t> {
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

fn to_caps(set: &Option<Capabilities>) -> Result<CapsHashSet> {
    let supported = caps::runtime::thread_all_supported();
    let mut out = CapsHashSet::new();
    for c in set.iter().flatten() {
        let name = c.to_string();
        let name = if name.starts_with("CAP_") {
            name
        } else {
            format!("CAP_{name}")
        };
        let cap = Cap::from_str(&name).map_err(|_| format!("unknown capability {name}"))?;
        if supported.contains(&cap) {
            out.insert(cap);
        }
    }
    Ok(out)
}

/// Switches to the configured user and capability sets. Afterwards the process can no longer
/// regain anything it dropped.
pub fn become_user(process: &Process) -> Result<()> {
    let user = process.user();
    let wanted = process.capabilities().clone().unwrap_or_default();
    let bounding = to_caps(wanted.bounding())?;
    let effective = to_caps(wanted.effective())?;
    let permitted = to_caps(wanted.permitted())?;
    let inheritable = to_caps(wanted.inheritable())?;
    let ambient = to_caps(wanted.ambient())?;

    for cap in caps::runtime::thread_all_supported() {
        if !bounding.contains(&cap) {
            caps::drop(None, CapSet::Bounding, cap)
                .map_err(|e| format!("dropping {cap} from the bounding set: {e}"))?;
        }
    }
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) } != 0 {
        return Err(format!(
            "PR_SET_KEEPCAPS: {}",
            std::io::Error::last_os_error()
        ));
    }
    let groups: Vec<nix::unistd::Gid> = user
        .additional_gids()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|g| nix::unistd::Gid::from_raw(*g))
        .collect();
    nix::unistd::setgroups(&groups).map_err(|e| format!("setgroups {groups:?}: {e}"))?;
    let gid = nix::unistd::Gid::from_raw(user.gid());
    nix::unistd::setresgid(gid, gid, gid).map_err(|e| format!("setgid {gid}: {e}"))?;
    let uid = nix::unistd::Uid::from_raw(user.uid());
    nix::unistd::setresuid(uid, uid, uid).map_err(|e| format!("setuid {uid}: {e}"))?;
    // SAFETY: as above.
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) };

    // Effective first (it must stay within the permitted set at every step), then the rest.
    caps::set(
        None,
        CapSet::Effective,
        &effective.intersection(&permitted).copied().collect(),
    )
    .map_err(|e| format!("setting effective capabilities: {e}"))?;
    caps::set(None, CapSet::Permitted, &permitted)
        .map_err(|e| format!("setting permitted capabilities: {e}"))?;
    caps::set(None, CapSet::Effective, &effective)
        .map_err(|e| format!("setting effective capabilities: {e}"))?;
    caps::set(None, CapSet::Inheritable, &inheritable)
        .map_err(|e| format!("setting inheritable capabilities: {e}"))?;
    caps::clear(None, CapSet::Ambient)
        .map_err(|e| format!("clearing ambient capabilities: {e}"))?;
    for cap in ambient {
        caps::raise(None, CapSet::Ambient, cap)
            .map_err(|e| format!("raising ambient {cap}: {e}"))?;
    }
    if process.no_new_privileges().unwrap_or(false) {
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return Err(format!(
                "PR_SET_NO_NEW_PRIVS: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}
