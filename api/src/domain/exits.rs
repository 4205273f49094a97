//! Exits that protect capital, freqtrade's model: a stop-loss, a trailing stop and a minimal-ROI
//! table by trade age. Set per strategy, copied onto each trade it opens, and overridable per
//! trade; the bot evaluates them every tick against the latest price, apart from strategy signals.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Invalid;

/// A trade's protective exits; all optional (`{}`: none).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Exits {
    /// Exit when the price falls this fraction below the entry price (`"0.05"`: 5 % below).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "0.05")]
    pub stop_loss: Option<Decimal>,
    /// Exit when the price falls this fraction below the highest price since entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "0.03")]
    pub trailing_stop: Option<Decimal>,
    /// Trade age in minutes → profit fraction that is enough to exit from that age on, e.g.
    /// `{"0": "0.04", "30": "0.02", "60": "0"}`: 4 % at once, 2 % after half an hour, break-even
    /// after an hour. The row with the largest age not above the trade's age applies.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(value_type = Object, example = json!({"0": "0.04", "30": "0.02", "60": "0"}))]
    pub minimal_roi: BTreeMap<u32, Decimal>,
}

/// Largest age of a minimal-ROI row (a year), and most rows.
pub const MAX_ROI_MINUTES: u32 = 525_600;
pub const MAX_ROI_ROWS: usize = 50;

impl Exits {
    pub fn is_empty(&self) -> bool {
        self.stop_loss.is_none() && self.trailing_stop.is_none() && self.minimal_roi.is_empty()
    }

    /// Checks the fractions; errors name the field (`exits.stop_loss: ...`).
    pub fn validate(&self) -> Result<(), Invalid> {
        let fraction = |name: &str, value: Option<Decimal>| match value {
            Some(v) if v <= Decimal::ZERO || v >= Decimal::ONE => Err(Invalid::new(
                format!("exits.{name}"),
                format!("must be between 0 and 1, exclusive (got {v})"),
            )),
            _ => Ok(()),
        };
        fraction("stop_loss", self.stop_loss)?;
        fraction("trailing_stop", self.trailing_stop)?;
        if self.minimal_roi.len() > MAX_ROI_ROWS {
            return Err(Invalid::new(
                "exits.minimal_roi",
                format!("at most {MAX_ROI_ROWS} rows"),
            ));
        }
        for (&minutes, &roi) in &self.minimal_roi {
            if minutes > MAX_ROI_MINUTES {
                return Err(Invalid::new(
                    format!("exits.minimal_roi.{minutes}"),
                    format!("the age must be at most {MAX_ROI_MINUTES} minutes"),
                ));
            }
            if roi < Decimal::ZERO || roi > Decimal::ONE_HUNDRED {
                return Err(Invalid::new(
                    format!("exits.minimal_roi.{minutes}"),
                    format!("must be between 0 and 100 (got {roi})"),
                ));
            }
        }
        Ok(())
    }
}

/// Why a trade was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExitReason {
    /// A strategy's sell signal.
    ExitSignal,
    /// A person's exit (force-exit, POST /orders).
    ForceExit,
    StopLoss,
    TrailingStop,
    /// The minimal-ROI table's profit target for the trade's age.
    Roi,
}

impl ExitReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ExitReason::ExitSignal => "exit_signal",
            ExitReason::ForceExit => "force_exit",
            ExitReason::StopLoss => "stop_loss",
            ExitReason::TrailingStop => "trailing_stop",
            ExitReason::Roi => "roi",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            ExitReason::ExitSignal,
            ExitReason::ForceExit,
            ExitReason::StopLoss,
            ExitReason::TrailingStop,
            ExitReason::Roi,
        ]
        .into_iter()
        .find(|r| r.as_str() == text)
    }
}

/// Where an open trade stands against the latest price.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub entry_price: Decimal,
    /// Highest price seen since entry, this one included (see [`peak`]).
    pub peak_price: Decimal,
    pub price: Decimal,
    pub age_minutes: i64,
}

/// The highest price since entry after seeing `price`.
pub fn peak(previous: Option<Decimal>, entry_price: Decimal, price: Decimal) -> Decimal {
    previous.unwrap_or(entry_price).max(entry_price).max(price)
}

/// Whether `exits` close the position now, and why: the stop-loss first, then the trailing stop,
/// then the ROI target of the trade's age. Profit is the price move from entry (before fees).
/// All arithmetic is checked: out-of-range numbers trigger nothing rather than panic.
pub fn decide(exits: &Exits, p: &Position) -> Option<ExitReason> {
    if p.entry_price <= Decimal::ZERO {
        return None;
    }
    let below = |reference: Decimal, fraction: Decimal| -> bool {
        Decimal::ONE
            .checked_sub(fraction)
            .and_then(|f| reference.checked_mul(f))
            .is_some_and(|limit| p.price <= limit)
    };
    if let Some(stop) = exits.stop_loss
        && below(p.entry_price, stop)
    {
        return Some(ExitReason::StopLoss);
    }
    if let Some(trail) = exits.trailing_stop
        && below(p.peak_price, trail)
    {
        return Some(ExitReason::TrailingStop);
    }
    let age = u32::try_from(p.age_minutes.max(0)).unwrap_or(u32::MAX);
    if let Some((_, &target)) = exits.minimal_roi.range(..=age).next_back() {
        let profit = p
            .price
            .checked_sub(p.entry_price)
            .and_then(|gain| gain.checked_div(p.entry_price));
        if profit.is_some_and(|profit| profit >= target) {
            return Some(ExitReason::Roi);
        }
    }
    None
}

/// One look at an open trade against the latest price: its new peak, and the exit it triggers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watch {
    pub peak_price: Decimal,
    pub exit: Option<ExitReason>,
}

/// What the bot's protective-exit pass (and the backtest) does with one open trade at `now`:
/// raise its peak with `price`, then [`decide`] at its age in whole minutes.
pub fn watch(
    exits: &Exits,
    entry_price: Decimal,
    previous_peak: Option<Decimal>,
    opened_at: chrono::DateTime<chrono::Utc>,
    price: Decimal,
    now: chrono::DateTime<chrono::Utc>,
) -> Watch {
    let peak_price = peak(previous_peak, entry_price, price);
    let position = Position {
        entry_price,
        peak_price,
        price,
        age_minutes: (now - opened_at).num_minutes(),
    };
    Watch {
        peak_price,
        exit: decide(exits, &position),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::dec;

    fn at(price: Decimal, peak_price: Decimal, age_minutes: i64) -> Position {
        Position {
            entry_price: dec!(100),
            peak_price,
            price,
            age_minutes,
        }
    }

    #[test]
    fn stop_loss_trailing_stop_and_roi_by_hand() {
        let exits: Exits = serde_json::from_value(serde_json::json!({
            "stop_loss": "0.05", "trailing_stop": "0.03",
            "minimal_roi": {"0": "0.10", "30": "0.04", "60": 0}
        }))
        .unwrap();
        exits.validate().unwrap();
        // 95 is 5 % below the entry: stop-loss (before the trailing stop, 2 % below 97).
        assert_eq!(
            decide(&exits, &at(dec!(95), dec!(100), 1)),
            Some(ExitReason::StopLoss)
        );
        // Just above the stop-loss, but 3 % below the peak: the trailing stop.
        assert_eq!(
            decide(&exits, &at(dec!(95.01), dec!(100), 1)),
            Some(ExitReason::TrailingStop)
        );
        // Up to 108, back to 104.76 (3 % below 108): trailing stop.
        assert_eq!(
            decide(&exits, &at(dec!(104.76), dec!(108), 10)),
            Some(ExitReason::TrailingStop)
        );
        assert_eq!(decide(&exits, &at(dec!(104.77), dec!(108), 10)), None);
        // +9 % after 10 minutes is below the 10 % target; after 30 minutes 4 % is enough.
        assert_eq!(decide(&exits, &at(dec!(109), dec!(109), 10)), None);
        assert_eq!(
            decide(&exits, &at(dec!(110), dec!(110), 10)),
            Some(ExitReason::Roi)
        );
        assert_eq!(
            decide(&exits, &at(dec!(104), dec!(104), 30)),
            Some(ExitReason::Roi)
        );
        assert_eq!(decide(&exits, &at(dec!(103.99), dec!(104), 59)), None);
        // After an hour, break-even is enough.
        assert_eq!(
            decide(&exits, &at(dec!(100), dec!(101), 61)),
            Some(ExitReason::Roi)
        );
        assert_eq!(
            decide(&Exits::default(), &at(dec!(1), dec!(100), 1000)),
            None
        );
    }

    #[test]
    fn peaks_only_rise() {
        assert_eq!(peak(None, dec!(100), dec!(90)), dec!(100));
        assert_eq!(peak(Some(dec!(120)), dec!(100), dec!(110)), dec!(120));
        assert_eq!(peak(Some(dec!(120)), dec!(100), dec!(130)), dec!(130));
    }

    #[test]
    fn bad_exits_name_their_field() {
        let bad = |json: serde_json::Value| {
            serde_json::from_value::<Exits>(json)
                .map_err(|e| e.to_string())
                .and_then(|e| e.validate().map_err(|e| e.to_string()))
                .unwrap_err()
        };
        assert!(bad(serde_json::json!({"stop_loss": "1.5"})).starts_with("exits.stop_loss"));
        assert!(bad(serde_json::json!({"trailing_stop": 0})).starts_with("exits.trailing_stop"));
        assert!(
            bad(serde_json::json!({"minimal_roi": {"10": "-1"}}))
                .starts_with("exits.minimal_roi.10")
        );
        assert!(bad(serde_json::json!({"stoploss": "0.1"})).contains("unknown field"));
        // Out-of-range prices decide nothing rather than panic.
        let exits = Exits {
            stop_loss: Some(dec!(0.5)),
            ..Exits::default()
        };
        let huge = Position {
            entry_price: Decimal::MAX,
            peak_price: Decimal::MAX,
            price: Decimal::MAX,
            age_minutes: i64::MAX,
        };
        assert_eq!(decide(&exits, &huge), None);
    }
}
