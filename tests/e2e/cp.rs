//! `isola cp` between the host and a container, running or stopped, through the real binary:
//! docker's placement rules, owners (root, or kept with -a), and a hostile container's links
//! never carrying a copy onto the host. (VM level: vm.rs.)

use isola_e2e::Env;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

fn ok(env: &Env, args: &[&str]) -> String {
    let r = env.isola(args);
    assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
    r.stdout
}

#[test]
fn cp_follows_dockers_rules_both_ways_running_or_stopped() {
    let env = Env::new();
    let host = env.root.join("host");
    std::fs::create_dir_all(host.join("tree/sub")).unwrap();
    std::fs::write(host.join("tree/a.txt"), "hello\n").unwrap();
    std::fs::write(host.join("tree/sub/b.txt"), "deep\n").unwrap();
    std::os::unix::fs::symlink("a.txt", host.join("tree/link")).unwrap();
    std::os::unix::fs::chown(host.join("tree/a.txt"), Some(1234), Some(1234)).unwrap();
    let h = |p: &str| host.join(p).to_string_lossy().into_owned();

    // A stopped container: copies land in (and come from) its own root, kept across starts.
    ok(
        &env,
        &[
            "run",
            "--name",
            "st",
            "--network",
            "none",
            "sample",
            "sh",
            "-c",
            "[ -d /data ] || mkdir /data; ls -n /data",
        ],
    );
    ok(&env, &["cp", &h("tree"), "st:/data"]); // into an existing directory
    ok(&env, &["cp", &h("tree/a.txt"), "st:/data/renamed.txt"]); // as a new name
    ok(&env, &["cp", "-a", &h("tree/a.txt"), "st:/data/kept.txt"]);
    ok(&env, &["cp", &h("tree/."), "st:/contents"]); // a directory's contents, made
    let r = env.isola(&["start", "-a", "st"]);
    let listing = r.stdout;
    assert!(
        listing.contains("renamed.txt") && listing.contains("tree"),
        "{listing}"
    );
    let line = |name: &str| {
        listing
            .lines()
            .find(|l| l.ends_with(name))
            .unwrap_or_default()
            .split_whitespace()
            .take(4)
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(line("renamed.txt"), "-rw-r--r-- 1 0 0", "{listing}");
    assert_eq!(line("kept.txt"), "-rw-r--r-- 1 1234 1234", "{listing}");

    // Out of it: a tree, a file under a new name, a directory's contents.
    ok(&env, &["cp", "st:/data/tree", &h("out")]);
    assert_eq!(
        std::fs::read_to_string(host.join("out/sub/b.txt")).unwrap(),
        "deep\n"
    );
    assert_eq!(
        std::fs::read_link(host.join("out/link")).unwrap(),
        Path::new("a.txt")
    );
    ok(&env, &["cp", "st:/data/renamed.txt", &h("r.txt")]);
    assert_eq!(
        std::fs::read_to_string(host.join("r.txt")).unwrap(),
        "hello\n"
    );
    ok(&env, &["cp", "st:/contents/.", &h("flat")]);
    assert!(host.join("flat/sub/b.txt").is_file());
    assert_eq!(std::fs::metadata(host.join("flat/a.txt")).unwrap().uid(), 0);

    // A running one: what it sees, its tmpfs included; copies in are there at once.
    ok(
        &env,
        &[
            "run",
            "-d",
            "--name",
            "live",
            "--network",
            "none",
            "--tmpfs",
            "/scratch",
            "sample",
            "sh",
            "-c",
            "echo in-tmpfs > /scratch/t; sleep 300",
        ],
    );
    let mut tries = 0;
    while env.isola(&["cp", "live:/scratch/t", &h("t")]).code != 0 {
        tries += 1;
        assert!(tries < 100, "the workload never wrote /scratch/t");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        std::fs::read_to_string(host.join("t")).unwrap(),
        "in-tmpfs\n"
    );
    ok(&env, &["cp", &h("tree/sub"), "live:/scratch"]);
    assert_eq!(
        ok(&env, &["exec", "live", "cat", "/scratch/sub/b.txt"]),
        "deep\n"
    );
    ok(&env, &["rm", "-f", "live"]);

    // Bad input by name, nothing made or left.
    for (args, said) in [
        (
            vec!["cp".into(), "st:/nope".into(), h("x")],
            "/nope: no such file",
        ),
        (vec!["cp".into(), h("nope"), "st:/data".into()], "nope"),
        (
            vec!["cp".into(), h("tree"), h("x")],
            "one of them must be CONTAINER:PATH",
        ),
        (
            vec!["cp".into(), "st:/a".into(), "st:/b".into()],
            "between two containers",
        ),
        (
            vec!["cp".into(), "ghost:/a".into(), h("x")],
            "no such container: ghost",
        ),
        (
            vec!["cp".into(), h("tree/a.txt"), "st:/data/none/".into()],
            "no such directory",
        ),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect::<Vec<_>>();
        let r = env.isola(&args);
        assert_ne!(r.code, 0, "{args:?}");
        assert!(r.stderr.contains(said), "{args:?}: {}", r.stderr);
    }
    assert!(!host.join("x").exists());
    ok(&env, &["rm", "st"]);
    env.assert_clean();
}

#[test]
fn a_containers_links_never_carry_a_copy_onto_the_host() {
    let env = Env::new();
    let marker = format!("isola-cp-escape-{}", std::process::id());
    let host_marker = Path::new("/tmp").join(&marker);
    let _ = std::fs::remove_file(&host_marker);
    // The image's user made links to the host's root and to a host file.
    ok(
        &env,
        &[
            "run",
            "--name",
            "trap",
            "--network",
            "none",
            "sample",
            "sh",
            "-c",
            "mkdir /d; ln -s / /d/up; ln -s /etc/shadow /d/secret; ln -s /tmp /d/tmpdir",
        ],
    );
    let src = env.root.join("m");
    std::fs::write(&src, "x").unwrap();
    let src = src.to_string_lossy().into_owned();
    // Written through the links: inside the container's root, never the host's.
    ok(&env, &["cp", &src, &format!("trap:/d/up/tmp/{marker}")]);
    ok(&env, &["cp", &src, &format!("trap:/d/tmpdir/{marker}-2")]);
    assert!(!host_marker.exists(), "a copy reached the host's /tmp");
    assert!(!Path::new("/tmp").join(format!("{marker}-2")).exists());
    let r = env.isola(&["start", "-a", "trap"]);
    let _ = r; // its script fails now (the files exist): only the copies matter
    let out = env.root.join("out");
    // Read through them: links come out as links, never as the host's files.
    ok(&env, &["cp", "trap:/d", &out.to_string_lossy()]);
    assert_eq!(
        std::fs::read_link(out.join("secret")).unwrap(),
        Path::new("/etc/shadow")
    );
    let r = env.isola(&[
        "cp",
        "trap:/d/up/etc/shadow",
        &env.root.join("s").to_string_lossy(),
    ]);
    // The container's /etc/shadow (the sample image has none), not the host's.
    assert_ne!(r.code, 0, "{}", r.stdout);
    let r = env.isola(&[
        "cp",
        &format!("trap:/tmp/{marker}"),
        &env.root.join("back").to_string_lossy(),
    ]);
    assert_eq!(
        r.code, 0,
        "the copy went into the container's own /tmp: {}",
        r.stderr
    );
    ok(&env, &["rm", "trap"]);
    let _ = std::fs::remove_file(&host_marker);
    env.assert_clean();
}

#[test]
fn a_cp_killed_part_way_leaves_no_mount_once_cleanup_has_run() {
    let env = Env::new();
    ok(
        &env,
        &["run", "--name", "st", "--network", "none", "sample", "true"],
    );
    // A big sparse file: the copy into the stopped container takes long enough to be caught.
    let big = env.root.join("big");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(2 << 30)
        .unwrap();
    let mut cp = env
        .cmd(&["cp", &big.to_string_lossy(), "st:/big"])
        .spawn()
        .unwrap();
    let rootfs = format!("{}/containers/", env.root.display());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.contains(&rootfs) && l.contains("/rootfs "))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the copy never mounted the root"
        );
        assert!(
            cp.try_wait().unwrap().is_none(),
            "the copy ended before it was caught"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    cp.kill().unwrap();
    cp.wait().unwrap();
    // The next command's cleanup pass unmounts it; the container is as it was.
    ok(&env, &["ps", "-a"]);
    let left = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!left.lines().any(|l| l.contains(&rootfs)), "{left}");
    ok(&env, &["start", "-a", "st"]);
    ok(&env, &["rm", "st"]);
    std::fs::remove_file(&big).unwrap();
    env.assert_clean();
}
