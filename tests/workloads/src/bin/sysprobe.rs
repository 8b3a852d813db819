//! Tries system calls a hostile workload would want and prints what the kernel said, one line
//! each: `NAME ok` or `NAME EPERM` (errno name). The escape tests run it inside containers.
//!
//! usage: sysprobe NAME...   (`sysprobe list` names the probes)

use std::ffi::CString;

type Probe = (&'static str, fn() -> i64);

const PROBES: &[Probe] = &[
    ("keyctl", || {
        // KEYCTL_GET_KEYRING_ID of the user keyring (KEY_SPEC_USER_KEYRING = -4).
        sys(libc::SYS_keyctl, &[0, -4i64 as u64, 0])
    }),
    ("add_key", || {
        let t = CString::new("user").unwrap();
        let d = CString::new("isola-probe").unwrap();
        // KEY_SPEC_PROCESS_KEYRING = -2
        sys(
            libc::SYS_add_key,
            &[ptr(&t), ptr(&d), ptr(&t), 4, -2i64 as u64],
        )
    }),
    ("request_key", || {
        let t = CString::new("user").unwrap();
        let d = CString::new("isola-probe-absent").unwrap();
        sys(libc::SYS_request_key, &[ptr(&t), ptr(&d), 0, 0])
    }),
    ("bpf", || {
        // BPF_MAP_CREATE of an array map with one 4-byte element.
        let attr: [u32; 8] = [2, 4, 4, 1, 0, 0, 0, 0];
        sys(libc::SYS_bpf, &[0, attr.as_ptr() as u64, 32])
    }),
    ("perf_event_open", || {
        // PERF_TYPE_SOFTWARE, size 128, PERF_COUNT_SW_CPU_CLOCK, this process, any CPU.
        let mut attr = [0u8; 128];
        attr[0..4].copy_from_slice(&1u32.to_le_bytes());
        attr[4..8].copy_from_slice(&128u32.to_le_bytes());
        sys(
            libc::SYS_perf_event_open,
            &[attr.as_ptr() as u64, 0, -1i64 as u64, -1i64 as u64, 0],
        )
    }),
    ("userfaultfd", || {
        // UFFD_USER_MODE_ONLY: what an unprivileged process may ask for.
        sys(libc::SYS_userfaultfd, &[(libc::O_CLOEXEC | 1) as u64])
    }),
    ("io_uring_setup", || {
        let params = [0u8; 120];
        sys(libc::SYS_io_uring_setup, &[1, params.as_ptr() as u64])
    }),
    ("socket_vsock", || {
        sys(libc::SYS_socket, &[40, libc::SOCK_STREAM as u64, 0])
    }),
    ("unshare_user", || {
        sys(libc::SYS_unshare, &[libc::CLONE_NEWUSER as u64])
    }),
    ("clone_newuser", || {
        let flags = (libc::CLONE_NEWUSER | libc::SIGCHLD) as u64;
        let pid = sys(libc::SYS_clone, &[flags, 0, 0, 0, 0]);
        if pid == 0 {
            // SAFETY: the child of a fork-like clone leaves at once.
            unsafe { libc::_exit(0) };
        }
        if pid > 0 {
            // SAFETY: waiting for the child just made.
            unsafe { libc::waitpid(pid as i32, std::ptr::null_mut(), 0) };
        }
        pid
    }),
    ("mount", || {
        let s = CString::new("none").unwrap();
        let d = CString::new("/tmp").unwrap();
        let t = CString::new("tmpfs").unwrap();
        sys(libc::SYS_mount, &[ptr(&s), ptr(&d), ptr(&t), 0, 0])
    }),
    ("kexec_load", || sys(libc::SYS_kexec_load, &[0, 0, 0, 0])),
    ("init_module", || {
        let p = CString::new("").unwrap();
        sys(libc::SYS_init_module, &[0, 0, ptr(&p)])
    }),
    ("setns", || sys(libc::SYS_setns, &[0, 0])),
    ("personality_linux32", || {
        sys(libc::SYS_personality, &[0x0040_0000])
    }),
    ("getpid", || sys(libc::SYS_getpid, &[])),
];

/// `session_keyring DESCRIPTION`: what the session keyring is (KEYCTL_DESCRIBE of @s).
fn session_keyring() -> String {
    let mut buf = [0u8; 256];
    // KEYCTL_DESCRIBE = 6, KEY_SPEC_SESSION_KEYRING = -3
    let n = sys(
        libc::SYS_keyctl,
        &[6, -3i64 as u64, buf.as_mut_ptr() as u64, buf.len() as u64],
    );
    if n < 0 {
        return format!("session_keyring {}", errno_name(-n as i32));
    }
    let text = String::from_utf8_lossy(&buf[..(n as usize).min(buf.len())]);
    format!("session_keyring {}", text.trim_end_matches('\0'))
}

/// The cgroup attack: in a user namespace of its own (root mapped to root) and a new cgroup and
/// mount namespace, mount every hierarchy the process is in, count the processes its root
/// cgroup shows, and try to lift the memory limit there. Prints one line per hierarchy:
/// `cgroup HIERARCHY procs=N lift=ok|ERRNO child=ok|ERRNO`.
fn cgroup_escape() -> Result<(), String> {
    let fail = |what: &str| format!("cgroup_escape {what}: {}", std::io::Error::last_os_error());
    let hierarchies = std::fs::read_to_string("/proc/self/cgroup").map_err(|e| e.to_string())?;
    if sys(libc::SYS_unshare, &[libc::CLONE_NEWUSER as u64]) < 0 {
        return Err(fail("unshare(CLONE_NEWUSER)"));
    }
    for (file, text) in [
        ("setgroups", "deny"),
        ("uid_map", "0 0 1"),
        ("gid_map", "0 0 1"),
    ] {
        std::fs::write(format!("/proc/self/{file}"), text)
            .map_err(|e| format!("cgroup_escape /proc/self/{file}: {e}"))?;
    }
    if sys(
        libc::SYS_unshare,
        &[(libc::CLONE_NEWNS | libc::CLONE_NEWCGROUP) as u64],
    ) < 0
    {
        return Err(fail("unshare(CLONE_NEWNS|CLONE_NEWCGROUP)"));
    }
    for line in hierarchies.lines() {
        let ctrls = line.split(':').nth(1).unwrap_or_default();
        let dir = format!(
            "/tmp/isola-probe-cg{}",
            line.split(':').next().unwrap_or("x")
        );
        let _ = std::fs::create_dir_all(&dir);
        let (fstype, opts) = if ctrls.is_empty() {
            ("cgroup2", String::new())
        } else if let Some(name) = ctrls.strip_prefix("name=") {
            ("cgroup", format!("none,name={name}"))
        } else {
            ("cgroup", ctrls.to_string())
        };
        let c = |s: &str| std::ffi::CString::new(s).unwrap();
        let (src, target, t, o) = (c(fstype), c(&dir), c(fstype), c(&opts));
        let data = if opts.is_empty() { 0 } else { ptr(&o) };
        if sys(
            libc::SYS_mount,
            &[ptr(&src), ptr(&target), ptr(&t), 0, data],
        ) < 0
        {
            println!(
                "cgroup {fstype}:{ctrls} mount={}",
                errno_name(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
            );
            continue;
        }
        let procs = std::fs::read_to_string(format!("{dir}/cgroup.procs"))
            .map(|s| s.lines().count())
            .unwrap_or(0);
        let limit = if ctrls.is_empty() {
            Some(("memory.max", "max"))
        } else if ctrls.split(',').any(|c| c == "memory") {
            Some(("memory.limit_in_bytes", "-1"))
        } else {
            None
        };
        let lift = match limit {
            Some((file, value)) if std::path::Path::new(&format!("{dir}/{file}")).exists() => {
                match std::fs::write(format!("{dir}/{file}"), value) {
                    Ok(()) => "ok".to_string(),
                    Err(e) => errno_name(e.raw_os_error().unwrap_or(0)),
                }
            }
            _ => "none".to_string(),
        };
        // A cgroup of its own below, with this process in it: the runtime must remove it too.
        let child = format!("{dir}/escape-child");
        let moved = std::fs::create_dir(&child)
            .and_then(|()| std::fs::write(format!("{child}/cgroup.procs"), "0"))
            .map_or_else(
                |e| errno_name(e.raw_os_error().unwrap_or(0)),
                |()| "ok".into(),
            );
        println!("cgroup {fstype}:{ctrls} procs={procs} lift={lift} child={moved}");
    }
    Ok(())
}

fn ptr(s: &CString) -> u64 {
    s.as_ptr() as u64
}

/// A raw system call; returns its result or -errno.
fn sys(nr: i64, args: &[u64]) -> i64 {
    let a = |i: usize| args.get(i).copied().unwrap_or(0);
    // SAFETY: every probe passes arguments that are plain numbers or pointers to buffers that
    // live across the call and are as large as the kernel reads for that call.
    let r = unsafe { libc::syscall(nr, a(0), a(1), a(2), a(3), a(4), a(5)) };
    if r < 0 {
        -(std::io::Error::last_os_error().raw_os_error().unwrap_or(0) as i64)
    } else {
        r
    }
}

fn errno_name(e: i32) -> String {
    match e {
        libc::EPERM => "EPERM".into(),
        libc::EACCES => "EACCES".into(),
        libc::ENOSYS => "ENOSYS".into(),
        libc::EINVAL => "EINVAL".into(),
        libc::EFAULT => "EFAULT".into(),
        libc::ENOKEY => "ENOKEY".into(),
        libc::ENOENT => "ENOENT".into(),
        libc::EAFNOSUPPORT => "EAFNOSUPPORT".into(),
        libc::EBADF => "EBADF".into(),
        libc::ENOEXEC => "ENOEXEC".into(),
        libc::EOPNOTSUPP => "EOPNOTSUPP".into(),
        e => format!("errno{e}"),
    }
}

fn main() {
    let names: Vec<String> = std::env::args().skip(1).collect();
    if names.is_empty() || names[0] == "list" {
        for (n, _) in PROBES {
            println!("{n}");
        }
        return;
    }
    for name in names {
        if name == "session_keyring" {
            println!("{}", session_keyring());
            continue;
        }
        if name == "cgroup_escape" {
            if let Err(e) = cgroup_escape() {
                println!("{e}");
            }
            continue;
        }
        match PROBES.iter().find(|(n, _)| *n == name) {
            Some((_, f)) => {
                let r = f();
                if r >= 0 {
                    println!("{name} ok");
                } else {
                    println!("{name} {}", errno_name(-r as i32));
                }
            }
            None => println!("{name} unknown-probe"),
        }
    }
}
