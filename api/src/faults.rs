//! Fail points: faults the level-3 tests inject into a real image, because some failures cannot
//! be caused from outside (a worker loop that stops making progress while the process and its
//! HTTP server stay up is what liveness exists for).
//!
//! Built only with `--features failpoints` (the `fail` crate's points compile to nothing without
//! it) and configured by the `FAILPOINTS` environment variable at start, e.g.
//! `FAILPOINTS=worker-loop-stall=3*off->return`: three ticks pass, then the loop stalls.

/// Reads `FAILPOINTS`. Keep the guard for the life of the process. An unparsable value panics at
/// start, which is what a test build should do with a typo.
#[cfg(feature = "failpoints")]
pub fn setup() -> fail::FailScenario<'static> {
    fail::FailScenario::setup()
}

/// `worker-loop-stall`: when it fires, the worker loop stops ticking (and beating) until shutdown.
pub fn worker_loop_stall() -> bool {
    fail::fail_point!("worker-loop-stall", |_| true);
    false
}
