//! `exec`: another process in a running container. A child joins the init's namespaces (the
//! PID one through this process, so the child is born inside it) and its workload cgroup,
//! then becomes the given process the way the init became the workload: the same `Plan`, the
//! container's seccomp filter, a pty of the container's own devpts when it asks for one.

use crate::cgroups::{Cgroup, Hierarchies};
use crate::detached::{Detached, Status};
use crate::init::{close_fds_from, reset_signals};
use crate::{devices, monitor, ContainerError};
use isola_process::{exec, identity, Plan};
use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespaceType, Process};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

/// How to run the process.
pub struct ExecOptions {
    /// The runtime spec's process, complete (args, env, cwd, user, capabilities, ...).
    pub process: Process,
    /// Return once it runs (its parent becomes the caller's subreaper) instead of waiting.
    pub detach: bool,
    /// Where its terminal's master end goes, when `process.terminal`.
    pub console_socket: Option<UnixStream>,
    /// Descriptors above stderr it keeps.
    pub preserve_fds: u32,
}

/// The namespaces an exec'd process joins, in the order it joins them (mount last: the paths
/// it needs before are the host's).
const JOINED: &[(LinuxNamespaceType, &str, CloneFlags)] = &[
    (LinuxNamespaceType::Ipc, "ipc", CloneFlags::CLONE_NEWIPC),
    (LinuxNamespaceType::Uts, "uts", CloneFlags::CLONE_NEWUTS),
    (LinuxNamespaceType::Network, "net", CloneFlags::CLONE_NEWNET),
    (
        LinuxNamespaceType::Cgroup,
        "cgroup",
        CloneFlags::CLONE_NEWCGROUP,
    ),
    (LinuxNamespaceType::Mount, "mnt", CloneFlags::CLONE_NEWNS),
];

fn io(what: &str) -> impl Fn(std::io::Error) -> ContainerError + '_ {
    move |e| ContainerError::Io(format!("{what}: {e}"))
}

impl Detached {
    /// Runs `o.process` in the container. `started` gets its host pid once it has exec'd.
    /// Returns its exit status, or `None` when detached.
    pub fn exec(
        &self,
        o: ExecOptions,
        started: impl FnOnce(i32) -> Result<(), ContainerError>,
    ) -> Result<Option<i32>, ContainerError> {
        match self.status() {
            Status::Running | Status::Created => {}
            Status::Paused => {
                return Err(ContainerError::WrongState(
                    "cannot exec in a paused container".into(),
                ))
            }
            Status::Stopped | Status::Creating => {
                return Err(ContainerError::WrongState(
                    "cannot exec in a stopped container".into(),
                ))
            }
        }
        let (mut spec, _) = crate::load_spec(&self.state.bundle)?;
        spec.set_process(Some(o.process));
        let plan = Plan::from_spec(&spec).map_err(ContainerError::Config)?;
        if plan.terminal && o.console_socket.is_none() {
            return Err(ContainerError::Config(
                "exec with a terminal needs --console-socket".into(),
            ));
        }
        let seccomp = crate::seccomp::compile_spec(&spec).map_err(ContainerError::Config)?;
        let wanted = |t: LinuxNamespaceType| crate::init::has_ns(&spec, t);
        let ns_file = |name: &str| {
            let path = format!("/proc/{}/ns/{name}", self.state.pid);
            std::fs::File::open(&path)
                .map(OwnedFd::from)
                .map_err(io(&path))
        };
        let mut joined = Vec::new();
        for (t, name, flag) in JOINED {
            if wanted(*t) {
                joined.push((ns_file(name)?, *flag));
            }
        }
        let cgroup = Cgroup::existing(&Hierarchies::detect()?, &self.state.cgroups_path);
        if wanted(LinuxNamespaceType::Pid) {
            // Our children are born in the container's PID namespace; we stay where we are.
            nix::sched::setns(ns_file("pid")?, CloneFlags::CLONE_NEWPID)
                .map_err(|e| ContainerError::Io(format!("joining the PID namespace: {e}")))?;
        }
        if !o.detach {
            monitor::block_signals().map_err(io("blocking signals"))?;
        }
        // Waited for here without a terminal: its stdio are pipes this process relays, never
        // this process's own descriptors (see stdio_relay: a terminal handed in could be
        // pushed keystrokes with TIOCSTI). Detached, the caller's (a shim's FIFOs) are its.
        let relayed = if !o.detach && !plan.terminal {
            Some(crate::stdio_relay::pipes(true).map_err(io("stdio pipes"))?)
        } else {
            None
        };
        let (go_r, go_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| ContainerError::Io(format!("pipe: {e}")))?;
        let (err_r, err_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| ContainerError::Io(format!("pipe: {e}")))?;
        // SAFETY: fork(2) semantics (no CLONE_VM) in a single-threaded process; the child
        // runs only `child_main`, which ends in execve or _exit.
        let pid = unsafe {
            libc::syscall(
                libc::SYS_clone,
                libc::SIGCHLD as libc::c_ulong,
                0usize,
                0usize,
                0usize,
                0usize,
            )
        };
        if pid < 0 {
            return Err(io("clone")(std::io::Error::last_os_error()));
        }
        if pid == 0 {
            drop((go_w, err_r));
            let failure = child_main(
                go_r,
                &joined,
                &plan,
                seccomp.as_ref(),
                o.console_socket.as_ref(),
                relayed.as_ref().map(|(_, w)| w),
                o.preserve_fds,
            );
            let (code, message) = failure;
            let _ =
                (&std::fs::File::from(err_w)).write_all(format!("{code}\n{message}").as_bytes());
            // SAFETY: _exit ends the child without running the parent's destructors.
            unsafe { libc::_exit(code) }
        }
        let pid = pid as i32;
        drop((go_r, err_w, joined));
        let relay = relayed.map(|(relay, workload_ends)| {
            drop(workload_ends);
            relay
        });
        let placed = cgroup.add_pid(pid);
        if let Err(e) = placed {
            // SAFETY: kill(2) of our own child, not yet reaped.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            monitor::wait_quietly(pid);
            return Err(e.into());
        }
        let _ = (&std::fs::File::from(go_w)).write_all(b"g");
        let mut report = String::new();
        let _ = std::fs::File::from(err_r).read_to_string(&mut report);
        if !report.is_empty() {
            monitor::wait_quietly(pid);
            let (code, message) = report.split_once('\n').unwrap_or(("125", &report));
            return Err(ContainerError::Setup {
                code: code.parse().unwrap_or(125),
                message: message.to_string(),
            });
        }
        started(pid)?;
        if o.detach {
            return Ok(None);
        }
        let code = monitor::supervise(pid, relay.map(monitor::Relay::Pipes))
            .map_err(io("waiting for the process"))?;
        Ok(Some(code))
    }
}

/// The child: joins, becomes the process, execs. Returns only what went wrong.
fn child_main(
    go: OwnedFd,
    joined: &[(OwnedFd, CloneFlags)],
    plan: &Plan,
    seccomp: Option<&crate::seccomp::Filter>,
    console_socket: Option<&UnixStream>,
    stdio: Option<&crate::stdio_relay::WorkloadStdio>,
    preserve_fds: u32,
) -> (i32, String) {
    let fail = |m: String| (125, m);
    // Wait until the parent has put us in the container's cgroup.
    let mut byte = [0u8; 1];
    if std::fs::File::from(go).read_exact(&mut byte).is_err() {
        return fail("the parent went away".into());
    }
    for (fd, flag) in joined {
        if let Err(e) = nix::sched::setns(fd, *flag) {
            return fail(format!("joining the container's {flag:?} namespace: {e}"));
        }
    }
    if let Err(e) = nix::unistd::setsid() {
        return fail(format!("setsid: {e}"));
    }
    if let Some(io) = stdio {
        for (fd, target) in [(&io.stdin, 0), (&io.stdout, 1), (&io.stderr, 2)] {
            if let Err(e) = nix::unistd::dup2(fd.as_raw_fd(), target) {
                return fail(format!("stdio: {e}"));
            }
        }
    }
    if plan.terminal {
        let Some(socket) = console_socket else {
            return fail("no console socket".into());
        };
        if let Err(m) = take_pty(socket) {
            return fail(m);
        }
    }
    let steps = || -> Result<std::path::PathBuf, (i32, String)> {
        identity::apply_rlimits(&plan.rlimits).map_err(fail)?;
        nix::unistd::chdir(&plan.cwd)
            .map_err(|e| fail(format!("chdir {}: {e}", plan.cwd.display())))?;
        if !plan.no_new_privileges {
            if let Some(f) = seccomp {
                f.install().map_err(fail)?;
            }
        }
        identity::become_user(plan).map_err(fail)?;
        // The user may not be allowed into a directory root could enter.
        nix::unistd::chdir(&plan.cwd).map_err(|e| {
            fail(format!(
                "chdir {} as the process's user: {e}",
                plan.cwd.display()
            ))
        })?;
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(plan.umask));
        let cmd = plan.args.first().ok_or(fail("no command to run".into()))?;
        exec::resolve(cmd, &plan.env).map_err(|f| (f.code, f.message))
    };
    let path = match steps() {
        Ok(p) => p,
        Err(f) => return f,
    };
    close_fds_from(3 + preserve_fds);
    reset_signals();
    if plan.no_new_privileges {
        if let Some(f) = seccomp {
            if let Err(m) = f.install() {
                return fail(m);
            }
        }
    }
    let f = exec::exec(&path, &plan.args, &plan.env);
    (f.code, f.message)
}

/// A pty from the container's devpts: the master goes to the console socket, the slave becomes
/// our controlling terminal and stdio.
fn take_pty(socket: &UnixStream) -> Result<(), String> {
    let (master, slave, _) = devices::open_pty()?;
    crate::console_socket::send(socket, &master)
        .map_err(|e| format!("sending the terminal to the console socket: {e}"))?;
    drop(master);
    // SAFETY: TIOCSCTTY with arg 0 on the pty slave we opened, in our new session.
    if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) } < 0 {
        return Err(format!("TIOCSCTTY: {}", std::io::Error::last_os_error()));
    }
    for target in 0..3 {
        nix::unistd::dup2(slave.as_raw_fd(), target).map_err(|e| format!("dup2 terminal: {e}"))?;
    }
    Ok(())
}
