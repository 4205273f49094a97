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
    /// Present while entries are halted because the day's realised loss reached the bot's
    /// `DAILY_LOSS_LIMIT` (cleared when the UTC day turns).
    #[sqlx(skip)]
    pub daily_loss_halt: Option<DailyLossHalt>,
}

/// The bot's daily-loss halt.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DailyLossHalt {
    /// Why, with the amounts.
    #[schema(example = "daily loss limit reached: realised -512.30 USDT today, limit 500")]
    pub message: String,
    pub since: DateTime<Utc>,
}

fn halt(message: Option<String>, since: Option<DateTime<Utc>>) -> Option<DailyLossHalt> {
    Some(DailyLossHalt {
        message: message?,
        since: since?,
    })
}

/// Records the bot's judgement of the daily-loss limit: sets the halt if there is none, clears
/// it if there is one. Writes only on a change; returns whether it changed.
pub async fn record_daily_loss_halt(
    db: impl PgExecutor<'_>,
    message: Option<&str>,
) -> Result<bool> {
    let changed = match message {
        Some(message) => {
            sqlx::query(
                "UPDATE bot_state SET halt_message = $1, halted_at = now()
                 WHERE id = 1 AND halt_message IS NULL",
            )
            .bind(message)
            .execute(db)
            .await?
        }
        None => {
            sqlx::query(
                "UPDATE bot_state SET halt_message = NULL, halted_at = NULL
                 WHERE id = 1 AND halt_message IS NOT NULL",
            )
            .execute(db)
            .await?
        }
    };
    Ok(changed.rows_affected() > 0)
}

pub async fn state(db: impl PgExecutor<'_>) -> Result<BotStatus> {
    let (state, updated_at, message, since): (
        String,
        DateTime<Utc>,
        Option<String>,
        Option<DateTime<Utc>>,
    ) = sqlx::query_as(
        "SELECT state, updated_at, halt_message, halted_at FROM bot_state WHERE id = 1",
    )
    .fetch_one(db)
    .await?;
    Ok(BotStatus {
        state: BotState::parse(&state).unwrap_or(BotState::Stopped),
        updated_at,
        daily_loss_halt: halt(message, since),
    })
}

/// Sets the state; returns the new status and the previous state.
pub async fn set_state(db: impl PgExecutor<'_>, state: BotState) -> Result<(BotStatus, BotState)> {
    #[allow(clippy::type_complexity)]
    let (new_state, updated_at, previous, message, since): (
        String,
        DateTime<Utc>,
        String,
        Option<String>,
        Option<DateTime<Utc>>,
    ) = sqlx::query_as(
        "UPDATE bot_state b SET state = $1, updated_at = now()
         FROM (SELECT state FROM bot_state WHERE id = 1 FOR UPDATE) old
         WHERE b.id = 1 RETURNING b.state, b.updated_at, old.state, b.halt_message, b.halted_at",
    )
    .bind(state.as_str())
    .fetch_one(db)
    .await?;
    let parse = |s: String| BotState::parse(&s).unwrap_or(BotState::Stopped);
    Ok((
        BotStatus {
            state: parse(new_state),
            updated_at,
            daily_loss_halt: halt(message, since),
        },
        parse(previous),
    ))
}
