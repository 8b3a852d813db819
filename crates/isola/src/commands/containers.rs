//! `isola ps`, `isola rm`, `isola cleanup`.

use crate::commands::human_duration::human;
use crate::commands::images::print_table;
use crate::paths::Paths;
use crate::records::{self, Entry, Record};
use anyhow::{bail, Result};

/// Seconds from `ns` (since the epoch) to now.
fn since(ns: u64) -> u64 {
    records::now_ns().saturating_sub(ns) / 1_000_000_000
}

/// As docker's STATUS: "Up 3 minutes", "Exited (4) 2 seconds ago".
fn status(r: &Record) -> String {
    match (r.status.as_str(), r.exit_code) {
        ("exited", Some(c)) => match r.finished_ns {
            Some(t) => format!("Exited ({c}) {} ago", human(since(t))),
            None => format!("Exited ({c})"),
        },
        ("restarting", Some(c)) => match r.finished_ns {
            Some(t) => format!("Restarting ({c}) {} ago", human(since(t))),
            None => format!("Restarting ({c})"),
        },
        ("running", _) => match r.started_ns {
            Some(t) => format!("Up {}", human(since(t))),
            None => "Up".into(),
        },
        (s, _) => s.to_string(),
    }
}

pub fn ps(paths: &Paths, all: bool, quiet: bool) -> Result<i32> {
    records::cleanup(paths);
    let records: Vec<Record> = records::scan(paths)
        .into_iter()
        .map(|e| match e {
            Entry::Ok(r) => *r,
            Entry::Damaged(d) => {
                // Its owner is alive (the cleanup pass removed it otherwise): say what is wrong.
                eprintln!("isola: warning: container {}: {}", d.id, d.why);
                damaged_row(&d.id)
            }
        })
        .filter(|r| all || r.status != "exited")
        .collect();
    if quiet {
        for r in &records {
            println!("{}", &r.id[..12]);
        }
        return Ok(0);
    }
    let rows: Vec<[String; 8]> = records
        .iter()
        .map(|r| {
            let created = if r.created == 0 {
                String::new()
            } else {
                format!("{} ago", human(records::now().saturating_sub(r.created)))
            };
            let mut cmd = r.command.join(" ");
            if cmd.len() > 30 {
                cmd.truncate(27);
                cmd.push_str("...");
            }
            [
                r.id[..12].to_string(),
                r.image.clone(),
                format!("{cmd:?}"),
                created,
                r.isolation.clone(),
                status(r),
                r.ports.join(", "),
                r.name.clone(),
            ]
        })
        .collect();
    print_table(
        &[
            "CONTAINER ID",
            "IMAGE",
            "COMMAND",
            "CREATED",
            "ISOLATION",
            "STATUS",
            "PORTS",
            "NAMES",
        ],
        &rows,
    );
    Ok(0)
}

/// How `ps` shows a container whose record is damaged.
fn damaged_row(id: &str) -> Record {
    Record {
        id: id.to_string(),
        name: String::new(),
        image: "?".into(),
        command: Vec::new(),
        isolation: "?".into(),
        status: "damaged".into(),
        ..Default::default()
    }
}

pub fn rm(paths: &Paths, keys: &[String], force: bool) -> Result<i32> {
    let cleaned = records::cleanup(paths);
    let mut failed = false;
    for key in keys {
        let r = match records::find(paths, key) {
            Ok(Entry::Ok(r)) => r,
            Ok(Entry::Damaged(d)) => {
                // The cleanup pass removes it once its owner is gone; this one's is alive.
                if !force {
                    eprintln!(
                        "isola: container {key} is in use ({}): use `isola rm -f`",
                        d.why
                    );
                    failed = true;
                    continue;
                }
                crate::commands::lifecycle::kill_init(paths, &d.id);
                // Its isola lets go of the directory when it has cleaned up (bounded wait).
                let dir = paths.bundles().join(&d.id);
                for _ in 0..500 {
                    if records::lock_if_unowned(&dir).is_some() || !dir.exists() {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                records::remove_bundle(paths, &d.id)?;
                println!("{key}");
                continue;
            }
            Err(_) if removed_by_cleanup(paths, &cleaned, key) => {
                println!("{key}");
                continue;
            }
            Err(e) => {
                eprintln!("isola: {e}");
                failed = true;
                continue;
            }
        };
        if r.is_going() {
            if !force {
                eprintln!("isola: container {key} is running: stop it first or use `isola rm -f`");
                failed = true;
                continue;
            }
            crate::commands::lifecycle::force_end(paths, &r);
        }
        records::remove_bundle(paths, &r.id)?;
        println!("{key}");
    }
    if failed {
        bail!(crate::Exit(1, String::new()));
    }
    Ok(0)
}

/// Whether `key` named (by ID or ID prefix) a damaged container the cleanup pass just removed.
fn removed_by_cleanup(paths: &Paths, cleaned: &[String], key: &str) -> bool {
    cleaned
        .iter()
        .any(|id| id.starts_with(key) && !paths.bundles().join(id).exists())
}

pub fn cleanup(paths: &Paths) -> Result<i32> {
    for id in records::cleanup(paths) {
        println!("cleaned {}", &id[..12.min(id.len())]);
    }
    Ok(0)
}
