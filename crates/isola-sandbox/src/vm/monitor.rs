//! `create` of a VM-isolated bundle: the bundle's rootfs becomes the container's own root disk,
//! and a monitor process (isola's host half of the VM: it holds the caller's stdio and
//! signals, and relays them to the jailed VMM, its child) boots the VM until the guest says the
//! workload is set up. `create` then ends; the monitor stays, reparented to the caller's
//! subreaper (conmon, containerd's shim), and the pid file names it: its exit status is the
//! workload's, and the signals it gets go to the workload. `start` writes into the exec FIFO
//! the monitor watches, which sends the guest `Start`.

use super::boot::{self, StartGate, VmJob};
use super::{exec_hub, VmConfig};
use crate::{CreateOptions, Endpoint, Error, Sandbox};
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

/// A VM whose monitor is a process of its own.
struct MonitoredVm(Detached);

impl Sandbox for MonitoredVm {
    fn pid(&self) -> i32 {
        self.0.state.pid
    }

    fn start(&mut self) -> Result<(), Error> {
        Ok(self.0.start()?)
    }

    /// The monitor is our child: waits for it, passing on the signals we get (it forwards them
    /// into the guest).
    fn wait(&mut self) -> Result<i32, Error> {
        let io = |e: std::io::Error| Error::Io(format!("waiting for the VM's monitor: {e}"));
        isola_container::monitor::block_signals().map_err(io)?;
        isola_container::monitor::forward_until_exit(self.0.state.pid).map_err(io)
    }

    fn delete(self: Box<Self>) -> Result<(), Error> {
        Ok(self.0.delete(true)?)
    }

    fn detach(self: Box<Self>) {}

    fn network_endpoint(&self) -> Endpoint {
        Endpoint::Tap
    }

    fn plug(&mut self, _nic: super::Nic) -> Result<(), Error> {
        Err(Error::Config(
            "a VM that outlives its creator cannot join an isola network yet (its guest is already booted)".into(),
        ))
    }
}

/// Returns once the guest is set up and waits for `start`.
pub fn create(o: &CreateOptions, spec: Spec) -> Result<Box<dyn Sandbox>, Error> {
    let dir = o.state_root.join(o.id);
    match std::fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(isola_container::ContainerError::Exists(o.id.to_string()).into())
        }
        Err(e) => return Err(Error::Io(format!("{}: {e}", dir.display()))),
    }
    let made = create_in(o, spec, &dir);
    if made.is_err() {
        // What a half-made VM left: its monitor, the VMM's cgroup, the state directory.
        if let Ok(c) = Detached::load(o.state_root, o.id) {
            let _ = c.delete(true);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(Box::new(MonitoredVm(made?)))
}

fn create_in(o: &CreateOptions, spec: Spec, dir: &Path) -> Result<Detached, Error> {
    let io = |what: &Path, e: std::io::Error| Error::Io(format!("{}: {e}", what.display()));
    let terminal = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    let cgroups_path = isola_container::cgroups::container_path(&spec, o.id);
    let mut st = State::new(&spec, o.id, o.bundle, cgroups_path.clone(), "vm");
    st.save(dir).map_err(|e| io(dir, e))?;
    let (disk, disk_is_cache) = match &o.vm.shared_disk {
        Some(shared) => (shared.clone(), true),
        None => {
            let rootfs = state::rootfs_of(&spec, o.bundle).ok_or_else(|| {
                Error::Config(format!(
                    "{}: no root",
                    o.bundle.join("config.json").display()
                ))
            })?;
            let disk = disk_path(dir);
            super::disk::build(&rootfs, &disk, &|_, _| {}).map_err(|e| {
                Error::Vm(format!("the VM's root disk from {}: {e}", rootfs.display()))
            })?;
            (disk, false)
        }
    };
    let fifo = exec_fifo(dir);
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .map_err(|e| io(&fifo, e.into()))?;
    // Ours before the monitor exists: `start` finds a reader from the moment create returns.
    let start: OwnedFd = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&fifo)
            .map_err(|e| io(&fifo, e))?
            .into()
    };
    // With a console socket, the workload's terminal is a pty here whose master goes to the
    // caller; the monitor relays its slave to the guest's pty (keys raw, window sizes as
    // `Resize`, as `isola run -t` does with its own terminal).
    let pty = o
        .console_socket
        .map(crate::console::for_console_socket)
        .transpose()?;
    let exec_sock = exec_hub::socket_path(dir);
    let listener = exec_hub::listen(dir).map_err(|e| io(&exec_sock, e))?;
    let (ready_r, ready_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| Error::Io(format!("pipe: {e}")))?;
    // SAFETY: fork(2) of this single-threaded process (an OCI runtime's commands start no
    // threads); the child runs `monitor` and exits, never returning here.
    let fork = unsafe { nix::unistd::fork() }.map_err(|e| Error::Io(format!("fork: {e}")))?;
    let nix::unistd::ForkResult::Parent { child } = fork else {
        drop(ready_r);
        // Its own session: the caller's terminal signals are the caller's to forward.
        let _ = nix::unistd::setsid();
        if let Some(slave) = &pty {
            if let Err(e) = crate::console::take(slave) {
                let _ = std::fs::File::from(ready_w).write_all(e.as_bytes());
                // SAFETY: _exit ends the monitor without running the parent's destructors.
                unsafe { libc::_exit(125) }
            }
        }
        drop(pty);
        let job = VmJob {
            spec,
            disk,
            disk_is_cache,
            cgroup_path: cgroups_path,
            stdin: true,
            tty: terminal,
            gate: None,
            exec_hub: Some(exec_hub::ExecHub::new(listener)),
            nic: None,
        };
        let code = monitor(o.vm, job, start, ready_w);
        // SAFETY: _exit ends the monitor without running the parent's destructors twice.
        unsafe { libc::_exit(code) }
    };
    let pid = child.as_raw();
    drop((ready_w, start, pty, listener));
    st.pid = pid;
    st.pid_start_time = state::start_time(pid).unwrap_or(0);
    st.save(dir).map_err(|e| io(dir, e))?;
    let mut said = String::new();
    let _ = std::fs::File::from(ready_r).read_to_string(&mut said);
    if said != "ok" {
        let why = if said.is_empty() {
            "the VM's monitor ended before the guest was set up".to_string()
        } else {
            said
        };
        return Err(Error::Vm(why));
    }
    st.status = "created".into();
    st.save(dir).map_err(|e| io(dir, e))?;
    Ok(Detached {
        dir: dir.to_path_buf(),
        state: st,
    })
}

/// The monitor: boots the VM with the caller's stdio, tells `create` (through `ready`) once the
/// guest is set up or why it could not be, relays until the VM ends. Returns the exit status.
fn monitor(config: &VmConfig, mut job: VmJob, start: OwnedFd, ready: OwnedFd) -> i32 {
    let ready = std::sync::Arc::new(std::sync::Mutex::new(Some(std::fs::File::from(ready))));
    let tell = ready.clone();
    let created = Box::new(move || {
        if let Some(mut f) = tell.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = f.write_all(b"ok");
        }
    });
    job.gate = Some(StartGate { start, created });
    match boot::run_job(config, job) {
        Ok(ended) => ended.code,
        Err(e) => {
            match ready.lock().unwrap_or_else(|p| p.into_inner()).take() {
                // Before the guest was set up: `create` reports it.
                Some(mut f) => {
                    let _ = f.write_all(e.to_string().as_bytes());
                }
                None => eprintln!("isola: {e}"),
            }
            e.exit_code()
        }
    }
}
