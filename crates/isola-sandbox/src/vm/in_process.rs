//! A VM relayed by the process that made it (`isola run`): its stdio, terminal and signals are
//! this process's own. Nothing outside can see it in its created state, so the VM boots at
//! `wait` (after `start`) with no created→start round trip through the guest; it ends with
//! this process (the VMM is its child, killed with it). Its state directory (this process as
//! its pid) holds the socket `exec` reaches it by (`exec_hub`), as a runtime's VM's does.

use super::boot::{self, VmJob};
use super::VmConfig;
use crate::{CreateOptions, Endpoint, Error, Sandbox};
use isola_container::state::State;
use oci_spec::runtime::Spec;
use std::path::PathBuf;

struct InProcessVm {
    config: VmConfig,
    job: Option<VmJob>,
    started: bool,
    /// The sandbox's own root disk (none with a shared one).
    own_disk: Option<PathBuf>,
    /// Its state directory.
    state_dir: PathBuf,
    oom_killed: bool,
}

/// The state directory: this process as the VM's pid and owner, and the exec socket.
fn make_state(
    o: &CreateOptions,
    spec: &Spec,
) -> Result<(PathBuf, super::exec_hub::SharedHub), Error> {
    let dir = o.state_root.join(o.id);
    let io = |e: std::io::Error| Error::Io(format!("{}: {e}", dir.display()));
    let _ = std::fs::create_dir_all(o.state_root);
    match std::fs::create_dir(&dir) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(isola_container::ContainerError::Exists(o.id.to_string()).into())
        }
        other => other.map_err(io)?,
    }
    let made = (|| {
        let cgroups = isola_container::cgroups::container_path(spec, o.id);
        let mut st = State::new(spec, o.id, o.bundle, cgroups, "vm");
        let me = std::process::id() as i32;
        st.pid = me;
        st.pid_start_time = isola_container::state::start_time(me).unwrap_or(0);
        st.owner_pid = me;
        st.owner_start_time = st.pid_start_time;
        st.status = "running".into();
        st.save(&dir).map_err(io)?;
        let listener = super::exec_hub::listen(&dir).map_err(|e| {
            let socket = super::exec_hub::socket_path(&dir);
            Error::Io(format!("{}: {e}", socket.display()))
        })?;
        Ok(super::exec_hub::ExecHub::new(listener))
    })();
    match made {
        Ok(hub) => Ok((dir, hub)),
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            Err(e)
        }
    }
}

pub fn create(o: &CreateOptions, spec: Spec, interactive: bool) -> Result<Box<dyn Sandbox>, Error> {
    if o.console_socket.is_some() {
        return Err(Error::Config(
            "a VM relayed by its creator uses the creator's terminal, not a console socket".into(),
        ));
    }
    let (disk, own_disk) = match &o.vm.shared_disk {
        Some(shared) => (shared.clone(), None),
        None => {
            let rootfs = isola_container::state::rootfs_of(&spec, o.bundle).ok_or_else(|| {
                Error::Config(format!(
                    "{}: no root",
                    o.bundle.join("config.json").display()
                ))
            })?;
            let disk = o.vm.run_dir.join(format!("vm-disk-{}.ext4", o.id));
            super::disk::build(&rootfs, &disk, &|_, _| {}).map_err(|e| {
                Error::Vm(format!("the VM's root disk from {}: {e}", rootfs.display()))
            })?;
            (disk.clone(), Some(disk))
        }
    };
    let tty = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    let (state_dir, hub) = match make_state(o, &spec) {
        Ok(made) => made,
        Err(e) => {
            if let Some(d) = &own_disk {
                let _ = std::fs::remove_file(d);
            }
            return Err(e);
        }
    };
    let job = VmJob {
        cgroup_path: isola_container::cgroups::container_path(&spec, o.id),
        spec,
        disk,
        disk_is_cache: own_disk.is_none(),
        stdin: interactive,
        tty,
        gate: None,
        exec_hub: Some(hub),
        nic: None,
    };
    Ok(Box::new(InProcessVm {
        config: o.vm.clone(),
        job: Some(job),
        started: false,
        own_disk,
        state_dir,
        oom_killed: false,
    }))
}

impl Sandbox for InProcessVm {
    fn pid(&self) -> i32 {
        std::process::id() as i32
    }

    fn start(&mut self) -> Result<(), Error> {
        if self.started || self.job.is_none() {
            return Err(isola_container::ContainerError::WrongState(
                "cannot start an already running container".into(),
            )
            .into());
        }
        self.started = true;
        Ok(())
    }

    fn wait(&mut self) -> Result<i32, Error> {
        let job = match (self.started, self.job.take()) {
            (true, Some(job)) => job,
            _ => {
                return Err(isola_container::ContainerError::WrongState(
                    "the VM was not started, or has ended".into(),
                )
                .into())
            }
        };
        let ended = boot::run_job(&self.config, job)?;
        self.oom_killed = ended.oom_killed;
        Ok(ended.code)
    }

    fn oom_killed(&self) -> bool {
        self.oom_killed
    }

    fn delete(self: Box<Self>) -> Result<(), Error> {
        let _ = std::fs::remove_dir_all(&self.state_dir);
        if let Some(disk) = &self.own_disk {
            match std::fs::remove_file(disk) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::Io(format!("{}: {e}", disk.display())))
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Nothing outlives this process (the VM runs only while it relays): as `delete`.
    fn detach(self: Box<Self>) {
        let _ = self.delete();
    }

    fn network_endpoint(&self) -> Endpoint {
        Endpoint::Tap
    }

    fn plug(&mut self, nic: super::Nic) -> Result<(), Error> {
        match (&mut self.job, self.started) {
            (Some(job), false) => {
                job.nic = Some(nic);
                Ok(())
            }
            _ => Err(Error::Config(
                "a VM's network interface is plugged before it starts".into(),
            )),
        }
    }
}
