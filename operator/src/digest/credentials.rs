//! Registry credentials from `imagePullSecrets`: the same Secrets the kubelet pulls with, in both
//! formats it reads (`kubernetes.io/dockerconfigjson` and the older `kubernetes.io/dockercfg`),
//! matched to an image the way the kubelet matches them:
//!
//! - a key is `host[:port][/path]` (a scheme and a `/v1/` or `/v2/` path prefix are ignored; the
//!   Docker Hub aliases are `docker.io`);
//! - the host may hold globs, one per dot-separated part (`*.example.com` matches
//!   `a.example.com`, not `example.com` nor `a.b.example.com`; `prefix.*.io`, `*-good.k8s.io`);
//!   the image's host must have as many parts, each matching;
//! - a port in the key must equal the image's (and a key without one matches only images
//!   without one);
//! - the key's path must be a prefix of the image's repository path (`host/acme` matches
//!   `host/acme/app`);
//! - every matching entry is a candidate, tried in order (secrets in `imagePullSecrets` order,
//!   within a secret the more specific keys first) until one is accepted;
//! - `identitytoken` is an OAuth2 refresh token, exchanged at the registry's token realm.

use std::collections::BTreeMap;
use std::fmt;

use crate::error::Error;
use base64::Engine;
use serde::Deserialize;

pub const DOCKER_CONFIG_JSON: &str = "kubernetes.io/dockerconfigjson";
pub const DOCKER_CFG: &str = "kubernetes.io/dockercfg";

/// A user and password (or an identity token) for one registry. `Debug` never prints the
/// password or the token.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    /// An OAuth2 refresh token (`identitytoken`): exchanged for an access token at the Bearer
    /// realm instead of sending the password.
    pub identity_token: Option<String>,
}

impl Credentials {
    /// A user and a password.
    pub fn basic(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: password.into(),
            identity_token: None,
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field(
                "identity_token",
                &self.identity_token.as_ref().map(|_| "<redacted>"),
            )
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct DockerConfigJson {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
}

#[derive(Deserialize)]
struct AuthEntry {
    username: Option<String>,
    password: Option<String>,
    auth: Option<String>,
    identitytoken: Option<String>,
}

impl AuthEntry {
    fn credentials(&self) -> Option<Credentials> {
        let identity_token = self
            .identitytoken
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
        let user_password = match (&self.username, &self.password) {
            (Some(username), Some(password)) => Some((username.clone(), password.clone())),
            _ => self.auth.as_deref().and_then(|auth| {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(auth.trim())
                    .ok()?;
                let (username, password) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
                Some((username.to_owned(), password.to_owned()))
            }),
        };
        match (user_password, identity_token) {
            (Some((username, password)), identity_token) => Some(Credentials {
                username,
                password,
                identity_token,
            }),
            (None, Some(token)) => Some(Credentials {
                identity_token: Some(token),
                ..Credentials::default()
            }),
            (None, None) => None,
        }
    }
}

/// A `config.json` key as the kubelet reads it: host parts (globs allowed), port, path prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RegistryPattern {
    host_parts: Vec<String>,
    port: Option<String>,
    path: String,
}

impl RegistryPattern {
    fn parse(key: &str) -> Self {
        let (host, path) = split_host_path(&normalize_key(key));
        let (host, port) = split_port(&host);
        Self {
            host_parts: host.split('.').map(str::to_owned).collect(),
            port,
            path,
        }
    }

    /// Whether an image `registry/repository` matches this key (the kubelet's `URLsMatch`).
    fn matches(&self, registry: &str, repository: &str) -> bool {
        let (host, port) = split_port(&normalize_host(registry));
        let parts: Vec<&str> = host.split('.').collect();
        let path = format!("/{repository}");
        self.port == port
            && self.host_parts.len() == parts.len()
            && path.starts_with(&self.path)
            && self
                .host_parts
                .iter()
                .zip(parts)
                .all(|(glob, part)| glob_matches(glob.as_bytes(), part.as_bytes()))
    }
}

/// `*` (any run of characters) and `?` (one character) within one host part, as Go's
/// `filepath.Match` does for the kubelet.
fn glob_matches(glob: &[u8], text: &[u8]) -> bool {
    // Iterative matching with one backtrack point: linear in practice, never recursive.
    let (mut g, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match glob.get(g) {
            Some(b'*') => {
                star = Some((g, t));
                g += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                g += 1;
                t += 1;
            }
            _ => match star {
                Some((star_g, star_t)) => {
                    g = star_g + 1;
                    t = star_t + 1;
                    star = Some((star_g, star_t + 1));
                }
                None => return false,
            },
        }
    }
    glob[g..].iter().all(|c| *c == b'*')
}

/// The registries and credentials of one or more pull secrets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DockerConfig {
    entries: Vec<(RegistryPattern, Credentials)>,
}

impl DockerConfig {
    /// Reads a Secret's `type` and `data` (already base64-decoded by the Kubernetes client).
    pub fn from_secret(secret_type: &str, data: &BTreeMap<String, Vec<u8>>) -> Result<Self, Error> {
        let auths = match secret_type {
            DOCKER_CONFIG_JSON => {
                let raw = data
                    .get(".dockerconfigjson")
                    .ok_or(Error::PullSecretKeyMissing(".dockerconfigjson"))?;
                let parsed: DockerConfigJson =
                    serde_json::from_slice(raw).map_err(|e| Error::PullSecretMalformed {
                        key: ".dockerconfigjson",
                        detail: e.to_string(),
                    })?;
                parsed.auths
            }
            DOCKER_CFG => {
                let raw = data
                    .get(".dockercfg")
                    .ok_or(Error::PullSecretKeyMissing(".dockercfg"))?;
                let parsed: BTreeMap<String, AuthEntry> =
                    serde_json::from_slice(raw).map_err(|e| Error::PullSecretMalformed {
                        key: ".dockercfg",
                        detail: e.to_string(),
                    })?;
                parsed
            }
            other => return Err(Error::PullSecretUnsupportedType(other.to_owned())),
        };
        // Within one secret the kubelet tries keys in reverse lexical order: `host/acme/app`
        // before `host/acme` before `host`.
        let mut keys: Vec<_> = auths.iter().collect();
        keys.sort_by_key(|(key, _)| std::cmp::Reverse(normalize_key(key)));
        Ok(Self {
            entries: keys
                .into_iter()
                .filter_map(|(key, entry)| {
                    Some((RegistryPattern::parse(key), entry.credentials()?))
                })
                .collect(),
        })
    }

    /// Adds the entries of `other` after ours (the kubelet tries `imagePullSecrets` in order).
    pub fn extend(&mut self, other: DockerConfig) {
        self.entries.extend(other.entries);
    }

    /// Every credential matching the image `registry/repository` (as in an image reference:
    /// `docker.io` + `library/nginx`, `host:port` + `acme/app`), in the order to try them;
    /// duplicates are dropped.
    pub fn candidates(&self, registry: &str, repository: &str) -> Vec<&Credentials> {
        let mut found: Vec<&Credentials> = Vec::new();
        for (pattern, credentials) in &self.entries {
            if pattern.matches(registry, repository) && !found.contains(&credentials) {
                found.push(credentials);
            }
        }
        found
    }

    /// The first credential matching `registry` for a repository at its root (the common case
    /// of one key per registry host).
    pub fn credentials_for(&self, registry: &str) -> Option<&Credentials> {
        self.candidates(registry, "").into_iter().next()
    }
}

/// A key without its scheme and with the Docker Hub aliases as `docker.io`; a `/v1/` or `/v2/`
/// path is the registry itself, as for the kubelet: `https://index.docker.io/v1/` → `docker.io`,
/// `http://host:5000/v2/` → `host:5000`, `host/acme/` → `host/acme`.
fn normalize_key(key: &str) -> String {
    let key = key.trim();
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let (host, path) = key.split_once('/').unwrap_or((key, ""));
    let path = path
        .strip_prefix("v1/")
        .or_else(|| path.strip_prefix("v2/"))
        .unwrap_or(path)
        .trim_end_matches('/');
    let path = if matches!(path, "v1" | "v2") {
        ""
    } else {
        path
    };
    let host = normalize_host(host);
    if path.is_empty() {
        host
    } else {
        format!("{host}/{path}")
    }
}

fn normalize_host(host: &str) -> String {
    let host = host.to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" | "docker.io" => {
            "docker.io".into()
        }
        _ => host,
    }
}

/// `host[:port]/path` → (`host[:port]`, `/path`).
fn split_host_path(key: &str) -> (String, String) {
    match key.split_once('/') {
        Some((host, path)) => (host.to_owned(), format!("/{path}")),
        None => (key.to_owned(), String::new()),
    }
}

/// `host:port` → (`host`, `Some(port)`); a bracketed IPv6 address keeps its colons.
fn split_port(host: &str) -> (String, Option<String>) {
    match host.rsplit_once(':') {
        Some((name, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            (name.to_owned(), Some(port.to_owned()))
        }
        _ => (host.to_owned(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(key: &str, value: &str) -> BTreeMap<String, Vec<u8>> {
        BTreeMap::from([(key.to_owned(), value.as_bytes().to_vec())])
    }

    #[test]
    fn dockerconfigjson_with_username_and_password() {
        let config = DockerConfig::from_secret(
            DOCKER_CONFIG_JSON,
            &data(
                ".dockerconfigjson",
                r#"{"auths":{"registry.example.com:5000":{"username":"ci","password":"pw"}}}"#,
            ),
        )
        .unwrap();
        let found = config.credentials_for("registry.example.com:5000").unwrap();
        assert_eq!(
            (found.username.as_str(), found.password.as_str()),
            ("ci", "pw")
        );
        assert_eq!(
            config.credentials_for("registry.example.com"),
            None,
            "the port is part of the host"
        );
    }

    #[test]
    fn auth_field_is_base64_user_colon_password_and_password_may_hold_colons() {
        let auth = base64::engine::general_purpose::STANDARD.encode("robot$ci:pa:ss");
        let json = format!(r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{auth}"}}}}}}"#);
        let config =
            DockerConfig::from_secret(DOCKER_CONFIG_JSON, &data(".dockerconfigjson", &json))
                .unwrap();
        let found = config.credentials_for("docker.io").unwrap();
        assert_eq!(
            (found.username.as_str(), found.password.as_str()),
            ("robot$ci", "pa:ss")
        );
    }

    #[test]
    fn legacy_dockercfg_format() {
        let config = DockerConfig::from_secret(
            DOCKER_CFG,
            &data(
                ".dockercfg",
                r#"{"http://127.0.0.1:5000/v2/":{"username":"a","password":"b","email":"x@y"}}"#,
            ),
        )
        .unwrap();
        assert_eq!(
            config.credentials_for("127.0.0.1:5000").unwrap().username,
            "a"
        );
    }

    #[test]
    fn bad_secrets_say_what_is_wrong() {
        assert_eq!(
            DockerConfig::from_secret("Opaque", &BTreeMap::new()),
            Err(Error::PullSecretUnsupportedType("Opaque".into()))
        );
        assert_eq!(
            DockerConfig::from_secret(DOCKER_CONFIG_JSON, &BTreeMap::new()),
            Err(Error::PullSecretKeyMissing(".dockerconfigjson"))
        );
        assert!(matches!(
            DockerConfig::from_secret(DOCKER_CONFIG_JSON, &data(".dockerconfigjson", "{not json")),
            Err(Error::PullSecretMalformed {
                key: ".dockerconfigjson",
                ..
            })
        ));
    }

    #[test]
    fn first_secret_naming_a_registry_wins_and_debug_hides_the_password() {
        let mut first = DockerConfig::from_secret(
            DOCKER_CONFIG_JSON,
            &data(
                ".dockerconfigjson",
                r#"{"auths":{"r.example":{"username":"one","password":"secret-one"}}}"#,
            ),
        )
        .unwrap();
        let second = DockerConfig::from_secret(
            DOCKER_CONFIG_JSON,
            &data(
                ".dockerconfigjson",
                r#"{"auths":{"r.example":{"username":"two","password":"p"}}}"#,
            ),
        )
        .unwrap();
        first.extend(second);
        let found = first.credentials_for("r.example").unwrap();
        assert_eq!(found.username, "one");
        assert!(!format!("{found:?}").contains("secret-one"));
    }

    /// The kubelet's documented matching rules (kubernetes.io, "Images: interpretation of
    /// config.json" and the credential provider's `matchImages`), as (key, image, matches).
    #[test]
    fn keys_match_images_as_the_kubelet_matches_them() {
        let table = [
            // Globs match one whole host part each.
            ("*.kubernetes.io", "kubernetes.io/app", false),
            ("*.kubernetes.io", "abc.kubernetes.io/app", true),
            ("*.*.kubernetes.io", "abc.kubernetes.io/app", false),
            ("*.*.kubernetes.io", "abc.def.kubernetes.io/app", true),
            ("prefix.*.io", "prefix.kubernetes.io/app", true),
            (
                "*-good.kubernetes.io",
                "prefix-good.kubernetes.io/app",
                true,
            ),
            (
                "*-good.kubernetes.io",
                "prefix-bad.kubernetes.io/app",
                false,
            ),
            ("*.io", "k8s.io/app", true),
            ("*.io", "a.k8s.io/app", false),
            ("k8s.*", "k8s.io/app", true),
            ("app*.k8s.io", "apps.k8s.io/app", true),
            ("*.azurecr.io", "acme.azurecr.io/team/app", true),
            ("gcr.io", "gcr.io/project/app", true),
            ("gcr.io", "eu.gcr.io/project/app", false),
            // The path of the key is a prefix of the image's path.
            (
                "my-registry.io/images",
                "my-registry.io/images/my-image",
                true,
            ),
            (
                "my-registry.io/images",
                "my-registry.io/other/my-image",
                false,
            ),
            (
                "*.my-registry.io/images",
                "sub.my-registry.io/images/my-image",
                true,
            ),
            ("registry.io:8080/path", "registry.io:8080/path/app", true),
            ("host/acme", "host/acme/app", true),
            ("host/acme", "host/other/app", false),
            // A port in the key must be the image's port, and a key without a port matches only
            // images without one.
            ("registry.io:8080", "registry.io:8080/app", true),
            ("registry.io:8080", "registry.io:9090/app", false),
            ("registry.io:8080", "registry.io/app", false),
            ("registry.io", "registry.io:8080/app", false),
            // Schemes, /v1/ and /v2/ paths and Docker Hub aliases, as config.json writes them.
            (
                "https://index.docker.io/v1/",
                "docker.io/library/nginx",
                true,
            ),
            ("http://127.0.0.1:5000/v2/", "127.0.0.1:5000/acme/app", true),
            (
                "REGISTRY.Example.com",
                "registry.example.com/acme/app",
                true,
            ),
        ];
        for (key, image, expected) in table {
            let (registry, repository) = image.split_once('/').unwrap();
            let json = format!(r#"{{"auths":{{"{key}":{{"username":"u","password":"p"}}}}}}"#);
            let config =
                DockerConfig::from_secret(DOCKER_CONFIG_JSON, &data(".dockerconfigjson", &json))
                    .unwrap();
            assert_eq!(
                !config.candidates(registry, repository).is_empty(),
                expected,
                "key {key:?} for image {image:?}"
            );
        }
    }

    /// Several keys match `my-registry.io/images/subpath/my-image`: the kubelet tries them all,
    /// the more specific first, then the next secret's.
    #[test]
    fn every_matching_credential_is_a_candidate_most_specific_first() {
        let first = DockerConfig::from_secret(
            DOCKER_CONFIG_JSON,
            &data(
                ".dockerconfigjson",
                r#"{"auths":{
                    "my-registry.io/images":{"username":"images","password":"a"},
                    "my-registry.io/images/subpath":{"username":"subpath","password":"b"},
                    "other.io":{"username":"other","password":"c"}}}"#,
            ),
        )
        .unwrap();
        let mut config = first;
        config.extend(
            DockerConfig::from_secret(
                DOCKER_CONFIG_JSON,
                &data(
                    ".dockerconfigjson",
                    r#"{"auths":{"*.io":{"username":"glob","password":"d"}}}"#,
                ),
            )
            .unwrap(),
        );
        let users: Vec<_> = config
            .candidates("my-registry.io", "images/subpath/my-image")
            .into_iter()
            .map(|c| c.username.as_str())
            .collect();
        assert_eq!(
            users,
            ["subpath", "images", "glob"],
            "then the next secret's glob"
        );
        let users: Vec<_> = config
            .candidates("k8s.io", "app")
            .into_iter()
            .map(|c| c.username.as_str())
            .collect();
        assert_eq!(users, ["glob"]);
    }

    #[test]
    fn identitytoken_is_read_and_never_printed() {
        let config = DockerConfig::from_secret(
            DOCKER_CONFIG_JSON,
            &data(
                ".dockerconfigjson",
                r#"{"auths":{"acr.example.io":{"auth":"MDAwMDAwMDAtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAwOg==","identitytoken":"refresh-me"}}}"#,
            ),
        )
        .unwrap();
        let found = config.credentials_for("acr.example.io").unwrap();
        assert_eq!(found.identity_token.as_deref(), Some("refresh-me"));
        assert_eq!(found.username, "00000000-0000-0000-0000-000000000000");
        assert!(!format!("{found:?}").contains("refresh-me"));
        let only_token = DockerConfig::from_secret(
            DOCKER_CONFIG_JSON,
            &data(
                ".dockerconfigjson",
                r#"{"auths":{"r.io":{"identitytoken":"t"}}}"#,
            ),
        )
        .unwrap();
        assert_eq!(
            only_token
                .credentials_for("r.io")
                .unwrap()
                .identity_token
                .as_deref(),
            Some("t")
        );
    }

    #[test]
    fn globs_are_linear_not_exponential() {
        let glob = "*a".repeat(20);
        let text = "a".repeat(60) + "b";
        assert!(!glob_matches(glob.as_bytes(), text.as_bytes()));
        assert!(glob_matches(b"a*b?d", b"axxbcd"));
        assert!(glob_matches(b"*", b""));
        assert!(!glob_matches(b"?", b""));
    }
}
