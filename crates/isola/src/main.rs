//! isola: run one OCI image container-isolated or VM-isolated.

mod cli;
mod commands;
mod container_log;
mod detach;
mod exec_process;
mod leftovers;
mod limits;
mod paths;
mod plot;
mod records;
mod restart_policy;
mod runtime;
mod tiny_init;
mod vm_preflight;
mod volumes;

use clap::Parser;
use cli::{BenchCommand, Cli, Command, ImageCommand, NetworkCommand, VolumeCommand};

/// An error that ends isola with a specific exit status (docker's convention: 125 for isola's
/// own failures, 126/127 when the command cannot run, otherwise the workload's status).
#[derive(Debug)]
pub struct Exit(pub i32, pub String);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.1)
    }
}

impl std::error::Error for Exit {}

/// When isola started, for `--timings`.
pub static STARTED: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

fn main() {
    STARTED.get_or_init(std::time::Instant::now);
    detach::init();
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let as_vm_runtime = args
        .first()
        .is_some_and(|a| std::path::Path::new(a).ends_with("isola-vm"));
    // Read only when `kill` or `exec` could be docker's: is a name one of isola's containers?
    let known = std::cell::OnceCell::new();
    let is_isola_container = |name: &str| {
        known
            .get_or_init(|| records::list(&paths::Paths::from_env()))
            .iter()
            .any(|r: &records::Record| r.name == name || r.id == name || r.id[..12] == *name)
    };
    if as_vm_runtime || runtime::is_runtime_call(&args[1..], &is_isola_container) {
        let paths = paths::Paths::from_env();
        paths.secure();
        std::process::exit(runtime::main(paths, args));
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 125 } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let paths = paths::Paths::from_env();
    paths.secure();
    let result = match cli.command {
        Command::Run(a) if a.detach && !detach::is_monitor() => {
            detach::start(std::env::args_os().skip(1).collect()).map(|o| match o {
                detach::Outcome::Running(id) => {
                    println!("{id}");
                    0
                }
                detach::Outcome::Failed(code) => code,
            })
        }
        Command::Run(a) => commands::run::run(&paths, *a),
        Command::Import(a) => commands::images::import(&paths, a),
        Command::Pull(a) => commands::pull::pull(&paths, a),
        Command::Push(a) => commands::push::push(&paths, a),
        Command::Tag { source, target } => commands::push::tag(&paths, &source, &target),
        Command::Images => commands::images::images(&paths),
        Command::Rmi { image } => commands::images::rmi(&paths, &image),
        Command::Image(c) => match c {
            ImageCommand::Inspect { images } => commands::image::inspect(&paths, &images),
            ImageCommand::Prune => commands::image::prune(&paths),
            ImageCommand::Ls => commands::images::images(&paths),
            ImageCommand::Rm { image } => commands::images::rmi(&paths, &image),
        },
        Command::Ps { all, quiet } => commands::containers::ps(&paths, all, quiet),
        Command::Rm { containers, force } => commands::containers::rm(&paths, &containers, force),
        Command::Stop { time, containers } => commands::lifecycle::stop(&paths, &containers, time),
        Command::Kill { signal, containers } => {
            commands::lifecycle::kill(&paths, &containers, &signal)
        }
        Command::Compare(a) => commands::compare::compare(&paths, a),
        Command::Bench(BenchCommand::Pagerank(a)) => commands::bench_pagerank::pagerank(&paths, a),
        Command::Cp { archive, src, dest } => commands::cp::cp(&paths, &src, &dest, archive),
        Command::Start { attach, containers } => {
            commands::start::start(&paths, &containers, attach)
        }
        Command::Restart { time, containers } => {
            commands::start::restart(&paths, &containers, time)
        }
        Command::Wait { containers } => commands::lifecycle::wait(&paths, &containers),
        Command::Exec(a) => commands::exec::exec(&paths, a),
        Command::Logs {
            follow,
            timestamps,
            tail,
            since,
            container,
        } => commands::logs::logs(
            &paths,
            &container,
            follow,
            timestamps,
            tail,
            since.as_deref(),
        ),
        Command::Inspect { containers } => commands::inspect::inspect(&paths, &containers),
        Command::Bundle(a) => commands::bundle::bundle(&paths, a),
        Command::Network(c) => match c {
            NetworkCommand::Create { subnet, name } => {
                commands::network::create(&paths, &name, subnet.as_deref())
            }
            NetworkCommand::Ls { quiet } => commands::network::ls(&paths, quiet),
            NetworkCommand::Rm { names } => commands::network::rm(&paths, &names),
            NetworkCommand::Inspect { names } => commands::network::inspect(&paths, &names),
        },
        Command::Volume(c) => match c {
            VolumeCommand::Create { name } => commands::volume::create(&paths, name.as_deref()),
            VolumeCommand::Ls { quiet } => commands::volume::ls(&paths, quiet),
            VolumeCommand::Rm { names } => commands::volume::rm(&paths, &names),
            VolumeCommand::Inspect { names } => commands::volume::inspect(&paths, &names),
            VolumeCommand::Prune { all } => commands::volume::prune(&paths, all),
        },
        Command::Cleanup => commands::containers::cleanup(&paths),
        Command::Doctor { json } => commands::doctor::doctor(&paths, json),
    };
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            let (code, msg) = match e.downcast_ref::<Exit>() {
                Some(Exit(code, msg)) => (*code, msg.clone()),
                None => (125, format!("{e:#}")),
            };
            if detach::is_monitor() {
                detach::error(&msg);
            } else if !msg.is_empty() {
                eprintln!("isola: {msg}");
            }
            code
        }
    };
    if detach::is_monitor() {
        detach::finish();
    }
    std::process::exit(code);
}
