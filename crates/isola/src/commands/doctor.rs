//! `isola doctor`: what this host can run, one line per check, each decided by trying where
//! trying is possible (the KVM verdict comes from running a tiny 64-bit guest).

use crate::paths::Paths;
use anyhow::Result;
use isola_container::cgroups::{Hierarchies, Layout};
use isola_vmm::probe::{probe_kvm, KvmVerdict};
use serde::Serialize;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Missing,
}

#[derive(Debug, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub checks: Vec<Check>,
    /// Whether `--isolation container` can run here.
    pub container: bool,
    /// Whether `--isolation vm` can run here.
    pub vm: bool,
}

fn check(name: &'static str, status: Status, detail: impl Into<String>) -> Check {
    Check {
        name,
        status,
        detail: detail.into(),
    }
}

/// The KVM check, shared with `isola run --isolation vm`'s refusal.
pub fn kvm_check() -> (Check, KvmVerdict) {
    let verdict = probe_kvm(Duration::from_secs(5));
    let c = match &verdict {
        KvmVerdict::Missing(why) => check(
            "kvm",
            Status::Missing,
            format!("{why}: VM isolation cannot run here"),
        ),
        KvmVerdict::NoExceptions {
            api_version,
            detail,
        } => check(
            "kvm",
            Status::Warn,
            format!(
                "/dev/kvm opens (API {api_version}) but cannot run an unmodified guest: {detail}. \
                 This is what a nested PVM hypervisor does; VM isolation needs the emulated test \
                 host (tests/testhost/run) or another machine"
            ),
        ),
        KvmVerdict::Usable { api_version } => check(
            "kvm",
            Status::Ok,
            format!(
                "/dev/kvm (API {api_version}) delivers exceptions to a 64-bit guest (int3 probe)"
            ),
        ),
    };
    (c, verdict)
}

fn tool(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        })
        .unwrap_or(None)
}

pub fn diagnose(paths: &Paths) -> Report {
    let mut checks = Vec::new();
    let mut container = true;

    match Hierarchies::detect() {
        Ok(h) => {
            let ctrls = h.controllers();
            let needed = ["memory", "cpu", "pids"];
            let absent: Vec<&str> = needed
                .iter()
                .copied()
                .filter(|c| !ctrls.iter().any(|x| x == c))
                .collect();
            let where_ = match h.layout {
                Layout::Unified => format!(
                    "v2 at {}",
                    h.v2.as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default()
                ),
                Layout::Legacy => "v1".to_string(),
                Layout::Hybrid => format!(
                    "hybrid: v1 controllers plus v2 at {}",
                    h.v2.as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default()
                ),
            };
            let detail = format!("{where_}; controllers: {}", ctrls.join(" "));
            if absent.is_empty() {
                checks.push(check("cgroups", Status::Ok, detail));
            } else {
                checks.push(check(
                    "cgroups",
                    Status::Warn,
                    format!(
                        "{detail}; missing {} (the matching limits will be refused)",
                        absent.join(", ")
                    ),
                ));
            }
        }
        Err(e) => {
            container = false;
            checks.push(check("cgroups", Status::Missing, e.to_string()));
        }
    }

    let userns = std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    checks.push(match userns {
        Some(n) if n > 0 => check(
            "user namespaces",
            Status::Ok,
            format!("max_user_namespaces = {n}"),
        ),
        Some(_) => check(
            "user namespaces",
            Status::Warn,
            "disabled (max_user_namespaces = 0); isola does not need them yet",
        ),
        None => check(
            "user namespaces",
            Status::Warn,
            "not supported by this kernel; isola does not need them yet",
        ),
    });

    let filesystems = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    if filesystems
        .lines()
        .any(|l| l.trim_end().ends_with("\toverlay"))
    {
        checks.push(check(
            "overlayfs",
            Status::Ok,
            "available (containers get a copy-on-write rootfs)",
        ));
    } else {
        container = false;
        checks.push(check(
            "overlayfs",
            Status::Missing,
            "not in /proc/filesystems (modprobe overlay?)",
        ));
    }

    match isola_container::host_checks::pivot_root_works() {
        Ok(()) => checks.push(check(
            "pivot_root",
            Status::Ok,
            "works in a new mount namespace",
        )),
        Err(e) => {
            container = false;
            checks.push(check(
                "pivot_root",
                Status::Missing,
                format!("{e} (is / the initial ramfs?)"),
            ));
        }
    }

    let (kvm, verdict) = kvm_check();
    checks.push(kvm);

    let guest = paths.guest();
    let mut artifacts = true;
    for (name, file) in [("guest kernel", "vmlinux"), ("guest init", "init")] {
        let p = guest.join(file);
        if p.is_file() {
            checks.push(check(name, Status::Ok, p.display().to_string()));
        } else {
            artifacts = false;
            checks.push(check(
                name,
                Status::Missing,
                format!(
                    "{} is not there (VM isolation is not built yet)",
                    p.display()
                ),
            ));
        }
    }

    // The image's root filesystem becomes an ext4 disk image (see isola-sandbox's vm/disk.rs).
    let mke2fs = tool("mke2fs");
    match &mke2fs {
        Some(p) => checks.push(check(
            "disk image tool",
            Status::Ok,
            p.display().to_string(),
        )),
        None => checks.push(check(
            "disk image tool",
            Status::Missing,
            "mke2fs (Debian package e2fsprogs) is not on PATH",
        )),
    }

    // Networks: what a bridge network needs, tried in a scratch network namespace. Without
    // them workloads still run (--network none or host).
    for p in isola_net::probe::probe() {
        checks.push(match p.result {
            Ok(what) => check(p.name, Status::Ok, what),
            Err(why) => check(
                p.name,
                Status::Warn,
                format!("{why} (bridge networks will not work; --network none and host will)"),
            ),
        });
    }

    Report {
        checks,
        container,
        vm: verdict.can_run_vms() && artifacts && mke2fs.is_some(),
    }
}

pub fn doctor(paths: &Paths, json: bool) -> Result<i32> {
    let report = diagnose(paths);
    let mut out = String::new();
    if json {
        out = serde_json::to_string_pretty(&report)? + "\n";
    } else {
        for c in &report.checks {
            let s = match c.status {
                Status::Ok => "ok",
                Status::Warn => "warn",
                Status::Missing => "missing",
            };
            out.push_str(&format!("{s:<8} {:<17} {}\n", c.name, c.detail));
        }
        let yes = |b: bool| if b { "yes" } else { "no" };
        out.push_str(&format!(
            "container isolation: {}    vm isolation: {}\n",
            yes(report.container),
            yes(report.vm)
        ));
    }
    // In one write, and a reader that stops early (`| grep -q`) is no failure: println!
    // would panic on the closed pipe after the line the reader wanted.
    let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), out.as_bytes());
    Ok(if report.container && report.vm { 0 } else { 1 })
}
