//! Registry credentials from `imagePullSecrets`: the same Secrets the kubelet pulls with, in both
//! formats it reads (`kubernetes.io/dockerconfigjson` and the older `kubernetes.io/dockercfg`).

use std::collections::BTreeMap;
use std::fmt;

use crate::error::Error;
use base64::Engine;
use serde::Deserialize;

pub const DOCKER_CONFIG_JSON: &str = "kubernetes.io/dockerconfigjson";
pub const DOCKER_CFG: &str = "kubernetes.io/dockercfg";

/// A user and password for one registry. `Debug` never prints the password.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
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
}

impl AuthEntry {
    fn credentials(&self) -> Option<Credentials> {
        if let (Some(username), Some(password)) = (&self.username, &self.password) {
            return Some(Credentials {
                username: username.clone(),
                password: password.clone(),
            });
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(self.auth.as_deref()?.trim())
            .ok()?;
        let (username, password) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
        Some(Credentials {
            username: username.to_owned(),
            password: password.to_owned(),
        })
    }
}

/// The registries and credentials of one or more pull secrets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DockerConfig {
    entries: Vec<(String, Credentials)>,
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
        Ok(Self {
            entries: auths
                .iter()
                .filter_map(|(registry, entry)| {
                    Some((normalize_registry(registry), entry.credentials()?))
                })
                .collect(),
        })
    }

    /// Adds the entries of `other` after ours (the first secret that names a registry wins, as with
    /// the kubelet's ordered `imagePullSecrets`).
    pub fn extend(&mut self, other: DockerConfig) {
        self.entries.extend(other.entries);
    }

    /// Credentials for `registry` (as in an image reference: `docker.io`, `host:port`), if any.
    pub fn credentials_for(&self, registry: &str) -> Option<&Credentials> {
        let wanted = normalize_registry(registry);
        self.entries
            .iter()
            .find(|(host, _)| *host == wanted)
            .map(|(_, credentials)| credentials)
    }
}

/// `https://index.docker.io/v1/` → `docker.io`; `http://host:5000/v2/` → `host:5000`.
fn normalize_registry(key: &str) -> String {
    let key = key.trim();
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = key
        .split('/')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" | "docker.io" => {
            "docker.io".into()
        }
        _ => host,
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
}
