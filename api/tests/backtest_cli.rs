//! `trading-agent backtest` as the operator's Backtest Jobs run it, against a real PostgreSQL: the
//! strategy definition inline (`BACKTEST_STRATEGY`), candles from the database through a read-only
//! connection, and the short JSON summary written to `--summary-file` (the container's
//! termination message).

mod common;

use chrono::{TimeZone, Utc};
use serde_json::json;
use trading_agent::backtest::cli::{SHORT_SUMMARY_MAX_BYTES, ShortSummary, connect_read_only};
use trading_agent::domain::Timeframe;
use trading_agent::store;

use common::{candles_with_closes, database, db_config};

/// SMA 2/3 on this: the fast average crosses above at close 20 and below at close 5, twice over.
const CLOSES: [f64; 16] = [
    10.0, 10.0, 10.0, 10.0, 20.0, 20.0, 5.0, 5.0, 5.0, 5.0, 20.0, 20.0, 5.0, 5.0, 5.0, 5.0,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_definition_database_candles_and_a_short_summary() {
    let db = database("backtest_cli").await;
    store::instruments::create(&db.pool, "BTCUSDT", "BTC", "USDT")
        .await
        .unwrap();
    let last = Utc.with_ymd_and_hms(2025, 1, 1, 0, 15, 0).unwrap();
    let candles = candles_with_closes(&CLOSES, Timeframe::M1, last);
    store::candles::upsert(&db.pool, "BTCUSDT", Timeframe::M1, &candles)
        .await
        .unwrap();
    let summary_path = std::env::temp_dir().join(format!("bt-summary-{}", std::process::id()));
    let definition = json!({
        "name": "sma 2-3", "kind": "sma_cross", "params": {"fast": 2, "slow": 3},
        "symbols": ["BTCUSDT"], "timeframe": "1m",
    });
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_trading-agent"))
        .args([
            "backtest",
            "--from",
            "2025-01-01",
            "--to",
            "2025-01-01T00:16:00Z",
        ])
        .arg("--summary-file")
        .arg(&summary_path)
        .env("DATABASE_URL", &db.url)
        .env("BACKTEST_STRATEGY", definition.to_string())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read(&summary_path).unwrap();
    std::fs::remove_file(&summary_path).ok();
    assert!(
        text.len() <= SHORT_SUMMARY_MAX_BYTES,
        "{} bytes",
        text.len()
    );
    let summary: ShortSummary = serde_json::from_slice(&text).unwrap();
    // Buys 100 worth at 20, sells at 5: about -75 each round trip (fees and the default
    // slippage on top).
    assert_eq!(
        (summary.closed_trades, summary.wins, summary.losses),
        (2, 0, 2)
    );
    let profit: f64 = summary.profit.parse().unwrap();
    assert!((-151.0..-150.0).contains(&profit), "{summary:?}");
    assert_eq!(summary.currency, "USDT");
    assert_eq!(summary.win_rate, Some(0.0));
    assert!(summary.max_drawdown > 0.0, "{summary:?}");
    // The backtest wrote nothing: no signals, no trades.
    let (signals, trades): (i64, i64) =
        sqlx::query_as("SELECT (SELECT count(*) FROM signals), (SELECT count(*) FROM trades)")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!((signals, trades), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backtest_connection_refuses_writes() {
    let db = database("backtest_read_only").await;
    let pool = connect_read_only(&db_config(&db.url)).await.unwrap();
    let read: i64 = sqlx::query_scalar("SELECT count(*) FROM candles")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(read, 0, "reads work");
    let write = sqlx::query(
        "INSERT INTO instruments (symbol, base_asset, quote_asset) VALUES ('XUSDT', 'X', 'USDT')",
    )
    .execute(&pool)
    .await
    .unwrap_err();
    let code = write.as_database_error().and_then(|e| e.code());
    assert_eq!(
        code.as_deref(),
        Some("25006"),
        "read_only_sql_transaction: {write}"
    );
    let delete = sqlx::query("DELETE FROM candles")
        .execute(&pool)
        .await
        .unwrap_err();
    assert!(
        delete.to_string().contains("read-only transaction"),
        "{delete}"
    );
}

#[test]
fn a_bad_inline_definition_names_the_field() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_trading-agent"))
        .args(["backtest", "--from", "2025-01-01", "--to", "2025-01-02"])
        .args(["--csv", "BTCUSDT=/nonexistent.csv"])
        .env(
            "BACKTEST_STRATEGY",
            r#"{"name":"x","kind":"sma_cross","params":{"fast":30,"slow":10},"symbols":["BTCUSDT"],"timeframe":"1m"}"#,
        )
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("params.fast"), "{stderr}");
}
