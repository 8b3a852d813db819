//! Stress, container isolation only: many runs at once, one `--name` raced by many runs, and
//! SIGKILLs at random points of `run`, `import`, `image prune` and `rmi`; afterwards nothing
//! may be leaked and every image must still run.

use isola_e2e::{cgroups_of, Env};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// 200 `isola run`s at once: none may take another's half-made state for a crashed one.
#[test]
fn two_hundred_concurrent_runs_all_succeed() {
    let env = Env::new();
    let started = Instant::now();
    let children: Vec<_> = (0..200)
        .map(|_| {
            env.cmd(&["run", "--rm", "sample", "true"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let failures: Vec<String> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .filter(|o| !o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
        .collect();
    eprintln!(
        "200 concurrent runs: {} failed, {:?}",
        failures.len(),
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} of 200 failed: {failures:?}",
        failures.len()
    );
    env.assert_clean();
}

/// 20 runs racing for one `--name`, three times: exactly one gets it, the others are told it is
/// in use (twice two ran under one name before the claim was atomic).
#[test]
fn a_name_raced_by_twenty_runs_is_had_by_exactly_one() {
    let env = Env::new();
    for round in 0..3 {
        let name = format!("dup{round}");
        let children: Vec<_> = (0..20)
            .map(|_| {
                env.cmd(&["run", "--name", &name, "sample", "sh", "-c", "sleep 0.2"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let outs: Vec<_> = children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect();
        let won = outs.iter().filter(|o| o.status.success()).count();
        assert_eq!(won, 1, "round {round}: {won} of 20 runs got --name {name}");
        for o in outs.iter().filter(|o| !o.status.success()) {
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(125), "{err}");
            assert!(err.contains("already in use"), "{err}");
        }
        let r = env.isola(&["rm", &name]);
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    env.assert_clean();
}

/// xorshift64: reproducible random kill points (the seed is printed).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// A small rootfs to import: a static busybox and enough files that an import takes a while.
fn import_source(dir: &Path) {
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", dir.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", dir.join("bin/sh")).unwrap();
    for applet in ["true", "ls", "wc", "test"] {
        std::os::unix::fs::symlink("busybox", dir.join("bin").join(applet)).unwrap();
    }
    std::fs::create_dir(dir.join("data")).unwrap();
    for i in 0..400 {
        std::fs::write(dir.join(format!("data/{i}")), vec![i as u8; 8192]).unwrap();
    }
}

/// Container IDs with a directory in this root now (also half-removed ones).
fn container_ids(env: &Env) -> Vec<String> {
    ["containers", "run/containers"]
        .iter()
        .flat_map(|d| std::fs::read_dir(env.root.join(d)).into_iter().flatten())
        .filter_map(|e| e.ok())
        .map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.trim_start_matches(".removing-").to_string()
        })
        .filter(|n| n.len() == 64)
        .collect()
}

/// The images `isola images` lists, as NAME:TAG.
fn images(env: &Env) -> Vec<String> {
    let r = env.isola(&["images"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.stdout
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut cols = l.split_whitespace();
            Some(format!("{}:{}", cols.next()?, cols.next()?))
        })
        .collect()
}

#[test]
fn sigkill_sweep_leaves_nothing_behind() {
    let env = Env::new();
    let src = tempfile::tempdir().unwrap();
    import_source(src.path());
    let big_src = tempfile::tempdir().unwrap();
    import_source(big_src.path());
    for i in 0..3000 {
        std::fs::write(big_src.path().join(format!("bin/f{i}")), b"x").unwrap();
    }
    let src = src.path().to_str().unwrap().to_string();
    let big = big_src.path().to_str().unwrap().to_string();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("kill sweep seed: {seed}");
    let mut rng = Rng(seed);
    // Unpacked once first, so the kills land in the runs' own steps, not the first unpack.
    env.run_ok(&["sample", "true"]);
    let mut ids = BTreeSet::new();
    let mut hit = [0usize; 4]; // kills that landed before the command had finished
    let started = Instant::now();
    for i in 0..100 {
        let kind = i % 4;
        let tag = format!("k{i}:1");
        let args: Vec<String> = match kind {
            0 if i % 8 == 0 => vec!["run", "--rm", "sample", "sh", "-c", "sleep 0.05"],
            0 => vec!["run", "sample", "sh", "-c", "sleep 0.05"],
            1 => vec!["import", &src, &tag],
            2 => {
                // Something to prune: the image `p:1` was, replaced, with its rootfs unpacked.
                std::fs::write(Path::new(&big).join("round"), i.to_string()).unwrap();
                let r = env.isola(&["import", &big, "p:1"]);
                assert_eq!(r.code, 0, "{}", r.stderr);
                let r = env.isola(&["run", "--rm", "p:1", "true"]);
                assert_eq!(r.code, 0, "{}", r.stderr);
                vec!["image", "prune"]
            }
            _ => {
                // Something to delete: an imported image with its rootfs unpacked.
                let r = env.isola(&["import", &big, &tag]);
                assert_eq!(r.code, 0, "{}", r.stderr);
                let r = env.isola(&["run", "--rm", &tag, "true"]);
                assert_eq!(r.code, 0, "{}", r.stderr);
                vec!["rmi", &tag]
            }
        }
        .into_iter()
        .map(String::from)
        .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut child = env
            .cmd(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(rng.below(50_000)));
        if child.try_wait().unwrap().is_none() {
            hit[kind] += 1;
        }
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        ids.extend(container_ids(&env));
    }
    eprintln!(
        "100 kills in {:?}; landed mid-command: run {}, import {}, prune {}, rmi {} (of 25 each); \
         {} container IDs seen",
        started.elapsed(),
        hit[0],
        hit[1],
        hit[2],
        hit[3],
        ids.len()
    );
    // A cleanup pass, then the kept containers removed (killed runs are recorded as exited).
    let r = env.isola(&["cleanup"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    ids.extend(container_ids(&env));
    let r = env.isola(&["ps", "-a"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let kept: Vec<String> = r
        .stdout
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect();
    if !kept.is_empty() {
        let mut rm = vec!["rm", "-f"];
        rm.extend(kept.iter().map(String::as_str));
        let r = env.isola(&rm);
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    let leaked: Vec<_> = ids.iter().flat_map(|id| cgroups_of(id)).collect();
    for cgroup in &leaked {
        // Not left to later tests, whatever this one's outcome (deepest first).
        let _ = std::process::Command::new("find")
            .arg(cgroup)
            .args(["-depth", "-type", "d", "-exec", "rmdir", "{}", ";"])
            .status();
    }
    assert!(leaked.is_empty(), "cgroups leaked: {leaked:?}");
    env.assert_clean();
    for dir in ["rootfs", "images/blobs/sha256"] {
        let temps: Vec<String> = std::fs::read_dir(env.root.join(dir))
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(temps.is_empty(), "left in {dir}: {temps:?}");
    }
    // Every image still runs, whole: the sample and whatever imports got their tag.
    let all = images(&env);
    assert!(all.contains(&"sample:latest".to_string()), "{all:?}");
    for image in &all {
        let check = if image == "sample:latest" {
            "test -x /usr/local/bin/pagerank"
        } else {
            "test $(ls /data | wc -l) = 400"
        };
        let r = env.isola(&["run", "--rm", image, "sh", "-c", check]);
        assert_eq!(r.code, 0, "{image} does not run whole: {}", r.stderr);
    }
    eprintln!("{} images all run", all.len());
    env.assert_clean();
}
