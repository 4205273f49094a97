//! Reconciling one TradingAgent, in named stages. Pure stages (no I/O, unit-tested without a
//! cluster) are kept apart from the ones that talk to the API server:
//!
//! | stage | file | talks to |
//! |---|---|---|
//! | 1. dereference: the database Secret must exist and hold its key | [`dereference`] | API server |
//! | 2. resolve: `spec.image` → a pinned image | [`crate::digest::pinner`] | registries |
//! | 3. decide: what to pin, given how the last rollout went (rollback, rejected digests, the verification window and who is to blame) | [`rollback`] (with [`verify`]) | pure |
//! | 4. build: the desired children | [`build`] | pure |
//! | 5. apply: server-side apply of what changed | [`apply`] (with [`applied`], pure) | API server |
//! | 5b. trading look (with `spec.trading`): the bot's state set as declared, its figures read; never fatal | [`bot_api`] (with [`trading`], pure) | the api workload |
//! | 6. status: the next status from what was observed | [`status`] (with [`rollout_state`]), pure | — |
//! | 7. report: write the status if it changed, publish events (in a task of their own) | [`report`] (with [`events`], pure) | API server |
//!
//! Around them: [`controller`] (the watches and kube-runtime's controller loop), [`backoff`]
//! (per-object retry delays), [`written`] (a cache lagging behind our own status write),
//! [`progress`] (whether the controller is stuck, for `/healthz`).
//!
//! May depend on [`crate::digest`], [`crate::resource`], [`crate::error`] and [`crate::metrics`];
//! never on [`crate::runtime`].

pub mod applied;
pub mod apply;
pub mod backoff;
pub mod bot_api;
pub mod build;
pub mod conditions;
pub mod controller;
pub mod dereference;
pub mod events;
pub mod pods;
pub mod progress;
pub mod report;
pub mod rollback;
pub mod rollout_state;
pub mod status;
pub mod trading;
pub mod verify;
pub mod written;

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::ObjectRef;
use kube::{Client, ResourceExt};
use tracing::{debug, info, warn};

use crate::digest::freshness;
use crate::digest::pinner::{ImagePinner, Pinning};
use crate::digest::webhook::Triggers;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::resource::TradingAgent;
use backoff::ErrorBackoff;
use build::desired_objects;
pub use controller::{Stores, run};
use dereference::TrustedSecrets;
use status::{Observation, next_status};
use written::WrittenStatuses;

/// How soon a reconciliation that found the cache behind our own status write runs again.
pub const CACHE_BEHIND_RETRY: Duration = Duration::from_millis(100);

/// What the process hands every controller run: long-lived, the same across leadership terms.
#[derive(Clone)]
pub struct Services {
    /// Who publishes events.
    pub reporter: Reporter,
    /// Turns `spec.image` into a pinned image.
    pub pinner: Arc<dyn ImagePinner>,
    /// Where registry notifications reach the controller.
    pub triggers: Arc<Triggers>,
    /// Metrics.
    pub metrics: Metrics,
    /// Whether the controller makes progress (for `/healthz`).
    pub progress: Arc<progress::Progress>,
}

/// What every reconciliation of one controller run shares.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// The long-lived services.
    pub services: Services,
    /// Caches of watched objects.
    pub stores: Stores,
    /// Per-object retry delays.
    pub backoff: ErrorBackoff<ObjectRef<TradingAgent>>,
    /// Per-object count of resolutions failed in a row (the requeue back-off while a registry
    /// fails, [`freshness::requeue_after`]).
    pub failed_resolutions: ErrorBackoff<ObjectRef<TradingAgent>>,
    /// The status this process last wrote, per TradingAgent (see [`written`]).
    pub written: WrittenStatuses<ObjectRef<TradingAgent>>,
    /// Our recent applies of children, for a cache that has not delivered them yet (see
    /// [`applied`]).
    pub recent_applies: apply::RecentApplies,
    /// Event batches published at once at most ([`report::publish`]).
    pub event_publishers: Arc<tokio::sync::Semaphore>,
    /// Database Secrets recently found holding their key (see [`dereference`]).
    pub database_secrets: TrustedSecrets,
    /// The trading look's HTTP client (see [`bot_api`]); `None` if it could not be built.
    pub bot_api: Option<bot_api::BotApi>,
}

/// Retry a failed reconciliation after this object's next back-off delay.
pub fn error_policy(agent: Arc<TradingAgent>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = ObjectRef::from_obj(agent.as_ref());
    let delay = ctx.backoff.next_delay(&key);
    ctx.services.metrics.record_failure(error.metric_label());
    ctx.services
        .metrics
        .objects_in_backoff
        .set(ctx.backoff.len() as i64);
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
    let _timer = ctx.services.metrics.start_reconcile();
    ctx.services
        .metrics
        .managed_resources
        .set(ctx.stores.agents.len() as i64);
    // Objects deleted while backing off are never reconciled again: forget them.
    ctx.backoff
        .retain(|key| ctx.stores.agents.get(key).is_some());
    ctx.written
        .retain(|key| ctx.stores.agents.get(key).is_some());
    ctx.failed_resolutions
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
    let dereferenced = dereference::dereference(&ctx, &ns, &agent).await?;
    let dereferenced_at = started.elapsed();
    // 2. resolve
    let Pinning {
        outcome: resolved,
        answered_at,
    } = ctx.services.pinner.pin(&agent).await;
    let failed_resolutions = match resolved.problem() {
        Some(_) => ctx.failed_resolutions.record_failure(&key),
        None => {
            ctx.failed_resolutions.reset(&key);
            0
        }
    };
    let resolved_at = started.elapsed();
    // 3. decide (seeing the rejections a user cleared; the status is written against `agent`)
    let cleared = rollback::clear_rejections(&agent);
    if let Some(cleared) = &cleared {
        info!(
            tradingagent = %key,
            cleared = ?cleared.status.as_ref().and_then(|s| s.image.as_ref()).and_then(|i| i.cleared_rejections.as_ref()),
            "rejected digests cleared by annotation"
        );
    }
    let seen = cleared.as_ref().unwrap_or(agent.as_ref());
    let current = apply::cached_deployments(&ctx.stores, &ns, &agent.name_any());
    let agent_pods = pods::agent_pods(&ctx.stores.pods, &ns, &agent.name_any());
    let now =
        Timestamp::from_second(Timestamp::now().as_second()).unwrap_or_else(|_| Timestamp::now());
    let decision = rollback::decide(seen, resolved, &current, &agent_pods, now);
    let image = decision.image;
    // 4. build
    let desired = match (image.pinned(), &dereferenced.database_secret) {
        (Some(pinned), None) => Some(desired_objects(&agent, pinned)?),
        _ => None,
    };
    // 5. apply
    let mut events = Vec::new();
    // A refusal of the API server (422 for `cpu: abc`, 403 for a quota) is reported in the status
    // like a missing Secret, with the API server's message; other failures are retried.
    let mut rejected = None;
    let (deployments, applied) = match desired {
        Some(objects) if !agent.spec.paused => {
            match apply::apply(&ctx, &agent, &ns, objects, &mut events).await {
                Ok(deployments) => (deployments, true),
                Err(error) => match error.as_spec_rejection() {
                    rejection @ Error::SpecRejected { .. } => {
                        rejected = Some(rejection);
                        (current, false)
                    }
                    other => return Err(other),
                },
            }
        }
        _ => (current, false),
    };
    let blocked = dereferenced.database_secret.or(rejected);
    let applied_at = started.elapsed();
    // 5b. the trading look: the bot's state set as declared, its figures read (never fatal)
    let previous_trading = agent.status.as_ref().and_then(|s| s.trading.as_ref());
    let trading_look = match &agent.spec.trading {
        Some(spec)
            if !agent.spec.paused && trading::look_due(previous_trading, spec.state, now) =>
        {
            Some(bot_api::look(&ctx, &ns, &agent).await)
        }
        _ => None,
    };
    let rollback = decision.rollback.as_ref().filter(|_| applied);
    if let Some(rollback) = rollback {
        ctx.services.metrics.rollbacks.inc();
        warn!(
            tradingagent = %key,
            rejected = %rollback.rejected,
            restored = %rollback.restored,
            "rollout failed: rolled back to the last healthy digest"
        );
    }
    if let Some(fault) = &decision.fault {
        warn!(
            tradingagent = %key,
            reason = fault.reason,
            message = %fault.message,
            "rollout failed, blamed on the environment: nothing rejected"
        );
    }
    // 6. status
    let status = next_status(&Observation {
        agent: seen,
        image: &image,
        applied,
        blocked: blocked.as_ref(),
        deployments: &deployments,
        pod_images: &pods::pod_images(&ctx.stores.pods, &ns, &agent.name_any()),
        rollback,
        verification: decision.verification.as_ref(),
        fault: decision.fault.as_ref(),
        now,
    });
    let mut status = status;
    match (&agent.spec.trading, &trading_look) {
        (Some(spec), Some(look)) => {
            let (trading, condition) = trading::next_trading_status(
                previous_trading,
                spec.state,
                look,
                agent.metadata.generation,
                now,
            );
            if let Some(error) = &look.error {
                warn!(tradingagent = %key, %error, "trading look failed");
            }
            events.extend(trading::trading_events(previous_trading, &trading, look));
            status.trading = Some(trading);
            conditions::set_condition(&mut status.conditions, condition);
        }
        // Paused, or looked at less than `MIN_LOOK_INTERVAL` ago: the last look stays.
        (Some(_), None) => {}
        (None, _) => {
            status.trading = None;
            status
                .conditions
                .retain(|c| c.type_ != conditions::types::TRADING);
        }
    }
    let verification_ends = status::verification_deadline(seen, &status);
    events.extend(events::status_events(agent.status.as_ref(), &status));
    let events = events::fold_into_digest_event(events);
    // 7. report
    report::write_status(&ctx, &agent, &ns, status).await?;
    let status_at = started.elapsed();
    report::publish(&ctx, &agent, events);
    debug!(
        tradingagent = %key,
        secret_ms = dereferenced_at.as_millis() as u64,
        resolve_ms = (resolved_at - dereferenced_at).as_millis() as u64,
        apply_ms = (applied_at - resolved_at).as_millis() as u64,
        status_ms = (status_at - applied_at).as_millis() as u64,
        "reconcile stages"
    );

    if let Some(error) = blocked {
        // Reported; retry with back-off until the Secret appears or the spec is fixed.
        return Err(error);
    }
    ctx.backoff.reset(&key);
    ctx.services
        .metrics
        .objects_in_backoff
        .set(ctx.backoff.len() as i64);
    let mut requeue = freshness::requeue_after(&agent.spec, failed_resolutions);
    if let Some(stale_in) =
        answered_at.and_then(|at| freshness::until_stale(&agent.spec, at, Instant::now()))
    {
        requeue = requeue.min(stale_in);
    }
    if let Some(until) = verification_ends {
        // Notice the window's end promptly (a second after it, timestamps are whole seconds).
        let left = Duration::try_from(until.duration_since(now)).unwrap_or(Duration::ZERO);
        requeue = requeue.min(left + Duration::from_secs(1));
    }
    if decision.fault.is_some() {
        requeue = requeue.min(rollback::ENVIRONMENT_RETRY);
    }
    if agent.spec.trading.is_some() {
        // Drift (a dashboard button, a restored database) is corrected within this.
        requeue = requeue.min(trading::RESYNC);
    }
    Ok(Action::requeue(requeue))
}
