//! `isola bench pagerank`: the experiment that motivated isola, as a command — PageRank (the
//! sample image's static `pagerank`) run bare, in containers and in VMs, 1, 2, 4, 8… instances
//! at once. For every instance: its completion time (launch to exit, start-up included, as the
//! experiment measured it), its CPU time (wait4's rusage of the instance and all it reaped: a
//! container's init, a VM's VMM), and the time spent runnable but waiting of every host task
//! it ran (its process tree's threads, VMM and vCPU threads included), from
//! /proc/TID/schedstat sampled every 5 ms until it ends (so up to 5 ms of a task's last
//! stretch may be missing, and a run shorter than that may show none). Writes `pagerank.csv` and `pagerank.svg` (completion
//! and wait time against instances, a line per level) to the output directory, and prints a
//! table.

use crate::cli::PagerankArgs;
use crate::paths::Paths;
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One instance's figures.
pub struct Instance {
    pub level: String,
    pub instances: usize,
    pub index: usize,
    pub completion_ms: f64,
    pub cpu_ms: f64,
    pub wait_ms: f64,
    pub exit_code: i32,
    /// What pagerank printed (the same on every level: it is deterministic).
    pub result: String,
}

pub fn pagerank(paths: &Paths, a: PagerankArgs) -> Result<i32> {
    let counts: Vec<usize> = a
        .instances
        .split(',')
        .map(|n| n.parse().ok().filter(|n| *n > 0))
        .collect::<Option<_>>()
        .with_context(|| format!("--instances {}: expected counts like 1,2,4,8", a.instances))?;
    let levels = super::compare::levels(&a.levels)?;
    let (_, _, lower) = crate::commands::run::image_and_rootfs(paths, &a.image)?;
    let binary = lower.join("usr/local/bin/pagerank");
    if !binary.is_file() {
        bail!(
            "{}: no /usr/local/bin/pagerank in it (the sample image has one)",
            a.image
        );
    }
    std::fs::create_dir_all(&a.output).with_context(|| a.output.display().to_string())?;
    let vm_here = crate::vm_preflight::preflight(paths).is_ok();
    let args = [a.nodes.to_string(), a.iterations.to_string()];
    let mut all = Vec::new();
    for level in &levels {
        if *level == "vm" && !vm_here {
            eprintln!("isola bench: vm: {}", super::compare::VM_NOT_HERE);
            continue;
        }
        for &n in &counts {
            eprintln!("isola bench: {level}, {n} at once…");
            let launch = || -> Result<Child> {
                let mut c = if *level == "bare" {
                    Command::new(&binary)
                } else {
                    let mut c = Command::new(std::env::current_exe()?);
                    c.args(["run", "--rm", "--network", "none", "--isolation", level])
                        .arg(&a.image)
                        .arg("pagerank");
                    c
                };
                c.args(&args)
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::inherit());
                Ok(c.spawn()?)
            };
            all.extend(run_at_once(level, n, launch)?);
        }
    }
    let results: Vec<&str> = all.iter().map(|i| i.result.as_str()).collect();
    if results.windows(2).any(|w| w[0] != w[1]) || all.iter().any(|i| i.exit_code != 0) {
        eprintln!("isola bench: warning: not every instance ended well with the same result");
    }
    let csv = a.output.join("pagerank.csv");
    std::fs::write(&csv, super::bench_plot::csv(&all))
        .with_context(|| csv.display().to_string())?;
    let drawing = super::bench_plot::drawing(&all, a.nodes, a.iterations);
    let svg = a.output.join("pagerank.svg");
    std::fs::write(&svg, drawing.svg()).with_context(|| svg.display().to_string())?;
    let png = a.output.join("pagerank.png");
    std::fs::write(&png, drawing.png(2)).with_context(|| png.display().to_string())?;
    super::bench_plot::print_table(&all);
    eprintln!(
        "isola bench: wrote {}, {} and {}",
        csv.display(),
        svg.display(),
        png.display()
    );
    Ok(0)
}

/// Starts `n` instances together; a thread per instance waits for it (its completion time to
/// the microsecond) while this one samples their task trees every 5 ms until each has ended.
fn run_at_once(level: &str, n: usize, launch: impl Fn() -> Result<Child>) -> Result<Vec<Instance>> {
    let started = Instant::now();
    let children: Vec<Child> = (0..n).map(|_| launch()).collect::<Result<_>>()?;
    let pids: Vec<i32> = children.iter().map(|c| c.id() as i32).collect();
    let waiters: Vec<std::thread::JoinHandle<Ended>> = children
        .into_iter()
        .map(|c| std::thread::spawn(move || wait(c, started)))
        .collect();
    let mut seen: Vec<HashMap<i32, u64>> = vec![HashMap::new(); n];
    while waiters.iter().any(|w| !w.is_finished()) {
        for i in 0..n {
            if !waiters[i].is_finished() {
                sample_tree(pids[i], &mut seen[i]);
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    waiters
        .into_iter()
        .enumerate()
        .map(|(i, w)| {
            let ended = w
                .join()
                .map_err(|_| anyhow::anyhow!("an instance's waiter panicked"))?;
            let wait = seen[i].values().sum::<u64>();
            Ok(Instance {
                level: level.to_string(),
                instances: n,
                index: i,
                completion_ms: ended.completion_ms,
                cpu_ms: ended.cpu_ms,
                wait_ms: wait as f64 / 1e6,
                exit_code: ended.code,
                result: ended.output.trim().to_string(),
            })
        })
        .collect()
}

/// How an instance ended.
struct Ended {
    completion_ms: f64,
    code: i32,
    /// User and system time of the instance and everything it reaped (exact, however short
    /// the run; a container's init and a VM's VMM are isola's children).
    cpu_ms: f64,
    output: String,
}

fn wait(mut c: Child, started: Instant) -> Ended {
    let mut output = String::new();
    if let Some(mut o) = c.stdout.take() {
        let _ = o.read_to_string(&mut output);
    }
    let used = super::child_usage::wait(c);
    Ended {
        completion_ms: started.elapsed().as_secs_f64() * 1000.0,
        code: used.as_ref().map_or(125, |u| u.code),
        cpu_ms: used.map_or(0.0, |u| u.cpu_ms),
        output,
    }
}

/// Every thread of `pid` and its descendants: the latest run-queue wait (ns) of each.
fn sample_tree(pid: i32, seen: &mut HashMap<i32, u64>) {
    let mut stack = vec![pid];
    while let Some(p) = stack.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let tid: i32 = t.file_name().to_string_lossy().parse().unwrap_or(0);
            let dir = t.path();
            if let Ok(s) = std::fs::read_to_string(dir.join("schedstat")) {
                // "CPU ns, wait ns, slices": the second.
                let wait = s.split_whitespace().nth(1).and_then(|v| v.parse().ok());
                let e = seen.entry(tid).or_default();
                *e = (*e).max(wait.unwrap_or(0));
            }
            if let Ok(kids) = std::fs::read_to_string(dir.join("children")) {
                stack.extend(
                    kids.split_whitespace()
                        .filter_map(|k| k.parse::<i32>().ok()),
                );
            }
        }
    }
}
