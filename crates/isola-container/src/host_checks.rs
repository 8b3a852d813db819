//! Questions `isola doctor` asks about the host's container support, answered by trying.

use nix::mount::{mount, MsFlags};

/// Tries, in a throwaway child with its own mount namespace, to `pivot_root` into a tmpfs —
/// what every container start does. Fails on hosts whose root is the initial ramfs, for one.
pub fn pivot_root_works() -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("isola-pivot-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // SAFETY: fork(2); the child only makes syscalls and _exits, never returning here.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let code = match try_pivot(&dir) {
            Ok(()) => 0,
            Err(e) => e as i32,
        };
        // SAFETY: ends the child without unwinding into the parent's code.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    if pid > 0 {
        // SAFETY: waitpid on the child we just forked.
        unsafe { libc::waitpid(pid, &mut status, 0) };
    }
    // The child's mounts died with its mount namespace; the directory is ours.
    let _ = std::fs::remove_dir(&dir);
    if pid < 0 {
        return Err(format!("fork: {}", std::io::Error::last_os_error()));
    }
    match libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)) {
        Some(0) => Ok(()),
        Some(errno) => Err(format!(
            "pivot_root failed: {}",
            std::io::Error::from_raw_os_error(errno)
        )),
        None => Err("the pivot_root check died".into()),
    }
}

fn try_pivot(dir: &std::path::Path) -> nix::Result<()> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )?;
    mount(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        MsFlags::empty(),
        None::<&str>,
    )?;
    nix::unistd::chdir(dir)?;
    nix::unistd::pivot_root(".", ".")
}
