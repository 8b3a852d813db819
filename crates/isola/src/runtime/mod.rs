//! isola as an OCI runtime: runc's command line over isola's sandboxes, so podman, containerd
//! (its runc shim) and Kubernetes (a RuntimeClass) can run a bundle at either level. Each
//! operation is its own process; they meet through the state directory under `--root`.
//!
//! Errors end the process with status 1 and their message on stderr and in `--log`, as runc's
//! do (callers match on the words: "does not exist", "executable file not found", ...).

pub mod cli;
mod create;
mod exec;
mod features;
mod log;
mod ops;
mod spec;

use crate::paths::Paths;
use clap::Parser;
use cli::{RuntimeCli, RuntimeCommand};
use isola_container::ContainerError;
use std::path::PathBuf;

pub use cli::is_runtime_call;

/// A failed operation: its message, as runc would word it.
#[derive(Debug)]
pub struct Failure(pub String);

impl From<ContainerError> for Failure {
    fn from(e: ContainerError) -> Failure {
        Failure(e.to_string())
    }
}

impl From<isola_sandbox::Error> for Failure {
    fn from(e: isola_sandbox::Error) -> Failure {
        Failure(e.to_string())
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Failure {
        Failure(format!("{e:#}"))
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Failure {
        Failure(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, Failure>;

/// What every operation gets.
pub struct Runtime {
    pub root: PathBuf,
    pub log: log::Log,
    /// Called as `isola-vm`: every bundle runs VM-isolated.
    pub vm_by_name: bool,
    pub paths: Paths,
}

/// Runs one runtime operation; returns the process's exit status.
pub fn main(paths: Paths, args: Vec<String>) -> i32 {
    let vm_by_name = args.first().is_some_and(|a| {
        std::path::Path::new(a)
            .file_name()
            .is_some_and(|n| n == "isola-vm")
    });
    let cli = match RuntimeCli::try_parse_from(&args) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    let rt = Runtime {
        root: cli
            .root
            .clone()
            .unwrap_or_else(|| paths.run.join("runtime")),
        log: log::Log::new(cli.log.clone(), cli.log_format, cli.debug),
        vm_by_name,
        paths,
    };
    if cli.systemd_cgroup {
        rt.log.debug(
            "--systemd-cgroup: cgroups are made through cgroupfs, at the paths systemd would use",
        );
    }
    rt.log.debug(&format!("{:?}", cli.command));
    let result = match cli.command {
        RuntimeCommand::Create(a) => create::create(&rt, &a).map(|_| 0),
        RuntimeCommand::Run {
            create,
            detach,
            keep,
        } => create::run(&rt, &create, detach, keep),
        RuntimeCommand::Start { id } => ops::start(&rt, &id).map(|()| 0),
        RuntimeCommand::State { id } => ops::state(&rt, &id).map(|()| 0),
        RuntimeCommand::Kill { all, id, signal } => ops::kill(&rt, &id, &signal, all).map(|()| 0),
        RuntimeCommand::Delete { force, id } => ops::delete(&rt, &id, force).map(|()| 0),
        RuntimeCommand::Exec(a) => exec::exec(&rt, &a),
        RuntimeCommand::List { format, quiet } => ops::list(&rt, format, quiet).map(|()| 0),
        RuntimeCommand::Ps {
            format,
            id,
            ps_args,
        } => ops::ps(&rt, &id, format, &ps_args).map(|()| 0),
        RuntimeCommand::Pause { id } => ops::pause(&rt, &id, true).map(|()| 0),
        RuntimeCommand::Resume { id } => ops::pause(&rt, &id, false).map(|()| 0),
        RuntimeCommand::Features => features::features().map(|()| 0),
        RuntimeCommand::Spec { bundle } => spec::spec(&bundle).map(|()| 0),
    };
    match result {
        Ok(code) => code,
        Err(Failure(msg)) => {
            rt.log.error(&msg);
            eprintln!("{msg}");
            1
        }
    }
}
