//! Per-object exponential back-off for failed reconciliations: each TradingAgent waits longer
//! after each consecutive failure, independently of the others, and starts over after a success.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::Mutex;
use std::time::Duration;

/// Back-off state keyed by object.
#[derive(Debug)]
pub struct ErrorBackoff<K> {
    base: Duration,
    max: Duration,
    failures: Mutex<HashMap<K, u32>>,
}

impl<K: Eq + Hash + Clone> ErrorBackoff<K> {
    /// Delays start at `base`, double after each failure, and never exceed `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Record a failure of `key` and return how long to wait before retrying it: `base * 2^n`
    /// capped at `max`, with up to 10% jitter so that many objects failing together spread out.
    pub fn next_delay(&self, key: &K) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let count = failures.entry(key.clone()).or_insert(0);
        let exponent = (*count).min(20);
        *count = count.saturating_add(1);
        let delay = self.base.saturating_mul(1 << exponent).min(self.max);
        let jitter = delay.mul_f64(jitter_fraction() * 0.1);
        delay.saturating_sub(jitter)
    }

    /// Record a failure of `key` without asking for a delay; returns its consecutive failures.
    pub fn record_failure(&self, key: &K) -> u32 {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let count = failures.entry(key.clone()).or_insert(0);
        *count = count.saturating_add(1);
        *count
    }

    /// Forget `key`'s failures (after a successful reconciliation).
    pub fn reset(&self, key: &K) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.remove(key);
    }

    /// Forget every key `keep` rejects (objects that were deleted while backing off).
    pub fn retain(&self, mut keep: impl FnMut(&K) -> bool) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.retain(|key, _| keep(key));
    }

    /// Consecutive failures of `key`.
    pub fn failures(&self, key: &K) -> u32 {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.get(key).copied().unwrap_or(0)
    }

    /// How many objects are backing off.
    pub fn len(&self) -> usize {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Whether no object is backing off.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A number in [0, 1) from the standard library's randomly seeded hasher.
fn jitter_fraction() -> f64 {
    let random = std::collections::hash_map::RandomState::new().hash_one(std::time::Instant::now());
    (random % 10_000) as f64 / 10_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn within(actual: Duration, nominal: Duration) -> bool {
        actual <= nominal && actual >= nominal.mul_f64(0.9)
    }

    #[test]
    fn doubles_per_failure_up_to_the_cap() {
        let b = ErrorBackoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let expected = [1, 2, 4, 8, 16, 32, 60, 60];
        for secs in expected {
            let d = b.next_delay(&"a");
            assert!(within(d, Duration::from_secs(secs)), "{d:?} vs {secs}s");
        }
        assert_eq!(b.failures(&"a"), expected.len() as u32);
    }

    #[test]
    fn objects_back_off_independently_and_reset_on_success() {
        let b = ErrorBackoff::new(Duration::from_secs(1), Duration::from_secs(60));
        b.next_delay(&"a");
        b.next_delay(&"a");
        b.next_delay(&"a");
        assert!(within(b.next_delay(&"b"), Duration::from_secs(1)));
        assert_eq!(b.len(), 2);
        b.reset(&"a");
        assert!(within(b.next_delay(&"a"), Duration::from_secs(1)));
        b.reset(&"a");
        b.reset(&"b");
        assert!(b.is_empty());
    }

    #[test]
    fn forgets_objects_that_are_gone() {
        let b = ErrorBackoff::new(Duration::from_secs(1), Duration::from_secs(60));
        b.next_delay(&"kept");
        b.next_delay(&"deleted");
        b.retain(|k| *k == "kept");
        assert_eq!(b.len(), 1);
        assert_eq!(b.failures(&"kept"), 1);
        assert_eq!(b.record_failure(&"kept"), 2);
        assert_eq!(b.record_failure(&"new"), 1);
    }

    #[test]
    fn many_failures_do_not_overflow() {
        let b = ErrorBackoff::new(Duration::from_secs(1), Duration::from_secs(300));
        for _ in 0..100 {
            assert!(b.next_delay(&"a") <= Duration::from_secs(300));
        }
    }
}
