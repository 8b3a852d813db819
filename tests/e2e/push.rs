//! `isola push` and `isola tag` against Debian's docker-registry, proved by skopeo and umoci
//! (the peers read what isola wrote) and by isola pulling it back into an empty root.

use isola_e2e::support::registry::Registry;
use isola_e2e::Env;
use std::process::Command;

fn manifest_digest(env: &Env, image: &str) -> String {
    let r = env.isola(&["image", "inspect", image]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    v[0]["ManifestDigest"].as_str().unwrap().to_string()
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_pushed_image_is_what_skopeo_umoci_and_isola_read_back() {
    let env = Env::new();
    let reg = Registry::start();
    let local = manifest_digest(&env, "sample");
    let dest = reg.name("demo/pushed:3");
    let r = env.isola(&["push", "sample", &dest]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, format!("{dest} {local}\n"));
    assert!(r.stderr.contains("uploading"), "{}", r.stderr);
    // The registry serves the manifest bytes isola stored: the same digest, and the sample's
    // uncompressed layer stays uncompressed.
    assert_eq!(reg.digest("demo/pushed:3", &[]), local);
    let raw = run(Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{dest}")));
    assert!(
        raw.contains("\"application/vnd.oci.image.layer.v1.tar\""),
        "{raw}"
    );
    // skopeo copies it out and umoci unpacks it: the sample's files are there.
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("oci");
    run(Command::new("skopeo")
        .args(["copy", "--quiet", "--src-tls-verify=false"])
        .arg(format!("docker://{dest}"))
        .arg(format!("oci:{}:copied", layout.display())));
    let bundle = work.path().join("bundle");
    run(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:copied", layout.display()))
        .arg(&bundle));
    assert!(bundle.join("rootfs/bin/busybox").exists());
    // isola pulls it into an empty root and runs it.
    let fresh = Env::empty();
    let r = fresh.isola(&["pull", "-q", &dest]);
    assert_eq!(
        (r.code, r.stdout.clone()),
        (0, format!("{dest} {local}\n")),
        "{}",
        r.stderr
    );
    let r = fresh.isola(&["run", "--rm", &dest, "echo", "round trip"]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "round trip\n"),
        "{}",
        r.stderr
    );
    // Again: the registry has every blob, only the manifest goes.
    let r = env.isola(&["push", "sample", &dest]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!r.stderr.contains("uploading"), "{}", r.stderr);
    assert_eq!(
        r.stderr.matches("already present").count(),
        2,
        "{}",
        r.stderr
    );
    fresh.assert_clean();
    env.assert_clean();
}

#[test]
fn tag_then_push_under_the_images_own_name() {
    let env = Env::new();
    let reg = Registry::start();
    let name = reg.name("team/tool");
    let r = env.isola(&["tag", "sample", &format!("{name}:7")]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(env.isola(&["images"]).stdout.contains("team/tool"));
    // No destination: the image's own name and tag.
    let r = env.isola(&["push", "-q", &format!("{name}:7")]);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""), "{}", r.stderr);
    assert!(r.stdout.starts_with(&format!("{name}:7 sha256:")));
    // A destination without a tag keeps the source's tag.
    let other = reg.name("team/copy");
    let r = env.isola(&["push", "-q", &format!("{name}:7"), &other]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with(&format!("{other}:7 ")), "{}", r.stdout);
    assert_eq!(
        reg.digest("team/copy:7", &[]),
        manifest_digest(&env, "sample")
    );
    env.assert_clean();
}

#[test]
fn a_docker_schema2_image_keeps_its_media_type_and_digest_through_isola() {
    let env = Env::new();
    let reg = Registry::start();
    reg.push(
        &env.root.join("images"),
        "sample:latest",
        "demo/v2s2:1",
        &["--format", "v2s2"],
    );
    let original = reg.digest("demo/v2s2:1", &[]);
    let fresh = Env::empty();
    assert_eq!(
        fresh.isola(&["pull", "-q", &reg.name("demo/v2s2:1")]).code,
        0
    );
    let again = reg.name("demo/v2s2-again:1");
    let r = fresh.isola(&["push", &reg.name("demo/v2s2:1"), &again]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(reg.digest("demo/v2s2-again:1", &[]), original);
    let raw = run(Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{again}")));
    assert!(
        raw.contains("application/vnd.docker.distribution.manifest.v2+json"),
        "{raw}"
    );
    fresh.assert_clean();
}

#[test]
fn bad_pushes_say_what_is_wrong() {
    let env = Env::new();
    let reg = Registry::start();
    let r = env.isola(&["push", "nosuch:1", &reg.name("demo/x:1")]);
    assert_eq!(r.code, 125);
    assert!(r.stderr.contains("no such image: nosuch:1"), "{}", r.stderr);
    let digest = manifest_digest(&env, "sample");
    let r = env.isola(&[
        "push",
        "sample",
        &format!("{}@{digest}", reg.name("demo/x")),
    ]);
    assert_eq!(r.code, 125);
    assert!(r.stderr.contains("push to NAME[:TAG]"), "{}", r.stderr);
    // Nothing listens there.
    let closed = isola_e2e::support::registry::free_port();
    let r = env.isola(&["push", "sample", &format!("127.0.0.1:{closed}/demo/x:1")]);
    assert_eq!(r.code, 125);
    assert!(
        r.stderr.contains(&format!("127.0.0.1:{closed}")),
        "{}",
        r.stderr
    );
    assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
    let r = env.isola(&["tag", "nosuch", "other"]);
    assert_eq!(r.code, 125);
    assert!(r.stderr.contains("no such image"), "{}", r.stderr);
    env.assert_clean();
}
