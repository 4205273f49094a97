//! A throwaway OCI registry: Debian's `docker-registry` (CNCF Distribution 2.8), a temporary storage
//! directory and a free loopback port, with optional notifications and htpasswd auth. Plus a small
//! pusher that uploads blobs and manifests over the distribution API, so tests can push "images"
//! (real manifests with real digests) without a container engine.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::process::{free_loopback_port, wait_for_tcp};
use crate::{Error, Result};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// Where the registry sends its notifications (CNCF Distribution envelopes).
#[derive(Clone, Debug)]
pub struct Notifications {
    pub url: String,
    /// Sent as `Authorization: Bearer <token>` when set.
    pub bearer_token: Option<String>,
}

/// How to configure a [`TempRegistry`].
#[derive(Clone, Debug, Default)]
pub struct RegistryOptions {
    pub notifications: Option<Notifications>,
    /// Require HTTP Basic auth with this user and password (htpasswd, bcrypt).
    pub basic_auth: Option<(String, String)>,
    /// Raw YAML for the registry's `auth:` section (e.g. `token:` for the Bearer flow); wins over
    /// `basic_auth`. Indented by the caller as a top-level mapping's children.
    pub auth_yaml: Option<String>,
    /// Serve the storage of another registry (e.g. push through an open registry, resolve
    /// through one that requires tokens).
    pub storage_dir: Option<PathBuf>,
    /// Listen here instead of on 127.0.0.1 and a free port: a registry that pods reach too (level
    /// 3, the real node's address; the registry is then `ip:port` in image references).
    pub listen: Option<std::net::SocketAddr>,
}

/// A running `docker-registry` on 127.0.0.1 (or [`RegistryOptions::listen`]). Stopped and removed
/// when dropped.
pub struct TempRegistry {
    dir: tempfile::TempDir,
    ip: std::net::IpAddr,
    port: u16,
    child: Option<Child>,
}

impl TempRegistry {
    /// Starts a registry and waits until it answers `/v2/`.
    pub fn start(options: RegistryOptions) -> Result<Self> {
        let binary = which("docker-registry").ok_or_else(|| {
            Error::Missing(
                "docker-registry (Debian package docker-registry; run `make deps`)".into(),
            )
        })?;
        let dir = tempfile::Builder::new().prefix("ta-registry-").tempdir()?;
        let (ip, port) = match options.listen {
            Some(address) => (address.ip(), address.port()),
            None => (std::net::Ipv4Addr::LOCALHOST.into(), free_loopback_port()?),
        };
        let storage = options
            .storage_dir
            .clone()
            .unwrap_or_else(|| dir.path().join("storage"));
        let config = render_config(&options, &storage, (ip, port).into(), dir.path())?;
        std::fs::write(dir.path().join("config.yml"), config)?;
        let mut registry = Self {
            dir,
            ip,
            port,
            child: None,
        };
        registry.spawn(&binary)?;
        Ok(registry)
    }

    fn spawn(&mut self, binary: &PathBuf) -> Result<()> {
        let log = std::fs::File::create(self.log_path())?;
        let child = Command::new(binary)
            .arg("serve")
            .arg(self.dir.path().join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        wait_for_tcp((self.ip, self.port), Duration::from_secs(20)).map_err(|e| {
            Error::Startup(format!(
                "docker-registry: {e}; log: {}",
                self.log_path().display()
            ))
        })
    }

    /// Stops the registry (its storage stays, so [`restart`](Self::restart) serves the same images).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the registry again on the same port with the same storage.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        let binary =
            which("docker-registry").ok_or_else(|| Error::Missing("docker-registry".into()))?;
        self.spawn(&binary)
    }

    /// `127.0.0.1:<port>` (or the listen address): the registry host as it appears in image
    /// references.
    pub fn host(&self) -> String {
        std::net::SocketAddr::from((self.ip, self.port)).to_string()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Where this registry keeps its blobs and manifests (unless it serves another's).
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// The registry's log (access log included): tests count manifest requests from it.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("registry.log")
    }

    /// The log's text so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }
}

impl Drop for TempRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}

fn render_config(
    options: &RegistryOptions,
    storage: &std::path::Path,
    listen: std::net::SocketAddr,
    dir: &std::path::Path,
) -> Result<String> {
    let mut config = format!(
        "version: 0.1\n\
         log:\n  level: info\n  formatter: text\n  accesslog:\n    disabled: false\n\
         storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  cache:\n    blobdescriptor: inmemory\n\
         http:\n  addr: {listen}\n  secret: throwaway-test-registry\n  headers:\n    X-Content-Type-Options: [nosniff]\n",
        storage.display()
    );
    if let Some(auth) = &options.auth_yaml {
        config.push_str("auth:\n");
        config.push_str(auth);
        config.push('\n');
    } else if let Some((user, password)) = &options.basic_auth {
        let hash = bcrypt::hash(password, 5).map_err(|e| Error::Startup(format!("bcrypt: {e}")))?;
        let htpasswd = dir.join("htpasswd");
        std::fs::write(&htpasswd, format!("{user}:{hash}\n"))?;
        config.push_str(&format!(
            "auth:\n  htpasswd:\n    realm: trading-agent-test\n    path: {}\n",
            htpasswd.display()
        ));
    }
    if let Some(notify) = &options.notifications {
        config.push_str(&format!(
            "notifications:\n  endpoints:\n    - name: test\n      url: {}\n      timeout: 2s\n      threshold: 3\n      backoff: 1s\n",
            notify.url
        ));
        if let Some(token) = &notify.bearer_token {
            config.push_str(&format!(
                "      headers:\n        Authorization: [\"Bearer {token}\"]\n"
            ));
        }
    }
    Ok(config)
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| PathBuf::from(dir).join(program))
        .find(|path| path.is_file())
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Pushes blobs and manifests to a registry over the distribution API (plain HTTP, loopback).
pub struct Pusher {
    base: String,
    http: reqwest::Client,
    basic_auth: Option<(String, String)>,
}

impl Pusher {
    /// A pusher for `host` (`127.0.0.1:<port>`).
    pub fn new(host: &str) -> Self {
        Self {
            base: format!("http://{host}"),
            http: reqwest::Client::new(),
            basic_auth: None,
        }
    }

    /// Sends HTTP Basic credentials with every request.
    pub fn with_basic_auth(mut self, user: &str, password: &str) -> Self {
        self.basic_auth = Some((user.into(), password.into()));
        self
    }

    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, url);
        match &self.basic_auth {
            Some((user, password)) => request.basic_auth(user, Some(password)),
            None => request,
        }
    }

    /// Uploads `bytes` as a blob of `repository` (monolithic upload) and returns its digest.
    pub async fn push_blob(&self, repository: &str, bytes: &[u8]) -> Result<String> {
        let digest = sha256_digest(bytes);
        let started = self
            .request(
                reqwest::Method::POST,
                &format!("{}/v2/{repository}/blobs/uploads/", self.base),
            )
            .send()
            .await
            .map_err(http_error)?;
        let location = expect_status(started, 202)
            .await?
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| Error::Command {
                what: "blob upload".into(),
                detail: "no Location header".into(),
            })?;
        let url = if location.starts_with("http") {
            location
        } else {
            format!("{}{location}", self.base)
        };
        let separator = if url.contains('?') { '&' } else { '?' };
        let finished = self
            .request(
                reqwest::Method::PUT,
                &format!("{url}{separator}digest={digest}"),
            )
            .header("content-type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .await
            .map_err(http_error)?;
        expect_status(finished, 201).await?;
        Ok(digest)
    }

    /// PUTs a manifest of `media_type` under `reference` (a tag or a digest); returns its digest.
    pub async fn push_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> Result<String> {
        let response = self
            .request(
                reqwest::Method::PUT,
                &format!("{}/v2/{repository}/manifests/{reference}", self.base),
            )
            .header("content-type", media_type)
            .body(body.to_vec())
            .send()
            .await
            .map_err(http_error)?;
        expect_status(response, 201).await?;
        Ok(sha256_digest(body))
    }

    /// Pushes a small single-platform OCI image whose layer holds `marker` (different markers give
    /// different digests) under `repository:tag`; returns the manifest digest.
    pub async fn push_image(&self, repository: &str, tag: &str, marker: &str) -> Result<String> {
        let manifest = self.image_manifest(repository, marker, "amd64").await?;
        self.push_manifest(repository, tag, OCI_MANIFEST, &manifest)
            .await
    }

    /// Pushes a multi-arch OCI index (amd64 and arm64 images) under `repository:tag`; returns the
    /// index digest.
    pub async fn push_index(&self, repository: &str, tag: &str, marker: &str) -> Result<String> {
        let mut entries = Vec::new();
        for arch in ["amd64", "arm64"] {
            let manifest = self.image_manifest(repository, marker, arch).await?;
            let digest = self
                .push_manifest(
                    repository,
                    &sha256_digest(&manifest),
                    OCI_MANIFEST,
                    &manifest,
                )
                .await?;
            entries.push(serde_json::json!({
                "mediaType": OCI_MANIFEST, "digest": digest, "size": manifest.len(),
                "platform": {"architecture": arch, "os": "linux"}
            }));
        }
        let index = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries
        }))
        .expect("index serialises");
        self.push_manifest(repository, tag, OCI_INDEX, &index).await
    }

    async fn image_manifest(&self, repository: &str, marker: &str, arch: &str) -> Result<Vec<u8>> {
        let layer = format!("{marker}/{arch}").into_bytes();
        let layer_digest = self.push_blob(repository, &layer).await?;
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": arch, "os": "linux",
            "config": {"Labels": {"dev.tradingagents.test-marker": marker}},
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]}
        }))
        .expect("config serialises");
        let config_digest = self.push_blob(repository, &config).await?;
        Ok(serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config.len()},
            "layers": [{"mediaType": OCI_LAYER, "digest": layer_digest, "size": layer.len()}]
        }))
        .expect("manifest serialises"))
    }
}

fn http_error(e: reqwest::Error) -> Error {
    Error::Command {
        what: "registry request".into(),
        detail: e.to_string(),
    }
}

async fn expect_status(response: reqwest::Response, expected: u16) -> Result<reqwest::Response> {
    if response.status().as_u16() == expected {
        return Ok(response);
    }
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    Err(Error::Command {
        what: "registry request".into(),
        detail: format!("{status}: {body}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn head_digest(
        registry: &TempRegistry,
        repository: &str,
        tag: &str,
        accept: &str,
    ) -> (u16, Option<String>) {
        let response = reqwest::Client::new()
            .head(format!(
                "http://{}/v2/{repository}/manifests/{tag}",
                registry.host()
            ))
            .header("accept", accept)
            .send()
            .await
            .unwrap();
        let digest = response
            .headers()
            .get("docker-content-digest")
            .map(|d| d.to_str().unwrap().to_owned());
        (response.status().as_u16(), digest)
    }

    #[tokio::test]
    async fn pushed_image_and_index_resolve_to_their_digests() {
        let registry = TempRegistry::start(RegistryOptions::default()).unwrap();
        let pusher = Pusher::new(&registry.host());

        let first = pusher
            .push_image("acme/agent", "stable", "v1")
            .await
            .unwrap();
        assert_eq!(
            head_digest(&registry, "acme/agent", "stable", OCI_MANIFEST).await,
            (200, Some(first.clone()))
        );

        // A new push under the same tag moves it to a new digest.
        let second = pusher
            .push_image("acme/agent", "stable", "v2")
            .await
            .unwrap();
        assert_ne!(first, second);
        assert_eq!(
            head_digest(&registry, "acme/agent", "stable", OCI_MANIFEST)
                .await
                .1,
            Some(second)
        );

        let index = pusher
            .push_index("acme/agent", "multi", "v1")
            .await
            .unwrap();
        let accept = format!("{OCI_INDEX}, {OCI_MANIFEST}");
        assert_eq!(
            head_digest(&registry, "acme/agent", "multi", &accept).await,
            (200, Some(index))
        );
        assert!(
            registry
                .log()
                .contains("HEAD /v2/acme/agent/manifests/stable"),
            "access log records manifest requests"
        );
    }

    #[tokio::test]
    async fn basic_auth_refuses_anonymous_and_accepts_the_right_password() {
        let registry = TempRegistry::start(RegistryOptions {
            basic_auth: Some(("ci".into(), "s3cret".into())),
            ..Default::default()
        })
        .unwrap();
        let anonymous = Pusher::new(&registry.host())
            .push_image("private/agent", "v1", "x")
            .await;
        assert!(
            matches!(anonymous, Err(Error::Command { detail, .. }) if detail.starts_with("401"))
        );
        Pusher::new(&registry.host())
            .with_basic_auth("ci", "s3cret")
            .push_image("private/agent", "v1", "x")
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn notifications_reach_the_configured_endpoint_with_the_token() {
        use std::io::Read;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/notify", listener.local_addr().unwrap());
        let registry = TempRegistry::start(RegistryOptions {
            notifications: Some(Notifications {
                url,
                bearer_token: Some("tok".into()),
            }),
            ..Default::default()
        })
        .unwrap();
        let receiver = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut buf = vec![0; 64 * 1024];
            let n = stream.read(&mut buf).unwrap();
            String::from_utf8_lossy(&buf[..n]).into_owned()
        });
        Pusher::new(&registry.host())
            .push_image("acme/agent", "stable", "v1")
            .await
            .unwrap();
        let request = receiver.join().unwrap();
        assert!(request.starts_with("POST /notify"), "{request}");
        assert!(request.contains("Authorization: Bearer tok"), "{request}");
    }
}
