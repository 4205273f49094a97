//! The `api` role's HTTP surface: REST under `/api/v2`, the OpenAPI document at `/openapi.json`
//! and Swagger UI at `/docs` (assets compiled into the binary), plus the probes every role serves.

pub mod auth;
pub mod backtests;
pub mod dashboard;
pub mod events;
pub mod extract;
pub mod json;
pub mod market;
pub mod strategies;
pub mod system;
pub mod trading;
pub mod views;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use crate::db::Db;
use crate::error::{Error, Result};
use crate::metrics::{Metrics, TrackHttpLayer};
use crate::server::{Probes, probe_router};
use crate::store::{DEFAULT_LIMIT, MAX_LIMIT};

/// Largest request body (CSV imports are the big ones).
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Shared by every handler: cheap to clone (all `Arc`s inside).
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub metrics: Arc<Metrics>,
    pub token: Arc<str>,
    /// Backtests run by this process, and their limits.
    pub backtests: Arc<crate::backtest::job::BacktestJobs>,
}

/// The `limit` query parameter: default 100, 1 to 1000.
pub fn page_limit(limit: Option<i64>) -> Result<i64> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(n) => Err(Error::invalid(
            "limit",
            format!("must be between 1 and {MAX_LIMIT} (got {n})"),
        )),
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "trading-agent API",
        description = "Market data, strategies, signals, paper orders and trades, and bot control. \
            Every endpoint under /api/v2 except /api/v2/version needs `Authorization: Bearer <API_TOKEN>`. \
            Errors are `{\"error\": {\"code\", \"message\"}}`. Amounts and prices are decimal strings."
    ),
    paths(
        crate::server::healthz,
        crate::server::readyz,
        system::version,
        system::components,
        system::notifications,
        market::list_instruments,
        market::create_instrument,
        market::get_instrument,
        market::upsert_candles,
        market::import_candles,
        market::query_candles,
        strategies::create_strategy,
        strategies::list_strategies,
        strategies::get_strategy,
        strategies::update_strategy,
        strategies::enable_strategy,
        strategies::disable_strategy,
        strategies::delete_strategy,
        trading::list_signals,
        trading::get_signal,
        trading::list_orders,
        trading::get_order,
        trading::create_order,
        trading::list_trades,
        trading::get_trade,
        trading::set_trade_exits,
        trading::balance,
        trading::profit,
        trading::bot_status,
        trading::bot_start,
        trading::bot_stop,
        trading::bot_stop_entry,
        trading::force_enter,
        trading::force_exit,
        views::overview,
        views::chart,
        views::equity,
        views::strategy_stats,
        views::trade_detail,
        events::stream,
        backtests::create_backtest,
        backtests::list_backtests,
        backtests::get_backtest,
    ),
    modifiers(&BearerAuth, &ResponseDescriptions),
    security(("bearer" = [])),
    tags(
        (name = "market data", description = "Instruments and candles"),
        (name = "strategies", description = "Indicator strategies run by the strategy role"),
        (name = "trading", description = "Signals, paper orders, trades, balance and profit"),
        (name = "bot", description = "Bot control"),
        (name = "system", description = "Version, component health, notification feed"),
        (name = "probes", description = "Kubernetes probes (no authentication)"),
        (name = "backtests", description = "Strategies replayed over stored candles through the bot's own code"),
        (name = "dashboard", description = "Views assembled for the dashboard served at /"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The API_TOKEN of the deployment"))
                    .build(),
            ),
        );
    }
}

/// OpenAPI requires a `description` on every response object; the handlers' annotations give one
/// only where there is more to say than the status, so the status's reason phrase fills the rest.
struct ResponseDescriptions;

impl Modify for ResponseDescriptions {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.options,
                &mut item.head,
                &mut item.patch,
                &mut item.trace,
            ];
            for operation in operations.into_iter().flatten() {
                for (status, response) in operation.responses.responses.iter_mut() {
                    if let utoipa::openapi::RefOr::T(response) = response
                        && response.description.is_empty()
                    {
                        response.description = status
                            .parse::<u16>()
                            .ok()
                            .and_then(|code| axum::http::StatusCode::from_u16(code).ok())
                            .and_then(|code| code.canonical_reason())
                            .unwrap_or("Response")
                            .to_owned();
                    }
                }
            }
        }
    }
}

/// The complete `api` role router.
pub fn router(state: AppState, probes: Probes) -> Router {
    let protected = Router::new()
        .route(
            "/instruments",
            get(market::list_instruments).post(market::create_instrument),
        )
        .route("/instruments/{symbol}", get(market::get_instrument))
        .route(
            "/candles",
            get(market::query_candles).put(market::upsert_candles),
        )
        .route("/candles/import", post(market::import_candles))
        .route(
            "/strategies",
            get(strategies::list_strategies).post(strategies::create_strategy),
        )
        .route(
            "/strategies/{id}",
            get(strategies::get_strategy)
                .put(strategies::update_strategy)
                .delete(strategies::delete_strategy),
        )
        .route("/strategies/{id}/enable", post(strategies::enable_strategy))
        .route(
            "/strategies/{id}/disable",
            post(strategies::disable_strategy),
        )
        .route("/signals", get(trading::list_signals))
        .route("/signals/{id}", get(trading::get_signal))
        .route(
            "/orders",
            get(trading::list_orders).post(trading::create_order),
        )
        .route("/orders/{id}", get(trading::get_order))
        .route("/trades", get(trading::list_trades))
        .route("/trades/{id}", get(trading::get_trade))
        .route("/trades/{id}/exits", put(trading::set_trade_exits))
        .route("/balance", get(trading::balance))
        .route("/profit", get(trading::profit))
        .route("/bot", get(trading::bot_status))
        .route("/bot/start", post(trading::bot_start))
        .route("/bot/stop", post(trading::bot_stop))
        .route("/bot/stop-entry", post(trading::bot_stop_entry))
        .route("/bot/force-enter", post(trading::force_enter))
        .route("/bot/force-exit", post(trading::force_exit))
        .route(
            "/backtests",
            get(backtests::list_backtests).post(backtests::create_backtest),
        )
        .route("/backtests/{id}", get(backtests::get_backtest))
        .route("/health/components", get(system::components))
        .route("/notifications", get(system::notifications))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_bearer,
        ));
    // The body limit only where bodies are read: as a router-wide layer it would wrap the probes
    // and every other route in one more service per request.
    let v2 = Router::new()
        .route("/version", get(system::version))
        .merge(protected)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));

    let metrics = state.metrics.clone();
    let dashboard = dashboard::router(state.clone(), probes.draining.clone());
    Router::new()
        .nest("/api/v2", v2)
        .with_state(state)
        .merge(dashboard)
        .merge(SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi()))
        .merge(probe_router(probes))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .route_layer(TrackHttpLayer::new(metrics))
}

/// The probes-only router of the worker roles.
pub fn worker_router(probes: Probes) -> Router {
    let metrics = probes.metrics.clone();
    Router::new()
        .merge(probe_router(probes))
        .fallback(not_found)
        .route_layer(TrackHttpLayer::new(metrics))
}

async fn not_found() -> Response {
    Error::NotFound("no such endpoint (see /docs)".into()).into_response()
}

async fn method_not_allowed() -> Response {
    Error::MethodNotAllowed.into_response()
}

/// For `Db`-only callers (tests, tools) that need an `AppState`.
pub fn state(db: Db, metrics: Arc<Metrics>, token: &str) -> AppState {
    AppState {
        db,
        metrics,
        token: Arc::from(token),
        backtests: Arc::new(crate::backtest::job::BacktestJobs::new(Default::default())),
    }
}
