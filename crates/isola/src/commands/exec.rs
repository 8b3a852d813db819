//! `isola exec [-i] [-d] [-e KEY=VALUE] [-u UID[:GID]] [-w DIR] NAME CMD...`: another process
//! in a running container — its namespaces, cgroup, user, environment and limits — with this
//! process's stdio (stdin only with `-i`), ending with its exit status.

use crate::cli::ExecArgs;
use crate::exec_process::{process, Overrides};
use crate::paths::Paths;
use crate::records;
use crate::Exit;
use anyhow::{bail, Result};
use isola_sandbox::{Detached, ExecRequest};

pub fn exec(paths: &Paths, a: ExecArgs) -> Result<i32> {
    records::cleanup(paths);
    let r = crate::commands::lifecycle::running(paths, &a.container)?;
    if a.tty {
        bail!("exec -t: not yet (run the command without a terminal, or `isola run -it` anew)");
    }
    let c = Detached::load(&paths.states(), &r.id)?;
    let (spec, _) = isola_container::load_spec(&c.state.bundle)?;
    let p = process(
        &spec,
        Overrides {
            command: &a.command,
            env: &a.env,
            cwd: a.workdir.as_deref(),
            user: a.user.as_deref(),
            tty: false,
        },
    )
    .map_err(|e| Exit(125, e))?;
    if !a.interactive {
        // As docker: without -i the process reads nothing.
        // SAFETY: open and dup2 onto our own stdin.
        unsafe {
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
            if null >= 0 {
                libc::dup2(null, 0);
                libc::close(null);
            }
        }
    }
    let request = ExecRequest {
        process: p,
        detach: a.detach,
        console_socket: None,
        preserve_fds: 0,
    };
    isola_sandbox::exec(&c, request, &mut |_| Ok(()))
        .map_err(|e| Exit(e.exit_code(), e.to_string()).into())
}
