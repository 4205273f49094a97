//! Schema compatibility against a real PostgreSQL and the real binary: a rollback runs the previous
//! release against a database a newer release migrated (it must start, and say so); a database
//! older than the binary needs is refused with a clear message when migrations are skipped.

mod common;

use std::time::Duration;

use common::{Process, TOKEN, eventually, free_port};
use serde_json::Value;
use trading_agent_tests::postgres::TempPostgres;

/// A migration version no release of this binary knows (a newer release's).
const NEWER: i64 = 29_991_231_000_000;

fn api_env(url: &str, port: u16, skip_migrations: bool) -> Vec<(&'static str, String)> {
    vec![
        ("DATABASE_URL", url.to_owned()),
        ("PORT", port.to_string()),
        ("BIND_ADDRESS", "127.0.0.1".into()),
        ("API_TOKEN", TOKEN.into()),
        ("SHUTDOWN_DELAY", "0s".into()),
        ("SKIP_MIGRATIONS", skip_migrations.to_string()),
    ]
}

fn spawn_api(env: &[(&'static str, String)]) -> Process {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Process::spawn(&["api"], &env)
}

async fn get(client: &reqwest::Client, url: String) -> Option<(u16, Value)> {
    let response = client.get(url).send().await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.json().await.ok()?))
}

fn expected_version() -> i64 {
    trading_agent::db::MIGRATOR
        .iter()
        .map(|m| m.version)
        .max()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_one_migration_ahead_serves_and_reports_both_versions() {
    let database = common::database("ahead").await;
    // What a newer release would have done: an expand step, recorded as applied.
    database
        .pg
        .psql(
            "ahead",
            &format!(
                "ALTER TABLE candles ADD COLUMN note text; \
                 INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
                 VALUES ({NEWER}, 'from a newer release', true, '\\x00', 1)"
            ),
        )
        .unwrap();
    let port = free_port();
    let api = spawn_api(&api_env(&database.url, port, false));
    let client = reqwest::Client::new();
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    eventually(Duration::from_secs(30), "/readyz 200", || async {
        matches!(get(&client, url("/readyz")).await, Some((200, _)))
    })
    .await;

    let (status, health) = get(&client, url("/healthz")).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(health["schema"]["expected"], expected_version());
    assert_eq!(health["schema"]["found"], NEWER);
    assert_eq!(health["schema"]["unknown"], serde_json::json!([NEWER]));
    assert!(health["schema"].get("missing").is_none(), "{health}");
    // It serves, against the migrated schema.
    let instruments = client
        .get(url("/api/v2/instruments"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(instruments.status().as_u16(), 200);
    let log = api.output();
    assert!(
        log.contains("migrations of a newer release that this binary does not know"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skipping_migrations_refuses_an_older_database_clearly() {
    trading_agent::install_crypto_provider();
    let (pg, url) = tokio::task::spawn_blocking(|| {
        let pg = TempPostgres::start_new().unwrap();
        let url = pg.create_database("older").unwrap();
        (pg, url)
    })
    .await
    .unwrap();
    let port = free_port();
    let api = spawn_api(&api_env(&url, port, true));
    let client = reqwest::Client::new();
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    eventually(Duration::from_secs(30), "/healthz reports the schema", || async {
        matches!(get(&client, url("/healthz")).await, Some((200, h)) if h.get("schema").is_some())
    })
    .await;
    let (_, health) = get(&client, url("/healthz")).await.unwrap();
    assert_eq!(health["schema"]["expected"], expected_version());
    assert_eq!(health["schema"]["found"], Value::Null);
    assert!(!health["schema"]["missing"].as_array().unwrap().is_empty());
    let (status, _) = get(&client, url("/readyz")).await.unwrap();
    assert_eq!(status, 503, "an older database is never served");
    eventually(
        Duration::from_secs(10),
        "the refusal in the log",
        || async {
            api.output()
                .contains("the database schema is older than this binary needs")
        },
    )
    .await;
    drop(pg);
}
