//! The REST API against a real PostgreSQL: bad input is answered with the right 4xx, a message
//! naming the problem and nothing written; the happy paths work; the OpenAPI document and Swagger UI
//! are served.

mod common;

use reqwest::Method;
use serde_json::{Value, json};

use common::{TOKEN, TestApi, database};

enum Body {
    None,
    Json(Value),
    Raw(&'static str, &'static str),
}

enum Auth {
    Good,
    Missing,
    Header(&'static str),
}

struct Case {
    name: &'static str,
    method: Method,
    path: &'static str,
    body: Body,
    auth: Auth,
    status: u16,
    code: &'static str,
    message: &'static str,
}

fn case(
    name: &'static str,
    method: Method,
    path: &'static str,
    body: Body,
    status: u16,
    code: &'static str,
    message: &'static str,
) -> Case {
    Case {
        name,
        method,
        path,
        body,
        auth: Auth::Good,
        status,
        code,
        message,
    }
}

fn candle(open_time: &str, o: &str, h: &str, l: &str, c: &str) -> Value {
    json!({"open_time": open_time, "open": o, "high": h, "low": l, "close": c, "volume": "1"})
}

fn batch(symbol: &str, timeframe: &str, candles: Vec<Value>) -> Body {
    Body::Json(json!({"symbol": symbol, "timeframe": timeframe, "candles": candles}))
}

fn strategy(name: &str, kind: &str, params: Value, symbols: Value) -> Body {
    Body::Json(
        json!({"name": name, "kind": kind, "params": params, "symbols": symbols, "timeframe": "1m"}),
    )
}

const GOOD_CANDLE_TIME: &str = "2025-01-01T00:01:00Z";

fn bad_inputs() -> Vec<Case> {
    use Method as M;
    let ok = || candle(GOOD_CANDLE_TIME, "100", "101", "99", "100.5");
    vec![
        // ---- auth ----
        Case {
            auth: Auth::Missing,
            ..case(
                "no token",
                M::GET,
                "/api/v2/instruments",
                Body::None,
                401,
                "unauthorized",
                "bearer token",
            )
        },
        Case {
            auth: Auth::Header("Bearer wrong-token-0123456789"),
            ..case(
                "wrong token",
                M::GET,
                "/api/v2/trades",
                Body::None,
                401,
                "unauthorized",
                "bearer token",
            )
        },
        Case {
            auth: Auth::Header("Basic dXNlcjpwYXNz"),
            ..case(
                "basic auth",
                M::GET,
                "/api/v2/balance",
                Body::None,
                401,
                "unauthorized",
                "bearer token",
            )
        },
        Case {
            auth: Auth::Missing,
            ..case(
                "write without token",
                M::POST,
                "/api/v2/strategies",
                strategy(
                    "sneaky",
                    "sma_cross",
                    json!({"fast": 2, "slow": 5}),
                    json!(["BTCUSDT"]),
                ),
                401,
                "unauthorized",
                "bearer token",
            )
        },
        Case {
            auth: Auth::Missing,
            ..case(
                "order without token",
                M::POST,
                "/api/v2/orders",
                Body::Json(json!({"symbol": "BTCUSDT", "side": "buy"})),
                401,
                "unauthorized",
                "bearer token",
            )
        },
        // ---- candles ----
        case(
            "candles: not JSON",
            M::PUT,
            "/api/v2/candles",
            Body::Raw("application/json", "{\"symbol\": "),
            400,
            "bad_request",
            "not valid JSON",
        ),
        case(
            "candles: no JSON content type",
            M::PUT,
            "/api/v2/candles",
            Body::Raw("text/plain", "{}"),
            415,
            "unsupported_media_type",
            "application/json",
        ),
        case(
            "candles: missing field",
            M::PUT,
            "/api/v2/candles",
            Body::Json(json!({"symbol": "BTCUSDT", "timeframe": "1m"})),
            422,
            "validation_failed",
            "missing field `candles`",
        ),
        case(
            "candles: unknown symbol",
            M::PUT,
            "/api/v2/candles",
            batch("DOGEUSDT", "1m", vec![ok()]),
            422,
            "validation_failed",
            "unknown instrument `DOGEUSDT`",
        ),
        case(
            "candles: malformed symbol",
            M::PUT,
            "/api/v2/candles",
            batch("btc usdt", "1m", vec![ok()]),
            422,
            "validation_failed",
            "not a valid symbol",
        ),
        case(
            "candles: unknown timeframe",
            M::PUT,
            "/api/v2/candles",
            batch("BTCUSDT", "2m", vec![ok()]),
            422,
            "validation_failed",
            "unknown variant `2m`",
        ),
        case(
            "candles: NaN price",
            M::PUT,
            "/api/v2/candles",
            batch(
                "BTCUSDT",
                "1m",
                vec![candle(GOOD_CANDLE_TIME, "NaN", "101", "99", "100")],
            ),
            422,
            "validation_failed",
            "candles[0].open",
        ),
        case(
            "candles: negative low",
            M::PUT,
            "/api/v2/candles",
            batch(
                "BTCUSDT",
                "1m",
                vec![candle(GOOD_CANDLE_TIME, "100", "101", "-1", "100")],
            ),
            422,
            "validation_failed",
            "candles[0].low: must not be negative",
        ),
        case(
            "candles: low above open",
            M::PUT,
            "/api/v2/candles",
            batch(
                "BTCUSDT",
                "1m",
                vec![
                    ok(),
                    candle("2025-01-01T00:02:00Z", "100", "101", "100.5", "101"),
                ],
            ),
            422,
            "validation_failed",
            "candles[1].low: must not exceed open",
        ),
        case(
            "candles: high below close",
            M::PUT,
            "/api/v2/candles",
            batch(
                "BTCUSDT",
                "1m",
                vec![candle(GOOD_CANDLE_TIME, "100", "100.2", "99", "100.5")],
            ),
            422,
            "validation_failed",
            "candles[0].high: must not be below close",
        ),
        case(
            "candles: misaligned time",
            M::PUT,
            "/api/v2/candles",
            batch(
                "BTCUSDT",
                "5m",
                vec![candle("2025-01-01T00:01:00Z", "100", "101", "99", "100")],
            ),
            422,
            "validation_failed",
            "not aligned to the 5m timeframe",
        ),
        case(
            "candles: duplicate time",
            M::PUT,
            "/api/v2/candles",
            batch("BTCUSDT", "1m", vec![ok(), ok()]),
            422,
            "validation_failed",
            "appears twice",
        ),
        case(
            "candles: empty batch",
            M::PUT,
            "/api/v2/candles",
            batch("BTCUSDT", "1m", vec![]),
            422,
            "validation_failed",
            "at least one candle",
        ),
        case(
            "candles: unknown field",
            M::PUT,
            "/api/v2/candles",
            batch(
                "BTCUSDT",
                "1m",
                vec![
                    json!({"open_time": GOOD_CANDLE_TIME, "open": "1", "high": "1", "low": "1", "close": "1", "volume": "1", "vwap": "1"}),
                ],
            ),
            422,
            "validation_failed",
            "unknown field `vwap`",
        ),
        case(
            "csv: missing column",
            M::POST,
            "/api/v2/candles/import?symbol=BTCUSDT&timeframe=1m",
            Body::Raw(
                "text/csv",
                "open_time,open,high,low,close\n2025-01-01T00:01:00Z,1,1,1,1\n",
            ),
            422,
            "validation_failed",
            "no `volume` column",
        ),
        case(
            "csv: bad number names the line",
            M::POST,
            "/api/v2/candles/import?symbol=BTCUSDT&timeframe=1m",
            Body::Raw(
                "text/csv",
                "open_time,open,high,low,close,volume\n2025-01-01T00:01:00Z,1,1,1,1,1\n2025-01-01T00:02:00Z,1,x,1,1,1\n",
            ),
            422,
            "validation_failed",
            "csv line 3, high",
        ),
        case(
            "csv: unknown symbol",
            M::POST,
            "/api/v2/candles/import?symbol=XRPUSDT&timeframe=1m",
            Body::Raw(
                "text/csv",
                "open_time,open,high,low,close,volume\n2025-01-01T00:01:00Z,1,1,1,1,1\n",
            ),
            422,
            "validation_failed",
            "unknown instrument `XRPUSDT`",
        ),
        case(
            "csv: missing timeframe",
            M::POST,
            "/api/v2/candles/import?symbol=BTCUSDT",
            Body::Raw("text/csv", "open_time,open,high,low,close,volume\n"),
            400,
            "bad_request",
            "timeframe",
        ),
        case(
            "candle query: limit 0",
            M::GET,
            "/api/v2/candles?symbol=BTCUSDT&timeframe=1m&limit=0",
            Body::None,
            422,
            "validation_failed",
            "limit: must be between 1 and 1000",
        ),
        case(
            "candle query: unknown symbol",
            M::GET,
            "/api/v2/candles?symbol=NOPE&timeframe=1m",
            Body::None,
            404,
            "not_found",
            "instrument NOPE not found",
        ),
        case(
            "candle query: from after to",
            M::GET,
            "/api/v2/candles?symbol=BTCUSDT&timeframe=1m&from=2025-01-02T00:00:00Z&to=2025-01-01T00:00:00Z",
            Body::None,
            422,
            "validation_failed",
            "from: must be before `to`",
        ),
        case(
            "instrument: lower-case asset",
            M::POST,
            "/api/v2/instruments",
            Body::Json(json!({"symbol": "ETHUSDT", "base_asset": "eth", "quote_asset": "USDT"})),
            422,
            "validation_failed",
            "base_asset",
        ),
        case(
            "instrument: exists",
            M::POST,
            "/api/v2/instruments",
            Body::Json(json!({"symbol": "BTCUSDT", "base_asset": "BTC", "quote_asset": "USDT"})),
            409,
            "conflict",
            "instrument BTCUSDT already exists",
        ),
        // ---- strategies ----
        case(
            "strategy: unknown kind",
            M::POST,
            "/api/v2/strategies",
            strategy("s1", "macd", json!({}), json!(["BTCUSDT"])),
            422,
            "validation_failed",
            "unknown variant `macd`",
        ),
        case(
            "strategy: fast >= slow",
            M::POST,
            "/api/v2/strategies",
            strategy(
                "s1",
                "sma_cross",
                json!({"fast": 30, "slow": 10}),
                json!(["BTCUSDT"]),
            ),
            422,
            "validation_failed",
            "params.fast: must be less than slow",
        ),
        case(
            "strategy: rsi levels inverted",
            M::POST,
            "/api/v2/strategies",
            strategy(
                "s1",
                "rsi",
                json!({"period": 14, "oversold": 80, "overbought": 20}),
                json!(["BTCUSDT"]),
            ),
            422,
            "validation_failed",
            "params.oversold",
        ),
        case(
            "strategy: missing param",
            M::POST,
            "/api/v2/strategies",
            strategy("s1", "ema_cross", json!({"fast": 3}), json!(["BTCUSDT"])),
            422,
            "validation_failed",
            "missing field `slow`",
        ),
        case(
            "strategy: params not an object",
            M::POST,
            "/api/v2/strategies",
            strategy("s1", "ema_cross", json!([3, 9]), json!(["BTCUSDT"])),
            422,
            "validation_failed",
            "params: must be a JSON object",
        ),
        case(
            "strategy: no symbols",
            M::POST,
            "/api/v2/strategies",
            strategy("s1", "sma_cross", json!({"fast": 2, "slow": 5}), json!([])),
            422,
            "validation_failed",
            "symbols: must name at least one",
        ),
        case(
            "strategy: unknown symbol",
            M::POST,
            "/api/v2/strategies",
            strategy(
                "s1",
                "sma_cross",
                json!({"fast": 2, "slow": 5}),
                json!(["BTCUSDT", "XRPUSDT"]),
            ),
            422,
            "validation_failed",
            "symbols[1]: unknown instrument `XRPUSDT`",
        ),
        case(
            "strategy: blank name",
            M::POST,
            "/api/v2/strategies",
            strategy(
                "  ",
                "sma_cross",
                json!({"fast": 2, "slow": 5}),
                json!(["BTCUSDT"]),
            ),
            422,
            "validation_failed",
            "name: must be 1-64 characters",
        ),
        case(
            "strategy: duplicate name",
            M::POST,
            "/api/v2/strategies",
            strategy(
                "seeded",
                "sma_cross",
                json!({"fast": 2, "slow": 5}),
                json!(["BTCUSDT"]),
            ),
            409,
            "conflict",
            "a strategy named `seeded` already exists",
        ),
        case(
            "strategy: non-numeric id",
            M::GET,
            "/api/v2/strategies/abc",
            Body::None,
            400,
            "bad_request",
            "invalid path parameter",
        ),
        case(
            "strategy: missing",
            M::GET,
            "/api/v2/strategies/999",
            Body::None,
            404,
            "not_found",
            "strategy 999 not found",
        ),
        case(
            "strategy: update missing",
            M::PUT,
            "/api/v2/strategies/999",
            strategy(
                "other",
                "sma_cross",
                json!({"fast": 2, "slow": 5}),
                json!(["BTCUSDT"]),
            ),
            404,
            "not_found",
            "strategy 999 not found",
        ),
        case(
            "strategy: enable missing",
            M::POST,
            "/api/v2/strategies/999/enable",
            Body::None,
            404,
            "not_found",
            "strategy 999 not found",
        ),
        // ---- orders and bot ----
        case(
            "order: unknown side",
            M::POST,
            "/api/v2/orders",
            Body::Json(json!({"symbol": "BTCUSDT", "side": "hold"})),
            422,
            "validation_failed",
            "unknown variant `hold`",
        ),
        case(
            "order: unknown symbol",
            M::POST,
            "/api/v2/orders",
            Body::Json(json!({"symbol": "XRPUSDT", "side": "buy"})),
            422,
            "validation_failed",
            "symbol: unknown instrument `XRPUSDT`",
        ),
        case(
            "order: negative stake",
            M::POST,
            "/api/v2/orders",
            Body::Json(json!({"symbol": "BTCUSDT", "side": "buy", "stake": "-5"})),
            422,
            "validation_failed",
            "stake: must be greater than 0",
        ),
        case(
            "order: stake on a sell",
            M::POST,
            "/api/v2/orders",
            Body::Json(json!({"symbol": "BTCUSDT", "side": "sell", "stake": "5"})),
            422,
            "validation_failed",
            "stake: only applies to buy orders",
        ),
        case(
            "order: bad client_order_id",
            M::POST,
            "/api/v2/orders",
            Body::Json(
                json!({"symbol": "BTCUSDT", "side": "buy", "client_order_id": "has spaces"}),
            ),
            422,
            "validation_failed",
            "client_order_id",
        ),
        case(
            "order: sell with nothing open",
            M::POST,
            "/api/v2/orders",
            Body::Json(json!({"symbol": "BTCUSDT", "side": "sell"})),
            409,
            "conflict",
            "no open trade for BTCUSDT",
        ),
        case(
            "order: stake not a number",
            M::POST,
            "/api/v2/orders",
            Body::Json(json!({"symbol": "BTCUSDT", "side": "buy", "stake": "lots"})),
            422,
            "validation_failed",
            "stake",
        ),
        case(
            "force-exit: nothing open",
            M::POST,
            "/api/v2/bot/force-exit",
            Body::Json(json!({"symbol": "BTCUSDT"})),
            409,
            "conflict",
            "no open trade for BTCUSDT",
        ),
        case(
            "force-enter: unknown field",
            M::POST,
            "/api/v2/bot/force-enter",
            Body::Json(json!({"symbol": "BTCUSDT", "leverage": 10})),
            422,
            "validation_failed",
            "unknown field `leverage`",
        ),
        case(
            "order: missing",
            M::GET,
            "/api/v2/orders/999",
            Body::None,
            404,
            "not_found",
            "order 999 not found",
        ),
        case(
            "trades: bad status",
            M::GET,
            "/api/v2/trades?status=pending",
            Body::None,
            400,
            "bad_request",
            "status",
        ),
        case(
            "signals: limit too big",
            M::GET,
            "/api/v2/signals?limit=5000",
            Body::None,
            422,
            "validation_failed",
            "limit",
        ),
        case(
            "unknown endpoint",
            M::GET,
            "/api/v2/nothing-here",
            Body::None,
            404,
            "not_found",
            "no such endpoint",
        ),
        case(
            "wrong method",
            M::DELETE,
            "/api/v2/balance",
            Body::None,
            405,
            "method_not_allowed",
            "method not allowed",
        ),
    ]
}

async fn table_counts(pool: &sqlx::PgPool) -> Vec<(String, i64)> {
    let mut counts = Vec::new();
    for table in [
        "instruments",
        "candles",
        "strategies",
        "signals",
        "orders",
        "trades",
        "events",
    ] {
        let n: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
                .fetch_one(pool)
                .await
                .unwrap();
        counts.push((table.to_owned(), n));
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_get_the_right_4xx_and_write_nothing() {
    let db = database("badinputs").await;
    let api = TestApi::start(&db.url).await;
    let (status, _) = api
        .send_json(
            Method::POST,
            "/api/v2/instruments",
            json!({"symbol": "BTCUSDT", "base_asset": "BTC", "quote_asset": "USDT"}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, _) = api
        .send_json(
            Method::POST,
            "/api/v2/strategies",
            json!({
            "name": "seeded", "kind": "sma_cross", "params": {"fast": 2, "slow": 5},
            "symbols": ["BTCUSDT"], "timeframe": "1m"}),
        )
        .await;
    assert_eq!(status, 201);
    let before = table_counts(&db.pool).await;

    let cases = bad_inputs();
    assert!(cases.len() >= 25, "{} cases", cases.len());
    let mut failures = Vec::new();
    for c in &cases {
        let mut request = api.client.request(c.method.clone(), api.url(c.path));
        request = match c.auth {
            Auth::Good => request.bearer_auth(TOKEN),
            Auth::Missing => request,
            Auth::Header(value) => request.header("authorization", value),
        };
        request = match &c.body {
            Body::None => request,
            Body::Json(value) => request.json(value),
            Body::Raw(content_type, text) => {
                request.header("content-type", *content_type).body(*text)
            }
        };
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let code = body["error"]["code"].as_str().unwrap_or("<none>");
        let message = body["error"]["message"].as_str().unwrap_or("<none>");
        if status != c.status || code != c.code || !message.contains(c.message) {
            failures.push(format!(
                "{}: expected {} {} containing {:?}, got {status} {code} {message:?}",
                c.name, c.status, c.code, c.message
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert_eq!(
        table_counts(&db.pool).await,
        before,
        "a rejected request wrote something"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn market_data_strategies_and_manual_orders() {
    let db = database("happy").await;
    let api = TestApi::start(&db.url).await;

    // Instruments.
    let (status, body) = api
        .send_json(
            Method::POST,
            "/api/v2/instruments",
            json!({"symbol": "ETHUSDT", "base_asset": "ETH", "quote_asset": "USDT"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = api.get_json("/api/v2/instruments/ETHUSDT").await;
    assert_eq!((status, body["quote_asset"].as_str()), (200, Some("USDT")));

    // Candles: JSON upsert (twice: idempotent), CSV import, range query.
    let candles = json!({"symbol": "ETHUSDT", "timeframe": "1m", "candles": [
        {"open_time": "2025-01-01T00:00:00Z", "open": "100", "high": "102", "low": "99", "close": "101", "volume": "3"},
        {"open_time": "2025-01-01T00:01:00Z", "open": 101, "high": 103.5, "low": 100, "close": 103, "volume": 4}
    ]});
    for _ in 0..2 {
        let (status, body) = api
            .send_json(Method::PUT, "/api/v2/candles", candles.clone())
            .await;
        assert_eq!(
            (status, body["upserted"].as_u64()),
            (200, Some(2)),
            "{body}"
        );
    }
    let csv = "open_time,open,high,low,close,volume\n1735689720,103,104,102,103.5,1\n1735689780000,103.5,105,103,104,2\n";
    let response = api
        .req(
            Method::POST,
            "/api/v2/candles/import?symbol=ETHUSDT&timeframe=1m",
        )
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let (status, body) = api
        .get_json("/api/v2/candles?symbol=ETHUSDT&timeframe=1m&from=2025-01-01T00:01:00Z&limit=2")
        .await;
    assert_eq!(status, 200);
    let got: Vec<(&str, &str)> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["open_time"].as_str().unwrap(),
                c["close"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("2025-01-01T00:01:00Z", "103"),
            ("2025-01-01T00:02:00Z", "103.5")
        ]
    );
    let (_, newest) = api
        .get_json("/api/v2/candles?symbol=ETHUSDT&timeframe=1m&limit=1")
        .await;
    assert_eq!(newest[0]["open_time"], "2025-01-01T00:03:00Z");

    // Strategies: create, get, update, disable/enable, list by state, delete.
    let (status, created) = api
        .send_json(
            Method::POST,
            "/api/v2/strategies",
            json!({
            "name": "eth ema", "kind": "ema_cross", "params": {"fast": 3, "slow": 8},
            "symbols": ["ETHUSDT"], "timeframe": "1m"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_i64().unwrap();
    assert_eq!(created["enabled"], true);
    let (status, updated) = api
        .send_json(Method::PUT, &format!("/api/v2/strategies/{id}"), json!({
            "name": "eth rsi", "kind": "rsi", "params": {"period": 7, "oversold": 25, "overbought": 75},
            "symbols": ["ETHUSDT"], "timeframe": "5m", "enabled": false}))
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(
        (
            updated["kind"].as_str(),
            updated["timeframe"].as_str(),
            updated["enabled"].as_bool()
        ),
        (Some("rsi"), Some("5m"), Some(false))
    );
    let (_, disabled) = api.get_json("/api/v2/strategies?enabled=false").await;
    assert_eq!(disabled.as_array().unwrap().len(), 1);
    let (status, enabled) = api
        .send_json(
            Method::POST,
            &format!("/api/v2/strategies/{id}/enable"),
            json!(null),
        )
        .await;
    assert_eq!((status, enabled["enabled"].as_bool()), (200, Some(true)));
    let response = api
        .req(Method::DELETE, &format!("/api/v2/strategies/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 204);
    let (status, _) = api.get_json(&format!("/api/v2/strategies/{id}")).await;
    assert_eq!(status, 404);

    // Manual orders: queued as signals, idempotent by client_order_id.
    let order =
        json!({"symbol": "ETHUSDT", "side": "buy", "stake": "50", "client_order_id": "order-1"});
    let (status, first) = api
        .send_json(Method::POST, "/api/v2/orders", order.clone())
        .await;
    assert_eq!(status, 202, "{first}");
    assert_eq!(
        (first["status"].as_str(), first["stake"].as_str()),
        (Some("new"), Some("50"))
    );
    let (status, again) = api.send_json(Method::POST, "/api/v2/orders", order).await;
    assert_eq!((status, again["id"].clone()), (200, first["id"].clone()));
    let (status, body) = api
        .send_json(Method::POST, "/api/v2/orders", json!({"symbol": "ETHUSDT", "side": "buy", "stake": "60", "client_order_id": "order-1"}))
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already used")
    );

    // Bot control: stopped bot refuses entries; the state change is in the feed.
    let (status, bot) = api
        .send_json(Method::POST, "/api/v2/bot/stop", json!(null))
        .await;
    assert_eq!((status, bot["state"].as_str()), (200, Some("stopped")));
    let (status, body) = api
        .send_json(
            Method::POST,
            "/api/v2/bot/force-enter",
            json!({"symbol": "ETHUSDT"}),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    let (_, bot) = api
        .send_json(Method::POST, "/api/v2/bot/stop-entry", json!(null))
        .await;
    assert_eq!(bot["state"], "stop_entry");
    let (_, bot) = api
        .send_json(Method::POST, "/api/v2/bot/start", json!(null))
        .await;
    assert_eq!(bot["state"], "running");
    let (status, body) = api
        .send_json(
            Method::POST,
            "/api/v2/bot/force-enter",
            json!({"symbol": "ETHUSDT"}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let (_, feed) = api.get_json("/api/v2/notifications").await;
    let kinds: Vec<&str> = feed
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["bot_state", "bot_state", "bot_state"]);
    let (_, after) = api
        .get_json(&format!("/api/v2/notifications?after_id={}", feed[1]["id"]))
        .await;
    assert_eq!(after.as_array().unwrap().len(), 1);

    // Balance and profit before any fill.
    let (status, balance) = api.get_json("/api/v2/balance").await;
    assert_eq!(status, 200);
    assert_eq!(
        (balance["free"].as_str(), balance["equity"].as_str()),
        (Some("10000"), Some("10000"))
    );
    let (_, profit) = api.get_json("/api/v2/profit").await;
    assert_eq!(profit["total"], "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_and_swagger_ui_are_served() {
    let db = database("docs").await;
    let api = TestApi::start(&db.url).await;

    let response = api.client.get(api.url("/docs/")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.text().await.unwrap().contains("swagger-ui"));
    let response = api
        .client
        .get(api.url("/docs/swagger-ui-bundle.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status().as_u16(),
        200,
        "Swagger UI assets are compiled in"
    );
    assert!(response.bytes().await.unwrap().len() > 100_000);

    let doc: Value = api
        .client
        .get(api.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "OpenAPI 3"
    );
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/api/v2/candles",
        "/api/v2/strategies/{id}",
        "/api/v2/bot/force-enter",
        "/healthz",
        "/readyz",
    ] {
        assert!(paths.contains_key(path), "{path} documented");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    // Every operation documents its responses, and every $ref resolves.
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    for r in &refs {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected ref {r}"));
        assert!(
            doc["components"]["schemas"].get(name).is_some(),
            "dangling {r}"
        );
    }
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{method} {path} has no responses"
            );
        }
    }
    // Only /api/v2/version and the probes are open.
    let open: Vec<&String> = paths
        .iter()
        .filter(|(_, item)| {
            item.as_object()
                .unwrap()
                .values()
                .any(|op| op.get("security").is_some_and(|s| s == &json!([{}])))
        })
        .map(|(p, _)| p)
        .collect();
    assert_eq!(open, vec!["/api/v2/version", "/healthz", "/readyz"]);
}

fn collect_refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "$ref" {
                    if let Some(s) = v.as_str() {
                        out.push(s);
                    }
                } else {
                    collect_refs(v, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}
