//! A deterministic synthetic price feed for demos and tests without network: each candle is a pure
//! function of (symbol, timeframe, open time), so any number of writers produce identical rows and
//! upserting them again changes nothing.

use chrono::{DateTime, TimeZone, Utc};
use rust_decimal::Decimal;
use rust_decimal::prelude::FromPrimitive;
use sqlx::PgPool;

use crate::config::DemoConfig;
use crate::domain::strategy::{CrossParams, RsiParams};
use crate::domain::{Candle, StrategyParams, Symbol, Timeframe};
use crate::error::Result;
use crate::store::{self, strategies::StrategySpec};

/// SplitMix64: a tiny, well-mixed hash, enough for reproducible noise.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Uniform in [0, 1).
fn unit(seed: u64, k: i64, salt: u64) -> f64 {
    (mix(seed ^ mix(k as u64 ^ salt)) >> 11) as f64 / (1u64 << 53) as f64
}

fn symbol_seed(symbol: &str) -> u64 {
    symbol.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn base_price(symbol: &str) -> f64 {
    if symbol.starts_with("BTC") {
        60_000.0
    } else if symbol.starts_with("ETH") {
        3_000.0
    } else {
        20.0 + (symbol_seed(symbol) % 980) as f64
    }
}

/// Price at the end of candle `k`: two slow waves (so the moving averages cross regularly) plus
/// per-candle noise.
fn price(symbol: &str, k: i64) -> f64 {
    let seed = symbol_seed(symbol);
    let phase = (seed % 1000) as f64;
    let t = k as f64 + phase;
    let wave = 0.03 * (t * std::f64::consts::TAU / 240.0).sin()
        + 0.012 * (t * std::f64::consts::TAU / 37.0).sin();
    let noise = 0.004 * (unit(seed, k, 1) - 0.5);
    base_price(symbol) * (wave + noise).exp()
}

fn decimal(value: f64) -> Decimal {
    Decimal::from_f64(value).unwrap_or(Decimal::ONE).round_dp(2)
}

/// The candle of `symbol` that opens at `open_time` (aligned to `timeframe`). With `as_of` inside
/// the candle, a still-forming candle whose close moves toward its final value.
pub fn candle(
    symbol: &str,
    timeframe: Timeframe,
    open_time: DateTime<Utc>,
    as_of: DateTime<Utc>,
) -> Candle {
    let k = open_time.timestamp() / timeframe.seconds();
    let seed = symbol_seed(symbol);
    let open = price(symbol, k - 1);
    let final_close = price(symbol, k);
    let elapsed =
        (as_of - open_time).num_milliseconds() as f64 / (timeframe.seconds() * 1000) as f64;
    let close = open + (final_close - open) * elapsed.clamp(0.0, 1.0);
    let high = open.max(close) * (1.0 + 0.002 * unit(seed, k, 2));
    let low = open.min(close) * (1.0 - 0.002 * unit(seed, k, 3));
    let (open, close) = (decimal(open), decimal(close));
    // Rounding must not break low <= open, close <= high.
    let high = decimal(high).max(open.max(close));
    let low = decimal(low).min(open.min(close));
    Candle {
        open_time,
        open,
        high,
        low,
        close,
        volume: decimal(5.0 + 95.0 * unit(seed, k, 4)),
    }
}

/// Closed candles `[from, to)` of the feed.
pub fn closed_candles(
    symbol: &str,
    timeframe: Timeframe,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<Candle> {
    let step = timeframe.seconds();
    let start = timeframe.floor(from).timestamp();
    let end = to.timestamp();
    (0..)
        .map(|i| start + i * step)
        .take_while(|&t| t < end)
        .filter_map(|t| Utc.timestamp_opt(t, 0).single())
        .map(|t| candle(symbol, timeframe, t, t + timeframe.duration()))
        .collect()
}

/// One feed step: the last few closed candles (idempotent catch-up after a pause) and the forming
/// one. Returns the rows written.
pub async fn write_feed(pool: &PgPool, feed: &DemoConfig, now: DateTime<Utc>) -> Result<u64> {
    let tf = feed.timeframe;
    let forming = tf.floor(now);
    let mut written = 0;
    for symbol in &feed.symbols {
        ensure_instrument(pool, symbol).await?;
        let mut candles = closed_candles(symbol.as_str(), tf, forming - tf.duration() * 3, forming);
        candles.push(candle(symbol.as_str(), tf, forming, now));
        written += store::candles::upsert(pool, symbol.as_str(), tf, &candles).await?;
    }
    Ok(written)
}

async fn ensure_instrument(pool: &PgPool, symbol: &Symbol) -> Result<()> {
    let s = symbol.as_str();
    let (base, quote) = ["USDT", "USDC", "USD", "EUR", "BTC"]
        .iter()
        .find_map(|q| s.strip_suffix(q).filter(|b| !b.is_empty()).map(|b| (b, *q)))
        .unwrap_or((s, "USD"));
    let base: String = base.chars().filter(char::is_ascii_alphanumeric).collect();
    store::instruments::ensure(pool, s, if base.is_empty() { "X" } else { &base }, quote).await
}

/// `seed-demo`: instruments, `history` closed candles per symbol, and three demo strategies.
pub async fn seed(
    pool: &PgPool,
    feed: &DemoConfig,
    history: u32,
    now: DateTime<Utc>,
) -> Result<u64> {
    let tf = feed.timeframe;
    let end = tf.floor(now);
    let start = end - tf.duration() * history as i32;
    let mut written = 0;
    for symbol in &feed.symbols {
        ensure_instrument(pool, symbol).await?;
        let candles = closed_candles(symbol.as_str(), tf, start, end);
        written += store::candles::upsert(pool, symbol.as_str(), tf, &candles).await?;
    }
    let symbols: Vec<String> = feed.symbols.iter().map(|s| s.as_str().to_owned()).collect();
    let strategies = [
        (
            "demo-sma-5-20",
            StrategyParams::SmaCross(CrossParams { fast: 5, slow: 20 }),
        ),
        (
            "demo-ema-8-21",
            StrategyParams::EmaCross(CrossParams { fast: 8, slow: 21 }),
        ),
        (
            "demo-rsi-14",
            StrategyParams::Rsi(RsiParams {
                period: 14,
                oversold: 35.0,
                overbought: 65.0,
            }),
        ),
    ];
    for (name, params) in strategies {
        store::strategies::ensure(
            pool,
            &StrategySpec {
                name: name.to_owned(),
                params,
                symbols: symbols.clone(),
                timeframe: tf,
                enabled: true,
            },
        )
        .await?;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::market::validate_batch;

    #[test]
    fn feed_is_valid_deterministic_and_moves() {
        let tf = Timeframe::M1;
        let from = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
        let candles = closed_candles("BTCUSDT", tf, from, from + chrono::Duration::hours(10));
        assert_eq!(candles.len(), 600);
        validate_batch(&candles, tf).expect("valid candles");
        assert_eq!(
            candles,
            closed_candles("BTCUSDT", tf, from, from + chrono::Duration::hours(10))
        );
        // Consecutive candles chain: open = previous close.
        assert!(candles.windows(2).all(|w| w[1].open == w[0].close));
        // Enough movement for an SMA(5)/SMA(20) crossover in ten hours.
        let closes: Vec<f64> = candles
            .iter()
            .map(|c| c.close.to_string().parse().unwrap())
            .collect();
        let params = StrategyParams::SmaCross(CrossParams { fast: 5, slow: 20 });
        let signals = (21..closes.len())
            .filter(|&i| params.evaluate(&closes[..i]).is_some())
            .count();
        assert!(signals >= 4, "only {signals} crossovers");
    }

    #[test]
    fn forming_candle_ends_at_the_closed_value() {
        let tf = Timeframe::M5;
        let t = Utc.with_ymd_and_hms(2025, 1, 1, 0, 5, 0).unwrap();
        let forming = candle("ETHUSDT", tf, t, t + chrono::Duration::minutes(2));
        let closed = candle("ETHUSDT", tf, t, t + chrono::Duration::minutes(5));
        assert_eq!(forming.open, closed.open);
        assert!(forming.validate(tf).is_ok() && closed.validate(tf).is_ok());
    }
}
