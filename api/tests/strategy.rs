//! The strategy runner against a real PostgreSQL: signals are written once per candle however often
//! a pass runs, never from a candle that has not closed, and a gap in the data gives a warning event
//! instead of a signal. The demo feed drives candles -> signals -> paper trades without network.

mod common;

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use trading_agent::config::DemoConfig;
use trading_agent::domain::strategy::CrossParams;
use trading_agent::domain::{RiskLimits, StrategyParams, Symbol, Timeframe};
use trading_agent::metrics::Metrics;
use trading_agent::store::{self, strategies::StrategySpec};
use trading_agent::workers::bot::Bot;
use trading_agent::workers::strategy::run_pass;

use common::{candles_with_closes, d, database};

/// Closed candles count at once, whether the feed declared them final or not.
const NO_GRACE: chrono::Duration = chrono::Duration::zero();

fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 1, h, m, s).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_once_per_closed_candle_and_gaps_warn() {
    let db = database("strategy").await;
    let pool = &db.pool;
    let tf = Timeframe::M1;
    for symbol in ["BTCUSDT", "ETHUSDT"] {
        store::instruments::create(pool, symbol, &symbol[..3], "USDT")
            .await
            .unwrap();
    }
    // BTC: closes ...12, 12, 10, 15 up to the 00:59 candle: SMA(2) crosses above SMA(3) there.
    let mut closes = vec![12.0; 6];
    closes.extend([12.0, 12.0, 10.0, 15.0]);
    let btc = candles_with_closes(&closes, tf, at(0, 59, 0));
    store::candles::upsert(pool, "BTCUSDT", tf, &btc)
        .await
        .unwrap();
    // The 01:00 candle is still forming at 01:00:30; with close 4 it would make a sell cross.
    let forming = candles_with_closes(&[4.0], tf, at(1, 0, 0));
    store::candles::upsert(pool, "BTCUSDT", tf, &forming)
        .await
        .unwrap();
    // ETH: the 00:57 candle is missing.
    let mut eth = candles_with_closes(&[20.0; 10], tf, at(0, 59, 0));
    eth.retain(|c| c.open_time != at(0, 57, 0));
    store::candles::upsert(pool, "ETHUSDT", tf, &eth)
        .await
        .unwrap();

    store::strategies::create(
        pool,
        &StrategySpec {
            name: "sma 2/3".into(),
            params: StrategyParams::SmaCross(CrossParams { fast: 2, slow: 3 }),
            symbols: vec!["BTCUSDT".into(), "ETHUSDT".into()],
            timeframe: tf,
            enabled: true,
            exits: Default::default(),
        },
    )
    .await
    .unwrap();

    // Three passes at 01:00:30 (e.g. a restart after a crash): one signal, one gap event.
    let now = at(1, 0, 30);
    let first = run_pass(pool, now, NO_GRACE, None).await.unwrap();
    assert_eq!(
        (first.evaluated, first.signals_written, first.gaps),
        (2, 1, 1)
    );
    for _ in 0..2 {
        let again = run_pass(pool, now, NO_GRACE, None).await.unwrap();
        assert_eq!((again.signals_written, again.gaps), (0, 1));
    }
    let signals: Vec<(String, DateTime<Utc>, String, rust_decimal::Decimal)> =
        sqlx::query_as("SELECT symbol, candle_open_time, action, price FROM signals ORDER BY id")
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(
        signals,
        vec![("BTCUSDT".into(), at(0, 59, 0), "buy".into(), d("15"))]
    );
    let gap_events: Vec<String> =
        sqlx::query_scalar("SELECT message FROM events WHERE kind = 'data_gap'")
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(gap_events.len(), 1, "one event per gap, not one per pass");
    assert!(gap_events[0].contains("ETHUSDT 1m: candles missing between 2025-01-01T00:56:00+00:00 and 2025-01-01T00:58:00+00:00"), "{}", gap_events[0]);

    // Once the 01:00 candle has closed, it is used: the sell cross, once.
    for _ in 0..2 {
        run_pass(pool, at(1, 1, 0), NO_GRACE, None).await.unwrap();
    }
    let actions: Vec<(String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT action, candle_open_time FROM signals WHERE symbol = 'BTCUSDT' ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(
        actions,
        vec![("buy".into(), at(0, 59, 0)), ("sell".into(), at(1, 0, 0))]
    );

    // A disabled strategy is not evaluated.
    sqlx::query("UPDATE strategies SET enabled = false")
        .execute(pool)
        .await
        .unwrap();
    assert_eq!(
        run_pass(pool, at(1, 2, 0), NO_GRACE, None)
            .await
            .unwrap()
            .evaluated,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_signal_when_the_newest_closed_candle_is_missing() {
    let db = database("stale").await;
    let pool = &db.pool;
    let tf = Timeframe::M5;
    store::instruments::create(pool, "BTCUSDT", "BTC", "USDT")
        .await
        .unwrap();
    let mut closes = vec![12.0; 6];
    closes.extend([12.0, 12.0, 10.0, 15.0]);
    store::candles::upsert(
        pool,
        "BTCUSDT",
        tf,
        &candles_with_closes(&closes, tf, at(0, 55, 0)),
    )
    .await
    .unwrap();
    store::strategies::create(
        pool,
        &StrategySpec {
            name: "sma".into(),
            params: StrategyParams::SmaCross(CrossParams { fast: 2, slow: 3 }),
            symbols: vec!["BTCUSDT".into()],
            timeframe: tf,
            enabled: true,
            exits: Default::default(),
        },
    )
    .await
    .unwrap();
    // At 01:12 the 01:05 candle has closed (and 01:00 before it) but the data ends at 00:55.
    assert_eq!(
        run_pass(pool, at(1, 12, 0), NO_GRACE, None)
            .await
            .unwrap()
            .signals_written,
        0
    );
    // At 01:04 the newest closed candle is 00:55 itself: the signal is due.
    assert_eq!(
        run_pass(pool, at(1, 4, 0), NO_GRACE, None)
            .await
            .unwrap()
            .signals_written,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_feed_moves_candles_to_signals_to_paper_trades() {
    let db = database("demo").await;
    let pool = &db.pool;
    let feed = DemoConfig {
        symbols: vec![
            Symbol::parse("BTCUSDT").unwrap(),
            Symbol::parse("ETHUSDT").unwrap(),
        ],
        timeframe: Timeframe::M1,
    };
    let start = Utc::now() - chrono::Duration::hours(6);
    trading_agent::demo::seed(pool, &feed, 100, start)
        .await
        .unwrap();
    let metrics = Metrics::new("bot");
    let bot = Bot {
        limits: RiskLimits {
            stake_amount: d("100"),
            max_open_trades: 5,
            max_notional: d("1000"),
            daily_loss_limit: d("500"),
            fee_rate: d("0.001"),
            slippage_bps: d("5"),
            max_signal_age: chrono::Duration::minutes(15),
            max_price_age: chrono::Duration::minutes(5),
        },
        metrics: Arc::clone(&metrics),
        fault: None,
        starting_wallet: Vec::new(),
    };
    // Replay three hours minute by minute: feed, strategies, bot.
    for minute in 0..180 {
        let now = start + chrono::Duration::minutes(minute) + chrono::Duration::seconds(5);
        trading_agent::demo::write_feed(pool, &feed, now)
            .await
            .unwrap();
        run_pass(pool, now, NO_GRACE, None).await.unwrap();
        while bot.process_next(pool).await.unwrap().is_some() {}
    }
    let signals: i64 = sqlx::query_scalar("SELECT count(*) FROM signals")
        .fetch_one(pool)
        .await
        .unwrap();
    let closed: i64 = sqlx::query_scalar("SELECT count(*) FROM trades WHERE status = 'closed'")
        .fetch_one(pool)
        .await
        .unwrap();
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(pool)
        .await
        .unwrap();
    assert!(signals >= 10, "{signals} signals");
    assert!(closed >= 2, "{closed} closed trades");
    assert!(orders >= 2 * closed);
    // Cash + open positions at cost = start - fees + realised profit: the ledger balances.
    let (balance, open_cost, realized): (rust_decimal::Decimal, rust_decimal::Decimal, rust_decimal::Decimal) = sqlx::query_as(
        "SELECT (SELECT balance FROM account),
                (SELECT COALESCE(sum(quantity * entry_price + entry_fee), 0) FROM trades WHERE status = 'open'),
                (SELECT COALESCE(sum(profit), 0) FROM trades WHERE status = 'closed')",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    let drift = (balance + open_cost - realized - d("10000")).abs();
    assert!(drift < d("0.0001"), "ledger off by {drift}");
}

/// Issue 16: one missing candle stopped a strategy for its whole look-back. The gap is now filled
/// forward for the indicators (as freqtrade does) and still reported, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_is_filled_forward_and_reported_once() {
    let db = database("fillforward").await;
    let pool = &db.pool;
    let tf = Timeframe::M1;
    store::instruments::create(pool, "BTCUSDT", "BTC", "USDT")
        .await
        .unwrap();
    // ...12, 12, [12 missing], 10, 15 up to 00:59: filled forward, SMA(2) crosses above SMA(3).
    let mut closes = vec![12.0; 6];
    closes.extend([12.0, 12.0, 10.0, 15.0]);
    let mut candles = candles_with_closes(&closes, tf, at(0, 59, 0));
    candles.retain(|c| c.open_time != at(0, 57, 0));
    store::candles::upsert(pool, "BTCUSDT", tf, &candles)
        .await
        .unwrap();
    store::strategies::create(
        pool,
        &StrategySpec {
            name: "sma 2/3".into(),
            params: StrategyParams::SmaCross(CrossParams { fast: 2, slow: 3 }),
            symbols: vec!["BTCUSDT".into()],
            timeframe: tf,
            enabled: true,
            exits: Default::default(),
        },
    )
    .await
    .unwrap();
    for _ in 0..2 {
        let pass = run_pass(pool, at(1, 0, 30), NO_GRACE, None).await.unwrap();
        assert_eq!(pass.gaps, 1);
    }
    let signals: Vec<(DateTime<Utc>, String)> =
        sqlx::query_as("SELECT candle_open_time, action FROM signals")
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(signals, vec![(at(0, 59, 0), "buy".into())]);
    let gap_events: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE kind = 'data_gap'")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(gap_events, 1);
}

/// Issue 16: candle closure was judged by the wall clock only, so a feed writing a candle's final
/// version late left a signal computed from its partial version, kept forever by idempotency. A
/// closed candle now counts once the feed declares it final, or after the grace delay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candle_counts_once_final_or_after_the_grace_delay() {
    let db = database("finality").await;
    let pool = &db.pool;
    let tf = Timeframe::M1;
    let grace = chrono::Duration::seconds(60);
    for symbol in ["BTCUSDT", "ETHUSDT"] {
        store::instruments::create(pool, symbol, &symbol[..3], "USDT")
            .await
            .unwrap();
        // 12 up to 00:58 (final), then the 00:59 candle's partial version: 15, which would make
        // SMA(2) cross above SMA(3).
        let history = candles_with_closes(&[12.0; 9], tf, at(0, 58, 0));
        store::candles::upsert_final(pool, symbol, tf, &history, true)
            .await
            .unwrap();
        let partial = candles_with_closes(&[15.0], tf, at(0, 59, 0));
        store::candles::upsert(pool, symbol, tf, &partial)
            .await
            .unwrap();
    }
    store::strategies::create(
        pool,
        &StrategySpec {
            name: "sma 2/3".into(),
            params: StrategyParams::SmaCross(CrossParams { fast: 2, slow: 3 }),
            symbols: vec!["BTCUSDT".into(), "ETHUSDT".into()],
            timeframe: tf,
            enabled: true,
            exits: Default::default(),
        },
    )
    .await
    .unwrap();
    let signals = || async {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT symbol, action FROM signals ORDER BY id")
                .fetch_all(pool)
                .await
                .unwrap();
        rows
    };
    // Closed at 01:00, not final, within the grace: no signal from the partial version.
    run_pass(pool, at(1, 0, 5), grace, None).await.unwrap();
    assert_eq!(signals().await, vec![]);
    // BTC's feed writes the final version (12: no cross) and says so: used at once, no signal.
    let last = candles_with_closes(&[12.0], tf, at(0, 59, 0));
    store::candles::upsert_final(pool, "BTCUSDT", tf, &last, true)
        .await
        .unwrap();
    run_pass(pool, at(1, 0, 10), grace, None).await.unwrap();
    assert_eq!(signals().await, vec![]);
    // ETH's feed never says: once the grace has passed, its last version counts.
    run_pass(pool, at(1, 0, 59), grace, None).await.unwrap();
    assert_eq!(signals().await, vec![]);
    run_pass(pool, at(1, 1, 0), grace, None).await.unwrap();
    assert_eq!(signals().await, vec![("ETHUSDT".into(), "buy".into())]);
}
