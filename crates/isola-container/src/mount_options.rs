//! OCI mount options (`["nosuid", "ro", "mode=755"]`) → mount(2) flags and data string.

use nix::mount::MsFlags;

/// Parsed options of one mount.
#[derive(Debug, PartialEq, Eq)]
pub struct MountOptions {
    pub flags: MsFlags,
    /// Propagation changes applied after the mount (`rprivate`, `slave`, ...).
    pub propagation: MsFlags,
    /// Filesystem-specific options, comma-joined.
    pub data: String,
}

impl MountOptions {
    pub fn is_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND)
    }
}

const NONE: MsFlags = MsFlags::empty();

/// The options that are mount flags: (name, flags it sets, flags it clears).
const FLAG_OPTIONS: &[(&str, MsFlags, MsFlags)] = &[
    ("ro", MsFlags::MS_RDONLY, NONE),
    ("rw", NONE, MsFlags::MS_RDONLY),
    ("nosuid", MsFlags::MS_NOSUID, NONE),
    ("suid", NONE, MsFlags::MS_NOSUID),
    ("nodev", MsFlags::MS_NODEV, NONE),
    ("dev", NONE, MsFlags::MS_NODEV),
    ("noexec", MsFlags::MS_NOEXEC, NONE),
    ("exec", NONE, MsFlags::MS_NOEXEC),
    ("sync", MsFlags::MS_SYNCHRONOUS, NONE),
    ("async", NONE, MsFlags::MS_SYNCHRONOUS),
    ("dirsync", MsFlags::MS_DIRSYNC, NONE),
    ("remount", MsFlags::MS_REMOUNT, NONE),
    ("mand", MsFlags::MS_MANDLOCK, NONE),
    ("nomand", NONE, MsFlags::MS_MANDLOCK),
    ("atime", NONE, MsFlags::MS_NOATIME),
    ("noatime", MsFlags::MS_NOATIME, NONE),
    ("diratime", NONE, MsFlags::MS_NODIRATIME),
    ("nodiratime", MsFlags::MS_NODIRATIME, NONE),
    ("relatime", MsFlags::MS_RELATIME, NONE),
    ("norelatime", NONE, MsFlags::MS_RELATIME),
    ("strictatime", MsFlags::MS_STRICTATIME, NONE),
    ("nostrictatime", NONE, MsFlags::MS_STRICTATIME),
    ("bind", MsFlags::MS_BIND, NONE),
    ("rbind", MsFlags::MS_BIND.union(MsFlags::MS_REC), NONE),
];

/// The propagation options: (name, propagation flags).
const PROPAGATION_OPTIONS: &[(&str, MsFlags)] = &[
    ("private", MsFlags::MS_PRIVATE),
    ("rprivate", MsFlags::MS_PRIVATE.union(MsFlags::MS_REC)),
    ("shared", MsFlags::MS_SHARED),
    ("rshared", MsFlags::MS_SHARED.union(MsFlags::MS_REC)),
    ("slave", MsFlags::MS_SLAVE),
    ("rslave", MsFlags::MS_SLAVE.union(MsFlags::MS_REC)),
    ("unbindable", MsFlags::MS_UNBINDABLE),
    ("runbindable", MsFlags::MS_UNBINDABLE.union(MsFlags::MS_REC)),
];

/// Every option isola reads as a flag (others go to the filesystem as data), for `features`.
pub fn known() -> impl Iterator<Item = &'static str> {
    FLAG_OPTIONS
        .iter()
        .map(|o| o.0)
        .chain(PROPAGATION_OPTIONS.iter().map(|o| o.0))
}

pub fn parse(options: &[String]) -> MountOptions {
    let mut flags = MsFlags::empty();
    let mut propagation = MsFlags::empty();
    let mut data: Vec<&str> = Vec::new();
    for o in options {
        if let Some((_, set, clear)) = FLAG_OPTIONS.iter().find(|f| f.0 == o) {
            flags |= *set;
            flags &= !*clear;
        } else if let Some((_, p)) = PROPAGATION_OPTIONS.iter().find(|f| f.0 == o) {
            propagation |= *p;
        } else {
            data.push(o);
        }
    }
    MountOptions {
        flags,
        propagation,
        data: data.join(","),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_data() {
        let o = parse(&[
            "nosuid".into(),
            "strictatime".into(),
            "mode=755".into(),
            "size=65536k".into(),
        ]);
        assert_eq!(o.flags, MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME);
        assert_eq!(o.data, "mode=755,size=65536k");
        let o = parse(&["rbind".into(), "ro".into(), "rprivate".into()]);
        assert!(o.is_bind());
        assert!(o.flags.contains(MsFlags::MS_REC | MsFlags::MS_RDONLY));
        assert_eq!(o.propagation, MsFlags::MS_PRIVATE | MsFlags::MS_REC);
    }
}
