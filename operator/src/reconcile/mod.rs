//! The controller: watches TradingAgents and the objects they own, and reconciles each one in
//! named stages:
//!
//! 1. **dereference** — read what the resource points at (the database Secret);
//! 2. **validate** — turn `spec.image` into a pinned image ([`ImageResolver`]), then decide
//!    what to pin given how the last rollout went ([`crate::reconcile::rollback`]: rollback, rejected
//!    digests);
//! 3. **build** — the desired objects, a pure function ([`crate::reconcile::build`]);
//! 4. **apply** — server-side apply with one field manager, unless paused or blocked;
//! 5. **status** — compute the next status ([`crate::reconcile::status`]) and write it only if it changed,
//!    with events for the transitions a user needs to know about.

pub mod applied;
pub mod backoff;
pub mod build;
pub mod rollback;
pub mod status;
pub mod written;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{Future, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ObjectReference, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, GetParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tracing::{debug, info, warn};

use crate::digest::pinner::ImageResolver;
use crate::digest::webhook::Triggers;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::reconcile::backoff::ErrorBackoff;
use crate::reconcile::build::{
    DesiredObjects, FIELD_MANAGER, MANAGED_BY_SELECTOR, api_service_name, deployment_name,
    desired_objects,
};
use crate::reconcile::status::{
    Blocked, ImageOutcome, Observation, find_condition, next_status, reasons, types,
};
use crate::reconcile::written::WrittenStatuses;
use crate::resource::{Role, TradingAgent, TradingAgentSpec, TradingAgentStatus, UpdateMode};

/// How often a healthy TradingAgent is reconciled even without a change (drift safety net).
pub const RESYNC_INTERVAL: Duration = Duration::from_secs(300);
/// Longest wait before asking a registry again after a failed resolution.
pub const REGISTRY_RETRY_MAX: Duration = Duration::from_secs(30);
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
}

impl Stores {
    /// Resolves once every cache has listed its objects (false if a cache's writer is gone).
    pub async fn wait_until_ready(&self) -> bool {
        ready(&self.agents).await
            && ready(&self.deployments).await
            && ready(&self.services).await
            && ready(&self.pod_disruption_budgets).await
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

/// What every reconciliation shares.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Who publishes Kubernetes events.
    pub reporter: Reporter,
    /// Metrics.
    pub metrics: Metrics,
    /// Per-object retry delays.
    pub backoff: ErrorBackoff<ObjectRef<TradingAgent>>,
    /// Turns `spec.image` into a pinned image.
    pub resolver: Arc<dyn ImageResolver>,
    /// Caches of watched objects.
    pub stores: Stores,
    /// The status this process last wrote, per TradingAgent (see [`crate::reconcile::written`]).
    pub written: WrittenStatuses<ObjectRef<TradingAgent>>,
    /// Database Secrets found holding their key, and when (see [`SECRET_RECHECK`]).
    pub secrets_found: std::sync::Mutex<HashMap<SecretKeyRef, Instant>>,
}

/// A key of a Secret in a namespace: (namespace, name, key).
pub type SecretKeyRef = (String, String, String);

/// How long a database Secret found holding its key is trusted before it is read again. Every
/// change of a child reconciles its TradingAgent; without this, each of those reads the Secret
/// (1,000 agents polling every 10 s would be 100 reads a second). The Secret is not watched (that
/// would take list rights on every Secret), so a deletion was only ever noticed at the next
/// reconciliation; this bounds that delay for busy agents too.
pub const SECRET_RECHECK: Duration = Duration::from_secs(30);

/// How soon a reconciliation that found the cache behind our own status write runs again.
pub const CACHE_BEHIND_RETRY: Duration = Duration::from_millis(100);
/// Settings of one controller run.
#[derive(Clone)]
pub struct Settings {
    /// Watch one namespace only; `None` watches all.
    pub namespace: Option<String>,
    /// Reconciliations allowed to run at once (0 = unbounded).
    pub concurrency: u16,
    /// Who publishes events.
    pub reporter: Reporter,
    /// The digest resolver.
    pub resolver: Arc<dyn ImageResolver>,
    /// Where registry notifications reach the controller.
    pub triggers: Arc<Triggers>,
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

/// Run the controller until `shutdown` resolves (then finish running reconciliations) or the
/// returned future is dropped (leadership lost: stop at once). `on_synced` is called once every
/// cache has synced.
pub async fn run(
    client: Client,
    settings: Settings,
    metrics: Metrics,
    on_synced: impl FnOnce() + Send + 'static,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let ns = settings.namespace.as_deref();
    let managed = watcher::Config::default().labels(MANAGED_BY_SELECTOR);

    let (deployments, deployment_writer) = reflector::store();
    let deployment_events = watcher(scoped::<Deployment>(&client, ns), managed.clone())
        .default_backoff()
        .modify(|d| d.managed_fields_mut().clear())
        .reflect(deployment_writer)
        .touched_objects();
    let (services, service_writer) = reflector::store();
    let service_events = watcher(scoped::<Service>(&client, ns), managed.clone())
        .default_backoff()
        .modify(|s| s.managed_fields_mut().clear())
        .reflect(service_writer)
        .touched_objects();
    let (pdbs, pdb_writer) = reflector::store();
    let pdb_events = watcher(scoped::<PodDisruptionBudget>(&client, ns), managed)
        .default_backoff()
        .modify(|p| p.managed_fields_mut().clear())
        .reflect(pdb_writer)
        .touched_objects();

    let controller = Controller::new(
        scoped::<TradingAgent>(&client, ns),
        watcher::Config::default(),
    )
    .with_config(ControllerConfig::default().concurrency(settings.concurrency));

    let stores = Stores {
        agents: controller.store(),
        deployments,
        services,
        pod_disruption_budgets: pdbs,
    };
    // Registry notifications queue reconciles of the TradingAgents that follow the pushed tag.
    let (notified, notifications) = futures::channel::mpsc::unbounded();
    settings.triggers.attach(stores.agents.clone(), notified);
    let ready_stores = stores.clone();
    let synced = tokio::spawn(async move {
        if ready_stores.wait_until_ready().await {
            info!("caches synced");
            on_synced();
        }
    });

    let context = Arc::new(Context {
        reporter: settings.reporter.clone(),
        client,
        metrics,
        backoff: ErrorBackoff::new(BACKOFF_BASE, BACKOFF_MAX),
        resolver: settings.resolver.clone(),
        stores,
        written: Default::default(),
        secrets_found: Default::default(),
    });

    info!(namespace = ns.unwrap_or("<all>"), "starting controller");
    controller
        .owns_stream(deployment_events)
        .owns_stream(service_events)
        .owns_stream(pdb_events)
        .reconcile_on(notifications)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, context)
        .for_each(|result| async move {
            match result {
                Ok((object, _)) => debug!(%object, "reconciled"),
                Err(error) => debug!(%error, "reconcile did not complete"),
            }
        })
        .await;
    synced.abort();
    settings.triggers.detach();
    info!("controller stopped");
}

/// Retry a failed reconciliation after this object's next back-off delay.
pub fn error_policy(agent: Arc<TradingAgent>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = ObjectRef::from_obj(agent.as_ref());
    let delay = ctx.backoff.next_delay(&key);
    ctx.metrics.record_failure(error.metric_label());
    ctx.metrics.objects_in_backoff.set(ctx.backoff.len() as i64);
    warn!(
        tradingagent = %key,
        %error,
        reason = error.metric_label(),
        retry_in_ms = delay.as_millis() as u64,
        failures = ctx.backoff.failures(&key),
        "reconciliation failed"
    );
    Action::requeue(delay)
}

/// Reconcile one TradingAgent.
pub async fn reconcile(agent: Arc<TradingAgent>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.start_reconcile();
    ctx.metrics
        .managed_resources
        .set(ctx.stores.agents.len() as i64);
    // Objects deleted while backing off are never reconciled again: forget them.
    ctx.backoff
        .retain(|key| ctx.stores.agents.get(key).is_some());
    ctx.written
        .retain(|key| ctx.stores.agents.get(key).is_some());
    if agent.metadata.deletion_timestamp.is_some() {
        // Owner references hand the children to the garbage collector.
        return Ok(Action::await_change());
    }
    let ns = agent
        .namespace()
        .ok_or(Error::MissingObjectKey("metadata.namespace"))?;
    let key = ObjectRef::from_obj(agent.as_ref());
    if ctx
        .written
        .cache_is_behind(&key, agent.status.as_ref(), Instant::now())
    {
        debug!(tradingagent = %key, "cache behind our last status write; retrying shortly");
        return Ok(Action::requeue(CACHE_BEHIND_RETRY));
    }

    let started = Instant::now();
    // 1. dereference
    let secret_problem = dereference_database_secret(&ctx, &ns, &agent).await?;
    let dereferenced = started.elapsed();
    // 2. validate
    let resolved = ctx.resolver.resolve(&agent).await;
    let validated = started.elapsed();
    let current = cached_deployments(&ctx.stores, &ns, &agent.name_any());
    let decision = rollback::decide(&agent, resolved, &current);
    let image = decision.image;
    // 3. build
    let desired = match (image.pinned(), &secret_problem) {
        (Some(pinned), None) => Some(desired_objects(&agent, pinned)?),
        _ => None,
    };
    // 4. apply
    let mut events = Vec::new();
    let (deployments, applied) = match desired {
        Some(objects) if !agent.spec.paused => {
            (apply(&ctx, &agent, &ns, objects, &mut events).await?, true)
        }
        _ => (current, false),
    };
    let applied_at = started.elapsed();
    let rollback = decision.rollback.as_ref().filter(|_| applied);
    if let Some(rollback) = rollback {
        ctx.metrics.rollbacks.inc();
        warn!(
            tradingagent = %key,
            rejected = %rollback.rejected,
            restored = %rollback.restored,
            "rollout failed: rolled back to the last healthy digest"
        );
    }
    // 5. status
    let now =
        Timestamp::from_second(Timestamp::now().as_second()).unwrap_or_else(|_| Timestamp::now());
    let status = next_status(&Observation {
        agent: &agent,
        image: &image,
        applied,
        blocked: secret_problem.as_ref().map(|(blocked, _)| blocked),
        deployments: &deployments,
        rollback,
        now,
    });
    events.extend(status_events(agent.status.as_ref(), &status));
    write_status(&ctx, &agent, &ns, status).await?;
    let status_at = started.elapsed();
    publish(&ctx, &agent, events).await;
    debug!(
        tradingagent = %key,
        secret_ms = dereferenced.as_millis() as u64,
        resolve_ms = (validated - dereferenced).as_millis() as u64,
        apply_ms = (applied_at - validated).as_millis() as u64,
        status_ms = (status_at - applied_at).as_millis() as u64,
        events_ms = (started.elapsed() - status_at).as_millis() as u64,
        "reconcile stages"
    );

    if let Some((_, error)) = secret_problem {
        // Reported; retry with back-off until the Secret appears.
        return Err(error);
    }
    ctx.backoff.reset(&key);
    ctx.metrics.objects_in_backoff.set(ctx.backoff.len() as i64);
    Ok(Action::requeue(requeue_after(&agent.spec, &image)))
}

/// When to reconcile again without a change: after the polling interval for a tracked tag (so a
/// new digest is found within one interval), otherwise after [`RESYNC_INTERVAL`]; sooner (at most
/// [`REGISTRY_RETRY_MAX`]) while resolution fails, so recovery is automatic.
pub fn requeue_after(spec: &TradingAgentSpec, image: &ImageOutcome) -> Duration {
    let follows_tag = !spec.image.contains('@') && spec.image_update.mode == UpdateMode::Track;
    let poll = follows_tag
        .then(|| spec.image_update.poll_interval().ok().flatten())
        .flatten();
    let base = poll.unwrap_or(RESYNC_INTERVAL);
    match image {
        ImageOutcome::Pinned(_) => base,
        ImageOutcome::Kept { .. } | ImageOutcome::Unresolved(_) => base.min(REGISTRY_RETRY_MAX),
    }
}

/// Stage 1: the database Secret must exist and hold the key; otherwise the resource is blocked.
/// A Secret found holding the key is trusted for [`SECRET_RECHECK`]; a missing one is read again
/// on every retry, so it is noticed as soon as it is created.
async fn dereference_database_secret(
    ctx: &Context,
    ns: &str,
    agent: &TradingAgent,
) -> Result<Option<(Blocked, Error)>> {
    let reference = &agent.spec.database.secret_ref;
    let cache_key = (ns.to_owned(), reference.name.clone(), reference.key.clone());
    {
        let mut found = ctx.secrets_found.lock().expect("secrets-found lock");
        found.retain(|_, at| at.elapsed() < SECRET_RECHECK);
        if found.contains_key(&cache_key) {
            return Ok(None);
        }
    }
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    // resourceVersion=0: served from the API server's watch cache, not a quorum read of etcd.
    let secret = match secrets.get_with(&reference.name, &GetParams::any()).await {
        Ok(secret) => Some(secret),
        Err(kube::Error::Api(status)) if status.code == 404 => None,
        Err(e) => return Err(e.into()),
    };
    let problem = match secret {
        None => Some((
            Blocked {
                reason: reasons::SECRET_NOT_FOUND,
                message: format!(
                    "Secret {:?} named by spec.database.secretRef.name does not exist in namespace {ns:?}; create it with the database URL under key {:?}",
                    reference.name, reference.key
                ),
            },
            Error::SecretNotFound {
                namespace: ns.to_owned(),
                name: reference.name.clone(),
            },
        )),
        Some(secret) => {
            let has_key = secret
                .data
                .as_ref()
                .is_some_and(|d| d.contains_key(&reference.key))
                || secret
                    .string_data
                    .as_ref()
                    .is_some_and(|d| d.contains_key(&reference.key));
            (!has_key).then(|| {
                (
                    Blocked {
                        reason: reasons::SECRET_KEY_MISSING,
                        message: format!(
                            "Secret {:?} has no key {:?} (spec.database.secretRef.key)",
                            reference.name, reference.key
                        ),
                    },
                    Error::SecretKeyMissing {
                        namespace: ns.to_owned(),
                        name: reference.name.clone(),
                        key: reference.key.clone(),
                    },
                )
            })
        }
    };
    if problem.is_none() {
        ctx.secrets_found
            .lock()
            .expect("secrets-found lock")
            .insert(cache_key, Instant::now());
    }
    Ok(problem)
}

/// The Deployments as cached, when nothing is applied (paused or blocked).
fn cached_deployments(stores: &Stores, ns: &str, name: &str) -> Vec<(Role, Option<Deployment>)> {
    Role::ALL
        .into_iter()
        .map(|role| {
            let key = ObjectRef::new(&deployment_name(name, role)).within(ns);
            (
                role,
                stores.deployments.get(&key).map(|d| d.as_ref().clone()),
            )
        })
        .collect()
}

/// A Kubernetes event to publish about a TradingAgent.
#[derive(Clone, Debug, PartialEq)]
pub struct EventSpec {
    /// Warning or Normal.
    pub warning: bool,
    /// CamelCase reason.
    pub reason: String,
    /// What happened, for `kubectl describe`.
    pub note: String,
    /// The action taken.
    pub action: &'static str,
    /// The child object the event is about, if any.
    pub related: Option<ObjectReference>,
}

impl EventSpec {
    fn normal(reason: &str, note: impl Into<String>, action: &'static str) -> Self {
        Self {
            warning: false,
            reason: reason.to_owned(),
            note: note.into(),
            action,
            related: None,
        }
    }

    fn about(mut self, related: ObjectReference) -> Self {
        self.related = Some(related);
        self
    }

    fn warning(reason: &str, note: impl Into<String>, action: &'static str) -> Self {
        Self {
            warning: true,
            ..Self::normal(reason, note, action)
        }
    }
}

/// Stage 4: server-side apply every desired object that the cache does not already show as
/// applied ([`applied::up_to_date`]), all at once; remove a PodDisruptionBudget that is no longer
/// wanted. Returns the Deployments as the API server returned them (or as cached, when unchanged).
async fn apply(
    ctx: &Context,
    agent: &TradingAgent,
    ns: &str,
    objects: DesiredObjects,
    events: &mut Vec<EventSpec>,
) -> Result<Vec<(Role, Option<Deployment>)>> {
    let (roles, deployments): (Vec<Role>, Vec<Deployment>) =
        objects.deployments.into_iter().unzip();
    let deployments = futures::future::try_join_all(
        deployments
            .into_iter()
            .map(|d| apply_one(ctx, ns, &ctx.stores.deployments, d)),
    );
    let service = apply_one(ctx, ns, &ctx.stores.services, objects.service);
    let pdb_name = api_service_name(&agent.name_any());
    let pdb = async {
        match objects.pod_disruption_budget {
            Some(pdb) => Ok(apply_one(ctx, ns, &ctx.stores.pod_disruption_budgets, pdb)
                .await?
                .1),
            None => delete_unwanted_pdb(ctx, agent, ns, &pdb_name).await,
        }
    };
    let (deployments, (_, service_event), pdb_event) =
        futures::future::try_join3(deployments, service, pdb).await?;

    let mut applied = Vec::new();
    let mut child_events = Vec::new();
    for (role, (deployment, event)) in roles.into_iter().zip(deployments) {
        child_events.extend(event);
        applied.push((role, Some(deployment)));
    }
    child_events.extend(service_event);
    child_events.extend(pdb_event);
    events.extend(fold_child_events(child_events));
    Ok(applied)
}

/// One event per reason for the children of one reconciliation ("Created: Deployment a-api,
/// Deployment a-bot, ..."), not one per child: a new agent or a new digest touches three or four
/// children at once, and each event is a write the API server must store.
pub fn fold_child_events(events: Vec<EventSpec>) -> Vec<EventSpec> {
    let mut folded: Vec<EventSpec> = Vec::new();
    for event in events {
        match folded
            .iter_mut()
            .find(|f| f.reason == event.reason && f.warning == event.warning)
        {
            Some(same) => {
                same.note = format!("{}, {}", same.note, event.note);
                // The related object names one child; a folded event is about several.
                same.related = None;
            }
            None => folded.push(event),
        }
    }
    folded
}

/// Server-side apply one object unless the cache shows it applied already. Returns the object as
/// the API server returned it (or as cached), and a Created or Updated event when its spec changed.
async fn apply_one<K>(
    ctx: &Context,
    ns: &str,
    store: &Store<K>,
    desired: K,
) -> Result<(K, Option<EventSpec>)>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    let name = desired.name_any();
    let cached = store.get(&ObjectRef::new(&name).within(ns));
    if let Some(cached) = cached.as_deref()
        && applied::up_to_date(&desired, cached)
    {
        ctx.metrics.applies_skipped.inc();
        return Ok((cached.clone(), None));
    }
    let api: Api<K> = Api::namespaced(ctx.client.clone(), ns);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let after = api.patch(&name, &params, &Patch::Apply(&desired)).await?;
    ctx.metrics.applies.inc();
    let event = change_event(cached.as_deref(), &after);
    Ok((after, event))
}

/// Delete the api PodDisruptionBudget this TradingAgent owns, now that it has one replica or fewer.
async fn delete_unwanted_pdb(
    ctx: &Context,
    agent: &TradingAgent,
    ns: &str,
    name: &str,
) -> Result<Option<EventSpec>> {
    let cached = ctx
        .stores
        .pod_disruption_budgets
        .get(&ObjectRef::new(name).within(ns));
    let owned = cached.is_some_and(|pdb| {
        pdb.owner_references()
            .iter()
            .any(|o| Some(&o.uid) == agent.metadata.uid.as_ref())
    });
    if !owned {
        return Ok(None);
    }
    let api: Api<PodDisruptionBudget> = Api::namespaced(ctx.client.clone(), ns);
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(Some(EventSpec::normal(
            "Deleted",
            format!("PodDisruptionBudget {name}: the api has one replica or fewer"),
            "Delete",
        ))),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// A Created or Updated event when applying changed the object's spec (its generation moved).
fn change_event<K: Resource<DynamicType = ()>>(before: Option<&K>, after: &K) -> Option<EventSpec> {
    let kind = K::kind(&());
    let name = after.meta().name.clone().unwrap_or_default();
    let before = before.map(|b| b.meta());
    let after_ref = after.object_ref(&());
    let after = after.meta();
    let event = match before {
        None if after.generation.unwrap_or(1) <= 1 => Some(EventSpec::normal(
            "Created",
            format!("{kind} {name}"),
            "Apply",
        )),
        None => None,
        Some(before) if after.generation > before.generation => Some(EventSpec::normal(
            "Updated",
            format!("{kind} {name}"),
            "Apply",
        )),
        Some(_) => None,
    };
    event.map(|e| e.about(after_ref))
}

/// Events for the status transitions a user needs to know about.
pub fn status_events(old: Option<&TradingAgentStatus>, new: &TradingAgentStatus) -> Vec<EventSpec> {
    let empty = Vec::new();
    let old_conditions = old.map_or(&empty, |s| &s.conditions);
    let changed = |type_: &str| -> Option<&Condition> {
        let now = find_condition(&new.conditions, type_)?;
        let before = find_condition(old_conditions, type_);
        let same = before.is_some_and(|b| b.status == now.status && b.reason == now.reason);
        (!same).then_some(now)
    };
    let mut events = Vec::new();

    if let Some(c) = changed(types::IMAGE_RESOLVED)
        && c.status == "False"
    {
        events.push(EventSpec::warning(
            &c.reason,
            c.message.clone(),
            "ResolveImage",
        ));
    }
    if let Some(c) = changed(types::READY) {
        if c.status == "True" {
            events.push(EventSpec::normal("Ready", c.message.clone(), "Reconcile"));
        } else if c.reason == reasons::SECRET_NOT_FOUND || c.reason == reasons::SECRET_KEY_MISSING {
            events.push(EventSpec::warning(
                &c.reason,
                c.message.clone(),
                "ReadSecret",
            ));
        }
    }
    if let Some(c) = changed(types::DEGRADED)
        && c.status == "True"
    {
        let action = if c.reason == reasons::ROLLED_BACK {
            "Rollback"
        } else {
            "Rollout"
        };
        events.push(EventSpec::warning(&c.reason, c.message.clone(), action));
    }
    if let Some(c) = changed(types::PROGRESSING) {
        let was_paused = find_condition(old_conditions, types::PROGRESSING)
            .is_some_and(|b| b.reason == reasons::PAUSED);
        if c.reason == reasons::PAUSED {
            events.push(EventSpec::normal("Paused", c.message.clone(), "Pause"));
        } else if was_paused {
            events.push(EventSpec::normal(
                "Resumed",
                "spec.paused is false: changes are applied again",
                "Resume",
            ));
        }
    }
    let old_digest = old
        .and_then(|s| s.image.as_ref())
        .and_then(|i| i.digest.as_ref());
    let new_image = new.image.as_ref();
    if let Some(digest) = new_image.and_then(|i| i.digest.as_ref())
        && Some(digest) != old_digest
    {
        events.push(EventSpec::normal(
            "DigestPinned",
            format!(
                "workloads pinned to {digest} ({})",
                new_image.map_or("", |i| i.reference.as_str())
            ),
            "PinImage",
        ));
    }
    events
}

/// Stage 5: write the status only when it differs from what the API server has.
async fn write_status(
    ctx: &Context,
    agent: &TradingAgent,
    ns: &str,
    status: TradingAgentStatus,
) -> Result<()> {
    if agent.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let api: Api<TradingAgent> = Api::namespaced(ctx.client.clone(), ns);
    let patch = serde_json::json!({
        "apiVersion": TradingAgent::api_version(&()),
        "kind": TradingAgent::kind(&()),
        "status": status,
    });
    api.patch_status(
        &agent.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    ctx.metrics.status_updates.inc();
    ctx.written
        .record(ObjectRef::from_obj(agent), status, Instant::now());
    Ok(())
}

async fn publish(ctx: &Context, agent: &TradingAgent, events: Vec<EventSpec>) {
    if events.is_empty() {
        return;
    }
    let reference = agent.object_ref(&());
    // A fresh recorder: kube's recorder folds events of the same reason into a series that keeps
    // the first note, and these notes (digests, messages) matter. Events are only emitted on
    // transitions, so there is nothing to fold.
    let recorder = Recorder::new(ctx.client.clone(), ctx.reporter.clone());
    // All at once: a reconciliation that creates the children has five or six to tell, and one
    // after the other they held its concurrency slot for longer than the applies did.
    let publishing = events.into_iter().map(|event| {
        let recorder = &recorder;
        let reference = &reference;
        async move {
            let result = recorder
                .publish(
                    &Event {
                        type_: if event.warning {
                            EventType::Warning
                        } else {
                            EventType::Normal
                        },
                        reason: event.reason.clone(),
                        note: Some(truncate(&event.note, 1000)),
                        action: event.action.to_owned(),
                        secondary: event.related.clone(),
                    },
                    reference,
                )
                .await;
            if let Err(error) = result {
                // Events are best effort; the status carries the same information.
                warn!(%error, reason = %event.reason, "could not publish event");
            }
        }
    });
    futures::future::join_all(publishing).await;
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::status::condition;
    use crate::resource::ImageStatus;
    use kube::api::ObjectMeta;

    fn t() -> Timestamp {
        Timestamp::from_second(1_700_000_000).unwrap()
    }

    fn status(conditions: Vec<Condition>, digest: Option<&str>) -> TradingAgentStatus {
        TradingAgentStatus {
            conditions,
            image: Some(ImageStatus {
                reference: "r".into(),
                digest: digest.map(str::to_owned),
                ..ImageStatus::default()
            }),
            ..TradingAgentStatus::default()
        }
    }

    #[test]
    fn child_events_fold_into_one_per_reason() {
        let child = |reason: &str, kind: &str, name: &str| {
            EventSpec::normal(reason, format!("{kind} {name}"), "Apply").about(ObjectReference {
                kind: Some(kind.into()),
                name: Some(name.into()),
                ..ObjectReference::default()
            })
        };
        let folded = fold_child_events(vec![
            child("Created", "Deployment", "a-api"),
            child("Updated", "Deployment", "a-bot"),
            child("Created", "Deployment", "a-strategy"),
            child("Created", "Service", "a-api"),
        ]);
        assert_eq!(folded.len(), 2, "{folded:?}");
        assert_eq!(folded[0].reason, "Created");
        assert_eq!(
            folded[0].note,
            "Deployment a-api, Deployment a-strategy, Service a-api"
        );
        assert_eq!(
            folded[0].related, None,
            "several children: no single related object"
        );
        assert_eq!(folded[1].reason, "Updated");
        assert_eq!(folded[1].note, "Deployment a-bot");
        assert_eq!(
            folded[1].related.as_ref().and_then(|r| r.name.as_deref()),
            Some("a-bot"),
            "a single child keeps its related object"
        );
        assert!(fold_child_events(Vec::new()).is_empty());
    }

    #[test]
    fn becoming_ready_is_a_normal_event_once() {
        let old = status(
            vec![condition(
                "Ready",
                false,
                "ComponentsNotReady",
                "",
                None,
                t(),
            )],
            Some("d"),
        );
        let new = status(
            vec![condition(
                "Ready",
                true,
                "AllComponentsReady",
                "ok",
                None,
                t(),
            )],
            Some("d"),
        );
        let events = status_events(Some(&old), &new);
        assert_eq!(events, vec![EventSpec::normal("Ready", "ok", "Reconcile")]);
        assert!(status_events(Some(&new), &new).is_empty());
    }

    #[test]
    fn missing_secret_and_tag_only_image_are_warnings() {
        let new = status(
            vec![
                condition(
                    "ImageResolved",
                    false,
                    "DigestRequired",
                    "no digest",
                    None,
                    t(),
                ),
                condition("Ready", false, "SecretNotFound", "no secret", None, t()),
            ],
            None,
        );
        let events = status_events(None, &new);
        assert_eq!(events.len(), 2);
        assert!(events.iter().all(|e| e.warning));
        assert_eq!(events[0].reason, "DigestRequired");
        assert_eq!(events[1].reason, "SecretNotFound");
        assert!(
            status_events(Some(&new), &new).is_empty(),
            "no event storm on retries"
        );
    }

    #[test]
    fn degraded_pause_resume_and_new_digest() {
        let old = status(
            vec![condition("Progressing", true, "RollingOut", "", None, t())],
            Some("d1"),
        );
        let new = status(
            vec![
                condition("Progressing", false, "Paused", "paused", None, t()),
                condition(
                    "Degraded",
                    true,
                    "ProgressDeadlineExceeded",
                    "api",
                    None,
                    t(),
                ),
            ],
            Some("d2"),
        );
        let reasons: Vec<_> = status_events(Some(&old), &new)
            .into_iter()
            .map(|e| e.reason)
            .collect();
        assert_eq!(
            reasons,
            ["ProgressDeadlineExceeded", "Paused", "DigestPinned"]
        );
        let resumed = status(
            vec![condition("Progressing", true, "RollingOut", "", None, t())],
            Some("d2"),
        );
        let reasons: Vec<_> = status_events(Some(&new), &resumed)
            .into_iter()
            .map(|e| e.reason)
            .collect();
        assert_eq!(reasons, ["Resumed"]);
    }

    #[test]
    fn change_events_follow_the_generation() {
        let deployment = |generation| Deployment {
            metadata: ObjectMeta {
                name: Some("alpha-api".into()),
                namespace: Some("desk".into()),
                generation: Some(generation),
                ..ObjectMeta::default()
            },
            ..Deployment::default()
        };
        let created = change_event(None, &deployment(1)).unwrap();
        assert_eq!(created.reason, "Created");
        assert_eq!(created.note, "Deployment alpha-api");
        let related = created.related.unwrap();
        assert_eq!(related.kind.as_deref(), Some("Deployment"));
        assert_eq!(related.name.as_deref(), Some("alpha-api"));
        assert_eq!(change_event(Some(&deployment(1)), &deployment(1)), None);
        assert_eq!(
            change_event(Some(&deployment(2)), &deployment(3))
                .unwrap()
                .reason,
            "Updated"
        );
        // The cache lagging behind an object we created earlier is not a new creation.
        assert_eq!(change_event(None, &deployment(4)), None);
    }

    fn spec(image: &str, update: serde_json::Value) -> TradingAgentSpec {
        serde_json::from_value(serde_json::json!({
            "image": image,
            "imageUpdate": update,
            "database": {"secretRef": {"name": "db", "key": "url"}},
        }))
        .unwrap()
    }

    #[test]
    fn requeue_follows_the_polling_interval_of_a_tracked_tag() {
        use crate::digest::reference::{Digest, ImageReference};
        let tag = "registry.example.com/acme/app:stable";
        let pinned = ImageOutcome::Pinned(
            ImageReference::parse(tag)
                .unwrap()
                .pinned_to(Digest::parse(&format!("sha256:{}", "1".repeat(64))).unwrap()),
        );
        let failed = ImageOutcome::Unresolved(Blocked {
            reason: "RegistryUnreachable",
            message: "down".into(),
        });
        let after = |update, image: &ImageOutcome| requeue_after(&spec(tag, update), image);
        assert_eq!(
            after(serde_json::json!({"interval": "2s"}), &pinned),
            Duration::from_secs(2)
        );
        assert_eq!(
            after(serde_json::json!({"interval": "1h30m"}), &pinned),
            Duration::from_secs(5400)
        );
        assert_eq!(
            after(serde_json::json!({"interval": "500ms"}), &pinned),
            Duration::from_millis(500)
        );
        assert_eq!(
            after(serde_json::json!({}), &pinned),
            Duration::from_secs(300)
        );
        // Polling off, Pin mode, or a digest in spec: only the resync.
        assert_eq!(
            after(serde_json::json!({"interval": "0s"}), &pinned),
            RESYNC_INTERVAL
        );
        assert_eq!(
            after(
                serde_json::json!({"interval": "2s", "mode": "Pin"}),
                &pinned
            ),
            RESYNC_INTERVAL
        );
        let by_digest = spec(
            &format!("{tag}@sha256:{}", "1".repeat(64)),
            serde_json::json!({"interval": "2s"}),
        );
        assert_eq!(requeue_after(&by_digest, &pinned), RESYNC_INTERVAL);
        // Failing: retry soon, but never faster than the interval.
        assert_eq!(
            after(serde_json::json!({"interval": "0s"}), &failed),
            REGISTRY_RETRY_MAX
        );
        assert_eq!(
            after(serde_json::json!({"interval": "2s"}), &failed),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn a_rollback_is_a_warning_event() {
        let old = status(
            vec![condition("Degraded", false, "AsExpected", "", None, t())],
            Some("d2"),
        );
        let new = status(
            vec![condition(
                "Degraded",
                true,
                "RolledBack",
                "d2 failed; back on d1",
                None,
                t(),
            )],
            Some("d1"),
        );
        let events = status_events(Some(&old), &new);
        assert_eq!(events[0].reason, "RolledBack");
        assert!(events[0].warning);
        assert_eq!(events[0].action, "Rollback");
    }

    #[test]
    fn truncates_on_char_boundaries() {
        assert_eq!(truncate("abc", 10), "abc");
        assert_eq!(truncate("ééé", 3), "é…");
    }
}
