//! Resolves a tag to a manifest digest over the OCI distribution API.
//!
//! `HEAD /v2/<repository>/manifests/<tag>` with every manifest media type in `Accept`, so the
//! registry answers with the digest of what the tag points at (an index stays an index: multi-arch
//! images stay multi-arch); `GET` and hash the body when a registry omits `Docker-Content-Digest`.
//! A registry that answers `HEAD` with 405 or 501 is asked with `GET` instead.
//! Anonymous, Basic and Bearer-token auth; tokens cached by scope until they expire; `429` honoured
//! with a per-host back-off, before which no request is sent.
//!
//! Where credentials go: a pull secret's user and password are sent only to the registry host
//! they were found for (Basic) and to the token realm its Bearer challenge names, and that realm
//! is followed only over `https` (plain `http` only to a host on the insecure list, as for the
//! registry itself): an `http://` realm elsewhere is refused without a request, so a registry
//! cannot make us send a password in clear or probe other hosts for it. Redirects never go from
//! `https` to `http` outside the insecure list, and drop `Authorization` when they leave the host.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

// parking_lot's locks do not poison: a panic while one is held cannot break every later lookup.
use parking_lot::Mutex;

use reqwest::header::{
    ACCEPT, AUTHORIZATION, HeaderMap, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE,
};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use super::challenge::{self, Challenge};
use super::credentials::Credentials;
use crate::digest::reference::{Digest, ImageReference};
use crate::error::Error;

/// The manifest media types a tag may point at, all accepted.
pub const MANIFEST_MEDIA_TYPES: [&str; 4] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// Largest manifest we read when we must hash it ourselves.
const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;
/// A 429 without `Retry-After` backs off this long, doubling while 429s continue.
const DEFAULT_RATE_LIMIT_BACKOFF: Duration = Duration::from_secs(10);
/// The longest a registry can make us wait: a larger `Retry-After` (seconds or date) is clamped
/// to this, so a hostile or broken registry can neither overflow our clock arithmetic nor silence
/// itself for ever.
pub const MAX_RATE_LIMIT_BACKOFF: Duration = Duration::from_secs(600);
/// Tokens without `expires_in` live 60 s (the token specification's default).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// A token is reused at most this long, whatever `expires_in` says.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// Settings of a [`RegistryClient`].
#[derive(Debug, Clone)]
pub struct RegistryClientConfig {
    /// Hosts (`host[:port]`) spoken to over plain HTTP; everything else is HTTPS only.
    pub insecure_hosts: HashSet<String>,
    /// Timeout of one HTTP request (connect included).
    pub request_timeout: Duration,
}

impl Default for RegistryClientConfig {
    fn default() -> Self {
        Self {
            insecure_hosts: HashSet::new(),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// Tokens are cached per registry host, scope and credentials: a token fetched with one pull
/// secret is never sent on behalf of another.
#[derive(Hash, PartialEq, Eq, Clone)]
struct TokenKey {
    host: String,
    scope: String,
    credentials: Option<Credentials>,
}

#[derive(Clone)]
struct CachedToken {
    token: String,
    expires_at: Instant,
}

struct HostBackoff {
    until: Instant,
    next: Duration,
}

/// Talks to registries. One per operator; cheap to share behind an `Arc`.
pub struct RegistryClient {
    http: reqwest::Client,
    insecure_hosts: HashSet<String>,
    tokens: Mutex<HashMap<TokenKey, CachedToken>>,
    backoff: Mutex<HashMap<String, HostBackoff>>,
    requests: std::sync::atomic::AtomicU64,
}

#[derive(Deserialize)]
struct TokenResponse {
    token: Option<String>,
    access_token: Option<String>,
    /// Any JSON number (a registry may send a float, a negative or a huge value): read leniently,
    /// then clamped by [`token_lifetime`].
    expires_in: Option<serde_json::Number>,
}

/// Largest token response we read (tokens are JWTs of a few kilobytes).
const MAX_TOKEN_RESPONSE_BYTES: usize = 1024 * 1024;

/// Whole seconds of a JSON number: negatives and NaN are 0, huge values saturate.
fn whole_seconds(number: &serde_json::Number) -> u64 {
    number
        .as_u64()
        .or_else(|| number.as_f64().map(|f| f as u64))
        .unwrap_or(0)
}

impl RegistryClient {
    pub fn new(config: RegistryClientConfig) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout)
            .user_agent(concat!(
                "trading-agent-operator/",
                env!("CARGO_PKG_VERSION")
            ))
            // Redirects (to blob storage) keep the method; auth headers are not forwarded off-host.
            .redirect(redirect_policy(config.insecure_hosts.clone()))
            .build()?;
        Ok(Self {
            http,
            insecure_hosts: config.insecure_hosts,
            tokens: Mutex::default(),
            backoff: Mutex::default(),
            requests: Default::default(),
        })
    }

    /// How many HTTP requests this client has sent (manifest and token requests).
    pub fn request_count(&self) -> u64 {
        self.requests.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The digest `tag` of `image`'s repository points at now.
    pub async fn resolve_tag(
        &self,
        image: &ImageReference,
        tag: &str,
        credentials: Option<&Credentials>,
    ) -> Result<Digest, Error> {
        let host = image.api_host().to_owned();
        self.check_backoff(&host)?;
        let scheme = if self.insecure_hosts.contains(&host) {
            "http"
        } else {
            "https"
        };
        let url = format!(
            "{scheme}://{host}/v2/{}/manifests/{tag}",
            image.repository()
        );
        let scope = format!("repository:{}:pull", image.repository());
        let context = RequestContext {
            host: &host,
            repository: image.repository(),
            tag,
        };

        let response = self
            .send_authenticated(Method::HEAD, &url, &scope, credentials, &context)
            .await?;
        if let Some(digest) = response
            .headers()
            .get("docker-content-digest")
            .filter(|_| response.status().is_success())
        {
            let digest = digest.to_str().unwrap_or_default();
            return Digest::parse(digest).map_err(|e| Error::RegistryInvalidDigest {
                host: host.clone(),
                detail: e.to_string(),
            });
        }
        // No digest header (some registries, some proxies) or no HEAD at all (405/501): fetch the
        // manifest and hash it.
        let response = self
            .send_authenticated(Method::GET, &url, &scope, credentials, &context)
            .await?;
        let body = read_limited(response, MAX_MANIFEST_BYTES)
            .await
            .map_err(|detail| Error::RegistryUnreachable {
                host: host.clone(),
                detail,
            })?;
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&body)));
        Digest::parse(&digest).map_err(|e| Error::RegistryInvalidDigest {
            host,
            detail: e.to_string(),
        })
    }

    /// Sends a manifest request, answering one auth challenge; maps failures to [`Error`].
    async fn send_authenticated(
        &self,
        method: Method,
        url: &str,
        scope: &str,
        credentials: Option<&Credentials>,
        context: &RequestContext<'_>,
    ) -> Result<reqwest::Response, Error> {
        let mut authorization = self.cached_authorization(context.host, scope, credentials);
        let mut challenged = false;
        loop {
            let response = self
                .send(method.clone(), url, authorization.as_deref(), context.host)
                .await?;
            match response.status() {
                status if status.is_success() => {
                    self.clear_backoff(context.host);
                    return Ok(response);
                }
                StatusCode::UNAUTHORIZED if !challenged => {
                    challenged = true;
                    let header = response
                        .headers()
                        .get(WWW_AUTHENTICATE)
                        .and_then(|v| v.to_str().ok());
                    authorization = Some(
                        self.answer_challenge(header, scope, credentials, context)
                            .await?,
                    );
                }
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    return Err(Error::RegistryUnauthorized {
                        host: context.host.to_owned(),
                        repository: context.repository.to_owned(),
                        detail: match credentials {
                            Some(c) => format!("as user {:?}", c.username),
                            None => "anonymous; add an imagePullSecret for this registry".into(),
                        },
                    });
                }
                // Only HEAD: the caller falls back to GET.
                StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_IMPLEMENTED
                    if method == Method::HEAD =>
                {
                    return Ok(response);
                }
                StatusCode::NOT_FOUND => {
                    return Err(Error::TagNotFound {
                        host: context.host.to_owned(),
                        repository: context.repository.to_owned(),
                        tag: context.tag.to_owned(),
                    });
                }
                StatusCode::TOO_MANY_REQUESTS => {
                    return Err(self.rate_limited(context.host, response.headers()));
                }
                status => {
                    return Err(Error::RegistryUnexpectedStatus {
                        host: context.host.to_owned(),
                        repository: context.repository.to_owned(),
                        tag: context.tag.to_owned(),
                        status: status.as_u16(),
                    });
                }
            }
        }
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        authorization: Option<&str>,
        host: &str,
    ) -> Result<reqwest::Response, Error> {
        let mut request = self
            .http
            .request(method, url)
            .header(ACCEPT, MANIFEST_MEDIA_TYPES.join(", "));
        if let Some(value) = authorization {
            request = request.header(AUTHORIZATION, value);
        }
        self.requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        request
            .send()
            .await
            .map_err(|e| Error::RegistryUnreachable {
                host: host.to_owned(),
                detail: error_chain(&e),
            })
    }

    /// An `Authorization` value from the token cache, if a fresh token for this scope is there.
    fn cached_authorization(
        &self,
        host: &str,
        scope: &str,
        credentials: Option<&Credentials>,
    ) -> Option<String> {
        let key = TokenKey {
            host: host.to_owned(),
            scope: scope.to_owned(),
            credentials: credentials.cloned(),
        };
        let tokens = self.tokens.lock();
        tokens
            .get(&key)
            .filter(|token| token.expires_at > Instant::now())
            .map(|token| format!("Bearer {}", token.token))
    }

    async fn answer_challenge(
        &self,
        header: Option<&str>,
        scope: &str,
        credentials: Option<&Credentials>,
        context: &RequestContext<'_>,
    ) -> Result<String, Error> {
        let unauthorized = |detail: String| Error::RegistryUnauthorized {
            host: context.host.to_owned(),
            repository: context.repository.to_owned(),
            detail,
        };
        match header.and_then(challenge::parse) {
            Some(Challenge::Basic) => {
                let credentials = credentials.ok_or_else(|| {
                    unauthorized(
                        "Basic auth required; add an imagePullSecret for this registry".into(),
                    )
                })?;
                Ok(basic(credentials))
            }
            Some(Challenge::Bearer {
                realm,
                service,
                scope: challenged_scope,
            }) => {
                if !realm_allowed(&realm, &self.insecure_hosts) {
                    return Err(unauthorized(format!(
                        "token realm {realm:?} refused: a realm must be https (plain http only for a host given with --insecure-registry)"
                    )));
                }
                let request = TokenRequest {
                    realm: &realm,
                    service: service.as_deref(),
                    scope: challenged_scope.as_deref().unwrap_or(scope),
                    credentials,
                };
                let token = self.fetch_token(&request, context).await?;
                let key = TokenKey {
                    host: context.host.to_owned(),
                    scope: scope.to_owned(),
                    credentials: credentials.cloned(),
                };
                let mut tokens = self.tokens.lock();
                tokens.retain(|_, t| t.expires_at > Instant::now());
                tokens.insert(key, token.clone());
                Ok(format!("Bearer {}", token.token))
            }
            None => Err(unauthorized(format!(
                "unsupported challenge {:?}",
                header.unwrap_or("(none)")
            ))),
        }
    }

    async fn fetch_token(
        &self,
        key: &TokenRequest<'_>,
        context: &RequestContext<'_>,
    ) -> Result<CachedToken, Error> {
        let identity_token = key.credentials.and_then(|c| c.identity_token.as_deref());
        let request = match identity_token {
            // An identity token is an OAuth2 refresh token: exchanged with a POST, as Docker does.
            Some(refresh_token) => {
                let mut form = vec![
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh_token),
                    ("client_id", "trading-agent-operator"),
                    ("scope", key.scope),
                ];
                if let Some(service) = key.service {
                    form.push(("service", service));
                }
                self.http.post(key.realm).form(&form)
            }
            None => {
                let mut request = self.http.get(key.realm).query(&[("scope", key.scope)]);
                if let Some(service) = key.service {
                    request = request.query(&[("service", service)]);
                }
                if let Some(credentials) = key.credentials {
                    request = request.header(AUTHORIZATION, basic(credentials));
                }
                request
            }
        };
        self.requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let realm_host = reqwest::Url::parse(key.realm)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| key.realm.to_owned());
        let response = request
            .send()
            .await
            .map_err(|e| Error::RegistryUnreachable {
                host: realm_host.clone(),
                detail: error_chain(&e),
            })?;
        match response.status() {
            status if status.is_success() => {}
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                return Err(Error::RegistryUnauthorized {
                    host: context.host.to_owned(),
                    repository: context.repository.to_owned(),
                    detail: format!(
                        "token service {} refused {}",
                        key.realm,
                        key.credentials
                            .map_or("anonymous access".to_owned(), |c| format!(
                                "user {:?}",
                                c.username
                            ))
                    ),
                });
            }
            StatusCode::TOO_MANY_REQUESTS => {
                return Err(self.rate_limited(context.host, response.headers()));
            }
            status => {
                return Err(Error::RegistryUnexpectedStatus {
                    host: realm_host,
                    repository: context.repository.to_owned(),
                    tag: context.tag.to_owned(),
                    status: status.as_u16(),
                });
            }
        }
        let unreadable = |detail: String| Error::RegistryUnreachable {
            host: realm_host.clone(),
            detail: format!("token response: {detail}"),
        };
        let body = read_limited(response, MAX_TOKEN_RESPONSE_BYTES)
            .await
            .map_err(unreadable)?;
        let body: TokenResponse =
            serde_json::from_slice(&body).map_err(|e| unreadable(e.to_string()))?;
        let token = body.token.or(body.access_token).unwrap_or_default();
        let lifetime = token_lifetime(body.expires_in.as_ref().map(whole_seconds));
        let now = Instant::now();
        // Renew a little early, so a token never expires between our check and the registry's.
        let expires_at = now.checked_add(lifetime).unwrap_or(now);
        Ok(CachedToken { token, expires_at })
    }

    fn check_backoff(&self, host: &str) -> Result<(), Error> {
        let backoff = self.backoff.lock();
        let now = Instant::now();
        match backoff.get(host) {
            Some(b) if b.until > now => Err(Error::RegistryRateLimited {
                host: host.to_owned(),
                retry_in: b.until.saturating_duration_since(now),
            }),
            _ => Ok(()),
        }
    }

    fn clear_backoff(&self, host: &str) {
        self.backoff.lock().remove(host);
    }

    fn rate_limited(&self, host: &str, headers: &HeaderMap) -> Error {
        let mut backoff = self.backoff.lock();
        let previous = backoff.get(host).map(|b| b.next);
        let wait = headers
            .get(RETRY_AFTER)
            .and_then(|v| parse_retry_after(v, std::time::SystemTime::now()))
            .unwrap_or_else(|| previous.unwrap_or(DEFAULT_RATE_LIMIT_BACKOFF))
            .min(MAX_RATE_LIMIT_BACKOFF);
        let next = wait.saturating_mul(2).min(MAX_RATE_LIMIT_BACKOFF);
        let now = Instant::now();
        backoff.insert(
            host.to_owned(),
            HostBackoff {
                until: now.checked_add(wait).unwrap_or(now),
                next,
            },
        );
        Error::RegistryRateLimited {
            host: host.to_owned(),
            retry_in: wait,
        }
    }
}

/// What a Bearer challenge asks us to fetch.
struct TokenRequest<'a> {
    realm: &'a str,
    service: Option<&'a str>,
    scope: &'a str,
    credentials: Option<&'a Credentials>,
}

struct RequestContext<'a> {
    host: &'a str,
    repository: &'a str,
    tag: &'a str,
}

fn basic(credentials: &Credentials) -> String {
    use base64::Engine;
    let raw = format!("{}:{}", credentials.username, credentials.password);
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// Whether a Bearer challenge's realm may be asked for a token (with the pull secret's
/// credentials): `https`, or `http` to a host (`host` or `host:port`) on the insecure list.
pub fn realm_allowed(realm: &str, insecure_hosts: &HashSet<String>) -> bool {
    let Ok(url) = reqwest::Url::parse(realm) else {
        return false;
    };
    match url.scheme() {
        "https" => url.host_str().is_some(),
        "http" => is_insecure_host(&url, insecure_hosts),
        _ => false,
    }
}

fn is_insecure_host(url: &reqwest::Url, insecure_hosts: &HashSet<String>) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let with_port = url.port().map(|port| format!("{host}:{port}"));
    insecure_hosts.contains(host) || with_port.is_some_and(|h| insecure_hosts.contains(&h))
}

/// At most 5 redirects, never from `https` down to `http` except to an insecure-listed host.
fn redirect_policy(insecure_hosts: HashSet<String>) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        let downgrade =
            attempt.url().scheme() != "https" && !is_insecure_host(attempt.url(), &insecure_hosts);
        if attempt.previous().len() >= 5 {
            attempt.error("more than 5 redirects")
        } else if downgrade {
            attempt.error("redirect to plain http refused (not an --insecure-registry host)")
        } else {
            attempt.follow()
        }
    })
}

/// `Retry-After` as seconds or an HTTP date, relative to `now`, clamped to
/// [`MAX_RATE_LIMIT_BACKOFF`] (a number too large for `u64` counts as the maximum).
pub fn parse_retry_after(value: &HeaderValue, now: std::time::SystemTime) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    let wait = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        text.parse::<u64>()
            .map_or(MAX_RATE_LIMIT_BACKOFF, Duration::from_secs)
    } else {
        let at = httpdate::parse_http_date(text).ok()?;
        at.duration_since(now).unwrap_or_default()
    };
    Some(wait.min(MAX_RATE_LIMIT_BACKOFF))
}

/// How long a token is reused: `expires_in` (the specification's 60 s without it), clamped to
/// [`MAX_TOKEN_LIFETIME`], less a tenth so it is renewed before the registry's clock expires it.
pub fn token_lifetime(expires_in: Option<u64>) -> Duration {
    let lifetime = expires_in
        .map_or(DEFAULT_TOKEN_LIFETIME, Duration::from_secs)
        .min(MAX_TOKEN_LIFETIME);
    lifetime
        .saturating_sub(lifetime / 10)
        .max(Duration::from_secs(1))
}

async fn read_limited(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| error_chain(&e))? {
        if body.len().saturating_add(chunk.len()) > limit {
            return Err(format!("body larger than {limit} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// An error with its sources, e.g. "error sending request: connection refused".
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
pub(crate) mod loopback {
    //! A registry on a loopback port that answers however a test says, for driving the real
    //! client over real HTTP with answers no well-behaved registry gives.

    use std::net::SocketAddr;
    use std::sync::Arc;

    use axum::body::Body;
    use axum::extract::Request;
    use axum::http::Response;
    use parking_lot::Mutex;

    /// One request as the server saw it.
    #[derive(Debug, Clone)]
    pub struct Seen {
        pub method: String,
        pub path: String,
        pub authorization: Option<String>,
        pub body: String,
    }

    type Answer = dyn Fn(&Seen, SocketAddr) -> Response<Body> + Send + Sync;

    pub struct LoopbackRegistry {
        pub addr: SocketAddr,
        seen: Arc<Mutex<Vec<Seen>>>,
        server: tokio::task::JoinHandle<()>,
    }

    impl LoopbackRegistry {
        pub async fn start(
            answer: impl Fn(&Seen, SocketAddr) -> Response<Body> + Send + Sync + 'static,
        ) -> Self {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
            let answer: Arc<Answer> = Arc::new(answer);
            let log = seen.clone();
            let app = axum::Router::new().fallback(move |request: Request| {
                let (log, answer) = (log.clone(), answer.clone());
                async move {
                    let (parts, body) = request.into_parts();
                    let body = axum::body::to_bytes(body, 1 << 20)
                        .await
                        .unwrap_or_default();
                    let request = Seen {
                        method: parts.method.to_string(),
                        path: parts
                            .uri
                            .path_and_query()
                            .map(|p| p.to_string())
                            .unwrap_or_default(),
                        authorization: parts
                            .headers
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned),
                        body: String::from_utf8_lossy(&body).into_owned(),
                    };
                    log.lock().push(request.clone());
                    answer(&request, addr)
                }
            });
            let server = tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
            Self { addr, seen, server }
        }

        /// `host:port`, as an insecure-registry entry and in image references.
        pub fn host(&self) -> String {
            self.addr.to_string()
        }

        pub fn seen(&self) -> Vec<Seen> {
            self.seen.lock().clone()
        }
    }

    impl Drop for LoopbackRegistry {
        fn drop(&mut self) {
            self.server.abort();
        }
    }

    pub fn answer(status: u16, headers: &[(&str, &str)], body: &str) -> Response<Body> {
        let mut response = Response::builder().status(status);
        for (name, value) in headers {
            response = response.header(*name, *value);
        }
        response.body(Body::from(body.to_owned())).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::loopback::{LoopbackRegistry, answer};
    use super::*;

    const DIGEST: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    fn client_for(registry: &LoopbackRegistry) -> RegistryClient {
        RegistryClient::new(RegistryClientConfig {
            insecure_hosts: [registry.host()].into(),
            request_timeout: Duration::from_secs(5),
        })
        .unwrap()
    }

    fn image(registry: &LoopbackRegistry) -> ImageReference {
        ImageReference::parse(&format!("{}/acme/app:stable", registry.host())).unwrap()
    }

    /// Issue 15's crash: `429` with `Retry-After: u64::MAX` overflowed the back-off arithmetic and
    /// took the process down. Now the wait is clamped, and the host is left alone until then.
    #[tokio::test]
    async fn retry_after_u64_max_is_rate_limited_with_a_clamped_wait() {
        let registry = LoopbackRegistry::start(|_, _| {
            answer(429, &[("retry-after", "18446744073709551615")], "")
        })
        .await;
        let client = client_for(&registry);
        let image = image(&registry);
        let expected = Error::RegistryRateLimited {
            host: registry.host(),
            retry_in: MAX_RATE_LIMIT_BACKOFF,
        };
        assert_eq!(
            client.resolve_tag(&image, "stable", None).await,
            Err(expected.clone())
        );
        assert_eq!(expected.reason(), "RegistryRateLimited");
        // Backing off: the next lookup is refused without a request.
        match client.resolve_tag(&image, "stable", None).await {
            Err(Error::RegistryRateLimited { retry_in, .. }) => {
                assert!(retry_in <= MAX_RATE_LIMIT_BACKOFF && retry_in > Duration::ZERO)
            }
            other => panic!("expected RegistryRateLimited, got {other:?}"),
        }
        let seen = registry.seen();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].method, "HEAD");
        // A Retry-After beyond u64 and a date far in the future are clamped the same way.
        for value in [
            "99999999999999999999999999",
            "Fri, 31 Dec 9999 23:59:59 GMT",
        ] {
            let header = HeaderValue::from_str(value).unwrap();
            assert_eq!(
                parse_retry_after(&header, std::time::SystemTime::now()),
                Some(MAX_RATE_LIMIT_BACKOFF),
                "{value}"
            );
        }
    }

    /// The same class: a token `expires_in` near `u64::MAX` (or negative, or a float) is clamped
    /// and the token is reused, not an overflow.
    #[tokio::test]
    async fn token_expires_in_of_any_size_is_clamped() {
        for expires_in in ["18446744073709551615", "1e300", "-5", "12.5"] {
            let registry = LoopbackRegistry::start(move |seen, addr| {
                if seen.path.starts_with("/token") {
                    return answer(
                        200,
                        &[("content-type", "application/json")],
                        &format!(r#"{{"token":"t0k","expires_in":{expires_in}}}"#),
                    );
                }
                match seen.authorization.as_deref() {
                    Some("Bearer t0k") => answer(200, &[("docker-content-digest", DIGEST)], ""),
                    _ => answer(
                        401,
                        &[(
                            "www-authenticate",
                            &format!(r#"Bearer realm="http://{addr}/token",service="loopback""#),
                        )],
                        "",
                    ),
                }
            })
            .await;
            let client = client_for(&registry);
            let image = image(&registry);
            for _ in 0..2 {
                assert_eq!(
                    client
                        .resolve_tag(&image, "stable", None)
                        .await
                        .map(|d| d.as_str().to_owned()),
                    Ok(DIGEST.to_owned()),
                    "expires_in {expires_in}"
                );
            }
            let token_requests = registry
                .seen()
                .iter()
                .filter(|s| s.path.starts_with("/token"))
                .count();
            assert_eq!(token_requests, 1, "expires_in {expires_in}: token reused");
        }
        assert_eq!(
            token_lifetime(Some(u64::MAX)),
            MAX_TOKEN_LIFETIME - MAX_TOKEN_LIFETIME / 10
        );
        assert_eq!(token_lifetime(Some(0)), Duration::from_secs(1));
        assert_eq!(token_lifetime(None), Duration::from_secs(54));
    }

    /// A registry on the insecure list names a token realm elsewhere over plain http: refused
    /// before any request reaches it, so the pull secret's password never travels in clear.
    #[tokio::test]
    async fn an_http_realm_off_the_insecure_list_gets_no_request_and_no_password() {
        let elsewhere = LoopbackRegistry::start(|_, _| answer(200, &[], r#"{"token":"t"}"#)).await;
        let realm = format!("http://localhost:{}/token", elsewhere.addr.port());
        let registry = LoopbackRegistry::start(move |_, _| {
            answer(
                401,
                &[("www-authenticate", &format!(r#"Bearer realm="{realm}""#))],
                "",
            )
        })
        .await;
        let client = client_for(&registry);
        let credentials = Credentials::basic("u", "secret");
        match client
            .resolve_tag(&image(&registry), "stable", Some(&credentials))
            .await
        {
            Err(Error::RegistryUnauthorized { detail, .. }) => {
                assert!(detail.contains("must be https"), "{detail}")
            }
            other => panic!("expected RegistryUnauthorized, got {other:?}"),
        }
        assert!(elsewhere.seen().is_empty(), "{:?}", elsewhere.seen());
    }

    /// An `identitytoken` is a refresh token: POSTed to the realm (never sent as a password), and
    /// the access token it buys is used.
    #[tokio::test]
    async fn an_identity_token_is_exchanged_at_the_realm() {
        let registry = LoopbackRegistry::start(|seen, addr| {
            if seen.path.starts_with("/token") {
                return if seen.method == "POST"
                    && seen.body.contains("grant_type=refresh_token")
                    && seen.body.contains("refresh_token=refresh-me")
                {
                    answer(200, &[], r#"{"access_token":"bought"}"#)
                } else {
                    answer(401, &[], "")
                };
            }
            match seen.authorization.as_deref() {
                Some("Bearer bought") => answer(200, &[("docker-content-digest", DIGEST)], ""),
                _ => answer(
                    401,
                    &[(
                        "www-authenticate",
                        &format!(r#"Bearer realm="http://{addr}/token",service="acr""#),
                    )],
                    "",
                ),
            }
        })
        .await;
        let credentials = Credentials {
            identity_token: Some("refresh-me".into()),
            ..Credentials::basic("00000000-0000-0000-0000-000000000000", "")
        };
        let resolved = client_for(&registry)
            .resolve_tag(&image(&registry), "stable", Some(&credentials))
            .await;
        assert_eq!(
            resolved.map(|d| d.as_str().to_owned()),
            Ok(DIGEST.to_owned())
        );
        let token_request = registry
            .seen()
            .into_iter()
            .find(|s| s.path.starts_with("/token"))
            .unwrap();
        assert_eq!(token_request.authorization, None, "no password sent");
    }

    #[test]
    fn realms_are_followed_over_https_or_to_insecure_hosts_only() {
        let insecure: HashSet<String> = ["127.0.0.1:5000".into(), "registry.local".into()].into();
        for (realm, allowed) in [
            ("https://auth.docker.io/token", true),
            ("https://127.0.0.1:9/token", true),
            ("http://127.0.0.1:5000/token", true),
            ("http://registry.local/token", true),
            ("http://registry.local:8080/token", true),
            ("http://127.0.0.1:5001/token", false),
            ("http://auth.docker.io/token", false),
            ("http://169.254.169.254/latest/meta-data", false),
            ("file:///etc/passwd", false),
            ("ftp://auth.docker.io/token", false),
            ("/token", false),
            ("", false),
        ] {
            assert_eq!(realm_allowed(realm, &insecure), allowed, "{realm}");
        }
    }

    /// Some registries and proxies answer HEAD with 405 or 501: the digest comes from GET.
    #[tokio::test]
    async fn head_answered_405_or_501_falls_back_to_get() {
        for head_status in [405, 501] {
            let body = r#"{"schemaVersion":2}"#;
            let registry = LoopbackRegistry::start(move |seen, _| match seen.method.as_str() {
                "HEAD" => answer(head_status, &[], ""),
                _ => answer(200, &[], body),
            })
            .await;
            let digest = client_for(&registry)
                .resolve_tag(&image(&registry), "stable", None)
                .await;
            let expected = format!("sha256:{}", hex::encode(Sha256::digest(body)));
            assert_eq!(
                digest.map(|d| d.as_str().to_owned()),
                Ok(expected),
                "HEAD {head_status}"
            );
            let methods: Vec<_> = registry.seen().into_iter().map(|s| s.method).collect();
            assert_eq!(methods, ["HEAD", "GET"], "HEAD {head_status}");
        }
        // Other statuses stay errors.
        let registry = LoopbackRegistry::start(|_, _| answer(500, &[], "")).await;
        assert!(matches!(
            client_for(&registry)
                .resolve_tag(&image(&registry), "stable", None)
                .await,
            Err(Error::RegistryUnexpectedStatus { status: 500, .. })
        ));
        assert_eq!(registry.seen().len(), 1);
    }

    #[test]
    fn retry_after_in_seconds_and_as_http_date() {
        let now = std::time::UNIX_EPOCH + Duration::from_secs(1_784_000_000);
        assert_eq!(
            parse_retry_after(&HeaderValue::from_static("7"), now),
            Some(Duration::from_secs(7))
        );
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            parse_retry_after(&HeaderValue::from_str(&later).unwrap(), now),
            Some(Duration::from_secs(30))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(
            parse_retry_after(&HeaderValue::from_str(&past).unwrap(), now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after(&HeaderValue::from_static("soon"), now),
            None
        );
    }

    #[test]
    fn every_error_has_a_condition_reason() {
        let e = Error::TagNotFound {
            host: "h".into(),
            repository: "r".into(),
            tag: "t".into(),
        };
        assert_eq!(e.reason(), "TagNotFound");
        assert_eq!(e.to_string(), "r:t not found at h");
        let e = Error::RegistryRateLimited {
            host: "h".into(),
            retry_in: Duration::from_millis(300),
        };
        assert_eq!(
            e.to_string(),
            "registry h rate-limited us; next request in 1s"
        );
    }

    #[test]
    fn basic_header_is_base64_of_user_colon_password() {
        let c = Credentials::basic("Aladdin", "open sesame");
        assert_eq!(basic(&c), "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
    }
}
