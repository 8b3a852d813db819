//! Who the workload is: rlimits, user and groups, capabilities, no_new_privs.
//! Order matters: rlimits while still root (raising a hard limit needs CAP_SYS_RESOURCE), the
//! bounding set while CAP_SETPCAP is held, then uid/gid with PR_SET_KEEPCAPS so the permitted
//! set survives, then the configured effective/permitted/inheritable/ambient sets.

use crate::plan::{Plan, Rlimit};
use caps::{CapSet, CapsHashSet};

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

pub fn apply_rlimits(rlimits: &[Rlimit]) -> Result<()> {
    for r in rlimits {
        let lim = libc::rlimit {
            rlim_cur: r.soft,
            rlim_max: r.hard,
        };
        // SAFETY: setrlimit reads one rlimit struct.
        if unsafe { libc::setrlimit(r.resource as libc::__rlimit_resource_t, &lim) } != 0 {
            return Err(format!(
                "setrlimit {}: {}",
                r.name,
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

/// The capabilities of `mask` among `supported` (those this kernel knows).
fn to_caps(supported: &CapsHashSet, mask: u64) -> CapsHashSet {
    supported
        .iter()
        .filter(|c| mask & (1u64 << c.index()) != 0)
        .copied()
        .collect()
}

/// Switches to the configured user and capability sets. Afterwards the process can no longer
/// regain anything it dropped.
pub fn become_user(plan: &Plan) -> Result<()> {
    let wanted = &plan.capabilities;
    // Asked of the kernel once (one prctl per capability).
    let supported = caps::runtime::thread_all_supported();
    let bounding = to_caps(&supported, wanted.bounding);
    let effective = to_caps(&supported, wanted.effective);
    let permitted = to_caps(&supported, wanted.permitted);
    let inheritable = to_caps(&supported, wanted.inheritable);
    let ambient = to_caps(&supported, wanted.ambient);

    for &cap in &supported {
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
    let groups: Vec<nix::unistd::Gid> = plan
        .groups
        .iter()
        .map(|g| nix::unistd::Gid::from_raw(*g))
        .collect();
    nix::unistd::setgroups(&groups).map_err(|e| format!("setgroups {groups:?}: {e}"))?;
    let gid = nix::unistd::Gid::from_raw(plan.gid);
    nix::unistd::setresgid(gid, gid, gid).map_err(|e| format!("setgid {gid}: {e}"))?;
    let uid = nix::unistd::Uid::from_raw(plan.uid);
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
    if plan.no_new_privileges {
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
