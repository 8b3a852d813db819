//! Applying image layers to a root filesystem, safely.
//!
//! Every entry is created through [`isola_inroot::Root`]: its parent directory is resolved inside
//! the rootfs (symlinks and `..` cannot lead out), and the final component is created with the
//! `*at` calls that never follow a symlink. Layer semantics follow the OCI image spec: entries
//! replace what lower layers left at the same path, `.wh.NAME` deletes NAME, and
//! `.wh..wh..opq` empties its directory of what lower layers put there.
//! Extended attributes (PAX `SCHILY.xattr.*`) are kept for `user.*` and file capabilities;
//! `trusted.*` (overlayfs's own metadata) and other `security.*` names are dropped.

use crate::digest::{Digest, HashingReader};
use crate::store::{Store, VerifiedReader};
use isola_inroot::{clear_dir_at, is_dir, lstat_at, remove_all_at, Root};
use std::collections::HashSet;
use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";

/// Why a layer could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("layer {layer}: entry {entry:?}: {why}")]
    Entry {
        layer: String,
        entry: String,
        why: String,
    },
    /// The message carries the I/O error (not also its `source()`: said once by `{:#}`).
    #[error("layer {layer}: {cause}")]
    Io { layer: String, cause: io::Error },
    /// The store's file system is full: names where the entry was being written.
    #[error("{}: {cause} (unpacking layer {layer})", path.display())]
    NoSpace {
        path: PathBuf,
        layer: String,
        cause: io::Error,
    },
    #[error("layer {layer}: uncompressed content hashes to {actual}, but the image config says its diff_id is {expected}")]
    DiffId {
        layer: String,
        expected: Digest,
        actual: Digest,
    },
}

/// How a layer stream is compressed, from its first bytes (media types can lie; magic can't).
enum Compression {
    None,
    Gzip,
    Zstd,
}

fn sniff(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// Applies the layer blob `layer` from `store` onto `root`, checking the blob against its digest
/// and the uncompressed stream against `diff_id`. On error the root is left half-applied: the
/// caller discards it.
///
/// Two threads: one reads, decompresses and hashes the blob, the other (this one) creates the
/// files — so decompression runs while the kernel creates inodes.
pub fn apply_layer_blob(
    store: &Store,
    layer: &Digest,
    diff_id: &Digest,
    root: &Root,
) -> Result<(), UnpackError> {
    let name = layer.to_string();
    let io_err = |source: io::Error| UnpackError::Io {
        layer: name.clone(),
        cause: source,
    };
    let blob: VerifiedReader<File> = store
        .open_blob(layer)
        .map_err(|e| io_err(io::Error::other(e.to_string())))?;
    let (tx, rx) = std::sync::mpsc::sync_channel::<io::Result<Vec<u8>>>(CHUNKS_IN_FLIGHT);
    let (applied, produced) = std::thread::scope(|s| {
        let producer = s.spawn(move || decompress_into(blob, tx));
        let applied = apply_tar(
            ChunkReader {
                rx,
                chunk: Vec::new(),
                at: 0,
            },
            root,
            &name,
        );
        // The reader is gone with apply_tar: the producer, if still sending, stops sending
        // (it reads on to the end, so the digests still cover every byte).
        (applied, producer.join())
    });
    let produced = produced.map_err(|_| io_err(io::Error::other("the decompressor panicked")))?;
    // The stream's own failure (a damaged blob, bad compression) says more than the tar
    // reader's view of it.
    let actual = match (produced, applied) {
        (Err(e), _) => return Err(io_err(e)),
        (Ok(_), Err(e)) => return Err(e),
        (Ok(actual), Ok(())) => actual,
    };
    if &actual != diff_id {
        return Err(UnpackError::DiffId {
            layer: name,
            expected: diff_id.clone(),
            actual,
        });
    }
    Ok(())
}

/// Decompressed chunks queued between the threads (`CHUNK` bytes each).
const CHUNKS_IN_FLIGHT: usize = 4;
const CHUNK: usize = 128 << 10;

/// Reads `blob` to its end — decompressing by its magic, hashing what comes out, and the
/// blob's own digest checked at its end — sending the decompressed bytes to `tx` while anyone
/// listens. Returns the digest of the decompressed stream (the diff ID).
fn decompress_into(
    mut blob: VerifiedReader<File>,
    tx: std::sync::mpsc::SyncSender<io::Result<Vec<u8>>>,
) -> io::Result<Digest> {
    let result = (|| {
        let mut buffered = BufReader::with_capacity(1 << 16, &mut blob);
        let head = buffered.fill_buf()?.to_vec();
        let decompressed: Box<dyn Read> = match sniff(&head) {
            Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(buffered)?),
            Compression::None => Box::new(buffered),
        };
        let mut hashing = HashingReader::new(decompressed);
        let mut listening = true;
        loop {
            let mut chunk = vec![0; CHUNK];
            let mut filled = 0;
            while filled < CHUNK {
                match hashing.read(&mut chunk[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            if filled == 0 {
                break;
            }
            chunk.truncate(filled);
            if listening && tx.send(Ok(chunk)).is_err() {
                listening = false;
            }
        }
        let (digest, _) = hashing.finish()?;
        Ok(digest)
    })();
    let result = result.and_then(|digest| {
        // What the decompressor left (trailing bytes), so the blob digest is checked.
        io::copy(&mut blob, &mut io::sink())?;
        Ok(digest)
    });
    if let Err(e) = &result {
        let _ = tx.send(Err(io::Error::new(e.kind(), e.to_string())));
    }
    result
}

/// The reading end of the decompressor's channel.
struct ChunkReader {
    rx: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    at: usize,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.chunk.len() {
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.chunk = chunk;
                    self.at = 0;
                }
                Ok(Err(e)) => return Err(e),
                // The sender is done: the end of the stream.
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Normalises a tar entry name to a path inside the root. `..` anywhere is refused.
fn entry_path(raw: &Path) -> Result<PathBuf, String> {
    let mut out = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => return Err("'..' in an entry name".into()),
            Component::Prefix(_) => return Err("path prefix in an entry name".into()),
        }
    }
    Ok(out)
}

fn cstr(s: &OsStr) -> io::Result<CString> {
    CString::new(s.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in name"))
}

fn check(r: libc::c_int) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Applies one uncompressed layer tar stream to `root`.
pub fn apply_tar(reader: impl Read, root: &Root, layer: &str) -> Result<(), UnpackError> {
    let mut archive = tar::Archive::new(reader);
    let mut created: HashSet<PathBuf> = HashSet::new();
    let mut dir_times: Vec<(PathBuf, i64)> = Vec::new();
    let entries = archive.entries().map_err(|source| UnpackError::Io {
        layer: layer.to_string(),
        cause: source,
    })?;
    for entry in entries {
        let mut entry = entry.map_err(|source| UnpackError::Io {
            layer: layer.to_string(),
            cause: source,
        })?;
        let raw = entry.path().map(|p| p.into_owned()).unwrap_or_default();
        let fail = |why: String| UnpackError::Entry {
            layer: layer.to_string(),
            entry: raw.display().to_string(),
            why,
        };
        let path = entry_path(&raw).map_err(&fail)?;
        apply_entry(root, &mut entry, &path, &mut created, &mut dir_times).map_err(|e| {
            if matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)) {
                UnpackError::NoSpace {
                    path: root.path().join(&path),
                    layer: layer.to_string(),
                    cause: e,
                }
            } else {
                fail(e.to_string())
            }
        })?;
    }
    // Directory mtimes last: creating children changed them.
    for (path, mtime) in dir_times.iter().rev() {
        if let Ok((parent, name)) = root.parent_of(path, false) {
            let _ = set_times(parent.as_raw_fd(), name, *mtime);
        }
    }
    Ok(())
}

/// Extended attributes a layer may set: `user.*` and file capabilities. `trusted.*` (where
/// overlayfs keeps its own metadata about a layer) and other `security.*` names are dropped.
fn wanted_xattr(name: &[u8]) -> bool {
    name.starts_with(b"user.") || name == b"security.capability"
}

/// The entry's extended attributes (PAX `SCHILY.xattr.NAME` records) that it may set.
fn entry_xattrs<R: Read>(entry: &mut tar::Entry<R>) -> io::Result<Vec<(CString, Vec<u8>)>> {
    let mut out = Vec::new();
    if let Some(extensions) = entry.pax_extensions()? {
        for ext in extensions {
            let ext = ext?;
            if let Some(name) = ext.key_bytes().strip_prefix(b"SCHILY.xattr.") {
                if wanted_xattr(name) {
                    let name = CString::new(name).map_err(|_| {
                        io::Error::new(io::ErrorKind::InvalidData, "NUL in an xattr name")
                    })?;
                    out.push((name, ext.value_bytes().to_vec()));
                }
            }
        }
    }
    Ok(out)
}

/// Sets extended attributes on an open file or directory (after its owner: a chown clears
/// file capabilities).
fn set_xattrs(fd: &OwnedFd, xattrs: &[(CString, Vec<u8>)]) -> io::Result<()> {
    for (name, value) in xattrs {
        // SAFETY: fsetxattr on a descriptor we hold, with a NUL-terminated name and a value
        // buffer of the length passed.
        check(unsafe {
            libc::fsetxattr(
                fd.as_raw_fd(),
                name.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        })?;
    }
    Ok(())
}

fn apply_entry<R: Read>(
    root: &Root,
    entry: &mut tar::Entry<R>,
    path: &Path,
    created: &mut HashSet<PathBuf>,
    dir_times: &mut Vec<(PathBuf, i64)>,
) -> io::Result<()> {
    let xattrs = entry_xattrs(entry)?;
    let header = entry.header();
    let kind = header.entry_type();
    if matches!(
        kind,
        tar::EntryType::XGlobalHeader
            | tar::EntryType::XHeader
            | tar::EntryType::GNULongName
            | tar::EntryType::GNULongLink
    ) {
        return Ok(());
    }
    if path.as_os_str().is_empty() {
        return Ok(()); // the root directory itself: keep the root's own metadata
    }
    let file_name = path
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    if file_name == OPAQUE {
        let dir = path.parent().unwrap_or(Path::new(""));
        let dirfd = root.mkdir_all(dir, 0o755)?;
        let keep: HashSet<PathBuf> = created
            .iter()
            .filter(|p| p.parent() == Some(dir))
            .cloned()
            .collect();
        return clear_dir_at(dirfd.as_raw_fd(), OsStr::new("."), &|child| {
            !keep.contains(&dir.join(child))
        });
    }
    if let Some(target) = file_name.strip_prefix(WHITEOUT_PREFIX) {
        if target.is_empty() || target == "." || target == ".." {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "whiteout names no file",
            ));
        }
        let (parent, _) = root.parent_of(path, true)?;
        return remove_all_at(parent.as_raw_fd(), OsStr::new(target));
    }

    let (parent, name) = root.parent_of(path, true)?;
    let pfd = parent.as_raw_fd();
    let cname = cstr(name)?;
    let mode = (header.mode()? & 0o7777) as libc::mode_t;
    let uid = header.uid().unwrap_or(0) as libc::uid_t;
    let gid = header.gid().unwrap_or(0) as libc::gid_t;
    let mtime = header.mtime().unwrap_or(0) as i64;
    let existing = lstat_at(pfd, name)?;
    let keep_dir = kind == tar::EntryType::Directory && existing.as_ref().is_some_and(is_dir);
    if existing.is_some() && !keep_dir {
        remove_all_at(pfd, name)?;
    }
    created.insert(path.to_path_buf());
    match kind {
        tar::EntryType::Directory => {
            if !keep_dir {
                // SAFETY: mkdirat with a single-component name in a directory fd we hold.
                check(unsafe { libc::mkdirat(pfd, cname.as_ptr(), 0o700) })?;
            }
            let fd = isola_inroot::open_in_root(
                pfd,
                Path::new(name),
                libc::O_RDONLY | libc::O_DIRECTORY,
                0,
                false,
            )?;
            set_owner_mode(&fd, uid, gid, mode)?;
            set_xattrs(&fd, &xattrs)?;
            dir_times.push((path.to_path_buf(), mtime));
        }
        tar::EntryType::Regular | tar::EntryType::Continuous => {
            // SAFETY: openat creating a new file (O_EXCL|O_NOFOLLOW) in a directory fd we hold.
            let raw = unsafe {
                libc::openat(
                    pfd,
                    cname.as_ptr(),
                    libc::O_WRONLY
                        | libc::O_CREAT
                        | libc::O_EXCL
                        | libc::O_NOFOLLOW
                        | libc::O_CLOEXEC,
                    0o600 as libc::c_uint,
                )
            };
            if raw < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: a fresh descriptor from openat.
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            let mut file = File::from(fd);
            io::copy(entry, &mut file)?;
            let fd = OwnedFd::from(file);
            set_owner_mode(&fd, uid, gid, mode)?;
            set_xattrs(&fd, &xattrs)?;
            set_times(pfd, name, mtime)?;
        }
        tar::EntryType::Symlink => {
            let target = entry.link_name()?.ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidData, "symlink without target")
            })?;
            let ctarget = cstr(target.as_os_str())?;
            // SAFETY: symlinkat stores the target string; nothing is resolved.
            check(unsafe { libc::symlinkat(ctarget.as_ptr(), pfd, cname.as_ptr()) })?;
            // SAFETY: fchownat with AT_SYMLINK_NOFOLLOW changes the link itself.
            check(unsafe {
                libc::fchownat(pfd, cname.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW)
            })?;
            set_times(pfd, name, mtime)?;
        }
        tar::EntryType::Link => {
            let target = entry.link_name()?.ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidData, "hardlink without target")
            })?;
            let target =
                entry_path(&target).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            let missing = || {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!(
                        "hardlink target /{} does not exist in the rootfs",
                        target.display()
                    ),
                )
            };
            let (tparent, tname) = root.parent_of(&target, false).map_err(|e| {
                if e.kind() == io::ErrorKind::NotFound {
                    missing()
                } else {
                    e
                }
            })?;
            let st = lstat_at(tparent.as_raw_fd(), tname)?.ok_or_else(missing)?;
            if is_dir(&st) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "hardlink to a directory",
                ));
            }
            let ctname = cstr(tname)?;
            // SAFETY: linkat without AT_SYMLINK_FOLLOW links the final component itself (a
            // symlink stays a symlink), both parents resolved inside the root.
            check(unsafe {
                libc::linkat(tparent.as_raw_fd(), ctname.as_ptr(), pfd, cname.as_ptr(), 0)
            })?;
        }
        tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
            let fmt = match kind {
                tar::EntryType::Char => libc::S_IFCHR,
                tar::EntryType::Block => libc::S_IFBLK,
                _ => libc::S_IFIFO,
            };
            let major = header.device_major()?.unwrap_or(0);
            let minor = header.device_minor()?.unwrap_or(0);
            let dev = libc::makedev(major, minor);
            // SAFETY: mknodat with a single-component name in a directory fd we hold.
            check(unsafe { libc::mknodat(pfd, cname.as_ptr(), fmt | mode, dev) })?;
            // SAFETY: as for symlinks; the node is not opened.
            check(unsafe {
                libc::fchownat(pfd, cname.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW)
            })?;
            // SAFETY: fchmodat on the node we just made (not a symlink).
            check(unsafe { libc::fchmodat(pfd, cname.as_ptr(), mode, 0) })?;
            set_times(pfd, name, mtime)?;
        }
        other => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unsupported tar entry type {other:?}"),
            ))
        }
    }
    Ok(())
}

fn set_owner_mode(
    fd: &OwnedFd,
    uid: libc::uid_t,
    gid: libc::gid_t,
    mode: libc::mode_t,
) -> io::Result<()> {
    // SAFETY: fchown/fchmod on a descriptor we own; chown first since it clears set-id bits.
    check(unsafe { libc::fchown(fd.as_raw_fd(), uid, gid) })?;
    // SAFETY: as above.
    check(unsafe { libc::fchmod(fd.as_raw_fd(), mode) })
}

fn set_times(dirfd: libc::c_int, name: &OsStr, mtime: i64) -> io::Result<()> {
    let c = cstr(name)?;
    let ts = libc::timespec {
        tv_sec: mtime as libc::time_t,
        tv_nsec: 0,
    };
    let times = [ts, ts];
    // SAFETY: utimensat reads two timespecs; AT_SYMLINK_NOFOLLOW sets a symlink's own times.
    check(unsafe { libc::utimensat(dirfd, c.as_ptr(), times.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        build(&mut b);
        b.into_inner().unwrap()
    }

    fn file(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        b.append_data(&mut h, path, data).unwrap();
    }

    fn symlink(b: &mut tar::Builder<Vec<u8>>, path: &str, target: &str) {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        b.append_link(&mut h, path, target).unwrap();
    }

    #[test]
    fn whiteouts_and_opaque_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::open(dir.path()).unwrap();
        let l1 = layer(|b| {
            file(b, "a/keep", b"1");
            file(b, "a/gone", b"2");
            file(b, "o/old", b"3");
        });
        apply_tar(&l1[..], &root, "l1").unwrap();
        let l2 = layer(|b| {
            file(b, "a/.wh.gone", b"");
            file(b, "o/new", b"4");
            file(b, "o/.wh..wh..opq", b"");
        });
        apply_tar(&l2[..], &root, "l2").unwrap();
        assert!(dir.path().join("a/keep").exists());
        assert!(!dir.path().join("a/gone").exists());
        assert!(!dir.path().join("o/old").exists());
        assert!(dir.path().join("o/new").exists());
    }

    #[test]
    fn entries_through_symlinks_stay_inside() {
        let outside = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = Root::open(dir.path()).unwrap();
        let target = outside.path().to_str().unwrap().to_string();
        let l = layer(|b| {
            symlink(b, "evil", &target);
            file(b, "evil/pwned", b"x");
        });
        apply_tar(&l[..], &root, "l").unwrap();
        assert!(!outside.path().join("pwned").exists());
        assert!(dir
            .path()
            .join(target.trim_start_matches('/'))
            .join("pwned")
            .exists());
    }

    #[test]
    fn dotdot_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::open(dir.path()).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(1);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        // tar::Builder refuses '..' itself, so write the name into the header by hand.
        let name = b"../escape";
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_cksum();
        let mut data = h.as_bytes().to_vec();
        data.extend_from_slice(b"x");
        data.resize(512 * 2, 0);
        data.resize(512 * 4, 0);
        let err = apply_tar(&data[..], &root, "l").unwrap_err();
        assert!(err.to_string().contains("'..'"), "{err}");
    }
}
