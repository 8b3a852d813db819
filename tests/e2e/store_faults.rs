//! The image store under faults: what a SIGKILLed rmi, prune, import or unpack leaves behind,
//! a prune racing an import, a damaged blob, concurrent first runs, bad references and image
//! archives given to import — all through the real binary. Kill timing is made deterministic by
//! planting the state a kill leaves, or by holding a writer inside a FIFO blob.

use isola_e2e::Env;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A PID no process has (above any pid_max).
const DEAD: &str = "999999999";

fn sh(script: &str) -> String {
    let out = Command::new("sh").args(["-ec", script]).output().unwrap();
    assert!(
        out.status.success(),
        "{script}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A copy of the sample image's root filesystem, as a plain directory.
fn sample_rootfs(env: &Env, dir: &Path) -> PathBuf {
    let b = dir.join("bundle");
    let r = env.isola(&["bundle", "sample", b.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    b.join("rootfs")
}

fn inspect(env: &Env, image: &str) -> serde_json::Value {
    let r = env.isola(&["image", "inspect", image]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    serde_json::from_str::<serde_json::Value>(&r.stdout).unwrap()[0].clone()
}

fn hex(digest: &str) -> String {
    digest.trim_start_matches("sha256:").to_string()
}

fn names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn spawn(env: &Env, args: &[&str]) -> Child {
    env.cmd(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(child: Child) -> (i32, String, String) {
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Replaces `path` with a FIFO; returns what it held.
fn fifo_instead_of(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    std::fs::remove_file(path).unwrap();
    sh(&format!("mkfifo {}", path.display()));
    bytes
}

/// Opens `fifo` for writing once a reader has it open (an isola blocked reading it).
fn writer_when_read(fifo: &Path) -> std::fs::File {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(fifo)
        {
            Ok(f) => {
                use std::os::fd::AsRawFd;
                // SAFETY: fcntl on a descriptor this test owns, clearing O_NONBLOCK.
                unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETFL, 0) };
                return f;
            }
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
                assert!(Instant::now() < deadline, "nobody opened {fifo:?}");
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("{fifo:?}: {e}"),
        }
    }
}

#[test]
fn a_rootfs_without_its_completion_marker_is_unpacked_again() {
    let env = Env::new();
    let count = ["sample", "sh", "-c", "ls /bin | wc -l"];
    let full = env.run_ok(&count);
    let chain = hex(inspect(&env, "sample")["ChainId"].as_str().unwrap());
    let cache = env.root.join("rootfs");
    let entry = cache.join(&chain);
    // What a SIGKILLed rmi of an older isola left: part of the tree under the chain's name.
    std::fs::remove_dir_all(&entry).unwrap();
    std::fs::create_dir_all(entry.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", entry.join("bin/sh")).unwrap();
    assert_eq!(env.run_ok(&count), full, "a half tree was trusted");
    // The same in this layout: the marker gone, half of /bin gone.
    std::fs::remove_file(entry.join("complete")).unwrap();
    for name in names(&entry.join("fs/bin")).iter().skip(3) {
        std::fs::remove_file(entry.join("fs/bin").join(name)).unwrap();
    }
    assert_eq!(env.run_ok(&count), full, "an unmarked tree was trusted");
    assert!(entry.join("complete").is_file());
    // A delete killed midway leaves its renamed entry; the cleanup pass removes it.
    let dying = cache.join(format!(".del-{}-{DEAD}-1", &chain[..12]));
    std::fs::create_dir_all(dying.join("fs/etc")).unwrap();
    assert_eq!(env.isola(&["cleanup"]).code, 0);
    assert!(!dying.exists(), "{dying:?} left by the cleanup pass");
    env.assert_clean();
}

#[test]
fn rmi_killed_midway_never_leaves_a_half_rootfs_to_run() {
    let env = Env::new();
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = sample_rootfs(&env, tmp.path());
    sh(&format!(
        "mkdir {r}/many && cd {r}/many && for i in $(seq 1 3000); do echo $i > f$i; done",
        r = rootfs.display()
    ));
    let src = rootfs.to_str().unwrap();
    let count = ["big", "sh", "-c", "ls /many | wc -l"];
    for delay_ms in [2, 10, 25, 50, 100] {
        if !env.isola(&["images"]).stdout.contains("big") {
            assert_eq!(env.isola(&["import", src, "big"]).code, 0);
        }
        assert_eq!(
            env.run_ok(&count),
            "3000\n",
            "after a kill at {delay_ms} ms"
        );
        let mut rmi = spawn(&env, &["rmi", "big"]);
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = rmi.kill();
        let _ = rmi.wait();
    }
    if !env.isola(&["images"]).stdout.contains("big") {
        assert_eq!(env.isola(&["import", src, "big"]).code, 0);
    }
    assert_eq!(env.run_ok(&count), "3000\n");
    env.assert_clean();
}

/// An OCI layout of two uncompressed layers (files /one and /two); returns the layout and the
/// path of the second layer's blob.
fn two_layer_layout(dir: &Path) -> (PathBuf, PathBuf) {
    let layout = dir.join("layout");
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let mut layers = Vec::new();
    for name in ["one", "two"] {
        let d = dir.join(format!("src-{name}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(name), format!("{name}\n")).unwrap();
        let tar = dir.join(format!("{name}.tar"));
        sh(&format!(
            "tar -C {} -cf {} {name}",
            d.display(),
            tar.display()
        ));
        layers.push(put(&blobs, &std::fs::read(&tar).unwrap()));
    }
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [layers[0].0, layers[1].0]},
    });
    let config = put(&blobs, config.to_string().as_bytes());
    let desc = |media: &str, (digest, size): &(String, usize)| serde_json::json!({"mediaType": media, "digest": digest, "size": size});
    let tar_media = "application/vnd.oci.image.layer.v1.tar";
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": desc("application/vnd.oci.image.config.v1+json", &config),
        "layers": [desc(tar_media, &layers[0]), desc(tar_media, &layers[1])],
    });
    let manifest = put(&blobs, manifest.to_string().as_bytes());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [desc("application/vnd.oci.image.manifest.v1+json", &manifest)],
    });
    std::fs::write(layout.join("index.json"), index.to_string()).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let second = blobs.join(hex(&layers[1].0));
    (layout, second)
}

/// Writes a blob into a layout's blobs dir; returns its digest and size.
fn put(blobs: &Path, bytes: &[u8]) -> (String, usize) {
    let tmp = blobs.join(".incoming");
    std::fs::write(&tmp, bytes).unwrap();
    let sum = sh(&format!("sha256sum {}", tmp.display()));
    let hex = sum.split_whitespace().next().unwrap().to_string();
    std::fs::rename(&tmp, blobs.join(&hex)).unwrap();
    (format!("sha256:{hex}"), bytes.len())
}

#[test]
fn prune_waits_for_an_import_in_flight() {
    let env = Env::new();
    let tmp = tempfile::tempdir().unwrap();
    let (layout, second) = two_layer_layout(tmp.path());
    // The import stores the first layer, then blocks reading the second from a FIFO: its
    // first blob is in the store, and no tag reaches it yet.
    let second_bytes = fifo_instead_of(&second);
    let import = spawn(&env, &["import", layout.to_str().unwrap(), "inflight"]);
    let mut feed = writer_when_read(&second);
    let prune = spawn(&env, &["image", "prune"]);
    std::thread::sleep(Duration::from_millis(500));
    feed.write_all(&second_bytes).unwrap();
    drop(feed);
    let (code, _, err) = finish(import);
    assert_eq!(code, 0, "import: {err}");
    let (code, _, err) = finish(prune);
    assert_eq!(code, 0, "prune: {err}");
    assert!(err.contains("waiting for an import"), "prune: {err}");
    // Both layers are still there: the image unpacks whole.
    let bundle = tmp.path().join("bundle");
    let r = env.isola(&["bundle", "inflight", bundle.to_str().unwrap(), "true"]);
    assert_eq!(r.code, 0, "the import's blobs were pruned: {}", r.stderr);
    for name in ["one", "two"] {
        let got = std::fs::read_to_string(bundle.join("rootfs").join(name)).unwrap();
        assert_eq!(got, format!("{name}\n"));
    }
    env.assert_clean();
}

#[test]
fn a_damaged_config_blob_is_reported_and_skipped() {
    let env = Env::new();
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = sample_rootfs(&env, tmp.path());
    let src = rootfs.to_str().unwrap();
    std::fs::write(rootfs.join("etc/which"), "good\n").unwrap();
    assert_eq!(env.isola(&["import", src, "good"]).code, 0);
    std::fs::write(rootfs.join("etc/which"), "bad\n").unwrap();
    assert_eq!(env.isola(&["import", src, "bad"]).code, 0);
    let config = hex(inspect(&env, "bad")["Id"].as_str().unwrap());
    let blob = env.root.join("images/blobs/sha256").join(&config);
    std::fs::write(&blob, b"garbage").unwrap();

    let r = env.isola(&["images"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("good") && r.stdout.contains("sample"));
    assert!(!r.stdout.contains("bad"), "{}", r.stdout);
    assert!(
        r.stderr.contains("warning")
            && r.stderr.contains("bad:latest")
            && r.stderr.contains(&config),
        "the warning names the image and the blob: {}",
        r.stderr
    );
    let r = env.isola(&["image", "prune"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("bad:latest"), "{}", r.stderr);
    assert_eq!(env.run_ok(&["good", "cat", "/etc/which"]), "good\n");
    // rmi removes the damaged image, its tag and its blobs.
    let r = env.isola(&["rmi", "bad"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!blob.exists(), "the damaged blob is left");
    let r = env.isola(&["images"]);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    assert!(!r.stdout.contains("bad"));
    assert_eq!(env.run_ok(&["good", "cat", "/etc/which"]), "good\n");
    env.assert_clean();
}

#[test]
fn the_cleanup_pass_removes_what_killed_writers_left() {
    let env = Env::new();
    let images = env.root.join("images");
    let blobs = images.join("blobs/sha256");
    let rootfs = env.root.join("rootfs");
    let vm = env.root.join("vm");
    std::fs::create_dir_all(&rootfs).unwrap();
    std::fs::create_dir_all(&vm).unwrap();
    let mine = std::process::id();
    let dead = [
        blobs.join(format!(".tmp-{DEAD}-1-0")),
        images.join(format!(".tmp-{DEAD}-2-0")),
        rootfs.join(format!(".tmp-abcdef-{DEAD}")),
        rootfs.join(format!(".del-abcdef-{DEAD}-3")),
        vm.join(format!(".{}.{DEAD}.ext4", "0".repeat(64))),
    ];
    let alive = [
        blobs.join(format!(".tmp-{mine}-1-0")),
        rootfs.join(format!(".tmp-abcdef-{mine}")),
    ];
    for p in dead.iter().chain(&alive) {
        if p.starts_with(&rootfs) {
            std::fs::create_dir_all(p.join("fs/etc")).unwrap();
        } else {
            std::fs::write(p, b"half").unwrap();
        }
    }
    // Every run starts with the cleanup pass.
    assert_eq!(env.run_ok(&["sample", "true"]), "");
    for p in &dead {
        assert!(!p.exists(), "{p:?} survived the cleanup pass");
    }
    for p in &alive {
        assert!(p.exists(), "{p:?} of a live writer was removed");
        let _ = std::fs::remove_file(p);
        let _ = std::fs::remove_dir_all(p);
    }
    // A real import killed while its layer streams into the store.
    let tmp = tempfile::tempdir().unwrap();
    let big = tmp.path().join("big");
    sh(&format!(
        "mkdir {b} && truncate -s 1G {b}/zeros",
        b = big.display()
    ));
    let before = names(&blobs).len();
    let mut import = spawn(&env, &["import", big.to_str().unwrap(), "killed"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !names(&blobs).iter().any(|n| n.starts_with(".tmp-")) {
        assert!(Instant::now() < deadline, "no temp blob appeared");
        std::thread::sleep(Duration::from_millis(5));
    }
    import.kill().unwrap();
    import.wait().unwrap();
    assert_eq!(env.isola(&["cleanup"]).code, 0);
    let left: Vec<String> = names(&blobs)
        .into_iter()
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(left.is_empty(), "temp blobs left: {left:?}");
    assert_eq!(names(&blobs).len(), before, "{:?}", names(&blobs));
    env.assert_clean();
}

#[test]
fn concurrent_first_runs_unpack_once() {
    let env = Env::new();
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = sample_rootfs(&env, tmp.path());
    std::fs::write(rootfs.join("etc/fresh"), "fresh\n").unwrap();
    let r = env.isola(&["import", rootfs.to_str().unwrap(), "fresh"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let layer = hex(inspect(&env, "fresh")["Layers"][0]["Digest"]
        .as_str()
        .unwrap());
    // The layer blob becomes a FIFO: whoever unpacks blocks reading it until the test feeds it.
    let blob = env.root.join("images/blobs/sha256").join(layer);
    let bytes = fifo_instead_of(&blob);
    let runs: Vec<Child> = (0..3)
        .map(|_| spawn(&env, &["run", "--rm", "fresh", "cat", "/etc/fresh"]))
        .collect();
    let mut feed = writer_when_read(&blob);
    // Time for the other runs to start an unpack of their own, if they would.
    std::thread::sleep(Duration::from_millis(1500));
    let unpacking: Vec<String> = names(&env.root.join("rootfs"))
        .into_iter()
        .filter(|n| n.starts_with(".tmp-"))
        .collect();
    feed.write_all(&bytes).unwrap();
    drop(feed);
    for run in runs {
        let (code, out, err) = finish(run);
        assert_eq!((code, out.as_str()), (0, "fresh\n"), "{err}");
    }
    assert_eq!(unpacking.len(), 1, "unpacks at once: {unpacking:?}");
    env.assert_clean();
}

#[test]
fn references_with_dot_hosts_or_overlong_names_are_refused() {
    let env = Env::new();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("root");
    std::fs::create_dir_all(src.join("etc")).unwrap();
    let src = src.to_str().unwrap();
    for name in ["../x", "./x", "../../etc/x:1"] {
        let r = env.isola(&["import", src, name]);
        assert_eq!(r.code, 125, "{name}: {}", r.stdout);
        assert!(r.stderr.contains("registry host"), "{name}: {}", r.stderr);
    }
    let longest = format!("{}/{}", "a".repeat(127), "b".repeat(127));
    let r = env.isola(&["import", src, &format!("{longest}b")]);
    assert_eq!(r.code, 125, "{}", r.stdout);
    assert!(r.stderr.contains("255"), "the limit is named: {}", r.stderr);
    assert_eq!(env.isola(&["import", src, &longest]).code, 0);
    let listed = env.isola(&["images"]).stdout;
    assert!(!listed.contains("./x") && !listed.contains(&format!("{longest}b")));
    env.assert_clean();
}

#[test]
fn image_archives_are_refused_and_tar_zst_imported() {
    let env = Env::new();
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path().display().to_string();
    let rootfs = sample_rootfs(&env, tmp.path());
    std::fs::write(rootfs.join("hello.txt"), "hello\n").unwrap();
    sh(&format!(
        "cd {t}
         umoci init --layout L
         umoci new --image L:base
         umoci unpack --image L:base U
         cp -a {r}/. U/rootfs/
         umoci repack --image L:base U
         skopeo copy --quiet oci:L:base docker-archive:{t}/docker.tar:demo/x:1
         skopeo copy --quiet oci:L:base oci-archive:{t}/oci.tar
         skopeo copy --quiet oci:L:base dir:{t}/skopeo-dir
         mkdir docker-dir && tar -xf docker.tar -C docker-dir
         tar -C {r} -cf - . | xz > rootfs.tar.xz
         tar -C {r} -cf - . | zstd -q > rootfs.tar.zst",
        r = rootfs.display()
    ));
    let store_files = |env: &Env| names(&env.root.join("images/blobs/sha256")).len();
    let before = store_files(&env);
    for (source, says) in [
        ("docker.tar", "looks like a docker-archive"),
        ("docker-dir", "looks like an extracted docker-archive"),
        ("oci.tar", "looks like an oci-archive"),
        ("skopeo-dir", "looks like a skopeo dir: layout"),
        ("rootfs.tar.xz", "xz-compressed tar is not supported"),
    ] {
        let path = format!("{t}/{source}");
        let r = env.isola(&["import", &path, "archive"]);
        assert_eq!(r.code, 125, "{source}: {}", r.stdout);
        assert!(
            r.stderr.contains(says) && r.stderr.contains(&path),
            "{source}: {}",
            r.stderr
        );
        assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
        assert_eq!(store_files(&env), before, "{source} left blobs behind");
    }
    let r = env.isola(&["import", &format!("{t}/rootfs.tar.zst"), "zst"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(env.run_ok(&["zst", "cat", "/hello.txt"]), "hello\n");
    env.assert_clean();
}

#[test]
fn a_sparse_file_imports_as_its_data() {
    let env = Env::new();
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = sample_rootfs(&env, tmp.path());
    sh(&format!("truncate -s 10M {}/holes", rootfs.display()));
    let r = env.isola(&["import", rootfs.to_str().unwrap(), "sparse"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        env.run_ok(&["sparse", "wc", "-c", "/holes"]),
        "10485760 /holes\n"
    );
    env.assert_clean();
}
