//! `--restart no|on-failure[:N]|always|unless-stopped`: whether a workload's monitor starts it
//! again when it ends, and after how long (docker's rules: a workload stopped by `isola stop`
//! or `kill` stays stopped; the wait doubles from 100 ms, up to a minute, and starts over once
//! a run lasted 10 seconds).

use anyhow::{bail, Result};
use std::time::Duration;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RestartPolicy {
    #[default]
    No,
    /// Restart after a non-zero exit, at most `max` times if given.
    OnFailure {
        max: Option<u32>,
    },
    Always,
    /// As `Always` here: isola has no daemon whose restart would bring stopped ones back.
    UnlessStopped,
}

impl std::str::FromStr for RestartPolicy {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.split_once(':') {
            None if s == "no" => RestartPolicy::No,
            None if s == "always" => RestartPolicy::Always,
            None if s == "unless-stopped" => RestartPolicy::UnlessStopped,
            None if s == "on-failure" => RestartPolicy::OnFailure { max: None },
            Some(("on-failure", n)) => match n.parse::<u32>() {
                Ok(max) => RestartPolicy::OnFailure { max: Some(max) },
                Err(_) => bail!("--restart {s:?}: the count after on-failure: must be a number"),
            },
            Some((p @ ("no" | "always" | "unless-stopped"), _)) => {
                bail!("--restart {s:?}: only on-failure takes a count, not {p}")
            }
            _ => bail!("--restart {s:?}: expected no, on-failure[:N], always or unless-stopped"),
        })
    }
}

impl std::fmt::Display for RestartPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RestartPolicy::No => f.write_str("no"),
            RestartPolicy::OnFailure { max: None } => f.write_str("on-failure"),
            RestartPolicy::OnFailure { max: Some(n) } => write!(f, "on-failure:{n}"),
            RestartPolicy::Always => f.write_str("always"),
            RestartPolicy::UnlessStopped => f.write_str("unless-stopped"),
        }
    }
}

impl RestartPolicy {
    /// docker's `HostConfig.RestartPolicy`: its name and maximum retry count.
    pub fn name_and_max(&self) -> (&'static str, u32) {
        match self {
            RestartPolicy::No => ("no", 0),
            RestartPolicy::OnFailure { max } => ("on-failure", max.unwrap_or(0)),
            RestartPolicy::Always => ("always", 0),
            RestartPolicy::UnlessStopped => ("unless-stopped", 0),
        }
    }

    /// Whether a workload that ended with `code`, restarted `restarts` times so far, starts
    /// again. `stopped`: the user stopped it.
    pub fn restarts(&self, code: i32, restarts: u32, stopped: bool) -> bool {
        if stopped {
            return false;
        }
        match self {
            RestartPolicy::No => false,
            RestartPolicy::OnFailure { max } => code != 0 && max.is_none_or(|m| restarts < m),
            RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
        }
    }
}

/// How long to wait before restart number `streak + 1` of a run of quick failures.
pub fn delay(streak: u32) -> Duration {
    Duration::from_millis(100u64 << streak.min(10)).min(Duration::from_secs(60))
}

/// A run at least this long starts the delays over.
pub const STEADY: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_forms_and_names_bad_ones() {
        for s in [
            "no",
            "always",
            "unless-stopped",
            "on-failure",
            "on-failure:3",
        ] {
            assert_eq!(s.parse::<RestartPolicy>().unwrap().to_string(), s);
        }
        for bad in ["sometimes", "on-failure:x", "always:3", ""] {
            let e = bad.parse::<RestartPolicy>().unwrap_err().to_string();
            assert!(e.contains("--restart"), "{e}");
        }
    }

    #[test]
    fn decides_as_docker() {
        let of = |max| RestartPolicy::OnFailure { max };
        assert!(!RestartPolicy::No.restarts(1, 0, false));
        assert!(!of(None).restarts(0, 0, false));
        assert!(of(None).restarts(3, 100, false));
        assert!(of(Some(2)).restarts(3, 1, false));
        assert!(!of(Some(2)).restarts(3, 2, false));
        assert!(RestartPolicy::Always.restarts(0, 7, false));
        assert!(!RestartPolicy::Always.restarts(0, 0, true));
        assert_eq!(delay(0), Duration::from_millis(100));
        assert_eq!(delay(3), Duration::from_millis(800));
        assert_eq!(delay(30), Duration::from_secs(60));
    }
}
