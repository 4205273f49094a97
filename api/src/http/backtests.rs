//! Backtests: `POST /backtests` starts one in the background (202 with its id), `GET /backtests`
//! lists them, `GET /backtests/{id}` shows one with its trades and equity curve.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Deserialize;
use utoipa::IntoParams;

use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::{AppState, page_limit};
use crate::backtest::job::{self, BacktestAccepted, BacktestRequest};
use crate::error::{ErrorBody, Result};
use crate::store::{self, backtests::BacktestDetail, backtests::BacktestRow};

/// Validates the request (strategy, instruments, time range, size against `BACKTEST_MAX_CANDLES`)
/// and runs the backtest in the background; poll `GET /backtests/{id}` for its outcome. A
/// backtest never touches live signals, orders, trades or balances.
#[utoipa::path(post, path = "/api/v2/backtests", tag = "backtests", request_body = BacktestRequest,
    responses((status = 202, body = BacktestAccepted, headers(("location" = String))),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody, description = "The strategy does not exist"),
              (status = 409, body = ErrorBody, description = "As many backtests as BACKTEST_CONCURRENCY are running"),
              (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn create_backtest(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<BacktestRequest>,
) -> Result<impl IntoResponse> {
    let accepted = job::submit(state.db.pool()?, &state.backtests, request).await?;
    let location = format!("/api/v2/backtests/{}", accepted.id);
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(accepted),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BacktestQuery {
    /// 1-1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// Backtests, newest first, with their figures (no trades or curve).
#[utoipa::path(get, path = "/api/v2/backtests", tag = "backtests", params(BacktestQuery),
    responses((status = 200, body = [BacktestRow]), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list_backtests(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<BacktestQuery>,
) -> Result<Json<Vec<BacktestRow>>> {
    let limit = page_limit(q.limit)?;
    Ok(Json(store::backtests::list(state.db.pool()?, limit).await?))
}

/// One backtest with its request, trades and equity curve.
#[utoipa::path(get, path = "/api/v2/backtests/{id}", tag = "backtests", params(("id" = i64, Path)),
    responses((status = 200, body = BacktestDetail), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_backtest(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<BacktestDetail>> {
    Ok(Json(store::backtests::get(state.db.pool()?, id).await?))
}
