//! runc's command line, as podman, containerd and conmon call it: global flags, then one
//! operation on one container id.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "isola",
    version,
    about = "isola as an OCI runtime (runc's command line)",
    long_about = "isola as an OCI runtime, with runc's command line, for podman, containerd and \
                  Kubernetes. A bundle runs VM-isolated when its config.json has the annotation \
                  org.isola.isolation=vm or when isola is called as isola-vm."
)]
pub struct RuntimeCli {
    /// Directory for the containers' state
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Also write errors (and with --debug, each operation) to FILE
    #[arg(long, global = true, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// The --log file's format
    #[arg(long = "log-format", global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Log each operation, not only errors
    #[arg(long, global = true)]
    pub debug: bool,
    /// Accepted for runc's callers: cgroups are managed through cgroupfs, at the path systemd
    /// would use (slice:prefix:name → /slice/prefix-name.scope)
    #[arg(long = "systemd-cgroup", global = true)]
    pub systemd_cgroup: bool,
    /// Accepted for runc's callers: isola runs as root
    #[arg(long, global = true, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub rootless: Option<String>,
    #[command(subcommand)]
    pub command: RuntimeCommand,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    Table,
    Json,
}

#[derive(Args, Debug, Clone)]
pub struct CreateArgs {
    /// The bundle: a directory with config.json and the root filesystem
    #[arg(short, long, default_value = ".", value_name = "DIR")]
    pub bundle: PathBuf,
    /// Write the container's pid (its init; the VMM for a VM) to FILE
    #[arg(long = "pid-file", value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Send the terminal's master end to this unix socket (process.terminal)
    #[arg(long = "console-socket", value_name = "SOCK")]
    pub console_socket: Option<PathBuf>,
    /// Accepted for runc's callers: isola always pivots
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Accepted for runc's callers: the workload always gets its own session keyring
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    /// Pass N descriptors above stderr (3 .. 3+N-1) on to the workload
    #[arg(long = "preserve-fds", default_value_t = 0, value_name = "N")]
    pub preserve_fds: u32,
    /// The container's id
    pub id: String,
}

#[derive(Subcommand, Debug)]
pub enum RuntimeCommand {
    /// Create a container from a bundle; it waits for `start`
    Create(CreateArgs),
    /// Run the created container's process
    Start { id: String },
    /// Print the container's state as JSON
    State { id: String },
    /// Send a signal (default SIGTERM) to the container's init, or with --all to every process
    Kill {
        #[arg(short, long)]
        all: bool,
        id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Remove a container (a running one only with --force)
    Delete {
        #[arg(short, long)]
        force: bool,
        id: String,
    },
    /// Create and start a container; without --detach wait for it and remove it
    Run {
        #[command(flatten)]
        create: CreateArgs,
        /// Return once the process runs
        #[arg(short, long)]
        detach: bool,
        /// Keep the container after it exits (without --detach)
        #[arg(long)]
        keep: bool,
    },
    /// Run another process in a running container
    Exec(ExecArgs),
    /// List the containers
    List {
        #[arg(short, long, value_enum, default_value = "table")]
        format: ListFormat,
        /// Only the ids
        #[arg(short, long)]
        quiet: bool,
    },
    /// List the container's processes
    Ps {
        #[arg(short, long, value_enum, default_value = "table")]
        format: ListFormat,
        id: String,
        /// Options for ps(1) (table format)
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Freeze every process of the container
    Pause { id: String },
    /// Thaw a paused container
    Resume { id: String },
    /// Print what this runtime supports, as JSON (the runtime spec's features document)
    Features,
    /// Write a starting config.json into the bundle directory
    Spec {
        #[arg(short, long, default_value = ".", value_name = "DIR")]
        bundle: PathBuf,
    },
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// The process as JSON (the runtime spec's `process`); overrides the command and flags
    #[arg(short, long, value_name = "FILE")]
    pub process: Option<PathBuf>,
    /// Return once the process runs
    #[arg(short, long)]
    pub detach: bool,
    /// Write the process's pid to FILE
    #[arg(long = "pid-file", value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Send the terminal's master end to this unix socket
    #[arg(long = "console-socket", value_name = "SOCK")]
    pub console_socket: Option<PathBuf>,
    /// Allocate a terminal
    #[arg(short, long)]
    pub tty: bool,
    /// Working directory
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<String>,
    /// Environment variable KEY=VALUE (repeatable)
    #[arg(short, long, value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// UID[:GID]
    #[arg(short, long, value_name = "UID[:GID]")]
    pub user: Option<String>,
    /// Pass N descriptors above stderr on to the process
    #[arg(long = "preserve-fds", default_value_t = 0, value_name = "N")]
    pub preserve_fds: u32,
    /// Accepted for runc's callers
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    /// The container's id
    pub id: String,
    /// The command and its arguments (unless --process)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// Runtime flags that take a value (for telling the two command lines apart).
const VALUE_FLAGS: &[&str] = &["--root", "--log", "--log-format", "--criu", "--rootless"];
const BARE_FLAGS: &[&str] = &["--debug", "--systemd-cgroup"];
/// Operations only the runtime command line has.
const RUNTIME_ONLY: &[&str] = &[
    "create", "start", "state", "kill", "delete", "exec", "list", "pause", "resume", "features",
    "spec",
];

/// Whether `args` (without the program name) are runc's command line rather than isola's own:
/// a runtime flag before the operation, an operation only the runtime has, `run` with a bundle
/// or `ps` of one id. `kill`, `exec` and `start` are both (runc's `kill ID [SIGNAL]`, `exec ID
/// CMD` and `start ID`, docker's `kill [-s SIG] NAME...`, `exec NAME CMD` and `start [-a]
/// NAME...`): docker's when `kill` has `-s` or `start` has `-a`, or when one names one of
/// isola's own containers (`is_isola_container`, asked only then).
pub fn is_runtime_call(args: &[String], is_isola_container: &dyn Fn(&str) -> bool) -> bool {
    let mut i = 0;
    let mut flagged = false;
    while i < args.len() {
        let a = args[i].as_str();
        let name = a.split('=').next().unwrap_or(a);
        if VALUE_FLAGS.contains(&name) {
            flagged = true;
            // --rootless may stand alone; the others take the next word unless given `=`.
            if !a.contains('=') && name != "--rootless" {
                i += 1;
            }
        } else if BARE_FLAGS.contains(&a) {
            flagged = true;
        } else if !a.starts_with('-') {
            break;
        } else {
            return flagged;
        }
        i += 1;
    }
    if flagged {
        return true;
    }
    let Some(op) = args.get(i) else {
        return false;
    };
    let rest = &args[i + 1..];
    let names_isola_container = || {
        rest.iter()
            .filter(|a| !a.starts_with('-'))
            .any(|a| is_isola_container(a))
    };
    let signal_flag = |a: &String| a == "-s" || a == "--signal" || a.starts_with("--signal=");
    match op.as_str() {
        "kill" => !rest.iter().any(signal_flag) && !names_isola_container(),
        "exec" => !names_isola_container(),
        "start" => !rest.iter().any(|a| a == "-a" || a == "--attach") && !names_isola_container(),
        op if RUNTIME_ONLY.contains(&op) => true,
        "run" => rest
            .iter()
            .any(|a| a == "-b" || a == "--bundle" || a.starts_with("--bundle=")),
        "ps" => rest.iter().any(|a| !a.starts_with('-')),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::is_runtime_call;

    fn call(s: &str) -> bool {
        let v: Vec<String> = s.split_whitespace().map(String::from).collect();
        is_runtime_call(&v, &|name| name == "web")
    }

    #[test]
    fn the_two_command_lines_are_told_apart() {
        assert!(call(
            "--root /r --log /l --log-format json create --bundle b id"
        ));
        assert!(call("--root=/r state id"));
        assert!(call("--systemd-cgroup kill id KILL"));
        assert!(call("delete --force id"));
        assert!(call("run --bundle /b id"));
        assert!(call("ps id"));
        assert!(call("features"));
        assert!(!call("run --rm sample echo hi"));
        assert!(!call("run -it sample"));
        assert!(!call("ps -a"));
        assert!(!call("ps"));
        assert!(!call("images"));
        assert!(!call("--version"));
        assert!(!call(""));
        // docker's kill and exec: -s, or one of isola's containers named.
        assert!(call("kill id KILL"));
        assert!(call("exec id ls"));
        assert!(!call("kill -s TERM anything"));
        assert!(!call("kill web"));
        assert!(!call("exec -e A=1 web ls"));
        assert!(call("--root /r kill web"));
        // and start: -a, or one of isola's named.
        assert!(call("start id"));
        assert!(!call("start web"));
        assert!(!call("start -a anything"));
        assert!(call("--root /r start web"));
    }
}
