//! Where each Deployment's rollout stands, judged from the status the Deployment controller
//! reports. Pure; both the decide stage ([`super::rollback`]) and the status stage read it.

use k8s_openapi::api::apps::v1::Deployment;

use crate::digest::reference::digest_of;
use crate::resource::ComponentStatus;
use crate::resource::conditions::reasons;

/// Where one Deployment's rollout stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RolloutState {
    /// The Deployment does not exist.
    Missing,
    /// Still rolling out; the string says how far.
    Progressing(String),
    /// Every desired pod is updated and ready.
    Available,
    /// The rollout failed (`reason` is a Degraded reason).
    Failed {
        /// Degraded reason.
        reason: &'static str,
        /// The Deployment controller's message.
        message: String,
    },
}

/// Judge one Deployment from its status as the Deployment controller reports it.
pub fn rollout_state(deployment: Option<&Deployment>) -> RolloutState {
    let Some(d) = deployment else {
        return RolloutState::Missing;
    };
    let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let status = d.status.clone().unwrap_or_default();
    let conditions = status.conditions.unwrap_or_default();
    // Conditions of an older generation (e.g. the deadline a rolled-back template exceeded) say
    // nothing about the current template.
    if status.observed_generation.unwrap_or(0) < d.metadata.generation.unwrap_or(0) {
        return RolloutState::Progressing("new spec not yet observed".to_owned());
    }
    if let Some(c) = conditions.iter().find(|c| {
        c.type_ == "Progressing"
            && c.status == "False"
            && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    }) {
        return RolloutState::Failed {
            reason: reasons::PROGRESS_DEADLINE_EXCEEDED,
            message: c.message.clone().unwrap_or_default(),
        };
    }
    if let Some(c) = conditions
        .iter()
        .find(|c| c.type_ == "ReplicaFailure" && c.status == "True")
    {
        return RolloutState::Failed {
            reason: reasons::REPLICA_FAILURE,
            message: c.message.clone().unwrap_or_default(),
        };
    }
    let updated = status.updated_replicas.unwrap_or(0);
    let ready = status.ready_replicas.unwrap_or(0);
    let total = status.replicas.unwrap_or(0);
    if updated < desired {
        return RolloutState::Progressing(format!("{updated}/{desired} updated"));
    }
    if total > updated {
        return RolloutState::Progressing(format!("{} old pods terminating", total - updated));
    }
    if ready < desired {
        return RolloutState::Progressing(format!("{ready}/{desired} ready"));
    }
    RolloutState::Available
}

/// A role's entry in `status.components`. `pod_images` are the `imageID`s its running pods report.
pub fn component_status(deployment: &Deployment, pod_images: &[String]) -> ComponentStatus {
    let status = deployment.status.clone().unwrap_or_default();
    let replicas = deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1);
    let template_image = deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.containers.first())
        .and_then(|c| c.image.as_deref());
    ComponentStatus {
        replicas,
        ready_replicas: status.ready_replicas.unwrap_or(0),
        updated_replicas: status.updated_replicas.unwrap_or(0),
        digest: if replicas == 0 {
            // No pod to ask: the digest the next pod would run.
            template_image.and_then(digest_of).map(|d| d.to_string())
        } else {
            running_digest(pod_images)
        },
    }
}

/// The digest a role's pods run: the one all of their `imageID`s carry. `None` before any has
/// started, and while they differ (a rollout in progress): "which code is running?" has no single
/// answer then.
pub fn running_digest(pod_images: &[String]) -> Option<String> {
    let mut digests = pod_images.iter().map(|id| digest_of(id));
    let first = digests.next()??;
    digests
        .all(|d| d.as_ref() == Some(&first))
        .then(|| first.to_string())
}
