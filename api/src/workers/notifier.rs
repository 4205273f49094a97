//! Webhook delivery from the transactional outbox, with exponential back-off and a retry limit.
//! Several bot replicas share the work (`FOR UPDATE SKIP LOCKED` on the outbox rows).

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;

use crate::config::WebhookConfig;
use crate::error::{Error, Result};
use crate::metrics::{Metrics, OutcomeLabels};
use crate::store::events::{self, Due};

/// Entries sent per pass.
const BATCH: i64 = 20;
/// Longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(600);
/// Time allowed for one POST.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Notifier {
    client: reqwest::Client,
    config: WebhookConfig,
    metrics: Arc<Metrics>,
}

impl Notifier {
    pub fn new(config: WebhookConfig, metrics: Arc<Metrics>) -> Result<Self> {
        crate::install_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("trading-agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Webhook(format!("cannot build the HTTP client: {e}")))?;
        Ok(Notifier {
            client,
            config,
            metrics,
        })
    }

    /// Delivers the entries that are due. Returns how many were delivered.
    pub async fn deliver_due(&self, pool: &PgPool) -> Result<usize> {
        let mut tx = pool.begin().await?;
        let due = events::claim_due(&mut tx, BATCH).await?;
        let mut delivered = 0;
        for entry in &due {
            let attempt = entry.attempts as u32 + 1;
            match self.post(entry).await {
                Ok(()) => {
                    events::mark_delivered(&mut tx, entry.event_id).await?;
                    delivered += 1;
                    self.count("delivered");
                }
                Err(error) => {
                    let give_up = attempt >= self.config.max_attempts;
                    let retry_in = backoff(self.config.retry_base, attempt);
                    tracing::warn!(event = entry.event_id, attempt, %error, give_up, "webhook delivery failed");
                    events::mark_failed(&mut tx, entry.event_id, &error, retry_in, give_up).await?;
                    self.count(if give_up { "failed" } else { "retry" });
                }
            }
        }
        tx.commit().await?;
        Ok(delivered)
    }

    async fn post(&self, entry: &Due) -> Result<(), String> {
        let body = serde_json::json!({
            "id": entry.event_id,
            "created_at": entry.created_at,
            "level": entry.level,
            "kind": entry.kind,
            "message": entry.message,
            "data": entry.data.0,
        });
        let response = self
            .client
            .post(&self.config.url)
            .header("Idempotency-Key", format!("event-{}", entry.event_id))
            .json(&body)
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("webhook answered {}", response.status()))
        }
    }

    fn count(&self, outcome: &'static str) {
        self.metrics
            .notifications
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }
}

/// Delay before attempt `attempt + 1`: `base * 2^(attempt - 1)`, capped.
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(20));
    base.saturating_mul(factor).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let base = Duration::from_secs(2);
        assert_eq!(backoff(base, 1), Duration::from_secs(2));
        assert_eq!(backoff(base, 2), Duration::from_secs(4));
        assert_eq!(backoff(base, 4), Duration::from_secs(16));
        assert_eq!(backoff(base, 30), MAX_BACKOFF);
    }
}
