//! The operator's own HTTP surface: `/healthz`, `/readyz` and `/metrics`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::registry::Registry;

use crate::reconcile::progress::{Progress, STALL_LIMIT};

/// What `/readyz` and `/healthz` report on.
#[derive(Debug, Default)]
pub struct Health {
    leader_election: bool,
    leading: AtomicBool,
    synced: AtomicBool,
    shutting_down: AtomicBool,
    progress: Arc<Progress>,
}

impl Health {
    /// Health of a process that does (or does not) take part in leader election.
    pub fn new(leader_election: bool) -> Self {
        Self {
            leader_election,
            ..Self::default()
        }
    }

    /// Judge liveness by this controller progress (the one the reconciliations report to).
    pub fn with_progress(mut self, progress: Arc<Progress>) -> Self {
        self.progress = progress;
        self
    }

    /// Liveness: failing only when this process runs the controller, its caches synced, and it
    /// has had work and made no progress for [`STALL_LIMIT`] (the kubelet then restarts it).
    pub fn liveness(&self, now: Instant) -> (bool, String) {
        let running = self.leading.load(Ordering::SeqCst) && self.synced.load(Ordering::SeqCst);
        match self.progress.stalled(now, STALL_LIMIT) {
            Some(since) if running => (
                false,
                format!(
                    "controller stuck: no reconciliation started or finished for {}s while there is work",
                    since.as_secs()
                ),
            ),
            _ => (true, "ok".to_owned()),
        }
    }

    /// This process runs the controller (it holds the Lease, or there is no election).
    pub fn set_leading(&self, leading: bool) {
        self.leading.store(leading, Ordering::SeqCst);
        if !leading {
            self.synced.store(false, Ordering::SeqCst);
        }
    }

    /// The controller's caches have synced.
    pub fn set_synced(&self) {
        self.synced.store(true, Ordering::SeqCst);
    }

    /// The process is stopping: take it out of service.
    pub fn set_shutting_down(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    /// Readiness: a leader (or a process without election) is ready once its caches synced; a
    /// standby replica is ready to take over as it is; nothing is ready while shutting down.
    pub fn readiness(&self) -> (bool, &'static str) {
        if self.shutting_down.load(Ordering::SeqCst) {
            return (false, "shutting down");
        }
        let leading = self.leading.load(Ordering::SeqCst);
        if self.leader_election && !leading {
            return (true, "standby: waiting for the leader Lease");
        }
        if !leading {
            return (false, "controller not started");
        }
        if self.synced.load(Ordering::SeqCst) {
            (true, "ready")
        } else {
            (false, "caches not synced yet")
        }
    }
}

/// Shared state of the HTTP handlers.
#[derive(Clone)]
pub struct AppState {
    /// Readiness.
    pub health: Arc<Health>,
    /// Metrics to encode.
    pub registry: Arc<Registry>,
}

/// The router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    let (alive, detail) = state.health.liveness(Instant::now());
    let (code, body) = if alive {
        (StatusCode::OK, serde_json::json!({"status": "ok"}))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"status": "unavailable", "detail": detail}),
        )
    };
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let (ready, detail) = state.health.readiness();
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body =
        serde_json::json!({"status": if ready { "ok" } else { "unavailable" }, "detail": detail});
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    match crate::metrics::encode(&state.registry) {
        Ok(text) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        ),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain")],
            "could not encode metrics".to_owned(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_without_leader_election() {
        let h = Health::new(false);
        assert!(!h.readiness().0);
        h.set_leading(true);
        assert_eq!(h.readiness(), (false, "caches not synced yet"));
        h.set_synced();
        assert_eq!(h.readiness(), (true, "ready"));
        h.set_shutting_down();
        assert!(!h.readiness().0);
    }

    #[test]
    fn readiness_with_leader_election() {
        let h = Health::new(true);
        assert!(h.readiness().0, "a standby is ready to take over");
        h.set_leading(true);
        assert!(!h.readiness().0, "a new leader waits for its caches");
        h.set_synced();
        assert!(h.readiness().0);
        h.set_leading(false);
        h.set_leading(true);
        assert!(!h.readiness().0, "losing the lease forgets the sync");
    }

    #[test]
    fn liveness_fails_when_the_running_controller_is_stuck() {
        let progress = Arc::new(Progress::default());
        let h = Health::new(false).with_progress(progress.clone());
        let now = Instant::now();
        let stuck_at = now + STALL_LIMIT + std::time::Duration::from_secs(60);
        let hung = progress.start(5);
        assert!(
            h.liveness(stuck_at).0,
            "not running the controller: nothing to judge"
        );
        h.set_leading(true);
        h.set_synced();
        assert!(h.liveness(now).0);
        let (alive, detail) = h.liveness(stuck_at);
        assert!(!alive && detail.contains("controller stuck"), "{detail}");
        drop(hung);
        assert!(h.liveness(Instant::now()).0, "finishing is progress");
        h.set_leading(false);
        assert!(h.liveness(stuck_at).0, "a standby is alive");
    }

    #[tokio::test]
    async fn serves_the_three_endpoints() {
        let health = Arc::new(Health::new(false));
        let mut registry = Registry::default();
        crate::metrics::Metrics::default().register(&mut registry);
        let app = router(AppState {
            health: health.clone(),
            registry: Arc::new(registry),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move { axum::serve(listener, app).await });

        let get = |path: &'static str| async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            stream.write_all(request.as_bytes()).await.unwrap();
            let mut response = String::new();
            stream.read_to_string(&mut response).await.unwrap();
            response
        };
        assert!(get("/healthz").await.starts_with("HTTP/1.1 200"));
        assert!(get("/readyz").await.starts_with("HTTP/1.1 503"));
        health.set_leading(true);
        health.set_synced();
        assert!(get("/readyz").await.starts_with("HTTP/1.1 200"));
        let metrics = get("/metrics").await;
        assert!(
            metrics.contains("trading_agent_operator_reconciliations_total"),
            "{metrics}"
        );
        server.abort();
    }
}
