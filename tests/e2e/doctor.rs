//! `isola doctor`: its verdicts checked against what this host is, found out independently
//! (loaded KVM modules, CPU flags, mount table) — on this machine, inside the emulated test
//! host, and with /dev/kvm hidden.

use isola_e2e::Env;
use serde_json::Value;
use std::process::Command;

fn report(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("doctor --json is not JSON ({e}): {out}"))
}

fn status<'a>(r: &'a Value, name: &str) -> (&'a str, &'a str) {
    let c = r["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} check in {r}"));
    (c["status"].as_str().unwrap(), c["detail"].as_str().unwrap())
}

/// What KVM this machine has, from the kernel's module list and the CPU flags.
fn expected_kvm() -> &'static str {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap();
    let hw_virt = cpuinfo.split_whitespace().any(|w| w == "svm" || w == "vmx");
    if !std::path::Path::new("/dev/kvm").exists() {
        "missing"
    } else if std::path::Path::new("/sys/module/kvm_pvm").exists() {
        "warn"
    } else if hw_virt
        && (std::path::Path::new("/sys/module/kvm_amd").exists()
            || std::path::Path::new("/sys/module/kvm_intel").exists())
    {
        "ok"
    } else {
        panic!("cannot tell what KVM this host has: no kvm_pvm, kvm_amd or kvm_intel module with /dev/kvm present");
    }
}

fn expected_cgroup_layout() -> &'static str {
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let v1 = mi
        .lines()
        .any(|l| l.contains(" - cgroup ") && !l.contains("name=systemd"));
    let v2 = mi.lines().any(|l| l.contains(" - cgroup2 "));
    match (v1, v2) {
        (true, true) => "hybrid",
        (true, false) => "v1",
        (false, true) => "v2",
        _ => panic!("no cgroup filesystem mounted"),
    }
}

#[test]
fn doctor_tells_what_this_host_can_run() {
    let env = Env::new();
    let r = env.isola(&["doctor", "--json"]);
    let rep = report(&r.stdout);
    let (kvm, detail) = status(&rep, "kvm");
    let expected = expected_kvm();
    assert_eq!(kvm, expected, "{detail}");
    match expected {
        "warn" => {
            assert!(
                detail.contains("int3") && detail.contains("PVM"),
                "{detail}"
            );
            assert_eq!(rep["vm"], false);
            assert_eq!(r.code, 1, "exit 1 when VM isolation cannot run");
        }
        "ok" => assert!(detail.contains("delivers exceptions"), "{detail}"),
        _ => assert_eq!(rep["vm"], false),
    }
    let (cg, detail) = status(&rep, "cgroups");
    assert_eq!(cg, "ok", "{detail}");
    assert!(detail.starts_with(expected_cgroup_layout()), "{detail}");
    assert_eq!(status(&rep, "overlayfs").0, "ok");
    assert_eq!(status(&rep, "pivot_root").0, "ok");
    assert_eq!(rep["container"], true);
    // The guest artifacts: beside the binary in a build tree (target/guest), or missing.
    let beside = isola_e2e::bin()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("guest/vmlinux");
    let (gk, gk_detail) = status(&rep, "guest kernel");
    assert_eq!(
        gk,
        if beside.is_file() { "ok" } else { "missing" },
        "{gk_detail}"
    );

    // The plain form says the same, one line per check.
    let plain = env.isola(&["doctor"]);
    assert_eq!(plain.code, r.code);
    let kvm_line = plain.stdout.lines().find(|l| l.contains(" kvm ")).unwrap();
    assert!(kvm_line.starts_with(expected), "{kvm_line}");

    // VM isolation on a host that cannot run it: one line, at once, pointing at doctor.
    if expected != "ok" {
        let started = std::time::Instant::now();
        let r = env.isola(&["run", "--rm", "--isolation", "vm", "sample", "true"]);
        assert_eq!(r.code, 125);
        assert!(
            r.stderr.contains("cannot run VMs") && r.stderr.contains("isola doctor"),
            "{}",
            r.stderr
        );
        assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
        assert!(started.elapsed() < std::time::Duration::from_secs(30));
        env.assert_clean();
    }
}

#[test]
fn doctor_without_dev_kvm_says_missing() {
    let env = Env::new();
    // A private mount namespace with an empty /dev hides /dev/kvm from isola.
    let script = format!(
        "mount -t tmpfs none /dev && ISOLA_ROOT={} {} doctor --json",
        env.root.display(),
        isola_e2e::bin().display()
    );
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rep = report(&String::from_utf8_lossy(&out.stdout));
    let (kvm, detail) = status(&rep, "kvm");
    assert_eq!(kvm, "missing", "{detail}");
    assert!(detail.contains("/dev/kvm"), "{detail}");
    assert_eq!(rep["vm"], false);
}

/// The network checks try the real thing in a scratch namespace: on a host with bridges, tun
/// and nftables they pass, with nft gone they warn by name, and neither leaves a link behind.
#[test]
fn doctor_tries_bridge_tun_and_nftables_and_leaves_nothing() {
    let env = Env::new();
    let links = || {
        let o = Command::new("ip").args(["-o", "link"]).output().unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let before = links();
    let r = report(&env.isola(&["doctor", "--json"]).stdout);
    for name in ["bridge, veth", "tun", "nftables"] {
        assert_eq!(status(&r, name).0, "ok", "{name}: {r}");
    }
    // Without nft on PATH: a warning naming the package; the other checks stand.
    let r = report(
        &env.isola_with(&["doctor", "--json"], &[("PATH", "/nonexistent")])
            .stdout,
    );
    let (s, detail) = status(&r, "nftables");
    assert_eq!(s, "warn", "{r}");
    assert!(detail.contains("apt install nftables"), "{detail}");
    assert_eq!(status(&r, "bridge, veth").0, "ok", "{r}");
    assert_eq!(links(), before, "doctor left a link");
}
