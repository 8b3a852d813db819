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
    if a.command.is_empty() {
        return Err(Failure("exec: no command given".into()));
    }
    let (spec, _) = isola_container::load_spec(&c.state.bundle)?;
    let mut p = spec.process().clone().unwrap_or_default();
    p.set_args(Some(a.command.clone()));
    let mut env = p.env().clone().unwrap_or_default();
    for kv in &a.env {
        let key = kv.split('=').next().unwrap_or(kv);
        env.retain(|e| e.split('=').next() != Some(key));
        env.push(kv.clone());
    }
    p.set_env(Some(env));
    if let Some(cwd) = &a.cwd {
        p.set_cwd(cwd.into());
    }
    if let Some(u) = &a.user {
        let (uid, gid) = u.split_once(':').unwrap_or((u, "0"));
        let id = |s: &str| {
            s.parse::<u32>()
                .map_err(|_| Failure(format!("--user {u:?}: expected UID[:GID], numbers")))
        };
        let mut user = p.user().clone();
        user.set_uid(id(uid)?);
        user.set_gid(id(gid)?);
        user.set_additional_gids(None);
        p.set_user(user);
    }
    p.set_terminal(Some(a.tty));
    Ok(p)
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
