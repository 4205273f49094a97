//! The worker roles' loops. Each tick is one pass over the work; a crash anywhere is recovered by
//! the next tick because all state lives in PostgreSQL.

pub mod bot;
pub mod notifier;
pub mod strategy;

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::{Notify, watch};
use tokio::time::MissedTickBehavior;

use crate::build::Build;
use crate::config::Role;
use crate::config::WorkerConfig;
use crate::db::Db;
use crate::error::Result;
use crate::metrics::Metrics;
use crate::server::Liveness;
use crate::store;

/// One pass of a worker role.
pub trait Worker: Send + 'static {
    /// Does the work that is due. `liveness.beat()` after each unit keeps a long tick from looking
    /// stalled.
    fn tick(
        &mut self,
        pool: &PgPool,
        liveness: &Liveness,
    ) -> impl Future<Output = Result<()>> + Send;
}

/// What the loop needs besides the worker.
pub struct LoopContext {
    pub role: Role,
    pub db: Db,
    pub metrics: Arc<Metrics>,
    pub liveness: Arc<Liveness>,
    pub config: WorkerConfig,
    pub started_at: DateTime<Utc>,
    /// Runs a tick at once when notified (new work announced by PostgreSQL), besides the interval.
    pub wake: Option<Arc<Notify>>,
}

/// Ticks every `tick_interval` until shutdown; the tick in progress when shutdown comes finishes.
/// A tick that fails (database down, say) still counts as completed for liveness: the loop is
/// alive, and readiness (not liveness) reports the database.
pub async fn run_loop<W: Worker>(
    ctx: LoopContext,
    mut worker: W,
    mut shutdown: watch::Receiver<bool>,
) {
    let role = ctx.role.as_str();
    let mut interval = tokio::time::interval(ctx.config.tick_interval);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ctx.liveness.beat();
    loop {
        tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => break,
            _ = interval.tick() => {}
            _ = woken(&ctx.wake) => interval.reset(),
        }
        let started = Instant::now();
        let outcome = match ctx.db.pool() {
            Err(_) => "waiting_for_database",
            Ok(pool) => match worker.tick(pool, &ctx.liveness).await {
                Ok(()) => {
                    let beat = store::heartbeats::Heartbeat {
                        role,
                        instance: &ctx.config.instance,
                        started_at: ctx.started_at,
                        tick_interval_ms: ctx.config.tick_interval.as_millis() as i64,
                        stall_after_ms: ctx.config.stall_after.as_millis() as i64,
                        build: Build::current(),
                    };
                    if let Err(error) = store::heartbeats::beat(pool, &beat).await {
                        tracing::warn!(%error, "could not record the heartbeat");
                    }
                    "ok"
                }
                Err(error) if error.is_transient() => {
                    tracing::warn!(%error, role, "tick failed: database unavailable");
                    "database_unavailable"
                }
                Err(error) => {
                    tracing::error!(%error, code = error.code().as_str(), role, "tick failed");
                    "error"
                }
            },
        };
        ctx.metrics.observe_tick(role, outcome, started.elapsed());
        ctx.liveness.beat();
        if crate::faults::worker_loop_stall() {
            tracing::warn!(
                role,
                "fail point worker-loop-stall: the loop stops until shutdown"
            );
            let _ = shutdown.wait_for(|stop| *stop).await;
            break;
        }
    }
    tracing::info!(role, "worker loop stopped");
}

async fn woken(wake: &Option<Arc<Notify>>) {
    match wake {
        Some(notify) => notify.notified().await,
        None => std::future::pending().await,
    }
}

/// The channel the `signals` insert trigger notifies.
pub const SIGNALS_CHANNEL: &str = "trading_agent_signals";

/// Forwards PostgreSQL notifications on `channel` to `wake` until shutdown. Waits for the database
/// start-up, and re-listens after connection trouble; polling covers any gap.
pub async fn forward_notifications(
    db: Db,
    channel: &'static str,
    wake: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let listen = async {
            let pool = loop {
                match db.pool() {
                    Ok(pool) => break pool.clone(),
                    Err(_) => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
                }
            };
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.listen(channel).await?;
            tracing::debug!(channel, "listening for notifications");
            loop {
                listener.recv().await?;
                wake.notify_one();
            }
            #[allow(unreachable_code)]
            Ok::<(), sqlx::Error>(())
        };
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            result = listen => {
                if let Err(error) = result {
                    tracing::debug!(%error, channel, "notification listener interrupted; polling meanwhile");
                }
            }
        }
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
        }
    }
}
