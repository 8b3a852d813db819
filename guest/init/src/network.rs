//! The VM's network, when the host put it on one (see isola-guest-contract's `network`):
//! loopback up, eth0 (the virtio-net device) given its address and brought up, a default route
//! through the gateway — the same interface, address and route a container on that network
//! gets from the host through its veth.

use isola_guest_contract::network::{self, GuestNetwork, INTERFACE};
use isola_guest_contract::GuestError;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// What goes in the workload's root: /etc/hosts and /etc/resolv.conf, as the host wrote them.
pub struct EtcFiles {
    pub hosts: Vec<u8>,
    pub resolv_conf: Vec<u8>,
}

fn sockaddr(a: Ipv4Addr) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(a).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr are both 16 bytes, and any bytes are a valid sockaddr.
    unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

fn ifreq(name: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain data; all zeroes is a valid (empty) request.
    let mut r: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in r.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    r
}

fn ioctl<T>(sock: &OwnedFd, request: libc::c_ulong, arg: &mut T, what: &str) -> Result<(), String> {
    // SAFETY: each request used here reads (or fills) the one structure `arg` points to, whose
    // type is the one that request takes (ifreq or rtentry).
    if unsafe { libc::ioctl(sock.as_raw_fd(), request, arg as *mut T) } != 0 {
        return Err(format!("{what}: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

fn up(sock: &OwnedFd, name: &str) -> Result<(), String> {
    let mut r = ifreq(name);
    ioctl(sock, libc::SIOCGIFFLAGS, &mut r, &format!("{name}: flags"))?;
    // SAFETY: SIOCGIFFLAGS filled the union's flags member.
    unsafe { r.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    ioctl(sock, libc::SIOCSIFFLAGS, &mut r, &format!("{name}: up"))
}

fn configure(n: &GuestNetwork) -> Result<(), String> {
    // SAFETY: socket(2) takes no pointers; the descriptor is new and ours.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(format!("socket: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: `fd` is a new descriptor nobody else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    up(&sock, "lo")?;
    let mut r = ifreq(INTERFACE);
    r.ifr_ifru.ifru_addr = sockaddr(n.address);
    ioctl(
        &sock,
        libc::SIOCSIFADDR,
        &mut r,
        &format!("{INTERFACE}: address {}", n.address),
    )?;
    let mask = if n.prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(n.prefix))
    };
    r.ifr_ifru.ifru_netmask = sockaddr(Ipv4Addr::from(mask));
    ioctl(
        &sock,
        libc::SIOCSIFNETMASK,
        &mut r,
        &format!("{INTERFACE}: prefix /{}", n.prefix),
    )?;
    up(&sock, INTERFACE)?;
    // SAFETY: rtentry is plain data; all zeroes is an empty route.
    let mut route: libc::rtentry = unsafe { std::mem::zeroed() };
    route.rt_dst = sockaddr(Ipv4Addr::UNSPECIFIED);
    route.rt_genmask = sockaddr(Ipv4Addr::UNSPECIFIED);
    route.rt_gateway = sockaddr(n.gateway);
    route.rt_flags = libc::RTF_UP | libc::RTF_GATEWAY;
    ioctl(
        &sock,
        libc::SIOCADDRT,
        &mut route,
        &format!("default route via {}", n.gateway),
    )
}

/// Configures the network the host gave (none: nothing to do); the files for the workload's
/// root. Read before the image's root replaces the initramfs.
pub fn set_up() -> Result<Option<EtcFiles>, GuestError> {
    let text = match std::fs::read_to_string(network::NETWORK) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(GuestError::setup(format!("{}: {e}", network::NETWORK))),
    };
    let n = GuestNetwork::decode(&text).map_err(GuestError::setup)?;
    configure(&n).map_err(|e| GuestError::setup(format!("the network: {e}")))?;
    let read = |p: &str| std::fs::read(p).map_err(|e| GuestError::setup(format!("{p}: {e}")));
    Ok(Some(EtcFiles {
        hosts: read(network::HOSTS)?,
        resolv_conf: read(network::RESOLV_CONF)?,
    }))
}

/// Puts the files in the image's root at `root` (mounted, writable): whatever the image had
/// there (a file, a symlink) is replaced, never written through.
pub fn place(root: &str, files: &EtcFiles) -> Result<(), GuestError> {
    let etc = format!("{root}/etc");
    if std::fs::symlink_metadata(&etc).is_ok_and(|m| m.file_type().is_symlink()) {
        // Written through, the files would land wherever it points, outside the image.
        return Err(GuestError::setup(
            "the image's /etc is a symbolic link: its network files cannot be placed",
        ));
    }
    std::fs::create_dir_all(&etc).map_err(|e| GuestError::setup(format!("{etc}: {e}")))?;
    for (name, body) in [("hosts", &files.hosts), ("resolv.conf", &files.resolv_conf)] {
        let path = format!("{etc}/{name}");
        let _ = std::fs::remove_file(&path);
        std::fs::write(&path, body).map_err(|e| GuestError::setup(format!("{path}: {e}")))?;
    }
    Ok(())
}

/// A new /etc/hosts from the host (a peer joined or left the network) in place of the
/// workload's (init's root is the workload's): written beside it and renamed over it, so a
/// reader sees the old file or the new one whole; `/etc` opened without following a symbolic
/// link and the new file made afresh (what the workload left under its name is removed first),
/// so nothing the workload made is written through.
pub fn replace_hosts(body: &[u8]) -> Result<(), String> {
    const TEMP: &std::ffi::CStr = c".hosts.isola";
    let etc = crate::setup::open_raw(
        "/etc",
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
    )?;
    // SAFETY: unlinkat/openat/renameat with a directory descriptor we own and NUL-terminated
    // names; the new descriptor is owned right away.
    let file = unsafe {
        libc::unlinkat(etc.as_raw_fd(), TEMP.as_ptr(), 0);
        let fd = libc::openat(
            etc.as_raw_fd(),
            TEMP.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0o644,
        );
        if fd < 0 {
            return Err(format!(
                "/etc/.hosts.isola: {}",
                std::io::Error::last_os_error()
            ));
        }
        std::fs::File::from(OwnedFd::from_raw_fd(fd))
    };
    std::io::Write::write_all(&mut &file, body).map_err(|e| format!("/etc/.hosts.isola: {e}"))?;
    drop(file);
    // SAFETY: as above.
    if unsafe {
        libc::renameat(
            etc.as_raw_fd(),
            TEMP.as_ptr(),
            etc.as_raw_fd(),
            c"hosts".as_ptr(),
        )
    } != 0
    {
        return Err(format!(
            "renaming onto /etc/hosts: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}
