//! Webhook delivery from the transactional outbox, with exponential back-off and a retry limit.
//!
//! It runs in a task of its own beside the bot's loop, so a slow or dead webhook never delays
//! signal execution nor touches the bot's liveness. Each entry is leased in one short statement
//! (several bot replicas share the work), POSTed with a timeout, a few at a time, and its outcome
//! recorded in another short statement: no transaction stays open across a network call.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::WebhookConfig;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::metrics::{Metrics, OutcomeLabels};
use crate::store::events::{self, Due};

/// Entries leased per pass.
const BATCH: i64 = 20;
/// POSTs in flight at once.
const CONCURRENCY: usize = 4;
/// Longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(600);
/// Time allowed for one POST, and for its connection.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// A leased entry is not due for anyone else this long: more than a pass can take
/// (BATCH / CONCURRENCY rounds of REQUEST_TIMEOUT), so only a bot that died mid-pass has its
/// entries sent again, by whoever comes next.
const LEASE: Duration = Duration::from_secs(60);
/// Time between two passes of the delivery loop.
const POLL: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct Notifier {
    client: reqwest::Client,
    config: Arc<WebhookConfig>,
    metrics: Arc<Metrics>,
}

impl Notifier {
    pub fn new(config: WebhookConfig, metrics: Arc<Metrics>) -> Result<Self> {
        crate::install_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("trading-agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Webhook(format!("cannot build the HTTP client: {e}")))?;
        Ok(Notifier {
            client,
            config: Arc::new(config),
            metrics,
        })
    }

    /// Delivers the entries that are due, `CONCURRENCY` at a time. Returns how many were delivered.
    pub async fn deliver_due(&self, pool: &PgPool) -> Result<usize> {
        let mut due = events::lease_due(pool, BATCH, LEASE).await?;
        due.sort_by_key(|d| d.event_id);
        let mut delivered = 0;
        for round in due.chunks(CONCURRENCY) {
            let mut posts = JoinSet::new();
            for entry in round {
                let (notifier, entry) = (self.clone(), entry.clone());
                posts.spawn(async move {
                    let result = notifier.post(&entry).await;
                    (entry, result)
                });
            }
            while let Some(joined) = posts.join_next().await {
                let Ok((entry, result)) = joined else {
                    continue; // a panicked POST: its lease expires and it is sent again
                };
                if self.record(pool, &entry, result).await? {
                    delivered += 1;
                }
            }
        }
        Ok(delivered)
    }

    /// Records one attempt's outcome; true when delivered.
    async fn record(&self, pool: &PgPool, entry: &Due, result: Result<(), String>) -> Result<bool> {
        let attempt = entry.attempts as u32 + 1;
        match result {
            Ok(()) => {
                events::mark_delivered(pool, entry.event_id).await?;
                self.count("delivered");
                Ok(true)
            }
            Err(error) => {
                let give_up = attempt >= self.config.max_attempts;
                let retry_in = backoff(self.config.retry_base, attempt);
                tracing::warn!(event = entry.event_id, attempt, %error, give_up, "webhook delivery failed");
                events::mark_failed(pool, entry.event_id, &error, retry_in, give_up).await?;
                self.count(if give_up { "failed" } else { "retry" });
                Ok(false)
            }
        }
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
            .post(self.config.url.expose())
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

/// The bot's delivery loop, until shutdown. Without a webhook, pending entries are marked
/// `skipped` (the feed keeps them). Failures are logged and retried on the next pass; they never
/// reach the bot's health.
pub async fn run(db: Db, notifier: Option<Notifier>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => break,
            _ = tokio::time::sleep(POLL) => {}
        }
        let Ok(pool) = db.pool() else { continue };
        let pass = async {
            match &notifier {
                Some(notifier) => notifier.deliver_due(pool).await.map(|_| ()),
                None => events::skip_pending(pool).await.map(|_| ()),
            }
        };
        tokio::select! {
            biased;
            // Entries leased by an abandoned pass are sent again once their lease ends.
            _ = shutdown.wait_for(|stop| *stop) => break,
            result = pass => {
                if let Err(error) = result {
                    tracing::warn!(%error, "notification pass failed; retrying on the next one");
                }
            }
        }
    }
    tracing::info!("notification delivery stopped");
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
