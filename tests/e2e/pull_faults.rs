//! Pulls that go wrong on the wire, through an HTTP front the test puts before docker-registry:
//! a connection cut mid-blob, a pull killed mid-blob, blob GETs redirected to another host;
//! and how a pull looks on a terminal (progress bars).

use isola_e2e::support::front::{Answer, Front, Seen};
use isola_e2e::support::registry::Registry;
use isola_e2e::Env;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn is_blob_get(r: &Seen) -> bool {
    r.method == "GET" && r.target.contains("/blobs/sha256:")
}

/// Names in the store's blob directory: (complete blobs, temp files).
fn blob_files(env: &Env) -> (Vec<String>, Vec<String>) {
    let dir = env.root.join("images/blobs/sha256");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names.into_iter().partition(|n| !n.starts_with('.'))
}

/// A front before `reg` that answers blob GETs with `broken(registry port)` until the flag it
/// returns is set, and forwards everything else (and everything after).
fn blobs_broken_until_healthy(
    reg: &Registry,
    broken: fn(u16) -> Answer,
) -> (Front, Arc<AtomicBool>) {
    let healthy = Arc::new(AtomicBool::new(false));
    let (up, h) = (reg.port, healthy.clone());
    let front = Front::start(Arc::new(move |r: &Seen| {
        if is_blob_get(r) && !h.load(Ordering::SeqCst) {
            broken(up)
        } else {
            Answer::Forward(up)
        }
    }));
    (front, healthy)
}

/// Temp directories in the unpacked-rootfs cache (unpacks in progress or dead).
fn unpack_temps(env: &Env) -> Vec<String> {
    std::fs::read_dir(env.root.join("rootfs"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default()
}

fn sample_in(reg: &Registry, env: &Env, repo: &str) {
    reg.push(&env.root.join("images"), "sample:latest", repo, &[]);
}

#[test]
fn a_cut_connection_leaves_no_half_blob_and_the_next_pull_fetches_only_what_is_missing() {
    let env = Env::new();
    let reg = Registry::start();
    sample_in(&reg, &env, "demo/cut:1");
    // Blob answers stop after 64 KiB: the config (a few hundred bytes) arrives whole, the
    // layer (megabytes) does not.
    let (front, healthy) = blobs_broken_until_healthy(&reg, |up| Answer::Cut(up, 64 << 10));
    let name = format!("127.0.0.1:{}/demo/cut:1", front.port);
    let fresh = Env::empty();
    let r = fresh.isola(&["pull", &name]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(r.stderr.contains("/blobs/sha256:"), "{}", r.stderr);
    let (blobs, temps) = blob_files(&fresh);
    assert_eq!(blobs.len(), 1, "only the config is whole: {blobs:?}");
    assert!(temps.is_empty(), "half blobs left: {temps:?}");
    assert!(
        unpack_temps(&fresh).is_empty(),
        "a half rootfs left: {:?}",
        unpack_temps(&fresh)
    );
    assert!(!fresh.isola(&["images"]).stdout.contains("demo/cut"));
    healthy.store(true, Ordering::SeqCst);
    let before = front.requests().len();
    let r = fresh.isola(&["pull", &name]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stderr.matches("already present").count(),
        1,
        "{}",
        r.stderr
    );
    assert_eq!(r.stderr.matches("fetching").count(), 1, "{}", r.stderr);
    let fetched: Vec<String> = front.requests()[before..]
        .iter()
        .filter(|r| is_blob_get(r))
        .map(|r| r.target.clone())
        .collect();
    assert_eq!(fetched.len(), 1, "{fetched:?}");
    assert!(
        !fetched[0].ends_with(&blobs[0]),
        "the config again: {fetched:?}"
    );
    let r = fresh.isola(&["run", "--rm", &name, "echo", "whole"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "whole\n"), "{}", r.stderr);
    fresh.assert_clean();
}

#[test]
fn a_pull_killed_mid_blob_is_not_trusted_and_the_next_pull_completes() {
    let env = Env::new();
    let reg = Registry::start();
    sample_in(&reg, &env, "demo/killed:1");
    // Blob answers send 256 KiB and then go silent, holding the connection.
    let (front, healthy) = blobs_broken_until_healthy(&reg, |up| Answer::Stall(up, 256 << 10));
    let name = format!("127.0.0.1:{}/demo/killed:1", front.port);
    let fresh = Env::empty();
    let mut child = fresh
        .cmd(&["pull", &name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait for the layer's bytes to reach a temp file, then kill isola as a crash would.
    let started = Instant::now();
    loop {
        let dir = fresh.root.join("images/blobs/sha256");
        let partial = blob_files(&fresh)
            .1
            .iter()
            .any(|t| dir.join(t).metadata().is_ok_and(|m| m.len() >= 128 << 10));
        if partial {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the pull never wrote the layer"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // It had begun unpacking (the config had come): a half rootfs in a temp directory.
    assert_eq!(unpack_temps(&fresh).len(), 1, "{:?}", unpack_temps(&fresh));
    let (blobs, temps) = blob_files(&fresh);
    assert_eq!(temps.len(), 1, "the dead pull's partial blob: {temps:?}");
    assert_eq!(blobs.len(), 1, "only the config is whole: {blobs:?}");
    healthy.store(true, Ordering::SeqCst);
    let r = fresh.isola(&["pull", &name]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("fetching"), "{}", r.stderr);
    let r = fresh.isola(&["run", "--rm", &name, "echo", "complete"]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "complete\n"),
        "{}",
        r.stderr
    );
    // The dead writer's partial blob, and the rootfs it had begun unpacking, are litter
    // `image prune` takes.
    let r = fresh.isola(&["image", "prune"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(blob_files(&fresh).1.is_empty(), "{}", r.stdout);
    assert!(unpack_temps(&fresh).is_empty(), "{}", r.stdout);
    fresh.assert_clean();
}

#[test]
fn credentials_do_not_follow_a_blob_redirect_to_another_host() {
    let env = Env::new();
    let reg = Registry::start();
    sample_in(&reg, &env, "demo/redirected:1");
    let up = reg.port;
    // Where blobs really come from: another host name ("localhost"), another port.
    let storage = Front::start(Arc::new(move |_: &Seen| Answer::Forward(up)));
    let storage_port = storage.port;
    // The registry host wants Basic credentials and sends blob GETs elsewhere.
    let gate = Front::start(Arc::new(move |r: &Seen| {
        if r.header("authorization") != Some("Basic dXNlcjpwdw==") {
            return Answer::Respond {
                status: 401,
                headers: vec![("WWW-Authenticate".into(), "Basic realm=\"gate\"".into())],
                body: Vec::new(),
            };
        }
        if is_blob_get(r) {
            return Answer::Respond {
                status: 307,
                headers: vec![(
                    "Location".into(),
                    format!("http://localhost:{storage_port}{}", r.target),
                )],
                body: Vec::new(),
            };
        }
        Answer::Forward(up)
    }));
    let name = format!("127.0.0.1:{}/demo/redirected:1", gate.port);
    let fresh = Env::empty();
    let r = fresh.isola(&["pull", "-u", "user:pw", &name]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let at_storage = storage.requests();
    assert_eq!(at_storage.iter().filter(|r| is_blob_get(r)).count(), 2);
    for r in &at_storage {
        assert_eq!(r.header("authorization"), None, "leaked to {}", r.target);
    }
    let r = fresh.isola(&["run", "--rm", &name, "echo", "redirected"]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "redirected\n"),
        "{}",
        r.stderr
    );
    fresh.assert_clean();
}

#[test]
fn a_pull_on_a_terminal_draws_a_bar_per_blob() {
    let env = Env::new();
    let reg = Registry::start();
    sample_in(&reg, &env, "demo/bars:1");
    let fresh = Env::empty();
    let name = reg.name("demo/bars:1");
    // `script` gives isola a terminal, as a user's shell would.
    let cmd = format!(
        "ISOLA_ROOT={} {} pull {name}",
        fresh.root.display(),
        isola_e2e::bin().display()
    );
    let out = Command::new("script")
        .args(["-eqc", &cmd, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("[=============================="), "{text}");
    assert!(text.contains("\x1b["), "terminal control sequences: {text}");
    assert!(text.contains(" done"), "{text}");
    assert!(text.contains(&format!("{name} sha256:")), "{text}");
    fresh.assert_clean();
}
