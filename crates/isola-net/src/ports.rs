//! Published ports, docker's `-p [IP:][HOSTPORT:]PORT[/tcp|udp]`: parsed, and claimed on the
//! host — one claim file per protocol and host port (`ipam`'s leases, so concurrent runs never
//! both get a port and a killed owner's claim is swept), after checking that no program of the
//! host has the port bound already.

use crate::ipam::Leases;
use crate::NetError;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// One `-p`, as given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortSpec {
    pub host_ip: Option<Ipv4Addr>,
    /// `None`: a free port the host picks.
    pub host_port: Option<u16>,
    pub port: u16,
    pub proto: Proto,
}

impl std::str::FromStr for PortSpec {
    type Err = NetError;

    fn from_str(s: &str) -> Result<PortSpec, NetError> {
        let bad = |why: &str| {
            NetError::Invalid(format!(
                "-p {s:?}: {why} (expected [IP:][HOSTPORT:]PORT[/tcp|udp])"
            ))
        };
        let (rest, proto) = match s.rsplit_once('/') {
            None => (s, Proto::Tcp),
            Some((r, "tcp")) => (r, Proto::Tcp),
            Some((r, "udp")) => (r, Proto::Udp),
            Some((_, p)) => return Err(bad(&format!("unknown protocol {p:?}"))),
        };
        let port = |p: &str, what: &str| -> Result<u16, NetError> {
            if p.contains('-') {
                return Err(bad("port ranges are not supported"));
            }
            match p.parse::<u16>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(bad(&format!("{what} {p:?} is not a port (1-65535)"))),
            }
        };
        let parts: Vec<&str> = rest.split(':').collect();
        let (ip, host, cont) = match parts.as_slice() {
            [c] => (None, None, *c),
            [h, c] => (None, Some(*h), *c),
            [ip, h, c] => (Some(*ip), Some(*h).filter(|h| !h.is_empty()), *c),
            _ => return Err(bad("too many ':'")),
        };
        let host_ip = ip
            .map(|ip| {
                ip.parse::<Ipv4Addr>()
                    .map_err(|_| bad(&format!("{ip:?} is not an IPv4 address")))
            })
            .transpose()?
            .filter(|ip| !ip.is_unspecified());
        Ok(PortSpec {
            host_ip,
            host_port: host.map(|h| port(h, "host port")).transpose()?,
            port: port(cont, "port")?,
            proto,
        })
    }
}

impl std::fmt::Display for PortSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let ip = self.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
        match self.host_port {
            Some(h) => write!(f, "{ip}:{h}->{}/{}", self.port, self.proto.as_str()),
            None => write!(f, "{ip}:?->{}/{}", self.port, self.proto.as_str()),
        }
    }
}

/// Tries to bind the port as a program of the host would: the way to learn whether one has.
fn bind_free(proto: Proto, ip: Ipv4Addr, port: u16) -> std::io::Result<u16> {
    let at = SocketAddrV4::new(ip, port);
    match proto {
        Proto::Tcp => TcpListener::bind(at)?.local_addr().map(|a| a.port()),
        Proto::Udp => UdpSocket::bind(at)?.local_addr().map(|a| a.port()),
    }
}

/// The host ports isola has handed out: `<run>/ports-tcp/PORT`, `<run>/ports-udp/PORT`.
pub struct PortClaims<'a> {
    run: &'a Path,
}

impl<'a> PortClaims<'a> {
    pub fn new(run: &'a Path) -> PortClaims<'a> {
        PortClaims { run }
    }

    fn of(&self, proto: Proto) -> Leases {
        Leases::new(self.run, &format!("ports-{}", proto.as_str()))
    }

    /// Claims the host port of each spec for `owner` (a free one where none is given); all or
    /// none. Returns the specs with their host ports.
    pub fn claim(&self, specs: &[PortSpec], owner: &str) -> Result<Vec<PortSpec>, NetError> {
        let mut got: Vec<PortSpec> = Vec::new();
        for spec in specs {
            match self.claim_one(spec, owner) {
                Ok(s) => got.push(s),
                Err(e) => {
                    self.release(&got);
                    return Err(e);
                }
            }
        }
        Ok(got)
    }

    fn claim_one(&self, spec: &PortSpec, owner: &str) -> Result<PortSpec, NetError> {
        let ip = spec.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
        let in_use = |port: u16, e: std::io::Error| {
            let proto = spec.proto.as_str();
            NetError::Port(if e.kind() == std::io::ErrorKind::AddrInUse {
                format!("-p {spec}: host port {port}/{proto} on {ip} is already in use")
            } else {
                format!("-p {spec}: cannot listen on {ip}:{port}/{proto}: {e}")
            })
        };
        // Several tries only for a port the host picks, which another program may take first.
        for _ in 0..8 {
            // 0: the kernel picks one.
            let want = spec.host_port.unwrap_or(0);
            let port = bind_free(spec.proto, ip, want).map_err(|e| in_use(want, e))?;
            if self.of(spec.proto).claim(&port.to_string(), owner)? {
                return Ok(PortSpec {
                    host_port: Some(port),
                    ..spec.clone()
                });
            }
            if spec.host_port.is_some() {
                return Err(NetError::Port(format!(
                    "-p {spec}: host port {port}/{} is already published by another workload",
                    spec.proto.as_str()
                )));
            }
        }
        Err(NetError::Port(format!(
            "-p {spec}: no free host port found"
        )))
    }

    /// Gives claimed ports back.
    pub fn release(&self, specs: &[PortSpec]) {
        for s in specs {
            if let Some(p) = s.host_port {
                self.of(s.proto).release_key(&p.to_string());
            }
        }
    }

    /// Whether an owner `pick` picks has a port claimed.
    pub fn held_by(&self, pick: impl Fn(&str) -> bool) -> bool {
        [Proto::Tcp, Proto::Udp]
            .into_iter()
            .any(|proto| self.of(proto).held_by(&pick))
    }

    /// Frees the claims of owners `alive` says are gone.
    pub fn sweep(&self, alive: impl Fn(&str) -> bool) {
        for proto in [Proto::Tcp, Proto::Udp] {
            self.of(proto).sweep(&alive);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_forms_and_names_bad_ones() {
        let p = |s: &str| s.parse::<PortSpec>();
        assert_eq!(
            p("8080:80").unwrap(),
            PortSpec {
                host_ip: None,
                host_port: Some(8080),
                port: 80,
                proto: Proto::Tcp
            }
        );
        assert_eq!(
            p("127.0.0.1:53:5353/udp").unwrap(),
            PortSpec {
                host_ip: Some(Ipv4Addr::LOCALHOST),
                host_port: Some(53),
                port: 5353,
                proto: Proto::Udp
            }
        );
        assert_eq!(p("80").unwrap().host_port, None);
        assert_eq!(p("127.0.0.1::80").unwrap().host_port, None);
        assert_eq!(p("0.0.0.0:1:2").unwrap().host_ip, None);
        for (bad, says) in [
            ("8080:80/sctp", "unknown protocol \"sctp\""),
            ("8080:0", "port \"0\""),
            ("x:80", "host port \"x\""),
            ("99999:80", "host port \"99999\""),
            ("1.2.3:8080:80", "\"1.2.3\" is not an IPv4"),
            ("1:2:3:4", "too many"),
            ("8000-8001:80", "ranges"),
            ("", "port \"\""),
        ] {
            let e = p(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
            assert!(e.contains(&format!("{bad:?}")), "{bad}: {e}");
        }
    }
}
