//! isola as an OCI runtime (runc's command line), driven the way podman, conmon and
//! containerd's shim drive it: each operation its own process, the workload's stdio handed to
//! `create`, errors read from stderr, the exit status and the `--log` file.

use isola_e2e::{cgroups_of, receive_fd, Env, Run};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// One runtime root in a test's isola root, and the bundles made for it.
struct Rt {
    env: Env,
    root: PathBuf,
}

impl Rt {
    fn new() -> Rt {
        let env = Env::new();
        let root = env.root.join("rt");
        Rt { env, root }
    }

    /// `isola --root ROOT ARGS`.
    fn op(&self, args: &[&str]) -> Run {
        let mut all = vec!["--root", self.root.to_str().unwrap()];
        all.extend_from_slice(args);
        self.env.isola(&all)
    }

    /// A bundle of the sample image running `cmd` (through `isola bundle`).
    fn bundle(&self, name: &str, extra: &[&str], cmd: &[&str]) -> PathBuf {
        let dir = self.env.root.join(name);
        let mut args = vec!["bundle"];
        args.extend_from_slice(extra);
        args.push("sample");
        args.push(dir.to_str().unwrap());
        args.extend_from_slice(cmd);
        let r = self.env.isola(&args);
        assert_eq!(r.code, 0, "isola bundle: {}", r.stderr);
        dir
    }

    /// `create` with the workload's stdout and stderr going to `out` (the init keeps them
    /// open, so they cannot be this harness's pipes); its own stderr is read back from there.
    fn create(&self, bundle: &Path, id: &str, out: &Path, extra: &[&str]) -> Run {
        let f = std::fs::File::create(out).unwrap();
        let mut c = self
            .env
            .cmd(&["--root", self.root.to_str().unwrap(), "create"]);
        c.args(extra)
            .arg("--bundle")
            .arg(bundle)
            .arg(id)
            .stdout(f.try_clone().unwrap())
            .stderr(f);
        let status = c.status().unwrap();
        Run {
            code: status.code().unwrap_or(-1),
            stdout: String::new(),
            stderr: std::fs::read_to_string(out).unwrap(),
        }
    }

    fn state(&self, id: &str) -> serde_json::Value {
        let r = self.op(&["state", id]);
        assert_eq!(r.code, 0, "state {id}: {}", r.stderr);
        serde_json::from_str(&r.stdout).unwrap()
    }

    fn status(&self, id: &str) -> String {
        self.state(id)["status"].as_str().unwrap().to_string()
    }

    /// Nothing of any container left: state directories, cgroups.
    fn assert_clean(&self) {
        let left: Vec<_> = std::fs::read_dir(&self.root)
            .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "state left under --root: {left:?}");
        self.env.assert_clean();
    }
}

impl Drop for Rt {
    fn drop(&mut self) {
        // Whatever the outcome: no container of this test outlives it.
        let r = self.op(&["list", "-q"]);
        for id in r.stdout.lines() {
            let _ = self.op(&["delete", "--force", id]);
        }
    }
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn id(tag: &str) -> String {
    format!("rt-{tag}-{}", std::process::id())
}

#[test]
fn create_start_kill_delete_as_the_runtime_spec_says() {
    let rt = Rt::new();
    let bundle = rt.bundle(
        "b",
        &[],
        &[
            "sh",
            "-c",
            "trap 'echo got-term; exit 3' TERM; echo started; while :; do sleep 0.05; done",
        ],
    );
    let id = id("life");
    let out = rt.env.root.join("out");
    let pid_file = rt.env.root.join("pid");
    let r = rt.create(
        &bundle,
        &id,
        &out,
        &["--pid-file", pid_file.to_str().unwrap()],
    );
    assert_eq!(r.code, 0, "create: {}", r.stderr);
    let st = rt.state(&id);
    assert_eq!(st["status"], "created");
    assert_eq!(st["id"], id.as_str());
    assert_eq!(st["bundle"], bundle.to_str().unwrap());
    assert_eq!(st["rootfs"], bundle.join("rootfs").to_str().unwrap());
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    assert_eq!(st["pid"].as_i64().unwrap().to_string(), pid);
    assert!(st["created"].as_str().unwrap().ends_with('Z'), "{st}");
    // Created is not started: the workload has not run.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "");
    let listed = rt.op(&["list", "--format", "json"]);
    let listed: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["status"], "created");

    let r = rt.op(&["start", &id]);
    assert_eq!(r.code, 0, "start: {}", r.stderr);
    wait_for("the workload's output", || {
        std::fs::read_to_string(&out).unwrap() == "started\n"
    });
    assert_eq!(rt.status(&id), "running");
    let r = rt.op(&["start", &id]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("cannot start an already running container"),
        "{}",
        r.stderr
    );
    let r = rt.op(&["delete", &id]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains(&format!(
            "cannot delete container {id} that is not stopped: running"
        )),
        "{}",
        r.stderr
    );
    let ps = rt.op(&["ps", "--format", "json", &id]);
    let pids: Vec<i64> = serde_json::from_str(&ps.stdout).unwrap();
    assert!(pids.contains(&pid.parse().unwrap()), "{pids:?}");

    let r = rt.op(&["pause", &id]);
    assert_eq!(r.code, 0, "pause: {}", r.stderr);
    assert_eq!(rt.status(&id), "paused");
    let r = rt.op(&["resume", &id]);
    assert_eq!(r.code, 0, "resume: {}", r.stderr);
    assert_eq!(rt.status(&id), "running");

    let r = rt.op(&["kill", &id, "TERM"]);
    assert_eq!(r.code, 0, "kill: {}", r.stderr);
    wait_for("stopped", || rt.status(&id) == "stopped");
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "started\ngot-term\n"
    );
    assert_eq!(rt.state(&id)["pid"], 0);
    let r = rt.op(&["kill", &id, "KILL"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("container not running"), "{}", r.stderr);
    let r = rt.op(&["start", &id]);
    assert!(
        r.stderr
            .contains("cannot start a container that has stopped"),
        "{}",
        r.stderr
    );
    let r = rt.op(&["delete", &id]);
    assert_eq!(r.code, 0, "delete: {}", r.stderr);
    let r = rt.op(&["state", &id]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("container does not exist"),
        "{}",
        r.stderr
    );
    assert!(cgroups_of(&id).is_empty(), "{:?}", cgroups_of(&id));
    rt.assert_clean();
}

#[test]
fn bad_input_gets_runcs_messages_and_leaves_nothing() {
    let rt = Rt::new();
    let out = rt.env.root.join("out");
    for op in [
        &["state", "nope"][..],
        &["start", "nope"],
        &["kill", "nope"],
        &["delete", "nope"],
    ] {
        let r = rt.op(op);
        assert_eq!(r.code, 1, "{op:?}");
        assert!(
            r.stderr.contains("container does not exist"),
            "{op:?}: {}",
            r.stderr
        );
    }
    // --force on what is not there: done already, as runc says.
    assert_eq!(rt.op(&["delete", "--force", "nope"]).code, 0);

    // A command that is not in the image fails `create`, with the words podman maps to 127.
    let missing = rt.bundle("missing", &[], &["no-such-command"]);
    let log = rt.env.root.join("log.json");
    let mut c = rt.env.cmd(&[
        "--root",
        rt.root.to_str().unwrap(),
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "create",
        "--bundle",
        missing.to_str().unwrap(),
        "m1",
    ]);
    let o = c.output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("executable file not found in $PATH"),
        "{stderr}"
    );
    let line = std::fs::read_to_string(&log).unwrap();
    let entry: serde_json::Value = serde_json::from_str(line.lines().last().unwrap()).unwrap();
    assert_eq!(entry["level"], "error");
    assert!(
        entry["msg"].as_str().unwrap().contains("no-such-command"),
        "{entry}"
    );
    assert!(entry["time"].as_str().unwrap().ends_with('Z'), "{entry}");
    assert!(cgroups_of("m1").is_empty());

    // A malformed config.json is named, with what is wrong in it.
    let bad = rt.bundle("bad", &[], &["true"]);
    let config = bad.join("config.json");
    let mut spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    spec["process"]["cwd"] = "relative".into();
    std::fs::write(&config, spec.to_string()).unwrap();
    let r = rt.create(&bad, "b1", &out, &[]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("config.json") && r.stderr.contains("cwd"),
        "{}",
        r.stderr
    );
    std::fs::write(&config, "{ not json").unwrap();
    let r = rt.create(&bad, "b1", &out, &[]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains(config.to_str().unwrap()), "{}", r.stderr);
    let r = rt.create(&rt.env.root.join("no-bundle"), "b1", &out, &[]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("config.json"), "{}", r.stderr);
    let r = rt.create(&missing, "../escape", &out, &[]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("invalid id format"), "{}", r.stderr);

    // A duplicate id.
    let ok = rt.bundle("ok", &[], &["sleep", "5"]);
    assert_eq!(rt.create(&ok, "dup", &out, &[]).code, 0);
    let r = rt.create(&ok, "dup", &out, &[]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("container with id exists: dup"),
        "{}",
        r.stderr
    );
    assert_eq!(rt.status("dup"), "created");
    // Deleting a created container is allowed (its waiting init is killed).
    assert_eq!(rt.op(&["delete", "dup"]).code, 0);
    let r = rt.op(&["kill", "x", "NOSIG"]);
    assert_eq!(r.code, 1);
    rt.assert_clean();
}

#[test]
fn exec_joins_the_running_container() {
    let rt = Rt::new();
    let bundle = rt.bundle("b", &["--hostname", "inside"], &["sleep", "30"]);
    let id = id("exec");
    let out = rt.env.root.join("out");
    assert_eq!(rt.create(&bundle, &id, &out, &[]).code, 0);
    assert_eq!(rt.op(&["start", &id]).code, 0);
    let init_pid = rt.state(&id)["pid"].as_i64().unwrap();

    let r = rt.op(&[
        "exec",
        &id,
        "sh",
        "-c",
        "hostname; echo $$; ps -o pid,comm | grep -c sleep; exit 4",
    ]);
    assert_eq!(r.code, 4, "{}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines[0], "inside", "the container's UTS namespace");
    assert_ne!(lines[1], "1", "not the init");
    assert!(
        lines[1].parse::<i64>().unwrap() < 100,
        "a pid of the container's namespace"
    );
    assert_eq!(lines[2], "1", "it sees the container's processes only");

    let r = rt.op(&[
        "exec",
        "-u",
        "1000:1000",
        "--cwd",
        "/tmp",
        "-e",
        "X=y",
        &id,
        "sh",
        "-c",
        "id -u; id -g; pwd; echo $X",
    ]);
    assert_eq!(r.stdout, "1000\n1000\n/tmp\ny\n", "{}", r.stderr);
    let r = rt.op(&["exec", &id, "no-such-command"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("executable file not found"),
        "{}",
        r.stderr
    );

    // --process, --detach and --pid-file, as conmon and containerd's shim call it.
    let process = rt.env.root.join("process.json");
    std::fs::write(
        &process,
        r#"{"terminal":false,"user":{"uid":0,"gid":0},"args":["sleep","7"],"env":["PATH=/bin:/usr/bin"],"cwd":"/"}"#,
    )
    .unwrap();
    let pid_file = rt.env.root.join("exec.pid");
    // Its stdio are not this harness's pipes: the detached process keeps them.
    let status = rt
        .env
        .cmd(&["--root", rt.root.to_str().unwrap(), "exec", "--process"])
        .arg(&process)
        .args(["--detach", "--pid-file"])
        .arg(&pid_file)
        .arg(&id)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let pid: i64 = std::fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    let ps = rt.op(&["ps", "--format", "json", &id]);
    let pids: Vec<i64> = serde_json::from_str(&ps.stdout).unwrap();
    assert!(pids.contains(&pid) && pids.contains(&init_pid), "{pids:?}");
    let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
    assert_eq!(cmdline, "sleep\x007\x00");

    // delete --force takes the exec'd process too.
    assert_eq!(rt.op(&["delete", "--force", &id]).code, 0);
    assert!(
        !Path::new(&format!("/proc/{pid}/cmdline")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap()
                .contains(") Z ")
    );
    assert!(cgroups_of(&id).is_empty());
    rt.assert_clean();
}

#[test]
fn a_terminal_goes_to_the_console_socket() {
    let rt = Rt::new();
    let bundle = rt.bundle("b", &["-t"], &["sh", "-c", "tty; stty size; exit 5"]);
    let id = id("tty");
    let out = rt.env.root.join("out");
    // Without a console socket a detached terminal has nowhere to go.
    let r = rt.create(&bundle, &id, &out, &[]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("console socket"), "{}", r.stderr);
    let sock = rt.env.root.join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let taker = std::thread::spawn(move || receive_fd(&listener));
    let r = rt.create(
        &bundle,
        &id,
        &out,
        &["--console-socket", sock.to_str().unwrap()],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let master = std::fs::File::from(taker.join().unwrap());
    assert_eq!(rt.op(&["start", &id]).code, 0);
    let mut text = String::new();
    let reader = std::thread::spawn(move || {
        let _ = std::io::Read::read_to_string(&mut &master, &mut text);
        text
    });
    wait_for("stopped", || rt.status(&id) == "stopped");
    assert_eq!(rt.op(&["delete", &id]).code, 0);
    let text = reader.join().unwrap();
    assert!(text.starts_with("/dev/pts/0\r\n"), "{text:?}");
    rt.assert_clean();
}

#[test]
fn run_waits_and_removes_and_features_and_spec_answer() {
    let rt = Rt::new();
    let bundle = rt.bundle("b", &[], &["sh", "-c", "echo ran; exit 7"]);
    let r = rt.op(&["run", "--bundle", bundle.to_str().unwrap(), "r1"]);
    assert_eq!((r.code, r.stdout.as_str()), (7, "ran\n"), "{}", r.stderr);
    assert_eq!(rt.op(&["state", "r1"]).code, 1, "run removes what it made");

    let f = rt.op(&["features"]);
    let f: serde_json::Value = serde_json::from_str(&f.stdout).unwrap();
    assert!(f["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .contains(&"pid".into()));
    assert_eq!(f["linux"]["seccomp"]["enabled"], true);
    assert!(f["mountOptions"]
        .as_array()
        .unwrap()
        .contains(&"rbind".into()));

    let dir = rt.env.root.join("spec");
    std::fs::create_dir(&dir).unwrap();
    assert_eq!(rt.op(&["spec", "--bundle", dir.to_str().unwrap()]).code, 0);
    let spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(spec["process"]["args"][0], "sh");
    let r = rt.op(&["spec", "--bundle", dir.to_str().unwrap()]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("exists"), "{}", r.stderr);

    // The isola front end still has its own `run` and `ps`.
    assert_eq!(rt.env.run_ok(&["sample", "echo", "front"]), "front\n");
    rt.assert_clean();
}
