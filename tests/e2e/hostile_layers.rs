//! Hostile layers: tar streams written entry by entry (names, links and whiteouts no honest
//! tool would emit), imported as images and unpacked by the real binary — into the rootfs cache
//! that both isolation levels use, and into a bundle. Beside each one sits a sentinel directory
//! outside the rootfs; whatever the layer tries, it must come out byte for byte, mode for mode,
//! entry for entry the same, and the layer must either fail with a line naming the entry or land
//! wholly inside the rootfs.

use isola_e2e::Env;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// One tar entry: name, type flag, link target, contents, extended attributes (as PAX
/// `SCHILY.xattr.*` records).
struct Entry<'a> {
    name: &'a str,
    kind: u8,
    link: &'a str,
    data: &'a [u8],
    mode: u32,
    xattrs: &'a [(&'a str, &'a [u8])],
}

const FILE: u8 = b'0';
const HARDLINK: u8 = b'1';
const SYMLINK: u8 = b'2';
const DIR: u8 = b'5';

fn file<'a>(name: &'a str, data: &'a [u8]) -> Entry<'a> {
    Entry {
        name,
        kind: FILE,
        link: "",
        data,
        mode: 0o644,
        xattrs: &[],
    }
}

fn symlink<'a>(name: &'a str, target: &'a str) -> Entry<'a> {
    Entry {
        name,
        kind: SYMLINK,
        link: target,
        data: b"",
        mode: 0o777,
        xattrs: &[],
    }
}

fn hardlink<'a>(name: &'a str, target: &'a str) -> Entry<'a> {
    Entry {
        name,
        kind: HARDLINK,
        link: target,
        data: b"",
        mode: 0o644,
        xattrs: &[],
    }
}

fn dir(name: &str, mode: u32) -> Entry<'_> {
    Entry {
        name,
        kind: DIR,
        link: "",
        data: b"",
        mode,
        xattrs: &[],
    }
}

/// A PAX record: "LENGTH KEY=VALUE\n", LENGTH counting itself.
fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let body = [b" ", key.as_bytes(), b"=", value, b"\n"].concat();
    let mut len = body.len() + 1;
    while format!("{len}").len() + body.len() != len {
        len += 1;
    }
    [format!("{len}").as_bytes(), &body].concat()
}

/// A ustar archive written field by field: nothing checks or cleans the names.
fn tar(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        if !e.xattrs.is_empty() {
            let records: Vec<u8> = e
                .xattrs
                .iter()
                .flat_map(|(k, v)| pax_record(&format!("SCHILY.xattr.{k}"), v))
                .collect();
            let pax = Entry {
                name: "PaxHeader",
                kind: b'x',
                link: "",
                data: &records,
                mode: 0o644,
                xattrs: &[],
            };
            out.extend(&tar(&[pax])[..]);
            out.truncate(out.len() - 1024); // no end-of-archive blocks yet
        }
        assert!(e.name.len() <= 100 && e.link.len() <= 100, "{}", e.name);
        let mut h = [0u8; 512];
        let put = |h: &mut [u8; 512], at: usize, bytes: &[u8]| {
            h[at..at + bytes.len()].copy_from_slice(bytes)
        };
        put(&mut h, 0, e.name.as_bytes());
        put(&mut h, 100, format!("{:07o}\0", e.mode).as_bytes());
        put(&mut h, 108, b"0000000\0");
        put(&mut h, 116, b"0000000\0");
        put(&mut h, 124, format!("{:011o}\0", e.data.len()).as_bytes());
        put(&mut h, 136, b"00000000000\0");
        put(&mut h, 148, b"        ");
        h[156] = e.kind;
        put(&mut h, 157, e.link.as_bytes());
        put(&mut h, 257, b"ustar\x0000");
        let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
        put(&mut h, 148, format!("{sum:06o}\0 ").as_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(e.data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

/// Files, modes and contents under `dir`, for before/after comparison.
fn snapshot(dir: &Path) -> Vec<(PathBuf, u32, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let m = std::fs::symlink_metadata(&d).unwrap();
        out.push((d.clone(), m.permissions().mode(), Vec::new()));
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p);
            } else {
                let data = std::fs::read(&p).unwrap_or_default();
                out.push((p, m.permissions().mode(), data));
            }
        }
    }
    out.sort();
    out
}

/// What a hostile layer must come to.
enum Expect<'a> {
    /// Refused, with the offending entry named.
    Refused(&'a str),
    /// Unpacked, with this file (rootfs-relative) holding this content.
    Inside(&'a str, &'a [u8]),
}

/// Imports `layer` as an image, unpacks it (rootfs cache and a bundle), and checks the sentinel
/// directory and the outcome.
fn check(env: &Env, sentinel: &Path, name: &str, layer: &[u8], expect: Expect) {
    let before = snapshot(sentinel);
    let work = tempfile::tempdir().unwrap();
    let tarball = work.path().join(format!("{name}.tar"));
    std::fs::write(&tarball, layer).unwrap();
    let r = env.isola(&["import", tarball.to_str().unwrap(), name]);
    assert_eq!(r.code, 0, "{name}: import: {}", r.stderr);
    let bundle = work.path().join("bundle");
    // Twice: a refused layer must be refused again, never trusted from a half-applied try.
    for attempt in 0..2 {
        let r = env.isola(&["bundle", name, bundle.to_str().unwrap(), "true"]);
        match &expect {
            Expect::Refused(entry) => {
                assert_eq!(r.code, 125, "{name} (try {attempt}): {}", r.stderr);
                assert!(
                    r.stderr.contains(entry),
                    "{name}: the error names {entry:?}: {}",
                    r.stderr
                );
                assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
                assert!(!bundle.exists(), "{name}: a refused bundle is removed");
                let cache = env.root.join("rootfs");
                let left: Vec<_> = std::fs::read_dir(&cache)
                    .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
                    .unwrap_or_default();
                assert!(
                    left.iter()
                        .all(|n| !n.to_string_lossy().starts_with(".tmp")),
                    "{name}: half-unpacked rootfs left: {left:?}"
                );
            }
            Expect::Inside(path, content) => {
                assert_eq!(r.code, 0, "{name}: {}", r.stderr);
                let got = std::fs::read(bundle.join("rootfs").join(path))
                    .unwrap_or_else(|e| panic!("{name}: {path}: {e}"));
                assert_eq!(&got, content, "{name}: {path}");
                std::fs::remove_dir_all(&bundle).unwrap();
            }
        }
    }
    assert_eq!(
        snapshot(sentinel),
        before,
        "{name}: the host outside was touched"
    );
    assert_eq!(env.isola(&["rmi", name]).code, 0);
}

#[test]
fn hostile_layers_never_reach_outside_the_rootfs() {
    let env = Env::new();
    // Outside every rootfs: a directory with a file, its mode and contents watched.
    let host = tempfile::Builder::new()
        .prefix("isola-hostile-")
        .tempdir_in("/tmp")
        .unwrap();
    let sentinel = host.path();
    std::fs::write(sentinel.join("sentinel"), b"untouched\n").unwrap();
    std::fs::set_permissions(sentinel, std::fs::Permissions::from_mode(0o755)).unwrap();
    let s = sentinel.to_str().unwrap();
    let up = "../../../../../../../../../../..";
    let climb = format!("{up}{s}/pwned");
    let abs = format!("{s}/pwned");
    let abs_sentinel = format!("{s}/sentinel");
    let wh = ".wh.sentinel";

    // `..` in a name.
    check(
        &env,
        sentinel,
        "dotdot",
        &tar(&[file(&climb, b"x")]),
        Expect::Refused("'..' in an entry name"),
    );
    // An absolute name is a path inside the rootfs.
    check(
        &env,
        sentinel,
        "absolute",
        &tar(&[file(&abs, b"inside\n")]),
        Expect::Inside(abs.trim_start_matches('/'), b"inside\n"),
    );
    // A symlink to the host directory, then a file through it: lands under the rootfs's own
    // copy of that path (the link resolves inside the root).
    check(
        &env,
        sentinel,
        "symlink-abs",
        &tar(&[
            dir(s.trim_start_matches('/'), 0o755),
            symlink("escape", s),
            file("escape/pwned", b"inside\n"),
        ]),
        Expect::Inside(&format!("{}/pwned", s.trim_start_matches('/')), b"inside\n"),
    );
    // A symlink to `..` many times over, then entries through it.
    check(
        &env,
        sentinel,
        "symlink-up",
        &tar(&[symlink("up", up), file(&format!("up{abs}"), b"inside\n")]),
        Expect::Inside(abs.trim_start_matches('/'), b"inside\n"),
    );
    // A symlink to `/`, then a file through it.
    check(
        &env,
        sentinel,
        "symlink-root",
        &tar(&[
            symlink("rootlink", "/"),
            file(&format!("rootlink{abs}"), b"inside\n"),
        ]),
        Expect::Inside(abs.trim_start_matches('/'), b"inside\n"),
    );
    // A symlink to the host directory, then a directory of the same name (with a mode the
    // host directory must not get), then a file in it.
    check(
        &env,
        sentinel,
        "symlink-then-dir",
        &tar(&[
            symlink("d", s),
            dir("d", 0o777),
            file("d/pwned", b"inside\n"),
        ]),
        Expect::Inside("d/pwned", b"inside\n"),
    );
    // Hard links to a path outside: by `..`, and by an absolute name (which stays inside,
    // where there is no such file).
    check(
        &env,
        sentinel,
        "hardlink-dotdot",
        &tar(&[hardlink("hl", &format!("{up}{abs_sentinel}"))]),
        Expect::Refused("hl"),
    );
    check(
        &env,
        sentinel,
        "hardlink-abs",
        &tar(&[hardlink("hl", &abs_sentinel)]),
        Expect::Refused(&format!(
            "hardlink target {abs_sentinel} does not exist in the rootfs"
        )),
    );
    // A hard link to a symlink that points outside links the symlink itself; a file written
    // over either name then replaces the link instead of following it.
    check(
        &env,
        sentinel,
        "hardlink-to-symlink",
        &tar(&[
            symlink("s", &abs_sentinel),
            hardlink("hl", "s"),
            file("hl", b"replaced\n"),
            file("s", b"replaced too\n"),
        ]),
        Expect::Inside("s", b"replaced too\n"),
    );
    // A whiteout through a symlinked parent deletes nothing outside.
    check(
        &env,
        sentinel,
        "whiteout-through-symlink",
        &tar(&[
            symlink("w", s),
            file("keep", b"kept\n"),
            file(&format!("w/{wh}"), b""),
        ]),
        Expect::Inside("keep", b"kept\n"),
    );
    // A bare `.wh.` names nothing.
    check(
        &env,
        sentinel,
        "bare-whiteout",
        &tar(&[file("a", b"a\n"), file(".wh.", b"")]),
        Expect::Refused("whiteout names no file"),
    );
    // Duplicate entries: the last one wins, as in any tar extraction.
    check(
        &env,
        sentinel,
        "duplicates",
        &tar(&[file("dup", b"one\n"), file("dup", b"two\n")]),
        Expect::Inside("dup", b"two\n"),
    );
    env.assert_clean();
}

/// An extended attribute of `path` (not following a symlink), if set.
fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let p = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    let mut buf = vec![0u8; 256];
    // SAFETY: lgetxattr writes at most buf.len() bytes into buf; both strings are NUL-terminated.
    let len =
        unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (len >= 0).then(|| buf[..len as usize].to_vec())
}

#[test]
fn extended_attributes_are_kept_but_not_overlayfs_ones() {
    let env = Env::new();
    // File capabilities (v2: effective; cap_net_raw permitted), a user attribute, and an
    // overlayfs attribute a layer has no business setting.
    let mut cap = Vec::new();
    for v in [0x0200_0001u32, 1 << 13, 0, 0, 0] {
        cap.extend_from_slice(&v.to_le_bytes());
    }
    let layer = tar(&[
        Entry {
            name: "d",
            kind: DIR,
            link: "",
            data: b"",
            mode: 0o755,
            xattrs: &[("trusted.overlay.opaque", b"y"), ("user.dir", b"d")],
        },
        Entry {
            name: "d/ping",
            kind: FILE,
            link: "",
            data: b"#!/bin/sh\n",
            mode: 0o755,
            xattrs: &[("user.test", b"hello"), ("security.capability", &cap)],
        },
    ]);
    let work = tempfile::tempdir().unwrap();
    let tarball = work.path().join("xattrs.tar");
    std::fs::write(&tarball, layer).unwrap();
    let r = env.isola(&["import", tarball.to_str().unwrap(), "xattrs"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let bundle = work.path().join("bundle");
    let r = env.isola(&["bundle", "xattrs", bundle.to_str().unwrap(), "true"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // In the bundle and in the rootfs cache both isolation levels start from.
    let cached: Vec<PathBuf> = std::fs::read_dir(env.root.join("rootfs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(cached.len(), 1, "{cached:?}");
    for root in [bundle.join("rootfs"), cached[0].join("fs")] {
        let d = root.join("d");
        let f = d.join("ping");
        assert_eq!(
            xattr(&f, "user.test").as_deref(),
            Some(&b"hello"[..]),
            "{f:?}"
        );
        assert_eq!(xattr(&f, "security.capability"), Some(cap.clone()), "{f:?}");
        assert_eq!(xattr(&d, "user.dir").as_deref(), Some(&b"d"[..]), "{d:?}");
        assert_eq!(xattr(&d, "trusted.overlay.opaque"), None, "{d:?}");
    }
}
