//! Whether the controller is making progress, for `/healthz`: a liveness probe must notice a
//! controller that is stuck, not just a process that answers HTTP.
//!
//! Progress is a reconciliation starting or finishing. There is work while a reconciliation runs
//! or any TradingAgent is watched: every TradingAgent is reconciled again within
//! [`crate::digest::freshness::RESYNC_INTERVAL`] (and every failure retried within
//! [`super::controller::BACKOFF_MAX`]), so a controller with work and no progress for
//! [`STALL_LIMIT`] is stuck.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// No progress for this long while there is work: the controller is stuck (twice the resync
/// period, so a healthy idle controller always makes progress in time).
pub const STALL_LIMIT: Duration = Duration::from_secs(600);

/// Reconciliations in flight, TradingAgents watched, and the last progress.
#[derive(Debug)]
pub struct Progress {
    in_flight: AtomicUsize,
    watched: AtomicUsize,
    last: Mutex<Instant>,
}

impl Default for Progress {
    fn default() -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            watched: AtomicUsize::new(0),
            last: Mutex::new(Instant::now()),
        }
    }
}

/// A reconciliation in flight; finishing (or being dropped, when leadership is lost) is progress.
pub struct InFlight<'a>(&'a Progress);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.0.mark(Instant::now());
    }
}

impl Progress {
    /// A reconciliation starts, with `watched` TradingAgents in the cache.
    pub fn start(&self, watched: usize) -> InFlight<'_> {
        self.watched.store(watched, Ordering::SeqCst);
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.mark(Instant::now());
        InFlight(self)
    }

    /// Progress at `now` (also: a controller starts, so it is not judged by its predecessor).
    pub fn mark(&self, now: Instant) {
        let mut last = self.last.lock();
        *last = (*last).max(now);
    }

    /// How long the controller has had work and made no progress, if longer than `limit`.
    pub fn stalled(&self, now: Instant, limit: Duration) -> Option<Duration> {
        let has_work =
            self.in_flight.load(Ordering::SeqCst) > 0 || self.watched.load(Ordering::SeqCst) > 0;
        let since = now.saturating_duration_since(*self.last.lock());
        (has_work && since > limit).then_some(since)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stuck_only_with_work_and_no_progress_for_the_limit() {
        let progress = Progress::default();
        let start = Instant::now();
        progress.mark(start);
        let limit = Duration::from_secs(600);
        let later = start + Duration::from_secs(601);
        assert_eq!(
            progress.stalled(later, limit),
            None,
            "no work: idle, not stuck"
        );

        let running = progress.start(0);
        assert!(
            progress.stalled(later + limit, limit).is_some(),
            "one hung reconciliation"
        );
        drop(running);
        // Finishing was progress.
        assert_eq!(progress.stalled(Instant::now(), limit), None);

        // Watched TradingAgents are always due again within the resync period.
        drop(progress.start(3));
        let now = Instant::now();
        assert_eq!(
            progress.stalled(now + Duration::from_secs(599), limit),
            None
        );
        assert!(
            progress
                .stalled(now + Duration::from_secs(700), limit)
                .is_some()
        );
    }
}
