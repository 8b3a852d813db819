//! Resolving `USER[:GROUP]` against an image's own `/etc/passwd` and `/etc/group`, read as data
//! from inside the rootfs (never through the host's NSS).

use isola_inroot::Root;
use std::path::Path;

/// The identity a workload runs as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub home: String,
}

#[derive(Debug, thiserror::Error)]
#[error("user {spec:?}: {why}")]
pub struct UserError {
    pub spec: String,
    pub why: String,
}

pub use isola_process::plan::MAX_ID;

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(PasswdEntry {
                name: f.first()?.to_string(),
                uid: f.get(2)?.parse().ok()?,
                gid: f.get(3)?.parse().ok()?,
                home: f.get(5).unwrap_or(&"/").to_string(),
            })
        })
        .collect()
}

fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(GroupEntry {
                name: f.first()?.to_string(),
                gid: f.get(2)?.parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .filter(|s| !s.is_empty())
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

fn read_text(root: &Root, path: &str) -> String {
    root.read_file(Path::new(path))
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// Resolves a user spec (`name`, `uid`, `name:group`, `uid:gid`, ...; empty = root) in `root`.
pub fn resolve_user(root: &Root, spec: &str) -> Result<ExecUser, UserError> {
    resolve_user_in(
        &read_text(root, "/etc/passwd"),
        &read_text(root, "/etc/group"),
        spec,
    )
}

/// As [`resolve_user`], from the two files' contents.
pub fn resolve_user_in(passwd: &str, group: &str, spec: &str) -> Result<ExecUser, UserError> {
    let err = |why: String| UserError {
        spec: spec.to_string(),
        why,
    };
    let passwd = parse_passwd(passwd);
    let groups = parse_group(group);
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user_part = if user_part.is_empty() { "0" } else { user_part };
    let (uid, mut gid, home, name) = match user_part.parse::<u32>() {
        Ok(uid) => match passwd.iter().find(|p| p.uid == uid) {
            Some(p) => (uid, p.gid, p.home.clone(), Some(p.name.clone())),
            None => (uid, 0, "/".to_string(), None),
        },
        Err(_) => match passwd.iter().find(|p| p.name == user_part) {
            Some(p) => (p.uid, p.gid, p.home.clone(), Some(p.name.clone())),
            None => {
                return Err(err(format!(
                    "no user named {user_part:?} in the image's /etc/passwd"
                )))
            }
        },
    };
    if let Some(g) = group_part {
        if g.is_empty() {
            return Err(err("empty group after ':'".into()));
        }
        gid = match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => groups
                .iter()
                .find(|e| e.name == g)
                .map(|e| e.gid)
                .ok_or_else(|| err(format!("no group named {g:?} in the image's /etc/group")))?,
        };
    }
    // (uid_t)-1 means "no change" to setresuid: 4294967295 would leave the workload root.
    // Docker's range for both is 0 to 2^31-1.
    for (what, id) in [("uid", uid), ("gid", gid)] {
        if id > MAX_ID {
            return Err(err(format!("{what} {id} is out of range (0 to {MAX_ID})")));
        }
    }
    let mut additional_gids: Vec<u32> = match (&name, group_part) {
        (Some(n), None) => groups
            .iter()
            .filter(|g| g.members.iter().any(|m| m == n))
            .map(|g| g.gid)
            .collect(),
        _ => Vec::new(),
    };
    additional_gids.retain(|g| *g != gid && *g <= MAX_ID);
    additional_gids.sort_unstable();
    additional_gids.dedup();
    Ok(ExecUser {
        uid,
        gid,
        additional_gids,
        home,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\nalice:x:1000:1000::/home/alice:/bin/sh\n";
    const GROUP: &str =
        "root:x:0:\nnogroup:x:65534:\nalice:x:1000:\nwheel:x:10:alice\naudio:x:29:bob,alice\n";

    #[test]
    fn names_numbers_and_groups() {
        let u = resolve_user_in(PASSWD, GROUP, "alice").unwrap();
        assert_eq!(
            (u.uid, u.gid, u.additional_gids.clone(), u.home.as_str()),
            (1000, 1000, vec![10, 29], "/home/alice")
        );
        let u = resolve_user_in(PASSWD, GROUP, "1000:wheel").unwrap();
        assert_eq!((u.uid, u.gid, u.additional_gids.len()), (1000, 10, 0));
        let u = resolve_user_in(PASSWD, GROUP, "4242").unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (4242, 0, "/"));
        let u = resolve_user_in(PASSWD, GROUP, "").unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (0, 0, "/root"));
    }

    #[test]
    fn unknown_names_are_errors() {
        assert!(resolve_user_in(PASSWD, GROUP, "mallory").is_err());
        assert!(resolve_user_in(PASSWD, GROUP, "alice:nosuch").is_err());
        assert!(resolve_user_in("", "", "alice").is_err());
    }
}
