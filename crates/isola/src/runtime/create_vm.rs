//! `create` of a VM-isolated bundle: the bundle's rootfs becomes the container's own root disk,
//! and a monitor process (isola's host half of the VM: it holds the caller's stdio and
//! signals, and relays them to the jailed VMM, its child) boots the VM until the guest says the
//! workload is set up. `create` then ends; the monitor stays, reparented to the caller's
//! subreaper (conmon, containerd's shim), and the pid file names it: its exit status is the
//! workload's, and the signals it gets go to the workload. `start` writes into the exec FIFO
//! the monitor watches, which sends the guest `Start`.

use super::{Failure, Result, Runtime};
use crate::commands::run_vm::{self, StartGate, VmJob};
use isola_container::detached::{exec_fifo, Detached};
use isola_container::state::{self, State};
use oci_spec::runtime::Spec;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::Path;

/// The container's root disk, in its state directory (removed with it).
fn disk_path(dir: &Path) -> std::path::PathBuf {
    dir.join("root.ext4")
}

/// Returns the monitor's pid once the guest is set up and waits for `start`.
pub fn create_vm(
    rt: &Runtime,
    id: &str,
    bundle: &Path,
    spec: Spec,
    console_socket: Option<&Path>,
) -> Result<i32> {
    run_vm::preflight(&rt.paths).map_err(|e| Failure(format!("{e:#}")))?;
    let dir = rt.root.join(id);
    match std::fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(Failure(format!("container with id exists: {id}")))
        }
        Err(e) => return Err(Failure(format!("{}: {e}", dir.display()))),
    }
    let made = create_in(rt, id, bundle, spec, &dir, console_socket);
    if made.is_err() {
        // What a half-made VM left: its monitor, the VMM's cgroup, the state directory.
        if let Ok(c) = Detached::load(&rt.root, id) {
            let _ = c.delete(true);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    made
}

fn create_in(
    rt: &Runtime,
    id: &str,
    bundle: &Path,
    spec: Spec,
    dir: &Path,
    console_socket: Option<&Path>,
) -> Result<i32> {
    let terminal = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    let rootfs = state::rootfs_of(&spec, bundle)
        .ok_or_else(|| Failure(format!("{}: no root", bundle.join("config.json").display())))?;
    let cgroups_path = isola_container::cgroups::container_path(&spec, id);
    let mut st = State::new(&spec, id, bundle, cgroups_path.clone(), "vm");
    st.save(dir)?;
    let disk = disk_path(dir);
    crate::vm_disk::build(&rootfs, &disk).map_err(|e| {
        Failure(format!(
            "the VM's root disk from {}: {e:#}",
            rootfs.display()
        ))
    })?;
    let fifo = exec_fifo(dir);
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .map_err(|e| Failure(format!("{}: {e}", fifo.display())))?;
    // Ours before the monitor exists: `start` finds a reader from the moment create returns.
    let start: OwnedFd = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&fifo)
            .map_err(|e| Failure(format!("{}: {e}", fifo.display())))?
            .into()
    };
    // With a console socket, the workload's terminal is a pty here whose master goes to the
    // caller; the monitor relays its slave to the guest's pty (keys raw, window sizes as
    // `Resize`, as `isola run -t` does with its own terminal).
    let pty = console_socket
        .map(super::host_pty::for_console_socket)
        .transpose()?;
    let exec_sock = super::exec_hub::socket_path(dir);
    let listener = std::os::unix::net::UnixListener::bind(&exec_sock)
        .map_err(|e| Failure(format!("{}: {e}", exec_sock.display())))?;
    let (ready_r, ready_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| Failure(format!("pipe: {e}")))?;
    // SAFETY: fork(2) of this single-threaded process (the runtime command line starts no
    // threads); the child runs `monitor` and exits, never returning here.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(Failure(format!(
            "fork: {}",
            std::io::Error::last_os_error()
        )));
    }
    if pid == 0 {
        drop(ready_r);
        // Its own session: the caller's terminal signals are the caller's to forward.
        let _ = nix::unistd::setsid();
        if let Some(slave) = &pty {
            if let Err(e) = super::host_pty::take(slave) {
                let _ = std::fs::File::from(ready_w).write_all(e.as_bytes());
                // SAFETY: _exit ends the monitor without running the parent's destructors.
                unsafe { libc::_exit(125) }
            }
        }
        drop(pty);
        let hub = super::exec_hub::ExecHub::new(listener);
        let code = monitor(rt, spec, disk, cgroups_path, start, ready_w, terminal, hub);
        // SAFETY: _exit ends the monitor without running the parent's destructors twice.
        unsafe { libc::_exit(code) }
    }
    drop((ready_w, start, pty, listener));
    st.pid = pid;
    st.pid_start_time = state::start_time(pid).unwrap_or(0);
    st.save(dir)?;
    let mut said = String::new();
    let _ = std::fs::File::from(ready_r).read_to_string(&mut said);
    if said != "ok" {
        let why = if said.is_empty() {
            "the VM's monitor ended before the guest was set up".to_string()
        } else {
            said
        };
        return Err(Failure(why));
    }
    st.status = "created".into();
    st.save(dir)?;
    Ok(pid)
}

/// The monitor: boots the VM with the caller's stdio, tells `create` (through `ready`) once the
/// guest is set up or why it could not be, relays until the VM ends. Returns the exit status.
#[allow(clippy::too_many_arguments)]
fn monitor(
    rt: &Runtime,
    spec: Spec,
    disk: std::path::PathBuf,
    cgroup_path: String,
    start: OwnedFd,
    ready: OwnedFd,
    terminal: bool,
    hub: super::exec_hub::SharedHub,
) -> i32 {
    let ready = std::sync::Arc::new(std::sync::Mutex::new(Some(std::fs::File::from(ready))));
    let tell = ready.clone();
    let created = Box::new(move || {
        if let Some(mut f) = tell.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = f.write_all(b"ok");
        }
    });
    let result = run_vm::run_job(
        &rt.paths,
        VmJob {
            spec,
            disk,
            disk_is_cache: false,
            cgroup_path,
            stdin: true,
            tty: terminal,
            timeout: None,
            debug: false,
            timings: false,
            gate: Some(StartGate { start, created }),
            exec_hub: Some(hub),
        },
    );
    match result {
        Ok(code) => code,
        Err(e) => {
            let (code, msg) = match e.downcast_ref::<crate::Exit>() {
                Some(crate::Exit(code, msg)) => (*code, msg.clone()),
                None => (125, format!("{e:#}")),
            };
            match ready.lock().unwrap_or_else(|p| p.into_inner()).take() {
                // Before the guest was set up: `create` reports it.
                Some(mut f) => {
                    let _ = f.write_all(msg.as_bytes());
                }
                None => eprintln!("isola: {msg}"),
            }
            code
        }
    }
}
