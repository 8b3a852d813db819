//! `isola stop`, `kill` and `wait`: a running workload is reached through its monitor (the
//! `isola run` that owns it, attached or `-d`), which passes the signals it gets on to the
//! workload (see isola-container's `monitor::FORWARDED`) and records the exit when the
//! workload ends. A workload that will not end is killed: a container's init with SIGKILL
//! (its monitor records 137), a VM by ending its monitor, the VMM's parent (the cleanup pass
//! records 137).

use crate::commands::launch;
use crate::paths::Paths;
use crate::records::{self, Entry, Record};
use crate::Exit;
use anyhow::{bail, Result};
use isola_container::state::State;
use std::time::{Duration, Instant};

/// The signals a monitor passes on, by name (SIGKILL is carried out as described above).
const SIGNALS: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("USR2", libc::SIGUSR2),
    ("TERM", libc::SIGTERM),
    ("WINCH", libc::SIGWINCH),
];

/// A signal as docker's `kill -s` takes it: `TERM`, `SIGTERM` or `15`.
pub fn parse_signal(s: &str) -> Result<i32> {
    let name = s.trim_start_matches("SIG");
    let found = match s.parse::<i32>() {
        Ok(n) => SIGNALS.iter().find(|(_, v)| *v == n),
        Err(_) => SIGNALS.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)),
    };
    match found {
        Some((_, v)) => Ok(*v),
        None => {
            bail!("signal {s:?}: isola passes on HUP, INT, QUIT, KILL, USR1, USR2, TERM and WINCH")
        }
    }
}

/// The running container `key` names (an exited one is an error naming it).
pub fn running(paths: &Paths, key: &str) -> Result<Record> {
    match records::find(paths, key)? {
        Entry::Ok(r) if r.is_going() => Ok(*r),
        Entry::Ok(_) => bail!(Exit(1, format!("container {key} is not running"))),
        Entry::Damaged(d) => bail!(Exit(1, format!("container {key}: {}", d.why))),
    }
}

/// Whether the record, read again, says the workload ended (or its monitor is gone).
pub fn ended(paths: &Paths, r: &Record) -> bool {
    match Record::load(&r.dir(paths)) {
        Ok(now) => !now.is_going(),
        Err(_) => true, // removed (--rm)
    }
}

fn wait_until_ended(paths: &Paths, r: &Record, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if ended(paths, r) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    ended(paths, r)
}

/// Kills container `id`'s init with SIGKILL, if it is alive; its monitor then notices the
/// exit and records it. Whether there was one to kill.
pub fn kill_init(paths: &Paths, id: &str) -> bool {
    match State::load(&paths.states().join(id)) {
        Ok(st) if isola_container::state::is_alive(st.pid, st.pid_start_time) => {
            // SAFETY: kill(2) of the recorded init whose start time still matches.
            unsafe { libc::kill(st.pid, libc::SIGKILL) };
            true
        }
        _ => false,
    }
}

/// Ends the workload for good (its restart policy rests), and waits until that is recorded.
pub fn force_end(paths: &Paths, r: &Record) {
    launch::request_stop(paths, r);
    // A VM's state names its monitor, the VMM's parent: the VM ends with it, killed below.
    let killed = r.isolation != "vm" && kill_init(paths, &r.id);
    if !killed && r.owner_alive() {
        // SAFETY: kill(2) of the recorded owner whose start time still matches.
        unsafe { libc::kill(r.owner_pid, libc::SIGKILL) };
    }
    wait_until_ended(paths, r, Duration::from_secs(10));
    records::cleanup(paths);
}

/// `isola stop [-t SECS] NAME...`.
pub fn stop(paths: &Paths, keys: &[String], timeout: Option<u64>) -> Result<i32> {
    records::cleanup(paths);
    let mut code = 0;
    for key in keys {
        match running(paths, key) {
            Ok(r) => stop_one(paths, &r, timeout),
            Err(e) => {
                eprintln!("isola: {e}");
                code = 1;
                continue;
            }
        };
        println!("{key}");
    }
    Ok(code)
}

/// The container's stop signal (SIGTERM unless `--stop-signal` said otherwise), then after
/// `timeout` seconds (its `--stop-timeout`, else 10) the kill. Its restart policy does not
/// start it again.
pub fn stop_one(paths: &Paths, r: &Record, timeout: Option<u64>) {
    let signal = stop_signal(r);
    let timeout = timeout.or(r.stop_timeout).unwrap_or(10);
    launch::request_stop(paths, r);
    if signal == libc::SIGKILL {
        force_end(paths, r);
    } else {
        // SAFETY: kill(2) of the recorded monitor whose start time still matches; it
        // passes the signal on.
        unsafe { libc::kill(r.owner_pid, signal) };
    }
    if !wait_until_ended(paths, r, Duration::from_secs(timeout)) {
        force_end(paths, r);
    }
}

fn stop_signal(r: &Record) -> i32 {
    match r.stop_signal.as_deref().map(parse_signal) {
        Some(Ok(s)) => s,
        _ => libc::SIGTERM,
    }
}

/// `isola kill [-s SIG] NAME...`.
pub fn kill(paths: &Paths, keys: &[String], signal: &str) -> Result<i32> {
    let sig = parse_signal(signal)?;
    records::cleanup(paths);
    let mut code = 0;
    for key in keys {
        match running(paths, key) {
            Ok(r) if sig == libc::SIGKILL => force_end(paths, &r),
            Ok(r) => {
                if sig == stop_signal(&r) {
                    launch::request_stop(paths, &r); // as docker: its restart policy rests
                }
                // SAFETY: kill(2) of the recorded monitor whose start time still matches; it
                // passes the signal on.
                unsafe { libc::kill(r.owner_pid, sig) };
            }
            Err(e) => {
                eprintln!("isola: {e}");
                code = 1;
                continue;
            }
        }
        println!("{key}");
    }
    Ok(code)
}

/// `isola wait NAME...`: until each has ended; prints each exit status.
pub fn wait(paths: &Paths, keys: &[String]) -> Result<i32> {
    let mut code = 0;
    for key in keys {
        let r = match records::find(paths, key) {
            Ok(Entry::Ok(r)) => r,
            Ok(Entry::Damaged(d)) => {
                eprintln!("isola: container {key}: {}", d.why);
                code = 1;
                continue;
            }
            Err(e) => {
                eprintln!("isola: {e}");
                code = 1;
                continue;
            }
        };
        while !ended(paths, &r) {
            std::thread::sleep(Duration::from_millis(50));
        }
        records::cleanup(paths);
        match Record::load(&r.dir(paths)) {
            Ok(done) => println!("{}", done.exit_code.unwrap_or(137)),
            Err(_) => {
                eprintln!("isola: container {key} was removed when it ended (--rm)");
                code = 1;
            }
        }
    }
    Ok(code)
}
