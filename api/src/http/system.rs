//! Version, component health and the notification feed.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::ApiQuery;
use super::{AppState, page_limit};
use crate::error::{ErrorBody, Result};
use crate::store::{self, events::Event, heartbeats::ComponentHealth};

#[derive(Debug, Serialize, ToSchema)]
pub struct Version {
    #[schema(example = "trading-agent")]
    pub name: &'static str,
    #[schema(example = "0.1.0")]
    pub version: &'static str,
    #[schema(example = "v2")]
    pub api: &'static str,
}

/// The only endpoint under /api/v2 without authentication.
#[utoipa::path(get, path = "/api/v2/version", tag = "system", security(()),
    responses((status = 200, body = Version)))]
pub async fn version() -> Json<Version> {
    Json(Version {
        name: env!("CARGO_PKG_NAME"),
        version: env!("CARGO_PKG_VERSION"),
        api: "v2",
    })
}

/// Each worker instance's last completed loop, with a `stale` flag when it is overdue.
#[utoipa::path(get, path = "/api/v2/health/components", tag = "system",
    responses((status = 200, body = [ComponentHealth]), (status = 401, body = ErrorBody)))]
pub async fn components(State(state): State<AppState>) -> Result<Json<Vec<ComponentHealth>>> {
    Ok(Json(store::heartbeats::components(state.db.pool()?).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FeedQuery {
    /// Events after this id, oldest first (poll with the last id seen). Without it: the newest.
    pub after_id: Option<i64>,
    /// 1-1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// The notification feed: trades opened and closed, rejected signals, data gaps, bot state changes.
#[utoipa::path(get, path = "/api/v2/notifications", tag = "system", params(FeedQuery),
    responses((status = 200, body = [Event]), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn notifications(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<FeedQuery>,
) -> Result<Json<Vec<Event>>> {
    let limit = page_limit(q.limit)?;
    Ok(Json(
        store::events::list(state.db.pool()?, q.after_id, limit).await?,
    ))
}
