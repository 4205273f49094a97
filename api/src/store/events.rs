//! `events` (the notification feed) and `notification_outbox` (webhook delivery, written in the
//! same transaction as the event it announces).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::types::Json;
use sqlx::{PgConnection, PgExecutor};
use utoipa::ToSchema;

use crate::error::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warning,
    Error,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Event {
    pub id: i64,
    pub created_at: DateTime<Utc>,
    /// `info`, `warning` or `error`.
    #[schema(example = "info")]
    pub level: String,
    /// What happened, e.g. `trade_opened`, `trade_closed`, `signal_rejected`, `data_gap`, `bot_state`.
    #[schema(example = "trade_opened")]
    pub kind: String,
    pub message: String,
    #[schema(value_type = Object)]
    pub data: Json<serde_json::Value>,
    /// Webhook delivery: `pending`, `delivered` or `failed`; absent when not sent to the webhook.
    pub delivery: Option<String>,
}

/// An event to record.
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    pub level: Level,
    pub kind: &'a str,
    pub message: String,
    pub data: serde_json::Value,
    /// Also deliver it to the webhook.
    pub notify: bool,
    /// Record at most one event per key (a condition seen on every tick).
    pub dedup_key: Option<String>,
}

/// Records the event (and its outbox row). Returns `None` when the dedup key was seen before.
pub async fn record(db: &mut PgConnection, e: &NewEvent<'_>) -> Result<Option<i64>> {
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO events (level, kind, message, data, dedup_key) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (dedup_key) DO NOTHING RETURNING id",
    )
    .bind(e.level.as_str())
    .bind(e.kind)
    .bind(&e.message)
    .bind(Json(&e.data))
    .bind(&e.dedup_key)
    .fetch_optional(&mut *db)
    .await?;
    if let (Some(id), true) = (id, e.notify) {
        sqlx::query("INSERT INTO notification_outbox (event_id) VALUES ($1)")
            .bind(id)
            .execute(&mut *db)
            .await?;
    }
    Ok(id)
}

/// The feed: events after `after_id` (oldest first, for polling), or the newest ones.
pub async fn list(
    db: impl PgExecutor<'_>,
    after_id: Option<i64>,
    limit: i64,
) -> Result<Vec<Event>> {
    let sql = if after_id.is_some() {
        "SELECT e.*, o.status AS delivery FROM events e
         LEFT JOIN notification_outbox o ON o.event_id = e.id
         WHERE e.id > $1 ORDER BY e.id LIMIT $2"
    } else {
        "SELECT * FROM (SELECT e.*, o.status AS delivery FROM events e
         LEFT JOIN notification_outbox o ON o.event_id = e.id
         WHERE $1::bigint IS NULL ORDER BY e.id DESC LIMIT $2) newest ORDER BY id"
    };
    Ok(sqlx::query_as(sql)
        .bind(after_id)
        .bind(limit)
        .fetch_all(db)
        .await?)
}

/// An outbox entry due for delivery, with its event.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Due {
    pub event_id: i64,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    pub level: String,
    pub kind: String,
    pub message: String,
    pub data: Json<serde_json::Value>,
}

/// Leases up to `limit` due entries in one statement: they are not due again for `lease`, so
/// other bots skip them while this one sends them, and no transaction spans the network call.
pub async fn lease_due(
    db: impl PgExecutor<'_>,
    limit: i64,
    lease: std::time::Duration,
) -> Result<Vec<Due>> {
    Ok(sqlx::query_as(
        "UPDATE notification_outbox o SET next_attempt_at = now() + make_interval(secs => $2)
         FROM events e
         WHERE e.id = o.event_id
           AND o.event_id IN (SELECT event_id FROM notification_outbox
                              WHERE status = 'pending' AND next_attempt_at <= now()
                              ORDER BY event_id LIMIT $1 FOR UPDATE SKIP LOCKED)
         RETURNING o.event_id, o.attempts, e.created_at, e.level, e.kind, e.message, e.data",
    )
    .bind(limit)
    .bind(lease.as_secs_f64())
    .fetch_all(db)
    .await?)
}

pub async fn mark_delivered(db: impl PgExecutor<'_>, event_id: i64) -> Result<()> {
    sqlx::query(
        "UPDATE notification_outbox SET status = 'delivered', attempts = attempts + 1,
                delivered_at = now(), last_error = NULL
         WHERE event_id = $1",
    )
    .bind(event_id)
    .execute(db)
    .await?;
    Ok(())
}

/// Records a failed attempt: retried after `retry_in`, or given up (`failed`) when `give_up`.
pub async fn mark_failed(
    db: impl PgExecutor<'_>,
    event_id: i64,
    error: &str,
    retry_in: std::time::Duration,
    give_up: bool,
) -> Result<()> {
    sqlx::query(
        "UPDATE notification_outbox
         SET attempts = attempts + 1, last_error = $2,
             status = CASE WHEN $4 THEN 'failed' ELSE 'pending' END,
             next_attempt_at = now() + make_interval(secs => $3)
         WHERE event_id = $1",
    )
    .bind(event_id)
    .bind(error)
    .bind(retry_in.as_secs_f64())
    .bind(give_up)
    .execute(db)
    .await?;
    Ok(())
}

/// Without a webhook configured, pending entries are marked `skipped` (the feed still has them).
pub async fn skip_pending(db: impl PgExecutor<'_>) -> Result<u64> {
    Ok(
        sqlx::query("UPDATE notification_outbox SET status = 'skipped' WHERE status = 'pending'")
            .execute(db)
            .await?
            .rows_affected(),
    )
}
