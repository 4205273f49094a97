//! Stage 4, build (pure): functions from a TradingAgent (and the image it is pinned to) to the
//! Kubernetes objects it should own. No I/O here, so every rule is unit-tested without a cluster.
//!
//! Per role: a Deployment `<name>-<role>` running the workload binary with the role as its
//! argument. For the api: a Service `<name>-api`, and a PodDisruptionBudget when it has more than
//! one replica.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};

use crate::digest::reference::PinnedImage;
use crate::error::{Error, Result};
use crate::reconcile::applied;

mod deployment;
mod network_policy;
mod pdb;
mod service;

use crate::resource::{Role, TradingAgent};
pub use deployment::desired_deployment;
pub use network_policy::desired_network_policies;
pub use pdb::desired_pod_disruption_budget;
pub use service::desired_service;

/// The field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "trading-agent-operator";
/// `app.kubernetes.io/name` of every object the operator makes.
pub const APP_NAME: &str = "trading-agent";
/// `app.kubernetes.io/managed-by`; the watches select on it.
pub const MANAGED_BY: &str = "trading-agent-operator";
/// Label selector matching everything the operator manages.
pub const MANAGED_BY_SELECTOR: &str = "app.kubernetes.io/managed-by=trading-agent-operator";

/// Name of the container port (and the Service's target port) every role serves HTTP on.
pub const HTTP_PORT_NAME: &str = "http";
/// The workload's liveness endpoint (also used for start-up).
pub const HEALTH_PATH: &str = "/healthz";
/// The workload's readiness endpoint (fails while the database is unusable).
pub const READY_PATH: &str = "/readyz";
/// Non-root user and group the pods run as (distroless `nonroot`).
pub const RUN_AS_USER: i64 = 65532;
/// Size limit of the writable `/tmp` emptyDir (the root filesystem is read-only).
pub const TMP_SIZE_LIMIT: &str = "64Mi";

/// Name of a role's Deployment: `<name>-<role>`.
pub fn deployment_name(agent_name: &str, role: Role) -> String {
    format!("{agent_name}-{role}")
}

/// Name of the api Service and PodDisruptionBudget: `<name>-api`.
pub fn api_service_name(agent_name: &str) -> String {
    deployment_name(agent_name, Role::Api)
}

/// The labels selecting one role's pods (the Deployment selector, which is immutable).
pub fn selector_labels(agent_name: &str, role: Role) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), APP_NAME.to_owned()),
        (
            "app.kubernetes.io/instance".to_owned(),
            agent_name.to_owned(),
        ),
        (
            "app.kubernetes.io/component".to_owned(),
            role.as_str().to_owned(),
        ),
    ])
}

/// The labels of every object made for one role: the selector labels plus `managed-by`.
pub fn labels(agent_name: &str, role: Role) -> BTreeMap<String, String> {
    let mut labels = selector_labels(agent_name, role);
    labels.insert(
        "app.kubernetes.io/managed-by".to_owned(),
        MANAGED_BY.to_owned(),
    );
    labels
}

/// Everything a TradingAgent should own right now.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredObjects {
    /// One Deployment per role, in [`Role::ALL`] order.
    pub deployments: Vec<(Role, Deployment)>,
    /// The api Service.
    pub service: Service,
    /// The api PodDisruptionBudget, when the api has more than one replica.
    pub pod_disruption_budget: Option<PodDisruptionBudget>,
    /// One NetworkPolicy per role, when `spec.networkPolicy.enabled`.
    pub network_policies: Vec<(Role, k8s_openapi::api::networking::v1::NetworkPolicy)>,
}

/// Build every object for `agent` pinned to `image`, each stamped with its fingerprint
/// ([`applied::stamp`]).
pub fn desired_objects(agent: &TradingAgent, image: &PinnedImage) -> Result<DesiredObjects> {
    let deployments = Role::ALL
        .into_iter()
        .map(|role| {
            let mut deployment = desired_deployment(agent, role, image)?;
            applied::stamp(&mut deployment);
            Ok((role, deployment))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut service = desired_service(agent)?;
    applied::stamp(&mut service);
    let mut pod_disruption_budget = desired_pod_disruption_budget(agent)?;
    if let Some(pdb) = pod_disruption_budget.as_mut() {
        applied::stamp(pdb);
    }
    let mut network_policies = desired_network_policies(agent)?;
    for (_, policy) in &mut network_policies {
        applied::stamp(policy);
    }
    Ok(DesiredObjects {
        deployments,
        service,
        pod_disruption_budget,
        network_policies,
    })
}

fn object_meta(agent: &TradingAgent, name: String, role: Role) -> Result<ObjectMeta> {
    Ok(ObjectMeta {
        name: Some(name),
        namespace: Some(
            agent
                .namespace()
                .ok_or(Error::MissingObjectKey("metadata.namespace"))?,
        ),
        labels: Some(labels(&agent.name_any(), role)),
        owner_references: Some(vec![owner_reference(agent)?]),
        ..ObjectMeta::default()
    })
}

fn owner_reference(agent: &TradingAgent) -> Result<OwnerReference> {
    agent
        .controller_owner_ref(&())
        .ok_or(Error::MissingObjectKey("metadata.uid"))
}

#[cfg(test)]
mod fixtures {
    use super::*;
    use crate::digest::reference::{Digest, ImageReference};
    use crate::resource::TradingAgentSpec;
    use k8s_openapi::api::core::v1::{Container, EnvVar, PodSpec};

    pub(super) const DIGEST: &str =
        "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    pub(super) fn agent() -> TradingAgent {
        let spec: TradingAgentSpec = serde_json::from_value(serde_json::json!({
            "image": format!("registry.example.com/acme/trading-agent:stable@{DIGEST}"),
            "database": {"secretRef": {"name": "desk-db", "key": "url"}},
        }))
        .unwrap();
        let mut agent = TradingAgent::new("alpha", spec);
        agent.metadata.namespace = Some("desk".into());
        agent.metadata.uid = Some("uid-1".into());
        agent
    }

    pub(super) fn pinned(agent: &TradingAgent) -> PinnedImage {
        ImageReference::parse(&agent.spec.image)
            .unwrap()
            .pinned_to(Digest::parse(DIGEST).unwrap())
    }

    pub(super) fn deployment(agent: &TradingAgent, role: Role) -> Deployment {
        desired_deployment(agent, role, &pinned(agent)).unwrap()
    }

    pub(super) fn container(d: &Deployment) -> &Container {
        &d.spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
    }

    pub(super) fn pod_spec(d: &Deployment) -> &PodSpec {
        d.spec.as_ref().unwrap().template.spec.as_ref().unwrap()
    }

    pub(super) fn env<'a>(c: &'a Container, name: &str) -> Option<&'a EnvVar> {
        c.env.as_ref().unwrap().iter().find(|e| e.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::build::fixtures::*;
    use crate::resource::{ApiSpec, Database, SecretKeyReference, TradingAgentSpec};

    #[test]
    fn spec_defaults_are_applied_when_deserializing() {
        let a = agent();
        assert_eq!(a.spec.api, ApiSpec::default());
        assert_eq!(a.spec.api.port, 8000);
        assert_eq!(a.spec.bot.port, 8080);
        assert_eq!(a.spec.strategy.replicas, 1);
        assert_eq!(a.spec.image_update.interval, "5m");
        assert_eq!(a.spec.progress_deadline_seconds, 120);
        assert!(!a.spec.paused);
    }

    #[test]
    fn one_deployment_per_role_named_after_the_agent() {
        let a = agent();
        let objects = desired_objects(&a, &pinned(&a)).unwrap();
        let names: Vec<_> = objects
            .deployments
            .iter()
            .map(|(_, d)| d.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["alpha-api", "alpha-bot", "alpha-strategy"]);
        for (_, d) in &objects.deployments {
            assert_eq!(d.metadata.namespace.as_deref(), Some("desk"));
        }
        assert_eq!(objects.service.metadata.name.as_deref(), Some("alpha-api"));
        assert_eq!(objects.pod_disruption_budget, None);
    }

    #[test]
    fn labels_identify_name_instance_component_and_manager() {
        let a = agent();
        for role in Role::ALL {
            let d = deployment(&a, role);
            let expected = BTreeMap::from([
                (
                    "app.kubernetes.io/name".to_owned(),
                    "trading-agent".to_owned(),
                ),
                ("app.kubernetes.io/instance".to_owned(), "alpha".to_owned()),
                ("app.kubernetes.io/component".to_owned(), role.to_string()),
                (
                    "app.kubernetes.io/managed-by".to_owned(),
                    "trading-agent-operator".to_owned(),
                ),
            ]);
            assert_eq!(d.metadata.labels.as_ref(), Some(&expected));
            let template = d.spec.as_ref().unwrap().template.metadata.as_ref().unwrap();
            assert_eq!(template.labels.as_ref(), Some(&expected));
            let selector = d
                .spec
                .as_ref()
                .unwrap()
                .selector
                .match_labels
                .as_ref()
                .unwrap();
            assert!(!selector.contains_key("app.kubernetes.io/managed-by"));
            assert_eq!(
                selector.get("app.kubernetes.io/component").unwrap(),
                role.as_str()
            );
            assert!(selector.iter().all(|(k, v)| expected.get(k) == Some(v)));
        }
    }

    #[test]
    fn children_have_a_controller_owner_reference() {
        let a = agent();
        let objects = desired_objects(&a, &pinned(&a)).unwrap();
        let mut metas: Vec<&ObjectMeta> = objects
            .deployments
            .iter()
            .map(|(_, d)| &d.metadata)
            .collect();
        metas.push(&objects.service.metadata);
        for meta in metas {
            let owners = meta.owner_references.as_ref().unwrap();
            assert_eq!(owners.len(), 1);
            assert_eq!(owners[0].api_version, "tradingagents.dev/v1alpha1");
            assert_eq!(owners[0].kind, "TradingAgent");
            assert_eq!(owners[0].name, "alpha");
            assert_eq!(owners[0].uid, "uid-1");
            assert_eq!(owners[0].controller, Some(true));
        }
    }

    #[test]
    fn missing_uid_or_namespace_is_an_error_not_a_panic() {
        let mut a = agent();
        a.metadata.uid = None;
        assert!(matches!(
            desired_deployment(&a, Role::Api, &pinned(&a)),
            Err(Error::MissingObjectKey("metadata.uid"))
        ));
        let mut a = agent();
        a.metadata.namespace = None;
        assert!(matches!(
            desired_service(&a),
            Err(Error::MissingObjectKey("metadata.namespace"))
        ));
    }

    #[test]
    fn building_is_deterministic() {
        let a = agent();
        assert_eq!(
            desired_objects(&a, &pinned(&a)).unwrap(),
            desired_objects(&a, &pinned(&a)).unwrap()
        );
    }

    #[test]
    fn objects_serialize_with_api_version_and_kind_for_server_side_apply() {
        let a = agent();
        let value = serde_json::to_value(deployment(&a, Role::Api)).unwrap();
        assert_eq!(value["apiVersion"], "apps/v1");
        assert_eq!(value["kind"], "Deployment");
        assert!(value.get("status").is_none());
        let value = serde_json::to_value(
            desired_pod_disruption_budget(&{
                let mut a = agent();
                a.spec.api.replicas = 3;
                a
            })
            .unwrap()
            .unwrap(),
        )
        .unwrap();
        assert_eq!(value["apiVersion"], "policy/v1");
    }

    #[test]
    fn database_secret_ref_is_required() {
        let err = serde_json::from_value::<TradingAgentSpec>(serde_json::json!({"image": "a"}));
        assert!(err.is_err());
        let spec = TradingAgentSpec {
            database: Database {
                secret_ref: SecretKeyReference {
                    name: "x".into(),
                    key: "y".into(),
                },
            },
            ..agent().spec
        };
        assert_eq!(spec.database.secret_ref.key, "y");
    }
}
