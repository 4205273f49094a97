//! The process around the controller: its configuration ([`Config`]) and wiring ([`Operator`]:
//! the HTTP servers, the image pinner, the controller), [`leader`] election, the health and
//! metrics [`server`], and log set-up ([`telemetry`]).
//!
//! May depend on everything else in the crate; nothing depends on it.

pub mod endpoint;
pub mod leader;
pub mod server;
pub mod telemetry;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::{Future, FutureExt};
use kube::Client;
use kube::runtime::events::Reporter;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use self::server::{AppState, Health};
use crate::digest::pinner::{DigestOnlyPinner, ImagePinner, RegistryPinner};
use crate::digest::webhook::{self, Triggers, WebhookState};
use crate::digest::{RegistryClient, RegistryClientConfig, TagResolver};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::reconcile::build::FIELD_MANAGER;
use crate::reconcile::{self, Services};

/// The webhook's bearer token; `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookToken(pub String);

impl std::fmt::Debug for WebhookToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookToken(<redacted>)")
    }
}

/// How the operator runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where `/healthz`, `/readyz` and `/metrics` listen.
    pub metrics_addr: SocketAddr,
    /// Run the controller only while holding the Lease.
    pub leader_election: bool,
    /// Namespace of the Lease.
    pub lease_namespace: String,
    /// Name of the Lease.
    pub lease_name: String,
    /// How long a Lease stays valid without renewal.
    pub lease_duration: Duration,
    /// How long before expiry the holder renews.
    pub lease_grace: Duration,
    /// This process's identity in the Lease and in events.
    pub identity: String,
    /// Watch one namespace only; `None` watches the whole cluster.
    pub namespace: Option<String>,
    /// Reconciliations allowed to run at once.
    pub concurrency: u16,
    /// Resolve tags at registries with these settings; `None` pins only digests written in
    /// `spec.image` ([`DigestOnlyPinner`]).
    pub registry: Option<RegistryClientConfig>,
    /// Where the registry webhook listens (served only with a token).
    pub webhook_addr: Option<SocketAddr>,
    /// The bearer token the webhook requires.
    pub webhook_token: Option<WebhookToken>,
    /// Serve the webhook over TLS with this certificate and key (plain HTTP without).
    pub webhook_tls: Option<tls::WebhookTls>,
    /// Route the webhook Service to this process while it leads (the chart's EndpointSlice).
    pub webhook_endpoint: Option<endpoint::WebhookEndpoint>,
}

impl Config {
    /// Defaults for a process called `identity` with its Lease in `lease_namespace`.
    pub fn new(identity: impl Into<String>, lease_namespace: impl Into<String>) -> Self {
        Self {
            metrics_addr: SocketAddr::from(([0, 0, 0, 0], 8080)),
            leader_election: true,
            lease_namespace: lease_namespace.into(),
            lease_name: FIELD_MANAGER.to_owned(),
            lease_duration: Duration::from_secs(15),
            lease_grace: Duration::from_secs(5),
            identity: identity.into(),
            namespace: None,
            concurrency: 32,
            registry: None,
            webhook_addr: None,
            webhook_token: None,
            webhook_tls: None,
            webhook_endpoint: None,
        }
    }
}

/// The webhook's bound listener, token and TLS configuration.
struct Webhook {
    listener: TcpListener,
    token: WebhookToken,
    tls: Option<Arc<rustls::ServerConfig>>,
}

/// A bound, not yet running operator.
pub struct Operator {
    config: Config,
    listener: TcpListener,
    webhook: Option<Webhook>,
    pinner: Option<Arc<dyn ImagePinner>>,
    triggers: Arc<Triggers>,
    metrics: Metrics,
    registry: Registry,
}

impl Operator {
    /// Bind the HTTP listeners (port 0 picks a free port).
    pub async fn bind(config: Config) -> Result<Self> {
        let listener = TcpListener::bind(config.metrics_addr).await?;
        let webhook = match (config.webhook_addr, &config.webhook_token) {
            (Some(addr), Some(token)) if !token.0.is_empty() => {
                // Certificate problems stop the start-up: a webhook silently on plain HTTP
                // would send the token in clear.
                let tls = match &config.webhook_tls {
                    Some(tls) => Some(tls.server_config()?),
                    None => None,
                };
                Some(Webhook {
                    listener: TcpListener::bind(addr).await?,
                    token: token.clone(),
                    tls,
                })
            }
            (Some(addr), _) => {
                warn!(%addr, "registry webhook disabled: no token configured (--webhook-token / WEBHOOK_TOKEN)");
                None
            }
            (None, _) => None,
        };
        let metrics = Metrics::default();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        Ok(Self {
            config,
            listener,
            webhook,
            pinner: None,
            triggers: Arc::new(Triggers::default()),
            metrics,
            registry,
        })
    }

    /// Where the HTTP server listens.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// Where the registry webhook listens, if it is served.
    pub fn webhook_addr(&self) -> Option<SocketAddr> {
        self.webhook
            .as_ref()
            .and_then(|webhook| webhook.listener.local_addr().ok())
    }

    /// The registry pushes the webhook recorded (for tests and embedding).
    pub fn triggers(&self) -> Arc<Triggers> {
        self.triggers.clone()
    }

    /// Use another image pinner (instead of the one `Config::registry` selects).
    pub fn with_pinner(mut self, pinner: Arc<dyn ImagePinner>) -> Self {
        self.pinner = Some(pinner);
        self
    }

    /// The metrics (for tests and embedding).
    pub fn metrics(&self) -> Metrics {
        self.metrics.clone()
    }

    /// Run until `shutdown` is cancelled.
    pub async fn run(self, client: Client, shutdown: CancellationToken) -> Result<()> {
        let Operator {
            config,
            listener,
            webhook,
            pinner,
            triggers,
            metrics,
            registry,
        } = self;
        let pinner = match pinner {
            Some(pinner) => pinner,
            None => configured_pinner(&config, &client, &triggers, &metrics)?,
        };
        // The webhook Service is routed to the leader only when this process serves it.
        let endpoint = webhook.as_ref().and(config.webhook_endpoint.clone());
        let webhook_server = webhook.map(
            |Webhook {
                 listener,
                 token,
                 tls,
             }| {
                let app = webhook::router(WebhookState {
                    token: Arc::from(token.0.as_str()),
                    triggers: triggers.clone(),
                    metrics: metrics.clone(),
                });
                if let Ok(addr) = listener.local_addr() {
                    let scheme = if tls.is_some() { "https" } else { "http" };
                    info!(%addr, scheme, path = webhook::PATH, "serving the registry webhook");
                }
                match tls {
                    Some(tls) => tls::serve_tls(listener, app, tls, &shutdown),
                    None => serve(listener, app, &shutdown),
                }
            },
        );
        let progress = Arc::new(reconcile::progress::Progress::default());
        let health = Arc::new(Health::new(config.leader_election).with_progress(progress.clone()));
        let app = server::router(AppState {
            health: health.clone(),
            registry: Arc::new(registry),
        });
        info!(addr = %listener.local_addr()?, "serving /healthz, /readyz and /metrics");
        let server = serve(listener, app, &shutdown);

        let services = Services {
            reporter: Reporter {
                controller: FIELD_MANAGER.to_owned(),
                instance: Some(config.identity.clone()),
            },
            pinner,
            triggers,
            metrics: metrics.clone(),
            progress,
        };
        let result = if config.leader_election {
            leader::lead_then_control(
                &config,
                client,
                services,
                health.clone(),
                endpoint,
                &shutdown,
            )
            .await
        } else {
            metrics.leader.set(1);
            health.set_leading(true);
            let (on_synced, synced) = leader::synced_signal(health.clone());
            let stop = shutdown.child_token();
            let routing = leader::route_webhook_here(endpoint, &client, synced, &stop);
            let pinner = services.pinner.clone();
            let reporter = services.reporter.clone();
            futures::future::join(
                reconcile::run(
                    client.clone(),
                    config.namespace.as_deref(),
                    config.concurrency,
                    services,
                    on_synced,
                    signal(&shutdown),
                ),
                crate::backtest::controller::run(
                    client,
                    config.namespace.as_deref(),
                    pinner,
                    reporter,
                    signal(&shutdown),
                ),
            )
            .await;
            stop.cancel();
            if let Some(routing) = routing {
                let _ = routing.await;
            }
            if shutdown.is_cancelled() {
                Ok(())
            } else {
                Err(Error::ControllerStopped)
            }
        };
        health.set_shutting_down();
        shutdown.cancel();
        stopped("HTTP server", server).await;
        if let Some(webhook_server) = webhook_server {
            stopped("webhook server", webhook_server).await;
        }
        info!("operator stopped");
        result
    }
}

/// The pinner `config` selects: tags resolved at registries with `config.registry`, or only
/// digests written in `spec.image` without it.
fn configured_pinner(
    config: &Config,
    client: &Client,
    triggers: &Arc<Triggers>,
    metrics: &Metrics,
) -> Result<Arc<dyn ImagePinner>> {
    let Some(registry_config) = &config.registry else {
        return Ok(Arc::new(DigestOnlyPinner));
    };
    let registry_client = RegistryClient::new(registry_config.clone())
        .map_err(|e| Error::RegistryClient(e.to_string()))?;
    Ok(Arc::new(RegistryPinner::new(
        client.clone(),
        TagResolver::new(registry_client),
        triggers.clone(),
        metrics.clone(),
    )))
}

type Server = JoinHandle<std::io::Result<()>>;

/// Serve `app` on `listener` until `shutdown` is cancelled.
fn serve(listener: TcpListener, app: axum::Router, shutdown: &CancellationToken) -> Server {
    let stop = shutdown.clone();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await
    })
}

/// Wait for a server to stop; its failure is logged, not returned (the operator is stopping).
async fn stopped(name: &str, server: Server) {
    match server.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => warn!(error = %e, "{name} failed"),
        Err(e) => warn!(error = %e, "{name} task failed"),
    }
}

/// A shutdown future the controller accepts (`Send + Sync`), resolving when `token` is cancelled.
pub(crate) fn signal(
    token: &CancellationToken,
) -> impl Future<Output = ()> + Send + Sync + 'static {
    let (tx, rx) = futures::channel::oneshot::channel::<()>();
    let token = token.clone();
    tokio::spawn(async move {
        token.cancelled().await;
        let _ = tx.send(());
    });
    rx.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>(_: &T) {}

    /// Embedders and tests spawn the operator on a multi-threaded runtime.
    #[allow(dead_code)]
    fn run_is_send(operator: Operator, client: Client) {
        let future = operator.run(client, CancellationToken::new());
        assert_send(&future);
    }

    #[test]
    fn config_defaults() {
        let config = Config::new("me", "ops");
        assert!(config.leader_election);
        assert_eq!(config.lease_name, "trading-agent-operator");
        assert_eq!(config.lease_namespace, "ops");
        assert_eq!(config.metrics_addr.port(), 8080);
        assert!(config.lease_grace < config.lease_duration);
        assert!(config.registry.is_none() && config.webhook_addr.is_none());
    }

    #[test]
    fn the_webhook_token_is_never_printed() {
        let mut config = Config::new("me", "ops");
        config.webhook_token = Some(WebhookToken("hunter2".into()));
        assert!(!format!("{config:?}").contains("hunter2"));
    }
}
