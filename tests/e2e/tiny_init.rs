//! `--init`: isola's tiny init as PID 1 — orphans reaped (no zombie, where a command as PID 1
//! leaves one), Ctrl-C reaching a command that has no handler of its own (as PID 1 it would
//! ignore it), the command's status kept — through the real binary. (VM level: vm.rs.)

use isola_e2e::Env;
use std::time::{Duration, Instant};

/// The states of every process in the container, as `exec` sees them.
fn states(env: &Env, name: &str) -> String {
    let r = env.isola(&[
        "exec",
        name,
        "sh",
        "-c",
        "grep -h ^State /proc/[0-9]*/status",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.stdout
}

#[test]
fn the_tiny_init_reaps_orphans_and_passes_ctrl_c_on() {
    let env = Env::new();
    // A child leaves an orphan behind and the command execs `sleep`, which reaps nothing.
    let orphaning = "sh -c 'sleep 0.2 &'; exec sleep 30";
    for (name, init) in [("bare", None), ("withinit", Some("--init"))] {
        let mut args = vec!["run", "-d", "--name", name, "--network", "none"];
        args.extend(init);
        args.extend(["sample", "sh", "-c", orphaning]);
        let r = env.isola(&args);
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    std::thread::sleep(Duration::from_millis(1200));
    assert!(states(&env, "bare").contains("zombie"), "the peer case");
    let with = states(&env, "withinit");
    assert!(!with.contains("zombie"), "{with}");
    let r = env.isola(&["exec", "withinit", "cat", "/proc/1/cmdline"]);
    assert_eq!(
        r.stdout.split('\0').take(2).collect::<Vec<_>>(),
        ["/dev/init", "--"]
    );
    // Read-only, and no way to write through it.
    let r = env.isola(&["exec", "withinit", "sh", "-c", "echo x > /dev/init"]);
    assert_ne!(r.code, 0);
    assert_eq!(env.isola(&["rm", "-f", "bare", "withinit"]).code, 0);

    // Ctrl-C (SIGINT to isola) ends `sleep` under the tiny init: 130, at once.
    let mut child = env
        .cmd(&[
            "run",
            "--init",
            "--rm",
            "--network",
            "none",
            "sample",
            "sleep",
            "30",
        ])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let sent = Instant::now();
    // SAFETY: kill(2) of our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(sent.elapsed() < Duration::from_secs(10));

    // Its status is the command's; a command that is not there is 127.
    let r = env.isola(&[
        "run",
        "--rm",
        "--init",
        "--network",
        "none",
        "sample",
        "sh",
        "-c",
        "exit 7",
    ]);
    assert_eq!(r.code, 7, "{}", r.stderr);
    let r = env.isola(&[
        "run",
        "--rm",
        "--init",
        "--network",
        "none",
        "sample",
        "nosuchcmd",
    ]);
    assert_eq!(r.code, 127, "{}", r.stderr);
    assert!(r.stderr.contains("nosuchcmd"), "{}", r.stderr);
    env.assert_clean();
}
