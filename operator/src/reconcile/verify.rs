//! Verification after a rollout, and blame from evidence (pure; issue 14, parts 2 and 3). The
//! decide stage ([`super::rollback::decide`]) calls both, on the pods the controller watches
//! ([`super::pods`]):
//!
//! - [`verify`]: after a new digest became Available, its pods are watched for a window
//!   (`spec.imageUpdate.verify`). A container of the new digest that restarted, or a pod of it
//!   that lost readiness, after the digest became Available fails the verification (`CrashLoop`,
//!   `BecameUnready`); while the window runs the rollout is still being verified (`Progressing`
//!   says so, `Ready` waits).
//! - [`blame`]: a failure rejects the digest only when the evidence points at it: the new
//!   digest's pods fail while the previous digest's pods, or other roles' pods, stay ready (and
//!   have been ready since before the failure began). When every pod is unready whatever its
//!   digest and role (the database is down for everyone), when the only ready pods became ready
//!   after the failure began (the environment is recovering), or when pods cannot be scheduled,
//!   the environment is at fault: nothing is rejected.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;

use crate::digest::reference::{Digest, digest_of};
pub use crate::resource::conditions::reasons::{
    BECAME_UNREADY, CRASH_LOOP, ENVIRONMENT_UNHEALTHY, UNSCHEDULABLE,
};

const COMPONENT_LABEL: &str = "app.kubernetes.io/component";

/// How long pods that became ready only after the new digest's pods began failing are taken for
/// an environment still recovering; once ready this long, they are evidence against the digest.
pub const RECOVERY_GRACE: Duration = Duration::from_secs(30);

/// Where the verification of a digest stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verification {
    /// The window is over and nothing failed: the digest is verified.
    Passed,
    /// Within the window and healthy so far: watched until `until`.
    Watching {
        /// When the window ends.
        until: Timestamp,
    },
    /// A pod of the digest restarted or lost readiness within the window.
    Failed {
        /// [`CRASH_LOOP`] or [`BECAME_UNREADY`].
        reason: &'static str,
        /// Which pod, and what happened.
        message: String,
    },
}

/// Who a failure is blamed on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Blame {
    /// The new digest: reject it and roll back.
    Digest,
    /// The environment: keep the pin, reject nothing, retry later.
    Environment {
        /// [`UNSCHEDULABLE`] or [`ENVIRONMENT_UNHEALTHY`].
        reason: &'static str,
        /// What the evidence is.
        message: String,
    },
}

/// The digest a pod runs: its first container's image as pinned by the operator, else the
/// `imageID` its runtime reports.
pub fn pod_digest(pod: &Pod) -> Option<Digest> {
    let pinned = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.as_deref())
        .and_then(digest_of);
    pinned.or_else(|| {
        let status = pod.status.as_ref()?.container_statuses.as_ref()?.first()?;
        digest_of(&status.image_id)
    })
}

fn pod_role(pod: &Pod) -> Option<&str> {
    pod.labels().get(COMPONENT_LABEL).map(String::as_str)
}

/// The pod's `Ready` condition, if it has one: (ready, since).
fn readiness(pod: &Pod) -> Option<(bool, Option<Timestamp>)> {
    let condition = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")?;
    Some((
        condition.status == "True",
        condition.last_transition_time.as_ref().map(|t| t.0),
    ))
}

/// When the pod's last container restart happened (its previous run's end).
fn last_restart(pod: &Pod) -> Option<Timestamp> {
    pod.status
        .as_ref()?
        .container_statuses
        .iter()
        .flatten()
        .filter_map(|c| {
            c.last_state
                .as_ref()?
                .terminated
                .as_ref()?
                .finished_at
                .as_ref()
        })
        .map(|t| t.0)
        .max()
}

fn pod_name(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or("<unnamed>")
}

fn is_ready(pod: &Pod) -> bool {
    readiness(pod).is_some_and(|(ready, _)| ready)
}

fn is_unschedulable(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.type_ == "PodScheduled"
                    && c.status == "False"
                    && c.reason.as_deref() == Some("Unschedulable")
            })
        })
}

/// Whether `pod` is being deleted (old pods of a finished rollout; they no longer count).
fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// Where the verification of `digest` stands at `now`, given its pods and when it became
/// Available. A zero `window` passes at once.
pub fn verify(
    pods: &[Pod],
    digest: &Digest,
    available_at: Timestamp,
    window: Duration,
    now: Timestamp,
) -> Verification {
    let until = SignedDuration::try_from(window)
        .ok()
        .and_then(|w| available_at.checked_add(w).ok())
        .unwrap_or(Timestamp::MAX);
    for pod in pods
        .iter()
        .filter(|p| !is_terminating(p) && pod_digest(p).as_ref() == Some(digest))
    {
        let Some(status) = pod.status.as_ref() else {
            continue;
        };
        for container in status.container_statuses.iter().flatten() {
            let restarted_at = container
                .last_state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .and_then(|t| t.finished_at.as_ref())
                .map(|t| t.0);
            if let Some(at) = restarted_at
                && at >= available_at
                && at <= until
            {
                return Verification::Failed {
                    reason: CRASH_LOOP,
                    message: format!(
                        "pod {} container {} restarted {} times, last at {at}, after {digest} became available",
                        pod_name(pod),
                        container.name,
                        container.restart_count
                    ),
                };
            }
        }
        // A pod created after the rollout became Available (a scale-up, a replacement) starts
        // unready until its probe passes: that is not a loss of readiness.
        let counted = pod
            .metadata
            .creation_timestamp
            .as_ref()
            .is_none_or(|created| created.0 <= available_at);
        let lost_readiness = status.conditions.iter().flatten().find(|c| {
            counted
                && c.type_ == "Ready"
                && c.status == "False"
                && c.last_transition_time
                    .as_ref()
                    .is_some_and(|t| t.0 >= available_at && t.0 <= until)
        });
        if let Some(condition) = lost_readiness {
            return Verification::Failed {
                reason: BECAME_UNREADY,
                message: format!(
                    "pod {} became unready after {digest} became available: {}",
                    pod_name(pod),
                    condition.message.as_deref().unwrap_or("no message")
                ),
            };
        }
    }
    if now < until {
        Verification::Watching { until }
    } else {
        Verification::Passed
    }
}

/// Who a failure of `digest` is blamed on, from every pod of the TradingAgent (all roles, all
/// digests). The environment when a pod of the digest cannot be scheduled, when none of its pods
/// fails (unready or restarted) now, or when no pod of another digest or another role has stayed ready since the digest's pods began failing (all
/// unready: the database down for everyone; or ready only since: the environment recovering,
/// for at most [`RECOVERY_GRACE`]). Otherwise the digest.
pub fn blame(pods: &[Pod], digest: &Digest, now: Timestamp) -> Blame {
    let live: Vec<&Pod> = pods.iter().filter(|p| !is_terminating(p)).collect();
    let of_digest: Vec<&Pod> = live
        .iter()
        .copied()
        .filter(|p| pod_digest(p).as_ref() == Some(digest))
        .collect();
    if let Some(pod) = of_digest.iter().find(|p| is_unschedulable(p)) {
        return Blame::Environment {
            reason: UNSCHEDULABLE,
            message: format!(
                "pod {} of {digest} cannot be scheduled: no node has room",
                pod_name(pod)
            ),
        };
    }
    // The digest's failing pods (unready, or restarted), their roles, and when they began failing.
    let failing: Vec<&Pod> = of_digest
        .iter()
        .copied()
        .filter(|p| !is_ready(p) || last_restart(p).is_some())
        .collect();
    if failing.is_empty() {
        // No evidence against the digest: the failure reported (a deadline the Deployment has not
        // yet cleared, pods that cannot be created) is not its pods'.
        return Blame::Environment {
            reason: ENVIRONMENT_UNHEALTHY,
            message: format!(
                "no pod of {digest} is unready or restarted now: the failure is not its pods' (the environment recovered, or pods cannot be created)"
            ),
        };
    }
    let failing_roles: Vec<&str> = failing.iter().filter_map(|p| pod_role(p)).collect();
    let failed_since = failing
        .iter()
        .filter_map(|p| match readiness(p) {
            Some((false, since)) => since,
            _ => last_restart(p),
        })
        .min();
    // Evidence against the digest: a pod of another digest, or of a role whose pods of this
    // digest do not fail, ready since before the failure began (or for the recovery grace).
    let grace = SignedDuration::try_from(RECOVERY_GRACE).unwrap_or(SignedDuration::ZERO);
    let witness = live.iter().any(|p| {
        let other = pod_digest(p).as_ref() != Some(digest)
            || pod_role(p).is_some_and(|r| !failing_roles.contains(&r));
        other
            && match readiness(p) {
                Some((true, Some(since))) => {
                    failed_since.is_none_or(|failed| since <= failed)
                        || now.duration_since(since) >= grace
                }
                Some((true, None)) => true,
                _ => false,
            }
    });
    if witness {
        return Blame::Digest;
    }
    let ready = live.iter().filter(|p| is_ready(p)).count();
    let message = if ready == 0 {
        format!(
            "all {} pods are unready, whatever their digest or role: the environment (the database?) is at fault, not {digest}",
            live.len()
        )
    } else {
        format!(
            "{ready} of {} pods became ready only after the pods of {digest} began failing: the environment is recovering; judged again shortly",
            live.len()
        )
    };
    Blame::Environment {
        reason: ENVIRONMENT_UNHEALTHY,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Container, ContainerState, ContainerStateTerminated, ContainerStatus, PodCondition,
        PodSpec, PodStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    fn d(digest: &str) -> Digest {
        Digest::parse(digest).unwrap()
    }

    /// A pod of `digest`, ready or not since `since`, with an optional restart finished at `restart`.
    fn pod(name: &str, digest: &str, ready: bool, since: i64, restart: Option<i64>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "app".into(),
                    image: Some(format!("registry.example.com/acme/app@{digest}")),
                    ..Container::default()
                }],
                ..PodSpec::default()
            }),
            status: Some(PodStatus {
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    last_transition_time: Some(Time(t(since))),
                    message: Some("readiness probe failed".into()),
                    ..PodCondition::default()
                }]),
                container_statuses: Some(vec![ContainerStatus {
                    name: "app".into(),
                    restart_count: i32::from(restart.is_some()),
                    last_state: restart.map(|at| ContainerState {
                        terminated: Some(ContainerStateTerminated {
                            finished_at: Some(Time(t(at))),
                            exit_code: 1,
                            ..ContainerStateTerminated::default()
                        }),
                        ..ContainerState::default()
                    }),
                    ..ContainerStatus::default()
                }]),
                ..PodStatus::default()
            }),
        }
    }

    const WINDOW: Duration = Duration::from_secs(60);

    #[test]
    fn a_healthy_digest_is_watched_for_the_window_then_passes() {
        let pods = [pod("a", D2, true, 5, None), pod("b", D2, true, 8, None)];
        assert_eq!(
            verify(&pods, &d(D2), t(10), WINDOW, t(30)),
            Verification::Watching { until: t(70) }
        );
        assert_eq!(
            verify(&pods, &d(D2), t(10), WINDOW, t(70)),
            Verification::Passed
        );
        assert_eq!(
            verify(&pods, &d(D2), t(10), Duration::ZERO, t(10)),
            Verification::Passed,
            "no window, nothing to wait for"
        );
    }

    #[test]
    fn lost_readiness_or_a_restart_within_the_window_fails_it() {
        let unready = [pod("a", D2, true, 5, None), pod("b", D2, false, 40, None)];
        match verify(&unready, &d(D2), t(10), WINDOW, t(41)) {
            Verification::Failed { reason, message } => {
                assert_eq!(reason, BECAME_UNREADY);
                assert!(message.contains("pod b"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        let restarted = [pod("a", D2, true, 50, Some(45))];
        assert!(matches!(
            verify(&restarted, &d(D2), t(10), WINDOW, t(50)),
            Verification::Failed {
                reason: CRASH_LOOP,
                ..
            }
        ));
    }

    #[test]
    fn only_the_new_digests_pods_within_the_window_count() {
        // A restart before it became available, an unready pod of the old digest, a failure
        // after the window, a terminating pod: none fails the verification.
        let mut terminating = pod("t", D2, false, 20, None);
        terminating.metadata.deletion_timestamp = Some(Time(t(20)));
        let pods = [
            pod("early", D2, true, 9, Some(5)),
            pod("old", D1, false, 20, None),
            pod("late", D2, false, 80, None),
            terminating,
        ];
        assert_eq!(
            verify(&pods, &d(D2), t(10), WINDOW, t(90)),
            Verification::Passed
        );
    }

    #[test]
    fn a_pod_started_after_the_rollout_became_available_is_not_a_loss_of_readiness() {
        // A replacement pod created at 30 s, still starting (unready since 30 s).
        let mut starting = pod("new", D2, false, 30, None);
        starting.metadata.creation_timestamp = Some(Time(t(30)));
        let pods = [pod("a", D2, true, 5, None), starting.clone()];
        assert_eq!(
            verify(&pods, &d(D2), t(10), WINDOW, t(31)),
            Verification::Watching { until: t(70) }
        );
        // One of the rollout's own pods (created before) that goes unready does count.
        starting.metadata.creation_timestamp = Some(Time(t(4)));
        assert!(matches!(
            verify(&[starting], &d(D2), t(10), WINDOW, t(31)),
            Verification::Failed {
                reason: BECAME_UNREADY,
                ..
            }
        ));
    }

    #[test]
    fn the_digest_is_blamed_only_when_others_stay_ready() {
        // The new digest's pods fail, the previous digest's pod is ready: the digest.
        let pods = [
            pod("new", D2, false, 20, None),
            pod("old", D1, true, 0, None),
        ];
        assert_eq!(blame(&pods, &d(D2), t(30)), Blame::Digest);
        // Everything unready, whatever the digest: the environment (database down for everyone).
        let everyone = [
            pod("new", D2, false, 20, None),
            pod("old", D1, false, 20, None),
        ];
        assert!(matches!(
            blame(&everyone, &d(D2), t(30)),
            Blame::Environment {
                reason: ENVIRONMENT_UNHEALTHY,
                ..
            }
        ));
        // A pod of the new digest that no node has room for: the environment.
        let mut pending = pod("pending", D2, false, 20, None);
        if let Some(status) = pending.status.as_mut() {
            status.conditions = Some(vec![PodCondition {
                type_: "PodScheduled".into(),
                status: "False".into(),
                reason: Some("Unschedulable".into()),
                ..PodCondition::default()
            }]);
        }
        let unschedulable = [pending, pod("old", D1, true, 0, None)];
        assert!(matches!(
            blame(&unschedulable, &d(D2), t(30)),
            Blame::Environment {
                reason: UNSCHEDULABLE,
                ..
            }
        ));
    }
}
