//! A container that outlives the process that created it: the OCI runtime operations as runc
//! carries them out, each a separate process meeting the container through its state
//! directory (`<root>/<id>/state.json` and the `exec.fifo` the init waits on until `start`).
//!
//! Its status is read from the host, never trusted from the file alone: stopped once the init
//! (pid and start time) is gone, created while the exec FIFO still exists, paused while its
//! cgroup is frozen, running otherwise.

use crate::cgroups::{Cgroup, Hierarchies};
use crate::state::{self, State};
use crate::ContainerError;
use std::path::{Path, PathBuf};

/// The runtime spec's statuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// `create` has not finished (or died before it did: `delete` removes what it left).
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

/// Where the init waits for `start`.
pub fn exec_fifo(state_dir: &Path) -> PathBuf {
    state_dir.join("exec.fifo")
}

/// One container under a runtime root.
pub struct Detached {
    pub dir: PathBuf,
    pub state: State,
}

impl Detached {
    /// The container `id` under `root`; `NotFound` when there is none.
    pub fn load(root: &Path, id: &str) -> Result<Detached, ContainerError> {
        if id.is_empty() || id.contains('/') || id == "." || id == ".." {
            return Err(ContainerError::Config(format!(
                "invalid container id {id:?}"
            )));
        }
        let dir = root.join(id);
        match State::load(&dir) {
            Ok(state) => Ok(Detached { dir, state }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(ContainerError::NotFound(id.to_string()))
            }
            Err(e) => Err(ContainerError::Io(format!(
                "{}: {e}",
                State::path(&dir).display()
            ))),
        }
    }

    /// Every container under `root`, in id order (unreadable ones skipped).
    pub fn list(root: &Path) -> Vec<Detached> {
        let mut ids: Vec<String> = std::fs::read_dir(root)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.starts_with('.'))
                    .collect()
            })
            .unwrap_or_default();
        ids.sort();
        ids.iter()
            .filter_map(|id| Detached::load(root, id).ok())
            .collect()
    }

    fn cgroup(&self) -> Result<Cgroup, ContainerError> {
        Ok(Cgroup::existing(
            &Hierarchies::detect()?,
            &self.state.cgroups_path,
        ))
    }

    pub fn alive(&self) -> bool {
        state::is_alive(self.state.pid, self.state.pid_start_time)
    }

    pub fn status(&self) -> Status {
        if self.state.status == "creating" {
            Status::Creating
        } else if !self.alive() {
            Status::Stopped
        } else if exec_fifo(&self.dir).exists() {
            Status::Created
        } else if self.cgroup().is_ok_and(|c| c.frozen()) {
            Status::Paused
        } else {
            Status::Running
        }
    }

    /// Releases the workload: writes a byte into the exec FIFO its waiter (the container's
    /// init, a VM's monitor) reads, then removes the FIFO.
    pub fn start(&mut self) -> Result<(), ContainerError> {
        match self.status() {
            Status::Created => {}
            Status::Stopped | Status::Creating => {
                return Err(ContainerError::WrongState(
                    "cannot start a container that has stopped".into(),
                ))
            }
            Status::Running | Status::Paused => {
                return Err(ContainerError::WrongState(
                    "cannot start an already running container".into(),
                ))
            }
        }
        let fifo = exec_fifo(&self.dir);
        let io = |e: std::io::Error| ContainerError::Io(format!("{}: {e}", fifo.display()));
        // Non-blocking: without a reader (not there yet, or dead) this fails with ENXIO
        // instead of waiting forever.
        let f = loop {
            use std::os::unix::fs::OpenOptionsExt;
            match std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
                .open(&fifo)
            {
                Ok(f) => break f,
                Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
                    if !self.alive() {
                        return Err(ContainerError::WrongState(
                            "cannot start a container that has stopped".into(),
                        ));
                    }
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Err(e) => return Err(io(e)),
            }
        };
        std::io::Write::write_all(&mut &f, b"0").map_err(io)?;
        std::fs::remove_file(&fifo).map_err(io)?;
        self.state.status = Status::Running.as_str().into();
        self.save()
    }

    /// Sends `signal` to the init (a VM's monitor), or with `all` to every process in the
    /// container's cgroup.
    pub fn kill(&self, signal: i32, all: bool) -> Result<(), ContainerError> {
        if self.status() == Status::Stopped {
            return Err(ContainerError::WrongState("container not running".into()));
        }
        // A VM's cgroup holds its VMM's threads, not the workload's processes: its monitor
        // forwards the signal to the workload in the guest, with or without `all`.
        let pids = if all && self.state.isolation != "vm" {
            self.cgroup()?.pids()
        } else {
            vec![self.state.pid]
        };
        for pid in pids {
            // SAFETY: kill(2) of the init whose start time we just checked, or of a pid read
            // from the container's own cgroup; at worst ESRCH.
            if unsafe { libc::kill(pid, signal) } < 0 {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::ESRCH) {
                    return Err(ContainerError::Io(format!("kill {pid}: {e}")));
                }
            }
        }
        Ok(())
    }

    /// Freezes or thaws the container.
    pub fn pause(&self, paused: bool) -> Result<(), ContainerError> {
        let want_from = if paused {
            Status::Running
        } else {
            Status::Paused
        };
        let status = self.status();
        if status != want_from {
            return Err(ContainerError::WrongState(format!(
                "container not {}",
                want_from.as_str()
            )));
        }
        Ok(self.cgroup()?.freeze(paused)?)
    }

    /// The host pids of the container's processes.
    pub fn pids(&self) -> Result<Vec<i32>, ContainerError> {
        Ok(self.cgroup()?.pids())
    }

    /// Removes the container: refused while it runs unless `force`, which kills it first.
    /// A created (never started) container is removed as runc does, killing its waiting init.
    pub fn delete(self, force: bool) -> Result<(), ContainerError> {
        let status = self.status();
        if matches!(status, Status::Running | Status::Paused) && !force {
            return Err(ContainerError::WrongState(format!(
                "cannot delete container {} that is not stopped: {}",
                self.state.id,
                status.as_str()
            )));
        }
        let cgroup = self.cgroup()?;
        if status == Status::Paused {
            // A frozen task does not die until it is thawed.
            let _ = cgroup.freeze(false);
        }
        if self.alive() {
            // SAFETY: kill(2) of the init whose start time was just checked.
            unsafe { libc::kill(self.state.pid, libc::SIGKILL) };
        }
        // Kills whatever is left in the cgroup (processes exec put there too).
        cgroup.remove()?;
        std::fs::remove_dir_all(&self.dir)
            .map_err(|e| ContainerError::Io(format!("{}: {e}", self.dir.display())))
    }

    pub fn save(&self) -> Result<(), ContainerError> {
        self.state
            .save(&self.dir)
            .map_err(|e| ContainerError::Io(format!("{}: {e}", self.dir.display())))
    }
}
