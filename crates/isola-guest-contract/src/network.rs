//! A VM's place on a network, as the host puts it in the initramfs: the interface's address,
//! prefix, gateway and MAC address (`NETWORK`, one `key value` line each), and the files the
//! workload sees as /etc/hosts and /etc/resolv.conf (`HOSTS`, `RESOLV_CONF`). Guest init
//! configures eth0 (the virtio-net device) from it and puts the files in the workload's root.

use std::net::Ipv4Addr;

pub const NETWORK: &str = "/isola/network";
pub const HOSTS: &str = "/isola/hosts";
pub const RESOLV_CONF: &str = "/isola/resolv.conf";

/// The interface guest init configures.
pub const INTERFACE: &str = "eth0";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestNetwork {
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    pub mac: [u8; 6],
}

impl GuestNetwork {
    pub fn encode(&self) -> String {
        let m = self.mac;
        format!(
            "address {}/{}\ngateway {}\nmac {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}\n",
            self.address, self.prefix, self.gateway, m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }

    pub fn decode(text: &str) -> Result<GuestNetwork, String> {
        let (mut address, mut prefix, mut gateway, mut mac) = (None, None, None, None);
        for line in text.lines() {
            let bad = || format!("network file: bad line {line:?}");
            let (key, value) = line.split_once(' ').ok_or_else(bad)?;
            match key {
                "address" => {
                    let (a, p) = value.split_once('/').ok_or_else(bad)?;
                    address = Some(a.parse().map_err(|_| bad())?);
                    prefix = Some(p.parse::<u8>().ok().filter(|p| *p <= 32).ok_or_else(bad)?);
                }
                "gateway" => gateway = Some(value.parse().map_err(|_| bad())?),
                "mac" => {
                    let bytes: Vec<u8> = value
                        .split(':')
                        .map(|b| u8::from_str_radix(b, 16))
                        .collect::<Result<_, _>>()
                        .map_err(|_| bad())?;
                    mac = Some(<[u8; 6]>::try_from(bytes).map_err(|_| bad())?);
                }
                _ => return Err(bad()),
            }
        }
        match (address, prefix, gateway, mac) {
            (Some(address), Some(prefix), Some(gateway), Some(mac)) => Ok(GuestNetwork {
                address,
                prefix,
                gateway,
                mac,
            }),
            _ => Err(format!("network file: incomplete: {text:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_damage() {
        let n = GuestNetwork {
            address: Ipv4Addr::new(10, 87, 0, 2),
            prefix: 16,
            gateway: Ipv4Addr::new(10, 87, 0, 1),
            mac: [2, 0x42, 10, 87, 0, 2],
        };
        assert_eq!(GuestNetwork::decode(&n.encode()).unwrap(), n);
        for bad in [
            "address 10.87.0.2/33\ngateway 10.87.0.1\nmac 02:42:0a:57:00:02\n",
            "address 10.87.0.2/16\ngateway 10.87.0.1\nmac 02:42:0a:57:00\n",
            "address 10.87.0.2/16\nmac 02:42:0a:57:00:02\n",
            "address 10.87.0.2/16\ngateway x\nmac 02:42:0a:57:00:02\n",
            "route 1\n",
        ] {
            assert!(GuestNetwork::decode(bad).is_err(), "{bad}");
        }
    }
}
