//! The container's /dev: the default device nodes the OCI runtime spec requires, the standard
//! symlinks, and the console (a pty allocated inside the container's own devpts instance).

use nix::sys::stat::{makedev, mknodat, Mode, SFlag};
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

type Result<T> = std::result::Result<T, String>;

const NODES: &[(&str, u64, u64)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

const LINKS: &[(&str, &str)] = &[
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
    ("core", "/proc/kcore"),
];

/// Devices every container may use beyond its bundle's rules (added after them, as runc does):
/// the nodes above, the console, ptmx and the ptys. Making a node (mknod) of any device is
/// allowed; opening one not listed here is not, whatever a layer or the workload put where.
pub fn cgroup_allowlist() -> Vec<LinuxDeviceCgroup> {
    let rule = |typ: LinuxDeviceType, major: Option<i64>, minor: Option<i64>, access: &str| {
        let mut d = LinuxDeviceCgroup::default();
        d.set_allow(true);
        d.set_typ(Some(typ));
        d.set_major(major);
        d.set_minor(minor);
        d.set_access(Some(access.to_string()));
        d
    };
    let c = LinuxDeviceType::C;
    let mut rules = vec![
        rule(c, None, None, "m"),
        rule(LinuxDeviceType::B, None, None, "m"),
    ];
    for (_, major, minor) in NODES {
        rules.push(rule(c, Some(*major as i64), Some(*minor as i64), "rwm"));
    }
    rules.push(rule(c, Some(5), Some(1), "rwm")); // console
    rules.push(rule(c, Some(5), Some(2), "rwm")); // ptmx
    rules.push(rule(c, Some(136), None, "rwm")); // the ptys
    rules
}

/// Creates device nodes and symlinks in the freshly mounted /dev (an O_PATH fd to it).
pub fn populate(dev: &OwnedFd) -> Result<()> {
    // SAFETY: `dev` stays open for the whole function.
    let dir = unsafe { BorrowedFd::borrow_raw(dev.as_raw_fd()) };
    for (name, major, minor) in NODES {
        match mknodat(
            Some(dir.as_raw_fd()),
            *name,
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o666),
            makedev(*major, *minor),
        ) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(format!("mknod /dev/{name}: {e}")),
        }
    }
    for (name, target) in LINKS {
        match nix::unistd::symlinkat(*target, Some(dir.as_raw_fd()), *name) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(format!("symlink /dev/{name}: {e}")),
        }
    }
    Ok(())
}

/// A pty pair made inside the container (after pivot_root, so it lives in the container's
/// devpts): returns (master, slave). The slave is also bound onto /dev/console.
pub fn open_console() -> Result<(OwnedFd, OwnedFd)> {
    let (master, slave, name) = open_pty()?;
    // /dev/console: bind the slave over an empty file, as runc does.
    if Path::new("/dev").is_dir() {
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open("/dev/console");
        nix::mount::mount(
            Some(Path::new(&name)),
            "/dev/console",
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| format!("binding {name} to /dev/console: {e}"))?;
    }
    Ok((master, slave))
}

/// A pty pair from the devpts of the mount namespace we are in: (master, slave, slave's name).
pub fn open_pty() -> Result<(OwnedFd, OwnedFd, String)> {
    use nix::fcntl::OFlag;
    let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .map_err(|e| format!("opening /dev/ptmx: {e}"))?;
    nix::pty::grantpt(&master).map_err(|e| format!("grantpt: {e}"))?;
    nix::pty::unlockpt(&master).map_err(|e| format!("unlockpt: {e}"))?;
    // SAFETY: ptsname is not thread-safe; its callers (the init, exec's child) are
    // single-threaded.
    let name = unsafe { nix::pty::ptsname(&master) }.map_err(|e| format!("ptsname: {e}"))?;
    let slave = nix::fcntl::open(
        Path::new(&name),
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| format!("opening {name}: {e}"))?;
    // SAFETY: `open` returned a fresh descriptor we now own.
    let slave = unsafe { OwnedFd::from_raw_fd(slave) };
    // SAFETY: into_raw_fd hands over the PtyMaster's descriptor, which we then own.
    let master = unsafe { OwnedFd::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(master)) };
    Ok((master, slave, name))
}
