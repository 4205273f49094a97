//! What the dashboard plots and tabulates, computed from stored rows: indicator lines aligned to
//! candles, the realised equity curve, and per-strategy statistics with drawdown. Pure functions.

use rust_decimal::Decimal;
use serde::Serialize;
use utoipa::ToSchema;

use super::Invalid;
use super::indicators::{ema, rsi, sma};
use super::strategy::{MAX_PERIOD, StrategyParams};

/// An indicator line to draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IndicatorSpec {
    Sma(u32),
    Ema(u32),
    Rsi(u32),
}

impl IndicatorSpec {
    /// `sma`, `ema` or `rsi`.
    pub fn kind(self) -> &'static str {
        match self {
            IndicatorSpec::Sma(_) => "sma",
            IndicatorSpec::Ema(_) => "ema",
            IndicatorSpec::Rsi(_) => "rsi",
        }
    }

    pub fn period(self) -> u32 {
        match self {
            IndicatorSpec::Sma(p) | IndicatorSpec::Ema(p) | IndicatorSpec::Rsi(p) => p,
        }
    }

    /// `SMA(20)`, `EMA(12)`, `RSI(14)`.
    pub fn label(self) -> String {
        match self {
            IndicatorSpec::Sma(p) => format!("SMA({p})"),
            IndicatorSpec::Ema(p) => format!("EMA({p})"),
            IndicatorSpec::Rsi(p) => format!("RSI({p})"),
        }
    }

    /// Candles read before the first plotted one. The SMA needs `period - 1`; EMA and Wilder RSI
    /// depend on where they start, so they get three periods, like the strategies' own lookback
    /// (`StrategyParams::lookback`), and the plotted line agrees with what the strategies saw.
    pub fn warmup(self) -> usize {
        match self {
            IndicatorSpec::Sma(p) => p as usize - 1,
            IndicatorSpec::Ema(p) => 3 * p as usize,
            IndicatorSpec::Rsi(p) => 3 * p as usize + 1,
        }
    }

    /// The values over `closes`, aligned to them: `None` where the indicator is not defined yet.
    pub fn values(self, closes: &[f64]) -> Vec<Option<f64>> {
        let raw = match self {
            IndicatorSpec::Sma(p) => sma(closes, p as usize),
            IndicatorSpec::Ema(p) => ema(closes, p as usize),
            IndicatorSpec::Rsi(p) => rsi(closes, p as usize),
        };
        let missing = closes.len() - raw.len();
        std::iter::repeat_n(None, missing)
            .chain(raw.into_iter().map(Some))
            .collect()
    }
}

/// Parses a query list such as `20,50` for one kind; errors name the parameter.
pub fn parse_periods(
    field: &str,
    text: &str,
    make: fn(u32) -> IndicatorSpec,
) -> Result<Vec<IndicatorSpec>, Invalid> {
    text.split(',')
        .filter(|part| !part.trim().is_empty())
        .map(|part| match part.trim().parse::<u32>() {
            Ok(p) if (1..=MAX_PERIOD).contains(&p) => Ok(make(p)),
            _ => Err(Invalid::new(
                field,
                format!(
                    "must be a comma-separated list of periods between 1 and {MAX_PERIOD} (got `{}`)",
                    super::market::truncate(part.trim(), 20)
                ),
            )),
        })
        .collect()
}

/// The lines the strategies themselves compute, so the chart shows what they trade on.
pub fn specs_of_strategies<'a>(
    params: impl IntoIterator<Item = &'a StrategyParams>,
) -> Vec<IndicatorSpec> {
    let mut specs: Vec<IndicatorSpec> = params
        .into_iter()
        .flat_map(|p| match *p {
            StrategyParams::SmaCross(c) => {
                vec![IndicatorSpec::Sma(c.fast), IndicatorSpec::Sma(c.slow)]
            }
            StrategyParams::EmaCross(c) => {
                vec![IndicatorSpec::Ema(c.fast), IndicatorSpec::Ema(c.slow)]
            }
            StrategyParams::Rsi(r) => vec![IndicatorSpec::Rsi(r.period)],
        })
        .collect();
    specs.sort();
    specs.dedup();
    specs
}

/// Largest fall of cumulative profit from a previous high (starting at 0), as a positive amount.
pub fn max_drawdown(profits_in_order: impl IntoIterator<Item = Decimal>) -> Decimal {
    let mut cumulative = Decimal::ZERO;
    let mut peak = Decimal::ZERO;
    let mut worst = Decimal::ZERO;
    for profit in profits_in_order {
        cumulative += profit;
        peak = peak.max(cumulative);
        worst = worst.max(peak - cumulative);
    }
    worst
}

/// Closed-trade statistics of one strategy (or of manual trades).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct StrategyStats {
    /// Absent for manual trades (force-enter, POST /orders).
    pub strategy_id: Option<i64>,
    pub closed_trades: u64,
    pub winning_trades: u64,
    pub losing_trades: u64,
    /// Winning closed trades as a percentage of closed trades (0 without any).
    #[schema(value_type = String, example = "55.5556")]
    pub win_rate_pct: Decimal,
    /// Realised profit net of fees.
    #[schema(value_type = String)]
    pub profit: Decimal,
    /// Largest fall of cumulative realised profit from a previous high, in the quote currency.
    #[schema(value_type = String)]
    pub max_drawdown: Decimal,
}

/// Statistics per strategy from closed trades `(strategy, profit)` in closing order, grouped in
/// order of first appearance.
pub fn strategy_stats(closed_in_order: &[(Option<i64>, Decimal)]) -> Vec<StrategyStats> {
    let mut order: Vec<Option<i64>> = Vec::new();
    for (strategy, _) in closed_in_order {
        if !order.contains(strategy) {
            order.push(*strategy);
        }
    }
    order
        .into_iter()
        .map(|strategy| {
            let profits: Vec<Decimal> = closed_in_order
                .iter()
                .filter(|(s, _)| *s == strategy)
                .map(|(_, p)| *p)
                .collect();
            let closed = profits.len() as u64;
            let wins = profits
                .iter()
                .filter(|p| p.is_sign_positive() && !p.is_zero())
                .count() as u64;
            let losses = profits
                .iter()
                .filter(|p| p.is_sign_negative() && !p.is_zero())
                .count() as u64;
            let win_rate_pct = if closed == 0 {
                Decimal::ZERO
            } else {
                (Decimal::from(wins) * Decimal::ONE_HUNDRED / Decimal::from(closed)).round_dp(4)
            };
            StrategyStats {
                strategy_id: strategy,
                closed_trades: closed,
                winning_trades: wins,
                losing_trades: losses,
                win_rate_pct,
                profit: profits.iter().copied().sum(),
                max_drawdown: max_drawdown(profits.iter().copied()),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::strategy::{CrossParams, RsiParams};
    use rust_decimal::dec;

    #[test]
    fn drawdown_is_the_largest_fall_from_a_high() {
        assert_eq!(max_drawdown([]), dec!(0));
        assert_eq!(max_drawdown([dec!(5), dec!(3)]), dec!(0));
        // 10, 4 (fall 6), 12, 2 (fall 10), 3
        assert_eq!(
            max_drawdown([dec!(10), dec!(-6), dec!(8), dec!(-10), dec!(1)]),
            dec!(10)
        );
        // Losing from the start counts from 0.
        assert_eq!(max_drawdown([dec!(-2), dec!(-3), dec!(1)]), dec!(5));
    }

    #[test]
    fn stats_group_by_strategy_in_order_of_appearance() {
        let rows = [
            (Some(2), dec!(10)),
            (None, dec!(-1)),
            (Some(2), dec!(-4)),
            (Some(2), dec!(0)),
            (Some(2), dec!(3)),
        ];
        let stats = strategy_stats(&rows);
        assert_eq!(stats.len(), 2);
        assert_eq!(
            stats[0],
            StrategyStats {
                strategy_id: Some(2),
                closed_trades: 4,
                winning_trades: 2,
                losing_trades: 1,
                win_rate_pct: dec!(50),
                profit: dec!(9),
                max_drawdown: dec!(4),
            }
        );
        assert_eq!(stats[1].strategy_id, None);
        assert_eq!(stats[1].win_rate_pct, dec!(0));
        assert_eq!(stats[1].max_drawdown, dec!(1));
        assert_eq!(strategy_stats(&[]), vec![]);
    }

    #[test]
    fn indicator_values_align_with_closes() {
        let closes = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(
            IndicatorSpec::Sma(3).values(&closes),
            vec![None, None, Some(2.0), Some(3.0)]
        );
        assert_eq!(
            IndicatorSpec::Rsi(3).values(&closes),
            vec![None, None, None, Some(100.0)]
        );
        assert_eq!(IndicatorSpec::Ema(5).values(&closes), vec![None; 4]);
        assert_eq!(IndicatorSpec::Sma(3).warmup(), 2);
        assert_eq!(IndicatorSpec::Rsi(3).warmup(), 10);
        assert_eq!(IndicatorSpec::Ema(3).warmup(), 9);
    }

    #[test]
    fn periods_parse_and_name_the_field() {
        assert_eq!(
            parse_periods("sma", "20, 50,", IndicatorSpec::Sma).unwrap(),
            vec![IndicatorSpec::Sma(20), IndicatorSpec::Sma(50)]
        );
        assert_eq!(
            parse_periods("sma", "", IndicatorSpec::Sma).unwrap(),
            vec![]
        );
        let err = parse_periods("rsi", "14,x", IndicatorSpec::Rsi).unwrap_err();
        assert_eq!(err.field, "rsi");
        assert!(err.problem.contains("`x`"), "{err}");
        assert!(parse_periods("ema", "0", IndicatorSpec::Ema).is_err());
        assert!(parse_periods("ema", "501", IndicatorSpec::Ema).is_err());
    }

    #[test]
    fn strategies_give_their_own_lines_once() {
        let params = [
            StrategyParams::SmaCross(CrossParams { fast: 10, slow: 30 }),
            StrategyParams::SmaCross(CrossParams { fast: 10, slow: 20 }),
            StrategyParams::Rsi(RsiParams {
                period: 14,
                oversold: 30.0,
                overbought: 70.0,
            }),
        ];
        assert_eq!(
            specs_of_strategies(&params),
            vec![
                IndicatorSpec::Sma(10),
                IndicatorSpec::Sma(20),
                IndicatorSpec::Sma(30),
                IndicatorSpec::Rsi(14)
            ]
        );
    }
}
