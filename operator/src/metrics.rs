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

/// Label set of the resolution counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `resolved`, `kept` (failed, the pinned digest stays), `unresolved`, `given` (digest in
    /// spec) or `pin_mode`.
    pub outcome: String,
}

/// Label set of the webhook counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabels {
    /// `triggered`, `ignored`, `unauthorized`, `too_large`, `bad_request` or `not_leader`.
    pub result: String,
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
    /// HTTP requests sent to registries (manifests and tokens).
    pub registry_requests: Counter,
    /// Image resolutions, by outcome.
    pub resolutions: Family<OutcomeLabels, Counter>,
    /// Registry notifications received on the webhook, by result.
    pub webhook_notifications: Family<WebhookLabels, Counter>,
    /// Rollbacks to the last healthy digest.
    pub rollbacks: Counter,
    /// Server-side applies of child objects sent to the API server.
    pub applies: Counter,
    /// Applies skipped because the cached child already was the desired state.
    pub applies_skipped: Counter,
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
            registry_requests: Counter::default(),
            resolutions: Family::default(),
            webhook_notifications: Family::default(),
            rollbacks: Counter::default(),
            applies: Counter::default(),
            applies_skipped: Counter::default(),
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
        r.register(
            "registry_requests",
            "HTTP requests sent to registries (manifest and token requests)",
            self.registry_requests.clone(),
        );
        r.register(
            "image_resolutions",
            "Resolutions of spec.image, by outcome",
            self.resolutions.clone(),
        );
        r.register(
            "webhook_notifications",
            "Registry notifications received on the webhook, by result",
            self.webhook_notifications.clone(),
        );
        r.register(
            "rollbacks",
            "Rollbacks of a failed digest to the last healthy one",
            self.rollbacks.clone(),
        );
        r.register(
            "applies",
            "Server-side applies of child objects sent to the API server",
            self.applies.clone(),
        );
        r.register(
            "applies_skipped",
            "Applies of child objects skipped because the cached object already was the desired state",
            self.applies_skipped.clone(),
        );
    }

    /// The registry client has sent `total` requests so far (counters only go up).
    pub fn observe_registry_requests(&self, total: u64) {
        self.registry_requests
            .inner()
            .fetch_max(total, std::sync::atomic::Ordering::Relaxed);
    }

    /// Count a resolution.
    pub fn record_resolution(&self, outcome: &str) {
        self.resolutions
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Count a webhook notification.
    pub fn record_webhook(&self, result: &str) {
        self.webhook_notifications
            .get_or_create(&WebhookLabels {
                result: result.to_owned(),
            })
            .inc();
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
        metrics.observe_registry_requests(7);
        metrics.observe_registry_requests(5);
        metrics.record_resolution("kept");
        metrics.record_webhook("unauthorized");
        let text = encode(&registry).unwrap();
        assert!(
            text.contains("trading_agent_operator_registry_requests_total 7"),
            "{text}"
        );
        assert!(
            text.contains("trading_agent_operator_image_resolutions_total{outcome=\"kept\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "trading_agent_operator_webhook_notifications_total{result=\"unauthorized\"} 1"
            ),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }
}
