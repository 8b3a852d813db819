//! The container lifecycle on the host side: create → start → (wait/kill) → delete, mirroring
//! the OCI runtime operations. `create` clones the init into its namespaces, places it in its
//! cgroups and lets it build its rootfs; it then waits, ready, until `start` lets it exec.

use crate::cgroups::{Cgroup, Hierarchies, Placement};
use crate::channel::{self, Channel, Message};
use crate::clone_init::clone_init;
use crate::init::{init_main, InitArgs, StartGate};
use crate::monitor;
use crate::state::{self, State};
use crate::stdio_relay::{self, StdioRelay};
use crate::ContainerError;
use isola_process::Plan;
use nix::fcntl::{Flock, FlockArg};
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// How to create a container.
pub struct CreateOptions<'a> {
    pub id: &'a str,
    pub bundle: &'a Path,
    /// Directory holding one state directory per container (e.g. /run/isola/containers).
    pub state_root: &'a Path,
    pub attach: Attach,
}

/// Who stays with the container, and so who carries its stdio and lets it start.
#[derive(Clone, Copy, Debug)]
pub enum Attach {
    /// isola stays as its monitor (`isola run`): the workload's stdio are pipes isola relays
    /// (stdin reads /dev/null unless `interactive`), `start` is a message on the channel, and the
    /// container dies with isola.
    Monitor { interactive: bool },
    /// An OCI runtime's `create`: the workload gets the creator's own stdio (and `preserve_fds`
    /// more descriptors above them), the creator exits once the container is created, and a
    /// later `start` releases it through the state directory's exec FIFO (see `detached`).
    Detached { preserve_fds: u32 },
}

/// A created (and later running) container.
pub struct Container {
    pub id: String,
    pub pid: i32,
    pub state_dir: PathBuf,
    pub cgroup: Cgroup,
    pub console: Option<OwnedFd>,
    /// The pipes carrying the workload's stdio when it has no terminal.
    stdio: Option<StdioRelay>,
    /// Held for the container's life: `clean_stale` leaves a locked state directory alone.
    _lock: Flock<std::fs::File>,
    channel: Channel,
    state: State,
}

fn clone_flags(spec: &Spec) -> Result<libc::c_int, ContainerError> {
    let mut flags = 0;
    let namespaces = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    for ns in namespaces {
        if ns.path().is_some() {
            return Err(ContainerError::Config(format!(
                "joining an existing {:?} namespace is not supported",
                ns.typ()
            )));
        }
        flags |= match ns.typ() {
            LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
            LinuxNamespaceType::Network => libc::CLONE_NEWNET,
            LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
            LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
            LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
            // Entered by the init once it is in its cgroup, so that cgroup becomes its root.
            LinuxNamespaceType::Cgroup => 0,
            other => {
                return Err(ContainerError::Config(format!(
                    "linux.namespaces: {other:?} namespaces are not supported yet"
                )))
            }
        };
    }
    if flags & libc::CLONE_NEWNS == 0 {
        return Err(ContainerError::Config(
            "linux.namespaces must include a mount namespace".into(),
        ));
    }
    Ok(flags)
}

/// Loads and checks `config.json` in a bundle, and resolves its process (isola-process's
/// `Plan`, which also checks the ids and capabilities).
pub fn load_spec(bundle: &Path) -> Result<(Spec, Plan), ContainerError> {
    let path = bundle.join("config.json");
    let spec = Spec::load(&path)
        .map_err(|e| ContainerError::Config(format!("{}: {e}", path.display())))?;
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| ContainerError::Config(format!("{}: no process", path.display())))?;
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(ContainerError::Config(format!(
            "{}: process.args is empty",
            path.display()
        )));
    }
    if !process.cwd().is_absolute() {
        return Err(ContainerError::Config(format!(
            "{}: process.cwd {:?} is not absolute",
            path.display(),
            process.cwd()
        )));
    }
    let plan = Plan::from_spec(&spec)
        .map_err(|e| ContainerError::Config(format!("{}: {e}", path.display())))?;
    Ok((spec, plan))
}

/// Creates the container: namespaces, cgroups, rootfs; the workload is not started yet.
pub fn create(o: &CreateOptions) -> Result<Container, ContainerError> {
    let (spec, plan) = load_spec(o.bundle)?;
    let flags = clone_flags(&spec)?;
    isola_process::explain::say(|| {
        format!(
            "the init is cloned (clone(2)) into new namespaces: {}",
            isola_process::explain::namespaces(flags)
        )
    });
    let seccomp = crate::seccomp::compile_spec(&spec).map_err(|e| {
        ContainerError::Config(format!("{}: {e}", o.bundle.join("config.json").display()))
    })?;
    let hier = Hierarchies::detect()?;
    std::fs::create_dir_all(o.state_root)
        .map_err(|e| ContainerError::Io(format!("{}: {e}", o.state_root.display())))?;
    let state_dir = o.state_root.join(o.id);
    let lock = claim_state_dir(&state_dir, o.id)?;
    let cgroups_path = crate::cgroups::container_path(&spec, o.id);
    let detached = matches!(o.attach, Attach::Detached { .. });
    let mut state = State::new(&spec, o.id, o.bundle, cgroups_path, "container");
    if !detached {
        // Under a monitor (`isola run`): the container lives as long as this process. A
        // detached one has no owner; it lives until `delete`.
        state.owner_pid = std::process::id() as i32;
        state.owner_start_time = state::start_time(state.owner_pid).unwrap_or(0);
    }
    // Written before the cgroup is made: if we are killed from here on, `clean_stale` knows
    // which cgroup to remove.
    if let Err(e) = state.save(&state_dir) {
        let _ = std::fs::remove_dir_all(&state_dir);
        return Err(ContainerError::Io(format!("{}: {e}", state_dir.display())));
    }
    let mut resources = spec.linux().as_ref().and_then(|l| l.resources().clone());
    if let Some(r) = resources.as_mut() {
        if let Some(rules) = r.devices().clone().filter(|d| !d.is_empty()) {
            let mut rules = rules;
            rules.extend(crate::devices::cgroup_allowlist());
            r.set_devices(Some(rules));
        }
    }
    let cgroup = match Cgroup::create(&hier, &state.cgroups_path, resources.as_ref()) {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&state_dir);
            return Err(e.into());
        }
    };
    let undo = |cgroup: &Cgroup, pid: Option<i32>| {
        if let Some(pid) = pid {
            // SAFETY: kill(2) of our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            monitor::wait_quietly(pid);
        }
        let _ = cgroup.remove();
        let _ = std::fs::remove_dir_all(&state_dir);
    };
    let exec_fifo = crate::detached::exec_fifo(&state_dir);
    if detached {
        // Readable by all: the init opens it after it became the workload's user, through its
        // O_PATH descriptor; the runtime root (0700) keeps others out.
        let made = nix::unistd::mkfifo(&exec_fifo, nix::sys::stat::Mode::empty()).and_then(|()| {
            nix::sys::stat::fchmodat(
                None,
                &exec_fifo,
                nix::sys::stat::Mode::from_bits_truncate(0o644),
                nix::sys::stat::FchmodatFlags::FollowSymlink,
            )
        });
        if let Err(e) = made {
            undo(&cgroup, None);
            return Err(ContainerError::Io(format!("{}: {e}", exec_fifo.display())));
        }
    }
    let placement = cgroup.placement();
    let spawned = spawn_init(
        &spec,
        &plan,
        o,
        &exec_fifo,
        &hier,
        flags,
        seccomp.as_ref(),
        &placement,
    );
    let (pid, born_in, channel, stdio) = match spawned {
        Ok(x) => x,
        Err(e) => {
            undo(&cgroup, None);
            return Err(e);
        }
    };
    state.pid = pid;
    state.pid_start_time = state::start_time(pid).unwrap_or(0);
    let setup = (|| -> Result<Option<OwnedFd>, ContainerError> {
        state
            .save(&state_dir)
            .map_err(|e| ContainerError::Io(format!("{}: {e}", state_dir.display())))?;
        // The init moves itself into the v1 cgroups once it has this message.
        if !born_in {
            placement.add_to_v2(pid)?;
        }
        channel
            .send(&Message::Joined)
            .map_err(|e| ContainerError::Io(format!("channel: {e}")))?;
        let mut console = None;
        loop {
            match channel
                .recv()
                .map_err(|e| ContainerError::Io(format!("channel: {e}")))?
            {
                Some((Message::Console, fd)) => {
                    if let Some(f) = &fd {
                        crate::console_relay::copy_window_size_to(f.as_raw_fd());
                    }
                    console = fd;
                }
                Some((Message::Ready, _)) => return Ok(console),
                Some((Message::Failed { code, message }, _)) => {
                    return Err(ContainerError::Setup { code, message })
                }
                Some((other, _)) => {
                    return Err(ContainerError::Io(format!(
                        "unexpected message {other:?} from init"
                    )))
                }
                None => {
                    return Err(ContainerError::Setup {
                        code: 125,
                        message: "container init exited during setup".into(),
                    })
                }
            }
        }
    })();
    match setup {
        Ok(console) => {
            state.status = "created".into();
            let _ = state.save(&state_dir);
            Ok(Container {
                _lock: lock,
                id: o.id.to_string(),
                pid,
                state_dir,
                cgroup,
                console,
                stdio,
                channel,
                state,
            })
        }
        Err(e) => {
            undo(&cgroup, Some(pid));
            Err(e)
        }
    }
}

/// Makes the state directory and takes its lock. Another isola's `clean_stale` may find the
/// directory between the two (empty, so it looks like a dead create) and remove it: then the
/// lock is on a removed directory, and we make it again.
fn claim_state_dir(dir: &Path, id: &str) -> Result<Flock<std::fs::File>, ContainerError> {
    let io = |e: std::io::Error| ContainerError::Io(format!("{}: {e}", dir.display()));
    for _ in 0..10 {
        match std::fs::create_dir(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(ContainerError::Exists(id.to_string()))
            }
            Err(e) => return Err(io(e)),
        }
        let Ok(lock) = std::fs::File::open(dir) else {
            continue; // removed already
        };
        let Ok(lock) = Flock::lock(lock, FlockArg::LockExclusive) else {
            continue;
        };
        let ours = std::os::unix::fs::MetadataExt::ino(&lock.metadata().map_err(io)?);
        match std::fs::metadata(dir) {
            Ok(m) if std::os::unix::fs::MetadataExt::ino(&m) == ours => return Ok(lock),
            _ => continue,
        }
    }
    Err(io(std::io::Error::other(
        "kept being removed while it was made",
    )))
}

/// Takes the lock of a state directory unless another process (its owner, alive) holds it.
/// The cleaner holds it while it removes the directory, so a create that raced it sees that.
fn lock_if_unowned(dir: &Path) -> Option<Flock<std::fs::File>> {
    let f = std::fs::File::open(dir).ok()?;
    Flock::lock(f, FlockArg::LockExclusiveNonblock).ok()
}

/// An `O_PATH` descriptor to `path` (close-on-exec): the init reopens it through /proc after its
/// pivot.
fn open_path(path: &Path) -> Result<OwnedFd, ContainerError> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
        .open(path)
        .map(OwnedFd::from)
        .map_err(|e| ContainerError::Io(format!("{}: {e}", path.display())))
}

/// Clones the init into its new namespaces, and into its cgroup2 workload cgroup where the
/// kernel can. Returns its pid (in our namespace), whether it was born in that cgroup, and our
/// end of the channel.
#[allow(clippy::too_many_arguments)]
fn spawn_init(
    spec: &Spec,
    plan: &Plan,
    o: &CreateOptions,
    exec_fifo: &Path,
    hier: &Hierarchies,
    flags: libc::c_int,
    seccomp: Option<&crate::seccomp::Filter>,
    placement: &Placement,
) -> Result<(i32, bool, Channel, Option<StdioRelay>), ContainerError> {
    let (parent_end, init_end) =
        channel::pair().map_err(|e| ContainerError::Io(format!("socketpair: {e}")))?;
    let terminal = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    // Under a monitor and without a terminal, the workload's stdio are pipes isola relays
    // (see stdio_relay); detached, it keeps the creator's.
    let (relay, workload_stdio) = match &o.attach {
        Attach::Monitor { interactive } if !terminal => {
            let (r, w) = stdio_relay::pipes(*interactive)
                .map_err(|e| ContainerError::Io(format!("the workload's stdio pipes: {e}")))?;
            (Some(r), Some(w))
        }
        _ => (None, None),
    };
    let (gate, _fifo) = match &o.attach {
        Attach::Monitor { .. } => (StartGate::Channel, None),
        Attach::Detached { preserve_fds } => {
            let fifo = open_path(exec_fifo)?;
            let gate = StartGate::Fifo {
                fd: fifo.as_raw_fd(),
                preserve_fds: *preserve_fds,
            };
            (gate, Some(fifo))
        }
    };
    let (pid, born_in) = clone_init(flags, placement)?;
    if pid == 0 {
        drop(parent_end);
        init_main(&InitArgs {
            spec,
            plan,
            bundle: o.bundle,
            hier,
            channel: &init_end,
            stdio: workload_stdio.as_ref().map(|w| {
                [
                    w.stdin.as_raw_fd(),
                    w.stdout.as_raw_fd(),
                    w.stderr.as_raw_fd(),
                ]
            }),
            gate,
            seccomp,
            placement,
        });
    }
    drop(init_end);
    drop(workload_stdio);
    Ok((pid, born_in, parent_end, relay))
}

impl Container {
    /// Lets the init exec the workload. Fails with docker's 126/127 when the command cannot run.
    pub fn start(&mut self) -> Result<(), ContainerError> {
        self.channel
            .send(&Message::Start)
            .map_err(|e| ContainerError::Io(format!("channel: {e}")))?;
        match self
            .channel
            .recv()
            .map_err(|e| ContainerError::Io(format!("channel: {e}")))?
        {
            None => {
                self.state.status = "running".into();
                let _ = self.state.save(&self.state_dir);
                Ok(())
            }
            Some((Message::Failed { code, message }, _)) => {
                monitor::wait_quietly(self.pid);
                Err(ContainerError::Setup { code, message })
            }
            Some((other, _)) => Err(ContainerError::Io(format!(
                "unexpected message {other:?} from init"
            ))),
        }
    }

    /// Supervises the running workload until it exits; returns docker's exit code.
    pub fn wait(&mut self, interactive: bool) -> Result<i32, ContainerError> {
        let relay = match (self.console.take(), self.stdio.take()) {
            (Some(master), _) => Some(monitor::Relay::Console(
                crate::console_relay::ConsoleRelay::new(master, interactive)
                    .map_err(|e| ContainerError::Io(format!("console: {e}")))?,
            )),
            (None, Some(pipes)) => Some(monitor::Relay::Pipes(pipes)),
            (None, None) => None,
        };
        let code = monitor::supervise(self.pid, relay)
            .map_err(|e| ContainerError::Io(format!("waiting for the container: {e}")))?;
        self.state.status = "stopped".into();
        let _ = self.state.save(&self.state_dir);
        Ok(code)
    }

    /// Leaves the created container to live on without this process (a runtime's `create`):
    /// its init waits for `start`, and its state directory records it.
    pub fn detach(self) -> State {
        self.state
    }

    /// Sends a signal to the workload.
    pub fn kill(&self, sig: i32) {
        // SAFETY: kill(2) of the init we created (and have not reaped).
        unsafe { libc::kill(self.pid, sig) };
    }

    /// Removes everything create made on the host: kills what is left, cgroups, state dir.
    pub fn delete(self) -> Result<(), ContainerError> {
        if state::is_alive(self.pid, self.state.pid_start_time) {
            self.kill(libc::SIGKILL);
            monitor::wait_quietly(self.pid);
        }
        self.cgroup.remove()?;
        std::fs::remove_dir_all(&self.state_dir)
            .map_err(|e| ContainerError::Io(format!("{}: {e}", self.state_dir.display())))
    }
}

/// Removes what a container left behind when its owner died (kill -9 of isola): kills its init
/// if still alive, removes its cgroups and its state directory. Returns the state it had.
pub fn clean_stale(state_dir: &Path) -> Result<Option<State>, ContainerError> {
    let Some(_lock) = lock_if_unowned(state_dir) else {
        return Ok(None); // its isola is alive, perhaps still creating it
    };
    let st = match State::load(state_dir) {
        Ok(s) => s,
        Err(_) => {
            // A state dir without a readable state file: a create that died before it made
            // a cgroup (the state file is written first); one of an older isola may have made
            // the default one.
            if let (Ok(hier), Some(id)) = (Hierarchies::detect(), state_dir.file_name()) {
                let path = format!("/isola/{}", id.to_string_lossy());
                let _ = Cgroup::existing(&hier, &path).remove();
            }
            let _ = std::fs::remove_dir_all(state_dir);
            return Ok(None);
        }
    };
    if state::is_alive(st.owner_pid, st.owner_start_time) {
        return Ok(None);
    }
    if state::is_alive(st.pid, st.pid_start_time) {
        // SAFETY: kill(2) of a pid whose start time matches the container init we recorded.
        unsafe { libc::kill(st.pid, libc::SIGKILL) };
    }
    let hier = Hierarchies::detect()?;
    Cgroup::existing(&hier, &st.cgroups_path).remove()?;
    std::fs::remove_dir_all(state_dir)
        .map_err(|e| ContainerError::Io(format!("{}: {e}", state_dir.display())))?;
    Ok(Some(st))
}
