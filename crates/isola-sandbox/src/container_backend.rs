//! The container level behind the lifecycle: isola-container's `Container`, with the console
//! master sent to the caller's socket and the monitor's signals blocked before the init exists.

use crate::{Attach, CreateOptions, Endpoint, Error, Sandbox};
use isola_container::{monitor, Container};

struct ContainerSandbox {
    container: Container,
    attach: Attach,
    state_root: std::path::PathBuf,
}

pub fn create(o: &CreateOptions) -> Result<Box<dyn Sandbox>, Error> {
    if let Attach::Monitor { .. } = o.attach {
        // Not one signal lost between the init's birth and the monitor's first read.
        monitor::block_signals().map_err(|e| Error::Io(format!("blocking signals: {e}")))?;
    }
    let mut container = isola_container::create(&isola_container::CreateOptions {
        id: o.id,
        bundle: o.bundle,
        state_root: o.state_root,
        attach: o.attach,
    })?;
    // Without a socket, the master stays with the container: `wait` relays it.
    if let Some(socket) = o.console_socket {
        if let Some(master) = container.console.take() {
            if let Err(e) = crate::console::send_master(socket, &master) {
                let _ = container.delete();
                return Err(e);
            }
        }
    }
    Ok(Box::new(ContainerSandbox {
        container,
        attach: o.attach,
        state_root: o.state_root.to_path_buf(),
    }))
}

impl Sandbox for ContainerSandbox {
    fn pid(&self) -> i32 {
        self.container.pid
    }

    /// A monitored init waits on its channel, a detached one on the exec FIFO.
    fn start(&mut self) -> Result<(), Error> {
        match self.attach {
            Attach::Monitor { .. } => Ok(self.container.start()?),
            Attach::Detached { .. } => {
                Ok(crate::Detached::load(&self.state_root, &self.container.id)?.start()?)
            }
        }
    }

    /// Relays the monitored workload's stdio; a detached one has the caller's own.
    fn wait(&mut self) -> Result<i32, Error> {
        if let Attach::Detached { .. } = self.attach {
            monitor::block_signals().map_err(|e| Error::Io(format!("blocking signals: {e}")))?;
        }
        let interactive = match self.attach {
            Attach::Monitor { interactive } => interactive,
            Attach::Detached { .. } => true,
        };
        Ok(self.container.wait(interactive)?)
    }

    fn oom_killed(&self) -> bool {
        self.container.cgroup.oom_killed()
    }

    fn delete(self: Box<Self>) -> Result<(), Error> {
        Ok(self.container.delete()?)
    }

    fn detach(self: Box<Self>) {
        self.container.detach();
    }

    fn network_endpoint(&self) -> Endpoint {
        Endpoint::Namespace(self.pid())
    }

    fn plug(&mut self, _nic: crate::vm::Nic) -> Result<(), Error> {
        Err(Error::Config(
            "a container's interface is made in its network namespace, not plugged".into(),
        ))
    }
}
