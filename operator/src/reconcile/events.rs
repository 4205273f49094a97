//! Events, the pure part: which Kubernetes events a reconciliation has to tell (status
//! transitions a user needs to know about, children created or changed), folded so that one
//! reconciliation writes few. [`super::report`] publishes them.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::Resource;

use super::conditions::{find_condition, reasons, types};
use crate::resource::TradingAgentStatus;

/// A Kubernetes event to publish about a TradingAgent.
#[derive(Clone, Debug, PartialEq)]
pub struct EventSpec {
    /// Warning or Normal.
    pub warning: bool,
    /// CamelCase reason.
    pub reason: String,
    /// What happened, for `kubectl describe`.
    pub note: String,
    /// The action taken.
    pub action: &'static str,
    /// The child object the event is about, if any.
    pub related: Option<ObjectReference>,
}

impl EventSpec {
    pub(super) fn normal(reason: &str, note: impl Into<String>, action: &'static str) -> Self {
        Self {
            warning: false,
            reason: reason.to_owned(),
            note: note.into(),
            action,
            related: None,
        }
    }

    pub(super) fn about(mut self, related: ObjectReference) -> Self {
        self.related = Some(related);
        self
    }

    pub(super) fn warning(reason: &str, note: impl Into<String>, action: &'static str) -> Self {
        Self {
            warning: true,
            ..Self::normal(reason, note, action)
        }
    }
}

/// One event per reason for the children of one reconciliation ("Created: Deployment a-api,
/// Deployment a-bot, ..."), not one per child: a new agent or a new digest touches three or four
/// children at once, and each event is a write the API server must store.
pub fn fold_child_events(events: Vec<EventSpec>) -> Vec<EventSpec> {
    let mut folded: Vec<EventSpec> = Vec::new();
    for event in events {
        match folded
            .iter_mut()
            .find(|f| f.reason == event.reason && f.warning == event.warning)
        {
            Some(same) => {
                same.note = format!("{}, {}", same.note, event.note);
                // The related object names one child; a folded event is about several.
                same.related = None;
            }
            None => folded.push(event),
        }
    }
    folded
}

/// A new digest's story in one event: the children it updated are named in `DigestPinned`'s note
/// instead of an `Updated` event of their own. A re-pin reaches every agent that follows the tag at
/// once, and each event is one more write for the API server in the middle of that rollout.
pub fn fold_into_digest_event(events: Vec<EventSpec>) -> Vec<EventSpec> {
    let updated = events
        .iter()
        .position(|e| e.reason == "Updated" && !e.warning);
    let pinned = events
        .iter()
        .position(|e| e.reason == "DigestPinned" && !e.warning);
    let (Some(updated), Some(pinned)) = (updated, pinned) else {
        return events;
    };
    let mut events = events;
    let children = events[updated].note.clone();
    events[pinned].note = format!("{}; updated {children}", events[pinned].note);
    events.remove(updated);
    events
}

/// A Created or Updated event when applying changed the object's spec (its generation moved).
pub(super) fn change_event<K: Resource<DynamicType = ()>>(
    before: Option<&K>,
    after: &K,
) -> Option<EventSpec> {
    let kind = K::kind(&());
    let name = after.meta().name.clone().unwrap_or_default();
    let before = before.map(|b| b.meta());
    let after_ref = after.object_ref(&());
    let after = after.meta();
    let event = match before {
        None if after.generation.unwrap_or(1) <= 1 => Some(EventSpec::normal(
            "Created",
            format!("{kind} {name}"),
            "Apply",
        )),
        None => None,
        Some(before) if after.generation > before.generation => Some(EventSpec::normal(
            "Updated",
            format!("{kind} {name}"),
            "Apply",
        )),
        Some(_) => None,
    };
    event.map(|e| e.about(after_ref))
}

/// Events for the status transitions a user needs to know about.
pub fn status_events(old: Option<&TradingAgentStatus>, new: &TradingAgentStatus) -> Vec<EventSpec> {
    let empty = Vec::new();
    let old_conditions = old.map_or(&empty, |s| &s.conditions);
    let changed = |type_: &str| -> Option<&Condition> {
        let now = find_condition(&new.conditions, type_)?;
        let before = find_condition(old_conditions, type_);
        let same = before.is_some_and(|b| b.status == now.status && b.reason == now.reason);
        (!same).then_some(now)
    };
    let mut events = Vec::new();

    if let Some(c) = changed(types::IMAGE_RESOLVED)
        && c.status == "False"
    {
        events.push(EventSpec::warning(
            &c.reason,
            c.message.clone(),
            "ResolveImage",
        ));
    }
    if let Some(c) = changed(types::READY) {
        if c.status == "True" {
            events.push(EventSpec::normal("Ready", c.message.clone(), "Reconcile"));
        } else if [
            reasons::SECRET_NOT_FOUND,
            reasons::SECRET_KEY_MISSING,
            reasons::SECRET_UNREADABLE,
        ]
        .contains(&c.reason.as_str())
        {
            events.push(EventSpec::warning(
                &c.reason,
                c.message.clone(),
                "ReadSecret",
            ));
        } else if c.reason == reasons::INVALID_SPEC || c.reason == reasons::APPLY_FORBIDDEN {
            events.push(EventSpec::warning(&c.reason, c.message.clone(), "Apply"));
        }
    }
    if let Some(c) = changed(types::DEGRADED)
        && c.status == "True"
    {
        let action = if c.reason == reasons::ROLLED_BACK {
            "Rollback"
        } else {
            "Rollout"
        };
        events.push(EventSpec::warning(&c.reason, c.message.clone(), action));
    }
    if let Some(c) = changed(types::PROGRESSING) {
        let was_paused = find_condition(old_conditions, types::PROGRESSING)
            .is_some_and(|b| b.reason == reasons::PAUSED);
        if c.reason == reasons::PAUSED {
            events.push(EventSpec::normal("Paused", c.message.clone(), "Pause"));
        } else if was_paused {
            events.push(EventSpec::normal(
                "Resumed",
                "spec.paused is false: changes are applied again",
                "Resume",
            ));
        }
    }
    let old_digest = old
        .and_then(|s| s.image.as_ref())
        .and_then(|i| i.digest.as_ref());
    let new_image = new.image.as_ref();
    if let Some(digest) = new_image.and_then(|i| i.digest.as_ref())
        && Some(digest) != old_digest
    {
        events.push(EventSpec::normal(
            "DigestPinned",
            format!(
                "workloads pinned to {digest} ({})",
                new_image.map_or("", |i| i.reference.as_str())
            ),
            "PinImage",
        ));
    }
    events
}

pub(super) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::conditions::condition;
    use crate::resource::ImageStatus;
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::jiff::Timestamp;
    use kube::api::ObjectMeta;

    fn t() -> Timestamp {
        Timestamp::from_second(1_700_000_000).unwrap()
    }

    fn status(conditions: Vec<Condition>, digest: Option<&str>) -> TradingAgentStatus {
        TradingAgentStatus {
            conditions,
            image: Some(ImageStatus {
                reference: "r".into(),
                digest: digest.map(str::to_owned),
                ..ImageStatus::default()
            }),
            ..TradingAgentStatus::default()
        }
    }

    #[test]
    fn a_new_digest_is_one_event_naming_the_updated_children() {
        let updated = EventSpec::normal("Updated", "Deployment a-api, Deployment a-bot", "Apply");
        let pinned = EventSpec::normal(
            "DigestPinned",
            "workloads pinned to sha256:b (r:stable)",
            "PinImage",
        );
        let ready = EventSpec::normal("Ready", "ok", "Reconcile");
        let folded = fold_into_digest_event(vec![updated.clone(), ready.clone(), pinned.clone()]);
        assert_eq!(
            folded,
            vec![
                ready.clone(),
                EventSpec::normal(
                    "DigestPinned",
                    "workloads pinned to sha256:b (r:stable); updated Deployment a-api, Deployment a-bot",
                    "PinImage",
                ),
            ]
        );
        // Without a new digest (a spec edit), the children's update is its own event.
        assert_eq!(
            fold_into_digest_event(vec![updated.clone(), ready.clone()]),
            vec![updated.clone(), ready]
        );
        // A first pin creates the children: `Created` stays its own event.
        let created = EventSpec::normal("Created", "Deployment a-api", "Apply");
        assert_eq!(
            fold_into_digest_event(vec![created.clone(), pinned.clone()]),
            vec![created, pinned]
        );
    }

    #[test]
    fn child_events_fold_into_one_per_reason() {
        let child = |reason: &str, kind: &str, name: &str| {
            EventSpec::normal(reason, format!("{kind} {name}"), "Apply").about(ObjectReference {
                kind: Some(kind.into()),
                name: Some(name.into()),
                ..ObjectReference::default()
            })
        };
        let folded = fold_child_events(vec![
            child("Created", "Deployment", "a-api"),
            child("Updated", "Deployment", "a-bot"),
            child("Created", "Deployment", "a-strategy"),
            child("Created", "Service", "a-api"),
        ]);
        assert_eq!(folded.len(), 2, "{folded:?}");
        assert_eq!(folded[0].reason, "Created");
        assert_eq!(
            folded[0].note,
            "Deployment a-api, Deployment a-strategy, Service a-api"
        );
        assert_eq!(
            folded[0].related, None,
            "several children: no single related object"
        );
        assert_eq!(folded[1].reason, "Updated");
        assert_eq!(folded[1].note, "Deployment a-bot");
        assert_eq!(
            folded[1].related.as_ref().and_then(|r| r.name.as_deref()),
            Some("a-bot"),
            "a single child keeps its related object"
        );
        assert!(fold_child_events(Vec::new()).is_empty());
    }

    #[test]
    fn becoming_ready_is_a_normal_event_once() {
        let old = status(
            vec![condition(
                "Ready",
                false,
                "ComponentsNotReady",
                "",
                None,
                t(),
            )],
            Some("d"),
        );
        let new = status(
            vec![condition(
                "Ready",
                true,
                "AllComponentsReady",
                "ok",
                None,
                t(),
            )],
            Some("d"),
        );
        let events = status_events(Some(&old), &new);
        assert_eq!(events, vec![EventSpec::normal("Ready", "ok", "Reconcile")]);
        assert!(status_events(Some(&new), &new).is_empty());
    }

    #[test]
    fn missing_secret_and_tag_only_image_are_warnings() {
        let new = status(
            vec![
                condition(
                    "ImageResolved",
                    false,
                    "DigestRequired",
                    "no digest",
                    None,
                    t(),
                ),
                condition("Ready", false, "SecretNotFound", "no secret", None, t()),
            ],
            None,
        );
        let events = status_events(None, &new);
        assert_eq!(events.len(), 2);
        assert!(events.iter().all(|e| e.warning));
        assert_eq!(events[0].reason, "DigestRequired");
        assert_eq!(events[1].reason, "SecretNotFound");
        assert!(
            status_events(Some(&new), &new).is_empty(),
            "no event storm on retries"
        );
    }

    #[test]
    fn degraded_pause_resume_and_new_digest() {
        let old = status(
            vec![condition("Progressing", true, "RollingOut", "", None, t())],
            Some("d1"),
        );
        let new = status(
            vec![
                condition("Progressing", false, "Paused", "paused", None, t()),
                condition(
                    "Degraded",
                    true,
                    "ProgressDeadlineExceeded",
                    "api",
                    None,
                    t(),
                ),
            ],
            Some("d2"),
        );
        let reasons: Vec<_> = status_events(Some(&old), &new)
            .into_iter()
            .map(|e| e.reason)
            .collect();
        assert_eq!(
            reasons,
            ["ProgressDeadlineExceeded", "Paused", "DigestPinned"]
        );
        let resumed = status(
            vec![condition("Progressing", true, "RollingOut", "", None, t())],
            Some("d2"),
        );
        let reasons: Vec<_> = status_events(Some(&new), &resumed)
            .into_iter()
            .map(|e| e.reason)
            .collect();
        assert_eq!(reasons, ["Resumed"]);
    }

    #[test]
    fn change_events_follow_the_generation() {
        let deployment = |generation| Deployment {
            metadata: ObjectMeta {
                name: Some("alpha-api".into()),
                namespace: Some("desk".into()),
                generation: Some(generation),
                ..ObjectMeta::default()
            },
            ..Deployment::default()
        };
        let created = change_event(None, &deployment(1)).unwrap();
        assert_eq!(created.reason, "Created");
        assert_eq!(created.note, "Deployment alpha-api");
        let related = created.related.unwrap();
        assert_eq!(related.kind.as_deref(), Some("Deployment"));
        assert_eq!(related.name.as_deref(), Some("alpha-api"));
        assert_eq!(change_event(Some(&deployment(1)), &deployment(1)), None);
        assert_eq!(
            change_event(Some(&deployment(2)), &deployment(3))
                .unwrap()
                .reason,
            "Updated"
        );
        // The cache lagging behind an object we created earlier is not a new creation.
        assert_eq!(change_event(None, &deployment(4)), None);
    }

    #[test]
    fn a_rollback_is_a_warning_event() {
        let old = status(
            vec![condition("Degraded", false, "AsExpected", "", None, t())],
            Some("d2"),
        );
        let new = status(
            vec![condition(
                "Degraded",
                true,
                "RolledBack",
                "d2 failed; back on d1",
                None,
                t(),
            )],
            Some("d1"),
        );
        let events = status_events(Some(&old), &new);
        assert_eq!(events[0].reason, "RolledBack");
        assert!(events[0].warning);
        assert_eq!(events[0].action, "Rollback");
    }

    #[test]
    fn truncates_on_char_boundaries() {
        assert_eq!(truncate("abc", 10), "abc");
        assert_eq!(truncate("ééé", 3), "é…");
    }

    /// Issue 15: a spec the API server refuses (`cpu: abc` → 422) and a database Secret it will
    /// not hand over (403) reach the status as `Ready=False` with the API server's message, and a
    /// Warning event says the same.
    #[test]
    fn refusals_of_the_api_server_reach_ready_and_a_warning_event() {
        use crate::digest::outcome::ImageOutcome;
        use crate::digest::reference::{Digest, ImageReference};
        use crate::error::Error;
        use crate::reconcile::status::{Observation, next_status};
        use crate::resource::{Role, TradingAgent, TradingAgentSpec};

        let spec: TradingAgentSpec = serde_json::from_value(serde_json::json!({
            "image": "registry.example.com/acme/app:stable",
            "database": {"secretRef": {"name": "desk-db", "key": "url"}},
        }))
        .unwrap();
        let mut agent = TradingAgent::new("alpha", spec);
        agent.metadata.namespace = Some("desk".into());
        agent.metadata.generation = Some(1);
        let image = ImageOutcome::Pinned(
            ImageReference::parse("registry.example.com/acme/app:stable")
                .unwrap()
                .pinned_to(Digest::parse(&format!("sha256:{}", "1".repeat(64))).unwrap()),
        );
        let invalid = "Deployment.apps \"alpha-api\" is invalid: spec.template.spec.containers[0].resources.requests[cpu]: Invalid value: \"abc\": quantities must match the regular expression";
        let kube_error: Error = kube::Error::Api(Box::new(
            kube::core::Status::failure(invalid, "Invalid").with_code(422),
        ))
        .into();
        let forbidden: Error = kube::Error::Api(Box::new(
            kube::core::Status::failure(
                "secrets \"desk-db\" is forbidden: User \"system:serviceaccount:ops:op\" cannot get resource \"secrets\"",
                "Forbidden",
            )
            .with_code(403),
        ))
        .into();
        let unreadable = Error::SecretUnreadable {
            namespace: "desk".into(),
            name: "desk-db".into(),
            message: match forbidden {
                Error::Kube { detail, .. } => detail,
                other => panic!("{other:?}"),
            },
        };
        let cases = [
            (
                kube_error.as_spec_rejection(),
                "InvalidSpec",
                "Apply",
                "Invalid value: \"abc\"",
            ),
            (
                unreadable,
                "SecretUnreadable",
                "ReadSecret",
                "cannot get resource",
            ),
        ];
        let none: Vec<_> = Role::ALL.into_iter().map(|r| (r, None)).collect();
        for (blocked, reason, action, api_message) in cases {
            let status = next_status(&Observation {
                agent: &agent,
                image: &image,
                applied: false,
                blocked: Some(&blocked),
                deployments: &none,
                pod_images: &[],
                rollback: None,
                verification: None,
                fault: None,
                now: t(),
            });
            let ready = find_condition(&status.conditions, types::READY).unwrap();
            assert_eq!(
                (ready.status.as_str(), ready.reason.as_str()),
                ("False", reason)
            );
            assert!(ready.message.contains(api_message), "{}", ready.message);
            let events = status_events(None, &status);
            let warning = events.iter().find(|e| e.reason == reason).unwrap();
            assert!(warning.warning && warning.action == action, "{warning:?}");
            assert!(warning.note.contains(api_message), "{}", warning.note);
        }
        // A conflict is not the spec's fault: it stays an error and is retried.
        let conflict: Error = kube::Error::Api(Box::new(
            kube::core::Status::failure("the object has been modified", "Conflict").with_code(409),
        ))
        .into();
        assert!(matches!(
            conflict.as_spec_rejection(),
            Error::Kube {
                status: Some(409),
                ..
            }
        ));
        let quota: Error = kube::Error::Api(Box::new(
            kube::core::Status::failure("exceeded quota: compute", "Forbidden").with_code(403),
        ))
        .into();
        assert_eq!(quota.as_spec_rejection().reason(), "ApplyForbidden");
    }
}
