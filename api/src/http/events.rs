//! The live stream behind the dashboard: `GET /api/v2/stream`, server-sent events.
//!
//! One [`LiveHub`] per api process watches the database for the whole process and fans out to
//! every open stream. It wakes on `NOTIFY trading_agent_changes` (statement triggers on the tables
//! the dashboard shows, see the `dashboard_notify` migration) and every [`FALLBACK_LOOK`] anyway,
//! compares what it sees with its last look, and broadcasts what changed. It runs only while at
//! least one stream is open, and holds one pool connection for `LISTEN` meanwhile.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use serde::Serialize;
use serde_json::json;
use sqlx::postgres::PgListener;
use tokio::sync::broadcast;
use utoipa::ToSchema;

use super::dashboard::DashboardState;
use crate::db::Db;
use crate::error::{ErrorBody, Result};
use crate::store::{self, views::ChangeMarks};

/// The channel the triggers notify.
pub const CHANGES_CHANNEL: &str = "trading_agent_changes";
/// Look even without a notification this often (also the pace of component heartbeats).
pub const FALLBACK_LOOK: Duration = Duration::from_secs(2);
/// Notifications arriving closer together than this are handled in one look.
const COALESCE: Duration = Duration::from_millis(150);
/// Messages a slow stream may fall behind before it is told to reload (`resync`).
const BUFFER: usize = 256;

/// One message of the stream, serialised once for every subscriber.
#[derive(Debug, Clone)]
pub struct LiveMessage {
    pub event: &'static str,
    pub data: Arc<str>,
}

/// One event of `GET /api/v2/stream` (documentation of the SSE fields; each arrives as
/// `event: <name>` and `data: <JSON>`).
#[derive(Debug, Serialize, ToSchema)]
pub struct LiveEventDoc {
    /// `hello` (first on every stream: load what you show), `notification` (a new feed entry, as in
    /// GET /notifications), `bot` (the new state, as GET /bot), `trades` (trades opened or closed:
    /// reload), `strategies` (a strategy changed), `candles` (`{symbol, timeframe, open_time}` of a
    /// symbol's newest candle), `components` (the heartbeats, as GET /health/components, every
    /// 2 s), `resync` (messages were dropped: reload everything).
    #[schema(example = "notification")]
    pub event: String,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

pub struct LiveHub {
    db: Db,
    tx: broadcast::Sender<LiveMessage>,
    running: Mutex<bool>,
}

impl LiveHub {
    pub fn new(db: Db) -> Arc<Self> {
        let (tx, _) = broadcast::channel(BUFFER);
        Arc::new(LiveHub {
            db,
            tx,
            running: Mutex::new(false),
        })
    }

    /// A new receiver; starts the watcher when it is the first.
    pub fn subscribe(self: &Arc<Self>) -> broadcast::Receiver<LiveMessage> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let rx = self.tx.subscribe();
        if !*running {
            *running = true;
            let hub = self.clone();
            tokio::spawn(async move { hub.watch().await });
        }
        rx
    }

    /// Stops (returns true) when nobody listens any more.
    fn stop_if_idle(&self) -> bool {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if self.tx.receiver_count() == 0 {
            *running = false;
            true
        } else {
            false
        }
    }

    fn send(&self, event: &'static str, data: impl Serialize) {
        let data = serde_json::to_string(&data).unwrap_or_else(|_| "{}".into());
        // An error only means nobody is listening right now.
        let _ = self.tx.send(LiveMessage {
            event,
            data: data.into(),
        });
    }

    async fn watch(self: Arc<Self>) {
        tracing::debug!("live stream watcher started");
        let mut listener: Option<PgListener> = None;
        let mut last: Option<Seen> = None;
        let mut components_sent: Option<std::time::Instant> = None;
        loop {
            if self.stop_if_idle() {
                tracing::debug!("live stream watcher stopped (no subscribers)");
                return;
            }
            if listener.is_none()
                && let Ok(pool) = self.db.pool()
            {
                listener = connect_listener(pool).await;
            }
            // Wait for a notification or the fallback period, whichever comes first (not before
            // the first look: it is the baseline, taken once LISTEN is on so nothing falls between).
            let woken_by_notify = match listener.as_mut().filter(|_| last.is_some()) {
                Some(l) => match tokio::time::timeout(FALLBACK_LOOK, l.try_recv()).await {
                    Ok(Ok(Some(_))) => true,
                    Ok(Ok(None)) => false, // connection lost; sqlx reconnects on the next call
                    Ok(Err(error)) => {
                        tracing::debug!(%error, "live stream listener failed; polling until it is back");
                        listener = None;
                        false
                    }
                    Err(_) => false,
                },
                None if last.is_none() => false,
                None => {
                    tokio::time::sleep(FALLBACK_LOOK).await;
                    false
                }
            };
            if woken_by_notify {
                tokio::time::sleep(COALESCE).await;
                // Drain what arrived meanwhile: one look covers it all.
                if let Some(l) = listener.as_mut() {
                    while let Ok(Ok(Some(_))) =
                        tokio::time::timeout(Duration::ZERO, l.try_recv()).await
                    {
                    }
                }
            }
            let with_components = components_sent.is_none_or(|t| t.elapsed() >= FALLBACK_LOOK);
            match self.look(last.as_ref(), with_components).await {
                Ok(seen) => {
                    last = Some(seen);
                    if with_components {
                        components_sent = Some(std::time::Instant::now());
                    }
                }
                Err(error) => {
                    tracing::debug!(%error, "live stream look failed");
                    tokio::time::sleep(FALLBACK_LOOK).await;
                }
            }
        }
    }

    /// Compares the database with the previous look and broadcasts the differences.
    async fn look(&self, previous: Option<&Seen>, with_components: bool) -> Result<Seen> {
        let pool = self.db.pool()?;
        let marks = store::views::change_marks(pool).await?;
        let newest = newest_candles(pool).await?;
        let Some(previous) = previous else {
            // First look: the baseline. Streams opened before it may have loaded their data before
            // it was taken: they reload once more.
            self.send("resync", json!({}));
            return Ok(Seen { marks, newest });
        };
        let mut after = previous.marks.last_event_id;
        while marks.last_event_id > after {
            let events = store::events::list(pool, Some(after), 100).await?;
            let Some(last) = events.last() else {
                break;
            };
            after = last.id;
            for event in events {
                self.send("notification", event);
            }
        }
        if marks.bot_updated_at != previous.marks.bot_updated_at {
            self.send("bot", store::bot::state(pool).await?);
        }
        if marks.trades_fingerprint != previous.marks.trades_fingerprint {
            self.send("trades", json!({}));
        }
        if marks.strategies_updated_at != previous.marks.strategies_updated_at {
            self.send("strategies", json!({}));
        }
        for (symbol, timeframe, open_time) in &newest {
            let before = previous.newest.iter().find(|(s, _, _)| s == symbol);
            if before.is_none_or(|(_, _, t)| t != open_time) {
                self.send(
                    "candles",
                    json!({"symbol": symbol, "timeframe": timeframe, "open_time": open_time}),
                );
            }
        }
        if with_components {
            self.send("components", store::heartbeats::components(pool).await?);
        }
        Ok(Seen { marks, newest })
    }
}

struct Seen {
    marks: ChangeMarks,
    newest: Vec<(String, String, chrono::DateTime<chrono::Utc>)>,
}

/// The newest candle of each instrument (through the (symbol, open_time) index).
async fn newest_candles(
    pool: &sqlx::PgPool,
) -> Result<Vec<(String, String, chrono::DateTime<chrono::Utc>)>> {
    Ok(sqlx::query_as(
        "SELECT i.symbol, c.timeframe, c.open_time FROM instruments i
         CROSS JOIN LATERAL (SELECT timeframe, open_time FROM candles
                             WHERE candles.symbol = i.symbol ORDER BY open_time DESC LIMIT 1) c
         ORDER BY i.symbol",
    )
    .fetch_all(pool)
    .await?)
}

async fn connect_listener(pool: &sqlx::PgPool) -> Option<PgListener> {
    let mut listener = match PgListener::connect_with(pool).await {
        Ok(l) => l,
        Err(error) => {
            tracing::debug!(%error, "live stream cannot LISTEN yet");
            return None;
        }
    };
    match listener.listen(CHANGES_CHANNEL).await {
        Ok(()) => Some(listener),
        Err(error) => {
            tracing::debug!(%error, "live stream cannot LISTEN yet");
            None
        }
    }
}

/// Live updates for the dashboard as server-sent events. Event names: `hello`, `notification`,
/// `bot`, `trades`, `strategies`, `candles`, `components`, `resync` (see `LiveEventDoc`). A comment
/// line every 15 s keeps proxies from closing the stream; the server ends it when it shuts down
/// and clients reconnect. Send the token in the `Authorization` header (read the stream with
/// `fetch`; the browser's EventSource cannot send headers).
#[utoipa::path(get, path = "/api/v2/stream", tag = "system",
    responses((status = 200, description = "An event stream (text/event-stream)", content_type = "text/event-stream", body = LiveEventDoc),
              (status = 401, body = ErrorBody)))]
pub async fn stream(
    State(state): State<DashboardState>,
) -> Sse<impl Stream<Item = Result<SseEvent, std::convert::Infallible>>> {
    let rx = state.hub.subscribe();
    let hello = SseEvent::default()
        .event("hello")
        .json_data(json!({"server_time": chrono::Utc::now()}))
        .unwrap_or_default();
    let stream = futures_util::stream::unfold(
        (Some(hello), rx, state.draining.clone()),
        |(first, mut rx, draining)| async move {
            if let Some(hello) = first {
                return Some((Ok(hello), (None, rx, draining)));
            }
            let event = next_event(&mut rx, &draining).await?;
            Some((Ok(event), (None, rx, draining)))
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// The next message for one stream, or `None` (end of stream) once the server is shutting down.
async fn next_event(
    rx: &mut broadcast::Receiver<LiveMessage>,
    draining: &AtomicBool,
) -> Option<SseEvent> {
    loop {
        if draining.load(Ordering::Relaxed) {
            return None;
        }
        match tokio::time::timeout(Duration::from_millis(500), rx.recv()).await {
            Ok(Ok(message)) => {
                return Some(
                    SseEvent::default()
                        .event(message.event)
                        .data(message.data.as_ref()),
                );
            }
            Ok(Err(broadcast::error::RecvError::Lagged(_))) => {
                return Some(SseEvent::default().event("resync").data("{}"));
            }
            Ok(Err(broadcast::error::RecvError::Closed)) => return None,
            Err(_) => continue,
        }
    }
}
