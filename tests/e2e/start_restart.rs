//! A container that ended, run again: `isola start [-a]` (same root filesystem changes),
//! `isola restart`, `--restart` policies carried out by the workload's monitor (and resting
//! after `isola stop`), and `inspect`'s RestartCount, RestartPolicy and OOMKilled — through
//! the real binary.

use isola_e2e::Env;
use std::time::{Duration, Instant};

fn inspect(env: &Env, name: &str) -> serde_json::Value {
    let r = env.isola(&["inspect", name]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    serde_json::from_str::<serde_json::Value>(&r.stdout).unwrap()[0].clone()
}

fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn start_runs_an_exited_container_again_on_its_own_files() {
    let env = Env::new();
    // Each run adds a line to a file of its root and says how many there are.
    let script = "echo run >> /runs; wc -l < /runs; exit 2";
    let r = env.isola(&[
        "run",
        "--name",
        "keep",
        "--network",
        "none",
        "sample",
        "sh",
        "-c",
        script,
    ]);
    assert_eq!((r.code, r.stdout.trim()), (2, "1"), "{}", r.stderr);
    // Detached: returns once it runs, its output in the log.
    let r = env.isola(&["start", "keep"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "keep\n"), "{}", r.stderr);
    assert_eq!(env.isola(&["wait", "keep"]).stdout, "2\n");
    assert_eq!(env.isola(&["logs", "keep"]).stdout.trim(), "2");
    // Attached: its output here, its status isola's.
    let r = env.isola(&["start", "-a", "keep"]);
    assert_eq!((r.code, r.stdout.trim()), (2, "3"), "{}", r.stderr);
    let v = inspect(&env, "keep");
    assert_eq!(v["State"]["Status"], "exited");
    assert_eq!(v["State"]["ExitCode"], 2);
    assert_eq!(v["RestartCount"], 0);

    // A running one: start is a no-op, restart stops it (TERM) and starts it again.
    let r = env.isola(&[
        "run",
        "-d",
        "--name",
        "svc",
        "--network",
        "none",
        "sample",
        "sh",
        "-c",
        "echo up; trap 'echo term; exit 0' TERM; while :; do sleep 0.1; done",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    until("svc up", || {
        env.isola(&["logs", "svc"]).stdout.contains("up")
    });
    let first = inspect(&env, "svc")["State"]["StartedAt"].clone();
    let r = env.isola(&["start", "svc"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "svc\n"), "{}", r.stderr);
    assert_eq!(inspect(&env, "svc")["State"]["StartedAt"], first);
    let r = env.isola(&["restart", "-t", "5", "svc"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "svc\n"), "{}", r.stderr);
    let v = inspect(&env, "svc");
    assert_eq!(v["State"]["Running"], true, "{v}");
    assert_ne!(v["State"]["StartedAt"], first);
    until("two lives in the log", || {
        env.isola(&["logs", "svc"]).stdout == "up\nterm\nup\n"
    });
    assert_eq!(env.isola(&["stop", "svc"]).code, 0);
    assert_eq!(env.isola(&["wait", "svc"]).stdout, "0\n");

    // Bad input, nothing made. (A name that is none of isola's is runc's `start ID`.)
    let r = env.isola(&["start", "nosuch"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("container does not exist"),
        "{}",
        r.stderr
    );
    let r = env.isola(&["start", "-a", "nosuch"]);
    assert_eq!(r.code, 125);
    assert!(
        r.stderr.contains("no such container: nosuch"),
        "{}",
        r.stderr
    );
    let r = env.isola(&["start", "-a", "keep", "svc"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("one container"), "{}", r.stderr);
    assert_eq!(env.isola(&["rm", "keep", "svc"]).code, 0);
    env.assert_clean();
}

#[test]
fn the_monitor_restarts_as_the_policy_says_and_rests_after_stop() {
    let env = Env::new();
    // on-failure:2 → three runs in all, the last status kept.
    let r = env.isola(&[
        "run",
        "-d",
        "--restart",
        "on-failure:2",
        "--name",
        "flaky",
        "--network",
        "none",
        "sample",
        "sh",
        "-c",
        "echo try; exit 3",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(env.isola(&["wait", "flaky"]).stdout, "3\n");
    assert_eq!(env.isola(&["logs", "flaky"]).stdout, "try\ntry\ntry\n");
    let v = inspect(&env, "flaky");
    assert_eq!(v["RestartCount"], 2);
    assert_eq!(v["HostConfig"]["RestartPolicy"]["Name"], "on-failure");
    assert_eq!(v["HostConfig"]["RestartPolicy"]["MaximumRetryCount"], 2);

    // on-failure leaves a clean exit alone.
    let r = env.isola(&[
        "run",
        "--restart",
        "on-failure",
        "--name",
        "fine",
        "--network",
        "none",
        "sample",
        "true",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(inspect(&env, "fine")["RestartCount"], 0);

    // always: again and again, until stopped; then it stays stopped.
    let r = env.isola(&[
        "run",
        "-d",
        "--restart",
        "always",
        "--name",
        "forever",
        "--network",
        "none",
        "sample",
        "sh",
        "-c",
        "echo up; sleep 0.2",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    until("three runs", || {
        env.isola(&["logs", "forever"]).stdout.matches("up").count() >= 3
    });
    let ps = env.isola(&["ps"]).stdout;
    assert!(ps.contains("forever"), "{ps}");
    let r = env.isola(&["stop", "forever"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = inspect(&env, "forever");
    assert_eq!(v["State"]["Status"], "exited", "{v}");
    let count = v["RestartCount"].as_u64().unwrap();
    assert!(count >= 2, "{v}");
    let lines = env.isola(&["logs", "forever"]).stdout;
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(inspect(&env, "forever")["RestartCount"], count);
    assert_eq!(env.isola(&["logs", "forever"]).stdout, lines);
    assert!(!env.isola(&["ps"]).stdout.contains("forever"));

    // Refused by name before anything is made.
    for (args, said) in [
        (&["--restart", "sometimes"][..], "--restart \"sometimes\""),
        (
            &["--restart", "always:3"][..],
            "only on-failure takes a count",
        ),
        (&["--restart", "always", "--rm"][..], "with --rm"),
    ] {
        let mut all = vec!["run"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["sample", "true"]);
        let r = env.isola(&all);
        assert_eq!(r.code, 125, "{all:?}");
        assert!(r.stderr.contains(said), "{all:?}: {}", r.stderr);
    }
    assert_eq!(env.isola(&["rm", "flaky", "fine", "forever"]).code, 0);
    env.assert_clean();
}

#[test]
fn inspect_says_when_the_oom_killer_ended_it() {
    let env = Env::new();
    let r = env.isola(&[
        "run",
        "--name",
        "hog",
        "--memory",
        "32m",
        "--network",
        "none",
        "sample",
        "memhog",
        "200",
    ]);
    assert_eq!(r.code, 137, "{}", r.stderr);
    let v = inspect(&env, "hog");
    assert_eq!(v["State"]["OOMKilled"], true, "{v}");
    assert_eq!(v["State"]["ExitCode"], 137);
    // A kill that is not the OOM killer's is not called one (a child of PID 1 kills itself,
    // PID 1's shell says so: SIGKILL from inside does not reach a namespace's init).
    let r = env.isola(&[
        "run",
        "--name",
        "killed",
        "--network",
        "none",
        "sample",
        "sh",
        "-c",
        "sh -c 'kill -9 $$'; exit $?",
    ]);
    assert_eq!(r.code, 137, "{}", r.stderr);
    assert_eq!(inspect(&env, "killed")["State"]["OOMKilled"], false);
    assert_eq!(env.isola(&["rm", "hog", "killed"]).code, 0);
    env.assert_clean();
}
