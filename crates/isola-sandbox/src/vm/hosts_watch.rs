//! A VM's /etc/hosts kept current. On a user-defined network isola edits each workload's hosts
//! file (a file of its bundle) as peers join and leave; a container has that very file bound
//! in, a VM's guest has a copy. So the VM's front end watches the file (inotify: a write
//! closed) and sends the guest each new version whole (`ToGuest::Hosts`).

use crate::Error;
use isola_guest_contract::frame::{Frame, ToGuest, MAX_PAYLOAD};
use isola_vmm::host_relay::Sideband;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

pub struct HostsWatch {
    inotify: OwnedFd,
    path: PathBuf,
    /// What the guest has now.
    sent: Vec<u8>,
}

impl HostsWatch {
    /// Starts watching `path`, then reads it: the watch and what it returns (the guest's
    /// first copy), with no change in between missed.
    pub fn start(path: &Path) -> Result<(HostsWatch, Vec<u8>), Error> {
        let failed = |e: std::io::Error| Error::Io(format!("{}: {e}", path.display()));
        // SAFETY: inotify_init1 takes no pointers; the new descriptor is owned right away.
        let inotify = unsafe {
            let fd = libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC);
            if fd < 0 {
                return Err(failed(std::io::Error::last_os_error()));
            }
            OwnedFd::from_raw_fd(fd)
        };
        let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
            .map_err(|_| Error::Io(format!("{}: a NUL in the path", path.display())))?;
        // SAFETY: a NUL-terminated path and our own inotify descriptor.
        let wd = unsafe {
            libc::inotify_add_watch(inotify.as_raw_fd(), c_path.as_ptr(), libc::IN_CLOSE_WRITE)
        };
        if wd < 0 {
            return Err(failed(std::io::Error::last_os_error()));
        }
        let hosts = std::fs::read(path).map_err(failed)?;
        let watch = HostsWatch {
            inotify,
            path: path.to_path_buf(),
            sent: hosts.clone(),
        };
        Ok((watch, hosts))
    }
}

impl Sideband for HostsWatch {
    fn fds(&self) -> Vec<RawFd> {
        vec![self.inotify.as_raw_fd()]
    }

    fn ready(&mut self, _fd: RawFd, to_guest: &mut Vec<u8>) {
        // The events only say "changed": drained, then the file read once.
        let mut buf = [0u8; 4096];
        // SAFETY: read into a local buffer of its own length from our non-blocking descriptor.
        while unsafe { libc::read(self.inotify.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) }
            > 0
        {}
        let Ok(now) = std::fs::read(&self.path) else {
            return; // its workload is ending (the bundle going): the guest keeps what it has
        };
        if now != self.sent && now.len() <= MAX_PAYLOAD {
            to_guest.extend(ToGuest::Hosts(now.clone()).encode());
            self.sent = now;
        }
    }
}
