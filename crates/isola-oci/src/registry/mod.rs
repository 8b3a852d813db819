//! Images from registries, over the OCI distribution API: where a reference lives, how to
//! authenticate (anonymous, bearer token from a `WWW-Authenticate` challenge, basic), pull
//! and push. The HTTP side is ureq (sync, rustls): measured here, a pull-capable binary with
//! it is 2.4 MB, with oci-client's reqwest/tokio stack 7.2 MB — more than isola itself.

mod auth;
mod client;
pub mod pull;
pub mod push;

pub use auth::Credentials;
pub use pull::{pull, PullEvent, PullOptions, Pulled};
pub use push::{push, PushEvent, PushOptions, Pushed};

use crate::digest::Digest;

/// What can go wrong talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{url}: {why}")]
    Http { url: String, why: String },
    #[error("{url}: {status}{}", if .detail.is_empty() { String::new() } else { format!(" ({})", .detail) })]
    Status {
        url: String,
        status: u16,
        detail: String,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("{url}: content hashes to {actual}, expected {expected}")]
    Digest {
        url: String,
        expected: Digest,
        actual: Digest,
    },
    #[error(transparent)]
    Store(#[from] crate::StoreError),
}

/// Where a repository lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// `host[:port]`.
    pub registry: String,
    pub repository: String,
    /// Plain HTTP: asked for, or a loopback registry.
    pub http: bool,
}

impl Location {
    /// The registry and repository of `name`, normalised the usual way: no registry host means
    /// Docker Hub, whose one-component names live under `library/`.
    pub fn of(name: &str, insecure: bool) -> Location {
        let (host, rest) = match name.split_once('/') {
            Some((h, r)) if h.contains(['.', ':']) || h == "localhost" => (h, r.to_string()),
            _ => ("docker.io", name.to_string()),
        };
        let host = match host {
            "docker.io" | "index.docker.io" => "registry-1.docker.io",
            h => h,
        };
        let repository = if host == "registry-1.docker.io" && !rest.contains('/') {
            format!("library/{rest}")
        } else {
            rest
        };
        let bare = host.rsplit_once(':').map_or(host, |(h, _)| h);
        let loopback = bare == "localhost" || bare.starts_with("127.") || bare == "[::1]";
        Location {
            registry: host.to_string(),
            repository,
            http: insecure || loopback,
        }
    }

    pub fn base(&self) -> String {
        let scheme = if self.http { "http" } else { "https" };
        format!("{scheme}://{}/v2/{}", self.registry, self.repository)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalised_the_usual_way() {
        let l = Location::of("alpine", false);
        assert_eq!(
            (l.registry.as_str(), l.repository.as_str(), l.http),
            ("registry-1.docker.io", "library/alpine", false)
        );
        let l = Location::of("docker.io/someone/app", false);
        assert_eq!(l.repository, "someone/app");
        let l = Location::of("127.0.0.1:5000/demo/app", false);
        assert_eq!(
            (l.registry.as_str(), l.repository.as_str(), l.http),
            ("127.0.0.1:5000", "demo/app", true)
        );
        assert_eq!(l.base(), "http://127.0.0.1:5000/v2/demo/app");
        assert!(!Location::of("registry.example.com/a", false).http);
        assert!(Location::of("registry.example.com/a", true).http);
        assert!(Location::of("localhost/a", false).http);
    }
}
