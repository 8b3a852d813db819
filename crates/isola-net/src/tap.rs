//! A tap device for a VM's network interface: opened on /dev/net/tun as a non-persistent tap
//! (it goes when its last descriptor closes, i.e. with the VMM), without the packet-info
//! prefix and with a 12-byte virtio-net header on every frame (IFF_VNET_HDR and
//! TUNSETVNETHDRSZ: the header VIRTIO_F_VERSION_1 drivers use), non-blocking.

use crate::NetError;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

// <linux/if_tun.h>
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const TUNSETVNETHDRSZ: libc::c_ulong = 0x4004_54d8;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
const IFF_VNET_HDR: libc::c_short = 0x4000;
/// struct virtio_net_hdr_v1.
pub const VNET_HDR_LEN: libc::c_int = 12;

fn err(what: &str) -> NetError {
    NetError::Io(format!("{what}: {}", std::io::Error::last_os_error()))
}

/// Makes tap device `name` in this network namespace; its descriptor.
pub fn open(name: &str) -> Result<OwnedFd, NetError> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(NetError::Invalid(format!(
            "tap name {name:?}: 1-15 characters"
        )));
    }
    // SAFETY: open(2) of a NUL-terminated path; the descriptor is new and ours.
    let fd = unsafe {
        libc::open(
            c"/dev/net/tun".as_ptr(),
            libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(err("/dev/net/tun"));
    }
    // SAFETY: `fd` is new and nobody else owns it.
    let tun = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain data; all zeroes is an empty request.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    req.ifr_ifru.ifru_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
    // SAFETY: TUNSETIFF reads (and updates) the ifreq `req` points to.
    if unsafe { libc::ioctl(tun.as_raw_fd(), TUNSETIFF, &mut req) } != 0 {
        return Err(err(&format!("making tap device {name}")));
    }
    let len: libc::c_int = VNET_HDR_LEN;
    // SAFETY: TUNSETVNETHDRSZ reads the int `len` points to.
    if unsafe { libc::ioctl(tun.as_raw_fd(), TUNSETVNETHDRSZ, &len) } != 0 {
        return Err(err(&format!("{name}: virtio-net header size")));
    }
    Ok(tun)
}
