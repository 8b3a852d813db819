//! Workloads that outlive the command that started them, through the real binary: `run -d`
//! (a monitor keeps the workload, its log and its exit status), `logs`, `stop`, `kill`,
//! `wait`, `inspect`, and `ps`'s CREATED and STATUS — and what goes wrong: errors before the
//! workload starts come back to the caller, a killed monitor's workload is ended and recorded.

use isola_e2e::Env;
use std::time::{Duration, Instant};

fn detached(env: &Env, args: &[&str]) -> String {
    let mut all = vec!["run", "-d", "--network", "none"];
    all.extend_from_slice(args);
    let r = env.isola(&all);
    assert_eq!(r.code, 0, "{all:?}: {}", r.stderr);
    let id = r.stdout.trim().to_string();
    assert!(
        id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "run -d prints the ID: {:?}",
        r.stdout
    );
    id
}

fn inspect(env: &Env, name: &str) -> serde_json::Value {
    let r = env.isola(&["inspect", name]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    serde_json::from_str::<serde_json::Value>(&r.stdout).unwrap()[0].clone()
}

#[test]
fn run_d_returns_at_once_and_the_log_keeps_both_streams() {
    let env = Env::new();
    let script = "echo out1; echo err1 >&2; sleep 1; echo out2; exit 3";
    let started = Instant::now();
    let id = detached(&env, &["--name", "bg", "sample", "sh", "-c", script]);
    assert!(started.elapsed() < Duration::from_secs(1), "run -d waited");
    let ps = env.isola(&["ps"]).stdout;
    assert!(ps.contains(&id[..12]) && ps.contains(" Up "), "{ps}");
    // Followed until it ends: the line written a second later is there too.
    let r = env.isola(&["logs", "-f", "bg"]);
    assert_eq!(
        (r.code, r.stdout.as_str(), r.stderr.as_str()),
        (0, "out1\nout2\n", "err1\n")
    );
    assert_eq!(env.isola(&["wait", "bg"]).stdout, "3\n");
    let r = env.isola(&["logs", "--tail", "1", "-t", "bg"]);
    let line = r.stdout.trim_end();
    assert!(line.ends_with("Z out2"), "{line:?}");
    assert!(line.starts_with("20") && line.contains('T'), "{line:?}");
    let r = env.isola(&["logs", "--since", "1s", "bg"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let ps = env.isola(&["ps", "-a"]).stdout;
    assert!(ps.contains("Exited (3)") && ps.contains(" ago"), "{ps}");
    assert!(ps.contains("CREATED"), "{ps}");
    let v = inspect(&env, "bg");
    assert_eq!(v["Id"], id.as_str());
    assert_eq!(v["State"]["Status"], "exited");
    assert_eq!(v["State"]["Running"], false);
    assert_eq!(v["State"]["ExitCode"], 3);
    let (s, f) = (
        v["State"]["StartedAt"].as_str().unwrap(),
        v["State"]["FinishedAt"].as_str().unwrap(),
    );
    assert!(s < f && s.starts_with("20"), "{s} {f}");
    assert!(std::path::Path::new(v["LogPath"].as_str().unwrap()).is_file());
    assert_eq!(env.isola(&["rm", "bg"]).code, 0);
    env.assert_clean();
}

#[test]
fn stop_sends_term_then_kills_what_ignores_it_and_kill_passes_signals_on() {
    let env = Env::new();
    let trap = "trap 'echo got-$S; exit 5' $S; echo ready; while :; do sleep 0.1; done";
    detached(
        &env,
        &[
            "--name", "polite", "-e", "S=TERM", "sample", "sh", "-c", trap,
        ],
    );
    // Its trap must be set before the signal comes.
    while !env.isola(&["logs", "polite"]).stdout.contains("ready") {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(env.isola(&["stop", "polite"]).stdout, "polite\n");
    assert_eq!(env.isola(&["wait", "polite"]).stdout, "5\n");
    assert_eq!(env.isola(&["logs", "polite"]).stdout, "ready\ngot-TERM\n");
    // PID 1 without a handler ignores SIGTERM: killed after -t.
    detached(&env, &["--name", "deaf", "sample", "sleep", "300"]);
    let t = Instant::now();
    assert_eq!(env.isola(&["stop", "-t", "1", "deaf"]).code, 0);
    let took = t.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(20),
        "{took:?}"
    );
    assert_eq!(env.isola(&["wait", "deaf"]).stdout, "137\n");
    detached(
        &env,
        &["--name", "usr", "-e", "S=USR1", "sample", "sh", "-c", trap],
    );
    while !env.isola(&["logs", "usr"]).stdout.contains("ready") {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(env.isola(&["kill", "-s", "USR1", "usr"]).code, 0);
    assert_eq!(env.isola(&["wait", "usr"]).stdout, "5\n");
    detached(&env, &["--name", "k", "sample", "sleep", "300"]);
    assert_eq!(env.isola(&["kill", "k"]).code, 0);
    assert_eq!(env.isola(&["wait", "k"]).stdout, "137\n");
    // Not running, or not a signal isola passes on: refused by name.
    let r = env.isola(&["stop", "k"]);
    assert!(
        r.code == 1 && r.stderr.contains("container k is not running"),
        "{}",
        r.stderr
    );
    let r = env.isola(&["kill", "-s", "STOP", "k"]);
    assert!(
        r.code == 125 && r.stderr.contains("signal \"STOP\""),
        "{}",
        r.stderr
    );
    for n in ["polite", "deaf", "usr", "k"] {
        assert_eq!(env.isola(&["rm", n]).code, 0);
    }
    env.assert_clean();
}

#[test]
fn errors_before_the_workload_starts_come_back_to_the_caller() {
    let env = Env::new();
    let r = env.isola(&[
        "run",
        "-d",
        "--network",
        "none",
        "sample",
        "no-such-command",
    ]);
    assert_eq!(r.code, 127, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("\"no-such-command\": executable file not found"),
        "{}",
        r.stderr
    );
    assert!(r.stdout.is_empty());
    let r = env.isola(&[
        "run",
        "-d",
        "--rm",
        "--network",
        "none",
        "--mount",
        "type=bind,src=/no/such,dst=/x",
        "sample",
        "true",
    ]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(
        r.stderr.contains("bind source /no/such does not exist"),
        "{}",
        r.stderr
    );
    let r = env.isola(&["logs", "nosuch"]);
    assert!(
        r.code != 0 && r.stderr.contains("no such container: nosuch"),
        "{}",
        r.stderr
    );
    assert_eq!(
        env.isola(&["run", "--name", "fg", "--network", "none", "sample", "true"])
            .code,
        0
    );
    let r = env.isola(&["logs", "fg"]);
    assert!(
        r.code == 1 && r.stderr.contains("was not started with -d"),
        "{}",
        r.stderr
    );
    // The failed run's record (no --rm) is kept, with its status, as docker keeps it.
    for id in env.isola(&["ps", "-aq"]).stdout.lines() {
        assert_eq!(env.isola(&["rm", id]).code, 0);
    }
    env.assert_clean();
}

#[test]
fn a_killed_monitor_ends_its_workload_and_the_exit_is_recorded() {
    let env = Env::new();
    let id = detached(&env, &["--name", "orphan", "sample", "sleep", "300"]);
    let v = inspect(&env, "orphan");
    let (monitor, init) = (
        v["State"]["MonitorPid"].as_i64().unwrap(),
        v["State"]["Pid"].as_i64().unwrap(),
    );
    assert!(monitor > 0 && init > 0 && monitor != init, "{v}");
    // The monitor is in a session of its own, apart from the caller's.
    // SAFETY: getsid(2) reads another process's session id.
    assert_ne!(unsafe { libc::getsid(monitor as i32) }, unsafe {
        libc::getsid(0)
    });
    // SAFETY: kill(2) of the monitor this test started.
    unsafe { libc::kill(monitor as i32, libc::SIGKILL) };
    std::thread::sleep(Duration::from_millis(300));
    let ps = env.isola(&["ps", "-a"]).stdout;
    assert!(
        ps.contains("Exited (137)") && ps.contains(&id[..12]),
        "{ps}"
    );
    // Killed by the cleanup pass; reaped by whoever inherited it, a moment later.
    let gone = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(20));
        !std::path::Path::new(&format!("/proc/{init}")).exists()
    });
    assert!(gone, "the workload outlived its monitor");
    assert!(isola_e2e::cgroups_of(&id[..12]).is_empty());
    assert_eq!(env.isola(&["rm", "orphan"]).code, 0);
    env.assert_clean();
}

#[test]
fn exec_runs_beside_the_workload_with_its_environment_and_the_callers_changes() {
    let env = Env::new();
    detached(
        &env,
        &[
            "--name",
            "box",
            "-e",
            "FOO=bar",
            "sample",
            "sh",
            "-c",
            "echo hi > /tmp/x; sleep 300",
        ],
    );
    let r = env.isola(&[
        "exec",
        "box",
        "sh",
        "-c",
        "cat /tmp/x; echo $FOO; id -u; pwd",
    ]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "hi\nbar\n0\n/\n"),
        "{}",
        r.stderr
    );
    let r = env.isola(&[
        "exec",
        "-u",
        "1000:1000",
        "-w",
        "/tmp",
        "-e",
        "FOO=baz",
        "box",
        "sh",
        "-c",
        "id -u; pwd; echo $FOO; exit 4",
    ]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (4, "1000\n/tmp\nbaz\n"),
        "{}",
        r.stderr
    );
    // Its processes are the workload's (one PID namespace): sleep is there.
    let r = env.isola(&["exec", "box", "sh", "-c", "ps -o comm | grep -c sleep"]);
    assert_eq!(r.stdout, "1\n", "{}", r.stderr);
    // stdin only with -i.
    let mut c = env.cmd(&["exec", "-i", "box", "cat"]);
    c.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"piped\n").unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "piped\n");
    let r = env.isola(&["exec", "box", "no-such-command"]);
    assert_eq!(r.code, 127);
    assert!(
        r.stderr
            .contains("\"no-such-command\": executable file not found"),
        "{}",
        r.stderr
    );
    let r = env.isola(&["exec", "box", "true", "-e", "X"]);
    assert_eq!(
        r.code, 0,
        "arguments after the command are the command's: {}",
        r.stderr
    );
    assert_eq!(env.isola(&["stop", "-t", "0", "box"]).code, 0);
    let r = env.isola(&["exec", "box", "true"]);
    assert!(
        r.code == 1 && r.stderr.contains("container box is not running"),
        "{}",
        r.stderr
    );
    assert_eq!(env.isola(&["rm", "box"]).code, 0);
    env.assert_clean();
}

#[test]
fn env_files_labels_and_a_stop_signal_and_timeout_of_its_own() {
    let env = Env::new();
    let file = env.root.join("vars.env");
    std::fs::write(
        &file,
        "# comment\nA=1\n\nB=two words\nFROMHOST\nUNSET_HERE\n",
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let script =
        "trap 'echo got-usr1; exit 7' USR1; echo \"$A|$B|$FROMHOST|${UNSET_HERE-unset}\"; \
                  while :; do sleep 0.1; done";
    let r = env.isola_with(
        &[
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            "own",
            "--env-file",
            f,
            "-e",
            "A=override",
            "--label",
            "team=core",
            "--label",
            "solo",
            "--stop-signal",
            "USR1",
            "--stop-timeout",
            "1",
            "sample",
            "sh",
            "-c",
            script,
        ],
        &[("FROMHOST", "h")],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    while !env.isola(&["logs", "own"]).stdout.contains('|') {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        env.isola(&["logs", "own"]).stdout,
        "override|two words|h|unset\n"
    );
    let v = inspect(&env, "own");
    assert_eq!(
        v["Config"]["Labels"],
        serde_json::json!({"solo": "", "team": "core"})
    );
    assert_eq!(v["Config"]["StopSignal"], "USR1");
    assert_eq!(v["Config"]["StopTimeout"], 1);
    assert_eq!(env.isola(&["stop", "own"]).code, 0);
    assert_eq!(env.isola(&["wait", "own"]).stdout, "7\n");
    assert!(env.isola(&["logs", "own"]).stdout.ends_with("got-usr1\n"));
    assert_eq!(env.isola(&["rm", "own"]).code, 0);
    std::fs::write(&file, "OK=1\n=oops\n").unwrap();
    for (args, says) in [
        (
            vec!["--env-file", f],
            "line 2: \"=oops\": expected KEY=VALUE or KEY",
        ),
        (
            vec!["--env-file", "/no/such.env"],
            "--env-file /no/such.env",
        ),
        (
            vec!["--stop-signal", "STOP"],
            "--stop-signal: signal \"STOP\"",
        ),
        (vec!["--label", "=x"], "--label \"=x\""),
    ] {
        let mut all = vec!["run", "--rm", "--network", "none"];
        all.extend(args.iter().copied());
        all.extend(["sample", "true"]);
        let r = env.isola(&all);
        assert_eq!(r.code, 125, "{args:?}");
        assert!(r.stderr.contains(says), "{args:?}: {}", r.stderr);
    }
    env.assert_clean();
}

/// A full disk while a detached workload writes: the workload runs on, the lines that could
/// not be logged are counted, and the first entry after space returns says how many were
/// lost. Everything lives on a small tmpfs mounted in this test's own mount namespace; the
/// workload's phases are gated by files the test makes (a bound directory), not by time.
#[test]
fn a_full_disk_loses_log_lines_not_the_workload_and_the_log_says_so() {
    let env = Env::new();
    let script = r#"
set -e
root=$1
mount -t tmpfs -o size=48m isola-full "$root"
export ISOLA_ROOT=$root
"$MAKE_SAMPLE" "$ISOLA" >/dev/null
mkdir "$root/ctl"
wait_for() { i=0; until [ -e "$1" ]; do i=$((i+1)); [ $i -lt 600 ] || { echo "never $1" >&2; exit 9; }; sleep 0.05; done; }
"$ISOLA" run -d --network none --name noisy -v "$root/ctl:/ctl" sample sh -c '
  echo phase1; while [ ! -e /ctl/go2 ]; do sleep 0.05; done
  i=0; while [ $i -lt 200 ]; do echo phase2-$i; i=$((i+1)); done; touch /ctl/done2
  while [ ! -e /ctl/go3 ]; do sleep 0.05; done
  echo phase3; exit 0' >/dev/null
until "$ISOLA" logs noisy | grep -q phase1; do sleep 0.05; done
# The disk full: what phase 2 writes cannot be logged.
dd if=/dev/zero of="$root/filler" bs=1M 2>/dev/null || true
touch "$root/ctl/go2" || { rm -f "$root/filler"; echo "could not gate" >&2; exit 9; }
wait_for "$root/ctl/done2"
sleep 1  # the log writer's turn at phase 2's lines, on the full disk
rm "$root/filler"
touch "$root/ctl/go3"
echo "exit: $("$ISOLA" wait noisy)"
"$ISOLA" logs noisy
"$ISOLA" rm noisy >/dev/null
"$ISOLA" cleanup >/dev/null
"#;
    let root = env.root.join("small");
    std::fs::create_dir_all(&root).unwrap();
    let o = std::process::Command::new("timeout")
        .args(["-k", "5", "120", "unshare", "-m", "sh", "-c", script, "sh"])
        .arg(&root)
        .env("ISOLA", isola_e2e::bin())
        .env(
            "MAKE_SAMPLE",
            isola_e2e::repo().join("scripts/make-sample-image"),
        )
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    assert!(
        out.starts_with("exit: 0\nphase1\n"),
        "the workload ran on: {out}{err}"
    );
    assert!(out.ends_with("phase3\n"), "{out}{err}");
    // The log's last page may take a few lines; the rest are lost, and counted.
    let logged = out.matches("phase2-").count();
    let lost: usize = err
        .split("isola: ")
        .nth(1)
        .and_then(|t| {
            t.split(" lines of output were lost (No space left on device")
                .next()
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no note of lost lines: {out}{err}"));
    assert!(
        lost > 0 && logged + lost == 200,
        "logged {logged}, lost {lost}: {out}{err}"
    );
    env.assert_clean();
}

#[test]
fn run_d_with_i_keeps_stdin_open_and_with_t_logs_the_terminal() {
    let env = Env::new();
    // -di: a shell reading its stdin keeps running (no end of input), also after a start.
    detached(
        &env,
        &[
            "-i",
            "--name",
            "reader",
            "sample",
            "sh",
            "-c",
            "read x; echo got-$x",
        ],
    );
    // -dt: the terminal's output is the log.
    detached(
        &env,
        &["-t", "--name", "term", "sample", "sh", "-c", "tty; exit 2"],
    );
    assert_eq!(env.isola(&["wait", "term"]).stdout, "2\n");
    let log = env.isola(&["logs", "term"]).stdout;
    assert!(log.starts_with("/dev/pts/"), "{log:?}");
    std::thread::sleep(std::time::Duration::from_millis(500));
    let v = inspect(&env, "reader");
    assert_eq!(v["State"]["Running"], true, "{v}");
    assert_eq!(env.isola(&["stop", "-t", "1", "reader"]).code, 0);
    assert_eq!(env.isola(&["start", "reader"]).code, 0);
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(inspect(&env, "reader")["State"]["Running"], true);
    assert_eq!(env.isola(&["rm", "-f", "reader", "term"]).code, 0);
    env.assert_clean();
}

#[test]
fn exec_t_gives_the_process_a_terminal_and_it_as_input_with_i() {
    let env = Env::new();
    detached(&env, &["--name", "tty", "sample", "sleep", "300"]);
    // -t: its stdio is a terminal of its own.
    let (code, out) = env.in_terminal(
        "exec -t tty sh -c 'tty; [ -t 0 ] && echo is-a-tty; exit 4'",
        "",
    );
    assert_eq!(code, 4, "{out}");
    assert!(
        out.contains("/dev/pts/") && out.contains("is-a-tty"),
        "{out}"
    );
    // -it: what is typed reaches it, an interactive shell.
    let (code, out) = env.in_terminal("exec -it tty sh", "echo in-$((40+2))\nexit 3\n");
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("in-42"), "{out}");
    // Without -t, not even inside one: its stdio are pipes isola relays, never isola's own
    // terminal (into which TIOCSTI could push keystrokes for the host's shell).
    let (code, out) = env.in_terminal(
        "exec tty sh -c '[ -t 1 ] || [ -t 2 ] || echo no-tty-out; ls -l /proc/self/fd/1'",
        "",
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("no-tty-out") && out.contains("pipe:"), "{out}");
    let r = env.isola(&["exec", "-dt", "tty", "true"]);
    assert!(
        r.code != 0 && r.stderr.contains("-d with -t"),
        "{}",
        r.stderr
    );
    assert_eq!(env.isola(&["rm", "-f", "tty"]).code, 0);
    assert!(!env.root.join("run").read_dir().unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with("exec-tty")));
    env.assert_clean();
}
