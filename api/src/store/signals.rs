//! `signals`: what the strategies (or a person) ask the bot to do.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgExecutor};
use utoipa::ToSchema;

use crate::domain::exits::ExitReason;
use crate::domain::{Action, Timeframe};
use crate::error::{Error, Result};

/// Where a signal is in its life: `new` until the bot handles it, then `executed` or `rejected`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SignalStatus {
    New,
    Executed,
    Rejected,
}

impl SignalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SignalStatus::New => "new",
            SignalStatus::Executed => "executed",
            SignalStatus::Rejected => "rejected",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "new" => Some(SignalStatus::New),
            "executed" => Some(SignalStatus::Executed),
            "rejected" => Some(SignalStatus::Rejected),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Signal {
    pub id: i64,
    /// The strategy that produced it; absent for manual (force-enter/exit, POST /orders) signals.
    pub strategy_id: Option<i64>,
    pub symbol: String,
    #[sqlx(try_from = "Option<String>")]
    #[schema(value_type = Option<Timeframe>)]
    pub timeframe: OptionalTimeframe,
    /// Open time of the (closed) candle the signal was computed on.
    pub candle_open_time: Option<DateTime<Utc>>,
    #[sqlx(try_from = "String")]
    pub action: Action,
    /// Close of that candle: the paper exchange fills at this price plus slippage.
    #[schema(value_type = Option<String>)]
    pub price: Option<Decimal>,
    /// Quote amount of a manual entry (strategy entries use the bot's stake).
    #[schema(value_type = Option<String>)]
    pub stake: Option<Decimal>,
    pub reason: String,
    /// Client key of a manual signal (`client_order_id`).
    pub idempotency_key: Option<String>,
    #[sqlx(try_from = "String")]
    pub status: SignalStatus,
    /// Why it was rejected, e.g. `max_open_trades: max open trades reached (5)`.
    pub status_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub processed_at: Option<DateTime<Utc>>,
    /// A protective exit's trade: the signal closes this trade only.
    pub trade_id: Option<i64>,
    /// Why a protective exit fired (`stop_loss`, `trailing_stop`, `roi`).
    #[sqlx(try_from = "Option<String>")]
    #[schema(value_type = Option<ExitReason>)]
    pub exit_reason: OptionalExitReason,
}

/// `Option<ExitReason>` decoded from a nullable text column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct OptionalExitReason(pub Option<ExitReason>);

impl TryFrom<Option<String>> for OptionalExitReason {
    type Error = String;
    fn try_from(value: Option<String>) -> Result<Self, String> {
        value
            .map(|text| ExitReason::parse(&text).ok_or(format!("unexpected exit reason `{text}`")))
            .transpose()
            .map(OptionalExitReason)
    }
}

/// `Option<Timeframe>` decoded from a nullable text column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct OptionalTimeframe(pub Option<Timeframe>);

impl TryFrom<Option<String>> for OptionalTimeframe {
    type Error = String;
    fn try_from(value: Option<String>) -> Result<Self, String> {
        value
            .map(|t| t.parse::<Timeframe>())
            .transpose()
            .map(OptionalTimeframe)
    }
}

/// A strategy's signal on one closed candle.
#[derive(Debug, Clone)]
pub struct NewStrategySignal<'a> {
    pub strategy_id: i64,
    pub symbol: &'a str,
    pub timeframe: Timeframe,
    pub candle_open_time: DateTime<Utc>,
    pub action: Action,
    pub price: Decimal,
    pub reason: String,
}

/// Writes the signal unless the same (strategy, symbol, candle, action) exists. Returns whether a
/// row was written: re-running a tick over the same candles writes nothing.
pub async fn insert_strategy_signal(
    db: impl PgExecutor<'_>,
    s: &NewStrategySignal<'_>,
) -> Result<bool> {
    let result = sqlx::query(
        "INSERT INTO signals (strategy_id, symbol, timeframe, candle_open_time, action, price, reason)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (strategy_id, symbol, candle_open_time, action) WHERE strategy_id IS NOT NULL
         DO NOTHING",
    )
    .bind(s.strategy_id)
    .bind(s.symbol)
    .bind(s.timeframe.as_str())
    .bind(s.candle_open_time)
    .bind(s.action.as_str())
    .bind(s.price)
    .bind(&s.reason)
    .execute(db)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// A protective exit of one trade, priced by a candle of the symbol.
#[derive(Debug, Clone)]
pub struct NewExitSignal<'a> {
    pub trade_id: i64,
    pub strategy_id: Option<i64>,
    pub symbol: &'a str,
    pub timeframe: Timeframe,
    pub candle_open_time: DateTime<Utc>,
    pub price: Decimal,
    pub reason: ExitReason,
    pub message: String,
}

/// Writes a protective exit unless one is pending for the trade (or, for a strategy's trade, the
/// strategy already has a sell on that candle, which closes the trade too). Returns whether a row
/// was written.
pub async fn insert_exit(db: impl PgExecutor<'_>, s: &NewExitSignal<'_>) -> Result<bool> {
    // A manual trade's exit needs an idempotency key (the schema pairs manual signals with one):
    // per trade and candle, so a later candle can try again if this one was rejected.
    let key = s.strategy_id.is_none().then(|| {
        format!(
            "exit-trade-{}-{}",
            s.trade_id,
            s.candle_open_time.timestamp()
        )
    });
    let result = sqlx::query(
        "INSERT INTO signals (strategy_id, symbol, timeframe, candle_open_time, action, price,
                              reason, idempotency_key, trade_id, exit_reason)
         VALUES ($1, $2, $3, $4, 'sell', $5, $6, $7, $8, $9)
         ON CONFLICT DO NOTHING",
    )
    .bind(s.strategy_id)
    .bind(s.symbol)
    .bind(s.timeframe.as_str())
    .bind(s.candle_open_time)
    .bind(s.price)
    .bind(&s.message)
    .bind(key)
    .bind(s.trade_id)
    .bind(s.reason.as_str())
    .execute(db)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// A manual order request.
#[derive(Debug, Clone)]
pub struct NewManualSignal<'a> {
    pub symbol: &'a str,
    pub action: Action,
    pub stake: Option<Decimal>,
    pub idempotency_key: &'a str,
    pub reason: String,
}

/// Queues a manual signal. The same key again with the same request returns the first signal
/// (`false`: nothing new); with a different request it is a 409.
pub async fn insert_manual(
    db: &mut PgConnection,
    s: &NewManualSignal<'_>,
) -> Result<(Signal, bool)> {
    let inserted: Option<Signal> = sqlx::query_as(
        "INSERT INTO signals (symbol, action, stake, reason, idempotency_key)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (idempotency_key) DO NOTHING RETURNING *",
    )
    .bind(s.symbol)
    .bind(s.action.as_str())
    .bind(s.stake)
    .bind(&s.reason)
    .bind(s.idempotency_key)
    .fetch_optional(&mut *db)
    .await?;
    if let Some(signal) = inserted {
        return Ok((signal, true));
    }
    let existing: Signal = sqlx::query_as("SELECT * FROM signals WHERE idempotency_key = $1")
        .bind(s.idempotency_key)
        .fetch_one(&mut *db)
        .await?;
    if existing.symbol == s.symbol && existing.action == s.action && existing.stake == s.stake {
        Ok((existing, false))
    } else {
        Err(Error::Conflict(format!(
            "client_order_id `{}` was already used for a different order (signal {})",
            s.idempotency_key, existing.id
        )))
    }
}

#[derive(Debug, Default)]
pub struct SignalFilter<'a> {
    pub strategy_id: Option<i64>,
    pub symbol: Option<&'a str>,
    pub status: Option<SignalStatus>,
    pub before_id: Option<i64>,
    pub limit: i64,
}

/// Newest first.
pub async fn list(db: impl PgExecutor<'_>, f: &SignalFilter<'_>) -> Result<Vec<Signal>> {
    Ok(sqlx::query_as(
        "SELECT * FROM signals
         WHERE ($1::bigint IS NULL OR strategy_id = $1)
           AND ($2::text IS NULL OR symbol = $2)
           AND ($3::text IS NULL OR status = $3)
           AND ($4::bigint IS NULL OR id < $4)
         ORDER BY id DESC LIMIT $5",
    )
    .bind(f.strategy_id)
    .bind(f.symbol)
    .bind(f.status.map(SignalStatus::as_str))
    .bind(f.before_id)
    .bind(f.limit)
    .fetch_all(db)
    .await?)
}

pub async fn get(db: impl PgExecutor<'_>, id: i64) -> Result<Signal> {
    sqlx::query_as("SELECT * FROM signals WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await?
        .ok_or_else(|| Error::not_found(format!("signal {id}")))
}

/// Claims the oldest new signal for this transaction. Rows locked by another bot are skipped, so
/// replicas work in parallel and never on the same signal; if the transaction dies, the lock goes
/// with it and the signal is claimed again later.
pub async fn claim_next(tx: &mut PgConnection) -> Result<Option<Signal>> {
    Ok(sqlx::query_as(
        "SELECT * FROM signals WHERE status = 'new' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED",
    )
    .fetch_optional(tx)
    .await?)
}

/// Locks signal `id` for this transaction if it is still `new`; false when another bot handled it.
pub async fn claim(tx: &mut PgConnection, id: i64) -> Result<bool> {
    let row: Option<i64> =
        sqlx::query_scalar("SELECT id FROM signals WHERE id = $1 AND status = 'new' FOR UPDATE")
            .bind(id)
            .fetch_optional(tx)
            .await?;
    Ok(row.is_some())
}

pub async fn finish(
    tx: &mut PgConnection,
    id: i64,
    status: SignalStatus,
    reason: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "UPDATE signals SET status = $2, status_reason = $3, processed_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(status.as_str())
    .bind(reason)
    .execute(tx)
    .await?;
    Ok(())
}
