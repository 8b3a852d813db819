//! Image references: `NAME[:TAG]` or `NAME@sha256:...`, where NAME may start with a registry
//! host (`127.0.0.1:5000/demo/app`). Local images are stored under the name exactly as written.

use crate::digest::Digest;
use std::fmt;
use std::str::FromStr;

/// A parsed image reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    pub name: String,
    pub tag: String,
    pub digest: Option<Digest>,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid image reference {input:?}: {why}")]
pub struct BadReference {
    pub input: String,
    pub why: String,
}

/// The longest NAME (registry host and path, without tag or digest) accepted, as docker's.
pub const MAX_NAME_LEN: usize = 255;

impl Reference {
    /// `name:tag` as stored in the image index.
    pub fn tagged(&self) -> String {
        format!("{}:{}", self.name, self.tag)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.digest {
            Some(d) => write!(f, "{}@{}", self.name, d),
            None => write!(f, "{}:{}", self.name, self.tag),
        }
    }
}

fn valid_name_component(c: &str) -> bool {
    !c.is_empty()
        && c.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && c.as_bytes()[0].is_ascii_alphanumeric()
        && c.as_bytes()[c.len() - 1].is_ascii_alphanumeric()
}

/// A registry host: dot-separated labels of letters, digits and inner '-' (so never `.` or
/// `..`), with an optional numeric port.
fn valid_host(h: &str) -> bool {
    let (host, port) = match h.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (h, None),
    };
    let label = |l: &str| {
        !l.is_empty()
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    host.split('.').all(label)
        && port
            .is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()))
}

fn valid_tag(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 128
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && t.as_bytes()[0] != b'.'
        && t.as_bytes()[0] != b'-'
}

impl FromStr for Reference {
    type Err = BadReference;
    fn from_str(input: &str) -> Result<Reference, BadReference> {
        let bad = |why: &str| BadReference {
            input: input.to_string(),
            why: why.to_string(),
        };
        let (rest, digest) = match input.split_once('@') {
            Some((rest, d)) => (
                rest,
                Some(
                    d.parse::<Digest>()
                        .map_err(|_| bad("the part after @ is not sha256:<64 hex>"))?,
                ),
            ),
            None => (input, None),
        };
        // A tag is a ':' after the last '/', so a registry port is not mistaken for one.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], &rest[last_slash + i + 1..]),
            None => (rest, "latest"),
        };
        if name.is_empty() {
            return Err(bad("empty name"));
        }
        if name.len() > MAX_NAME_LEN {
            return Err(bad(&format!(
                "the name is {} characters long; at most {MAX_NAME_LEN} are allowed",
                name.len()
            )));
        }
        if !valid_tag(tag) {
            return Err(bad(
                "a tag is 1-128 of [A-Za-z0-9_.-], not starting with '.' or '-'",
            ));
        }
        let mut parts = name.split('/').collect::<Vec<_>>();
        if parts.len() > 1 && (parts[0].contains(['.', ':']) || parts[0] == "localhost") {
            if !valid_host(parts[0]) {
                return Err(bad(&format!(
                    "registry host {:?} is not a host name: dot-separated labels of letters, \
                     digits and '-', with an optional :PORT",
                    parts[0]
                )));
            }
            parts.remove(0);
        }
        if !parts.iter().all(|c| valid_name_component(c)) {
            return Err(bad(
                "name components are lower-case letters, digits and . _ - (not at either end)",
            ));
        }
        Ok(Reference {
            name: name.to_string(),
            tag: tag.to_string(),
            digest,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        let r: Reference = "sample".parse().unwrap();
        assert_eq!((r.name.as_str(), r.tag.as_str()), ("sample", "latest"));
        let r: Reference = "127.0.0.1:5000/demo/app:1.0".parse().unwrap();
        assert_eq!(
            (r.name.as_str(), r.tag.as_str()),
            ("127.0.0.1:5000/demo/app", "1.0")
        );
        let r: Reference = "localhost:5000/app".parse().unwrap();
        assert_eq!(
            (r.name.as_str(), r.tag.as_str()),
            ("localhost:5000/app", "latest")
        );
        let d = Digest::of(b"x");
        let r: Reference = format!("app@{d}").parse().unwrap();
        assert_eq!(r.digest, Some(d));
    }

    #[test]
    fn names_are_at_most_255_characters() {
        let ok = format!("{}/{}", "a".repeat(127), "b".repeat(127));
        assert!(ok.parse::<Reference>().is_ok());
        let long = format!("{ok}b");
        let e = long.parse::<Reference>().unwrap_err();
        assert!(e.why.contains("256") && e.why.contains("255"), "{e}");
        let e = "../x".parse::<Reference>().unwrap_err();
        assert!(e.why.contains("\"..\""), "{e}");
    }

    #[test]
    fn rejects_bad_ones() {
        for bad in [
            "",
            "UPPER",
            "a:",
            "a:-x",
            "a@sha256:12",
            "a//b",
            "-a",
            "a:b:c",
            "../x",
            "./x",
            "a..b/x",
            "-a.com/x",
            ".com/x",
            "127.0.0.1:/x",
        ] {
            assert!(
                bad.parse::<Reference>().is_err(),
                "{bad} should be rejected"
            );
        }
    }
}
