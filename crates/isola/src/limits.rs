//! Parsing `--memory`, `--cpus` and `--pids-limit` the way docker does, with errors that name
//! the flag and the value.

use anyhow::{bail, Result};

/// Docker's floor: a smaller limit cannot even start a process reliably.
pub const MIN_MEMORY: i64 = 6 * 1024 * 1024;

pub fn parse_memory(v: &str) -> Result<i64> {
    let s = v.trim().to_ascii_lowercase();
    let (num, mult) = match s.char_indices().last() {
        Some((i, 'b')) => (&s[..i], 1i64),
        Some((i, 'k')) => (&s[..i], 1 << 10),
        Some((i, 'm')) => (&s[..i], 1 << 20),
        Some((i, 'g')) => (&s[..i], 1 << 30),
        _ => (s.as_str(), 1),
    };
    let n: f64 = match num.parse() {
        Ok(n) if n > 0.0 && f64::is_finite(n) => n,
        _ => bail!(
            "--memory {v:?}: expected a positive number of bytes, optionally with b, k, m or g"
        ),
    };
    let bytes = (n * mult as f64) as i64;
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

/// `None` = unlimited.
pub fn parse_pids(v: &str) -> Result<Option<i64>> {
    match v.trim().parse::<i64>() {
        Ok(n) if n > 0 => Ok(Some(n)),
        Ok(_) => Ok(None),
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
    }

    #[test]
    fn cpus_and_pids() {
        assert_eq!(parse_cpus("0.5", CpuRange::Host).unwrap(), 0.5);
        assert!(parse_cpus("0", CpuRange::Host).is_err());
        assert!(parse_cpus("x", CpuRange::Host).is_err());
        assert_eq!(parse_cpus("16", CpuRange::Vm(16)).unwrap(), 16.0);
        assert!(parse_cpus("16.5", CpuRange::Vm(16)).is_err());
        assert_eq!(parse_pids("10").unwrap(), Some(10));
        assert_eq!(parse_pids("-1").unwrap(), None);
        assert!(parse_pids("ten").is_err());
    }
}
