//! The strategy runner's CPU work in one tick: 1,000 symbols × 500 closed candles each.
//!
//! - `tick/indicators`: every indicator the three strategy kinds use, as full series over all 500
//!   closes of every symbol (SMA 5 and 20, EMA 8 and 21, Wilder RSI 14): an upper bound.
//! - `tick/evaluate`: what the runner calls per symbol, `StrategyParams::evaluate`, for the three
//!   demo strategies (SMA 5/20 cross, EMA 8/21 cross, RSI 14 with 35/65) on the same 500 closes.
//!
//! `tests/bench/run.sh` reads Criterion's samples and copies the figures into RESULTS.md.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use trading_agent::domain::indicators::{ema, rsi, sma};
use trading_agent::domain::strategy::{CrossParams, RsiParams, StrategyParams};

const SYMBOLS: usize = 1_000;
const CANDLES: usize = 500;

/// Deterministic closes per symbol: two waves of different periods plus a small drift, so averages
/// cross and RSI moves through its levels (no RNG dependency, same data every run).
fn closes() -> Vec<Vec<f64>> {
    (0..SYMBOLS)
        .map(|s| {
            let base = 10.0 + s as f64;
            (0..CANDLES)
                .map(|k| {
                    let t = k as f64 + s as f64 * 7.0;
                    base * (1.0 + 0.03 * (t / 17.0).sin() + 0.01 * (t / 3.0).sin() + 0.0001 * t)
                })
                .collect()
        })
        .collect()
}

fn tick(c: &mut Criterion) {
    let data = closes();
    let strategies = [
        StrategyParams::SmaCross(CrossParams { fast: 5, slow: 20 }),
        StrategyParams::EmaCross(CrossParams { fast: 8, slow: 21 }),
        StrategyParams::Rsi(RsiParams {
            period: 14,
            oversold: 35.0,
            overbought: 65.0,
        }),
    ];
    let mut group = c.benchmark_group("tick");
    group.sample_size(30);
    group.bench_function("indicators", |b| {
        b.iter(|| {
            let mut acc = 0.0;
            for closes in &data {
                let closes = black_box(closes.as_slice());
                for series in [
                    sma(closes, 5),
                    sma(closes, 20),
                    ema(closes, 8),
                    ema(closes, 21),
                    rsi(closes, 14),
                ] {
                    acc += series.last().copied().unwrap_or_default();
                }
            }
            acc
        })
    });
    group.bench_function("evaluate", |b| {
        b.iter(|| {
            let mut signals = 0usize;
            for closes in &data {
                for strategy in &strategies {
                    signals += usize::from(strategy.evaluate(black_box(closes)).is_some());
                }
            }
            signals
        })
    });
    group.finish();
}

criterion_group!(benches, tick);
criterion_main!(benches);
