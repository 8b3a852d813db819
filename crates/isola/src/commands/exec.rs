//! `isola exec [-i] [-t] [-d] [-e KEY=VALUE] [-u UID[:GID]] [-w DIR] NAME CMD...`: another
//! process in a running container — its namespaces, cgroup, user, environment and limits —
//! with this process's stdio (stdin only with `-i`), ending with its exit status. With `-t` it
//! gets a terminal of its own, as a runtime's caller gets one: its master comes over a console
//! socket to this isola, which relays it to its own terminal while a child of it runs the exec.

use crate::cli::ExecArgs;
use crate::exec_process::{process, Overrides};
use crate::paths::Paths;
use crate::records;
use crate::Exit;
use anyhow::{bail, Result};
use isola_sandbox::{Detached, ExecRequest};
use std::os::unix::net::UnixListener;

pub fn exec(paths: &Paths, a: ExecArgs) -> Result<i32> {
    records::cleanup(paths);
    let r = crate::commands::lifecycle::running(paths, &a.container)?;
    if a.tty && a.detach {
        bail!("exec -d with -t: nobody would read its terminal; drop one of them");
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
            tty: a.tty,
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
    if a.tty {
        return with_terminal(paths, &c, p, a.interactive);
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

/// `exec -t`: a child of this isola runs the exec with a console socket this isola listens
/// on; the terminal's master comes over it and is relayed here until the child ends.
fn with_terminal(
    paths: &Paths,
    c: &Detached,
    process: oci_spec::runtime::Process,
    interactive: bool,
) -> Result<i32> {
    let dir = paths.run.join(format!("exec-tty-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let removed = RemoveOnDrop(dir.clone());
    let socket = dir.join("console.sock");
    let listener = UnixListener::bind(&socket)?;
    listener.set_nonblocking(true)?;
    isola_container::monitor::block_signals()?;
    // SAFETY: fork(2) of this single-threaded isola; the child runs the exec and exits.
    let child = unsafe { libc::fork() };
    if child < 0 {
        bail!("fork: {}", std::io::Error::last_os_error());
    }
    if child == 0 {
        drop(listener);
        let request = ExecRequest {
            process,
            detach: false,
            console_socket: Some(&socket),
            preserve_fds: 0,
        };
        let code = isola_sandbox::exec(c, request, &mut |_| Ok(())).unwrap_or_else(|e| {
            eprintln!("isola: {e}");
            e.exit_code()
        });
        std::process::exit(code);
    }
    // The master, unless the child ends first (its error is printed already).
    let master = loop {
        match listener.accept() {
            Ok((conn, _)) => break isola_container::console_socket::receive(&conn)?,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e.into()),
        }
        if let Some(code) = exited(child) {
            return Ok(code);
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    drop(listener);
    drop(removed);
    Ok(isola_container::monitor::relay_console_until_exit(
        child,
        master,
        interactive,
    )?)
}

/// The exit status of our child `pid` if it has ended.
fn exited(pid: i32) -> Option<i32> {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    match waitpid(nix::unistd::Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
        Ok(s @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => {
            Some(isola_container::monitor::exit_code(s))
        }
        _ => None,
    }
}

struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
