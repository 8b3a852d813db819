//! `isola run --explain` through the real binary: the container level says each step with its
//! real values — namespaces, the cgroup files written (the --memory value among them), the
//! mounts, pivot_root, capabilities, the seccomp filter, the exec — and says nothing without
//! the flag. The VM level's narration is tested in vm.rs (it needs a KVM that boots a guest).

use isola_e2e::Env;

#[test]
fn explain_narrates_each_step_with_its_values_and_is_silent_without_it() {
    let env = Env::new();
    let r = env.isola(&[
        "run",
        "--rm",
        "--explain",
        "--memory",
        "64m",
        "--network",
        "none",
        "sample",
        "echo",
        "hi",
    ]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "hi\n"), "{}", r.stderr);
    let said = isola_e2e::explained(&r.stderr);
    let has = |what: &str| said.iter().any(|l| l.contains(what));
    for what in [
        "an overlay mount",
        "PID (CLONE_NEWPID)",
        "mount (CLONE_NEWNS)",
        "\"67108864\" written to",
        "mount proc on /proc",
        "pivot_root",
        "CAP_CHOWN",
        "seccomp filter:",
        "execve /bin/echo [\"echo\", \"hi\"]",
    ] {
        assert!(has(what), "no {what:?} in {said:#?}");
    }
    // In the order it happens: the namespaces before the mounts, the exec last.
    let at = |what: &str| said.iter().position(|l| l.contains(what)).unwrap();
    assert!(at("CLONE_NEWPID") < at("mount proc") && at("pivot_root") < at("execve"));
    assert!(said.last().unwrap().contains("execve"), "{said:#?}");
    let r = env.isola(&["run", "--rm", "--network", "none", "sample", "echo", "hi"]);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    env.assert_clean();
}
