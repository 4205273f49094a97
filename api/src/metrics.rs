//! Prometheus metrics, one registry per process, served as text at `/metrics` by every role.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tower::{Layer, Service};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: &'static str,
    pub route: String,
    pub status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpRouteLabels {
    pub method: &'static str,
    pub route: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TickLabels {
    pub role: &'static str,
    pub outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RoleLabels {
    pub role: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    pub version: &'static str,
    pub role: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.5 ms .. ~16 s
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Every metric of the process.
pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_duration: HistogramFamily<HttpRouteLabels>,
    pub ticks: Family<TickLabels, Counter>,
    pub tick_duration: HistogramFamily<RoleLabels>,
    pub database_ready: Gauge,
    pub signals_written: Counter,
    /// Signals handled by the bot, by outcome: `executed` or a rejection code.
    pub signals_processed: Family<OutcomeLabels, Counter>,
    pub candles_upserted: Counter,
    /// Webhook deliveries by outcome: `delivered`, `retry`, `failed`.
    pub notifications: Family<OutcomeLabels, Counter>,
}

impl Metrics {
    pub fn new(role: &'static str) -> Arc<Self> {
        let mut registry = Registry::with_prefix("trading_agent");
        let build_info = Family::<BuildLabels, Gauge>::default();
        build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
                role,
            })
            .set(1);
        registry.register("build_info", "Version and role of this process", build_info);

        let metrics = Metrics {
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(latency_histogram),
            ticks: Family::default(),
            tick_duration: Family::new_with_constructor(latency_histogram),
            database_ready: Gauge::default(),
            signals_written: Counter::default(),
            signals_processed: Family::default(),
            candles_upserted: Counter::default(),
            notifications: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "http_requests",
            "HTTP requests by method, route and status",
            metrics.http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by method and route",
            metrics.http_duration.clone(),
        );
        registry.register(
            "worker_ticks",
            "Worker loop ticks by role and outcome",
            metrics.ticks.clone(),
        );
        registry.register(
            "worker_tick_duration_seconds",
            "Worker loop tick duration",
            metrics.tick_duration.clone(),
        );
        registry.register(
            "database_ready",
            "1 when the database is connected and migrated",
            metrics.database_ready.clone(),
        );
        registry.register(
            "signals_written",
            "Signals inserted by the strategy runner",
            metrics.signals_written.clone(),
        );
        registry.register(
            "signals_processed",
            "Signals handled by the bot by outcome",
            metrics.signals_processed.clone(),
        );
        registry.register(
            "candles_upserted",
            "Candles written through the API, import or demo feed",
            metrics.candles_upserted.clone(),
        );
        registry.register(
            "notifications",
            "Webhook delivery attempts by outcome",
            metrics.notifications.clone(),
        );
        Arc::new(Metrics {
            registry,
            ..metrics
        })
    }

    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(4096);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    pub fn observe_tick(&self, role: &'static str, outcome: &'static str, elapsed: Duration) {
        self.ticks
            .get_or_create(&TickLabels { role, outcome })
            .inc();
        self.tick_duration
            .get_or_create(&RoleLabels { role })
            .observe(elapsed.as_secs_f64());
    }
}

/// `GET /metrics`.
pub async fn serve_metrics(State(metrics): State<Arc<Metrics>>) -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.encode(),
    )
        .into_response()
}

/// Counts and times requests by their route template (not the raw path, which would explode the
/// label set).
///
/// Added with `route_layer`, so axum builds one [`TrackHttp`] per route and method: each keeps the
/// metric handles it has used in a few lock-free slots, and a request finds its histogram and
/// counter there without allocating a label or locking a family (the families are only consulted
/// the first time a route answers with a given status).
#[derive(Clone)]
pub struct TrackHttpLayer {
    metrics: Arc<Metrics>,
}

impl TrackHttpLayer {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        TrackHttpLayer { metrics }
    }
}

impl<S> Layer<S> for TrackHttpLayer {
    type Service = TrackHttp<S>;

    fn layer(&self, inner: S) -> TrackHttp<S> {
        TrackHttp {
            inner,
            metrics: self.metrics.clone(),
            handles: Arc::new(RouteHandles::default()),
        }
    }
}

/// The service [`TrackHttpLayer`] wraps around each route.
#[derive(Clone)]
pub struct TrackHttp<S> {
    inner: S,
    metrics: Arc<Metrics>,
    handles: Arc<RouteHandles>,
}

/// Enough for the statuses one route answers with (200, 201, 202, 400, 401, 404, 409, 422, 503, ...
/// rarely all of them); a route that uses more still counts them, through the families.
const HANDLE_SLOTS: usize = 12;

/// The handles one route's requests have used so far: filled once, then only read.
#[derive(Default)]
struct RouteHandles {
    durations: [OnceLock<(&'static str, String, Histogram)>; 4],
    counters: [OnceLock<(&'static str, u16, String, Counter)>; HANDLE_SLOTS],
}

impl RouteHandles {
    fn observe(&self, metrics: &Metrics, method: &'static str, route: &str, seconds: f64) {
        for slot in &self.durations {
            let (m, r, histogram) = slot.get_or_init(|| {
                let histogram = metrics
                    .http_duration
                    .get_or_create(&HttpRouteLabels {
                        method,
                        route: route.to_owned(),
                    })
                    .clone();
                (method, route.to_owned(), histogram)
            });
            if *m == method && r == route {
                histogram.observe(seconds);
                return;
            }
        }
        metrics
            .http_duration
            .get_or_create(&HttpRouteLabels {
                method,
                route: route.to_owned(),
            })
            .observe(seconds);
    }

    fn count(&self, metrics: &Metrics, method: &'static str, route: &str, status: u16) {
        let labels = || HttpLabels {
            method,
            route: route.to_owned(),
            status,
        };
        for slot in &self.counters {
            let (m, s, r, counter) = slot.get_or_init(|| {
                let counter = metrics.http_requests.get_or_create(&labels()).clone();
                (method, status, route.to_owned(), counter)
            });
            if *s == status && *m == method && r == route {
                counter.inc();
                return;
            }
        }
        metrics.http_requests.get_or_create(&labels()).inc();
    }
}

impl<S> Service<Request> for TrackHttp<S>
where
    S: Service<Request, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let started = Instant::now();
        let method = method_label(request.method());
        let route = request.extensions().get::<MatchedPath>().cloned();
        let metrics = self.metrics.clone();
        let handles = self.handles.clone();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
            handles.observe(&metrics, method, route, started.elapsed().as_secs_f64());
            handles.count(&metrics, method, route, response.status().as_u16());
            Ok(response)
        })
    }
}

fn method_label(method: &axum::http::Method) -> &'static str {
    match *method {
        axum::http::Method::GET => "GET",
        axum::http::Method::POST => "POST",
        axum::http::Method::PUT => "PUT",
        axum::http::Method::PATCH => "PATCH",
        axum::http::Method::DELETE => "DELETE",
        axum::http::Method::HEAD => "HEAD",
        axum::http::Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}
