//! `bot_state`: whether the bot trades (running / stopped / stop-entry).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgExecutor;
use utoipa::ToSchema;

use crate::domain::BotState;
use crate::error::Result;

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct BotStatus {
    #[sqlx(try_from = "String")]
    pub state: BotState,
    pub updated_at: DateTime<Utc>,
}

pub async fn state(db: impl PgExecutor<'_>) -> Result<BotStatus> {
    Ok(
        sqlx::query_as("SELECT state, updated_at FROM bot_state WHERE id = 1")
            .fetch_one(db)
            .await?,
    )
}

/// Sets the state; returns the new status and the previous state.
pub async fn set_state(db: impl PgExecutor<'_>, state: BotState) -> Result<(BotStatus, BotState)> {
    let (new_state, updated_at, previous): (String, DateTime<Utc>, String) = sqlx::query_as(
        "UPDATE bot_state b SET state = $1, updated_at = now()
         FROM (SELECT state FROM bot_state WHERE id = 1 FOR UPDATE) old
         WHERE b.id = 1 RETURNING b.state, b.updated_at, old.state",
    )
    .bind(state.as_str())
    .fetch_one(db)
    .await?;
    let parse = |s: String| BotState::parse(&s).unwrap_or(BotState::Stopped);
    Ok((
        BotStatus {
            state: parse(new_state),
            updated_at,
        },
        parse(previous),
    ))
}
