//! The dashboard's routes against a real PostgreSQL: the page and its assets with a strict
//! Content-Security-Policy, the views (chart, equity, per-strategy statistics, trade detail,
//! overview) compared with what the database holds, their bad inputs, and the live stream.

mod common;
#[path = "common/dashboard_seed.rs"]
mod seed;

use std::str::FromStr;
use std::time::Duration;

use chrono::Utc;
use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::Value;
use trading_agent::domain::indicators::sma;
use trading_agent::domain::stats::IndicatorSpec;
use trading_agent::store;
use trading_agent::store::events::{Level, NewEvent};

use common::{TOKEN, TestApi, database};

fn dec(v: &Value) -> Decimal {
    Decimal::from_str(
        v.as_str()
            .unwrap_or_else(|| panic!("decimal string, got {v}")),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_and_assets_are_served_with_a_strict_policy() {
    let db = database("dashboard_page").await;
    let api = TestApi::start(&db.url).await;
    let page = api.client.get(api.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe") && !csp.contains("http"), "{csp}");
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    // The script and stylesheet the page names are served, typed and cacheable for good.
    for attr in ["src=\"", "href=\""] {
        for part in html.split(attr).skip(1) {
            let url = &part[..part.find('"').unwrap()];
            let asset = api.client.get(api.url(url)).send().await.unwrap();
            assert_eq!(asset.status(), 200, "{url}");
            if url.starts_with("/assets/") {
                assert!(
                    asset.headers()["cache-control"]
                        .to_str()
                        .unwrap()
                        .contains("immutable")
                );
                let ty = asset.headers()["content-type"].to_str().unwrap().to_owned();
                assert!(
                    ty.starts_with("text/javascript") || ty.starts_with("text/css"),
                    "{url}: {ty}"
                );
            }
        }
    }
    let missing = api
        .client
        .get(api.url("/assets/nope.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    // The page is public (it asks for the token); its data is not.
    for path in [
        "/api/v2/overview",
        "/api/v2/chart?symbol=BTCUSDT&timeframe=1m",
        "/api/v2/equity",
        "/api/v2/stats/strategies",
        "/api/v2/trades/1/detail",
        "/api/v2/stream",
    ] {
        let r = api.client.get(api.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
        let r = api
            .client
            .get(api.url(path))
            .bearer_auth("wrong-token-0123456789")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_matches_the_database() {
    let db = database("dashboard_chart").await;
    let seeded = seed::seed(&db.pool, Utc::now()).await;
    let api = TestApi::start(&db.url).await;

    let (status, chart) = api
        .get_json("/api/v2/chart?symbol=BTCUSDT&timeframe=1m")
        .await;
    assert_eq!(status, 200, "{chart}");
    let candles = chart["candles"].as_array().unwrap();
    assert_eq!(candles.len(), seed::CANDLES);
    assert_eq!(chart["has_more"], false);
    for (shown, stored) in candles.iter().zip(&seeded.candles) {
        assert_eq!(shown["time"], stored.open_time.timestamp());
        let as_f64 = |d: &Decimal| d.to_string().parse::<f64>().unwrap();
        assert_eq!(shown["close"].as_f64().unwrap(), as_f64(&stored.close));
        assert_eq!(shown["high"].as_f64().unwrap(), as_f64(&stored.high));
        assert_eq!(shown["low"].as_f64().unwrap(), as_f64(&stored.low));
    }
    // The strategy's own lines (SMA 5 and 20), equal to the domain's computation.
    let closes: Vec<f64> = seeded
        .candles
        .iter()
        .map(|c| c.close.to_string().parse().unwrap())
        .collect();
    let labels: Vec<&str> = chart["indicators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["SMA(5)", "SMA(20)", "RSI(14)"]);
    assert_eq!(chart["indicators"][2]["pane"], "oscillator");
    let sma20 = &chart["indicators"][1];
    assert_eq!(sma20["pane"], "price");
    let expected = sma(&closes, 20);
    let points = sma20["points"].as_array().unwrap();
    assert_eq!(points.len(), expected.len());
    assert_eq!(points[0]["time"], seeded.candles[19].open_time.timestamp());
    for (p, e) in points.iter().zip(&expected) {
        assert!((p["value"].as_f64().unwrap() - e).abs() < 1e-9);
    }
    let mut markers: Vec<String> = chart["markers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| format!("{}:{}", m["kind"].as_str().unwrap(), m["id"]))
        .collect();
    markers.sort();
    let mut want = seeded.markers.clone();
    want.sort();
    assert_eq!(markers, want);
    let exit = chart["markers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["kind"] == "exit")
        .unwrap();
    assert_eq!(exit["time"], (seeded.candles[150].open_time).timestamp());
    assert!(
        exit["text"]
            .as_str()
            .unwrap()
            .contains("sma 5 crossed below sma 20"),
        "{exit}"
    );

    // A window with warm-up: the lines start at the first shown candle; older ones page in.
    let to = seeded.candles[200].open_time.to_rfc3339();
    let path = format!(
        "/api/v2/chart?symbol=BTCUSDT&timeframe=1m&limit=50&to={}&sma=10&rsi=14",
        urlencode(&to)
    );
    let (status, page) = api.get_json(&path).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["candles"].as_array().unwrap().len(), 50);
    assert_eq!(
        page["candles"][0]["time"],
        seeded.candles[150].open_time.timestamp()
    );
    assert_eq!(page["has_more"], true);
    for line in page["indicators"].as_array().unwrap() {
        assert_eq!(
            line["points"].as_array().unwrap().len(),
            50,
            "{}",
            line["label"]
        );
    }
    assert_eq!(page["indicators"][1]["pane"], "oscillator");
    // Computed over the candles read for this page: the 50 shown and the longest warm-up.
    let read = 50 + IndicatorSpec::Rsi(14).warmup() + 1;
    let rsi_expected = trading_agent::domain::indicators::rsi(&closes[200 - read..200], 14);
    let last_rsi = page["indicators"][1]["points"][49]["value"]
        .as_f64()
        .unwrap();
    assert!((last_rsi - rsi_expected.last().unwrap()).abs() < 1e-9);
    // Three periods of warm-up: within a hair of the RSI over the whole history.
    let from_start = *trading_agent::domain::indicators::rsi(&closes[..200], 14)
        .last()
        .unwrap();
    assert!(
        (last_rsi - from_start).abs() < 0.5,
        "{last_rsi} vs {from_start}"
    );

    // Bad input: named, 4xx, never a 500.
    for (path, status, needle) in [
        (
            "/api/v2/chart?symbol=BTCUSDT&timeframe=2m",
            400,
            "timeframe",
        ),
        ("/api/v2/chart?timeframe=1m", 400, "symbol"),
        (
            "/api/v2/chart?symbol=btc%20usdt&timeframe=1m",
            400,
            "symbol",
        ),
        (
            "/api/v2/chart?symbol=NOPEUSDT&timeframe=1m",
            404,
            "NOPEUSDT",
        ),
        (
            "/api/v2/chart?symbol=BTCUSDT&timeframe=1m&limit=0",
            422,
            "limit",
        ),
        (
            "/api/v2/chart?symbol=BTCUSDT&timeframe=1m&limit=10001",
            422,
            "limit",
        ),
        (
            "/api/v2/chart?symbol=BTCUSDT&timeframe=1m&sma=0",
            422,
            "sma",
        ),
        (
            "/api/v2/chart?symbol=BTCUSDT&timeframe=1m&ema=5,x",
            422,
            "ema",
        ),
        (
            "/api/v2/chart?symbol=BTCUSDT&timeframe=1m&rsi=501",
            422,
            "rsi",
        ),
        (
            "/api/v2/chart?symbol=BTCUSDT&timeframe=1m&to=yesterday",
            400,
            "to",
        ),
        ("/api/v2/equity?limit=-1", 422, "limit"),
        ("/api/v2/trades/999999/detail", 404, "trade 999999"),
        ("/api/v2/trades/abc/detail", 400, "path"),
    ] {
        let (got, body) = api.get_json(path).await;
        assert_eq!(got, status, "{path}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{path}: {message}");
    }
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equity_stats_detail_and_overview_match_the_database() {
    let db = database("dashboard_views").await;
    let seeded = seed::seed(&db.pool, Utc::now()).await;
    // A manual trade that lost, closed after the strategy's.
    sqlx::query(
        "INSERT INTO trades (symbol, strategy_id, status, quantity, entry_price, entry_fee, opened_at,
                             exit_price, exit_fee, closed_at, profit)
         VALUES ('BTCUSDT', NULL, 'closed', 1, 100, 0.1, now() - interval '5 minutes', 97, 0.1, now(), -3.2)",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let api = TestApi::start(&db.url).await;

    let (status, equity) = api.get_json("/api/v2/equity").await;
    assert_eq!(status, 200, "{equity}");
    let points = equity["points"].as_array().unwrap();
    assert_eq!(points.len(), 2);
    assert_eq!(
        dec(&points[0]["equity"]),
        Decimal::from(10_000) + seeded.closed_profit
    );
    assert_eq!(points[0]["trade_id"], seeded.closed_trade);
    assert_eq!(
        dec(&points[1]["equity"]),
        Decimal::from(10_000) + seeded.closed_profit - Decimal::new(32, 1)
    );

    let (status, stats) = api.get_json("/api/v2/stats/strategies").await;
    assert_eq!(status, 200, "{stats}");
    let rows = stats.as_array().unwrap();
    assert_eq!(rows.len(), 3, "{stats}");
    assert_eq!(rows[0]["name"], "btc-sma-5-20");
    assert_eq!(rows[0]["strategy_id"], seeded.strategy_id);
    assert_eq!(rows[0]["closed_trades"], 1);
    assert_eq!(rows[0]["open_trades"], 1);
    assert_eq!(dec(&rows[0]["profit"]), seeded.closed_profit);
    // A strategy without trades is listed with zeros; manual trades come last.
    assert_eq!(rows[1]["name"], "btc-rsi-14");
    assert_eq!(rows[1]["closed_trades"], 0);
    assert_eq!(rows[2]["name"], "manual");
    assert_eq!(rows[2]["strategy_id"], Value::Null);
    assert_eq!(rows[2]["losing_trades"], 1);
    assert_eq!(dec(&rows[2]["win_rate_pct"]), Decimal::ZERO);
    assert_eq!(dec(&rows[2]["max_drawdown"]), Decimal::new(32, 1));

    let (status, detail) = api
        .get_json(&format!("/api/v2/trades/{}/detail", seeded.closed_trade))
        .await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["trade"]["id"], seeded.closed_trade);
    let orders = detail["orders"].as_array().unwrap();
    assert_eq!(orders.len(), 2);
    assert_eq!(orders[0]["side"], "buy");
    assert_eq!(orders[1]["side"], "sell");
    assert_eq!(orders[1]["reason"], "sma 5 crossed below sma 20");

    let (status, o) = api.get_json("/api/v2/overview").await;
    assert_eq!(status, 200, "{o}");
    assert_eq!(o["api"]["role"], "api");
    assert_eq!(o["bot"]["state"], "running");
    let components: Vec<(String, bool)> = o["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["instance"].as_str().unwrap().to_owned(),
                c["stale"].as_bool().unwrap(),
            )
        })
        .collect();
    for (_, instance, stale) in &seeded.components {
        assert!(
            components.contains(&(instance.to_string(), *stale)),
            "{instance}: {components:?}"
        );
    }
    let open = o["open_trades"].as_array().unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0]["id"], seeded.open_trade);
    assert_eq!(open[0]["strategy"], "btc-sma-5-20");
    let last_close = seeded.candles.last().unwrap().close;
    assert_eq!(dec(&open[0]["current_price"]), last_close);
    let entry = dec(&open[0]["entry_price"]);
    let qty = dec(&open[0]["quantity"]);
    assert_eq!(
        dec(&open[0]["profit"]),
        (qty * (last_close - entry) - Decimal::new(5, 2)).round_dp(8)
    );
    // Cash in USDT, then the BTC held.
    assert_eq!(o["balances"][0]["currency"], "USDT");
    assert_eq!(o["balances"][1]["currency"], "BTC");
    assert_eq!(dec(&o["balances"][1]["amount"]), qty);
    assert_eq!(
        dec(&o["equity"]),
        dec(&o["balances"][0]["value"]) + dec(&o["balances"][1]["value"])
    );
    // Today's realised PnL: the trades closed since midnight UTC.
    let since_midnight: Decimal = sqlx::query_scalar(
        "SELECT COALESCE(sum(profit), 0) FROM trades WHERE closed_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(dec(&o["today_realized"]), since_midnight);
}

/// Reads server-sent events from a response until `pred` accepts one (event name, data).
async fn wait_for_event(
    response: &mut reqwest::Response,
    buffer: &mut String,
    timeout: Duration,
    mut pred: impl FnMut(&str, &Value) -> bool,
) -> (String, Value) {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let mut event = "message".to_owned();
            let mut data = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    event = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            if data.is_empty() {
                continue;
            }
            let value: Value = serde_json::from_str(&data).unwrap();
            if pred(&event, &value) {
                return (event, value);
            }
        }
        let chunk = tokio::time::timeout_at(deadline, response.chunk())
            .await
            .expect("event within the time limit")
            .unwrap()
            .expect("stream still open");
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_delivers_notifications_bot_state_and_candles() {
    let db = database("dashboard_stream").await;
    let seeded = seed::seed(&db.pool, Utc::now()).await;
    let api = TestApi::start(&db.url).await;
    let mut stream = api.req(Method::GET, "/api/v2/stream").send().await.unwrap();
    assert_eq!(stream.status(), 200);
    assert!(
        stream.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut buffer = String::new();
    let wait = Duration::from_secs(10);
    wait_for_event(&mut stream, &mut buffer, wait, |e, _| e == "hello").await;
    // The watcher takes its baseline after the first subscriber arrives.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // An event written by another process (a bot) reaches the stream.
    let mut conn = db.pool.acquire().await.unwrap();
    store::events::record(
        &mut conn,
        &NewEvent {
            level: Level::Warning,
            kind: "data_gap",
            message: "stream-test-marker".into(),
            data: serde_json::json!({}),
            notify: false,
            dedup_key: None,
        },
    )
    .await
    .unwrap();
    drop(conn);
    let (_, n) = wait_for_event(&mut stream, &mut buffer, wait, |e, _| e == "notification").await;
    assert_eq!(n["message"], "stream-test-marker");
    assert_eq!(n["level"], "warning");

    // Bot control through the API: the new state and its notification.
    let (status, _) = api
        .send_json(Method::POST, "/api/v2/bot/stop-entry", Value::Null)
        .await;
    assert_eq!(status, 200);
    let (_, bot) = wait_for_event(&mut stream, &mut buffer, wait, |e, _| e == "bot").await;
    assert_eq!(bot["state"], "stop_entry");

    // A new closed candle.
    let last = seeded.candles.last().unwrap();
    let next = trading_agent::domain::Candle {
        open_time: last.open_time + chrono::Duration::minutes(1),
        ..last.clone()
    };
    store::candles::upsert(
        &db.pool,
        seed::SYMBOL,
        trading_agent::domain::Timeframe::M1,
        std::slice::from_ref(&next),
    )
    .await
    .unwrap();
    let (_, c) = wait_for_event(&mut stream, &mut buffer, wait, |e, _| e == "candles").await;
    assert_eq!(c["symbol"], seed::SYMBOL);
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(c["open_time"].as_str().unwrap()).unwrap(),
        next.open_time
    );
    // Heartbeats come every couple of seconds.
    let (_, components) =
        wait_for_event(&mut stream, &mut buffer, wait, |e, _| e == "components").await;
    assert_eq!(components.as_array().unwrap().len(), 3);
    let _ = TOKEN;
}

/// An open dashboard must not hold up a rolling update: on SIGTERM the stream ends while the api
/// drains, and the process exits on time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_end_when_the_api_shuts_down() {
    let db = database("dashboard_shutdown").await;
    let port = common::free_port();
    let mut api = common::Process::spawn(
        &["api"],
        &[
            ("DATABASE_URL", db.url.as_str()),
            ("API_TOKEN", TOKEN),
            ("PORT", &port.to_string()),
            ("BIND_ADDRESS", "127.0.0.1"),
            ("SHUTDOWN_DELAY", "2s"),
        ],
    );
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    common::eventually(Duration::from_secs(30), "the api to be ready", || {
        let request = client.get(format!("{base}/readyz")).send();
        async move { request.await.is_ok_and(|r| r.status() == 200) }
    })
    .await;
    let mut stream = client
        .get(format!("{base}/api/v2/stream"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let mut buffer = String::new();
    wait_for_event(&mut stream, &mut buffer, Duration::from_secs(10), |e, _| {
        e == "hello"
    })
    .await;
    let started = std::time::Instant::now();
    api.sigterm();
    // The stream ends (the body completes) well before the drain is over.
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(_)) = stream.chunk().await {}
    })
    .await;
    assert!(
        ended.is_ok(),
        "the stream was still open 10 s after SIGTERM"
    );
    let status = tokio::task::spawn_blocking(move || {
        let status = api.wait_timeout(Duration::from_secs(20));
        (status, api)
    })
    .await
    .unwrap();
    assert!(
        status.0.is_some_and(|s| s.success()),
        "api did not exit cleanly within 20 s of SIGTERM ({:?}):\n{}",
        status.0,
        status.1.output()
    );
    assert!(started.elapsed() < Duration::from_secs(15));
}
