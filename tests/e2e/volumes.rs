//! Data in and out of a container through the real binary: host directories bound in (`-v
//! /host:/path`, `--mount type=bind`), named and anonymous volumes of isola's store (made on
//! first use, filled from the image, kept until removed, refused removal while a container
//! names them), tmpfs mounts and a read-only root — and bad input refused by name with nothing
//! left, and mounts a hostile image's symlinks cannot redirect onto the host.

use isola_e2e::Env;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

fn run(env: &Env, args: &[&str]) -> isola_e2e::Run {
    let mut all = vec!["run", "--rm", "--network", "none"];
    all.extend_from_slice(args);
    env.isola(&all)
}

/// The names in a directory (empty if it is not there).
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The store's volumes, and that no half-made or half-removed one is left.
fn volumes(env: &Env) -> Vec<String> {
    let all = names(&env.root.join("volumes"));
    let stray: Vec<&String> = all
        .iter()
        .filter(|n| n.starts_with('.') && *n != ".lock")
        .collect();
    assert!(stray.is_empty(), "half-made volumes left: {stray:?}");
    all.into_iter().filter(|n| !n.starts_with('.')).collect()
}

#[test]
fn binds_write_through_keep_owner_and_mode_and_ro_is_read_only_all_the_way_down() {
    let env = Env::new();
    let host = env.root.join("host");
    std::fs::create_dir_all(host.join("sub")).unwrap();
    std::fs::write(host.join("f"), "hello\n").unwrap();
    std::fs::set_permissions(&host, std::fs::Permissions::from_mode(0o777)).unwrap();
    let v = format!("{}:/data", host.display());
    let r = run(
        &env,
        &[
            "-u",
            "1000:1000",
            "-v",
            &v,
            "sample",
            "sh",
            "-c",
            "cat /data/f; umask 027; echo out > /data/g && mkdir /data/d && echo wrote",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "hello\nwrote\n");
    let g = std::fs::metadata(host.join("g")).unwrap();
    assert_eq!((g.uid(), g.gid(), g.mode() & 0o7777), (1000, 1000, 0o640));
    assert_eq!(std::fs::read_to_string(host.join("g")).unwrap(), "out\n");
    let d = std::fs::metadata(host.join("d")).unwrap();
    assert_eq!((d.uid(), d.mode() & 0o7777), (1000, 0o750));

    // Read-only, also for a mount inside the bound tree (a tmpfs on host/sub, made in a mount
    // namespace of the test's own, so it goes with it).
    let script = format!(
        "mount -t tmpfs t {sub} && \"$ISOLA\" run --rm --network none -v {h}:/data:ro sample sh -c \
         'echo x > /data/x; echo x > /data/sub/x; cat /data/f'",
        sub = host.join("sub").display(),
        h = host.display()
    );
    let o = std::process::Command::new("unshare")
        .args(["-m", "sh", "-c", &script])
        .env("ISOLA_ROOT", &env.root)
        .env("ISOLA", isola_e2e::bin())
        .output()
        .unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    assert_eq!(out, "hello\n");
    assert_eq!(
        err.matches("Read-only file system").count(),
        2,
        "both writes refused: {err}"
    );
    assert!(!host.join("x").exists());
    // --mount takes the same, and refuses a missing source where -v makes it.
    let m = format!("type=bind,source={},target=/data,readonly", host.display());
    let r = run(&env, &["--mount", &m, "sample", "cat", "/data/g"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "out\n"), "{}", r.stderr);
    let made = env.root.join("made-by-v");
    let v = format!("{}:/m", made.display());
    let r = run(&env, &["-v", &v, "sample", "true"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        made.is_dir(),
        "-v makes a missing host directory, as docker does"
    );
    env.assert_clean();
}

#[test]
fn a_named_volume_is_filled_from_the_image_once_shared_and_kept_until_removed() {
    let env = Env::new();
    let image_mode = run(&env, &["sample", "stat", "-c", "%a %u", "/etc/passwd"]).stdout;
    let r = env.isola(&[
        "run",
        "--name",
        "keep",
        "--network",
        "none",
        "-v",
        "cfg:/etc",
        "sample",
        "sh",
        "-c",
        "stat -c '%a %u' /etc/passwd; echo mine > /etc/mine; rm /etc/group",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout, image_mode,
        "filled with the image's /etc, modes kept"
    );
    assert_eq!(volumes(&env), ["cfg"]);
    let data = env.root.join("volumes/cfg/_data");
    assert!(data.join("passwd").is_file());
    assert_eq!(
        std::fs::read_to_string(data.join("mine")).unwrap(),
        "mine\n"
    );
    // Filled once: what the first container removed stays removed.
    let r = run(
        &env,
        &[
            "-v",
            "cfg:/etc:ro",
            "sample",
            "sh",
            "-c",
            "cat /etc/mine; ls /etc/group 2>/dev/null || echo no-group; echo x > /etc/new",
        ],
    );
    assert_eq!(r.stdout, "mine\nno-group\n", "{}", r.stderr);
    assert!(r.stderr.contains("Read-only file system"), "{}", r.stderr);
    // In use by the exited container: refused, naming it.
    let r = env.isola(&["volume", "rm", "cfg"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("volume cfg is in use by container keep"),
        "{}",
        r.stderr
    );
    let r = env.isola(&["volume", "inspect", "cfg"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v[0]["Name"], "cfg");
    assert_eq!(v[0]["Mountpoint"], data.to_str().unwrap());
    assert_eq!(v[0]["Containers"][0]["Name"], "keep");
    assert_eq!(env.isola(&["volume", "ls", "-q"]).stdout, "cfg\n");
    assert_eq!(env.isola(&["rm", "keep"]).code, 0);
    let r = env.isola(&["volume", "rm", "cfg"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "cfg\n"), "{}", r.stderr);
    assert!(volumes(&env).is_empty());
    env.assert_clean();
}

#[test]
fn anonymous_volumes_go_with_their_container_and_prune_takes_what_nothing_uses() {
    let env = Env::new();
    let r = run(
        &env,
        &[
            "-v",
            "/scratch",
            "sample",
            "sh",
            "-c",
            "echo x > /scratch/y",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(volumes(&env).is_empty(), "--rm takes its anonymous volume");
    let r = env.isola(&[
        "run",
        "--name",
        "a1",
        "--network",
        "none",
        "-v",
        "/scratch",
        "sample",
        "true",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let anon = volumes(&env);
    assert_eq!(anon.len(), 1);
    assert_eq!(anon[0].len(), 64, "a random name: {anon:?}");
    assert_eq!(
        env.isola(&["volume", "create", "named1"]).stdout,
        "named1\n"
    );
    let random = env.isola(&["volume", "create"]).stdout;
    assert_eq!(random.trim().len(), 64, "{random}");
    // In use: kept; named: kept without --all.
    let r = env.isola(&["volume", "prune"]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "Deleted Volumes:\n"),
        "{}",
        r.stderr
    );
    assert_eq!(volumes(&env).len(), 3);
    assert_eq!(env.isola(&["rm", "a1"]).code, 0);
    assert_eq!(volumes(&env).len(), 2, "rm takes the anonymous volume");
    let r = env.isola(&["volume", "prune", "--all"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("named1\n") && r.stdout.contains(random.as_str()),
        "{}",
        r.stdout
    );
    assert!(volumes(&env).is_empty());
    env.assert_clean();
}

#[test]
fn tmpfs_mounts_and_a_read_only_root() {
    let env = Env::new();
    let r = run(
        &env,
        &[
            "--read-only",
            "--tmpfs",
            "/tmp:size=1m",
            "-v",
            "ww:/w",
            "--mount",
            "type=tmpfs,dst=/t,tmpfs-mode=700",
            "sample",
            "sh",
            "-c",
            "touch /x; touch /tmp/ok && echo tmp-ok; echo v > /w/v && echo vol-ok; \
             dd if=/dev/zero of=/tmp/big bs=1k count=2048 2>/dev/null || echo tmp-full; \
             stat -c %a /t /tmp; rm -f /tmp/big; \
             cp /bin/busybox /tmp/true && /tmp/true || echo noexec",
        ],
    );
    assert_eq!(
        r.stdout, "tmp-ok\nvol-ok\ntmp-full\n700\n1777\nnoexec\n",
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("touch: /x: Read-only file system"),
        "{}",
        r.stderr
    );
    let r = run(
        &env,
        &[
            "--tmpfs",
            "/e:exec",
            "sample",
            "sh",
            "-c",
            "cp /bin/busybox /e/echo && /e/echo ran",
        ],
    );
    assert_eq!(r.stdout, "ran\n", "{}", r.stderr);
    assert_eq!(env.isola(&["volume", "rm", "ww"]).code, 0);
    env.assert_clean();
}

#[test]
fn bad_mount_input_is_refused_by_name_and_leaves_nothing() {
    let env = Env::new();
    for (args, says) in [
        (
            vec!["-v", "rel/x:/y"],
            "-v rel/x:/y: the host path \"rel/x\" must be absolute",
        ),
        (vec!["-v", "/tmp:y"], "-v /tmp:y: unknown option \"y\""),
        (
            vec!["-v", "/tmp:/"],
            "cannot mount over the container's root",
        ),
        (vec!["-v", "x:/y"], "\"x\" is neither"),
        (
            vec![
                "-v",
                "good:/a",
                "--mount",
                "type=bind,src=/no/such/dir,dst=/b",
            ],
            "--mount: bind source /no/such/dir does not exist",
        ),
        (vec!["--mount", "type=nfs,dst=/b"], "type \"nfs\""),
        (vec!["-v", "/tmp:/x", "--tmpfs", "/x"], "two mounts at /x"),
        (
            vec!["--tmpfs", "/t:size=big"],
            "--tmpfs /t:size=big: size \"big\"",
        ),
    ] {
        let mut all = args.clone();
        all.extend(["sample", "true"]);
        let r = run(&env, &all);
        assert_eq!(r.code, 125, "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains(says), "{args:?}: {}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{args:?}: {}", r.stderr);
    }
    assert!(volumes(&env).is_empty(), "no volume made by a refused run");
    let r = env.isola(&["volume", "rm", "nosuch"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("no such volume: nosuch"), "{}", r.stderr);
    let r = env.isola(&["volume", "inspect", "nosuch"]);
    assert_eq!((r.code, r.stdout.as_str()), (1, "[]\n"));
    let r = env.isola(&["volume", "create", "bad name"]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(
        r.stderr.contains("volume name \"bad name\""),
        "{}",
        r.stderr
    );
    assert!(volumes(&env).is_empty());
    env.assert_clean();
}

/// An image whose mount points are symlinks out of its root (to sentinel directories of the
/// host) and whose volume content holds a symlink to the host's /etc/shadow.
fn hostile_image(env: &Env, sentinels: [&Path; 2]) {
    let root = env.root.join("hostile");
    for d in ["bin", "etc/cfg", "tmp"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for applet in ["sh", "cat", "ls", "readlink"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    std::os::unix::fs::symlink(sentinels[0], root.join("data")).unwrap();
    std::os::unix::fs::symlink(sentinels[1], root.join("vol")).unwrap();
    std::os::unix::fs::symlink("/etc/shadow", root.join("etc/cfg/shadow-link")).unwrap();
    std::fs::write(root.join("etc/cfg/app.conf"), "port=1\n").unwrap();
    let r = env.isola(&["import", root.to_str().unwrap(), "hostile:latest"]);
    assert_eq!(r.code, 0, "import: {}", r.stderr);
}

#[test]
fn an_images_symlinks_redirect_no_mount_and_no_copy_onto_the_host() {
    let env = Env::new();
    let sentinels = [env.root.join("sentinel-a"), env.root.join("sentinel-b")];
    for s in &sentinels {
        std::fs::create_dir_all(s).unwrap();
        std::fs::write(s.join("orig"), "host secret\n").unwrap();
    }
    hostile_image(&env, [&sentinels[0], &sentinels[1]]);
    let host = env.root.join("src");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("bound"), "bound\n").unwrap();
    let v = format!("{}:/data", host.display());
    let r = run(
        &env,
        &[
            "-v",
            &v,
            "-v",
            "v1:/vol",
            "-v",
            "v2:/etc/cfg",
            "hostile",
            "sh",
            "-c",
            "ls /data; ls /vol; readlink /etc/cfg/shadow-link; cat /etc/cfg/app.conf",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    // The mounts landed inside the rootfs (where the symlinks point inside it), the volume at
    // /vol was filled with nothing of the host's, the one at /etc/cfg with the link itself.
    assert_eq!(r.stdout, "bound\n/etc/shadow\nport=1\n");
    for s in &sentinels {
        assert_eq!(names(s), ["orig"], "the host's directory untouched");
    }
    assert!(names(&env.root.join("volumes/v1/_data")).is_empty());
    let link = env.root.join("volumes/v2/_data/shadow-link");
    assert_eq!(std::fs::read_link(&link).unwrap(), Path::new("/etc/shadow"));
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains("sentinel"), "{mounts}");
    // Volumes are under a directory only root can enter (an image's setuid files in them
    // are out of host users' reach).
    let mode = std::fs::metadata(env.root.join("volumes")).unwrap().mode() & 0o777;
    assert_eq!(mode, 0o700);
    assert_eq!(env.isola(&["volume", "prune", "-a"]).code, 0);
    env.assert_clean();
}
