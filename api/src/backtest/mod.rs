//! Backtesting: closed candles replayed in order through the code the live workers run.
//!
//! Per step (the close of a candle), in the order of a live tick:
//! 1. the strategy runner's evaluation ([`window::evaluate`]) of every strategy on every symbol
//!    whose candle just closed, on the window of closed candles the runner would read;
//! 2. the bot's protective-exit pass ([`exits::watch`]) over the trades opened before;
//! 3. the bot's execution ([`execution::decide`]) of those signals in the order they were written:
//!    risk checks, paper fills with fees and slippage, balances.
//!
//! The engine keeps in memory what the bot keeps in PostgreSQL (open trades, the wallet, realised
//! profit per day); nothing here does I/O. No look-ahead: a decision at step `T` sees only candles
//! whose close time is at most `T`. [`load`] reads candles from the database or a CSV file;
//! [`job`] runs backtests for the API and stores them.

pub mod cli;
pub mod input;
pub mod job;
pub mod metrics;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::execution::{self, Decision, SignalContext, TradeBasis};
use crate::domain::exits::{self, ExitReason, Exits};
use crate::domain::risk::BotState;
use crate::domain::window::{self, WindowEvaluation};
use crate::domain::{Action, RiskLimits, StrategyParams, Timeframe};

/// A strategy as the backtest runs it (a stored one, or one from a definition file).
#[derive(Debug, Clone)]
pub struct BacktestStrategy {
    /// The stored strategy's id (0 for one from a file); trades carry it.
    pub id: i64,
    pub name: String,
    pub params: StrategyParams,
    pub exits: Exits,
    pub symbols: Vec<String>,
}

/// The closed candles of one symbol, oldest first, one per open time.
#[derive(Debug, Clone, Default)]
pub struct Series {
    pub symbol: String,
    /// (open time, close), what the runner reads (`store::candles::closed_window`).
    pub candles: Vec<(DateTime<Utc>, Decimal)>,
}

/// Everything one run needs.
#[derive(Debug, Clone)]
pub struct BacktestInput {
    pub strategies: Vec<BacktestStrategy>,
    pub timeframe: Timeframe,
    /// Candles of every symbol a strategy names, warm-up included.
    pub series: Vec<Series>,
    /// Decisions start at the close of the first candle opening at or after this (earlier
    /// candles only warm the indicators up) and end with the last candle opening before `to`.
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub limits: RiskLimits,
    /// The quote currency all symbols share, and the wallet's cash in it at the start.
    pub currency: String,
    pub starting_balance: Decimal,
}

/// Why a run stopped without a result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BacktestError {
    #[error("{0}")]
    Invalid(String),
    #[error("the backtest ran longer than its time limit ({limit_secs} s) and was stopped")]
    TimedOut { limit_secs: u64 },
}

/// One trade of a backtest: the same fields the bot writes on `trades` and `orders`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BacktestTrade {
    /// Sequence number within the run (1, 2, ...), in opening order.
    pub id: i64,
    pub strategy_id: i64,
    pub symbol: String,
    /// Open time of the candle whose signal opened the trade.
    pub entry_candle: DateTime<Utc>,
    /// When it was executed: that candle's close.
    pub opened_at: DateTime<Utc>,
    #[schema(value_type = String)]
    pub quantity: Decimal,
    #[schema(value_type = String)]
    pub entry_price: Decimal,
    #[schema(value_type = String)]
    pub entry_fee: Decimal,
    pub exit_candle: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    #[schema(value_type = Option<String>)]
    pub exit_price: Option<Decimal>,
    #[schema(value_type = Option<String>)]
    pub exit_fee: Option<Decimal>,
    /// Net of both fees (closed trades).
    #[schema(value_type = Option<String>)]
    pub profit: Option<Decimal>,
    pub exit_reason: Option<ExitReason>,
}

/// One point of the equity curve: cash plus open positions at their latest close.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EquityPoint {
    pub time: DateTime<Utc>,
    #[schema(value_type = String)]
    pub equity: Decimal,
}

/// Profit of one symbol.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PairSummary {
    pub trades: u64,
    pub wins: u64,
    #[schema(value_type = String)]
    pub profit: Decimal,
}

/// The figures of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Summary {
    pub currency: String,
    #[schema(value_type = String)]
    pub starting_balance: Decimal,
    /// Cash plus open positions at the last close.
    #[schema(value_type = String)]
    pub final_equity: Decimal,
    /// Realised profit of the closed trades, net of fees.
    #[schema(value_type = String)]
    pub total_profit: Decimal,
    /// `total_profit` relative to the starting balance.
    pub total_profit_ratio: f64,
    pub closed_trades: u64,
    /// Still open at the end (not counted in the profit figures).
    pub open_trades: u64,
    pub wins: u64,
    pub losses: u64,
    pub win_rate: Option<f64>,
    /// Gross profit over gross loss; absent when nothing was lost.
    pub profit_factor: Option<f64>,
    /// Deepest fall of the equity from a peak, as a fraction of the peak.
    pub max_drawdown: f64,
    #[schema(value_type = String)]
    pub max_drawdown_abs: Decimal,
    /// Annualised, from daily returns of the equity (absent below two days or without variation).
    pub sharpe: Option<f64>,
    pub sortino: Option<f64>,
    /// Fraction of the steps with at least one trade open.
    pub exposure: f64,
    pub per_pair: BTreeMap<String, PairSummary>,
    /// Signals the strategies wrote, and those the risk checks rejected (by code).
    pub signals: u64,
    pub rejected: BTreeMap<String, u64>,
    /// Candles read (warm-up included) and decision steps.
    pub candles: u64,
    pub steps: u64,
}

/// A finished run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BacktestReport {
    pub summary: Summary,
    pub trades: Vec<BacktestTrade>,
    /// The equity after every step (thin it with [`metrics::thin`] before storing).
    pub equity: Vec<EquityPoint>,
}

/// A signal of this step, as the runner or the protective-exit pass would write it.
#[derive(Debug, Clone)]
struct PendingSignal {
    strategy: usize,
    symbol: usize,
    action: Action,
    candle: DateTime<Utc>,
    price: Decimal,
    /// A protective exit aimed at this trade (index into `trades`).
    trade: Option<usize>,
    exit_reason: Option<ExitReason>,
}

/// A trade the engine holds, with what the bot keeps on its row.
#[derive(Debug, Clone)]
struct HeldTrade {
    record: BacktestTrade,
    strategy: usize,
    symbol: usize,
    exits: Exits,
    peak_price: Option<Decimal>,
}

/// Per symbol: the candles as the runner reads them (`f64` closes, converted once) and their
/// decimal closes (the prices orders fill against), and how many have closed by the current step.
struct SymbolData {
    name: String,
    window: Vec<(DateTime<Utc>, f64)>,
    closes: Vec<Decimal>,
    closed: usize,
}

/// How a run reports progress and learns it must stop.
pub trait Monitor {
    /// Called every few thousand steps; `Err` stops the run.
    fn progress(&mut self, done: u64, total: u64) -> Result<(), BacktestError>;
}

/// No progress report, no limit.
pub struct Unmonitored;

impl Monitor for Unmonitored {
    fn progress(&mut self, _: u64, _: u64) -> Result<(), BacktestError> {
        Ok(())
    }
}

/// Steps between two progress reports.
const PROGRESS_EVERY: u64 = 2048;

/// Runs a backtest.
pub fn run(
    input: &BacktestInput,
    monitor: &mut dyn Monitor,
) -> Result<BacktestReport, BacktestError> {
    let tf = input.timeframe;
    let step = tf.duration();
    if input.strategies.is_empty() {
        return Err(BacktestError::Invalid("no strategy to run".into()));
    }
    if input.from >= input.to {
        return Err(BacktestError::Invalid(format!(
            "the time range is empty: from {} is not before to {}",
            input.from.to_rfc3339(),
            input.to.to_rfc3339()
        )));
    }
    let mut symbols: Vec<SymbolData> = Vec::new();
    let mut candle_count = 0u64;
    for series in &input.series {
        if let Some(w) = series.candles.windows(2).find(|w| w[0].0 >= w[1].0) {
            return Err(BacktestError::Invalid(format!(
                "{}: candles out of order or repeated at {}",
                series.symbol,
                w[1].0.to_rfc3339()
            )));
        }
        candle_count += series.candles.len() as u64;
        symbols.push(SymbolData {
            name: series.symbol.clone(),
            window: series
                .candles
                .iter()
                .map(|&(t, c)| (t, window::ClosePrice::to_f64(c)))
                .collect(),
            closes: series.candles.iter().map(|&(_, c)| c).collect(),
            closed: 0,
        });
    }
    // Each strategy's symbols as indexes; every named symbol must have a series.
    let mut plan: Vec<Vec<usize>> = Vec::new();
    for strategy in &input.strategies {
        let mut indexes = Vec::new();
        for name in &strategy.symbols {
            let index = symbols
                .iter()
                .position(|s| &s.name == name)
                .ok_or_else(|| {
                    BacktestError::Invalid(format!(
                        "strategy `{}` names {name}, but there are no candles for it",
                        strategy.name
                    ))
                })?;
            indexes.push(index);
        }
        plan.push(indexes);
    }
    // Decision steps: the close of every candle in range, of any symbol, in time order.
    let mut steps: Vec<DateTime<Utc>> = symbols
        .iter()
        .flat_map(|s| s.window.iter().map(|(t, _)| *t))
        .filter(|t| *t >= input.from && *t < input.to)
        .map(|t| t + step)
        .collect();
    steps.sort_unstable();
    steps.dedup();

    let mut trades: Vec<HeldTrade> = Vec::new();
    let mut open: Vec<usize> = Vec::new(); // indexes into `trades`, by id
    let mut cash = input.starting_balance;
    let mut realized_by_day: BTreeMap<chrono::NaiveDate, Decimal> = BTreeMap::new();
    let mut equity: Vec<EquityPoint> = Vec::with_capacity(steps.len());
    let mut signals = 0u64;
    let mut rejected: BTreeMap<String, u64> = BTreeMap::new();
    let mut steps_in_market = 0u64;
    let total = steps.len() as u64;
    let mut pending: Vec<PendingSignal> = Vec::new();

    for (done, &now) in steps.iter().enumerate() {
        if (done as u64).is_multiple_of(PROGRESS_EVERY) {
            monitor.progress(done as u64, total)?;
        }
        let candle = now - step;
        for s in &mut symbols {
            while s.closed < s.window.len() && s.window[s.closed].0 <= candle {
                s.closed += 1;
            }
        }
        // 1. The strategy runner. It judges the newest closed candle; a symbol without one at
        //    this step would be judged on its previous candle again, which can only repeat a
        //    signal already written (the unique index drops it), so it is skipped here.
        pending.clear();
        for (si, strategy) in input.strategies.iter().enumerate() {
            let lookback = strategy.params.lookback();
            for &sym in &plan[si] {
                let data = &symbols[sym];
                if data.closed == 0 || data.window[data.closed - 1].0 != candle {
                    continue;
                }
                let window = &data.window[data.closed.saturating_sub(lookback)..data.closed];
                if let WindowEvaluation::Signal { action, .. } =
                    window::evaluate(&strategy.params, window, tf)
                {
                    signals += 1;
                    pending.push(PendingSignal {
                        strategy: si,
                        symbol: sym,
                        action,
                        candle,
                        price: data.closes[data.closed - 1],
                        trade: None,
                        exit_reason: None,
                    });
                }
            }
        }
        // 2. The bot's protective exits, over the trades open before this step, oldest first.
        let oldest_close = now - input.limits.max_price_age;
        for &ti in &open {
            let held = &mut trades[ti];
            if held.exits.is_empty() {
                continue;
            }
            let data = &symbols[held.symbol];
            if data.closed == 0 {
                continue;
            }
            let (price_candle, _) = data.window[data.closed - 1];
            if price_candle + step < oldest_close {
                continue; // no recent price: nothing to judge by
            }
            let price = data.closes[data.closed - 1];
            let watch = exits::watch(
                &held.exits,
                held.record.entry_price,
                held.peak_price,
                held.record.opened_at,
                price,
                now,
            );
            held.peak_price = Some(watch.peak_price);
            let Some(reason) = watch.exit else {
                continue;
            };
            // The signals' unique index (strategy, symbol, candle, action) drops an exit on the
            // candle the strategy itself sold on: that sell closes the same trade first.
            let duplicate = pending.iter().any(|p| {
                p.strategy == held.strategy
                    && p.symbol == held.symbol
                    && p.candle == price_candle
                    && p.action == Action::Sell
            });
            if !duplicate {
                pending.push(PendingSignal {
                    strategy: held.strategy,
                    symbol: held.symbol,
                    action: Action::Sell,
                    candle: price_candle,
                    price,
                    trade: Some(ti),
                    exit_reason: Some(reason),
                });
            }
        }
        // 3. The bot executes them in the order they were written.
        let day = now.date_naive();
        for signal in &pending {
            let trade = match signal.trade {
                Some(ti) => open.iter().copied().find(|&o| o == ti),
                None => open.iter().copied().find(|&o| {
                    trades[o].strategy == signal.strategy && trades[o].symbol == signal.symbol
                }),
            };
            let context = SignalContext {
                action: signal.action,
                manual: false,
                stake: input.limits.stake_amount,
                price: Some(signal.price),
                signal_age: chrono::Duration::zero(),
                state: BotState::Running,
                open_trades: u32::try_from(open.len()).unwrap_or(u32::MAX),
                trade: trade.map(|ti| TradeBasis {
                    quantity: trades[ti].record.quantity,
                    entry_price: trades[ti].record.entry_price,
                    entry_fee: trades[ti].record.entry_fee,
                }),
                free_balance: cash,
                realized_today: realized_by_day.get(&day).copied().unwrap_or_default(),
            };
            match execution::decide(&input.limits, &context) {
                Decision::Reject(rejection) => {
                    *rejected.entry(rejection.code().to_owned()).or_default() += 1;
                }
                Decision::Open { fill, balance } => {
                    cash = balance;
                    let strategy = &input.strategies[signal.strategy];
                    trades.push(HeldTrade {
                        record: BacktestTrade {
                            id: trades.len() as i64 + 1,
                            strategy_id: strategy.id,
                            symbol: symbols[signal.symbol].name.clone(),
                            entry_candle: signal.candle,
                            opened_at: now,
                            quantity: fill.quantity,
                            entry_price: fill.price,
                            entry_fee: fill.fee,
                            exit_candle: None,
                            closed_at: None,
                            exit_price: None,
                            exit_fee: None,
                            profit: None,
                            exit_reason: None,
                        },
                        strategy: signal.strategy,
                        symbol: signal.symbol,
                        exits: strategy.exits.clone(),
                        peak_price: None,
                    });
                    open.push(trades.len() - 1);
                }
                Decision::Close {
                    fill,
                    profit,
                    balance,
                } => {
                    let Some(ti) = trade else {
                        continue; // `decide` closes only a trade it was given
                    };
                    cash = balance;
                    let record = &mut trades[ti].record;
                    record.exit_candle = Some(signal.candle);
                    record.closed_at = Some(now);
                    record.exit_price = Some(fill.price);
                    record.exit_fee = Some(fill.fee);
                    record.profit = Some(profit);
                    record.exit_reason = Some(execution::exit_reason(signal.exit_reason, true));
                    let today = realized_by_day.entry(day).or_default();
                    *today = today.saturating_add(profit);
                    open.retain(|&o| o != ti);
                }
            }
        }
        // The equity after this step: cash plus open positions at their latest close.
        let mut value = cash;
        for &ti in &open {
            let data = &symbols[trades[ti].symbol];
            let price = data
                .closed
                .checked_sub(1)
                .map_or(trades[ti].record.entry_price, |i| data.closes[i]);
            value = value.saturating_add(trades[ti].record.quantity.saturating_mul(price));
        }
        if !open.is_empty() {
            steps_in_market += 1;
        }
        equity.push(EquityPoint {
            time: now,
            equity: value,
        });
    }
    monitor.progress(total, total)?;

    let records: Vec<BacktestTrade> = trades.into_iter().map(|t| t.record).collect();
    let summary = summarize(
        input,
        &records,
        &equity,
        signals,
        rejected,
        candle_count,
        steps_in_market,
    );
    Ok(BacktestReport {
        summary,
        trades: records,
        equity,
    })
}

fn summarize(
    input: &BacktestInput,
    trades: &[BacktestTrade],
    equity: &[EquityPoint],
    signals: u64,
    rejected: BTreeMap<String, u64>,
    candles: u64,
    steps_in_market: u64,
) -> Summary {
    let profits: Vec<Decimal> = trades.iter().filter_map(|t| t.profit).collect();
    let total_profit = profits
        .iter()
        .fold(Decimal::ZERO, |sum, p| sum.saturating_add(*p));
    let mut per_pair: BTreeMap<String, PairSummary> = BTreeMap::new();
    for trade in trades {
        if let Some(profit) = trade.profit {
            let pair = per_pair.entry(trade.symbol.clone()).or_default();
            pair.trades += 1;
            pair.wins += u64::from(profit > Decimal::ZERO);
            pair.profit = pair.profit.saturating_add(profit);
        }
    }
    let values: Vec<Decimal> = std::iter::once(input.starting_balance)
        .chain(equity.iter().map(|p| p.equity))
        .collect();
    let drawdown = metrics::max_drawdown(&values);
    let curve: Vec<(DateTime<Utc>, Decimal)> = equity.iter().map(|p| (p.time, p.equity)).collect();
    let returns = metrics::daily_returns(input.starting_balance, &curve);
    let ratio = |a: Decimal, b: Decimal| -> f64 {
        use rust_decimal::prelude::ToPrimitive;
        match (a.to_f64(), b.to_f64()) {
            (Some(a), Some(b)) if b != 0.0 => a / b,
            _ => 0.0,
        }
    };
    let steps = equity.len() as u64;
    Summary {
        currency: input.currency.clone(),
        starting_balance: input.starting_balance,
        final_equity: equity
            .last()
            .map_or(input.starting_balance, |point| point.equity),
        total_profit,
        total_profit_ratio: ratio(total_profit, input.starting_balance),
        closed_trades: profits.len() as u64,
        open_trades: trades.iter().filter(|t| t.profit.is_none()).count() as u64,
        wins: profits.iter().filter(|p| **p > Decimal::ZERO).count() as u64,
        losses: profits.iter().filter(|p| **p < Decimal::ZERO).count() as u64,
        win_rate: metrics::win_rate(&profits),
        profit_factor: metrics::profit_factor(&profits),
        max_drawdown: drawdown.fraction,
        max_drawdown_abs: drawdown.absolute,
        sharpe: metrics::sharpe(&returns),
        sortino: metrics::sortino(&returns),
        exposure: if steps == 0 {
            0.0
        } else {
            steps_in_market as f64 / steps as f64
        },
        per_pair,
        signals,
        rejected,
        candles,
        steps,
    }
}

#[cfg(test)]
mod tests;
