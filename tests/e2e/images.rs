//! Images: import from a directory, a tar, a tar.gz and OCI layouts written by umoci and skopeo;
//! listing, removal and digest verification — all through the real binary.

use isola_e2e::Env;
use std::path::Path;
use std::process::Command;

fn sh(script: &str) {
    let out = Command::new("sh").args(["-ec", script]).output().unwrap();
    assert!(
        out.status.success(),
        "{script}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A copy of the sample image's root filesystem, as a plain directory.
fn sample_rootfs(env: &Env, dir: &Path) -> std::path::PathBuf {
    let b = dir.join("bundle");
    let r = env.isola(&["bundle", "sample", b.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    b.join("rootfs")
}

#[test]
fn import_from_directory_tar_and_tar_gz() {
    let env = Env::new();
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = sample_rootfs(&env, tmp.path());
    std::fs::write(rootfs.join("etc/flavour"), "directory\n").unwrap();
    let d = rootfs.to_str().unwrap();
    let r = env.isola(&["import", d, "fromdir:1", "--cmd", "cat /etc/flavour"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with("fromdir:1 sha256:"), "{}", r.stdout);
    assert_eq!(env.run_ok(&["fromdir:1"]), "directory\n");

    let tar = tmp.path().join("rootfs.tar");
    let tgz = tmp.path().join("rootfs.tar.gz");
    sh(&format!(
        "echo tar > {d}/etc/flavour && tar -C {d} -cf {} .",
        tar.display()
    ));
    sh(&format!(
        "echo tar.gz > {d}/etc/flavour && tar -C {d} -czf {} .",
        tgz.display()
    ));
    let r = env.isola(&[
        "import",
        tar.to_str().unwrap(),
        "fromtar",
        "--cmd",
        "[\"cat\", \"/etc/flavour\"]",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(env.run_ok(&["fromtar"]), "tar\n");
    let r = env.isola(&[
        "import",
        tgz.to_str().unwrap(),
        "fromtgz:v2",
        "--cmd",
        "sh -c pwd;id",
        "--workdir",
        "/tmp",
        "--user",
        "isola",
        "--env",
        "COLOUR=blue",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let out = env.run_ok(&[
        "fromtgz:v2",
        "sh",
        "-c",
        "cat /etc/flavour; pwd; id -un; echo $COLOUR",
    ]);
    assert_eq!(out, "tar.gz\n/tmp\nisola\nblue\n");

    let images = env.isola(&["images"]).stdout;
    for (name, tag) in [
        ("fromdir", "1"),
        ("fromtar", "latest"),
        ("fromtgz", "v2"),
        ("sample", "latest"),
    ] {
        assert!(
            images
                .lines()
                .any(|l| l.starts_with(name) && l.split_whitespace().nth(1) == Some(tag)),
            "{name}:{tag} missing from\n{images}"
        );
    }
    assert!(
        images.contains("sha256:") && images.contains("MB"),
        "{images}"
    );

    // rmi forgets the tag and frees what nothing else uses.
    let blobs = |env: &Env| {
        std::fs::read_dir(env.root.join("images/blobs/sha256"))
            .unwrap()
            .count()
    };
    let before = blobs(&env);
    assert_eq!(env.isola(&["rmi", "fromtar"]).code, 0);
    assert!(blobs(&env) < before);
    assert!(!env.isola(&["images"]).stdout.contains("fromtar"));
    let r = env.isola(&["run", "--rm", "fromtar"]);
    assert_eq!(r.code, 125);
    assert!(r.stderr.contains("no such image"), "{}", r.stderr);
    env.assert_clean();
}

#[test]
fn import_oci_layouts_written_by_umoci_and_skopeo() {
    let env = Env::new();
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = sample_rootfs(&env, tmp.path());
    let layout = tmp.path().join("layout");
    let copied = tmp.path().join("copied");
    let unpacked = tmp.path().join("unpacked");
    // umoci builds an image from our rootfs; skopeo copies it to a second layout.
    sh(&format!(
        "umoci init --layout {l}
         umoci new --image {l}:base
         umoci unpack --image {l}:base {u}
         cp -a {r}/. {u}/rootfs/
         echo 'made by umoci' > {u}/rootfs/hello.txt
         umoci repack --image {l}:base {u}
         umoci config --image {l}:base --config.cmd cat --config.cmd /hello.txt --config.env GREETING=hi
         skopeo copy --quiet oci:{l}:base oci:{c}:copied",
        l = layout.display(),
        u = unpacked.display(),
        r = rootfs.display(),
        c = copied.display()
    ));
    let r = env.isola(&["import", &format!("{}:base", layout.display()), "umoci:1"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(env.run_ok(&["umoci:1"]), "made by umoci\n");
    assert_eq!(
        env.run_ok(&["umoci:1", "sh", "-c", "echo $GREETING"]),
        "hi\n"
    );
    // skopeo's layout holds exactly one image, so no :REF is needed.
    let r = env.isola(&["import", copied.to_str().unwrap(), "skopeo:1"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(env.run_ok(&["skopeo:1"]), "made by umoci\n");
    // A layout naming no such image.
    let r = env.isola(&["import", &format!("{}:nope", layout.display()), "x"]);
    assert_eq!(r.code, 125);
    assert!(r.stderr.contains("nope"), "{}", r.stderr);
    env.assert_clean();
}

#[test]
fn corrupt_content_is_refused() {
    let env = Env::new();
    let tmp = tempfile::tempdir().unwrap();
    // Not a tar: refused, and nothing is stored.
    let junk = tmp.path().join("junk.tar");
    std::fs::write(&junk, vec![0x42u8; 4096]).unwrap();
    let blobs = |env: &Env| {
        std::fs::read_dir(env.root.join("images/blobs/sha256"))
            .unwrap()
            .count()
    };
    let before = blobs(&env);
    let r = env.isola(&["import", junk.to_str().unwrap(), "junk"]);
    assert_eq!(r.code, 125);
    assert!(
        r.stderr.contains("junk.tar") && r.stderr.contains("tar"),
        "{}",
        r.stderr
    );
    assert_eq!(blobs(&env), before);

    // A layer blob changed on disk after import: the unpack verifies it and refuses.
    let rootfs = sample_rootfs(&env, tmp.path());
    std::fs::write(rootfs.join("marker"), "x").unwrap();
    let r = env.isola(&[
        "import",
        rootfs.to_str().unwrap(),
        "victim",
        "--cmd",
        "true",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let manifest_digest = r
        .stdout
        .split_whitespace()
        .nth(1)
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let manifest: serde_json_lite::Value = serde_json_lite::parse(
        &std::fs::read_to_string(env.root.join("images/blobs/sha256").join(&manifest_digest))
            .unwrap(),
    );
    let layer = manifest.layer_digest();
    let path = env
        .root
        .join("images/blobs/sha256")
        .join(layer.trim_start_matches("sha256:"));
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let r = env.isola(&["run", "--rm", "victim"]);
    assert_eq!(r.code, 125);
    assert!(
        r.stderr.contains("corrupt") || r.stderr.contains("hashes to"),
        "{}",
        r.stderr
    );
    // No half-unpacked rootfs is kept for the next run to trust.
    let cached: Vec<_> = std::fs::read_dir(env.root.join("rootfs"))
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        cached
            .iter()
            .all(|c| !c.to_string_lossy().starts_with(".tmp")),
        "{cached:?}"
    );
    let r = env.isola(&["run", "--rm", "victim"]);
    assert_eq!(
        r.code, 125,
        "a second run must fail the same way: {}",
        r.stderr
    );
    env.assert_clean();
}

#[test]
fn image_inspect_prints_the_image_as_json() {
    let env = Env::new();
    let r = env.isola(&["image", "inspect", "sample"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let img = &v[0];
    assert_eq!(img["RepoTags"], serde_json::json!(["sample:latest"]));
    assert_eq!(img["Os"], "linux");
    assert_eq!(img["Architecture"], "amd64");
    assert_eq!(img["RootFS"]["Type"], "layers");
    let layers = img["Layers"].as_array().unwrap();
    assert!(!layers.is_empty());
    assert_eq!(
        img["RootFS"]["Layers"].as_array().unwrap().len(),
        layers.len()
    );
    // Digests are those of the store's own files.
    let id = img["Id"].as_str().unwrap();
    let blobs = env.root.join("images/blobs/sha256");
    assert!(blobs.join(&id["sha256:".len()..]).is_file(), "{id}");
    let listed = env.isola(&["images"]).stdout;
    assert!(
        listed.contains(img["ManifestDigest"].as_str().unwrap()),
        "{listed}"
    );
    let r = env.isola(&["image", "inspect", "sample", "no-such-image"]);
    assert_eq!(r.code, 125);
    assert!(r.stderr.contains("no-such-image"), "{}", r.stderr);
    assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
}

#[test]
fn image_prune_deletes_what_no_image_needs_and_rmi_drops_the_vm_disk() {
    let env = Env::new();
    let r = env.isola(&["image", "inspect", "sample"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let chain = v[0]["ChainId"].as_str().unwrap()["sha256:".len()..].to_string();
    // The sample's own unpacked rootfs, in use.
    assert_eq!(env.run_ok(&["sample", "true"]), "");
    let rootfs = env.root.join("rootfs");
    let vm = env.root.join("vm");
    let blobs = env.root.join("images/blobs/sha256");
    std::fs::create_dir_all(&vm).unwrap();
    let dead = "999999999"; // no such process
    let orphan = "0".repeat(64);
    let doomed = [
        blobs.join(format!(".tmp-{dead}-1-0")),
        blobs.join(&orphan),
        rootfs.join(format!(".tmp-abcdef-{dead}")),
        rootfs.join(&orphan),
        vm.join(format!(".{orphan}.{dead}.ext4")),
        vm.join(format!("{orphan}.ext4")),
    ];
    // Kept: the sample's blobs, rootfs and VM disk, and a temp of a writer still running.
    let mine = std::process::id();
    let kept = [
        rootfs.join(&chain),
        vm.join(format!("{chain}.ext4")),
        blobs.join(format!(".tmp-{mine}-1-0")),
    ];
    for p in doomed.iter().chain(&kept[1..]) {
        if p.starts_with(&rootfs) {
            std::fs::create_dir_all(p.join("etc")).unwrap();
        } else {
            std::fs::write(p, vec![7u8; 8192]).unwrap();
        }
    }
    let r = env.isola(&["image", "prune"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .starts_with("Deleted 2 blobs, 2 unpacked root filesystems, 2 VM disks"),
        "{}",
        r.stdout
    );
    for p in &doomed {
        assert!(!p.exists(), "{p:?} survived the prune");
    }
    for p in &kept {
        assert!(p.exists(), "{p:?} was pruned");
    }
    assert_eq!(
        env.run_ok(&["sample", "echo", "still here"]),
        "still here\n"
    );
    std::fs::remove_file(&kept[2]).unwrap();
    // rmi takes the image's unpacked rootfs and VM disk with it.
    assert_eq!(env.isola(&["rmi", "sample"]).code, 0);
    assert!(!kept[0].exists() && !kept[1].exists());
    let r = env.isola(&["image", "prune"]);
    assert!(
        r.stdout.starts_with("Deleted 0 blobs, 0 unpacked"),
        "{}",
        r.stdout
    );
    env.assert_clean();
}

/// Just enough JSON to pull the first layer digest out of a manifest (keeps the tests free of
/// the code under test).
mod serde_json_lite {
    pub struct Value(String);
    pub fn parse(s: &str) -> Value {
        Value(s.to_string())
    }
    impl Value {
        pub fn layer_digest(&self) -> String {
            let layers = &self.0[self.0.find("\"layers\"").expect("layers")..];
            let d = &layers[layers.find("sha256:").expect("digest")..];
            d[..71].to_string()
        }
    }
}
