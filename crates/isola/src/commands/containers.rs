//! `isola ps`, `isola rm`, `isola cleanup`.

use crate::commands::images::print_table;
use crate::paths::Paths;
use crate::records::{self, Record};
use anyhow::{bail, Result};
use isola_container::state::State;

fn status(r: &Record) -> String {
    match (r.status.as_str(), r.exit_code) {
        ("exited", Some(c)) => format!("Exited ({c})"),
        ("running", _) => "Up".into(),
        (s, _) => s.to_string(),
    }
}

pub fn ps(paths: &Paths, all: bool) -> Result<i32> {
    records::cleanup(paths);
    let rows: Vec<[String; 6]> = records::list(paths)
        .into_iter()
        .filter(|r| all || r.status != "exited")
        .map(|r| {
            let mut cmd = r.command.join(" ");
            if cmd.len() > 30 {
                cmd.truncate(27);
                cmd.push_str("...");
            }
            [
                r.id[..12].to_string(),
                r.image.clone(),
                format!("{cmd:?}"),
                r.isolation.clone(),
                status(&r),
                r.name.clone(),
            ]
        })
        .collect();
    print_table(
        &[
            "CONTAINER ID",
            "IMAGE",
            "COMMAND",
            "ISOLATION",
            "STATUS",
            "NAMES",
        ],
        &rows,
    );
    Ok(0)
}

pub fn rm(paths: &Paths, keys: &[String], force: bool) -> Result<i32> {
    records::cleanup(paths);
    let mut failed = false;
    for key in keys {
        let r = match records::find(paths, key) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("isola: {e}");
                failed = true;
                continue;
            }
        };
        if r.status != "exited" && r.owner_alive() {
            if !force {
                eprintln!("isola: container {key} is running: stop it first or use `isola rm -f`");
                failed = true;
                continue;
            }
            if r.isolation == "vm" {
                // The VMM is the isola process that runs the VM: ending it ends the VM, and
                // the cleanup pass records the exit (137, as for a killed container).
                // SAFETY: kill(2) of the recorded owner whose start time still matches.
                unsafe { libc::kill(r.owner_pid, libc::SIGKILL) };
            } else if let Ok(st) = State::load(&paths.states().join(&r.id)) {
                if isola_container::state::is_alive(st.pid, st.pid_start_time) {
                    // SAFETY: kill(2) of the recorded init whose start time still matches.
                    unsafe { libc::kill(st.pid, libc::SIGKILL) };
                }
            }
            // Its isola notices the exit and cleans up; wait for that (bounded).
            for _ in 0..500 {
                match records::Record::load(&r.dir(paths)) {
                    Ok(now) if now.status != "exited" && now.owner_alive() => {
                        std::thread::sleep(std::time::Duration::from_millis(10))
                    }
                    _ => break,
                }
            }
        }
        records::remove_bundle(paths, &r.id)?;
        println!("{key}");
    }
    if failed {
        bail!(crate::Exit(1, String::new()));
    }
    Ok(0)
}

pub fn cleanup(paths: &Paths) -> Result<i32> {
    for id in records::cleanup(paths) {
        println!("cleaned {}", &id[..12.min(id.len())]);
    }
    Ok(0)
}
