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

/// How many closed candles the seeded history's ending shapes: a dip, a steady decline of
/// [`ENDING_SLOPE`] per candle down to [`ENDING_LOW`] of the feed's price, then a breakout on the
/// newest closed candle back to the feed's price. Every demo strategy (SMA and EMA crossovers, RSI
/// leaving oversold) then has a buy on that candle, so a fresh demo trades from strategy signals at
/// the strategy runner's first tick. The breakout must outweigh the averages' lag in the decline
/// (for SMA(5)/SMA(20): more than 50 candles' worth of the slope), hence the dip before it.
const ENDING_CANDLES: i64 = 60;
const ENDING_LOW: f64 = 0.6;
const ENDING_SLOPE: f64 = 0.006;

/// The seeded history's price at the end of candle `k`, when `last_closed` is the newest closed
/// candle: the feed's price, pressed down along the ending, and the feed's own price again on
/// `last_closed` (so the live feed continues seamlessly from it).
fn seeded_price(symbol: &str, k: i64, last_closed: i64) -> f64 {
    if k <= last_closed - ENDING_CANDLES || k >= last_closed {
        return price(symbol, k);
    }
    let candles_to_breakout = (last_closed - 1 - k) as f64;
    price(symbol, k) * ENDING_LOW * (1.0 + ENDING_SLOPE * candles_to_breakout)
}

/// The candle of `symbol` that opens at `open_time` (aligned to `timeframe`). With `as_of` inside
/// the candle, a still-forming candle whose close moves toward its final value.
pub fn candle(
    symbol: &str,
    timeframe: Timeframe,
    open_time: DateTime<Utc>,
    as_of: DateTime<Utc>,
) -> Candle {
    candle_priced(symbol, timeframe, open_time, as_of, |k| price(symbol, k))
}

/// A candle whose open and close come from `close_of(k)`, the close of candle `k`.
fn candle_priced(
    symbol: &str,
    timeframe: Timeframe,
    open_time: DateTime<Utc>,
    as_of: DateTime<Utc>,
    close_of: impl Fn(i64) -> f64,
) -> Candle {
    let k = open_time.timestamp() / timeframe.seconds();
    let seed = symbol_seed(symbol);
    let open = close_of(k - 1);
    let final_close = close_of(k);
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
    open_times(timeframe, from, to)
        .map(|t| candle(symbol, timeframe, t, t + timeframe.duration()))
        .collect()
}

/// The seeded history: closed candles `[from, to)` whose ending (up to the newest closed one,
/// which opens at `to - timeframe`) declines and then breaks out (see [`ENDING_CANDLES`]).
pub fn seeded_history(
    symbol: &str,
    timeframe: Timeframe,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<Candle> {
    let last_closed = to.timestamp() / timeframe.seconds() - 1;
    open_times(timeframe, from, to)
        .map(|t| {
            candle_priced(symbol, timeframe, t, t + timeframe.duration(), |k| {
                seeded_price(symbol, k, last_closed)
            })
        })
        .collect()
}

fn open_times(
    timeframe: Timeframe,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> impl Iterator<Item = DateTime<Utc>> {
    let step = timeframe.seconds();
    let start = timeframe.floor(from).timestamp();
    let end = to.timestamp();
    (0..)
        .map(move |i| start + i * step)
        .take_while(move |&t| t < end)
        .filter_map(|t| Utc.timestamp_opt(t, 0).single())
}

/// One feed step: the last few closed candles that are missing (catch-up after a pause; closed
/// candles already stored, the seeded history's among them, are final and left alone) and the
/// forming one. Returns the rows written.
pub async fn write_feed(pool: &PgPool, feed: &DemoConfig, now: DateTime<Utc>) -> Result<u64> {
    const CATCH_UP: i32 = 3;
    let tf = feed.timeframe;
    let forming = tf.floor(now);
    let from = forming - tf.duration() * CATCH_UP;
    let mut written = 0;
    for symbol in &feed.symbols {
        ensure_instrument(pool, symbol).await?;
        let stored: Vec<DateTime<Utc>> = store::candles::range(
            pool,
            symbol.as_str(),
            tf,
            Some(from),
            Some(forming),
            CATCH_UP.into(),
        )
        .await?
        .iter()
        .map(|c| c.open_time)
        .collect();
        let mut closed = closed_candles(symbol.as_str(), tf, from, forming);
        closed.retain(|c| !stored.contains(&c.open_time));
        // The synthetic feed knows its closed candles are final, the ones stored before included.
        written += store::candles::upsert_final(pool, symbol.as_str(), tf, &closed, true).await?;
        store::candles::mark_final(pool, symbol.as_str(), tf, from, forming).await?;
        let partial = [candle(symbol.as_str(), tf, forming, now)];
        written += store::candles::upsert(pool, symbol.as_str(), tf, &partial).await?;
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

/// How long `seed-demo` waits so that its newest closed candle stays the newest for at least
/// 20 s: `None` when enough of the forming candle is left.
pub fn wait_before_seeding(
    timeframe: Timeframe,
    now: DateTime<Utc>,
) -> Option<std::time::Duration> {
    const SEED_MARGIN: chrono::Duration = chrono::Duration::seconds(20);
    let left = timeframe.floor(now) + timeframe.duration() - now;
    (left < SEED_MARGIN)
        .then(|| (left + chrono::Duration::milliseconds(100)).to_std().ok())
        .flatten()
}

/// `seed-demo`: instruments, `history` closed candles per symbol (ending in a breakout, see
/// [`seeded_history`]), and three demo strategies.
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
        let candles = seeded_history(symbol.as_str(), tf, start, end);
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
                exits: Default::default(),
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
        validate_batch(&candles, tf, Utc::now()).expect("valid candles");
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

    /// The seeded ending gives every demo strategy a buy on the newest closed candle, whatever the
    /// symbol and whenever the demo is seeded, and the live feed continues from it seamlessly.
    #[test]
    fn seeded_history_ends_in_a_buy_for_every_demo_strategy() {
        let tf = Timeframe::M1;
        let params = [
            StrategyParams::SmaCross(CrossParams { fast: 5, slow: 20 }),
            StrategyParams::EmaCross(CrossParams { fast: 8, slow: 21 }),
            StrategyParams::Rsi(RsiParams {
                period: 14,
                oversold: 35.0,
                overbought: 65.0,
            }),
        ];
        let first = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        for symbol in ["BTCUSDT", "ETHUSDT", "SOLUSDT", "ETHBTC"] {
            // Every minute of a day and a half: all phases of both waves.
            for minute in (0..2160).step_by(7) {
                let end = first + chrono::Duration::minutes(500 + minute);
                let history = seeded_history(symbol, tf, end - chrono::Duration::minutes(500), end);
                assert_eq!(history.len(), 500);
                validate_batch(&history, tf, end).expect("valid candles");
                assert!(history.windows(2).all(|w| w[1].open == w[0].close));
                let closes: Vec<f64> = history
                    .iter()
                    .map(|c| c.close.to_string().parse().unwrap())
                    .collect();
                for p in &params {
                    let window = &closes[closes.len() - p.lookback()..];
                    let signal = p.evaluate(window).map(|(action, _)| action);
                    assert_eq!(
                        signal,
                        Some(crate::domain::Action::Buy),
                        "{symbol} seeded up to {end}: {p:?} gives {signal:?}"
                    );
                }
                let newest = history.last().unwrap();
                let next = candle(symbol, tf, end, end + tf.duration());
                assert_eq!(
                    next.open, newest.close,
                    "the live feed continues the history"
                );
            }
        }
    }

    #[test]
    fn seeding_waits_only_at_the_end_of_a_candle() {
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let at = |s| t + chrono::Duration::seconds(s);
        assert_eq!(wait_before_seeding(Timeframe::M1, at(0)), None);
        assert_eq!(wait_before_seeding(Timeframe::M1, at(40)), None);
        assert_eq!(
            wait_before_seeding(Timeframe::M1, at(45)),
            Some(std::time::Duration::from_millis(15_100))
        );
        assert_eq!(wait_before_seeding(Timeframe::H1, at(45)), None);
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
