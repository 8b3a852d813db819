//! `isola compare IMAGE [CMD...]`: the same workload bare (the command on the host, where the
//! host has it), as a container and as a VM, side by side — where the time goes, phase by phase
//! (the `--timings` lines of each run), what it costs (peak memory, disk), and what the workload sees
//! (the probe: the tiny init's binary started as `/dev/init --probe` at each level, and as-is
//! on the host for the bare column). Every figure is measured in this run, by the real binary:
//! each level is `isola run --rm --network none --timings` started as a child of this isola.
//! `compare_report` prints the table and writes the page.

use crate::cli::CompareArgs;
use crate::paths::Paths;
use anyhow::{bail, Context, Result};
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Instant;

/// One level's measurements, or why it was not measured here.
pub struct Column {
    pub level: String,
    pub measured: Result<Measured, String>,
}

pub struct Measured {
    pub wall_ms: f64,
    /// (phase, milliseconds), in order; they add up to `wall_ms`.
    pub phases: Vec<(String, f64)>,
    pub exit_code: i32,
    /// Peak RSS of the largest process of the run (wait4: the child and what it reaped — a
    /// VM run's VMM, a bare run's command).
    pub peak_rss_mib: f64,
    /// A VM's VMM: its peak RSS and the part that is not guest memory.
    pub vmm_rss_mib: Option<f64>,
    pub vmm_overhead_mib: Option<f64>,
    /// What the level keeps on disk for the image, MiB allocated: the unpacked rootfs (a
    /// container's lower layer; a VM's disk is made from it) and a VM's ext4 root disk, both
    /// shared by every run of the image. Bare: nothing of isola's.
    pub disk: Disk,
    pub probe: serde_json::Value,
}

#[derive(Clone, Copy, Default)]
pub struct Disk {
    pub rootfs_mib: Option<f64>,
    pub root_disk_mib: Option<f64>,
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

const LEVELS: &[&str] = &["bare", "container", "vm"];

/// What a VM column says on a host whose KVM cannot boot a guest.
pub const VM_NOT_HERE: &str =
    "NOT MEASURED HERE: this host's KVM cannot boot an unmodified guest (see `isola doctor`)";

/// `--levels bare,container,vm` (any of them, in the order given).
pub fn levels(arg: &str) -> Result<Vec<String>> {
    let levels: Vec<String> = arg.split(',').map(str::to_string).collect();
    if let Some(bad) = levels.iter().find(|l| !LEVELS.contains(&l.as_str())) {
        bail!("--levels {arg}: {bad:?} is not one of bare, container, vm");
    }
    Ok(levels)
}

/// The phases, in order, with what each is at each level (`PHASE_NOTES`).
pub const PHASES: [&str; 7] = [
    "isola setup",
    "isolation setup",
    "start",
    "kernel boot",
    "guest init",
    "workload",
    "teardown and exit",
];
pub const PHASE_NOTES: [&str; 7] = [
    "isola itself: the image, its rootfs (container) or disk and initramfs (VM), the bundle",
    "container: namespaces, cgroups, mounts, pivot_root; VM: the VMM process, KVM setup, to the kernel's first instruction",
    "container: the init told to exec the workload",
    "VM: the guest kernel, from its entry to guest init",
    "VM: guest init mounting, setting up and starting the workload",
    "the workload itself (bare: the whole run)",
    "ending the sandbox, removing what was made, isola exiting",
];

pub fn compare(paths: &Paths, a: CompareArgs) -> Result<i32> {
    let levels = levels(&a.levels)?;
    if let Some(out) = &a.output {
        let ext = out.extension().and_then(|e| e.to_str()).unwrap_or("");
        if !matches!(ext, "html" | "svg") {
            bail!("--output {}: a .html or .svg file", out.display());
        }
    }
    // The image first (pulled if need be), so no level pays for it.
    let (_, image, rootfs) = crate::commands::run::image_and_rootfs(paths, &a.image)?;
    // What every isolated level keeps: the unpacked rootfs (walked once); a VM's disk too.
    let rootfs_mib = mib(crate::leftovers::disk_usage(&rootfs));
    let root_disk = paths.vm_images().join(format!(
        "{}.ext4",
        isola_oci::rootfs::chain_id(&image)?.hex()
    ));
    let command = if a.command.is_empty() {
        let c = image.config.config().clone().unwrap_or_default();
        c.entrypoint()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .chain(c.cmd().clone().unwrap_or_default())
            .collect()
    } else {
        a.command.clone()
    };
    let vm_here = crate::vm_preflight::preflight(paths).is_ok();
    let mut columns = Vec::new();
    for level in &levels {
        let measured = match level.as_str() {
            "bare" => bare(paths, &command),
            "vm" if !vm_here => Err(VM_NOT_HERE.to_string()),
            l => isolated(l, &a.image, &a.command).map(|mut m| {
                // Measured after the run: a VM's first run builds its disk.
                m.disk = Disk {
                    rootfs_mib: Some(rootfs_mib),
                    root_disk_mib: (l == "vm")
                        .then(|| mib(crate::leftovers::disk_usage(&root_disk))),
                };
                m
            }),
        };
        if let Err(why) = &measured {
            eprintln!("isola compare: {level}: {why}");
        }
        columns.push(Column {
            level: level.clone(),
            measured,
        });
    }
    crate::commands::compare_report::print_table(&columns);
    if a.json {
        println!("{}", crate::commands::compare_report::json(&columns));
    }
    if let Some(out) = &a.output {
        let page = crate::commands::compare_report::page(&a.image, &command, &columns, out);
        std::fs::write(out, page).with_context(|| out.display().to_string())?;
        eprintln!("isola compare: wrote {}", out.display());
    }
    Ok(0)
}

/// A child's stdout and stderr, its status and its peak RSS (wait4's rusage).
struct Finished {
    stdout: String,
    stderr: String,
    code: i32,
    maxrss_kib: i64,
    wall_ms: f64,
}

fn finish(mut cmd: Command) -> Result<Finished, String> {
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let errs = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let mut stdout = String::new();
    let _ = out.read_to_string(&mut stdout);
    let stderr = errs.join().unwrap_or_default();
    let used = super::child_usage::wait(child).map_err(|e| format!("wait4: {e}"))?;
    Ok(Finished {
        stdout,
        stderr,
        code: used.code,
        maxrss_kib: used.maxrss_kib,
        wall_ms: started.elapsed().as_secs_f64() * 1000.0,
    })
}

/// The command on the host itself, if the host has it; the probe as-is.
fn bare(paths: &Paths, command: &[String]) -> Result<Measured, String> {
    let Some(program) = command.first() else {
        return Err("no command (the image has none; give one)".into());
    };
    let found = if program.contains('/') {
        std::path::Path::new(program).is_file()
    } else {
        std::env::var("PATH")
            .unwrap_or_default()
            .split(':')
            .any(|d| std::path::Path::new(d).join(program).is_file())
    };
    if !found {
        return Err(format!("NOT MEASURED: {program} is not on this host"));
    }
    let mut cmd = Command::new(program);
    cmd.args(&command[1..]);
    let run = finish(cmd)?;
    let probe_bin = crate::vm_preflight::vm_config(paths).guest_dir.join("init");
    let mut probe = Command::new(&probe_bin);
    probe.arg("--probe");
    let probed = finish(probe)?;
    Ok(Measured {
        wall_ms: run.wall_ms,
        phases: vec![(PHASES[5].into(), run.wall_ms)],
        exit_code: run.code,
        peak_rss_mib: run.maxrss_kib as f64 / 1024.0,
        vmm_rss_mib: None,
        vmm_overhead_mib: None,
        disk: Disk::default(),
        probe: parse_probe(&probed.stdout)?,
    })
}

fn parse_probe(out: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(out.trim()).map_err(|e| format!("the probe's output {out:?}: {e}"))
}

fn isola_run(
    level: &str,
    extra: &[&str],
    image: &str,
    command: &[String],
) -> Result<Finished, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut cmd = Command::new(exe);
    cmd.args(["run", "--rm", "--network", "none", "--isolation", level])
        .args(extra)
        .arg(image)
        .args(command);
    finish(cmd)
}

/// `isola run` at `level`: its timings, memory and exit; then the probe the same way.
fn isolated(level: &str, image: &str, command: &[String]) -> Result<Measured, String> {
    let run = isola_run(level, &["--timings"], image, command)?;
    if run.code == 125 {
        return Err(format!("isola run failed: {}", run.stderr.trim()));
    }
    let t = timings(&run.stderr);
    let at = |k: &str| t.iter().find(|(n, _)| n == k).map(|(_, v)| *v);
    let phases: Vec<(String, f64)> = if level == "vm" {
        // The VM's marks are from the VMM's start, which was `isola start` ms after isola's.
        let before = -at("isola start").unwrap_or(0.0);
        let marks = [
            (PHASES[0], Some(0.0)),
            (PHASES[1], Some(before)),
            (PHASES[3], at("kernel entry").map(|v| v + before)),
            (PHASES[4], at("init start").map(|v| v + before)),
            (PHASES[5], at("workload start").map(|v| v + before)),
            (PHASES[6], at("workload exit").map(|v| v + before)),
        ];
        spans(&marks, run.wall_ms)
    } else {
        let marks = [
            (PHASES[0], Some(0.0)),
            (PHASES[1], at("sandbox create")),
            (PHASES[2], at("sandbox created")),
            (PHASES[5], at("workload start")),
            (PHASES[6], at("workload exit")),
        ];
        spans(&marks, run.wall_ms)
    };
    let (vmm_rss_mib, vmm_overhead_mib) = vmm_memory(&run.stderr);
    let probed = isola_run(level, &["--probe"], image, &[])?;
    if probed.code != 0 {
        return Err(format!("the probe failed: {}", probed.stderr.trim()));
    }
    Ok(Measured {
        wall_ms: run.wall_ms,
        phases,
        exit_code: run.code,
        peak_rss_mib: run.maxrss_kib as f64 / 1024.0,
        vmm_rss_mib,
        vmm_overhead_mib,
        disk: Disk::default(),
        probe: parse_probe(&probed.stdout)?,
    })
}

/// Phases from their start marks (ms since isola's start): each lasts until the next mark,
/// the last until `end`. A missing mark joins its time to the phase before.
fn spans(marks: &[(&str, Option<f64>)], end: f64) -> Vec<(String, f64)> {
    let known: Vec<(&str, f64)> = marks
        .iter()
        .filter_map(|(n, t)| t.map(|t| (*n, t)))
        .collect();
    known
        .iter()
        .enumerate()
        .map(|(i, (name, start))| {
            let next = known.get(i + 1).map_or(end, |(_, t)| *t);
            (name.to_string(), (next - start).max(0.0))
        })
        .collect()
}

/// `timings: NAME VALUE ms` lines.
fn timings(stderr: &str) -> Vec<(String, f64)> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("timings: ")?.strip_suffix(" ms"))
        .filter_map(|l| {
            let (name, v) = l.rsplit_once(' ')?;
            Some((name.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// The VM's memory line: peak RSS and VMM overhead, MiB.
fn vmm_memory(stderr: &str) -> (Option<f64>, Option<f64>) {
    let Some(line) = stderr
        .lines()
        .find_map(|l| l.strip_prefix("timings: memory: "))
    else {
        return (None, None);
    };
    let number_after = |key: &str| {
        line.split(key)
            .nth(1)?
            .split_whitespace()
            .next()?
            .parse::<f64>()
            .ok()
    };
    (number_after("peak RSS "), number_after("VMM overhead "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_add_up_to_the_wall_time() {
        let p = spans(&[("a", Some(0.0)), ("b", None), ("c", Some(4.0))], 10.0);
        assert_eq!(p, vec![("a".to_string(), 4.0), ("c".to_string(), 6.0)]);
        let t = timings(
            "x\ntimings: kernel entry 12.5 ms\ntimings: exits to isola: 1 port I/O, 2 MMIO\n",
        );
        assert_eq!(t, vec![("kernel entry".to_string(), 12.5)]);
        let m = vmm_memory("timings: memory: peak RSS 40.1 MiB, guest memory touched 30.0 MiB, VMM overhead 10.1 MiB");
        assert_eq!(m, (Some(40.1), Some(10.1)));
    }
}
