//! Shared fixtures of the integration tests: a real PostgreSQL per test (the workspace's
//! `TempPostgres`), the API served in-process on a loopback port, and the real binary as a child
//! process for start-up, signal and crash tests.

#![allow(dead_code)]

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use rust_decimal::Decimal;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::sync::watch;
use trading_agent::config::DatabaseConfig;
use trading_agent::config::Role;
use trading_agent::db::Db;
use trading_agent::domain::{Candle, Timeframe};
use trading_agent::metrics::Metrics;
use trading_agent::server::Probes;
use trading_agent_tests::postgres::TempPostgres;

pub const TOKEN: &str = "test-token-0123456789abcdef";

/// A started PostgreSQL with one migrated database.
pub struct Database {
    pub pg: TempPostgres,
    pub url: String,
    pub pool: PgPool,
}

/// Starts a throwaway server, creates database `name` and applies the migrations.
pub async fn database(name: &str) -> Database {
    trading_agent::install_crypto_provider();
    let name = name.to_owned();
    let (pg, url) = tokio::task::spawn_blocking(move || {
        let pg = TempPostgres::start_new().expect("PostgreSQL starts");
        let url = pg.create_database(&name).expect("database created");
        (pg, url)
    })
    .await
    .unwrap();
    let options = PgConnectOptions::from_str(&url).unwrap();
    trading_agent::db::migrate(&options)
        .await
        .expect("migrations apply");
    let pool = PgPoolOptions::new()
        .max_connections(5)
        .connect_with(options)
        .await
        .expect("test pool connects");
    Database { pg, url, pool }
}

pub fn db_config(url: &str) -> DatabaseConfig {
    DatabaseConfig {
        options: PgConnectOptions::from_str(url).unwrap(),
        max_connections: 5,
    }
}

/// The API router served in-process on a loopback port.
pub struct TestApi {
    pub base: String,
    pub client: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TestApi {
    pub async fn start(url: &str) -> TestApi {
        trading_agent::install_crypto_provider();
        let metrics = Metrics::new("api");
        let db = Db::new(&db_config(url), metrics.clone());
        let (_keep, stop_rx) = watch::channel(false);
        db.start(true, stop_rx).await;
        assert!(db.is_started());
        let probes = Probes {
            role: Role::Api,
            db: db.clone(),
            liveness: None,
            draining: Arc::new(AtomicBool::new(false)),
            metrics: metrics.clone(),
        };
        let app =
            trading_agent::http::router(trading_agent::http::state(db, metrics, TOKEN), probes);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        TestApi {
            base,
            client: reqwest::Client::new(),
            stop: Some(stop),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// An authenticated request.
    pub fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(TOKEN)
    }

    pub async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let response = self.req(reqwest::Method::GET, path).send().await.unwrap();
        let status = response.status().as_u16();
        (
            status,
            response.json().await.unwrap_or(serde_json::Value::Null),
        )
    }

    pub async fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let response = self.req(method, path).json(&body).send().await.unwrap();
        let status = response.status().as_u16();
        (
            status,
            response.json().await.unwrap_or(serde_json::Value::Null),
        )
    }
}

impl Drop for TestApi {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The `trading-agent` binary as a child process; killed when dropped.
pub struct Process {
    pub child: Child,
    pub log: PathBuf,
}

impl Process {
    /// Starts `trading-agent <args>` with exactly `env` (plus PATH), output to a log file.
    pub fn spawn(args: &[&str], env: &[(&str, &str)]) -> Process {
        let log = std::env::temp_dir().join(format!(
            "trading-agent-test-{}-{}.log",
            std::process::id(),
            Instant::now().elapsed().as_nanos() ^ rand_suffix()
        ));
        let out = File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_trading-agent"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("LOG_LEVEL", "info,trading_agent=debug")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("binary starts");
        Process { child, log }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

fn rand_suffix() -> u128 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(0u8) as u128
}

pub fn free_port() -> u16 {
    // Every test that starts a process also builds HTTP clients, which need the TLS provider.
    trading_agent::install_crypto_provider();
    trading_agent_tests::process::free_loopback_port().unwrap()
}

/// Polls `check` every 50 ms until it returns true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn d(text: &str) -> Decimal {
    Decimal::from_str(text).unwrap()
}

/// Flat candles ending with the given closes, one per timeframe step, the last one opening at `last_open`.
pub fn candles_with_closes(
    closes: &[f64],
    timeframe: Timeframe,
    last_open: chrono::DateTime<chrono::Utc>,
) -> Vec<Candle> {
    let n = closes.len() as i32;
    closes
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let close = Decimal::from_str(&format!("{c:.4}")).unwrap();
            Candle {
                open_time: last_open - timeframe.duration() * (n - 1 - i as i32),
                open: close,
                high: close,
                low: close,
                close,
                volume: Decimal::ONE,
            }
        })
        .collect()
}
