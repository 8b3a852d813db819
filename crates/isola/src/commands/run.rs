//! `isola run`: image → bundle → container → exit status, and nothing left behind.

use crate::cli::{Isolation, ProcessArgs, RunArgs};
use crate::commands::launch;
use crate::limits;
use crate::paths::Paths;
use crate::records::{self, Launch, Record};
use anyhow::{bail, Context, Result};
use isola_net::ports::PortSpec;
use isola_oci::bundle::{runtime_spec, write_config, Network, RunSettings, Seccomp};
use isola_oci::rootfs::chain_id;
use isola_oci::seccomp_profile::Profile;
use isola_oci::{Image, Reference, Store};
use isola_sandbox::Level;
use std::path::Path;

/// What `--network` asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetworkRequest {
    None,
    Host,
    /// A network by name or id (`bridge`: the default one).
    Named(String),
}

/// What `--network` asks for; without it, `default`.
pub fn network_request(p: &ProcessArgs, default: NetworkRequest) -> NetworkRequest {
    match p.network.as_deref() {
        None => default,
        Some("none") => NetworkRequest::None,
        Some("host") => NetworkRequest::Host,
        Some(name) => NetworkRequest::Named(name.to_string()),
    }
}

/// Validates the process flags and turns them into bundle settings (before anything is made).
pub fn settings(
    p: &ProcessArgs,
    command: &[String],
    hostname: &str,
    terminal: bool,
    cpu_range: limits::CpuRange,
    network: Network,
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
    // The files first, so a -e given beside them wins, as docker's does.
    let mut env = env_files(&p.env_file)?;
    env.extend(p.env.iter().cloned());
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
    // As docker: on the host's network, the host's name unless --hostname says otherwise.
    let hostname = match (&p.hostname, &network) {
        (Some(h), _) => h.clone(),
        (None, Network::Host) => nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| hostname.to_string()),
        (None, _) => hostname.to_string(),
    };
    Ok(RunSettings {
        cmd: command.to_vec(),
        entrypoint: p.entrypoint.as_ref().map(|e| vec![e.clone()]),
        env,
        workdir: p.workdir.clone(),
        user: p.user.clone(),
        hostname,
        terminal,
        memory,
        cpus,
        pids_limit,
        cgroups_path: None,
        seccomp,
        network,
        mounts: Vec::new(),
        read_only_root: false,
    })
}

/// `--label KEY=VALUE` (or KEY: an empty value), as docker takes them.
fn labels(given: &[String]) -> Result<std::collections::BTreeMap<String, String>> {
    let mut out = std::collections::BTreeMap::new();
    for l in given {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        if k.is_empty() {
            bail!("--label {l:?}: expected KEY=VALUE or KEY");
        }
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

/// `--env-file FILE`: KEY=VALUE lines (KEY alone: from isola's environment, if set there);
/// blank lines and `#` comments skipped. A bad line is named by file and line number.
fn env_files(files: &[std::path::PathBuf]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for f in files {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("--env-file {}", f.display()))?;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if line.starts_with('=')
                || line
                    .split('=')
                    .next()
                    .is_some_and(|k| k.contains(char::is_whitespace))
            {
                bail!(
                    "--env-file {} line {}: {line:?}: expected KEY=VALUE or KEY",
                    f.display(),
                    n + 1
                );
            }
            out.push(line.to_string());
        }
    }
    Ok(out)
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

/// Where `isola run` bounds a sandbox (its container, or its VMM process): removed by
/// `records::cleanup` if isola dies.
pub fn cgroup_path(id: &str) -> String {
    format!("/isola/{id}")
}

pub fn run(paths: &Paths, a: RunArgs) -> Result<i32> {
    let level = match a.isolation {
        Isolation::Container => Level::Container,
        Isolation::Vm => Level::Vm,
    };
    let id = records::new_id()?;
    let short = id[..12].to_string();
    let cpu_range = match level {
        Level::Container => limits::CpuRange::Host,
        Level::Vm => limits::CpuRange::Vm(isola_vmm::vm::MAX_CPUS),
    };
    let dir = paths.bundles().join(&id);
    // docker's default: the pre-defined bridge network.
    let default = NetworkRequest::Named(isola_net::store::DEFAULT_NETWORK.into());
    let request = network_request(&a.process, default);
    if let NetworkRequest::Named(name) = &request {
        paths.network_store().get(name)?; // it exists
    }
    let network = match &request {
        NetworkRequest::None => Network::None,
        NetworkRequest::Host => Network::Host,
        NetworkRequest::Named(_) => Network::Bridge {
            hosts: dir.join("hosts"),
            resolv_conf: dir.join("resolv.conf"),
        },
    };
    for p in &a.publish {
        p.parse::<PortSpec>()?;
    }
    if let (Some(p), NetworkRequest::None | NetworkRequest::Host) = (a.publish.first(), &request) {
        let net = a.process.network.as_deref().unwrap_or("none");
        bail!("-p {p}: publishing a port needs a bridge network (--network bridge or a network of `isola network ls`), not --network {net}");
    }
    let requests = crate::volumes::request::parse_all(&a.volume, &a.mount, &a.tmpfs)?;
    let mut settings = settings(&a.process, &a.command, &short, a.tty, cpu_range, network)?;
    if a.explain {
        isola_process::explain::enable();
    }
    if level == Level::Vm {
        if request == NetworkRequest::Host {
            bail!("--network host: a VM has its own kernel and network stack; host networking is for --isolation container");
        }
        crate::vm_preflight::preflight(paths)?;
    }
    let labels = labels(&a.label)?;
    let restart: crate::restart_policy::RestartPolicy = match &a.restart {
        Some(r) => r.parse()?,
        None => Default::default(),
    };
    if a.rm && restart != Default::default() {
        bail!("--restart {restart} with --rm: a container removed when it ends cannot be started again");
    }
    if let Some(s) = &a.stop_signal {
        crate::commands::lifecycle::parse_signal(s)
            .map_err(|e| anyhow::anyhow!("--stop-signal: {e}"))?;
    }
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
    settings.cgroups_path = Some(cgroup_path(&id));
    let mounts = crate::volumes::resolve(paths, &requests)?;
    settings.mounts = crate::volumes::oci_mounts(&mounts)?;
    if a.init || a.probe {
        let guest = crate::vm_preflight::vm_config(paths).guest_dir;
        settings.mounts.push(crate::tiny_init::mount(guest)?);
    }
    settings.read_only_root = a.read_only;

    let mut record = Record {
        id: id.clone(),
        name,
        image: format!("{}:{}", image.name, image.tag),
        command: a.command.clone(),
        isolation: level.as_str().into(),
        created: records::now(),
        status: "creating".into(),
        auto_remove: a.rm,
        owner_pid: std::process::id() as i32,
        owner_start_time: isola_container::state::start_time(std::process::id() as i32)
            .unwrap_or(0),
        mounts,
        detached: a.detach,
        labels,
        stop_signal: a.stop_signal.clone(),
        stop_timeout: a.stop_timeout,
        launch: Launch {
            network: match &request {
                NetworkRequest::None => "none".into(),
                NetworkRequest::Host => "host".into(),
                NetworkRequest::Named(n) => n.clone(),
            },
            publish: a.publish.clone(),
            restart: restart.to_string(),
            lower: lower.clone(),
            chain: chain_id(&image)?.hex().to_string(),
            vm_timeout: a.timeout,
            interactive: a.interactive,
        },
        ..Default::default()
    };
    // Held until this isola ends: the container's directory is ours while we live.
    let _claim = records::claim(paths, &record)?;
    if a.detach {
        // The monitor of `run -d`: from here on its output (and the workload's) is the log.
        crate::detach::log_to(&dir.join(crate::container_log::FILE))?;
        if a.interactive {
            crate::detach::hold_stdin_open()?;
        }
    }
    let result = (|| {
        crate::volumes::prepare(paths, &record.mounts, &lower)?;
        let mut spec = runtime_spec(&image, &lower, &settings)?;
        record.command = spec
            .process()
            .as_ref()
            .and_then(|p| p.args().clone())
            .unwrap_or_default();
        if a.probe {
            crate::tiny_init::probe(&mut spec);
        } else if a.init {
            crate::tiny_init::wrap(&mut spec);
        }
        write_config(&dir, &spec)?;
        let opts = launch::Options {
            interactive: a.interactive,
            detached: a.detach,
            debug: a.debug,
            timings: a.timings,
        };
        launch::until_ended(paths, &mut record, &opts)
    })();
    launch::record_end(paths, &mut record, &result)?;
    result
}
