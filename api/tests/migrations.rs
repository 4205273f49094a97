//! Migrations against a real PostgreSQL: several pods starting together apply each migration once.

use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;
use trading_agent_tests::postgres::TempPostgres;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_migrations_apply_once() {
    trading_agent::install_crypto_provider();
    let (pg, url) = tokio::task::spawn_blocking(|| {
        let pg = TempPostgres::start_new().unwrap();
        let url = pg.create_database("concurrent").unwrap();
        (pg, url)
    })
    .await
    .unwrap();
    let options = PgConnectOptions::from_str(&url).unwrap();
    // Six "pods" at once; sqlx serialises them on an advisory lock.
    let runs: Vec<_> = (0..6)
        .map(|_| {
            let options = options.clone();
            tokio::spawn(async move { trading_agent::db::migrate(&options).await })
        })
        .collect();
    for run in runs {
        run.await.unwrap().expect("every concurrent run succeeds");
    }
    let applied = pg
        .psql(
            "concurrent",
            "SELECT count(*), bool_and(success) FROM _sqlx_migrations",
        )
        .unwrap();
    let expected = trading_agent::db::MIGRATOR.iter().count();
    assert_eq!(applied, format!("{expected}|t"));
    // No advisory lock is left behind.
    let locks = pg
        .psql(
            "concurrent",
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'",
        )
        .unwrap();
    assert_eq!(locks, "0");
}

/// A rollback: the database was migrated by a newer version, with a migration this binary does not
/// know. Migrations are expand-only, so this binary must start against it (sqlx refuses by default:
/// "migration ... was previously applied but is missing in the resolved migrations").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_migrated_by_a_newer_version_is_accepted() {
    trading_agent::install_crypto_provider();
    let (pg, url) = tokio::task::spawn_blocking(|| {
        let pg = TempPostgres::start_new().unwrap();
        let url = pg.create_database("newer").unwrap();
        (pg, url)
    })
    .await
    .unwrap();
    let options = PgConnectOptions::from_str(&url).unwrap();
    trading_agent::db::migrate(&options).await.unwrap();
    pg.psql(
        "newer",
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (29991231000000, 'from the future', true, '\\x00', 1)",
    )
    .unwrap();
    trading_agent::db::migrate(&options)
        .await
        .expect("a newer database is accepted");
}
