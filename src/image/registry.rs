//! A small `/v2/` (OCI distribution) client on reqwest: exactly the calls a push, a resolve and a
//! promotion need, with the resilience the stock clients lack.
//!
//! - Auth: anonymous, Basic (htpasswd), Bearer (the registry token flow: challenge → realm with
//!   `service` + `scope` → token cached per scope), and ECR (`GetAuthorizationToken` gives Basic
//!   credentials). ECR tokens are refreshed only when the registry answers 401, at most
//!   [`MAX_ECR_REFRESHES`] times: moto's token is born expired, so "refresh on expiry" would loop.
//! - Endpoint: `registry.endpoint` decides the scheme. `http://` is accepted for loopback hosts
//!   only (a local registry in tests or a port-forward); everything else is HTTPS. A private CA
//!   is trusted through `DEPLOYER_REGISTRY_CA` (a PEM bundle, added to the system roots);
//!   `SSL_CERT_FILE` is honoured too, through the platform verifier.
//! - Retries: transport errors, 429 and 5xx are retried with exponential backoff, honouring
//!   `Retry-After`, up to [`RegistryOptions::attempts`]; a registry that stays down fails in
//!   bounded time with [`Error::Unreachable`].
//! - Blob uploads are chunked (`PATCH` with `Content-Range`) and resume after a failure from the
//!   offset the upload session reports (`GET` on the session → `Range: 0-N`); a lost session
//!   restarts the blob. Small blobs go in one `PUT` after the `POST`.
//!
//! Why not `oci-client` (measured against 0.18, the version the design named, on this lock file):
//! it added 22 crates of its own to the build (`cargo tree -e normal,build`: 348 → 326 unique
//! crates without it; `oci-spec`, `derive_builder`/`darling`, `strum`, `const_format`/`konst`,
//! `http-auth`, `olpc-cjson`, `unicode-normalization`, …) and it cannot do what a push here
//! needs: `mount_blob` expects 201 and turns the standard 202 answer ("not mounted, here is an
//! upload session") into a `SpecViolationError` instead of continuing the upload in that
//! session; a failed chunk restarts the whole blob (no `GET` on the session to resume from its
//! `Range`); nothing retries 429/5xx or honours `Retry-After`; its credentials are fixed per
//! client, so an ECR token cannot be fetched again on a 401. It was declared and never used,
//! so it was removed (`.ci/unused_deps.py` keeps unused crates out).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _, AsyncWriteExt as _};

use super::{Digest, Error, MANIFEST_ACCEPT};
use crate::support::VarFn;

/// ECR tokens fetched again after a 401, at most this many times per client.
pub const MAX_ECR_REFRESHES: u32 = 2;

/// Where the registry's `/v2/` API lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    plain_http: bool,
    host: String,
}

impl Endpoint {
    /// `host[:port]` (HTTPS), `https://host[:port]`, or `http://127.0.0.1:PORT` (loopback only).
    pub fn parse(s: &str) -> Result<Self, Error> {
        let s = s.trim().trim_end_matches('/');
        let (plain_http, host) = if let Some(h) = s.strip_prefix("http://") {
            (true, h)
        } else if let Some(h) = s.strip_prefix("https://") {
            (false, h)
        } else {
            (false, s)
        };
        if host.is_empty() || host.contains('/') {
            return Err(Error::Settings(format!(
                "`{s}` is not a registry host (`host[:port]`, optionally with http:// or https://)"
            )));
        }
        if plain_http && !is_loopback(host) {
            return Err(Error::Settings(format!(
                "`{s}`: plain http is only allowed for a loopback registry (127.0.0.1, localhost, [::1]); use https"
            )));
        }
        Ok(Self { plain_http, host: host.to_owned() })
    }

    /// The product's registry: `registry.endpoint` as written (its scheme says how to talk to
    /// it: `http://` for a loopback registry), else the ECR host of the registry's account.
    pub fn for_registry(registry: &crate::config::RegistryConfig) -> Result<Self, Error> {
        match registry.endpoint.as_deref() {
            Some(e) => Self::parse(e),
            None => {
                Self::parse(&format!("{}.dkr.ecr.{}.amazonaws.com", registry.account_id, registry.region))
            }
        }
    }

    /// `host[:port]`, as it appears in image references.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `scheme://host[:port]`.
    pub fn base_url(&self) -> String {
        format!("{}://{}", if self.plain_http { "http" } else { "https" }, self.host)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.base_url())
    }
}

fn is_loopback(host: &str) -> bool {
    let name = if host.starts_with('[') {
        host.split(']').next().map_or(host, |h| h.trim_start_matches('['))
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    name == "localhost" || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Who we are to the registry.
#[derive(Debug, Clone)]
pub enum Credentials {
    Anonymous,
    /// Username and password: sent as Basic, or to the token service in the Bearer flow.
    Basic {
        username: String,
        password: String,
    },
    /// ECR: `GetAuthorizationToken` yields Basic credentials (`AWS:<password>`).
    Ecr {
        client: aws_sdk_ecr::Client,
    },
}

impl Credentials {
    /// `DEPLOYER_REGISTRY_USERNAME` + `DEPLOYER_REGISTRY_PASSWORD`, else anonymous.
    pub fn from_env(var: VarFn<'_>) -> Self {
        match (var("DEPLOYER_REGISTRY_USERNAME"), var("DEPLOYER_REGISTRY_PASSWORD")) {
            (Some(username), Some(password)) if !username.is_empty() => Self::Basic { username, password },
            _ => Self::Anonymous,
        }
    }

    /// What a deploy uses: explicit `DEPLOYER_REGISTRY_USERNAME`/`_PASSWORD` first, else ECR
    /// through the AWS session when there is one, else anonymous.
    pub fn for_deploy(aws: Option<&aws_types::SdkConfig>, var: VarFn<'_>) -> Self {
        match (Self::from_env(var), aws) {
            (Self::Anonymous, Some(sdk)) => Self::Ecr { client: aws_sdk_ecr::Client::new(sdk) },
            (c, _) => c,
        }
    }
}

/// Client tuning.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// PEM bundle of extra trusted CAs (`DEPLOYER_REGISTRY_CA`).
    pub ca_bundle: Option<PathBuf>,
    /// Tries per request (and per upload chunk) before giving up.
    pub attempts: u32,
    /// Longest wait between tries (a `Retry-After` may ask for up to 4× this).
    pub max_backoff: Duration,
    /// Blob bytes per `PATCH`; blobs up to this size go in a single `PUT`.
    pub chunk_size: usize,
    /// Blobs transferred at once.
    pub concurrency: usize,
    pub connect_timeout: Duration,
    /// Longest silence on an open connection before it counts as dropped.
    pub read_timeout: Duration,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        Self {
            ca_bundle: None,
            attempts: 6,
            max_backoff: Duration::from_secs(8),
            chunk_size: 32 << 20,
            concurrency: 4,
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_mins(1),
        }
    }
}

impl RegistryOptions {
    /// Defaults plus `DEPLOYER_REGISTRY_CA`.
    pub fn from_env(var: VarFn<'_>) -> Self {
        Self {
            ca_bundle: var("DEPLOYER_REGISTRY_CA").filter(|s| !s.is_empty()).map(PathBuf::from),
            ..Self::default()
        }
    }
}

/// What one blob transfer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobOutcome {
    /// Already in the repository (HEAD said so): nothing sent.
    Existed,
    /// Mounted from another repository of the same registry: nothing sent.
    Mounted,
    /// Uploaded; bytes the registry accepted (more than the size when chunks were resent).
    Uploaded { bytes: u64, resumed: u32 },
}

#[derive(Debug, Default)]
struct AuthState {
    /// The scheme the registry asked for, learnt from its first 401.
    challenge: Option<Challenge>,
    /// Basic credentials in effect (from the config or from ECR).
    basic: Option<(String, String)>,
    /// Bearer tokens by scope set.
    tokens: HashMap<String, String>,
    ecr_refreshes: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Challenge {
    Basic,
    Bearer { realm: String, service: Option<String> },
}

/// A request that can be sent again (bodies are `Bytes`, cheap to clone).
#[derive(Debug, Clone)]
pub(crate) struct Req {
    method: Method,
    url: String,
    headers: Vec<(header::HeaderName, String)>,
    body: Option<Bytes>,
}

impl Req {
    fn new(method: Method, url: String) -> Self {
        Self { method, url, headers: Vec::new(), body: None }
    }
    fn header(mut self, name: header::HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
    fn body(mut self, body: Bytes) -> Self {
        self.body = Some(body);
        self
    }
}

/// Why a single attempt failed.
enum Attempt {
    /// Worth another try: a transport error or 429/5xx (with its `Retry-After`).
    Transient {
        reason: String,
        retry_after: Option<Duration>,
    },
    Fatal(Error),
}

/// A connected registry client.
#[derive(Debug)]
pub struct Registry {
    http: reqwest::Client,
    endpoint: Endpoint,
    credentials: Credentials,
    auth: tokio::sync::Mutex<AuthState>,
    options: RegistryOptions,
}

impl Registry {
    /// The product's registry (`registry.endpoint`, else the ECR host), with
    /// [`Credentials::for_deploy`] and [`RegistryOptions::from_env`].
    pub fn for_config(
        config: &crate::config::Config,
        aws: Option<&aws_types::SdkConfig>,
        var: VarFn<'_>,
    ) -> Result<Self, Error> {
        // ECR tokens are regional: ask the registry's region, not the environment's.
        let region = aws_types::region::Region::new(config.product.registry.region.as_str().to_owned());
        let aws = aws.map(|sdk| sdk.to_builder().region(region).build());
        Self::connect(
            Endpoint::for_registry(&config.product.registry)?,
            Credentials::for_deploy(aws.as_ref(), var),
            RegistryOptions::from_env(var),
        )
    }

    /// Builds the client; no request is made until the first call.
    pub fn connect(
        endpoint: Endpoint,
        credentials: Credentials,
        options: RegistryOptions,
    ) -> Result<Self, Error> {
        let mut builder = reqwest::Client::builder()
            .user_agent(crate::support::USER_AGENT)
            .connect_timeout(options.connect_timeout)
            .read_timeout(options.read_timeout)
            // Blob GETs may redirect to storage; reqwest drops Authorization on a cross-host redirect.
            .redirect(reqwest::redirect::Policy::limited(5))
            .no_proxy();
        if let Some(path) = &options.ca_bundle {
            let pem = std::fs::read(path)
                .map_err(|e| Error::io(format!("reading CA bundle {}", path.display()), e))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                Error::Settings(format!("{}: not a PEM certificate bundle: {e}", path.display()))
            })?;
            builder = builder.tls_certs_merge(certs);
        }
        let http =
            builder.build().map_err(|e| Error::Settings(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self { http, endpoint, credentials, auth: tokio::sync::Mutex::default(), options })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    pub fn options(&self) -> &RegistryOptions {
        &self.options
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v2/{path}", self.endpoint.base_url())
    }

    /// Absolute URL for a `Location` header (registries may answer with a path).
    fn absolute(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_owned()
        } else {
            format!("{}{location}", self.endpoint.base_url())
        }
    }

    // ---------------------------------------------------------------- auth

    async fn basic_credentials(
        &self,
        state: &mut AuthState,
        refresh: bool,
    ) -> Result<Option<(String, String)>, Error> {
        if state.basic.is_some() && !refresh {
            return Ok(state.basic.clone());
        }
        let creds = match &self.credentials {
            Credentials::Anonymous => None,
            Credentials::Basic { username, password } => Some((username.clone(), password.clone())),
            Credentials::Ecr { client } => Some(ecr_login(client).await?),
        };
        state.basic.clone_from(&creds);
        Ok(creds)
    }

    /// The `Authorization` header to send for `scopes`, fetching a token when needed.
    async fn authorization(&self, scopes: &[String]) -> Result<Option<String>, Error> {
        let mut state = self.auth.lock().await;
        match state.challenge.clone() {
            None => Ok(None),
            Some(Challenge::Basic) => {
                Ok(self.basic_credentials(&mut state, false).await?.map(|(u, p)| basic_header(&u, &p)))
            }
            Some(Challenge::Bearer { realm, service }) => {
                let key = scopes.join(" ");
                if let Some(t) = state.tokens.get(&key) {
                    return Ok(Some(format!("Bearer {t}")));
                }
                let creds = self.basic_credentials(&mut state, false).await?;
                let token = self.fetch_token(&realm, service.as_deref(), scopes, creds.as_ref()).await?;
                state.tokens.insert(key, token.clone());
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    /// Reacts to a 401: learns the scheme, or refreshes what was refused. `Ok(true)` = try again
    /// (the caller bounds the rounds).
    async fn on_unauthorized(
        &self,
        resp: &reqwest::Response,
        scopes: &[String],
        sent: Option<&str>,
    ) -> Result<bool, Error> {
        let header =
            resp.headers().get(header::WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let Some(challenge) = parse_challenge(header) else {
            return Ok(false);
        };
        let mut state = self.auth.lock().await;
        state.challenge = Some(challenge.clone());
        match (challenge, sent) {
            (Challenge::Basic, None) => Ok(self.basic_credentials(&mut state, false).await?.is_some()),
            (Challenge::Basic, Some(_)) => {
                // Refused Basic credentials only get better when they are ECR's (expired token).
                if matches!(self.credentials, Credentials::Ecr { .. })
                    && state.ecr_refreshes < MAX_ECR_REFRESHES
                {
                    state.ecr_refreshes += 1;
                    self.basic_credentials(&mut state, true).await?;
                    return Ok(true);
                }
                Ok(false)
            }
            (Challenge::Bearer { .. }, sent) => {
                // A refused token is dropped so the next round fetches a fresh one.
                if sent.is_some_and(|s| s.starts_with("Bearer ")) {
                    state.tokens.remove(&scopes.join(" "));
                }
                Ok(true)
            }
        }
    }

    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
        creds: Option<&(String, String)>,
    ) -> Result<String, Error> {
        let mut query: Vec<(&str, &str)> = Vec::new();
        if let Some(s) = service {
            query.push(("service", s));
        }
        for s in scopes {
            query.push(("scope", s));
        }
        let mut req = self.http.get(realm).query(&query);
        if let Some((u, p)) = creds {
            req = req.basic_auth(u, Some(p));
        }
        let resp = req.send().await.map_err(|e| Error::Unreachable {
            registry: format!("token service {realm}"),
            reason: error_chain(&e),
        })?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(Error::Unauthorized {
                registry: self.endpoint.to_string(),
                reason: format!("the token service {realm} answered {status}"),
            });
        }
        let body: serde_json::Value = resp.json().await.map_err(|e| Error::Registry {
            registry: self.endpoint.to_string(),
            what: format!("token request to {realm}"),
            status: status.as_u16(),
            body: e.to_string(),
        })?;
        body.get("token")
            .or_else(|| body.get("access_token"))
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| Error::Registry {
                registry: self.endpoint.to_string(),
                what: format!("token request to {realm}"),
                status: status.as_u16(),
                body: "no `token` in the answer".into(),
            })
    }

    // ---------------------------------------------------------------- sending

    /// One attempt, with the auth dance (a 401 is answered at most twice).
    async fn attempt(&self, scopes: &[String], req: &Req) -> Result<reqwest::Response, Attempt> {
        let mut auth_rounds = 0;
        loop {
            let authorization = self.authorization(scopes).await.map_err(Attempt::Fatal)?;
            let mut rb = self.http.request(req.method.clone(), &req.url);
            for (k, v) in &req.headers {
                rb = rb.header(k, v);
            }
            if let Some(a) = &authorization {
                rb = rb.header(header::AUTHORIZATION, a);
            }
            match &req.body {
                Some(b) => rb = rb.header(header::CONTENT_LENGTH, b.len()).body(b.clone()),
                None if req.method == Method::PUT
                    || req.method == Method::POST
                    || req.method == Method::PATCH =>
                {
                    rb = rb.header(header::CONTENT_LENGTH, 0);
                }
                None => {}
            }
            let resp = match rb.send().await {
                Ok(r) => r,
                Err(e) => return Err(Attempt::Transient { reason: error_chain(&e), retry_after: None }),
            };
            let status = resp.status();
            if status == StatusCode::UNAUTHORIZED {
                auth_rounds += 1;
                if auth_rounds <= 2
                    && self
                        .on_unauthorized(&resp, scopes, authorization.as_deref())
                        .await
                        .map_err(Attempt::Fatal)?
                {
                    continue;
                }
                let body = resp.text().await.unwrap_or_default();
                let reason = if authorization.is_none() {
                    "it asks for credentials and none are configured".to_owned()
                } else {
                    format!("HTTP 401 for {} {}: {}", req.method, path_of(&req.url), short(&body))
                };
                return Err(Attempt::Fatal(Error::Unauthorized {
                    registry: self.endpoint.to_string(),
                    reason,
                }));
            }
            if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                let retry_after = retry_after(resp.headers());
                let body = resp.text().await.unwrap_or_default();
                return Err(Attempt::Transient {
                    reason: format!("HTTP {status}: {}", short(&body)),
                    retry_after,
                });
            }
            return Ok(resp);
        }
    }

    /// The registry's retry policy ([`crate::support::retry_policy`]): 400 ms doubling up to
    /// `max_backoff`, `attempts` tries in all. Resumed uploads wait by the same steps.
    fn retry_policy(&self) -> backon::ExponentialBuilder {
        let retries = usize::try_from(self.options.attempts.saturating_sub(1)).unwrap_or(usize::MAX);
        crate::support::retry_policy(Duration::from_millis(400), self.options.max_backoff, retries)
    }

    /// Sends with retries; the response may still be a 4xx for the caller to judge.
    async fn send(&self, scopes: &[String], req: Req) -> Result<reqwest::Response, Error> {
        use backon::Retryable as _;
        let tries = std::sync::atomic::AtomicU32::new(0);
        let cap = self.options.max_backoff * 4;
        let once = || async {
            tries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.attempt(scopes, &req).await
        };
        // Jitter: parallel uploads that failed together do not retry together.
        once.retry(self.retry_policy().with_jitter())
            .when(|e| matches!(e, Attempt::Transient { .. }))
            // A server's `Retry-After` sets the wait (bounded), while tries remain.
            .adjust(|e, next| {
                next.map(|d| match e {
                    Attempt::Transient { retry_after: Some(r), .. } => (*r).min(cap),
                    _ => d,
                })
            })
            .await
            .map_err(|e| match e {
                Attempt::Fatal(e) => e,
                Attempt::Transient { reason, .. } => Error::Unreachable {
                    registry: self.endpoint.to_string(),
                    reason: format!(
                        "{} {} failed {} times; last: {reason}",
                        req.method,
                        path_of(&req.url),
                        tries.load(std::sync::atomic::Ordering::Relaxed)
                    ),
                },
            })
    }

    /// The wait before resuming an upload the `tries`-th time: the server's `Retry-After`
    /// (bounded), else the retry policy's step.
    fn backoff(&self, tries: u32, retry_after: Option<Duration>) -> Duration {
        use backon::BackoffBuilder as _;
        if let Some(d) = retry_after {
            return d.min(self.options.max_backoff * 4);
        }
        let step = usize::try_from(tries.saturating_sub(1)).unwrap_or(usize::MAX);
        crate::support::retry_policy(Duration::from_millis(400), self.options.max_backoff, usize::MAX)
            .build()
            .nth(step)
            .unwrap_or(self.options.max_backoff)
    }

    fn status_error(&self, what: impl Into<String>, status: StatusCode, body: &str) -> Error {
        Error::Registry {
            registry: self.endpoint.to_string(),
            what: what.into(),
            status: status.as_u16(),
            body: short(body),
        }
    }

    // ---------------------------------------------------------------- manifests

    /// Digest and media type of a manifest by tag or digest; `None` when absent.
    pub async fn manifest_head(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<(Digest, String)>, Error> {
        let scopes = [pull_scope(repo)];
        let req = Req::new(Method::HEAD, self.url(&format!("{repo}/manifests/{reference}")))
            .header(header::ACCEPT, MANIFEST_ACCEPT);
        let resp = self.send(&scopes, req).await?;
        match resp.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => {
                let media_type = header_str(resp.headers(), header::CONTENT_TYPE).unwrap_or_default();
                match header_str(resp.headers(), "docker-content-digest").and_then(|d| Digest::parse(&d)) {
                    Some(d) => Ok(Some((d, media_type))),
                    // Not every registry sends the digest on HEAD: hash the body instead.
                    None => Ok(self
                        .manifest_get(repo, reference)
                        .await?
                        .map(|(bytes, mt)| (Digest::of(&bytes), mt))),
                }
            }
            s => Err(self.status_error(format!("HEAD manifest {repo}:{reference}"), s, "")),
        }
    }

    /// The manifest's exact bytes and media type; `None` when absent.
    pub async fn manifest_get(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<(Vec<u8>, String)>, Error> {
        let scopes = [pull_scope(repo)];
        let req = Req::new(Method::GET, self.url(&format!("{repo}/manifests/{reference}")))
            .header(header::ACCEPT, MANIFEST_ACCEPT);
        let resp = self.send(&scopes, req).await?;
        let status = resp.status();
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let media_type = header_str(resp.headers(), header::CONTENT_TYPE).unwrap_or_default();
        let body = resp.bytes().await.map_err(|e| self.transport(&e))?;
        if !status.is_success() {
            return Err(self.status_error(
                format!("GET manifest {repo}:{reference}"),
                status,
                &String::from_utf8_lossy(&body),
            ));
        }
        Ok(Some((body.to_vec(), media_type)))
    }

    /// Puts a manifest under a digest or a tag; returns the digest the registry reports.
    pub async fn manifest_put(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Digest, Error> {
        let scopes = [push_scope(repo)];
        let req = Req::new(Method::PUT, self.url(&format!("{repo}/manifests/{reference}")))
            .header(header::CONTENT_TYPE, media_type)
            .body(Bytes::copy_from_slice(bytes));
        let resp = self.send(&scopes, req).await?;
        let status = resp.status();
        let digest = header_str(resp.headers(), "docker-content-digest").and_then(|d| Digest::parse(&d));
        if status.is_success() {
            return Ok(digest.unwrap_or_else(|| Digest::of(bytes)));
        }
        let body = resp.text().await.unwrap_or_default();
        Err(self.status_error(format!("PUT manifest {repo}:{reference}"), status, &body))
    }

    // ---------------------------------------------------------------- blobs

    pub async fn blob_exists(&self, repo: &str, digest: &Digest) -> Result<bool, Error> {
        let resp = self
            .send(&[pull_scope(repo)], Req::new(Method::HEAD, self.url(&format!("{repo}/blobs/{digest}"))))
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            s => Err(self.status_error(format!("HEAD blob {repo}@{digest}"), s, "")),
        }
    }

    /// Cross-repository mount. `Ok(None)` = mounted; `Ok(Some(location))` = the registry did
    /// not have it there and opened an upload session instead.
    async fn mount(&self, repo: &str, digest: &Digest, from: &str) -> Result<Option<String>, Error> {
        let scopes = [push_scope(repo), pull_scope(from)];
        let url = format!("{}?mount={digest}&from={from}", self.url(&format!("{repo}/blobs/uploads/")));
        let resp = self.send(&scopes, Req::new(Method::POST, url)).await?;
        match resp.status() {
            StatusCode::CREATED => Ok(None),
            StatusCode::ACCEPTED => Ok(Some(self.location(&resp)?)),
            s => {
                let body = resp.text().await.unwrap_or_default();
                Err(self.status_error(format!("mount {digest} from {from} into {repo}"), s, &body))
            }
        }
    }

    /// Mounts `digest` from `from` into `repo`; `false` when the registry could not (the
    /// session it opened instead is cancelled).
    pub async fn mount_only(&self, repo: &str, digest: &Digest, from: &str) -> Result<bool, Error> {
        match self.mount(repo, digest, from).await? {
            None => Ok(true),
            Some(location) => {
                // Cancelling is tidiness only: registries expire abandoned sessions anyway.
                let _ = self.send(&[push_scope(repo)], Req::new(Method::DELETE, location)).await;
                Ok(false)
            }
        }
    }

    async fn start_upload(&self, repo: &str) -> Result<String, Error> {
        let resp = self
            .send(&[push_scope(repo)], Req::new(Method::POST, self.url(&format!("{repo}/blobs/uploads/"))))
            .await?;
        if resp.status() == StatusCode::ACCEPTED {
            return self.location(&resp);
        }
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        Err(self.status_error(format!("start upload to {repo}"), status, &body))
    }

    fn location(&self, resp: &reqwest::Response) -> Result<String, Error> {
        header_str(resp.headers(), header::LOCATION)
            .map(|l| self.absolute(&l))
            .ok_or_else(|| self.status_error("upload session without Location", resp.status(), ""))
    }

    /// Ensures the blob is in `repo`: HEAD, then mount from `mount_from` (same registry), then a
    /// resumable upload from `path`.
    pub async fn put_blob(
        &self,
        repo: &str,
        digest: &Digest,
        size: u64,
        path: &Path,
        mount_from: &[String],
    ) -> Result<BlobOutcome, Error> {
        if self.blob_exists(repo, digest).await? {
            return Ok(BlobOutcome::Existed);
        }
        let mut session = None;
        // Mount from the first candidate that has the blob (a failed mount opens a session,
        // which is then used for the upload rather than abandoned).
        for from in mount_from.iter().filter(|f| f.as_str() != repo) {
            if !self.blob_exists(from, digest).await? {
                continue;
            }
            match self.mount(repo, digest, from).await? {
                None => return Ok(BlobOutcome::Mounted),
                Some(location) => session = Some(location),
            }
            break;
        }
        let mut restarts = 0;
        loop {
            let location = match session.take() {
                Some(l) => l,
                None => self.start_upload(repo).await?,
            };
            match self.upload_session(repo, digest, size, path, location).await {
                Ok((bytes, resumed)) => {
                    return Ok(BlobOutcome::Uploaded { bytes, resumed: resumed + restarts });
                }
                Err(SessionEnd::Lost(reason, retry_after)) => {
                    restarts += 1;
                    if restarts >= self.options.attempts {
                        return Err(Error::Unreachable {
                            registry: self.endpoint.to_string(),
                            reason: format!(
                                "uploading {digest} to {repo} failed {restarts} times; last: {reason}"
                            ),
                        });
                    }
                    tokio::time::sleep(self.backoff(restarts, retry_after)).await;
                    // The blob may have landed before the answer was lost.
                    if self.blob_exists(repo, digest).await? {
                        return Ok(BlobOutcome::Uploaded { bytes: size, resumed: restarts });
                    }
                }
                Err(SessionEnd::Fatal(e)) => return Err(e),
            }
        }
    }

    /// Sends the blob through one upload session; `(bytes accepted, resumes)`.
    async fn upload_session(
        &self,
        repo: &str,
        digest: &Digest,
        size: u64,
        path: &Path,
        mut location: String,
    ) -> Result<(u64, u32), SessionEnd> {
        let scopes = [push_scope(repo)];
        let chunk = self.options.chunk_size as u64;
        let mut file = tokio::fs::File::open(path)
            .await
            .map_err(|e| SessionEnd::Fatal(Error::io(format!("opening {}", path.display()), e)))?;
        let mut sent = 0u64;
        let mut resumed = 0u32;
        if size <= chunk {
            // Monolithic: POST (done) + PUT with the whole blob. A failure restarts the session.
            let body = read_chunk(&mut file, path, 0, size).await.map_err(SessionEnd::Fatal)?;
            let req = Req::new(Method::PUT, with_digest(&location, digest))
                .header(header::CONTENT_TYPE, "application/octet-stream")
                .body(body);
            return match self.attempt(&scopes, &req).await {
                Ok(resp) if resp.status() == StatusCode::CREATED => Ok((size, 0)),
                Ok(resp) => Err(self.session_status_error(resp, &format!("PUT blob {digest}")).await),
                Err(Attempt::Fatal(e)) => Err(SessionEnd::Fatal(e)),
                Err(Attempt::Transient { reason, retry_after }) => Err(SessionEnd::Lost(reason, retry_after)),
            };
        }
        let mut offset = 0u64;
        let mut failures = 0u32;
        while offset < size {
            let len = chunk.min(size - offset);
            let body = read_chunk(&mut file, path, offset, len).await.map_err(SessionEnd::Fatal)?;
            let req = Req::new(Method::PATCH, location.clone())
                .header(header::CONTENT_TYPE, "application/octet-stream")
                .header(header::CONTENT_RANGE, format!("{offset}-{}", offset + len - 1))
                .body(body);
            let failure = match self.attempt(&scopes, &req).await {
                Ok(resp) if resp.status() == StatusCode::ACCEPTED => {
                    location = self.location(&resp).map_err(SessionEnd::Fatal)?;
                    offset += len;
                    sent += len;
                    failures = 0;
                    continue;
                }
                Ok(resp) if resp.status() == StatusCode::NOT_FOUND => {
                    return Err(SessionEnd::Lost("the upload session expired".into(), None));
                }
                // Out of order (416; docker-registry says 500, caught as transient): ask where we are.
                Ok(resp) if resp.status() == StatusCode::RANGE_NOT_SATISFIABLE => {
                    ("HTTP 416".to_owned(), None)
                }
                Ok(resp) => {
                    return Err(self.session_status_error(resp, &format!("PATCH blob {digest}")).await);
                }
                Err(Attempt::Fatal(e)) => return Err(SessionEnd::Fatal(e)),
                Err(Attempt::Transient { reason, retry_after }) => (reason, retry_after),
            };
            failures += 1;
            if failures >= self.options.attempts {
                return Err(SessionEnd::Lost(failure.0, failure.1));
            }
            tokio::time::sleep(self.backoff(failures, failure.1)).await;
            match self.upload_progress(&scopes, &location).await? {
                Some((next_location, next_offset)) => {
                    location = next_location;
                    offset = next_offset.min(size);
                    resumed += 1;
                }
                None => return Err(SessionEnd::Lost(failure.0, None)),
            }
        }
        let req = Req::new(Method::PUT, with_digest(&location, digest));
        match self.send(&scopes, req).await {
            Ok(resp) if resp.status() == StatusCode::CREATED => Ok((sent, resumed)),
            Ok(resp) => Err(self.session_status_error(resp, &format!("PUT blob {digest}")).await),
            Err(e) => Err(SessionEnd::Fatal(e)),
        }
    }

    /// Where an interrupted session stands: `(location, next offset)`, `None` when it is gone.
    async fn upload_progress(
        &self,
        scopes: &[String],
        location: &str,
    ) -> Result<Option<(String, u64)>, SessionEnd> {
        let resp = match self.send(scopes, Req::new(Method::GET, location.to_owned())).await {
            Ok(r) => r,
            Err(e @ (Error::Unauthorized { .. } | Error::Unreachable { .. })) => {
                return Err(SessionEnd::Fatal(e));
            }
            Err(e) => return Err(SessionEnd::Lost(e.to_string(), None)),
        };
        if resp.status() != StatusCode::NO_CONTENT {
            return Ok(None);
        }
        let next = header_str(resp.headers(), header::RANGE)
            .and_then(|r| r.rsplit('-').next().and_then(|end| end.parse::<u64>().ok()))
            // `0-0` means nothing (or one byte) stored: start over within the session.
            .map_or(0, |end| if end == 0 { 0 } else { end + 1 });
        let location = header_str(resp.headers(), header::LOCATION)
            .map_or_else(|| location.to_owned(), |l| self.absolute(&l));
        Ok(Some((location, next)))
    }

    async fn session_status_error(&self, resp: reqwest::Response, what: &str) -> SessionEnd {
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        if status == StatusCode::NOT_FOUND {
            return SessionEnd::Lost(format!("{what}: session gone"), None);
        }
        SessionEnd::Fatal(self.status_error(what, status, &body))
    }

    /// Downloads a blob to `dest` (promotion across registries), checking its digest.
    pub async fn blob_to_file(&self, repo: &str, digest: &Digest, dest: &Path) -> Result<u64, Error> {
        use sha2::Digest as _;
        let resp = self
            .send(&[pull_scope(repo)], Req::new(Method::GET, self.url(&format!("{repo}/blobs/{digest}"))))
            .await?;
        let status = resp.status();
        if status == StatusCode::NOT_FOUND {
            return Err(Error::NotFound { reference: format!("{}/{repo}@{digest}", self.endpoint.host()) });
        }
        if !status.is_success() {
            return Err(self.status_error(format!("GET blob {repo}@{digest}"), status, ""));
        }
        let mut file = tokio::fs::File::create(dest)
            .await
            .map_err(|e| Error::io(format!("creating {}", dest.display()), e))?;
        let mut hasher = sha2::Sha256::new();
        let mut total = 0u64;
        let mut resp = resp;
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.transport(&e))? {
            hasher.update(&chunk);
            total += chunk.len() as u64;
            file.write_all(&chunk).await.map_err(|e| Error::io(format!("writing {}", dest.display()), e))?;
        }
        file.flush().await.map_err(|e| Error::io(format!("writing {}", dest.display()), e))?;
        let got = format!("sha256:{}", hex::encode(hasher.finalize()));
        if got != digest.as_str() {
            return Err(self.status_error(
                format!("GET blob {repo}@{digest}"),
                status,
                &format!("content hashes to {got}"),
            ));
        }
        Ok(total)
    }

    fn transport(&self, e: &reqwest::Error) -> Error {
        Error::Unreachable { registry: self.endpoint.to_string(), reason: error_chain(e) }
    }
}

enum SessionEnd {
    /// Start a new session (the old one is gone or unusable), after the `Retry-After` if any.
    Lost(String, Option<Duration>),
    Fatal(Error),
}

impl From<Error> for SessionEnd {
    fn from(e: Error) -> Self {
        Self::Fatal(e)
    }
}

async fn read_chunk(file: &mut tokio::fs::File, path: &Path, offset: u64, len: u64) -> Result<Bytes, Error> {
    let ctx = || format!("reading {}", path.display());
    file.seek(std::io::SeekFrom::Start(offset)).await.map_err(|e| Error::io(ctx(), e))?;
    let mut buf = vec![0u8; len as usize];
    file.read_exact(&mut buf).await.map_err(|e| Error::io(ctx(), e))?;
    Ok(Bytes::from(buf))
}

async fn ecr_login(client: &aws_sdk_ecr::Client) -> Result<(String, String), Error> {
    // One token opens every registry the principal may use (registryIds is deprecated).
    let out = client.get_authorization_token().send().await.map_err(|e| Error::Unauthorized {
        registry: "ECR".into(),
        reason: format!(
            "GetAuthorizationToken: {}",
            aws_smithy_types::error::display::DisplayErrorContext(&e)
        ),
    })?;
    // proxyEndpoint and expiresAt are ignored on purpose: the endpoint comes from the config
    // (moto's is fake) and expiry is handled by refreshing on 401.
    let token = out.authorization_data().first().and_then(|d| d.authorization_token()).ok_or_else(|| {
        Error::Unauthorized {
            registry: "ECR".into(),
            reason: "GetAuthorizationToken returned no token".into(),
        }
    })?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| Error::Unauthorized {
            registry: "ECR".into(),
            reason: "the ECR token is not base64 `user:password`".into(),
        })?;
    let (user, pass) = decoded.split_once(':').ok_or_else(|| Error::Unauthorized {
        registry: "ECR".into(),
        reason: "the ECR token is not `user:password`".into(),
    })?;
    Ok((user.to_owned(), pass.to_owned()))
}

fn basic_header(user: &str, pass: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}")))
}

pub(crate) fn pull_scope(repo: &str) -> String {
    format!("repository:{repo}:pull")
}

pub(crate) fn push_scope(repo: &str) -> String {
    format!("repository:{repo}:pull,push")
}

fn with_digest(location: &str, digest: &Digest) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}digest={digest}")
}

fn header_str(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<String> {
    headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok()).map(str::to_owned)
}

/// `Retry-After` in seconds (the HTTP-date form is rare from registries and falls back to backoff).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    header_str(headers, header::RETRY_AFTER)
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// Parses `Basic realm=…` / `Bearer realm="…",service="…",scope="…"`.
fn parse_challenge(header: &str) -> Option<Challenge> {
    let (scheme, params) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut realm = None;
    let mut service = None;
    let mut rest = params;
    while let Some((key, after)) = rest.split_once('=') {
        let key = key.trim().trim_start_matches(',').trim();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"').unwrap_or(quoted.len());
            (&quoted[..end], quoted.get(end + 1..).unwrap_or(""))
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        match key {
            "realm" => realm = Some(value.to_owned()),
            "service" => service = Some(value.to_owned()),
            _ => {}
        }
        rest = next;
    }
    realm.map(|realm| Challenge::Bearer { realm, service })
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

fn path_of(url: &str) -> &str {
    url.find("/v2/").map_or(url, |i| &url[i..])
}

fn short(body: &str) -> String {
    let t = body.trim();
    if t.len() > 300 { format!("{}…", &t[..t.floor_char_boundary(300)]) } else { t.to_owned() }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_configured_endpoint_keeps_its_scheme() {
        use crate::config::values::{AccountId, Region};
        let registry = |endpoint: Option<&str>| crate::config::RegistryConfig {
            account_id: AccountId::parse("111111111111").unwrap(),
            region: Region::parse("eu-west-1").unwrap(),
            endpoint: endpoint.map(str::to_owned),
        };
        let plain = super::Endpoint::for_registry(&registry(Some("http://127.0.0.1:5000"))).unwrap();
        assert_eq!((plain.base_url().as_str(), plain.host()), ("http://127.0.0.1:5000", "127.0.0.1:5000"));
        let tls = super::Endpoint::for_registry(&registry(Some("registry.example.com/"))).unwrap();
        assert_eq!(tls.base_url(), "https://registry.example.com");
        let ecr = super::Endpoint::for_registry(&registry(None)).unwrap();
        assert_eq!(ecr.host(), "111111111111.dkr.ecr.eu-west-1.amazonaws.com");
    }

    use super::*;

    #[test]
    fn endpoints_choose_the_scheme() {
        assert_eq!(Endpoint::parse("http://127.0.0.1:5000").unwrap().base_url(), "http://127.0.0.1:5000");
        assert_eq!(Endpoint::parse("reg.example.com").unwrap().base_url(), "https://reg.example.com");
        assert_eq!(Endpoint::parse("https://reg.example.com:8443/").unwrap().host(), "reg.example.com:8443");
        assert!(Endpoint::parse("http://reg.example.com").is_err());
        assert!(Endpoint::parse("http://localhost:5000").is_ok());
        assert!(Endpoint::parse("http://[::1]:5000").is_ok());
        assert!(Endpoint::parse("reg.example.com/path").is_err());
    }

    #[test]
    fn challenges_parse() {
        assert_eq!(parse_challenge(r#"Basic realm="Registry Realm""#), Some(Challenge::Basic));
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="http://127.0.0.1:9/token",service="reg",scope="repository:a:pull""#
            ),
            Some(Challenge::Bearer { realm: "http://127.0.0.1:9/token".into(), service: Some("reg".into()) })
        );
        assert_eq!(parse_challenge("Negotiate"), None);
    }

    #[test]
    fn credentials_and_options_come_from_the_environment() {
        let vars = |k: &str| match k {
            "DEPLOYER_REGISTRY_USERNAME" => Some("ci".to_owned()),
            "DEPLOYER_REGISTRY_PASSWORD" => Some("pw".to_owned()),
            "DEPLOYER_REGISTRY_CA" => Some("/etc/ca.pem".to_owned()),
            _ => None,
        };
        assert!(
            matches!(Credentials::from_env(&vars), Credentials::Basic { ref username, .. } if username == "ci")
        );
        assert!(matches!(Credentials::from_env(&|_| None), Credentials::Anonymous));
        assert_eq!(RegistryOptions::from_env(&vars).ca_bundle, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(RegistryOptions::from_env(&|_| None).ca_bundle, None);
    }

    #[test]
    fn retry_after_is_read_in_seconds() {
        let mut h = HeaderMap::new();
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("Wed, 21 Oct 2026 07:28:00 GMT"));
        assert_eq!(retry_after(&h), None, "dates fall back to backoff");
    }

    #[test]
    fn upload_urls_keep_their_state() {
        let d = Digest::of(b"x");
        assert_eq!(
            with_digest("http://h/v2/r/blobs/uploads/u?_state=abc", &d),
            format!("http://h/v2/r/blobs/uploads/u?_state=abc&digest={d}")
        );
        assert_eq!(with_digest("http://h/u", &d), format!("http://h/u?digest={d}"));
    }
}
