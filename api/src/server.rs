//! What every role serves on its port (`/healthz`, `/readyz`, `/metrics`), worker liveness, and
//! the signal handling behind graceful shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{SecondsFormat, Utc};
use serde::Serialize;
use tokio::signal::unix::{Signal, SignalKind, signal};
use utoipa::ToSchema;

use crate::build::Build;
use crate::config::Role;
use crate::db::Db;
use crate::metrics::{Metrics, serve_metrics};
use crate::schema::SchemaVersions;

/// A worker loop's heartbeat in memory: `/healthz` turns 503 when it is older than `stall_after`.
pub struct Liveness {
    origin: Instant,
    last_beat_ms: AtomicU64,
    stall_after: Duration,
}

impl Liveness {
    pub fn new(stall_after: Duration) -> Arc<Self> {
        Arc::new(Liveness {
            origin: Instant::now(),
            last_beat_ms: AtomicU64::new(0),
            stall_after,
        })
    }

    /// Records progress: a completed tick (successful or not) or a unit of work within one.
    pub fn beat(&self) {
        let ms = self.origin.elapsed().as_millis() as u64;
        self.last_beat_ms.store(ms, Ordering::Relaxed);
    }

    pub fn since_last_beat(&self) -> Duration {
        let last = Duration::from_millis(self.last_beat_ms.load(Ordering::Relaxed));
        self.origin.elapsed().saturating_sub(last)
    }

    pub fn is_alive(&self) -> bool {
        self.since_last_beat() <= self.stall_after
    }
}

/// State of the probe endpoints.
#[derive(Clone)]
pub struct Probes {
    pub role: Role,
    pub db: Db,
    pub liveness: Option<Arc<Liveness>>,
    /// Set on SIGTERM: `/readyz` answers 503 so traffic moves elsewhere while requests drain.
    pub draining: Arc<AtomicBool>,
    pub metrics: Arc<Metrics>,
}

/// `/healthz` body.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`, or `stalled` when a worker loop has not completed a tick for several intervals.
    #[schema(example = "ok")]
    pub status: &'static str,
    /// Now, RFC 3339.
    #[schema(example = "2025-01-01T12:00:00.000Z")]
    pub timestamp: String,
    #[schema(example = "api")]
    pub role: &'static str,
    #[schema(example = "0.1.0")]
    pub version: &'static str,
    /// The commit the binary was built from, or `unknown`.
    #[schema(example = "3b7f13f")]
    pub commit: &'static str,
    /// The image digest this pod runs (from `IMAGE_REF`); absent outside Kubernetes.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")]
    pub digest: Option<&'static str>,
    /// Workers: seconds since the loop last completed a tick.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_tick_seconds_ago: Option<f64>,
    /// The schema version this binary expects and the one the database holds, once the database
    /// has been reached (a newer one lists the migrations this binary ignores as `unknown`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<SchemaVersions>,
}

/// `/readyz` body.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    #[schema(example = "ready")]
    pub status: &'static str,
    /// Why not ready: `starting`, `database unavailable` or `shutting down`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

pub fn probe_router(probes: Probes) -> Router {
    let metrics = probes.metrics.clone();
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(probes)
        .merge(
            Router::new()
                .route("/metrics", get(serve_metrics))
                .with_state(metrics),
        )
}

/// Liveness: answers at once, without touching the database.
#[utoipa::path(get, path = "/healthz", tag = "probes", security(()),
    responses((status = 200, description = "Process is alive", body = Health),
              (status = 503, description = "Worker loop stalled", body = Health)))]
pub async fn healthz(State(probes): State<Probes>) -> Response {
    let (status, last_tick) = match &probes.liveness {
        Some(l) if !l.is_alive() => ("stalled", Some(l.since_last_beat())),
        Some(l) => ("ok", Some(l.since_last_beat())),
        None => ("ok", None),
    };
    let code = if status == "ok" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Health {
        status,
        timestamp: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        role: probes.role.as_str(),
        version: env!("CARGO_PKG_VERSION"),
        commit: crate::build::COMMIT,
        digest: Build::current().image_digest.as_deref(),
        last_tick_seconds_ago: last_tick.map(|d| (d.as_secs_f64() * 1000.0).round() / 1000.0),
        schema: probes.db.schema(),
    };
    (code, Json(body)).into_response()
}

/// Readiness: the database is connected, migrated and answering, and we are not shutting down.
#[utoipa::path(get, path = "/readyz", tag = "probes", security(()),
    responses((status = 200, description = "Ready for traffic", body = Readiness),
              (status = 503, description = "Not ready", body = Readiness)))]
pub async fn readyz(State(probes): State<Probes>) -> Response {
    let reason = if probes.draining.load(Ordering::Relaxed) {
        Some("shutting down")
    } else if !probes.db.is_started() {
        Some("starting")
    } else if !probes.db.check_ready().await {
        Some("database unavailable")
    } else {
        None
    };
    let (code, status) = match reason {
        None => (StatusCode::OK, "ready"),
        Some(_) => (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
    };
    (code, Json(Readiness { status, reason })).into_response()
}

/// SIGTERM and SIGINT, receivable more than once (the second one cuts the drain short).
pub struct TerminationSignals {
    term: Option<Signal>,
    int: Option<Signal>,
}

impl TerminationSignals {
    /// Installs the handlers. Call this early: a signal that arrives before is handled by the default
    /// action (exit).
    pub fn install() -> std::io::Result<Self> {
        Ok(TerminationSignals {
            term: Some(signal(SignalKind::terminate())?),
            int: Some(signal(SignalKind::interrupt())?),
        })
    }

    /// Waits for the next SIGTERM or SIGINT and returns its name.
    pub async fn recv(&mut self) -> &'static str {
        async fn next(s: &mut Option<Signal>) -> Option<()> {
            match s {
                Some(s) => s.recv().await,
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            r = next(&mut self.term) => { if r.is_none() { self.term = None; } "SIGTERM" }
            r = next(&mut self.int) => { if r.is_none() { self.int = None; } "SIGINT" }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn liveness_goes_stale_without_beats() {
        let l = Liveness::new(Duration::from_millis(30));
        l.beat();
        assert!(l.is_alive());
        std::thread::sleep(Duration::from_millis(60));
        assert!(!l.is_alive());
        l.beat();
        assert!(l.is_alive());
    }
}
