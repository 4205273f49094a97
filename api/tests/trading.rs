//! Trading a trader can trust (issue 16), against a real PostgreSQL: one test per defect found in
//! the trading path. Each fails on the code before its fix.

mod common;

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use rust_decimal::Decimal;
use sqlx::PgPool;
use trading_agent::domain::strategy::CrossParams;
use trading_agent::domain::{Action, BotState, Candle, RiskLimits, StrategyParams, Timeframe};
use trading_agent::metrics::Metrics;
use trading_agent::store::signals::{NewManualSignal, NewStrategySignal};
use trading_agent::store::{self, strategies::StrategySpec};
use trading_agent::workers::bot::{Bot, Outcome};

use common::{d, database};

fn limits() -> RiskLimits {
    RiskLimits {
        stake_amount: d("100"),
        max_open_trades: 100,
        max_notional: d("1000"),
        daily_loss_limit: d("500"),
        fee_rate: d("0.001"),
        slippage_bps: d("0"),
        max_signal_age: ChronoDuration::minutes(15),
        max_price_age: ChronoDuration::minutes(5),
    }
}

fn bot(limits: RiskLimits) -> Bot {
    Bot {
        limits,
        metrics: Metrics::new("bot"),
        fault: None,
        starting_wallet: Vec::new(),
    }
}

async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

/// A 1m candle closing at `close` that opened at `open_time`.
fn candle(open_time: DateTime<Utc>, close: &str) -> Candle {
    Candle {
        open_time,
        open: d(close),
        high: d(close),
        low: d(close),
        close: d(close),
        volume: Decimal::ONE,
    }
}

/// The instrument with its newest closed 1m candle at `close`.
async fn instrument(pool: &PgPool, symbol: &str, close: &str) {
    store::instruments::create(pool, symbol, symbol, "USDT")
        .await
        .unwrap();
    let last = Timeframe::M1.last_closed_open_time(Utc::now());
    store::candles::upsert(pool, symbol, Timeframe::M1, &[candle(last, close)])
        .await
        .unwrap();
}

async fn strategy(pool: &PgPool, name: &str, symbols: &[&str]) -> i64 {
    strategy_with_exits(pool, name, symbols, serde_json::json!({})).await
}

async fn strategy_with_exits(
    pool: &PgPool,
    name: &str,
    symbols: &[&str],
    exits: serde_json::Value,
) -> i64 {
    store::strategies::create(
        pool,
        &StrategySpec {
            name: name.into(),
            params: StrategyParams::SmaCross(CrossParams { fast: 2, slow: 3 }),
            symbols: symbols.iter().map(|s| s.to_string()).collect(),
            timeframe: Timeframe::M1,
            enabled: true,
            exits: serde_json::from_value(exits).unwrap(),
        },
    )
    .await
    .unwrap()
    .id
}

/// A strategy signal at `price` on a candle `minutes_ago` before the last closed one.
async fn strategy_signal(
    pool: &PgPool,
    strategy_id: i64,
    symbol: &str,
    action: Action,
    price: &str,
    minutes_ago: i64,
) -> i64 {
    let candle =
        Timeframe::M1.last_closed_open_time(Utc::now()) - ChronoDuration::minutes(minutes_ago);
    assert!(
        store::signals::insert_strategy_signal(
            pool,
            &NewStrategySignal {
                strategy_id,
                symbol,
                timeframe: Timeframe::M1,
                candle_open_time: candle,
                action,
                price: d(price),
                reason: "test".into(),
            },
        )
        .await
        .unwrap()
    );
    sqlx::query_scalar("SELECT max(id) FROM signals")
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn manual_signal(
    pool: &PgPool,
    symbol: &str,
    action: Action,
    stake: Option<&str>,
    key: &str,
) -> i64 {
    let mut conn = pool.acquire().await.unwrap();
    let (signal, created) = store::signals::insert_manual(
        &mut conn,
        &NewManualSignal {
            symbol,
            action,
            stake: stake.map(d),
            idempotency_key: key,
            reason: "test".into(),
        },
    )
    .await
    .unwrap();
    assert!(created);
    signal.id
}

async fn status_of(pool: &PgPool, signal: i64) -> (String, Option<String>) {
    sqlx::query_as("SELECT status, status_reason FROM signals WHERE id = $1")
        .bind(signal)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Runs the bot until no signal is left; the outcomes in order.
async fn drain(bot: &Bot, pool: &PgPool) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    while let Some((_, outcome)) = bot.process_next(pool).await.unwrap() {
        outcomes.push(outcome);
    }
    outcomes
}

fn code(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Executed { .. } | Outcome::AlreadyExecuted => "executed",
        Outcome::Rejected(r) => r.code(),
    }
}

/// Defect: a stake that buys a notional rounding to 0 failed the `orders.notional > 0` check, rolled
/// back, and left the signal `new` at the head of the queue for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_stake_is_rejected_and_the_queue_moves_on() {
    let db = database("tinystake").await;
    let pool = &db.pool;
    instrument(pool, "PENNY", "0.05").await;
    let tiny = manual_signal(pool, "PENNY", Action::Buy, Some("0.000000001"), "tiny").await;
    let normal = manual_signal(pool, "PENNY", Action::Buy, Some("10"), "normal").await;
    let outcomes = drain(&bot(limits()), pool).await;
    assert_eq!(
        outcomes.iter().map(code).collect::<Vec<_>>(),
        ["order_too_small", "executed"]
    );
    let (status, reason) = status_of(pool, tiny).await;
    assert_eq!(status, "rejected");
    assert!(reason.unwrap().starts_with("order_too_small:"));
    assert_eq!(status_of(pool, normal).await.0, "executed");
}

/// Defect: any deterministic execution error left the signal `new` and retried it forever. Here the
/// database refuses every order (a constraint added for the test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deterministic_execution_error_rejects_the_signal() {
    let db = database("execerror").await;
    let pool = &db.pool;
    instrument(pool, "BTCUSDT", "100").await;
    let first = manual_signal(pool, "BTCUSDT", Action::Buy, Some("10"), "one").await;
    let second = manual_signal(pool, "BTCUSDT", Action::Buy, Some("10"), "two").await;
    sqlx::query("ALTER TABLE orders ADD CONSTRAINT test_refuses_orders CHECK (quantity < 0)")
        .execute(pool)
        .await
        .unwrap();
    let outcomes = drain(&bot(limits()), pool).await;
    assert_eq!(
        outcomes.iter().map(code).collect::<Vec<_>>(),
        ["execution_failed", "execution_failed"]
    );
    for id in [first, second] {
        let (status, reason) = status_of(pool, id).await;
        assert_eq!(status, "rejected");
        let reason = reason.unwrap();
        assert!(reason.starts_with("execution_failed:"), "{reason}");
        assert!(!reason.contains("test_refuses_orders"), "{reason}");
    }
    assert_eq!(count(pool, "SELECT count(*) FROM trades").await, 0);
    assert_eq!(
        count(pool, "SELECT count(*) FROM signals WHERE status = 'new'").await,
        0
    );
}

/// Defect: the trade and order were written before the balance check, and the
/// `insufficient_balance` rejection committed them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_buy_leaves_nothing_behind() {
    let db = database("rejectedbuy").await;
    let pool = &db.pool;
    instrument(pool, "ONE", "1").await;
    let s = strategy(pool, "s", &["ONE"]).await;
    // Stake 1.23456789 at 1 with 0.1 % fee: the risk check needs 1.23580245789, the fill costs
    // 1.23456789 + 0.00123457 (fee rounded up) = 1.23580246. The balance lies in between.
    sqlx::query("UPDATE account SET balance = 1.2358024579")
        .execute(pool)
        .await
        .unwrap();
    strategy_signal(pool, s, "ONE", Action::Buy, "1", 0).await;
    let mut l = limits();
    l.stake_amount = d("1.23456789");
    let outcomes = drain(&bot(l), pool).await;
    assert_eq!(
        outcomes.iter().map(code).collect::<Vec<_>>(),
        ["insufficient_balance"]
    );
    assert_eq!(count(pool, "SELECT count(*) FROM trades").await, 0);
    assert_eq!(count(pool, "SELECT count(*) FROM orders").await, 0);
    let balance: Decimal = sqlx::query_scalar("SELECT balance FROM account")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(balance, d("1.2358024579"));
}

/// Defect: exits were lost: sells older than the signal age limit were rejected as stale, and a
/// stopped bot rejected strategy sells. Exits now run in every state and at any age.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exits_run_when_stopped_paused_or_late() {
    let db = database("exits").await;
    let pool = &db.pool;
    instrument(pool, "AAA", "100").await;
    instrument(pool, "BBB", "100").await;
    let s = strategy(pool, "s", &["AAA", "BBB"]).await;
    strategy_signal(pool, s, "AAA", Action::Buy, "100", 3).await;
    strategy_signal(pool, s, "BBB", Action::Buy, "100", 3).await;
    let bot = bot(limits());
    assert_eq!(
        drain(&bot, pool).await.iter().map(code).collect::<Vec<_>>(),
        ["executed", "executed"]
    );
    for (state, symbol, minutes_ago) in [
        (BotState::Stopped, "AAA", 2),
        (BotState::StopEntry, "BBB", 1),
    ] {
        store::bot::set_state(pool, state).await.unwrap();
        let sell = strategy_signal(pool, s, symbol, Action::Sell, "101", minutes_ago).await;
        // Written an hour ago (the feed or the bot was down meanwhile).
        sqlx::query("UPDATE signals SET created_at = now() - interval '1 hour' WHERE id = $1")
            .bind(sell)
            .execute(pool)
            .await
            .unwrap();
        let outcomes = drain(&bot, pool).await;
        assert_eq!(
            outcomes.iter().map(code).collect::<Vec<_>>(),
            ["executed"],
            "{state:?}"
        );
    }
    assert_eq!(
        count(pool, "SELECT count(*) FROM trades WHERE status = 'open'").await,
        0
    );
    // Entries stay refused while stopped or paused, and when stale.
    let buy = strategy_signal(pool, s, "AAA", Action::Buy, "100", 0).await;
    drain(&bot, pool).await;
    assert!(
        status_of(pool, buy)
            .await
            .1
            .unwrap()
            .starts_with("entries_paused")
    );
}

/// Defect: a sell from any strategy closed the symbol's open trade (manual ones included), and with
/// one open trade per symbol two strategies on a symbol blocked each other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strategies_own_their_trades() {
    let db = database("owners").await;
    let pool = &db.pool;
    instrument(pool, "ETHUSDT", "2000").await;
    let a = strategy(pool, "a", &["ETHUSDT"]).await;
    let b = strategy(pool, "b", &["ETHUSDT"]).await;
    strategy_signal(pool, a, "ETHUSDT", Action::Buy, "2000", 2).await;
    strategy_signal(pool, b, "ETHUSDT", Action::Buy, "2000", 2).await;
    manual_signal(pool, "ETHUSDT", Action::Buy, Some("50"), "mine").await;
    let bot = bot(limits());
    assert_eq!(
        drain(&bot, pool).await.iter().map(code).collect::<Vec<_>>(),
        ["executed", "executed", "executed"]
    );
    let owners = |status: &'static str| async move {
        let rows: Vec<(Option<i64>,)> = sqlx::query_as(
            "SELECT strategy_id FROM trades WHERE status = $1 ORDER BY strategy_id NULLS LAST",
        )
        .bind(status)
        .fetch_all(pool)
        .await
        .unwrap();
        rows.into_iter().map(|r| r.0).collect::<Vec<_>>()
    };
    assert_eq!(owners("open").await, [Some(a), Some(b), None]);

    // A's sell closes A's trade only; a second one has nothing to close.
    strategy_signal(pool, a, "ETHUSDT", Action::Sell, "2010", 1).await;
    strategy_signal(pool, a, "ETHUSDT", Action::Sell, "2010", 0).await;
    assert_eq!(
        drain(&bot, pool).await.iter().map(code).collect::<Vec<_>>(),
        ["executed", "no_open_trade"]
    );
    assert_eq!(owners("open").await, [Some(b), None]);
    assert_eq!(owners("closed").await, [Some(a)]);
    // A person's exit closes their own trade first.
    manual_signal(pool, "ETHUSDT", Action::Sell, None, "mine-out").await;
    drain(&bot, pool).await;
    assert_eq!(owners("open").await, [Some(b)]);
}

/// Defect: manual orders filled at the latest close of any age.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_orders_need_a_recent_price() {
    let db = database("staleprice").await;
    let pool = &db.pool;
    store::instruments::create(pool, "OLD", "OLD", "USDT")
        .await
        .unwrap();
    let two_hours_ago = Timeframe::M1.floor(Utc::now() - ChronoDuration::hours(2));
    store::candles::upsert(pool, "OLD", Timeframe::M1, &[candle(two_hours_ago, "10")])
        .await
        .unwrap();
    let stale = manual_signal(pool, "OLD", Action::Buy, Some("10"), "stale").await;
    let bot = bot(limits());
    assert_eq!(
        drain(&bot, pool).await.iter().map(code).collect::<Vec<_>>(),
        ["no_price"]
    );
    assert!(
        status_of(pool, stale)
            .await
            .1
            .unwrap()
            .starts_with("no_price")
    );
    let last = Timeframe::M1.last_closed_open_time(Utc::now());
    store::candles::upsert(pool, "OLD", Timeframe::M1, &[candle(last, "11")])
        .await
        .unwrap();
    manual_signal(pool, "OLD", Action::Buy, Some("10"), "fresh").await;
    assert_eq!(
        drain(&bot, pool).await.iter().map(code).collect::<Vec<_>>(),
        ["executed"]
    );
}

/// Defect: `fees_paid` left out the entry fees of open trades; and valuation multiplied unchecked,
/// so a stored quantity and price whose product leaves the decimal range panicked the handler.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profit_counts_every_fee_and_valuation_is_checked() {
    let db = database("profit").await;
    let pool = &db.pool;
    instrument(pool, "BTCUSDT", "100").await;
    let s = strategy(pool, "s", &["BTCUSDT"]).await;
    strategy_signal(pool, s, "BTCUSDT", Action::Buy, "100", 0).await;
    drain(&bot(limits()), pool).await;
    let api = common::TestApi::start(&db.url).await;
    let (status, profit) = api.get_json("/api/v2/profit").await;
    assert_eq!(status, 200, "{profit}");
    // Stake 100 at 100: notional 100, fee 0.1, paid although the trade is still open.
    assert_eq!(
        d(profit["fees_paid"].as_str().unwrap()),
        d("0.1"),
        "{profit}"
    );
    assert_eq!(profit["closed_trades"], 0);

    // 10^20 units at 10^-8, now quoted at 10^15: beyond the decimal range.
    instrument(pool, "HUGE", "1000000000000000").await;
    sqlx::query(
        "INSERT INTO trades (symbol, status, quantity, entry_price, entry_fee, opened_at)
         VALUES ('HUGE', 'open', 100000000000000000000, 0.00000001, 0, now())",
    )
    .execute(pool)
    .await
    .unwrap();
    for path in ["/api/v2/balance", "/api/v2/profit"] {
        let (status, body) = api.get_json(path).await;
        assert_eq!(status, 422, "{path}: {body}");
        assert_eq!(body["error"]["code"], "validation_failed", "{body}");
    }
}

/// Defect: `--help` printed the value of NOTIFY_WEBHOOK_URL (such URLs carry secrets).
#[test]
fn help_never_shows_the_webhook_url() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_trading-agent"))
        .args(["bot", "--help"])
        .env(
            "NOTIFY_WEBHOOK_URL",
            "https://hooks.example/services/T000/secret-path",
        )
        .env("API_TOKEN", "token-secret-0123456789")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success());
    assert!(help.contains("NOTIFY_WEBHOOK_URL"), "{help}");
    assert!(!help.contains("secret-path"), "{help}");
}

/// Defect: webhook delivery ran inside the bot's tick, POSTing entries one after another inside one
/// transaction with no heartbeat; a black-holed URL made the tick outlive the stall limit and the
/// kubelet restart the pod. Now: signals keep executing within seconds and `/healthz` stays 200
/// for the whole run (`BLACKHOLE_SECONDS`, 30 by default; 300 shows the 5 minutes of the issue).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_holed_webhook_never_touches_the_bot() {
    let seconds: u64 = std::env::var("BLACKHOLE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let db = database("blackhole").await;
    let pool = &db.pool;
    instrument(pool, "BTCUSDT", "100").await;
    // A webhook that accepts connections and never answers.
    let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hook = format!("http://{}/hook", hole.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        while let Ok((socket, _)) = hole.accept() {
            held.push(socket);
        }
    });
    let port = common::free_port();
    let env = [
        ("DATABASE_URL", db.url.clone()),
        ("PORT", port.to_string()),
        ("BIND_ADDRESS", "127.0.0.1".to_owned()),
        ("TICK_INTERVAL", "200ms".to_owned()),
        ("STALL_INTERVALS", "2".to_owned()),
        ("NOTIFY_WEBHOOK_URL", hook),
        ("NOTIFY_RETRY_BASE", "100ms".to_owned()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut bot = common::Process::spawn(&["bot"], &env);
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(2))
        .build()
        .unwrap();
    let healthz = format!("http://127.0.0.1:{port}/healthz");
    common::eventually(
        std::time::Duration::from_secs(30),
        "the bot to start",
        || async { client.get(&healthz).send().await.is_ok() },
    )
    .await;

    let started = std::time::Instant::now();
    let mut executed = 0;
    let mut unhealthy = Vec::new();
    while started.elapsed() < std::time::Duration::from_secs(seconds) {
        // Keep the price fresh, then one order a second, alternately in and out.
        let last = Timeframe::M1.last_closed_open_time(Utc::now());
        store::candles::upsert(pool, "BTCUSDT", Timeframe::M1, &[candle(last, "100")])
            .await
            .unwrap();
        let action = if executed % 2 == 0 {
            Action::Buy
        } else {
            Action::Sell
        };
        let id = manual_signal(pool, "BTCUSDT", action, None, &format!("o-{executed}")).await;
        let queued = std::time::Instant::now();
        loop {
            let status = client
                .get(&healthz)
                .send()
                .await
                .map(|r| r.status().as_u16());
            if status.as_ref().ok() != Some(&200) {
                unhealthy.push(format!("{:?}: {status:?}", started.elapsed()));
            }
            if status_of(pool, id).await.0 == "executed" {
                break;
            }
            assert!(
                queued.elapsed() < std::time::Duration::from_secs(3),
                "signal {id} not executed within 3 s (after {:?})\n{}",
                started.elapsed(),
                bot.output()
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        executed += 1;
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert!(unhealthy.is_empty(), "/healthz not 200: {unhealthy:?}");
    // The webhook was tried all along, and failures were recorded.
    let attempts: i64 =
        sqlx::query_scalar("SELECT COALESCE(sum(attempts), 0) FROM notification_outbox")
            .fetch_one(pool)
            .await
            .unwrap();
    assert!(attempts > 0, "no delivery was attempted");
    println!(
        "{executed} signals executed in {seconds} s beside a black-holed webhook; {attempts} delivery attempts timed out"
    );
    bot.sigterm();
    let status = bot
        .wait_timeout(std::time::Duration::from_secs(15))
        .expect("bot stops on SIGTERM");
    assert!(status.success(), "{status:?}\n{}", bot.output());
}

/// Exits that protect capital on a scripted price path: a stop-loss, a trailing stop, a minimal-ROI
/// table by trade age (each a strategy's), and a stop-loss set on one trade through the API. Each
/// trade closes at the first price that crosses its rule, with the reason recorded on the trade.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protective_exits_on_a_scripted_price_path() {
    let db = database("protect").await;
    let pool = &db.pool;
    let symbols = ["SL", "TS", "ROI", "MANUAL"];
    for symbol in symbols {
        instrument(pool, symbol, "100").await;
    }
    let sl = strategy_with_exits(
        pool,
        "sl",
        &["SL"],
        serde_json::json!({"stop_loss": "0.05"}),
    )
    .await;
    let ts = strategy_with_exits(
        pool,
        "ts",
        &["TS"],
        serde_json::json!({"trailing_stop": "0.03"}),
    )
    .await;
    let roi = strategy_with_exits(
        pool,
        "roi",
        &["ROI"],
        serde_json::json!({"minimal_roi": {"0": "0.10", "30": "0.02"}}),
    )
    .await;
    let plain = strategy(pool, "plain", &["MANUAL"]).await;
    for (id, symbol) in [(sl, "SL"), (ts, "TS"), (roi, "ROI"), (plain, "MANUAL")] {
        strategy_signal(pool, id, symbol, Action::Buy, "100", 0).await;
    }
    let bot = bot(limits());
    assert_eq!(drain(&bot, pool).await.len(), 4);
    let trade_of = |symbol: &'static str| async move {
        let id: i64 = sqlx::query_scalar("SELECT id FROM trades WHERE symbol = $1")
            .bind(symbol)
            .fetch_one(pool)
            .await
            .unwrap();
        id
    };
    // The plain strategy's trade gets a 2 % stop-loss of its own.
    let api = common::TestApi::start(&db.url).await;
    let manual = trade_of("MANUAL").await;
    let (status, body) = api
        .send_json(
            reqwest::Method::PUT,
            &format!("/api/v2/trades/{manual}/exits"),
            serde_json::json!({"stop_loss": "0.02"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["exits"]["stop_loss"], "0.02");
    let (status, body) = api
        .send_json(
            reqwest::Method::PUT,
            &format!("/api/v2/trades/{manual}/exits"),
            serde_json::json!({"stop_loss": "2"}),
        )
        .await;
    assert_eq!(status, 422, "{body}");

    // (minutes after entry, SL, TS, ROI, MANUAL)
    let path: [(i64, &str, &str, &str, &str); 6] = [
        (0, "99", "104", "105", "99"),
        (1, "97", "108", "109", "98.5"),
        (2, "95.5", "106", "104", "97.9"), // MANUAL: 2.1 % down, stop-loss
        (3, "94.9", "104.7", "103", "97"), // SL: 5.1 % down; TS: 3.06 % below 108
        (31, "94", "104", "103", "96"),    // ROI: 3 % after 30 minutes
        (32, "90", "90", "90", "90"),
    ];
    let mut closed_at_step = std::collections::BTreeMap::new();
    for (step, (minutes, prices)) in path
        .iter()
        .map(|&(m, a, b, c, e)| (m, [a, b, c, e]))
        .enumerate()
    {
        let forming = Timeframe::M1.floor(Utc::now());
        for (symbol, price) in symbols.iter().zip(prices) {
            store::candles::upsert(pool, symbol, Timeframe::M1, &[candle(forming, price)])
                .await
                .unwrap();
        }
        // The trades' age at this step.
        sqlx::query("UPDATE trades SET opened_at = now() - make_interval(mins => $1::int)")
            .bind(minutes as i32)
            .execute(pool)
            .await
            .unwrap();
        bot.protect(pool, Utc::now()).await.unwrap();
        drain(&bot, pool).await;
        for symbol in symbols {
            let open: bool =
                sqlx::query_scalar("SELECT status = 'open' FROM trades WHERE symbol = $1")
                    .bind(symbol)
                    .fetch_one(pool)
                    .await
                    .unwrap();
            if !open {
                closed_at_step.entry(symbol).or_insert(step);
            }
        }
    }
    assert_eq!(
        closed_at_step,
        [("MANUAL", 2), ("ROI", 4), ("SL", 3), ("TS", 3)].into(),
        "step at which each trade closed"
    );
    let closed: Vec<(String, String, Decimal, Option<Decimal>)> = sqlx::query_as(
        "SELECT symbol, exit_reason, exit_price, peak_price FROM trades ORDER BY symbol",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(
        closed,
        [
            (
                "MANUAL".into(),
                "stop_loss".into(),
                d("97.9"),
                Some(d("100"))
            ),
            ("ROI".into(), "roi".into(), d("103"), Some(d("109"))),
            ("SL".into(), "stop_loss".into(), d("94.9"), Some(d("100"))),
            (
                "TS".into(),
                "trailing_stop".into(),
                d("104.7"),
                Some(d("108"))
            ),
        ]
    );
    // Each exit was a signal aimed at its trade, with its reason.
    let exits: Vec<(Option<i64>, Option<String>)> = sqlx::query_as(
        "SELECT trade_id, exit_reason FROM signals WHERE action = 'sell' ORDER BY trade_id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(exits.len(), 4, "{exits:?}");
    assert!(
        exits.iter().all(|(t, r)| t.is_some() && r.is_some()),
        "{exits:?}"
    );
    let (_, body) = api.get_json(&format!("/api/v2/trades/{manual}")).await;
    assert_eq!(body["exit_reason"], "stop_loss", "{body}");
}

/// Defect: the account was fixed at 10,000 "USDT", and an ETHBTC buy spent it as if it were BTC.
/// Each quote currency now has its own balance, and the starting wallet is configurable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_quote_currency_has_its_own_balance() {
    let db = database("wallet").await;
    let pool = &db.pool;
    store::instruments::create(pool, "ETHBTC", "ETH", "BTC")
        .await
        .unwrap();
    let last = Timeframe::M1.last_closed_open_time(Utc::now());
    store::candles::upsert(pool, "ETHBTC", Timeframe::M1, &[candle(last, "0.05")])
        .await
        .unwrap();
    // No BTC in the wallet: the buy is refused, the USDT untouched.
    manual_signal(pool, "ETHBTC", Action::Buy, Some("0.1"), "no-btc").await;
    let mut bot = bot(limits());
    assert_eq!(
        drain(&bot, pool).await.iter().map(code).collect::<Vec<_>>(),
        ["insufficient_balance"]
    );
    // A starting wallet with 1 BTC (the USDT already held is not reset).
    bot.starting_wallet = vec![("BTC".into(), d("1")), ("USDT".into(), d("5"))];
    bot.apply_starting_wallet(pool).await.unwrap();
    manual_signal(pool, "ETHBTC", Action::Buy, Some("0.1"), "with-btc").await;
    assert_eq!(
        drain(&bot, pool).await.iter().map(code).collect::<Vec<_>>(),
        ["executed"]
    );
    let wallet = || async {
        let rows: Vec<(String, Decimal)> =
            sqlx::query_as("SELECT currency, balance FROM balances ORDER BY currency")
                .fetch_all(pool)
                .await
                .unwrap();
        rows
    };
    // 0.1 BTC buys 2 ETH at 0.05; fee 0.0001 BTC.
    assert_eq!(
        wallet().await,
        vec![("BTC".into(), d("0.8999")), ("USDT".into(), d("10000"))]
    );
    let api = common::TestApi::start(&db.url).await;
    let (status, balance) = api.get_json("/api/v2/balance").await;
    assert_eq!(status, 200, "{balance}");
    assert_eq!(balance["currency"], "USDT");
    assert_eq!(d(balance["free"].as_str().unwrap()), d("10000"));
    assert_eq!(balance["currencies"][1]["currency"], "BTC", "{balance}");
    assert_eq!(
        d(balance["currencies"][1]["free"].as_str().unwrap()),
        d("0.8999")
    );
    assert_eq!(balance["currencies"][1]["open_trades"], 1);
    let (_, profit) = api.get_json("/api/v2/profit").await;
    assert_eq!(
        d(profit["currencies"][1]["fees_paid"].as_str().unwrap()),
        d("0.0001"),
        "{profit}"
    );
    assert_eq!(d(profit["fees_paid"].as_str().unwrap()), d("0"), "{profit}");
}
