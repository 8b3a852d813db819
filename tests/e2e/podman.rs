//! podman (Debian's 4.3) with isola as its OCI runtime: `podman --runtime isola`, through
//! conmon, with podman's own storage, the sample image pulled from an OCI layout on disk.

use isola_e2e::{bin, Env};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// A podman with its own root, run root, runtime root and cgroup parent, removed on drop.
struct Podman {
    _env: Env,
    dir: PathBuf,
    cgroup_parent: String,
}

impl Podman {
    fn new() -> Podman {
        Podman::with_runtime("isola")
    }

    /// A podman whose default runtime is `runtime`: "isola", or "isola-vm" (isola called by
    /// that name: every bundle VM-isolated).
    fn with_runtime(runtime: &str) -> Podman {
        let env = Env::new();
        // Short: podman refuses a run root longer than 50 characters.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = PathBuf::from(format!("/tmp/isola-pm-{}-{n}", std::process::id()));
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::os::unix::fs::symlink(bin(), dir.join("bin/isola-vm")).unwrap();
        // isola's state in this test's own root: podman 4.3 passes --runtime-flag to neither
        // conmon's exit command nor the environment, so a two-line wrapper does it.
        for (name, program) in [("isola", bin()), ("isola-vm", dir.join("bin/isola-vm"))] {
            let wrapper = dir.join(name);
            std::fs::write(
                &wrapper,
                format!(
                    "#!/bin/sh\nexec {} --root {} \"$@\"\n",
                    program.display(),
                    dir.join("rt").display()
                ),
            )
            .unwrap();
            std::fs::set_permissions(
                &wrapper,
                std::os::unix::fs::PermissionsExt::from_mode(0o755),
            )
            .unwrap();
        }
        let conf = dir.join("containers.conf");
        // Root on these machines may not raise RLIMIT_NOFILE past its hard limit (no
        // CAP_SYS_RESOURCE): podman's default of 1048576 fails under runc as well.
        std::fs::write(
            &conf,
            format!(
                "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n\
                 [engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n\
                 runtime = \"{runtime}\"\n[engine.runtimes]\nisola = [\"{}\"]\n\
                 isola-vm = [\"{}\"]\n",
                dir.join("isola").display(),
                dir.join("isola-vm").display()
            ),
        )
        .unwrap();
        let p = Podman {
            // Its own: the tests of this binary run at once, and each checks its cgroups.
            cgroup_parent: format!("/isola-e2e-podman-{}-{n}", std::process::id()),
            dir,
            _env: env,
        };
        // The sample image, from isola's store (an OCI image layout) straight into podman's.
        // (Copied to a lower-case path: podman names the image after it.)
        let layout = p.dir.join("layout");
        let st = Command::new("cp")
            .arg("-a")
            .arg(p._env.root.join("images"))
            .arg(&layout)
            .status()
            .unwrap();
        assert!(st.success());
        let _ = std::fs::remove_file(layout.join("index.lock"));
        let o = p.podman(&[
            "pull",
            "-q",
            &format!("oci:{}:sample:latest", layout.display()),
        ]);
        assert!(o.status.success(), "podman pull: {}", text(&o.stderr));
        let image = text(&o.stdout).trim().to_string();
        let o = p.podman(&["tag", &image, "localhost/sample:latest"]);
        assert!(o.status.success(), "podman tag: {}", text(&o.stderr));
        p
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", self.dir.join("containers.conf"))
            .arg("--root")
            .arg(self.dir.join("root"))
            .arg("--runroot")
            .arg(self.dir.join("run"))
            .arg("--tmpdir")
            .arg(self.dir.join("tmp"))
            .args(args)
            .stdin(Stdio::null());
        c
    }

    fn podman(&self, args: &[&str]) -> Output {
        self.cmd(args)
            .output()
            .expect("podman is installed by scripts/test")
    }

    /// `podman run --rm` of the sample image (no network, our cgroup parent).
    fn run(&self, opts: &[&str], command: &[&str]) -> Output {
        let mut all = vec![
            "run",
            "--rm",
            "--network",
            "none",
            "--cgroup-parent",
            &self.cgroup_parent,
        ];
        all.extend_from_slice(opts);
        all.push("localhost/sample");
        all.extend_from_slice(command);
        self.podman(&all)
    }

    /// No container of podman's and no state of isola's left.
    /// `-i` pipes stdin in; `-t` gives a terminal (conmon's console socket gets a pty whose
    /// other end reaches the workload's, through the monitor at the VM level).
    fn assert_stdin_and_terminal(&self) {
        let mut child = self
            .cmd(&[
                "run",
                "--rm",
                "-i",
                "--network",
                "none",
                "--cgroup-parent",
                &self.cgroup_parent,
                "localhost/sample",
                "tr",
                "a-z",
                "A-Z",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"piped in\n").unwrap();
        let o = child.wait_with_output().unwrap();
        assert_eq!(text(&o.stdout), "PIPED IN\n");
        let o = self.run(&["-t"], &["sh", "-c", "tty; exit 3"]);
        assert_eq!(code(&o), 3, "{}", text(&o.stderr));
        assert_eq!(text(&o.stdout), "/dev/pts/0\r\n");
    }

    /// `exec -u -w` into container `name` as its user and directory; a missing command is 127.
    fn assert_exec_user_workdir_and_missing_command(&self, name: &str) {
        let o = self.podman(&[
            "exec",
            "-u",
            "1000",
            "-w",
            "/tmp",
            name,
            "sh",
            "-c",
            "id -u; pwd",
        ]);
        assert_eq!(text(&o.stdout), "1000\n/tmp\n", "{}", text(&o.stderr));
        let o = self.podman(&["exec", name, "no-such-command"]);
        assert_eq!(code(&o), 127, "{}", text(&o.stderr));
    }

    fn assert_clean(&self) {
        let o = self.podman(&["ps", "-a", "-q"]);
        assert_eq!(text(&o.stdout), "", "podman containers left");
        let left: Vec<_> = std::fs::read_dir(self.dir.join("rt"))
            .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "isola state left: {left:?}");
        for top in isola_e2e::cgroup_tops() {
            let parent = top.join(self.cgroup_parent.trim_start_matches('/'));
            let containers: Vec<_> = std::fs::read_dir(&parent)
                .map(|rd| {
                    rd.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .filter(|n| n.starts_with("libpod-"))
                        .collect()
                })
                .unwrap_or_default();
            assert!(
                containers.is_empty(),
                "cgroups left in {}: {containers:?}",
                parent.display()
            );
        }
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.podman(&["rm", "-a", "-f", "-t", "0"]);
        // podman's storage mounts (its overlay home, a container's layers) go before the tree.
        isola_e2e::unmount_below(&self.dir);
        // conmon's cgroup and the parent podman made in every hierarchy.
        for top in isola_e2e::cgroup_tops() {
            let parent = top.join(self.cgroup_parent.trim_start_matches('/'));
            let _ = std::fs::remove_dir(parent.join("conmon"));
            let _ = std::fs::remove_dir(&parent);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

#[test]
fn podman_runs_the_image_through_isola() {
    let p = Podman::new();
    // isola's cgroup layout (the workload in its container's `workload` cgroup) says whose
    // container this is.
    let o = p.run(&[], &["cat", "/proc/self/cgroup"]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains(&format!("{}/libpod-", p.cgroup_parent))
            && text(&o.stdout).contains("/workload"),
        "{}",
        text(&o.stdout)
    );
    assert_eq!(code(&p.run(&[], &["sh", "-c", "exit 7"])), 7);
    let o = p.run(&[], &["no-such-command"]);
    assert_eq!(code(&o), 127, "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("executable file not found"),
        "{}",
        text(&o.stderr)
    );
    // PID 1 ignores even SIGKILL from inside; a child of it does not.
    let o = p.run(&[], &["sh", "-c", "sh -c 'kill -9 $$'; exit $?"]);
    assert_eq!(code(&o), 137, "{}", text(&o.stderr));

    let o = p.run(
        &["-e", "FOO=bar", "-u", "1000:1000", "-w", "/tmp"],
        &["sh", "-c", "echo $FOO $(id -u):$(id -g) $(pwd)"],
    );
    assert_eq!(
        text(&o.stdout),
        "bar 1000:1000 /tmp\n",
        "{}",
        text(&o.stderr)
    );

    // Limits: the container sees its own cgroup, with them.
    let o = p.run(
        &["--memory", "64m", "--pids-limit", "50"],
        &[
            "sh",
            "-c",
            "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max 2>/dev/null \
             || cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max",
        ],
    );
    assert_eq!(text(&o.stdout), "67108864\n50\n", "{}", text(&o.stderr));

    p.assert_stdin_and_terminal();
    p.assert_clean();
}

#[test]
fn podman_detaches_logs_execs_kills_stops_and_removes() {
    let p = Podman::new();
    let o = p.podman(&[
        "run",
        "-d",
        "--name",
        "sleeper",
        "--network",
        "none",
        "--cgroup-parent",
        &p.cgroup_parent,
        "localhost/sample",
        "sh",
        "-c",
        "trap 'echo got-usr1; exit 9' USR1; trap 'echo got-term; exit 5' TERM; echo up; \
         while :; do sleep 0.1; done",
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let logs = || text(&p.podman(&["logs", "sleeper"]).stdout);
    for _ in 0..100 {
        if logs() == "up\n" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(logs(), "up\n");
    // isola keeps its state under the wrapper's --root (so assert_clean means something).
    let states = std::fs::read_dir(p.dir.join("rt")).unwrap().count();
    assert_eq!(states, 1);
    let o = p.podman(&["exec", "sleeper", "sh", "-c", "echo in $(hostname); exit 6"]);
    assert_eq!(code(&o), 6, "{}", text(&o.stderr));
    assert!(text(&o.stdout).starts_with("in "), "{}", text(&o.stdout));
    p.assert_exec_user_workdir_and_missing_command("sleeper");
    let o = p.podman(&["exec", "-t", "sleeper", "tty"]);
    assert_eq!(text(&o.stdout), "/dev/pts/0\r\n", "{}", text(&o.stderr));

    assert_eq!(code(&p.podman(&["kill", "-s", "USR1", "sleeper"])), 0);
    let o = p.podman(&["wait", "sleeper"]);
    assert_eq!(text(&o.stdout).trim(), "9", "{}", text(&o.stderr));
    assert_eq!(logs(), "up\ngot-usr1\n");
    assert_eq!(code(&p.podman(&["rm", "sleeper"])), 0);

    let o = p.podman(&[
        "run",
        "-d",
        "--name",
        "stopper",
        "--network",
        "none",
        "--cgroup-parent",
        &p.cgroup_parent,
        "localhost/sample",
        "sh",
        "-c",
        "trap 'exit 5' TERM; while :; do sleep 0.1; done",
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert_eq!(code(&p.podman(&["stop", "-t", "10", "stopper"])), 0);
    let o = p.podman(&["inspect", "--format", "{{.State.ExitCode}}", "stopper"]);
    assert_eq!(text(&o.stdout).trim(), "5");
    assert_eq!(code(&p.podman(&["rm", "stopper"])), 0);
    p.assert_clean();
}

/// The same through `--runtime isola-vm`: each container is a VM (in the emulated test host,
/// where KVM boots unmodified guests; `testhost.rs` runs it there).
#[test]
fn podman_runs_the_image_in_a_vm_through_isola_vm() {
    let env = Env::new();
    if !isola_e2e::vm_capable(&env) {
        return;
    }
    drop(env);
    let p = Podman::with_runtime("isola-vm");
    let host = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let o = p.run(&[], &["uname", "-r"]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert_ne!(
        text(&o.stdout).trim(),
        host.trim(),
        "the guest's own kernel"
    );
    assert_eq!(code(&p.run(&[], &["sh", "-c", "exit 7"])), 7);
    let o = p.run(&[], &["no-such-command"]);
    assert_eq!(code(&o), 127, "{}", text(&o.stderr));
    let o = p.run(
        &[
            "-e",
            "FOO=bar",
            "-u",
            "1000:1000",
            "-w",
            "/tmp",
            "--memory",
            "64m",
        ],
        &["sh", "-c", "echo $FOO $(id -u):$(id -g) $(pwd)"],
    );
    assert_eq!(
        text(&o.stdout),
        "bar 1000:1000 /tmp\n",
        "{}",
        text(&o.stderr)
    );

    p.assert_stdin_and_terminal();

    let o = p.podman(&[
        "run",
        "-d",
        "--name",
        "vm1",
        "--network",
        "none",
        "--cgroup-parent",
        &p.cgroup_parent,
        "localhost/sample",
        "sh",
        "-c",
        "trap 'echo got-usr1; exit 9' USR1; echo up; while :; do sleep 0.1; done",
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let logs = || text(&p.podman(&["logs", "vm1"]).stdout);
    for _ in 0..600 {
        if logs() == "up\n" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(logs(), "up\n");
    // exec: another process in the guest, in the workload's namespaces.
    let o = p.podman(&[
        "exec",
        "vm1",
        "sh",
        "-c",
        "echo in-vm $(uname -r); ps -o pid,comm | grep -cE '^ *1 sh$'; exit 6",
    ]);
    assert_eq!(code(&o), 6, "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(
        out.starts_with("in-vm ") && !out.contains(host.trim()),
        "{out}"
    );
    assert_eq!(
        out.lines().nth(1),
        Some("1"),
        "the workload is PID 1 beside it: {out}"
    );
    p.assert_exec_user_workdir_and_missing_command("vm1");
    let mut child = p
        .cmd(&["exec", "-i", "vm1", "tr", "a-z", "A-Z"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"into the vm\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(text(&o.stdout), "INTO THE VM\n");
    let o = p.podman(&["exec", "-t", "vm1", "tty"]);
    assert!(
        text(&o.stdout).starts_with("/dev/pts/"),
        "{}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    assert_eq!(code(&p.podman(&["kill", "-s", "USR1", "vm1"])), 0);
    let o = p.podman(&["wait", "vm1"]);
    assert_eq!(text(&o.stdout).trim(), "9", "{}", text(&o.stderr));
    assert_eq!(logs(), "up\ngot-usr1\n");
    assert_eq!(code(&p.podman(&["rm", "vm1"])), 0);
    p.assert_clean();
}
