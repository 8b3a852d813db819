//! Pulling from a real registry: Debian's `docker-registry` (the CNCF distribution registry)
//! started by the test on 127.0.0.1 with its own config and storage, filled by `skopeo copy`
//! from isola's own store (an OCI layout), then pulled and run by the real binary.

use isola_e2e::support::registry::Registry;
use isola_e2e::Env;
use std::path::{Path, PathBuf};

fn layout(env: &Env) -> PathBuf {
    env.root.join("images")
}

#[test]
fn pull_oci_and_docker_images_and_run_them() {
    let env = Env::new();
    let reg = Registry::start();
    reg.push(&layout(&env), "sample:latest", "demo/sample:1.0", &[]);
    reg.push(
        &layout(&env),
        "sample:latest",
        "demo/sample-v2s2:1.0",
        &["--format", "v2s2"],
    );
    // A fresh root: nothing but what the pull brings.
    let fresh = Env::empty();
    for repo in ["demo/sample:1.0", "demo/sample-v2s2:1.0"] {
        let name = reg.name(repo);
        let r = fresh.isola(&["pull", &name]);
        assert_eq!(r.code, 0, "{repo}: {}", r.stderr);
        let digest = reg.digest(repo, &[]);
        assert_eq!(r.stdout, format!("{name} {digest}\n"), "{repo}");
        if repo == "demo/sample:1.0" {
            // (The v2s2 copy has the same config and layer bytes: those are then present.)
            assert!(r.stderr.contains("fetching"), "{}", r.stderr);
        }
        assert!(fresh.isola(&["images"]).stdout.contains(&digest));
        let r = fresh.isola(&["run", "--rm", &name, "echo", "pulled"]);
        assert_eq!((r.code, r.stdout.as_str()), (0, "pulled\n"), "{}", r.stderr);
        // Again: every blob is already there, nothing is fetched.
        let r = fresh.isola(&["pull", &name]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(!r.stderr.contains("fetching"), "{}", r.stderr);
        assert!(r.stderr.contains("already present"), "{}", r.stderr);
        // By digest, and quietly.
        let by_digest = format!("{}@{digest}", reg.name(repo.split(':').next().unwrap()));
        let r = fresh.isola(&["pull", "-q", &by_digest]);
        assert_eq!((r.code, r.stderr.as_str()), (0, ""), "{}", r.stderr);
        let r = fresh.isola(&["run", "--rm", &by_digest, "true"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    fresh.assert_clean();
}

#[test]
fn a_pull_on_a_terminal_shows_bars_for_each_blob_and_the_unpacking() {
    let env = Env::new();
    let reg = Registry::start();
    reg.push(&layout(&env), "sample:latest", "demo/bars:1", &[]);
    let fresh = Env::empty();
    let name = reg.name("demo/bars:1");
    let (code, screen) = fresh.in_terminal(&format!("pull {name}"), "");
    assert_eq!(code, 0, "{screen}");
    for what in ["Pulling ", "] ", "fetching", "unpacking [", " layers done"] {
        assert!(screen.contains(what), "no {what:?} in {screen}");
    }
    assert!(fresh.isola(&["images"]).stdout.contains("demo/bars"));
    fresh.assert_clean();
}

/// Every kind of pulled image (OCI gzip, Docker schema 2, zstd, a multi-platform index) runs
/// the same at both isolation levels (the VM half where KVM
/// runs guests: tests/e2e/testhost.rs runs this test inside the emulated test host).
#[test]
fn pulled_images_run_the_same_in_a_container_and_a_vm() {
    let env = Env::new();
    let reg = Registry::start();
    let kinds: [(&str, &[&str]); 3] = [
        ("demo/oci-gzip:1", &[]),
        ("demo/docker-v2s2:1", &["--format", "v2s2"]),
        (
            "demo/oci-zstd:1",
            &["--dest-compress", "--dest-compress-format", "zstd"],
        ),
    ];
    let fresh = Env::empty();
    let vm = isola_e2e::vm_capable(&fresh);
    // And a multi-platform index (this host's entry is taken).
    let work = tempfile::tempdir().unwrap();
    let multi = work.path().join("multi");
    build_multi_platform_layout(&env, &multi);
    reg.push(&multi, "multi", "demo/multi-arch:1", &["--all"]);
    let pushed = kinds
        .iter()
        .map(|(repo, _)| *repo)
        .chain(["demo/multi-arch:1"]);
    for (repo, how) in &kinds {
        reg.push(&layout(&env), "sample:latest", repo, how);
    }
    for repo in pushed {
        let name = reg.name(repo);
        let r = fresh.isola(&["pull", "-q", &name]);
        assert_eq!(r.code, 0, "{repo}: {}", r.stderr);
        let mut levels = vec!["container"];
        if vm {
            levels.push("vm");
        }
        for level in levels {
            let r = fresh.isola(&[
                "run",
                "--rm",
                "--isolation",
                level,
                &name,
                "sh",
                "-c",
                "echo $(id -u) $(cat /etc/os-release 2>/dev/null | wc -l) ran; exit 4",
            ]);
            assert_eq!(
                (r.code, r.stdout.as_str()),
                (4, "0 0 ran\n"),
                "{repo} --isolation {level}: {}",
                r.stderr
            );
        }
    }
    fresh.assert_clean();
}

#[test]
fn zstd_layers_pull_and_run() {
    let env = Env::new();
    let reg = Registry::start();
    reg.push(
        &layout(&env),
        "sample:latest",
        "demo/zstd:1",
        &["--dest-compress", "--dest-compress-format", "zstd"],
    );
    let fresh = Env::empty();
    let name = reg.name("demo/zstd:1");
    let r = fresh.isola(&["pull", &name]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = fresh.isola(&["image", "inspect", &name]);
    assert!(r.stdout.contains("tar+zstd"), "a zstd layer: {}", r.stdout);
    let r = fresh.isola(&["run", "--rm", &name, "echo", "zstd"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "zstd\n"), "{}", r.stderr);
    fresh.assert_clean();
}

#[test]
fn run_pulls_an_image_it_does_not_have() {
    let env = Env::new();
    let reg = Registry::start();
    reg.push(&layout(&env), "sample:latest", "demo/auto:2", &[]);
    let fresh = Env::empty();
    let name = reg.name("demo/auto:2");
    let r = fresh.isola(&["run", "--rm", &name, "sh", "-c", "echo ran; exit 3"]);
    assert_eq!((r.code, r.stdout.as_str()), (3, "ran\n"), "{}", r.stderr);
    assert!(
        r.stderr.starts_with(&format!("Pulling {name}")),
        "{}",
        r.stderr
    );
    // A name no registry has: one line, exit 125, nothing left.
    let r = fresh.isola(&["run", "--rm", &reg.name("demo/none:1"), "true"]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(r.stderr.contains("no such image"), "{}", r.stderr);
    assert!(r.stderr.contains("404"), "{}", r.stderr);
    assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
    fresh.assert_clean();
}

#[test]
fn a_multi_platform_index_gives_this_hosts_image_or_the_one_asked_for() {
    let env = Env::new();
    // An index of two platforms: the sample as linux/amd64, and the same layers with an arm64
    // config.
    let work = tempfile::tempdir().unwrap();
    let multi = work.path().join("multi");
    build_multi_platform_layout(&env, &multi);
    let reg = Registry::start();
    reg.push(&multi, "multi", "demo/multi:1", &["--all"]);
    let fresh = Env::empty();
    let name = reg.name("demo/multi:1");
    let arch = |fresh: &Env, name: &str| {
        let r = fresh.isola(&["image", "inspect", name]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        v[0]["Architecture"].as_str().unwrap().to_string()
    };
    assert_eq!(fresh.isola(&["pull", &name]).code, 0);
    assert_eq!(arch(&fresh, &name), "amd64");
    let arm = reg.name("demo/multi:1");
    let r = fresh.isola(&["pull", "--platform", "linux/arm64", &arm]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(arch(&fresh, &arm), "arm64");
    let r = fresh.isola(&["pull", "--platform", "linux/s390x", &name]);
    assert_eq!(r.code, 125);
    assert!(
        r.stderr.contains("no image for platform linux/s390x")
            && r.stderr.contains("linux/amd64")
            && r.stderr.contains("linux/arm64"),
        "{}",
        r.stderr
    );
    fresh.assert_clean();
}

#[test]
fn a_blob_that_does_not_match_its_digest_is_refused_and_not_tagged() {
    let env = Env::new();
    let reg = Registry::start();
    reg.push(&layout(&env), "sample:latest", "demo/bad:1", &[]);
    // Damage the biggest blob in the registry's storage (a layer), keeping its length.
    let (len, data) = reg.biggest_blob();
    std::fs::write(&data, vec![0x5a; len as usize]).unwrap();
    let fresh = Env::empty();
    let name = reg.name("demo/bad:1");
    let r = fresh.isola(&["pull", &name]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(r.stderr.contains("content hashes to"), "{}", r.stderr);
    assert!(!fresh.isola(&["images"]).stdout.contains("demo/bad"));
    let r = fresh.isola(&["run", "--rm", &name, "true"]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    fresh.assert_clean();
}

/// An OCI layout holding an index of the sample for linux/amd64 and linux/arm64 (the arm64
/// entry: the sample's layers under a config that says arm64), tagged `multi`.
fn build_multi_platform_layout(env: &Env, dir: &Path) {
    let store = layout(env);
    let blobs = store.join("blobs/sha256");
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.join("index.json")).unwrap()).unwrap();
    let sample = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == "sample:latest")
        .unwrap()
        .clone();
    let hex = |d: &serde_json::Value| d.as_str().unwrap()["sha256:".len()..].to_string();
    let manifest_bytes = std::fs::read(blobs.join(hex(&sample["digest"]))).unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&manifest_bytes).unwrap();
    let config_bytes = std::fs::read(blobs.join(hex(&manifest["config"]["digest"]))).unwrap();
    let mut config: serde_json::Value = serde_json::from_slice(&config_bytes).unwrap();
    config["architecture"] = "arm64".into();
    let out = dir.join("blobs/sha256");
    std::fs::create_dir_all(&out).unwrap();
    let put = |bytes: &[u8]| -> (String, usize) {
        use sha2_lite::digest_hex;
        let h = digest_hex(bytes);
        std::fs::write(out.join(&h), bytes).unwrap();
        (format!("sha256:{h}"), bytes.len())
    };
    for layer in manifest["layers"].as_array().unwrap() {
        std::fs::copy(
            blobs.join(hex(&layer["digest"])),
            out.join(hex(&layer["digest"])),
        )
        .unwrap();
    }
    put(&config_bytes);
    let (amd, amd_size) = put(&manifest_bytes);
    let (arm_config, arm_config_size) = put(&serde_json::to_vec(&config).unwrap());
    let mut arm_manifest = manifest.clone();
    arm_manifest["config"]["digest"] = arm_config.into();
    arm_manifest["config"]["size"] = arm_config_size.into();
    let (arm, arm_size) = put(&serde_json::to_vec(&arm_manifest).unwrap());
    let entry = |digest: String, size: usize, arch: &str| {
        serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest, "size": size,
            "platform": {"os": "linux", "architecture": arch}
        })
    };
    let inner = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [entry(amd, amd_size, "amd64"), entry(arm, arm_size, "arm64")]
    });
    let (inner_digest, inner_size) = put(&serde_json::to_vec(&inner).unwrap());
    let top = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": inner_digest, "size": inner_size,
            "annotations": {"org.opencontainers.image.ref.name": "multi"}
        }]
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

/// SHA-256 by `sha256sum`, to keep the test free of the code under test.
mod sha2_lite {
    pub fn digest_hex(bytes: &[u8]) -> String {
        use std::io::Write;
        let mut child = std::process::Command::new("sha256sum")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(bytes).unwrap();
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout)[..64].to_string()
    }
}

/// The sample's manifest, config and layer as stored: (config JSON, layer digest, layer size,
/// layer diff ID).
fn sample_parts(env: &Env) -> (serde_json::Value, String, u64, String) {
    let store = layout(env);
    let blob = |d: &str| std::fs::read(store.join("blobs/sha256").join(&d[7..])).unwrap();
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.join("index.json")).unwrap()).unwrap();
    let sample = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == "sample:latest")
        .unwrap()
        .clone();
    let manifest: serde_json::Value =
        serde_json::from_slice(&blob(sample["digest"].as_str().unwrap())).unwrap();
    let config: serde_json::Value =
        serde_json::from_slice(&blob(manifest["config"]["digest"].as_str().unwrap())).unwrap();
    let layer = &manifest["layers"][0];
    (
        config.clone(),
        layer["digest"].as_str().unwrap().to_string(),
        layer["size"].as_u64().unwrap(),
        config["rootfs"]["diff_ids"][0]
            .as_str()
            .unwrap()
            .to_string(),
    )
}

/// A manifest for `config` and one layer.
fn manifest_for(config: &[u8], layer: &str, size: u64, media: &str) -> serde_json::Value {
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": format!("sha256:{}", sha2_lite::digest_hex(config)),
                   "size": config.len()},
        "layers": [{"mediaType": media, "digest": layer, "size": size}]
    })
}

/// A registry that lies: manifests and configs the test writes, layers from docker-registry.
#[test]
fn hostile_manifests_are_refused_before_any_rootfs_is_used() {
    use isola_e2e::support::front::{Answer, Front, Seen};
    use std::sync::Arc;
    let env = Env::new();
    let reg = Registry::start();
    // isola's push keeps the sample's layer as it is (skopeo's would compress it).
    let r = env.isola(&["push", "-q", "sample", &reg.name("demo/evil:orig")]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let (config, layer, size, diff_id) = sample_parts(&env);
    // A config whose diff_id is not what the layer unpacks to (one hex digit changed).
    let mut lying = config.clone();
    let last = diff_id.chars().last().unwrap();
    let wrong = format!(
        "{}{}",
        &diff_id[..diff_id.len() - 1],
        if last == '0' { '1' } else { '0' }
    );
    lying["rootfs"]["diff_ids"][0] = wrong.clone().into();
    let lying_config = serde_json::to_vec(&lying).unwrap();
    let tar = "application/vnd.oci.image.layer.v1.tar";
    let wrong_diff = manifest_for(&lying_config, &layer, size, tar);
    // A manifest that is also an index.
    let honest_config = serde_json::to_vec(&config).unwrap();
    let mut posing = manifest_for(&honest_config, &layer, size, tar);
    posing["manifests"] = serde_json::json!([]);
    let served: Vec<(String, Vec<u8>, &str)> = vec![
        (
            "/manifests/wrong-diff".into(),
            serde_json::to_vec(&wrong_diff).unwrap(),
            "application/vnd.oci.image.manifest.v1+json",
        ),
        (
            "/manifests/posing".into(),
            serde_json::to_vec(&posing).unwrap(),
            "application/vnd.oci.image.manifest.v1+json",
        ),
        (
            format!("/blobs/sha256:{}", sha2_lite::digest_hex(&lying_config)),
            lying_config.clone(),
            "application/octet-stream",
        ),
        (
            format!("/blobs/sha256:{}", sha2_lite::digest_hex(&honest_config)),
            honest_config.clone(),
            "application/octet-stream",
        ),
    ];
    let up = reg.port;
    let front = Front::start(Arc::new(move |r: &Seen| {
        match served
            .iter()
            .find(|(p, _, _)| r.target.ends_with(p.as_str()))
        {
            Some((_, body, media)) => Answer::Respond {
                status: 200,
                headers: vec![("Content-Type".into(), media.to_string())],
                body: body.clone(),
            },
            None => Answer::Forward(up),
        }
    }));
    let fresh = Env::empty();
    let name = |tag: &str| format!("127.0.0.1:{}/demo/evil:{tag}", front.port);
    let no_rootfs = |env: &Env| {
        std::fs::read_dir(env.root.join("rootfs"))
            .map(|rd| rd.count())
            .unwrap_or(0)
            == 0
    };
    // The layer arrives whole and matches its digest, but unpacks to another diff ID: the
    // pull fails, nothing is tagged, no rootfs is kept.
    let r = fresh.isola(&["pull", &name("wrong-diff")]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(
        r.stderr.contains(&wrong) && r.stderr.contains("diff_id"),
        "{}",
        r.stderr
    );
    assert!(!fresh.isola(&["images"]).stdout.contains("demo/evil"));
    assert!(no_rootfs(&fresh), "a rootfs was kept");
    // An index posing as a manifest: refused before any blob is fetched.
    let before = front.requests().len();
    let r = fresh.isola(&["pull", &name("posing")]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(
        r.stderr.contains("index posing as a manifest"),
        "{}",
        r.stderr
    );
    assert!(
        !front.requests()[before..]
            .iter()
            .any(|r| r.target.contains("/blobs/")),
        "blobs fetched for a refused manifest"
    );
    assert!(!fresh.isola(&["images"]).stdout.contains("demo/evil"));
    assert!(no_rootfs(&fresh));
    fresh.assert_clean();
}
