//! The bot's trading state (`spec.trading.state`) and `status.trading`, the pure part: which
//! bot-control call (if any) brings the bot to the declared state, what the api's answers mean,
//! the next `status.trading` and `Trading` condition, and the events a change deserves.
//! [`super::bot_api`] asks the api; nothing here does I/O.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use serde::Deserialize;

use super::conditions::{condition, reasons, types};
use super::events::EventSpec;
use crate::error::Error;
use crate::resource::{CurrencyStatus, TradingDrift, TradingState, TradingStatus};

/// How often a TradingAgent with `spec.trading` is looked at again, so that a state changed
/// behind the operator's back (a dashboard button, a restored database) is corrected soon.
pub const RESYNC: Duration = Duration::from_secs(10);

/// The least time between two looks at the same declared state. Every status write (each look
/// moves `lastObserved`) and every pod change reconciles again: without it, a look would follow
/// its own status write, and the api would be asked at every pod event.
pub const MIN_LOOK_INTERVAL: Duration = Duration::from_secs(5);

/// Whether to look at the bot now: the declared state changed, there was no look yet, or the last
/// one is at least [`MIN_LOOK_INTERVAL`] old.
pub fn look_due(previous: Option<&TradingStatus>, declared: TradingState, now: Timestamp) -> bool {
    let Some(previous) = previous else {
        return true;
    };
    if previous.declared_state != Some(declared) {
        return true;
    }
    let Some(Time(last)) = &previous.last_observed else {
        return true;
    };
    let since = Duration::try_from(now.duration_since(*last)).unwrap_or(Duration::ZERO);
    since >= MIN_LOOK_INTERVAL
}

/// `status.trading.setBy` when the operator's call set the state in force.
pub const SET_BY_OPERATOR: &str = "Operator";
/// `status.trading.setBy` when someone else did and the operator could not correct it (yet).
pub const SET_BY_EXTERNAL: &str = "External";

/// The api's name of a state (`GET /api/v2/bot`'s `state`).
pub fn from_api(state: &str) -> Option<TradingState> {
    match state {
        "running" => Some(TradingState::Running),
        "stop_entry" => Some(TradingState::StopEntry),
        "stopped" => Some(TradingState::Stopped),
        _ => None,
    }
}

/// The bot-control endpoint that puts the bot in `state`.
pub fn control_path(state: TradingState) -> &'static str {
    match state {
        TradingState::Running => "/api/v2/bot/start",
        TradingState::StopEntry => "/api/v2/bot/stop-entry",
        TradingState::Stopped => "/api/v2/bot/stop",
    }
}

/// The state to set, given the declared and the observed one: none when they agree.
pub fn correction(declared: TradingState, observed: TradingState) -> Option<TradingState> {
    (declared != observed).then_some(declared)
}

// ---- the api's answers (only the fields used; unknown ones are ignored) -----------------------

/// `GET /api/v2/bot` (and the bot-control POSTs).
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct BotView {
    /// `running`, `stop_entry` or `stopped`.
    pub state: String,
    /// When the state last changed.
    #[serde(default)]
    pub updated_at: Option<String>,
    /// Present while entries are halted by the daily-loss limit.
    #[serde(default)]
    pub daily_loss_halt: Option<HaltView>,
}

/// The api's daily-loss halt.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct HaltView {
    /// Why, with the amounts.
    pub message: String,
    /// Since when.
    #[serde(default)]
    pub since: Option<String>,
}

/// `GET /api/v2/balance`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct BalanceView {
    /// The account's currency.
    pub currency: String,
    /// Open trades, every currency.
    #[serde(default)]
    pub open_trades: Option<i64>,
    /// Per currency.
    #[serde(default)]
    pub currencies: Vec<CurrencyBalanceView>,
}

/// One currency of `GET /api/v2/balance`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct CurrencyBalanceView {
    /// The quote currency.
    pub currency: String,
    /// Cash not in trades (a decimal string).
    #[serde(default)]
    pub free: Option<serde_json::Value>,
    /// Cash plus open positions (a decimal string).
    #[serde(default)]
    pub equity: Option<serde_json::Value>,
    /// Open trades in this currency.
    #[serde(default)]
    pub open_trades: Option<i64>,
}

/// `GET /api/v2/profit`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct ProfitView {
    /// Total in the account's currency (a decimal string).
    #[serde(default)]
    pub total: Option<serde_json::Value>,
    /// Per currency.
    #[serde(default)]
    pub currencies: Vec<CurrencyProfitView>,
}

/// One currency of `GET /api/v2/profit`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct CurrencyProfitView {
    /// The quote currency.
    pub currency: String,
    /// Realised and unrealised (a decimal string).
    #[serde(default)]
    pub total: Option<serde_json::Value>,
}

/// One row of `GET /api/v2/health/components`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct ComponentView {
    /// `api`, `bot` or `strategy`.
    pub role: String,
    /// The instance's last completed loop.
    pub last_tick_at: String,
}

/// The bot's last tick: the first bot row (the api lists each role's instances latest first).
pub fn last_bot_tick(components: &[ComponentView]) -> Option<String> {
    components
        .iter()
        .find(|c| c.role == "bot")
        .map(|c| c.last_tick_at.clone())
}

/// An amount as the api wrote it (a decimal string, or a number from an api that sends numbers).
fn amount(value: Option<&serde_json::Value>) -> Option<String> {
    match value? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

// ---- one look ---------------------------------------------------------------------------------

/// What one look at the api found (filled by [`super::bot_api::look`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Look {
    /// The bot as first found (before any correction).
    pub found: Option<BotView>,
    /// The state the operator set in this look (its call succeeded).
    pub applied: Option<TradingState>,
    /// The bot after the correction (the call's answer), else as found.
    pub bot: Option<BotView>,
    /// The balance.
    pub balance: Option<BalanceView>,
    /// The profit.
    pub profit: Option<ProfitView>,
    /// The bot's last tick.
    pub last_bot_tick: Option<String>,
    /// The first request that failed.
    pub error: Option<Error>,
}

/// The next `status.trading` and `Trading` condition from a look. The previous status fills in
/// what the look could not see (a failed look keeps the last known figures, with the error).
pub fn next_trading_status(
    previous: Option<&TradingStatus>,
    declared: TradingState,
    look: &Look,
    generation: Option<i64>,
    now: Timestamp,
) -> (TradingStatus, Condition) {
    let mut status = previous.cloned().unwrap_or_default();
    status.declared_state = Some(declared);
    status.last_observed = Some(Time(now));
    status.error = look.error.as_ref().map(Error::to_string);

    let found = look.found.as_ref().and_then(|b| from_api(&b.state));
    if let Some(bot) = &look.bot {
        status.state = from_api(&bot.state);
        status.state_changed_at = bot.updated_at.clone();
        status.daily_loss_halt = bot.daily_loss_halt.as_ref().map(|h| match &h.since {
            Some(since) => format!("{} (since {since})", h.message),
            None => h.message.clone(),
        });
    }
    match (found, look.applied) {
        (Some(found), Some(_)) => {
            status.set_by = Some(SET_BY_OPERATOR.to_owned());
            // A change of the spec is not drift: the bot was in the state the operator set before.
            let was_declared = previous.and_then(|p| p.declared_state) == Some(declared);
            if was_declared {
                status.last_drift = Some(TradingDrift {
                    found,
                    at: Time(now),
                });
            }
        }
        (Some(found), None) if found != declared => {
            status.set_by = Some(SET_BY_EXTERNAL.to_owned());
        }
        (Some(_), None) if status.set_by.is_none() => {
            // Found as declared and never set: whoever set it, it is what the spec says.
            status.set_by = Some(SET_BY_OPERATOR.to_owned());
        }
        _ => {}
    }
    if let Some(balance) = &look.balance {
        status.open_trades = balance.open_trades;
    }
    if look.balance.is_some() || look.profit.is_some() {
        status.currencies = currencies(look.balance.as_ref(), look.profit.as_ref());
    }
    if let (Some(balance), Some(profit)) = (&look.balance, &look.profit) {
        status.profit = amount(profit.total.as_ref()).map(|t| format!("{t} {}", balance.currency));
    }
    if look.last_bot_tick.is_some() {
        status.last_bot_tick = look.last_bot_tick.clone();
    }

    let in_force = status.state;
    let condition = match (&look.error, in_force) {
        (Some(error), _) if look.bot.is_none() || in_force != Some(declared) => condition(
            types::TRADING,
            false,
            error.reason(),
            error.to_string(),
            generation,
            now,
        ),
        (_, Some(state)) if state != declared => condition(
            types::TRADING,
            false,
            reasons::API_UNREACHABLE,
            format!("the bot is {state}, declared {declared}, and the operator could not set it"),
            generation,
            now,
        ),
        _ if look.applied.is_some() => condition(
            types::TRADING,
            true,
            reasons::STATE_APPLIED,
            format!(
                "the bot was {}; the operator set it to {declared}",
                found.map_or("in an unknown state".to_owned(), |f| f.to_string())
            ),
            generation,
            now,
        ),
        _ => condition(
            types::TRADING,
            true,
            reasons::STATE_IN_SYNC,
            format!("the bot is {declared}, as declared"),
            generation,
            now,
        ),
    };
    (status, condition)
}

/// Balance and profit per currency, in the balance's order (profit-only currencies after).
fn currencies(balance: Option<&BalanceView>, profit: Option<&ProfitView>) -> Vec<CurrencyStatus> {
    let mut out: Vec<CurrencyStatus> = balance
        .map(|b| {
            b.currencies
                .iter()
                .map(|c| CurrencyStatus {
                    currency: c.currency.clone(),
                    free: amount(c.free.as_ref()),
                    equity: amount(c.equity.as_ref()),
                    open_trades: c.open_trades,
                    profit: None,
                })
                .collect()
        })
        .unwrap_or_default();
    for p in profit.map(|p| p.currencies.as_slice()).unwrap_or_default() {
        let total = amount(p.total.as_ref());
        match out.iter_mut().find(|c| c.currency == p.currency) {
            Some(c) => c.profit = total,
            None => out.push(CurrencyStatus {
                currency: p.currency.clone(),
                profit: total,
                ..CurrencyStatus::default()
            }),
        }
    }
    out
}

/// Events for a change of `status.trading`: the operator set the declared state, the bot halted
/// on its daily-loss limit, or it resumed.
pub fn trading_events(
    old: Option<&TradingStatus>,
    new: &TradingStatus,
    look: &Look,
) -> Vec<EventSpec> {
    let mut events = Vec::new();
    if let Some(applied) = look.applied {
        let found = look
            .found
            .as_ref()
            .and_then(|b| from_api(&b.state))
            .map_or("in an unknown state".to_owned(), |f| f.to_string());
        events.push(EventSpec::normal(
            "BotStateApplied",
            format!("the bot was {found}; set to {applied} (spec.trading.state)"),
            "SetBotState",
        ));
    }
    let was_halted = old.and_then(|o| o.daily_loss_halt.as_ref());
    match (was_halted, &new.daily_loss_halt) {
        (None, Some(halt)) => events.push(EventSpec::warning(
            "DailyLossHalt",
            format!("the bot stopped opening trades: {halt}"),
            "ObserveBot",
        )),
        (Some(_), None) if look.bot.is_some() => events.push(EventSpec::normal(
            "TradingResumed",
            "the daily-loss halt ended: the bot opens trades again",
            "ObserveBot",
        )),
        _ => {}
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::conditions::reasons;

    fn t(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + seconds).unwrap()
    }

    fn bot(state: &str) -> BotView {
        BotView {
            state: state.to_owned(),
            updated_at: Some("2026-11-27T22:00:00Z".to_owned()),
            daily_loss_halt: None,
        }
    }

    #[test]
    fn a_look_is_due_after_the_interval_or_when_the_declared_state_changes() {
        let looked = TradingStatus {
            declared_state: Some(TradingState::Running),
            last_observed: Some(Time(t(100))),
            ..TradingStatus::default()
        };
        assert!(look_due(None, TradingState::Running, t(0)));
        assert!(!look_due(Some(&looked), TradingState::Running, t(101)));
        assert!(!look_due(Some(&looked), TradingState::Running, t(104)));
        assert!(look_due(Some(&looked), TradingState::Running, t(105)));
        assert!(look_due(Some(&looked), TradingState::StopEntry, t(101)));
        // A clock that went back is no reason to look, nor to panic.
        assert!(!look_due(Some(&looked), TradingState::Running, t(50)));
        let never = TradingStatus {
            declared_state: Some(TradingState::Running),
            ..TradingStatus::default()
        };
        assert!(look_due(Some(&never), TradingState::Running, t(0)));
    }

    #[test]
    fn the_call_is_the_declared_state_when_the_bot_is_in_another() {
        use TradingState::*;
        for declared in [Running, StopEntry, Stopped] {
            for observed in [Running, StopEntry, Stopped] {
                let call = correction(declared, observed);
                assert_eq!(
                    call.is_some(),
                    declared != observed,
                    "{declared} vs {observed}"
                );
                if let Some(state) = call {
                    assert_eq!(state, declared);
                }
            }
        }
        assert_eq!(control_path(StopEntry), "/api/v2/bot/stop-entry");
        assert_eq!(control_path(Stopped), "/api/v2/bot/stop");
        assert_eq!(control_path(Running), "/api/v2/bot/start");
        assert_eq!(from_api("stop_entry"), Some(StopEntry));
        assert_eq!(from_api("paused"), None);
    }

    #[test]
    fn the_apis_answers_parse_and_unknown_fields_are_ignored() {
        let balance: BalanceView = serde_json::from_value(serde_json::json!({
            "currency": "USDT", "starting_balance": "10000", "free": "9899.9", "in_trades": "100.1",
            "equity": "10001", "open_trades": 1,
            "currencies": [{"currency": "USDT", "free": "9899.9", "equity": "10001", "open_trades": 1, "extra": true}]
        }))
        .unwrap();
        assert_eq!(balance.open_trades, Some(1));
        let bot: BotView = serde_json::from_value(serde_json::json!({
            "state": "running", "updated_at": "2026-11-27T22:00:00Z",
            "daily_loss_halt": {"message": "daily loss limit reached", "since": "2026-11-27T21:00:00Z"}
        }))
        .unwrap();
        assert!(bot.daily_loss_halt.is_some());
        // A bot without the halt field (an older api) parses too.
        let old: BotView =
            serde_json::from_value(serde_json::json!({"state": "stopped", "updated_at": "x"}))
                .unwrap();
        assert_eq!(old.daily_loss_halt, None);
    }

    #[test]
    fn drift_is_corrected_and_recorded_a_spec_change_is_not_drift() {
        let previous = TradingStatus {
            declared_state: Some(TradingState::StopEntry),
            state: Some(TradingState::StopEntry),
            set_by: Some(SET_BY_OPERATOR.into()),
            ..TradingStatus::default()
        };
        // Someone pressed "start" in the dashboard: found running, set back to stop-entry.
        let look = Look {
            found: Some(bot("running")),
            applied: Some(TradingState::StopEntry),
            bot: Some(bot("stop_entry")),
            ..Look::default()
        };
        let (status, c) = next_trading_status(
            Some(&previous),
            TradingState::StopEntry,
            &look,
            Some(3),
            t(10),
        );
        assert_eq!(status.state, Some(TradingState::StopEntry));
        assert_eq!(status.set_by.as_deref(), Some(SET_BY_OPERATOR));
        assert_eq!(
            status.last_drift,
            Some(TradingDrift {
                found: TradingState::Running,
                at: Time(t(10))
            })
        );
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("True", reasons::STATE_APPLIED)
        );
        assert_eq!(c.observed_generation, Some(3));

        // The spec moved to Stopped: the call is no drift.
        let look = Look {
            found: Some(bot("stop_entry")),
            applied: Some(TradingState::Stopped),
            bot: Some(bot("stopped")),
            ..Look::default()
        };
        let (status, _) = next_trading_status(
            Some(&previous),
            TradingState::Stopped,
            &look,
            Some(4),
            t(20),
        );
        assert_eq!(status.last_drift, None);
        assert_eq!(status.state, Some(TradingState::Stopped));
    }

    #[test]
    fn an_unreachable_api_is_a_false_condition_and_keeps_the_last_figures() {
        let previous = TradingStatus {
            declared_state: Some(TradingState::Running),
            state: Some(TradingState::Running),
            open_trades: Some(2),
            profit: Some("12.5 USDT".into()),
            ..TradingStatus::default()
        };
        let look = Look {
            error: Some(Error::TradingApi {
                reason: reasons::API_UNREACHABLE,
                message: "GET /api/v2/bot: connection refused".into(),
            }),
            ..Look::default()
        };
        let (status, c) =
            next_trading_status(Some(&previous), TradingState::Running, &look, None, t(5));
        assert_eq!(status.open_trades, Some(2));
        assert_eq!(status.profit.as_deref(), Some("12.5 USDT"));
        assert_eq!(
            status.error.as_deref(),
            Some("GET /api/v2/bot: connection refused")
        );
        assert_eq!(status.last_observed, Some(Time(t(5))));
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", reasons::API_UNREACHABLE)
        );

        // The correction refused (say 401) while the bot is elsewhere: External, False.
        let look = Look {
            found: Some(bot("stopped")),
            bot: Some(bot("stopped")),
            error: Some(Error::TradingApi {
                reason: reasons::API_TOKEN_REJECTED,
                message: "POST /api/v2/bot/start: 401".into(),
            }),
            ..Look::default()
        };
        let (status, c) =
            next_trading_status(Some(&previous), TradingState::Running, &look, None, t(6));
        assert_eq!(status.set_by.as_deref(), Some(SET_BY_EXTERNAL));
        assert_eq!(status.state, Some(TradingState::Stopped));
        assert_eq!(c.reason, reasons::API_TOKEN_REJECTED);
    }

    #[test]
    fn figures_per_currency_and_the_profit_column() {
        let look = Look {
            found: Some(bot("running")),
            bot: Some(bot("running")),
            balance: Some(
                serde_json::from_value(serde_json::json!({
                    "currency": "USDT", "open_trades": 3,
                    "currencies": [
                        {"currency": "USDT", "free": "9700", "equity": "10010.5", "open_trades": 2},
                        {"currency": "BTC", "free": "0.5", "equity": "0.51", "open_trades": 1}
                    ]
                }))
                .unwrap(),
            ),
            profit: Some(
                serde_json::from_value(serde_json::json!({
                    "total": "10.5",
                    "currencies": [
                        {"currency": "USDT", "total": "10.5"},
                        {"currency": "BTC", "total": "0.01"},
                        {"currency": "EUR", "total": "0"}
                    ]
                }))
                .unwrap(),
            ),
            last_bot_tick: last_bot_tick(&[
                ComponentView {
                    role: "bot".into(),
                    last_tick_at: "2026-11-27T22:00:03Z".into(),
                },
                ComponentView {
                    role: "bot".into(),
                    last_tick_at: "2026-11-27T22:00:01.5Z".into(),
                },
                ComponentView {
                    role: "strategy".into(),
                    last_tick_at: "2026-11-27T22:00:09Z".into(),
                },
            ]),
            ..Look::default()
        };
        let (status, c) = next_trading_status(None, TradingState::Running, &look, None, t(0));
        assert_eq!(status.open_trades, Some(3));
        assert_eq!(status.profit.as_deref(), Some("10.5 USDT"));
        assert_eq!(
            status.last_bot_tick.as_deref(),
            Some("2026-11-27T22:00:03Z")
        );
        let by_currency: Vec<_> = status
            .currencies
            .iter()
            .map(|c| {
                (
                    c.currency.as_str(),
                    c.equity.as_deref(),
                    c.profit.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            by_currency,
            [
                ("USDT", Some("10010.5"), Some("10.5")),
                ("BTC", Some("0.51"), Some("0.01")),
                ("EUR", None, Some("0"))
            ]
        );
        assert_eq!(c.reason, reasons::STATE_IN_SYNC);
        assert_eq!(status.set_by.as_deref(), Some(SET_BY_OPERATOR));
    }

    #[test]
    fn events_for_a_halt_its_end_and_a_correction() {
        let halted = BotView {
            daily_loss_halt: Some(HaltView {
                message: "daily loss limit reached: realised -510 USDT today, limit 500".into(),
                since: None,
            }),
            ..bot("running")
        };
        let look = Look {
            found: Some(halted.clone()),
            bot: Some(halted),
            ..Look::default()
        };
        let (halted_status, _) =
            next_trading_status(None, TradingState::Running, &look, None, t(0));
        let events = trading_events(None, &halted_status, &look);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].reason, "DailyLossHalt");
        assert!(events[0].warning);
        assert!(
            events[0].note.contains("realised -510 USDT"),
            "{}",
            events[0].note
        );
        // The same halt seen again: no new event.
        assert!(trading_events(Some(&halted_status), &halted_status, &look).is_empty());

        let look = Look {
            found: Some(bot("stopped")),
            applied: Some(TradingState::Running),
            bot: Some(bot("running")),
            ..Look::default()
        };
        let (resumed, _) = next_trading_status(
            Some(&halted_status),
            TradingState::Running,
            &look,
            None,
            t(9),
        );
        let names: Vec<_> = trading_events(Some(&halted_status), &resumed, &look)
            .into_iter()
            .map(|e| e.reason)
            .collect();
        assert_eq!(names, ["BotStateApplied", "TradingResumed"]);

        // A failed look is no resumption.
        let failed = Look {
            error: Some(Error::TradingApi {
                reason: reasons::API_UNREACHABLE,
                message: "down".into(),
            }),
            ..Look::default()
        };
        let (kept, _) = next_trading_status(
            Some(&halted_status),
            TradingState::Running,
            &failed,
            None,
            t(9),
        );
        assert!(trading_events(Some(&halted_status), &kept, &failed).is_empty());
    }
}
