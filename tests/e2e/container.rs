//! Container isolation, end to end through the real binary.

use isola_e2e::{cgroups_of, Env};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn exit_codes_follow_docker() {
    let env = Env::new();
    let code = |args: &[&str]| {
        let mut all = vec!["run", "--rm", "sample"];
        all.extend_from_slice(args);
        env.isola(&all)
    };
    assert_eq!(code(&["true"]).code, 0);
    assert_eq!(code(&["sh", "-c", "exit 7"]).code, 7);
    let r = code(&["no-such-command"]);
    assert_eq!(r.code, 127, "{}", r.stderr);
    assert!(
        r.stderr.contains("no-such-command") && r.stderr.contains("not found"),
        "{}",
        r.stderr
    );
    let r = code(&["/etc/passwd"]);
    assert_eq!(r.code, 126, "{}", r.stderr);
    assert!(r.stderr.contains("permission denied"), "{}", r.stderr);
    let r = code(&["/no/such/path"]);
    assert_eq!(r.code, 127, "{}", r.stderr);
    // PID 1 of a PID namespace cannot be killed from inside it: not even SIGKILL to itself.
    assert_eq!(code(&["sh", "-c", "kill -KILL $$; echo survived"]).code, 0);
    env.assert_clean();
}

#[test]
fn stdout_and_stderr_stay_separate() {
    let env = Env::new();
    let r = env.isola(&[
        "run",
        "--rm",
        "sample",
        "sh",
        "-c",
        "echo to-out; echo to-err >&2; echo more-out",
    ]);
    assert_eq!(r.code, 0);
    assert_eq!(r.stdout, "to-out\nmore-out\n");
    assert_eq!(r.stderr, "to-err\n");
}

#[test]
fn stdin_only_with_interactive() {
    let env = Env::new();
    let mut child = env
        .cmd(&["run", "--rm", "-i", "sample", "sh", "-c", "tr a-z A-Z"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"piped through\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "PIPED THROUGH\n");
    // Without -i the workload reads nothing, even when isola's stdin has data.
    let mut child = env
        .cmd(&["run", "--rm", "sample", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"ignored\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
}

#[test]
fn tty_gives_a_real_terminal() {
    let env = Env::new();
    // `script` gives isola a terminal of its own, as a user's shell would.
    let cmd = format!(
        "stty rows 33 cols 77; ISOLA_ROOT={} {} run --rm -t sample sh -c 'tty; stty size; exit 3'",
        env.root.display(),
        isola_e2e::bin().display()
    );
    let out = Command::new("script")
        .args(["-eqc", &cmd, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(text.contains("/dev/pts/0"), "{text}");
    assert!(text.contains("33 77"), "{text}");
    env.assert_clean();
}

#[test]
fn env_cwd_user_and_hostname() {
    let env = Env::new();
    let out = env.run_ok(&[
        "-e",
        "GREETING=hello there",
        "sample",
        "sh",
        "-c",
        "echo \"$GREETING|$HOME|$PATH\"",
    ]);
    assert_eq!(
        out,
        "hello there|/root|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
    );
    assert_eq!(env.run_ok(&["-w", "/tmp", "sample", "pwd"]), "/tmp\n");
    // A workdir that does not exist yet is created, as docker does.
    assert_eq!(
        env.run_ok(&["-w", "/srv/new", "sample", "pwd"]),
        "/srv/new\n"
    );
    assert_eq!(env.run_ok(&["sample", "id"]), "uid=0(root) gid=0(root)\n");
    assert_eq!(
        env.run_ok(&["-u", "isola", "sample", "id"]),
        "uid=1000(isola) gid=1000(isola) groups=10(wheel),100(users)\n"
    );
    assert_eq!(
        env.run_ok(&["-u", "1000:10", "sample", "id"]),
        "uid=1000(isola) gid=10(wheel)\n"
    );
    assert_eq!(env.run_ok(&["-u", "4242", "sample", "id", "-u"]), "4242\n");
    assert_eq!(
        env.run_ok(&["-u", "isola", "sample", "sh", "-c", "echo $HOME"]),
        "/home/isola\n"
    );
    let r = env.isola(&["run", "--rm", "-u", "mallory", "sample", "id"]);
    assert_eq!(r.code, 125);
    assert!(
        r.stderr.contains("mallory") && r.stderr.contains("/etc/passwd"),
        "{}",
        r.stderr
    );
    assert_eq!(
        env.run_ok(&["--hostname", "box.example", "sample", "hostname"]),
        "box.example\n"
    );
    // The default hostname is the container's short ID, and it is not the host's.
    let h = env.run_ok(&["sample", "hostname"]);
    assert_eq!(h.trim().len(), 12, "{h}");
    assert_ne!(
        h.trim(),
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap()
            .trim()
    );
    env.assert_clean();
}

#[test]
fn workload_is_pid_1_and_sees_only_its_processes() {
    let env = Env::new();
    let out = env.run_ok(&[
        "sample",
        "sh",
        "-c",
        // (A sleep that outlives ls even on a loaded machine, killed right after.)
        "echo $$; sleep 30 & ls /proc | grep -c '^[0-9]'; kill $!",
    ]);
    // PID 1, sleep, ls and grep (and, on a loaded machine, a fork not yet exec'd): a handful,
    // where the host has hundreds.
    let (pid, count) = out.split_once('\n').unwrap_or_default();
    assert_eq!(pid, "1", "{out}");
    let count: u32 = count.trim().parse().unwrap_or(u32::MAX);
    assert!((4..=6).contains(&count), "nothing of the host's: {out}");
    // Capabilities: the reduced default set, no_new_privs on, nothing for a non-root user.
    let status = env.run_ok(&["sample", "cat", "/proc/self/status"]);
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap()
    };
    assert_eq!(field("NoNewPrivs:"), "1");
    let bnd = u64::from_str_radix(&field("CapBnd:"), 16).unwrap();
    assert_eq!(bnd & (1 << 21), 0, "CAP_SYS_ADMIN must be dropped");
    assert_ne!(bnd & (1 << 0), 0, "CAP_CHOWN is kept");
    let status = env.run_ok(&["-u", "isola", "sample", "cat", "/proc/self/status"]);
    assert!(status.contains("CapEff:\t0000000000000000"), "{status}");
    // Without a network: only loopback, and it is up.
    let ip = env.run_ok(&["--network", "none", "sample", "ip", "-o", "link"]);
    assert_eq!(ip.lines().count(), 1, "{ip}");
    assert!(ip.contains("lo:") && ip.contains("UP"), "{ip}");
    // On the default network: loopback and eth0, with docker's MAC for its address.
    let ip = env.run_ok(&["sample", "ip", "-o", "link"]);
    assert_eq!(ip.lines().count(), 2, "{ip}");
    assert!(
        ip.contains("eth0@") && ip.contains("link/ether 02:42:0a:57:00:02"),
        "{ip}"
    );
}

#[test]
fn filesystem_is_the_images_and_writes_do_not_escape() {
    let env = Env::new();
    let marker = format!("isola-e2e-marker-{}", std::process::id());
    env.run_ok(&[
        "sample",
        "sh",
        "-c",
        &format!("echo x > /{marker}; echo y > /tmp/{marker}"),
    ]);
    assert!(!std::path::Path::new(&format!("/{marker}")).exists());
    assert!(!std::path::Path::new(&format!("/tmp/{marker}")).exists());
    // Nor into the image: the next container starts clean.
    let r = env.isola(&["run", "--rm", "sample", "ls", &format!("/{marker}")]);
    assert_ne!(r.code, 0);
    // The host's files are not visible, and the root is a pivot_root, not a chroot.
    let out = env.run_ok(&[
        "sample",
        "sh",
        "-c",
        "cat /etc/motd; ls /; cat /proc/self/mountinfo",
    ]);
    assert!(
        out.starts_with(
            "isola sample image\nbin\ndev\netc\nhome\nproc\nroot\nsys\ntmp\nusr\nvar\n"
        ),
        "{out}"
    );
    let root_line = out
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/"))
        .unwrap();
    assert!(root_line.contains("overlay"), "{root_line}");
    // Masked and read-only paths.
    assert_eq!(
        env.run_ok(&["sample", "sh", "-c", "cat /proc/kcore | wc -c"]),
        "0\n"
    );
    let r = env.isola(&[
        "run",
        "--rm",
        "sample",
        "sh",
        "-c",
        "echo 1 > /proc/sys/kernel/domainname",
    ]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("Read-only"), "{}", r.stderr);
    let r = env.isola(&["run", "--rm", "sample", "touch", "/sys/x"]);
    assert_ne!(r.code, 0);
    env.assert_clean();
}

#[test]
fn memory_limit_ooms_with_137() {
    let env = Env::new();
    let r = env.isola(&["run", "--rm", "--memory", "32m", "sample", "memhog", "200"]);
    assert_eq!(r.code, 137, "stdout {} stderr {}", r.stdout, r.stderr);
    assert!(!r.stdout.contains("touched"));
    let out = env.run_ok(&["--memory", "64m", "sample", "memhog", "16"]);
    assert!(out.contains("touched 16 MiB"), "{out}");
    env.assert_clean();
}

#[test]
fn pids_limit_stops_forks() {
    let env = Env::new();
    let r = env.isola(&[
        "run",
        "--rm",
        "--pids-limit",
        "4",
        "sample",
        "sh",
        "-c",
        "for i in 1 2 3 4 5 6; do sleep 1 & done; wait",
    ]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("can't fork"), "{}", r.stderr);
    let out = env.run_ok(&[
        "--pids-limit",
        "20",
        "sample",
        "sh",
        "-c",
        "for i in 1 2 3; do true & done; wait; echo ok",
    ]);
    assert_eq!(out, "ok\n");
}

#[test]
fn cpu_quota_throttles() {
    let env = Env::new();
    // A busy loop for one second under a tenth of a CPU must be throttled by the kernel.
    let script = "timeout 1 sh -c 'while :; do :; done'; \
                  cat /sys/fs/cgroup/cpu/cpu.stat 2>/dev/null || cat /sys/fs/cgroup/cpu.stat";
    let out = env.run_ok(&["--cpus", "0.1", "sample", "sh", "-c", script]);
    let throttled: u64 = out
        .lines()
        .find_map(|l| l.strip_prefix("nr_throttled "))
        .unwrap_or_else(|| panic!("no nr_throttled in {out}"))
        .trim()
        .parse()
        .unwrap();
    assert!(throttled > 0, "{out}");
}

#[test]
fn signals_are_forwarded() {
    let env = Env::new();
    for (sig, code) in [
        (libc_sig::TERM, 143),
        (libc_sig::INT, 130),
        (libc_sig::HUP, 129),
    ] {
        let name = libc_sig::name(sig);
        let script =
            format!("trap 'echo got {name}; exit {code}' {name}; echo ready; sleep 60 & wait");
        let mut child = env
            .cmd(&["run", "--rm", "sample", "sh", "-c", &script])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut buf = [0u8; 6];
        std::io::Read::read_exact(&mut stdout, &mut buf).unwrap();
        assert_eq!(&buf, b"ready\n");
        Command::new("kill")
            .arg(format!("-{name}"))
            .arg(child.id().to_string())
            .status()
            .unwrap();
        let status = child.wait().unwrap();
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
        assert_eq!(status.code(), Some(code), "{name}: {rest}");
        assert_eq!(rest, format!("got {name}\n"));
    }
    env.assert_clean();
}

mod libc_sig {
    pub const TERM: i32 = 15;
    pub const INT: i32 = 2;
    pub const HUP: i32 = 1;
    pub fn name(s: i32) -> &'static str {
        match s {
            15 => "TERM",
            2 => "INT",
            _ => "HUP",
        }
    }
}

#[test]
fn nothing_is_left_after_kill_9_of_isola() {
    let env = Env::new();
    let mut child = env
        .cmd(&["run", "--rm", "sample", "sh", "-c", "hostname; sleep 600"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut id = [0u8; 13];
    std::io::Read::read_exact(&mut stdout, &mut id).unwrap();
    let short = String::from_utf8_lossy(&id[..12]).into_owned();
    assert!(
        !cgroups_of(&short).is_empty(),
        "the running container has cgroups"
    );
    child.kill().unwrap(); // SIGKILL: isola gets no chance to clean up
    child.wait().unwrap();
    // The workload dies with isola (parent-death signal); the next isola command cleans up.
    std::thread::sleep(Duration::from_millis(200));
    let r = env.isola(&["ps", "-a"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!r.stdout.contains(&short), "{}", r.stdout);
    assert!(cgroups_of(&short).is_empty(), "{:?}", cgroups_of(&short));
    env.assert_clean();
}

#[test]
fn containers_without_rm_are_kept_until_removed() {
    let env = Env::new();
    let r = env.isola(&[
        "run",
        "--name",
        "keeper",
        "sample",
        "sh",
        "-c",
        "echo data > /kept; exit 4",
    ]);
    assert_eq!(r.code, 4);
    let ps = env.isola(&["ps", "-a"]).stdout;
    assert!(ps.contains("keeper") && ps.contains("Exited (4)"), "{ps}");
    assert!(!env.isola(&["ps"]).stdout.contains("keeper"));
    let r = env.isola(&["run", "--name", "keeper", "sample", "true"]);
    assert_eq!(r.code, 125);
    assert!(r.stderr.contains("already in use"), "{}", r.stderr);
    let r = env.isola(&["rmi", "sample"]);
    assert_eq!(r.code, 125);
    assert!(r.stderr.contains("keeper"), "{}", r.stderr);
    assert_eq!(env.isola(&["rm", "keeper"]).code, 0);
    let r = env.isola(&["rm", "keeper"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("no such container"), "{}", r.stderr);
    env.assert_clean();
}

#[test]
fn bad_input_is_one_clear_line_and_leaves_nothing() {
    let env = Env::new();
    let cases: &[(&[&str], &str)] = &[
        (
            &["run", "--rm", "no-such-image"],
            "no such image: no-such-image:latest",
        ),
        (&["run", "--rm", "BAD//ref"], "invalid image reference"),
        (
            &["run", "--rm", "--memory", "lots", "sample", "true"],
            "--memory \"lots\"",
        ),
        (
            &["run", "--rm", "--memory", "1k", "sample", "true"],
            "minimum memory limit",
        ),
        (
            &["run", "--rm", "--cpus", "-1", "sample", "true"],
            "--cpus \"-1\"",
        ),
        (
            &["run", "--rm", "--cpus", "999", "sample", "true"],
            "--cpus \"999\"",
        ),
        (
            &["run", "--rm", "--pids-limit", "many", "sample", "true"],
            "--pids-limit \"many\"",
        ),
        (
            &["run", "--rm", "--pids-limit", "0", "sample", "true"],
            "--pids-limit \"0\": expected a positive number of processes, or -1",
        ),
        (
            &["run", "--rm", "--memory", "1e20", "sample", "true"],
            "--memory \"1e20\"",
        ),
        (
            &["run", "--rm", "--memory", "99999999t", "sample", "true"],
            "more than the largest limit",
        ),
        (
            &["run", "--rm", "sample", ""],
            "the command is an empty string",
        ),
        (
            &["run", "--rm", "-w", "relative", "sample", "true"],
            "--workdir \"relative\"",
        ),
        (
            &["run", "--rm", "--name", "bad name", "sample", "true"],
            "--name \"bad name\"",
        ),
        (&["import", "/no/such/dir", "x"], "/no/such/dir"),
        (&["rmi", "no-such-image"], "no such image"),
    ];
    for (args, needle) in cases {
        let r = env.isola(args);
        assert_eq!(r.code, 125, "{args:?}: {}", r.stderr);
        assert!(
            r.stderr.contains(needle),
            "{args:?}: {:?} lacks {needle:?}",
            r.stderr
        );
        assert_eq!(r.stderr.trim().lines().count(), 1, "{args:?}: {}", r.stderr);
    }
    // An image without a command.
    let empty = tempfile::tempdir().unwrap();
    std::fs::create_dir(empty.path().join("etc")).unwrap();
    assert_eq!(
        env.isola(&["import", empty.path().to_str().unwrap(), "nocmd"])
            .code,
        0
    );
    let r = env.isola(&["run", "--rm", "nocmd"]);
    assert_eq!(r.code, 125);
    assert!(r.stderr.contains("no command"), "{}", r.stderr);
    env.assert_clean();
}

#[test]
fn a_missing_cgroup_controller_is_reported() {
    let env = Env::new();
    let layout = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let v1_memory = layout
        .lines()
        .any(|l| l.contains(" - cgroup ") && l.contains("memory"));
    // In a private mount namespace, hide the memory controller from isola.
    let hide = if v1_memory {
        "umount /sys/fs/cgroup/memory".to_string()
    } else {
        // cgroup v2: mount a fresh, empty tmpfs where the hierarchy was.
        "mount -t tmpfs none /sys/fs/cgroup".to_string()
    };
    let script = format!(
        "{hide} && ISOLA_ROOT={} {} run --rm --memory 64m sample true",
        env.root.display(),
        isola_e2e::bin().display()
    );
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{stderr}");
    assert!(
        stderr.contains("memory") || stderr.contains("cgroup"),
        "{stderr}"
    );
    env.assert_clean();
}

#[test]
fn runc_runs_the_same_bundle_with_the_same_result() {
    let env = Env::new();
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("b");
    let script = "echo \"$(id -u):$(pwd):$GREETING\"; hostname; exit 5";
    let r = env.isola(&[
        "bundle",
        "-u",
        "isola",
        "-w",
        "/tmp",
        "-e",
        "GREETING=hi",
        "--hostname",
        "peer",
        "sample",
        bundle.to_str().unwrap(),
        "sh",
        "-c",
        script,
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let runc = isola_e2e::runc_run(&bundle, "container");
    let ours = env.isola(&[
        "run",
        "--rm",
        "-u",
        "isola",
        "-w",
        "/tmp",
        "-e",
        "GREETING=hi",
        "--hostname",
        "peer",
        "sample",
        "sh",
        "-c",
        script,
    ]);
    assert_eq!(
        runc.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&runc.stderr)
    );
    assert_eq!(ours.code, 5);
    assert_eq!(String::from_utf8_lossy(&runc.stdout), ours.stdout);
    assert_eq!(ours.stdout, "1000:/tmp:hi\npeer\n");
}
