//! Stage 4, apply (talks to the API server): server-side apply of the desired objects with one
//! field manager, skipping children the cache already shows applied, or still shows as they were
//! before our own apply of the same object ([`super::applied`]), and
//! removing a PodDisruptionBudget that is no longer wanted.

use std::time::Instant;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::Context;
use super::applied::{self, OwnApplies};
use super::build::{DesiredObjects, FIELD_MANAGER, api_service_name, deployment_name};
use super::controller::Stores;
use super::events::{EventSpec, change_event, fold_child_events};
use crate::error::Result;
use crate::resource::{Role, TradingAgent};

/// Our recent applies, per kind of child ([`OwnApplies`]).
#[derive(Debug, Default)]
pub struct RecentApplies {
    deployments: OwnApplies<Deployment>,
    services: OwnApplies<Service>,
    pod_disruption_budgets: OwnApplies<PodDisruptionBudget>,
    network_policies: OwnApplies<NetworkPolicy>,
}

/// The Deployments as cached, when nothing is applied (paused or blocked).
pub(super) fn cached_deployments(
    stores: &Stores,
    ns: &str,
    name: &str,
) -> Vec<(Role, Option<Deployment>)> {
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

/// Stage 4: server-side apply every desired object that the cache does not already show as
/// applied ([`applied::up_to_date`]), all at once; remove a PodDisruptionBudget that is no longer
/// wanted. Returns the Deployments as the API server returned them (or as cached, when unchanged).
pub(super) async fn apply(
    ctx: &Context,
    agent: &TradingAgent,
    ns: &str,
    objects: DesiredObjects,
    events: &mut Vec<EventSpec>,
) -> Result<Vec<(Role, Option<Deployment>)>> {
    let recent = &ctx.recent_applies;
    let (roles, deployments): (Vec<Role>, Vec<Deployment>) =
        objects.deployments.into_iter().unzip();
    let deployments = futures::future::try_join_all(
        deployments
            .into_iter()
            .map(|d| apply_one(ctx, ns, &ctx.stores.deployments, &recent.deployments, d)),
    );
    let service = apply_one(
        ctx,
        ns,
        &ctx.stores.services,
        &recent.services,
        objects.service,
    );
    let pdb_name = api_service_name(&agent.name_any());
    let pdb = async {
        match objects.pod_disruption_budget {
            Some(pdb) => Ok(apply_one(
                ctx,
                ns,
                &ctx.stores.pod_disruption_budgets,
                &recent.pod_disruption_budgets,
                pdb,
            )
            .await?
            .1),
            None => delete_unwanted_pdb(ctx, agent, ns, &pdb_name).await,
        }
    };
    let network_policies = async {
        if objects.network_policies.is_empty() {
            return delete_unwanted_network_policies(ctx, agent, ns).await;
        }
        let applied =
            futures::future::try_join_all(objects.network_policies.into_iter().map(|(_, p)| {
                apply_one(
                    ctx,
                    ns,
                    &ctx.stores.network_policies,
                    &recent.network_policies,
                    p,
                )
            }))
            .await?;
        Ok(applied.into_iter().filter_map(|(_, event)| event).collect())
    };
    let (deployments, (_, service_event), pdb_event, policy_events) =
        futures::future::try_join4(deployments, service, pdb, network_policies).await?;

    let mut applied = Vec::new();
    let mut child_events = Vec::new();
    for (role, (deployment, event)) in roles.into_iter().zip(deployments) {
        child_events.extend(event);
        applied.push((role, Some(deployment)));
    }
    child_events.extend(service_event);
    child_events.extend(pdb_event);
    child_events.extend(policy_events);
    events.extend(fold_child_events(child_events));
    Ok(applied)
}

/// Server-side apply one object unless the cache shows it applied already, or still shows it as it
/// was before our own last apply of the same object. Returns the object as the API server returned
/// it (or as cached), and a Created or Updated event when its spec changed.
async fn apply_one<K>(
    ctx: &Context,
    ns: &str,
    store: &Store<K>,
    own: &OwnApplies<K>,
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
        ctx.services.metrics.applies_skipped.inc();
        return Ok((cached.clone(), None));
    }
    if let Some(answered) = own.behind(&desired, cached.as_deref(), Instant::now()) {
        ctx.services.metrics.applies_skipped.inc();
        return Ok((answered, None));
    }
    let api: Api<K> = Api::namespaced(ctx.client.clone(), ns);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let after = api.patch(&name, &params, &Patch::Apply(&desired)).await?;
    own.record(&desired, cached.as_deref(), &after, Instant::now());
    ctx.services.metrics.applies.inc();
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

/// Delete the NetworkPolicies this TradingAgent owns, now that `spec.networkPolicy.enabled` is off.
async fn delete_unwanted_network_policies(
    ctx: &Context,
    agent: &TradingAgent,
    ns: &str,
) -> Result<Vec<EventSpec>> {
    let mut events = Vec::new();
    let api: Api<NetworkPolicy> = Api::namespaced(ctx.client.clone(), ns);
    for role in Role::ALL {
        let name = deployment_name(&agent.name_any(), role);
        let cached = ctx
            .stores
            .network_policies
            .get(&ObjectRef::new(&name).within(ns));
        let owned = cached.is_some_and(|policy| {
            policy
                .owner_references()
                .iter()
                .any(|o| Some(&o.uid) == agent.metadata.uid.as_ref())
        });
        if !owned {
            continue;
        }
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => events.push(EventSpec::normal(
                "Deleted",
                format!("NetworkPolicy {name}: spec.networkPolicy.enabled is off"),
                "Delete",
            )),
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(events)
}
