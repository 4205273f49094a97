//! Technical indicators over closing prices, oldest first. Each returns one value per position where
//! the indicator is defined, so the last output always belongs to the last input.

/// Simple moving average: `out[k]` is the mean of `values[k .. k + period]`.
/// Length `values.len() - period + 1` (empty when there are fewer values than `period`).
pub fn sma(values: &[f64], period: usize) -> Vec<f64> {
    if period == 0 || values.len() < period {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(values.len() - period + 1);
    let mut sum: f64 = values[..period].iter().sum();
    out.push(sum / period as f64);
    for i in period..values.len() {
        sum += values[i] - values[i - period];
        out.push(sum / period as f64);
    }
    out
}

/// Exponential moving average with `alpha = 2 / (period + 1)`, seeded with the SMA of the first
/// `period` values. Same length as [`sma`].
pub fn ema(values: &[f64], period: usize) -> Vec<f64> {
    if period == 0 || values.len() < period {
        return Vec::new();
    }
    let alpha = 2.0 / (period as f64 + 1.0);
    let mut out = Vec::with_capacity(values.len() - period + 1);
    let mut current = values[..period].iter().sum::<f64>() / period as f64;
    out.push(current);
    for &value in &values[period..] {
        current = alpha * value + (1.0 - alpha) * current;
        out.push(current);
    }
    out
}

/// Relative Strength Index with Wilder's smoothing. The first value averages the first `period`
/// changes; later ones smooth with `avg = (avg * (period - 1) + change) / period`.
/// Length `values.len() - period` (empty with `period` or fewer values).
pub fn rsi(values: &[f64], period: usize) -> Vec<f64> {
    if period == 0 || values.len() <= period {
        return Vec::new();
    }
    let mut gain = 0.0;
    let mut loss = 0.0;
    for w in values[..=period].windows(2) {
        let change = w[1] - w[0];
        if change > 0.0 {
            gain += change;
        } else {
            loss -= change;
        }
    }
    let n = period as f64;
    let (mut avg_gain, mut avg_loss) = (gain / n, loss / n);
    let mut out = Vec::with_capacity(values.len() - period);
    out.push(rsi_value(avg_gain, avg_loss));
    for w in values[period..].windows(2) {
        let change = w[1] - w[0];
        avg_gain = (avg_gain * (n - 1.0) + change.max(0.0)) / n;
        avg_loss = (avg_loss * (n - 1.0) + (-change).max(0.0)) / n;
        out.push(rsi_value(avg_gain, avg_loss));
    }
    out
}

fn rsi_value(avg_gain: f64, avg_loss: f64) -> f64 {
    if avg_loss == 0.0 {
        // No losses: maximal strength; a flat series is neutral.
        if avg_gain == 0.0 { 50.0 } else { 100.0 }
    } else {
        100.0 - 100.0 / (1.0 + avg_gain / avg_loss)
    }
}

/// Direction of a crossing of line `a` over line `b`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cross {
    /// `a` was at or below `b` and is now above it.
    Up,
    /// `a` was at or above `b` and is now below it.
    Down,
}

/// Two line values closer than this, relative to the larger, are equal: float rounding, not a
/// difference. Decimal prices make exact ties real (SMA(10) and SMA(30) of 4-decimal prices meet
/// exactly now and then), and summing them in `f64` can put either line a unit in the last place
/// above the other, which would be a crossing that is not there. The smallest real gap between
/// two averages of 8-decimal prices is far above this on any price below 10,000
/// (tests/bench/freqtrade/README.md: the tie freqtrade's rolling mean and ours saw differently).
pub const TIE: f64 = 1e-12;

/// Where `a` stands against `b`, ties within [`TIE`] counted equal; `None` with a NaN.
fn compare(a: f64, b: f64) -> Option<std::cmp::Ordering> {
    if (a - b).abs() <= TIE * a.abs().max(b.abs()) {
        Some(std::cmp::Ordering::Equal)
    } else {
        a.partial_cmp(&b)
    }
}

/// Detects a crossing between two consecutive points of two lines: `a` at or below `b`, then
/// above (or at or above, then below). Values within [`TIE`] of each other are equal.
pub fn crossover(prev_a: f64, prev_b: f64, a: f64, b: f64) -> Option<Cross> {
    use std::cmp::Ordering::{Greater, Less};
    let (before, now) = (compare(prev_a, prev_b)?, compare(a, b)?);
    if before != Greater && now == Greater {
        Some(Cross::Up)
    } else if before != Less && now == Less {
        Some(Cross::Down)
    } else {
        None
    }
}

/// Detects `line` crossing the constant `level`.
pub fn crosses_level(prev: f64, current: f64, level: f64) -> Option<Cross> {
    crossover(prev, level, current, level)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(actual: &[f64], expected: &[f64]) {
        assert_eq!(actual.len(), expected.len(), "{actual:?} vs {expected:?}");
        for (a, e) in actual.iter().zip(expected) {
            assert!((a - e).abs() < 1e-4, "{actual:?} vs {expected:?}");
        }
    }

    #[test]
    fn sma_by_hand() {
        close(&sma(&[1.0, 2.0, 3.0, 4.0, 5.0], 3), &[2.0, 3.0, 4.0]);
        close(&sma(&[10.0, 20.0], 2), &[15.0]);
        assert!(sma(&[1.0], 2).is_empty());
        assert!(sma(&[1.0], 0).is_empty());
    }

    #[test]
    fn ema_by_hand() {
        // alpha = 0.5, seed = (1+2+3)/3 = 2, then 0.5*4+0.5*2 = 3, ...
        close(
            &ema(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 3),
            &[2.0, 3.0, 4.0, 5.0],
        );
        // alpha = 2/3, seed 10.5; 2/3*12 + 1/3*10.5 = 11.5; 2/3*11 + 1/3*11.5 = 11.1667;
        // 2/3*13 + 1/3*11.1667 = 12.3889
        close(
            &ema(&[10.0, 11.0, 12.0, 11.0, 13.0], 2),
            &[10.5, 11.5, 11.166_667, 12.388_889],
        );
    }

    #[test]
    fn rsi_wilder_by_hand() {
        // changes +1 +1 -1 | +2 +1 -2
        // first: gain 2/3, loss 1/3, RS 2 -> 66.667
        // +2: gain (2/3*2+2)/3 = 1.1111, loss 0.2222, RS 5 -> 83.333
        // +1: gain 1.074074, loss 0.148148, RS 7.25 -> 87.879
        // -2: gain 0.716049, loss 0.765432, RS 0.935484 -> 48.333
        close(
            &rsi(&[44.0, 45.0, 46.0, 45.0, 47.0, 48.0, 46.0], 3),
            &[66.666_667, 83.333_333, 87.878_788, 48.333_333],
        );
        close(&rsi(&[1.0, 2.0, 3.0], 2), &[100.0]);
        close(&rsi(&[3.0, 2.0, 1.0], 2), &[0.0]);
        close(&rsi(&[5.0, 5.0, 5.0], 2), &[50.0]);
        assert!(rsi(&[1.0, 2.0], 2).is_empty());
    }

    #[test]
    fn crossovers() {
        assert_eq!(crossover(1.0, 2.0, 3.0, 2.0), Some(Cross::Up));
        assert_eq!(crossover(2.0, 2.0, 3.0, 2.0), Some(Cross::Up));
        assert_eq!(crossover(3.0, 2.0, 1.0, 2.0), Some(Cross::Down));
        assert_eq!(crossover(3.0, 2.0, 4.0, 2.0), None);
        assert_eq!(
            crossover(1.0, 2.0, 2.0, 2.0),
            None,
            "touching is not crossing"
        );
        // An exact tie of two averages that f64 arithmetic puts a unit in the last place apart
        // (SMA(10) and SMA(30) of 4-decimal prices, both 107.95841) is a touch, not a crossing.
        assert_eq!(
            crossover(
                107.91517000000003,
                107.8981966666667,
                107.95840999999999,
                107.95841000000003
            ),
            None
        );
        assert_eq!(
            crossover(107.95840999999999, 107.95841000000003, 107.96, 107.95841),
            Some(Cross::Up),
            "from a tie to above"
        );
        assert_eq!(
            crossover(f64::NAN, 1.0, 2.0, 1.0),
            None,
            "no value, no crossing"
        );
        assert_eq!(
            crossover(1.0, 2.0, f64::NAN, 1.0),
            None,
            "no value, no crossing"
        );
        assert_eq!(crosses_level(29.0, 31.0, 30.0), Some(Cross::Up));
        assert_eq!(crosses_level(71.0, 69.0, 70.0), Some(Cross::Down));
        assert_eq!(crosses_level(50.0, 55.0, 70.0), None);
    }
}
