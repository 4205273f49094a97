//! The bot role: claim new signals one at a time (`FOR UPDATE SKIP LOCKED`), check risk, execute on
//! the paper exchange, and write order, trade, account and events in the claiming transaction.
//!
//! Exactly-once: the claim and every write commit together. A crash before the commit rolls all of
//! it back and releases the row lock, so the next tick (of this or another replica) claims the
//! signal again; after the commit the signal is no longer `new`. The order's unique idempotency
//! key (`signal-<id>`) guards the same invariant in the schema itself.
//!
//! Webhook delivery runs apart ([`super::notifier`]), so it can never hold up execution.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::{PgConnection, PgPool};

use super::Worker;
use crate::config::Fault;
use crate::domain::execution::{self, Decision, SignalContext, TradeBasis};
use crate::domain::exits::{self, Exits};
use crate::domain::paper::Fill;
use crate::domain::risk::Rejection;
use crate::domain::{Action, RiskLimits};
use crate::error::{Error, Result};
use crate::metrics::{Metrics, OutcomeLabels};
use crate::server::Liveness;
use crate::store::events::{Level, NewEvent};
use crate::store::signals::{NewExitSignal, Signal, SignalStatus};
use crate::store::{self};

/// Most signals one tick handles (keeps a tick short after a backlog).
const BATCH: usize = 500;

pub struct Bot {
    pub limits: RiskLimits,
    pub metrics: Arc<Metrics>,
    pub fault: Option<Fault>,
    /// The starting wallet (`STARTING_WALLET`) still to apply: each currency the wallet does not
    /// hold yet is added with its amount, once the database answers.
    pub starting_wallet: Vec<(String, Decimal)>,
}

/// What happened to one signal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Executed {
        order_id: i64,
        trade_id: i64,
    },
    Rejected(Rejection),
    /// An order for it existed already (only possible if a commit raced a crash report).
    AlreadyExecuted,
}

impl Worker for Bot {
    async fn tick(&mut self, pool: &PgPool, liveness: &Liveness) -> Result<()> {
        if !self.starting_wallet.is_empty() {
            self.apply_starting_wallet(pool).await?;
        }
        self.protect(pool, Utc::now()).await?;
        store::equity::snapshot_if_due(pool, Utc::now()).await?; // the equity curve, once a minute
        self.judge_daily_loss(pool, Utc::now()).await?;
        liveness.beat();
        for _ in 0..BATCH {
            match self.process_next(pool).await? {
                None => break,
                Some(_) => liveness.beat(),
            }
        }
        Ok(())
    }
}

impl Bot {
    /// Records whether entries are halted by the daily-loss limit (GET /api/v2/bot
    /// `daily_loss_halt`), so that what the bot does is visible before a signal is rejected.
    pub async fn judge_daily_loss(&self, pool: &PgPool, now: DateTime<Utc>) -> Result<()> {
        let since = execution::start_of_day(now);
        let mut realized = Vec::new();
        for wallet in store::trading::wallets(pool).await? {
            let today = store::trading::realized_in_since(pool, &wallet.currency, since).await?;
            realized.push((wallet.currency, today));
        }
        let halt = crate::domain::risk::daily_loss_halt(&self.limits, &realized);
        if store::bot::record_daily_loss_halt(pool, halt.as_deref()).await? {
            match &halt {
                Some(message) => tracing::warn!(%message, "entries halted"),
                None => tracing::info!("daily-loss halt over: entries resume"),
            }
        }
        Ok(())
    }

    /// Adds the starting wallet's currencies that the wallet does not hold yet (never resets one).
    pub async fn apply_starting_wallet(&mut self, pool: &PgPool) -> Result<()> {
        for (currency, amount) in &self.starting_wallet {
            if store::trading::ensure_wallet(pool, currency, *amount).await? {
                tracing::info!(%currency, %amount, "starting wallet: currency added");
            }
        }
        self.starting_wallet.clear();
        Ok(())
    }

    /// Watches the open trades' protective exits against the latest price: raises each trade's
    /// peak, and writes an exit signal for the trade when a stop-loss, trailing stop or ROI target
    /// is hit (executed right after, through the normal path). Returns how many were written.
    pub async fn protect(&self, pool: &PgPool, now: DateTime<Utc>) -> Result<usize> {
        let mut written = 0;
        for trade in store::trading::open_trades_with_exits(pool).await? {
            let oldest_close = now - self.limits.max_price_age;
            let Some((timeframe, candle_open_time, price)) =
                store::candles::latest_price(pool, &trade.symbol, now, oldest_close).await?
            else {
                continue; // no recent price: nothing to judge by
            };
            let watch = exits::watch(
                &trade.exits,
                trade.entry_price,
                trade.peak_price,
                trade.opened_at,
                price,
                now,
            );
            let peak_price = watch.peak_price;
            if trade.peak_price != Some(peak_price) {
                store::trading::raise_peak(pool, trade.id, peak_price).await?;
            }
            let Some(reason) = watch.exit else {
                continue;
            };
            let message = format!(
                "{}: trade {} entered at {}, now {price} (peak {peak_price})",
                reason.as_str(),
                trade.id,
                trade.entry_price
            );
            let exit = NewExitSignal {
                trade_id: trade.id,
                strategy_id: trade.strategy_id,
                symbol: &trade.symbol,
                timeframe,
                candle_open_time,
                price,
                reason,
                message,
            };
            if store::signals::insert_exit(pool, &exit).await? {
                tracing::info!(trade = trade.id, symbol = %trade.symbol, reason = reason.as_str(), %price, "protective exit");
                written += 1;
            }
        }
        Ok(written)
    }

    /// Claims and handles the oldest new signal; `None` when there is none (or all are being
    /// handled by other replicas).
    ///
    /// An execution error that would repeat on every retry (anything but the database being
    /// unavailable) ends the signal `rejected` in a transaction of its own: a signal that can never
    /// execute must not stay `new` and hold up every signal behind it.
    pub async fn process_next(&self, pool: &PgPool) -> Result<Option<(i64, Outcome)>> {
        self.process_next_at(pool, Utc::now()).await
    }

    /// [`Self::process_next`] as of `now` (the execution time written on orders and trades, and
    /// the clock of the signal-age and daily-loss checks): the parity test replays a history.
    pub async fn process_next_at(
        &self,
        pool: &PgPool,
        now: DateTime<Utc>,
    ) -> Result<Option<(i64, Outcome)>> {
        let mut tx = pool.begin().await?;
        let Some(signal) = store::signals::claim_next(&mut tx).await? else {
            return Ok(None);
        };
        if self.fault == Some(Fault::CrashAfterClaim) {
            tracing::error!(
                signal = signal.id,
                "fault injection: aborting between claim and commit"
            );
            std::process::abort();
        }
        let outcome = match self.execute(&mut tx, &signal, now).await {
            Ok(outcome) => {
                tx.commit().await?;
                outcome
            }
            Err(error) if error.is_transient() => return Err(error),
            Err(error) => {
                tx.rollback().await?;
                tracing::error!(signal = signal.id, %error, "signal execution failed; rejecting it");
                let mut tx = pool.begin().await?;
                if !store::signals::claim(&mut tx, signal.id).await? {
                    // Handled meanwhile by another replica.
                    return Ok(Some((signal.id, Outcome::AlreadyExecuted)));
                }
                let outcome = self
                    .reject(&mut tx, &signal, Rejection::ExecutionFailed)
                    .await?;
                tx.commit().await?;
                outcome
            }
        };
        let label = match &outcome {
            Outcome::Executed { .. } | Outcome::AlreadyExecuted => "executed",
            Outcome::Rejected(r) => r.code(),
        };
        self.metrics
            .signals_processed
            .get_or_create(&OutcomeLabels { outcome: label })
            .inc();
        Ok(Some((signal.id, outcome)))
    }

    /// Decides on and executes one claimed signal inside `tx`. Nothing is written before every
    /// check has passed, so a rejection leaves no order or trade behind.
    async fn execute(
        &self,
        tx: &mut PgConnection,
        signal: &Signal,
        now: DateTime<Utc>,
    ) -> Result<Outcome> {
        if store::trading::order_exists_for(tx, signal.id).await? {
            store::signals::finish(
                tx,
                signal.id,
                SignalStatus::Executed,
                Some("order already existed"),
            )
            .await?;
            return Ok(Outcome::AlreadyExecuted);
        }
        // The account lock comes first: it serialises executions across replicas, so everything
        // read after it (open trades, balances) is current.
        store::trading::lock_account(tx).await?;
        let bot = store::bot::state(&mut *tx).await?;
        // The cash this signal spends or receives: the symbol's quote currency.
        let currency = store::instruments::quote_asset(&mut *tx, &signal.symbol)
            .await?
            .ok_or_else(|| Error::not_found(format!("instrument {}", signal.symbol)))?;
        let free = store::trading::lock_wallet(tx, &currency)
            .await?
            .map_or(Decimal::ZERO, |wallet| wallet.balance);
        // Trades belong to their owner (a strategy, or a person for manual ones). A strategy's
        // signal acts on its own trade only; a person's exit closes their own trade, else the
        // symbol's oldest; a protective exit closes the trade it names.
        let mut trade = match signal.trade_id {
            Some(id) => store::trading::open_trade(tx, id).await?,
            None => store::trading::open_trade_of(tx, &signal.symbol, signal.strategy_id).await?,
        };
        if trade.is_none() && signal.strategy_id.is_none() && signal.action == Action::Sell {
            trade = store::trading::oldest_open_trade(tx, &signal.symbol).await?;
        }
        let open_trades = store::trading::count_open(&mut *tx).await?;
        let realized_today =
            store::trading::realized_in_since(&mut *tx, &currency, execution::start_of_day(now))
                .await?;
        let price = match signal.price {
            Some(price) => Some(price),
            None => {
                let oldest_close = now - self.limits.max_price_age;
                store::candles::latest_close(&mut *tx, &signal.symbol, now, oldest_close).await?
            }
        };
        let context = SignalContext {
            action: signal.action,
            manual: signal.strategy_id.is_none(),
            stake: signal.stake.unwrap_or(self.limits.stake_amount),
            price,
            signal_age: now - signal.created_at,
            state: bot.state,
            open_trades: u32::try_from(open_trades).unwrap_or(u32::MAX),
            trade: trade.as_ref().map(|t| TradeBasis {
                quantity: t.quantity,
                entry_price: t.entry_price,
                entry_fee: t.entry_fee,
            }),
            free_balance: free,
            realized_today,
        };
        match (execution::decide(&self.limits, &context), trade) {
            (Decision::Reject(rejection), _) => self.reject(tx, signal, rejection).await,
            (Decision::Open { fill, balance }, _) => {
                let exits = match signal.strategy_id {
                    Some(id) => store::strategies::exits(&mut *tx, id).await?,
                    None => Exits::default(),
                };
                let trade_id = store::trading::insert_open_trade(
                    tx,
                    &signal.symbol,
                    signal.strategy_id,
                    &fill,
                    &exits,
                    now,
                )
                .await?;
                let order_id = self.write_order(tx, signal, trade_id, &fill).await?;
                store::trading::set_balance(tx, &currency, balance).await?;
                self.event(tx, "trade_opened", signal, &fill, trade_id, None)
                    .await?;
                store::signals::finish(tx, signal.id, SignalStatus::Executed, None).await?;
                Ok(Outcome::Executed { order_id, trade_id })
            }
            (
                Decision::Close {
                    fill,
                    profit,
                    balance,
                },
                Some(trade),
            ) => {
                let reason =
                    execution::exit_reason(signal.exit_reason.0, signal.strategy_id.is_some());
                store::trading::close_trade(tx, trade.id, &fill, profit, reason, now).await?;
                let order_id = self.write_order(tx, signal, trade.id, &fill).await?;
                store::trading::set_balance(tx, &currency, balance).await?;
                self.event(tx, "trade_closed", signal, &fill, trade.id, Some(profit))
                    .await?;
                store::signals::finish(tx, signal.id, SignalStatus::Executed, None).await?;
                Ok(Outcome::Executed {
                    order_id,
                    trade_id: trade.id,
                })
            }
            // `decide` closes only a trade it was given.
            (Decision::Close { .. }, None) => self.reject(tx, signal, Rejection::NoOpenTrade).await,
        }
    }

    async fn write_order(
        &self,
        tx: &mut PgConnection,
        signal: &Signal,
        trade_id: i64,
        fill: &Fill,
    ) -> Result<i64> {
        let order = store::trading::insert_order(
            tx,
            signal.id,
            trade_id,
            &signal.symbol,
            signal.action,
            fill,
        )
        .await?
        .ok_or_else(|| Error::Conflict(format!("signal {} already has an order", signal.id)))?;
        Ok(order.id)
    }

    async fn reject(
        &self,
        tx: &mut PgConnection,
        signal: &Signal,
        rejection: Rejection,
    ) -> Result<Outcome> {
        let reason = format!("{}: {rejection}", rejection.code());
        store::signals::finish(tx, signal.id, SignalStatus::Rejected, Some(&reason)).await?;
        // A strategy's sell with nothing to sell is routine: no event for it.
        let routine = signal.strategy_id.is_some() && rejection == Rejection::NoOpenTrade;
        if !routine {
            store::events::record(
                tx,
                &NewEvent {
                    level: Level::Warning,
                    kind: "signal_rejected",
                    message: format!(
                        "{} {} signal {} rejected: {rejection}",
                        signal.symbol,
                        signal.action.as_str(),
                        signal.id
                    ),
                    data: serde_json::json!({
                        "signal_id": signal.id, "symbol": signal.symbol,
                        "action": signal.action, "reason": rejection.code(),
                    }),
                    notify: true,
                    dedup_key: None,
                },
            )
            .await?;
        }
        tracing::info!(signal = signal.id, symbol = %signal.symbol, reason = %reason, "signal rejected");
        Ok(Outcome::Rejected(rejection))
    }

    async fn event(
        &self,
        tx: &mut PgConnection,
        kind: &str,
        signal: &Signal,
        fill: &Fill,
        trade_id: i64,
        profit: Option<Decimal>,
    ) -> Result<()> {
        let verb = if signal.action == Action::Buy {
            "bought"
        } else {
            "sold"
        };
        let mut message = format!(
            "{verb} {} {} at {} (fee {}), trade {trade_id}",
            fill.quantity, signal.symbol, fill.price, fill.fee
        );
        if let Some(p) = profit {
            message.push_str(&format!(", profit {p}"));
        }
        tracing::info!(signal = signal.id, trade = trade_id, "{message}");
        store::events::record(
            tx,
            &NewEvent {
                level: Level::Info,
                kind,
                message,
                data: serde_json::json!({
                    "signal_id": signal.id, "trade_id": trade_id, "symbol": signal.symbol,
                    "side": signal.action, "quantity": fill.quantity, "price": fill.price,
                    "fee": fill.fee, "profit": profit,
                }),
                notify: true,
                dedup_key: None,
            },
        )
        .await?;
        Ok(())
    }
}
