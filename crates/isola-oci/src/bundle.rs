//! Image config → OCI runtime bundle (`config.json` + `rootfs/`), following the image spec's
//! conversion rules: Entrypoint + Cmd → args, Env merged, WorkingDir → cwd, User resolved from
//! the rootfs's own /etc/passwd and /etc/group.

use crate::seccomp_profile::default_profile;
use crate::store::Image;
use crate::users::resolve_user;
use isola_inroot::Root;
use oci_spec::runtime::{
    Capability, LinuxCapabilities, LinuxCpu, LinuxDeviceCgroup, LinuxDeviceType, LinuxMemory,
    LinuxNamespaceType, LinuxPids, LinuxResources, Mount, Spec, User,
};
use std::collections::HashSet;
use std::path::Path;

/// What the user asked for on `isola run`, on top of the image's own config.
#[derive(Clone, Debug, Default)]
pub struct RunSettings {
    /// Replaces the image's Cmd when not empty.
    pub cmd: Vec<String>,
    pub entrypoint: Option<Vec<String>>,
    /// `KEY=VALUE` (or `KEY` alone: taken from isola's own environment, as docker does).
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub hostname: String,
    pub terminal: bool,
    /// Bytes.
    pub memory: Option<i64>,
    /// CPU quota in CPUs (1.5 = one and a half).
    pub cpus: Option<f64>,
    pub pids_limit: Option<i64>,
    /// Cgroup path relative to each hierarchy's root, e.g. `/isola/<id>` (`None`: the
    /// runtime's default).
    pub cgroups_path: Option<String>,
    pub seccomp: Seccomp,
    pub network: Network,
    /// More mounts (binds, volumes, tmpfs), in order, after the network's files.
    pub mounts: Vec<Mount>,
    /// The root filesystem read-only (`--read-only`).
    pub read_only_root: bool,
}

/// Which network the workload is on (`--network`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Network {
    /// Its own network namespace, loopback only.
    #[default]
    None,
    /// The host's network namespace (the container level only), with the host's
    /// /etc/resolv.conf and /etc/hosts bound in read-only, as docker does.
    Host,
    /// Its own network namespace, put on a bridge network once it exists; its /etc/hosts and
    /// /etc/resolv.conf are these files of the container's (written once its address is known).
    Bridge {
        hosts: std::path::PathBuf,
        resolv_conf: std::path::PathBuf,
    },
}

/// A bind mount of one file.
fn bind_file(dest: &str, src: &Path, read_only: bool) -> Mount {
    let mut m = Mount::default();
    m.set_destination(dest.into());
    m.set_typ(Some("bind".into()));
    m.set_source(Some(src.to_path_buf()));
    let mut options = vec!["rbind", if read_only { "ro" } else { "rw" }];
    options.extend(["nosuid", "nodev", "noexec"]);
    m.set_options(Some(options.into_iter().map(String::from).collect()));
    m
}

/// Which seccomp filter the workload runs under (`--security-opt seccomp=...`).
#[derive(Clone, Debug, Default)]
pub enum Seccomp {
    /// isola's default profile.
    #[default]
    Default,
    /// No filter.
    Unconfined,
    /// A profile file's contents (Docker's JSON format).
    Profile(crate::seccomp_profile::Profile),
}

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("no command: the image has no Entrypoint or Cmd, so give one after the image name")]
    NoCommand,
    #[error("the command is an empty string: give the program to run")]
    EmptyCommand,
    #[error("--workdir {0:?}: must be an absolute path")]
    RelativeWorkdir(String),
    #[error(transparent)]
    User(#[from] crate::users::UserError),
    #[error("{0}")]
    Invalid(String),
}

/// The capabilities a container's root keeps: the default set of Docker and containerd.
/// CAP_MKNOD is safe with the device allowlist: a node can be made, but not opened.
pub const DEFAULT_CAPABILITIES: &[Capability] = &[
    Capability::Mknod,
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

const PERIOD_US: u64 = 100_000;

/// `linux.resources.devices`: deny every device. The runtime adds the nodes it makes in every
/// container's /dev after this, as runc and isola's container level do.
pub fn default_device_rules() -> Vec<LinuxDeviceCgroup> {
    let mut d = LinuxDeviceCgroup::default();
    d.set_allow(false);
    d.set_typ(Some(LinuxDeviceType::A));
    d.set_access(Some("rwm".to_string()));
    vec![d]
}

fn env_key(kv: &str) -> &str {
    kv.split_once('=').map_or(kv, |(k, _)| k)
}

fn set_env(env: &mut Vec<String>, kv: String) {
    let key = env_key(&kv).to_string();
    env.retain(|e| env_key(e) != key);
    env.push(kv);
}

/// Builds the runtime spec for running `image` (unpacked at `rootfs`) with `settings`.
pub fn runtime_spec(
    image: &Image,
    rootfs: &Path,
    settings: &RunSettings,
) -> Result<Spec, BundleError> {
    let config = image.config.config().clone().unwrap_or_default();

    let entrypoint = settings
        .entrypoint
        .clone()
        .or_else(|| config.entrypoint().clone())
        .unwrap_or_default();
    let cmd = if settings.cmd.is_empty() {
        // An entrypoint given on the command line drops the image's Cmd, as docker does.
        if settings.entrypoint.is_some() {
            Vec::new()
        } else {
            config.cmd().clone().unwrap_or_default()
        }
    } else {
        settings.cmd.clone()
    };
    let args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    match args.first() {
        None => return Err(BundleError::NoCommand),
        Some(first) if first.is_empty() => return Err(BundleError::EmptyCommand),
        Some(_) => {}
    }

    let root = Root::open(rootfs)
        .map_err(|e| BundleError::Invalid(format!("{}: {e}", rootfs.display())))?;
    let user_spec = settings
        .user
        .clone()
        .or_else(|| config.user().clone())
        .unwrap_or_default();
    let user = resolve_user(&root, &user_spec)?;

    let mut env: Vec<String> = Vec::new();
    set_env(
        &mut env,
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
    );
    set_env(&mut env, format!("HOSTNAME={}", settings.hostname));
    for kv in config.env().clone().unwrap_or_default() {
        set_env(&mut env, kv);
    }
    for kv in &settings.env {
        if kv.contains('=') {
            set_env(&mut env, kv.clone());
        } else if let Ok(v) = std::env::var(kv) {
            set_env(&mut env, format!("{kv}={v}"));
        }
    }
    if !env.iter().any(|e| env_key(e) == "HOME") {
        env.push(format!("HOME={}", user.home));
    }
    if settings.terminal && !env.iter().any(|e| env_key(e) == "TERM") {
        env.push("TERM=xterm".to_string());
    }

    let cwd = settings
        .workdir
        .clone()
        .or_else(|| config.working_dir().clone().filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".to_string());
    if !cwd.starts_with('/') {
        return Err(BundleError::RelativeWorkdir(cwd));
    }

    let mut spec = Spec::default();
    spec.set_hostname(Some(settings.hostname.clone()));
    let mut root_cfg = spec.root().clone().unwrap_or_default();
    root_cfg.set_path("rootfs".into());
    root_cfg.set_readonly(Some(settings.read_only_root));
    spec.set_root(Some(root_cfg));

    let mut process = spec.process().clone().unwrap_or_default();
    process.set_args(Some(args));
    process.set_env(Some(env));
    process.set_cwd(cwd.into());
    process.set_terminal(Some(settings.terminal));
    let mut u = User::default();
    u.set_uid(user.uid);
    u.set_gid(user.gid);
    if !user.additional_gids.is_empty() {
        u.set_additional_gids(Some(user.additional_gids.clone()));
    }
    process.set_user(u);
    let caps: HashSet<Capability> = DEFAULT_CAPABILITIES.iter().copied().collect();
    let seccomp = match &settings.seccomp {
        Seccomp::Default => Some(default_profile().resolve(&caps)),
        Seccomp::Unconfined => None,
        Seccomp::Profile(p) => Some(p.resolve(&caps)),
    };
    let mut c = LinuxCapabilities::default();
    c.set_bounding(Some(caps.clone()));
    c.set_effective(Some(caps.clone()));
    c.set_permitted(Some(caps));
    c.set_inheritable(Some(HashSet::new()));
    c.set_ambient(Some(HashSet::new()));
    process.set_capabilities(Some(c));
    process.set_no_new_privileges(Some(true));
    spec.set_process(Some(process));

    let mut linux = spec.linux().clone().unwrap_or_default();
    linux.set_cgroups_path(settings.cgroups_path.clone().map(Into::into));
    let mut resources = LinuxResources::default();
    resources.set_devices(Some(default_device_rules()));
    if let Some(limit) = settings.memory {
        let mut m = LinuxMemory::default();
        m.set_limit(Some(limit));
        m.set_swap(Some(limit)); // memory + swap = memory: no swapping past the limit
        resources.set_memory(Some(m));
    }
    if let Some(cpus) = settings.cpus {
        let mut c = LinuxCpu::default();
        c.set_period(Some(PERIOD_US));
        c.set_quota(Some((cpus * PERIOD_US as f64).round() as i64));
        resources.set_cpu(Some(c));
    }
    if let Some(p) = settings.pids_limit {
        let mut pids = LinuxPids::default();
        pids.set_limit(p);
        resources.set_pids(Some(pids));
    }
    linux.set_resources(Some(resources));
    linux.set_seccomp(seccomp);
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    match &settings.network {
        Network::None => {}
        Network::Host => {
            let namespaces = linux.namespaces().clone().unwrap_or_default();
            linux.set_namespaces(Some(
                namespaces
                    .into_iter()
                    .filter(|n| n.typ() != LinuxNamespaceType::Network)
                    .collect(),
            ));
            for file in ["/etc/resolv.conf", "/etc/hosts"] {
                if Path::new(file).is_file() {
                    mounts.push(bind_file(file, Path::new(file), true));
                }
            }
        }
        Network::Bridge { hosts, resolv_conf } => {
            mounts.push(bind_file("/etc/hosts", hosts, false));
            mounts.push(bind_file("/etc/resolv.conf", resolv_conf, false));
        }
    }
    mounts.extend(settings.mounts.iter().cloned());
    spec.set_mounts(Some(mounts));
    spec.set_linux(Some(linux));

    let mut annotations = spec.annotations().clone().unwrap_or_default();
    annotations.insert(
        "org.opencontainers.image.ref.name".to_string(),
        format!("{}:{}", image.name, image.tag),
    );
    annotations.insert(
        "org.opencontainers.image.manifest.digest".to_string(),
        image.manifest_digest.to_string(),
    );
    spec.set_annotations(Some(annotations));
    Ok(spec)
}

/// Writes `config.json` into `dir`.
pub fn write_config(dir: &Path, spec: &Spec) -> Result<(), BundleError> {
    let bytes = serde_json::to_vec_pretty(spec).map_err(|e| BundleError::Invalid(e.to_string()))?;
    let path = dir.join("config.json");
    std::fs::write(&path, bytes)
        .map_err(|e| BundleError::Invalid(format!("{}: {e}", path.display())))
}
