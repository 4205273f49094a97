//! The pods of the managed Deployments, watched for the image they really run and for how they
//! fare: `status.components.<role>.digest` is the digest their containers report as `imageID`
//! (what the container runtime pulled), not the digest the pod template asks for; their readiness,
//! restarts and scheduling are the evidence the verification window and the blame decision read
//! ([`super::verify`]).

use std::hash::{DefaultHasher, Hash, Hasher};

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, PodStatus};
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::resource::{Role, TradingAgent};

const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
const COMPONENT_LABEL: &str = "app.kubernetes.io/component";

/// Keep of a pod only what the status and the verification need: labels, whether it is
/// terminating, its containers' names and images, its conditions (readiness, scheduling) and its
/// containers' statuses (image IDs, restarts).
pub fn strip_pod(pod: &mut Pod) {
    pod.managed_fields_mut().clear();
    pod.metadata.annotations = None;
    pod.spec = pod.spec.take().map(|spec| PodSpec {
        containers: spec
            .containers
            .into_iter()
            .map(|c| Container {
                name: c.name,
                image: c.image,
                ..Container::default()
            })
            .collect(),
        ..PodSpec::default()
    });
    if let Some(status) = pod.status.as_mut() {
        *status = PodStatus {
            conditions: status.conditions.take(),
            container_statuses: status.container_statuses.take(),
            ..PodStatus::default()
        };
    }
}

/// The `imageID` of a pod's (only) container once it has started: the image the runtime pulled.
fn pod_image_id(pod: &Pod) -> Option<&str> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    statuses
        .first()
        .map(|c| c.image_id.as_str())
        .filter(|id| !id.is_empty())
}

/// What about a pod matters to its TradingAgent: a pod reconciles its TradingAgent only when the
/// image it runs, whether it is terminating, its readiness or scheduling, or its containers'
/// restarts change, not at every status update.
pub fn pod_state(pod: &Pod) -> Option<u64> {
    let mut hasher = DefaultHasher::new();
    pod.metadata.deletion_timestamp.is_some().hash(&mut hasher);
    pod_image_id(pod).hash(&mut hasher);
    if let Some(status) = pod.status.as_ref() {
        for c in status.conditions.iter().flatten() {
            if c.type_ == "Ready" || c.type_ == "PodScheduled" {
                (&c.type_, &c.status, &c.reason).hash(&mut hasher);
            }
        }
        for c in status.container_statuses.iter().flatten() {
            c.restart_count.hash(&mut hasher);
        }
    }
    Some(hasher.finish())
}

/// Every pod of one TradingAgent (all roles, all digests, terminating ones included: the
/// verification skips those itself).
pub fn agent_pods(pods: &Store<Pod>, ns: &str, name: &str) -> Vec<Pod> {
    pods.state()
        .iter()
        .filter(|pod| {
            pod.metadata.namespace.as_deref() == Some(ns)
                && pod.labels().get(INSTANCE_LABEL).map(String::as_str) == Some(name)
        })
        .map(|pod| Pod::clone(pod))
        .collect()
}

/// Whether one of these pods of `role` is Ready and not terminating: the role's Service then
/// routes somewhere.
pub fn any_ready(pods: &[Pod], role: Role) -> bool {
    pods.iter().any(|pod| {
        pod.metadata.deletion_timestamp.is_none()
            && pod.labels().get(COMPONENT_LABEL).map(String::as_str) == Some(role.as_str())
            && pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    })
}

/// The TradingAgent a pod belongs to (pods carry the template's labels).
pub fn agent_of_pod(pod: &Pod) -> Option<ObjectRef<TradingAgent>> {
    let name = pod.labels().get(INSTANCE_LABEL)?;
    Some(ObjectRef::new(name).within(&pod.namespace()?))
}

/// Per role, the `imageID` of every started, non-terminating pod of one TradingAgent.
pub fn pod_images(pods: &Store<Pod>, ns: &str, name: &str) -> Vec<(Role, Vec<String>)> {
    let mut images: Vec<(Role, Vec<String>)> =
        Role::ALL.into_iter().map(|r| (r, Vec::new())).collect();
    for pod in pods.state() {
        let labels = pod.labels();
        if pod.metadata.namespace.as_deref() != Some(ns)
            || labels.get(INSTANCE_LABEL).map(String::as_str) != Some(name)
            || pod.metadata.deletion_timestamp.is_some()
        {
            continue;
        }
        let (Some(id), Some(component)) = (pod_image_id(&pod), labels.get(COMPONENT_LABEL)) else {
            continue;
        };
        if let Some((_, ids)) = images.iter_mut().find(|(r, _)| r.as_str() == component) {
            ids.push(id.to_owned());
        }
    }
    images
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ready: &str, restarts: i32) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "desk", "annotations": {"a": "b"},
                         "labels": {"app.kubernetes.io/instance": "alpha"}},
            "spec": {"nodeName": "n", "containers": [{"name": "app", "image": "r/a@sha256:1",
                     "args": ["bot"]}]},
            "status": {"phase": "Running", "podIP": "10.0.0.1",
                       "conditions": [{"type": "Ready", "status": ready},
                                      {"type": "Initialized", "status": "True"}],
                       "containerStatuses": [{"name": "app", "image": "r/a", "imageID": "r/a@sha256:1",
                                              "ready": true, "restartCount": restarts}]},
        }))
        .unwrap()
    }

    #[test]
    fn stripped_pods_keep_the_evidence_and_changes_to_it_reconcile() {
        let mut p = pod("True", 0);
        strip_pod(&mut p);
        assert_eq!(p.metadata.annotations, None);
        let spec = p.spec.as_ref().unwrap();
        assert_eq!(spec.node_name, None);
        assert_eq!(spec.containers[0].image.as_deref(), Some("r/a@sha256:1"));
        assert_eq!(spec.containers[0].args, None);
        let status = p.status.as_ref().unwrap();
        assert_eq!(
            (status.phase.as_ref(), status.pod_ip.as_ref()),
            (None, None)
        );
        assert_eq!(status.conditions.as_ref().unwrap().len(), 2);
        assert_eq!(
            status.container_statuses.as_ref().unwrap()[0].restart_count,
            0
        );

        let state = |p: &Pod| pod_state(p).unwrap();
        assert_ne!(state(&pod("True", 0)), state(&pod("False", 0)), "readiness");
        assert_ne!(state(&pod("True", 0)), state(&pod("True", 1)), "restarts");
        let mut unrelated = pod("True", 0);
        unrelated.status.as_mut().unwrap().pod_ip = Some("10.0.0.2".into());
        assert_eq!(state(&pod("True", 0)), state(&unrelated));
        assert_eq!(
            agent_of_pod(&p),
            Some(ObjectRef::new("alpha").within("desk"))
        );
    }

    #[test]
    fn a_role_is_ready_only_with_a_ready_pod_of_that_role_that_is_not_terminating() {
        let of_role = |ready: &str, role: &str| {
            let mut p = pod(ready, 0);
            p.labels_mut()
                .insert(COMPONENT_LABEL.to_owned(), role.to_owned());
            p
        };
        assert!(!any_ready(&[], Role::Api));
        assert!(!any_ready(&[of_role("False", "api")], Role::Api));
        assert!(!any_ready(&[of_role("True", "bot")], Role::Api));
        assert!(any_ready(
            &[of_role("False", "api"), of_role("True", "api")],
            Role::Api
        ));
        let mut terminating = of_role("True", "api");
        terminating.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ));
        assert!(!any_ready(&[terminating], Role::Api));
    }
}
