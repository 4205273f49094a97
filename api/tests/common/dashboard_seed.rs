//! A market with history for the dashboard tests: candles, a strategy, signals (executed and
//! rejected), a closed and an open trade with their orders, and worker heartbeats (one stale).
//! Returns what was written, so the tests can compare what the API and the browser show with it.

#![allow(dead_code)]

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::PgPool;
use trading_agent::build::Build;
use trading_agent::domain::{Candle, StrategyParams, Timeframe};
use trading_agent::store;

pub const SYMBOL: &str = "BTCUSDT";
pub const CANDLES: usize = 300;

pub struct Seeded {
    pub candles: Vec<Candle>,
    pub strategy_id: i64,
    /// (kind, id) of every chart marker: `signal:<id>`, `entry:<trade>`, `exit:<trade>`.
    pub markers: Vec<String>,
    pub closed_trade: i64,
    pub open_trade: i64,
    pub closed_profit: Decimal,
    /// (role, instance, stale)
    pub components: Vec<(&'static str, &'static str, bool)>,
    /// What each component's heartbeat recorded, by instance.
    pub builds: Vec<(&'static str, Build)>,
}

/// The digest the live workers run, and the one the stale instance ran before a rollout.
pub const NEW_DIGEST: &str =
    "sha256:1111111111111111111111111111111111111111111111111111111111111111";
pub const OLD_DIGEST: &str =
    "sha256:0000000000000000000000000000000000000000000000000000000000000000";

fn build(commit: &str, digest: &str) -> Build {
    Build::new(
        "0.1.0",
        commit,
        Some(&format!(
            "127.0.0.1:5000/acme/trading-agent:latest@{digest}"
        )),
    )
}

fn price(i: usize) -> Decimal {
    let x = 100.0 + 10.0 * (i as f64 / 12.0).sin() + i as f64 * 0.02;
    Decimal::from_f64_retain((x * 100.0).round() / 100.0)
        .unwrap()
        .round_dp(2)
}

/// 300 one-minute candles ending with the last closed minute, a wave with some drift.
pub fn candles(now: DateTime<Utc>) -> Vec<Candle> {
    let last_open = Timeframe::M1.last_closed_open_time(now);
    (0..CANDLES)
        .map(|i| {
            let open = if i == 0 { price(0) } else { price(i - 1) };
            let close = price(i);
            let half = Decimal::new(5, 1);
            Candle {
                open_time: last_open - Timeframe::M1.duration() * (CANDLES - 1 - i) as i32,
                open,
                high: open.max(close) + half,
                low: open.min(close) - half,
                close,
                volume: Decimal::from(10 + i as i64 % 7),
            }
        })
        .collect()
}

async fn signal(
    pool: &PgPool,
    strategy_id: i64,
    candle: &Candle,
    action: &str,
    status: &str,
    status_reason: Option<&str>,
    reason: &str,
) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO signals (strategy_id, symbol, timeframe, candle_open_time, action, price, reason,
                              status, status_reason, processed_at)
         VALUES ($1, $2, '1m', $3, $4, $5, $6, $7, $8, $3 + interval '61 seconds') RETURNING id",
    )
    .bind(strategy_id)
    .bind(SYMBOL)
    .bind(candle.open_time)
    .bind(action)
    .bind(candle.close)
    .bind(reason)
    .bind(status)
    .bind(status_reason)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// One filled order of a seeded trade.
struct Fill<'a> {
    side: &'a str,
    qty: Decimal,
    price: Decimal,
    fee: Decimal,
    at: DateTime<Utc>,
}

async fn order(pool: &PgPool, signal_id: i64, trade_id: i64, f: Fill<'_>) {
    sqlx::query(
        "INSERT INTO orders (idempotency_key, signal_id, trade_id, symbol, side, quantity, price, notional, fee, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(format!("signal-{signal_id}"))
    .bind(signal_id)
    .bind(trade_id)
    .bind(SYMBOL)
    .bind(f.side)
    .bind(f.qty)
    .bind(f.price)
    .bind(f.qty * f.price)
    .bind(f.fee)
    .bind(f.at)
    .execute(pool)
    .await
    .unwrap();
}

pub async fn seed(pool: &PgPool, now: DateTime<Utc>) -> Seeded {
    sqlx::query(
        "INSERT INTO instruments (symbol, base_asset, quote_asset) VALUES ($1, 'BTC', 'USDT')",
    )
    .bind(SYMBOL)
    .execute(pool)
    .await
    .unwrap();
    let candles = candles(now);
    store::candles::upsert(pool, SYMBOL, Timeframe::M1, &candles)
        .await
        .unwrap();
    let params = serde_json::json!({"fast": 5, "slow": 20});
    let strategy = store::strategies::create(
        pool,
        &store::strategies::StrategySpec {
            name: "btc-sma-5-20".into(),
            params: StrategyParams::parse(trading_agent::domain::StrategyKind::SmaCross, &params)
                .unwrap(),
            symbols: vec![SYMBOL.into()],
            timeframe: Timeframe::M1,
            enabled: true,
            exits: Default::default(),
        },
    )
    .await
    .unwrap();
    let sid = strategy.id;
    // A second strategy on the same market, without trades: its RSI goes in the pane below.
    let rsi = serde_json::json!({"period": 14, "oversold": 30, "overbought": 70});
    store::strategies::create(
        pool,
        &store::strategies::StrategySpec {
            name: "btc-rsi-14".into(),
            params: StrategyParams::parse(trading_agent::domain::StrategyKind::Rsi, &rsi).unwrap(),
            symbols: vec![SYMBOL.into()],
            timeframe: Timeframe::M1,
            enabled: true,
            exits: Default::default(),
        },
    )
    .await
    .unwrap();
    let minute = Timeframe::M1.duration();
    let qty = Decimal::new(5, 1);
    let fee = Decimal::new(5, 2);

    // A closed trade: entered after candle 100, left after candle 149.
    let s1 = signal(
        pool,
        sid,
        &candles[100],
        "buy",
        "executed",
        None,
        "sma 5 crossed above sma 20",
    )
    .await;
    let s2 = signal(
        pool,
        sid,
        &candles[149],
        "sell",
        "executed",
        None,
        "sma 5 crossed below sma 20",
    )
    .await;
    let entry = candles[100].close;
    let exit = candles[149].close;
    let profit = (exit - entry) * qty - fee - fee;
    let opened_at = candles[100].open_time + minute + chrono::Duration::seconds(1);
    let closed_at = candles[149].open_time + minute + chrono::Duration::seconds(1);
    let closed_trade: i64 = sqlx::query_scalar(
        "INSERT INTO trades (symbol, strategy_id, status, quantity, entry_price, entry_fee, opened_at,
                             exit_price, exit_fee, closed_at, profit)
         VALUES ($1, $2, 'closed', $3, $4, $5, $6, $7, $5, $8, $9) RETURNING id",
    )
    .bind(SYMBOL)
    .bind(sid)
    .bind(qty)
    .bind(entry)
    .bind(fee)
    .bind(opened_at)
    .bind(exit)
    .bind(closed_at)
    .bind(profit)
    .fetch_one(pool)
    .await
    .unwrap();
    order(
        pool,
        s1,
        closed_trade,
        Fill {
            side: "buy",
            qty,
            price: entry,
            fee,
            at: opened_at,
        },
    )
    .await;
    order(
        pool,
        s2,
        closed_trade,
        Fill {
            side: "sell",
            qty,
            price: exit,
            fee,
            at: closed_at,
        },
    )
    .await;

    // A rejected signal, and an open trade entered after candle 280.
    let s3 = signal(
        pool,
        sid,
        &candles[200],
        "sell",
        "rejected",
        Some("no_open_trade: nothing to sell"),
        "sma 5 crossed below sma 20",
    )
    .await;
    let s4 = signal(
        pool,
        sid,
        &candles[280],
        "buy",
        "executed",
        None,
        "sma 5 crossed above sma 20",
    )
    .await;
    let open_entry = candles[280].close;
    let open_at = candles[280].open_time + minute + chrono::Duration::seconds(1);
    let open_trade: i64 = sqlx::query_scalar(
        "INSERT INTO trades (symbol, strategy_id, status, quantity, entry_price, entry_fee, opened_at)
         VALUES ($1, $2, 'open', $3, $4, $5, $6) RETURNING id",
    )
    .bind(SYMBOL)
    .bind(sid)
    .bind(qty)
    .bind(open_entry)
    .bind(fee)
    .bind(open_at)
    .fetch_one(pool)
    .await
    .unwrap();
    order(
        pool,
        s4,
        open_trade,
        Fill {
            side: "buy",
            qty,
            price: open_entry,
            fee,
            at: open_at,
        },
    )
    .await;
    sqlx::query("UPDATE account SET balance = starting_balance + $1 - $2")
        .bind(profit)
        .bind(qty * open_entry + fee)
        .execute(pool)
        .await
        .unwrap();

    // Heartbeats: two live workers and one gone quiet an hour ago.
    let started_at = now - chrono::Duration::minutes(10);
    let builds = vec![
        ("bot-7f9c", build("c0ffee1", NEW_DIGEST)),
        ("strategy-5d2a", build("c0ffee1", NEW_DIGEST)),
        ("strategy-old", build("0ld0ld0", OLD_DIGEST)),
    ];
    for ((role, instance), (_, build)) in [
        ("bot", "bot-7f9c"),
        ("strategy", "strategy-5d2a"),
        ("strategy", "strategy-old"),
    ]
    .into_iter()
    .zip(&builds)
    {
        store::heartbeats::beat(
            pool,
            &store::heartbeats::Heartbeat {
                role,
                instance,
                started_at,
                tick_interval_ms: 2000,
                stall_after_ms: 3_600_000,
                build,
            },
        )
        .await
        .unwrap();
    }
    sqlx::query(
        "UPDATE component_heartbeats SET last_tick_at = now() - interval '2 hours', stall_after_ms = 10000
         WHERE instance = 'strategy-old'",
    )
    .execute(pool)
    .await
    .unwrap();

    Seeded {
        candles,
        strategy_id: sid,
        markers: vec![
            format!("signal:{s1}"),
            format!("signal:{s2}"),
            format!("signal:{s3}"),
            format!("signal:{s4}"),
            format!("entry:{closed_trade}"),
            format!("exit:{closed_trade}"),
            format!("entry:{open_trade}"),
        ],
        closed_trade,
        open_trade,
        closed_profit: profit,
        components: vec![
            ("bot", "bot-7f9c", false),
            ("strategy", "strategy-5d2a", false),
            ("strategy", "strategy-old", true),
        ],
        builds,
    }
}
