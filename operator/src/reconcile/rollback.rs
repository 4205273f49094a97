//! Stage 3, decide (pure): what to pin, between what the registry says and how the last rollout
//! went. A rollback is decided here ([`decide`]), recorded here ([`record`], called by the
//! status stage once the restored digest is applied) and kept in `Degraded` here
//! ([`degraded_condition`]).
//!
//! The pinner reports what the tag points at; this stage decides what the workloads run:
//!
//! - a new digest whose rollout failed (`ProgressDeadlineExceeded` on any role, or a restart or
//!   lost readiness of its pods within the verification window after it became Available,
//!   [`verify::verify`]) while the last healthy digest is known and `imageUpdate.rollback` is
//!   `Auto`:
//!   - when the evidence points at the digest ([`verify::blame`]) → the last healthy digest is
//!     pinned again and the failed one rejected ([`Rollback`]);
//!   - when it points at the environment (everyone unready, pods unschedulable) → nothing is
//!     rejected, the pin stays, and `Degraded` says why ([`EnvironmentFault`]); the next
//!     reconciles judge again;
//! - a tag that still points at a rejected digest → the current pin stays
//!   ([`ImageOutcome::Kept`], `DigestRejected`) until the tag moves elsewhere (roll forward);
//! - otherwise → what the pinner said.
//!
//! A digest written in `spec.image` is the user's explicit choice and is never overridden.
//!
//! A user clears rejections with the [`CLEAR_REJECTED_ANNOTATION`] ([`clear_rejections`], applied
//! before deciding): the cleared digest may roll out again.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use super::conditions::{condition, find_condition};
use super::rollout_state::{RolloutState, rollout_state};
use super::verify::{self, Blame, Verification};
use crate::digest::outcome::ImageOutcome;
use crate::digest::pinner::current_pin;
use crate::digest::reference::{Digest, ImageReference, digest_of};
use crate::error::Error;
use crate::resource::conditions::{reasons, types};
use crate::resource::{
    ImageStatus, Rejection, Role, RollbackPolicy, RolloutOutcome, RolloutRecord, TradingAgent,
    TradingAgentStatus,
};

/// What to pin, and whether that is a rollback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinDecision {
    /// The image to deploy (or why there is none).
    pub image: ImageOutcome,
    /// Set when this decision rolls a failed digest back.
    pub rollback: Option<Rollback>,
    /// Where the verification of the pinned digest stands, while its rollout is open and
    /// Available (`None` otherwise, or when there is nothing to roll back to).
    pub verification: Option<Verification>,
    /// Set when a rollout failed but the environment, not the digest, is blamed.
    pub fault: Option<EnvironmentFault>,
}

/// A failed rollout blamed on the environment: nothing is rejected, the pin stays.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvironmentFault {
    /// A Degraded reason: `EnvironmentUnhealthy` or `Unschedulable`.
    pub reason: &'static str,
    /// What failed and what the evidence is.
    pub message: String,
}

/// How often a rollout blamed on the environment is judged again (pod changes trigger a
/// reconcile too).
pub const ENVIRONMENT_RETRY: Duration = Duration::from_secs(10);

/// The verification window when `imageUpdate.verify` does not parse (the CRD refuses that).
const DEFAULT_VERIFY_WINDOW: Duration = Duration::from_secs(60);

/// The annotation that clears rejected digests: a digest (`sha256:…`), `all`, or several of them
/// separated by commas; anything else in the list is ignored (so `all,2` is a new value that
/// clears again). Acted on once per value (`status.image.clearedRejections`).
pub const CLEAR_REJECTED_ANNOTATION: &str = "tradingagents.dev/clear-rejected";

/// `agent` as the decision must see it when its [`CLEAR_REJECTED_ANNOTATION`] asks for something
/// not done yet: the named rejections removed and the value recorded as acted on (or, with the
/// annotation gone, the record forgotten). `None` when there is nothing to do. The caller decides
/// and computes the status from the returned agent, and writes the status against the original.
pub fn clear_rejections(agent: &TradingAgent) -> Option<TradingAgent> {
    let image = agent.status.as_ref()?.image.as_ref()?;
    let requested = agent
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(CLEAR_REJECTED_ANNOTATION));
    if requested == image.cleared_rejections.as_ref() {
        return None;
    }
    let mut image = image.clone();
    if let Some(value) = requested {
        let targets: Vec<&str> = value.split(',').map(str::trim).collect();
        if targets.contains(&"all") {
            image.rejected_digests.clear();
        } else {
            image
                .rejected_digests
                .retain(|d| !targets.contains(&d.as_str()));
        }
        let kept = image.rejected_digests.clone();
        image.rejections.retain(|r| kept.contains(&r.digest));
    }
    image.cleared_rejections = requested.cloned();
    let mut cleared = agent.clone();
    if let Some(status) = cleared.status.as_mut() {
        status.image = Some(image);
    }
    Some(cleared)
}

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
    /// Why the digest failed (a condition reason: `ProgressDeadlineExceeded`, `CrashLoop`,
    /// `BecameUnready`).
    pub reason: &'static str,
    /// The failure itself, naming the role ("bot: ReplicaSet has timed out progressing.").
    pub failure: String,
}

/// Record a rollback decided in this reconcile (the status stage calls it once the restored
/// digest is applied): the failed digest's rollout ends `RolledBack` in `history` (a record is
/// added if it has none) and the digest joins `rejectedDigests` (the newest [`REJECTED_LIMIT`]).
pub fn record(
    image: &mut ImageStatus,
    history: &mut Vec<RolloutRecord>,
    rollback: &Rollback,
    now: Timestamp,
) {
    match history
        .iter_mut()
        .rev()
        .find(|r| r.digest == rollback.rejected && r.outcome.is_none())
    {
        Some(record) => {
            record.finished = Some(Time(now));
            record.outcome = Some(RolloutOutcome::RolledBack);
            record.reason = Some(rollback.reason.to_owned());
        }
        None => history.push(RolloutRecord {
            digest: rollback.rejected.clone(),
            started: Time(now),
            finished: Some(Time(now)),
            outcome: Some(RolloutOutcome::RolledBack),
            reason: Some(rollback.reason.to_owned()),
            available: None,
        }),
    }
    image.rejected_digests.retain(|d| *d != rollback.rejected);
    image.rejected_digests.push(rollback.rejected.clone());
    image.rejections.retain(|r| r.digest != rollback.rejected);
    image.rejections.push(Rejection {
        digest: rollback.rejected.clone(),
        reason: rollback.reason.to_owned(),
        message: rollback.failure.clone(),
        at: Time(now),
    });
    if image.rejected_digests.len() > REJECTED_LIMIT {
        let excess = image.rejected_digests.len() - REJECTED_LIMIT;
        image.rejected_digests.drain(..excess);
    }
    // Reasons only for digests still rejected (older statuses may lack some).
    let kept = image.rejected_digests.clone();
    image.rejections.retain(|r| kept.contains(&r.digest));
}

/// `Degraded=RolledBack`, when this reconcile rolled back, and kept (sticky) afterwards until a
/// new digest moves forward: the tag still points at the rejected digest, which a user needs to
/// know about. Sticky over failures too: right after a rollback the Deployments can still report
/// the deadline the rejected template exceeded (`Ready` reports a real failure either way).
/// `None` when no rollback is the story.
pub fn degraded_condition(
    rollback: Option<&Rollback>,
    previous: &TradingAgentStatus,
    moves_forward: bool,
    generation: Option<i64>,
    now: Timestamp,
) -> Option<Condition> {
    if let Some(rollback) = rollback {
        return Some(condition(
            types::DEGRADED,
            true,
            reasons::ROLLED_BACK,
            rollback.message.clone(),
            generation,
            now,
        ));
    }
    let still_rolled_back = !moves_forward
        && previous
            .history
            .last()
            .is_some_and(|r| r.outcome == Some(RolloutOutcome::RolledBack));
    if !still_rolled_back {
        return None;
    }
    let previous_degraded = find_condition(&previous.conditions, types::DEGRADED)
        .filter(|c| c.status == "True" && c.reason == reasons::ROLLED_BACK);
    Some(match previous_degraded {
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
    })
}

/// A role whose Deployment runs `digest` and exceeded its progress deadline: "role: message".
fn failed_rollout(deployments: &[(Role, Option<Deployment>)], digest: &Digest) -> Option<String> {
    deployments.iter().find_map(|(role, deployment)| {
        let deployment = deployment.as_ref()?;
        let running = deployment
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .and_then(|p| p.containers.first())
            .and_then(|c| c.image.as_deref())
            .and_then(digest_of)?;
        if running != *digest {
            return None;
        }
        match rollout_state(Some(deployment)) {
            RolloutState::Failed { reason, message }
                if reason == reasons::PROGRESS_DEADLINE_EXCEEDED =>
            {
                Some(format!("{role}: {message}"))
            }
            _ => None,
        }
    })
}

/// The open rollout of `digest` in `history` that became Available (the verification runs
/// from then).
pub fn available_since(history: &[RolloutRecord], digest: &str) -> Option<Timestamp> {
    history
        .iter()
        .rev()
        .find(|r| r.digest == digest && r.outcome.is_none())?
        .available
        .as_ref()
        .map(|t| t.0)
}

/// `spec.imageUpdate.verify` as a duration.
pub fn verify_window(agent: &TradingAgent) -> Duration {
    agent
        .spec
        .image_update
        .verify_window()
        .unwrap_or(DEFAULT_VERIFY_WINDOW)
}

/// Decide what to pin from the pinner's answer, the previous status, the Deployments as they are
/// now (before this reconcile applies anything) and every pod of the TradingAgent.
pub fn decide(
    agent: &TradingAgent,
    resolved: ImageOutcome,
    deployments: &[(Role, Option<Deployment>)],
    pods: &[Pod],
    now: Timestamp,
) -> PinDecision {
    let plain = |image| PinDecision {
        image,
        rollback: None,
        verification: None,
        fault: None,
    };
    let Ok(reference) = ImageReference::parse(&agent.spec.image) else {
        return plain(resolved);
    };
    if reference.digest().is_some() {
        return plain(resolved);
    }
    let status = agent.status.as_ref();
    let previous = status.and_then(|s| s.image.as_ref());
    let rejected: Vec<&str> = previous
        .map(|i| i.rejected_digests.iter().map(String::as_str).collect())
        .unwrap_or_default();
    let current = current_pin(agent, &reference);

    // 1. The pinned digest failed to roll out, or failed its verification: go back to the last
    //    healthy one, unless the environment is to blame.
    let mut verification = None;
    let mut fault = None;
    if agent.spec.image_update.rollback == RollbackPolicy::Auto
        && let Some(current) = &current
        && let Some(healthy) = previous
            .and_then(|i| i.last_healthy_digest.as_deref())
            .and_then(|d| Digest::parse(d).ok())
        && healthy != *current.digest()
    {
        let bad = current.digest();
        verification = status
            .and_then(|s| available_since(&s.history, bad.as_str()))
            .map(|available| verify::verify(pods, bad, available, verify_window(agent), now));
        let failure = match (failed_rollout(deployments, bad), &verification) {
            (Some(failure), _) => Some((reasons::PROGRESS_DEADLINE_EXCEEDED, failure)),
            (None, Some(Verification::Failed { reason, message })) => {
                Some((*reason, message.clone()))
            }
            _ => None,
        };
        if let Some((reason, failure)) = failure {
            match verify::blame(pods, bad, now) {
                Blame::Digest => {
                    let message = format!(
                        "the rollout of {bad} failed ({reason}: {failure}); rolled back to the last healthy digest {healthy}; {bad} is rejected until the tag points elsewhere"
                    );
                    return PinDecision {
                        image: ImageOutcome::Kept {
                            pinned: reference.pinned_to(healthy.clone()),
                            problem: Error::DigestRejected(format!(
                                "{reference} points at {bad}, whose rollout failed"
                            )),
                        },
                        rollback: Some(Rollback {
                            rejected: bad.to_string(),
                            restored: healthy.to_string(),
                            message,
                            reason,
                            failure,
                        }),
                        verification,
                        fault: None,
                    };
                }
                Blame::Environment {
                    reason: fault_reason,
                    message,
                } => {
                    fault = Some(EnvironmentFault {
                        reason: fault_reason,
                        message: format!(
                            "the rollout of {bad} failed ({reason}: {failure}), but the environment is blamed: {message}; nothing is rejected, the pin stays on {bad} and the rollout is judged again"
                        ),
                    });
                }
            }
        }
    }
    let plain = |image| PinDecision {
        image,
        rollback: None,
        verification: verification.clone(),
        fault: fault.clone(),
    };

    // 2. The tag still points at a rejected digest: stay where we are.
    if let ImageOutcome::Pinned(resolved_pin) = &resolved
        && rejected.contains(&resolved_pin.digest().as_str())
    {
        let problem = Error::DigestRejected(format!(
            "{} points at {}, whose rollout failed; it is not retried until the tag points elsewhere",
            reference,
            resolved_pin.digest()
        ));
        return plain(match current {
            Some(pinned) if pinned.digest() != resolved_pin.digest() => {
                ImageOutcome::Kept { pinned, problem }
            }
            Some(_) => resolved,
            None => ImageOutcome::Unresolved(problem),
        });
    }

    // 3. Whatever the pinner found (a new digest rolls forward).
    plain(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::reference::PinnedImage;
    use crate::reconcile::build::desired_deployment;
    use crate::resource::{ImageStatus, TradingAgentSpec, TradingAgentStatus};
    use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentStatus};

    const IMAGE: &str = "registry.example.com/acme/app:stable";
    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
    const D3: &str = "sha256:3333333333333333333333333333333333333333333333333333333333333333";

    fn agent(
        image: &str,
        pinned: Option<&str>,
        healthy: Option<&str>,
        rejected: &[&str],
    ) -> TradingAgent {
        let spec: TradingAgentSpec = serde_json::from_value(serde_json::json!({
            "image": image,
            "database": {"secretRef": {"name": "db", "key": "url"}},
        }))
        .unwrap();
        let mut a = TradingAgent::new("alpha", spec);
        a.metadata.namespace = Some("desk".into());
        a.metadata.uid = Some("uid".into());
        a.status = Some(TradingAgentStatus {
            image: Some(ImageStatus {
                reference: image.into(),
                digest: pinned.map(str::to_owned),
                last_healthy_digest: healthy.map(str::to_owned),
                rejected_digests: rejected.iter().map(|d| (*d).to_owned()).collect(),
                ..ImageStatus::default()
            }),
            ..TradingAgentStatus::default()
        });
        a
    }

    fn t0() -> Timestamp {
        Timestamp::from_second(1_700_000_000).unwrap()
    }

    /// A pod of the last healthy digest D1, ready long before, and a pod of D2 unready since
    /// 20 s: evidence that a failure of D2 is its own fault.
    fn witness() -> Vec<Pod> {
        vec![ready_pod("old", D1, 0), pod("new", D2, "api", false, 20)]
    }

    fn ready_pod(name: &str, digest: &str, since: i64) -> Pod {
        pod(name, digest, "api", true, since)
    }

    fn pod(name: &str, digest: &str, role: &str, ready: bool, since: i64) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": {"app.kubernetes.io/component": role}},
            "spec": {"containers": [{"name": "app", "image": format!("{IMAGE}@{digest}")}]},
            "status": {"conditions": [{
                "type": "Ready",
                "status": if ready { "True" } else { "False" },
                "lastTransitionTime": Timestamp::from_second(1_700_000_000 + since).unwrap().to_string(),
            }]},
        }))
        .unwrap()
    }

    fn pin(digest: &str) -> PinnedImage {
        ImageReference::parse(IMAGE)
            .unwrap()
            .pinned_to(Digest::parse(digest).unwrap())
    }

    /// The three Deployments running `digest`; `failed` ones exceeded their deadline.
    fn deployments(
        a: &TradingAgent,
        digest: &str,
        failed: &[Role],
    ) -> Vec<(Role, Option<Deployment>)> {
        Role::ALL
            .into_iter()
            .map(|role| {
                let mut d = desired_deployment(a, role, &pin(digest)).unwrap();
                d.metadata.generation = Some(2);
                let conditions = failed.contains(&role).then(|| {
                    vec![DeploymentCondition {
                        type_: "Progressing".into(),
                        status: "False".into(),
                        reason: Some("ProgressDeadlineExceeded".into()),
                        message: Some("ReplicaSet has timed out progressing.".into()),
                        ..DeploymentCondition::default()
                    }]
                });
                d.status = Some(DeploymentStatus {
                    observed_generation: Some(2),
                    replicas: Some(2),
                    updated_replicas: Some(1),
                    ready_replicas: Some(1),
                    conditions,
                    ..DeploymentStatus::default()
                });
                (role, Some(d))
            })
            .collect()
    }

    /// `agent` with an open rollout of `digest` that became Available at `available`.
    fn verifying(mut a: TradingAgent, digest: &str, available: i64) -> TradingAgent {
        let status = a.status.get_or_insert_default();
        status.history.push(RolloutRecord {
            digest: digest.into(),
            started: Time(t(available - 5)),
            finished: None,
            outcome: None,
            reason: None,
            available: Some(Time(t(available))),
        });
        a
    }

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    #[test]
    fn a_digest_whose_pods_turn_unready_within_the_window_is_rolled_back() {
        let a = verifying(agent(IMAGE, Some(D2), Some(D1), &[]), D2, 10);
        let ds = deployments(&a, D2, &[]);
        // Healthy so far: watched until the window ends (60 s by default).
        let healthy = [
            pod("api", D2, "api", true, 8),
            pod("bot", D2, "bot", true, 8),
        ];
        let d = decide(&a, ImageOutcome::Pinned(pin(D2)), &ds, &healthy, t(30));
        assert_eq!(d.rollback, None);
        assert_eq!(
            d.verification,
            Some(Verification::Watching { until: t(70) })
        );
        // The bot's pod of D2 lost readiness at 40 s; the api's stays ready: D2 is to blame.
        let bot_unready = [
            pod("api", D2, "api", true, 8),
            pod("bot", D2, "bot", false, 40),
        ];
        let d = decide(&a, ImageOutcome::Pinned(pin(D2)), &ds, &bot_unready, t(41));
        let rollback = d.rollback.expect("a rollback");
        assert_eq!(rollback.reason, "BecameUnready");
        assert_eq!(
            (rollback.rejected.as_str(), rollback.restored.as_str()),
            (D2, D1)
        );
        assert!(rollback.failure.contains("pod bot"), "{}", rollback.failure);
        assert!(
            rollback.message.contains("BecameUnready"),
            "the event names the reason: {}",
            rollback.message
        );
        assert_eq!(d.image.pinned().unwrap().digest().as_str(), D1);
        assert_eq!(d.fault, None);
    }

    #[test]
    fn a_restart_within_the_window_is_a_crash_loop() {
        let a = verifying(agent(IMAGE, Some(D2), Some(D1), &[]), D2, 10);
        let ds = deployments(&a, D2, &[]);
        let mut crashed = pod("bot", D2, "bot", true, 30);
        crashed.status.as_mut().unwrap().container_statuses = Some(vec![
            serde_json::from_value(serde_json::json!({
                "name": "app", "image": "", "imageID": "", "ready": true, "restartCount": 3,
                "lastState": {"terminated": {"exitCode": 101, "finishedAt": t(29).to_string()}},
            }))
            .unwrap(),
        ]);
        let pods = [pod("api", D2, "api", true, 8), crashed];
        let d = decide(&a, ImageOutcome::Pinned(pin(D2)), &ds, &pods, t(31));
        let rollback = d.rollback.expect("a rollback");
        assert_eq!(rollback.reason, "CrashLoop");
        assert!(
            rollback.failure.contains("restarted 3 times"),
            "{}",
            rollback.failure
        );
    }

    #[test]
    fn everyone_unready_blames_the_environment_and_rejects_nothing() {
        // Within the window: every pod of every role lost readiness (the database is down).
        let a = verifying(agent(IMAGE, Some(D2), Some(D1), &[]), D2, 10);
        let ds = deployments(&a, D2, &[]);
        let outage = [
            pod("api", D2, "api", false, 40),
            pod("bot", D2, "bot", false, 40),
            pod("strategy", D2, "strategy", false, 41),
        ];
        let d = decide(&a, ImageOutcome::Pinned(pin(D2)), &ds, &outage, t(42));
        assert_eq!(d.rollback, None, "nothing is rejected");
        assert_eq!(d.image, ImageOutcome::Pinned(pin(D2)), "the pin stays");
        let fault = d.fault.expect("the environment is blamed");
        assert_eq!(fault.reason, "EnvironmentUnhealthy");
        assert!(
            fault.message.contains("BecameUnready") && fault.message.contains("all 3 pods"),
            "{}",
            fault.message
        );

        // During the rollout: the deadline passes while the old digest's pods are unready too.
        let a = agent(IMAGE, Some(D2), Some(D1), &[]);
        let failed = deployments(&a, D2, &[Role::Api]);
        let outage = [
            pod("old-api", D1, "api", false, 20),
            pod("new-api", D2, "api", false, 15),
        ];
        let d = decide(&a, ImageOutcome::Pinned(pin(D2)), &failed, &outage, t(42));
        assert_eq!(d.rollback, None);
        assert_eq!(d.fault.unwrap().reason, "EnvironmentUnhealthy");

        // The database came back: the old digest's pod is ready again, but only since after the
        // new pod began failing: the environment is recovering, judged again later.
        let recovering = [
            pod("old-api", D1, "api", true, 40),
            pod("new-api", D2, "api", false, 15),
        ];
        let d = decide(
            &a,
            ImageOutcome::Pinned(pin(D2)),
            &failed,
            &recovering,
            t(42),
        );
        assert_eq!(d.rollback, None);
        assert!(d.fault.unwrap().message.contains("recovering"));
        // Ready that long while the new pod still fails: the environment has recovered, the
        // digest is to blame.
        let d = decide(
            &a,
            ImageOutcome::Pinned(pin(D2)),
            &failed,
            &recovering,
            t(70),
        );
        assert_eq!(d.rollback.unwrap().reason, "ProgressDeadlineExceeded");

        // The old digest's pod stayed ready all along: the new digest is to blame.
        let evidence = [
            pod("old-api", D1, "api", true, 0),
            pod("new-api", D2, "api", false, 15),
        ];
        let d = decide(&a, ImageOutcome::Pinned(pin(D2)), &failed, &evidence, t(42));
        assert_eq!(d.rollback.unwrap().reason, "ProgressDeadlineExceeded");
    }

    #[test]
    fn a_stale_deadline_with_every_new_pod_ready_blames_nothing_on_the_digest() {
        // The database came back: the new pods are ready, the Deployment still reports the
        // deadline it exceeded during the outage.
        let a = agent(IMAGE, Some(D2), Some(D1), &[]);
        let failed = deployments(&a, D2, &[Role::Api]);
        let recovered = [ready_pod("old", D1, 40), ready_pod("new", D2, 40)];
        let d = decide(
            &a,
            ImageOutcome::Pinned(pin(D2)),
            &failed,
            &recovered,
            t(41),
        );
        assert_eq!(d.rollback, None);
        assert!(d.fault.unwrap().message.contains("no pod of"));
    }

    #[test]
    fn unschedulable_pods_blame_the_environment() {
        let a = agent(IMAGE, Some(D2), Some(D1), &[]);
        let failed = deployments(&a, D2, &[Role::Bot]);
        let pending: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "bot-new", "labels": {"app.kubernetes.io/component": "bot"}},
            "spec": {"containers": [{"name": "app", "image": format!("{IMAGE}@{D2}")}]},
            "status": {"conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]},
        }))
        .unwrap();
        let pods = [ready_pod("old", D1, 0), pending];
        let d = decide(&a, ImageOutcome::Pinned(pin(D2)), &failed, &pods, t(42));
        assert_eq!(d.rollback, None);
        let fault = d.fault.unwrap();
        assert_eq!(fault.reason, "Unschedulable");
        assert!(fault.message.contains("bot-new"), "{}", fault.message);
    }

    #[test]
    fn no_verification_without_a_digest_to_roll_back_to() {
        // A first rollout (nothing healthy yet) and rollback Never are not verified.
        let first = verifying(agent(IMAGE, Some(D2), None, &[]), D2, 10);
        let ds = deployments(&first, D2, &[]);
        let unready = [pod("bot", D2, "bot", false, 40), ready_pod("api", D2, 0)];
        let d = decide(&first, ImageOutcome::Pinned(pin(D2)), &ds, &unready, t(41));
        assert_eq!((d.verification, d.rollback), (None, None));
        let mut never = verifying(agent(IMAGE, Some(D2), Some(D1), &[]), D2, 10);
        never.spec.image_update.rollback = RollbackPolicy::Never;
        let d = decide(&never, ImageOutcome::Pinned(pin(D2)), &ds, &unready, t(41));
        assert_eq!((d.verification, d.rollback), (None, None));
    }

    #[test]
    fn a_failed_new_digest_is_rolled_back_to_the_last_healthy_one() {
        let a = agent(IMAGE, Some(D2), Some(D1), &[]);
        let d = decide(
            &a,
            ImageOutcome::Pinned(pin(D2)),
            &deployments(&a, D2, &[Role::Bot]),
            &witness(),
            t0(),
        );
        let rollback = d.rollback.expect("a rollback");
        assert_eq!(
            (rollback.rejected.as_str(), rollback.restored.as_str()),
            (D2, D1)
        );
        assert!(rollback.message.contains(D1) && rollback.message.contains(D2));
        assert!(rollback.message.contains("bot: "), "{}", rollback.message);
        match d.image {
            ImageOutcome::Kept { pinned, problem } => {
                assert_eq!(pinned.digest().as_str(), D1);
                assert_eq!(problem.reason(), "DigestRejected");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn no_rollback_when_policy_is_never_or_nothing_is_healthy_or_all_is_well() {
        let mut never = agent(IMAGE, Some(D2), Some(D1), &[]);
        never.spec.image_update.rollback = RollbackPolicy::Never;
        let failed = deployments(&never, D2, &[Role::Api]);
        assert_eq!(
            decide(
                &never,
                ImageOutcome::Pinned(pin(D2)),
                &failed,
                &witness(),
                t0()
            )
            .rollback,
            None
        );

        let first = agent(IMAGE, Some(D2), None, &[]);
        assert_eq!(
            decide(
                &first,
                ImageOutcome::Pinned(pin(D2)),
                &failed,
                &witness(),
                t0()
            )
            .rollback,
            None
        );

        let healthy = agent(IMAGE, Some(D1), Some(D1), &[]);
        let failed_healthy = deployments(&healthy, D1, &[Role::Api]);
        assert_eq!(
            decide(
                &healthy,
                ImageOutcome::Pinned(pin(D1)),
                &failed_healthy,
                &witness(),
                t0()
            )
            .rollback,
            None,
            "the last healthy digest itself is never rolled back"
        );

        let fine = agent(IMAGE, Some(D2), Some(D1), &[]);
        let d = decide(
            &fine,
            ImageOutcome::Pinned(pin(D2)),
            &deployments(&fine, D2, &[]),
            &witness(),
            t0(),
        );
        assert_eq!(
            d,
            PinDecision {
                image: ImageOutcome::Pinned(pin(D2)),
                rollback: None,
                verification: None,
                fault: None,
            }
        );
    }

    #[test]
    fn a_failure_of_another_template_or_an_unobserved_generation_does_not_count() {
        let a = agent(IMAGE, Some(D2), Some(D1), &[]);
        // The Deployments still run D1 (the failure is about an older template).
        let older = deployments(&a, D1, &[Role::Api]);
        assert_eq!(
            decide(&a, ImageOutcome::Pinned(pin(D2)), &older, &witness(), t0()).rollback,
            None
        );
        // A new generation not yet observed: its old conditions are stale.
        let mut stale = deployments(&a, D2, &[Role::Api]);
        stale[0].1.as_mut().unwrap().metadata.generation = Some(3);
        assert_eq!(
            decide(&a, ImageOutcome::Pinned(pin(D2)), &stale, &witness(), t0()).rollback,
            None
        );
    }

    #[test]
    fn a_rejected_digest_keeps_the_current_pin_until_the_tag_moves() {
        let a = agent(IMAGE, Some(D1), Some(D1), &[D2]);
        let ds = deployments(&a, D1, &[]);
        match decide(&a, ImageOutcome::Pinned(pin(D2)), &ds, &witness(), t0()).image {
            ImageOutcome::Kept { pinned, problem } => {
                assert_eq!(pinned.digest().as_str(), D1);
                assert_eq!(problem.reason(), "DigestRejected");
                assert!(problem.to_string().contains(D2));
            }
            other => panic!("{other:?}"),
        }
        // The tag moved: roll forward.
        assert_eq!(
            decide(&a, ImageOutcome::Pinned(pin(D3)), &ds, &witness(), t0()),
            PinDecision {
                image: ImageOutcome::Pinned(pin(D3)),
                rollback: None,
                verification: None,
                fault: None,
            }
        );
        // Nothing pinned for this reference: a rejected digest is still not deployed.
        let fresh = agent(IMAGE, None, None, &[D2]);
        assert!(matches!(
            decide(&fresh, ImageOutcome::Pinned(pin(D2)), &[], &witness(), t0()).image,
            ImageOutcome::Unresolved(b) if b.reason() == "DigestRejected"
        ));
    }

    #[test]
    fn registry_failures_and_digests_in_spec_pass_through() {
        let a = agent(IMAGE, Some(D1), Some(D1), &[D2]);
        let kept = ImageOutcome::Kept {
            pinned: pin(D1),
            problem: Error::RegistryUnreachable {
                host: "r".into(),
                detail: "down".into(),
            },
        };
        assert_eq!(decide(&a, kept.clone(), &[], &witness(), t0()).image, kept);
        let by_digest = format!("{IMAGE}@{D2}");
        let explicit = agent(&by_digest, Some(D2), Some(D1), &[D2]);
        let given = ImageOutcome::Pinned(pin(D2));
        let failed = deployments(&explicit, D2, &[Role::Api]);
        assert_eq!(
            decide(&explicit, given.clone(), &failed, &witness(), t0()),
            PinDecision {
                image: given,
                rollback: None,
                verification: None,
                fault: None,
            },
            "a digest written in spec.image is the user's choice"
        );
    }

    #[test]
    fn a_cleared_rejection_rolls_out_again_and_each_value_acts_once() {
        let annotate = |a: &mut TradingAgent, value: Option<&str>| {
            let annotations = a.metadata.annotations.get_or_insert_default();
            match value {
                Some(v) => annotations.insert(CLEAR_REJECTED_ANNOTATION.into(), v.into()),
                None => annotations.remove(CLEAR_REJECTED_ANNOTATION),
            };
        };
        let rejected = |a: &TradingAgent| {
            a.status
                .as_ref()
                .unwrap()
                .image
                .as_ref()
                .unwrap()
                .rejected_digests
                .clone()
        };
        let mut a = agent(IMAGE, Some(D1), Some(D1), &[D2, D3]);
        assert_eq!(clear_rejections(&a), None, "no annotation, nothing to do");

        annotate(&mut a, Some(D2));
        let cleared = clear_rejections(&a).expect("a new value");
        assert_eq!(rejected(&cleared), [D3]);
        // The tag still points at D2: no longer rejected, it rolls forward.
        let ds = deployments(&cleared, D1, &[]);
        assert_eq!(
            decide(
                &cleared,
                ImageOutcome::Pinned(pin(D2)),
                &ds,
                &witness(),
                t0()
            )
            .image,
            ImageOutcome::Pinned(pin(D2))
        );
        // Acted on once: D2 rejected again later stays rejected under the same value.
        let mut later = cleared.clone();
        later
            .status
            .as_mut()
            .unwrap()
            .image
            .as_mut()
            .unwrap()
            .rejected_digests
            .push(D2.into());
        assert_eq!(clear_rejections(&later), None);

        // A new value (anything unknown in the list is ignored) clears everything again.
        annotate(&mut later, Some("all,2"));
        let all = clear_rejections(&later).expect("a new value");
        assert!(rejected(&all).is_empty());
        // Removing the annotation forgets the value, so it can be used again.
        let mut removed = all.clone();
        annotate(&mut removed, None);
        let forgotten = clear_rejections(&removed).expect("forget the value");
        assert_eq!(
            forgotten.status.unwrap().image.unwrap().cleared_rejections,
            None
        );
    }

    #[test]
    fn the_current_pin_belongs_to_the_current_reference() {
        let mut a = agent(IMAGE, Some(D1), None, &[]);
        let reference = ImageReference::parse(IMAGE).unwrap();
        assert_eq!(current_pin(&a, &reference), Some(pin(D1)));
        a.spec.image = "registry.example.com/acme/app:next".into();
        assert_eq!(current_pin(&a, &reference), None);
    }

    #[test]
    fn record_closes_the_failed_rollout_and_bounds_the_rejected_digests() {
        let rollback = |bad: &str| Rollback {
            rejected: bad.into(),
            restored: D1.into(),
            message: "m".into(),
            reason: "ProgressDeadlineExceeded",
            failure: "api: timed out".into(),
        };
        let t = |s: i64| Timestamp::from_second(1_700_000_000 + s).unwrap();
        let mut image = ImageStatus::default();
        let mut history = vec![RolloutRecord {
            digest: D2.into(),
            started: Time(t(0)),
            finished: None,
            outcome: None,
            reason: None,
            available: None,
        }];
        record(&mut image, &mut history, &rollback(D2), t(5));
        assert_eq!(
            history.len(),
            1,
            "the open rollout is closed, not duplicated"
        );
        assert_eq!(history[0].outcome, Some(RolloutOutcome::RolledBack));
        assert_eq!(history[0].finished, Some(Time(t(5))));
        assert_eq!(
            history[0].reason.as_deref(),
            Some("ProgressDeadlineExceeded")
        );
        assert_eq!(image.rejected_digests, vec![D2.to_owned()]);
        assert_eq!(
            image.rejections,
            vec![Rejection {
                digest: D2.into(),
                reason: "ProgressDeadlineExceeded".into(),
                message: "api: timed out".into(),
                at: Time(t(5)),
            }]
        );
        // A digest with no open rollout gets a record of its own; a repeat is not listed twice.
        record(&mut image, &mut history, &rollback(D3), t(6));
        record(&mut image, &mut history, &rollback(D2), t(7));
        assert_eq!(history.len(), 3);
        assert_eq!(image.rejected_digests, vec![D3.to_owned(), D2.to_owned()]);
        for i in 0..REJECTED_LIMIT {
            record(
                &mut image,
                &mut history,
                &rollback(&format!("sha256:{i:064x}")),
                t(8),
            );
        }
        assert_eq!(image.rejected_digests.len(), REJECTED_LIMIT);
        assert_eq!(
            image.rejections.len(),
            REJECTED_LIMIT,
            "one reason per rejected digest"
        );
        assert_eq!(image.rejections[0].digest, image.rejected_digests[0]);
    }

    #[test]
    fn degraded_stays_rolled_back_until_a_new_digest_moves_forward() {
        let t = Timestamp::from_second(1_700_000_000).unwrap();
        let rollback = Rollback {
            rejected: D2.into(),
            restored: D1.into(),
            message: "D2 failed; back on D1".into(),
            reason: "ProgressDeadlineExceeded",
            failure: "api: timed out".into(),
        };
        let now = degraded_condition(
            Some(&rollback),
            &TradingAgentStatus::default(),
            false,
            Some(1),
            t,
        )
        .expect("a rollback is the story");
        assert_eq!(
            (now.status.as_str(), now.reason.as_str()),
            ("True", "RolledBack")
        );
        assert_eq!(now.message, rollback.message);

        let mut previous = TradingAgentStatus {
            conditions: vec![now.clone()],
            ..TradingAgentStatus::default()
        };
        record(
            &mut ImageStatus::default(),
            &mut previous.history,
            &rollback,
            t,
        );
        let later = Timestamp::from_second(1_700_000_100).unwrap();
        let kept = degraded_condition(None, &previous, false, Some(2), later).expect("sticky");
        assert_eq!(kept.last_transition_time, now.last_transition_time);
        assert_eq!(kept.observed_generation, Some(2));
        assert_eq!(
            degraded_condition(None, &previous, true, Some(2), later),
            None,
            "moving forward ends it"
        );
        assert_eq!(
            degraded_condition(None, &TradingAgentStatus::default(), false, Some(2), later),
            None,
            "no rollback, no story"
        );
    }
}
