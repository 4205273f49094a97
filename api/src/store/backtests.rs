//! `backtests`: runs of the API's backtests and their results (see `crate::backtest::job`).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::types::Json;
use sqlx::{Connection, PgConnection, PgExecutor};
use utoipa::ToSchema;

use crate::backtest::job::{BacktestRequest, Prepared};
use crate::backtest::{BacktestReport, BacktestTrade, EquityPoint, Summary};
use crate::error::{Error, Result};

/// A backtest as listed: without its trades and equity curve.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct BacktestRow {
    pub id: i64,
    /// `running`, `completed` or `failed`.
    pub status: String,
    pub strategy_id: Option<i64>,
    pub strategy_name: String,
    pub timeframe: String,
    pub symbols: Vec<String>,
    pub range_from: DateTime<Utc>,
    pub range_to: DateTime<Utc>,
    /// The figures, once completed.
    #[schema(value_type = Option<Summary>)]
    pub summary: Option<Json<Summary>>,
    /// Why it failed.
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// One backtest with its request, trades and equity curve.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct BacktestDetail {
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub backtest: BacktestRow,
    #[schema(value_type = Object)]
    pub request: Json<serde_json::Value>,
    #[schema(value_type = Option<Vec<BacktestTrade>>)]
    pub trades: Option<Json<Vec<BacktestTrade>>>,
    /// At most 2000 points, evenly spaced, first and last included.
    #[schema(value_type = Option<Vec<EquityPoint>>)]
    pub equity: Option<Json<Vec<EquityPoint>>>,
}

pub async fn insert(
    db: impl PgExecutor<'_>,
    prepared: &Prepared,
    request: &BacktestRequest,
) -> Result<i64> {
    let strategy_id = (prepared.strategy.id != 0).then_some(prepared.strategy.id);
    Ok(sqlx::query_scalar(
        "INSERT INTO backtests (strategy_id, strategy_name, timeframe, symbols, range_from, range_to, request)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(strategy_id)
    .bind(&prepared.strategy.name)
    .bind(prepared.timeframe.as_str())
    .bind(&prepared.strategy.symbols)
    .bind(prepared.from)
    .bind(prepared.to)
    .bind(Json(request))
    .fetch_one(db)
    .await?)
}

/// Advisory-lock class of running backtests: the process running backtest `id` holds the session
/// lock (`RUNNING_LOCK`, [`lock_key`]`(id)`) on a connection of its own until it has stored the
/// outcome. When that process dies, PostgreSQL ends the session and frees the lock, which is how
/// [`fail_interrupted`] tells a run that is gone from one another api process is still running.
const RUNNING_LOCK: i32 = 0x4254_4b00;

/// Error stored on a run whose api process stopped before it finished.
pub const INTERRUPTED: &str = "interrupted: the api process running this backtest stopped before it finished (restart, crash or shutdown); run it again";

fn lock_key(id: i64) -> i32 {
    // Two ids 2^31 apart share a key: at worst one waits to be found interrupted.
    i32::try_from(id.rem_euclid(1 << 31)).unwrap_or(0)
}

/// Inserts the `running` row and takes its lock in one transaction on `runner`, the connection
/// the run keeps until it stores its outcome: nobody sees the row without its lock held.
pub async fn insert_running(
    runner: &mut PgConnection,
    prepared: &Prepared,
    request: &BacktestRequest,
) -> Result<i64> {
    let mut tx = runner.begin().await?;
    let id = insert(&mut *tx, prepared, request).await?;
    sqlx::query("SELECT pg_advisory_lock($1, $2)")
        .bind(RUNNING_LOCK)
        .bind(lock_key(id))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(id)
}

/// Marks `failed` every `running` backtest whose lock nobody holds: its process died (or was
/// stopped) mid-run, so it would otherwise show `running` forever. Runs at the api's start-up;
/// a run another api process is still doing keeps its lock and is left alone. Returns the ids.
pub async fn fail_interrupted(db: impl PgExecutor<'_>) -> Result<Vec<i64>> {
    Ok(sqlx::query_scalar(
        "UPDATE backtests SET status = 'failed', error = $2, finished_at = now()
         WHERE status = 'running' AND pg_try_advisory_xact_lock($1, (id % 2147483648)::int4)
         RETURNING id",
    )
    .bind(RUNNING_LOCK)
    .bind(INTERRUPTED)
    .fetch_all(db)
    .await?)
}

/// Stores the result and the `completed` status together.
pub async fn complete(db: impl PgExecutor<'_>, id: i64, report: &BacktestReport) -> Result<()> {
    sqlx::query(
        "UPDATE backtests SET status = 'completed', summary = $2, trades = $3, equity = $4,
                finished_at = now()
         WHERE id = $1 AND status = 'running'",
    )
    .bind(id)
    .bind(Json(&report.summary))
    .bind(Json(&report.trades))
    .bind(Json(&report.equity))
    .execute(db)
    .await?;
    Ok(())
}

pub async fn fail(db: impl PgExecutor<'_>, id: i64, error: &str) -> Result<()> {
    sqlx::query(
        "UPDATE backtests SET status = 'failed', error = $2, finished_at = now()
         WHERE id = $1 AND status = 'running'",
    )
    .bind(id)
    .bind(error)
    .execute(db)
    .await?;
    Ok(())
}

/// Newest first.
pub async fn list(db: impl PgExecutor<'_>, limit: i64) -> Result<Vec<BacktestRow>> {
    Ok(sqlx::query_as(
        "SELECT id, status, strategy_id, strategy_name, timeframe, symbols, range_from, range_to,
                summary, error, created_at, finished_at
         FROM backtests ORDER BY id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(db)
    .await?)
}

pub async fn get(db: impl PgExecutor<'_>, id: i64) -> Result<BacktestDetail> {
    sqlx::query_as(
        "SELECT id, status, strategy_id, strategy_name, timeframe, symbols, range_from, range_to,
                summary, error, created_at, finished_at, request, trades, equity
         FROM backtests WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await?
    .ok_or_else(|| Error::not_found(format!("backtest {id}")))
}
