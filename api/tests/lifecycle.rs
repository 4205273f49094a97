//! Start-up, readiness and shutdown of the real binary against a real PostgreSQL: `/healthz`
//! answers while the database is down, `/readyz` follows the database both ways without a
//! restart, SIGTERM under load fails no request, and a stalled worker loop fails `/healthz`.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::Mutex;
use trading_agent::config::Role;
use trading_agent::config::{ServeConfig, WorkerConfig};
use trading_agent::db::Db;
use trading_agent::domain::Timeframe;
use trading_agent::metrics::Metrics;
use trading_agent::server::{Liveness, Probes};
use trading_agent::workers::{LoopContext, Worker, run_loop};
use trading_agent_tests::postgres::TempPostgres;

use common::{Process, TOKEN, candles_with_closes, database, db_config, eventually, free_port};

async fn get(client: &reqwest::Client, url: String) -> Option<(u16, Value)> {
    let response = client.get(url).bearer_auth(TOKEN).send().await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.json().await.unwrap_or(Value::Null)))
}

async fn status_is(client: &reqwest::Client, url: String, expected: u16) -> bool {
    matches!(get(client, url).await, Some((s, _)) if s == expected)
}

fn vars(pairs: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
    pairs.to_vec()
}

fn as_env<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    v.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_database_without_a_restart() {
    // Initialised but not started: the database is down when the pods start.
    let pg = tokio::task::spawn_blocking(|| TempPostgres::init().unwrap())
        .await
        .unwrap();
    let url = pg.url();
    let (api_port, bot_port) = (free_port(), free_port());
    let api_env = vars(&[
        ("DATABASE_URL", url.clone()),
        ("PORT", api_port.to_string()),
        ("BIND_ADDRESS", "127.0.0.1".into()),
        ("API_TOKEN", TOKEN.into()),
        ("SHUTDOWN_DELAY", "0s".into()),
        ("LOG_FORMAT", "json".into()),
    ]);
    let mut api = Process::spawn(&["api"], &as_env(&api_env));
    let bot_env = vars(&[
        ("DATABASE_URL", url.clone()),
        ("PORT", bot_port.to_string()),
        ("BIND_ADDRESS", "127.0.0.1".into()),
        ("TICK_INTERVAL", "200ms".into()),
    ]);
    let mut bot = Process::spawn(&["bot"], &as_env(&bot_env));
    let client = reqwest::Client::new();
    let api_url = |p: &str| format!("http://127.0.0.1:{api_port}{p}");
    let bot_url = |p: &str| format!("http://127.0.0.1:{bot_port}{p}");

    // /healthz answers at once, with the database down.
    let started = Instant::now();
    eventually(Duration::from_secs(5), "api /healthz", || {
        status_is(&client, api_url("/healthz"), 200)
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(5));
    let (_, health) = get(&client, api_url("/healthz")).await.unwrap();
    assert_eq!(
        (health["status"].as_str(), health["role"].as_str()),
        (Some("ok"), Some("api"))
    );
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    DateTime::parse_from_rfc3339(health["timestamp"].as_str().unwrap())
        .expect("RFC 3339 timestamp");
    let (status, ready) = get(&client, api_url("/readyz")).await.unwrap();
    assert_eq!((status, ready["reason"].as_str()), (503, Some("starting")));
    // The API answers 503 in the error shape meanwhile, never 500; /version needs no database.
    let (status, body) = get(&client, api_url("/api/v2/instruments")).await.unwrap();
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("unavailable"))
    );
    assert!(status_is(&client, api_url("/api/v2/version"), 200).await);
    eventually(Duration::from_secs(5), "bot /healthz", || {
        status_is(&client, bot_url("/healthz"), 200)
    })
    .await;
    let (_, health) = get(&client, bot_url("/healthz")).await.unwrap();
    assert_eq!(health["role"], "bot");
    assert!(status_is(&client, bot_url("/readyz"), 503).await);

    // The database comes up: both become ready without a restart.
    let mut pg = tokio::task::spawn_blocking(move || {
        let mut pg = pg;
        pg.start().unwrap();
        pg
    })
    .await
    .unwrap();
    eventually(Duration::from_secs(30), "api ready", || {
        status_is(&client, api_url("/readyz"), 200)
    })
    .await;
    eventually(Duration::from_secs(30), "bot ready", || {
        status_is(&client, bot_url("/readyz"), 200)
    })
    .await;
    assert!(status_is(&client, api_url("/api/v2/instruments"), 200).await);

    // The database goes away: not ready (out of the Service), still alive (no restart).
    pg = tokio::task::spawn_blocking(move || {
        pg.stop().unwrap();
        pg
    })
    .await
    .unwrap();
    eventually(Duration::from_secs(10), "api unready", || async {
        matches!(get(&client, api_url("/readyz")).await, Some((503, body)) if body["reason"] == "database unavailable")
    })
    .await;
    assert!(status_is(&client, api_url("/healthz"), 200).await);
    let (status, body) = get(&client, api_url("/api/v2/strategies")).await.unwrap();
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("unavailable"))
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        status_is(&client, bot_url("/healthz"), 200).await,
        "a database outage is not a stalled loop"
    );

    // And back.
    let _pg = tokio::task::spawn_blocking(move || {
        pg.start().unwrap();
        pg
    })
    .await
    .unwrap();
    eventually(Duration::from_secs(30), "api ready again", || {
        status_is(&client, api_url("/readyz"), 200)
    })
    .await;
    eventually(Duration::from_secs(30), "api serving again", || {
        status_is(&client, api_url("/api/v2/instruments"), 200)
    })
    .await;

    for process in [&mut api, &mut bot] {
        process.sigterm();
        let status = process
            .wait_timeout(Duration::from_secs(10))
            .expect("stops on SIGTERM");
        assert!(status.success(), "{status:?}\n{}", process.output());
    }
    let log = api.output();
    for line in [
        "database connection established",
        "API v2 server ready",
        "database pool closed",
    ] {
        assert!(log.contains(line), "api log lacks {line:?}:\n{log}");
    }
    assert!(
        log.lines().all(|l| l.starts_with('{')),
        "LOG_FORMAT=json gives JSON lines:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_fails_no_request() {
    let db = database("drain").await;
    trading_agent::store::instruments::create(&db.pool, "BTCUSDT", "BTC", "USDT")
        .await
        .unwrap();
    trading_agent::store::instruments::create(&db.pool, "ETHUSDT", "ETH", "USDT")
        .await
        .unwrap();
    let port = free_port();
    let env = vars(&[
        ("DATABASE_URL", db.url.clone()),
        ("PORT", port.to_string()),
        ("BIND_ADDRESS", "127.0.0.1".into()),
        ("API_TOKEN", TOKEN.into()),
        ("SHUTDOWN_DELAY", "1s".into()),
    ]);
    let mut api = Process::spawn(&["api"], &as_env(&env));
    let base = format!("http://127.0.0.1:{port}");
    let probe_client = reqwest::Client::new();
    eventually(Duration::from_secs(30), "ready", || {
        status_is(&probe_client, format!("{base}/readyz"), 200)
    })
    .await;

    // A readiness poller stands in for the kubelet and the endpoints controller: once it sees 503,
    // load balancers send no new requests. Requests already sent must all complete.
    let unready = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let succeeded = Arc::new(AtomicUsize::new(0));
    let poller = tokio::spawn({
        let (unready, base) = (unready.clone(), base.clone());
        async move {
            let client = reqwest::Client::new();
            loop {
                match client.get(format!("{base}/readyz")).send().await {
                    Ok(r) if r.status() == 503 => break,
                    Ok(_) => {}
                    Err(_) => break,
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            unready.store(true, Ordering::SeqCst);
        }
    });
    // Steady load: reads and small writes on fresh connections.
    let mut clients = Vec::new();
    for worker in 0..6 {
        let (unready, failures, succeeded, base) = (
            unready.clone(),
            failures.clone(),
            succeeded.clone(),
            base.clone(),
        );
        clients.push(tokio::spawn(async move {
            let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut i = 0i64;
            while !unready.load(Ordering::SeqCst) && Instant::now() < deadline {
                i += 1;
                let request = if i % 2 == 0 {
                    client.get(format!("{base}/api/v2/candles?symbol=BTCUSDT&timeframe=1m&limit=200"))
                } else {
                    let t = chrono::DateTime::<Utc>::from_timestamp((worker * 1_000_000 + i) * 60, 0).unwrap();
                    let candles = candles_with_closes(&[100.0, 101.0], Timeframe::M1, t);
                    client
                        .put(format!("{base}/api/v2/candles"))
                        .json(&serde_json::json!({"symbol": "BTCUSDT", "timeframe": "1m", "candles": candles}))
                };
                match request.bearer_auth(TOKEN).send().await {
                    Ok(r) if r.status().is_success() => {
                        succeeded.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(r) => failures.lock().await.push(format!("status {}", r.status())),
                    Err(e) => failures.lock().await.push(format!("error {e:?}")),
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(800)).await;

    // Slow requests in flight when the listener closes: large CSV imports.
    let mut csv = String::from("open_time,open,high,low,close,volume\n");
    let rows = 60_000;
    for k in 0..rows {
        csv.push_str(&format!(
            "{},100,101,99,100.5,1\n",
            1_600_000_000 + k * 60 - (1_600_000_000 % 60)
        ));
    }
    let csv = Arc::new(csv);
    // A large import, busy in the server when SIGTERM arrives.
    let big_import = tokio::spawn({
        let (csv, base) = (csv.clone(), base.clone());
        async move {
            reqwest::Client::new()
                .post(format!(
                    "{base}/api/v2/candles/import?symbol=BTCUSDT&timeframe=1m"
                ))
                .bearer_auth(TOKEN)
                .header("content-type", "text/csv")
                .body(csv.to_string())
                .send()
                .await
                .map(|r| r.status().as_u16())
        }
    });
    // A slow upload: half the body before SIGTERM, the rest after the listener has closed. It was
    // accepted before the close, so it must still be answered.
    let (term_tx, term_rx) = tokio::sync::oneshot::channel::<Instant>();
    let slow_upload = tokio::spawn({
        let csv = csv.clone();
        async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap();
            let head = format!(
                "POST /api/v2/candles/import?symbol=ETHUSDT&timeframe=1m HTTP/1.1\r\nHost: localhost\r\n\
                 Authorization: Bearer {TOKEN}\r\nContent-Type: text/csv\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n",
                csv.len()
            );
            let half = csv.len() / 2;
            stream.write_all(head.as_bytes()).await.unwrap();
            stream.write_all(&csv.as_bytes()[..half]).await.unwrap();
            let term_sent = term_rx.await.unwrap();
            tokio::time::sleep_until((term_sent + Duration::from_millis(1500)).into()).await;
            stream.write_all(&csv.as_bytes()[half..]).await.unwrap();
            let mut response = String::new();
            stream.read_to_string(&mut response).await.unwrap();
            (response, Instant::now() - term_sent)
        }
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let term_sent = Instant::now();
    api.sigterm();
    term_tx.send(term_sent).unwrap();
    let listener_closed = tokio::spawn(async move {
        tokio::time::sleep_until((term_sent + Duration::from_millis(1300)).into()).await;
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
    });

    let status = tokio::task::spawn_blocking(move || {
        let status = api.wait_timeout(Duration::from_secs(30));
        (status, api)
    })
    .await
    .unwrap();
    let (status, api) = status;
    let status = status.expect("the API exits after draining");
    poller.await.unwrap();
    for c in clients {
        c.await.unwrap();
    }
    assert_eq!(
        big_import.await.unwrap().ok(),
        Some(200),
        "the large import in flight at SIGTERM"
    );
    let (response, answered_after) = slow_upload.await.unwrap();
    assert!(
        response.starts_with("HTTP/1.1 200"),
        "slow upload: {}",
        &response[..response.len().min(300)]
    );
    assert!(
        answered_after > Duration::from_millis(1500),
        "answered after the listener closed"
    );
    assert!(
        listener_closed.await.unwrap(),
        "the listener was closed 1.3 s after SIGTERM"
    );
    let failures = failures.lock().await;
    assert!(
        failures.is_empty(),
        "{} requests failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(succeeded.load(Ordering::SeqCst) > 20, "load was applied");
    assert!(status.success(), "{status:?}\n{}", api.output());
    let log = api.output();
    let closing = log.find("closing the listener").expect("drain logged");
    let pool_closed = log.find("database pool closed").expect("pool closed");
    assert!(
        closing < pool_closed,
        "the pool closes after the requests drained"
    );
    let imported: i64 =
        sqlx::query_scalar("SELECT count(*) FROM candles WHERE open_time >= '2020-01-01'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        imported,
        2 * rows,
        "the in-flight imports committed completely"
    );
}

/// A worker whose tick never returns.
struct StuckWorker;

impl Worker for StuckWorker {
    async fn tick(
        &mut self,
        _pool: &sqlx::PgPool,
        _liveness: &Liveness,
    ) -> trading_agent::Result<()> {
        std::future::pending::<()>().await;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_worker_loop_fails_healthz() {
    let db = database("stall").await;
    let metrics = Metrics::new("strategy");
    let db_handle = Db::new(&db_config(&db.url), metrics.clone());
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    db_handle.start(true, stop_rx.clone()).await;
    let config = WorkerConfig {
        serve: ServeConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            run_migrations: true,
            database: db_config(&db.url),
        },
        tick_interval: Duration::from_millis(100),
        stall_after: Duration::from_millis(400),
        instance: "test".into(),
    };
    let liveness = Liveness::new(config.stall_after);
    let probes = Probes {
        role: Role::Strategy,
        db: db_handle.clone(),
        liveness: Some(liveness.clone()),
        draining: Arc::new(AtomicBool::new(false)),
        metrics: metrics.clone(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, trading_agent::http::worker_router(probes))
            .await
            .unwrap()
    });
    let context = LoopContext {
        role: Role::Strategy,
        db: db_handle,
        metrics,
        liveness,
        config,
        started_at: Utc::now(),
        wake: None,
    };
    tokio::spawn(run_loop(context, StuckWorker, stop_rx));
    let client = reqwest::Client::new();
    assert!(status_is(&client, format!("{base}/healthz"), 200).await);
    eventually(Duration::from_secs(5), "healthz 503", || {
        status_is(&client, format!("{base}/healthz"), 503)
    })
    .await;
    let (_, body) = get(&client, format!("{base}/healthz")).await.unwrap();
    assert_eq!(body["status"], "stalled");
    assert!(body["last_tick_seconds_ago"].as_f64().unwrap() > 0.4);
    let _ = stop.send(true);
}

/// Arguments, environment, expected message.
type ConfigCase = (
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
    &'static str,
);

#[test]
fn bad_configuration_exits_with_status_2_and_names_the_setting() {
    let cases: [ConfigCase; 5] = [
        (&["api"], &[("API_TOKEN", TOKEN)], "DATABASE_URL is not set"),
        (
            &["api"],
            &[
                ("DATABASE_URL", "postgres://x@127.0.0.1/db"),
                ("API_TOKEN", "short"),
            ],
            "API_TOKEN must be at least 16 characters",
        ),
        (
            &["bot"],
            &[("DATABASE_URL", "mysql://x/db")],
            "DATABASE_URL must start with postgres://",
        ),
        (
            &["bot"],
            &[
                ("DATABASE_URL", "postgres://x@127.0.0.1/db"),
                ("FEE_RATE", "0.5"),
            ],
            "FEE_RATE must be at least 0 and below 0.1",
        ),
        (
            &["strategy", "--tick-interval", "soon"],
            &[("DATABASE_URL", "postgres://x@127.0.0.1/db")],
            "not a duration",
        ),
    ];
    for (args, env, message) in cases {
        let mut process = Process::spawn(args, env);
        let status = process
            .wait_timeout(Duration::from_secs(10))
            .expect("exits at once");
        assert_eq!(status.code(), Some(2), "{args:?}: {}", process.output());
        assert!(
            process.output().contains(message),
            "{args:?}: {}",
            process.output()
        );
    }
}
