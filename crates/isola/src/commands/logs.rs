//! `isola logs [-f] [-t] [--tail N] [--since WHEN] NAME`: what a detached workload wrote, from
//! its log (`container_log`): its stdout entries to stdout, its stderr entries to stderr, as
//! docker prints them; `-f` follows the log until the workload has ended.

use crate::container_log::{self, Entry};
use crate::paths::Paths;
use crate::records::{self, Entry as Found};
use crate::Exit;
use anyhow::{bail, Result};
use std::io::Write;

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Nanoseconds since the epoch of `YYYY-MM-DDTHH:MM:SS[.fraction]Z`.
fn parse_rfc3339(s: &str) -> Option<u64> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|x| x.parse::<i64>().ok());
    let (y, mo, da) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.splitn(3, ':').map(|x| x.parse::<i64>().ok());
    let (h, mi, se) = (t.next()??, t.next()??, t.next()??);
    let nanos: u64 = format!("{frac:0<9}").get(..9)?.parse().ok()?;
    let secs = days_from_civil(y, mo, da) * 86_400 + h * 3600 + mi * 60 + se;
    Some(u64::try_from(secs).ok()? * 1_000_000_000 + nanos)
}

/// `--since`: an RFC 3339 time, Unix seconds, or a duration back from now (`30s`, `5m`, `2h`).
fn parse_since(s: &str) -> Result<u64> {
    if let Some(ns) = parse_rfc3339(s) {
        return Ok(ns);
    }
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(secs * 1_000_000_000);
    }
    let unit = match s.chars().last() {
        Some('s') => 1,
        Some('m') => 60,
        Some('h') => 3600,
        _ => 0,
    };
    match s[..s.len().saturating_sub(1)].parse::<u64>() {
        Ok(n) if unit > 0 => Ok(records::now_ns().saturating_sub(n * unit * 1_000_000_000)),
        _ => bail!("--since {s:?}: expected a time (2026-01-02T15:04:05Z), Unix seconds, or a duration (30s, 5m, 2h)"),
    }
}

fn print(entries: &[Entry], timestamps: bool, since: u64) {
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
    for e in entries {
        if since > 0 && parse_rfc3339(&e.time).is_some_and(|t| t < since) {
            continue;
        }
        let w: &mut dyn Write = if e.stream == "stderr" {
            &mut err
        } else {
            &mut out
        };
        let _ = if timestamps {
            write!(w, "{} {}", e.time, e.log)
        } else {
            w.write_all(e.log.as_bytes())
        };
    }
    let _ = out.flush();
}

pub fn logs(
    paths: &Paths,
    key: &str,
    follow: bool,
    timestamps: bool,
    tail: Option<usize>,
    since: Option<&str>,
) -> Result<i32> {
    let since = since.map(parse_since).transpose()?.unwrap_or(0);
    let r = match records::find(paths, key)? {
        Found::Ok(r) => r,
        Found::Damaged(d) => bail!(Exit(1, format!("container {key}: {}", d.why))),
    };
    if !r.detached {
        bail!(Exit(
            1,
            format!("container {key} was not started with -d: its output went to the terminal that ran it")
        ));
    }
    let path = r.dir(paths).join(container_log::FILE);
    let (mut entries, mut offset) = container_log::read_from(&path, 0);
    if let Some(n) = tail {
        entries.drain(..entries.len().saturating_sub(n));
    }
    print(&entries, timestamps, since);
    if !follow {
        return Ok(0);
    }
    loop {
        let done = crate::commands::lifecycle::ended(paths, &r);
        let (more, next) = container_log::read_from(&path, offset);
        print(&more, timestamps, since);
        offset = next;
        if done {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_back_as_written() {
        let ns = 1_764_134_755_794_664_673u64;
        let text = isola_container::state::rfc3339(ns / 1_000_000_000, (ns % 1_000_000_000) as u32);
        assert_eq!(parse_rfc3339(&text), Some(ns));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:01Z"), Some(1_000_000_000));
        assert!(parse_since("yesterday").is_err());
        assert!(parse_since("10s").unwrap() < records::now_ns());
    }
}
