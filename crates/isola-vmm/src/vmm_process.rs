//! The VMM as its own process, jailed. isola (the front end) clones a child into new mount,
//! PID, network, IPC and UTS namespaces; the child builds the VM, enters its jail (`jail/`) and
//! runs it; isola keeps the host's descriptors and relays (`host_relay.rs`). A guest that took
//! over the VMM would hold KVM descriptors, guest memory and four pipes, as a uid of its own
//! with no capabilities, in an empty root, under a seccomp allowlist.
//!
//! The pipes, front end ↔ VMM: control (frames for the guest), channel (what the guest sends),
//! console (the kernel log), report (how it ended, one `key value` line each, written last;
//! before them, with --explain, `explain: ...` lines as things happen, which isola passes on).

use crate::devices::serial::Sink;
use crate::host_relay::{self, FrontEnd, HostIo};
use crate::jail::Jail;
use crate::vm::{self, Machine, VmExit, VmIo, VmOutcome};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

/// The VMM's uid and gid are this plus the front end's pid: unprivileged, owning no host file,
/// and unique among running VMMs (each isola process runs one VM, and lives as long as it).
pub const JAIL_ID_BASE: u32 = 0x4000_0000;

/// Puts the VMM process (its host pid) in the cgroup that bounds it, before it allocates.
pub type Place<'a> = Box<dyn FnOnce(i32) -> Result<(), String> + 'a>;

pub struct JailConfig<'a> {
    /// Where the jail's empty root is mounted (inside the VMM's own mount namespace; an
    /// existing directory isola owns).
    pub dir: PathBuf,
    pub place: Place<'a>,
}

/// The first byte on the control pipe: the VMM may start.
const GO: u8 = b'!';

/// The VMM's exit status after a forbidden call.
const SECCOMP_EXIT: i32 = 159;

/// The report pipe, for the SIGSYS handler.
static REPORT_FD: AtomicI32 = AtomicI32::new(-1);

/// A call outside the thread's allowlist: report its number and end the VMM. Only
/// async-signal-safe calls (write, exit_group), both on every allowlist.
extern "C" fn on_sigsys(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo; for SIGSYS its union holds `_sigsys`
    // { void *_call_addr; int _syscall; unsigned _arch; } at offset 16, so the call number is
    // the i32 at byte 24.
    let nr = unsafe { *(info as *const u8).add(24).cast::<i32>() };
    let mut line = *b"seccomp          \n";
    let mut v = nr.unsigned_abs();
    let mut i = 16;
    loop {
        line[i] = b'0' + (v % 10) as u8;
        v /= 10;
        i -= 1;
        if v == 0 {
            break;
        }
    }
    // SAFETY: write from a stack buffer, then exit; nothing else is touched.
    unsafe {
        libc::write(
            REPORT_FD.load(Ordering::Relaxed),
            line.as_ptr().cast(),
            line.len(),
        );
        libc::syscall(libc::SYS_exit_group, SECCOMP_EXIT);
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two-element array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!("pipe: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: both descriptors are new and ours.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn write_all(fd: RawFd, mut b: &[u8]) {
    while !b.is_empty() {
        // SAFETY: write(2) from a live buffer to one of our pipes.
        let n = unsafe { libc::write(fd, b.as_ptr().cast(), b.len()) };
        if n <= 0 {
            return;
        }
        b = &b[n as usize..];
    }
}

/// Runs `machine` in a jailed VMM process; isola relays `host` meanwhile.
pub fn run(machine: Machine, mut host: HostIo, jail: JailConfig) -> Result<VmOutcome, String> {
    let started = Instant::now();
    let id = JAIL_ID_BASE + std::process::id();
    let place = jail.place;
    let jail = Jail::new(jail.dir, id)?;
    let (control_r, control_w) = pipe()?;
    let (channel_r, channel_w) = pipe()?;
    let (console_r, console_w) = pipe()?;
    let (report_r, report_w) = pipe()?;
    // Blocked before the clone: the VMM inherits the mask and leaves these signals to isola.
    let signals = host_relay::block_signals(&host.forward_signals)?;
    let flags = libc::CLONE_NEWNS
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS;
    // SAFETY: clone(2) without CLONE_VM behaves like fork(2): the child gets a copy of this
    // process, single-threaded here (isola's only threads, the unpacker's and pull's, are
    // scoped and joined before a VM starts), and runs only `vmm_main`, which ends in _exit and
    // never returns into the caller.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if pid < 0 {
        return Err(format!(
            "starting the VMM process (clone into new namespaces): {}",
            std::io::Error::last_os_error()
        ));
    }
    if pid == 0 {
        drop((control_w, channel_r, console_r, report_r, signals));
        vmm_main(
            machine,
            jail,
            started,
            [control_r, channel_w, console_w, report_w],
        );
    }
    drop((control_r, channel_w, console_w, report_w, machine));
    crate::explain::say(|| {
        format!(
            "the VMM: process {pid}, cloned into new {} namespaces; it builds the VM once it is \
             in the VM's cgroup, then jails itself",
            isola_process::explain::namespaces(flags)
        )
    });
    // The VMM waits for this byte: it starts nothing before it is in its cgroup.
    if let Err(e) = place(pid as i32) {
        // SAFETY: kill(2) of our own child, not yet reaped.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        reap(pid as libc::pid_t);
        return Err(e);
    }
    write_all(control_w.as_raw_fd(), &[GO]);
    let report = host_relay::relay(
        &mut host,
        &signals,
        FrontEnd {
            control: control_w,
            channel: channel_r,
            console: console_r,
            report: report_r,
        },
    );
    let (status, peak_rss) = reap(pid as libc::pid_t);
    let mut outcome = read_report(&report, started, status)?;
    outcome.vmm_peak_rss = peak_rss;
    Ok(outcome)
}

/// Waits for the VMM; its wait status and peak RSS in bytes.
fn reap(pid: libc::pid_t) -> (i32, u64) {
    let mut status = 0;
    // SAFETY: wait4 on our own child, writing into two live locals.
    unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        while libc::wait4(pid, &mut status, 0, &mut usage) < 0
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR)
        {}
        (status, usage.ru_maxrss as u64 * 1024)
    }
}

/// The VMM process: build the VM, enter the jail, run, report, exit.
fn vmm_main(machine: Machine, jail: Jail, started: Instant, fds: [OwnedFd; 4]) -> ! {
    let [control, channel, console, report] = fds.map(|f| f.into_raw_fd());
    REPORT_FD.store(report, Ordering::Relaxed);
    // With --explain, the VMM's lines go to isola on the report pipe (its stderr goes nowhere).
    isola_process::explain::send_to(report);
    let mut go = [0u8];
    // SAFETY: read of one byte into a live local.
    if unsafe { libc::read(control, go.as_mut_ptr().cast(), 1) } != 1 || go[0] != GO {
        // isola gave up on it (or is gone).
        // SAFETY: _exit ends this child without running the front end's exit handlers.
        unsafe { libc::_exit(1) }
    }
    // Nothing of isola's but these (and stdio, which the jail replaces with /dev/null).
    let mut keep = vec![control, channel, console, report];
    if let Some(disk) = &machine.root_disk {
        keep.push(disk.as_raw_fd());
    }
    if let Some(net) = &machine.net {
        keep.push(net.tap.as_raw_fd());
    }
    if let Some(fs) = &machine.fs {
        keep.push(fs.socket.as_raw_fd());
    }
    close_all_but(&mut keep);
    // SAFETY: a SIGSYS handler that only writes and exits (see on_sigsys).
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigsys as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGSYS, &sa, std::ptr::null_mut());
    }
    let io = VmIo {
        console: Sink::Fd(console),
        channel: Box::new(move |b: &[u8]| write_all(channel, b)),
        control,
    };
    let text = match vm::run(machine, io, &jail, started) {
        Ok(o) => {
            let exit = match o.exit {
                VmExit::Reset => "reset",
                VmExit::Shutdown => "shutdown",
                VmExit::Timeout => "timeout",
                VmExit::BootTimeout => "boot-timeout",
            };
            let mut t = format!(
                "exit {exit}\nentry {}\nexits {} {}\nresident {}\n",
                o.guest_entry.as_nanos(),
                o.exits.0,
                o.exits.1,
                o.guest_resident
            );
            for (phase, at) in o.marks {
                t.push_str(&format!("mark {phase} {}\n", at.as_nanos()));
            }
            t
        }
        Err(e) => format!("error {}\n", e.replace('\n', " ")),
    };
    write_all(report, text.as_bytes());
    // SAFETY: _exit ends the VMM without running isola's exit handlers (they are the front end's).
    unsafe { libc::_exit(0) }
}

/// Closes every descriptor above 2 not in `keep`.
fn close_all_but(keep: &mut [RawFd]) {
    keep.sort_unstable();
    let mut from = 3u32;
    for &fd in keep.iter() {
        let fd = fd as u32;
        if fd > from {
            // SAFETY: close_range closes descriptors only; the ones we keep are outside it.
            unsafe { libc::syscall(libc::SYS_close_range, from, fd - 1, 0) };
        }
        from = from.max(fd + 1);
    }
    // SAFETY: as above.
    unsafe { libc::syscall(libc::SYS_close_range, from, u32::MAX, 0) };
}

fn read_report(report: &[u8], started: Instant, status: i32) -> Result<VmOutcome, String> {
    let text = String::from_utf8_lossy(report);
    let ns = |v: &str| Duration::from_nanos(v.parse().unwrap_or(0));
    let mut outcome = VmOutcome {
        exit: VmExit::Shutdown,
        marks: Vec::new(),
        started,
        guest_resident: 0,
        guest_entry: Duration::ZERO,
        exits: (0, 0),
        vmm_peak_rss: 0,
    };
    let mut ended = false;
    for line in text.lines() {
        let (key, value) = line.split_once(' ').unwrap_or((line, ""));
        let mut words = value.split(' ');
        let mut next = || words.next().unwrap_or("");
        match key {
            "error" => return Err(value.to_string()),
            "seccomp" => {
                let value = value.trim();
                let name = value.parse().ok().and_then(isola_seccomp::syscall_name);
                return Err(format!(
                    "the VMM made a system call its seccomp filter forbids ({}, number {value}) and was stopped",
                    name.unwrap_or("unknown")
                ));
            }
            "exit" => {
                ended = true;
                outcome.exit = match value {
                    "reset" => VmExit::Reset,
                    "timeout" => VmExit::Timeout,
                    "boot-timeout" => VmExit::BootTimeout,
                    _ => VmExit::Shutdown,
                }
            }
            "entry" => outcome.guest_entry = ns(value),
            "exits" => outcome.exits = (next().parse().unwrap_or(0), next().parse().unwrap_or(0)),
            "resident" => outcome.guest_resident = value.parse().unwrap_or(0),
            "mark" => {
                let phase = next().parse().unwrap_or(0);
                outcome.marks.push((phase, ns(next())));
            }
            _ => {}
        }
    }
    if !ended {
        let how = if libc::WIFSIGNALED(status) {
            format!("killed by signal {}", libc::WTERMSIG(status))
        } else {
            format!("exit status {}", libc::WEXITSTATUS(status))
        };
        return Err(format!("the VMM process ended without a report ({how})"));
    }
    Ok(outcome)
}
