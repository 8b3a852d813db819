//! `create` and `run`: a bundle becomes a container under the runtime root, waiting for
//! `start` (create), or created, started and, unless detached, waited for (run).

use super::cli::CreateArgs;
use super::{Failure, Result, Runtime};
use isola_sandbox::{Attach, CreateOptions, Level, Sandbox};
use std::path::{Path, PathBuf};

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
    level: Level,
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
    let default = if rt.vm_by_name {
        Level::Vm
    } else {
        Level::Container
    };
    let level = Level::of_bundle(&spec, &bundle, default)?;
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
    if level == Level::Vm {
        crate::vm_preflight::preflight(&rt.paths)?;
    }
    // Only root may look in (the exec FIFOs in it are writable by all).
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(&rt.root)
        .map_err(|e| Failure(format!("--root {}: {e}", rt.root.display())))?;
    Ok(Prepared { bundle, level })
}

/// Creates the sandbox the way `attach` says.
fn make(rt: &Runtime, a: &CreateArgs, p: &Prepared, attach: Attach) -> Result<Box<dyn Sandbox>> {
    let vm = crate::vm_preflight::vm_config(&rt.paths);
    let sandbox = isola_sandbox::create(&CreateOptions {
        id: &a.id,
        bundle: &p.bundle,
        state_root: &rt.root,
        level: p.level,
        attach,
        console_socket: a.console_socket.as_deref(),
        vm: &vm,
    })?;
    if let Some(file) = &a.pid_file {
        if let Err(e) = write_pid_file(file, sandbox.pid()) {
            let _ = sandbox.delete();
            return Err(e);
        }
    }
    Ok(sandbox)
}

/// `create`: the container waits, created, for `start`; this process ends.
pub fn create(rt: &Runtime, a: &CreateArgs) -> Result<()> {
    let p = prepare(rt, a, true)?;
    let attach = Attach::Detached {
        preserve_fds: a.preserve_fds,
    };
    make(rt, a, &p, attach)?.detach();
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
    let p = prepare(rt, a, detach)?;
    let attach = match p.level {
        _ if detach => Attach::Detached {
            preserve_fds: a.preserve_fds,
        },
        // The container's stdio relayed by this process, its terminal too.
        Level::Container => Attach::Monitor { interactive: true },
        // A VM's own monitor process keeps its state (exec.sock) as after `create`; this
        // process waits for it.
        Level::Vm => Attach::Detached {
            preserve_fds: a.preserve_fds,
        },
    };
    let mut sandbox = make(rt, a, &p, attach)?;
    if let Err(e) = sandbox.start() {
        let _ = sandbox.delete();
        return Err(e.into());
    }
    if detach {
        sandbox.detach();
        return Ok(0);
    }
    let code = sandbox.wait();
    if keep {
        sandbox.detach();
        return Ok(code?);
    }
    // A `delete --force` from elsewhere may have removed it already.
    let deleted = sandbox.delete();
    let code = code?;
    if let Err(e) = deleted {
        if isola_sandbox::Detached::load(&rt.root, &a.id).is_ok() {
            return Err(e.into());
        }
    }
    Ok(code)
}
