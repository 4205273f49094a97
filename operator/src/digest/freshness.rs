//! How fresh a digest must be, in one place. A tag's digest may be reused from the shared cache
//! ([`super::cache`]) unless one of these says it is too old:
//!
//! - the **polling interval** (`imageUpdate.interval`): no answer older than that; with polling
//!   off, no older than [`RESYNC_INTERVAL`];
//! - a **push**: a registry notification of the tag ([`Pushes`], recorded by the webhook) asks for
//!   an answer that started after it arrived; when it names the pushed digest and the registry
//!   still answers the digest pinned before, the lookup is repeated with a short bounded back-off
//!   ([`after_notified_push`]: CNCF Distribution notifies before it moves the tag);
//! - a **manual trigger**: a new value of the [`RESOLVE_NOW_ANNOTATION`] ([`ManualTriggers`]) asks
//!   for an answer that started after it was seen.
//!
//! A failed lookup is cached and shared too, so a registry that is down is asked once per window,
//! not once per TradingAgent; but its window is a back-off measured in seconds, not the polling
//! interval ([`failure_retry_after`]: 1 s after the first failure, doubling per consecutive failure
//! of the same lookup, at most [`REGISTRY_RETRY_MAX`]; a success starts over). The same rules say
//! when a TradingAgent is reconciled again without a change ([`requeue_after`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::ResourceExt;

use super::reference::Digest;
use crate::resource::{TradingAgent, TradingAgentSpec, UpdateMode};

/// How often a healthy TradingAgent is reconciled even without a change (drift safety net), and
/// how old a cached digest may be when polling is off (`interval: 0s`).
pub const RESYNC_INTERVAL: Duration = Duration::from_secs(300);
/// First wait before asking a registry again after a failed lookup.
pub const REGISTRY_RETRY_MIN: Duration = Duration::from_secs(1);
/// Longest wait before asking a registry again after a failed lookup.
pub const REGISTRY_RETRY_MAX: Duration = Duration::from_secs(30);

/// How long a failed lookup is reused after it finished, given how many lookups of the same key
/// have failed in a row (this one included): [`REGISTRY_RETRY_MIN`], doubling per consecutive
/// failure, capped at [`REGISTRY_RETRY_MAX`] (1, 2, 4, 8, 16, 30, 30 … s). Short, because one
/// failed lookup must not delay a first deployment by a whole polling interval.
pub fn failure_retry_after(consecutive_failures: u32) -> Duration {
    let doublings = consecutive_failures.saturating_sub(1).min(16);
    REGISTRY_RETRY_MIN
        .saturating_mul(1 << doublings)
        .min(REGISTRY_RETRY_MAX)
}

/// The annotation that asks for a fresh resolution: set it to any new value
/// (`kubectl annotate ta alpha tradingagents.dev/resolve-now="$(date +%s)" --overwrite`).
pub const RESOLVE_NOW_ANNOTATION: &str = "tradingagents.dev/resolve-now";

/// How many tag pushes are remembered at most ([`Pushes`]).
pub const PUSHES_REMEMBERED: usize = 10_000;
/// How long a push is remembered once more than [`PUSHES_REMEMBERED`] are: far longer than the
/// reconciliation it queued takes to run.
pub const PUSH_MEMORY: Duration = Duration::from_secs(3600);

/// How many `resolve-now` values are remembered; beyond that the memory starts afresh (costing at
/// most one extra lookup per annotated TradingAgent).
const MANUAL_TRIGGERS_REMEMBERED: usize = 10_000;

/// First wait before looking again when the registry still answers the digest pinned before a
/// notified push; doubled per attempt.
pub const NOTIFIED_PUSH_RETRY_FIRST: Duration = Duration::from_millis(50);
/// How many times the lookup is repeated after a notified push before the registry's answer is
/// taken as it is: 50 ms doubling 7 times is at most 6.35 s of waiting in all.
pub const NOTIFIED_PUSH_RETRIES: u32 = 7;

/// What to do with a lookup that followed a push notification naming `expected`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterNotifiedPush {
    /// The registry answers the pushed digest, or a digest newer than the one pinned before (the
    /// tag moved on again): take it.
    Converged,
    /// The registry still answers what was pinned before (or, with nothing pinned yet, another
    /// digest): it has not moved the tag yet; look again after this long.
    LookAgainIn(Duration),
    /// Still not moved after [`NOTIFIED_PUSH_RETRIES`] repeats: take the registry's answer (a
    /// notification is never trusted alone) and say so.
    GaveUp,
}

/// The retry decision after lookup number `attempt` (0 = the first one after the notification)
/// answered `answered`, when the notification named `expected` and `pinned_before` was pinned.
pub fn after_notified_push(
    expected: &Digest,
    pinned_before: Option<&Digest>,
    answered: &Digest,
    attempt: u32,
) -> AfterNotifiedPush {
    let moved_on = pinned_before.is_some_and(|before| answered != before);
    if answered == expected || moved_on {
        AfterNotifiedPush::Converged
    } else if attempt < NOTIFIED_PUSH_RETRIES {
        AfterNotifiedPush::LookAgainIn(
            NOTIFIED_PUSH_RETRY_FIRST.saturating_mul(1 << attempt.min(16)),
        )
    } else {
        AfterNotifiedPush::GaveUp
    }
}

/// How fresh a resolution must be.
#[derive(Debug, Clone, Copy)]
pub enum Freshness {
    /// Any lookup that started within this long ago will do (polling: the agent's interval).
    MaxAge(Duration),
    /// Only a lookup that started at or after this instant (a registry notification's arrival, a
    /// manual trigger).
    StartedAfter(Instant),
}

impl Freshness {
    /// The earliest start of a lookup that is still fresh enough (`None`: any will do).
    pub fn not_before(self) -> Option<Instant> {
        match self {
            Self::MaxAge(age) => Instant::now().checked_sub(age),
            Self::StartedAfter(at) => Some(at),
        }
    }

    /// Whether a lookup (answer or error alike) that started at `started_at` is fresh enough.
    pub fn accepts(not_before: Option<Instant>, started_at: Instant) -> bool {
        not_before.is_none_or(|t| started_at >= t)
    }

    /// Whether a failed lookup may still be reused at `now`: fresh enough, and its back-off
    /// ([`failure_retry_after`], counted from when it finished) not yet over.
    pub fn accepts_failure(
        not_before: Option<Instant>,
        started_at: Instant,
        finished_at: Instant,
        consecutive_failures: u32,
        now: Instant,
    ) -> bool {
        Self::accepts(not_before, started_at)
            && now < finished_at + failure_retry_after(consecutive_failures)
    }
}

/// How old a cached answer may be when polling is off (`interval: 0s`): the resync period.
pub const UNPOLLED_MAX_AGE: Duration = RESYNC_INTERVAL;

/// The rule for one TradingAgent: no older than the polling interval (or [`UNPOLLED_MAX_AGE`]
/// when polling is off), and started after the last push of the tag and after a manual trigger,
/// whichever is strictest.
pub fn freshness(
    interval: Option<Duration>,
    pushed_at: Option<Instant>,
    manual_at: Option<Instant>,
    now: Instant,
) -> Freshness {
    let max_age = interval.unwrap_or(UNPOLLED_MAX_AGE);
    let not_before = [now.checked_sub(max_age), pushed_at, manual_at]
        .into_iter()
        .flatten()
        .max();
    match not_before {
        Some(at) => Freshness::StartedAfter(at),
        None => Freshness::MaxAge(max_age),
    }
}

/// The polling interval of an agent that follows a tag (`mode: Track`, no digest in
/// `spec.image`, polling on); `None` when it does not poll.
fn tag_poll_interval(spec: &TradingAgentSpec) -> Option<Duration> {
    let follows_tag = !spec.image.contains('@') && spec.image_update.mode == UpdateMode::Track;
    follows_tag
        .then(|| spec.image_update.poll_interval().ok().flatten())
        .flatten()
}

/// When to reconcile again without a change: after the polling interval for a tracked tag (so a
/// new digest is found within one interval), otherwise after [`RESYNC_INTERVAL`]; while this
/// agent's resolution fails (`failed_resolutions` in a row, 0 when the last one succeeded), after
/// the failure back-off ([`failure_retry_after`]: seconds), so recovery is quick and automatic.
/// Never later than the interval.
pub fn requeue_after(spec: &TradingAgentSpec, failed_resolutions: u32) -> Duration {
    let base = tag_poll_interval(spec).unwrap_or(RESYNC_INTERVAL);
    match failed_resolutions {
        0 => base,
        n => base.min(failure_retry_after(n)),
    }
}

/// A little past the moment an answer goes stale, so that the poll then does not reuse it.
pub const STALE_MARGIN: Duration = Duration::from_millis(100);

/// How long until the registry answer a poll used (its lookup started at `answered_at`) is too
/// old for this agent's interval: the next poll is due then. `None` when the agent does not poll.
///
/// Coming back a whole interval after each reconciliation is not enough: a reconciliation for
/// another reason (a pod changed) reuses an answer that may be almost an interval old, and a push
/// just after that answer's lookup would be found only nearly two intervals later.
pub fn until_stale(
    spec: &TradingAgentSpec,
    answered_at: Instant,
    now: Instant,
) -> Option<Duration> {
    let interval = tag_poll_interval(spec)?;
    let stale_at = answered_at.checked_add(interval)?;
    Some(stale_at.saturating_duration_since(now) + STALE_MARGIN)
}

/// One announced push of a tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    /// When the notification arrived.
    pub at: Instant,
    /// The digest it named.
    pub expected: Option<Digest>,
    /// A lookup already waited the whole back-off for `expected`: later lookups do not wait
    /// again (they still report that the registry disagrees, until the tag moves).
    pub waited_out: bool,
    /// The registry has answered `expected`: the notification is confirmed, and a later answer
    /// that differs is the tag moving on (a push nobody announced), not a registry lagging
    /// behind the notification.
    pub seen: bool,
}

/// Makes room for one more tag in a bounded per-tag memory: beyond [`PUSHES_REMEMBERED`] entries,
/// those older than [`PUSH_MEMORY`] go, then the oldest.
fn make_room<V>(
    memory: &mut HashMap<(String, String), V>,
    now: Instant,
    since: impl Fn(&V) -> Instant,
) {
    if memory.len() >= PUSHES_REMEMBERED {
        memory.retain(|_, value| now.saturating_duration_since(since(value)) < PUSH_MEMORY);
    }
    if memory.len() >= PUSHES_REMEMBERED
        && let Some(oldest) = memory
            .iter()
            .min_by_key(|(_, value)| since(value))
            .map(|(key, _)| key.clone())
    {
        memory.remove(&oldest);
    }
}

/// Fewest time between two fan-outs of one tag ([`Answers::record`]).
pub const FAN_OUT_MIN_GAP: Duration = Duration::from_secs(5);

/// The digest each `registry/repository:tag` last resolved to, and when: how a lookup tells that
/// the tag moved without a notification (a push the registry did not announce, found by polling).
#[derive(Debug, Default)]
pub struct Answers {
    last: Mutex<HashMap<(String, String), Answer>>,
}

#[derive(Debug)]
struct Answer {
    digest: Digest,
    at: Instant,
    /// When a move of this tag last queued its followers.
    fanned_out: Option<Instant>,
}

impl Answers {
    /// Record that `name:tag` resolved to `digest` at `at`. When that replaces a different digest,
    /// returns when the replaced one was recorded (the tag moved since then): the followers are
    /// to be queued. At most once per [`FAN_OUT_MIN_GAP`] per tag: two answers that keep
    /// disagreeing (the cached answers of two pull secrets, a moment apart in age) would otherwise
    /// queue every follower at every lookup; a follower left out still re-pins at its next poll.
    pub fn record(&self, name: &str, tag: &str, digest: &Digest, at: Instant) -> Option<Instant> {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let key = (name.to_owned(), tag.to_owned());
        if !last.contains_key(&key) {
            make_room(&mut last, at, |answer| answer.at);
        }
        let answer = last.entry(key).or_insert_with(|| Answer {
            digest: digest.clone(),
            at,
            fanned_out: None,
        });
        let previous = answer.at;
        answer.at = at;
        if &answer.digest == digest {
            return None;
        }
        answer.digest = digest.clone();
        let may_fan_out = answer
            .fanned_out
            .is_none_or(|fanned_out| at.saturating_duration_since(fanned_out) >= FAN_OUT_MIN_GAP);
        if !may_fan_out {
            return None;
        }
        answer.fanned_out = Some(at);
        Some(previous)
    }
}

/// When each `repository:tag` was last announced as pushed (by a notification that concerned at
/// least one TradingAgent), and to which digest.
#[derive(Debug, Default)]
pub struct Pushes {
    at: Mutex<HashMap<(String, String), Push>>,
}

impl Pushes {
    /// Record a push of `repository:tag` that arrived `at`, naming `expected`. Pushes older than
    /// [`PUSH_MEMORY`] are forgotten (the reconciliations they queued ran long ago), and at most
    /// [`PUSHES_REMEMBERED`] are kept (the oldest go first).
    pub fn record(&self, repository: &str, tag: &str, at: Instant, expected: Option<Digest>) {
        let mut pushes = self.lock();
        make_room(&mut pushes, at, |pushed| pushed.at);
        pushes.insert(
            (repository.to_owned(), tag.to_owned()),
            Push {
                at,
                expected,
                waited_out: false,
                seen: false,
            },
        );
    }

    /// The last push of `repository:tag`.
    pub fn last(&self, repository: &str, tag: &str) -> Option<Push> {
        self.lock()
            .get(&(repository.to_owned(), tag.to_owned()))
            .cloned()
    }

    /// A lookup waited the whole back-off for the digest the push of `repository:tag` that
    /// arrived `at` named: later lookups do not wait again. A newer push is left alone.
    pub fn waited_out(&self, repository: &str, tag: &str, at: Instant) {
        self.update(repository, tag, at, |push| push.waited_out = true);
    }

    /// The registry answered the digest the push of `repository:tag` that arrived `at` named:
    /// later lookups take the registry's answer without waiting. A newer push is left alone.
    pub fn seen(&self, repository: &str, tag: &str, at: Instant) {
        self.update(repository, tag, at, |push| push.seen = true);
    }

    fn update(&self, repository: &str, tag: &str, at: Instant, change: impl FnOnce(&mut Push)) {
        if let Some(push) = self
            .lock()
            .get_mut(&(repository.to_owned(), tag.to_owned()))
            && push.at == at
        {
            change(push);
        }
    }

    /// How many pushes are remembered.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no push is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// When `repository:tag` was last announced as pushed.
    pub fn pushed_at(&self, repository: &str, tag: &str) -> Option<Instant> {
        self.last(repository, tag).map(|push| push.at)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Push>> {
        self.at.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The last `resolve-now` annotation value seen, per TradingAgent.
#[derive(Debug, Default)]
pub struct ManualTriggers {
    seen: Mutex<HashMap<String, String>>,
}

impl ManualTriggers {
    /// Whether `agent` carries a `resolve-now` value not seen before (remembered from now on).
    pub fn is_new(&self, agent: &TradingAgent) -> bool {
        let Some(value) = agent.annotations().get(RESOLVE_NOW_ANNOTATION) else {
            return false;
        };
        let key = agent.uid().unwrap_or_else(|| agent.name_any());
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.get(&key) == Some(value) {
            return false;
        }
        if seen.len() >= MANUAL_TRIGGERS_REMEMBERED {
            seen.clear();
        }
        seen.insert(key, value.clone());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(c: char) -> Digest {
        Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).unwrap()
    }

    /// Distribution notifies before it moves the tag: the old digest means "not yet", the pushed
    /// one or any other newer one means done, and the wait is bounded.
    #[test]
    fn a_notified_push_is_looked_up_again_until_the_tag_moves_or_the_back_off_ends() {
        let (old, pushed, newer) = (digest('a'), digest('b'), digest('c'));
        use AfterNotifiedPush::*;
        assert_eq!(
            after_notified_push(&pushed, Some(&old), &pushed, 0),
            Converged
        );
        assert_eq!(
            after_notified_push(&pushed, Some(&old), &newer, 0),
            Converged
        );
        assert_eq!(
            after_notified_push(&pushed, Some(&pushed), &pushed, 0),
            Converged
        );
        assert_eq!(
            after_notified_push(&pushed, Some(&old), &old, 0),
            LookAgainIn(Duration::from_millis(50))
        );
        assert_eq!(
            after_notified_push(&pushed, Some(&old), &old, 3),
            LookAgainIn(Duration::from_millis(400))
        );
        // Nothing pinned yet: only the pushed digest converges.
        assert_eq!(
            after_notified_push(&pushed, None, &old, 1),
            LookAgainIn(Duration::from_millis(100))
        );
        assert_eq!(after_notified_push(&pushed, None, &pushed, 1), Converged);
        let waits: Duration = (0..NOTIFIED_PUSH_RETRIES)
            .map(
                |n| match after_notified_push(&pushed, Some(&old), &old, n) {
                    LookAgainIn(wait) => wait,
                    other => panic!("attempt {n}: {other:?}"),
                },
            )
            .sum();
        assert_eq!(waits, Duration::from_millis(6350));
        assert_eq!(
            after_notified_push(&pushed, Some(&old), &old, NOTIFIED_PUSH_RETRIES),
            GaveUp
        );
        assert_eq!(
            after_notified_push(&pushed, Some(&old), &old, u32::MAX),
            GaveUp
        );
    }

    #[test]
    fn giving_up_on_a_push_leaves_a_newer_push_alone() {
        let pushes = Pushes::default();
        let first = Instant::now();
        pushes.record("acme/app", "stable", first, Some(digest('b')));
        pushes.waited_out("acme/app", "stable", first);
        assert!(pushes.last("acme/app", "stable").unwrap().waited_out);
        let second = first + Duration::from_millis(1);
        pushes.record("acme/app", "stable", second, Some(digest('c')));
        pushes.waited_out("acme/app", "stable", first);
        let last = pushes.last("acme/app", "stable").unwrap();
        assert_eq!((last.expected, last.waited_out), (Some(digest('c')), false));
        pushes.seen("acme/app", "stable", first);
        assert!(!pushes.last("acme/app", "stable").unwrap().seen);
        pushes.seen("acme/app", "stable", second);
        assert!(pushes.last("acme/app", "stable").unwrap().seen);
    }

    #[test]
    fn freshness_is_the_strictest_of_interval_push_and_manual_trigger() {
        let now = Instant::now() + Duration::from_secs(3600);
        let at = |f: Freshness| match f {
            Freshness::StartedAfter(t) => now.duration_since(t),
            Freshness::MaxAge(_) => panic!("expected a bound"),
        };
        assert_eq!(
            at(freshness(Some(Duration::from_secs(2)), None, None, now)),
            Duration::from_secs(2)
        );
        assert_eq!(at(freshness(None, None, None, now)), UNPOLLED_MAX_AGE);
        let pushed = now - Duration::from_millis(100);
        assert_eq!(
            at(freshness(
                Some(Duration::from_secs(2)),
                Some(pushed),
                None,
                now
            )),
            Duration::from_millis(100)
        );
        // An old push does not loosen the interval.
        let old = now - Duration::from_secs(60);
        assert_eq!(
            at(freshness(
                Some(Duration::from_secs(2)),
                Some(old),
                None,
                now
            )),
            Duration::from_secs(2)
        );
        assert_eq!(
            at(freshness(None, Some(old), Some(now), now)),
            Duration::ZERO
        );
    }

    fn spec(image: &str, update: serde_json::Value) -> TradingAgentSpec {
        serde_json::from_value(serde_json::json!({
            "image": image,
            "imageUpdate": update,
            "database": {"secretRef": {"name": "db", "key": "url"}},
        }))
        .unwrap()
    }

    #[test]
    fn failed_lookups_back_off_in_seconds() {
        let secs: Vec<u64> = (1..=8).map(|n| failure_retry_after(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(failure_retry_after(u32::MAX), REGISTRY_RETRY_MAX);

        let started = Instant::now();
        let finished = started + Duration::from_secs(10);
        let reused = |failures, after: u64| {
            Freshness::accepts_failure(
                None,
                started,
                finished,
                failures,
                finished + Duration::from_millis(after),
            )
        };
        // Counted from when the (slow) lookup finished, not from when it started.
        assert!(reused(1, 999));
        assert!(!reused(1, 1000));
        assert!(reused(3, 3999));
        assert!(!reused(3, 4000));
        // A push after the failed lookup started asks again at once.
        let pushed = Some(started + Duration::from_secs(1));
        assert!(!Freshness::accepts_failure(
            pushed, started, finished, 1, finished
        ));
    }

    #[test]
    fn a_poll_comes_back_when_the_answer_it_used_goes_stale() {
        let tag = "registry.example.com/acme/app:stable";
        let polled = spec(tag, serde_json::json!({"interval": "10s"}));
        let now = Instant::now();
        let ago = |s: u64| now - Duration::from_secs(s);
        // A fresh answer: a whole interval; one 9 s old (reused for a pod's change): 1 s.
        assert_eq!(
            until_stale(&polled, now, now),
            Some(Duration::from_secs(10) + STALE_MARGIN)
        );
        assert_eq!(
            until_stale(&polled, ago(9), now),
            Some(Duration::from_secs(1) + STALE_MARGIN)
        );
        // Already stale (a slow reconciliation): at once.
        assert_eq!(until_stale(&polled, ago(12), now), Some(STALE_MARGIN));
        // No polling, Pin mode, a digest in spec: the answer's age sets nothing.
        for (image, update) in [
            (tag.to_owned(), serde_json::json!({"interval": "0s"})),
            (
                tag.to_owned(),
                serde_json::json!({"interval": "10s", "mode": "Pin"}),
            ),
            (
                format!("{tag}@sha256:{}", "1".repeat(64)),
                serde_json::json!({"interval": "10s"}),
            ),
        ] {
            assert_eq!(until_stale(&spec(&image, update), ago(9), now), None);
        }
    }

    #[test]
    fn requeue_follows_the_polling_interval_of_a_tracked_tag() {
        let tag = "registry.example.com/acme/app:stable";
        let pinned = 0;
        let failed = 1;
        let after = |update, failures: &u32| requeue_after(&spec(tag, update), *failures);
        assert_eq!(
            after(serde_json::json!({"interval": "2s"}), &pinned),
            Duration::from_secs(2)
        );
        assert_eq!(
            after(serde_json::json!({"interval": "1h30m"}), &pinned),
            Duration::from_secs(5400)
        );
        assert_eq!(
            after(serde_json::json!({"interval": "500ms"}), &pinned),
            Duration::from_millis(500)
        );
        assert_eq!(
            after(serde_json::json!({}), &pinned),
            Duration::from_secs(300)
        );
        // Polling off, Pin mode, or a digest in spec: only the resync.
        assert_eq!(
            after(serde_json::json!({"interval": "0s"}), &pinned),
            RESYNC_INTERVAL
        );
        assert_eq!(
            after(
                serde_json::json!({"interval": "2s", "mode": "Pin"}),
                &pinned
            ),
            RESYNC_INTERVAL
        );
        let by_digest = spec(
            &format!("{tag}@sha256:{}", "1".repeat(64)),
            serde_json::json!({"interval": "2s"}),
        );
        assert_eq!(requeue_after(&by_digest, pinned), RESYNC_INTERVAL);
        // Failing: retry within seconds, backing off, never later than the interval.
        assert_eq!(
            after(serde_json::json!({"interval": "0s"}), &failed),
            REGISTRY_RETRY_MIN
        );
        assert_eq!(after(serde_json::json!({}), &3), Duration::from_secs(4));
        assert_eq!(after(serde_json::json!({}), &20), REGISTRY_RETRY_MAX);
        assert_eq!(
            after(serde_json::json!({"interval": "2s"}), &5),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn pushes_and_manual_triggers_are_remembered() {
        let pushes = Pushes::default();
        let at = Instant::now();
        assert_eq!(pushes.pushed_at("acme/app", "stable"), None);
        pushes.record("acme/app", "stable", at, None);
        assert_eq!(pushes.pushed_at("acme/app", "stable"), Some(at));
        assert_eq!(pushes.pushed_at("acme/app", "next"), None);

        let manual = ManualTriggers::default();
        let mut agent: TradingAgent = serde_json::from_value(serde_json::json!({
            "apiVersion": "tradingagents.dev/v1alpha1",
            "kind": "TradingAgent",
            "metadata": {"name": "alpha", "namespace": "desk", "uid": "u1"},
            "spec": {"image": "r/acme/app:stable", "database": {"secretRef": {"name": "db", "key": "url"}}},
        }))
        .unwrap();
        assert!(!manual.is_new(&agent), "no annotation, no trigger");
        agent
            .annotations_mut()
            .insert(RESOLVE_NOW_ANNOTATION.into(), "1".into());
        assert!(manual.is_new(&agent));
        assert!(!manual.is_new(&agent), "the same value triggers once");
        agent
            .annotations_mut()
            .insert(RESOLVE_NOW_ANNOTATION.into(), "2".into());
        assert!(manual.is_new(&agent), "a new value triggers again");
    }
}
