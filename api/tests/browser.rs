//! The dashboard in a real browser: Debian's chromium, headless, driven by playwright-core
//! (`api/dashboard/tests/browser.mjs`), against the real `trading-agent api` binary on a real
//! PostgreSQL holding a seeded market. The script signs in (and is refused with a wrong token),
//! checks the overview's components with the build and image digest each runs and the equity
//! curve, the chart's candles and markers against what was seeded, zoom and scroll, a live candle,
//! trades filtered and sorted with per-strategy statistics and a trade's orders, the API's
//! validation message on the strategy form, edit and disable, the confirmed bot controls with the
//! API's answers, a notification written here arriving live, a phone-sized dark screen, and fails
//! on any browser console error. Screenshots go to
//! `$CARGO_TARGET_TMPDIR/dashboard-screenshots`.
//!
//! Needs `node` (which also builds the dashboard) and Debian's chromium (`scripts/deps.sh`).

mod common;
#[path = "common/dashboard_seed.rs"]
mod seed;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use chrono::Utc;
use trading_agent::store;
use trading_agent::store::events::{Level, NewEvent};

use common::{Process, TOKEN, database, eventually, free_port};

fn chromium() -> PathBuf {
    let path =
        PathBuf::from(std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()));
    assert!(
        path.exists(),
        "{} is missing: the browser test needs Debian's chromium (scripts/deps.sh installs it)",
        path.display()
    );
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_chromium() {
    let chromium = chromium();
    let db = database("dashboard_browser").await;
    let seeded = seed::seed(&db.pool, Utc::now()).await;

    // Two equity snapshots, as the bot writes them once a minute.
    for minutes_ago in [30, 2] {
        store::equity::snapshot_if_due(
            &db.pool,
            Utc::now() - chrono::Duration::minutes(minutes_ago),
        )
        .await
        .unwrap();
    }
    // What USDT is worth by the database's own sums: cash plus the open trade at the last close.
    let worth: rust_decimal::Decimal = sqlx::query_scalar(
        "SELECT (SELECT balance FROM account WHERE currency = 'USDT')
              + COALESCE((SELECT sum(t.quantity * (SELECT close FROM candles c WHERE c.symbol = t.symbol
                                                   ORDER BY open_time DESC LIMIT 1))
                          FROM trades t WHERE t.status = 'open'), 0)",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();

    let api_image = format!(
        "127.0.0.1:5000/acme/trading-agent:latest@{}",
        seed::NEW_DIGEST
    );
    // Per-strategy statistics as the database's own arithmetic gives them.
    let trades: i64 = sqlx::query_scalar("SELECT count(*) FROM trades")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let strategy: String = sqlx::query_scalar("SELECT name FROM strategies WHERE id = $1")
        .bind(seeded.strategy_id)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let max_drawdown = (-seeded.closed_profit).max(rust_decimal::Decimal::ZERO);
    let port = free_port();
    let _api = Process::spawn(
        &["api"],
        &[
            ("DATABASE_URL", db.url.as_str()),
            ("API_TOKEN", TOKEN),
            ("PORT", &port.to_string()),
            ("BIND_ADDRESS", "127.0.0.1"),
            ("SHUTDOWN_DELAY", "0s"),
            ("IMAGE_REF", &api_image),
        ],
    );
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    eventually(Duration::from_secs(30), "the api to be ready", || {
        let request = client.get(format!("{base}/readyz")).send();
        async move { request.await.is_ok_and(|r| r.status() == 200) }
    })
    .await;

    let last = seeded.candles.last().unwrap().clone();
    let last_close: f64 = last.close.to_string().parse().unwrap();
    // Written when the page asks (`NEED_CANDLE`): the next minute closes.
    let next = trading_agent::domain::Candle {
        open_time: last.open_time + chrono::Duration::minutes(1),
        open: last.close,
        high: last.close + rust_decimal::Decimal::ONE,
        low: last.close - rust_decimal::Decimal::ONE,
        close: last.close + rust_decimal::Decimal::new(75, 2),
        volume: rust_decimal::Decimal::ONE,
    };
    let next_close: f64 = next.close.to_string().parse().unwrap();
    let expect = serde_json::json!({
        "symbol": seed::SYMBOL,
        "timeframe": "1m",
        "candles": seed::CANDLES,
        "last_close": last_close.to_string(),
        "next_close": next_close.to_string(),
        "markers": seeded.markers,
        "open_trades": 1,
        "closed_trade": seeded.closed_trade,
        "closed_profit": seeded.closed_profit.to_string(),
        "max_drawdown": max_drawdown.to_string(),
        "strategy": strategy,
        "strategy_id": seeded.strategy_id,
        "trades": trades,
        "api_digest": seed::NEW_DIGEST,
        "currency": "USDT",
        "equity_points": 2,
        "equity_now": worth.round_dp(8).to_string(),
        "components": seeded.components.iter()
            .map(|(role, instance, stale)| {
                let build = &seeded.builds.iter().find(|(i, _)| i == instance).unwrap().1;
                serde_json::json!({"role": role, "instance": instance, "stale": stale,
                    "digest": build.image_digest, "commit": build.commit})
            })
            .collect::<Vec<_>>(),
    });
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots");
    let dashboard = Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboard");
    assert!(
        dashboard.join("node_modules/playwright-core").is_dir(),
        "api/dashboard/node_modules is missing: the build runs `npm ci` there (cargo build -p trading-agent)"
    );
    // NODE_BINARY, not NODE: `make test` exports NODE (kwok or real) for the cluster harness.
    let mut node = Command::new(std::env::var("NODE_BINARY").unwrap_or_else(|_| "node".into()))
        .arg("tests/browser.mjs")
        .current_dir(&dashboard)
        .env("BASE_URL", &base)
        .env("API_TOKEN", TOKEN)
        .env("EXPECT", expect.to_string())
        .env("SCREENSHOT_DIR", &shots)
        .env("CHROMIUM", &chromium)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node starts (the dashboard's browser test needs Node.js)");

    // The script asks for notifications on its stdout; they are written here, as a bot would.
    let (requests, mut asked) = tokio::sync::mpsc::unbounded_channel::<Option<String>>();
    let stdout = node.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            eprintln!("[browser stdout] {line}");
            if let Some(marker) = line.strip_prefix("NEED_EVENT ") {
                let _ = requests.send(Some(marker.to_owned()));
            } else if line == "NEED_CANDLE" {
                let _ = requests.send(None);
            }
        }
    });
    let waiter = tokio::task::spawn_blocking(move || node.wait());
    tokio::pin!(waiter);
    let status = loop {
        tokio::select! {
            Some(request) = asked.recv() => match request {
                None => write_candle(&db.pool, &next).await,
                Some(marker) => write_event(&db.pool, &marker).await,
            },
            status = &mut waiter => break status.unwrap().unwrap(),
        }
    };
    reader.join().unwrap();
    assert!(
        status.success(),
        "the browser test failed ({status}); its output is above"
    );

    // What the browser did reached the database.
    let state: String = sqlx::query_scalar("SELECT state FROM bot_state")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(state, "stop_entry");
    // Created, edited, then disabled.
    let (params, enabled): (serde_json::Value, bool) =
        sqlx::query_as("SELECT params, enabled FROM strategies WHERE name = 'browser-made'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(params, serde_json::json!({"fast": 6, "slow": 15}));
    assert!(!enabled);
    // Force-exit was queued for the bot, as a manual sell of the symbol.
    let exits: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM signals WHERE strategy_id IS NULL AND action = 'sell' AND symbol = $1",
    )
    .bind(seed::SYMBOL)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(exits, 1);
    for shot in [
        "overview-laptop-light.png",
        "market-laptop-light.png",
        "control-laptop-light.png",
        "overview-phone-dark.png",
        "market-phone-dark.png",
    ] {
        let size = std::fs::metadata(shots.join(shot))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(size > 10_000, "{shot}: {size} bytes");
    }
}

/// A candle written as the strategy role's feed would.
async fn write_candle(pool: &sqlx::PgPool, candle: &trading_agent::domain::Candle) {
    store::candles::upsert(
        pool,
        seed::SYMBOL,
        trading_agent::domain::Timeframe::M1,
        std::slice::from_ref(candle),
    )
    .await
    .unwrap();
}

/// An event written as the bot would.
async fn write_event(pool: &sqlx::PgPool, marker: &str) {
    let mut conn = pool.acquire().await.unwrap();
    store::events::record(
        &mut conn,
        &NewEvent {
            level: Level::Info,
            kind: "trade_opened",
            message: format!("opened a trade ({marker})"),
            data: serde_json::json!({"marker": marker}),
            notify: false,
            dedup_key: None,
        },
    )
    .await
    .unwrap();
}
