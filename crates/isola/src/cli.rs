//! The command line: docker-like verbs over the image store and the isolation back ends.

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "isola",
    version,
    about = "Run one OCI image container-isolated or VM-isolated",
    long_about = "Run one OCI image container-isolated (Linux namespaces + cgroups) or \
                  VM-isolated (its own KVM microVM), chosen per workload with --isolation.\n\n\
                  State lives in /var/lib/isola and /run/isola, or under $ISOLA_ROOT when set."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a command in a new container (or VM) made from an image
    Run(Box<RunArgs>),
    /// Import a directory, a tar/tar.gz of a root filesystem, or an OCI image layout as an image
    Import(ImportArgs),
    /// Pull an image from a registry
    Pull(PullArgs),
    /// Push an image to a registry
    Push(PushArgs),
    /// Give an image another name
    Tag {
        /// NAME[:TAG] of an image in the store
        source: String,
        /// NAME[:TAG] to give it
        target: String,
    },
    /// List images
    Images,
    /// Inspect or prune images
    #[command(subcommand)]
    Image(ImageCommand),
    /// Remove an image
    Rmi {
        /// NAME[:TAG]
        image: String,
    },
    /// List containers
    Ps {
        /// Show stopped containers too
        #[arg(short, long)]
        all: bool,
        /// Print container IDs only
        #[arg(short, long)]
        quiet: bool,
    },
    /// Stop running containers: SIGTERM, then SIGKILL after a grace period
    Stop {
        /// Seconds to wait before killing (default: the container's --stop-timeout, else 10)
        #[arg(short = 't', long = "time")]
        time: Option<u64>,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Send a signal to running containers (KILL by default)
    Kill {
        /// HUP, INT, QUIT, KILL, USR1, USR2, TERM or WINCH (or SIGTERM, 15)
        #[arg(short, long, default_value = "KILL")]
        signal: String,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Run a command in a running container
    Exec(ExecArgs),
    /// Copy files between a container (running or stopped) and the host: CONTAINER:PATH HOSTPATH,
    /// or HOSTPATH CONTAINER:PATH (`-` is not supported)
    Cp {
        /// Keep the files' owners (default: root owns the copies)
        #[arg(short, long)]
        archive: bool,
        src: String,
        dest: String,
    },
    /// Run one workload bare, as a container and as a VM: where the time goes, what it costs,
    /// what it sees
    Compare(CompareArgs),
    /// Benchmarks comparing the levels: `isola bench pagerank`
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Start stopped containers again (same root filesystem changes, volumes, network, ports)
    Start {
        /// Stay attached: its output here, its exit status isola's (one container)
        #[arg(short, long)]
        attach: bool,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Stop running containers (as `isola stop`), then start them again
    Restart {
        /// Seconds to wait before killing (default: the container's --stop-timeout, else 10)
        #[arg(short = 't', long = "time")]
        time: Option<u64>,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Wait until containers end; print their exit statuses
    Wait {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Print what a detached container wrote
    Logs {
        /// Follow until the container ends
        #[arg(short, long)]
        follow: bool,
        /// Show each line's time
        #[arg(short, long)]
        timestamps: bool,
        /// Only the last N lines
        #[arg(short = 'n', long, value_name = "N")]
        tail: Option<usize>,
        /// Only lines since a time (2026-01-02T15:04:05Z), Unix seconds or a duration (5m)
        #[arg(long)]
        since: Option<String>,
        container: String,
    },
    /// Print containers as JSON: state, times, mounts, ports
    Inspect {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Remove stopped containers
    Rm {
        /// Container names or IDs
        #[arg(required = true)]
        containers: Vec<String>,
        /// Kill a running container first
        #[arg(short, long)]
        force: bool,
    },
    /// Write an OCI runtime bundle (config.json + rootfs/) for an image, e.g. for runc
    Bundle(BundleArgs),
    /// Manage networks: create, ls, rm, inspect
    #[command(subcommand)]
    Network(NetworkCommand),
    /// Manage volumes: create, ls, rm, inspect, prune
    #[command(subcommand)]
    Volume(VolumeCommand),
    /// Remove what crashed isola processes left behind (runs before every command anyway)
    Cleanup,
    /// Check what this host can run: cgroups, namespaces, overlayfs, pivot_root, KVM, guest artifacts
    Doctor {
        /// Print one JSON object instead of lines
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// Print images as JSON: config, layers, digests, sizes
    Inspect {
        /// NAME[:TAG] or NAME@sha256:...
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Delete what no tagged image needs: blobs, unpacked root filesystems, VM disks, leftovers
    Prune,
    /// List images (as `isola images`)
    Ls,
    /// Remove an image (as `isola rmi`)
    Rm {
        /// NAME[:TAG]
        image: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum NetworkCommand {
    /// Create a network (a bridge and an IPv4 subnet; its workloads reach each other by name)
    Create {
        /// IPv4 subnet, e.g. 10.90.0.0/24 (default: the first free /24 of 10.88.0.0/16)
        #[arg(long, value_name = "CIDR")]
        subnet: Option<String>,
        name: String,
    },
    /// List networks
    #[command(alias = "list")]
    Ls {
        /// Print names only
        #[arg(short, long)]
        quiet: bool,
    },
    /// Remove networks no workload uses
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Print networks as JSON: subnet, gateway, bridge, the workloads' addresses
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Keep stdin open (attach isola's stdin to the process)
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-terminal
    #[arg(short, long)]
    pub tty: bool,
    /// Return once the process runs
    #[arg(short, long)]
    pub detach: bool,
    /// Set an environment variable (KEY=VALUE)
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// UID[:GID] (numbers, or root)
    #[arg(short, long, value_name = "UID[:GID]")]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(short, long, value_name = "DIR")]
    pub workdir: Option<String>,
    /// Container name or ID
    pub container: String,
    /// Command and arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum VolumeCommand {
    /// Create a volume (a random name if none is given)
    Create { name: Option<String> },
    /// List volumes
    #[command(alias = "list")]
    Ls {
        /// Print names only
        #[arg(short, long)]
        quiet: bool,
    },
    /// Remove volumes no container uses
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Print volumes as JSON: name, mount point, creation time, the containers using them
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove anonymous volumes no container uses (all unused ones with --all)
    Prune {
        #[arg(short, long)]
        all: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Isolation {
    /// Linux namespaces and cgroups on the host kernel
    Container,
    /// A KVM microVM with its own guest kernel
    Vm,
}

/// Options that shape the workload's process and limits.
#[derive(Args, Debug, Clone)]
pub struct ProcessArgs {
    /// Set an environment variable (KEY=VALUE, or KEY to copy it from isola's environment)
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Read environment variables from a file: KEY=VALUE (or KEY) lines, # comments
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<std::path::PathBuf>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir", value_name = "DIR")]
    pub workdir: Option<String>,
    /// User (name or uid) and optional group (name or gid)
    #[arg(short = 'u', long = "user", value_name = "USER[:GROUP]")]
    pub user: Option<String>,
    /// Override the image's entrypoint
    #[arg(long, value_name = "CMD")]
    pub entrypoint: Option<String>,
    /// Container hostname (default: the container's short ID)
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,
    /// Memory limit: bytes, or a number with b, k, m or g
    #[arg(short = 'm', long, value_name = "BYTES", allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// CPU quota in CPUs, e.g. 1.5
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub cpus: Option<String>,
    /// Maximum number of processes (default 2048; -1: unlimited)
    #[arg(long = "pids-limit", value_name = "N", allow_hyphen_values = true)]
    pub pids_limit: Option<String>,
    /// Security options: seccomp=unconfined, seccomp=PROFILE.json (Docker's format)
    #[arg(long = "security-opt", value_name = "OPT")]
    pub security_opt: Vec<String>,
    /// Network: bridge (the default network: an address behind the host's NAT), NAME (a
    /// network of `isola network ls`; its workloads reach each other by name), none (loopback
    /// only) or host (the host's own network stack, container level only). `isola bundle`:
    /// none (the default) or host
    #[arg(long, alias = "net", value_name = "NETWORK")]
    pub network: Option<String>,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Isolation level
    #[arg(long, value_enum, default_value = "container")]
    pub isolation: Isolation,
    /// Name for the container
    #[arg(long)]
    pub name: Option<String>,
    /// Remove the container when it exits
    #[arg(long)]
    pub rm: bool,
    /// Run in the background: print the container's ID and return (its output goes to `isola logs`)
    #[arg(short, long)]
    pub detach: bool,
    /// Set a label on the container: KEY=VALUE (or KEY)
    #[arg(short = 'l', long = "label", value_name = "KEY=VALUE")]
    pub label: Vec<String>,
    /// The signal `isola stop` sends first (default TERM)
    #[arg(long, value_name = "SIGNAL")]
    pub stop_signal: Option<String>,
    /// Seconds `isola stop` waits before killing (default 10)
    #[arg(long, value_name = "SECS")]
    pub stop_timeout: Option<u64>,
    /// Start it again when it ends: no, on-failure[:MAX], always or unless-stopped (not after
    /// `isola stop`)
    #[arg(long, value_name = "POLICY")]
    pub restart: Option<String>,
    /// Keep stdin open (attach isola's stdin to the workload)
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-terminal
    #[arg(short, long)]
    pub tty: bool,
    /// VM isolation: stop the VM (exit 125) if the workload has not finished after SECS seconds
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
    /// VM isolation: print the guest kernel's log when the VM ends
    #[arg(long)]
    pub debug: bool,
    /// Publish a port of the workload on the host: [IP:][HOSTPORT:]PORT[/tcp|udp] (bridge
    /// networks; a free host port if none is given)
    #[arg(short = 'p', long = "publish", value_name = "[IP:][HOSTPORT:]PORT")]
    pub publish: Vec<String>,
    /// Bind a host directory or a volume in: /HOST/PATH:PATH[:ro], VOLUME:PATH[:ro|nocopy], or
    /// PATH alone (an anonymous volume, removed with the container)
    #[arg(short = 'v', long = "volume", value_name = "[SOURCE:]PATH[:OPTIONS]")]
    pub volume: Vec<String>,
    /// A mount: type=bind|volume|tmpfs,source=...,target=...[,readonly][,volume-nocopy]
    /// [,tmpfs-size=...][,tmpfs-mode=...]
    #[arg(long, value_name = "FIELDS")]
    pub mount: Vec<String>,
    /// A tmpfs at PATH: PATH[:size=64m,mode=1777,ro,exec]
    #[arg(long, value_name = "PATH[:OPTIONS]")]
    pub tmpfs: Vec<String>,
    /// Run isola's tiny init as PID 1: it passes signals on to the command and reaps orphaned
    /// processes
    #[arg(long)]
    pub init: bool,
    /// Say each step as it happens, with its real values: for a container the namespaces,
    /// cgroup files, mounts, pivot_root, capabilities, seccomp, exec; for a VM the KVM ioctls,
    /// memory, devices, CPUID, vCPU registers, the jail and the VM exits
    #[arg(long)]
    pub explain: bool,
    /// `isola compare`'s probe instead of the command: what the workload sees, as JSON
    #[arg(long, hide = true)]
    pub probe: bool,
    /// Mount the container's root filesystem read-only (write only where a mount allows)
    #[arg(long)]
    pub read_only: bool,
    /// VM isolation: print when each phase happened (VMM start, kernel entry, init, workload, exit)
    #[arg(long)]
    pub timings: bool,
    #[command(flatten)]
    pub process: ProcessArgs,
    /// Image: NAME[:TAG] or NAME@sha256:...
    pub image: String,
    /// Command and arguments (default: the image's)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// PageRank bare, in containers and in VMs, N instances at once: completion and wait times
    Pagerank(PagerankArgs),
}

#[derive(Args, Debug)]
pub struct PagerankArgs {
    /// How many instances at once, one run each
    #[arg(long, default_value = "1,2,4,8")]
    pub instances: String,
    /// Which levels: bare (the image's pagerank binary run on the host), container, vm
    #[arg(long, default_value = "bare,container,vm")]
    pub levels: String,
    /// Graph size
    #[arg(long, default_value_t = 100_000)]
    pub nodes: usize,
    #[arg(long, default_value_t = 20)]
    pub iterations: usize,
    /// Where pagerank.csv, pagerank.svg and pagerank.png go
    #[arg(long, default_value = "isola-bench-pagerank")]
    pub output: std::path::PathBuf,
    /// The image holding /usr/local/bin/pagerank
    #[arg(long, default_value = "sample")]
    pub image: String,
}

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// Which levels, in order: bare (the command on the host, where it has it), container, vm
    #[arg(long, default_value = "bare,container,vm")]
    pub levels: String,
    /// Also write a page with charts (FILE.html) or the chart alone (FILE.svg)
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
    /// Also print the measurements as JSON
    #[arg(long)]
    pub json: bool,
    /// Image: NAME[:TAG]
    pub image: String,
    /// Command and arguments (default: the image's)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PullArgs {
    /// NAME[:TAG] or NAME@sha256:... (no registry host: Docker Hub)
    pub image: String,
    /// Plain HTTP to the registry (loopback registries always use it)
    #[arg(long)]
    pub insecure: bool,
    /// OS/ARCH[/VARIANT] to take from a multi-platform image (default: this host's)
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,
    /// Registry credentials (default: from an auth.json, if it has them)
    #[arg(short, long, value_name = "USER:PASSWORD")]
    pub user: Option<String>,
    /// Print only the image and its digest
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct PushArgs {
    /// NAME[:TAG] of an image in the store
    pub image: String,
    /// Where to push it, REGISTRY/NAME[:TAG] (default: the image's own name and tag)
    pub destination: Option<String>,
    /// Plain HTTP to the registry (loopback registries always use it)
    #[arg(long)]
    pub insecure: bool,
    /// Registry credentials (default: from an auth.json, if it has them)
    #[arg(short, long, value_name = "USER:PASSWORD")]
    pub user: Option<String>,
    /// Print only the destination and its digest
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// A directory, a .tar or .tar.gz of a root filesystem, or an OCI image layout (DIR or DIR:REF)
    pub source: String,
    /// NAME[:TAG] to store it as
    pub name: String,
    /// Default command: a JSON array, or words split on whitespace
    #[arg(long)]
    pub cmd: Option<String>,
    /// Default entrypoint: a JSON array, or words split on whitespace
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Environment variable for the image config (repeatable)
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Default working directory
    #[arg(long)]
    pub workdir: Option<String>,
    /// Default user
    #[arg(long)]
    pub user: Option<String>,
}

#[derive(Args, Debug)]
pub struct BundleArgs {
    #[command(flatten)]
    pub process: ProcessArgs,
    /// Allocate a terminal in the bundle's process
    #[arg(short, long)]
    pub tty: bool,
    /// Image: NAME[:TAG]
    pub image: String,
    /// Directory to create (must not exist)
    pub dir: String,
    /// Command and arguments (default: the image's)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}
