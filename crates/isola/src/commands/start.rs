//! `isola start [-a] NAME...` and `isola restart [-t SECS] NAME...`: a container that exited,
//! run again by a new monitor with what it kept — its bundle and upper directory, volumes,
//! network and published ports, restart policy. Without `-a` each gets a monitor of its own
//! (as `run -d`: `isola start ID` again, in its own session); with `-a` this isola is it.

use crate::commands::{launch, lifecycle};
use crate::detach::{self, Outcome};
use crate::paths::Paths;
use crate::records::{self, Entry, Record};
use crate::Exit;
use anyhow::{bail, Result};

/// The container `key` names if it can be started; None if it runs already.
fn startable(paths: &Paths, key: &str) -> Result<Option<Record>> {
    match records::find(paths, key)? {
        Entry::Ok(r) if r.status == "exited" => Ok(Some(*r)),
        Entry::Ok(r) if r.owner_alive() => Ok(None),
        Entry::Ok(r) => bail!(Exit(1, format!("container {key} is {}", r.status))),
        Entry::Damaged(d) => bail!(Exit(1, format!("container {key}: {}", d.why))),
    }
}

pub fn start(paths: &Paths, keys: &[String], attach: bool) -> Result<i32> {
    records::cleanup(paths);
    if attach || detach::is_monitor() {
        let [key] = keys else {
            bail!("start -a: one container at a time");
        };
        return resume(paths, key, !attach);
    }
    let mut code = 0;
    for key in keys {
        if let Err(e) = start_detached(paths, key) {
            code = report(&e);
        }
    }
    Ok(code)
}

/// Starts `key` under a monitor of its own; prints `key` once it runs (or if it ran already).
fn start_detached(paths: &Paths, key: &str) -> Result<()> {
    if let Some(r) = startable(paths, key)? {
        match detach::start(vec!["start".into(), r.id.into()])? {
            Outcome::Running(_) => {}
            Outcome::Failed(code) => bail!(Exit(code, String::new())),
        }
    }
    println!("{key}");
    Ok(())
}

/// Runs container `key` again in this isola, until it ends for good. `detached`: this isola is
/// its monitor, its output goes to the log.
fn resume(paths: &Paths, key: &str, detached: bool) -> Result<i32> {
    let Some(found) = startable(paths, key)? else {
        if detached {
            detach::started(key); // it runs: nothing to wait for
        }
        println!("{key}");
        return Ok(0);
    };
    let _claim = records::reclaim(paths, &found.id)?;
    // Read again under its lock: another start may have run it since.
    let dir = found.dir(paths);
    let mut record = Record::load(&dir)?;
    if record.status != "exited" {
        bail!(Exit(
            1,
            format!("container {key} was started by another isola")
        ));
    }
    let me = std::process::id() as i32;
    record.owner_pid = me;
    record.owner_start_time = isola_container::state::start_time(me).unwrap_or(0);
    record.status = "starting".into();
    record.detached |= detached;
    record.save(paths)?;
    if detached {
        detach::log_to(&dir.join(crate::container_log::FILE))?;
        if record.launch.interactive {
            detach::hold_stdin_open()?;
        }
    }
    let opts = launch::Options {
        interactive: detached && record.launch.interactive,
        detached,
        debug: false,
        timings: false,
    };
    let result = launch::until_ended(paths, &mut record, &opts);
    launch::record_end(paths, &mut record, &result)?;
    result
}

/// `isola restart [-t SECS] NAME...`: each stopped as `isola stop` does (if it runs), then
/// started as `isola start` does.
pub fn restart(paths: &Paths, keys: &[String], timeout: Option<u64>) -> Result<i32> {
    records::cleanup(paths);
    let mut code = 0;
    for key in keys {
        if let Ok(r) = lifecycle::running(paths, key) {
            lifecycle::stop_one(paths, &r, timeout);
        }
        if let Err(e) = start_detached(paths, key) {
            code = report(&e);
        }
    }
    Ok(code)
}

/// Prints a container's failure (unless its monitor did already); its exit status.
fn report(e: &anyhow::Error) -> i32 {
    match e.downcast_ref::<Exit>() {
        Some(Exit(code, msg)) => {
            if !msg.is_empty() {
                eprintln!("isola: {msg}");
            }
            *code
        }
        None => {
            eprintln!("isola: {e:#}");
            1
        }
    }
}
