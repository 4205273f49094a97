//! The operator's Prometheus metrics, served on `/metrics` in the OpenMetrics text format.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Label set of the failure counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    /// [`crate::Error::metric_label`].
    pub reason: String,
}

/// Metrics of the controller and the leader election.
#[derive(Clone)]
pub struct Metrics {
    /// Reconciliations started.
    pub reconciliations: Counter,
    /// Reconciliations that failed, by reason.
    pub failures: Family<FailureLabels, Counter>,
    /// Duration of reconciliations.
    pub reconcile_duration: Histogram,
    /// Reconciliations running now.
    pub reconciles_in_flight: Gauge,
    /// Objects waiting to be retried after a failure (the error back-off queue).
    pub objects_in_backoff: Gauge,
    /// TradingAgents in the controller's cache.
    pub managed_resources: Gauge,
    /// Status writes (a write happens only when the status changes).
    pub status_updates: Counter,
    /// 1 while this process holds the leader Lease (or runs without leader election).
    pub leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            reconciliations: Counter::default(),
            failures: Family::default(),
            reconcile_duration: Histogram::new(exponential_buckets(0.005, 2.0, 12)),
            reconciles_in_flight: Gauge::default(),
            objects_in_backoff: Gauge::default(),
            managed_resources: Gauge::default(),
            status_updates: Counter::default(),
            leader: Gauge::default(),
        }
    }
}

impl Metrics {
    /// Register every metric under the `trading_agent_operator` prefix.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("trading_agent_operator");
        r.register(
            "reconciliations",
            "Reconciliations of TradingAgents started",
            self.reconciliations.clone(),
        );
        r.register(
            "reconcile_failures",
            "Reconciliations that failed, by reason",
            self.failures.clone(),
        );
        r.register(
            "reconcile_duration_seconds",
            "Duration of reconciliations in seconds",
            self.reconcile_duration.clone(),
        );
        r.register(
            "reconciles_in_flight",
            "Reconciliations running now",
            self.reconciles_in_flight.clone(),
        );
        r.register(
            "objects_in_backoff",
            "TradingAgents waiting to be retried after a failed reconciliation",
            self.objects_in_backoff.clone(),
        );
        r.register(
            "managed_resources",
            "TradingAgents in the controller's cache",
            self.managed_resources.clone(),
        );
        r.register(
            "status_updates",
            "Status writes (only made when the status changes)",
            self.status_updates.clone(),
        );
        r.register(
            "leader",
            "1 while this process is the leader and runs the controller",
            self.leader.clone(),
        );
    }

    /// Count a failure.
    pub fn record_failure(&self, reason: &str) {
        self.failures
            .get_or_create(&FailureLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Start timing a reconciliation; the returned guard records it when dropped.
    pub fn start_reconcile(&self) -> ReconcileTimer {
        self.reconciliations.inc();
        self.reconciles_in_flight.inc();
        ReconcileTimer {
            metrics: self.clone(),
            started: std::time::Instant::now(),
        }
    }
}

/// Records a reconciliation's duration when dropped (also on early return or cancellation).
pub struct ReconcileTimer {
    metrics: Metrics,
    started: std::time::Instant,
}

impl ReconcileTimer {
    /// Time since the reconciliation started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        self.metrics
            .reconcile_duration
            .observe(self.started.elapsed().as_secs_f64());
        self.metrics.reconciles_in_flight.dec();
    }
}

/// Encode a registry in the OpenMetrics text format.
pub fn encode(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_counters_failures_and_histogram() {
        let metrics = Metrics::default();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        drop(metrics.start_reconcile());
        metrics.record_failure("secret_not_found");
        metrics.record_failure("secret_not_found");
        let text = encode(&registry).unwrap();
        assert!(
            text.contains("trading_agent_operator_reconciliations_total 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "trading_agent_operator_reconcile_failures_total{reason=\"secret_not_found\"} 2"
            ),
            "{text}"
        );
        assert!(text.contains("trading_agent_operator_reconcile_duration_seconds_count 1"));
        assert!(text.contains("trading_agent_operator_reconciles_in_flight 0"));
        assert!(text.ends_with("# EOF\n"));
    }
}
