//! `create` and `run`: a bundle becomes a container under the runtime root, waiting for
//! `start` (create), or created, started and, unless detached, waited for (run).

use super::cli::CreateArgs;
use super::{ops, Failure, Result, Runtime};
use isola_container::{monitor, Attach, Container, CreateOptions};
use std::path::{Path, PathBuf};

/// The annotation that runs a bundle VM-isolated (as `isola-vm` does for every bundle).
pub const ISOLATION_ANNOTATION: &str = "org.isola.isolation";

/// runc's rule for ids: letters, digits and `_ + - .`, not `.` or `..`.
fn check_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id.len() <= 1024
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+-.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Failure(format!("invalid id format: {id}")))
    }
}

/// A bundle, checked.
struct Prepared {
    bundle: PathBuf,
    spec: oci_spec::runtime::Spec,
    vm: bool,
}

/// Everything checked before anything is made: the id, the bundle, the level, the terminal.
fn prepare(rt: &Runtime, a: &CreateArgs, detach: bool) -> Result<Prepared> {
    check_id(&a.id)?;
    let bundle = std::path::absolute(&a.bundle)
        .map_err(|e| Failure(format!("--bundle {}: {e}", a.bundle.display())))?;
    if !bundle.join("config.json").is_file() {
        return Err(Failure(format!(
            "{}: no such file or directory (the bundle needs a config.json)",
            bundle.join("config.json").display()
        )));
    }
    let (spec, plan) = isola_container::load_spec(&bundle)?;
    let annotated = spec
        .annotations()
        .as_ref()
        .and_then(|a| a.get(ISOLATION_ANNOTATION))
        .map(String::as_str);
    match annotated {
        None | Some("container") | Some("vm") => {}
        Some(other) => {
            return Err(Failure(format!(
                "{}: annotation {ISOLATION_ANNOTATION}={other:?}: expected \"container\" or \"vm\"",
                bundle.join("config.json").display()
            )))
        }
    }
    if spec.hooks().as_ref().is_some_and(|h| {
        [
            h.prestart(),
            h.create_runtime(),
            h.create_container(),
            h.start_container(),
            h.poststart(),
            h.poststop(),
        ]
        .iter()
        .any(|l| l.as_ref().is_some_and(|l| !l.is_empty()))
    }) {
        return Err(Failure(format!(
            "{}: hooks: isola does not run OCI hooks",
            bundle.join("config.json").display()
        )));
    }
    if plan.terminal && detach && a.console_socket.is_none() {
        return Err(Failure(
            "cannot allocate tty if isola will detach without setting console socket".into(),
        ));
    }
    if !plan.terminal && a.console_socket.is_some() {
        return Err(Failure(
            "cannot use console socket if isola will not detach or allocate tty".into(),
        ));
    }
    // Only root may look in (the exec FIFOs in it are writable by all).
    let vm = rt.vm_by_name || annotated == Some("vm");
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(&rt.root)
        .map_err(|e| Failure(format!("--root {}: {e}", rt.root.display())))?;
    Ok(Prepared { bundle, spec, vm })
}

/// `create`: the container waits, created, for `start`; this process ends.
pub fn create(rt: &Runtime, a: &CreateArgs) -> Result<()> {
    let Prepared { bundle, spec, vm } = prepare(rt, a, true)?;
    if vm {
        let pid =
            super::create_vm::create_vm(rt, &a.id, &bundle, spec, a.console_socket.as_deref())?;
        if let Some(file) = &a.pid_file {
            if let Err(e) = write_pid_file(file, pid) {
                let _ = super::ops::delete(rt, &a.id, true);
                return Err(e);
            }
        }
        return Ok(());
    }
    let mut container = isola_container::create(&CreateOptions {
        id: &a.id,
        bundle: &bundle,
        state_root: &rt.root,
        attach: Attach::Detached {
            preserve_fds: a.preserve_fds,
        },
    })?;
    if let Err(e) = hand_over(&mut container, a) {
        let _ = container.delete();
        return Err(e);
    }
    container.detach();
    Ok(())
}

/// The console master to `--console-socket`, the pid to `--pid-file`.
fn hand_over(container: &mut Container, a: &CreateArgs) -> Result<()> {
    if let (Some(master), Some(socket)) = (container.console.take(), &a.console_socket) {
        super::host_pty::send_master(socket, &master)?;
    }
    if let Some(file) = &a.pid_file {
        write_pid_file(file, container.pid)?;
    }
    Ok(())
}

/// The pid, written whole or not at all (a caller may be watching for the file).
pub fn write_pid_file(file: &Path, pid: i32) -> Result<()> {
    let abs = std::path::absolute(file).map_err(|e| Failure(format!("--pid-file: {e}")))?;
    let tmp = abs.with_file_name(format!(
        ".{}.tmp",
        abs.file_name().unwrap_or_default().to_string_lossy()
    ));
    std::fs::write(&tmp, pid.to_string())
        .and_then(|()| std::fs::rename(&tmp, &abs))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Failure(format!("--pid-file {}: {e}", abs.display()))
        })
}

/// `run`: create and start; without `detach`, this process stays as the container's monitor
/// (stdio relayed, signals forwarded), then removes it unless `keep`, and ends with its status.
pub fn run(rt: &Runtime, a: &CreateArgs, detach: bool, keep: bool) -> Result<i32> {
    if detach {
        create(rt, a)?;
        ops::start(rt, &a.id)?;
        return Ok(0);
    }
    let Prepared { bundle, vm, .. } = prepare(rt, a, false)?;
    if vm {
        // The monitor is our child: wait for it, passing on the signals we get (it forwards
        // them into the guest), then remove what create made.
        create(rt, a)?;
        let pid = isola_container::detached::Detached::load(&rt.root, &a.id)?
            .state
            .pid;
        monitor::block_signals().map_err(|e| Failure(format!("blocking signals: {e}")))?;
        ops::start(rt, &a.id)?;
        let code = monitor::forward_until_exit(pid)
            .map_err(|e| Failure(format!("waiting for the VM: {e}")))?;
        if !keep {
            ops::delete(rt, &a.id, true)?;
        }
        return Ok(code);
    }
    monitor::block_signals().map_err(|e| Failure(format!("blocking signals: {e}")))?;
    let mut container = isola_container::create(&CreateOptions {
        id: &a.id,
        bundle: &bundle,
        state_root: &rt.root,
        attach: Attach::Monitor { interactive: true },
    })?;
    if let Some(file) = &a.pid_file {
        if let Err(e) = write_pid_file(file, container.pid) {
            let _ = container.delete();
            return Err(e);
        }
    }
    let code = container.start().and_then(|()| container.wait(true));
    if keep {
        return Ok(code?);
    }
    // A `delete --force` from elsewhere may have removed it already.
    let deleted = container.delete();
    let code = code?;
    if let Err(e) = deleted {
        if isola_container::detached::Detached::load(&rt.root, &a.id).is_ok() {
            return Err(e.into());
        }
    }
    Ok(code)
}
