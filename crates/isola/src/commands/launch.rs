//! Running a made container until it ends for good: its root mounted (container) or its disk
//! found (VM), its network joined, the sandbox created, started and waited for — and all of
//! it again as its restart policy says. `isola run` comes here once it has made the bundle;
//! `isola start` with a container that exited. The bundle (`config.json`, `upper/`) is the
//! container's own across runs; a VM's root changes live in its memory and end with each run.

use crate::paths::Paths;
use crate::records::{self, Record};
use crate::restart_policy::{self, RestartPolicy};
use crate::Exit;
use anyhow::{Context, Result};
use isola_net::ports::PortSpec;
use isola_oci::overlay;
use isola_sandbox::vm::VmConfig;
use isola_sandbox::{Attach, CreateOptions, Level};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::path::Path;
use std::time::{Duration, Instant};

/// How this isola runs it (the rest is in the record).
pub struct Options {
    pub interactive: bool,
    /// This isola is a detached workload's monitor: it says when the workload runs.
    pub detached: bool,
    pub debug: bool,
    pub timings: bool,
}

/// Written by `isola stop` and `kill` in the container's directory before they signal: the
/// workload was ended on purpose, so its restart policy does not start it again.
const STOP_REQUESTED: &str = "stop-requested";

/// Says to the monitor of `r` that it is being stopped.
pub fn request_stop(paths: &Paths, r: &Record) {
    let _ = std::fs::write(r.dir(paths).join(STOP_REQUESTED), b"");
}

/// Whether a stop was asked for (and forgets it).
fn take_stop_request(dir: &Path) -> bool {
    std::fs::remove_file(dir.join(STOP_REQUESTED)).is_ok()
}

/// Runs the container until it ends and its restart policy says it stays ended; records each
/// exit and restart. Its result: the last run's.
pub fn until_ended(paths: &Paths, record: &mut Record, opts: &Options) -> Result<i32> {
    let policy: RestartPolicy = record.launch.restart.parse().unwrap_or_default();
    let dir = record.dir(paths);
    let _ = take_stop_request(&dir); // from an earlier life
    let mut streak: u32 = 0;
    loop {
        let began = Instant::now();
        let result = once(paths, record, opts);
        let _ = overlay::unmount(&dir.join("rootfs"));
        let stopped = take_stop_request(&dir);
        // Only a workload that ran is started again: isola's own failures end it.
        let Ok(code) = result else { return result };
        if !policy.restarts(code, record.restart_count, stopped) {
            return result;
        }
        streak = if began.elapsed() >= restart_policy::STEADY {
            0
        } else {
            streak + 1
        };
        record.status = "restarting".into();
        record.exit_code = Some(code);
        record.finished_ns = Some(records::now_ns());
        record.save(paths)?;
        if !pause_unless_stopped(&dir, restart_policy::delay(streak.saturating_sub(1))) {
            return result;
        }
        record.restart_count += 1;
    }
}

/// Waits `delay` before a restart; false if the workload was stopped meanwhile (`isola stop`,
/// or a signal that ends: the monitor keeps those blocked, so they wait here to be read).
fn pause_unless_stopped(dir: &Path, delay: Duration) -> bool {
    let mut ending = SigSet::empty();
    for s in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        ending.add(s);
    }
    let signals = SignalFd::with_flags(&ending, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC);
    let deadline = Instant::now() + delay;
    loop {
        if take_stop_request(dir) {
            return false;
        }
        if let Ok(fd) = &signals {
            if matches!(fd.read_signal(), Ok(Some(_))) {
                return false;
            }
        }
        if Instant::now() >= deadline {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One run: root, network, sandbox.
fn once(paths: &Paths, record: &mut Record, opts: &Options) -> Result<i32> {
    let level = Level::recorded(&record.isolation);
    let dir = record.dir(paths);
    let lower = &record.launch.lower;
    if !isola_oci::rootfs::RootfsCache::is_complete(lower.parent().unwrap_or(lower)) {
        return Err(Exit(
            125,
            format!(
                "container {}: its image's root filesystem ({}) is gone (image removed or pruned); `isola pull {}` and run it anew",
                record.name,
                lower.display(),
                record.image
            ),
        )
        .into());
    }
    let mut vm = crate::vm_preflight::vm_config(paths);
    vm.timeout = record.launch.vm_timeout;
    vm.debug = opts.debug;
    vm.timings = opts
        .timings
        .then(|| crate::STARTED.get().copied())
        .flatten();
    match level {
        Level::Container => mount_root(&dir, lower)?,
        Level::Vm => {
            crate::vm_preflight::preflight(paths)?;
            let bar = crate::commands::step_progress::StepBar::bytes("building the VM's root disk");
            let disk = isola_sandbox::vm::disk::shared(
                &paths.vm_images(),
                &record.launch.chain,
                lower,
                &|done, total| bar.set(done, total),
            )
            .map_err(|e| Exit(125, format!("--isolation vm: root disk: {e}")))?;
            drop(bar);
            vm.shared_disk = Some(disk);
        }
    }
    let network = match record.launch.network.as_str() {
        "" | "none" | "host" => None,
        name => {
            crate::commands::run_network::write_files(&dir)?;
            Some(paths.network_store().get(name)?)
        }
    };
    let ports: Vec<PortSpec> = record
        .launch
        .publish
        .iter()
        .map(|p| p.parse())
        .collect::<Result<_, _>>()?;
    let network = network.as_ref().map(|n| (n, ports.as_slice()));
    run_sandbox(paths, opts, level, &dir, &vm, network, record)
}

/// The container's writable root: an overlay of the image's rootfs and its upper directory
/// (made on its first run, the same one on every later run).
pub fn mount_root(dir: &Path, lower: &Path) -> Result<()> {
    for sub in ["upper", "work", "rootfs"] {
        match std::fs::create_dir(dir.join(sub)) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                return Err(e).with_context(|| dir.join(sub).display().to_string())
            }
            _ => {}
        }
    }
    isola_process::explain::say(|| {
        format!(
            "the root: an overlay mount on {} — lowerdir {} (the image, shared, read-only), upperdir {} (this container's writes)",
            dir.join("rootfs").display(),
            lower.display(),
            dir.join("upper").display()
        )
    });
    overlay::mount(
        lower,
        &dir.join("upper"),
        &dir.join("work"),
        &dir.join("rootfs"),
    )?;
    Ok(())
}

/// The bundle in `dir`, as a sandbox at `level`: create → start → wait → delete.
fn run_sandbox(
    paths: &Paths,
    opts: &Options,
    level: Level,
    dir: &Path,
    vm: &VmConfig,
    network: Option<(&isola_net::Network, &[PortSpec])>,
    record: &mut Record,
) -> Result<i32> {
    // isola's own failures at the VM level say which level failed.
    let failed = |e: isola_sandbox::Error| {
        let prefix = match (&e, level) {
            (isola_sandbox::Error::Container(_), _) | (_, Level::Container) => "",
            _ => "--isolation vm: ",
        };
        Exit(e.exit_code(), format!("{prefix}{e}"))
    };
    // --timings at the container level: when each step ended, from isola's start (a VM's
    // are the VM's own, printed as it ends).
    let mark = |what: &str| {
        if let (true, Level::Container, Some(t0)) = (opts.timings, level, crate::STARTED.get()) {
            eprintln!(
                "timings: {what} {:.1} ms",
                t0.elapsed().as_secs_f64() * 1000.0
            );
        }
    };
    mark("sandbox create");
    let mut sandbox = isola_sandbox::create(&CreateOptions {
        id: &record.id,
        bundle: dir,
        state_root: &paths.states(),
        level,
        attach: Attach::Monitor {
            interactive: opts.interactive,
        },
        console_socket: None,
        vm,
    })
    .map_err(failed)?;
    // On its network before it starts (as CNI does between create and start).
    let attachment = match network {
        None => None,
        Some((n, ports)) => {
            match crate::commands::run_network::join(paths, n, ports, dir, record, sandbox.as_mut())
            {
                Ok(att) => Some(att),
                Err(e) => {
                    let _ = sandbox.delete();
                    return Err(e);
                }
            }
        }
    };
    record.ports = attachment
        .iter()
        .flat_map(|a| a.ports.iter().map(|p| p.to_string()))
        .collect();
    record.status = "running".into();
    record.exit_code = None;
    record.oom_killed = false;
    record.started_ns = Some(records::now_ns());
    record.finished_ns = None;
    record.save(paths)?;
    mark("sandbox created");
    let code = match sandbox.start() {
        Ok(()) => {
            mark("workload start");
            if opts.detached {
                crate::detach::started(&record.id);
            }
            sandbox.wait()
        }
        Err(e) => Err(e),
    };
    mark("workload exit");
    record.oom_killed = sandbox.oom_killed();
    let deleted = sandbox.delete();
    if let Some(att) = &attachment {
        crate::commands::run_network::leave(paths, att, &record.name);
    }
    mark("sandbox gone");
    let code = code.map_err(failed)?;
    deleted.map_err(failed)?;
    Ok(code)
}

/// Records how it ended: the exit, or the container removed (`--rm`, or never made whole).
pub fn record_end(paths: &Paths, record: &mut Record, result: &Result<i32>) -> Result<()> {
    let _ = overlay::unmount(&record.dir(paths).join("rootfs"));
    if record.auto_remove || record.status == "creating" {
        return records::remove_bundle(paths, &record.id);
    }
    record.status = "exited".into();
    record.finished_ns = Some(records::now_ns());
    record.exit_code = Some(match result {
        Ok(c) => *c,
        Err(e) => e.downcast_ref::<Exit>().map_or(125, |x| x.0),
    });
    record.save(paths)
}
