//! The strategy role: per tick, per enabled strategy and symbol, read the closed candles the rule
//! needs, evaluate it, and write the signal idempotently.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::Worker;
use crate::config::DemoConfig;
use crate::demo;
/// Moved to the pure core (`domain::window`), which the backtest shares.
pub use crate::domain::window::fill_forward;
use crate::domain::window::{self, WindowEvaluation, find_gap};
use crate::domain::{Action, StrategyParams};
use crate::error::Result;
use crate::metrics::Metrics;
use crate::server::Liveness;
use crate::store::events::{Level, NewEvent};
use crate::store::signals::NewStrategySignal;
use crate::store::strategies::Strategy;
use crate::store::{self};

pub struct StrategyRunner {
    pub metrics: Arc<Metrics>,
    /// How long after its close a candle the feed has not declared final is taken as final.
    pub candle_grace: chrono::Duration,
    /// Write the synthetic demo feed before evaluating.
    pub demo_feed: Option<DemoConfig>,
}

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PassReport {
    pub evaluated: usize,
    pub signals_written: usize,
    pub gaps: usize,
}

/// Outcome of evaluating one strategy on one symbol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evaluation {
    /// Not enough closed candles yet, or the newest closed candle is missing (feed behind).
    NotEnoughData,
    NoSignal,
    /// `written` is false when the same signal was written before (a re-run).
    Signal {
        action: Action,
        written: bool,
    },
}

/// Candles missing inside the window: reported once (a warning event), and filled forward for the
/// indicators, as freqtrade does, so one missing candle does not stop the strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    pub after: DateTime<Utc>,
    pub before: DateTime<Utc>,
}

impl Worker for StrategyRunner {
    async fn tick(&mut self, pool: &PgPool, liveness: &Liveness) -> Result<()> {
        let now = Utc::now();
        if let Some(feed) = &self.demo_feed {
            let written = demo::write_feed(pool, feed, now).await?;
            self.metrics.candles_upserted.inc_by(written);
        }
        let report = run_pass(pool, now, self.candle_grace, Some(liveness)).await?;
        self.metrics
            .signals_written
            .inc_by(report.signals_written as u64);
        if report.signals_written > 0 {
            tracing::info!(
                signals = report.signals_written,
                evaluated = report.evaluated,
                "signals written"
            );
        }
        Ok(())
    }
}

/// Evaluates every enabled strategy on every symbol as of `now`; a closed candle counts once the
/// feed has declared it final or `grace` has passed after its close.
pub async fn run_pass(
    pool: &PgPool,
    now: DateTime<Utc>,
    grace: chrono::Duration,
    liveness: Option<&Liveness>,
) -> Result<PassReport> {
    let mut report = PassReport::default();
    for strategy in store::strategies::list(pool, Some(true)).await? {
        let params = match strategy.parsed_params() {
            Ok(p) => p,
            Err(error) => {
                tracing::warn!(strategy = strategy.id, %error, "skipping a strategy with invalid parameters");
                continue;
            }
        };
        for symbol in &strategy.symbols {
            report.evaluated += 1;
            let (evaluation, gap) = evaluate(pool, &strategy, &params, symbol, now, grace).await?;
            if let Evaluation::Signal { written: true, .. } = evaluation {
                report.signals_written += 1;
            }
            if gap.is_some() {
                report.gaps += 1;
            }
            if let Some(l) = liveness {
                l.beat();
            }
        }
    }
    Ok(report)
}

/// Evaluates one strategy on one symbol using only candles that are final at `now`; with the
/// first gap found in the window, if any.
pub async fn evaluate(
    pool: &PgPool,
    strategy: &Strategy,
    params: &StrategyParams,
    symbol: &str,
    now: DateTime<Utc>,
    grace: chrono::Duration,
) -> Result<(Evaluation, Option<Gap>)> {
    let timeframe = strategy.timeframe;
    let mut last_closed = timeframe.last_closed_open_time(now);
    // The newest closed candle may still get its final version from a late feed: a signal from
    // its partial version would be kept forever (one per candle). Judge the one before it until
    // the feed says it is final or the grace delay has passed.
    if now < last_closed + timeframe.duration() + grace
        && !store::candles::is_final(pool, symbol, timeframe, last_closed).await?
    {
        last_closed -= timeframe.duration();
    }
    let lookback = params.lookback();
    let window =
        store::candles::closed_window(pool, symbol, timeframe, last_closed, lookback as i64)
            .await?;
    let Some(&(newest, price)) = window.last() else {
        return Ok((Evaluation::NotEnoughData, None));
    };
    // A signal is only worth something on the latest data: if the newest closed candle (or, when
    // the feed is a little late, the one before it) is missing, wait.
    if newest < last_closed - timeframe.duration() {
        return Ok((Evaluation::NotEnoughData, None));
    }
    let gap = find_gap(&window, timeframe).map(|(after, before)| Gap { after, before });
    if let Some(Gap { after, before }) = gap {
        let mut conn = pool.acquire().await?;
        store::events::record(
            &mut conn,
            &NewEvent {
                level: Level::Warning,
                kind: "data_gap",
                message: format!(
                    "{symbol} {timeframe}: candles missing between {} and {}; strategy `{}` fills them forward",
                    after.to_rfc3339(),
                    before.to_rfc3339(),
                    strategy.name
                ),
                data: serde_json::json!({
                    "strategy_id": strategy.id, "symbol": symbol, "timeframe": timeframe.as_str(),
                    "after": after, "before": before,
                }),
                notify: true,
                dedup_key: Some(format!(
                    "gap:{}:{symbol}:{timeframe}:{}",
                    strategy.id,
                    after.timestamp()
                )),
            },
        )
        .await?;
    }
    let (action, reason) = match window::evaluate(params, &window, timeframe) {
        WindowEvaluation::NotEnoughData => return Ok((Evaluation::NotEnoughData, gap)),
        WindowEvaluation::NoSignal => return Ok((Evaluation::NoSignal, gap)),
        WindowEvaluation::Signal { action, reason } => (action, reason),
    };
    let written = store::signals::insert_strategy_signal(
        pool,
        &NewStrategySignal {
            strategy_id: strategy.id,
            symbol,
            timeframe,
            candle_open_time: newest,
            action,
            price,
            reason,
        },
    )
    .await?;
    if written {
        tracing::info!(strategy = strategy.id, symbol, action = action.as_str(), candle = %newest, "signal");
    }
    Ok((Evaluation::Signal { action, written }, gap))
}
