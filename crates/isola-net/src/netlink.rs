//! A small rtnetlink client (NETLINK_ROUTE): the few requests a bridge network needs — make a
//! bridge or a veth pair (its peer straight into another network namespace), attach a link to
//! a bridge, bring it up, give it an address, add a default route, delete a link. Each request
//! asks for an acknowledgement and its error comes back as the errno the kernel gave.
//!
//! Messages are built as bytes here (header, fixed part, then type-length-value attributes
//! padded to 4 bytes, as <linux/netlink.h> and <linux/rtnetlink.h> lay them out), so no
//! structure is ever reinterpreted from memory.

use crate::NetError;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

// <linux/netlink.h>
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
// <linux/rtnetlink.h>
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_BOOT: u8 = 3;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RTN_UNICAST: u8 = 1;
const RTA_GATEWAY: u16 = 5;
// <linux/if_link.h>, <linux/veth.h>, <linux/if_addr.h>
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MASTER: u16 = 10;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
/// Set on attributes that hold attributes.
const NLA_F_NESTED: u16 = 0x8000;

fn pad4(v: &mut Vec<u8>) {
    v.resize(v.len().next_multiple_of(4), 0);
}

/// One type-length-value attribute, padded.
fn attr(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
    out.extend_from_slice(&((4 + data.len()) as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(data);
    pad4(out);
}

fn name_attr(out: &mut Vec<u8>, name: &str) {
    let mut z = name.as_bytes().to_vec();
    z.push(0);
    attr(out, IFLA_IFNAME, &z);
}

/// An ifinfomsg: family, type, index, flags, change.
fn ifinfo(index: i32, flags: u32, change: u32) -> Vec<u8> {
    let mut v = vec![libc::AF_UNSPEC as u8, 0, 0, 0];
    v.extend_from_slice(&index.to_ne_bytes());
    v.extend_from_slice(&flags.to_ne_bytes());
    v.extend_from_slice(&change.to_ne_bytes());
    v
}

/// A NETLINK_ROUTE socket in the network namespace of the thread that opened it.
pub struct Netlink {
    fd: OwnedFd,
    seq: u32,
}

fn os(what: &str) -> impl FnOnce(std::io::Error) -> NetError + '_ {
    move |e| NetError::Io(format!("{what}: {e}"))
}

impl Netlink {
    pub fn open() -> Result<Netlink, NetError> {
        // SAFETY: socket(2) with constant arguments; the result is checked and owned at once.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(os("netlink socket")(std::io::Error::last_os_error()));
        }
        // SAFETY: fd is a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Netlink { fd, seq: 0 })
    }

    /// Sends one request and waits for its acknowledgement.
    fn request(&mut self, kind: u16, flags: u16, body: &[u8], what: &str) -> Result<(), NetError> {
        self.seq += 1;
        let mut msg = Vec::with_capacity(16 + body.len());
        msg.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
        msg.extend_from_slice(&kind.to_ne_bytes());
        msg.extend_from_slice(&(flags | NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        msg.extend_from_slice(&self.seq.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend_from_slice(body);
        // SAFETY: send(2) of our own buffer on our socket (the kernel is the default peer).
        let n = unsafe { libc::send(self.fd.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
        if n < 0 {
            return Err(os(what)(std::io::Error::last_os_error()));
        }
        let mut buf = vec![0u8; 8192];
        loop {
            // SAFETY: recv(2) into our own buffer.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(os(what)(e));
            }
            let mut at = 0;
            while at + 16 <= n as usize {
                let h = &buf[at..];
                let len = u32::from_ne_bytes([h[0], h[1], h[2], h[3]]) as usize;
                let typ = u16::from_ne_bytes([h[4], h[5]]);
                let seq = u32::from_ne_bytes([h[8], h[9], h[10], h[11]]);
                if len < 16 || at + len > n as usize {
                    return Err(NetError::Io(format!("{what}: a truncated netlink reply")));
                }
                if typ == NLMSG_ERROR && seq == self.seq && len >= 20 {
                    let code = i32::from_ne_bytes([h[16], h[17], h[18], h[19]]);
                    return match code {
                        0 => Ok(()),
                        e => Err(os(what)(std::io::Error::from_raw_os_error(-e))),
                    };
                }
                at += len.next_multiple_of(4);
            }
        }
    }

    /// A new bridge `name` (down).
    pub fn add_bridge(&mut self, name: &str) -> Result<(), NetError> {
        let mut body = ifinfo(0, 0, 0);
        name_attr(&mut body, name);
        let mut info = Vec::new();
        attr(&mut info, IFLA_INFO_KIND, b"bridge");
        attr(&mut body, IFLA_LINKINFO | NLA_F_NESTED, &info);
        self.request(
            RTM_NEWLINK,
            NLM_F_CREATE | NLM_F_EXCL,
            &body,
            &format!("creating bridge {name}"),
        )
    }

    /// A new veth pair: `name` here, `peer` in the network namespace `peer_netns` (a
    /// descriptor of it, e.g. /proc/PID/ns/net) or here, with MAC address `peer_mac` if given.
    pub fn add_veth(
        &mut self,
        name: &str,
        peer: &str,
        peer_netns: Option<RawFd>,
        peer_mac: Option<[u8; 6]>,
    ) -> Result<(), NetError> {
        let mut peer_msg = ifinfo(0, 0, 0);
        name_attr(&mut peer_msg, peer);
        if let Some(mac) = peer_mac {
            attr(&mut peer_msg, IFLA_ADDRESS, &mac);
        }
        if let Some(fd) = peer_netns {
            attr(&mut peer_msg, IFLA_NET_NS_FD, &(fd as u32).to_ne_bytes());
        }
        let mut data = Vec::new();
        attr(&mut data, VETH_INFO_PEER | NLA_F_NESTED, &peer_msg);
        let mut info = Vec::new();
        attr(&mut info, IFLA_INFO_KIND, b"veth");
        attr(&mut info, IFLA_INFO_DATA | NLA_F_NESTED, &data);
        let mut body = ifinfo(0, 0, 0);
        name_attr(&mut body, name);
        attr(&mut body, IFLA_LINKINFO | NLA_F_NESTED, &info);
        self.request(
            RTM_NEWLINK,
            NLM_F_CREATE | NLM_F_EXCL,
            &body,
            &format!("creating veth pair {name}/{peer}"),
        )
    }

    /// Attaches `link` to bridge `master`.
    pub fn set_master(&mut self, link: &str, master: &str) -> Result<(), NetError> {
        let (index, master_index) = (index(link)?, index(master)?);
        let mut body = ifinfo(index, 0, 0);
        attr(&mut body, IFLA_MASTER, &master_index.to_ne_bytes());
        self.request(
            RTM_NEWLINK,
            0,
            &body,
            &format!("attaching {link} to {master}"),
        )
    }

    /// Brings `link` up.
    pub fn set_up(&mut self, link: &str) -> Result<(), NetError> {
        let up = libc::IFF_UP as u32;
        let body = ifinfo(index(link)?, up, up);
        self.request(RTM_NEWLINK, 0, &body, &format!("bringing {link} up"))
    }

    /// Gives `link` the address `addr/prefix` (its subnet's route comes with it).
    pub fn add_address(&mut self, link: &str, addr: Ipv4Addr, prefix: u8) -> Result<(), NetError> {
        let mut body = vec![libc::AF_INET as u8, prefix, 0, RT_SCOPE_UNIVERSE];
        body.extend_from_slice(&(index(link)? as u32).to_ne_bytes());
        attr(&mut body, IFA_LOCAL, &addr.octets());
        attr(&mut body, IFA_ADDRESS, &addr.octets());
        self.request(
            RTM_NEWADDR,
            NLM_F_CREATE | NLM_F_EXCL,
            &body,
            &format!("adding {addr}/{prefix} to {link}"),
        )
    }

    /// The default route, through `gateway`.
    pub fn add_default_route(&mut self, gateway: Ipv4Addr) -> Result<(), NetError> {
        let mut body = vec![
            libc::AF_INET as u8,
            0, // dst_len: the default route
            0,
            0,
            RT_TABLE_MAIN,
            RTPROT_BOOT,
            RT_SCOPE_UNIVERSE,
            RTN_UNICAST,
        ];
        body.extend_from_slice(&0u32.to_ne_bytes());
        attr(&mut body, RTA_GATEWAY, &gateway.octets());
        self.request(
            RTM_NEWROUTE,
            NLM_F_CREATE | NLM_F_EXCL,
            &body,
            &format!("adding the default route via {gateway}"),
        )
    }

    /// Deletes `link` (a veth's peer goes with it).
    pub fn delete_link(&mut self, link: &str) -> Result<(), NetError> {
        let body = ifinfo(index(link)?, 0, 0);
        self.request(RTM_DELLINK, 0, &body, &format!("deleting {link}"))
    }
}

/// The index of `link` in this thread's network namespace.
pub fn index(link: &str) -> Result<i32, NetError> {
    let name = std::ffi::CString::new(link)
        .map_err(|_| NetError::Invalid(format!("interface name {link:?}")))?;
    // SAFETY: if_nametoindex reads a NUL-terminated string we own.
    match unsafe { libc::if_nametoindex(name.as_ptr()) } {
        0 => Err(NetError::NotFound(format!("interface {link}"))),
        i => Ok(i as i32),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// Runs `f` on a thread of its own in a new network namespace (only that thread moves).
    fn in_new_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::spawn(move || {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare -n (root)");
            f()
        })
        .join()
        .unwrap()
    }

    #[test]
    fn a_bridge_and_a_veth_into_another_namespace_carry_a_connection() {
        // "host": a bridge 10.91.0.1/24; "container": eth0 10.91.0.2/24, default route via
        // the bridge; a TCP connection from the container to the host's address.
        in_new_netns(|| {
            let (tx, rx) = std::sync::mpsc::channel::<OwnedFd>();
            let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
            let container = std::thread::spawn(move || {
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                let ns = std::fs::File::open("/proc/thread-self/ns/net").unwrap();
                tx.send(OwnedFd::from(ns)).unwrap();
                go_rx.recv().unwrap();
                let mut nl = Netlink::open().unwrap();
                nl.set_up("lo").unwrap();
                nl.set_up("eth0").unwrap();
                nl.add_address("eth0", Ipv4Addr::new(10, 91, 0, 2), 24)
                    .unwrap();
                nl.add_default_route(Ipv4Addr::new(10, 91, 0, 1)).unwrap();
                let mut s = std::net::TcpStream::connect("10.91.0.1:7070").unwrap();
                s.write_all(b"across the bridge").unwrap();
            });
            let ns = rx.recv().unwrap();
            let mut nl = Netlink::open().unwrap();
            nl.add_bridge("br-test").unwrap();
            let again = nl.add_bridge("br-test").unwrap_err().to_string();
            assert!(
                again.contains("br-test") && again.contains("exists"),
                "{again}"
            );
            nl.add_address("br-test", Ipv4Addr::new(10, 91, 0, 1), 24)
                .unwrap();
            nl.set_up("br-test").unwrap();
            nl.add_veth("veth-test", "eth0", Some(ns.as_raw_fd()), None)
                .unwrap();
            assert!(index("eth0").is_err(), "the peer is in the other namespace");
            nl.set_master("veth-test", "br-test").unwrap();
            nl.set_up("veth-test").unwrap();
            // This thread's own view (/proc/self would be the test process's leader's).
            let routes = std::fs::read_to_string("/proc/thread-self/net/route").unwrap();
            assert!(routes.contains("br-test"), "{routes}");
            let listener = std::net::TcpListener::bind("10.91.0.1:7070").unwrap();
            go_tx.send(()).unwrap();
            let (mut s, peer) = listener.accept().unwrap();
            let mut got = String::new();
            s.read_to_string(&mut got).unwrap();
            container.join().unwrap();
            assert_eq!(got, "across the bridge");
            assert_eq!(peer.ip().to_string(), "10.91.0.2");
            nl.delete_link("veth-test").unwrap();
            assert!(index("veth-test").is_err());
            nl.delete_link("br-test").unwrap();
        });
    }
}
