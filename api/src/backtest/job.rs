//! Backtests run by the API: validated at once (a bad request is a 4xx, never a failed row),
//! then run in the background, bounded in time, memory and concurrency, and stored with their
//! final status in one statement (`store::backtests::finish`), so a row is never half-written.
//! A backtest reads candles and strategies only: it never writes signals, orders, trades or
//! balances.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::{Connection, PgPool};
use tokio::sync::Semaphore;
use utoipa::ToSchema;

use super::{BacktestError, BacktestInput, BacktestStrategy, Monitor, input, metrics};
use crate::config::RiskArgs;
use crate::domain::{Invalid, Symbol, Timeframe};
use crate::error::{Error, Result};
use crate::http::strategies::StrategyInput;
use crate::store;

/// Points of the equity curve kept with a stored backtest (the figures use every step).
pub const STORED_EQUITY_POINTS: usize = 2000;

/// Bounds of the backtests one api process runs (`BACKTEST_*`).
#[derive(Debug, Clone)]
pub struct BacktestLimits {
    /// Most candles one run reads (memory: about 40 bytes each while it runs).
    pub max_candles: u64,
    /// Longest run; a longer one stops and is stored `failed`.
    pub time_limit: Duration,
    /// Runs at once per api process; more are refused with 409.
    pub concurrency: usize,
}

impl Default for BacktestLimits {
    fn default() -> Self {
        Self {
            max_candles: 5_000_000,
            time_limit: Duration::from_secs(600),
            concurrency: 1,
        }
    }
}

/// The api's backtest runner: its limits and the permits of the runs in progress.
#[derive(Debug)]
pub struct BacktestJobs {
    pub limits: BacktestLimits,
    permits: Arc<Semaphore>,
}

impl BacktestJobs {
    pub fn new(limits: BacktestLimits) -> Self {
        let permits = Arc::new(Semaphore::new(limits.concurrency.max(1)));
        Self { limits, permits }
    }
}

/// `POST /api/v2/backtests`: a stored strategy (`strategy_id`) or a definition (`strategy`), a
/// time range, and optionally the bot's risk and paper-exchange settings (the bot's defaults).
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BacktestRequest {
    /// A stored strategy to run.
    pub strategy_id: Option<i64>,
    /// Or a strategy definition (the body of `POST /api/v2/strategies`); it is not stored.
    #[schema(value_type = Option<Object>)]
    pub strategy: Option<serde_json::Value>,
    /// Symbols to run on (default: the strategy's).
    pub symbols: Option<Vec<String>>,
    /// First candle open time to decide on; earlier candles warm the indicators up.
    pub from: DateTime<Utc>,
    /// End of the range (exclusive).
    pub to: DateTime<Utc>,
    #[schema(value_type = Option<String>, example = "10000")]
    pub starting_balance: Option<Decimal>,
    #[schema(value_type = Option<String>, example = "100")]
    pub stake_amount: Option<Decimal>,
    pub max_open_trades: Option<u32>,
    #[schema(value_type = Option<String>, example = "1000")]
    pub max_notional: Option<Decimal>,
    #[schema(value_type = Option<String>, example = "500")]
    pub daily_loss_limit: Option<Decimal>,
    #[schema(value_type = Option<String>, example = "0.001")]
    pub fee_rate: Option<Decimal>,
    #[schema(value_type = Option<String>, example = "5")]
    pub slippage_bps: Option<Decimal>,
}

/// The answer to `POST /api/v2/backtests` (202).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BacktestAccepted {
    pub id: i64,
    /// `running`.
    pub status: String,
}

/// A validated request, ready to load and run.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub strategy: BacktestStrategy,
    pub timeframe: Timeframe,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub start: DateTime<Utc>,
    pub limits: crate::domain::RiskLimits,
    pub currency: String,
    pub starting_balance: Decimal,
}

/// Checks a request against the database (strategy, instruments, size) without running it.
pub async fn prepare(
    pool: &PgPool,
    limits: &BacktestLimits,
    request: &BacktestRequest,
) -> Result<Prepared> {
    let (mut strategy, timeframe) = match (request.strategy_id, &request.strategy) {
        (Some(id), None) => input::from_stored(&store::strategies::get(pool, id).await?)?,
        (None, Some(definition)) => {
            let definition: StrategyInput = serde_json::from_value(definition.clone())
                .map_err(|e| Invalid::new("strategy", e.to_string()))?;
            input::from_definition(definition).map_err(|e| match e {
                Error::Invalid(invalid) => Error::Invalid(invalid.within("strategy")),
                other => other,
            })?
        }
        _ => {
            return Err(Error::invalid(
                "strategy_id",
                "give either strategy_id or strategy, not both or neither",
            ));
        }
    };
    if let Some(symbols) = &request.symbols {
        if symbols.is_empty() || symbols.len() > crate::http::strategies::MAX_SYMBOLS {
            return Err(Error::invalid(
                "symbols",
                format!(
                    "must name 1-{} instruments",
                    crate::http::strategies::MAX_SYMBOLS
                ),
            ));
        }
        for (i, symbol) in symbols.iter().enumerate() {
            Symbol::parse(symbol).map_err(|e| Invalid::new(format!("symbols[{i}]"), e))?;
        }
        strategy.symbols = symbols.clone();
    }
    if request.from >= request.to {
        return Err(Error::invalid("from", "must be before to"));
    }
    let currency = input::shared_quote_currency(pool, &strategy.symbols).await?;
    let risk = RiskArgs {
        stake_amount: request.stake_amount.unwrap_or(Decimal::ONE_HUNDRED),
        max_open_trades: request.max_open_trades.unwrap_or(5),
        max_notional: request.max_notional.unwrap_or(Decimal::ONE_THOUSAND),
        daily_loss_limit: request.daily_loss_limit.unwrap_or(Decimal::from(500)),
        fee_rate: request.fee_rate.unwrap_or(Decimal::new(1, 3)),
        slippage_bps: request.slippage_bps.unwrap_or(Decimal::from(5)),
        max_signal_age: Duration::from_secs(15 * 60),
        max_price_age: Duration::from_secs(5 * 60),
    };
    let risk_limits = risk
        .validate()
        .map_err(|e| Error::invalid("settings", e.0))?;
    let starting_balance = request.starting_balance.unwrap_or(Decimal::from(10_000));
    if starting_balance <= Decimal::ZERO || starting_balance > Decimal::from(1_000_000_000_000i64) {
        return Err(Error::invalid(
            "starting_balance",
            "must be greater than 0 and at most 1000000000000",
        ));
    }
    let start = input::warm_up_start(request.from, timeframe, std::slice::from_ref(&strategy));
    let count =
        store::candles::count_between(pool, &strategy.symbols, timeframe, start, request.to)
            .await?;
    if u64::try_from(count).unwrap_or(u64::MAX) > limits.max_candles {
        return Err(input::too_many(count, limits.max_candles));
    }
    Ok(Prepared {
        strategy,
        timeframe,
        from: request.from,
        to: request.to,
        start,
        limits: risk_limits,
        currency,
        starting_balance,
    })
}

/// Stops a run at its deadline.
struct Deadline {
    at: Instant,
    limit: Duration,
}

impl Monitor for Deadline {
    fn progress(&mut self, _: u64, _: u64) -> std::result::Result<(), BacktestError> {
        if Instant::now() > self.at {
            return Err(BacktestError::TimedOut {
                limit_secs: self.limit.as_secs(),
            });
        }
        Ok(())
    }
}

/// Validates and starts a backtest; returns its id once the `running` row is stored.
pub async fn submit(
    pool: &PgPool,
    jobs: &BacktestJobs,
    request: BacktestRequest,
) -> Result<BacktestAccepted> {
    let prepared = prepare(pool, &jobs.limits, &request).await?;
    let permit = jobs.permits.clone().try_acquire_owned().map_err(|_| {
        Error::Conflict(format!(
            "{} backtest(s) already running, the most this api process runs at once \
             (BACKTEST_CONCURRENCY); try again when one has finished",
            jobs.limits.concurrency
        ))
    })?;
    // A connection of the run's own, outside the pool: it holds the run's lock, so the run shows
    // `running` only while this process is alive (store::backtests::fail_interrupted).
    let mut runner = sqlx::PgConnection::connect_with(&pool.connect_options()).await?;
    let id = store::backtests::insert_running(&mut runner, &prepared, &request).await?;
    let pool = pool.clone();
    let limits = jobs.limits.clone();
    tokio::spawn(async move {
        let outcome = execute(&pool, &limits, prepared).await;
        if let Err(error) = &outcome {
            tracing::warn!(backtest = id, %error, "backtest failed");
        }
        let mut stored = store_outcome(&mut runner, id, &outcome).await;
        if stored.is_err() {
            // The run's own connection broke: the pool's may still work.
            stored = store_outcome(&pool, id, &outcome).await;
        }
        if let Err(error) = stored {
            tracing::error!(backtest = id, %error, "cannot store the backtest's outcome");
        }
        let _ = runner.close().await; // frees the run's lock
        drop(permit);
    });
    Ok(BacktestAccepted {
        id,
        status: "running".into(),
    })
}

async fn store_outcome(
    db: impl sqlx::PgExecutor<'_>,
    id: i64,
    outcome: &Result<super::BacktestReport>,
) -> Result<()> {
    match outcome {
        Ok(report) => store::backtests::complete(db, id, report).await,
        Err(error) => store::backtests::fail(db, id, &error.to_string()).await,
    }
}

/// Loads the candles and runs, within the time limit (loading included).
pub async fn execute(
    pool: &PgPool,
    limits: &BacktestLimits,
    prepared: Prepared,
) -> Result<super::BacktestReport> {
    let started = Instant::now();
    let series = tokio::time::timeout(
        limits.time_limit,
        input::load_from_database(
            pool,
            &prepared.strategy.symbols,
            prepared.timeframe,
            prepared.start,
            prepared.to,
            limits.max_candles,
        ),
    )
    .await
    .map_err(|_| {
        Error::invalid(
            "backtest",
            BacktestError::TimedOut {
                limit_secs: limits.time_limit.as_secs(),
            }
            .to_string(),
        )
    })??;
    let input = BacktestInput {
        strategies: vec![prepared.strategy],
        timeframe: prepared.timeframe,
        series,
        from: prepared.from,
        to: prepared.to,
        limits: prepared.limits,
        currency: prepared.currency,
        starting_balance: prepared.starting_balance,
    };
    let mut deadline = Deadline {
        at: started + limits.time_limit,
        limit: limits.time_limit,
    };
    let mut report = tokio::task::spawn_blocking(move || super::run(&input, &mut deadline))
        .await
        .map_err(|e| Error::invalid("backtest", format!("the run stopped: {e}")))?
        .map_err(|e| Error::invalid("backtest", e.to_string()))?;
    report.equity = metrics::thin(&report.equity, STORED_EQUITY_POINTS);
    Ok(report)
}
