//! The bot against a real PostgreSQL: two instances never execute a signal twice, a crash between
//! claim and commit leaves exactly one order after restart, risk rejections are recorded, and the
//! webhook outbox retries with back-off.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Json;
use axum::http::StatusCode;
use chrono::{Duration as ChronoDuration, Utc};
use rust_decimal::Decimal;
use sqlx::PgPool;
use tokio::sync::Mutex;
use trading_agent::config::WebhookConfig;
use trading_agent::domain::strategy::CrossParams;
use trading_agent::domain::{Action, BotState, RiskLimits, StrategyParams, Timeframe};
use trading_agent::metrics::Metrics;
use trading_agent::store::events::{Level, NewEvent};
use trading_agent::store::signals::NewStrategySignal;
use trading_agent::store::{self, strategies::StrategySpec};
use trading_agent::workers::bot::{Bot, Outcome};
use trading_agent::workers::notifier::Notifier;

use common::{Process, d, database, eventually, free_port};

fn limits() -> RiskLimits {
    RiskLimits {
        stake_amount: d("100"),
        max_open_trades: 1000,
        max_notional: d("1000"),
        daily_loss_limit: d("500"),
        fee_rate: d("0.001"),
        slippage_bps: d("5"),
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

/// Instruments `S000..`, one strategy over them, and one buy signal per symbol at price 100.
async fn buy_signals(pool: &PgPool, n: usize) -> Vec<String> {
    let symbols: Vec<String> = (0..n).map(|i| format!("S{i:03}")).collect();
    for s in &symbols {
        store::instruments::create(pool, s, s, "USDT")
            .await
            .unwrap();
    }
    let strategy = store::strategies::create(
        pool,
        &StrategySpec {
            name: "test".into(),
            params: StrategyParams::SmaCross(CrossParams { fast: 2, slow: 3 }),
            symbols: symbols.clone(),
            timeframe: Timeframe::M1,
            enabled: true,
            exits: Default::default(),
        },
    )
    .await
    .unwrap();
    let candle = Timeframe::M1.last_closed_open_time(Utc::now());
    for s in &symbols {
        signal(pool, strategy.id, s, Action::Buy, candle).await;
    }
    symbols
}

async fn signal(
    pool: &PgPool,
    strategy_id: i64,
    symbol: &str,
    action: Action,
    candle: chrono::DateTime<Utc>,
) {
    let written = store::signals::insert_strategy_signal(
        pool,
        &NewStrategySignal {
            strategy_id,
            symbol,
            timeframe: Timeframe::M1,
            candle_open_time: candle,
            action,
            price: d("100"),
            reason: "test".into(),
        },
    )
    .await
    .unwrap();
    assert!(written);
}

async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_bots_execute_every_signal_exactly_once() {
    let db = database("twobots").await;
    let n = 60;
    buy_signals(&db.pool, n).await;

    let mut handles = Vec::new();
    let start = Arc::new(tokio::sync::Barrier::new(2));
    for _ in 0..2 {
        // Each bot has its own pool, as separate replicas would.
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect(&db.url)
            .await
            .unwrap();
        let start = start.clone();
        handles.push(tokio::spawn(async move {
            let bot = bot(limits());
            start.wait().await;
            let mut executed = Vec::new();
            while let Some((signal, outcome)) = bot.process_next(&pool).await.unwrap() {
                assert!(matches!(outcome, Outcome::Executed { .. }), "{outcome:?}");
                executed.push(signal);
            }
            executed
        }));
    }
    let mut per_bot = Vec::new();
    for h in handles {
        per_bot.push(h.await.unwrap());
    }
    let mut all: Vec<i64> = per_bot.concat();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), n, "each signal handled by exactly one bot");
    assert_eq!(per_bot[0].len() + per_bot[1].len(), n);
    assert!(
        per_bot.iter().all(|b| !b.is_empty()),
        "both bots worked: {:?}",
        per_bot.iter().map(Vec::len).collect::<Vec<_>>()
    );

    let pool = &db.pool;
    assert_eq!(count(pool, "SELECT count(*) FROM orders").await, n as i64);
    assert_eq!(
        count(pool, "SELECT count(DISTINCT signal_id) FROM orders").await,
        n as i64
    );
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM signals WHERE status <> 'executed'"
        )
        .await,
        0
    );
    assert_eq!(
        count(pool, "SELECT count(*) FROM trades WHERE status = 'open'").await,
        n as i64
    );
    // Every fill was paid for exactly once.
    let (balance, spent): (Decimal, Decimal) = sqlx::query_as(
        "SELECT (SELECT balance FROM account), (SELECT sum(notional + fee) FROM orders)",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(balance + spent, d("10000"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_between_claim_and_commit_leaves_exactly_one_order() {
    let db = database("crash").await;
    buy_signals(&db.pool, 1).await;
    let env = |port: &str| {
        vec![
            ("DATABASE_URL", db.url.clone()),
            ("PORT", port.to_owned()),
            ("BIND_ADDRESS", "127.0.0.1".to_owned()),
            ("TICK_INTERVAL", "200ms".to_owned()),
        ]
    };

    // The first bot claims the signal and dies before committing.
    let port = free_port().to_string();
    let mut vars = env(&port);
    vars.push(("TRADING_AGENT_FAULT", "crash-after-claim".to_owned()));
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut crashing = Process::spawn(&["bot"], &vars);
    let status = crashing
        .wait_timeout(Duration::from_secs(30))
        .expect("the faulty bot aborts");
    assert!(
        !status.success(),
        "aborted: {status:?}\n{}",
        crashing.output()
    );
    assert!(
        crashing.output().contains("fault injection"),
        "{}",
        crashing.output()
    );
    let pool = &db.pool;
    assert_eq!(
        count(pool, "SELECT count(*) FROM orders").await,
        0,
        "nothing committed"
    );
    assert_eq!(
        count(pool, "SELECT count(*) FROM signals WHERE status = 'new'").await,
        1
    );

    // A restarted bot picks the signal up through its normal tick: exactly one order.
    let port = free_port().to_string();
    let vars = env(&port);
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut restarted = Process::spawn(&["bot"], &vars);
    eventually(
        Duration::from_secs(30),
        "the signal to be executed",
        || async {
            count(
                pool,
                "SELECT count(*) FROM signals WHERE status = 'executed'",
            )
            .await
                == 1
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await; // a few more ticks
    assert_eq!(count(pool, "SELECT count(*) FROM orders").await, 1);
    assert_eq!(count(pool, "SELECT count(*) FROM trades").await, 1);
    restarted.sigterm();
    let status = restarted
        .wait_timeout(Duration::from_secs(10))
        .expect("bot stops on SIGTERM");
    assert!(status.success(), "{status:?}\n{}", restarted.output());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn risk_rejections_are_recorded_and_exits_close_trades() {
    let db = database("risk").await;
    let pool = &db.pool;
    let symbols = buy_signals(pool, 3).await;
    let mut two_trades = limits();
    two_trades.max_open_trades = 2;
    let bot = bot(two_trades);
    let mut outcomes = Vec::new();
    while let Some((_, outcome)) = bot.process_next(pool).await.unwrap() {
        outcomes.push(outcome);
    }
    assert!(matches!(outcomes[0], Outcome::Executed { .. }));
    assert!(matches!(outcomes[1], Outcome::Executed { .. }));
    assert!(matches!(&outcomes[2], Outcome::Rejected(r) if r.code() == "max_open_trades"));
    let reason: String = sqlx::query_scalar("SELECT status_reason FROM signals WHERE symbol = $1")
        .bind(&symbols[2])
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(reason, "max_open_trades: max open trades reached (2)");
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM events WHERE kind = 'signal_rejected'"
        )
        .await,
        1
    );

    // A sell closes the trade at 100 less slippage: a small loss of the fees and slippage.
    let candle = Timeframe::M1.last_closed_open_time(Utc::now());
    signal(pool, 1, &symbols[0], Action::Sell, candle).await;
    // A sell without an open trade is a routine rejection: no event.
    signal(pool, 1, &symbols[2], Action::Sell, candle).await;
    while bot.process_next(pool).await.unwrap().is_some() {}
    let profit: Decimal = sqlx::query_scalar("SELECT profit FROM trades WHERE symbol = $1")
        .bind(&symbols[0])
        .fetch_one(pool)
        .await
        .unwrap();
    // buy: 100.05, qty 0.99950024, notional 99.99999901, fee 0.1 (rounded up)
    // sell: 99.95, notional 99.90004899, fee 0.09990005;
    // profit = 99.90004899 - 0.09990005 - 99.99999901 - 0.1 = -0.29985007
    assert_eq!(profit, d("-0.29985007"));
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM events WHERE kind = 'signal_rejected'"
        )
        .await,
        1
    );

    // A stopped bot rejects strategy entries.
    store::bot::set_state(pool, BotState::Stopped)
        .await
        .unwrap();
    signal(
        pool,
        1,
        &symbols[0],
        Action::Buy,
        candle - ChronoDuration::minutes(1),
    )
    .await;
    let (_, outcome) = bot.process_next(pool).await.unwrap().unwrap();
    assert!(matches!(outcome, Outcome::Rejected(r) if r.code() == "bot_stopped"));

    // The daily loss halt: today's realised loss above the limit stops entries.
    store::bot::set_state(pool, BotState::Running)
        .await
        .unwrap();
    let mut tight = limits();
    tight.daily_loss_limit = d("0.1");
    let halted = Bot {
        limits: tight,
        ..bot
    };
    signal(
        pool,
        1,
        &symbols[0],
        Action::Buy,
        candle - ChronoDuration::minutes(2),
    )
    .await;
    let (_, outcome) = halted.process_next(pool).await.unwrap().unwrap();
    assert!(matches!(outcome, Outcome::Rejected(r) if r.code() == "daily_loss_halt"));

    // GET /api/v2/bot tells the halt once the bot has judged it (every tick), and its end.
    assert_eq!(store::bot::state(pool).await.unwrap().daily_loss_halt, None);
    halted.judge_daily_loss(pool, Utc::now()).await.unwrap();
    let status = store::bot::state(pool).await.unwrap();
    let halt = status.daily_loss_halt.clone().expect("halted");
    assert_eq!(
        halt.message,
        "daily loss limit reached: realised -0.29985007 USDT today, limit 0.1"
    );
    let body = serde_json::to_value(&status).unwrap();
    assert_eq!(body["state"], "running");
    assert_eq!(body["daily_loss_halt"]["message"], halt.message.as_str());
    // Judged again: the same halt, since the same time (no write).
    halted.judge_daily_loss(pool, Utc::now()).await.unwrap();
    assert_eq!(
        store::bot::state(pool).await.unwrap().daily_loss_halt,
        Some(halt)
    );
    // The limit no longer reached (a wider one here; a new UTC day in production): it ends.
    let relaxed = Bot {
        limits: limits(),
        ..halted
    };
    relaxed.judge_daily_loss(pool, Utc::now()).await.unwrap();
    let status = store::bot::state(pool).await.unwrap();
    assert_eq!(status.daily_loss_halt, None);
    assert!(serde_json::to_value(&status).unwrap()["daily_loss_halt"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_delivery_retries_with_backoff_then_gives_up() {
    let db = database("webhook").await;
    let pool = &db.pool;

    // A webhook that fails twice, then accepts; it records what it received.
    let calls = Arc::new(AtomicUsize::new(0));
    let received = Arc::new(Mutex::new(Vec::<serde_json::Value>::new()));
    let app = axum::Router::new()
        .route(
            "/hook",
            axum::routing::post({
                let (calls, received) = (calls.clone(), received.clone());
                move |Json(body): Json<serde_json::Value>| async move {
                    received.lock().await.push(body);
                    if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                        StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        StatusCode::NO_CONTENT
                    }
                }
            }),
        )
        .route(
            "/broken",
            axum::routing::post(|| async { StatusCode::BAD_GATEWAY }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let mut conn = pool.acquire().await.unwrap();
    let event = store::events::record(
        &mut conn,
        &NewEvent {
            level: Level::Info,
            kind: "trade_opened",
            message: "bought".into(),
            data: serde_json::json!({"trade_id": 7}),
            notify: true,
            dedup_key: None,
        },
    )
    .await
    .unwrap()
    .unwrap();
    drop(conn);

    let notifier = Notifier::new(
        WebhookConfig {
            url: format!("{base}/hook").as_str().into(),
            retry_base: Duration::from_millis(200),
            max_attempts: 5,
        },
        Metrics::new("bot"),
    )
    .unwrap();
    // First attempt fails; an immediate second pass finds nothing due (back-off).
    assert_eq!(notifier.deliver_due(pool).await.unwrap(), 0);
    assert_eq!(notifier.deliver_due(pool).await.unwrap(), 0);
    assert_eq!(calls.load(Ordering::SeqCst), 1, "back-off respected");
    eventually(Duration::from_secs(10), "delivery", || async {
        notifier.deliver_due(pool).await.unwrap();
        count(
            pool,
            "SELECT count(*) FROM notification_outbox WHERE status = 'delivered'",
        )
        .await
            == 1
    })
    .await;
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let attempts: i32 =
        sqlx::query_scalar("SELECT attempts FROM notification_outbox WHERE event_id = $1")
            .bind(event)
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(attempts, 3);
    let bodies = received.lock().await;
    assert_eq!(bodies[2]["id"], event);
    assert_eq!(bodies[2]["kind"], "trade_opened");
    assert_eq!(bodies[2]["data"]["trade_id"], 7);
    drop(bodies);

    // An endpoint that never accepts: given up after max_attempts.
    let mut conn = pool.acquire().await.unwrap();
    store::events::record(
        &mut conn,
        &NewEvent {
            level: Level::Warning,
            kind: "data_gap",
            message: "gap".into(),
            data: serde_json::json!({}),
            notify: true,
            dedup_key: None,
        },
    )
    .await
    .unwrap();
    drop(conn);
    let broken = Notifier::new(
        WebhookConfig {
            url: format!("{base}/broken").as_str().into(),
            retry_base: Duration::from_millis(10),
            max_attempts: 2,
        },
        Metrics::new("bot"),
    )
    .unwrap();
    eventually(Duration::from_secs(10), "giving up", || async {
        broken.deliver_due(pool).await.unwrap();
        count(
            pool,
            "SELECT count(*) FROM notification_outbox WHERE status = 'failed'",
        )
        .await
            == 1
    })
    .await;
    let (attempts, error): (i32, String) = sqlx::query_as(
        "SELECT attempts, last_error FROM notification_outbox WHERE status = 'failed'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(attempts, 2);
    assert!(error.contains("502"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_signal_wakes_the_bot_at_once() {
    let db = database("wake").await;
    let pool = &db.pool;
    let port = free_port();
    let env = [
        ("DATABASE_URL", db.url.clone()),
        ("PORT", port.to_string()),
        ("BIND_ADDRESS", "127.0.0.1".to_owned()),
        // Polling alone would take a minute.
        ("TICK_INTERVAL", "60s".to_owned()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut bot = Process::spawn(&["bot"], &env);
    eventually(Duration::from_secs(30), "the bot to LISTEN", || async {
        count(pool, "SELECT count(*) FROM pg_stat_activity WHERE query ILIKE 'LISTEN%trading_agent_signals%'").await == 1
    })
    .await;
    let written = std::time::Instant::now();
    buy_signals(pool, 1).await;
    eventually(Duration::from_secs(10), "execution", || async {
        count(pool, "SELECT count(*) FROM orders").await == 1
    })
    .await;
    assert!(
        written.elapsed() < Duration::from_secs(10),
        "woken by NOTIFY, not by the 60 s poll"
    );
    bot.sigterm();
    let status = bot
        .wait_timeout(Duration::from_secs(10))
        .expect("bot stops on SIGTERM");
    assert!(status.success(), "{status:?}\n{}", bot.output());
}
