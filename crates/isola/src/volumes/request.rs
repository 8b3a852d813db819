//! What `-v`, `--mount` and `--tmpfs` ask for, as docker reads them: a host directory bound in,
//! a named (or anonymous) volume of isola's store, or a tmpfs. Parsed before anything is made;
//! a malformed one is refused naming the flag and its value.

use anyhow::{bail, Result};

/// One mount a workload asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountRequest {
    pub kind: MountKind,
    /// Where it appears in the workload (absolute, not `/`).
    pub destination: String,
    pub read_only: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MountKind {
    /// A host path. `create`: made (a directory) when missing, as `-v` does; `--mount` refuses.
    Bind { source: String, create: bool },
    /// A volume of the store by name (made on first use), or an anonymous one (`None`: made for
    /// this workload, removed with it). `copy`: filled from the image's content at the
    /// destination when empty (docker's copy-up; `nocopy` turns it off).
    Volume { name: Option<String>, copy: bool },
    /// A tmpfs: its size in bytes (none: the kernel's default), mode, and whether programs on
    /// it may be executed.
    Tmpfs {
        size: Option<u64>,
        mode: u32,
        exec: bool,
    },
}

/// docker's rule for volume names.
pub fn valid_volume_name(n: &str) -> bool {
    let b = n.as_bytes();
    b.len() >= 2
        && b.len() <= 128
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c))
}

fn destination(flag: &str, value: &str, d: &str) -> Result<String> {
    if !d.starts_with('/') {
        bail!("{flag} {value}: the path in the container, {d:?}, must be absolute");
    }
    if d.split('/').any(|c| c == "..") {
        bail!("{flag} {value}: the path in the container, {d:?}, must not contain \"..\"");
    }
    let trimmed = d.trim_end_matches('/');
    if trimmed.is_empty() {
        bail!("{flag} {value}: cannot mount over the container's root \"/\"");
    }
    Ok(trimmed.to_string())
}

/// `-v [SOURCE:]PATH[:OPTIONS]`: SOURCE an absolute host path (a bind) or a volume name; PATH
/// alone, an anonymous volume. OPTIONS: `ro`, `rw`, `nocopy`, comma-separated.
pub fn parse_volume(value: &str) -> Result<MountRequest> {
    let flag = "-v";
    let parts: Vec<&str> = value.split(':').collect();
    let (source, dest, options) = match parts.as_slice() {
        [d] => (None, *d, ""),
        [s, d] if d.starts_with('/') => (Some(*s), *d, ""),
        [d, o] => (None, *d, *o),
        [s, d, o] => (Some(*s), *d, *o),
        _ => bail!("{flag} {value}: expected [SOURCE:]PATH[:OPTIONS]"),
    };
    let (mut read_only, mut copy) = (false, true);
    for o in options.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" | "readonly" => read_only = true,
            "rw" => read_only = false,
            "nocopy" => copy = false,
            // SELinux relabelling and propagation: nothing to do here.
            "z" | "Z" | "rprivate" | "private" => {}
            _ => bail!("{flag} {value}: unknown option {o:?} (expected ro, rw or nocopy)"),
        }
    }
    let destination = destination(flag, value, dest)?;
    let kind = match source {
        None => MountKind::Volume { name: None, copy },
        Some(s) if s.starts_with('/') => MountKind::Bind {
            source: s.to_string(),
            create: true,
        },
        Some(s) if s.starts_with('.') || s.contains('/') || s.starts_with('~') => bail!(
            "{flag} {value}: the host path {s:?} must be absolute (or a volume name: letters, digits, '_', '.', '-')"
        ),
        Some(s) if valid_volume_name(s) => MountKind::Volume {
            name: Some(s.to_string()),
            copy,
        },
        Some(s) => bail!(
            "{flag} {value}: {s:?} is neither an absolute host path nor a volume name (2-128 letters, digits, '_', '.', '-', starting with a letter or digit)"
        ),
    };
    Ok(MountRequest {
        kind,
        destination,
        read_only,
    })
}

/// A size as docker takes it: bytes, or with a k, m or g suffix.
fn parse_size(flag: &str, value: &str, s: &str) -> Result<u64> {
    let lower = s.to_ascii_lowercase();
    let (digits, unit) = match lower.trim_end_matches('b').char_indices().last() {
        Some((i, c @ ('k' | 'm' | 'g'))) => (&lower[..i], c),
        _ => (lower.trim_end_matches('b'), ' '),
    };
    let n: u64 = digits.parse().map_err(|_| {
        anyhow::anyhow!(
            "{flag} {value}: size {s:?}: expected a number of bytes, optionally with k, m or g"
        )
    })?;
    let mul = match unit {
        'k' => 1 << 10,
        'm' => 1 << 20,
        'g' => 1 << 30,
        _ => 1,
    };
    match n.checked_mul(mul) {
        Some(0) | None => bail!("{flag} {value}: size {s:?}: out of range"),
        Some(b) => Ok(b),
    }
}

fn parse_mode(flag: &str, value: &str, s: &str) -> Result<u32> {
    match u32::from_str_radix(s, 8) {
        Ok(m) if m <= 0o7777 => Ok(m),
        _ => bail!("{flag} {value}: mode {s:?}: expected octal permissions, e.g. 1777"),
    }
}

/// `--tmpfs PATH[:OPTIONS]`: OPTIONS `size=`, `mode=`, `ro`, `rw`, `exec`, `noexec`, and the
/// always-on `nosuid`, `nodev`.
pub fn parse_tmpfs(value: &str) -> Result<MountRequest> {
    let flag = "--tmpfs";
    let (dest, options) = value.split_once(':').unwrap_or((value, ""));
    let destination = destination(flag, value, dest)?;
    let (mut size, mut mode, mut exec, mut read_only) = (None, 0o1777, false, false);
    for o in options.split(',').filter(|o| !o.is_empty()) {
        match o.split_once('=') {
            Some(("size", s)) => size = Some(parse_size(flag, value, s)?),
            Some(("mode", m)) => mode = parse_mode(flag, value, m)?,
            None if o == "ro" => read_only = true,
            None if o == "rw" => read_only = false,
            None if o == "exec" => exec = true,
            None if o == "noexec" => exec = false,
            None if o == "nosuid" || o == "nodev" => {}
            _ => bail!(
                "{flag} {value}: unknown option {o:?} (expected size=, mode=, ro, rw, exec or noexec)"
            ),
        }
    }
    Ok(MountRequest {
        kind: MountKind::Tmpfs { size, mode, exec },
        destination,
        read_only,
    })
}

/// `--mount type=bind|volume|tmpfs,source=...,target=...[,readonly]` and the per-type keys
/// docker knows (`volume-nocopy`, `tmpfs-size`, `tmpfs-mode`, `bind-propagation`).
pub fn parse_mount(value: &str) -> Result<MountRequest> {
    let flag = "--mount";
    let (mut typ, mut source, mut target) = ("volume", None, None);
    let (mut read_only, mut copy, mut size, mut mode) = (false, true, None, 0o1777);
    for field in value.split(',') {
        let (k, v) = match field.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (field, None),
        };
        let boolean = |v: Option<&str>| match v {
            None | Some("true") | Some("1") => Ok(true),
            Some("false") | Some("0") => Ok(false),
            Some(other) => bail!("{flag} {value}: {k}={other}: expected true or false"),
        };
        match (k, v) {
            ("type", Some(t @ ("bind" | "volume" | "tmpfs"))) => typ = t,
            ("type", Some(t)) => {
                bail!("{flag} {value}: type {t:?}: expected bind, volume or tmpfs")
            }
            ("source" | "src", Some(s)) => source = Some(s),
            ("target" | "destination" | "dst", Some(t)) => target = Some(t),
            ("readonly" | "ro", v) => read_only = boolean(v)?,
            ("volume-nocopy", v) => copy = !boolean(v)?,
            ("tmpfs-size", Some(s)) => size = Some(parse_size(flag, value, s)?),
            ("tmpfs-mode", Some(m)) => mode = parse_mode(flag, value, m)?,
            ("bind-propagation", Some("rprivate" | "private")) => {}
            _ => bail!("{flag} {value}: unknown or incomplete field {field:?}"),
        }
    }
    let Some(target) = target else {
        bail!("{flag} {value}: no target= (the path in the container)");
    };
    let destination = destination(flag, value, target)?;
    let kind = match (typ, source) {
        ("bind", None) => bail!("{flag} {value}: a bind mount needs source= (a host path)"),
        ("bind", Some(s)) if !s.starts_with('/') => {
            bail!("{flag} {value}: the host path {s:?} must be absolute")
        }
        ("bind", Some(s)) => MountKind::Bind {
            source: s.to_string(),
            create: false,
        },
        ("volume", None) => MountKind::Volume { name: None, copy },
        ("volume", Some(s)) if valid_volume_name(s) => MountKind::Volume {
            name: Some(s.to_string()),
            copy,
        },
        ("volume", Some(s)) => bail!("{flag} {value}: {s:?} is not a volume name (2-128 letters, digits, '_', '.', '-', starting with a letter or digit)"),
        (_, Some(s)) => bail!("{flag} {value}: a tmpfs takes no source (got {s:?})"),
        (_, None) => MountKind::Tmpfs {
            size,
            mode,
            exec: false,
        },
    };
    Ok(MountRequest {
        kind,
        destination,
        read_only,
    })
}

/// Every mount asked for, in flag order within each flag; two at one destination refused.
pub fn parse_all(
    volumes: &[String],
    mounts: &[String],
    tmpfs: &[String],
) -> Result<Vec<MountRequest>> {
    let mut all = Vec::new();
    for v in volumes {
        all.push(parse_volume(v)?);
    }
    for m in mounts {
        all.push(parse_mount(m)?);
    }
    for t in tmpfs {
        all.push(parse_tmpfs(t)?);
    }
    for (i, a) in all.iter().enumerate() {
        if all[..i].iter().any(|b| b.destination == a.destination) {
            bail!(
                "two mounts at {}: each path in the container takes one",
                a.destination
            );
        }
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bind(s: &str, d: &str, ro: bool) -> MountRequest {
        MountRequest {
            kind: MountKind::Bind {
                source: s.into(),
                create: true,
            },
            destination: d.into(),
            read_only: ro,
        }
    }

    #[test]
    fn dash_v_takes_binds_named_and_anonymous_volumes() {
        assert_eq!(
            parse_volume("/srv/data:/data").unwrap(),
            bind("/srv/data", "/data", false)
        );
        assert_eq!(
            parse_volume("/srv:/data/:ro").unwrap(),
            bind("/srv", "/data", true)
        );
        let v = parse_volume("cache:/var/cache:ro,nocopy").unwrap();
        assert_eq!(
            v.kind,
            MountKind::Volume {
                name: Some("cache".into()),
                copy: false
            }
        );
        assert!(v.read_only);
        let anon = parse_volume("/scratch").unwrap();
        assert_eq!(
            anon.kind,
            MountKind::Volume {
                name: None,
                copy: true
            }
        );
        assert!(parse_volume("/scratch:ro").unwrap().read_only);
    }

    #[test]
    fn malformed_specs_are_refused_by_value() {
        for (bad, says) in [
            ("./rel:/x", "must be absolute"),
            ("/a:rel", "unknown option \"rel\""),
            ("/a:/", "root"),
            ("/a:/x:rx", "unknown option \"rx\""),
            ("/a:/x/../y", "\"..\""),
            ("a:b:c:d", "expected [SOURCE:]PATH"),
            ("x:/y", "neither"),
        ] {
            let e = parse_volume(bad).unwrap_err().to_string();
            assert!(e.contains(bad) && e.contains(says), "{bad}: {e}");
        }
        for (bad, says) in [
            ("type=bind,target=/x", "needs source="),
            ("type=nfs,target=/x", "type \"nfs\""),
            ("type=bind,src=/a", "no target="),
            ("type=tmpfs,src=x,dst=/t", "takes no source"),
            ("type=bind,src=/a,dst=/b,colour=red", "colour=red"),
            ("type=tmpfs,dst=/t,tmpfs-size=lots", "size \"lots\""),
        ] {
            let e = parse_mount(bad).unwrap_err().to_string();
            assert!(e.contains(bad) && e.contains(says), "{bad}: {e}");
        }
        let e = parse_tmpfs("/t:mode=999").unwrap_err().to_string();
        assert!(e.contains("mode \"999\""), "{e}");
        let e = parse_all(&["/a:/x".into()], &[], &["/x".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("two mounts at /x"), "{e}");
    }

    #[test]
    fn mount_and_tmpfs_read_docker_s_fields() {
        let m = parse_mount("type=bind,source=/srv,target=/data,readonly").unwrap();
        assert_eq!(
            m,
            MountRequest {
                kind: MountKind::Bind {
                    source: "/srv".into(),
                    create: false
                },
                destination: "/data".into(),
                read_only: true
            }
        );
        let t = parse_mount("type=tmpfs,dst=/run,tmpfs-size=64m,tmpfs-mode=755").unwrap();
        assert_eq!(
            t.kind,
            MountKind::Tmpfs {
                size: Some(64 << 20),
                mode: 0o755,
                exec: false
            }
        );
        let t = parse_tmpfs("/cache:size=1g,mode=700,exec").unwrap();
        assert_eq!(
            t.kind,
            MountKind::Tmpfs {
                size: Some(1 << 30),
                mode: 0o700,
                exec: true
            }
        );
        assert_eq!(
            parse_mount("src=data,dst=/d").unwrap().kind,
            MountKind::Volume {
                name: Some("data".into()),
                copy: true
            }
        );
    }
}
