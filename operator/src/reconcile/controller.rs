//! The controller loop (talks to the API server): the watches and their caches, and
//! kube-runtime's `Controller` driving [`reconcile`] and [`error_policy`] for each TradingAgent.

use std::sync::Arc;
use std::time::Duration;

use futures::{Future, FutureExt, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::Api;
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tracing::{debug, info};

use super::backoff::ErrorBackoff;
use super::build::MANAGED_BY_SELECTOR;
use super::pods::{agent_of_pod, pod_state, strip_pod};
use super::{Context, Services, error_policy, reconcile};
use crate::digest::freshness::{REGISTRY_RETRY_MAX, REGISTRY_RETRY_MIN};
use crate::error::{Error, Result};
use crate::resource::TradingAgent;

/// First retry delay after a failed reconciliation.
pub const BACKOFF_BASE: Duration = Duration::from_secs(1);
/// Longest retry delay after repeated failures.
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// Caches of the watched objects.
#[derive(Clone)]
pub struct Stores {
    /// TradingAgents.
    pub agents: Store<TradingAgent>,
    /// Deployments the operator manages.
    pub deployments: Store<Deployment>,
    /// Services the operator manages.
    pub services: Store<Service>,
    /// PodDisruptionBudgets the operator manages.
    pub pod_disruption_budgets: Store<PodDisruptionBudget>,
    /// NetworkPolicies the operator manages.
    pub network_policies: Store<NetworkPolicy>,
    /// The pods of the managed Deployments, stripped to labels, deletion, images, conditions and
    /// container statuses ([`strip_pod`]): `status.components.<role>.digest` is what they run, and
    /// their readiness and restarts are the verification's evidence.
    pub pods: Store<Pod>,
}

impl Stores {
    /// Resolves once every cache has listed its objects (false if a cache's writer is gone).
    pub async fn wait_until_ready(&self) -> bool {
        ready(&self.agents).await
            && ready(&self.deployments).await
            && ready(&self.services).await
            && ready(&self.pod_disruption_budgets).await
            && ready(&self.network_policies).await
            && ready(&self.pods).await
    }
}

/// Wait for a store to be ready. kube-runtime's readiness signal wakes only the most recent
/// waiter, and the controller waits on the TradingAgent store itself, so poll with a short
/// timeout instead of waiting once: each poll re-registers, and a ready store answers at once.
async fn ready<K>(store: &Store<K>) -> bool
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    loop {
        match tokio::time::timeout(Duration::from_millis(200), store.wait_until_ready()).await {
            Ok(result) => return result.is_ok(),
            Err(_elapsed) => continue,
        }
    }
}

fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// [`reconcile`], with a panic caught and turned into [`Error::ReconcilePanicked`]: kube-runtime
/// polls reconciliations inside the controller's own stream, so an uncaught panic in one
/// TradingAgent's reconciliation would end the controller, and the process, for every tenant.
pub async fn reconcile_caught(
    agent: Arc<TradingAgent>,
    ctx: Arc<Context>,
) -> Result<kube::runtime::controller::Action> {
    let progress = ctx.services.progress.clone();
    let _in_flight = progress.start(ctx.stores.agents.len());
    caught(reconcile(agent, ctx)).await
}

/// Runs `future`, turning a panic into [`Error::ReconcilePanicked`] with the panic's message.
pub async fn caught<T>(future: impl Future<Output = Result<T>>) -> Result<T> {
    match std::panic::AssertUnwindSafe(future).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".to_owned());
            tracing::error!(%message, "reconciliation panicked; retrying with back-off");
            Err(Error::ReconcilePanicked(message))
        }
    }
}

/// Run the controller until `shutdown` resolves (then finish running reconciliations) or the
/// returned future is dropped (leadership lost: stop at once). `on_synced` is called once every
/// cache has synced.
pub async fn run(
    client: Client,
    namespace: Option<&str>,
    concurrency: u16,
    services: Services,
    on_synced: impl FnOnce() + Send + 'static,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let ns = namespace;
    let managed = watcher::Config::default().labels(MANAGED_BY_SELECTOR);

    let (deployments, deployment_writer) = reflector::store();
    let deployment_events = watcher(scoped::<Deployment>(&client, ns), managed.clone())
        .default_backoff()
        .modify(|d| d.managed_fields_mut().clear())
        .reflect(deployment_writer)
        .touched_objects();
    let (service_cache, service_writer) = reflector::store();
    let service_events = watcher(scoped::<Service>(&client, ns), managed.clone())
        .default_backoff()
        .modify(|s| s.managed_fields_mut().clear())
        .reflect(service_writer)
        .touched_objects();
    let (pdbs, pdb_writer) = reflector::store();
    let pdb_events = watcher(scoped::<PodDisruptionBudget>(&client, ns), managed.clone())
        .default_backoff()
        .modify(|p| p.managed_fields_mut().clear())
        .reflect(pdb_writer)
        .touched_objects();
    let (network_policies, network_policy_writer) = reflector::store();
    let network_policy_events = watcher(scoped::<NetworkPolicy>(&client, ns), managed.clone())
        .default_backoff()
        .modify(|p| p.managed_fields_mut().clear())
        .reflect(network_policy_writer)
        .touched_objects();
    // Pods carry the template's labels; a pod reconciles its TradingAgent only when the image it
    // runs, whether it is terminating, its readiness or scheduling, or its restarts change, not at
    // every status update.
    let (pods, pod_writer) = reflector::store();
    let pod_events = watcher(scoped::<Pod>(&client, ns), managed)
        .default_backoff()
        .modify(strip_pod)
        .reflect(pod_writer)
        .touched_objects()
        .predicate_filter(pod_state, Default::default());

    let controller = Controller::new(
        scoped::<TradingAgent>(&client, ns),
        watcher::Config::default(),
    )
    .with_config(ControllerConfig::default().concurrency(concurrency));

    let stores = Stores {
        agents: controller.store(),
        deployments,
        services: service_cache,
        pod_disruption_budgets: pdbs,
        network_policies,
        pods,
    };
    // Registry notifications queue reconciles of the TradingAgents that follow the pushed tag.
    let (notified, notifications) = futures::channel::mpsc::unbounded();
    services.triggers.attach(stores.agents.clone(), notified);
    let ready_stores = stores.clone();
    let synced = tokio::spawn(async move {
        if ready_stores.wait_until_ready().await {
            info!("caches synced");
            on_synced();
        }
    });

    let triggers = services.triggers.clone();
    let context = Arc::new(Context {
        client,
        services,
        stores,
        backoff: ErrorBackoff::new(BACKOFF_BASE, BACKOFF_MAX),
        failed_resolutions: ErrorBackoff::new(REGISTRY_RETRY_MIN, REGISTRY_RETRY_MAX),
        written: Default::default(),
        recent_applies: Default::default(),
        event_publishers: Arc::new(tokio::sync::Semaphore::new(
            super::report::EVENT_BATCHES_IN_FLIGHT,
        )),
        database_secrets: Default::default(),
        bot_api: super::bot_api::BotApi::new()
            .inspect_err(|e| tracing::error!(error = %e, "trading look disabled"))
            .ok(),
    });

    // A new controller is judged from its start, not by its predecessor's last progress.
    context.services.progress.mark(std::time::Instant::now());
    info!(namespace = ns.unwrap_or("<all>"), "starting controller");
    controller
        .owns_stream(deployment_events)
        .owns_stream(service_events)
        .owns_stream(pdb_events)
        .owns_stream(network_policy_events)
        .watches_stream(pod_events, |pod| agent_of_pod(&pod))
        .reconcile_on(notifications)
        .graceful_shutdown_on(shutdown)
        .run(reconcile_caught, error_policy, context)
        .for_each(|result| async move {
            match result {
                Ok((object, _)) => debug!(%object, "reconciled"),
                Err(error) => debug!(%error, "reconcile did not complete"),
            }
        })
        .await;
    synced.abort();
    triggers.detach();
    info!("controller stopped");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_reconciliation_is_an_error_not_the_end_of_the_process() {
        let overflow = caught(async {
            let huge = Duration::from_secs(u64::MAX);
            // The arithmetic of issue 15's crash, in the middle of a reconciliation.
            let _ = std::hint::black_box(huge) * 2;
            Ok(())
        })
        .await;
        assert_eq!(
            overflow,
            Err(Error::ReconcilePanicked(
                "overflow when multiplying duration by scalar".into()
            ))
        );
        assert_eq!(caught(async { Ok(7) }).await, Ok(7));
        let formatted = caught::<()>(async { panic!("agent {}", "alpha") }).await;
        assert_eq!(
            formatted,
            Err(Error::ReconcilePanicked("agent alpha".into()))
        );
    }
}
