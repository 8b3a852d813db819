//! A VM workload's mounts beyond its root, as the host puts them in the initramfs (`MOUNTS`,
//! one line each, in order): host directories shared through the virtio-fs device (`shared
//! INDEX ro|rw DEST`: subdirectory INDEX of what the device with tag `FS_TAG` exports), and
//! tmpfs mounts (`tmpfs ro|rw OPTIONS DEST`, OPTIONS comma-separated or `-`). DEST, the path in
//! the workload's root, ends the line (it may hold spaces). Guest init mounts them inside the
//! root before the workload starts. And `init DEST`: isola's tiny init (`--init`, which is guest
//! init's own binary) bound read-only at DEST — isola-process's `tiny_init::PATH`, where the
//! container level binds the same binary.

pub const MOUNTS: &str = "/isola/mounts";
/// The virtio-fs tag of the host's shared directories.
pub const FS_TAG: &str = "isola-shared";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GuestMount {
    Shared {
        index: usize,
        read_only: bool,
        destination: String,
    },
    Tmpfs {
        read_only: bool,
        /// Mount data, e.g. `mode=1777,size=1048576` (may be empty).
        options: String,
        /// noexec (the options' flags, apart from the data).
        exec: bool,
        destination: String,
    },
    /// Guest init's own binary, read-only (`--init`).
    Init { destination: String },
}

fn access(read_only: bool) -> &'static str {
    if read_only {
        "ro"
    } else {
        "rw"
    }
}

pub fn encode(mounts: &[GuestMount]) -> String {
    let mut out = String::new();
    for m in mounts {
        out.push_str(&match m {
            GuestMount::Shared {
                index,
                read_only,
                destination,
            } => format!("shared {index} {} {destination}\n", access(*read_only)),
            GuestMount::Tmpfs {
                read_only,
                options,
                exec,
                destination,
            } => {
                let options = if options.is_empty() { "-" } else { options };
                let exec = if *exec { "exec" } else { "noexec" };
                format!(
                    "tmpfs {} {exec} {options} {destination}\n",
                    access(*read_only)
                )
            }
            GuestMount::Init { destination } => format!("init {destination}\n"),
        });
    }
    out
}

pub fn decode(text: &str) -> Result<Vec<GuestMount>, String> {
    text.lines()
        .map(|l| {
            let bad = || format!("{MOUNTS}: malformed line {l:?}");
            let access = |a: &str| match a {
                "ro" => Ok(true),
                "rw" => Ok(false),
                _ => Err(bad()),
            };
            let (kind, rest) = l.split_once(' ').ok_or_else(bad)?;
            match kind {
                "shared" => match rest.splitn(3, ' ').collect::<Vec<_>>().as_slice() {
                    [index, a, dest] if dest.starts_with('/') => Ok(GuestMount::Shared {
                        index: index.parse().map_err(|_| bad())?,
                        read_only: access(a)?,
                        destination: dest.to_string(),
                    }),
                    _ => Err(bad()),
                },
                "tmpfs" => match rest.splitn(4, ' ').collect::<Vec<_>>().as_slice() {
                    [a, exec, options, dest] if dest.starts_with('/') => Ok(GuestMount::Tmpfs {
                        read_only: access(a)?,
                        exec: match *exec {
                            "exec" => true,
                            "noexec" => false,
                            _ => return Err(bad()),
                        },
                        options: if *options == "-" {
                            String::new()
                        } else {
                            options.to_string()
                        },
                        destination: dest.to_string(),
                    }),
                    _ => Err(bad()),
                },
                "init" if rest.starts_with('/') => Ok(GuestMount::Init {
                    destination: rest.to_string(),
                }),
                _ => Err(bad()),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_survive_the_trip_spaces_in_paths_included() {
        let mounts = vec![
            GuestMount::Shared {
                index: 0,
                read_only: false,
                destination: "/data".into(),
            },
            GuestMount::Shared {
                index: 1,
                read_only: true,
                destination: "/my files/in here".into(),
            },
            GuestMount::Tmpfs {
                read_only: false,
                options: "mode=1777,size=1048576".into(),
                exec: false,
                destination: "/tmp".into(),
            },
            GuestMount::Tmpfs {
                read_only: true,
                options: String::new(),
                exec: true,
                destination: "/t t".into(),
            },
            GuestMount::Init {
                destination: "/dev/init".into(),
            },
        ];
        assert_eq!(decode(&encode(&mounts)).unwrap(), mounts);
        assert!(decode("shared x rw /a\n").is_err());
        assert!(decode("bind 0 rw /a\n").is_err());
    }
}
