//! `isola run`: image → bundle → container → exit status, and nothing left behind.

use crate::cli::{Isolation, ProcessArgs, RunArgs};
use crate::paths::Paths;
use crate::records::{self, Record};
use crate::{limits, Exit};
use anyhow::{bail, Context, Result};
use isola_container::{monitor, Attach, CreateOptions};
use isola_oci::bundle::{runtime_spec, write_config, RunSettings, Seccomp};
use isola_oci::seccomp_profile::Profile;
use isola_oci::{overlay, Image, Reference, Store};
use std::path::Path;

/// Validates the process flags and turns them into bundle settings (before anything is made).
pub fn settings(
    p: &ProcessArgs,
    command: &[String],
    hostname: &str,
    terminal: bool,
    cpu_range: limits::CpuRange,
) -> Result<RunSettings> {
    let memory = p.memory.as_deref().map(limits::parse_memory).transpose()?;
    let cpus = p
        .cpus
        .as_deref()
        .map(|c| limits::parse_cpus(c, cpu_range))
        .transpose()?;
    let pids_limit = limits::parse_pids(p.pids_limit.as_deref())?;
    if let Some(w) = &p.workdir {
        if !w.starts_with('/') {
            bail!("--workdir {w:?}: must be an absolute path");
        }
    }
    if let Some(h) = &p.hostname {
        if h.is_empty()
            || h.len() > 64
            || !h
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b))
        {
            bail!("--hostname {h:?}: expected 1-64 letters, digits, '-' or '.'");
        }
    }
    for kv in &p.env {
        if kv.is_empty() || kv.starts_with('=') {
            bail!("--env {kv:?}: expected KEY=VALUE or KEY");
        }
    }
    let mut seccomp = Seccomp::Default;
    for opt in &p.security_opt {
        seccomp = match opt.split_once(['=', ':']) {
            Some(("seccomp", "unconfined")) => Seccomp::Unconfined,
            Some(("seccomp", path)) if !path.is_empty() => Seccomp::Profile(
                Profile::load(Path::new(path)).map_err(|e| anyhow::anyhow!("--security-opt: {e}"))?,
            ),
            _ if opt == "no-new-privileges" || opt == "no-new-privileges=true" => seccomp,
            _ => bail!(
                "--security-opt {opt:?}: expected seccomp=unconfined, seccomp=PROFILE.json or no-new-privileges"
            ),
        };
    }
    Ok(RunSettings {
        cmd: command.to_vec(),
        entrypoint: p.entrypoint.as_ref().map(|e| vec![e.clone()]),
        env: p.env.clone(),
        workdir: p.workdir.clone(),
        user: p.user.clone(),
        hostname: p.hostname.clone().unwrap_or_else(|| hostname.to_string()),
        terminal,
        memory,
        cpus,
        pids_limit,
        cgroups_path: None,
        seccomp,
    })
}

fn valid_name(n: &str) -> bool {
    let b = n.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c))
}

/// Finds the image and its unpacked rootfs.
pub fn image_and_rootfs(paths: &Paths, image: &str) -> Result<(Store, Image, std::path::PathBuf)> {
    let reference: Reference = image.parse()?;
    let store = Store::open(paths.images())?;
    let cache = paths.rootfs();
    let image = match store.resolve(&reference) {
        Err(isola_oci::StoreError::NotFound(what)) => {
            // As docker does: an image that is not here is pulled (and unpacked) first.
            let opts = isola_oci::registry::PullOptions::default();
            crate::commands::pull::pull_image(&store, &cache, &reference, &opts, false)
                .map_err(|e| anyhow::anyhow!("no such image: {what} here, and {e:#}"))?;
            store.resolve(&reference)?
        }
        other => other?,
    };
    let lower = cache.ensure(&store, &image)?;
    Ok((store, image, lower))
}

pub fn run(paths: &Paths, a: RunArgs) -> Result<i32> {
    if a.isolation == Isolation::Vm {
        crate::commands::run_vm::preflight(paths)?;
    }
    let id = records::new_id()?;
    let short = id[..12].to_string();
    let cpu_range = match a.isolation {
        Isolation::Container => limits::CpuRange::Host,
        Isolation::Vm => limits::CpuRange::Vm(isola_vmm::vm::MAX_CPUS),
    };
    let mut settings = settings(&a.process, &a.command, &short, a.tty, cpu_range)?;
    let name = a.name.clone().unwrap_or_else(|| short.clone());
    if !valid_name(&name) {
        bail!("--name {name:?}: expected letters, digits, '_', '.' or '-', starting with a letter or digit");
    }
    records::cleanup(paths);
    // A quick answer before any pull or unpack; `records::claim` decides, atomically.
    if records::list(paths).iter().any(|r| r.name == name) {
        return Err(records::name_in_use(&name));
    }
    let (_store, image, lower) = image_and_rootfs(paths, &a.image)?;
    if a.isolation == Isolation::Container {
        settings.cgroups_path = Some(format!("/isola/{id}"));
    }

    let dir = paths.bundles().join(&id);
    let mut record = Record {
        id: id.clone(),
        name,
        image: format!("{}:{}", image.name, image.tag),
        command: a.command.clone(),
        isolation: match a.isolation {
            Isolation::Container => "container",
            Isolation::Vm => "vm",
        }
        .into(),
        created: records::now(),
        status: "creating".into(),
        exit_code: None,
        auto_remove: a.rm,
        owner_pid: std::process::id() as i32,
        owner_start_time: isola_container::state::start_time(std::process::id() as i32)
            .unwrap_or(0),
    };
    // Held until this isola ends: the container's directory is ours while we live.
    let _claim = records::claim(paths, &record)?;
    let result = (|| {
        let spec = runtime_spec(&image, &lower, &settings)?;
        record.command = spec
            .process()
            .as_ref()
            .and_then(|p| p.args().clone())
            .unwrap_or_default();
        match a.isolation {
            Isolation::Container => run_container(paths, &a, &dir, &lower, spec, &mut record),
            Isolation::Vm => {
                crate::commands::run_vm::run_vm(paths, &a, &image, &lower, spec, &mut record)
            }
        }
    })();
    let _ = overlay::unmount(&dir.join("rootfs"));
    if a.rm || record.status == "creating" {
        records::remove_bundle(paths, &id)?;
    } else {
        record.status = "exited".into();
        record.exit_code = Some(match &result {
            Ok(c) => *c,
            Err(e) => e.downcast_ref::<Exit>().map_or(125, |x| x.0),
        });
        record.save(paths)?;
    }
    result
}

/// The namespace back end: an overlay rootfs in the bundle directory, then create → start →
/// wait → delete.
fn run_container(
    paths: &Paths,
    a: &RunArgs,
    dir: &Path,
    lower: &Path,
    spec: oci_spec::runtime::Spec,
    record: &mut Record,
) -> Result<i32> {
    prepare_bundle(dir, lower)?;
    write_config(dir, &spec)?;
    monitor::block_signals().context("blocking signals")?;
    let mut container = isola_container::create(&CreateOptions {
        id: &record.id,
        bundle: dir,
        state_root: &paths.states(),
        attach: Attach::Monitor {
            interactive: a.interactive,
        },
    })
    .map_err(|e| Exit(e.exit_code(), e.to_string()))?;
    record.status = "running".into();
    record.save(paths)?;
    let code = match container.start() {
        Ok(()) => container.wait(a.interactive),
        Err(e) => Err(e),
    };
    let deleted = container.delete();
    let code = code.map_err(|e| Exit(e.exit_code(), e.to_string()))?;
    deleted?;
    Ok(code)
}

/// The bundle's writable rootfs: an overlay of the image's rootfs and a fresh upper directory.
fn prepare_bundle(dir: &Path, lower: &Path) -> Result<()> {
    for sub in ["upper", "work", "rootfs"] {
        std::fs::create_dir(dir.join(sub)).with_context(|| dir.join(sub).display().to_string())?;
    }
    overlay::mount(
        lower,
        &dir.join("upper"),
        &dir.join("work"),
        &dir.join("rootfs"),
    )?;
    Ok(())
}
