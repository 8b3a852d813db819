//! `isola cp` with a running VM: the guest's files travel as a tar stream through `isola exec`
//! and the image's own `tar` (the guest's filesystem is only reachable from inside it). What
//! comes out of the guest is untrusted: it is unpacked here entry by entry inside the
//! destination (isola-inroot: no `..`, no link followed out of it), directories, files and
//! links only — never a device node, never a hard link to something outside.

use anyhow::{anyhow, bail, Context, Result};
use isola_inroot::copy::Owners;
use isola_inroot::Root;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};

use crate::records::Record;

fn isola_exec(r: &Record, stdin: bool, cmd: &[&str]) -> Result<Command> {
    let exe = std::env::current_exe().context("finding isola's own binary")?;
    let mut c = Command::new(exe);
    c.arg("exec");
    if stdin {
        c.arg("-i");
    }
    c.arg(&r.id).args(cmd);
    Ok(c)
}

/// The guest's `tar` failed: why, in words (127: the image has none).
fn tar_failed(r: &Record, code: Option<i32>, stderr: &[u8]) -> anyhow::Error {
    if code == Some(127) {
        anyhow!(
            "isola cp with a running VM uses the image's own tar, and {} has none",
            r.image
        )
    } else {
        anyhow!(
            "the guest's tar: {}",
            String::from_utf8_lossy(stderr).trim_end()
        )
    }
}

/// `from` (a path in the guest) to `to` on the host.
pub fn from_vm(r: &Record, from: &str, to: &Path, owners: Owners) -> Result<()> {
    let contents = from.ends_with("/.") || from == "/";
    let trimmed = from.trim_end_matches("/.");
    let (dir, entry) = match Path::new(trimmed).file_name() {
        Some(name) if !contents => (
            Path::new(trimmed)
                .parent()
                .unwrap_or(Path::new("/"))
                .to_string_lossy()
                .into_owned(),
            name.to_string_lossy().into_owned(),
        ),
        _ => (trimmed.to_string(), ".".to_string()),
    };
    let dir = if dir.is_empty() { "/".to_string() } else { dir };
    let mut child = isola_exec(r, false, &["tar", "-cf", "-", "-C", &dir, &entry])?
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("isola exec")?;
    let stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let errors = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = stderr.read_to_end(&mut b);
        b
    });
    // Where it lands: into `to` (the contents, or `to` is a directory), or as `to` — unpacked
    // beside it first, then renamed.
    let to_is_dir = to.is_dir();
    let staging = (!contents && !to_is_dir).then(|| {
        let parent = to.parent().filter(|p| !p.as_os_str().is_empty());
        parent
            .unwrap_or(Path::new("."))
            .join(format!(".isola-cp-{}", std::process::id()))
    });
    let target: PathBuf = match &staging {
        Some(s) => {
            std::fs::create_dir(s).with_context(|| format!("{}: its directory", to.display()))?;
            s.clone()
        }
        None => {
            std::fs::create_dir_all(to).with_context(|| to.display().to_string())?;
            to.to_path_buf()
        }
    };
    let unpacked = Root::open(&target)
        .map_err(anyhow::Error::from)
        .and_then(|root| unpack(stdout, &root, owners));
    let status = child.wait()?;
    let errors = errors.join().unwrap_or_default();
    let placed = match (&unpacked, status.success()) {
        (Ok(()), true) => match &staging {
            Some(s) => std::fs::rename(s.join(&entry), to)
                .with_context(|| format!("placing {}", to.display())),
            None => Ok(()),
        },
        (Err(_), _) => unpacked,
        (Ok(()), false) => Err(tar_failed(r, status.code(), &errors)),
    };
    if let Some(s) = &staging {
        let _ = std::fs::remove_dir_all(s);
    }
    placed
}

/// The tar stream from the guest, unpacked in `root`.
fn unpack(reader: impl Read, root: &Root, owners: Owners) -> Result<()> {
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let raw = entry.path()?.into_owned();
        let mut path = PathBuf::new();
        for c in raw.components() {
            match c {
                Component::Normal(p) => path.push(p),
                Component::CurDir => {}
                _ => bail!(
                    "the guest's tar: entry {}: leaves its directory",
                    raw.display()
                ),
            }
        }
        if path.as_os_str().is_empty() {
            continue; // "." itself
        }
        let fail = |e: std::io::Error| anyhow!("{}: {e}", path.display());
        let header = entry.header().clone();
        let mode = header.mode().unwrap_or(0o644) & 0o7777;
        let (uid, gid) = match owners {
            Owners::Kept => (
                header.uid().unwrap_or(0) as u32,
                header.gid().unwrap_or(0) as u32,
            ),
            Owners::All(u, g) => (u, g),
        };
        let kind = header.entry_type();
        if kind.is_dir() {
            let d = root.mkdir_all(&path, 0o755).map_err(fail)?;
            let d = isola_inroot::reopen_dir(&d).map_err(fail)?;
            std::os::unix::fs::fchown(&d, Some(uid), Some(gid)).map_err(fail)?;
            d.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))
                .map_err(fail)?;
            continue;
        }
        let (parent, name) = root.parent_of(&path, true).map_err(fail)?;
        if kind.is_file() {
            let fd = isola_inroot::open_in_root(
                parent.as_raw_fd(),
                Path::new(name),
                libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC,
                0o600,
                false,
            )
            .map_err(fail)?;
            let mut f = std::fs::File::from(fd);
            std::io::copy(&mut entry, &mut f).map_err(fail)?;
            std::os::unix::fs::fchown(&f, Some(uid), Some(gid)).map_err(fail)?;
            f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))
                .map_err(fail)?;
        } else if kind.is_symlink() {
            let target = header
                .link_name()?
                .ok_or_else(|| anyhow!("{}: a link without a target", path.display()))?;
            let _ = nix::unistd::unlinkat(
                Some(parent.as_raw_fd()),
                name,
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            );
            nix::unistd::symlinkat(target.as_ref(), Some(parent.as_raw_fd()), name)
                .map_err(|e| anyhow!("{}: {e}", path.display()))?;
        } else {
            // Hard links, devices, FIFOs: not made here (a device node on the host could be
            // an escape; a hard link could name a file outside).
            eprintln!(
                "isola: cp: skipped {} (neither file, directory nor symbolic link)",
                path.display()
            );
        }
    }
    Ok(())
}

/// `from` on the host to `to` (a path in the guest): as `to/NAME` if `to` is a directory
/// there, else as `to`.
pub fn into_vm(r: &Record, from: &Path, to: &str, archive: bool) -> Result<()> {
    let contents = from.to_string_lossy().ends_with("/.");
    let meta = std::fs::symlink_metadata(from).with_context(|| from.display().to_string())?;
    let to_is_dir = isola_exec(r, false, &["test", "-d", to])?
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?
        .success();
    let (dir, name) = if contents || to_is_dir {
        let name = from
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        (to.to_string(), name)
    } else {
        let p = Path::new(to);
        let name = p
            .file_name()
            .ok_or_else(|| anyhow!("{to}: not a name to copy to"))?;
        let parent = p.parent().unwrap_or(Path::new("/"));
        (
            parent.to_string_lossy().into_owned(),
            name.to_string_lossy().into_owned(),
        )
    };
    if contents {
        let st = isola_exec(r, false, &["mkdir", "-p", to])?.status()?;
        if !st.success() {
            bail!("{to}: cannot make it in the guest");
        }
    }
    let mut child = isola_exec(r, true, &["tar", "-xf", "-", "-C", &dir])?
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("isola exec")?;
    let stdin = child.stdin.take().expect("piped");
    let mut b = tar::Builder::new(stdin);
    b.follow_symlinks(false);
    b.mode(if archive {
        tar::HeaderMode::Complete
    } else {
        tar::HeaderMode::Deterministic
    });
    let packed = if contents {
        b.append_dir_all(".", from)
    } else if meta.is_dir() {
        b.append_dir_all(&name, from)
    } else {
        b.append_path_with_name(from, &name)
    }
    .and_then(|()| b.finish());
    drop(b);
    let mut errors = Vec::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_end(&mut errors);
    }
    let status = child.wait()?;
    packed.with_context(|| format!("reading {}", from.display()))?;
    if !status.success() {
        return Err(tar_failed(r, status.code(), &errors));
    }
    Ok(())
}
