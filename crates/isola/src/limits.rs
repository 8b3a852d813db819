//! Parsing `--memory`, `--cpus` and `--pids-limit` the way docker does, with errors that name
//! the flag and the value.

use anyhow::{bail, Result};

/// Docker's floor: a smaller limit cannot even start a process reliably.
pub const MIN_MEMORY: i64 = 6 * 1024 * 1024;
/// Above this a cgroup's limit means nothing (4 EiB, well past any machine).
pub const MAX_MEMORY: i64 = 1 << 62;

/// The process limit a workload gets unless `--pids-limit` says otherwise (podman's default):
/// enough for any ordinary job, and a fork bomb stops there instead of at the host's limit.
pub const DEFAULT_PIDS_LIMIT: i64 = 2048;

pub fn parse_memory(v: &str) -> Result<i64> {
    let s = v.trim().to_ascii_lowercase();
    let (num, mult) = match s.char_indices().last() {
        Some((i, 'b')) => (&s[..i], 1i64),
        Some((i, 'k')) => (&s[..i], 1 << 10),
        Some((i, 'm')) => (&s[..i], 1 << 20),
        Some((i, 'g')) => (&s[..i], 1 << 30),
        Some((i, 't')) => (&s[..i], 1 << 40),
        _ => (s.as_str(), 1),
    };
    // Digits with an optional fraction, as docker takes them: no signs, exponents or "inf".
    let plain = !num.is_empty()
        && num.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && num.bytes().filter(|b| *b == b'.').count() <= 1
        && !num.starts_with('.')
        && !num.ends_with('.');
    let n: f64 = match num.parse() {
        Ok(n) if plain && n > 0.0 => n,
        _ => bail!(
            "--memory {v:?}: expected a positive number of bytes, optionally with b, k, m, g or t"
        ),
    };
    let bytes = n * mult as f64;
    if bytes >= MAX_MEMORY as f64 {
        bail!("--memory {v:?}: more than the largest limit, 4 EiB");
    }
    let bytes = bytes as i64;
    if bytes < MIN_MEMORY {
        bail!("--memory {v:?}: the minimum memory limit is 6m");
    }
    Ok(bytes)
}

/// Where `--cpus` takes its range from: the host's CPUs for a container (a quota of their
/// time), the VMM's vCPU limit for a VM (whole vCPUs, which may outnumber the host's CPUs).
pub enum CpuRange {
    Host,
    Vm(u8),
}

pub fn parse_cpus(v: &str, range: CpuRange) -> Result<f64> {
    let n: f64 = match v.trim().parse() {
        Ok(n) if f64::is_finite(n) => n,
        _ => bail!("--cpus {v:?}: expected a number of CPUs such as 1.5"),
    };
    let (max, what) = match range {
        CpuRange::Host => (
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1) as f64,
            "here",
        ),
        CpuRange::Vm(max) => (f64::from(max), "for a VM"),
    };
    if n < 0.01 || n > max {
        bail!("--cpus {v:?}: the range of CPUs {what} is 0.01 to {max:.2}");
    }
    Ok(n)
}

/// `--pids-limit`: `None` (the flag not given) is `DEFAULT_PIDS_LIMIT`; -1 is no limit.
pub fn parse_pids(v: Option<&str>) -> Result<Option<i64>> {
    let Some(v) = v else {
        return Ok(Some(DEFAULT_PIDS_LIMIT));
    };
    match v.trim().parse::<i64>() {
        Ok(n) if n > 0 => Ok(Some(n)),
        Ok(-1) => Ok(None),
        Ok(_) => {
            bail!("--pids-limit {v:?}: expected a positive number of processes, or -1 for no limit")
        }
        Err(_) => bail!("--pids-limit {v:?}: expected a whole number"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_units() {
        assert_eq!(parse_memory("64m").unwrap(), 64 << 20);
        assert_eq!(parse_memory("1g").unwrap(), 1 << 30);
        assert_eq!(parse_memory("10485760").unwrap(), 10485760);
        assert!(parse_memory("abc").is_err());
        assert!(parse_memory("1k").is_err());
        assert!(parse_memory("-5m").is_err());
        for bad in [
            "1e20",
            "inf",
            "nan",
            "1e3m",
            ".5g",
            "1.g",
            "1.2.3m",
            "99999999t",
        ] {
            assert!(parse_memory(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_memory("1.5g").unwrap(), 3 << 29);
    }

    #[test]
    fn cpus_and_pids() {
        assert_eq!(parse_cpus("0.5", CpuRange::Host).unwrap(), 0.5);
        assert!(parse_cpus("0", CpuRange::Host).is_err());
        assert!(parse_cpus("x", CpuRange::Host).is_err());
        assert_eq!(parse_cpus("16", CpuRange::Vm(16)).unwrap(), 16.0);
        assert!(parse_cpus("16.5", CpuRange::Vm(16)).is_err());
        assert_eq!(parse_pids(Some("10")).unwrap(), Some(10));
        assert_eq!(parse_pids(Some("-1")).unwrap(), None);
        assert_eq!(parse_pids(None).unwrap(), Some(DEFAULT_PIDS_LIMIT));
        assert!(parse_pids(Some("0")).is_err());
        assert!(parse_pids(Some("-2")).is_err());
        assert!(parse_pids(Some("ten")).is_err());
    }
}
