//! The guest's initramfs, written by isola itself: a cpio archive in the kernel's "newc"
//! format (Documentation/driver-api/early-userspace/buffer-format.rst). Several archives may
//! be concatenated; the kernel unpacks them in order.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

pub struct Cpio {
    buf: Vec<u8>,
    ino: u32,
}

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;

impl Default for Cpio {
    fn default() -> Self {
        Cpio::new()
    }
}

impl Cpio {
    pub fn new() -> Cpio {
        Cpio::with_capacity(0)
    }

    /// An archive expected to grow to about `bytes` (one allocation instead of several).
    pub fn with_capacity(bytes: usize) -> Cpio {
        Cpio {
            buf: Vec::with_capacity(bytes),
            ino: 1,
        }
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn entry(
        &mut self,
        name: &str,
        mode: u32,
        uid: u32,
        gid: u32,
        mtime: u32,
        rdev: (u32, u32),
        data: &[u8],
    ) {
        let name = name.trim_start_matches('/');
        let name = if name.is_empty() { "." } else { name };
        let fields = [
            self.ino,
            mode,
            uid,
            gid,
            1,
            mtime,
            data.len() as u32,
            0,
            0,
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0,
        ];
        self.ino += 1;
        self.buf.extend_from_slice(b"070701");
        for f in fields {
            self.buf.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.push(0);
        self.pad();
        self.buf.extend_from_slice(data);
        self.pad();
    }

    pub fn dir(&mut self, path: &str, mode: u32) {
        self.entry(path, S_IFDIR | (mode & 0o7777), 0, 0, 0, (0, 0), &[]);
    }

    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) {
        self.entry(path, S_IFREG | (mode & 0o7777), 0, 0, 0, (0, 0), data);
    }

    /// Adds the tree at `src` under `prefix`, keeping modes, owners, symlinks and device
    /// nodes; symlinks are stored, never followed.
    pub fn add_tree(&mut self, prefix: &str, src: &Path) -> io::Result<()> {
        let meta = std::fs::symlink_metadata(src)?;
        self.add_one(prefix, src, &meta)?;
        if meta.is_dir() {
            let mut names: Vec<_> = std::fs::read_dir(src)?.collect::<Result<Vec<_>, _>>()?;
            names.sort_by_key(|e| e.file_name());
            for e in names {
                let name = e.file_name();
                let child = format!("{prefix}/{}", name.to_string_lossy());
                self.add_tree(&child, &e.path())?;
            }
        }
        Ok(())
    }

    fn add_one(&mut self, name: &str, path: &Path, m: &std::fs::Metadata) -> io::Result<()> {
        let mtime = m.mtime().max(0) as u32;
        let rdev = m.rdev();
        let dev = (libc::major(rdev), libc::minor(rdev));
        if m.file_type().is_symlink() {
            let target = std::fs::read_link(path)?;
            let t = target.to_string_lossy().into_owned();
            self.entry(
                name,
                S_IFLNK | 0o777,
                m.uid(),
                m.gid(),
                mtime,
                (0, 0),
                t.as_bytes(),
            );
        } else if m.is_file() {
            let data = std::fs::read(path)?;
            self.entry(name, m.mode(), m.uid(), m.gid(), mtime, (0, 0), &data);
        } else {
            self.entry(name, m.mode(), m.uid(), m.gid(), mtime, dev, &[]);
        }
        Ok(())
    }

    /// Ends the archive.
    pub fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, 0, 0, 0, (0, 0), &[]);
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newc_layout() {
        let mut c = Cpio::new();
        c.file("/init", 0o755, b"#!/bin/sh\n");
        let out = c.finish();
        assert!(out.starts_with(b"070701"));
        assert_eq!(out.len() % 4, 0);
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("init\0") && text.contains("TRAILER!!!\0"));
        // mode of /init: regular file, 0755
        assert_eq!(&text[14..22], "000081ed");
    }
}
