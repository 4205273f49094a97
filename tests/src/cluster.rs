//! Access to the local cluster harness (`make cluster-up`, `tests/harness/cluster.sh`).
//!
//! Only the harness's own kubeconfig is ever used, never `$KUBECONFIG` or `~/.kube/config`, and a
//! server that is not on loopback is refused: a test run cannot touch a real cluster by accident.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

use crate::{Error, Result};

/// Label put on every namespace a test creates, so leftovers are easy to find.
pub const TEST_NAMESPACE_LABEL: &str = "tradingagents.dev/test-run";

/// The harness kubeconfig: `$TRADING_AGENT_KUBECONFIG`, else
/// `$TRADING_AGENT_CACHE/cluster/kubeconfig` (default cache `~/.cache/trading-agent`).
pub fn kubeconfig_path() -> PathBuf {
    if let Some(path) = std::env::var_os("TRADING_AGENT_KUBECONFIG") {
        return path.into();
    }
    let cache = std::env::var_os("TRADING_AGENT_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
                .join(".cache/trading-agent")
        });
    cache.join("cluster/kubeconfig")
}

/// Client configuration for the harness's API server.
pub async fn config() -> Result<Config> {
    let path = kubeconfig_path();
    let kubeconfig = Kubeconfig::read_from(&path).map_err(|e| {
        Error::Missing(format!(
            "the local cluster's kubeconfig {} ({e}); start it with `make cluster-up`",
            path.display()
        ))
    })?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| Error::Startup(format!("kubeconfig {}: {e}", path.display())))?;
    let host = config.cluster_url.host().unwrap_or_default();
    if host != "127.0.0.1" && host != "localhost" && host != "[::1]" && !is_local_address(host) {
        return Err(Error::Startup(format!(
            "refusing an API server {host} in {} that is neither loopback nor an address of this machine",
            path.display()
        )));
    }
    Ok(config)
}

/// Whether `host` is an IP address of this machine (binding to it succeeds): with the real node
/// (`NODE=real`) the API server listens on the node's address, on an interface the harness made.
fn is_local_address(host: &str) -> bool {
    host.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| std::net::TcpListener::bind((ip, 0)).is_ok())
}

/// A client for the harness's API server.
pub async fn client() -> Result<Client> {
    Client::try_from(config().await?).map_err(|e| Error::Startup(format!("kube client: {e}")))
}

/// A name unlikely to collide with another test's: `<prefix>-<8 hex>`.
pub fn unique_name(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let mixed = (nanos as u64) ^ (u64::from(std::process::id()) << 32);
    format!(
        "{prefix}-{:08x}",
        mixed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32
    )
}

/// A namespace created for one test, labelled [`TEST_NAMESPACE_LABEL`] and, when asked, for Pod
/// Security `restricted` enforcement. Delete it with [`TestNamespace::delete`]; whatever is left is
/// removed with the cluster by `make cluster-down`.
pub struct TestNamespace {
    pub name: String,
    client: Client,
}

impl TestNamespace {
    pub async fn create(client: &Client, prefix: &str) -> Result<Self> {
        Self::create_with_labels(client, prefix, &[]).await
    }

    /// A namespace that enforces Pod Security `restricted` (what the operator's pods must pass).
    pub async fn create_restricted(client: &Client, prefix: &str) -> Result<Self> {
        Self::create_with_labels(
            client,
            prefix,
            &[
                ("pod-security.kubernetes.io/enforce", "restricted"),
                ("pod-security.kubernetes.io/enforce-version", "latest"),
            ],
        )
        .await
    }

    async fn create_with_labels(
        client: &Client,
        prefix: &str,
        labels: &[(&str, &str)],
    ) -> Result<Self> {
        let name = unique_name(prefix);
        let mut all_labels = std::collections::BTreeMap::from([(
            TEST_NAMESPACE_LABEL.to_owned(),
            "true".to_owned(),
        )]);
        all_labels.extend(
            labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some(all_labels),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .map_err(|e| Error::Startup(format!("creating namespace {name}: {e}")))?;
        Ok(Self {
            name,
            client: client.clone(),
        })
    }

    /// Deletes the namespace and waits (up to `timeout`) until it is gone.
    pub async fn delete(self, timeout: Duration) -> Result<()> {
        let api = Api::<Namespace>::all(self.client.clone());
        let _ = api.delete(&self.name, &DeleteParams::background()).await;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match api.get_opt(&self.name).await {
                Ok(None) => return Ok(()),
                Ok(Some(_)) | Err(_) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await
                }
                _ => {
                    return Err(Error::Startup(format!(
                        "namespace {} not gone after {timeout:?}",
                        self.name
                    )));
                }
            }
        }
    }
}

/// The image of a Deployment's first container, if it has one.
pub fn deployment_image(deployment: &Deployment) -> Option<&str> {
    deployment
        .spec
        .as_ref()?
        .template
        .spec
        .as_ref()?
        .containers
        .first()?
        .image
        .as_deref()
}
