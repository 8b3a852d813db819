//! `exec`: another process in a running container, from `--process FILE` (the runtime spec's
//! process, as podman and containerd pass it) or from the container's own process with the
//! command and flags given here.

use super::cli::ExecArgs;
use super::{create::write_pid_file, Failure, Result, Runtime};
use isola_sandbox::{Detached, ExecRequest};
use oci_spec::runtime::Process;

fn process(c: &Detached, a: &ExecArgs) -> Result<Process> {
    if let Some(file) = &a.process {
        let text = std::fs::read_to_string(file)
            .map_err(|e| Failure(format!("--process {}: {e}", file.display())))?;
        let mut p: Process = serde_json::from_str(&text)
            .map_err(|e| Failure(format!("--process {}: {e}", file.display())))?;
        if a.tty {
            p.set_terminal(Some(true));
        }
        return Ok(p);
    }
    let (spec, _) = isola_container::load_spec(&c.state.bundle)?;
    crate::exec_process::process(
        &spec,
        crate::exec_process::Overrides {
            command: &a.command,
            env: &a.env,
            cwd: a.cwd.as_deref(),
            user: a.user.as_deref(),
            tty: a.tty,
        },
    )
    .map_err(Failure)
}

/// Returns the process's exit status (0 when detached).
pub fn exec(rt: &Runtime, a: &ExecArgs) -> Result<i32> {
    let c = Detached::load(&rt.root, &a.id)?;
    let process = process(&c, a)?;
    let mut started = |pid| match &a.pid_file {
        Some(f) => write_pid_file(f, pid).map_err(|Failure(m)| isola_sandbox::Error::Io(m)),
        None => Ok(()),
    };
    let request = ExecRequest {
        process,
        detach: a.detach,
        console_socket: a.console_socket.as_deref(),
        preserve_fds: a.preserve_fds,
    };
    Ok(isola_sandbox::exec(&c, request, &mut started)?)
}
