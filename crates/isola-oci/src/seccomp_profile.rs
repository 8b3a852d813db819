//! Seccomp profiles: isola's default (Docker's default policy, tightened) and profile files in
//! Docker's JSON format (`--security-opt seccomp=PROFILE.json`), both resolved against the
//! workload's capabilities into the OCI `linux.seccomp` written into config.json. The container
//! back end compiles whatever config.json says, so a runc-style bundle's own profile works too.
//!
//! The default allows what ordinary programs use and refuses, with EPERM: new namespaces
//! (`unshare`, `clone`/`clone3` with namespace flags, `setns`), `mount` and the new mount API,
//! keyrings (`keyctl`, `add_key`, `request_key`), `bpf`, `perf_event_open`, `userfaultfd`,
//! io_uring (past Docker's default), AF_VSOCK sockets, kernel modules, `kexec_*`, `reboot`,
//! clock setting, `ptrace` family beyond Docker's, and 32-bit or x32 calls. Calls tied to a
//! capability are allowed when the workload's bounding set holds it, as Docker does.

use oci_spec::runtime::{
    Capability, LinuxSeccomp, LinuxSeccompAction as Action, LinuxSeccompArg,
    LinuxSeccompArgBuilder, LinuxSeccompBuilder, LinuxSeccompFilterFlag,
    LinuxSeccompOperator as Op, LinuxSyscall, LinuxSyscallBuilder,
};
use serde::Deserialize;
use std::collections::HashSet;
use std::path::Path;

/// A profile in Docker's format (which is the OCI form plus `includes`/`excludes`).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Profile {
    pub default_action: Action,
    #[serde(default)]
    pub default_errno_ret: Option<u32>,
    /// Docker's `archMap` and `architectures` say which ABIs to allow; isola allows x86-64 only.
    #[serde(default)]
    pub arch_map: Option<serde_json::Value>,
    #[serde(default)]
    pub architectures: Option<serde_json::Value>,
    #[serde(default)]
    pub flags: Vec<LinuxSeccompFilterFlag>,
    #[serde(default)]
    pub syscalls: Vec<Rule>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    #[serde(default)]
    pub names: Vec<String>,
    /// Docker's older single-name form.
    #[serde(default)]
    pub name: Option<String>,
    pub action: Action,
    #[serde(default)]
    pub errno_ret: Option<u32>,
    #[serde(default)]
    pub args: Vec<LinuxSeccompArg>,
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(default)]
    pub includes: Condition,
    #[serde(default)]
    pub excludes: Condition,
}

/// When a rule applies: every capability in `includes.caps` held, none of `excludes.caps`; the
/// architecture among `includes.arches` and not among `excludes.arches`; a kernel at least
/// `minKernel`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Condition {
    #[serde(default)]
    pub caps: Vec<String>,
    #[serde(default)]
    pub arches: Vec<String>,
    #[serde(default)]
    pub min_kernel: Option<String>,
}

/// Architecture names Docker uses for this machine.
const OUR_ARCHES: &[&str] = &["amd64", "x86_64", "SCMP_ARCH_X86_64"];

fn kernel_at_least(min: &str) -> bool {
    let parse = |s: &str| -> Vec<u32> {
        s.split(['.', '-'])
            .take(2)
            .map(|p| p.parse().unwrap_or(0))
            .collect()
    };
    let release = kernel_release();
    parse(&release) >= parse(min)
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string()
}

impl Profile {
    /// Reads a profile file, naming the file and the place of any error.
    pub fn load(path: &Path) -> Result<Profile, String> {
        let text =
            std::fs::read(path).map_err(|e| format!("seccomp profile {}: {e}", path.display()))?;
        serde_json::from_slice(&text)
            .map_err(|e| format!("seccomp profile {}: {e}", path.display()))
    }

    /// The OCI `linux.seccomp` for a workload whose bounding set is `caps`.
    pub fn resolve(&self, caps: &HashSet<Capability>) -> LinuxSeccomp {
        let held: HashSet<String> = caps.iter().map(|c| format!("CAP_{c}")).collect();
        let has = |c: &String| {
            let c = if c.starts_with("CAP_") {
                c.clone()
            } else {
                format!("CAP_{c}")
            };
            held.contains(&c)
        };
        let ours = |arches: &[String]| arches.iter().any(|a| OUR_ARCHES.contains(&a.as_str()));
        let mut syscalls: Vec<LinuxSyscall> = Vec::new();
        for r in &self.syscalls {
            let applies = r.includes.caps.iter().all(has)
                && !r.excludes.caps.iter().any(has)
                && (r.includes.arches.is_empty() || ours(&r.includes.arches))
                && !ours(&r.excludes.arches)
                && r.includes.min_kernel.as_deref().is_none_or(kernel_at_least);
            if !applies {
                continue;
            }
            let mut names = r.names.clone();
            names.extend(r.name.clone());
            let mut b = LinuxSyscallBuilder::default().names(names).action(r.action);
            if let Some(e) = r.errno_ret {
                b = b.errno_ret(e);
            }
            if !r.args.is_empty() {
                b = b.args(r.args.clone());
            }
            syscalls.push(b.build().expect("every field of a syscall rule is set"));
        }
        let mut b = LinuxSeccompBuilder::default()
            .default_action(self.default_action)
            .syscalls(syscalls);
        if let Some(e) = self.default_errno_ret {
            b = b.default_errno_ret(e);
        }
        if !self.flags.is_empty() {
            b = b.flags(self.flags.clone());
        }
        b.build().expect("every field of a seccomp profile is set")
    }
}

/// Calls every workload may make.
#[rustfmt::skip]
const ALLOWED: &[&str] = &[
    // files and directories
    "access", "chdir", "chmod", "chown", "close", "close_range", "copy_file_range", "creat",
    "dup", "dup2", "dup3", "faccessat", "faccessat2", "fadvise64", "fallocate", "fchdir",
    "fchmod", "fchmodat", "fchmodat2", "fchown", "fchownat", "fcntl", "fdatasync", "flock",
    "fstat", "fstatfs", "fsync", "ftruncate", "futimesat", "getcwd", "getdents", "getdents64",
    "lchown", "link", "linkat", "lseek", "lstat", "mkdir", "mkdirat", "mknod", "mknodat",
    "name_to_handle_at", "newfstatat", "open", "openat", "openat2", "pread64", "preadv",
    "preadv2", "pwrite64", "pwritev", "pwritev2", "read", "readahead", "readlink", "readlinkat",
    "readv", "rename", "renameat", "renameat2", "rmdir", "sendfile", "splice", "stat", "statfs",
    "statx", "symlink", "symlinkat", "sync", "sync_file_range", "syncfs", "tee", "truncate",
    "umask", "unlink", "unlinkat", "utime", "utimensat", "utimes", "vmsplice", "write", "writev",
    "cachestat",
    // extended attributes
    "fgetxattr", "flistxattr", "fremovexattr", "fsetxattr", "getxattr", "lgetxattr",
    "listxattr", "llistxattr", "lremovexattr", "lsetxattr", "removexattr", "setxattr",
    // file events and asynchronous I/O (io_uring is not here: see the module comment)
    "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_pwait",
    "epoll_pwait2", "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2", "fanotify_mark",
    "inotify_add_watch", "inotify_init", "inotify_init1", "inotify_rm_watch", "io_cancel",
    "io_destroy", "io_getevents", "io_pgetevents", "io_setup", "io_submit", "ioctl", "poll",
    "ppoll", "pselect6", "select", "signalfd", "signalfd4", "timerfd_create", "timerfd_gettime",
    "timerfd_settime",
    // memory
    "brk", "madvise", "membarrier", "memfd_create", "memfd_secret", "mincore", "mlock",
    "mlock2", "mlockall", "mmap", "mprotect", "mremap", "msync", "munlock", "munlockall",
    "munmap", "pkey_alloc", "pkey_free", "pkey_mprotect", "remap_file_pages",
    "map_shadow_stack", "mseal",
    // processes, threads, signals
    "arch_prctl", "capget", "capset", "execve", "execveat", "exit", "exit_group", "fork",
    "futex", "futex_waitv", "futex_wake", "futex_wait", "futex_requeue", "get_robust_list",
    "get_thread_area", "getcpu", "getegid", "geteuid", "getgid", "getgroups", "getitimer",
    "getpgid", "getpgrp", "getpid", "getppid", "getpriority", "getresgid", "getresuid",
    "getrlimit", "getrusage", "getsid", "gettid", "getuid", "ioprio_get", "ioprio_set", "kill",
    "modify_ldt", "pause", "pidfd_open", "pidfd_send_signal", "prctl", "prlimit64",
    "process_mrelease", "restart_syscall", "rseq", "rt_sigaction", "rt_sigpending",
    "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait",
    "rt_tgsigqueueinfo", "sched_get_priority_max", "sched_get_priority_min",
    "sched_getaffinity", "sched_getattr", "sched_getparam", "sched_getscheduler",
    "sched_rr_get_interval", "sched_setaffinity", "sched_setattr", "sched_setparam",
    "sched_setscheduler", "sched_yield", "seccomp", "set_robust_list", "set_thread_area",
    "set_tid_address", "setfsgid", "setfsuid", "setgid", "setgroups", "setitimer", "setpgid",
    "setpriority", "setregid", "setresgid", "setresuid", "setreuid", "setrlimit", "setsid",
    "setuid", "sigaltstack", "tgkill", "tkill", "vfork", "wait4", "waitid",
    "landlock_add_rule", "landlock_create_ruleset", "landlock_restrict_self",
    "ptrace", "process_vm_readv", "process_vm_writev",
    // time
    "adjtimex", "alarm", "clock_adjtime", "clock_getres", "clock_gettime", "clock_nanosleep",
    "gettimeofday", "nanosleep", "time", "timer_create", "timer_delete", "timer_getoverrun",
    "timer_gettime", "timer_settime", "times",
    // sockets (socket itself is below: not AF_VSOCK)
    "accept", "accept4", "bind", "connect", "getpeername", "getsockname", "getsockopt",
    "listen", "recvfrom", "recvmmsg", "recvmsg", "sendmmsg", "sendmsg", "sendto", "setsockopt",
    "shutdown", "socketpair",
    // System V and POSIX IPC (in the container's own IPC namespace)
    "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive", "mq_timedsend", "mq_unlink",
    "msgctl", "msgget", "msgrcv", "msgsnd", "semctl", "semget", "semop", "semtimedop",
    "shmat", "shmctl", "shmdt", "shmget",
    // the rest
    "getrandom", "sysinfo", "uname", "pipe", "pipe2",
];

/// Calls a capability unlocks (when the bounding set holds it).
#[rustfmt::skip]
const BY_CAPABILITY: &[(&str, &[&str])] = &[
    ("CAP_DAC_READ_SEARCH", &["open_by_handle_at"]),
    (
        "CAP_SYS_ADMIN",
        &[
            "bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick",
            "lookup_dcookie", "mount", "mount_setattr", "move_mount", "open_tree",
            "perf_event_open", "quotactl", "quotactl_fd", "setdomainname", "sethostname", "setns",
            "syslog", "umount2", "unshare",
        ],
    ),
    ("CAP_SYS_BOOT", &["reboot"]),
    ("CAP_SYS_CHROOT", &["chroot"]),
    ("CAP_SYS_MODULE", &["delete_module", "init_module", "finit_module"]),
    ("CAP_SYS_PACCT", &["acct"]),
    ("CAP_SYS_PTRACE", &["kcmp", "pidfd_getfd", "process_madvise"]),
    ("CAP_SYS_RAWIO", &["iopl", "ioperm"]),
    ("CAP_SYS_TIME", &["settimeofday", "clock_settime"]),
    ("CAP_SYS_TTY_CONFIG", &["vhangup"]),
    ("CAP_SYS_NICE", &["get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"]),
    ("CAP_SYSLOG", &["syslog"]),
    ("CAP_BPF", &["bpf"]),
    ("CAP_PERFMON", &["perf_event_open"]),
];

/// Namespace flags of clone(2): CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET.
const CLONE_NAMESPACE_FLAGS: u64 = 0x7E02_0000;
const AF_VSOCK: u64 = 40;
/// personality(2) values that only select an ABI detail: PER_LINUX, PER_LINUX32, UNAME26
/// variants, and the query 0xffffffff.
const PERSONALITIES: &[u64] = &[0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

fn arg(index: usize, op: Op, value: u64) -> LinuxSeccompArg {
    LinuxSeccompArgBuilder::default()
        .index(index)
        .op(op)
        .value(value)
        .build()
        .expect("index, op and value are set")
}

fn rule(names: &[&str], action: Action, args: Vec<LinuxSeccompArg>) -> Rule {
    Rule {
        names: names.iter().map(|s| s.to_string()).collect(),
        name: None,
        action,
        errno_ret: None,
        args,
        comment: None,
        includes: Condition::default(),
        excludes: Condition::default(),
    }
}

fn caps(c: &str) -> Condition {
    Condition {
        caps: vec![c.to_string()],
        ..Condition::default()
    }
}

/// isola's default profile.
pub fn default_profile() -> Profile {
    let mut syscalls = vec![
        rule(ALLOWED, Action::ScmpActAllow, vec![]),
        rule(
            &["socket"],
            Action::ScmpActAllow,
            vec![arg(0, Op::ScmpCmpNe, AF_VSOCK)],
        ),
        // Alternatives on one argument: any one of these values.
        rule(
            &["personality"],
            Action::ScmpActAllow,
            PERSONALITIES
                .iter()
                .map(|v| arg(0, Op::ScmpCmpEq, *v))
                .collect(),
        ),
    ];
    for (cap, names) in BY_CAPABILITY {
        let mut r = rule(names, Action::ScmpActAllow, vec![]);
        r.includes = caps(cap);
        syscalls.push(r);
    }
    // Without CAP_SYS_ADMIN: clone only without namespace flags; clone3 (whose flags live in
    // memory a filter cannot read) says ENOSYS so libc falls back to clone.
    let mut clone = rule(
        &["clone"],
        Action::ScmpActAllow,
        vec![arg(0, Op::ScmpCmpMaskedEq, CLONE_NAMESPACE_FLAGS)],
    );
    clone.excludes = caps("CAP_SYS_ADMIN");
    syscalls.push(clone);
    let mut clone3 = rule(&["clone3"], Action::ScmpActErrno, vec![]);
    clone3.errno_ret = Some(libc::ENOSYS as u32);
    clone3.excludes = caps("CAP_SYS_ADMIN");
    syscalls.push(clone3);
    Profile {
        default_action: Action::ScmpActErrno,
        default_errno_ret: Some(libc::EPERM as u32),
        arch_map: None,
        architectures: None,
        flags: Vec::new(),
        syscalls,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(s: &LinuxSeccomp) -> Vec<String> {
        s.syscalls()
            .iter()
            .flatten()
            .flat_map(|r| r.names().clone())
            .collect()
    }

    #[test]
    fn default_profile_depends_on_capabilities() {
        let plain: HashSet<Capability> = [Capability::Chown, Capability::SysChroot].into();
        let s = default_profile().resolve(&plain);
        let n = names(&s);
        assert!(n.contains(&"chroot".to_string()));
        for blocked in [
            "mount",
            "unshare",
            "bpf",
            "keyctl",
            "io_uring_setup",
            "setns",
        ] {
            assert!(!n.contains(&blocked.to_string()), "{blocked} allowed");
        }
        let admin: HashSet<Capability> = [Capability::SysAdmin].into();
        let n = names(&default_profile().resolve(&admin));
        assert!(n.contains(&"mount".to_string()) && n.contains(&"unshare".to_string()));
        assert!(!n.contains(&"chroot".to_string()));
    }

    #[test]
    fn docker_format_files_parse() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p.json");
        std::fs::write(
            &p,
            r#"{"defaultAction":"SCMP_ACT_ALLOW","archMap":[],"syscalls":[
                {"names":["mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":13,
                 "excludes":{"caps":["CAP_SYS_ADMIN"]}},
                {"name":"chmod","action":"SCMP_ACT_ERRNO","includes":{"arches":["arm64"]}}]}"#,
        )
        .unwrap();
        let s = Profile::load(&p).unwrap().resolve(&HashSet::new());
        assert_eq!(names(&s), vec!["mkdir".to_string()]);
        std::fs::write(&p, r#"{"defaultAction":"SCMP_ACT_NOPE"}"#).unwrap();
        let e = Profile::load(&p).unwrap_err();
        assert!(e.contains("p.json") && e.contains("SCMP_ACT_NOPE"), "{e}");
    }
}
