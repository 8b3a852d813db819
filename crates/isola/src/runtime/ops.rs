//! The operations on an existing container: start, state, kill, delete, pause, resume, list, ps.

use super::cli::ListFormat;
use super::{Failure, Result, Runtime};
use isola_container::ContainerError;
use isola_sandbox::{Detached, Processes, Status};
use serde_json::json;

fn load(rt: &Runtime, id: &str) -> Result<Detached> {
    Ok(Detached::load(&rt.root, id)?)
}

pub fn start(rt: &Runtime, id: &str) -> Result<()> {
    Ok(load(rt, id)?.start()?)
}

/// runc's state document (the runtime spec's, plus `created` and `owner`).
fn state_json(c: &Detached) -> serde_json::Value {
    let status = c.status();
    let s = &c.state;
    let mut v = json!({
        "ociVersion": s.oci_version,
        "id": s.id,
        "pid": if status == Status::Stopped { 0 } else { s.pid },
        "status": status.as_str(),
        "bundle": s.bundle,
        "rootfs": s.rootfs,
        "created": s.created,
        "owner": "",
    });
    if !s.annotations.is_empty() {
        v["annotations"] = json!(s.annotations);
    }
    v
}

pub fn state(rt: &Runtime, id: &str) -> Result<()> {
    let c = load(rt, id)?;
    println!(
        "{}",
        serde_json::to_string_pretty(&state_json(&c)).unwrap_or_default()
    );
    Ok(())
}

/// A signal by name (`KILL`, `SIGKILL`) or number.
pub fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
    }
    let name = s.to_ascii_uppercase();
    let name = if name.starts_with("SIG") {
        name
    } else {
        format!("SIG{name}")
    };
    name.parse::<nix::sys::signal::Signal>()
        .map(|s| s as i32)
        .map_err(|_| Failure(format!("unknown signal {s:?}")))
}

pub fn kill(rt: &Runtime, id: &str, signal: &str, all: bool) -> Result<()> {
    let signal = parse_signal(signal)?;
    Ok(load(rt, id)?.kill(signal, all)?)
}

pub fn delete(rt: &Runtime, id: &str, force: bool) -> Result<()> {
    match Detached::load(&rt.root, id) {
        Ok(c) => Ok(c.delete(force)?),
        // As runc: forcing the removal of what is not there is done already.
        Err(ContainerError::NotFound(_)) if force => Ok(()),
        Err(e) => Err(e.into()),
    }
}

pub fn pause(rt: &Runtime, id: &str, paused: bool) -> Result<()> {
    Ok(load(rt, id)?.pause(paused)?)
}

pub fn list(rt: &Runtime, format: ListFormat, quiet: bool) -> Result<()> {
    let all = Detached::list(&rt.root);
    if quiet {
        for c in &all {
            println!("{}", c.state.id);
        }
        return Ok(());
    }
    match format {
        ListFormat::Json => {
            let v: Vec<serde_json::Value> = all.iter().map(state_json).collect();
            println!("{}", serde_json::Value::from(v));
        }
        ListFormat::Table => {
            let mut rows = vec![[
                "ID".to_string(),
                "PID".into(),
                "STATUS".into(),
                "BUNDLE".into(),
                "CREATED".into(),
                "OWNER".into(),
            ]];
            for c in &all {
                let status = c.status();
                rows.push([
                    c.state.id.clone(),
                    if status == Status::Stopped {
                        "0".into()
                    } else {
                        c.state.pid.to_string()
                    },
                    status.as_str().into(),
                    c.state.bundle.display().to_string(),
                    c.state.created.clone(),
                    "root".into(),
                ]);
            }
            print_table(&rows);
        }
    }
    Ok(())
}

fn print_table<const N: usize>(rows: &[[String; N]]) {
    let mut widths = [0usize; N];
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.len());
        }
    }
    for r in rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            if i + 1 == N {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}", w = widths[i] + 3));
            }
        }
        println!("{}", line.trim_end());
    }
}

/// The container's processes: their host pids as JSON, or ps(1)'s lines for them. A VM's are
/// the guest's: their pids (as the workload numbers them) as JSON, or a table of them.
pub fn ps(rt: &Runtime, id: &str, format: ListFormat, ps_args: &[String]) -> Result<()> {
    let c = load(rt, id)?;
    let pids = match isola_sandbox::processes(&c)? {
        Processes::Host(pids) => pids,
        Processes::Guest(list) => {
            if format == ListFormat::Json {
                let pids: Vec<u32> = list.iter().map(|p| p.pid).collect();
                println!("{}", serde_json::Value::from(pids));
                return Ok(());
            }
            let mut rows = vec![["UID".to_string(), "PID".into(), "PPID".into(), "CMD".into()]];
            for p in list {
                rows.push([
                    p.uid.to_string(),
                    p.pid.to_string(),
                    p.ppid.to_string(),
                    p.command,
                ]);
            }
            print_table(&rows);
            return Ok(());
        }
    };
    if format == ListFormat::Json {
        println!("{}", serde_json::Value::from(pids));
        return Ok(());
    }
    let args: Vec<String> = if ps_args.is_empty() {
        vec!["-ef".into()]
    } else {
        ps_args.to_vec()
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .map_err(|e| Failure(format!("ps: {e}")))?;
    if !out.status.success() {
        return Err(Failure(format!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let pid_col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .ok_or_else(|| Failure("ps: its output has no PID column".into()))?;
    println!("{header}");
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(pid_col)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            println!("{line}");
        }
    }
    Ok(())
}
