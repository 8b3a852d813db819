//! `isola inspect NAME...`: containers as docker-style JSON — State (Status, Running, Pid,
//! OOMKilled, ExitCode, StartedAt, FinishedAt), RestartCount, HostConfig.RestartPolicy, Config,
//! Mounts, Isolation, NetworkSettings.Ports, LogPath.

use crate::paths::Paths;
use crate::records::{self, Entry, Record};
use crate::restart_policy::RestartPolicy;
use anyhow::Result;
use isola_container::state::{rfc3339, State};
use serde_json::json;

fn time(ns: Option<u64>) -> String {
    match ns {
        Some(ns) => rfc3339(ns / 1_000_000_000, (ns % 1_000_000_000) as u32),
        None => "0001-01-01T00:00:00Z".into(), // docker's "never"
    }
}

fn one(paths: &Paths, r: &Record) -> serde_json::Value {
    let running = r.status == "running" && r.owner_alive();
    let restarting = r.status == "restarting" && r.owner_alive();
    let policy: RestartPolicy = r.launch.restart.parse().unwrap_or_default();
    let (policy_name, max_retries) = policy.name_and_max();
    // The workload's own process: a container's init; a VM's is inside the guest, so its
    // monitor (the VMM's parent).
    let pid = if running {
        State::load(&paths.states().join(&r.id))
            .ok()
            .filter(|s| {
                r.isolation != "vm" && isola_container::state::is_alive(s.pid, s.pid_start_time)
            })
            .map_or(r.owner_pid, |s| s.pid)
    } else {
        0
    };
    let status = if running {
        "running"
    } else {
        r.status.as_str()
    };
    let mounts: Vec<serde_json::Value> = r
        .mounts
        .iter()
        .map(|m| {
            json!({
                "Type": m.kind,
                "Name": m.name,
                "Source": m.source,
                "Destination": m.destination,
                "RW": m.rw,
            })
        })
        .collect();
    let log = r
        .detached
        .then(|| r.dir(paths).join(crate::container_log::FILE));
    json!({
        "Id": r.id,
        "Name": format!("/{}", r.name),
        "Created": rfc3339(r.created, 0),
        "State": {
            "Status": status,
            "Running": running,
            "Restarting": restarting,
            "OOMKilled": r.oom_killed,
            "Pid": pid,
            "MonitorPid": if running { r.owner_pid } else { 0 },
            "ExitCode": r.exit_code.unwrap_or(0),
            "StartedAt": time(r.started_ns),
            "FinishedAt": time(r.finished_ns),
        },
        "Image": r.image,
        "RestartCount": r.restart_count,
        "HostConfig": {
            "RestartPolicy": {"Name": policy_name, "MaximumRetryCount": max_retries},
            "AutoRemove": r.auto_remove,
            "NetworkMode": r.launch.network,
        },
        "Config": {
            "Image": r.image,
            "Cmd": r.command,
            "Labels": r.labels,
            "StopSignal": r.stop_signal.as_deref().unwrap_or("SIGTERM"),
            "StopTimeout": r.stop_timeout.unwrap_or(10),
        },
        "Isolation": r.isolation,
        "Mounts": mounts,
        "NetworkSettings": {"Ports": r.ports},
        "AutoRemove": r.auto_remove,
        "LogPath": log,
    })
}

/// Prints a JSON array of the containers named; an unknown one fails the command (exit 1)
/// after the ones found are printed, as docker does.
pub fn inspect(paths: &Paths, keys: &[String]) -> Result<i32> {
    records::cleanup(paths);
    let mut out = Vec::new();
    let mut code = 0;
    for key in keys {
        match records::find(paths, key) {
            Ok(Entry::Ok(r)) => out.push(one(paths, &r)),
            Ok(Entry::Damaged(d)) => {
                eprintln!("isola: container {key}: {}", d.why);
                code = 1;
            }
            Err(e) => {
                eprintln!("isola: {e}");
                code = 1;
            }
        }
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::Value::from(out))?
    );
    Ok(code)
}
