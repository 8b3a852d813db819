//! The emulated virtualization host (`tests/testhost/run`): its own contract (exit status,
//! separate stdout/stderr, timeout, a dying kernel), what `isola doctor` says inside it (KVM
//! that runs unmodified guests, pure cgroup v2), and the container suite run there on cgroup v2.

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn runner() -> PathBuf {
    isola_e2e::repo().join("tests/testhost/run")
}

fn testhost(args: &[&str]) -> Output {
    Command::new(runner())
        .args(args)
        .env("ISOLA_BIN", isola_e2e::bin())
        .stdin(Stdio::null())
        .output()
        .expect("running tests/testhost/run")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn runner_returns_status_and_separate_streams() {
    let out = testhost(&[
        "--",
        "sh",
        "-c",
        "echo to-out; echo to-err >&2; echo more; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "to-out\nmore\n");
    assert_eq!(text(&out.stderr), "to-err\n");
}

#[test]
fn runner_names_a_missing_input() {
    let missing = format!("/tmp/isola-testhost-absent-{}", std::process::id());
    let out = testhost(&["--include", &missing, "--", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        text(&out.stderr).contains(&missing),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn runner_stops_a_hang_at_its_timeout() {
    let started = std::time::Instant::now();
    let out = testhost(&["--timeout", "25", "--", "sleep", "600"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        text(&out.stderr).contains("did not finish within --timeout 25"),
        "{}",
        text(&out.stderr)
    );
    assert!(started.elapsed().as_secs() < 60, "{:?}", started.elapsed());
}

#[test]
fn runner_reports_a_kernel_panic() {
    let out = testhost(&[
        "--timeout",
        "120",
        "--",
        "sh",
        "-c",
        "echo c > /proc/sysrq-trigger; sleep 60",
    ]);
    assert_eq!(out.status.code(), Some(125));
    let err = text(&out.stderr);
    assert!(err.contains("ended before COMMAND finished"), "{err}");
}

#[test]
fn doctor_inside_the_testhost_finds_usable_kvm_and_cgroup_v2() {
    let out = testhost(&[
        "--",
        "sh",
        "-c",
        "ISOLA_ROOT=/tmp/isola isola doctor --json",
    ]);
    let rep: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {} {}", text(&out.stdout), text(&out.stderr)));
    let check = |name: &str| {
        rep["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(check("kvm")["status"], "ok", "{rep}");
    assert!(check("kvm")["detail"]
        .as_str()
        .unwrap()
        .contains("delivers exceptions"));
    assert!(
        check("cgroups")["detail"]
            .as_str()
            .unwrap()
            .starts_with("v2"),
        "{rep}"
    );
    assert_eq!(check("pivot_root")["status"], "ok", "{rep}");
    assert_eq!(rep["container"], true);
}

/// Runs the test binary `name` (built by cargo next to this one) inside the test host and
/// returns its stdout, asserting it passed.
fn suite_inside_the_testhost(name: &str, threads: &str) -> String {
    suite_inside_the_testhost_with(name, threads, &[], &[])
}

/// As `suite_inside_the_testhost`, with more host paths copied in and test-name filters.
fn suite_inside_the_testhost_with(
    name: &str,
    threads: &str,
    includes: &[&str],
    filters: &[&str],
) -> String {
    let deps = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let prefix = format!("{name}-");
    let suite = std::fs::read_dir(&deps)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.starts_with(&prefix) && !n.contains('.')
        })
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok())
        .unwrap_or_else(|| {
            panic!("the {name} test binary next to this one (cargo test builds it)")
        });
    let suite = suite.to_str().unwrap();
    let threads = format!("--test-threads={threads}");
    let mut args = vec!["--timeout", "900", "--include", suite];
    for i in includes {
        args.extend(["--include", i]);
    }
    // Uncaptured, so a test that skips says so where this test can see it.
    args.extend(["--", suite, threads.as_str(), "--nocapture"]);
    args.extend(filters);
    let run = || testhost(&args);
    let mut out = run();
    // Every isola run inside is bounded by the harness's watchdog (300 s), so a suite that
    // outlives the test host's own limit means the emulated host itself stopped making
    // progress (seen rarely with nested SVM under TCG). That, and only that, is retried once,
    // loudly; a failing test is never retried.
    if text(&out.stderr).contains("COMMAND did not finish within --timeout") {
        eprintln!(
            "WARNING: the emulated test host stopped making progress while running the {name} \
             suite; running it once more. What it printed:\n{}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        out = run();
    }
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        !stderr.contains("NOT RUN HERE"),
        "{name}: a test skipped inside the test host: {stderr}"
    );
    stdout
}

/// The container end-to-end suite again, inside the test host: pure cgroup v2, a different
/// kernel, a tmpfs root.
#[test]
fn container_suite_passes_on_pure_cgroup_v2() {
    let stdout = suite_inside_the_testhost("container", "2");
    assert!(stdout.contains("test result: ok. 16 passed"), "{stdout}");
}

/// The attacks of tests/e2e/escapes.rs on pure cgroup v2, where the device allowlist is an
/// eBPF program rather than the v1 devices controller.
#[test]
fn escapes_suite_passes_on_pure_cgroup_v2() {
    let stdout = suite_inside_the_testhost("escapes", "2");
    assert!(stdout.contains("test result: ok. 11 passed"), "{stdout}");
}

/// The VM parity suite, where KVM runs unmodified guests: every test must really run.
#[test]
fn vm_suite_passes_where_kvm_works() {
    let stdout = suite_inside_the_testhost("vm", "1");
    assert!(stdout.contains("test result: ok. 24 passed"), "{stdout}");
}

/// podman with `--runtime isola-vm`: each container a VM, where KVM runs unmodified guests
/// (podman, conmon and their configuration go in with it).
#[test]
fn podman_runs_vms_through_isola_vm_where_kvm_works() {
    let stdout = suite_inside_the_testhost_with(
        "podman",
        "1",
        &[
            "/usr/bin/podman",
            "/usr/bin/conmon",
            "/etc/containers",
            "/usr/share/containers",
        ],
        &["podman_runs_the_image_in_a_vm_through_isola_vm"],
    );
    assert!(stdout.contains("test result: ok. 1 passed"), "{stdout}");
}

/// containerd's runc shim with isola-vm as its binary: each task a VM.
#[test]
fn containerd_runs_vms_through_isola_vm_where_kvm_works() {
    let stdout = suite_inside_the_testhost_with(
        "containerd",
        "1",
        &[
            "/usr/bin/containerd",
            "/usr/bin/ctr",
            "/usr/bin/containerd-shim-runc-v2",
            "/usr/bin/tar",
        ],
        &["containerd_runs_the_image_in_a_vm_through_isola_vm"],
    );
    assert!(stdout.contains("test result: ok. 1 passed"), "{stdout}");
}

/// Images pulled from a registry (docker-registry and skopeo run inside too, on loopback) run
/// in VMs there, like in containers.
#[test]
fn pulled_images_run_in_vms_where_kvm_works() {
    let stdout = suite_inside_the_testhost_with(
        "registry",
        "1",
        &[
            "/usr/bin/docker-registry",
            "/usr/bin/skopeo",
            "/etc/containers",
        ],
        &["pulled_images_run_the_same"],
    );
    assert!(stdout.contains("test result: ok. 1 passed"), "{stdout}");
}
