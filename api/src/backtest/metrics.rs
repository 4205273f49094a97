//! The figures of a backtest, from its closed trades and its equity curve. Pure functions,
//! unit-tested on hand-computed cases.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

/// Days in a year for annualising daily Sharpe and Sortino ratios (crypto trades every day; the
/// convention freqtrade uses too).
pub const DAYS_PER_YEAR: f64 = 365.0;

/// Fraction of closed trades with a positive profit; `None` without closed trades.
pub fn win_rate(profits: &[Decimal]) -> Option<f64> {
    if profits.is_empty() {
        return None;
    }
    let wins = profits.iter().filter(|p| **p > Decimal::ZERO).count();
    Some(wins as f64 / profits.len() as f64)
}

/// Gross profit over gross loss; `None` when nothing was lost (undefined, not infinite).
pub fn profit_factor(profits: &[Decimal]) -> Option<f64> {
    let (gains, losses) = profits
        .iter()
        .fold((Decimal::ZERO, Decimal::ZERO), |(g, l), p| {
            if *p > Decimal::ZERO {
                (g.saturating_add(*p), l)
            } else {
                (g, l.saturating_sub(*p))
            }
        });
    if losses.is_zero() {
        return None;
    }
    Some(gains.to_f64()? / losses.to_f64()?)
}

/// The largest fall of the equity from a previous peak.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Drawdown {
    /// As a fraction of that peak (0.25: a quarter of the equity was lost).
    pub fraction: f64,
    /// In the quote currency.
    pub absolute: Decimal,
}

/// Maximum drawdown of an equity curve (its deepest fall relative to the running peak).
pub fn max_drawdown(equity: &[Decimal]) -> Drawdown {
    let mut peak: Option<Decimal> = None;
    let mut worst = Drawdown::default();
    for &value in equity {
        let top = peak.map_or(value, |p| p.max(value));
        peak = Some(top);
        let fall = top.saturating_sub(value);
        if fall > worst.absolute {
            let fraction = if top > Decimal::ZERO {
                fall.to_f64().unwrap_or(0.0) / top.to_f64().unwrap_or(f64::INFINITY)
            } else {
                0.0
            };
            worst = Drawdown {
                fraction,
                absolute: fall,
            };
        }
    }
    worst
}

/// Returns from one UTC day's closing equity to the next, starting from `starting` (the equity
/// before the first point). Days without a point carry the previous equity (a return of 0).
pub fn daily_returns(starting: Decimal, curve: &[(DateTime<Utc>, Decimal)]) -> Vec<f64> {
    let mut closing: BTreeMap<NaiveDate, Decimal> = BTreeMap::new();
    for (t, value) in curve {
        closing.insert(t.date_naive(), *value);
    }
    let (Some(first), Some(last)) = (
        closing.keys().next().copied(),
        closing.keys().next_back().copied(),
    ) else {
        return Vec::new();
    };
    let mut previous = starting.to_f64().unwrap_or(0.0);
    let mut returns = Vec::new();
    let mut day = first;
    while day <= last {
        let value = closing
            .get(&day)
            .and_then(|v| v.to_f64())
            .unwrap_or(previous);
        if previous > 0.0 {
            returns.push(value / previous - 1.0);
        }
        previous = value;
        match day.succ_opt() {
            Some(next) => day = next,
            None => break,
        }
    }
    returns
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// Annualised Sharpe ratio of daily returns (risk-free rate 0, sample standard deviation); `None`
/// with fewer than two returns or no variation.
pub fn sharpe(returns: &[f64]) -> Option<f64> {
    if returns.len() < 2 {
        return None;
    }
    let m = mean(returns);
    let variance =
        returns.iter().map(|r| (r - m).powi(2)).sum::<f64>() / (returns.len() - 1) as f64;
    let deviation = variance.sqrt();
    (deviation > 0.0).then(|| m / deviation * DAYS_PER_YEAR.sqrt())
}

/// Annualised Sortino ratio: the mean daily return over the downside deviation (root mean square
/// of the negative returns, over all days); `None` with fewer than two returns or no losing day.
pub fn sortino(returns: &[f64]) -> Option<f64> {
    if returns.len() < 2 {
        return None;
    }
    let downside =
        (returns.iter().map(|r| r.min(0.0).powi(2)).sum::<f64>() / returns.len() as f64).sqrt();
    (downside > 0.0).then(|| mean(returns) / downside * DAYS_PER_YEAR.sqrt())
}

/// At most `max` points of a curve, evenly spaced, always keeping the first and the last (what is
/// stored and served; the figures are computed on the whole curve).
pub fn thin<T: Clone>(points: &[T], max: usize) -> Vec<T> {
    if points.len() <= max || max < 2 {
        return points.to_vec();
    }
    let last = points.len() - 1;
    (0..max)
        .map(|i| points[i * last / (max - 1)].clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use rust_decimal::dec;

    #[test]
    fn win_rate_and_profit_factor_by_hand() {
        let profits = [dec!(10), dec!(-5), dec!(20), dec!(-10), dec!(0)];
        // 2 wins out of 5; gains 30, losses 15 -> 2.0
        assert_eq!(win_rate(&profits), Some(0.4));
        assert_eq!(profit_factor(&profits), Some(2.0));
        assert_eq!(win_rate(&[]), None);
        assert_eq!(profit_factor(&[dec!(1)]), None);
    }

    #[test]
    fn drawdown_by_hand() {
        // Peak 120, trough 90: 30 = 25 %; the later fall 130 -> 110 is only 20 (15.4 %).
        let curve = [
            dec!(100),
            dec!(120),
            dec!(90),
            dec!(110),
            dec!(130),
            dec!(110),
        ];
        let d = max_drawdown(&curve);
        assert_eq!(d.absolute, dec!(30));
        assert!((d.fraction - 0.25).abs() < 1e-12, "{d:?}");
        assert_eq!(max_drawdown(&[dec!(1), dec!(2)]), Drawdown::default());
    }

    #[test]
    fn daily_returns_carry_missing_days() {
        let day = |d: u32, h: u32| Utc.with_ymd_and_hms(2025, 1, d, h, 0, 0).unwrap();
        let curve = [
            (day(1, 1), dec!(105)),
            (day(1, 23), dec!(110)),
            // 2 January: no point -> 110 again
            (day(3, 12), dec!(99)),
        ];
        let r = daily_returns(dec!(100), &curve);
        assert_eq!(r.len(), 3);
        assert!((r[0] - 0.10).abs() < 1e-12);
        assert_eq!(r[1], 0.0);
        assert!((r[2] - (99.0 / 110.0 - 1.0)).abs() < 1e-12);
    }

    #[test]
    fn sharpe_and_sortino_by_hand() {
        // Returns 0.02, -0.01, 0.02, -0.01: mean 0.005; sample variance
        // 4 * 0.015^2 / 3 = 0.0003, deviation 0.017320508; Sharpe 0.288675 * sqrt(365).
        let r = [0.02, -0.01, 0.02, -0.01];
        let expected_sharpe = 0.005 / 0.0003f64.sqrt() * 365f64.sqrt();
        assert!((sharpe(&r).unwrap() - expected_sharpe).abs() < 1e-9);
        // Downside: sqrt((0.0001 + 0.0001) / 4) = 0.0070710678; 0.005 / that * sqrt(365).
        let expected_sortino = 0.005 / 0.00005f64.sqrt() * 365f64.sqrt();
        assert!((sortino(&r).unwrap() - expected_sortino).abs() < 1e-9);
        assert_eq!(sharpe(&[0.01, 0.01]), None, "no variation");
        assert_eq!(sortino(&[0.01, 0.02]), None, "no losing day");
        assert_eq!(sharpe(&[0.01]), None);
    }

    #[test]
    fn thinning_keeps_both_ends() {
        let points: Vec<u32> = (0..=100).collect();
        assert_eq!(thin(&points, 5), [0, 25, 50, 75, 100]);
        assert_eq!(thin(&points[..3], 5), [0, 1, 2]);
    }
}
