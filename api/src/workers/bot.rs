//! The bot role: claim new signals one at a time (`FOR UPDATE SKIP LOCKED`), check risk, execute on
//! the paper exchange, and write order, trade, account and events in the claiming transaction.
//!
//! Exactly-once: the claim and every write commit together. A crash before the commit rolls all of
//! it back and releases the row lock, so the next tick (of this or another replica) claims the
//! signal again; after the commit the signal is no longer `new`. The order's unique idempotency
//! key (`signal-<id>`) guards the same invariant in the schema itself.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::{PgConnection, PgPool};

use super::Worker;
use super::notifier::Notifier;
use crate::config::Fault;
use crate::domain::paper::{self, Fill};
use crate::domain::risk::{self, Rejection, RiskSnapshot};
use crate::domain::{Action, RiskLimits};
use crate::error::{Error, Result};
use crate::metrics::{Metrics, OutcomeLabels};
use crate::server::Liveness;
use crate::store::events::{Level, NewEvent};
use crate::store::signals::{Signal, SignalStatus};
use crate::store::{self};

/// Most signals one tick handles (keeps a tick short after a backlog).
const BATCH: usize = 500;

pub struct Bot {
    pub limits: RiskLimits,
    pub metrics: Arc<Metrics>,
    pub notifier: Option<Notifier>,
    pub fault: Option<Fault>,
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
        for _ in 0..BATCH {
            match self.process_next(pool).await? {
                None => break,
                Some(_) => liveness.beat(),
            }
        }
        match &self.notifier {
            Some(notifier) => {
                notifier.deliver_due(pool).await?;
            }
            None => {
                store::events::skip_pending(pool).await?;
            }
        }
        Ok(())
    }
}

impl Bot {
    /// Claims and handles the oldest new signal; `None` when there is none (or all are being
    /// handled by other replicas).
    pub async fn process_next(&self, pool: &PgPool) -> Result<Option<(i64, Outcome)>> {
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
        let outcome = self.execute(&mut tx, &signal, Utc::now()).await?;
        tx.commit().await?;
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

    /// Decides on and executes one claimed signal inside `tx`.
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
        // read after it (open trades, balance) is current.
        let account = store::trading::lock_account(tx).await?;
        let bot = store::bot::state(&mut *tx).await?;
        let open_trade = store::trading::open_trade_for(tx, &signal.symbol).await?;
        let open_trades = store::trading::count_open(&mut *tx).await?;
        let realized_today = store::trading::realized_since(&mut *tx, start_of_day(now)).await?;
        let manual = signal.strategy_id.is_none();
        let stake = signal.stake.unwrap_or(self.limits.stake_amount);
        let snapshot = RiskSnapshot {
            state: bot.state,
            manual,
            open_trades: u32::try_from(open_trades).unwrap_or(u32::MAX),
            symbol_has_open_trade: open_trade.is_some(),
            free_balance: account.balance,
            realized_today,
            signal_age: now - signal.created_at,
        };
        if let Err(rejection) = risk::check(&self.limits, &snapshot, signal.action, stake) {
            return self.reject(tx, signal, rejection).await;
        }
        let price = match signal.price {
            Some(price) => Some(price),
            None => store::candles::latest_close(&mut *tx, &signal.symbol, now).await?,
        };
        let Some(price) = price else {
            return self.reject(tx, signal, Rejection::NoPrice).await;
        };
        let (fee_rate, slippage) = (self.limits.fee_rate, self.limits.slippage_bps);
        match (signal.action, open_trade) {
            (Action::Buy, _) => {
                let Some(fill) = paper::buy(price, stake, fee_rate, slippage) else {
                    return self.reject(tx, signal, Rejection::NoPrice).await;
                };
                let trade_id = store::trading::insert_open_trade(
                    tx,
                    &signal.symbol,
                    signal.strategy_id,
                    &fill,
                    now,
                )
                .await?;
                let order_id = self.write_order(tx, signal, trade_id, &fill).await?;
                let balance = account.balance.checked_sub(paper::cost(&fill));
                let Some(balance) = balance.filter(|b| !b.is_sign_negative()) else {
                    return self
                        .reject(
                            tx,
                            signal,
                            Rejection::InsufficientBalance {
                                needed: paper::cost(&fill),
                                free: account.balance,
                            },
                        )
                        .await;
                };
                store::trading::set_balance(tx, balance).await?;
                self.event(tx, "trade_opened", signal, &fill, trade_id, None)
                    .await?;
                store::signals::finish(tx, signal.id, SignalStatus::Executed, None).await?;
                Ok(Outcome::Executed { order_id, trade_id })
            }
            (Action::Sell, Some(trade)) => {
                let Some(fill) = paper::sell(price, trade.quantity, fee_rate, slippage) else {
                    return self.reject(tx, signal, Rejection::NoPrice).await;
                };
                let entry_notional = trade
                    .quantity
                    .saturating_mul(trade.entry_price)
                    .round_dp(paper::SCALE);
                let profit = paper::profit(entry_notional, trade.entry_fee, &fill);
                store::trading::close_trade(tx, trade.id, &fill, profit, now).await?;
                let order_id = self.write_order(tx, signal, trade.id, &fill).await?;
                store::trading::set_balance(
                    tx,
                    account.balance.saturating_add(paper::proceeds(&fill)),
                )
                .await?;
                self.event(tx, "trade_closed", signal, &fill, trade.id, Some(profit))
                    .await?;
                store::signals::finish(tx, signal.id, SignalStatus::Executed, None).await?;
                Ok(Outcome::Executed {
                    order_id,
                    trade_id: trade.id,
                })
            }
            (Action::Sell, None) => self.reject(tx, signal, Rejection::NoOpenTrade).await,
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

fn start_of_day(now: DateTime<Utc>) -> DateTime<Utc> {
    now.date_naive()
        .and_hms_opt(0, 0, 0)
        .map_or(now, |midnight| midnight.and_utc())
}
