//! What makes a container's filesystem: a private mount namespace, the bundle's rootfs bound
//! onto itself, the config's mounts placed inside it (every destination resolved inside the
//! rootfs, so a hostile image's symlinks cannot redirect a mount onto the host), then
//! `pivot_root` into it and the host's root detached. Masked and read-only paths come last,
//! when only the container's own filesystem is visible.

use crate::cgroups::{Hierarchies, Layout};
use crate::devices;
use crate::mount_options::{parse, MountOptions};
use isola_inroot::Root;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::Mode;
use oci_spec::runtime::{Mount, Spec};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

type Result<T> = std::result::Result<T, String>;

fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

fn ctx<T, E: std::fmt::Display>(
    r: std::result::Result<T, E>,
    what: impl FnOnce() -> String,
) -> Result<T> {
    r.map_err(|e| format!("{}: {e}", what()))
}

/// Prepares the rootfs and pivots into it. Runs in the container's init, in its new mount
/// namespace, before any user code.
pub fn enter_rootfs(spec: &Spec, bundle: &Path, hier: &Hierarchies) -> Result<()> {
    let rootfs = crate::state::rootfs_of(spec, bundle).ok_or("config.json has no root")?;
    if !rootfs.is_dir() {
        return Err(format!(
            "rootfs {} is not a readable directory",
            rootfs.display()
        ));
    }
    // Nothing we mount from here on may propagate back to the host.
    ctx(
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        ),
        || "making / private".into(),
    )?;
    ctx(
        mount(
            Some(&rootfs),
            &rootfs,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        ),
        || format!("binding rootfs {}", rootfs.display()),
    )?;
    // Device nodes in the rootfs (from a layer, or a runc-style bundle's directory) stay inert:
    // only the /dev the runtime builds below is mounted without nodev.
    remount_with(&rootfs, MsFlags::MS_NODEV)?;
    let root = ctx(Root::open(&rootfs), || {
        format!("opening rootfs {}", rootfs.display())
    })?;

    // Without a cgroup namespace a fresh cgroup mount would show the host's whole tree: the
    // container sees only its own cgroup then, bound in place (as runc does).
    let own_cgroups = if crate::init::has_ns(spec, oci_spec::runtime::LinuxNamespaceType::Cgroup) {
        None
    } else {
        Some(ctx(std::fs::read_to_string("/proc/self/cgroup"), || {
            "reading /proc/self/cgroup".into()
        })?)
    };
    let mut has_dev = false;
    for m in spec.mounts().as_deref().unwrap_or_default() {
        mount_one(&root, bundle, m, hier, own_cgroups.as_deref())?;
        has_dev |= m.destination() == Path::new("/dev");
    }
    if has_dev {
        let dev = ctx(root.mkdir_all(Path::new("/dev"), 0o755), || "/dev".into())?;
        devices::populate(&dev)?;
    }
    pivot(&root)?;
    Ok(())
}

/// After `pivot`: masked and read-only paths, and a read-only root if asked for.
pub fn finish_rootfs(spec: &Spec) -> Result<()> {
    if let Some(linux) = spec.linux() {
        for p in linux.masked_paths().as_deref().unwrap_or_default() {
            mask(Path::new(p))?;
        }
        for p in linux.readonly_paths().as_deref().unwrap_or_default() {
            make_readonly(Path::new(p))?;
        }
    }
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        remount_readonly(Path::new("/"))?;
    }
    Ok(())
}

/// The host directory of our own cgroup in the hierarchy with `controllers` ("" for cgroup2)
/// mounted at `mount`, from /proc/self/cgroup's lines (`id:controllers:path`).
fn own_cgroup_dir(own: &str, mount: &Path, controllers: &str) -> Option<PathBuf> {
    own.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
        (ctrls == controllers).then(|| mount.join(path.trim_start_matches('/')))
    })
}

fn mount_one(
    root: &Root,
    bundle: &Path,
    m: &Mount,
    hier: &Hierarchies,
    own_cgroups: Option<&str>,
) -> Result<()> {
    let dest = m.destination();
    let typ = m.typ().clone().unwrap_or_else(|| "none".into());
    let opts = parse(m.options().as_deref().unwrap_or_default());
    let what = || format!("mount {} ({typ})", dest.display());
    isola_process::explain::say(|| {
        format!(
            "mount {} on {} (type {typ}, options {})",
            m.source()
                .as_ref()
                .map_or("-".into(), |s| s.display().to_string()),
            dest.display(),
            m.options().as_deref().unwrap_or_default().join(",")
        )
    });
    if typ == "cgroup" || typ == "cgroup2" {
        return mount_cgroups(root, dest, &opts, hier, own_cgroups);
    }
    if opts.is_bind() {
        let src = m.source().clone().unwrap_or_default();
        let src = if src.is_absolute() {
            src
        } else {
            bundle.join(src)
        };
        let meta = ctx(std::fs::metadata(&src), || {
            format!("bind source {}", src.display())
        })?;
        let target = if meta.is_dir() {
            ctx(root.mkdir_all(dest, 0o755), what)?
        } else {
            create_file(root, dest)?
        };
        let tp = fd_path(&target);
        ctx(
            mount(
                Some(&src),
                &tp,
                None::<&str>,
                opts.flags & (MsFlags::MS_BIND | MsFlags::MS_REC),
                None::<&str>,
            ),
            what,
        )?;
        let extra = opts.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC);
        if !extra.is_empty() {
            // Re-open: the fd still names the directory under the new mount.
            let target = ctx(root.open_at(dest, libc::O_PATH, true), what)?;
            ctx(
                mount(
                    None::<&str>,
                    &fd_path(&target),
                    None::<&str>,
                    MsFlags::MS_BIND | MsFlags::MS_REMOUNT | extra,
                    None::<&str>,
                ),
                what,
            )?;
            // A remount changes the top mount only: an `rbind ro` of a tree with mounts in
            // it is read-only all the way down only when every one of them is made so too.
            if extra.contains(MsFlags::MS_RDONLY) && opts.flags.contains(MsFlags::MS_REC) {
                ctx(
                    isola_inroot::read_only::read_only_recursive(target.as_raw_fd(), c""),
                    what,
                )?;
            }
        }
    } else {
        let target = ctx(root.mkdir_all(dest, 0o755), what)?;
        let source = m.source().clone().unwrap_or_else(|| PathBuf::from(&typ));
        let data = (!opts.data.is_empty()).then_some(opts.data.as_str());
        ctx(
            mount(
                Some(&source),
                &fd_path(&target),
                Some(typ.as_str()),
                opts.flags,
                data,
            ),
            what,
        )?;
    }
    if !opts.propagation.is_empty() {
        let target = ctx(root.open_at(dest, libc::O_PATH, true), what)?;
        ctx(
            mount(
                None::<&str>,
                &fd_path(&target),
                None::<&str>,
                opts.propagation,
                None::<&str>,
            ),
            what,
        )?;
    }
    Ok(())
}

/// Creates an empty file at `dest` inside the root (a bind-mount target for a file).
fn create_file(root: &Root, dest: &Path) -> Result<OwnedFd> {
    let (parent, name) = ctx(root.parent_of(dest, true), || dest.display().to_string())?;
    ctx(
        isola_inroot::open_in_root(
            parent.as_raw_fd(),
            Path::new(name),
            libc::O_CREAT | libc::O_RDONLY,
            0o644,
            false,
        ),
        || dest.display().to_string(),
    )
}

/// Remounts what is mounted at `path` in the rootfs read-only, nosuid, nodev and noexec. The
/// path is opened anew: a descriptor taken before the mount is the directory under it.
fn seal_readonly(root: &Root, path: &Path, what: impl Fn() -> String) -> Result<()> {
    let target = ctx(root.open_at(path, libc::O_PATH, true), &what)?;
    ctx(
        mount(
            None::<&str>,
            &fd_path(&target),
            None::<&str>,
            MsFlags::MS_REMOUNT
                | MsFlags::MS_BIND
                | MsFlags::MS_RDONLY
                | MsFlags::MS_NOSUID
                | MsFlags::MS_NODEV
                | MsFlags::MS_NOEXEC,
            None::<&str>,
        ),
        what,
    )
}

/// One hierarchy at `sub` in the rootfs: a fresh mount (rooted at our cgroup namespace), or
/// with `own_cgroups` (no cgroup namespace) a bind of our own cgroup's directory, read-only if
/// `flags` say so.
#[allow(clippy::too_many_arguments)]
fn mount_hierarchy(
    root: &Root,
    sub: &Path,
    fstype: &str,
    data: Option<&str>,
    flags: MsFlags,
    host_mount: &Path,
    controllers: &str,
    own_cgroups: Option<&str>,
) -> Result<()> {
    let what = || format!("mount {} ({fstype} {controllers})", sub.display());
    let target = ctx(root.mkdir_all(sub, 0o755), what)?;
    let Some(own) = own_cgroups else {
        return ctx(
            mount(Some(fstype), &fd_path(&target), Some(fstype), flags, data),
            what,
        );
    };
    let src = own_cgroup_dir(own, host_mount, controllers)
        .ok_or_else(|| format!("{}: not in /proc/self/cgroup", host_mount.display()))?;
    ctx(
        mount(
            Some(&src),
            &fd_path(&target),
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        ),
        what,
    )?;
    if flags.contains(MsFlags::MS_RDONLY) {
        seal_readonly(root, sub, what)?;
    }
    Ok(())
}

/// The cgroup filesystem as the container sees it: its own cgroup and nothing above it.
/// v2: one cgroup2 mount. v1 and hybrid: a tmpfs holding one mount per hierarchy, as runc does.
fn mount_cgroups(
    root: &Root,
    dest: &Path,
    opts: &MountOptions,
    hier: &Hierarchies,
    own_cgroups: Option<&str>,
) -> Result<()> {
    let what = || format!("mount {} (cgroup)", dest.display());
    let target = ctx(root.mkdir_all(dest, 0o755), what)?;
    let flags = opts.flags;
    if hier.layout == Layout::Unified {
        let v2 = hier
            .v2
            .clone()
            .unwrap_or_else(|| PathBuf::from("/sys/fs/cgroup"));
        drop(target);
        return mount_hierarchy(root, dest, "cgroup2", None, flags, &v2, "", own_cgroups);
    }
    ctx(
        mount(
            Some("tmpfs"),
            &fd_path(&target),
            Some("tmpfs"),
            (flags & !MsFlags::MS_RDONLY)
                | MsFlags::MS_NOSUID
                | MsFlags::MS_NODEV
                | MsFlags::MS_NOEXEC,
            Some("mode=755"),
        ),
        what,
    )?;
    for (host_mount, ctrls) in &hier.v1_mounts {
        let Some(name) = host_mount.file_name() else {
            continue;
        };
        let sub = dest.join(name);
        let data = if ctrls.starts_with("name=") {
            format!("none,{ctrls}")
        } else {
            ctrls.clone()
        };
        mount_hierarchy(
            root,
            &sub,
            "cgroup",
            Some(data.as_str()),
            flags,
            host_mount,
            ctrls,
            own_cgroups,
        )?;
    }
    if let (Layout::Hybrid, Some(v2)) = (hier.layout, &hier.v2) {
        if let Some(name) = v2.file_name() {
            let sub = dest.join(name);
            mount_hierarchy(root, &sub, "cgroup2", None, flags, v2, "", own_cgroups)?;
        }
    }
    if flags.contains(MsFlags::MS_RDONLY) {
        seal_readonly(root, dest, what)?;
    }
    Ok(())
}

/// `pivot_root(".", ".")` in the rootfs, then detach the old root stacked on top of it.
fn pivot(root: &Root) -> Result<()> {
    ctx(nix::unistd::fchdir(root.fd()), || "entering rootfs".into())?;
    isola_process::explain::say(|| {
        "pivot_root(\".\", \".\") in the container's root, then the old root (the host's) is detached (umount2 MNT_DETACH)".into()
    });
    ctx(nix::unistd::pivot_root(".", "."), || "pivot_root".into())?;
    ctx(umount2(".", MntFlags::MNT_DETACH), || {
        "detaching the host's root".into()
    })?;
    ctx(nix::unistd::chdir("/"), || "chdir /".into())
}

fn mask(path: &Path) -> Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("masking {}: {e}", path.display())),
    };
    let r = if meta.is_dir() {
        mount(
            Some("tmpfs"),
            path,
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            None::<&str>,
        )
    } else {
        mount(
            Some("/dev/null"),
            path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
    };
    ctx(r, || format!("masking {}", path.display()))
}

fn make_readonly(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("read-only {}: {e}", path.display())),
    }
    ctx(
        mount(
            Some(path),
            path,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        ),
        || format!("read-only {}", path.display()),
    )?;
    remount_readonly(path)
}

fn remount_readonly(path: &Path) -> Result<()> {
    remount_with(path, MsFlags::MS_RDONLY)
}

/// Remounts the bind mount at `path` adding `extra`, keeping the flags it has (a bind remount
/// that dropped nosuid, nodev or noexec would be refused, or worse, succeed).
fn remount_with(path: &Path, extra: MsFlags) -> Result<()> {
    let existing = nix::sys::statvfs::statvfs(path)
        .map(|s| s.flags())
        .map_err(|e| format!("statvfs {}: {e}", path.display()))?;
    let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | extra;
    use nix::sys::statvfs::FsFlags;
    for (f, m) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
    ] {
        if existing.contains(f) {
            flags |= m;
        }
    }
    ctx(
        mount(None::<&str>, path, None::<&str>, flags, None::<&str>),
        || format!("remounting {} ({extra:?})", path.display()),
    )
}

/// Sets the umask used while creating device nodes and directories (0) — restored before exec.
pub fn clear_umask() {
    nix::sys::stat::umask(Mode::empty());
}
