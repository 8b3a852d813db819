//! The container's init: the code that runs in the cloned child, in its new namespaces, between
//! clone and execve. It is PID 1 of its PID namespace and becomes the workload itself.
//!
//! Steps, each visible in the order they run: wait until the parent has put us in our cgroups,
//! enter a new cgroup namespace, build the rootfs and pivot into it, console, hostname,
//! loopback, stdio, rlimits, cwd, user and capabilities, tell the parent we are ready, wait for
//! start, exec.

use crate::cgroups::Hierarchies;
use crate::channel::{Channel, Message};
use crate::{devices, network, rootfs, seccomp};
use isola_process::{exec, identity, Plan};
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;

/// Everything the init needs, prepared by the parent before clone.
pub struct InitArgs<'a> {
    pub spec: &'a Spec,
    /// The spec's process, resolved by the parent (isola-process, as the guest init gets it).
    pub plan: &'a Plan,
    pub bundle: &'a Path,
    pub hier: &'a Hierarchies,
    pub channel: &'a Channel,
    /// Become fds 0, 1 and 2 when there is no console: the relay's pipes (stdin: /dev/null
    /// without `-i`). `None`: the init keeps the ones it inherited (a runtime's `create`).
    pub stdio: Option<[RawFd; 3]>,
    /// What releases the workload once it is ready.
    pub gate: StartGate,
    /// `linux.seccomp`, compiled by the parent before clone.
    pub seccomp: Option<&'a seccomp::Filter>,
    /// The v1 cgroups the init moves itself into (see `cgroups::Placement`).
    pub placement: &'a crate::cgroups::Placement,
}

/// How the init learns that the workload may start.
#[derive(Clone, Copy)]
pub enum StartGate {
    /// A `Start` message on the channel from the isola that stays as the container's monitor;
    /// the init dies with it.
    Channel,
    /// An OCI runtime's `start`, from another process: the init reads the exec FIFO (an
    /// `O_PATH` descriptor to it, made before the pivot hid the host's path) until `start`
    /// writes a byte into it. The creator exits meanwhile, so the init does not die with
    /// it; it keeps `preserve_fds` descriptors above stderr open for the workload.
    Fifo { fd: RawFd, preserve_fds: u32 },
}

struct Failure {
    code: i32,
    message: String,
}

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure { code: 125, message }
    }
}

/// Whether the bundle asks for a new namespace of type `t`.
pub(crate) fn has_ns(spec: &Spec, t: LinuxNamespaceType) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| ns.iter().any(|n| n.typ() == t))
}

/// Runs the init; never returns.
pub fn init_main(args: &InitArgs) -> ! {
    let code = match run(args) {
        Ok(()) => 0, // parent went away before start: nothing to run
        Err(f) => {
            let told = args.channel.send(&Message::Failed {
                code: f.code,
                message: f.message.clone(),
            });
            if told.is_err() {
                // A runtime's `start` came from another process, which is gone: the workload's
                // stderr is the only one left to tell.
                let line = format!("isola: {}\n", f.message);
                // SAFETY: write(2) of a live buffer to fd 2.
                unsafe { libc::write(2, line.as_ptr().cast(), line.len()) };
            }
            f.code
        }
    };
    // SAFETY: _exit ends the child without running the parent's atexit handlers or destructors.
    unsafe { libc::_exit(code) }
}

fn run(a: &InitArgs) -> Result<(), Failure> {
    let (spec, plan) = (a.spec, a.plan);
    match a.channel.recv().map_err(|e| format!("channel: {e}"))? {
        Some((Message::Joined, _)) => {}
        None => return Ok(()),
        Some((other, _)) => return Err(format!("unexpected message {other:?}").into()),
    }
    // Before anything else: what it does from here on is charged to, and bounded by, them.
    a.placement
        .join_v1()
        .map_err(|e| format!("joining the container's cgroups: {e}"))?;
    if has_ns(spec, LinuxNamespaceType::Cgroup) {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP)
            .map_err(|e| format!("entering a new cgroup namespace: {e}"))?;
    }
    rootfs::clear_umask();
    rootfs::enter_rootfs(spec, a.bundle, a.hier)?;
    let console = if plan.terminal {
        let (master, slave) = devices::open_console()?;
        a.channel
            .send_with_fd(&Message::Console, Some(master.as_raw_fd()))
            .map_err(|e| format!("sending the console: {e}"))?;
        Some(slave)
    } else {
        None
    };
    rootfs::finish_rootfs(spec)?;
    if has_ns(spec, LinuxNamespaceType::Uts) {
        if let Some(h) = spec.hostname() {
            nix::unistd::sethostname(h).map_err(|e| format!("sethostname {h:?}: {e}"))?;
        }
    }
    if has_ns(spec, LinuxNamespaceType::Network) {
        network::loopback_up()?;
    }

    nix::unistd::setsid().map_err(|e| format!("setsid: {e}"))?;
    if let Some(slave) = &console {
        // SAFETY: TIOCSCTTY with arg 0 on the pty slave we opened.
        if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) } < 0 {
            return Err(format!("TIOCSCTTY: {}", std::io::Error::last_os_error()).into());
        }
        for target in 0..3 {
            nix::unistd::dup2(slave.as_raw_fd(), target)
                .map_err(|e| format!("dup2 console: {e}"))?;
        }
    } else if let Some(fds) = a.stdio {
        for (target, fd) in fds.into_iter().enumerate() {
            nix::unistd::dup2(fd, target as RawFd).map_err(|e| format!("dup2 stdio: {e}"))?;
        }
    }

    identity::join_new_session_keyring()?;
    identity::apply_rlimits(&plan.rlimits)?;
    let cwd = &plan.cwd;
    std::fs::create_dir_all(cwd).map_err(|e| format!("creating cwd {}: {e}", cwd.display()))?;
    nix::unistd::chdir(cwd).map_err(|e| format!("chdir {}: {e}", cwd.display()))?;
    let no_new_privs = plan.no_new_privileges;
    if !no_new_privs {
        // Without no_new_privs only CAP_SYS_ADMIN may install a filter: do it while root still
        // has it (the few calls left before exec must then pass the profile, as with runc).
        if let Some(f) = a.seccomp {
            f.install()?;
        }
    }
    isola_process::explain::say(|| {
        format!(
            "become uid {} gid {} (groups {:?}); capabilities kept: {}; no_new_privs {}",
            plan.uid,
            plan.gid,
            plan.groups,
            isola_process::explain::capabilities(plan.capabilities.effective),
            plan.no_new_privileges
        )
    });
    identity::become_user(plan)?;
    // The user may not be allowed into a directory root could create: docker reports that too.
    nix::unistd::chdir(cwd)
        .map_err(|e| format!("chdir {} as the workload's user: {e}", cwd.display()))?;
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(plan.umask));

    // The command is found now, so a missing one fails `create` (with 127/126), as runc does.
    let (args, env) = (&plan.args, &plan.env);
    let cmd = args.first().ok_or("no command to run".to_string())?;
    let path = exec::resolve(cmd, env).map_err(|f| Failure {
        code: f.code,
        message: f.message,
    })?;
    match a.gate {
        StartGate::Channel => {
            // Die with the parent from here on. Set after setuid (which clears it).
            // SAFETY: prctl with integer arguments only.
            unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
            close_fds_from(3);
            a.channel
                .send(&Message::Ready)
                .map_err(|e| format!("channel: {e}"))?;
            match a.channel.recv().map_err(|e| format!("channel: {e}"))? {
                Some((Message::Start, _)) => {}
                None => return Ok(()),
                Some((other, _)) => return Err(format!("unexpected message {other:?}").into()),
            }
        }
        StartGate::Fifo { fd, preserve_fds } => {
            close_fds_from(3 + preserve_fds);
            a.channel
                .send(&Message::Ready)
                .map_err(|e| format!("channel: {e}"))?;
            wait_for_start(fd)?;
        }
    }

    reset_signals();
    isola_process::explain::say(|| match a.seccomp {
        Some(f) => format!(
            "seccomp filter: {} BPF instructions, installed {}",
            f.len(),
            if no_new_privs {
                "now, the last step before exec"
            } else {
                "before the user change (no no_new_privs)"
            }
        ),
        None => "no seccomp filter".into(),
    });
    isola_process::explain::say(|| format!("execve {} {:?}", path.display(), args));
    if no_new_privs {
        // The last step before exec: from here every call of the workload meets the filter.
        if let Some(f) = a.seccomp {
            f.install()?;
        }
    }
    let f = exec::exec(&path, args, env);
    Err(Failure {
        code: f.code,
        message: f.message,
    })
}

/// Blocks until a runtime's `start` writes its byte into the exec FIFO. The FIFO is reached
/// through /proc/self/fd: its host path is outside our root now.
fn wait_for_start(fifo: RawFd) -> Result<(), Failure> {
    let path = format!("/proc/self/fd/{fifo}");
    let f = std::fs::File::open(&path).map_err(|e| format!("opening the exec FIFO: {e}"))?;
    let mut byte = [0u8; 1];
    std::io::Read::read_exact(&mut &f, &mut byte).map_err(|e| format!("the exec FIFO: {e}"))?;
    // SAFETY: closing the O_PATH descriptor the parent opened for us; nothing else uses it.
    unsafe { libc::close(fifo) };
    Ok(())
}

/// Marks every descriptor from `first` on close-on-exec, so nothing of isola's leaks into the
/// workload (the channel already is).
pub(crate) fn close_fds_from(first: u32) {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets flags; no descriptor is closed now.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
}

/// Default dispositions and an empty mask, as a fresh process would have. isola blocks the
/// signals it forwards and Rust ignores SIGPIPE; neither may reach the workload.
pub(crate) fn reset_signals() {
    for sig in 1..32 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: setting the default disposition has no handler to be unsafe about.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    // SAFETY: sigset is initialised by sigemptyset before use.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}
