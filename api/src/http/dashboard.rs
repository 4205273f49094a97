//! The dashboard: the single-page app at `/` (TypeScript in `api/dashboard/`, built by `build.rs`
//! and compiled into the binary), sent with a strict Content-Security-Policy, plus the routes it
//! needs beyond the REST API (`views`, and the live stream in `events`).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::Router;
use axum::extract::{FromRef, Path};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::events::{self, LiveHub};
use super::{AppState, auth, views};

include!(concat!(env!("OUT_DIR"), "/dashboard_assets.rs"));

/// Everything the page loads comes from this origin; nothing inline, nothing framed, no plugins.
/// (`style-src` needs no `'unsafe-inline'`: the chart library sets styles through the CSSOM,
/// which CSP does not restrict.)
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self'; font-src 'self'; connect-src 'self'; manifest-src 'self'; \
    base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// State of the dashboard's routes: the API's, the live hub, and the shutdown flag that ends
/// open streams.
#[derive(Clone)]
pub struct DashboardState {
    pub app: AppState,
    pub hub: Arc<LiveHub>,
    pub draining: Arc<AtomicBool>,
}

impl FromRef<DashboardState> for AppState {
    fn from_ref(state: &DashboardState) -> AppState {
        state.app.clone()
    }
}

/// `/` and its assets (no authentication: the page asks for the token), and the dashboard's
/// API routes under `/api/v2` (bearer token, like the rest of the API).
pub fn router(app: AppState, draining: Arc<AtomicBool>) -> Router {
    let state = DashboardState {
        hub: LiveHub::new(app.db.clone()),
        app: app.clone(),
        draining,
    };
    let api = Router::new()
        .route("/api/v2/chart", get(views::chart))
        .route("/api/v2/equity", get(views::equity))
        .route("/api/v2/stats/strategies", get(views::strategy_stats))
        .route("/api/v2/trades/{id}/detail", get(views::trade_detail))
        .route("/api/v2/overview", get(views::overview))
        .route("/api/v2/stream", get(events::stream))
        .route_layer(middleware::from_fn_with_state(app, auth::require_bearer))
        .with_state(state);
    Router::new()
        .route("/", get(index))
        .route("/index.html", get(index))
        .route("/assets/{file}", get(asset))
        .route("/favicon.svg", get(|| async { serve("/favicon.svg") }))
        .merge(api)
}

async fn index() -> Response {
    serve("/index.html")
}

async fn asset(Path(file): Path<String>) -> Response {
    serve(&format!("/assets/{file}"))
}

/// The embedded file at `path` with its type and the security headers; 404 when absent.
pub fn serve(path: &str) -> Response {
    let Some((_, body)) = DASHBOARD_ASSETS.iter().find(|(p, _)| *p == path) else {
        return crate::error::Error::NotFound(format!(
            "no dashboard file {}",
            crate::domain::market::truncate(path, 80)
        ))
        .into_response();
    };
    // Vite puts a content hash in every asset name, so those never change; the page itself must
    // be revalidated to pick up a new build.
    let cache = if path.starts_with("/assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let mut response = (StatusCode::OK, *body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(path)),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    for (name, value) in security_headers() {
        headers.insert(name, value);
    }
    response
}

pub fn security_headers() -> [(HeaderName, HeaderValue); 5] {
    [
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ),
    ]
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("woff2") => "font/woff2",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_build_embedded_a_page_that_loads_only_its_own_assets() {
        let (_, page) = DASHBOARD_ASSETS
            .iter()
            .find(|(p, _)| *p == "/index.html")
            .expect("index.html embedded");
        let page = std::str::from_utf8(page).unwrap();
        assert!(page.contains("<script type=\"module\""), "{page}");
        // Every script is a file of ours: no inline code (CSP), no other origin.
        assert!(
            !page.contains("http://") && !page.contains("https://"),
            "{page}"
        );
        for src in page.split("src=\"").skip(1) {
            let url = &src[..src.find('"').unwrap()];
            assert!(
                DASHBOARD_ASSETS.iter().any(|(p, _)| *p == url),
                "{url} is not embedded"
            );
        }
        assert!(
            DASHBOARD_ASSETS
                .iter()
                .any(|(p, _)| p.starts_with("/assets/") && p.ends_with(".js"))
        );
    }

    #[test]
    fn types_and_headers() {
        assert_eq!(
            content_type("/assets/index-abc.js"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type("/index.html"), "text/html; charset=utf-8");
        let response = serve("/index.html");
        assert_eq!(response.status(), StatusCode::OK);
        let csp = response.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe"));
        assert_eq!(serve("/assets/nope.js").status(), StatusCode::NOT_FOUND);
    }
}
