//! `isola run --explain`, at either level: each step says what it does as it does it, in plain
//! words with the real values. One switch and one way out for both levels: lines go as
//! `explain: ...` to this process's stderr — the container init's reach isola's through its
//! relay — or, in the VMM, to the pipe `send_to` names (its report pipe, which isola relays to
//! its own stderr: the jailed VMM has no stderr of its own).
//! Off, each step costs one relaxed load of a flag and builds no text (the line is a closure
//! called only when on).

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

static ON: AtomicBool = AtomicBool::new(false);
/// Where lines go: stderr unless `send_to` said otherwise.
static SINK: AtomicI32 = AtomicI32::new(2);

/// What every line starts with (isola's relay of the VMM's pipe picks them out by it).
pub const PREFIX: &str = "explain: ";

/// From here on, this process and the processes it clones explain.
pub fn enable() {
    ON.store(true, Ordering::Relaxed);
}

/// Whether explaining (for a step whose narration needs more than a line, such as a count).
#[inline]
pub fn is_on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// From here on, lines go to `fd` instead of stderr.
pub fn send_to(fd: i32) {
    SINK.store(fd, Ordering::Relaxed);
}

/// Says `line()` if explaining. One write(2) of a line shorter than a pipe's atomic size
/// (PIPE_BUF, 4 KiB) is never interleaved with another thread's.
#[inline]
pub fn say(line: impl FnOnce() -> String) {
    if is_on() {
        let text = format!("{PREFIX}{}\n", line());
        // SAFETY: write(2) of a live buffer (no lock taken: the container init is a clone).
        unsafe {
            libc::write(
                SINK.load(Ordering::Relaxed),
                text.as_ptr().cast(),
                text.len(),
            )
        };
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
    let mut names: Vec<String> = caps::all()
        .into_iter()
        .filter(|c| mask & (1u64 << c.index()) != 0)
        .map(|c| c.to_string())
        .collect();
    names.sort();
    format!("{} ({})", names.len(), names.join(" "))
}
