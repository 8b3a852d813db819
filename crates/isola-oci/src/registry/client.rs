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
    /// What a token is asked for when the challenge names no scope: `pull` or `pull,push`.
    actions: &'static str,
    /// The `Authorization` header that worked, reused for every later request.
    authorization: Option<String>,
}

pub(super) type Response = ureq::http::Response<ureq::Body>;

/// One HTTP request to the registry.
pub(super) struct Request<'a> {
    pub method: &'static str,
    pub url: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    pub body: Body<'a>,
}

/// What a request sends: nothing, bytes, or a file (opened again if the request is repeated
/// after a 401; the callback hears how many of its bytes have gone).
pub(super) enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    File(&'a std::path::Path, &'a mut dyn FnMut(u64)),
}

/// A reader that tells how many bytes have passed through it.
pub(super) struct Counting<'a, R> {
    pub inner: R,
    pub seen: u64,
    pub tell: &'a mut dyn FnMut(u64),
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.seen += n as u64;
        (self.tell)(self.seen);
        Ok(n)
    }
}

impl Client {
    /// A client for the repository `name` (normalised by [`Location::of`]) with `credentials`,
    /// or else those a docker-style auth file holds for its registry.
    pub fn for_repository(
        name: &str,
        insecure: bool,
        credentials: Option<Credentials>,
        actions: &'static str,
    ) -> Client {
        let location = Location::of(name, insecure);
        let credentials = credentials.or_else(|| Credentials::from_auth_files(&location.registry));
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(120)))
            // Blob GETs may be redirected (to a CDN, object storage): credentials follow only
            // to the same host.
            .redirect_auth_headers(ureq::config::RedirectAuthHeaders::SameHost)
            .build()
            .into();
        Client {
            agent,
            location,
            credentials,
            actions,
            authorization: None,
        }
    }

    fn send(&self, req: &mut Request, auth: Option<&str>) -> Result<Response, RegistryError> {
        let mut b = ureq::http::Request::builder()
            .method(req.method)
            .uri(req.url);
        for (k, v) in req.headers {
            b = b.header(*k, *v);
        }
        if let Some(a) = auth {
            b = b.header("Authorization", a);
        }
        let http = |e: ureq::Error| RegistryError::Http {
            url: req.url.to_string(),
            why: e.to_string(),
        };
        let built = |b: ureq::http::request::Builder| {
            b.body(())
                .map_err(|e| RegistryError::Invalid(format!("{}: {e}", req.url)))
        };
        match &mut req.body {
            Body::Empty => self.agent.run(built(b)?).map_err(http),
            Body::Bytes(bytes) => {
                let r = built(b)?.map(|()| *bytes);
                self.agent.run(r).map_err(http)
            }
            Body::File(path, tell) => {
                let file = std::fs::File::open(*path).map_err(|e| RegistryError::Http {
                    url: req.url.to_string(),
                    why: format!("{}: {e}", path.display()),
                })?;
                // Sized by the caller's Content-Length header, so not chunked.
                let mut counting = Counting {
                    inner: file,
                    seen: 0,
                    tell: *tell,
                };
                let r = built(b)?.map(|()| ureq::SendBody::from_reader(&mut counting));
                self.agent.run(r).map_err(http)
            }
        }
    }

    /// Sends `req`; a 401 is answered once from its challenge and the request repeated (a
    /// token good for pulling is replaced by one good for pushing when the registry asks).
    fn request(&mut self, mut req: Request) -> Result<Response, RegistryError> {
        let req = &mut req;
        let resp = self.send(req, self.authorization.as_deref())?;
        if resp.status() != 401 {
            return Ok(resp);
        }
        let url = req.url;
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
        let resp = self.send(req, Some(&authorization))?;
        if resp.status() == 401 || resp.status() == 403 {
            return Err(self.denied(url, "access denied with the credentials given"));
        }
        self.authorization = Some(authorization);
        Ok(resp)
    }

    fn get(&mut self, url: &str, accept: &str) -> Result<Response, RegistryError> {
        self.request(Request {
            method: "GET",
            url,
            headers: &[("Accept", accept)],
            body: Body::Empty,
        })
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
        let scope = format!("repository:{}:{}", self.location.repository, self.actions);
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
        check_status(&mut resp, &url, &[200])?;
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
    pub fn blob_into(
        &mut self,
        digest: &Digest,
        store: &Store,
        tell: &mut dyn FnMut(u64),
    ) -> Result<u64, RegistryError> {
        let url = format!("{}/blobs/{digest}", self.location.base());
        let mut resp = self.get(&url, "*/*")?;
        check_status(&mut resp, &url, &[200])?;
        let reader = Counting {
            inner: resp.into_body().into_reader(),
            seen: 0,
            tell,
        };
        let (got, size) = store.put_blob(reader).map_err(|e| match e {
            crate::StoreError::Io { cause: source, .. } => RegistryError::Http {
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

    /// Whether the registry already has blob `digest` in this repository.
    pub fn has_blob(&mut self, digest: &Digest) -> Result<bool, RegistryError> {
        let url = format!("{}/blobs/{digest}", self.location.base());
        let mut resp = self.request(Request {
            method: "HEAD",
            url: &url,
            headers: &[],
            body: Body::Empty,
        })?;
        if resp.status() == 404 {
            return Ok(false);
        }
        check_status(&mut resp, &url, &[200])?;
        Ok(true)
    }

    /// Uploads the file at `path` as blob `digest`: a POST opens an upload session, one PUT
    /// with the whole blob closes it (the monolithic upload of the distribution spec).
    pub fn upload_blob(
        &mut self,
        digest: &Digest,
        path: &std::path::Path,
        tell: &mut dyn FnMut(u64),
    ) -> Result<(), RegistryError> {
        let url = format!("{}/blobs/uploads/", self.location.base());
        let mut resp = self.request(Request {
            method: "POST",
            url: &url,
            headers: &[("Content-Length", "0")],
            body: Body::Empty,
        })?;
        check_status(&mut resp, &url, &[202])?;
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                RegistryError::Invalid(format!("{url}: the upload answer has no Location"))
            })?;
        let mut put_url = if location.starts_with('/') {
            let scheme = if self.location.http { "http" } else { "https" };
            format!("{scheme}://{}{location}", self.location.registry)
        } else {
            location.to_string()
        };
        put_url.push(if put_url.contains('?') { '&' } else { '?' });
        put_url.push_str(&format!("digest={digest}"));
        let size = std::fs::metadata(path)
            .map_err(|e| RegistryError::Invalid(format!("{}: {e}", path.display())))?
            .len()
            .to_string();
        let mut resp = self.request(Request {
            method: "PUT",
            url: &put_url,
            headers: &[
                ("Content-Type", "application/octet-stream"),
                ("Content-Length", &size),
            ],
            body: Body::File(path, tell),
        })?;
        let blob_url = format!("{}/blobs/{digest}", self.location.base());
        check_status(&mut resp, &blob_url, &[201])
    }

    /// Puts a manifest under `reference` (a tag); returns the digest the registry says it
    /// stored, when it says.
    pub fn put_manifest(
        &mut self,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Option<String>, RegistryError> {
        let url = format!("{}/manifests/{reference}", self.location.base());
        let mut resp = self.request(Request {
            method: "PUT",
            url: &url,
            headers: &[("Content-Type", media_type)],
            body: Body::Bytes(bytes),
        })?;
        check_status(&mut resp, &url, &[201])?;
        Ok(resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(String::from))
    }
}

/// Ok when the status is one of `ok`; otherwise an error carrying the registry's own words
/// (the distribution API's `{"errors":[{"code","message"}]}`) when it sent any.
pub(super) fn check_status(
    resp: &mut Response,
    url: &str,
    ok: &[u16],
) -> Result<(), RegistryError> {
    let status = resp.status().as_u16();
    if ok.contains(&status) {
        return Ok(());
    }
    let detail = match status {
        404 => "not found".to_string(),
        _ => read_limited(resp, url, 64 << 10)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| {
                let errors = v.get("errors")?.as_array()?;
                let words: Vec<String> = errors
                    .iter()
                    .map(|e| {
                        let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("");
                        let message = e.get("message").and_then(|m| m.as_str()).unwrap_or("");
                        format!("{code}: {message}")
                    })
                    .collect();
                Some(words.join("; "))
            })
            .unwrap_or_default(),
    };
    Err(RegistryError::Status {
        url: url.to_string(),
        status,
        detail,
    })
}

pub(super) fn read_limited(
    resp: &mut Response,
    url: &str,
    limit: u64,
) -> Result<Vec<u8>, RegistryError> {
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
