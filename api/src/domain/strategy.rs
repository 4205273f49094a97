//! Strategy kinds, their parameters and how each turns closing prices into a buy or sell.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Invalid;
use super::indicators::{Cross, crosses_level, crossover, ema, rsi, sma};

/// Which indicator rule a strategy applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StrategyKind {
    /// Buy when the fast simple moving average crosses above the slow one, sell on the cross below.
    /// Params: `{"fast": 10, "slow": 30}`.
    SmaCross,
    /// The same with exponential moving averages. Params: `{"fast": 12, "slow": 26}`.
    EmaCross,
    /// Buy when RSI climbs back above `oversold`, sell when it falls back below `overbought`.
    /// Params: `{"period": 14, "oversold": 30, "overbought": 70}`.
    Rsi,
}

impl StrategyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StrategyKind::SmaCross => "sma_cross",
            StrategyKind::EmaCross => "ema_cross",
            StrategyKind::Rsi => "rsi",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "sma_cross" => Some(StrategyKind::SmaCross),
            "ema_cross" => Some(StrategyKind::EmaCross),
            "rsi" => Some(StrategyKind::Rsi),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrossParams {
    pub fast: u32,
    pub slow: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RsiParams {
    pub period: u32,
    pub oversold: f64,
    pub overbought: f64,
}

/// Validated parameters of one strategy kind.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StrategyParams {
    SmaCross(CrossParams),
    EmaCross(CrossParams),
    Rsi(RsiParams),
}

/// Longest moving-average or RSI period accepted.
pub const MAX_PERIOD: u32 = 500;

impl StrategyParams {
    /// Parses and checks `params` for `kind`; errors name the parameter (`params.slow: ...`).
    pub fn parse(kind: StrategyKind, params: &serde_json::Value) -> Result<Self, Invalid> {
        if !params.is_object() {
            return Err(Invalid::new("params", "must be a JSON object"));
        }
        let bad = |e: serde_json::Error| Invalid::new("params", e.to_string());
        match kind {
            StrategyKind::SmaCross | StrategyKind::EmaCross => {
                let p: CrossParams = serde_json::from_value(params.clone()).map_err(bad)?;
                if p.fast < 1 {
                    return Err(Invalid::new("params.fast", "must be at least 1"));
                }
                if p.slow > MAX_PERIOD {
                    return Err(Invalid::new(
                        "params.slow",
                        format!("must be at most {MAX_PERIOD}"),
                    ));
                }
                if p.fast >= p.slow {
                    return Err(Invalid::new(
                        "params.fast",
                        format!("must be less than slow ({} >= {})", p.fast, p.slow),
                    ));
                }
                Ok(if kind == StrategyKind::SmaCross {
                    StrategyParams::SmaCross(p)
                } else {
                    StrategyParams::EmaCross(p)
                })
            }
            StrategyKind::Rsi => {
                let p: RsiParams = serde_json::from_value(params.clone()).map_err(bad)?;
                if !(2..=MAX_PERIOD).contains(&p.period) {
                    return Err(Invalid::new(
                        "params.period",
                        format!("must be between 2 and {MAX_PERIOD}"),
                    ));
                }
                if !(p.oversold > 0.0 && p.oversold < 100.0) {
                    return Err(Invalid::new(
                        "params.oversold",
                        "must be between 0 and 100 (exclusive)",
                    ));
                }
                if !(p.overbought > 0.0 && p.overbought < 100.0) {
                    return Err(Invalid::new(
                        "params.overbought",
                        "must be between 0 and 100 (exclusive)",
                    ));
                }
                if p.oversold >= p.overbought {
                    return Err(Invalid::new(
                        "params.oversold",
                        format!(
                            "must be less than overbought ({} >= {})",
                            p.oversold, p.overbought
                        ),
                    ));
                }
                Ok(StrategyParams::Rsi(p))
            }
        }
    }

    pub fn kind(&self) -> StrategyKind {
        match self {
            StrategyParams::SmaCross(_) => StrategyKind::SmaCross,
            StrategyParams::EmaCross(_) => StrategyKind::EmaCross,
            StrategyParams::Rsi(_) => StrategyKind::Rsi,
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        match self {
            StrategyParams::SmaCross(p) | StrategyParams::EmaCross(p) => {
                serde_json::json!({"fast": p.fast, "slow": p.slow})
            }
            StrategyParams::Rsi(p) => serde_json::json!({
                "period": p.period, "oversold": p.oversold, "overbought": p.overbought
            }),
        }
    }

    /// How many closed candles one evaluation reads. Fixed per strategy, so evaluating the same
    /// candle twice gives the same answer. EMA and Wilder RSI are seeded the way TA-Lib seeds them
    /// (an SMA, the mean of the first changes) at the start of the window, then run long enough for
    /// that seed's weight to fade below [`SEED_WEIGHT`]: the values then agree with TA-Lib's over
    /// the whole history to within 1e-9 (a test compares them).
    pub fn lookback(&self) -> usize {
        match self {
            StrategyParams::SmaCross(p) => p.slow as usize + 1,
            StrategyParams::EmaCross(p) => {
                let alpha = 2.0 / (p.slow as f64 + 1.0);
                p.slow as usize + warm_up(1.0 - alpha) + 1
            }
            StrategyParams::Rsi(p) => {
                let n = p.period as f64;
                p.period as usize + 1 + warm_up((n - 1.0) / n) + 1
            }
        }
    }

    /// Evaluates the rule on the last candle of `closes` (oldest first, all closed). `None`: no
    /// signal, or not enough data.
    pub fn evaluate(&self, closes: &[f64]) -> Option<(Action, String)> {
        if closes.len() < self.lookback() {
            return None;
        }
        match self {
            StrategyParams::SmaCross(p) | StrategyParams::EmaCross(p) => {
                let (name, average): (&str, MovingAverage) =
                    if matches!(self, StrategyParams::SmaCross(_)) {
                        ("SMA", sma)
                    } else {
                        ("EMA", ema)
                    };
                let fast = average(closes, p.fast as usize);
                let slow = average(closes, p.slow as usize);
                let (pf, f) = last_two(&fast)?;
                let (ps, s) = last_two(&slow)?;
                let reason = |dir: &str| {
                    format!(
                        "{name}({}) crossed {dir} {name}({}): {f:.4} vs {s:.4}",
                        p.fast, p.slow
                    )
                };
                match crossover(pf, ps, f, s)? {
                    Cross::Up => Some((Action::Buy, reason("above"))),
                    Cross::Down => Some((Action::Sell, reason("below"))),
                }
            }
            StrategyParams::Rsi(p) => {
                let values = rsi(closes, p.period as usize);
                let (prev, current) = last_two(&values)?;
                if crosses_level(prev, current, p.oversold) == Some(Cross::Up) {
                    Some((
                        Action::Buy,
                        format!(
                            "RSI({}) rose above {}: {prev:.2} -> {current:.2}",
                            p.period, p.oversold
                        ),
                    ))
                } else if crosses_level(prev, current, p.overbought) == Some(Cross::Down) {
                    Some((
                        Action::Sell,
                        format!(
                            "RSI({}) fell below {}: {prev:.2} -> {current:.2}",
                            p.period, p.overbought
                        ),
                    ))
                } else {
                    None
                }
            }
        }
    }
}

/// Weight of a recursive indicator's seed that is small enough to ignore.
pub const SEED_WEIGHT: f64 = 1e-13;

/// Steps after which a weight that shrinks by `decay` per step is below [`SEED_WEIGHT`].
fn warm_up(decay: f64) -> usize {
    if decay <= 0.0 {
        0
    } else {
        (SEED_WEIGHT.ln() / decay.ln()).ceil() as usize
    }
}

/// `sma` or `ema`.
type MovingAverage = fn(&[f64], usize) -> Vec<f64>;

fn last_two(values: &[f64]) -> Option<(f64, f64)> {
    match values {
        [.., a, b] => Some((*a, *b)),
        _ => None,
    }
}

/// What a signal asks for: open a (long) trade or close it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Buy,
    Sell,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Buy => "buy",
            Action::Sell => "sell",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "buy" => Some(Action::Buy),
            "sell" => Some(Action::Sell),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn params_validation_names_the_parameter() {
        let ok = StrategyParams::parse(StrategyKind::SmaCross, &json!({"fast": 2, "slow": 5}));
        assert_eq!(
            ok,
            Ok(StrategyParams::SmaCross(CrossParams { fast: 2, slow: 5 }))
        );
        let err = StrategyParams::parse(StrategyKind::SmaCross, &json!({"fast": 5, "slow": 5}))
            .unwrap_err();
        assert_eq!(err.field, "params.fast");
        let err = StrategyParams::parse(StrategyKind::EmaCross, &json!({"fast": 5})).unwrap_err();
        assert!(err.problem.contains("missing field `slow`"), "{err}");
        let err = StrategyParams::parse(
            StrategyKind::EmaCross,
            &json!({"fast": 5, "slow": 9, "extra": 1}),
        )
        .unwrap_err();
        assert!(err.problem.contains("unknown field `extra`"), "{err}");
        let err = StrategyParams::parse(StrategyKind::EmaCross, &json!({"fast": -1, "slow": 9}))
            .unwrap_err();
        assert_eq!(err.field, "params");
        let err = StrategyParams::parse(
            StrategyKind::Rsi,
            &json!({"period": 14, "oversold": 70, "overbought": 30}),
        )
        .unwrap_err();
        assert_eq!(err.field, "params.oversold");
        let err = StrategyParams::parse(
            StrategyKind::Rsi,
            &json!({"period": 1, "oversold": 30, "overbought": 70}),
        )
        .unwrap_err();
        assert_eq!(err.field, "params.period");
        let err = StrategyParams::parse(StrategyKind::Rsi, &json!([1])).unwrap_err();
        assert_eq!(err.to_string(), "params: must be a JSON object");
    }

    #[test]
    fn sma_cross_signals_on_the_crossing_candle_only() {
        let p = StrategyParams::SmaCross(CrossParams { fast: 2, slow: 3 });
        assert_eq!(p.lookback(), 4);
        // SMA2 of the last two points: 10.5 then 13.5; SMA3: 10.33 then 12.0 -> no cross (above both times)
        assert_eq!(p.evaluate(&[10.0, 10.0, 11.0, 16.0]), None);
        // closes 12, 11, 10, 14: SMA2 11.5 -> 12.0 ; SMA3 11.0 -> 11.667 : fast above both -> none
        // closes 12, 12, 10, 14: SMA2 11 -> 12 ; SMA3 11.333 -> 12 : 12 > 12 false -> none
        assert_eq!(p.evaluate(&[12.0, 12.0, 10.0, 14.0]), None);
        // closes 12, 12, 10, 15: SMA2 11 -> 12.5 ; SMA3 11.333 -> 12.333 : up cross
        let (action, reason) = p.evaluate(&[12.0, 12.0, 10.0, 15.0]).unwrap();
        assert_eq!(action, Action::Buy);
        assert!(
            reason.starts_with("SMA(2) crossed above SMA(3)"),
            "{reason}"
        );
        // falling: closes 10, 10, 12, 8: SMA2 11 -> 10 ; SMA3 10.667 -> 10 -> 10 < 10 false -> none
        // closes 10, 10, 12, 7: SMA2 11 -> 9.5 ; SMA3 10.667 -> 9.667 -> down cross
        assert_eq!(
            p.evaluate(&[10.0, 10.0, 12.0, 7.0]).map(|s| s.0),
            Some(Action::Sell)
        );
        assert_eq!(p.evaluate(&[12.0, 10.0, 15.0]), None, "too few candles");
    }

    #[test]
    fn rsi_signals_on_recrossing_the_levels() {
        let p = StrategyParams::Rsi(RsiParams {
            period: 3,
            oversold: 50.0,
            overbought: 85.0,
        });
        // period + 1 candles for the seed, then 74 for its weight to fall below 1e-13 ((2/3)^74),
        // and one more for the previous value.
        assert_eq!(p.lookback(), 79);
        // Changes 0 ... 0 +1 +1 -1 +2 +1 -2. By hand (Wilder, period 3): RSI 50, 50, 100, 100,
        // 52.63, 80.43, 86.41, 45.08. The last two cross 85 downwards -> sell.
        let mut closes = vec![44.0; p.lookback() - 7];
        closes.extend([44.0, 45.0, 46.0, 45.0, 47.0, 48.0, 46.0]);
        let (action, _) = p.evaluate(&closes).unwrap();
        assert_eq!(action, Action::Sell);
    }
}
