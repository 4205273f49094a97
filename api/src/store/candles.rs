//! `candles`: OHLCV bars, unique per (symbol, timeframe, open_time).

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::{PgExecutor, PgPool};

use crate::domain::{Candle, Timeframe};
use crate::error::Result;

/// Rows per INSERT statement: large enough to amortise the round trip, small enough to keep each
/// statement's arrays modest.
const UPSERT_CHUNK: usize = 5000;

/// Inserts or replaces candles (validated by the caller), one statement per chunk, not declared
/// final (see [`upsert_final`]). Returns the number of rows written.
pub async fn upsert(
    pool: &PgPool,
    symbol: &str,
    timeframe: Timeframe,
    candles: &[Candle],
) -> Result<u64> {
    upsert_final(pool, symbol, timeframe, candles, false).await
}

/// [`upsert`], with whether the feed declares these candles final (no later version will come).
pub async fn upsert_final(
    pool: &PgPool,
    symbol: &str,
    timeframe: Timeframe,
    candles: &[Candle],
    is_final: bool,
) -> Result<u64> {
    // Rows are written (and locked) in open-time order, so concurrent upserts of overlapping
    // batches wait for each other instead of deadlocking.
    let sorted;
    let candles = if candles.is_sorted_by_key(|c| c.open_time) {
        candles
    } else {
        let mut copy = candles.to_vec();
        copy.sort_by_key(|c| c.open_time);
        sorted = copy;
        &sorted
    };
    let mut written = 0;
    let mut tx = pool.begin().await?;
    for chunk in candles.chunks(UPSERT_CHUNK) {
        written += upsert_chunk(&mut *tx, symbol, timeframe, chunk, is_final).await?;
    }
    tx.commit().await?;
    Ok(written)
}

async fn upsert_chunk(
    db: impl PgExecutor<'_>,
    symbol: &str,
    timeframe: Timeframe,
    candles: &[Candle],
    is_final: bool,
) -> Result<u64> {
    let n = candles.len();
    let mut open_time = Vec::with_capacity(n);
    let (mut open, mut high, mut low, mut close, mut volume) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for c in candles {
        open_time.push(c.open_time);
        open.push(c.open);
        high.push(c.high);
        low.push(c.low);
        close.push(c.close);
        volume.push(c.volume);
    }
    let result = sqlx::query(
        "INSERT INTO candles (symbol, timeframe, open_time, open, high, low, close, volume, final)
         SELECT $1, $2, *, $9 FROM unnest($3::timestamptz[], $4::numeric[], $5::numeric[],
                                         $6::numeric[], $7::numeric[], $8::numeric[])
         ON CONFLICT (symbol, timeframe, open_time) DO UPDATE
         SET open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low,
             close = EXCLUDED.close, volume = EXCLUDED.volume, final = EXCLUDED.final",
    )
    .bind(symbol)
    .bind(timeframe.as_str())
    .bind(open_time)
    .bind(open)
    .bind(high)
    .bind(low)
    .bind(close)
    .bind(volume)
    .bind(is_final)
    .execute(db)
    .await?;
    Ok(result.rows_affected())
}

/// Candles with `from <= open_time < to`, oldest first. Without `from`, the newest `limit`.
pub async fn range(
    db: impl PgExecutor<'_>,
    symbol: &str,
    timeframe: Timeframe,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    limit: i64,
) -> Result<Vec<Candle>> {
    let rows = if from.is_some() {
        sqlx::query_as::<_, CandleRow>(
            "SELECT open_time, open, high, low, close, volume FROM candles
             WHERE symbol = $1 AND timeframe = $2 AND open_time >= $3
               AND ($4::timestamptz IS NULL OR open_time < $4)
             ORDER BY open_time LIMIT $5",
        )
        .bind(symbol)
        .bind(timeframe.as_str())
        .bind(from)
        .bind(to)
        .bind(limit)
        .fetch_all(db)
        .await?
    } else {
        let mut rows = sqlx::query_as::<_, CandleRow>(
            "SELECT open_time, open, high, low, close, volume FROM candles
             WHERE symbol = $1 AND timeframe = $2
               AND ($3::timestamptz IS NULL OR open_time < $3)
             ORDER BY open_time DESC LIMIT $4",
        )
        .bind(symbol)
        .bind(timeframe.as_str())
        .bind(to)
        .bind(limit)
        .fetch_all(db)
        .await?;
        rows.reverse();
        rows
    };
    Ok(rows.into_iter().map(Candle::from).collect())
}

/// Declares final the stored candles with `from <= open_time < to`.
pub async fn mark_final(
    db: impl PgExecutor<'_>,
    symbol: &str,
    timeframe: Timeframe,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<u64> {
    Ok(sqlx::query(
        "UPDATE candles SET final = true
         WHERE symbol = $1 AND timeframe = $2 AND open_time >= $3 AND open_time < $4 AND NOT final",
    )
    .bind(symbol)
    .bind(timeframe.as_str())
    .bind(from)
    .bind(to)
    .execute(db)
    .await?
    .rows_affected())
}

/// Whether the feed declared the candle final.
pub async fn is_final(
    db: impl PgExecutor<'_>,
    symbol: &str,
    timeframe: Timeframe,
    open_time: DateTime<Utc>,
) -> Result<bool> {
    let row: Option<bool> = sqlx::query_scalar(
        "SELECT final FROM candles WHERE symbol = $1 AND timeframe = $2 AND open_time = $3",
    )
    .bind(symbol)
    .bind(timeframe.as_str())
    .bind(open_time)
    .fetch_optional(db)
    .await?;
    Ok(row.unwrap_or(false))
}

/// (open time, close) of the candles opening in `[from, to)`, oldest first (what a backtest reads).
pub async fn closes_between(
    db: impl PgExecutor<'_>,
    symbol: &str,
    timeframe: Timeframe,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<(DateTime<Utc>, Decimal)>> {
    Ok(sqlx::query_as(
        "SELECT open_time, close FROM candles
         WHERE symbol = $1 AND timeframe = $2 AND open_time >= $3 AND open_time < $4
         ORDER BY open_time",
    )
    .bind(symbol)
    .bind(timeframe.as_str())
    .bind(from)
    .bind(to)
    .fetch_all(db)
    .await?)
}

/// How many candles of `symbols` open in `[from, to)` (a backtest's size, checked before loading).
pub async fn count_between(
    db: impl PgExecutor<'_>,
    symbols: &[String],
    timeframe: Timeframe,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM candles
         WHERE symbol = ANY($1) AND timeframe = $2 AND open_time >= $3 AND open_time < $4",
    )
    .bind(symbols)
    .bind(timeframe.as_str())
    .bind(from)
    .bind(to)
    .fetch_one(db)
    .await?)
}

/// The newest `limit` candles whose open time is at most `last_open_time` (i.e. closed candles when
/// the caller passes the last closed open time), oldest first: (open_time, close).
pub async fn closed_window(
    db: impl PgExecutor<'_>,
    symbol: &str,
    timeframe: Timeframe,
    last_open_time: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<(DateTime<Utc>, Decimal)>> {
    let mut rows: Vec<(DateTime<Utc>, Decimal)> = sqlx::query_as(
        "SELECT open_time, close FROM candles
         WHERE symbol = $1 AND timeframe = $2 AND open_time <= $3
         ORDER BY open_time DESC LIMIT $4",
    )
    .bind(symbol)
    .bind(timeframe.as_str())
    .bind(last_open_time)
    .bind(limit)
    .fetch_all(db)
    .await?;
    rows.reverse();
    Ok(rows)
}

/// Close of the newest closed candle of `symbol` across timeframes, to price manual orders;
/// `None` unless that candle closed at `oldest_close` or later (an old close is no price).
pub async fn latest_close(
    db: impl PgExecutor<'_>,
    symbol: &str,
    now: DateTime<Utc>,
    oldest_close: DateTime<Utc>,
) -> Result<Option<Decimal>> {
    // Newest first through the (symbol, open_time) index; the few newest rows always contain the
    // newest closed candle unless a symbol has more than 16 unclosed ones, which cannot happen
    // with seven timeframes.
    let rows: Vec<(DateTime<Utc>, Timeframe, Decimal)> =
        sqlx::query_as::<_, (DateTime<Utc>, String, Decimal)>(
            "SELECT open_time, timeframe, close FROM candles
         WHERE symbol = $1 ORDER BY open_time DESC LIMIT 16",
        )
        .bind(symbol)
        .fetch_all(db)
        .await?
        .into_iter()
        .filter_map(|(t, tf, close)| Some((t, tf.parse().ok()?, close)))
        .collect();
    Ok(rows
        .into_iter()
        .find(|(t, tf, _)| *t + tf.duration() <= now)
        .filter(|(t, tf, _)| *t + tf.duration() >= oldest_close)
        .map(|(_, _, close)| close))
}

/// The latest price of `symbol`: the close of its newest candle in any timeframe, closed or still
/// forming (the last trade so far), if that candle ends at `oldest_close` or later. With the
/// candle's timeframe and open time, which a protective exit's signal records.
pub async fn latest_price(
    db: impl PgExecutor<'_>,
    symbol: &str,
    now: DateTime<Utc>,
    oldest_close: DateTime<Utc>,
) -> Result<Option<(Timeframe, DateTime<Utc>, Decimal)>> {
    let rows: Vec<(DateTime<Utc>, String, Decimal)> = sqlx::query_as(
        "SELECT open_time, timeframe, close FROM candles
         WHERE symbol = $1 AND open_time <= $2 ORDER BY open_time DESC LIMIT 16",
    )
    .bind(symbol)
    .bind(now)
    .fetch_all(db)
    .await?;
    // Of the newest rows, the one whose data is the most recent: the candle that ends last.
    Ok(rows
        .into_iter()
        .filter_map(|(t, tf, close)| Some((tf.parse::<Timeframe>().ok()?, t, close)))
        .filter(|(tf, t, _)| *t + tf.duration() >= oldest_close)
        .min_by_key(|(tf, t, _)| (std::cmp::Reverse(*t), tf.seconds())))
}

/// The newest close per symbol (any timeframe, closed or not), to value open trades.
pub async fn latest_closes(
    db: impl PgExecutor<'_>,
    symbols: &[String],
) -> Result<Vec<(String, Decimal)>> {
    Ok(sqlx::query_as(
        "SELECT s.symbol, c.close FROM unnest($1::text[]) AS s(symbol)
         CROSS JOIN LATERAL (SELECT close FROM candles WHERE candles.symbol = s.symbol
                             ORDER BY open_time DESC LIMIT 1) c",
    )
    .bind(symbols)
    .fetch_all(db)
    .await?)
}

#[derive(sqlx::FromRow)]
struct CandleRow {
    open_time: DateTime<Utc>,
    open: Decimal,
    high: Decimal,
    low: Decimal,
    close: Decimal,
    volume: Decimal,
}

impl From<CandleRow> for Candle {
    fn from(r: CandleRow) -> Self {
        Candle {
            open_time: r.open_time,
            open: r.open,
            high: r.high,
            low: r.low,
            close: r.close,
            volume: r.volume,
        }
    }
}
