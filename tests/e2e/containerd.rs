//! containerd (Debian's 1.6) with isola as the binary of its io.containerd.runc.v2 shim: the
//! test starts its own containerd (own root, state and socket), imports the sample image from
//! an OCI archive and runs it with `ctr run --runc-binary` (the shim's `BinaryName` option).

use isola_e2e::{bin, Env};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const NAMESPACE: &str = "isola-e2e";

struct Containerd {
    _env: Env,
    dir: PathBuf,
    daemon: Child,
    image: String,
    cgroup_parent: String,
    /// isola, or a link to it named isola-vm.
    runtime: PathBuf,
}

impl Containerd {
    fn start() -> Containerd {
        Containerd::start_with(false)
    }

    /// With `vm`, the shim's binary is isola called as isola-vm.
    fn start_with(vm: bool) -> Containerd {
        let env = Env::new();
        // Its own daemon, directory and cgroup parent: the tests of this binary run at once.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = PathBuf::from(format!("/tmp/isola-ctd-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("config.toml");
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\", \"io.containerd.snapshotter.v1.btrfs\", \
                 \"io.containerd.snapshotter.v1.zfs\", \"io.containerd.snapshotter.v1.devmapper\", \
                 \"io.containerd.snapshotter.v1.aufs\", \"io.containerd.tracing.processor.v1.otlp\", \
                 \"io.containerd.internal.v1.tracing\"]\n\
                 [grpc]\n  address = \"{d}/sock\"\n[ttrpc]\n  address = \"{d}/sock.ttrpc\"\n",
                d = dir.display()
            ),
        )
        .unwrap();
        let runtime = if vm {
            let link = dir.join("isola-vm");
            std::os::unix::fs::symlink(bin(), &link).unwrap();
            link
        } else {
            bin()
        };
        let log = std::fs::File::create(dir.join("containerd.log")).unwrap();
        let daemon = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("containerd is installed by scripts/test");
        let mut c = Containerd {
            _env: env,
            daemon,
            image: String::new(),
            cgroup_parent: format!("/isola-e2e-ctd-{}-{n}", std::process::id()),
            dir,
            runtime,
        };
        let t = Instant::now();
        while !c.ctr(&["version"]).status.success() {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "containerd did not come up"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        // The sample image: isola's store is an OCI image layout, so a tar of it is an OCI
        // archive.
        let archive = c.dir.join("sample.tar");
        let st = Command::new("tar")
            .arg("-C")
            .arg(c._env.root.join("images"))
            .args(["--exclude", "index.lock", "-cf"])
            .arg(&archive)
            .arg(".")
            .status()
            .unwrap();
        assert!(st.success());
        let o = c.ctr(&[
            "images",
            "import",
            "--base-name",
            "localhost/sample",
            "--digests",
            archive.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "ctr import: {}", text(&o.stderr));
        let o = c.ctr(&["images", "ls", "-q"]);
        c.image = text(&o.stdout)
            .lines()
            .find(|l| l.starts_with("localhost/sample"))
            .expect("the imported image")
            .to_string();
        c
    }

    fn ctr_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ctr");
        c.arg("--address")
            .arg(self.dir.join("sock"))
            .args(["--namespace", NAMESPACE])
            .args(args)
            .stdin(Stdio::null());
        c
    }

    fn ctr(&self, args: &[&str]) -> Output {
        self.ctr_cmd(args).output().unwrap()
    }

    /// `ctr run` options that make isola the shim's runtime binary, with its state here.
    fn runtime_opts(&self, id: &str) -> Vec<String> {
        vec![
            "--runc-binary".into(),
            self.runtime.display().to_string(),
            "--runc-root".into(),
            self.dir.join("isola").display().to_string(),
            "--cgroup".into(),
            format!("{}/{id}", self.cgroup_parent),
        ]
    }

    fn run(&self, extra: &[&str], id: &str, command: &[&str]) -> Output {
        let mut args: Vec<String> = vec!["run".into()];
        args.extend(self.runtime_opts(id));
        args.extend(extra.iter().map(|s| s.to_string()));
        args.push(self.image.clone());
        args.push(id.into());
        args.extend(command.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.ctr(&args)
    }

    /// Until `ctr task ls` says task `id` has stopped.
    fn wait_until_stopped(&self, id: &str, limit: Duration) {
        let t = Instant::now();
        loop {
            let o = self.ctr(&["task", "ls"]);
            if text(&o.stdout)
                .lines()
                .any(|l| l.split_whitespace().next() == Some(id) && l.contains("STOPPED"))
            {
                return;
            }
            assert!(t.elapsed() < limit, "{}", text(&o.stdout));
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn assert_clean(&self) {
        let left: Vec<_> = std::fs::read_dir(self.dir.join("isola").join(NAMESPACE))
            .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "isola state left: {left:?}");
        assert_eq!(text(&self.ctr(&["containers", "ls", "-q"]).stdout), "");
        for top in isola_e2e::cgroup_tops() {
            let parent = top.join(self.cgroup_parent.trim_start_matches('/'));
            let n = std::fs::read_dir(&parent).map(|rd| rd.count()).unwrap_or(0);
            let files = std::fs::read_dir(&parent)
                .map(|rd| rd.flatten().filter(|e| e.path().is_dir()).count())
                .unwrap_or(0);
            assert_eq!(
                files,
                0,
                "cgroups left in {} ({n} entries)",
                parent.display()
            );
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let o = self.ctr(&["containers", "ls", "-q"]);
        for id in text(&o.stdout).lines() {
            let _ = self.ctr(&["task", "kill", "-s", "SIGKILL", id]);
            let _ = self.ctr(&["task", "delete", "-f", id]);
            let _ = self.ctr(&["containers", "delete", id]);
        }
        // SAFETY: kill(2) of the containerd this test started.
        unsafe { libc::kill(self.daemon.id() as i32, libc::SIGTERM) };
        let _ = self.daemon.wait();
        isola_e2e::unmount_below(&self.dir);
        for top in isola_e2e::cgroup_tops() {
            let _ = std::fs::remove_dir(top.join(self.cgroup_parent.trim_start_matches('/')));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn containerd_runs_the_image_through_isola() {
    let c = Containerd::start();
    let o = c.run(
        &["--rm"],
        "t1",
        &[
            "sh",
            "-c",
            "echo hi from $(cat /proc/self/cgroup | grep -c workload); exit 3",
        ],
    );
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).starts_with("hi from "),
        "{}",
        text(&o.stdout)
    );
    assert_ne!(text(&o.stdout).trim(), "hi from 0", "isola's cgroup layout");
    let o = c.run(&["--rm"], "t2", &["no-such-command"]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("executable file not found"),
        "{}",
        text(&o.stderr)
    );

    // Detached: exec, ps (runc's `ps --format json`), kill with a signal, delete.
    let o = c.run(
        &["-d"],
        "t3",
        &[
            "sh",
            "-c",
            "trap 'exit 9' USR1; while :; do sleep 0.1; done",
        ],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = c.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "e1",
        "t3",
        "sh",
        "-c",
        "echo exec; exit 4",
    ]);
    assert_eq!(text(&o.stdout), "exec\n", "{}", text(&o.stderr));
    assert_eq!(o.status.code(), Some(4));
    // The task's pid (its init) is among the container's processes.
    let tasks = text(&c.ctr(&["task", "ls"]).stdout);
    let init = tasks
        .lines()
        .find(|l| l.starts_with("t3"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .to_string();
    let o = c.ctr(&["task", "ps", "t3"]);
    assert!(
        text(&o.stdout)
            .lines()
            .any(|l| l.split_whitespace().next() == Some(init.as_str())),
        "{}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    assert!(c
        .ctr(&["task", "kill", "-s", "SIGUSR1", "t3"])
        .status
        .success());
    c.wait_until_stopped("t3", Duration::from_secs(20));
    let o = c.ctr(&["task", "delete", "t3"]);
    assert!(
        text(&o.stdout).contains("9") || o.status.success(),
        "{}",
        text(&o.stderr)
    );
    assert!(c.ctr(&["containers", "delete", "t3"]).status.success());

    // A terminal, through the shim's console socket (ctr -t needs one of its own: script).
    let mut line = format!(
        "ctr --address {} --namespace {NAMESPACE} run --rm -t",
        c.dir.join("sock").display()
    );
    for o in c.runtime_opts("t4") {
        line.push(' ');
        line.push_str(&o);
    }
    line.push_str(&format!(" {} t4 sh -c 'tty; exit 2'", c.image));
    let o = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        text(&o.stdout).contains("/dev/pts/0"),
        "{}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    assert_eq!(o.status.code(), Some(2));
    c.assert_clean();
}

/// The same shim with isola-vm as its binary: each task a VM (in the emulated test host;
/// `testhost.rs` runs it there).
#[test]
fn containerd_runs_the_image_in_a_vm_through_isola_vm() {
    let env = Env::new();
    if !isola_e2e::vm_capable(&env) {
        return;
    }
    drop(env);
    let c = Containerd::start_with(true);
    let host = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let o = c.run(&["--rm"], "v1", &["sh", "-c", "uname -r; exit 3"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
    assert_ne!(
        text(&o.stdout).trim(),
        host.trim(),
        "the guest's own kernel"
    );
    let o = c.run(
        &["-d"],
        "v2",
        &[
            "sh",
            "-c",
            "trap 'exit 9' USR1; while :; do sleep 0.1; done",
        ],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(c
        .ctr(&["task", "kill", "-s", "SIGUSR1", "v2"])
        .status
        .success());
    c.wait_until_stopped("v2", Duration::from_secs(60));
    assert!(c.ctr(&["task", "delete", "v2"]).status.success());
    assert!(c.ctr(&["containers", "delete", "v2"]).status.success());
    c.assert_clean();
}
