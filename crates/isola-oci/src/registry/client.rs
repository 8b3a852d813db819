//! One repository on one registry, over HTTP: GETs that answer a 401 challenge once (a bearer
//! token fetched from the realm, or basic credentials) and retry; manifests read whole (bounded),
//! blobs streamed into the store and checked against their digest before they are kept.

use super::auth::{parse_challenge, Challenge, Credentials};
use super::{Location, RegistryError};
use crate::digest::Digest;
use crate::store::Store;
use std::io::Read;
use std::time::Duration;

/// Media types a manifest request accepts: OCI and Docker schema 2, manifests and indexes.
pub const MANIFEST_TYPES: &[&str] = &[
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];
/// A manifest or index larger than this is refused (the distribution spec suggests 4 MiB).
const MANIFEST_LIMIT: u64 = 4 << 20;

pub struct Client {
    agent: ureq::Agent,
    pub location: Location,
    credentials: Option<Credentials>,
    /// The `Authorization` header that worked, reused for every later request.
    authorization: Option<String>,
}

type Response = ureq::http::Response<ureq::Body>;

impl Client {
    pub fn new(location: Location, credentials: Option<Credentials>) -> Client {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(120)))
            .build()
            .into();
        Client {
            agent,
            location,
            credentials,
            authorization: None,
        }
    }

    fn send(&self, url: &str, accept: &str, auth: Option<&str>) -> Result<Response, RegistryError> {
        let mut req = self.agent.get(url).header("Accept", accept);
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        req.call().map_err(|e| RegistryError::Http {
            url: url.to_string(),
            why: e.to_string(),
        })
    }

    /// GET `url`; a 401 is answered once from its challenge and the request repeated.
    fn get(&mut self, url: &str, accept: &str) -> Result<Response, RegistryError> {
        let resp = self.send(url, accept, self.authorization.as_deref())?;
        if resp.status() != 401 {
            return Ok(resp);
        }
        let challenge = resp
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_challenge);
        let authorization = match challenge {
            Some(Challenge::Basic) => match &self.credentials {
                Some(c) => c.basic_header(),
                None => {
                    return Err(self.denied(
                        url,
                        "the registry wants a user and password (--user, or an auth.json)",
                    ))
                }
            },
            Some(Challenge::Bearer { realm, params }) => {
                format!("Bearer {}", self.token(&realm, &params)?)
            }
            None => {
                return Err(self.denied(
                    url,
                    "the registry refused access without saying how to log in",
                ))
            }
        };
        let resp = self.send(url, accept, Some(&authorization))?;
        if resp.status() == 401 || resp.status() == 403 {
            return Err(self.denied(url, "access denied with the credentials given"));
        }
        self.authorization = Some(authorization);
        Ok(resp)
    }

    fn denied(&self, url: &str, why: &str) -> RegistryError {
        RegistryError::Status {
            url: url.to_string(),
            status: 401,
            detail: why.to_string(),
        }
    }

    /// A bearer token from `realm` for pulling this repository.
    fn token(
        &self,
        realm: &str,
        params: &std::collections::BTreeMap<String, String>,
    ) -> Result<String, RegistryError> {
        let scope = format!("repository:{}:pull", self.location.repository);
        let mut req = self
            .agent
            .get(realm)
            .query("scope", params.get("scope").unwrap_or(&scope));
        if let Some(service) = params.get("service") {
            req = req.query("service", service);
        }
        if let Some(c) = &self.credentials {
            req = req.header("Authorization", &c.basic_header());
        }
        let mut resp = req.call().map_err(|e| RegistryError::Http {
            url: realm.to_string(),
            why: e.to_string(),
        })?;
        if resp.status() != 200 {
            return Err(RegistryError::Status {
                url: realm.to_string(),
                status: resp.status().as_u16(),
                detail: "the token service refused".into(),
            });
        }
        let body = read_limited(&mut resp, realm, 1 << 20)?;
        let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
            RegistryError::Invalid(format!("{realm}: the token answer is not JSON: {e}"))
        })?;
        v.get("token")
            .or_else(|| v.get("access_token"))
            .and_then(|t| t.as_str())
            .map(String::from)
            .ok_or_else(|| {
                RegistryError::Invalid(format!("{realm}: the token answer has no token"))
            })
    }

    /// The manifest or index `reference` (a tag or a digest): its bytes and media type.
    pub fn manifest(&mut self, reference: &str) -> Result<(Vec<u8>, String), RegistryError> {
        let url = format!("{}/manifests/{reference}", self.location.base());
        let mut resp = self.get(&url, &MANIFEST_TYPES.join(", "))?;
        check_status(&resp, &url)?;
        let media = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        let body = read_limited(&mut resp, &url, MANIFEST_LIMIT)?;
        Ok((body, media))
    }

    /// Streams blob `digest` into `store`; what arrives must hash to `digest` or it is dropped.
    pub fn blob_into(&mut self, digest: &Digest, store: &Store) -> Result<u64, RegistryError> {
        let url = format!("{}/blobs/{digest}", self.location.base());
        let resp = self.get(&url, "*/*")?;
        check_status(&resp, &url)?;
        let reader = resp.into_body().into_reader();
        let (got, size) = store.put_blob(reader).map_err(|e| match e {
            crate::StoreError::Io { source, .. } => RegistryError::Http {
                url: url.clone(),
                why: source.to_string(),
            },
            other => RegistryError::Store(other),
        })?;
        if &got != digest {
            // Kept under the digest it really has (never under the one asked for); no image
            // refers to it, so `isola image prune` takes it.
            return Err(RegistryError::Digest {
                url,
                expected: digest.clone(),
                actual: got,
            });
        }
        Ok(size)
    }
}

fn check_status(resp: &Response, url: &str) -> Result<(), RegistryError> {
    match resp.status().as_u16() {
        200 => Ok(()),
        404 => Err(RegistryError::Status {
            url: url.to_string(),
            status: 404,
            detail: "not found".into(),
        }),
        s => Err(RegistryError::Status {
            url: url.to_string(),
            status: s,
            detail: String::new(),
        }),
    }
}

fn read_limited(resp: &mut Response, url: &str, limit: u64) -> Result<Vec<u8>, RegistryError> {
    let mut body = Vec::new();
    resp.body_mut()
        .as_reader()
        .take(limit + 1)
        .read_to_end(&mut body)
        .map_err(|e| RegistryError::Http {
            url: url.to_string(),
            why: e.to_string(),
        })?;
    if body.len() as u64 > limit {
        return Err(RegistryError::Invalid(format!(
            "{url}: the answer is larger than {limit} bytes"
        )));
    }
    Ok(body)
}
