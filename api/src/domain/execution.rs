//! What the bot does with one signal, decided without I/O: the risk checks, the paper fill, the
//! profit and the new balance. The bot (`workers::bot`) reads the inputs inside its transaction
//! and writes the outcome; the backtest (`crate::backtest`) keeps the same state in memory. Both
//! call [`decide`], so a backtest trades exactly as the bot would.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::exits::ExitReason;
use super::paper::{self, Fill};
use super::risk::{self, BotState, Rejection, RiskSnapshot};
use super::{Action, RiskLimits};

/// The trade a signal would act on (an entry's own open trade, or the one an exit closes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TradeBasis {
    pub quantity: Decimal,
    pub entry_price: Decimal,
    pub entry_fee: Decimal,
}

/// Everything the decision depends on, read at the moment of execution.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalContext {
    pub action: Action,
    /// A person's order rather than a strategy's signal.
    pub manual: bool,
    /// Quote amount of an entry.
    pub stake: Decimal,
    /// The price the order fills against (the signal's candle close, or the latest close).
    pub price: Option<Decimal>,
    pub signal_age: chrono::Duration,
    pub state: BotState,
    /// Open trades across every symbol and owner.
    pub open_trades: u32,
    pub trade: Option<TradeBasis>,
    /// Cash in the symbol's quote currency.
    pub free_balance: Decimal,
    /// Realised profit in that currency since the start of the UTC day.
    pub realized_today: Decimal,
}

/// What to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Open a trade with this fill; the wallet holds `balance` afterwards.
    Open {
        fill: Fill,
        balance: Decimal,
    },
    /// Close the trade with this fill, realising `profit` (net of both fees).
    Close {
        fill: Fill,
        profit: Decimal,
        balance: Decimal,
    },
    Reject(Rejection),
}

/// Decides on one signal: risk checks first, then the fill, then the balance against the actual
/// fill. Every amount is checked arithmetic; out-of-range numbers reject rather than panic.
pub fn decide(limits: &RiskLimits, ctx: &SignalContext) -> Decision {
    let snapshot = RiskSnapshot {
        state: ctx.state,
        manual: ctx.manual,
        open_trades: ctx.open_trades,
        has_open_trade: ctx.trade.is_some(),
        free_balance: ctx.free_balance,
        realized_today: ctx.realized_today,
        signal_age: ctx.signal_age,
    };
    if let Err(rejection) = risk::check(limits, &snapshot, ctx.action, ctx.stake) {
        return Decision::Reject(rejection);
    }
    let Some(price) = ctx.price else {
        return Decision::Reject(Rejection::NoPrice);
    };
    let (fee_rate, slippage) = (limits.fee_rate, limits.slippage_bps);
    match (ctx.action, ctx.trade) {
        (Action::Buy, _) => {
            let Some(fill) = paper::buy(price, ctx.stake, fee_rate, slippage) else {
                return Decision::Reject(Rejection::OrderTooSmall);
            };
            let needed = paper::cost(&fill);
            match ctx.free_balance.checked_sub(needed) {
                Some(balance) if !balance.is_sign_negative() => Decision::Open { fill, balance },
                _ => Decision::Reject(Rejection::InsufficientBalance {
                    needed,
                    free: ctx.free_balance,
                }),
            }
        }
        (Action::Sell, Some(trade)) => {
            let Some(fill) = paper::sell(price, trade.quantity, fee_rate, slippage) else {
                return Decision::Reject(Rejection::OrderTooSmall);
            };
            let entry_notional = trade
                .quantity
                .checked_mul(trade.entry_price)
                .map(|n| n.round_dp(paper::SCALE));
            let profit = entry_notional.and_then(|n| paper::profit(n, trade.entry_fee, &fill));
            let balance = ctx.free_balance.checked_add(paper::proceeds(&fill));
            match (profit, balance) {
                (Some(profit), Some(balance)) => Decision::Close {
                    fill,
                    profit,
                    balance,
                },
                _ => Decision::Reject(Rejection::OrderTooSmall),
            }
        }
        (Action::Sell, None) => Decision::Reject(Rejection::NoOpenTrade),
    }
}

/// Why a sell closes its trade: a protective exit names its reason; otherwise a strategy's sell is
/// its exit signal and a person's is a force-exit.
pub fn exit_reason(named: Option<ExitReason>, by_strategy: bool) -> ExitReason {
    match (named, by_strategy) {
        (Some(reason), _) => reason,
        (None, true) => ExitReason::ExitSignal,
        (None, false) => ExitReason::ForceExit,
    }
}

/// Midnight (UTC) of `now`'s day: the daily loss limit counts from there.
pub fn start_of_day(now: DateTime<Utc>) -> DateTime<Utc> {
    now.date_naive()
        .and_hms_opt(0, 0, 0)
        .map_or(now, |midnight| midnight.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::dec;

    fn limits() -> RiskLimits {
        RiskLimits {
            stake_amount: dec!(100),
            max_open_trades: 2,
            max_notional: dec!(500),
            daily_loss_limit: dec!(50),
            fee_rate: dec!(0.001),
            slippage_bps: dec!(0),
            max_signal_age: chrono::Duration::minutes(15),
            max_price_age: chrono::Duration::minutes(5),
        }
    }

    fn ctx(action: Action) -> SignalContext {
        SignalContext {
            action,
            manual: false,
            stake: dec!(100),
            price: Some(dec!(200)),
            signal_age: chrono::Duration::zero(),
            state: BotState::Running,
            open_trades: 0,
            trade: None,
            free_balance: dec!(1000),
            realized_today: dec!(0),
        }
    }

    #[test]
    fn an_entry_spends_notional_and_fee() {
        // 100 / 200 = 0.5 at 200: notional 100, fee 0.1 -> 1000 - 100.1
        let Decision::Open { fill, balance } = decide(&limits(), &ctx(Action::Buy)) else {
            panic!("not opened");
        };
        assert_eq!((fill.quantity, fill.fee), (dec!(0.5), dec!(0.1)));
        assert_eq!(balance, dec!(899.9));
    }

    #[test]
    fn an_exit_realises_profit_net_of_both_fees() {
        let sell = SignalContext {
            price: Some(dec!(220)),
            trade: Some(TradeBasis {
                quantity: dec!(0.5),
                entry_price: dec!(200),
                entry_fee: dec!(0.1),
            }),
            ..ctx(Action::Sell)
        };
        // 0.5 * 220 = 110, fee 0.11: proceeds 109.89; profit 109.89 - 100 - 0.1 = 9.79
        assert_eq!(
            decide(&limits(), &sell),
            Decision::Close {
                fill: Fill {
                    price: dec!(220),
                    quantity: dec!(0.5),
                    notional: dec!(110.0),
                    fee: dec!(0.11),
                },
                profit: dec!(9.79),
                balance: dec!(1109.89),
            }
        );
    }

    #[test]
    fn rejections() {
        assert_eq!(
            decide(&limits(), &ctx(Action::Sell)),
            Decision::Reject(Rejection::NoOpenTrade)
        );
        let no_price = SignalContext {
            price: None,
            ..ctx(Action::Buy)
        };
        assert_eq!(
            decide(&limits(), &no_price),
            Decision::Reject(Rejection::NoPrice)
        );
        let tiny = SignalContext {
            stake: dec!(0.000000001),
            ..ctx(Action::Buy)
        };
        assert_eq!(
            decide(&limits(), &tiny),
            Decision::Reject(Rejection::OrderTooSmall)
        );
        assert_eq!(exit_reason(None, true), ExitReason::ExitSignal);
        assert_eq!(exit_reason(None, false), ExitReason::ForceExit);
        assert_eq!(
            exit_reason(Some(ExitReason::StopLoss), true),
            ExitReason::StopLoss
        );
    }
}
