//! One shared cache of tag → digest lookups, with request coalescing: however many TradingAgents
//! use an image, the registry sees one request per freshness window, and concurrent lookups of the
//! same key wait for the one request in flight instead of sending their own.
//!
//! Bounded: an entry not asked for during [`IDLE_TTL`] is evicted (every TradingAgent in use
//! asks at least every resync period, 5 min, so only tags nobody follows any more go, and with
//! them the credentials of rotated pull secrets), and at most [`MAX_ENTRIES`] are kept (beyond
//! that the least recently used go first). An evicted entry costs one more registry request,
//! never a wrong answer: freshness only ever rejects cached answers.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::credentials::Credentials;
use super::freshness::Freshness;
use crate::digest::reference::Digest;
use crate::error::Error;

/// What a lookup depends on. Credentials are part of the key: a digest resolved with one pull
/// secret is never handed to a TradingAgent without it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    pub registry: String,
    pub repository: String,
    pub tag: String,
    pub credentials: Option<Credentials>,
}

#[derive(Clone)]
struct Lookup {
    result: Result<Digest, Error>,
    started_at: Instant,
    finished_at: Instant,
    /// Lookups of this key failed in a row, this one included (0 after a success).
    consecutive_failures: u32,
}

impl Lookup {
    /// Whether this lookup may answer at `now`: a digest while fresh enough, an error while fresh
    /// enough and within its back-off.
    fn reusable(&self, not_before: Option<Instant>, now: Instant) -> bool {
        match self.result {
            Ok(_) => Freshness::accepts(not_before, self.started_at),
            Err(_) => Freshness::accepts_failure(
                not_before,
                self.started_at,
                self.finished_at,
                self.consecutive_failures,
                now,
            ),
        }
    }

    /// The lookup that ran from `started_at` to `finished_at`, after `previous`.
    fn after(
        previous: Option<&Lookup>,
        result: Result<Digest, Error>,
        started_at: Instant,
        finished_at: Instant,
    ) -> Self {
        let consecutive_failures = match (&result, previous) {
            (Ok(_), _) => 0,
            (Err(_), Some(previous)) => previous.consecutive_failures.saturating_add(1),
            (Err(_), None) => 1,
        };
        Self {
            result,
            started_at,
            finished_at,
            consecutive_failures,
        }
    }
}

type Slot = Arc<tokio::sync::Mutex<Option<Lookup>>>;

/// An entry not asked for this long is evicted.
pub const IDLE_TTL: Duration = Duration::from_secs(3600);
/// At most this many entries (distinct registry, repository, tag and credentials) are kept.
pub const MAX_ENTRIES: usize = 20_000;
/// Idle entries are swept at most this often (a sweep walks every entry).
const SWEEP_EVERY: Duration = Duration::from_secs(60);

struct Entry {
    slot: Slot,
    last_used: Instant,
}

struct Slots {
    entries: HashMap<CacheKey, Entry>,
    last_sweep: Instant,
}

pub struct DigestCache {
    slots: Mutex<Slots>,
    idle_ttl: Duration,
    max_entries: usize,
}

impl Default for DigestCache {
    fn default() -> Self {
        Self::with_limits(IDLE_TTL, MAX_ENTRIES)
    }
}

impl DigestCache {
    /// A cache evicting entries idle for `idle_ttl` and keeping at most `max_entries`.
    pub fn with_limits(idle_ttl: Duration, max_entries: usize) -> Self {
        Self {
            slots: Mutex::new(Slots {
                entries: HashMap::new(),
                last_sweep: Instant::now(),
            }),
            idle_ttl,
            max_entries: max_entries.max(1),
        }
    }

    /// How many entries the cache holds.
    pub fn len(&self) -> usize {
        self.slots.lock().entries.len()
    }

    /// Whether the cache holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The slot of `key` (created if missing), after evicting what the limits say must go.
    fn slot(&self, key: CacheKey, now: Instant) -> Slot {
        let mut slots = self.slots.lock();
        if now.saturating_duration_since(slots.last_sweep) >= SWEEP_EVERY {
            self.evict_idle(&mut slots, now);
        }
        if !slots.entries.contains_key(&key) && slots.entries.len() >= self.max_entries {
            self.evict_idle(&mut slots, now);
            evict_least_recently_used(&mut slots.entries, self.max_entries);
        }
        let entry = slots.entries.entry(key).or_insert_with(|| Entry {
            slot: Slot::default(),
            last_used: now,
        });
        entry.last_used = now;
        entry.slot.clone()
    }

    fn evict_idle(&self, slots: &mut Slots, now: Instant) {
        slots
            .entries
            .retain(|_, entry| now.saturating_duration_since(entry.last_used) < self.idle_ttl);
        slots.last_sweep = now;
    }

    /// The result of a lookup of `key` that *started* at or after `not_before`, running `resolve`
    /// only if there is none. Errors are cached and shared too, so a registry that is down is not
    /// hammered by every waiting TradingAgent, but only for their back-off
    /// ([`super::freshness::failure_retry_after`]: seconds, not the polling interval).
    ///
    /// Polling passes `now - interval`; a registry notification passes the time it arrived, so the
    /// answer is never older than the push it announces.
    pub async fn get_or_resolve<F, Fut>(
        &self,
        key: CacheKey,
        not_before: Option<Instant>,
        resolve: F,
    ) -> Result<Digest, Error>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Digest, Error>>,
    {
        self.get_or_resolve_dated(key, not_before, resolve).await.0
    }

    /// As [`Self::get_or_resolve`], with when the lookup that answered started: how old the
    /// answer is, so that a poller can come back exactly when it goes stale.
    pub async fn get_or_resolve_dated<F, Fut>(
        &self,
        key: CacheKey,
        not_before: Option<Instant>,
        resolve: F,
    ) -> (Result<Digest, Error>, Instant)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Digest, Error>>,
    {
        let slot = self.slot(key, Instant::now());
        // Holding the slot's lock across the request is what coalesces concurrent lookups.
        let mut lookup = slot.lock().await;
        if let Some(previous) = lookup.as_ref()
            && previous.reusable(not_before, Instant::now())
        {
            return (previous.result.clone(), previous.started_at);
        }
        let started_at = Instant::now();
        let result = resolve().await;
        *lookup = Some(Lookup::after(
            lookup.as_ref(),
            result.clone(),
            started_at,
            Instant::now(),
        ));
        (result, started_at)
    }
}

/// Makes room for one more entry: drops the least recently used tenth of `max_entries` (at least
/// one), so a full cache sorts once per tenth of its size, not on every insertion.
fn evict_least_recently_used(entries: &mut HashMap<CacheKey, Entry>, max_entries: usize) {
    if entries.len() < max_entries {
        return;
    }
    let excess = entries.len() - max_entries + (max_entries / 10).max(1);
    let mut by_age: Vec<(Instant, CacheKey)> = entries
        .iter()
        .map(|(key, entry)| (entry.last_used, key.clone()))
        .collect();
    by_age.sort_unstable_by_key(|(last_used, _)| *last_used);
    for (_, key) in by_age.into_iter().take(excess) {
        entries.remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;
    use crate::digest::freshness::REGISTRY_RETRY_MIN;

    fn key(tag: &str) -> CacheKey {
        CacheKey {
            registry: "r".into(),
            repository: "acme/app".into(),
            tag: tag.into(),
            credentials: None,
        }
    }

    fn digest(n: u8) -> Digest {
        Digest::parse(&format!("sha256:{}", format!("{n:02x}").repeat(32))).unwrap()
    }

    #[tokio::test]
    async fn concurrent_lookups_of_one_key_cost_one_request() {
        let cache = Arc::new(DigestCache::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let not_before = Some(Instant::now());
        let lookups = (0..50).map(|_| {
            let (cache, calls) = (cache.clone(), calls.clone());
            tokio::spawn(async move {
                cache
                    .get_or_resolve(key("stable"), not_before, || async {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok(digest(1))
                    })
                    .await
            })
        });
        for lookup in futures::future::join_all(lookups).await {
            assert_eq!(lookup.unwrap(), Ok(digest(1)));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_lookup_older_than_not_before_is_repeated_and_keys_are_separate() {
        let cache = DigestCache::default();
        assert_eq!(
            cache
                .get_or_resolve(key("a"), None, || async { Ok(digest(1)) })
                .await,
            Ok(digest(1))
        );
        // Fresh enough: the cached answer, no call.
        assert_eq!(
            cache
                .get_or_resolve(key("a"), None, || async { unreachable!() })
                .await,
            Ok(digest(1))
        );
        // A notification arrived after that lookup started: ask again.
        let now = Some(Instant::now());
        assert_eq!(
            cache
                .get_or_resolve(key("a"), now, || async { Ok(digest(2)) })
                .await,
            Ok(digest(2))
        );
        assert_eq!(
            cache
                .get_or_resolve(key("a"), None, || async { unreachable!() })
                .await,
            Ok(digest(2)),
            "the newer answer replaced the older one"
        );
        assert_eq!(
            cache
                .get_or_resolve(key("b"), None, || async { Ok(digest(4)) })
                .await,
            Ok(digest(4)),
            "another tag is another key"
        );
        let with_credentials = CacheKey {
            credentials: Some(Credentials::basic("u", "p")),
            ..key("a")
        };
        assert_eq!(
            cache
                .get_or_resolve(with_credentials, None, || async { Ok(digest(3)) })
                .await,
            Ok(digest(3))
        );
    }

    #[test]
    fn errors_are_reused_for_their_back_off_and_a_success_starts_over() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let down = || {
            Err(Error::RegistryUnreachable {
                host: "r".into(),
                detail: "timeout".into(),
            })
        };
        let first = Lookup::after(None, down(), t0, t0 + s(5));
        assert_eq!(first.consecutive_failures, 1);
        assert!(first.reusable(None, t0 + s(5)));
        assert!(!first.reusable(None, t0 + s(6)), "1 s after it finished");
        let second = Lookup::after(Some(&first), down(), t0 + s(6), t0 + s(6));
        assert_eq!(second.consecutive_failures, 2);
        assert!(second.reusable(None, t0 + s(7)));
        assert!(!second.reusable(None, t0 + s(8)), "2 s after the second");
        let ok = Lookup::after(Some(&second), Ok(digest(1)), t0 + s(8), t0 + s(8));
        assert_eq!(ok.consecutive_failures, 0);
        assert!(
            ok.reusable(Some(t0), t0 + s(3600)),
            "a digest follows the freshness rule only"
        );
        assert!(!ok.reusable(Some(t0 + s(9)), t0 + s(9)));
        let again = Lookup::after(Some(&ok), down(), t0 + s(9), t0 + s(9));
        assert_eq!(again.consecutive_failures, 1, "a success starts over");
    }

    #[tokio::test]
    async fn a_failed_lookup_is_asked_again_within_seconds() {
        let cache = DigestCache::default();
        let down = Error::RegistryUnreachable {
            host: "r".into(),
            detail: "connection refused".into(),
        };
        // Polling every 5 minutes: the error is not kept that long.
        let not_before = Instant::now().checked_sub(Duration::from_secs(300));
        assert_eq!(
            cache
                .get_or_resolve(key("a"), not_before, || async { Err(down.clone()) })
                .await,
            Err(down.clone())
        );
        tokio::time::sleep(REGISTRY_RETRY_MIN + Duration::from_millis(50)).await;
        assert_eq!(
            cache
                .get_or_resolve(key("a"), not_before, || async { Ok(digest(1)) })
                .await,
            Ok(digest(1))
        );
    }

    #[tokio::test]
    async fn errors_are_shared_too() {
        let cache = DigestCache::default();
        let down = Error::RegistryUnreachable {
            host: "r".into(),
            detail: "connection refused".into(),
        };
        let first = cache
            .get_or_resolve(key("a"), None, || async { Err(down.clone()) })
            .await;
        assert_eq!(first, Err(down.clone()));
        assert_eq!(
            cache
                .get_or_resolve(key("a"), None, || async { unreachable!() })
                .await,
            Err(down)
        );
    }

    #[tokio::test]
    async fn the_cache_keeps_at_most_max_entries_least_recently_used_first_out() {
        let cache = DigestCache::with_limits(IDLE_TTL, 10);
        for n in 0..10u8 {
            let tag = format!("t{n}");
            cache
                .get_or_resolve(key(&tag), None, || async move { Ok(digest(n)) })
                .await
                .unwrap();
        }
        // t0 is used again: now the most recently used.
        cache
            .get_or_resolve(key("t0"), None, || async { unreachable!() })
            .await
            .unwrap();
        for n in 10..100u8 {
            let tag = format!("t{n}");
            cache
                .get_or_resolve(key(&tag), None, || async move { Ok(digest(n)) })
                .await
                .unwrap();
            assert!(cache.len() <= 10, "{} entries", cache.len());
        }
        // The most recent entry is kept; an old one was evicted and is looked up again.
        cache
            .get_or_resolve(key("t99"), None, || async { unreachable!() })
            .await
            .unwrap();
        let asked = std::sync::atomic::AtomicBool::new(false);
        cache
            .get_or_resolve(key("t1"), None, || async {
                asked.store(true, Ordering::SeqCst);
                Ok(digest(1))
            })
            .await
            .unwrap();
        assert!(asked.load(Ordering::SeqCst), "t1 was evicted");
    }

    #[test]
    fn entries_idle_longer_than_the_ttl_are_swept() {
        let cache = DigestCache::with_limits(Duration::from_secs(3600), 100);
        let start = Instant::now();
        cache.slot(key("old"), start);
        cache.slot(key("busy"), start);
        cache.slot(key("busy"), start + Duration::from_secs(3000));
        assert_eq!(cache.len(), 2);
        // Past the sweep period and the old entry's TTL: swept on the next access.
        cache.slot(key("new"), start + Duration::from_secs(3700));
        let kept: Vec<_> = {
            let slots = cache.slots.lock();
            let mut tags: Vec<_> = slots.entries.keys().map(|k| k.tag.clone()).collect();
            tags.sort();
            tags
        };
        assert_eq!(kept, ["busy", "new"]);
    }
}
