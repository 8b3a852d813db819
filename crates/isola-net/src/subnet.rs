//! IPv4 prefixes (`10.87.0.0/16`): what a network's subnet is.

use crate::NetError;
use std::net::Ipv4Addr;

/// An IPv4 network: its first address and prefix length (host bits zero).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Net {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Ipv4Net {
    /// Bridges need room for a gateway and at least two workloads.
    pub const LONGEST_PREFIX: u8 = 29;
    /// Shorter prefixes than this are refused: one network should not swallow a /8's routes.
    pub const SHORTEST_PREFIX: u8 = 8;

    fn mask(prefix: u8) -> u32 {
        if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(prefix))
        }
    }

    /// The network containing `addr` with `prefix` bits.
    pub fn containing(addr: Ipv4Addr, prefix: u8) -> Ipv4Net {
        Ipv4Net {
            addr: Ipv4Addr::from(u32::from(addr) & Self::mask(prefix)),
            prefix,
        }
    }

    pub fn contains(&self, a: Ipv4Addr) -> bool {
        u32::from(a) & Self::mask(self.prefix) == u32::from(self.addr)
    }

    pub fn overlaps(&self, other: &Ipv4Net) -> bool {
        let p = self.prefix.min(other.prefix);
        Self::containing(self.addr, p) == Self::containing(other.addr, p)
    }

    /// The gateway: the first host address (the bridge's).
    pub fn gateway(&self) -> Ipv4Addr {
        self.host(1).unwrap_or(self.addr)
    }

    /// Host `n` (1 is the first), if the subnet has it (the broadcast address is not a host).
    pub fn host(&self, n: u32) -> Option<Ipv4Addr> {
        let size = 1u64 << (32 - u32::from(self.prefix));
        (n >= 1 && u64::from(n) < size - 1).then(|| Ipv4Addr::from(u32::from(self.addr) + n))
    }
}

impl std::fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl serde::Serialize for Ipv4Net {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Ipv4Net {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Ipv4Net, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl std::str::FromStr for Ipv4Net {
    type Err = NetError;

    /// `A.B.C.D/N` with no host bits set, N from 8 to 29.
    fn from_str(s: &str) -> Result<Ipv4Net, NetError> {
        let bad = |why: &str| NetError::Invalid(format!("subnet {s:?}: {why}"));
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| bad("expected A.B.C.D/N, e.g. 10.90.0.0/24"))?;
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| bad("expected A.B.C.D/N, e.g. 10.90.0.0/24"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| (Self::SHORTEST_PREFIX..=Self::LONGEST_PREFIX).contains(p))
            .ok_or_else(|| {
                bad(&format!(
                    "the prefix length must be {} to {}",
                    Self::SHORTEST_PREFIX,
                    Self::LONGEST_PREFIX
                ))
            })?;
        let net = Ipv4Net::containing(addr, prefix);
        if net.addr != addr {
            return Err(bad(&format!("host bits are set (the network is {net})")));
        }
        Ok(net)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses_with_the_value_named() {
        let n: Ipv4Net = "10.90.0.0/24".parse().unwrap();
        assert_eq!(n.gateway(), Ipv4Addr::new(10, 90, 0, 1));
        assert_eq!(n.host(254), Some(Ipv4Addr::new(10, 90, 0, 254)));
        assert_eq!(n.host(255), None, "the broadcast address");
        for bad in [
            "10.90.0.1/24",
            "10.90.0.0",
            "10.90.0.0/33",
            "10.90.0.0/4",
            "x/24",
            "10.90.0/24",
        ] {
            let e = bad.parse::<Ipv4Net>().unwrap_err().to_string();
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn overlap_is_either_containing_the_other() {
        let a: Ipv4Net = "10.90.0.0/16".parse().unwrap();
        let b: Ipv4Net = "10.90.8.0/24".parse().unwrap();
        let c: Ipv4Net = "10.91.0.0/24".parse().unwrap();
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!a.overlaps(&c) && !c.overlaps(&b));
    }
}
