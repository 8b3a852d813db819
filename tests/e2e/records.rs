//! Container records and the cleanup pass, against the state a SIGKILLed isola leaves: planted
//! deterministically here (the randomized kill sweep is in stress.rs).

use isola_e2e::{cgroups_of, fake_id, Env, PlantedCgroups};
use std::process::Stdio;
use std::time::Duration;

/// A pid and start time of a process that is gone.
fn dead_owner() -> (i32, u64) {
    let mut c = std::process::Command::new("true").spawn().unwrap();
    let pid = c.id() as i32;
    c.wait().unwrap();
    (pid, 1)
}

#[test]
fn cgroup_of_a_create_killed_before_its_state_file_is_removed() {
    // Killed between making the cgroup and writing state.json: the state dir is there,
    // empty, and the cgroup /isola/ID in every hierarchy (15 of 80 kills leaked it for good).
    let env = Env::new();
    let id = fake_id('a');
    let state_dir = env.root.join("run/containers").join(&id);
    std::fs::create_dir_all(&state_dir).unwrap();
    let _planted = PlantedCgroups::new(&id);
    assert!(!cgroups_of(&id).is_empty());
    let r = env.isola(&["cleanup"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(cgroups_of(&id).is_empty(), "left: {:?}", cgroups_of(&id));
    assert!(!state_dir.exists());
    env.assert_clean();
}

#[test]
fn cgroup_recorded_before_the_init_exists_is_removed() {
    // What a kill leaves now: state.json written before the cgroup, with no init yet (pid 0).
    let env = Env::new();
    let id = fake_id('b');
    let state_dir = env.root.join("run/containers").join(&id);
    std::fs::create_dir_all(&state_dir).unwrap();
    let (owner, owner_start) = dead_owner();
    let state = serde_json::json!({
        "ociVersion": "1.0.2", "id": id, "status": "creating", "pid": 0, "pidStartTime": 0,
        "bundle": env.root.join("containers").join(&id), "cgroupsPath": format!("/isola/{id}"),
        "ownerPid": owner, "ownerStartTime": owner_start,
    });
    std::fs::write(state_dir.join("state.json"), state.to_string()).unwrap();
    let _planted = PlantedCgroups::new(&id);
    let r = env.isola(&["ps"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(cgroups_of(&id).is_empty(), "left: {:?}", cgroups_of(&id));
    env.assert_clean();
}

#[test]
fn empty_container_dir_of_a_very_early_kill_is_removed() {
    let env = Env::new();
    let dir = env.root.join("containers").join(fake_id('c'));
    std::fs::create_dir_all(&dir).unwrap();
    // And a removal killed part way (renamed away, not yet deleted).
    let half = env
        .root
        .join("containers")
        .join(format!(".removing-{}", fake_id('d')));
    std::fs::create_dir_all(half.join("upper/etc")).unwrap();
    let r = env.isola(&["cleanup"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!dir.exists(), "an empty container dir was kept");
    assert!(!half.exists(), "a half-removed container dir was kept");
    env.assert_clean();
}

/// Runs a kept container and damages its record; returns its short ID and record path.
fn damaged_container(env: &Env) -> (String, std::path::PathBuf) {
    let r = env.isola(&["run", "--name", "hurt", "sample", "true"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let ps = env.isola(&["ps", "-a"]);
    let short = ps
        .stdout
        .lines()
        .find(|l| l.ends_with("hurt"))
        .and_then(|l| l.split_whitespace().next())
        .expect("the container is listed")
        .to_string();
    let dir = std::fs::read_dir(env.root.join("containers"))
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| e.file_name().to_string_lossy().starts_with(&short))
        .unwrap()
        .path();
    let record = dir.join("record.json");
    std::fs::write(&record, "{ not json").unwrap();
    (short, record)
}

#[test]
fn a_damaged_record_is_named_and_removed_by_rm() {
    let env = Env::new();
    let (short, record) = damaged_container(&env);
    let r = env.isola(&["rm", &short]);
    assert_eq!(r.code, 0, "rm of a damaged container: {}", r.stderr);
    assert!(
        r.stderr.contains(&record.display().to_string()),
        "the warning names the damaged file: {}",
        r.stderr
    );
    assert!(!record.exists());
    env.assert_clean();
}

#[test]
fn a_damaged_record_is_removed_by_the_cleanup_pass() {
    let env = Env::new();
    let (short, record) = damaged_container(&env);
    let r = env.isola(&["cleanup"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains(&short), "cleanup names it: {}", r.stdout);
    assert!(r.stderr.contains("record.json"), "{}", r.stderr);
    assert!(!record.exists());
    // The name is free again.
    let r = env.isola(&["run", "--rm", "--name", "hurt", "sample", "true"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    env.assert_clean();
}

#[test]
fn a_running_container_with_a_damaged_record_is_listed_as_damaged() {
    let env = Env::new();
    let mut child = env
        .cmd(&[
            "run",
            "--name",
            "busy",
            "sample",
            "sh",
            "-c",
            "hostname; sleep 30",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut id = [0u8; 13];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut id).unwrap();
    let short = String::from_utf8_lossy(&id[..12]).into_owned();
    let check = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let dir = std::fs::read_dir(env.root.join("containers"))
            .unwrap()
            .filter_map(|e| e.ok())
            .find(|e| e.file_name().to_string_lossy().starts_with(&short))
            .unwrap()
            .path();
        std::fs::write(dir.join("record.json"), "garbage").unwrap();
        let ps = env.isola(&["ps"]);
        assert_eq!(ps.code, 0, "{}", ps.stderr);
        let row = ps.stdout.lines().find(|l| l.starts_with(&short));
        assert!(
            row.is_some_and(|l| l.contains("damaged")),
            "ps lists it as damaged: {}",
            ps.stdout
        );
        let r = env.isola(&["rm", &short]);
        assert_eq!(r.code, 1, "rm without -f refuses a live one: {}", r.stderr);
        let r = env.isola(&["rm", "-f", &short]);
        assert_eq!(r.code, 0, "{}", r.stderr);
    }));
    let _ = child.kill();
    let _ = child.wait();
    if let Err(panic) = check {
        std::panic::resume_unwind(panic);
    }
    std::thread::sleep(Duration::from_millis(100));
    let _ = env.isola(&["cleanup"]);
    assert!(cgroups_of(&short).is_empty());
    env.assert_clean();
}
