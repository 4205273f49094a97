//! Closed-candle windows: what the strategy runner (and the backtest) evaluates a strategy on.
//! Gaps inside a window are filled forward with the previous close, as freqtrade does.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

use super::{Action, StrategyParams, Timeframe};

/// A close price as the indicators read it (`f64`). Stored prices are decimals; the backtest keeps
/// the same conversion precomputed (`f64` windows), so both read identical values.
pub trait ClosePrice: Copy {
    fn to_f64(self) -> f64;
}

impl ClosePrice for Decimal {
    fn to_f64(self) -> f64 {
        ToPrimitive::to_f64(&self).unwrap_or(f64::NAN)
    }
}

impl ClosePrice for f64 {
    fn to_f64(self) -> f64 {
        self
    }
}

/// Outcome of a strategy on the newest candle of a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowEvaluation {
    /// Fewer closed candles than the strategy reads.
    NotEnoughData,
    NoSignal,
    Signal {
        action: Action,
        reason: String,
    },
}

/// Evaluates `params` on the newest candle of `window` (closed candles, oldest first, at most
/// `params.lookback()` of them): the closes of the last `lookback` timeframe steps, gaps filled.
pub fn evaluate<P: ClosePrice>(
    params: &StrategyParams,
    window: &[(DateTime<Utc>, P)],
    timeframe: Timeframe,
) -> WindowEvaluation {
    let lookback = params.lookback();
    let closes = fill_forward(window, timeframe, lookback);
    if closes.len() < lookback {
        return WindowEvaluation::NotEnoughData;
    }
    match params.evaluate(&closes) {
        Some((action, reason)) => WindowEvaluation::Signal { action, reason },
        None => WindowEvaluation::NoSignal,
    }
}

/// The closes of the last `count` timeframe steps up to the newest candle of `window` (oldest
/// first), every missing candle replaced by the close before it. Shorter than `count` when the
/// window starts later.
pub fn fill_forward<P: ClosePrice>(
    window: &[(DateTime<Utc>, P)],
    timeframe: Timeframe,
    count: usize,
) -> Vec<f64> {
    let Some(&(newest, _)) = window.last() else {
        return Vec::new();
    };
    let step = timeframe.duration();
    let mut closes = Vec::with_capacity(count);
    let mut candles = window.iter().peekable();
    let mut carry = None;
    for back in (0..count).rev() {
        let Some(t) = i32::try_from(back)
            .ok()
            .and_then(|b| newest.checked_sub_signed(step * b))
        else {
            continue;
        };
        while let Some((_, close)) = candles.next_if(|(open_time, _)| *open_time <= t) {
            carry = Some(close.to_f64());
        }
        if let Some(close) = carry {
            closes.push(close);
        }
    }
    closes
}

/// First pair of consecutive candles further apart than one timeframe.
pub fn find_gap<P>(
    window: &[(DateTime<Utc>, P)],
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

    #[test]
    fn gaps_are_filled_forward() {
        let t = |m: i64| Utc.timestamp_opt(m * 60, 0).unwrap();
        let d = |n: i64| Decimal::from(n);
        let holed = [(t(0), d(10)), (t(1), d(11)), (t(4), d(14)), (t(5), d(15))];
        assert_eq!(
            fill_forward(&holed, Timeframe::M1, 6),
            [10.0, 11.0, 11.0, 11.0, 14.0, 15.0]
        );
        assert_eq!(fill_forward(&holed, Timeframe::M1, 3), [11.0, 14.0, 15.0]);
        assert_eq!(fill_forward(&holed, Timeframe::M1, 10).len(), 6);
    }
}
