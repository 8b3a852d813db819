//! `exec`: another process in a running sandbox, at either level: the container level joins
//! the init's namespaces and cgroup (isola-container's `join`); the VM level hands the process
//! to the VM's monitor, which runs it in the guest beside the workload (`vm::exec_client`).

use crate::{Detached, Error, Level};
use oci_spec::runtime::Process;
use std::path::Path;

/// One process to run in a sandbox.
pub struct ExecRequest<'a> {
    /// The runtime spec's process (its terminal, user, cwd, env, args).
    pub process: Process,
    /// Return once it runs, instead of relaying its stdio and waiting for it.
    pub detach: bool,
    /// With a terminal: where its master goes.
    pub console_socket: Option<&'a Path>,
    /// Descriptors above stdio passed on (the container level).
    pub preserve_fds: u32,
}

/// Runs `r.process` in the sandbox `c`; `started` gets the pid a caller should wait for (the
/// process, or the client relaying it into a VM). Returns its exit status, 0 when detached.
pub fn exec(
    c: &Detached,
    r: ExecRequest,
    started: &mut dyn FnMut(i32) -> Result<(), Error>,
) -> Result<i32, Error> {
    if Level::of_state(c) == Level::Vm {
        return crate::vm::exec_client::exec(c, r, started);
    }
    let console_socket = r
        .console_socket
        .map(|s| {
            isola_container::console_socket::connect(s)
                .map_err(|e| Error::Io(format!("--console-socket {}: {e}", s.display())))
        })
        .transpose()?;
    let code = c.exec(
        isola_container::ExecOptions {
            process: r.process,
            detach: r.detach,
            console_socket,
            preserve_fds: r.preserve_fds,
        },
        |pid| started(pid).map_err(|e| isola_container::ContainerError::Io(e.to_string())),
    )?;
    Ok(code.unwrap_or(0))
}
