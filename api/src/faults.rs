//! Fail points: faults the level-3 tests inject into a real image, because some failures cannot
//! be caused from outside: a worker loop that stops making progress while the process and its
//! HTTP server stay up (what liveness exists for), or a release that migrates the database further
//! than the previous one knows (what a rollback must survive).
//!
//! Built only with `--features failpoints` (the `fail` crate's points compile to nothing without
//! it) and configured by the `FAILPOINTS` environment variable at start, e.g.
//! `FAILPOINTS=worker-loop-stall=3*off->return`: three ticks pass, then the loop stalls.

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

/// Reads `FAILPOINTS`. Keep the guard for the life of the process. An unparsable value panics at
/// start, which is what a test build should do with a typo.
#[cfg(feature = "failpoints")]
pub fn setup() -> fail::FailScenario<'static> {
    fail::FailScenario::setup()
}

/// `worker-loop-stall`: when it fires, the worker loop stops ticking (and beating) until shutdown.
pub fn worker_loop_stall() -> bool {
    fail::fail_point!("worker-loop-stall", |_| true);
    false
}

/// `schema-newer-release`: at start the binary also applies [`NEWER_RELEASE_MIGRATION`], as the next
/// release would apply its own, so a rollback can be tested against a database migrated past what
/// the previous digest knows.
pub fn newer_release_migration() -> bool {
    fail::fail_point!("schema-newer-release", |_| true);
    false
}

/// The version of that migration: later than any real one, known to no release.
pub const NEWER_RELEASE_MIGRATION: i64 = 29_991_231_000_000;

/// `migrator`'s migrations plus [`NEWER_RELEASE_MIGRATION`] (expand-only: a new table).
pub fn with_newer_release_migration(migrator: &Migrator) -> Migrator {
    let mut migrations: Vec<Migration> = migrator.iter().cloned().collect();
    migrations.push(Migration::new(
        NEWER_RELEASE_MIGRATION,
        "fail point: a newer release's expand-only migration".into(),
        MigrationType::Simple,
        "CREATE TABLE IF NOT EXISTS newer_release_probe (id bigint PRIMARY KEY)".into_sql_str(),
        false,
    ));
    Migrator::with_migrations(migrations)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newer_release_migration_comes_after_every_real_one() {
        let embedded = &crate::db::MIGRATOR;
        let migrator = with_newer_release_migration(embedded);
        let versions: Vec<i64> = migrator.iter().map(|m| m.version).collect();
        assert_eq!(versions.len(), embedded.iter().count() + 1);
        assert_eq!(versions.last(), Some(&NEWER_RELEASE_MIGRATION));
        assert!(embedded.iter().all(|m| m.version < NEWER_RELEASE_MIGRATION));
    }

    #[test]
    fn fail_points_are_off_unless_configured() {
        assert!(!worker_loop_stall());
        assert!(!newer_release_migration());
    }
}
