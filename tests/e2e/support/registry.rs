//! Debian's `docker-registry` (the CNCF distribution registry) on 127.0.0.1 for one test: its
//! own config and storage, anonymous or behind htpasswd (basic) or token auth, killed and
//! removed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How the registry lets clients in.
pub enum Auth {
    Anonymous,
    /// Basic auth against an htpasswd file of bcrypt hashes.
    Htpasswd {
        user: String,
        password: String,
    },
    /// Bearer tokens (JWTs) from `realm`, signed by the key of the PEM certificate `cert`.
    Token {
        realm: String,
        service: String,
        issuer: String,
        cert: PathBuf,
    },
}

pub struct Registry {
    child: Child,
    pub port: u16,
    pub storage: PathBuf,
    _dir: tempfile::TempDir,
}

/// A free port on 127.0.0.1 (free when asked; the registry binds it right after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Registry {
    pub fn start() -> Registry {
        Registry::start_with(Auth::Anonymous)
    }

    pub fn start_with(auth: Auth) -> Registry {
        // A port free when chosen may be taken by another test's server before the registry
        // binds it: then the registry exits at once while the other server answers. Try again.
        for _ in 0..5 {
            if let Some(r) = Registry::try_start(&auth) {
                return r;
            }
        }
        panic!("docker-registry did not stay up on any of 5 ports");
    }

    fn try_start(auth: &Auth) -> Option<Registry> {
        let dir = tempfile::tempdir().unwrap();
        let storage = dir.path().join("storage");
        let port = free_port();
        let auth_section = match auth {
            Auth::Anonymous => String::new(),
            Auth::Htpasswd { user, password } => {
                let file = dir.path().join("htpasswd");
                std::fs::write(&file, format!("{user}:{}\n", bcrypt(password))).unwrap();
                format!(
                    "auth:\n  htpasswd:\n    realm: isola-test\n    path: {}\n",
                    file.display()
                )
            }
            Auth::Token {
                realm,
                service,
                issuer,
                cert,
            } => format!(
                "auth:\n  token:\n    realm: {realm}\n    service: {service}\n    issuer: {issuer}\n    \
                 rootcertbundle: {}\n",
                cert.display()
            ),
        };
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
                 http:\n  addr: 127.0.0.1:{port}\n{auth_section}",
                storage.display()
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "docker-registry (Debian package docker-registry) is installed by scripts/test",
            );
        let r = Registry {
            child,
            port,
            storage,
            _dir: dir,
        };
        let mut r = r;
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "docker-registry did not listen on {port}"
            );
            if r.child.try_wait().unwrap().is_some() {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(150));
        if r.child.try_wait().unwrap().is_some() {
            return None;
        }
        Some(r)
    }

    /// `127.0.0.1:PORT/REPO[:TAG]`.
    pub fn name(&self, repo: &str) -> String {
        format!("127.0.0.1:{}/{repo}", self.port)
    }

    /// `skopeo copy` from an OCI layout into this registry (`creds`: USER:PASSWORD).
    pub fn push(&self, layout: &Path, reference: &str, repo_tag: &str, extra: &[&str]) {
        let out = Command::new("skopeo")
            .args(["copy", "--quiet", "--dest-tls-verify=false"])
            .args(extra)
            .arg(format!("oci:{}:{reference}", layout.display()))
            .arg(format!("docker://{}", self.name(repo_tag)))
            .output()
            .expect("skopeo is installed by scripts/test");
        assert!(
            out.status.success(),
            "skopeo copy: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The manifest digest skopeo sees for `repo_tag`.
    pub fn digest(&self, repo_tag: &str, extra: &[&str]) -> String {
        let out = Command::new("skopeo")
            .args(["inspect", "--tls-verify=false", "--format", "{{.Digest}}"])
            .args(extra)
            .arg(format!("docker://{}", self.name(repo_tag)))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The biggest blob file in the registry's storage (a layer, for the sample).
    pub fn biggest_blob(&self) -> (u64, PathBuf) {
        let mut biggest: Option<(u64, PathBuf)> = None;
        let mut stack = vec![self.storage.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.file_name().is_some_and(|n| n == "data") {
                    let len = p.metadata().unwrap().len();
                    if biggest.as_ref().is_none_or(|(l, _)| len > *l) {
                        biggest = Some((len, p));
                    }
                }
            }
        }
        biggest.expect("the registry holds blobs")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A bcrypt hash (what the registry's htpasswd wants), made by Python's crypt module over the
/// system's libcrypt.
fn bcrypt(password: &str) -> String {
    let out = Command::new("python3")
        .args([
            "-W",
            "ignore",
            "-c",
            "import crypt, sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH)))",
            password,
        ])
        .output()
        .unwrap();
    let hash = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        out.status.success() && hash.starts_with("$2"),
        "bcrypt via python3 crypt: {hash:?} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    hash
}
