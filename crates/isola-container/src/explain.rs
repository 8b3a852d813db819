//! `isola run --explain`: the container level says what it does as it does it, in plain words
//! with the real values — the clone flags and namespaces, every cgroup file written, every
//! mount, pivot_root, the capabilities kept, the seccomp filter, the exec. Lines go to the
//! process's stderr as `explain: ...` (the init's reach isola's stderr through its relay).
//! Off, each step costs one relaxed load of a flag and builds no text (the line is a closure
//! called only when on).

use std::sync::atomic::{AtomicBool, Ordering};

static ON: AtomicBool = AtomicBool::new(false);

/// From here on, this process and the inits it clones explain.
pub fn enable() {
    ON.store(true, Ordering::Relaxed);
}

/// Says `line()` if explaining.
#[inline]
pub fn say(line: impl FnOnce() -> String) {
    if ON.load(Ordering::Relaxed) {
        let text = format!("explain: {}\n", line());
        // SAFETY: write(2) of a live buffer to stderr (no lock taken: the init is a clone).
        unsafe { libc::write(2, text.as_ptr().cast(), text.len()) };
    }
}

/// The namespaces a clone(2) flag set makes, in words.
pub fn namespaces(flags: libc::c_int) -> String {
    [
        (libc::CLONE_NEWNS, "mount (CLONE_NEWNS)"),
        (libc::CLONE_NEWUTS, "hostname (CLONE_NEWUTS)"),
        (libc::CLONE_NEWIPC, "IPC (CLONE_NEWIPC)"),
        (libc::CLONE_NEWPID, "PID (CLONE_NEWPID)"),
        (libc::CLONE_NEWNET, "network (CLONE_NEWNET)"),
        (libc::CLONE_NEWCGROUP, "cgroup (CLONE_NEWCGROUP)"),
        (libc::CLONE_NEWUSER, "user (CLONE_NEWUSER)"),
    ]
    .iter()
    .filter(|(f, _)| flags & f != 0)
    .map(|(_, n)| *n)
    .collect::<Vec<_>>()
    .join(", ")
}

/// Capability names in a mask (`CAP_CHOWN`, ...).
pub fn capabilities(mask: u64) -> String {
    let names: Vec<String> = caps::all()
        .into_iter()
        .filter(|c| mask & (1u64 << c.index()) != 0)
        .map(|c| c.to_string())
        .collect();
    let mut names = names;
    names.sort();
    format!("{} ({})", names.len(), names.join(" "))
}
