//! The VMM's jail: VM isolation's second wall, behind the guest kernel. The VMM is its own
//! process (see `vmm_process.rs`), cloned into new mount, PID, network, IPC and UTS namespaces.
//! Once KVM, guest memory and every device's descriptor exist, `enter` takes away the rest —
//! the posture of Firecracker's jailer, taken by the VMM itself:
//!
//! - files: its root becomes an empty, read-only tmpfs (pivot_root, the old root detached), so
//!   no path leads anywhere; stdin, stdout and stderr become /dev/null; it leaves isola's
//!   session, so no terminal is its controlling terminal;
//! - ids: a uid and gid of its own, no supplementary groups;
//! - capabilities: none (the bounding set is emptied while root, then the id change clears the
//!   rest), and no_new_privs;
//! - seccomp: each thread installs its kind's allowlist as it starts (`filters.rs`);
//! - it dies with isola (parent-death signal) and cannot be ptraced by other processes of its uid.

pub mod filters;

use filters::ThreadKind;
use isola_seccomp::Filter;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// A VMM's jail, its filters compiled before it is entered.
pub struct Jail {
    /// An empty directory to mount the new root on (in the VMM's own mount namespace).
    dir: PathBuf,
    /// The uid and gid the VMM runs as.
    id: u32,
    vcpu: Filter,
    input: Filter,
    net: Filter,
    supervisor: Filter,
}

fn os_err(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

fn check(r: libc::c_int, what: &str) -> Result<(), String> {
    if r < 0 {
        Err(os_err(what))
    } else {
        Ok(())
    }
}

impl Jail {
    pub fn new(dir: PathBuf, id: u32) -> Result<Jail, String> {
        Ok(Jail {
            dir,
            id,
            vcpu: filters::compile(ThreadKind::Vcpu)?,
            input: filters::compile(ThreadKind::Input)?,
            net: filters::compile(ThreadKind::Net)?,
            supervisor: filters::compile(ThreadKind::Supervisor)?,
        })
    }

    /// Takes the calling process into the jail. Call on the VMM's only thread, in its own mount
    /// namespace, once it holds every descriptor it will use.
    pub fn enter(&self) -> Result<(), String> {
        let dir = CString::new(self.dir.as_os_str().as_bytes())
            .map_err(|_| format!("{}: a NUL in the path", self.dir.display()))?;
        let c = |s: &str| CString::new(s).expect("no NUL in a literal");
        // SAFETY: each call below takes only NUL-terminated strings that outlive it, integers,
        // or null pointers where the call allows them; none hands memory to the kernel to keep.
        unsafe {
            let null = libc::open(c("/dev/null").as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
            check(null, "/dev/null")?;
            for fd in 0..3 {
                check(libc::dup2(null, fd), "dup2 /dev/null")?;
            }
            libc::close(null);
            check(libc::setsid(), "setsid")?;

            // An empty read-only root.
            let none = std::ptr::null();
            check(
                libc::mount(
                    none,
                    c("/").as_ptr(),
                    none,
                    libc::MS_REC | libc::MS_PRIVATE,
                    none.cast(),
                ),
                "making the VMM's mounts private",
            )?;
            let hidden = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
            check(
                libc::mount(
                    c("isola-vmm").as_ptr(),
                    dir.as_ptr(),
                    c("tmpfs").as_ptr(),
                    hidden,
                    c("size=4k,nr_inodes=1,mode=0555").as_ptr().cast(),
                ),
                &format!("mounting the VMM's empty root on {}", self.dir.display()),
            )?;
            check(libc::chdir(dir.as_ptr()), "chdir to the VMM's root")?;
            check(
                libc::syscall(libc::SYS_pivot_root, c(".").as_ptr(), c(".").as_ptr()) as i32,
                "pivot_root",
            )?;
            check(
                libc::umount2(c(".").as_ptr(), libc::MNT_DETACH),
                "detaching the old root",
            )?;
            check(libc::chdir(c("/").as_ptr()), "chdir /")?;
            check(
                libc::mount(
                    none,
                    c("/").as_ptr(),
                    none,
                    libc::MS_REMOUNT | libc::MS_RDONLY | hidden,
                    none.cast(),
                ),
                "making the VMM's root read-only",
            )?;

            // Capabilities: empty the bounding set while CAP_SETPCAP is still held; the id
            // change below then clears the permitted and effective sets (no SECBIT_KEEP_CAPS).
            let mut cap = 0;
            while libc::prctl(libc::PR_CAPBSET_READ, cap, 0, 0, 0) >= 0 {
                check(
                    libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0),
                    "dropping the bounding set",
                )?;
                cap += 1;
            }
            check(
                libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_CLEAR_ALL,
                    0,
                    0,
                    0,
                ),
                "clearing ambient capabilities",
            )?;
            check(libc::setgroups(0, std::ptr::null()), "setgroups")?;
            check(libc::setresgid(self.id, self.id, self.id), "setresgid")?;
            check(libc::setresuid(self.id, self.id, self.id), "setresuid")?;
            check(
                libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0),
                "no_new_privs",
            )?;
            // Set after the id change, which clears it. If isola died before this, the input
            // thread sees its control pipe close and ends the VM (vm.rs).
            check(
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0),
                "parent-death signal",
            )?;
            check(libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0), "dumpable")?;
        }
        let left = capabilities_left();
        if left != 0 {
            return Err(format!(
                "the VMM kept capabilities {left:#x} after the id change"
            ));
        }
        crate::explain::say(|| {
            format!(
                "the VMM jails itself: stdio /dev/null, its own session, root an empty \
                 read-only tmpfs (pivot_root, old root detached), uid and gid {}, no \
                 capabilities, no_new_privs, killed with isola; each thread installs its own \
                 seccomp allowlist as it starts (BPF instructions: vCPU {}, input {}, network \
                 {}, supervisor {})",
                self.id,
                self.vcpu.len(),
                self.input.len(),
                self.net.len(),
                self.supervisor.len()
            )
        });
        Ok(())
    }

    /// Installs `kind`'s seccomp filter on the calling thread: the first thing each VMM thread
    /// does once the jail is entered.
    pub fn confine_thread(&self, kind: ThreadKind) -> Result<(), String> {
        match kind {
            ThreadKind::Vcpu => &self.vcpu,
            ThreadKind::Input => &self.input,
            ThreadKind::Net => &self.net,
            ThreadKind::Supervisor => &self.supervisor,
        }
        .install()
    }
}

/// The permitted and effective capability sets of the calling thread, or-ed (0: none).
fn capabilities_left() -> u64 {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Default, Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut header = Header {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: capget with a version-3 header and the two data structs version 3 requires,
    // both live locals the kernel writes into during the call.
    let r = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    if r != 0 {
        return u64::MAX;
    }
    data.iter()
        .enumerate()
        .map(|(i, d)| u64::from(d.effective | d.permitted) << (32 * i))
        .fold(0, |a, b| a | b)
}
