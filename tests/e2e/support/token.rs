//! A token service for docker-registry's `auth: token` mode, as Docker Hub and Harbor run one:
//! a user who passes Basic credentials to `/token?service=..&scope=repository:NAME:ACTIONS`
//! gets a JWT (RS256, the signing certificate in its `x5c` header) granting those actions; the
//! registry checks it against the certificate it was configured with. Keys and signatures are
//! made by `openssl`, so the test does not trust code of its own for the cryptography.

use super::front::{Answer, Front, Seen};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;

pub const SERVICE: &str = "isola-test-registry";
pub const ISSUER: &str = "isola-test-token-issuer";

pub struct TokenService {
    pub front: Front,
    pub cert: PathBuf,
    _dir: Arc<tempfile::TempDir>,
}

impl TokenService {
    /// Grants `user`:`password` everything asked for; refuses anyone else.
    pub fn start(user: &str, password: &str) -> TokenService {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let key = dir.path().join("key.pem");
        let cert = dir.path().join("cert.pem");
        let out = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args(["-subj", "/CN=isola-test-token-issuer", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let der = Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&cert)
            .output()
            .unwrap()
            .stdout;
        let x5c = std_base64(&der);
        let expected = format!(
            "Basic {}",
            std_base64(format!("{user}:{password}").as_bytes())
        );
        let key2 = key.clone();
        let keep = dir.clone();
        let front = Front::start(Arc::new(move |req: &Seen| {
            let _ = &keep;
            if req.header("authorization") != Some(expected.as_str()) {
                return Answer::Respond {
                    status: 401,
                    headers: vec![("Content-Type".into(), "application/json".into())],
                    body: br#"{"details":"wrong or no credentials"}"#.to_vec(),
                };
            }
            let token = mint(&key2, &x5c, "test-user", &req.query("scope"));
            Answer::Respond {
                status: 200,
                headers: vec![("Content-Type".into(), "application/json".into())],
                body: serde_json::to_vec(&serde_json::json!({
                    "token": token, "access_token": token, "expires_in": 3600
                }))
                .unwrap(),
            }
        }));
        TokenService {
            front,
            cert,
            _dir: dir,
        }
    }

    pub fn realm(&self) -> String {
        format!("{}/token", self.front.url())
    }

    /// The scopes asked for, in order.
    pub fn scopes(&self) -> Vec<String> {
        self.front
            .requests()
            .iter()
            .flat_map(|r| r.query("scope"))
            .collect()
    }
}

/// A JWT granting `scopes` (`repository:NAME:pull,push`).
fn mint(key: &std::path::Path, x5c: &str, subject: &str, scopes: &[String]) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let access: Vec<serde_json::Value> = scopes
        .iter()
        .filter_map(|s| {
            let mut parts = s.splitn(3, ':');
            let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
            Some(serde_json::json!({
                "type": kind, "name": name,
                "actions": actions.split(',').collect::<Vec<_>>()
            }))
        })
        .collect();
    let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "x5c": [x5c]});
    let claims = serde_json::json!({
        "iss": ISSUER, "sub": subject, "aud": SERVICE,
        "exp": now + 3600, "nbf": now - 60, "iat": now - 60,
        "jti": format!("{now}-{}", std::process::id()),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        url_base64(&serde_json::to_vec(&header).unwrap()),
        url_base64(&serde_json::to_vec(&claims).unwrap())
    );
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(signing_input.as_bytes())
        .unwrap();
    let signature = child.wait_with_output().unwrap().stdout;
    format!("{signing_input}.{}", url_base64(&signature))
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn std_base64(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Base64url without padding (JWT).
fn url_base64(bytes: &[u8]) -> String {
    std_base64(bytes)
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}
