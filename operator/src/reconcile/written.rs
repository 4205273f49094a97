//! Telling a cache that lags behind our own status write from a status someone else wrote.
//!
//! kube-runtime can hand a reconciliation an object from a cache that has not yet received the
//! status the previous reconciliation wrote. Deciding from that stale status could, for example,
//! pin a digest that had just been rejected, or turn `Degraded=RolledBack` back into
//! `ProgressDeadlineExceeded`. Only the operator writes a TradingAgent's status, so a cached
//! status that differs from the one we last wrote is one the watch has not delivered yet, until
//! [`CACHE_BEHIND_MAX`] says it is too old for that.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::resource::TradingAgentStatus;

/// After this long, a cached status that still differs from our last write is taken as someone
/// else's write, not as a lagging cache.
pub const CACHE_BEHIND_MAX: Duration = Duration::from_secs(5);

/// The status this process last wrote, per object, and when.
#[derive(Debug)]
pub struct WrittenStatuses<K> {
    entries: Mutex<HashMap<K, (TradingAgentStatus, Instant)>>,
}

impl<K> Default for WrittenStatuses<K> {
    fn default() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash> WrittenStatuses<K> {
    /// Remember that `status` was written for `key` at `at`.
    pub fn record(&self, key: K, status: TradingAgentStatus, at: Instant) {
        self.lock().insert(key, (status, at));
    }

    /// True while the cached status of `key` is not the one we last wrote and that write is
    /// younger than [`CACHE_BEHIND_MAX`]. Once the cache has caught up (or the write is too old to
    /// wait for), the entry is forgotten.
    pub fn cache_is_behind(
        &self,
        key: &K,
        cached: Option<&TradingAgentStatus>,
        now: Instant,
    ) -> bool {
        let mut entries = self.lock();
        match entries.get(key) {
            Some((status, at))
                if Some(status) != cached
                    && now.saturating_duration_since(*at) < CACHE_BEHIND_MAX =>
            {
                true
            }
            Some(_) => {
                entries.remove(key);
                false
            }
            None => false,
        }
    }

    /// Forget the objects for which `keep` is false (deleted ones).
    pub fn retain(&self, mut keep: impl FnMut(&K) -> bool) {
        self.lock().retain(|key, _| keep(key));
    }

    /// Objects remembered now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, (TradingAgentStatus, Instant)>> {
        // A panic while holding this lock cannot leave the map half-updated: recover it.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::ImageStatus;

    fn status(digest: &str) -> TradingAgentStatus {
        TradingAgentStatus {
            image: Some(ImageStatus {
                reference: "registry.example.com/acme/agent:stable".into(),
                digest: Some(digest.into()),
                ..ImageStatus::default()
            }),
            ..TradingAgentStatus::default()
        }
    }

    #[test]
    fn an_object_never_written_is_not_behind() {
        let written = WrittenStatuses::<&str>::default();
        assert!(!written.cache_is_behind(&"a", Some(&status("sha256:1")), Instant::now()));
        assert!(!written.cache_is_behind(&"a", None, Instant::now()));
    }

    #[test]
    fn a_cache_without_our_last_write_is_behind_until_it_catches_up() {
        let written = WrittenStatuses::default();
        let t0 = Instant::now();
        written.record("a", status("sha256:2"), t0);
        let ms = Duration::from_millis;
        assert!(written.cache_is_behind(&"a", Some(&status("sha256:1")), t0 + ms(50)));
        assert!(
            written.cache_is_behind(&"a", None, t0 + ms(60)),
            "no status at all is behind too"
        );
        assert!(!written.cache_is_behind(&"a", Some(&status("sha256:2")), t0 + ms(100)));
        assert!(written.is_empty(), "caught up: forgotten");
        // Forgotten, so a later difference is someone else's write, not lag.
        assert!(!written.cache_is_behind(&"a", Some(&status("sha256:1")), t0 + ms(150)));
    }

    #[test]
    fn after_the_limit_a_different_status_is_taken_as_someone_elses() {
        let written = WrittenStatuses::default();
        let t0 = Instant::now();
        written.record("a", status("sha256:2"), t0);
        let stale = status("sha256:1");
        assert!(written.cache_is_behind(
            &"a",
            Some(&stale),
            t0 + CACHE_BEHIND_MAX - Duration::from_millis(1)
        ));
        assert!(!written.cache_is_behind(&"a", Some(&stale), t0 + CACHE_BEHIND_MAX));
        assert!(written.is_empty());
    }

    #[test]
    fn objects_are_independent_and_deleted_ones_are_forgotten() {
        let written = WrittenStatuses::default();
        let t0 = Instant::now();
        written.record("a", status("sha256:2"), t0);
        written.record("b", status("sha256:3"), t0);
        assert!(written.cache_is_behind(&"a", Some(&status("sha256:1")), t0));
        assert!(!written.cache_is_behind(&"b", Some(&status("sha256:3")), t0));
        written.retain(|key| *key != "a");
        assert!(written.is_empty());
        assert!(!written.cache_is_behind(&"a", Some(&status("sha256:1")), t0));
    }
}
