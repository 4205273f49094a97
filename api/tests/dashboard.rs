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

use common::{Process, TOKEN, TestApi, database, eventually, free_port};

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
        (
            "/api/v2/equity?from=2025-01-02T00:00:00Z&to=2025-01-01T00:00:00Z",
            422,
            "from: must be before to",
        ),
        (
            "/api/v2/equity?from=2025-01-01T00:00:00Z&to=2025-01-01T00:00:00Z",
            422,
            "from",
        ),
        ("/api/v2/equity?from=last-week", 400, "from"),
        ("/api/v2/equity?to=2025-13-01T00:00:00Z", 400, "to"),
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
    // Each component's build and image, as its heartbeat recorded them.
    for (instance, build) in &seeded.builds {
        let c = o["components"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["instance"] == *instance)
            .unwrap_or_else(|| panic!("{instance} in {o}"));
        assert_eq!(c["version"], build.version.as_str(), "{c}");
        assert_eq!(c["commit"], build.commit.as_str(), "{c}");
        assert_eq!(c["image_ref"], build.image_ref.as_deref().unwrap(), "{c}");
        assert_eq!(
            c["image_digest"],
            build.image_digest.as_deref().unwrap(),
            "{c}"
        );
    }
    let old = &o["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["instance"] == "strategy-old")
        .unwrap()["image_digest"];
    assert_eq!(old, seed::OLD_DIGEST);
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

/// What the database says a currency is worth: cash (the account's own currency keeps it in
/// `account`), plus open positions at their latest close.
async fn worth_in_db(pool: &sqlx::PgPool, currency: &str) -> (Decimal, Decimal) {
    sqlx::query_as(
        "SELECT (SELECT COALESCE(a.balance, b.balance) FROM balances b
                 LEFT JOIN account a ON a.currency = b.currency WHERE b.currency = $1),
                COALESCE((SELECT sum(t.quantity * (SELECT close FROM candles c WHERE c.symbol = t.symbol
                                                   ORDER BY open_time DESC LIMIT 1))
                          FROM trades t JOIN instruments i USING (symbol)
                          WHERE t.status = 'open' AND i.quote_asset = $1), 0)",
    )
    .bind(currency)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// The equity curve: snapshots once a minute per quote currency (cash plus open positions at the
/// latest close), thinned over long ranges, 30 days kept; compared with the database's own sums.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_equity_curve_follows_the_database() {
    let db = database("dashboard_equity").await;
    let now = Utc::now();
    let seeded = seed::seed(&db.pool, now).await;
    // A second quote currency with cash only.
    store::trading::ensure_wallet(&db.pool, "BTC", Decimal::new(5, 1))
        .await
        .unwrap();
    let minute = |m: i64| {
        use chrono::DurationRound;
        (now - chrono::Duration::minutes(m))
            .duration_trunc(chrono::Duration::minutes(1))
            .unwrap()
    };

    // A snapshot ten minutes ago; a second one in the same minute writes nothing.
    let t1 = minute(10);
    assert!(
        store::equity::snapshot_if_due(&db.pool, t1 + chrono::Duration::seconds(5))
            .await
            .unwrap()
    );
    assert!(
        !store::equity::snapshot_if_due(&db.pool, t1 + chrono::Duration::seconds(50))
            .await
            .unwrap()
    );
    let (cash1, positions1) = worth_in_db(&db.pool, "USDT").await;
    assert!(positions1 > Decimal::ZERO, "the seed holds an open trade");
    // The price moves (a newer candle) and cash is spent: the next minute's snapshot follows.
    let last = seeded.candles.last().unwrap().clone();
    let newer = trading_agent::domain::Candle {
        open_time: last.open_time + chrono::Duration::minutes(1),
        open: last.close,
        high: last.close + Decimal::from(20),
        low: last.close,
        close: last.close + Decimal::from(15),
        volume: Decimal::ONE,
    };
    store::candles::upsert(
        &db.pool,
        seed::SYMBOL,
        trading_agent::domain::Timeframe::M1,
        &[newer],
    )
    .await
    .unwrap();
    sqlx::query("UPDATE balances SET balance = balance - 100 WHERE currency = 'USDT'")
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE account SET balance = balance - 100")
        .execute(&db.pool)
        .await
        .unwrap();
    let t2 = minute(9);
    assert!(store::equity::snapshot_if_due(&db.pool, t2).await.unwrap());
    let (cash2, positions2) = worth_in_db(&db.pool, "USDT").await;
    assert_eq!(cash2, cash1 - Decimal::from(100));
    assert!(positions2 > positions1);

    let api = TestApi::start(&db.url).await;
    let range = format!(
        "/api/v2/equity?from={}&to={}",
        urlencode(&minute(60).to_rfc3339()),
        urlencode(&now.to_rfc3339())
    );
    let (status, equity) = api.get_json(&range).await;
    assert_eq!(status, 200, "{equity}");
    assert_eq!(equity["step_seconds"], 60);
    let currencies = equity["currencies"].as_array().unwrap();
    // The account's currency first.
    assert_eq!(currencies[0]["currency"], "USDT");
    assert_eq!(currencies[1]["currency"], "BTC");
    let usdt = &currencies[0];
    assert_eq!(dec(&usdt["starting_balance"]), Decimal::from(10_000));
    let points = usdt["points"].as_array().unwrap();
    assert_eq!(points.len(), 2, "{usdt}");
    assert_eq!(
        points[0]["time"]
            .as_str()
            .unwrap()
            .parse::<chrono::DateTime<Utc>>()
            .unwrap(),
        t1
    );
    assert_eq!(dec(&points[0]["cash"]), cash1);
    assert_eq!(dec(&points[0]["positions"]), positions1.round_dp(8));
    assert_eq!(dec(&points[0]["equity"]), cash1 + positions1.round_dp(8));
    assert_eq!(dec(&points[1]["cash"]), cash2);
    assert_eq!(dec(&points[1]["positions"]), positions2.round_dp(8));
    assert_eq!(
        dec(&usdt["current"]["equity"]),
        cash2 + positions2.round_dp(8)
    );
    let btc = &currencies[1];
    assert_eq!(btc["points"].as_array().unwrap().len(), 2);
    assert_eq!(dec(&btc["points"][1]["equity"]), Decimal::new(5, 1));
    assert_eq!(dec(&btc["points"][1]["positions"]), Decimal::ZERO);

    // A range that holds neither snapshot answers with the current worth only.
    let (_, early) = api
        .get_json(&format!(
            "/api/v2/equity?from={}&to={}",
            urlencode(&minute(120).to_rfc3339()),
            urlencode(&minute(30).to_rfc3339())
        ))
        .await;
    assert_eq!(
        early["currencies"][0]["points"].as_array().unwrap().len(),
        0,
        "{early}"
    );

    // Ten days of minutes (14,400 rows) come back thinned to at most 2,000 points per currency,
    // each the last snapshot of its bucket.
    sqlx::query(
        "INSERT INTO equity_snapshots (currency, taken_at, cash, positions, equity)
         SELECT 'ETH', date_trunc('minute', now()) - make_interval(mins => i), i, 0, i
         FROM generate_series(1, 14400) i",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let (status, long) = api
        .get_json(&format!(
            "/api/v2/equity?from={}",
            urlencode(
                &(now - chrono::Duration::days(10) - chrono::Duration::minutes(5)).to_rfc3339()
            )
        ))
        .await;
    assert_eq!(status, 200, "{long}");
    let step = long["step_seconds"].as_i64().unwrap();
    assert_eq!(step, 8 * 60, "14,405 minutes in 2,000 points");
    let eth = long["currencies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["currency"] == "ETH")
        .unwrap();
    let points = eth["points"].as_array().unwrap();
    assert!(
        points.len() <= 2000 && points.len() >= 1790,
        "{}",
        points.len()
    );
    // Stored equity i was taken i minutes ago: every point holds its own row's values.
    for p in points {
        let at: chrono::DateTime<Utc> = p["time"].as_str().unwrap().parse().unwrap();
        let i: Decimal = sqlx::query_scalar(
            "SELECT equity FROM equity_snapshots WHERE currency = 'ETH' AND taken_at = $1",
        )
        .bind(at)
        .fetch_one(&db.pool)
        .await
        .unwrap();
        assert_eq!(dec(&p["equity"]), i);
    }
    // A currency no longer held still shows its history, with nothing now.
    assert_eq!(dec(&eth["current"]["equity"]), Decimal::ZERO);

    // Retention: a snapshot writes, and rows past 30 days go.
    sqlx::query(
        "INSERT INTO equity_snapshots (currency, taken_at, cash, positions, equity)
         VALUES ('USDT', now() - interval '31 days', 1, 0, 1), ('USDT', now() - interval '29 days', 1, 0, 1)",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    assert!(
        store::equity::snapshot_if_due(&db.pool, Utc::now())
            .await
            .unwrap()
    );
    let (old, kept): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE taken_at < now() - interval '30 days'),
                count(*) FILTER (WHERE taken_at >= now() - interval '30 days' AND taken_at < now() - interval '28 days')
         FROM equity_snapshots",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!((old, kept), (0, 1));
}

/// The real binaries: a bot and an api told their image (`IMAGE_REF`, as the operator tells every
/// pod) report it, with their build, in the components view and the overview; a bot without one
/// reports none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn components_report_the_build_and_image_they_run() {
    let db = database("dashboard_builds").await;
    let digest = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
    let image = format!("127.0.0.1:5000/acme/trading-agent:latest@{digest}");
    let api_digest = "sha256:3333333333333333333333333333333333333333333333333333333333333333";
    let api_image = format!("127.0.0.1:5000/acme/trading-agent:latest@{api_digest}");
    let (bot_port, plain_port, api_port) = (free_port(), free_port(), free_port());
    let worker = |port: &u16, name: &str, image: Option<&str>| {
        let port = port.to_string();
        let mut env = vec![
            ("DATABASE_URL", db.url.as_str()),
            ("PORT", port.as_str()),
            ("BIND_ADDRESS", "127.0.0.1"),
            ("TICK_INTERVAL", "200ms"),
            ("INSTANCE_NAME", name),
        ];
        if let Some(image) = image {
            env.push(("IMAGE_REF", image));
        }
        Process::spawn(&["bot"], &env)
    };
    let _bot = worker(&bot_port, "bot-pinned", Some(&image));
    let _plain = worker(&plain_port, "bot-plain", None);
    let port = api_port.to_string();
    let _api = Process::spawn(
        &["api"],
        &[
            ("DATABASE_URL", db.url.as_str()),
            ("API_TOKEN", TOKEN),
            ("PORT", &port),
            ("BIND_ADDRESS", "127.0.0.1"),
            ("SHUTDOWN_DELAY", "0s"),
            ("IMAGE_REF", &api_image),
        ],
    );
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{api_port}");
    let components = || async {
        let r = client
            .get(format!("{base}/api/v2/health/components"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .ok()?;
        (r.status() == 200).then_some(())?;
        r.json::<Value>().await.ok()
    };
    eventually(Duration::from_secs(30), "both bots' heartbeats", || async {
        components()
            .await
            .and_then(|c| c.as_array().map(|a| a.len() == 2))
            .unwrap_or(false)
    })
    .await;
    let list = components().await.unwrap();
    // The bot's own /healthz says what it runs; its heartbeat row says the same.
    let health: Value = client
        .get(format!("http://127.0.0.1:{bot_port}/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["digest"], digest);
    let row = |name: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|c| c["instance"] == name)
            .unwrap_or_else(|| panic!("{name} in {list}"))
            .clone()
    };
    let pinned = row("bot-pinned");
    assert_eq!(pinned["role"], "bot");
    assert_eq!(pinned["image_ref"], image.as_str());
    assert_eq!(pinned["image_digest"], digest);
    assert_eq!(pinned["version"], health["version"]);
    assert_eq!(pinned["commit"], health["commit"]);
    let plain = row("bot-plain");
    assert_eq!(plain["image_ref"], Value::Null);
    assert_eq!(plain["image_digest"], Value::Null);
    assert_eq!(plain["commit"], health["commit"]);
    // The same columns in the database, not only in the answer.
    let stored: (Option<String>, Option<String>) = sqlx::query_as(
        "SELECT image_digest, commit FROM component_heartbeats WHERE instance = 'bot-pinned'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(stored.0.as_deref(), Some(digest));
    assert_eq!(stored.1.as_deref(), health["commit"].as_str());
    // The bots' ticks record the equity curve: one snapshot of the starting wallet this minute.
    let snapshot: (String, Decimal) = sqlx::query_as(
        "SELECT currency, equity FROM equity_snapshots ORDER BY taken_at DESC LIMIT 1",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(snapshot, ("USDT".to_owned(), Decimal::from(10_000)));

    // The api serving the overview reports its own image beside the workers'.
    let overview: Value = client
        .get(format!("{base}/api/v2/overview"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(overview["api"]["image_ref"], api_image.as_str());
    assert_eq!(overview["api"]["image_digest"], api_digest);
    assert_eq!(overview["api"]["commit"], health["commit"]);
    assert_eq!(overview["components"].as_array().unwrap().len(), 2);
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
