//! The database handle every role shares: a lazily connecting pool, the start-up phase (connect with
//! back-off, then migrate) and the cached readiness check behind `/readyz`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use tokio::sync::watch;

use crate::config::DatabaseConfig;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::schema::SchemaVersions;

/// The migrations in `api/migrations`, compiled into the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// How long a readiness answer is reused: probes and load balancers may ask often, the database
/// is asked at most once per this period.
const READY_CACHE: Duration = Duration::from_secs(1);
/// A readiness ping slower than this counts as "database unusable".
const READY_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest pause between two connection attempts at start.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    options: PgConnectOptions,
    started: AtomicBool,
    last_check: Mutex<Option<(Instant, bool)>>,
    check_running: tokio::sync::Mutex<()>,
    metrics: Arc<Metrics>,
    /// The schema versions found at start (`/healthz`).
    schema: Mutex<Option<SchemaVersions>>,
}

impl Db {
    /// Creates the pool without connecting: nothing here waits for the database.
    pub fn new(config: &DatabaseConfig, metrics: Arc<Metrics>) -> Self {
        let options = config
            .options
            .clone()
            // A runaway query must not hold a connection forever.
            .options([("statement_timeout", "30s")]);
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(3))
            .idle_timeout(Duration::from_secs(300))
            // No ping before every acquire: a dead connection fails its query once (503) and is
            // replaced; the ping would cost a round trip on every request.
            .test_before_acquire(false)
            .connect_lazy_with(options.clone());
        Db {
            inner: Arc::new(Inner {
                pool,
                options,
                started: AtomicBool::new(false),
                last_check: Mutex::new(None),
                check_running: tokio::sync::Mutex::new(()),
                metrics,
                schema: Mutex::new(None),
            }),
        }
    }

    /// The pool, once the start-up phase has finished (connected and migrated).
    pub fn pool(&self) -> Result<&PgPool> {
        if self.inner.started.load(Ordering::Acquire) {
            Ok(&self.inner.pool)
        } else {
            Err(Error::Unavailable(
                "still connecting to the database".into(),
            ))
        }
    }

    pub fn is_started(&self) -> bool {
        self.inner.started.load(Ordering::Acquire)
    }

    /// The schema versions this binary expects and the database holds, once checked at start.
    pub fn schema(&self) -> Option<SchemaVersions> {
        self.inner.schema.lock().ok()?.clone()
    }

    /// Start-up phase: retries with exponential back-off until the database answers and the
    /// migrations are applied (or, with `run_migrations` false, found applied), or until shutdown.
    pub async fn start(&self, run_migrations: bool, mut shutdown: watch::Receiver<bool>) {
        let mut delay = Duration::from_millis(200);
        let mut attempt = 1u32;
        loop {
            match self.try_start(run_migrations).await {
                Ok(()) => {
                    self.inner.started.store(true, Ordering::Release);
                    self.inner.metrics.database_ready.set(1);
                    tracing::info!(attempt, "database connection established");
                    return;
                }
                Err(error) => {
                    tracing::warn!(%error, attempt, retry_in_ms = delay.as_millis() as u64, "database not usable yet");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
            delay = (delay * 2).min(MAX_BACKOFF);
            attempt += 1;
        }
    }

    async fn try_start(&self, run_migrations: bool) -> Result<()> {
        if run_migrations {
            migrate(&self.inner.options).await?;
        }
        let schema = schema_versions(&self.inner.pool).await?;
        if let Ok(mut known) = self.inner.schema.lock() {
            *known = Some(schema.clone());
        }
        if !schema.is_usable() {
            return Err(Error::Unavailable(schema.refusal()));
        }
        if !schema.unknown.is_empty() {
            // A rollback: a newer release migrated the database. Its migrations are expand-only
            // (api/README.md, "Migrations"), so this binary runs against them.
            tracing::warn!(
                expected = schema.expected,
                found = schema.found,
                unknown = ?schema.unknown,
                "the database holds migrations of a newer release that this binary does not know; ignoring them"
            );
        }
        Ok(())
    }

    /// Whether the database is usable right now: started, and a `SELECT 1` answers within a second.
    /// The answer is cached for a second and only one check runs at a time.
    pub async fn check_ready(&self) -> bool {
        if !self.is_started() {
            return false;
        }
        if let Some(ok) = self.cached() {
            return ok;
        }
        let _single_flight = self.inner.check_running.lock().await;
        if let Some(ok) = self.cached() {
            return ok;
        }
        let ok = matches!(
            tokio::time::timeout(
                READY_TIMEOUT,
                sqlx::query("SELECT 1").execute(&self.inner.pool)
            )
            .await,
            Ok(Ok(_))
        );
        self.inner.metrics.database_ready.set(i64::from(ok));
        if let Ok(mut last) = self.inner.last_check.lock() {
            *last = Some((Instant::now(), ok));
        }
        ok
    }

    fn cached(&self) -> Option<bool> {
        let last = self.inner.last_check.lock().ok()?;
        match *last {
            Some((at, ok)) if at.elapsed() < READY_CACHE => Some(ok),
            _ => None,
        }
    }

    /// Closes the pool: waits for checked-out connections to come back, then disconnects.
    pub async fn close(&self) {
        self.inner.pool.close().await;
        tracing::info!("database pool closed");
    }
}

/// The migrations this binary knows against those applied successfully to the database.
pub async fn schema_versions(pool: &PgPool) -> Result<SchemaVersions> {
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await
            .or_else(|error| match &error {
                // No migration ever ran here: the table does not exist yet.
                sqlx::Error::Database(e) if e.code().as_deref() == Some("42P01") => Ok(Vec::new()),
                _ => Err(error),
            })?;
    let known: Vec<i64> = MIGRATOR.iter().map(|m| m.version).collect();
    Ok(SchemaVersions::compare(&known, &applied))
}

/// Applies the embedded migrations on a dedicated connection. sqlx takes a PostgreSQL advisory lock
/// around the run, so pods starting together apply each migration once; using our own connection
/// (closed afterwards) guarantees that lock is released even if the run fails half-way.
pub async fn migrate(options: &PgConnectOptions) -> Result<()> {
    // A one-connection pool of its own, closed afterwards: closing ends the session, and with it
    // any advisory lock a failed run left behind.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options.clone())
        .await?;
    // After a rollback, the database holds migrations of a newer version that this binary does
    // not know. Migrations are expand-only by rule, so this binary runs against them rather than
    // refusing to start (sqlx's default).
    let mut migrator = sqlx::migrate!("./migrations");
    if crate::faults::newer_release_migration() {
        migrator = crate::faults::with_newer_release_migration(&migrator);
    }
    migrator.set_ignore_missing(true);
    let result = migrator.run(&pool).await;
    pool.close().await;
    result?;
    Ok(())
}
