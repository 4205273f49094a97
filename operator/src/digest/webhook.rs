//! The registry webhook: `POST /registry/notifications` on its own listener.
//!
//! A registry (CNCF Distribution notifications, or anything that can POST `{repository, tag}`)
//! announces a push; every TradingAgent whose `spec.image` names that repository and tag is
//! reconciled at once, and its resolution must be newer than the notification ([`Triggers`]).
//! A notification is only a hint: the digest is always resolved at the registry, so a forged one
//! costs a request but never pins anything. Still, the endpoint requires
//! `Authorization: Bearer <token>`.

use std::sync::Arc;
use std::time::Instant;

// Non-poisoning locks: a panic elsewhere never turns every later notification into a panic.
use parking_lot::Mutex;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures::channel::mpsc::UnboundedSender;
use kube::runtime::reflector::{ObjectRef, Store};
use tracing::{debug, info, warn};

use super::freshness::{Answers, Push, Pushes};
use crate::digest::reference::{Digest, ImageReference};
use crate::digest::{PushedTag, pushed_tags};
use crate::metrics::Metrics;
use crate::resource::TradingAgent;

/// The webhook's path.
pub const PATH: &str = "/registry/notifications";
/// Largest body accepted (a Distribution envelope holds a few events of about 1 KiB each).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The running controller, as the webhook reaches it.
struct Attached {
    agents: Store<TradingAgent>,
    reconcile: UnboundedSender<ObjectRef<TradingAgent>>,
}

/// Shared between the webhook (which records pushes) and the pinner (which must not answer
/// with a lookup older than the last push of the tag it resolves).
#[derive(Default)]
pub struct Triggers {
    pushed: Pushes,
    answers: Answers,
    attached: Mutex<Option<Attached>>,
    last_notification: Mutex<Option<Instant>>,
}

impl Triggers {
    /// When `repository:tag` was last announced as pushed (by a notification that concerned at
    /// least one TradingAgent).
    pub fn pushed_at(&self, repository: &str, tag: &str) -> Option<Instant> {
        self.pushed.pushed_at(repository, tag)
    }

    /// The last announced push of `repository:tag` (when, and the digest it named).
    pub fn last_push(&self, repository: &str, tag: &str) -> Option<Push> {
        self.pushed.last(repository, tag)
    }

    /// A lookup waited the whole back-off for the digest the push at `at` named.
    pub fn waited_out(&self, repository: &str, tag: &str, at: Instant) {
        self.pushed.waited_out(repository, tag, at)
    }

    /// The registry answered the digest the push at `at` named.
    pub fn seen(&self, repository: &str, tag: &str, at: Instant) {
        self.pushed.seen(repository, tag, at)
    }

    /// When the last notification that triggered a reconcile arrived (for tests and logs).
    pub fn last_notification(&self) -> Option<Instant> {
        *self.last_notification.lock()
    }

    /// The controller starts: notifications reach its TradingAgents through `reconcile`.
    pub fn attach(
        &self,
        agents: Store<TradingAgent>,
        reconcile: UnboundedSender<ObjectRef<TradingAgent>>,
    ) {
        *self.attached.lock() = Some(Attached { agents, reconcile });
    }

    /// The controller stopped (shutdown or leadership lost).
    pub fn detach(&self) {
        *self.attached.lock() = None;
    }

    /// Record that `tags` were pushed at `at` and queue every TradingAgent following one of them.
    /// Returns how many were queued, or `None` when no controller runs in this process (a
    /// standby replica).
    pub fn notify(&self, tags: &[PushedTag], at: Instant) -> Option<usize> {
        let attached = self.attached.lock();
        let attached = attached.as_ref()?;
        let mut queued = 0;
        for agent in attached.agents.state() {
            let Some((reference, tag)) = followed_tag(&agent) else {
                continue;
            };
            let repository = reference.repository();
            let Some(pushed) = tags
                .iter()
                .find(|t| t.repository == repository && t.tag == tag)
            else {
                continue;
            };
            // Recorded before the reconcile is queued, so the pinner sees it.
            self.pushed
                .record(repository, &tag, at, pushed.digest.clone());
            if attached
                .reconcile
                .unbounded_send(ObjectRef::from_obj(agent.as_ref()))
                .is_ok()
            {
                queued += 1;
            }
        }
        if queued > 0 {
            *self.last_notification.lock() = Some(at);
        }
        Some(queued)
    }

    /// A lookup for `asking` answered `digest` for `reference`'s `tag` at `at`. When the tag moved
    /// since the previous answer and no notification announced it since then (a silent push,
    /// found by polling), every other TradingAgent following the same tag of the same registry is
    /// queued, as a notification would: they re-pin now, from the shared cache, instead of each at
    /// its own next poll, up to a whole interval later. Returns how many were queued.
    pub fn answered(
        &self,
        asking: &ObjectRef<TradingAgent>,
        reference: &ImageReference,
        tag: &str,
        digest: &Digest,
        at: Instant,
    ) -> usize {
        let Some(previous) = self.answers.record(&reference.name(), tag, digest, at) else {
            return 0;
        };
        if self
            .pushed_at(reference.repository(), tag)
            .is_some_and(|pushed| pushed >= previous)
        {
            // The notification queued them already.
            return 0;
        }
        let attached = self.attached.lock();
        let Some(attached) = attached.as_ref() else {
            return 0;
        };
        let mut queued = 0;
        for agent in attached.agents.state() {
            let key = ObjectRef::from_obj(agent.as_ref());
            let follows = followed_tag(&agent).is_some_and(|(followed, followed_tag)| {
                followed.registry() == reference.registry()
                    && followed.repository() == reference.repository()
                    && followed_tag == tag
            });
            if follows && &key != asking && attached.reconcile.unbounded_send(key).is_ok() {
                queued += 1;
            }
        }
        queued
    }
}

/// The reference and tag that `agent`'s image follows; `None` for an image pinned by digest or
/// one that does not parse.
fn followed_tag(agent: &TradingAgent) -> Option<(ImageReference, String)> {
    let reference = ImageReference::parse(&agent.spec.image).ok()?;
    if reference.digest().is_some() {
        return None;
    }
    let tag = reference.tag_to_resolve()?.to_owned();
    Some((reference, tag))
}

/// What the webhook handlers share.
#[derive(Clone)]
pub struct WebhookState {
    /// The bearer token callers must present.
    pub token: Arc<str>,
    /// Where pushes are recorded.
    pub triggers: Arc<Triggers>,
    /// Metrics.
    pub metrics: Metrics,
}

/// The webhook's router.
pub fn router(state: WebhookState) -> Router {
    Router::new()
        .route(PATH, post(notification))
        .with_state(state)
}

/// The answers of the webhook, mapped to HTTP in one place.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// 202: `triggered` TradingAgents are being reconciled (0 when the events were ignored).
    Accepted { triggered: usize },
    /// 401: missing or wrong token.
    Unauthorized,
    /// 413: the body is larger than [`MAX_BODY_BYTES`].
    TooLarge,
    /// 400: the body is not a notification.
    BadRequest(String),
    /// 503: this replica does not run the controller (a standby): the registry should retry.
    NotLeader,
}

impl Answer {
    /// The metric label.
    pub fn label(&self) -> &'static str {
        match self {
            Answer::Accepted { triggered: 0 } => "ignored",
            Answer::Accepted { .. } => "triggered",
            Answer::Unauthorized => "unauthorized",
            Answer::TooLarge => "too_large",
            Answer::BadRequest(_) => "bad_request",
            Answer::NotLeader => "not_leader",
        }
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let (code, body) = match self {
            Answer::Accepted { triggered } => (
                StatusCode::ACCEPTED,
                serde_json::json!({ "triggered": triggered }),
            ),
            Answer::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                serde_json::json!({"error": "missing or wrong bearer token"}),
            ),
            Answer::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                serde_json::json!({"error": format!("body larger than {MAX_BODY_BYTES} bytes")}),
            ),
            Answer::BadRequest(detail) => (
                StatusCode::BAD_REQUEST,
                serde_json::json!({"error": detail}),
            ),
            Answer::NotLeader => (
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({"error": "this replica is not the leader; retry"}),
            ),
        };
        let mut response = (
            code,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response();
        if code == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

/// Whether the `Authorization` header carries `token` (compared in constant time).
pub fn authorized(headers: &HeaderMap, token: &str) -> bool {
    let Some(presented) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    let (a, b) = (presented.trim().as_bytes(), token.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn notification(State(state): State<WebhookState>, headers: HeaderMap, body: Body) -> Answer {
    let arrived = Instant::now();
    let answer = answer(&state, &headers, body, arrived).await;
    state.metrics.record_webhook(answer.label());
    match &answer {
        Answer::Accepted { triggered } if *triggered > 0 => {
            info!(triggered, "registry notification: reconciling")
        }
        Answer::Accepted { .. } => debug!("registry notification: nothing to do"),
        other => warn!(answer = ?other, "registry notification refused"),
    }
    answer
}

async fn answer(state: &WebhookState, headers: &HeaderMap, body: Body, arrived: Instant) -> Answer {
    if !authorized(headers, &state.token) {
        return Answer::Unauthorized;
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
        return Answer::TooLarge;
    }
    let bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(bytes) => bytes,
        Err(_) => return Answer::TooLarge,
    };
    let tags = match pushed_tags(&bytes) {
        Ok(tags) => tags,
        Err(e) => return Answer::BadRequest(e.to_string()),
    };
    if tags.is_empty() {
        return Answer::Accepted { triggered: 0 };
    }
    match state.triggers.notify(&tags, arrived) {
        Some(triggered) => Answer::Accepted { triggered },
        None => Answer::NotLeader,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn bearer_token_must_match_exactly() {
        let mut headers = HeaderMap::new();
        assert!(!authorized(&headers, "s3cret"));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer s3cret"),
        );
        assert!(authorized(&headers, "s3cret"));
        assert!(!authorized(&headers, "s3cre"));
        assert!(!authorized(&headers, "s3cretx"));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic s3cret"),
        );
        assert!(!authorized(&headers, "s3cret"));
    }

    #[test]
    fn answers_map_to_codes_and_labels() {
        let code = |a: Answer| a.into_response().status().as_u16();
        assert_eq!(code(Answer::Accepted { triggered: 0 }), 202);
        assert_eq!(code(Answer::Unauthorized), 401);
        assert_eq!(code(Answer::TooLarge), 413);
        assert_eq!(code(Answer::BadRequest("x".into())), 400);
        assert_eq!(code(Answer::NotLeader), 503);
        assert_eq!(Answer::Accepted { triggered: 0 }.label(), "ignored");
        assert_eq!(Answer::Accepted { triggered: 2 }.label(), "triggered");
    }

    /// A store of TradingAgents in namespace `desk`, each `(name, image)`.
    fn agents_store(agents: &[(&str, &str)]) -> kube::runtime::reflector::Store<TradingAgent> {
        let (reader, mut writer) = kube::runtime::reflector::store::<TradingAgent>();
        for (name, image) in agents {
            let spec = serde_json::from_value(serde_json::json!({
                "image": image,
                "database": {"secretRef": {"name": "db", "key": "url"}},
            }))
            .unwrap();
            let mut agent = TradingAgent::new(name, spec);
            agent.metadata.namespace = Some("desk".into());
            writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply(agent));
        }
        reader
    }

    #[tokio::test]
    async fn a_push_queues_the_agents_that_follow_the_tag() {
        let triggers = Triggers::default();
        let tag = |repository: &str, tag: &str| PushedTag {
            repository: repository.into(),
            tag: tag.into(),
            digest: None,
        };
        assert_eq!(
            triggers.notify(&[tag("acme/app", "stable")], Instant::now()),
            None
        );

        let reader = agents_store(&[
            ("a", "registry.example.com/acme/app:stable"),
            ("b", "registry.example.com/acme/app:next"),
            ("c", "registry.example.com/acme/other:stable"),
            (
                "d",
                "registry.example.com/acme/app:stable@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            ),
        ]);
        let (sender, mut receiver) = futures::channel::mpsc::unbounded();
        triggers.attach(reader, sender);
        let at = Instant::now();
        assert_eq!(triggers.notify(&[tag("acme/app", "stable")], at), Some(1));
        let queued = receiver.try_recv().unwrap();
        assert_eq!(queued.name, "a");
        assert_eq!(triggers.pushed_at("acme/app", "stable"), Some(at));
        assert_eq!(triggers.pushed_at("acme/app", "next"), None);
        assert_eq!(triggers.last_notification(), Some(at));
        assert_eq!(
            triggers.notify(&[tag("acme/app", "v9")], Instant::now()),
            Some(0)
        );
        triggers.detach();
        assert_eq!(
            triggers.notify(&[tag("acme/app", "stable")], Instant::now()),
            None
        );
    }

    #[tokio::test]
    async fn a_tag_that_moved_silently_queues_the_other_followers_once() {
        let triggers = Triggers::default();
        let reader = agents_store(&[
            ("a", "registry.example.com/acme/app:stable"),
            ("b", "registry.example.com/acme/app:stable"),
            ("c", "registry.example.com/acme/app:next"),
            ("d", "other.example.com/acme/app:stable"),
        ]);
        let (sender, mut receiver) = futures::channel::mpsc::unbounded();
        triggers.attach(reader, sender);
        let digest =
            |n: u8| Digest::parse(&format!("sha256:{}", format!("{n:02x}").repeat(32))).unwrap();
        let a = ObjectRef::<TradingAgent>::new("a").within("desk");
        let d = ObjectRef::<TradingAgent>::new("d").within("desk");
        let stable = ImageReference::parse("registry.example.com/acme/app:stable").unwrap();
        let other = ImageReference::parse("other.example.com/acme/app:stable").unwrap();
        let start = Instant::now();
        let at = |s: u64| start + std::time::Duration::from_secs(s);
        let mut drain = || {
            let mut names = Vec::new();
            while let Ok(key) = receiver.try_recv() {
                names.push(key.name);
            }
            names.sort();
            names
        };

        // The first answer since start-up, and the same answer again: nothing moved.
        assert_eq!(
            triggers.answered(&a, &stable, "stable", &digest(1), at(0)),
            0
        );
        assert_eq!(
            triggers.answered(&a, &stable, "stable", &digest(1), at(1)),
            0
        );
        // A poll finds a new digest: the other follower of the same tag of the same registry is
        // queued; not the asker, not a follower of another tag or of another registry's same path.
        assert_eq!(
            triggers.answered(&a, &stable, "stable", &digest(2), at(2)),
            1
        );
        assert_eq!(drain(), ["b"]);
        assert_eq!(
            triggers.answered(&a, &stable, "stable", &digest(2), at(3)),
            0
        );
        // Another registry's answers are its own: no move of registry.example.com's tag.
        assert_eq!(
            triggers.answered(&d, &other, "stable", &digest(9), at(3)),
            0
        );
        assert_eq!(
            triggers.answered(&a, &stable, "stable", &digest(2), at(3)),
            0
        );
        // Answers that keep disagreeing queue the followers at most once per FAN_OUT_MIN_GAP.
        assert_eq!(
            triggers.answered(&a, &stable, "stable", &digest(1), at(4)),
            0
        );
        assert_eq!(
            triggers.answered(&a, &stable, "stable", &digest(2), at(5)),
            0
        );
        assert!(drain().is_empty());
        assert_eq!(
            triggers.answered(&a, &stable, "stable", &digest(3), at(10)),
            1
        );
        assert_eq!(drain(), ["b"]);
        // A notified push queued everyone already: its lookups' new answer queues nobody again.
        let pushed = PushedTag {
            repository: "acme/app".into(),
            tag: "stable".into(),
            digest: Some(digest(4)),
        };
        assert_eq!(triggers.notify(&[pushed], at(11)), Some(3));
        assert_eq!(drain(), ["a", "b", "d"]);
        assert_eq!(
            triggers.answered(&a, &stable, "stable", &digest(4), at(17)),
            0
        );
        assert!(drain().is_empty());
        // In a standby replica (no controller), nothing is queued.
        triggers.detach();
        assert_eq!(
            triggers.answered(&a, &stable, "stable", &digest(5), at(30)),
            0
        );
    }

    /// `Triggers.pushed` is bounded: beyond `PUSHES_REMEMBERED`, pushes older than `PUSH_MEMORY`
    /// go, then the oldest.
    #[test]
    fn remembered_pushes_are_pruned() {
        use crate::digest::freshness::{PUSH_MEMORY, PUSHES_REMEMBERED};
        let pushes = Pushes::default();
        let start = Instant::now();
        for n in 0..PUSHES_REMEMBERED {
            pushes.record("acme/app", &format!("t{n}"), start, None);
        }
        let later = start + PUSH_MEMORY + std::time::Duration::from_secs(1);
        pushes.record("acme/app", "fresh", later, None);
        assert_eq!(pushes.len(), 1, "the stale pushes went at once");
        assert_eq!(pushes.pushed_at("acme/app", "fresh"), Some(later));
        for n in 0..PUSHES_REMEMBERED + 5 {
            let at = later + std::time::Duration::from_millis(n as u64 + 1);
            pushes.record("acme/app", &format!("n{n}"), at, None);
            assert!(pushes.len() <= PUSHES_REMEMBERED);
        }
        assert_eq!(pushes.pushed_at("acme/app", "fresh"), None, "oldest first");
        assert!(pushes.pushed_at("acme/app", "n0").is_none());
        let newest = format!("n{}", PUSHES_REMEMBERED + 4);
        assert!(pushes.pushed_at("acme/app", &newest).is_some());
    }
}
