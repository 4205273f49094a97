//! `equity_snapshots`: what each quote currency was worth over time, for the equity curve.
//!
//! The bot calls [`snapshot_if_due`] every tick; it writes one row per currency per minute (the
//! minute is part of the key, so several bot replicas write it once) and deletes rows older than
//! [`RETENTION_DAYS`]. [`history`] reads a time range back, thinned to a bounded number of points.

use chrono::{DateTime, Duration, DurationRound, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::{PgExecutor, PgPool};
use utoipa::ToSchema;

use crate::domain::equity::{Position, Worth, worth_by_currency};
use crate::error::Result;

/// One snapshot per currency per this period.
pub const SNAPSHOT_EVERY: Duration = Duration::minutes(1);
/// Snapshots older than this are deleted.
pub const RETENTION_DAYS: i64 = 30;

/// What each currency is worth now: cash (`balances`) and open positions at their symbol's latest
/// close (any timeframe; the entry price when there is no candle).
pub async fn current(db: &PgPool) -> Result<Vec<Worth>> {
    let cash: Vec<(String, Decimal)> = crate::store::trading::wallets(db)
        .await?
        .into_iter()
        .map(|w| (w.currency, w.balance))
        .collect();
    let positions: Vec<(String, Decimal, Decimal)> = sqlx::query_as(
        "SELECT i.quote_asset, t.quantity,
                COALESCE((SELECT close FROM candles c WHERE c.symbol = t.symbol
                          ORDER BY open_time DESC LIMIT 1), t.entry_price) AS price
         FROM trades t JOIN instruments i USING (symbol)
         WHERE t.status = 'open'",
    )
    .fetch_all(db)
    .await?;
    let positions: Vec<Position> = positions
        .into_iter()
        .map(|(quote_currency, quantity, price)| Position {
            quote_currency,
            quantity,
            price,
        })
        .collect();
    Ok(worth_by_currency(&cash, &positions))
}

/// Records the current worth of every currency when this minute has no snapshot yet, and deletes
/// the ones past retention. Returns whether it wrote.
pub async fn snapshot_if_due(db: &PgPool, now: DateTime<Utc>) -> Result<bool> {
    let at = now.duration_trunc(SNAPSHOT_EVERY).unwrap_or(now);
    let taken: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM equity_snapshots WHERE taken_at = $1)")
            .bind(at)
            .fetch_one(db)
            .await?;
    if taken {
        return Ok(false);
    }
    let worth = current(db).await?;
    let currencies: Vec<&str> = worth.iter().map(|w| w.currency.as_str()).collect();
    let cash: Vec<Decimal> = worth.iter().map(|w| w.cash).collect();
    let positions: Vec<Decimal> = worth.iter().map(|w| w.positions).collect();
    let equity: Vec<Decimal> = worth.iter().map(|w| w.equity).collect();
    sqlx::query(
        "INSERT INTO equity_snapshots (currency, taken_at, cash, positions, equity)
         SELECT currency, $1, cash, positions, equity
         FROM unnest($2::text[], $3::numeric[], $4::numeric[], $5::numeric[])
              AS w(currency, cash, positions, equity)
         ON CONFLICT (currency, taken_at) DO NOTHING",
    )
    .bind(at)
    .bind(&currencies)
    .bind(&cash)
    .bind(&positions)
    .bind(&equity)
    .execute(db)
    .await?;
    sqlx::query("DELETE FROM equity_snapshots WHERE taken_at < $1")
        .bind(at - Duration::days(RETENTION_DAYS))
        .execute(db)
        .await?;
    Ok(true)
}

/// A recorded point of the curve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema, sqlx::FromRow)]
pub struct Snapshot {
    #[schema(example = "USDT")]
    pub currency: String,
    pub taken_at: DateTime<Utc>,
    #[schema(value_type = String)]
    pub cash: Decimal,
    #[schema(value_type = String)]
    pub positions: Decimal,
    #[schema(value_type = String)]
    pub equity: Decimal,
}

/// Snapshots taken in `[from, to]`, by currency and time: the last one of each `step`-long bucket
/// (counted from `from`), so a long range comes back thinned to about `(to - from) / step` points
/// per currency.
pub async fn history(
    db: impl PgExecutor<'_>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    step: Duration,
) -> Result<Vec<Snapshot>> {
    Ok(sqlx::query_as(
        "SELECT DISTINCT ON (currency, date_bin(make_interval(secs => $3), taken_at, $1))
                currency, taken_at, cash, positions, equity
         FROM equity_snapshots WHERE taken_at BETWEEN $1 AND $2
         ORDER BY currency, date_bin(make_interval(secs => $3), taken_at, $1), taken_at DESC",
    )
    .bind(from)
    .bind(to)
    .bind(step.num_seconds().max(1) as f64)
    .fetch_all(db)
    .await?)
}
