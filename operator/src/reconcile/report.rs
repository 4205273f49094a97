//! Stage 6, report (talks to the API server): write the status computed by [`super::status`] when
//! it changed, and publish the events of [`super::events`].

use std::time::Instant;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use tracing::warn;

use super::Context;
use super::build::FIELD_MANAGER;
use super::events::{EventSpec, truncate};
use crate::error::Result;
use crate::resource::{TradingAgent, TradingAgentStatus};

/// Server-side apply of `status` on `object`'s status subresource, as the operator's field manager:
/// how every controller of this crate writes its status.
pub(crate) async fn apply_status<K>(
    client: &kube::Client,
    object: &K,
    ns: &str,
    status: &impl serde::Serialize,
) -> Result<()>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        &object.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

/// Stage 5: write the status only when it differs from what the API server has.
pub(super) async fn write_status(
    ctx: &Context,
    agent: &TradingAgent,
    ns: &str,
    status: TradingAgentStatus,
) -> Result<()> {
    if agent.status.as_ref() == Some(&status) {
        return Ok(());
    }
    apply_status(&ctx.client, agent, ns, &status).await?;
    ctx.services.metrics.status_updates.inc();
    ctx.written
        .record(ObjectRef::from_obj(agent), status, Instant::now());
    Ok(())
}

/// How many reconciliations' events are published at once ([`publish`]).
pub const EVENT_BATCHES_IN_FLIGHT: usize = 8;

/// Stage 7, the events: published by a task of their own, so the reconciliation's concurrency
/// slot is free as soon as the status is written, and at most [`EVENT_BATCHES_IN_FLIGHT`]
/// reconciliations' events at once. A re-pin reconciles every agent following the tag at once:
/// waiting for the events held each slot for one more API round trip than the rollout needs, and
/// a thousand events posted in the same seconds as the Deployments slowed the API server down for
/// both. Events are best effort (the status carries the same information); this runs only after a
/// successful status write, so an unreachable API server does not pile tasks up.
pub(super) fn publish(ctx: &Context, agent: &TradingAgent, events: Vec<EventSpec>) {
    if events.is_empty() {
        return;
    }
    let publishers = ctx.event_publishers.clone();
    let reference = agent.object_ref(&());
    // A fresh recorder: kube's recorder folds events of the same reason into a series that keeps
    // the first note, and these notes (digests, messages) matter. Events are only emitted on
    // transitions, so there is nothing to fold.
    let recorder = Recorder::new(ctx.client.clone(), ctx.services.reporter.clone());
    tokio::spawn(async move {
        // Never closed, so this waits for a turn and never fails.
        let _turn = publishers.acquire_owned().await;
        // All at once: a reconciliation that creates the children has several to tell.
        let publishing = events.into_iter().map(|event| {
            let recorder = &recorder;
            let reference = &reference;
            async move {
                let result = recorder
                    .publish(
                        &kube_event(
                            event.warning,
                            &event.reason,
                            truncate(&event.note, 1000),
                            event.action,
                            event.related.clone(),
                        ),
                        reference,
                    )
                    .await;
                if let Err(error) = result {
                    warn!(%error, reason = %event.reason, "could not publish event");
                }
            }
        });
        futures::future::join_all(publishing).await;
    });
}

/// The Kubernetes event for one of ours, `note` already cut to the API's limit.
pub(crate) fn kube_event(
    warning: bool,
    reason: &str,
    note: String,
    action: &str,
    secondary: Option<ObjectReference>,
) -> Event {
    Event {
        type_: if warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: reason.to_owned(),
        note: Some(note),
        action: action.to_owned(),
        secondary,
    }
}
