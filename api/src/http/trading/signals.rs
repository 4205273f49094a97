//! `GET /signals`, `/signals/{id}`: what the strategies and manual orders asked the bot to do.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::{ErrorBody, Result};
use crate::http::extract::{ApiPath, ApiQuery};
use crate::http::{AppState, page_limit};
use crate::store::{
    self,
    signals::{Signal, SignalFilter, SignalStatus},
};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SignalQuery {
    pub strategy_id: Option<i64>,
    pub symbol: Option<String>,
    #[param(inline)]
    pub status: Option<SignalStatus>,
    /// Page backwards: only signals with a smaller id.
    pub before_id: Option<i64>,
    /// 1-1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// Signals, newest first.
#[utoipa::path(get, path = "/api/v2/signals", tag = "trading", params(SignalQuery),
    responses((status = 200, body = [Signal]), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn list_signals(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<SignalQuery>,
) -> Result<Json<Vec<Signal>>> {
    let filter = SignalFilter {
        strategy_id: q.strategy_id,
        symbol: q.symbol.as_deref(),
        status: q.status,
        before_id: q.before_id,
        limit: page_limit(q.limit)?,
    };
    Ok(Json(store::signals::list(state.db.pool()?, &filter).await?))
}

#[utoipa::path(get, path = "/api/v2/signals/{id}", tag = "trading", params(("id" = i64, Path)),
    responses((status = 200, body = Signal), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn get_signal(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Signal>> {
    Ok(Json(store::signals::get(state.db.pool()?, id).await?))
}
