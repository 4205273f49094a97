//! Stage 6, status (pure): from what the reconcile found and did, compute the next
//! `TradingAgentStatus`. Comparing it with the current one decides whether to write at all, so
//! conditions keep their `lastTransitionTime` unless their status really changes.
//!
//! [`next_status`] is a few named steps, each unit-tested:
//! 1. [`Rollouts::judge`] — where each Deployment's rollout stands;
//! 2. the four conditions ([`image_resolved_condition`], [`ready_condition`],
//!    [`progressing_condition`], [`degraded_condition`]), merged by [`set_condition`] (which keeps
//!    the transition time while a condition's status holds); a rollback's `Degraded` is sticky
//!    ([`rollback::degraded_condition`]);
//! 3. [`record_pin`] — `status.image` and `status.history` for the digest applied: the
//!    repository-change reset ([`forget_other_repository`]), the rollback record and rejected
//!    digests ([`rollback::record`]), or a new rollout ([`start_rollout`]);
//! 4. [`record_healthy`] — `lastHealthyDigest` and a rollout's success, once every component runs
//!    the digest and is ready and, when there is a digest to roll back to, once the verification
//!    window (`imageUpdate.verify`) has passed without a failure ([`super::verify`]);
//! 5. [`bound_history`].
//!
//! Steps 3 to 5 run before the conditions, which say whether the verification still runs.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use std::time::Duration;

use super::conditions::{condition, set_condition};
use super::rollback::{self, EnvironmentFault, Rollback};
use super::rollout_state::{RolloutState, component_status, rollout_state};
use super::verify::Verification;
pub use crate::digest::outcome::ImageOutcome;
use crate::digest::reference::ImageReference;
use crate::error::Error;
pub use crate::resource::conditions::{reasons, types};
use crate::resource::{
    ComponentsStatus, ImageStatus, Role, RollbackPolicy, RolloutOutcome, RolloutRecord,
    TradingAgent, TradingAgentStatus,
};

/// How many rollouts `status.history` keeps.
pub const HISTORY_LIMIT: usize = 10;

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
    pub blocked: Option<&'a Error>,
    /// The Deployments as the API server returned them (after applying, when applied).
    pub deployments: &'a [(Role, Option<Deployment>)],
    /// Per role, the `imageID` each of its started, non-terminating pods reports (what the
    /// container runtime really pulled).
    pub pod_images: &'a [(Role, Vec<String>)],
    /// A rollback applied in this reconcile.
    pub rollback: Option<&'a Rollback>,
    /// Where the verification of the pinned digest stands ([`rollback::decide`]).
    pub verification: Option<&'a Verification>,
    /// A failed rollout blamed on the environment ([`rollback::decide`]).
    pub fault: Option<&'a EnvironmentFault>,
    /// The current time.
    pub now: Timestamp,
}

impl Observation<'_> {
    /// What keeps the workloads from being deployed: a referenced object, or an image with no
    /// digest to pin.
    fn blocker(&self) -> Option<&Error> {
        let image_blocker = match self.image {
            ImageOutcome::Unresolved(blocked) => Some(blocked),
            ImageOutcome::Pinned(_) | ImageOutcome::Kept { .. } => None,
        };
        self.blocked.or(image_blocker)
    }
}

/// Compute the next status.
pub fn next_status(obs: &Observation<'_>) -> TradingAgentStatus {
    let previous = obs.agent.status.clone().unwrap_or_default();
    let generation = obs.agent.metadata.generation;
    let rollouts = Rollouts::judge(obs.deployments);
    let blocker = obs.blocker();

    let components = components(obs.deployments, obs.pod_images);
    let mut history = previous.history.clone();
    let mut image = match (obs.image.pinned(), obs.applied) {
        (Some(_), true) => Some(record_pin(previous.image.clone(), &mut history, obs)),
        _ => previous.image.clone().or_else(|| {
            Some(ImageStatus {
                reference: obs.agent.spec.image.clone(),
                ..ImageStatus::default()
            })
        }),
    };
    let mut verifying = None;
    if let Some(image) = image.as_mut() {
        if obs.fault.is_some() {
            // Blamed on the environment: the verification starts over once all is ready again.
            restart_verification(image, &mut history);
        } else if blocker.is_none() && rollouts.all_available {
            let window = verification_window(obs.agent, image);
            verifying = record_healthy(
                image,
                &mut history,
                components.as_ref(),
                obs.now,
                window,
                obs.verification,
            );
        }
    }
    bound_history(&mut history);

    let mut conditions = previous.conditions.clone();
    for new in [
        image_resolved_condition(obs),
        ready_condition(obs, &rollouts, blocker, verifying.as_ref()),
        progressing_condition(obs, &rollouts, blocker, verifying.as_ref()),
        degraded_condition(obs, &previous, &rollouts),
    ] {
        set_condition(&mut conditions, new);
    }

    TradingAgentStatus {
        observed_generation: generation,
        conditions,
        image,
        components,
        history,
        // The trading look's (stage 6b) to replace; kept when there was none.
        trading: previous.trading,
    }
}

/// A verification that still runs: which digest, and until when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verifying {
    /// The digest verified.
    pub digest: String,
    /// When the window ends.
    pub until: Timestamp,
}

impl Verifying {
    fn message(&self) -> String {
        format!(
            "{} is rolled out and verified until {} (imageUpdate.verify): a restart or lost readiness of its pods rolls it back",
            self.digest, self.until
        )
    }
}

/// The verification window for the pinned digest: `Some` only when there is something to roll
/// back to (`spec.image` a tag, `rollback: Auto`, a last healthy digest other than the pinned
/// one) and the window is not `0s`.
pub fn verification_window(agent: &TradingAgent, image: &ImageStatus) -> Option<Duration> {
    let window = rollback::verify_window(agent);
    // A digest written in spec.image is never rolled back: nothing to verify.
    let tracks_a_tag = ImageReference::parse(&agent.spec.image).is_ok_and(|r| r.digest().is_none());
    let target = tracks_a_tag
        && image
            .last_healthy_digest
            .as_ref()
            .is_some_and(|healthy| image.digest.as_ref() != Some(healthy));
    (agent.spec.image_update.rollback == RollbackPolicy::Auto && target && !window.is_zero())
        .then_some(window)
}

/// When the verification of the pinned digest ends, if it runs (for the requeue).
pub fn verification_deadline(
    agent: &TradingAgent,
    status: &TradingAgentStatus,
) -> Option<Timestamp> {
    let image = status.image.as_ref()?;
    let window = verification_window(agent, image)?;
    let available = rollback::available_since(&status.history, image.digest.as_deref()?)?;
    available
        .checked_add(k8s_openapi::jiff::SignedDuration::try_from(window).ok()?)
        .ok()
}

/// Forget when the pinned digest's open rollout became Available: after an environment fault
/// its verification starts over.
pub fn restart_verification(image: &ImageStatus, history: &mut [RolloutRecord]) {
    if let Some(digest) = image.digest.as_deref()
        && let Some(open) = history
            .iter_mut()
            .rev()
            .find(|r| r.digest == digest && r.outcome.is_none())
    {
        open.available = None;
    }
}

/// Step 1: where the Deployments' rollouts stand, as the conditions' messages need it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rollouts {
    /// "role: reason: message" per failed rollout.
    pub failed: Vec<String>,
    /// The Degraded reason of the first failed rollout.
    pub first_failure_reason: Option<&'static str>,
    /// "role: how far" per rollout under way.
    pub progressing: Vec<String>,
    /// Roles whose Deployment does not exist.
    pub missing: Vec<String>,
    /// Every Deployment is rolled out and ready.
    pub all_available: bool,
}

impl Rollouts {
    /// Judge every Deployment ([`rollout_state`]).
    pub fn judge(deployments: &[(Role, Option<Deployment>)]) -> Self {
        let states: Vec<(Role, RolloutState)> = deployments
            .iter()
            .map(|(role, d)| (*role, rollout_state(d.as_ref())))
            .collect();
        let mut rollouts = Self {
            all_available: states.iter().all(|(_, s)| *s == RolloutState::Available),
            ..Self::default()
        };
        for (role, state) in states {
            match state {
                RolloutState::Failed { reason, message } => {
                    rollouts.first_failure_reason.get_or_insert(reason);
                    rollouts.failed.push(format!("{role}: {reason}: {message}"));
                }
                RolloutState::Progressing(how) => {
                    rollouts.progressing.push(format!("{role}: {how}"));
                }
                RolloutState::Missing => rollouts.missing.push(role.to_string()),
                RolloutState::Available => {}
            }
        }
        rollouts
    }
}

/// Step 2a: `ImageResolved` — pinned, kept (and why nothing moved), or unresolved.
pub fn image_resolved_condition(obs: &Observation<'_>) -> Condition {
    let generation = obs.agent.metadata.generation;
    match obs.image {
        ImageOutcome::Pinned(pinned) => condition(
            types::IMAGE_RESOLVED,
            true,
            reasons::DIGEST_PINNED,
            format!("{} is pinned to {}", obs.agent.spec.image, pinned.digest()),
            generation,
            obs.now,
        ),
        ImageOutcome::Kept { pinned, problem } => condition(
            types::IMAGE_RESOLVED,
            false,
            problem.reason(),
            format!(
                "{}; the workloads stay on {}",
                problem.condition_message(),
                pinned.digest()
            ),
            generation,
            obs.now,
        ),
        ImageOutcome::Unresolved(blocked) => condition(
            types::IMAGE_RESOLVED,
            false,
            blocked.reason(),
            blocked.condition_message(),
            generation,
            obs.now,
        ),
    }
}

/// Step 2b: `Ready` — blocked, every component ready, or what is still missing, failed or rolling.
pub fn ready_condition(
    obs: &Observation<'_>,
    rollouts: &Rollouts,
    blocker: Option<&Error>,
    verifying: Option<&Verifying>,
) -> Condition {
    let generation = obs.agent.metadata.generation;
    let paused = obs.agent.spec.paused;
    if let Some(blocked) = blocker {
        return condition(
            types::READY,
            false,
            blocked.reason(),
            blocked.condition_message(),
            generation,
            obs.now,
        );
    }
    if let Some(verifying) = verifying {
        return condition(
            types::READY,
            false,
            reasons::VERIFYING,
            verifying.message(),
            generation,
            obs.now,
        );
    }
    if let Some(fault) = obs.fault
        && !rollouts.all_available
    {
        return condition(
            types::READY,
            false,
            fault.reason,
            fault.message.clone(),
            generation,
            obs.now,
        );
    }
    if rollouts.all_available {
        let suffix = if paused {
            " (reconciliation paused)"
        } else {
            ""
        };
        return condition(
            types::READY,
            true,
            reasons::ALL_COMPONENTS_READY,
            format!("api, bot and strategy are rolled out and ready{suffix}"),
            generation,
            obs.now,
        );
    }
    let mut parts = Vec::new();
    if !rollouts.missing.is_empty() {
        parts.push(format!("missing: {}", rollouts.missing.join(", ")));
    }
    parts.extend(rollouts.failed.iter().cloned());
    parts.extend(rollouts.progressing.iter().cloned());
    let reason = if paused {
        reasons::PAUSED
    } else {
        rollouts
            .first_failure_reason
            .unwrap_or(reasons::COMPONENTS_NOT_READY)
    };
    condition(
        types::READY,
        false,
        reason,
        parts.join("; "),
        generation,
        obs.now,
    )
}

/// Step 2c: `Progressing` — paused, blocked, rolling out, or complete.
pub fn progressing_condition(
    obs: &Observation<'_>,
    rollouts: &Rollouts,
    blocker: Option<&Error>,
    verifying: Option<&Verifying>,
) -> Condition {
    let generation = obs.agent.metadata.generation;
    if obs.agent.spec.paused {
        return condition(
            types::PROGRESSING,
            false,
            reasons::PAUSED,
            "spec.paused is true: status is reported but nothing is changed",
            generation,
            obs.now,
        );
    }
    if let Some(blocked) = blocker {
        return condition(
            types::PROGRESSING,
            false,
            blocked.reason(),
            blocked.condition_message(),
            generation,
            obs.now,
        );
    }
    if let Some(verifying) = verifying {
        return condition(
            types::PROGRESSING,
            true,
            reasons::VERIFYING,
            verifying.message(),
            generation,
            obs.now,
        );
    }
    if !rollouts.progressing.is_empty() || !rollouts.missing.is_empty() {
        let mut parts = rollouts.progressing.clone();
        if !rollouts.missing.is_empty() {
            parts.push(format!("missing: {}", rollouts.missing.join(", ")));
        }
        return condition(
            types::PROGRESSING,
            true,
            reasons::ROLLING_OUT,
            parts.join("; "),
            generation,
            obs.now,
        );
    }
    condition(
        types::PROGRESSING,
        false,
        reasons::ROLLOUT_COMPLETE,
        "no rollout in progress",
        generation,
        obs.now,
    )
}

/// Step 2d: `Degraded` — a rollback (sticky until a new digest rolls out, see
/// [`rollback::degraded_condition`]), a failed rollout blamed on the environment, a failed
/// rollout, or nothing wrong.
pub fn degraded_condition(
    obs: &Observation<'_>,
    previous: &TradingAgentStatus,
    rollouts: &Rollouts,
) -> Condition {
    let generation = obs.agent.metadata.generation;
    let previous_digest = previous.image.as_ref().and_then(|i| i.digest.as_deref());
    let moves_forward = obs.applied
        && obs.rollback.is_none()
        && matches!(obs.image, ImageOutcome::Pinned(p) if previous_digest != Some(p.digest().as_str()));
    if obs.rollback.is_none()
        && let Some(fault) = obs.fault
    {
        return condition(
            types::DEGRADED,
            true,
            fault.reason,
            fault.message.clone(),
            generation,
            obs.now,
        );
    }
    if let Some(rolled_back) =
        rollback::degraded_condition(obs.rollback, previous, moves_forward, generation, obs.now)
    {
        return rolled_back;
    }
    match rollouts.first_failure_reason {
        Some(reason) => condition(
            types::DEGRADED,
            true,
            reason,
            rollouts.failed.join("; "),
            generation,
            obs.now,
        ),
        None => condition(
            types::DEGRADED,
            false,
            reasons::AS_EXPECTED,
            "no failed rollout",
            generation,
            obs.now,
        ),
    }
}

/// `status.components`, from the Deployments that exist and the images their pods run.
fn components(
    deployments: &[(Role, Option<Deployment>)],
    pod_images: &[(Role, Vec<String>)],
) -> Option<ComponentsStatus> {
    let mut components = ComponentsStatus::default();
    for (role, deployment) in deployments {
        if let Some(d) = deployment {
            let images = pod_images
                .iter()
                .find(|(r, _)| r == role)
                .map_or(&[][..], |(_, images)| images.as_slice());
            components.set(*role, component_status(d, images));
        }
    }
    (components != ComponentsStatus::default()).then_some(components)
}

/// Step 3: `status.image` once the pinned digest was applied, with the history entry it makes:
/// a rollback's record, or a new rollout when the digest moved.
pub fn record_pin(
    previous: Option<ImageStatus>,
    history: &mut Vec<RolloutRecord>,
    obs: &Observation<'_>,
) -> ImageStatus {
    let mut status = previous.unwrap_or_default();
    let Some(pinned) = obs.image.pinned() else {
        return status;
    };
    let digest = pinned.digest().to_string();
    let moved = status.digest.as_deref() != Some(digest.as_str());
    forget_other_repository(&mut status, &obs.agent.spec.image);
    status.reference = obs.agent.spec.image.clone();
    if let Some(rollback) = obs.rollback {
        status.resolved_at = Some(Time(obs.now));
        rollback::record(&mut status, history, rollback, obs.now);
    } else if moved {
        status.resolved_at = Some(Time(obs.now));
        start_rollout(history, &digest, obs.now);
    }
    status.short_digest = Some(pinned.digest().short());
    status.digest = Some(digest);
    status
}

/// Step 3a, the repository-change reset: a rollback target from another repository would not
/// exist in this one, so `lastHealthyDigest` is forgotten when `spec.image` names another
/// repository (another tag of the same repository keeps it).
pub fn forget_other_repository(status: &mut ImageStatus, spec_image: &str) {
    let repository = |image: &str| ImageReference::parse(image).ok().map(|r| r.name());
    if status.last_healthy_digest.is_some()
        && repository(&status.reference) != repository(spec_image)
    {
        status.last_healthy_digest = None;
    }
}

/// Step 3b, history: a new digest starts a rollout record, finished later by [`record_healthy`]
/// or [`rollback::record`].
pub fn start_rollout(history: &mut Vec<RolloutRecord>, digest: &str, now: Timestamp) {
    history.push(RolloutRecord {
        digest: digest.to_owned(),
        started: Time(now),
        finished: None,
        outcome: None,
        reason: None,
        available: None,
    });
}

/// Step 4, last-healthy: when every component is ready (the caller checks) and reports the
/// pinned digest, that digest becomes `lastHealthyDigest` and its open rollout succeeded; with a
/// verification `window`, only once the window has passed: the open rollout first records when
/// it became Available, then waits for `verdict` ([`super::verify::verify`]) to pass. Returns the
/// verification still running, if any.
pub fn record_healthy(
    image: &mut ImageStatus,
    history: &mut [RolloutRecord],
    components: Option<&ComponentsStatus>,
    now: Timestamp,
    window: Option<Duration>,
    verdict: Option<&Verification>,
) -> Option<Verifying> {
    // Only a digest every running component reports counts as healthy.
    let running_digest = image.digest.clone().filter(|digest| {
        components.is_some_and(|c| {
            Role::ALL
                .iter()
                .all(|r| c.get(*r).and_then(|s| s.digest.as_ref()) == Some(digest))
        })
    });
    let digest = running_digest?;
    let open = history
        .last_mut()
        .filter(|last| last.digest == digest && last.outcome.is_none());
    if let (Some(window), Some(open)) = (window, open) {
        let verifying = |until| {
            Some(Verifying {
                digest: digest.clone(),
                until,
            })
        };
        let until_from = |available: Timestamp| {
            k8s_openapi::jiff::SignedDuration::try_from(window)
                .ok()
                .and_then(|w| available.checked_add(w).ok())
                .unwrap_or(Timestamp::MAX)
        };
        match (open.available.as_ref().map(|t| t.0), verdict) {
            (None, _) => {
                open.available = Some(Time(now));
                return verifying(until_from(now));
            }
            (Some(_), Some(Verification::Watching { until })) => return verifying(*until),
            (Some(_), Some(Verification::Failed { .. })) => return None,
            (Some(_), Some(Verification::Passed)) => {}
            (Some(available), None) => {
                let until = until_from(available);
                if now < until {
                    return verifying(until);
                }
            }
        }
    }
    image.last_healthy_digest = Some(digest.clone());
    if let Some(last) = history.last_mut()
        && last.digest == digest
        && last.outcome.is_none()
    {
        last.finished = Some(Time(now));
        last.outcome = Some(RolloutOutcome::Succeeded);
    }
    None
}

/// Step 5: keep the last [`HISTORY_LIMIT`] rollouts.
pub fn bound_history(history: &mut Vec<RolloutRecord>) {
    if history.len() > HISTORY_LIMIT {
        history.drain(..history.len() - HISTORY_LIMIT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::reference::{Digest, ImageReference};
    use crate::reconcile::build::desired_deployment;
    use crate::reconcile::conditions::{find_condition, is_ready};
    use crate::reconcile::rollback::REJECTED_LIMIT;
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

    /// The pods a Deployment's status implies, each reporting the template's image as `imageID`.
    fn pods_running(deployments: &[(Role, Option<Deployment>)]) -> Vec<(Role, Vec<String>)> {
        deployments
            .iter()
            .filter_map(|(role, d)| {
                let d = d.as_ref()?;
                let image = d.spec.as_ref()?.template.spec.as_ref()?.containers[0]
                    .image
                    .clone()?;
                let count = d.status.as_ref()?.replicas.unwrap_or(0);
                Some((*role, vec![image; usize::try_from(count).ok()?]))
            })
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
            pod_images: &pods_running(deployments),
            rollback: None,
            verification: None,
            fault: None,
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
        let outcome = ImageOutcome::Unresolved(Error::DigestRequired {
            image: "registry.example.com/acme/app:stable".into(),
            reference: "registry.example.com/acme/app:stable".into(),
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
        let outcome = ImageOutcome::Unresolved(Error::DigestRequired {
            image: "registry.example.com/acme/app:next".into(),
            reference: "registry.example.com/acme/app:next".into(),
        });
        let s = observe(&a, &outcome, &all(&a, D1, 1), t(10));
        assert_eq!(s.image.as_ref().unwrap().digest.as_deref(), Some(D1));
        assert_eq!(cond(&s, types::READY).reason, "DigestRequired");
    }

    #[test]
    fn missing_secret_blocks_ready_with_its_reason() {
        let a = agent("x");
        let blocked = Error::SecretNotFound {
            namespace: "desk".into(),
            name: "desk-db".into(),
            key: "url".into(),
        };
        let ds: Vec<_> = Role::ALL.into_iter().map(|r| (r, None)).collect();
        let s = next_status(&Observation {
            agent: &a,
            image: &pinned(D1),
            applied: false,
            blocked: Some(&blocked),
            deployments: &ds,
            pod_images: &pods_running(&ds),
            rollback: None,
            verification: None,
            fault: None,
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

    /// The digest stays, kept by a registry outage or (with `DigestRejected`) a rejected digest.
    fn kept(digest: &str, reason: &'static str) -> ImageOutcome {
        let problem = if reason == reasons::DIGEST_REJECTED {
            Error::DigestRejected("the tag points at a rejected digest".into())
        } else {
            Error::RegistryUnreachable {
                host: "r".into(),
                detail: "connection refused".into(),
            }
        };
        assert_eq!(problem.reason(), reason);
        ImageOutcome::Kept {
            pinned: pinned(digest).pinned().unwrap().clone(),
            problem,
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
            reason: reasons::PROGRESS_DEADLINE_EXCEEDED,
            failure: "api: timed out".into(),
        };
        let s = next_status(&Observation {
            agent: &a,
            image: &kept(D1, reasons::DIGEST_REJECTED),
            applied: true,
            blocked: None,
            deployments: &all(&a, D1, 0),
            pod_images: &pods_running(&all(&a, D1, 0)),
            rollback: Some(&rollback),
            verification: None,
            fault: None,
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

        // The tag moved: roll forward, Degraded clears once the new digest is out; with D1 to roll
        // back to, D3 is verified for the window (60 s by default) before it counts as healthy.
        a.status = Some(s);
        let s = observe(&a, &pinned(D3), &all(&a, D3, 1), t(40));
        assert_eq!(cond(&s, types::DEGRADED).status, "False");
        assert_eq!(s.history.last().unwrap().digest, D3);
        assert_eq!(s.history.last().unwrap().outcome, None);
        assert_eq!(s.history.last().unwrap().available, Some(Time(t(40))));
        for type_ in [types::READY, types::PROGRESSING] {
            let c = cond(&s, type_);
            assert_eq!(c.reason, "Verifying", "{type_}");
            assert!(c.message.contains(&t(100).to_string()), "{}", c.message);
        }
        assert_eq!(cond(&s, types::READY).status, "False");
        assert_eq!(cond(&s, types::PROGRESSING).status, "True");
        assert_eq!(
            verification_deadline(&a, &s),
            Some(t(100)),
            "the reconcile requeues for the window's end"
        );
        assert_eq!(
            s.image.as_ref().unwrap().last_healthy_digest.as_deref(),
            Some(D1)
        );
        a.status = Some(s);
        let s = observe(&a, &pinned(D3), &all(&a, D3, 1), t(70));
        assert_eq!(cond(&s, types::READY).reason, "Verifying");
        a.status = Some(s);
        let s = observe(&a, &pinned(D3), &all(&a, D3, 1), t(100));
        assert_eq!(cond(&s, types::READY).status, "True");
        assert_eq!(cond(&s, types::PROGRESSING).reason, "RolloutComplete");
        assert_eq!(verification_deadline(&a, &s), None);
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
                reason: reasons::PROGRESS_DEADLINE_EXCEEDED,
                failure: "api: timed out".into(),
            };
            a.status = Some(next_status(&Observation {
                agent: &a,
                image: &kept(D1, reasons::DIGEST_REJECTED),
                applied: true,
                blocked: None,
                deployments: &all(&a, D1, 1),
                pod_images: &pods_running(&all(&a, D1, 1)),
                rollback: Some(&rollback),
                verification: None,
                fault: None,
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

    // The named steps, one by one.

    #[test]
    fn step_rollouts_sorts_the_deployments_by_where_they_stand() {
        let a = agent("x");
        let mut ds = all(&a, D1, 1);
        ds[1].1 = Some(deployment(&a, Role::Bot, D1, 0, 1));
        ds[2].1 = None;
        let rollouts = Rollouts::judge(&ds);
        assert!(!rollouts.all_available);
        assert_eq!(rollouts.missing, vec!["strategy".to_owned()]);
        assert_eq!(rollouts.progressing, vec!["bot: 0/1 ready".to_owned()]);
        assert!(rollouts.failed.is_empty() && rollouts.first_failure_reason.is_none());
        assert!(Rollouts::judge(&all(&a, D1, 1)).all_available);
    }

    #[test]
    fn step_repository_change_reset_keeps_the_target_within_one_repository() {
        let status = |reference: &str| ImageStatus {
            reference: reference.into(),
            last_healthy_digest: Some(D1.into()),
            ..ImageStatus::default()
        };
        let mut same = status("registry.example.com/acme/app:stable");
        forget_other_repository(&mut same, "registry.example.com/acme/app:next");
        assert_eq!(same.last_healthy_digest.as_deref(), Some(D1));
        let mut other = status("registry.example.com/acme/app:stable");
        forget_other_repository(&mut other, "registry.example.com/acme/other:stable");
        assert_eq!(other.last_healthy_digest, None);
    }

    #[test]
    fn step_history_starts_a_rollout_and_stays_bounded() {
        let mut history = Vec::new();
        start_rollout(&mut history, D1, t(5));
        assert_eq!(
            history,
            vec![RolloutRecord {
                digest: D1.into(),
                started: Time(t(5)),
                finished: None,
                outcome: None,
                reason: None,
                available: None,
            }]
        );
        for i in 0..HISTORY_LIMIT + 2 {
            start_rollout(&mut history, D2, t(i as i64));
        }
        bound_history(&mut history);
        assert_eq!(history.len(), HISTORY_LIMIT);
        assert!(
            history.iter().all(|r| r.digest == D2),
            "the oldest go first"
        );
    }

    #[test]
    fn step_last_healthy_needs_every_component_on_the_pinned_digest() {
        let a = agent("x");
        let on = |digest: &str| {
            let ds = all(&a, digest, 1);
            components(&ds, &pods_running(&ds))
        };
        let mut image = ImageStatus {
            digest: Some(D2.into()),
            last_healthy_digest: Some(D1.into()),
            ..ImageStatus::default()
        };
        let mut history = Vec::new();
        start_rollout(&mut history, D2, t(0));
        record_healthy(&mut image, &mut history, on(D1).as_ref(), t(9), None, None);
        assert_eq!(
            image.last_healthy_digest.as_deref(),
            Some(D1),
            "not yet on D2"
        );
        assert_eq!(history[0].outcome, None);
        record_healthy(&mut image, &mut history, on(D2).as_ref(), t(10), None, None);
        assert_eq!(image.last_healthy_digest.as_deref(), Some(D2));
        assert_eq!(history[0].outcome, Some(RolloutOutcome::Succeeded));
        assert_eq!(history[0].finished, Some(Time(t(10))));
    }

    #[test]
    fn an_environment_fault_degrades_rejects_nothing_and_restarts_the_window() {
        let mut a = agent("registry.example.com/acme/app:stable");
        a.status = Some(TradingAgentStatus {
            image: Some(ImageStatus {
                reference: a.spec.image.clone(),
                digest: Some(D2.into()),
                last_healthy_digest: Some(D1.into()),
                ..ImageStatus::default()
            }),
            history: vec![RolloutRecord {
                digest: D2.into(),
                started: Time(t(0)),
                finished: None,
                outcome: None,
                reason: None,
                available: Some(Time(t(10))),
            }],
            ..TradingAgentStatus::default()
        });
        let fault = EnvironmentFault {
            reason: reasons::ENVIRONMENT_UNHEALTHY,
            message: "all 3 pods are unready".into(),
        };
        let ds = all(&a, D2, 0);
        let s = next_status(&Observation {
            agent: &a,
            image: &pinned(D2),
            applied: true,
            blocked: None,
            deployments: &ds,
            pod_images: &pods_running(&ds),
            rollback: None,
            verification: None,
            fault: Some(&fault),
            now: t(40),
        });
        let degraded = cond(&s, types::DEGRADED);
        assert_eq!(
            (degraded.status.as_str(), degraded.reason.as_str()),
            ("True", "EnvironmentUnhealthy")
        );
        assert_eq!(cond(&s, types::READY).reason, "EnvironmentUnhealthy");
        let image = s.image.as_ref().unwrap();
        assert_eq!(image.digest.as_deref(), Some(D2), "the pin stays");
        assert!(image.rejected_digests.is_empty(), "nothing is rejected");
        assert_eq!(image.last_healthy_digest.as_deref(), Some(D1));
        let open = s.history.last().unwrap();
        assert_eq!((open.outcome, open.available.as_ref()), (None, None));

        // All ready again: the window starts over from now.
        a.status = Some(s);
        let ds = all(&a, D2, 1);
        let s = observe(&a, &pinned(D2), &ds, t(50));
        assert_eq!(s.history.last().unwrap().available, Some(Time(t(50))));
        assert_eq!(cond(&s, types::READY).reason, "Verifying");
        assert_eq!(cond(&s, types::DEGRADED).status, "False");
    }

    #[test]
    fn step_conditions_are_sticky_while_their_status_holds() {
        let a = agent("x");
        let obs = |now| Observation {
            agent: &a,
            image: &IMAGE_NONE,
            applied: false,
            blocked: None,
            deployments: &[],
            pod_images: &[],
            rollback: None,
            verification: None,
            fault: None,
            now,
        };
        let first = image_resolved_condition(&obs(t(0)));
        let mut conditions = vec![first.clone()];
        set_condition(&mut conditions, image_resolved_condition(&obs(t(60))));
        assert_eq!(
            conditions,
            vec![first],
            "same status: the transition time stays"
        );
    }

    static IMAGE_NONE: std::sync::LazyLock<ImageOutcome> = std::sync::LazyLock::new(|| {
        ImageOutcome::Unresolved(Error::DigestRequired {
            image: "x".into(),
            reference: "x".into(),
        })
    });

    #[test]
    fn the_component_digest_is_what_the_pods_run() {
        use super::super::rollout_state::{component_status, running_digest};
        let image = |d: &str| format!("registry.example.com/acme/app@{d}");
        assert_eq!(running_digest(&[image(D1), image(D1)]).as_deref(), Some(D1));
        assert_eq!(running_digest(&[image(D1), image(D2)]), None, "mid-rollout");
        assert_eq!(running_digest(&[]), None, "nothing started yet");
        assert_eq!(running_digest(&["no-digest".into()]), None);

        // The template says D2 and the Deployment counts its pods ready, but the pods still run D1
        // (or the runtime pulled something else): D2 is not reported, nor recorded as healthy.
        let a = agent("x");
        let ds = all(&a, D2, 1);
        let on_d1: Vec<_> = Role::ALL
            .into_iter()
            .map(|r| (r, vec![image(D1)]))
            .collect();
        let s = next_status(&Observation {
            agent: &a,
            image: &pinned(D2),
            applied: true,
            blocked: None,
            deployments: &ds,
            pod_images: &on_d1,
            rollback: None,
            verification: None,
            fault: None,
            now: t(0),
        });
        let components = s.components.unwrap();
        assert_eq!(components.api.unwrap().digest.as_deref(), Some(D1));
        assert_eq!(s.image.unwrap().last_healthy_digest, None);

        // No replicas, no pods: the template's digest.
        let mut scaled = deployment(&a, Role::Bot, D2, 0, 0);
        scaled.spec.as_mut().unwrap().replicas = Some(0);
        assert_eq!(component_status(&scaled, &[]).digest.as_deref(), Some(D2));
    }
}
