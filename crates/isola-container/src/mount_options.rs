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

pub fn parse(options: &[String]) -> MountOptions {
    let mut flags = MsFlags::empty();
    let mut propagation = MsFlags::empty();
    let mut data: Vec<&str> = Vec::new();
    for o in options {
        let (set, clear) = match o.as_str() {
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "remount" => (MsFlags::MS_REMOUNT, MsFlags::empty()),
            "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty()),
            "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME),
            "bind" => (MsFlags::MS_BIND, MsFlags::empty()),
            "rbind" => (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty()),
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable"
            | "runbindable" => {
                let mut p = match o.trim_start_matches('r') {
                    "private" => MsFlags::MS_PRIVATE,
                    "shared" => MsFlags::MS_SHARED,
                    "slave" => MsFlags::MS_SLAVE,
                    _ => MsFlags::MS_UNBINDABLE,
                };
                if o.starts_with('r') && o != "rw" {
                    p |= MsFlags::MS_REC;
                }
                propagation |= p;
                continue;
            }
            other => {
                data.push(other);
                continue;
            }
        };
        flags |= set;
        flags &= !clear;
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
