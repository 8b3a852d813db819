//! A hostile workload against the container wall: device nodes (from the image and made at
//! run time), the system calls a container escape starts with (sysprobe, in the sample image),
//! the cgroup attack through a user namespace, setuid files reachable by host users, the host's
//! keyring and stdio. Every test drives the real binary; whatever an attack leaves on the host
//! (device nodes, images, cgroups) lives in a temporary directory or the test's own root and
//! goes with it, pass or fail.

use isola_e2e::{cgroups_of, Env};
use std::path::Path;
use std::process::Command;

/// The calls a container escape would start with; every one must meet EPERM.
const BLOCKED: &[&str] = &[
    "keyctl",
    "add_key",
    "request_key",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "io_uring_setup",
    "socket_vsock",
    "unshare_user",
    "clone_newuser",
    "mount",
    "kexec_load",
    "init_module",
    "setns",
    "personality_linux32",
];

fn run(env: &Env, args: &[&str]) -> isola_e2e::Run {
    let mut all = vec!["run", "--rm"];
    all.extend_from_slice(args);
    env.isola(&all)
}

/// An image whose root holds busybox and device nodes of the host's: the kernel log, KVM, a
/// loop device, and /dev/null itself (allowed by the device list, so only `nodev` stops it).
fn image_with_device_nodes(env: &Env, dir: &Path) {
    let root = dir.join("rootfs");
    for d in ["bin", "hostdev", "tmp"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for applet in ["sh", "head", "stat", "echo"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    for (name, kind, major, minor) in [
        ("kmsg", libc::S_IFCHR, 1, 11),
        ("kvm", libc::S_IFCHR, 10, 232),
        ("loop0", libc::S_IFBLK, 7, 0),
        ("null", libc::S_IFCHR, 1, 3),
    ] {
        let path =
            std::ffi::CString::new(root.join("hostdev").join(name).to_str().unwrap()).unwrap();
        // SAFETY: mknod with a NUL-terminated path that lives across the call.
        let r = unsafe { libc::mknod(path.as_ptr(), kind | 0o666, libc::makedev(major, minor)) };
        assert_eq!(r, 0, "mknod {name}: {}", std::io::Error::last_os_error());
    }
    let r = env.isola(&["import", root.to_str().unwrap(), "devices:latest"]);
    assert_eq!(r.code, 0, "import: {}", r.stderr);
}

#[test]
fn device_nodes_in_an_image_open_nothing() {
    let env = Env::new();
    let dir = tempfile::tempdir().unwrap();
    image_with_device_nodes(&env, dir.path());
    let script = "stat -c '%n %t:%T' /hostdev/kmsg /hostdev/loop0; \
                  for d in /hostdev/*; do \
                    if head -c1 $d >/dev/null 2>/tmp/err; then echo \"$d OPENED\"; \
                    else echo \"$d refused\"; fi; done";
    let r = run(&env, &["devices", "sh", "-c", script]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // The nodes are really there (the import kept them), and none of them opens.
    assert!(r.stdout.contains("/hostdev/kmsg 1:b\n"), "{}", r.stdout);
    assert!(r.stdout.contains("/hostdev/loop0 7:0\n"), "{}", r.stdout);
    for d in ["kmsg", "kvm", "loop0", "null"] {
        assert!(
            r.stdout.contains(&format!("/hostdev/{d} refused")),
            "{d}: {}",
            r.stdout
        );
    }
    env.assert_clean();
}

#[test]
fn device_nodes_made_at_run_time_cannot_be_opened() {
    let env = Env::new();
    // root may make nodes (CAP_MKNOD, as in Docker) in its tmpfs /dev, but the device list
    // lets it open only the standard ones.
    let script = "mknod /dev/k c 1 11 && mknod /dev/l b 7 0 && mknod /dev/v c 10 232 && \
                  for d in /dev/k /dev/l /dev/v; do head -c1 $d 2>&1 >/dev/null; done; \
                  echo ok > /dev/null && head -c4 /dev/zero | wc -c";
    let r = run(&env, &["sample", "sh", "-c", script]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        "head: /dev/k: Operation not permitted\n\
         head: /dev/l: Operation not permitted\n\
         head: /dev/v: Operation not permitted\n4\n"
    );
}

#[test]
fn the_default_seccomp_profile_blocks_escape_calls() {
    let env = Env::new();
    let mut args = vec!["sample", "sysprobe"];
    args.extend_from_slice(BLOCKED);
    args.push("getpid");
    let r = run(&env, &args);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let expected: String = BLOCKED
        .iter()
        .map(|p| format!("{p} EPERM\n"))
        .chain(["getpid ok\n".to_string()])
        .collect();
    assert_eq!(r.stdout, expected);
    let r = run(&env, &["sample", "grep", "^Seccomp", "/proc/self/status"]);
    assert_eq!(r.stdout, "Seccomp:\t2\nSeccomp_filters:\t1\n");

    // Unconfined, some of them work for the container's root: the profile is what stopped them.
    let r = run(
        &env,
        &[
            "--security-opt",
            "seccomp=unconfined",
            "sample",
            "sysprobe",
            "keyctl",
            "unshare_user",
            "io_uring_setup",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "keyctl ok\nunshare_user ok\nio_uring_setup ok\n");
    let r = run(
        &env,
        &[
            "--security-opt",
            "seccomp=unconfined",
            "sample",
            "grep",
            "^Seccomp:",
            "/proc/self/status",
        ],
    );
    assert_eq!(r.stdout, "Seccomp:\t0\n");
    env.assert_clean();
}

#[test]
fn seccomp_profiles_from_files_and_their_errors() {
    let env = Env::new();
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("no-mkdir.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let r = run(
        &env,
        &[
            "--security-opt",
            &opt,
            "sample",
            "sh",
            "-c",
            "mkdir /tmp/d; touch /tmp/f && echo touched",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "touched\n");
    assert!(r.stderr.contains("Permission denied"), "{}", r.stderr);

    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"defaultAction": "SCMP_ACT_SOMETIMES"}"#).unwrap();
    for (opt, wants) in [
        (
            format!("seccomp={}", bad.display()),
            vec!["bad.json", "SCMP_ACT_SOMETIMES"],
        ),
        (
            format!("seccomp={}", dir.path().join("absent.json").display()),
            vec!["absent.json", "No such file"],
        ),
        (
            "apparmor=unconfined".to_string(),
            vec!["--security-opt", "apparmor=unconfined"],
        ),
    ] {
        let r = run(&env, &["--security-opt", &opt, "sample", "true"]);
        assert_eq!(r.code, 125, "{opt}: {}", r.stderr);
        for w in wants {
            assert!(r.stderr.contains(w), "{opt}: {w:?} not in {}", r.stderr);
        }
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    }
    env.assert_clean();
}

#[test]
fn runc_enforces_the_bundles_seccomp_profile_and_device_list_too() {
    let env = Env::new();
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("b");
    let script = "sysprobe keyctl unshare_user; mknod /dev/k c 1 11; head -c1 /dev/k";
    let r = env.isola(&[
        "bundle",
        "sample",
        bundle.to_str().unwrap(),
        "sh",
        "-c",
        script,
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let config = std::fs::read_to_string(bundle.join("config.json")).unwrap();
    assert!(config.contains("\"seccomp\"") && config.contains("\"devices\""));
    let runc = isola_e2e::runc_run(&bundle, "escapes");
    let ours = run(&env, &["sample", "sh", "-c", script]);
    let theirs = String::from_utf8_lossy(&runc.stdout);
    assert_eq!(theirs, "keyctl EPERM\nunshare_user EPERM\n");
    assert_eq!(ours.stdout, theirs);
    assert!(
        String::from_utf8_lossy(&runc.stderr).contains("Operation not permitted"),
        "{}",
        String::from_utf8_lossy(&runc.stderr)
    );
    assert!(
        ours.stderr.contains("Operation not permitted"),
        "{}",
        ours.stderr
    );
}

#[test]
fn a_user_namespace_cannot_lift_limits_or_see_host_cgroups() {
    let env = Env::new();
    // With the profile, the attack stops at its first step.
    let r = run(
        &env,
        &["--memory", "32m", "sample", "sysprobe", "cgroup_escape"],
    );
    assert!(
        r.stdout
            .contains("unshare(CLONE_NEWUSER): Operation not permitted"),
        "{}",
        r.stdout
    );

    // Without it (the user's choice), the cgroup wall holds by itself: every hierarchy the
    // workload can mount is rooted at its own cgroup (only its own 2 processes), and lifting the
    // memory limit there leaves the container's limit in force. It also leaves cgroups of its
    // own below its cgroup, which isola removes with the rest.
    let script = "hostname; sysprobe cgroup_escape; memhog 100";
    let r = run(
        &env,
        &[
            "--memory",
            "32m",
            "--security-opt",
            "seccomp=unconfined",
            "sample",
            "sh",
            "-c",
            script,
        ],
    );
    assert_eq!(
        r.code, 137,
        "memhog outgrew the limit: {}{}",
        r.stdout, r.stderr
    );
    let mut lines = r.stdout.lines();
    let short = lines.next().unwrap().to_string();
    let mut hierarchies = 0;
    for line in lines.filter(|l| l.starts_with("cgroup ")) {
        hierarchies += 1;
        assert!(
            line.contains(" procs=2 "),
            "a hierarchy not rooted at the container: {line}"
        );
    }
    assert!(hierarchies >= 1, "{}", r.stdout);
    assert!(
        cgroups_of(&short).is_empty(),
        "left: {:?}",
        cgroups_of(&short)
    );
    env.assert_clean();
}

#[test]
fn host_users_cannot_reach_a_containers_files() {
    let env = Env::new();
    // A setuid-root shell planted by the container in its upper directory, while it runs.
    let mut child = env
        .cmd(&[
            "run",
            "--rm",
            "sample",
            "sh",
            "-c",
            "cp /bin/busybox /tmp/rootshell && chmod 4755 /tmp/rootshell && echo ready && sleep 60",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = [0u8; 6];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut ready).unwrap();
    let planted: Vec<_> = std::fs::read_dir(env.root.join("containers"))
        .unwrap()
        .filter_map(|e| e.ok())
        .flat_map(|e| {
            [
                e.path().join("upper/tmp/rootshell"),
                e.path().join("rootfs/tmp/rootshell"),
            ]
        })
        .collect();
    let as_nobody = |args: &[&std::ffi::OsStr]| {
        Command::new("setpriv")
            .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
            .args(args)
            .output()
            .expect("setpriv (util-linux)")
    };
    let mut outcomes = Vec::new();
    for p in &planted {
        assert!(
            p.exists(),
            "{} is not where the test expects it",
            p.display()
        );
        let stat = as_nobody(&["stat".as_ref(), p.as_os_str()]);
        let exec = as_nobody(&[p.as_os_str(), "cat".as_ref(), "/etc/shadow".as_ref()]);
        outcomes.push((p.clone(), stat, exec));
    }
    let _ = child.kill();
    let _ = child.wait();
    for (p, stat, exec) in outcomes {
        assert!(
            !stat.status.success()
                && String::from_utf8_lossy(&stat.stderr).contains("Permission denied"),
            "a host user can see {}: {}",
            p.display(),
            String::from_utf8_lossy(&stat.stderr)
        );
        assert!(
            !exec.status.success() && !String::from_utf8_lossy(&exec.stdout).contains("root:"),
            "a host user ran the container's setuid shell {}",
            p.display()
        );
    }
    for sub in ["images", "rootfs", "containers", "vm", "run"] {
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(env.root.join(sub)).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o700, "{sub}");
    }
}

#[test]
fn the_workload_gets_its_own_session_keyring() {
    let env = Env::new();
    // Only visible with the profile off (it refuses every keyring call).
    let r = run(
        &env,
        &[
            "--security-opt",
            "seccomp=unconfined",
            "sample",
            "sysprobe",
            "session_keyring",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.starts_with("session_keyring keyring;0;0;") && r.stdout.ends_with(";isola\n"),
        "{}",
        r.stdout
    );
}

#[test]
fn out_of_range_user_ids_are_refused() {
    let env = Env::new();
    for (user, what) in [
        ("4294967295", "uid 4294967295"),
        ("2147483648", "uid 2147483648"),
        ("0:4294967295", "gid 4294967295"),
    ] {
        let r = run(&env, &["-u", user, "sample", "id"]);
        assert_eq!(r.code, 125, "-u {user}: {}{}", r.stdout, r.stderr);
        assert!(
            r.stderr.contains(what) && r.stderr.contains("out of range"),
            "{}",
            r.stderr
        );
    }
    env.assert_clean();
}

#[test]
fn the_workload_cannot_reach_the_file_isolas_stdout_goes_to() {
    let env = Env::new();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    std::fs::write(&log, "kept\n").unwrap();
    let out = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    // Reopening its stdout would truncate the host's file, if stdout were that file.
    let status = env
        .cmd(&[
            "run",
            "--rm",
            "sample",
            "sh",
            "-c",
            "echo new > /proc/self/fd/1; for fd in 1 2 0; do readlink /proc/$$/fd/$fd | cut -d: -f1; done",
        ])
        .stdout(out)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "kept\nnew\npipe\npipe\n/dev/null\n"
    );
    env.assert_clean();
}

#[test]
fn a_fork_bomb_stops_at_the_default_pids_limit() {
    let env = Env::new();
    let r = run(
        &env,
        &[
            "sample",
            "cat",
            "/sys/fs/cgroup/pids.max",
            "/sys/fs/cgroup/pids/pids.max",
        ],
    );
    assert!(r.stdout.contains("2048\n"), "{}{}", r.stdout, r.stderr);
    let r = run(
        &env,
        &[
            "--pids-limit",
            "-1",
            "sample",
            "sh",
            "-c",
            "cat /sys/fs/cgroup/pids.max /sys/fs/cgroup/pids/pids.max 2>/dev/null",
        ],
    );
    assert_eq!(r.stdout, "max\n", "{}", r.stderr);
    env.assert_clean();
}
