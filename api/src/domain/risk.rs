//! Risk checks: a pure decision from the bot's limits and a snapshot of the account, taken inside
//! the transaction that executes the signal.

use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Action;

/// Whether the bot trades.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BotState {
    /// Signals are executed.
    Running,
    /// No entries; exits (strategy, protective and manual) still run, so no position is left
    /// without its way out.
    Stopped,
    /// Exits are executed, entries rejected (wind down).
    StopEntry,
}

impl BotState {
    pub fn as_str(self) -> &'static str {
        match self {
            BotState::Running => "running",
            BotState::Stopped => "stopped",
            BotState::StopEntry => "stop_entry",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "running" => Some(BotState::Running),
            "stopped" => Some(BotState::Stopped),
            "stop_entry" => Some(BotState::StopEntry),
            _ => None,
        }
    }
}

/// The bot's limits (from its configuration).
#[derive(Debug, Clone, PartialEq)]
pub struct RiskLimits {
    /// Quote amount per entry unless a manual entry names its own.
    pub stake_amount: Decimal,
    pub max_open_trades: u32,
    /// Largest notional of one order.
    pub max_notional: Decimal,
    /// Realised loss for the UTC day at which entries stop.
    pub daily_loss_limit: Decimal,
    pub fee_rate: Decimal,
    pub slippage_bps: Decimal,
    pub max_signal_age: chrono::Duration,
    /// Oldest candle close that prices a manual order or a protective exit.
    pub max_price_age: chrono::Duration,
}

/// What the bot knows when it decides on one signal.
#[derive(Debug, Clone, PartialEq)]
pub struct RiskSnapshot {
    pub state: BotState,
    pub manual: bool,
    pub open_trades: u32,
    /// Entries: the signal's owner (its strategy, or a person) has an open trade on the symbol.
    /// Exits: there is a trade for the signal to close.
    pub has_open_trade: bool,
    /// Cash available in the quote currency.
    pub free_balance: Decimal,
    /// Realised profit of trades closed today (UTC); negative is a loss.
    pub realized_today: Decimal,
    pub signal_age: chrono::Duration,
}

/// Why a signal is not executed. The `code` is stored on the signal and used as a metric label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    BotStopped,
    EntriesPaused,
    Stale {
        age_secs: i64,
    },
    MaxOpenTrades {
        limit: u32,
    },
    SymbolAlreadyOpen,
    MaxNotional {
        stake: Decimal,
        limit: Decimal,
    },
    InsufficientBalance {
        needed: Decimal,
        free: Decimal,
    },
    DailyLossHalt {
        realized: Decimal,
        limit: Decimal,
    },
    NoOpenTrade,
    NoPrice,
    /// The stake or quantity is too small to fill at this price (rounds to nothing).
    OrderTooSmall,
    /// Executing failed in a way that would repeat on every retry (the bot's log has the cause).
    ExecutionFailed,
}

impl Rejection {
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::BotStopped => "bot_stopped",
            Rejection::EntriesPaused => "entries_paused",
            Rejection::Stale { .. } => "stale_signal",
            Rejection::MaxOpenTrades { .. } => "max_open_trades",
            Rejection::SymbolAlreadyOpen => "symbol_already_open",
            Rejection::MaxNotional { .. } => "max_notional",
            Rejection::InsufficientBalance { .. } => "insufficient_balance",
            Rejection::DailyLossHalt { .. } => "daily_loss_halt",
            Rejection::NoOpenTrade => "no_open_trade",
            Rejection::NoPrice => "no_price",
            Rejection::OrderTooSmall => "order_too_small",
            Rejection::ExecutionFailed => "execution_failed",
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::BotStopped => write!(f, "the bot is stopped"),
            Rejection::EntriesPaused => write!(f, "entries are paused (stop-entry)"),
            Rejection::Stale { age_secs } => write!(f, "signal is stale ({age_secs}s old)"),
            Rejection::MaxOpenTrades { limit } => {
                write!(f, "max open trades reached ({limit})")
            }
            Rejection::SymbolAlreadyOpen => write!(
                f,
                "a trade of the same strategy (or a manual one) is already open for this symbol"
            ),
            Rejection::MaxNotional { stake, limit } => {
                write!(f, "stake {stake} exceeds the max notional {limit}")
            }
            Rejection::InsufficientBalance { needed, free } => {
                write!(f, "insufficient balance: needs {needed}, free {free}")
            }
            Rejection::DailyLossHalt { realized, limit } => write!(
                f,
                "daily loss limit reached: realised {realized} today, limit {limit}"
            ),
            Rejection::NoOpenTrade => write!(f, "no open trade to exit for this symbol"),
            Rejection::NoPrice => write!(f, "no recent candle to price the order"),
            Rejection::OrderTooSmall => {
                write!(f, "the order is too small to fill at this price")
            }
            Rejection::ExecutionFailed => {
                write!(f, "the order could not be executed (see the bot's log)")
            }
        }
    }
}

/// Whether entries are halted by the daily-loss limit, given each quote currency's realised
/// profit of the UTC day: the message of the first currency at or past the limit (the same
/// judgement [`check`] makes for an entry in that currency), or `None`.
pub fn daily_loss_halt(
    limits: &RiskLimits,
    realized_today: &[(String, Decimal)],
) -> Option<String> {
    realized_today
        .iter()
        .find(|(_, realized)| *realized <= -limits.daily_loss_limit)
        .map(|(currency, realized)| {
            format!(
                "daily loss limit reached: realised {realized} {currency} today, limit {}",
                limits.daily_loss_limit
            )
        })
}

/// Decides whether a signal may be executed. `stake` is the quote amount of an entry (ignored for
/// exits). Exits are allowed whenever there is a trade to close, whatever the bot's state and the
/// signal's age: a late exit still limits a loss, a dropped one leaves the position open.
pub fn check(
    limits: &RiskLimits,
    snapshot: &RiskSnapshot,
    action: Action,
    stake: Decimal,
) -> Result<(), Rejection> {
    match action {
        Action::Sell => {
            if !snapshot.has_open_trade {
                return Err(Rejection::NoOpenTrade);
            }
            Ok(())
        }
        Action::Buy => {
            if !snapshot.manual && snapshot.signal_age > limits.max_signal_age {
                return Err(Rejection::Stale {
                    age_secs: snapshot.signal_age.num_seconds(),
                });
            }
            match snapshot.state {
                BotState::Running => {}
                BotState::Stopped => return Err(Rejection::BotStopped),
                BotState::StopEntry => return Err(Rejection::EntriesPaused),
            }
            if snapshot.realized_today <= -limits.daily_loss_limit {
                return Err(Rejection::DailyLossHalt {
                    realized: snapshot.realized_today,
                    limit: limits.daily_loss_limit,
                });
            }
            if snapshot.has_open_trade {
                return Err(Rejection::SymbolAlreadyOpen);
            }
            if snapshot.open_trades >= limits.max_open_trades {
                return Err(Rejection::MaxOpenTrades {
                    limit: limits.max_open_trades,
                });
            }
            if stake > limits.max_notional {
                return Err(Rejection::MaxNotional {
                    stake,
                    limit: limits.max_notional,
                });
            }
            // stake <= max_notional (checked above, and bounded by the configuration), so this
            // cannot overflow; saturate anyway rather than panic.
            let needed = stake.saturating_add(stake.saturating_mul(limits.fee_rate));
            if needed > snapshot.free_balance {
                return Err(Rejection::InsufficientBalance {
                    needed,
                    free: snapshot.free_balance,
                });
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::dec;

    #[test]
    fn the_daily_loss_halt_is_judged_per_currency_at_the_limit() {
        let limits = limits(); // daily_loss_limit 50
        assert_eq!(daily_loss_halt(&limits, &[]), None);
        let calm = [
            ("USDT".to_owned(), dec!(-49.99)),
            ("BTC".to_owned(), dec!(3)),
        ];
        assert_eq!(daily_loss_halt(&limits, &calm), None);
        let at_limit = [("BTC".to_owned(), dec!(1)), ("USDT".to_owned(), dec!(-50))];
        assert_eq!(
            daily_loss_halt(&limits, &at_limit).as_deref(),
            Some("daily loss limit reached: realised -50 USDT today, limit 50")
        );
    }

    fn limits() -> RiskLimits {
        RiskLimits {
            stake_amount: dec!(100),
            max_open_trades: 2,
            max_notional: dec!(500),
            daily_loss_limit: dec!(50),
            fee_rate: dec!(0.001),
            slippage_bps: dec!(5),
            max_signal_age: chrono::Duration::minutes(15),
            max_price_age: chrono::Duration::minutes(5),
        }
    }

    fn snapshot() -> RiskSnapshot {
        RiskSnapshot {
            state: BotState::Running,
            manual: false,
            open_trades: 0,
            has_open_trade: false,
            free_balance: dec!(1000),
            realized_today: dec!(0),
            signal_age: chrono::Duration::seconds(3),
        }
    }

    #[test]
    fn entry_allowed_within_limits() {
        assert_eq!(
            check(&limits(), &snapshot(), Action::Buy, dec!(100)),
            Ok(())
        );
    }

    #[test]
    fn each_limit_rejects_an_entry() {
        let l = limits();
        let cases: Vec<(RiskSnapshot, Decimal, &str)> = vec![
            (
                RiskSnapshot {
                    state: BotState::Stopped,
                    ..snapshot()
                },
                dec!(100),
                "bot_stopped",
            ),
            (
                RiskSnapshot {
                    state: BotState::StopEntry,
                    ..snapshot()
                },
                dec!(100),
                "entries_paused",
            ),
            (
                RiskSnapshot {
                    open_trades: 2,
                    ..snapshot()
                },
                dec!(100),
                "max_open_trades",
            ),
            (
                RiskSnapshot {
                    has_open_trade: true,
                    ..snapshot()
                },
                dec!(100),
                "symbol_already_open",
            ),
            (snapshot(), dec!(500.01), "max_notional"),
            // 100 + 0.1 fee > 100.05
            (
                RiskSnapshot {
                    free_balance: dec!(100.05),
                    ..snapshot()
                },
                dec!(100),
                "insufficient_balance",
            ),
            (
                RiskSnapshot {
                    realized_today: dec!(-50),
                    ..snapshot()
                },
                dec!(100),
                "daily_loss_halt",
            ),
            (
                RiskSnapshot {
                    signal_age: chrono::Duration::minutes(16),
                    ..snapshot()
                },
                dec!(100),
                "stale_signal",
            ),
        ];
        for (snap, stake, code) in cases {
            let err = check(&l, &snap, Action::Buy, stake).expect_err(code);
            assert_eq!(err.code(), code, "{err}");
        }
        // Exactly enough balance (100 + 0.1 fee) passes; a loss just under the limit too.
        let snap = RiskSnapshot {
            free_balance: dec!(100.1),
            realized_today: dec!(-49.99),
            ..snapshot()
        };
        assert_eq!(check(&l, &snap, Action::Buy, dec!(100)), Ok(()));
    }

    #[test]
    fn exits() {
        let l = limits();
        let open = RiskSnapshot {
            has_open_trade: true,
            ..snapshot()
        };
        assert_eq!(check(&l, &open, Action::Sell, dec!(0)), Ok(()));
        // Exits are still allowed in stop-entry, in a stopped bot, after the daily loss halt, and
        // when the signal is old (issue 16: exits were lost).
        for state in [BotState::StopEntry, BotState::Stopped] {
            let winding_down = RiskSnapshot {
                state,
                realized_today: dec!(-100),
                signal_age: chrono::Duration::hours(2),
                ..open.clone()
            };
            assert_eq!(check(&l, &winding_down, Action::Sell, dec!(0)), Ok(()));
        }
        assert_eq!(
            check(&l, &snapshot(), Action::Sell, dec!(0)),
            Err(Rejection::NoOpenTrade)
        );
    }
}
