//! Registry authentication: the `WWW-Authenticate` challenge (Bearer with realm, service and
//! scope, or Basic), credentials from `--user` or a docker-style `auth.json`, and the token
//! request.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// A user name and password (or token) for one registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl Credentials {
    /// `USER:PASSWORD`.
    pub fn parse(s: &str) -> Option<Credentials> {
        let (user, password) = s.split_once(':')?;
        (!user.is_empty()).then(|| Credentials {
            user: user.to_string(),
            password: password.to_string(),
        })
    }

    /// `Basic base64(user:password)`.
    pub fn basic_header(&self) -> String {
        format!(
            "Basic {}",
            base64(format!("{}:{}", self.user, self.password).as_bytes())
        )
    }

    /// The credentials docker-style auth files hold for `registry`: `$REGISTRY_AUTH_FILE`,
    /// `$XDG_RUNTIME_DIR/containers/auth.json`, `~/.docker/config.json`, first match wins.
    pub fn from_auth_files(registry: &str) -> Option<Credentials> {
        let mut files: Vec<PathBuf> = Vec::new();
        if let Some(f) = std::env::var_os("REGISTRY_AUTH_FILE") {
            files.push(f.into());
        }
        if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR") {
            files.push(PathBuf::from(d).join("containers/auth.json"));
        }
        if let Some(h) = std::env::var_os("HOME") {
            files.push(PathBuf::from(h).join(".docker/config.json"));
        }
        let keys = match registry {
            "registry-1.docker.io" => vec![
                "docker.io".to_string(),
                "https://index.docker.io/v1/".to_string(),
            ],
            r => vec![r.to_string(), format!("https://{r}")],
        };
        files.iter().find_map(|f| {
            let text = std::fs::read_to_string(f).ok()?;
            let v: serde_json::Value = serde_json::from_str(&text).ok()?;
            let auths = v.get("auths")?;
            keys.iter().find_map(|k| {
                let encoded = auths.get(k)?.get("auth")?.as_str()?;
                Credentials::parse(&String::from_utf8(unbase64(encoded)?).ok()?)
            })
        })
    }
}

/// A parsed `WWW-Authenticate` header.
#[derive(Debug, PartialEq, Eq)]
pub enum Challenge {
    Bearer {
        realm: String,
        params: BTreeMap<String, String>,
    },
    Basic,
}

/// Parses `Bearer realm="...",service="...",scope="..."` or `Basic realm="..."`.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let (scheme, rest) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut params = BTreeMap::new();
    let mut s = rest.trim();
    while !s.is_empty() {
        let (key, after) = s.split_once('=')?;
        let after = after.trim_start();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"')?;
            (&quoted[..end], &quoted[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        params.insert(key.trim().to_ascii_lowercase(), value.to_string());
        s = next.trim_start().trim_start_matches(',').trim_start();
    }
    let realm = params.remove("realm")?;
    Some(Challenge::Bearer { realm, params })
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unbase64(s: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull""#,
        )
        .unwrap();
        let Challenge::Bearer { realm, params } = c else {
            panic!()
        };
        assert_eq!(realm, "https://auth.example/token");
        assert_eq!(params["service"], "registry.example");
        assert_eq!(params["scope"], "repository:a/b:pull");
        assert_eq!(
            parse_challenge(r#"Basic realm="x""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(parse_challenge(r#"Bearer service="no realm""#), None);
    }

    #[test]
    fn base64_round_trips() {
        for s in ["", "a", "ab", "abc", "user:pa:ss", "éè"] {
            assert_eq!(unbase64(&base64(s.as_bytes())).unwrap(), s.as_bytes());
        }
        assert_eq!(base64(b"user:pass"), "dXNlcjpwYXNz");
        let c = Credentials::parse("user:pass").unwrap();
        assert_eq!(c.basic_header(), "Basic dXNlcjpwYXNz");
        assert_eq!(Credentials::parse("nocolon"), None);
    }
}
