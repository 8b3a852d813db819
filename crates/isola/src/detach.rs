//! `isola run -d`: the run goes on in a process of its own — the workload's monitor, docker's
//! conmon — which is `isola run` itself, started again by the one the user ran, in a session
//! of its own, with stdin on /dev/null. The monitor keeps the workload's stdio (its stdout and
//! stderr become pipes into the log, `container_log`), signals, network and volumes exactly as
//! an attached run does, and records the exit status when the workload ends. The first isola
//! waits only until the workload has started: then it prints the container's ID and returns;
//! if the run fails before that, it prints the monitor's error and exits with its status.
//!
//! Between the two: descriptor 3 of the monitor (a pipe) carries `ID\n` once the workload
//! runs; its stderr, until then, is a pipe to the first isola too.

use anyhow::{Context, Result};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};

/// Set in the monitor's environment: the descriptor of its word to the first isola.
const FD_ENV: &str = "ISOLA_DETACHED_FD";
const WORD_FD: RawFd = 3;

/// The first isola's stderr, kept while the monitor may still fail before the workload runs.
static FIRST_STDERR: AtomicI32 = AtomicI32::new(-1);
/// The log writer's PID, for `finish` to wait for it.
static LOG_WRITER: AtomicI32 = AtomicI32::new(-1);

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe")
}

static MONITOR: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether this process is a detached run's monitor.
pub fn is_monitor() -> bool {
    MONITOR.load(Ordering::Relaxed)
}

/// What a monitor said to the isola that started it.
pub enum Outcome {
    /// The workload runs: its ID.
    Running(String),
    /// It failed before that, with this status (its error printed already).
    Failed(i32),
}

/// The first isola: starts the monitor (isola with `args`: `run -d ...` again, or
/// `start ID`) and waits for its word.
pub fn start(args: Vec<std::ffi::OsString>) -> Result<Outcome> {
    let (word_r, word_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let exe = std::env::current_exe().context("finding isola's own binary")?;
    let word = word_w.as_raw_fd();
    let mut cmd = std::process::Command::new(exe);
    cmd.args(args)
        .env(FD_ENV, WORD_FD.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::from(err_w));
    // SAFETY: between fork and exec: setsid, dup2 and fcntl, system calls only.
    unsafe {
        cmd.pre_exec(move || {
            let moved = if word == WORD_FD {
                // dup2 onto itself would leave close-on-exec set.
                libc::fcntl(WORD_FD, libc::F_SETFD, 0)
            } else {
                libc::dup2(word, WORD_FD)
            };
            if libc::setsid() < 0 || moved < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().context("starting the workload's monitor")?;
    drop(cmd); // our copies of the monitor's ends
    drop(word_w);
    let mut said = String::new();
    let _ = std::fs::File::from(word_r).read_to_string(&mut said);
    if let Some(id) = said.strip_suffix('\n').filter(|id| !id.is_empty()) {
        return Ok(Outcome::Running(id.to_string()));
    }
    // It failed before the workload ran: its error, its status.
    let mut err = Vec::new();
    let _ = std::fs::File::from(err_r).read_to_end(&mut err);
    let _ = std::io::stderr().write_all(&err);
    let status = child.wait().context("waiting for the monitor")?;
    Ok(Outcome::Failed(status.code().unwrap_or(125)))
}

/// First thing in every isola: if this is a monitor (started by `start`), its word
/// descriptor kept from whatever it starts, and the first isola's stderr kept aside for an
/// early error.
pub fn init() {
    if std::env::var_os(FD_ENV).is_none() {
        return;
    }
    MONITOR.store(true, Ordering::Relaxed);
    // SAFETY: fcntl and dup on descriptors of this process.
    unsafe {
        libc::fcntl(WORD_FD, libc::F_SETFD, libc::FD_CLOEXEC);
        FIRST_STDERR.store(libc::fcntl(2, libc::F_DUPFD_CLOEXEC, 3), Ordering::Relaxed);
    }
    std::env::remove_var(FD_ENV);
}

/// Once the container's directory exists: this process's stdout and stderr (and so the
/// workload's, which it relays) go into the log at `path`, written by a process of its own.
/// A process, not a thread: isola starts containers and VMs by forking, which must happen
/// with one thread only (a fork copies no other thread, and any lock one held stays held).
pub fn log_to(path: &Path) -> Result<()> {
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let path = path.to_path_buf();
    // SAFETY: fork(2) of this process, single-threaded here (the run has made no thread, and
    // pulls and unpacks join theirs); the child only writes the log and _exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error()).context("starting the log writer");
    }
    if pid == 0 {
        drop((out_w, err_w));
        // SAFETY: in the child: its stdio on /dev/null and every descriptor but the two
        // pipes' read ends (moved above 1000 first) closed — above all the first isola's
        // pipes, whose end of file it waits for.
        let (out, err) = unsafe {
            let out = libc::fcntl(out_r.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 1000);
            let err = libc::fcntl(err_r.as_raw_fd(), libc::F_DUPFD_CLOEXEC, out + 1);
            libc::syscall(libc::SYS_close_range, 3u32, 999u32, 0u32);
            libc::syscall(libc::SYS_close_range, (err + 1) as u32, u32::MAX, 0u32);
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
            for fd in 0..3 {
                libc::dup2(null, fd);
            }
            libc::close(null);
            std::mem::forget((out_r, err_r)); // closed above
            (OwnedFd::from_raw_fd(out), OwnedFd::from_raw_fd(err))
        };
        let _ = crate::container_log::write(&path, out, err);
        // SAFETY: ends the log writer without running the monitor's exit handlers.
        unsafe { libc::_exit(0) }
    }
    LOG_WRITER.store(pid, Ordering::Relaxed);
    // SAFETY: dup2 onto our own stdout and stderr; the pipes' write ends stay open through them.
    unsafe {
        libc::dup2(out_w.as_raw_fd(), 1);
        libc::dup2(err_w.as_raw_fd(), 2);
    }
    Ok(())
}

/// Whether the word was said: it is said once (a restarted workload runs again, and by then
/// descriptor 3 may be another's).
static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// `run -di`: the workload's stdin stays open (as docker keeps it for a later attach) — a
/// pipe nobody writes to, its write end held by this monitor, replaces /dev/null.
pub fn hold_stdin_open() -> Result<()> {
    let (r, w) = pipe()?;
    nix::unistd::dup2(r.as_raw_fd(), 0).context("stdin")?;
    std::mem::forget(w); // held until the monitor ends (close-on-exec: the workload has none)
    Ok(())
}

/// The workload runs: the first isola prints `id` and returns.
pub fn started(id: &str) {
    if SAID.swap(true, Ordering::Relaxed) {
        return;
    }
    // SAFETY: write to and close our word descriptor (still ours: closed only here, once),
    // and the kept stderr.
    unsafe {
        let word = format!("{id}\n");
        libc::write(WORD_FD, word.as_ptr().cast(), word.len());
        libc::close(WORD_FD);
        let first = FIRST_STDERR.swap(-1, Ordering::Relaxed);
        if first >= 0 {
            libc::close(first);
        }
    }
}

/// isola's own last words: to the first isola while it still waits, else into the log.
pub fn error(msg: &str) {
    let first = FIRST_STDERR.load(Ordering::Relaxed);
    let fd = if first >= 0 { first } else { 2 };
    let line = format!("isola: {msg}\n");
    // SAFETY: write from a live buffer to a descriptor of ours.
    unsafe { libc::write(fd, line.as_ptr().cast(), line.len()) };
}

/// Before the monitor exits: everything written reaches the log.
pub fn finish() {
    // SAFETY: /dev/null onto stdout and stderr closes the log pipes' last write ends.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if null >= 0 {
            libc::dup2(null, 1);
            libc::dup2(null, 2);
            libc::close(null);
        }
    }
    let pid = LOG_WRITER.swap(-1, Ordering::Relaxed);
    if pid > 0 {
        let mut status = 0;
        // SAFETY: waitpid of our own child, into a live local.
        unsafe { libc::waitpid(pid, &mut status, 0) };
    }
}
