//! Resolves a tag to a manifest digest over the OCI distribution API.
//!
//! `HEAD /v2/<repository>/manifests/<tag>` with every manifest media type in `Accept`, so the
//! registry answers with the digest of what the tag points at (an index stays an index: multi-arch
//! images stay multi-arch); `GET` and hash the body when a registry omits `Docker-Content-Digest`.
//! Anonymous, Basic and Bearer-token auth; tokens cached by scope until they expire; `429` honoured
//! with a per-host back-off, before which no request is sent.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

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
const MAX_RATE_LIMIT_BACKOFF: Duration = Duration::from_secs(600);
/// Tokens without `expires_in` live 60 s (the token specification's default).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);

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
    expires_in: Option<u64>,
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
            .redirect(reqwest::redirect::Policy::limited(5))
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
        if let Some(digest) = response.headers().get("docker-content-digest") {
            let digest = digest.to_str().unwrap_or_default();
            return Digest::parse(digest).map_err(|e| Error::RegistryInvalidDigest {
                host: host.clone(),
                detail: e.to_string(),
            });
        }
        // No digest header (some registries, some proxies): fetch the manifest and hash it.
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
        for attempt in 0..2 {
            let response = self
                .send(method.clone(), url, authorization.as_deref(), context.host)
                .await?;
            match response.status() {
                status if status.is_success() => {
                    self.clear_backoff(context.host);
                    return Ok(response);
                }
                StatusCode::UNAUTHORIZED if attempt == 0 => {
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
        unreachable!("the loop returns on its second attempt")
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
        let tokens = self.tokens.lock().expect("token cache lock");
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
                let mut tokens = self.tokens.lock().expect("token cache lock");
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
        let mut request = self.http.get(key.realm).query(&[("scope", key.scope)]);
        if let Some(service) = key.service {
            request = request.query(&[("service", service)]);
        }
        if let Some(credentials) = key.credentials {
            request = request.header(AUTHORIZATION, basic(credentials));
        }
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
        let body: TokenResponse =
            response
                .json()
                .await
                .map_err(|e| Error::RegistryUnreachable {
                    host: realm_host,
                    detail: format!("token response: {}", error_chain(&e)),
                })?;
        let token = body.token.or(body.access_token).unwrap_or_default();
        let lifetime = body
            .expires_in
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_TOKEN_LIFETIME);
        // Renew a little early, so a token never expires between our check and the registry's.
        let expires_at = Instant::now()
            + lifetime
                .saturating_sub(lifetime / 10)
                .max(Duration::from_secs(1));
        Ok(CachedToken { token, expires_at })
    }

    fn check_backoff(&self, host: &str) -> Result<(), Error> {
        let backoff = self.backoff.lock().expect("backoff lock");
        match backoff.get(host) {
            Some(b) if b.until > Instant::now() => Err(Error::RegistryRateLimited {
                host: host.to_owned(),
                retry_in: b.until - Instant::now(),
            }),
            _ => Ok(()),
        }
    }

    fn clear_backoff(&self, host: &str) {
        self.backoff.lock().expect("backoff lock").remove(host);
    }

    fn rate_limited(&self, host: &str, headers: &HeaderMap) -> Error {
        let mut backoff = self.backoff.lock().expect("backoff lock");
        let previous = backoff.get(host).map(|b| b.next);
        let wait = headers
            .get(RETRY_AFTER)
            .and_then(|v| parse_retry_after(v, std::time::SystemTime::now()))
            .unwrap_or_else(|| previous.unwrap_or(DEFAULT_RATE_LIMIT_BACKOFF));
        let next = (wait * 2).min(MAX_RATE_LIMIT_BACKOFF);
        backoff.insert(
            host.to_owned(),
            HostBackoff {
                until: Instant::now() + wait,
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

/// `Retry-After` as seconds or an HTTP date, relative to `now`.
pub fn parse_retry_after(value: &HeaderValue, now: std::time::SystemTime) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(text).ok()?;
    Some(at.duration_since(now).unwrap_or_default())
}

async fn read_limited(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| error_chain(&e))? {
        if body.len() + chunk.len() > limit {
            return Err(format!("manifest larger than {limit} bytes"));
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
mod tests {
    use super::*;

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
        let c = Credentials {
            username: "Aladdin".into(),
            password: "open sesame".into(),
        };
        assert_eq!(basic(&c), "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
    }
}
