//! Read-only queries behind the dashboard's views: chart candles as plain numbers, the signals and
//! trades to mark on a chart, per-strategy rows, a trade's orders, and the
//! change markers the live stream compares.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::PgExecutor;

use crate::domain::Timeframe;
use crate::error::Result;

/// A candle for plotting: Unix seconds and `f64` prices (the exact decimals stay in `/candles`).
#[derive(Debug, Clone, Copy, PartialEq, sqlx::FromRow)]
pub struct PlotCandle {
    pub time: i64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
}

/// The newest `limit` candles before `to` (all when `to` is absent), oldest first.
pub async fn plot_candles(
    db: impl PgExecutor<'_>,
    symbol: &str,
    timeframe: Timeframe,
    to: Option<DateTime<Utc>>,
    limit: i64,
) -> Result<Vec<PlotCandle>> {
    let mut rows: Vec<PlotCandle> = sqlx::query_as(
        "SELECT extract(epoch FROM open_time)::bigint AS time, open::float8 AS open,
                high::float8 AS high, low::float8 AS low, close::float8 AS close,
                volume::float8 AS volume
         FROM candles
         WHERE symbol = $1 AND timeframe = $2 AND ($3::timestamptz IS NULL OR open_time < $3)
         ORDER BY open_time DESC LIMIT $4",
    )
    .bind(symbol)
    .bind(timeframe.as_str())
    .bind(to)
    .bind(limit)
    .fetch_all(db)
    .await?;
    rows.reverse();
    Ok(rows)
}

/// A signal to mark on the chart.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SignalMark {
    pub id: i64,
    pub strategy_id: Option<i64>,
    /// Candle the signal was computed on, or (manual signals) when it was requested.
    pub at: DateTime<Utc>,
    pub action: String,
    pub reason: String,
    pub status: String,
    pub status_reason: Option<String>,
}

/// Signals of `symbol` between `from` and `to` (inclusive): strategy signals of this timeframe by
/// their candle, manual ones by their creation time.
pub async fn signal_marks(
    db: impl PgExecutor<'_>,
    symbol: &str,
    timeframe: Timeframe,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<SignalMark>> {
    Ok(sqlx::query_as(
        "SELECT id, strategy_id, COALESCE(candle_open_time, created_at) AS at, action, reason,
                status, status_reason
         FROM signals
         WHERE symbol = $1 AND (timeframe = $2 OR strategy_id IS NULL)
           AND COALESCE(candle_open_time, created_at) BETWEEN $3 AND $4
         ORDER BY at, id LIMIT 5000",
    )
    .bind(symbol)
    .bind(timeframe.as_str())
    .bind(from)
    .bind(to)
    .fetch_all(db)
    .await?)
}

/// A trade's entry and (when closed) exit, with the reasons of the signals that caused them.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TradeMark {
    pub id: i64,
    pub strategy_id: Option<i64>,
    pub opened_at: DateTime<Utc>,
    pub entry_price: f64,
    pub entry_reason: Option<String>,
    pub closed_at: Option<DateTime<Utc>>,
    pub exit_price: Option<f64>,
    pub exit_reason: Option<String>,
    pub profit: Option<Decimal>,
}

/// Trades of `symbol` that were open at some time between `from` and `to`.
pub async fn trade_marks(
    db: impl PgExecutor<'_>,
    symbol: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<TradeMark>> {
    Ok(sqlx::query_as(
        "SELECT t.id, t.strategy_id, t.opened_at, t.entry_price::float8 AS entry_price,
                (SELECT s.reason FROM orders o JOIN signals s ON s.id = o.signal_id
                 WHERE o.trade_id = t.id AND o.side = 'buy' ORDER BY o.id LIMIT 1) AS entry_reason,
                t.closed_at, t.exit_price::float8 AS exit_price,
                (SELECT s.reason FROM orders o JOIN signals s ON s.id = o.signal_id
                 WHERE o.trade_id = t.id AND o.side = 'sell' ORDER BY o.id DESC LIMIT 1) AS exit_reason,
                t.profit
         FROM trades t
         WHERE t.symbol = $1 AND t.opened_at <= $3 AND (t.closed_at IS NULL OR t.closed_at >= $2)
         ORDER BY t.opened_at, t.id LIMIT 5000",
    )
    .bind(symbol)
    .bind(from)
    .bind(to)
    .fetch_all(db)
    .await?)
}

/// Every closed trade's (strategy, profit) in closing order.
pub async fn closed_profits(db: impl PgExecutor<'_>) -> Result<Vec<(Option<i64>, Decimal)>> {
    Ok(sqlx::query_as(
        "SELECT strategy_id, profit FROM trades WHERE status = 'closed' ORDER BY closed_at, id",
    )
    .fetch_all(db)
    .await?)
}

/// Open trades per strategy: (strategy, count).
pub async fn open_counts(db: impl PgExecutor<'_>) -> Result<Vec<(Option<i64>, i64)>> {
    Ok(sqlx::query_as(
        "SELECT strategy_id, count(*) FROM trades WHERE status = 'open' GROUP BY strategy_id",
    )
    .fetch_all(db)
    .await?)
}

/// An order with the reason of the signal that caused it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OrderWithReason {
    #[sqlx(flatten)]
    pub order: crate::store::trading::Order,
    pub reason: String,
}

pub async fn orders_of_trade(
    db: impl PgExecutor<'_>,
    trade_id: i64,
) -> Result<Vec<OrderWithReason>> {
    Ok(sqlx::query_as(
        "SELECT o.*, s.reason FROM orders o JOIN signals s ON s.id = o.signal_id
         WHERE o.trade_id = $1 ORDER BY o.id",
    )
    .bind(trade_id)
    .fetch_all(db)
    .await?)
}

/// An open trade valued at its symbol's latest close (any timeframe).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ValuedTrade {
    pub id: i64,
    pub symbol: String,
    pub base_asset: String,
    pub strategy_id: Option<i64>,
    pub strategy: Option<String>,
    pub quantity: Decimal,
    pub entry_price: Decimal,
    pub entry_fee: Decimal,
    pub opened_at: DateTime<Utc>,
    pub current_price: Option<Decimal>,
}

pub async fn open_trades_valued(db: impl PgExecutor<'_>) -> Result<Vec<ValuedTrade>> {
    Ok(sqlx::query_as(
        "SELECT t.id, t.symbol, i.base_asset, t.strategy_id, s.name AS strategy, t.quantity,
                t.entry_price, t.entry_fee, t.opened_at,
                (SELECT close FROM candles c WHERE c.symbol = t.symbol
                 ORDER BY open_time DESC LIMIT 1) AS current_price
         FROM trades t JOIN instruments i ON i.symbol = t.symbol
         LEFT JOIN strategies s ON s.id = t.strategy_id
         WHERE t.status = 'open' ORDER BY t.opened_at, t.id",
    )
    .fetch_all(db)
    .await?)
}

/// What the live stream compares between two looks to tell what changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct ChangeMarks {
    pub last_event_id: i64,
    pub bot_updated_at: Option<DateTime<Utc>>,
    pub trades_fingerprint: String,
    pub strategies_updated_at: Option<DateTime<Utc>>,
    pub heartbeats_fingerprint: String,
}

pub async fn change_marks(db: impl PgExecutor<'_>) -> Result<ChangeMarks> {
    Ok(sqlx::query_as(
        "SELECT (SELECT COALESCE(max(id), 0) FROM events) AS last_event_id,
                (SELECT updated_at FROM bot_state WHERE id = 1) AS bot_updated_at,
                (SELECT count(*) || '/' || COALESCE(max(id), 0) || '/' ||
                        count(*) FILTER (WHERE status = 'closed') FROM trades) AS trades_fingerprint,
                (SELECT max(updated_at) FROM strategies) AS strategies_updated_at,
                (SELECT count(*) || '/' || COALESCE(max(started_at)::text, '') FROM component_heartbeats)
                    AS heartbeats_fingerprint",
    )
    .fetch_one(db)
    .await?)
}
