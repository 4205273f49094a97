//! The status stage's pure core: from what the reconcile found and did, compute the next
//! `TradingAgentStatus`. Comparing it with the current one decides whether to write at all, so
//! conditions keep their `lastTransitionTime` unless their status really changes.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

pub use crate::digest::outcome::{Blocked, ImageOutcome};
use crate::digest::reference::{ImageReference, digest_of};
pub use crate::resource::conditions::{reasons, types};
use crate::resource::{
    ComponentStatus, ComponentsStatus, ImageStatus, Role, RolloutOutcome, RolloutRecord,
    TradingAgent, TradingAgentStatus,
};

/// How many rollouts `status.history` keeps.
pub const HISTORY_LIMIT: usize = 10;

/// How many rejected digests `status.image.rejectedDigests` keeps.
pub const REJECTED_LIMIT: usize = 10;

/// A rollback decided in this reconcile: the failed digest is rejected, the last healthy one
/// pinned again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rollback {
    /// The digest whose rollout failed.
    pub rejected: String,
    /// The last healthy digest, pinned again.
    pub restored: String,
    /// What happened, naming both digests (the `Degraded` message and the event note).
    pub message: String,
}

/// Everything the status is computed from.
#[derive(Clone, Debug)]
pub struct Observation<'a> {
    /// The resource as reconciled.
    pub agent: &'a TradingAgent,
    /// What became of `spec.image`.
    pub image: &'a ImageOutcome,
    /// Whether the pinned image was applied to the Deployments in this reconcile.
    pub applied: bool,
    /// A problem with a referenced object (the database Secret) that blocked applying.
    pub blocked: Option<&'a Blocked>,
    /// The Deployments as the API server returned them (after applying, when applied).
    pub deployments: &'a [(Role, Option<Deployment>)],
    /// A rollback applied in this reconcile.
    pub rollback: Option<&'a Rollback>,
    /// The current time.
    pub now: Timestamp,
}

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

/// A role's entry in `status.components`.
pub fn component_status(deployment: &Deployment) -> ComponentStatus {
    let status = deployment.status.clone().unwrap_or_default();
    let image = deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.containers.first())
        .and_then(|c| c.image.as_deref());
    ComponentStatus {
        replicas: deployment
            .spec
            .as_ref()
            .and_then(|s| s.replicas)
            .unwrap_or(1),
        ready_replicas: status.ready_replicas.unwrap_or(0),
        updated_replicas: status.updated_replicas.unwrap_or(0),
        digest: image.and_then(digest_of).map(|d| d.to_string()),
    }
}

/// Build a condition stamped with `generation` and `now`.
pub fn condition(
    type_: &str,
    status: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    Condition {
        type_: type_.to_owned(),
        status: if status { "True" } else { "False" }.to_owned(),
        reason: reason.to_owned(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time: Time(now),
    }
}

/// Insert or replace a condition of the same type, keeping the old `lastTransitionTime` when
/// the status did not change (the Kubernetes API conventions).
pub fn set_condition(conditions: &mut Vec<Condition>, mut new: Condition) {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(existing) => {
            if existing.status == new.status {
                new.last_transition_time = existing.last_transition_time.clone();
            }
            *existing = new;
        }
        None => conditions.push(new),
    }
}

/// The condition of a type, if present.
pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether `status` says the resource is Ready.
pub fn is_ready(status: Option<&TradingAgentStatus>) -> bool {
    status
        .and_then(|s| find_condition(&s.conditions, types::READY))
        .is_some_and(|c| c.status == "True")
}

/// Compute the next status.
pub fn next_status(obs: &Observation<'_>) -> TradingAgentStatus {
    let previous = obs.agent.status.clone().unwrap_or_default();
    let generation = obs.agent.metadata.generation;
    let paused = obs.agent.spec.paused;
    let now = obs.now;

    let states: Vec<(Role, RolloutState)> = obs
        .deployments
        .iter()
        .map(|(role, d)| (*role, rollout_state(d.as_ref())))
        .collect();
    let failed: Vec<String> = states
        .iter()
        .filter_map(|(role, s)| match s {
            RolloutState::Failed { reason, message } => {
                Some(format!("{role}: {reason}: {message}"))
            }
            _ => None,
        })
        .collect();
    let first_failure_reason = states.iter().find_map(|(_, s)| match s {
        RolloutState::Failed { reason, .. } => Some(*reason),
        _ => None,
    });
    let progressing: Vec<String> = states
        .iter()
        .filter_map(|(role, s)| match s {
            RolloutState::Progressing(how) => Some(format!("{role}: {how}")),
            _ => None,
        })
        .collect();
    let missing: Vec<String> = states
        .iter()
        .filter(|(_, s)| *s == RolloutState::Missing)
        .map(|(role, _)| role.to_string())
        .collect();
    let all_available = states.iter().all(|(_, s)| *s == RolloutState::Available);

    let image_blocker = match obs.image {
        ImageOutcome::Unresolved(blocked) => Some(blocked),
        ImageOutcome::Pinned(_) | ImageOutcome::Kept { .. } => None,
    };
    let blocker = obs.blocked.or(image_blocker);

    let mut conditions = previous.conditions.clone();

    // ImageResolved
    let image_condition = match obs.image {
        ImageOutcome::Pinned(pinned) => condition(
            types::IMAGE_RESOLVED,
            true,
            reasons::DIGEST_PINNED,
            format!("{} is pinned to {}", obs.agent.spec.image, pinned.digest()),
            generation,
            now,
        ),
        ImageOutcome::Kept { pinned, problem } => condition(
            types::IMAGE_RESOLVED,
            false,
            problem.reason,
            format!(
                "{}; the workloads stay on {}",
                problem.message,
                pinned.digest()
            ),
            generation,
            now,
        ),
        ImageOutcome::Unresolved(blocked) => condition(
            types::IMAGE_RESOLVED,
            false,
            blocked.reason,
            blocked.message.clone(),
            generation,
            now,
        ),
    };
    set_condition(&mut conditions, image_condition);

    // Ready
    let ready_condition = if let Some(blocked) = blocker {
        condition(
            types::READY,
            false,
            blocked.reason,
            blocked.message.clone(),
            generation,
            now,
        )
    } else if all_available {
        let suffix = if paused {
            " (reconciliation paused)"
        } else {
            ""
        };
        condition(
            types::READY,
            true,
            reasons::ALL_COMPONENTS_READY,
            format!("api, bot and strategy are rolled out and ready{suffix}"),
            generation,
            now,
        )
    } else {
        let mut parts = Vec::new();
        if !missing.is_empty() {
            parts.push(format!("missing: {}", missing.join(", ")));
        }
        parts.extend(failed.iter().cloned());
        parts.extend(progressing.iter().cloned());
        let reason = if paused {
            reasons::PAUSED
        } else {
            first_failure_reason.unwrap_or(reasons::COMPONENTS_NOT_READY)
        };
        condition(
            types::READY,
            false,
            reason,
            parts.join("; "),
            generation,
            now,
        )
    };
    set_condition(&mut conditions, ready_condition);

    // Progressing
    let progressing_condition = if paused {
        condition(
            types::PROGRESSING,
            false,
            reasons::PAUSED,
            "spec.paused is true: status is reported but nothing is changed",
            generation,
            now,
        )
    } else if let Some(blocked) = blocker {
        condition(
            types::PROGRESSING,
            false,
            blocked.reason,
            blocked.message.clone(),
            generation,
            now,
        )
    } else if !progressing.is_empty() || !missing.is_empty() {
        let mut parts = progressing.clone();
        if !missing.is_empty() {
            parts.push(format!("missing: {}", missing.join(", ")));
        }
        condition(
            types::PROGRESSING,
            true,
            reasons::ROLLING_OUT,
            parts.join("; "),
            generation,
            now,
        )
    } else {
        condition(
            types::PROGRESSING,
            false,
            reasons::ROLLOUT_COMPLETE,
            "no rollout in progress",
            generation,
            now,
        )
    };
    set_condition(&mut conditions, progressing_condition);

    // Degraded. After a rollback it stays True until a new digest is rolled out: the tag still
    // points at the rejected digest, which a user needs to know about.
    let moves_forward = obs.applied
        && obs.rollback.is_none()
        && matches!(obs.image, ImageOutcome::Pinned(p)
            if previous.image.as_ref().and_then(|i| i.digest.as_deref()) != Some(p.digest().as_str()));
    let still_rolled_back = !moves_forward
        && previous
            .history
            .last()
            .is_some_and(|r| r.outcome == Some(RolloutOutcome::RolledBack));
    let previous_degraded = find_condition(&previous.conditions, types::DEGRADED)
        .filter(|c| c.status == "True" && c.reason == reasons::ROLLED_BACK);
    let degraded_condition = match (obs.rollback, first_failure_reason) {
        (Some(rollback), _) => condition(
            types::DEGRADED,
            true,
            reasons::ROLLED_BACK,
            rollback.message.clone(),
            generation,
            now,
        ),
        // Sticky over failures too: right after a rollback the Deployments can still report the
        // deadline the rejected template exceeded (Ready reports a real failure either way).
        (None, _) if still_rolled_back => match previous_degraded {
            Some(c) => Condition {
                observed_generation: generation,
                ..c.clone()
            },
            None => {
                let rejected = previous.history.last().map_or("", |r| r.digest.as_str());
                let pinned = previous
                    .image
                    .as_ref()
                    .and_then(|i| i.digest.as_deref())
                    .unwrap_or("");
                condition(
                    types::DEGRADED,
                    true,
                    reasons::ROLLED_BACK,
                    format!(
                        "the rollout of {rejected} failed and was rolled back to {pinned}; {rejected} is rejected until the tag points elsewhere"
                    ),
                    generation,
                    now,
                )
            }
        },
        (None, Some(reason)) => condition(
            types::DEGRADED,
            true,
            reason,
            failed.join("; "),
            generation,
            now,
        ),
        (None, None) => condition(
            types::DEGRADED,
            false,
            reasons::AS_EXPECTED,
            "no failed rollout",
            generation,
            now,
        ),
    };
    set_condition(&mut conditions, degraded_condition);

    // Components
    let mut components = ComponentsStatus::default();
    for (role, deployment) in obs.deployments {
        if let Some(d) = deployment {
            components.set(*role, component_status(d));
        }
    }
    let components = (components != ComponentsStatus::default()).then_some(components);

    // Image and history
    let mut image = previous.image.clone();
    let mut history = previous.history.clone();
    match (obs.image.pinned(), obs.applied) {
        (Some(pinned), true) => {
            let digest = pinned.digest().to_string();
            let mut status = image.unwrap_or_default();
            let moved = status.digest.as_deref() != Some(digest.as_str());
            // A rollback target from another repository would not exist in this one.
            let repository = |image: &str| ImageReference::parse(image).ok().map(|r| r.name());
            if status.last_healthy_digest.is_some()
                && repository(&status.reference) != repository(&obs.agent.spec.image)
            {
                status.last_healthy_digest = None;
            }
            status.reference = obs.agent.spec.image.clone();
            if let Some(rollback) = obs.rollback {
                status.resolved_at = Some(Time(now));
                match history
                    .iter_mut()
                    .rev()
                    .find(|r| r.digest == rollback.rejected && r.outcome.is_none())
                {
                    Some(record) => {
                        record.finished = Some(Time(now));
                        record.outcome = Some(RolloutOutcome::RolledBack);
                    }
                    None => history.push(RolloutRecord {
                        digest: rollback.rejected.clone(),
                        started: Time(now),
                        finished: Some(Time(now)),
                        outcome: Some(RolloutOutcome::RolledBack),
                    }),
                }
                status.rejected_digests.retain(|d| *d != rollback.rejected);
                status.rejected_digests.push(rollback.rejected.clone());
                if status.rejected_digests.len() > REJECTED_LIMIT {
                    let excess = status.rejected_digests.len() - REJECTED_LIMIT;
                    status.rejected_digests.drain(..excess);
                }
            } else if moved {
                status.resolved_at = Some(Time(now));
                history.push(RolloutRecord {
                    digest: digest.clone(),
                    started: Time(now),
                    finished: None,
                    outcome: None,
                });
            }
            status.short_digest = Some(pinned.digest().short());
            status.digest = Some(digest);
            image = Some(status);
        }
        _ => {
            if image.is_none() {
                image = Some(ImageStatus {
                    reference: obs.agent.spec.image.clone(),
                    ..ImageStatus::default()
                });
            }
        }
    }
    let ready_now = blocker.is_none() && all_available;
    if ready_now && let Some(status) = image.as_mut() {
        // Only a digest every running component reports counts as healthy.
        let running_digest = status.digest.clone().filter(|digest| {
            components.as_ref().is_some_and(|c| {
                Role::ALL
                    .iter()
                    .all(|r| c.get(*r).and_then(|s| s.digest.as_ref()) == Some(digest))
            })
        });
        if let Some(digest) = running_digest {
            status.last_healthy_digest = Some(digest.clone());
            if let Some(last) = history.last_mut()
                && last.digest == digest
                && last.outcome.is_none()
            {
                last.finished = Some(Time(now));
                last.outcome = Some(RolloutOutcome::Succeeded);
            }
        }
    }
    if history.len() > HISTORY_LIMIT {
        history.drain(..history.len() - HISTORY_LIMIT);
    }

    TradingAgentStatus {
        observed_generation: generation,
        conditions,
        image,
        components,
        history,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::reference::{Digest, ImageReference};
    use crate::reconcile::build::desired_deployment;
    use crate::resource::TradingAgentSpec;
    use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentStatus};

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
    const D3: &str = "sha256:3333333333333333333333333333333333333333333333333333333333333333";

    fn t(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + seconds).unwrap()
    }

    fn agent(image: &str) -> TradingAgent {
        let spec: TradingAgentSpec = serde_json::from_value(serde_json::json!({
            "image": image,
            "database": {"secretRef": {"name": "desk-db", "key": "url"}},
        }))
        .unwrap();
        let mut a = TradingAgent::new("alpha", spec);
        a.metadata.namespace = Some("desk".into());
        a.metadata.uid = Some("uid".into());
        a.metadata.generation = Some(3);
        a
    }

    fn pinned(digest: &str) -> ImageOutcome {
        ImageOutcome::Pinned(
            ImageReference::parse("registry.example.com/acme/app:stable")
                .unwrap()
                .pinned_to(Digest::parse(digest).unwrap()),
        )
    }

    /// A Deployment as the API server would return it, with the given progress.
    fn deployment(
        a: &TradingAgent,
        role: Role,
        digest: &str,
        ready: i32,
        updated: i32,
    ) -> Deployment {
        let image = pinned(digest).pinned().unwrap().clone();
        let mut d = desired_deployment(a, role, &image).unwrap();
        d.metadata.generation = Some(1);
        d.status = Some(DeploymentStatus {
            observed_generation: Some(1),
            replicas: Some(updated.max(1)),
            updated_replicas: Some(updated),
            ready_replicas: Some(ready),
            available_replicas: Some(ready),
            ..DeploymentStatus::default()
        });
        d
    }

    fn all(a: &TradingAgent, digest: &str, ready: i32) -> Vec<(Role, Option<Deployment>)> {
        Role::ALL
            .into_iter()
            .map(|r| (r, Some(deployment(a, r, digest, ready, 1))))
            .collect()
    }

    fn observe(
        a: &TradingAgent,
        image: &ImageOutcome,
        deployments: &[(Role, Option<Deployment>)],
        now: Timestamp,
    ) -> TradingAgentStatus {
        next_status(&Observation {
            agent: a,
            image,
            applied: image.pinned().is_some() && !a.spec.paused,
            blocked: None,
            deployments,
            rollback: None,
            now,
        })
    }

    fn cond<'a>(s: &'a TradingAgentStatus, type_: &str) -> &'a Condition {
        find_condition(&s.conditions, type_).unwrap()
    }

    #[test]
    fn all_ready_is_ready_with_observed_generation() {
        let a = agent("x");
        let s = observe(&a, &pinned(D1), &all(&a, D1, 1), t(0));
        assert_eq!(s.observed_generation, Some(3));
        let ready = cond(&s, types::READY);
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("True", "AllComponentsReady")
        );
        assert_eq!(ready.observed_generation, Some(3));
        assert_eq!(cond(&s, types::IMAGE_RESOLVED).status, "True");
        assert_eq!(cond(&s, types::PROGRESSING).status, "False");
        assert_eq!(cond(&s, types::DEGRADED).status, "False");
        assert!(is_ready(Some(&s)));
        let image = s.image.as_ref().unwrap();
        assert_eq!(image.digest.as_deref(), Some(D1));
        assert_eq!(image.short_digest.as_deref(), Some("sha256:111111111111"));
        assert_eq!(image.last_healthy_digest.as_deref(), Some(D1));
        let api = s.components.as_ref().unwrap().api.as_ref().unwrap();
        assert_eq!(
            (api.replicas, api.ready_replicas, api.updated_replicas),
            (1, 1, 1)
        );
        assert_eq!(api.digest.as_deref(), Some(D1));
    }

    #[test]
    fn not_ready_until_every_component_is() {
        let a = agent("x");
        let mut ds = all(&a, D1, 1);
        ds[1].1 = Some(deployment(&a, Role::Bot, D1, 0, 1));
        let s = observe(&a, &pinned(D1), &ds, t(0));
        let ready = cond(&s, types::READY);
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "ComponentsNotReady")
        );
        assert!(
            ready.message.contains("bot: 0/1 ready"),
            "{}",
            ready.message
        );
        assert_eq!(cond(&s, types::PROGRESSING).status, "True");
        assert_eq!(s.image.as_ref().unwrap().last_healthy_digest, None);
    }

    #[test]
    fn missing_deployments_are_reported() {
        let a = agent("x");
        let ds: Vec<_> = Role::ALL.into_iter().map(|r| (r, None)).collect();
        let s = observe(&a, &pinned(D1), &ds, t(0));
        assert!(
            cond(&s, types::READY)
                .message
                .contains("missing: api, bot, strategy")
        );
        assert_eq!(s.components, None);
    }

    #[test]
    fn unobserved_generation_is_progressing() {
        let a = agent("x");
        let mut ds = all(&a, D1, 1);
        ds[0].1.as_mut().unwrap().metadata.generation = Some(2);
        assert_eq!(
            rollout_state(ds[0].1.as_ref()),
            RolloutState::Progressing("new spec not yet observed".into())
        );
        let s = observe(&a, &pinned(D1), &ds, t(0));
        assert_eq!(cond(&s, types::READY).status, "False");
    }

    #[test]
    fn old_pods_still_terminating_is_not_ready() {
        let a = agent("x");
        let mut d = deployment(&a, Role::Api, D1, 1, 1);
        d.status.as_mut().unwrap().replicas = Some(2);
        assert_eq!(
            rollout_state(Some(&d)),
            RolloutState::Progressing("1 old pods terminating".into())
        );
    }

    #[test]
    fn progress_deadline_exceeded_is_degraded() {
        let a = agent("x");
        let mut ds = all(&a, D1, 1);
        let d = ds[2].1.as_mut().unwrap();
        d.status.as_mut().unwrap().conditions = Some(vec![DeploymentCondition {
            type_: "Progressing".into(),
            status: "False".into(),
            reason: Some("ProgressDeadlineExceeded".into()),
            message: Some("ReplicaSet \"alpha-strategy-x\" has timed out progressing.".into()),
            ..DeploymentCondition::default()
        }]);
        let s = observe(&a, &pinned(D1), &ds, t(0));
        let degraded = cond(&s, types::DEGRADED);
        assert_eq!(
            (degraded.status.as_str(), degraded.reason.as_str()),
            ("True", "ProgressDeadlineExceeded")
        );
        assert!(
            degraded
                .message
                .starts_with("strategy: ProgressDeadlineExceeded")
        );
        assert_eq!(cond(&s, types::READY).reason, "ProgressDeadlineExceeded");
    }

    #[test]
    fn replica_failure_is_degraded() {
        let a = agent("x");
        let mut ds = all(&a, D1, 0);
        ds[0]
            .1
            .as_mut()
            .unwrap()
            .status
            .as_mut()
            .unwrap()
            .conditions = Some(vec![DeploymentCondition {
            type_: "ReplicaFailure".into(),
            status: "True".into(),
            reason: Some("FailedCreate".into()),
            message: Some("pods \"alpha-api-\" is forbidden: violates PodSecurity".into()),
            ..DeploymentCondition::default()
        }]);
        let s = observe(&a, &pinned(D1), &ds, t(0));
        assert_eq!(cond(&s, types::DEGRADED).reason, "ReplicaFailure");
    }

    #[test]
    fn tag_only_image_is_not_ready_with_digest_required() {
        let a = agent("registry.example.com/acme/app:stable");
        let outcome = ImageOutcome::Unresolved(Blocked {
            reason: reasons::DIGEST_REQUIRED,
            message: "spec.image has no digest".into(),
        });
        let ds: Vec<_> = Role::ALL.into_iter().map(|r| (r, None)).collect();
        let s = observe(&a, &outcome, &ds, t(0));
        let image = cond(&s, types::IMAGE_RESOLVED);
        assert_eq!(
            (image.status.as_str(), image.reason.as_str()),
            ("False", "DigestRequired")
        );
        let ready = cond(&s, types::READY);
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "DigestRequired")
        );
        assert_eq!(cond(&s, types::PROGRESSING).reason, "DigestRequired");
        let status = s.image.unwrap();
        assert_eq!(status.reference, "registry.example.com/acme/app:stable");
        assert_eq!(status.digest, None);
        assert!(s.history.is_empty());
    }

    #[test]
    fn unresolved_image_keeps_the_previous_pin() {
        let mut a = agent("x");
        a.status = Some(observe(&a, &pinned(D1), &all(&a, D1, 1), t(0)));
        a.spec.image = "registry.example.com/acme/app:next".into();
        let outcome = ImageOutcome::Unresolved(Blocked {
            reason: reasons::DIGEST_REQUIRED,
            message: "no digest".into(),
        });
        let s = observe(&a, &outcome, &all(&a, D1, 1), t(10));
        assert_eq!(s.image.as_ref().unwrap().digest.as_deref(), Some(D1));
        assert_eq!(cond(&s, types::READY).reason, "DigestRequired");
    }

    #[test]
    fn missing_secret_blocks_ready_with_its_reason() {
        let a = agent("x");
        let blocked = Blocked {
            reason: reasons::SECRET_NOT_FOUND,
            message: "Secret desk/desk-db (spec.database.secretRef) not found".into(),
        };
        let ds: Vec<_> = Role::ALL.into_iter().map(|r| (r, None)).collect();
        let s = next_status(&Observation {
            agent: &a,
            image: &pinned(D1),
            applied: false,
            blocked: Some(&blocked),
            deployments: &ds,
            rollback: None,
            now: t(0),
        });
        let ready = cond(&s, types::READY);
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "SecretNotFound")
        );
        assert!(ready.message.contains("desk-db"));
        // Nothing was applied, so nothing is pinned yet.
        assert_eq!(s.image.unwrap().digest, None);
    }

    #[test]
    fn paused_reports_but_is_marked() {
        let mut a = agent("x");
        a.spec.paused = true;
        let ds: Vec<_> = Role::ALL.into_iter().map(|r| (r, None)).collect();
        let s = observe(&a, &pinned(D1), &ds, t(0));
        assert_eq!(cond(&s, types::PROGRESSING).reason, "Paused");
        assert_eq!(cond(&s, types::READY).reason, "Paused");
        assert_eq!(s.image.unwrap().digest, None, "paused applies nothing");
        let s = observe(&a, &pinned(D1), &all(&a, D1, 1), t(0));
        assert_eq!(cond(&s, types::READY).status, "True");
    }

    #[test]
    fn transition_time_is_kept_while_status_is_unchanged() {
        let mut a = agent("x");
        let first = observe(&a, &pinned(D1), &all(&a, D1, 0), t(0));
        a.status = Some(first.clone());
        // Same status, later: identical, so nothing is written.
        let again = observe(&a, &pinned(D1), &all(&a, D1, 0), t(60));
        assert_eq!(again, first);
        // Ready flips: its transition time moves, the others' stay.
        let ready = observe(&a, &pinned(D1), &all(&a, D1, 1), t(120));
        assert_eq!(
            cond(&ready, types::READY).last_transition_time,
            Time(t(120))
        );
        assert_eq!(
            cond(&ready, types::IMAGE_RESOLVED).last_transition_time,
            Time(t(0))
        );
        assert_eq!(
            cond(&ready, types::DEGRADED).last_transition_time,
            Time(t(0))
        );
    }

    #[test]
    fn set_condition_replaces_by_type() {
        let mut conditions = vec![condition("Ready", false, "A", "a", Some(1), t(0))];
        set_condition(
            &mut conditions,
            condition("Ready", false, "B", "b", Some(2), t(5)),
        );
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].reason, "B");
        assert_eq!(conditions[0].observed_generation, Some(2));
        assert_eq!(conditions[0].last_transition_time, Time(t(0)));
        set_condition(
            &mut conditions,
            condition("Ready", true, "C", "c", Some(2), t(9)),
        );
        assert_eq!(conditions[0].last_transition_time, Time(t(9)));
        set_condition(
            &mut conditions,
            condition("Degraded", false, "D", "d", Some(2), t(9)),
        );
        assert_eq!(conditions.len(), 2);
    }

    #[test]
    fn history_records_rollouts_and_their_success() {
        let mut a = agent("x");
        let s = observe(&a, &pinned(D1), &all(&a, D1, 0), t(0));
        assert_eq!(s.history.len(), 1);
        assert_eq!(s.history[0].digest, D1);
        assert_eq!(s.history[0].outcome, None);
        a.status = Some(s);
        let s = observe(&a, &pinned(D1), &all(&a, D1, 1), t(30));
        assert_eq!(s.history.len(), 1);
        assert_eq!(s.history[0].outcome, Some(RolloutOutcome::Succeeded));
        assert_eq!(s.history[0].finished, Some(Time(t(30))));
        a.status = Some(s);
        // A new digest: a new record, resolvedAt moves, lastHealthy stays until it is ready.
        let s = observe(&a, &pinned(D2), &all(&a, D2, 0), t(60));
        assert_eq!(s.history.len(), 2);
        let image = s.image.as_ref().unwrap();
        assert_eq!(image.digest.as_deref(), Some(D2));
        assert_eq!(image.resolved_at, Some(Time(t(60))));
        assert_eq!(image.last_healthy_digest.as_deref(), Some(D1));
    }

    #[test]
    fn history_is_bounded() {
        let mut a = agent("x");
        for i in 0..(HISTORY_LIMIT + 5) {
            let digest = format!("sha256:{:064x}", i + 1);
            let s = observe(&a, &pinned(&digest), &all(&a, &digest, 1), t(i as i64));
            a.status = Some(s);
        }
        let history = &a.status.as_ref().unwrap().history;
        assert_eq!(history.len(), HISTORY_LIMIT);
        assert_eq!(
            history.last().unwrap().digest,
            format!("sha256:{:064x}", HISTORY_LIMIT + 5)
        );
    }

    fn kept(digest: &str, reason: &'static str) -> ImageOutcome {
        ImageOutcome::Kept {
            pinned: pinned(digest).pinned().unwrap().clone(),
            problem: Blocked {
                reason,
                message: "registry r unreachable: connection refused".into(),
            },
        }
    }

    #[test]
    fn a_failed_resolution_keeps_the_pinned_digest_and_says_why() {
        let mut a = agent("x");
        a.status = Some(observe(&a, &pinned(D1), &all(&a, D1, 1), t(0)));
        let s = observe(&a, &kept(D1, "RegistryUnreachable"), &all(&a, D1, 1), t(10));
        let image = cond(&s, types::IMAGE_RESOLVED);
        assert_eq!(
            (image.status.as_str(), image.reason.as_str()),
            ("False", "RegistryUnreachable")
        );
        assert!(
            image
                .message
                .ends_with(&format!("the workloads stay on {D1}")),
            "{}",
            image.message
        );
        assert_eq!(
            cond(&s, types::READY).status,
            "True",
            "the workloads are fine"
        );
        assert_eq!(s.image.as_ref().unwrap().digest.as_deref(), Some(D1));
        assert_eq!(s.history.len(), 1);
    }

    #[test]
    fn a_rollback_rejects_the_digest_records_it_and_degrades_until_the_tag_moves() {
        let mut a = agent("x");
        a.status = Some(observe(&a, &pinned(D1), &all(&a, D1, 1), t(0)));
        a.status = Some(observe(&a, &pinned(D2), &all(&a, D2, 0), t(10)));
        let rollback = Rollback {
            rejected: D2.into(),
            restored: D1.into(),
            message: format!("{D2} failed; rolled back to {D1}"),
        };
        let s = next_status(&Observation {
            agent: &a,
            image: &kept(D1, reasons::DIGEST_REJECTED),
            applied: true,
            blocked: None,
            deployments: &all(&a, D1, 0),
            rollback: Some(&rollback),
            now: t(20),
        });
        let image = s.image.as_ref().unwrap();
        assert_eq!(image.digest.as_deref(), Some(D1));
        assert_eq!(image.rejected_digests, vec![D2.to_owned()]);
        assert_eq!(image.last_healthy_digest.as_deref(), Some(D1));
        assert_eq!(s.history.len(), 2, "no record for going back");
        assert_eq!(s.history[1].digest, D2);
        assert_eq!(s.history[1].outcome, Some(RolloutOutcome::RolledBack));
        assert_eq!(s.history[1].finished, Some(Time(t(20))));
        let degraded = cond(&s, types::DEGRADED);
        assert_eq!(
            (degraded.status.as_str(), degraded.reason.as_str()),
            ("True", "RolledBack")
        );
        assert!(degraded.message.contains(D1) && degraded.message.contains(D2));

        // Right after, the Deployments still report the deadline: the rollback stays the story.
        let mut stale = all(&a, D1, 0);
        stale[0]
            .1
            .as_mut()
            .unwrap()
            .status
            .as_mut()
            .unwrap()
            .conditions = Some(vec![k8s_openapi::api::apps::v1::DeploymentCondition {
            type_: "Progressing".into(),
            status: "False".into(),
            reason: Some("ProgressDeadlineExceeded".into()),
            message: Some("timed out".into()),
            ..Default::default()
        }]);
        let mut after = a.clone();
        after.status = Some(s.clone());
        let again = observe(&after, &kept(D1, reasons::DIGEST_REJECTED), &stale, t(25));
        assert_eq!(cond(&again, types::DEGRADED), cond(&s, types::DEGRADED));

        // Back on D1 and ready, the tag still at D2: still Degraded, nothing else moves.
        a.status = Some(s);
        let s = observe(
            &a,
            &kept(D1, reasons::DIGEST_REJECTED),
            &all(&a, D1, 1),
            t(30),
        );
        assert_eq!(cond(&s, types::DEGRADED).reason, "RolledBack");
        assert_eq!(cond(&s, types::DEGRADED).last_transition_time, Time(t(20)));
        assert_eq!(cond(&s, types::READY).status, "True");
        assert_eq!(s.history.len(), 2);

        // The tag moved: roll forward, Degraded clears once the new digest is out.
        a.status = Some(s);
        let s = observe(&a, &pinned(D3), &all(&a, D3, 1), t(40));
        assert_eq!(cond(&s, types::DEGRADED).status, "False");
        assert_eq!(s.history.last().unwrap().digest, D3);
        assert_eq!(
            s.history.last().unwrap().outcome,
            Some(RolloutOutcome::Succeeded)
        );
        assert_eq!(
            s.image.as_ref().unwrap().rejected_digests,
            vec![D2.to_owned()]
        );
    }

    #[test]
    fn another_repository_forgets_the_rollback_target() {
        let mut a = agent("registry.example.com/acme/app:stable");
        a.status = Some(observe(&a, &pinned(D1), &all(&a, D1, 1), t(0)));
        assert_eq!(
            a.status
                .as_ref()
                .unwrap()
                .image
                .as_ref()
                .unwrap()
                .last_healthy_digest
                .as_deref(),
            Some(D1)
        );
        // Another tag of the same repository keeps it.
        a.spec.image = "registry.example.com/acme/app:next".into();
        let s = observe(&a, &pinned(D2), &all(&a, D2, 0), t(10));
        assert_eq!(
            s.image.as_ref().unwrap().last_healthy_digest.as_deref(),
            Some(D1)
        );
        // Another repository does not.
        a.spec.image = "registry.example.com/acme/other:stable".into();
        let elsewhere = ImageOutcome::Pinned(
            ImageReference::parse("registry.example.com/acme/other:stable")
                .unwrap()
                .pinned_to(crate::digest::reference::Digest::parse(D3).unwrap()),
        );
        let s = observe(&a, &elsewhere, &all(&a, D3, 0), t(20));
        assert_eq!(s.image.as_ref().unwrap().last_healthy_digest, None);
    }

    #[test]
    fn rejected_digests_are_bounded() {
        let mut a = agent("x");
        a.status = Some(observe(&a, &pinned(D1), &all(&a, D1, 1), t(0)));
        for i in 0..(REJECTED_LIMIT + 3) {
            let bad = format!("sha256:{:064x}", i + 100);
            let rollback = Rollback {
                rejected: bad,
                restored: D1.into(),
                message: "m".into(),
            };
            a.status = Some(next_status(&Observation {
                agent: &a,
                image: &kept(D1, reasons::DIGEST_REJECTED),
                applied: true,
                blocked: None,
                deployments: &all(&a, D1, 1),
                rollback: Some(&rollback),
                now: t(i as i64 + 1),
            }));
        }
        let rejected = &a
            .status
            .as_ref()
            .unwrap()
            .image
            .as_ref()
            .unwrap()
            .rejected_digests;
        assert_eq!(rejected.len(), REJECTED_LIMIT);
        assert_eq!(
            rejected.last().unwrap(),
            &format!("sha256:{:064x}", REJECTED_LIMIT + 102)
        );
    }

    #[test]
    fn last_healthy_requires_every_component_on_the_digest() {
        let a = agent("x");
        let mut ds = all(&a, D2, 1);
        ds[0].1 = Some(deployment(&a, Role::Api, D1, 1, 1));
        let s = observe(&a, &pinned(D2), &ds, t(0));
        assert_eq!(s.image.unwrap().last_healthy_digest, None);
    }
}
