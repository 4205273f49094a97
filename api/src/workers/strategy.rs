//! The strategy role: per tick, per enabled strategy and symbol, read the closed candles the rule
//! needs, evaluate it, and write the signal idempotently.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use rust_decimal::prelude::ToPrimitive;
use sqlx::PgPool;

use super::Worker;
use crate::config::DemoConfig;
use crate::demo;
use crate::domain::{Action, StrategyParams, Timeframe};
use crate::error::Result;
use crate::metrics::Metrics;
use crate::server::Liveness;
use crate::store::events::{Level, NewEvent};
use crate::store::signals::NewStrategySignal;
use crate::store::strategies::Strategy;
use crate::store::{self};

pub struct StrategyRunner {
    pub metrics: Arc<Metrics>,
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
    /// A missing candle inside the window: no signal, a warning event.
    Gap {
        after: DateTime<Utc>,
        before: DateTime<Utc>,
    },
    NoSignal,
    /// `written` is false when the same signal was written before (a re-run).
    Signal {
        action: Action,
        written: bool,
    },
}

impl Worker for StrategyRunner {
    async fn tick(&mut self, pool: &PgPool, liveness: &Liveness) -> Result<()> {
        let now = Utc::now();
        if let Some(feed) = &self.demo_feed {
            let written = demo::write_feed(pool, feed, now).await?;
            self.metrics.candles_upserted.inc_by(written);
        }
        let report = run_pass(pool, now, Some(liveness)).await?;
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

/// Evaluates every enabled strategy on every symbol as of `now`.
pub async fn run_pass(
    pool: &PgPool,
    now: DateTime<Utc>,
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
            match evaluate(pool, &strategy, &params, symbol, now).await? {
                Evaluation::Signal { written: true, .. } => report.signals_written += 1,
                Evaluation::Gap { .. } => report.gaps += 1,
                _ => {}
            }
            if let Some(l) = liveness {
                l.beat();
            }
        }
    }
    Ok(report)
}

/// Evaluates one strategy on one symbol using only candles that have closed at `now`.
pub async fn evaluate(
    pool: &PgPool,
    strategy: &Strategy,
    params: &StrategyParams,
    symbol: &str,
    now: DateTime<Utc>,
) -> Result<Evaluation> {
    let timeframe = strategy.timeframe;
    let last_closed = timeframe.last_closed_open_time(now);
    let lookback = params.lookback();
    let window =
        store::candles::closed_window(pool, symbol, timeframe, last_closed, lookback as i64)
            .await?;
    let Some(&(newest, price)) = window.last() else {
        return Ok(Evaluation::NotEnoughData);
    };
    // A signal is only worth something on the latest data: if the newest closed candle (or, when
    // the feed is a little late, the one before it) is missing, wait.
    if newest < last_closed - timeframe.duration() {
        return Ok(Evaluation::NotEnoughData);
    }
    if let Some((after, before)) = find_gap(&window, timeframe) {
        let mut conn = pool.acquire().await?;
        store::events::record(
            &mut conn,
            &NewEvent {
                level: Level::Warning,
                kind: "data_gap",
                message: format!(
                    "{symbol} {timeframe}: candles missing between {} and {}; strategy `{}` skipped",
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
        return Ok(Evaluation::Gap { after, before });
    }
    if window.len() < lookback {
        return Ok(Evaluation::NotEnoughData);
    }
    let closes: Vec<f64> = window
        .iter()
        .map(|(_, close)| close.to_f64().unwrap_or(f64::NAN))
        .collect();
    let Some((action, reason)) = params.evaluate(&closes) else {
        return Ok(Evaluation::NoSignal);
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
    Ok(Evaluation::Signal { action, written })
}

/// First pair of consecutive candles further apart than one timeframe.
pub fn find_gap(
    window: &[(DateTime<Utc>, rust_decimal::Decimal)],
    timeframe: Timeframe,
) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    window
        .windows(2)
        .find(|w| w[1].0 - w[0].0 != timeframe.duration())
        .map(|w| (w[0].0, w[1].0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use rust_decimal::Decimal;

    #[test]
    fn gaps_are_found() {
        let t = |m: i64| Utc.timestamp_opt(m * 60, 0).unwrap();
        let full: Vec<_> = (0..5).map(|m| (t(m), Decimal::ONE)).collect();
        assert_eq!(find_gap(&full, Timeframe::M1), None);
        let holed: Vec<_> = [0, 1, 3, 4].iter().map(|&m| (t(m), Decimal::ONE)).collect();
        assert_eq!(find_gap(&holed, Timeframe::M1), Some((t(1), t(3))));
    }
}
