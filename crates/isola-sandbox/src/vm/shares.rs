//! A VM workload's mounts, from its bundle (the same `mounts` a container gets): bind mounts of
//! host directories become subdirectories of one virtio-fs device, served by QEMU's virtiofsd
//! (a vhost-user back end, in its own namespace sandbox) that lives as long as the VM; tmpfs
//! mounts are made by guest init. What a VM has in its own way (/proc, /dev, /sys, its network
//! files) and binds of single files are not carried over.
//!
//! virtiofsd exports one directory: a tmpfs holding `0`, `1`, ... with each share bound on
//! its number (read-only recursively for `ro`, so the back end itself cannot write there),
//! made in a mount namespace of virtiofsd's own — nothing is mounted on the host. The front end
//! listens, connects and only then starts virtiofsd on the listening socket, so it never waits
//! for a peer that is not coming; once the VMM's end closes (the VM ended, or isola died and
//! the VMM with it), virtiofsd exits.

use crate::Error;
use isola_guest_contract::mounts::GuestMount;
use oci_spec::runtime::Spec;
use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Debian's virtiofsd (package qemu-system-common); `ISOLA_VIRTIOFSD` names another.
const VIRTIOFSD: &str = "/usr/lib/qemu/virtiofsd";

/// A host directory for the guest.
pub struct Share {
    pub source: PathBuf,
    pub read_only: bool,
}

/// Mounts a VM has of its own: not carried over from the bundle.
const OWN: &[&str] = &[
    "/proc",
    "/dev",
    "/dev/pts",
    "/dev/shm",
    "/dev/mqueue",
    "/sys",
];

/// The bundle's mounts as the guest takes them, and the shares behind them.
pub fn from_spec(spec: &Spec) -> (Vec<GuestMount>, Vec<Share>) {
    let (mut mounts, mut shares) = (Vec::new(), Vec::new());
    for m in spec.mounts().as_deref().unwrap_or_default() {
        let dest = m.destination().to_string_lossy().into_owned();
        let typ = m.typ().as_deref().unwrap_or("");
        if OWN.contains(&dest.as_str()) || dest.starts_with("/sys/") {
            continue;
        }
        let options = m.options().as_deref().unwrap_or_default();
        let has = |o: &str| options.iter().any(|x| x == o);
        let read_only = has("ro");
        if typ == "bind" || has("bind") || has("rbind") {
            let Some(source) = m.source() else { continue };
            if dest == isola_process::tiny_init::PATH {
                // The guest has the same binary: it is guest init.
                mounts.push(GuestMount::Init { destination: dest });
                continue;
            }
            if !source.is_dir() {
                continue; // a file: /etc/hosts and its kind come to a VM by other ways
            }
            mounts.push(GuestMount::Shared {
                index: shares.len(),
                read_only,
                destination: dest,
            });
            shares.push(Share {
                source: source.clone(),
                read_only,
            });
        } else if typ == "tmpfs" {
            // tmpfs's own options (mode=, size=, ...) go to it; of the mount flags the guest
            // takes ro and exec (nosuid and nodev always; time flags such as strictatime are
            // left to the guest's default).
            let data: Vec<&str> = options
                .iter()
                .map(String::as_str)
                .filter(|o| o.contains('='))
                .collect();
            mounts.push(GuestMount::Tmpfs {
                read_only,
                options: data.join(","),
                exec: has("exec") && !has("noexec"),
                destination: dest,
            });
        }
    }
    (mounts, shares)
}

/// The running back end.
pub struct Virtiofsd {
    child: Child,
    dir: PathBuf,
}

fn io(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> Error {
    move |e| Error::Vm(format!("virtio-fs: {what}: {e}"))
}

fn cstring(p: &Path) -> Result<CString, Error> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| Error::Vm(format!("{}: a NUL in the path", p.display())))
}

/// Where a VM run by process `pid` keeps its back end's socket and log.
fn dir_of(run_dir: &Path, pid: u32) -> PathBuf {
    run_dir.join(format!("vfs-{pid}"))
}

impl Virtiofsd {
    /// Starts virtiofsd exporting `shares`; returns it and the VMM's end of the connection.
    pub fn start(run_dir: &Path, shares: &[Share]) -> Result<(Virtiofsd, UnixStream), Error> {
        let bin = std::env::var_os("ISOLA_VIRTIOFSD")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(VIRTIOFSD));
        if !bin.is_file() {
            return Err(Error::Config(format!(
                "host directories at --isolation vm need virtiofsd, and {} is not there (Debian: apt-get install qemu-system-common)",
                bin.display()
            )));
        }
        for s in shares {
            if !s.source.is_dir() {
                return Err(Error::Config(format!(
                    "{}: not a directory",
                    s.source.display()
                )));
            }
        }
        let dir = dir_of(run_dir, std::process::id());
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("export")).map_err(io(dir.display()))?;
        let started = Self::spawn(&bin, &dir, shares);
        if started.is_err() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        started
    }

    fn spawn(bin: &Path, dir: &Path, shares: &[Share]) -> Result<(Virtiofsd, UnixStream), Error> {
        let socket = dir.join("sock");
        let listener = UnixListener::bind(&socket).map_err(io(socket.display()))?;
        // Accepted from the backlog once virtiofsd runs: it never waits for us.
        let stream = UnixStream::connect(&socket).map_err(io(socket.display()))?;
        let _ = std::fs::remove_file(&socket);
        let export = dir.join("export");
        // Everything the child needs, made before the fork: it only makes system calls.
        let export_c = cstring(&export)?;
        let subdirs: Vec<(CString, CString, bool)> = shares
            .iter()
            .enumerate()
            .map(|(i, s)| {
                Ok((
                    cstring(&s.source)?,
                    cstring(&export.join(i.to_string()))?,
                    s.read_only,
                ))
            })
            .collect::<Result<_, Error>>()?;
        let log = std::fs::File::create(dir.join("log")).map_err(io("its log"))?;
        let listen_fd = listener.as_raw_fd();
        let mut cmd = Command::new(bin);
        cmd.arg("--fd=3")
            .args(["-o", &format!("source={}", export.display())])
            .args([
                "-o",
                "sandbox=namespace",
                "-o",
                "cache=auto",
                "-o",
                "writeback",
            ])
            .args(["-o", "announce_submounts", "-o", "log_level=warn"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        // SAFETY: runs in the child between fork and exec, isola being single-threaded here;
        // it makes only system calls on the strings prepared above (no allocation, no lock).
        unsafe {
            cmd.pre_exec(move || {
                let check = |r: libc::c_int| {
                    if r < 0 {
                        Err(std::io::Error::last_os_error())
                    } else {
                        Ok(())
                    }
                };
                if listen_fd == 3 {
                    // dup2 onto itself would leave close-on-exec set.
                    check(libc::fcntl(3, libc::F_SETFD, 0))?;
                } else {
                    check(libc::dup2(listen_fd, 3))?;
                }
                check(libc::unshare(libc::CLONE_NEWNS))?;
                let none = std::ptr::null();
                check(libc::mount(
                    none,
                    c"/".as_ptr(),
                    none,
                    libc::MS_REC | libc::MS_PRIVATE,
                    none.cast(),
                ))?;
                check(libc::mount(
                    c"tmpfs".as_ptr(),
                    export_c.as_ptr(),
                    c"tmpfs".as_ptr(),
                    libc::MS_NOSUID | libc::MS_NODEV,
                    c"mode=0755".as_ptr().cast(),
                ))?;
                for (source, at, read_only) in &subdirs {
                    check(libc::mkdir(at.as_ptr(), 0o755))?;
                    check(libc::mount(
                        source.as_ptr(),
                        at.as_ptr(),
                        none,
                        libc::MS_BIND | libc::MS_REC,
                        none.cast(),
                    ))?;
                    if *read_only {
                        isola_inroot::read_only::read_only_recursive(libc::AT_FDCWD, at)?;
                    }
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(io(bin.display()))?;
        drop(listener);
        Ok((
            Virtiofsd {
                child,
                dir: dir.to_path_buf(),
            },
            stream,
        ))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// After the VM: waits for virtiofsd to see its connection close and exit (a second at
    /// most, then it is killed), and removes its directory. Its complaints, if it failed.
    pub fn stop(mut self) -> Option<String> {
        let deadline = Instant::now() + Duration::from_secs(1);
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break None;
                }
            }
        };
        let log = std::fs::read_to_string(self.dir.join("log")).unwrap_or_default();
        let _ = std::fs::remove_dir_all(&self.dir);
        match status {
            Some(s) if s.success() => None,
            _ => Some(
                log.trim()
                    .lines()
                    .last()
                    .unwrap_or("no message")
                    .to_string(),
            ),
        }
    }
}

/// Removes the directories of back ends whose isola is gone (killed before `stop`);
/// `alive` says whether the process of a PID (as written in the name) still runs.
pub fn remove_dead(run_dir: &Path, alive: impl Fn(Option<&str>) -> bool) {
    let Ok(rd) = std::fs::read_dir(run_dir) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let pid = name.strip_prefix("vfs-");
        if pid.is_some() && !alive(pid) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{Mount, Spec};

    fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Mount {
        let mut m = Mount::default();
        m.set_destination(dest.into());
        m.set_typ(Some(typ.into()));
        m.set_source(Some(source.into()));
        m.set_options(Some(options.iter().map(|o| o.to_string()).collect()));
        m
    }

    #[test]
    fn a_bundles_directory_binds_and_tmpfs_mounts_are_taken_the_rest_left() {
        let dir = std::env::temp_dir().join(format!("isola-shares-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("hosts");
        std::fs::write(&file, "").unwrap();
        let mut spec = Spec::default();
        spec.set_mounts(Some(vec![
            mount("/proc", "proc", "proc", &[]),
            mount("/dev/shm", "tmpfs", "shm", &["nosuid", "mode=1777"]),
            // containerd's /run: a time flag among the options, which tmpfs would refuse.
            mount(
                "/run",
                "tmpfs",
                "tmpfs",
                &["nosuid", "strictatime", "mode=755", "size=65536k"],
            ),
            mount("/data", "bind", dir.to_str().unwrap(), &["rbind", "ro"]),
            mount(
                "/etc/hosts",
                "bind",
                file.to_str().unwrap(),
                &["rbind", "rw"],
            ),
        ]));
        let (mounts, shares) = from_spec(&spec);
        assert_eq!(
            mounts,
            vec![
                GuestMount::Tmpfs {
                    read_only: false,
                    options: "mode=755,size=65536k".into(),
                    exec: false,
                    destination: "/run".into(),
                },
                GuestMount::Shared {
                    index: 0,
                    read_only: true,
                    destination: "/data".into(),
                },
            ]
        );
        assert_eq!(shares.len(), 1);
        assert_eq!(shares[0].source, dir);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
