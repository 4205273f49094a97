//! Shared by the `digest_*` suites (included with `#[path]`): an in-process operator that resolves
//! tags at a real registry and serves the registry webhook, and helpers to watch which digest the
//! Deployments of a TradingAgent carry.
#![allow(dead_code)]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;
use tokio::task::JoinHandle;
use trading_agent_operator::digest::RegistryClientConfig;
use trading_agent_operator::digest::webhook::Triggers;
use trading_agent_operator::metrics::Metrics;
use trading_agent_operator::{CancellationToken, Config, Operator, WebhookToken};
use trading_agent_tests::cluster::deployment_image;

#[path = "operator_support.rs"]
pub mod support;

/// The webhook token of the test operators.
pub const WEBHOOK_TOKEN: &str = "test-webhook-token-0123456789";

/// Suites in one binary run one at a time: they measure latencies and count requests, and the
/// harness has two cores.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// An operator running in this process, watching one namespace, resolving at real registries.
pub struct DigestOperator {
    pub metrics_addr: SocketAddr,
    pub webhook_addr: SocketAddr,
    pub metrics: Metrics,
    pub triggers: Arc<Triggers>,
    shutdown: CancellationToken,
    task: JoinHandle<trading_agent_operator::Result<()>>,
}

impl DigestOperator {
    /// Start an operator for `namespace` that speaks plain HTTP to `insecure_hosts` and serves the
    /// webhook on `webhook_port` (0: any free port).
    pub async fn start(
        client: &Client,
        namespace: &str,
        insecure_hosts: &[String],
        webhook_port: u16,
    ) -> Self {
        support::capture_operator_logs();
        let mut config = Config::new("digest-test-operator", namespace);
        config.metrics_addr = SocketAddr::from(([127, 0, 0, 1], 0));
        config.namespace = Some(namespace.to_owned());
        config.leader_election = false;
        config.registry = Some(RegistryClientConfig {
            insecure_hosts: insecure_hosts.iter().cloned().collect::<HashSet<_>>(),
            request_timeout: Duration::from_secs(2),
        });
        config.webhook_addr = Some(SocketAddr::from(([127, 0, 0, 1], webhook_port)));
        config.webhook_token = Some(WebhookToken(WEBHOOK_TOKEN.to_owned()));
        let operator = Operator::bind(config).await.expect("bind the operator");
        let metrics_addr = operator.local_addr().expect("address");
        let webhook_addr = operator.webhook_addr().expect("the webhook is served");
        let metrics = operator.metrics();
        let triggers = operator.triggers();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(operator.run(client.clone(), shutdown.clone()));
        Self {
            metrics_addr,
            webhook_addr,
            metrics,
            triggers,
            shutdown,
            task,
        }
    }

    /// The webhook URL.
    pub fn webhook_url(&self) -> String {
        format!("http://{}/registry/notifications", self.webhook_addr)
    }

    /// Graceful shutdown.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("operator stops within 30 s")
            .expect("operator task")
            .expect("operator ran without error");
    }

    /// The operator's `/metrics` text.
    pub async fn metrics_text(&self) -> String {
        support::http_get(self.metrics_addr, "/metrics").await.1
    }
}

/// The digest each role's Deployment of `name` is pinned to (api, bot, strategy order), `None`
/// for a missing Deployment or an image without a digest.
pub async fn deployment_digests(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Vec<Option<String>> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let list = api
        .list(&ListParams::default().labels(&format!("app.kubernetes.io/instance={name}")))
        .await
        .expect("list Deployments");
    ["api", "bot", "strategy"]
        .iter()
        .map(|role| {
            let wanted = format!("{name}-{role}");
            list.items
                .iter()
                .find(|d| d.metadata.name.as_deref() == Some(wanted.as_str()))
                .and_then(|d| deployment_image(d).map(str::to_owned))
                .map(|image| {
                    assert!(
                        image.contains("@sha256:"),
                        "a Deployment runs a tag: {image}"
                    );
                    image
                        .rsplit_once('@')
                        .map(|(_, d)| d.to_owned())
                        .unwrap_or_default()
                })
        })
        .collect()
}

/// Poll (every 10 ms) until all three Deployments of `name` carry `digest`; returns when that was
/// first seen.
pub async fn wait_pinned(
    client: &Client,
    namespace: &str,
    name: &str,
    digest: &str,
    timeout: Duration,
) -> Instant {
    let deadline = Instant::now() + timeout;
    loop {
        let digests = deployment_digests(client, namespace, name).await;
        if digests.iter().all(|d| d.as_deref() == Some(digest)) {
            return Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "{namespace}/{name}: Deployments not pinned to {digest} within {timeout:?}: {digests:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A `kubernetes.io/dockerconfigjson` pull secret for `host` with `user` and `password`.
pub async fn create_pull_secret(
    client: &Client,
    namespace: &str,
    name: &str,
    host: &str,
    user: &str,
    password: &str,
) {
    let config = json!({"auths": {host: {"username": user, "password": password}}});
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "type": "kubernetes.io/dockerconfigjson",
        "stringData": {".dockerconfigjson": config.to_string()},
    }))
    .expect("secret");
    Api::<Secret>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &secret)
        .await
        .expect("create the pull secret");
}

/// A TradingAgent following `image` with the given polling `interval`, one replica per role
/// (`replicas` overrides it).
pub fn tracking_agent(name: &str, image: &str, interval: &str, replicas: i32) -> serde_json::Value {
    support::agent(
        name,
        json!({
            "image": image,
            "imageUpdate": {"interval": interval},
            "api": {"replicas": replicas},
            "bot": {"replicas": replicas},
            "strategy": {"replicas": replicas},
        }),
    )
}
