//! Leader election: only the holder of the Lease runs the controller, so two replicas never both
//! write. Losing the Lease stops the controller at once (in-flight reconciliations are dropped,
//! not finished) and the process goes back to standing by; shutdown lets running
//! reconciliations finish and then releases the Lease so a standby can take over without
//! waiting for it to expire.

use std::sync::Arc;

use kube::Client;
use kube_lease_manager::LeaseManagerBuilder;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::endpoint::WebhookEndpoint;
use super::server::Health;
use super::{Config, signal};
use crate::error::{Error, Result};
use crate::reconcile::{self, Services};

/// Wait until this process is (`true`) or is no longer (`false`) the leader; false if the Lease
/// manager stopped. (The borrowed value is released here, keeping the callers' futures `Send`.)
async fn wait_leading(leading: &mut tokio::sync::watch::Receiver<bool>, want: bool) -> bool {
    leading.wait_for(|leader| *leader == want).await.is_ok()
}

/// `on_synced` for the controller: marks `health` synced and resolves the returned future.
pub(super) fn synced_signal(
    health: Arc<Health>,
) -> (
    impl FnOnce() + Send + 'static,
    impl std::future::Future<Output = ()> + Send + 'static,
) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let on_synced = move || {
        health.set_synced();
        let _ = tx.send(());
    };
    let synced = async move {
        if rx.await.is_err() {
            // Never synced: never route traffic here.
            std::future::pending::<()>().await;
        }
    };
    (on_synced, synced)
}

/// Route the webhook Service to this process once the controller synced, until `stop`.
pub(super) fn route_webhook_here(
    endpoint: Option<WebhookEndpoint>,
    client: &Client,
    synced: impl std::future::Future<Output = ()> + Send + 'static,
    stop: &CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    let endpoint = endpoint?;
    let (client, stop) = (client.clone(), stop.clone());
    Some(tokio::spawn(async move {
        endpoint.serve_while_leading(client, synced, stop).await
    }))
}

/// Stand by for the Lease; run the controller while holding it, until `shutdown`.
pub(super) async fn lead_then_control(
    config: &Config,
    client: Client,
    services: Services,
    health: Arc<Health>,
    endpoint: Option<WebhookEndpoint>,
    shutdown: &CancellationToken,
) -> Result<()> {
    let metrics = services.metrics.clone();
    let manager = LeaseManagerBuilder::new(client.clone(), &config.lease_name)
        .with_namespace(&config.lease_namespace)
        .with_identity(&config.identity)
        .with_duration(config.lease_duration.as_secs().max(2))
        .with_grace(config.lease_grace.as_secs().max(1))
        .build()
        .await?;
    let (mut leading, lease_task) = manager.watch().await;
    info!(
        lease = %format!("{}/{}", config.lease_namespace, config.lease_name),
        identity = %config.identity,
        "standing by for the leader Lease"
    );

    let outcome = loop {
        tokio::select! {
            _ = shutdown.cancelled() => break Ok(()),
            became = wait_leading(&mut leading, true) => {
                if !became {
                    break Err(Error::Leadership("the Lease manager stopped".to_owned()));
                }
            }
        }
        info!(identity = %config.identity, "acquired the leader Lease; starting the controller");
        metrics.leader.set(1);
        health.set_leading(true);
        let stop = CancellationToken::new();
        let (on_synced, synced) = synced_signal(health.clone());
        let routing = route_webhook_here(endpoint.clone(), &client, synced, &stop);
        let controller = futures::future::join(
            reconcile::run(
                client.clone(),
                config.namespace.as_deref(),
                config.concurrency,
                services.clone(),
                on_synced,
                signal(&stop),
            ),
            crate::backtest::controller::run(
                client.clone(),
                config.namespace.as_deref(),
                services.pinner.clone(),
                services.reporter.clone(),
                signal(&stop),
            ),
        );
        tokio::pin!(controller);
        let lost = tokio::select! {
            _ = &mut controller => false,
            _ = shutdown.cancelled() => {
                stop.cancel();
                (&mut controller).await;
                false
            }
            lost = wait_leading(&mut leading, false) => lost,
        };
        // Dropping the controller here aborts whatever it was still doing.
        stop.cancel();
        if let Some(routing) = routing {
            let _ = routing.await;
        }
        metrics.leader.set(0);
        health.set_leading(false);
        if lost {
            warn!(identity = %config.identity, "lost the leader Lease; controller stopped, standing by");
            continue;
        }
        if shutdown.is_cancelled() {
            break Ok(());
        }
        error!("controller stopped unexpectedly");
        // Exit non-zero, so the kubelet restarts the pod (after releasing the Lease below).
        break Err(Error::ControllerStopped);
    };

    // Closing the channel makes the Lease manager release the Lease and stop.
    drop(leading);
    match lease_task.await {
        Ok(Ok(_)) => info!("released the leader Lease"),
        Ok(Err(e)) => warn!(error = %e, "could not release the leader Lease"),
        Err(e) => warn!(error = %e, "Lease manager task failed"),
    }
    outcome
}
