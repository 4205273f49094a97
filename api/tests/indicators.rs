//! The indicators against TA-Lib (the `ta-lib` wheel from PyPI, which ships the C library,
//! installed by `make pydeps`): on the same 6,000 candles, TA-Lib computes SMA, EMA and RSI over
//! the whole history, and the strategy runner computes them as it does live, over its look-back
//! window ending at each candle. Every value after the warm-up must agree within a relative error
//! of 1e-9, and every crossover candle must be the same.

use std::process::Command;

use trading_agent::domain::indicators::{Cross, crosses_level, crossover, ema, rsi, sma};
use trading_agent::domain::strategy::{CrossParams, RsiParams};
use trading_agent::domain::{Action, StrategyParams};

const CANDLES: usize = 6_000;
const MAX_RELATIVE_ERROR: f64 = 1e-9;

fn venv_python() -> std::path::PathBuf {
    let cache = std::env::var_os("TRADING_AGENT_CACHE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(std::env::var_os("HOME").expect("HOME"))
                .join(".cache/trading-agent")
        });
    cache.join("venv/bin/python")
}

/// A deterministic random walk with trends and calm stretches, rounded to 4 decimals like a quote.
fn closes() -> Vec<f64> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut price = 100.0_f64;
    (0..CANDLES)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let noise = (x % 2001) as f64 / 1000.0 - 1.0; // -1 ..= 1
            let drift = ((i / 400) as f64 * 1.7).sin() * 0.15;
            price = (price * (1.0 + (noise * 0.6 + drift) / 100.0)).max(1.0);
            (price * 10_000.0).round() / 10_000.0
        })
        .collect()
}

/// TA-Lib's SMA, EMA and RSI of `closes` for `periods`, by name (`sma10`, ...); NaN before TA-Lib's
/// first value.
fn talib(closes: &[f64], periods: &[(&str, u32)]) -> std::collections::HashMap<String, Vec<f64>> {
    let python = venv_python();
    assert!(
        python.exists(),
        "{} missing: run `make pydeps` (make test does)",
        python.display()
    );
    let input =
        std::env::temp_dir().join(format!("trading-agent-closes-{}.txt", std::process::id()));
    let text: Vec<String> = closes.iter().map(|c| format!("{c:.4}")).collect();
    std::fs::write(&input, text.join("\n")).unwrap();
    let wanted: Vec<String> = periods.iter().map(|(f, p)| format!("{f}:{p}")).collect();
    let script = r#"
import json, sys
import numpy as np
import talib
closes = np.loadtxt(sys.argv[1], dtype=np.float64)
out = {}
for spec in sys.argv[2:]:
    name, period = spec.split(":")
    values = getattr(talib, name.upper())(closes, timeperiod=int(period))
    out[name + period] = [None if np.isnan(v) else repr(float(v)) for v in values]
out["version"] = talib.__version__
print(json.dumps(out))
"#;
    let output = Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(&input)
        .args(&wanted)
        .output()
        .expect("python runs");
    let _ = std::fs::remove_file(&input);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    println!("TA-Lib (python ta-lib {})", json["version"]);
    wanted
        .iter()
        .map(|spec| {
            let key = spec.replace(':', "");
            let values = json[&key]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().map_or(f64::NAN, |s| s.parse().unwrap()))
                .collect();
            (key, values)
        })
        .collect()
}

/// The strategy runner's value at each candle `i`: the indicator's last value over the look-back
/// window ending at `i` (NaN before the first full window).
fn windowed(closes: &[f64], lookback: usize, indicator: impl Fn(&[f64]) -> Vec<f64>) -> Vec<f64> {
    (0..closes.len())
        .map(|i| {
            if i + 1 < lookback {
                f64::NAN
            } else {
                *indicator(&closes[i + 1 - lookback..=i]).last().unwrap()
            }
        })
        .collect()
}

/// Compares every value where both are defined; returns (values compared, largest relative error).
fn compare(name: &str, ours: &[f64], reference: &[f64]) -> (usize, f64) {
    let mut compared = 0;
    let mut worst = 0.0_f64;
    for (i, (a, b)) in ours.iter().zip(reference).enumerate() {
        if a.is_nan() {
            continue;
        }
        assert!(
            !b.is_nan(),
            "{name}[{i}]: TA-Lib has no value where we have {a}"
        );
        let error = (a - b).abs() / b.abs().max(f64::MIN_POSITIVE);
        assert!(
            error <= MAX_RELATIVE_ERROR,
            "{name}[{i}]: {a} vs TA-Lib {b} (relative error {error:e})"
        );
        worst = worst.max(error);
        compared += 1;
    }
    (compared, worst)
}

/// The candles where the strategy signals, evaluated as it runs live (window by window).
fn our_signals(params: &StrategyParams, closes: &[f64]) -> Vec<(usize, Action)> {
    let lookback = params.lookback();
    (lookback - 1..closes.len())
        .filter_map(|i| {
            params
                .evaluate(&closes[i + 1 - lookback..=i])
                .map(|(action, _)| (i, action))
        })
        .collect()
}

fn action(cross: Option<Cross>) -> Option<Action> {
    match cross? {
        Cross::Up => Some(Action::Buy),
        Cross::Down => Some(Action::Sell),
    }
}

#[test]
fn sma_ema_and_rsi_agree_with_talib() {
    let closes = closes();
    let crosses = [(10, 30), (12, 26), (50, 200)];
    let rsi_params = [(14, 30.0, 70.0), (6, 25.0, 75.0)];
    let mut periods = Vec::new();
    for &(fast, slow) in &crosses {
        for p in [fast, slow] {
            periods.push(("sma", p));
            periods.push(("ema", p));
        }
    }
    for &(p, _, _) in &rsi_params {
        periods.push(("rsi", p));
    }
    let reference = talib(&closes, &periods);
    let mut report = Vec::new();

    for &(fast, slow) in &crosses {
        for (kind, average, params) in [
            (
                "sma",
                sma as fn(&[f64], usize) -> Vec<f64>,
                StrategyParams::SmaCross(CrossParams { fast, slow }),
            ),
            (
                "ema",
                ema,
                StrategyParams::EmaCross(CrossParams { fast, slow }),
            ),
        ] {
            let lookback = params.lookback();
            let mut lines = Vec::new();
            for p in [fast, slow] {
                let ours = windowed(&closes, lookback, |w| average(w, p as usize));
                let theirs = &reference[&format!("{kind}{p}")];
                let (n, worst) = compare(&format!("{kind}{p}"), &ours, theirs);
                report.push(format!(
                    "{kind}({p}) in a {lookback}-candle window: {n} values, max relative error {worst:.2e}"
                ));
                lines.push(theirs.clone());
            }
            // Crossovers of TA-Lib's lines, on the candles where the strategy evaluates.
            let expected: Vec<(usize, Action)> = (lookback - 1..closes.len())
                .filter_map(|i| {
                    let cross =
                        crossover(lines[0][i - 1], lines[1][i - 1], lines[0][i], lines[1][i]);
                    action(cross).map(|a| (i, a))
                })
                .collect();
            let ours = our_signals(&params, &closes);
            assert!(!expected.is_empty());
            assert_eq!(ours, expected, "{kind} {fast}/{slow} crossover candles");
            report.push(format!(
                "{kind} cross {fast}/{slow}: {} crossover candles, all identical",
                ours.len()
            ));
        }
    }

    for &(period, oversold, overbought) in &rsi_params {
        let params = StrategyParams::Rsi(RsiParams {
            period,
            oversold,
            overbought,
        });
        let lookback = params.lookback();
        let ours = windowed(&closes, lookback, |w| rsi(w, period as usize));
        let theirs = &reference[&format!("rsi{period}")];
        let (n, worst) = compare(&format!("rsi{period}"), &ours, theirs);
        report.push(format!(
            "rsi({period}) in a {lookback}-candle window: {n} values, max relative error {worst:.2e}"
        ));
        let expected: Vec<(usize, Action)> = (lookback - 1..closes.len())
            .filter_map(|i| {
                let (prev, now) = (theirs[i - 1], theirs[i]);
                if crosses_level(prev, now, oversold) == Some(Cross::Up) {
                    Some((i, Action::Buy))
                } else if crosses_level(prev, now, overbought) == Some(Cross::Down) {
                    Some((i, Action::Sell))
                } else {
                    None
                }
            })
            .collect();
        let ours = our_signals(&params, &closes);
        assert!(!expected.is_empty());
        assert_eq!(ours, expected, "rsi {period} crossing candles");
        report.push(format!(
            "rsi({period}) {oversold}/{overbought}: {} crossing candles, all identical",
            ours.len()
        ));
    }
    println!("{CANDLES} candles\n{}", report.join("\n"));
}
