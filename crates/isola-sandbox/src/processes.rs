//! `ps`: a sandbox's processes. The container level's are host processes (its cgroup's pids);
//! a VM's run behind its guest kernel, where the host sees only the VMM, so the guest lists
//! them.

use crate::{Detached, Error, Level};
pub use isola_guest_contract::processes::GuestProcess;

/// What `ps` lists.
pub enum Processes {
    /// Host pids (the container level).
    Host(Vec<i32>),
    /// The guest's processes, numbered as the workload's PID namespace numbers them.
    Guest(Vec<GuestProcess>),
}

pub fn processes(c: &Detached) -> Result<Processes, Error> {
    match Level::of_state(c) {
        Level::Container => Ok(Processes::Host(c.pids()?)),
        Level::Vm => Ok(Processes::Guest(crate::vm::exec_client::processes(c)?)),
    }
}
