//! The guest's side of the machine: kernel filesystems, the channels to the host (UARTs in raw
//! mode), switching to the image's root, the boot timer, and the way out (reset).

use crate::network::EtcFiles;
use isola_guest_contract::boot::{self, Phase, BOOT_TIMER_PORT};
use isola_guest_contract::GuestError;
use isola_process::Plan;
use std::ffi::CString;
use std::os::fd::{FromRawFd, OwnedFd};

/// Writes a phase byte to the boot-timer port.
pub fn mark(phase: Phase) {
    let phase = phase as u8;
    // SAFETY: ioperm grants this process (PID 1, root) access to one port; the outb that
    // follows writes one byte to it, which the VMM traps. Nothing in memory is touched.
    unsafe {
        if libc::ioperm(BOOT_TIMER_PORT as libc::c_ulong, 1, 1) == 0 {
            std::arch::asm!("out dx, al", in("dx") BOOT_TIMER_PORT, in("al") phase, options(nomem, nostack));
        }
    }
}

fn c(s: &str) -> CString {
    CString::new(s).unwrap_or_default()
}

pub fn mount(
    src: &str,
    target: &str,
    fstype: &str,
    flags: libc::c_ulong,
    data: &str,
) -> Result<(), String> {
    let _ = std::fs::create_dir_all(target);
    let data = c(data);
    // SAFETY: mount(2) with NUL-terminated strings that outlive the call.
    let r = unsafe {
        libc::mount(
            c(src).as_ptr(),
            c(target).as_ptr(),
            c(fstype).as_ptr(),
            flags,
            data.as_ptr().cast(),
        )
    };
    if r != 0 {
        return Err(format!(
            "mount {fstype} on {target}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

pub fn mount_kernel_filesystems() -> Result<(), String> {
    mount("proc", "/proc", "proc", 0, "")?;
    mount("sysfs", "/sys", "sysfs", 0, "")?;
    mount("devtmpfs", "/dev", "devtmpfs", 0, "")
}

/// Whether the kernel command line holds `flag` (isola passes per-run switches there).
pub fn kernel_flag(flag: &str) -> bool {
    std::fs::read_to_string("/proc/cmdline")
        .map(|c| c.split_whitespace().any(|w| w == flag))
        .unwrap_or(false)
}

/// The workload's process as the host resolved it from config.json.
pub fn read_plan() -> Result<Plan, String> {
    let text =
        std::fs::read_to_string(boot::PROCESS).map_err(|e| format!("{}: {e}", boot::PROCESS))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", boot::PROCESS))
}

pub fn open_raw(path: &str, flags: libc::c_int) -> Result<OwnedFd, String> {
    // SAFETY: open(2) of a NUL-terminated path; the fd is owned below.
    let fd = unsafe { libc::open(c(path).as_ptr(), flags | libc::O_NOCTTY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(format!("{path}: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: termios is a plain struct filled by tcgetattr; cfmakeraw edits it in place.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(fd, &mut t) == 0 {
            libc::cfmakeraw(&mut t);
            libc::tcsetattr(fd, libc::TCSANOW, &t);
        }
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// The image's root filesystem: the read-only disk (virtio-blk, /dev/vda) as the lower layer
/// of an overlay whose upper layer is a tmpfs, so the workload may write and nothing it writes
/// outlives the VM — as in container isolation, where the upper layer is dropped with the
/// container.
fn mount_root_disk(root: &str) -> Result<(), GuestError> {
    let ro = libc::MS_RDONLY | libc::MS_NODEV;
    mount("/dev/vda", "/isola/lower", "ext4", ro, "").map_err(|e| {
        GuestError::root_disk(format!("the root disk image cannot be mounted: {e}"))
    })?;
    mount("tmpfs", "/isola/rw", "tmpfs", 0, "mode=0755")?;
    for d in ["/isola/rw/upper", "/isola/rw/work"] {
        std::fs::create_dir_all(d).map_err(|e| format!("{d}: {e}"))?;
    }
    mount(
        "overlay",
        root,
        "overlay",
        0,
        "lowerdir=/isola/lower,upperdir=/isola/rw/upper,workdir=/isola/rw/work",
    )?;
    Ok(())
}

/// Makes the image's root filesystem the root (with the network's /etc files, when the VM is
/// on a network, and the workload's mounts): kernel filesystems inside it, then the
/// switch_root dance (move the mount onto /, chroot into it).
pub fn enter_rootfs(
    plan: &Plan,
    etc_files: Option<&EtcFiles>,
    mounts: &[isola_guest_contract::mounts::GuestMount],
) -> Result<(), GuestError> {
    let root = "/isola/rootfs";
    mount_root_disk(root)?;
    if let Some(files) = etc_files {
        crate::network::place(root, files)?;
    }
    crate::mounts::mount_all(root, mounts)?;
    // A FROM-scratch image has no mount points: make them in the writable layer, as a
    // container runtime does.
    for d in ["proc", "sys", "dev"] {
        let p = format!("{root}/{d}");
        std::fs::create_dir_all(&p)
            .map_err(|e| format!("creating {d} in the image's root: {e}"))?;
    }
    // /proc is mounted by the workload itself, inside its own PID namespace (process.rs).
    mount(
        "sysfs",
        &format!("{root}/sys"),
        "sysfs",
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC | libc::MS_RDONLY,
        "",
    )?;
    mount(
        "devtmpfs",
        &format!("{root}/dev"),
        "devtmpfs",
        libc::MS_NOSUID,
        "",
    )?;
    let _ = mount(
        "devpts",
        &format!("{root}/dev/pts"),
        "devpts",
        libc::MS_NOSUID | libc::MS_NOEXEC,
        "newinstance,ptmxmode=0666,mode=0620",
    );
    let _ = mount(
        "tmpfs",
        &format!("{root}/dev/shm"),
        "tmpfs",
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        "mode=1777",
    );
    crate::mounts::mount_tiny_init(root, mounts)?;
    // SAFETY: chdir/mount/chroot with NUL-terminated paths; the process is single-threaded.
    unsafe {
        if libc::chdir(c(root).as_ptr()) != 0
            || libc::mount(
                c(".").as_ptr(),
                c("/").as_ptr(),
                std::ptr::null(),
                libc::MS_MOVE,
                std::ptr::null(),
            ) != 0
            || libc::chroot(c(".").as_ptr()) != 0
            || libc::chdir(c("/").as_ptr()) != 0
        {
            return Err(GuestError::setup(format!(
                "switching root to {root}: {}",
                std::io::Error::last_os_error()
            )));
        }
    }
    if plan.readonly_root {
        // --read-only: the root mount alone, once everything is in place; /dev, the tmpfs and
        // volume mounts stay as they are, as in a container.
        let flags = libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY;
        mount("", "/", "", flags, "")
            .map_err(|e| GuestError::setup(format!("--read-only: {e}")))?;
    }
    if let Some(h) = plan.hostname.as_deref() {
        // SAFETY: sethostname reads `h.len()` bytes.
        unsafe { libc::sethostname(h.as_ptr().cast(), h.len()) };
    }
    Ok(())
}

/// A line on the kernel console (ttyS0), for --debug and failure reports.
pub fn console(text: &str) {
    if let Ok(fd) = open_raw("/dev/ttyS0", libc::O_WRONLY) {
        let mut f = std::fs::File::from(fd);
        let _ = std::io::Write::write_all(&mut f, text.as_bytes());
    }
}

/// Resets the machine: the VMM sees it and ends the VM.
pub fn power_off() -> ! {
    // SAFETY: sync and reboot(2) take no pointers; PID 1 may reboot.
    unsafe {
        libc::sync();
        libc::reboot(libc::RB_AUTOBOOT);
        libc::_exit(0)
    }
}
