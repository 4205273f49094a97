//! `component_heartbeats`: each worker instance's last completed loop, for the component-health
//! view (`GET /api/v2/health/components`).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgExecutor;
use utoipa::ToSchema;

use crate::build::Build;
use crate::error::Result;

/// One worker instance's liveness as recorded in the database.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct ComponentHealth {
    /// `bot` or `strategy`.
    pub role: String,
    /// Pod (host) name.
    pub instance: String,
    /// Package version of the build.
    #[schema(example = "0.1.0")]
    pub version: String,
    /// The commit the build was made from (`unknown` when it was not recorded at build time);
    /// absent for heartbeats written by a release that did not record it.
    #[schema(example = "3b7f13f")]
    pub commit: Option<String>,
    /// The pinned image reference the pod runs (`IMAGE_REF`); absent outside Kubernetes.
    #[schema(
        example = "registry.example.com/acme/trading-agent:stable@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    )]
    pub image_ref: Option<String>,
    /// The image digest the pod runs, from `image_ref`.
    #[schema(example = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")]
    pub image_digest: Option<String>,
    pub started_at: DateTime<Utc>,
    /// End of the last completed loop.
    pub last_tick_at: DateTime<Utc>,
    pub tick_interval_ms: i64,
    /// True when no loop has completed for several intervals (stuck or gone).
    pub stale: bool,
}

#[derive(Debug, Clone)]
pub struct Heartbeat<'a> {
    pub role: &'a str,
    pub instance: &'a str,
    pub started_at: DateTime<Utc>,
    pub tick_interval_ms: i64,
    pub stall_after_ms: i64,
    /// What the instance runs ([`Build::current`] in a worker).
    pub build: &'a Build,
}

pub async fn beat(db: impl PgExecutor<'_>, h: &Heartbeat<'_>) -> Result<()> {
    sqlx::query(
        "INSERT INTO component_heartbeats
             (role, instance, version, commit, image_ref, image_digest, started_at, last_tick_at,
              tick_interval_ms, stall_after_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, now(), $8, $9)
         ON CONFLICT (role, instance) DO UPDATE
         SET version = EXCLUDED.version, commit = EXCLUDED.commit,
             image_ref = EXCLUDED.image_ref, image_digest = EXCLUDED.image_digest,
             started_at = EXCLUDED.started_at, last_tick_at = EXCLUDED.last_tick_at,
             tick_interval_ms = EXCLUDED.tick_interval_ms, stall_after_ms = EXCLUDED.stall_after_ms",
    )
    .bind(h.role)
    .bind(h.instance)
    .bind(&h.build.version)
    .bind(&h.build.commit)
    .bind(&h.build.image_ref)
    .bind(&h.build.image_digest)
    .bind(h.started_at)
    .bind(h.tick_interval_ms)
    .bind(h.stall_after_ms)
    .execute(db)
    .await?;
    Ok(())
}

/// Instances seen in the last day, newest first per role.
pub async fn components(db: impl PgExecutor<'_>) -> Result<Vec<ComponentHealth>> {
    Ok(sqlx::query_as(
        "SELECT role, instance, version, commit, image_ref, image_digest, started_at, last_tick_at, tick_interval_ms,
                last_tick_at < now() - make_interval(secs => stall_after_ms / 1000.0) AS stale
         FROM component_heartbeats
         WHERE last_tick_at > now() - interval '1 day'
         ORDER BY role, last_tick_at DESC",
    )
    .fetch_all(db)
    .await?)
}
