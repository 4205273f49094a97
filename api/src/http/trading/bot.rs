//! Bot control: state (running / stopped / stop-entry) and the manual force-enter and force-exit.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use rust_decimal::Decimal;
use serde::Deserialize;
use utoipa::ToSchema;

use super::orders::{OrderRequest, queue_manual};
use crate::domain::{Action, BotState};
use crate::error::{ErrorBody, Result};
use crate::http::AppState;
use crate::http::extract::ApiJson;
use crate::store::bot::BotStatus;
use crate::store::events::{Level, NewEvent};
use crate::store::signals::Signal;
use crate::store::{self};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForceEnter {
    #[schema(example = "BTCUSDT", pattern = "^[A-Z0-9][A-Z0-9._-]{0,31}$")]
    pub symbol: String,
    #[schema(value_type = Option<String>, example = "100")]
    pub stake: Option<Decimal>,
    #[schema(pattern = "^[A-Za-z0-9_.:-]{1,64}$")]
    pub client_order_id: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForceExit {
    #[schema(example = "BTCUSDT", pattern = "^[A-Z0-9][A-Z0-9._-]{0,31}$")]
    pub symbol: String,
    #[schema(pattern = "^[A-Za-z0-9_.:-]{1,64}$")]
    pub client_order_id: Option<String>,
}

/// Opens a trade now (through the bot's risk checks), like POST /orders with side `buy`.
#[utoipa::path(post, path = "/api/v2/bot/force-enter", tag = "bot", request_body = ForceEnter,
    responses((status = 202, body = Signal), (status = 200, body = Signal), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 409, body = ErrorBody), (status = 415, description = "Body is not JSON", body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn force_enter(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<ForceEnter>,
) -> Result<(StatusCode, Json<Signal>)> {
    let req = OrderRequest {
        symbol: req.symbol,
        side: Action::Buy,
        stake: req.stake,
        client_order_id: req.client_order_id,
    };
    queue_manual(&state, req, "force-enter").await
}

/// Closes the symbol's open trade now, like POST /orders with side `sell`.
#[utoipa::path(post, path = "/api/v2/bot/force-exit", tag = "bot", request_body = ForceExit,
    responses((status = 202, body = Signal), (status = 200, body = Signal), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 409, body = ErrorBody), (status = 415, description = "Body is not JSON", body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn force_exit(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<ForceExit>,
) -> Result<(StatusCode, Json<Signal>)> {
    let req = OrderRequest {
        symbol: req.symbol,
        side: Action::Sell,
        stake: None,
        client_order_id: req.client_order_id,
    };
    queue_manual(&state, req, "force-exit").await
}

#[utoipa::path(get, path = "/api/v2/bot", tag = "bot",
    responses((status = 200, body = BotStatus), (status = 401, body = ErrorBody)))]
pub async fn bot_status(State(state): State<AppState>) -> Result<Json<BotStatus>> {
    Ok(Json(store::bot::state(state.db.pool()?).await?))
}

async fn set_bot_state(state: &AppState, new_state: BotState) -> Result<Json<BotStatus>> {
    let mut tx = state.db.pool()?.begin().await?;
    let (status, previous) = store::bot::set_state(&mut *tx, new_state).await?;
    if previous != new_state {
        store::events::record(
            &mut tx,
            &NewEvent {
                level: Level::Info,
                kind: "bot_state",
                message: format!(
                    "bot state changed from {} to {}",
                    previous.as_str(),
                    new_state.as_str()
                ),
                data: serde_json::json!({"from": previous.as_str(), "to": new_state.as_str()}),
                notify: true,
                dedup_key: None,
            },
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Json(status))
}

/// Resume trading.
#[utoipa::path(post, path = "/api/v2/bot/start", tag = "bot",
    responses((status = 200, body = BotStatus), (status = 401, body = ErrorBody)))]
pub async fn bot_start(State(state): State<AppState>) -> Result<Json<BotStatus>> {
    set_bot_state(&state, BotState::Running).await
}

/// Stop trading: new signals are rejected (manual exits still run).
#[utoipa::path(post, path = "/api/v2/bot/stop", tag = "bot",
    responses((status = 200, body = BotStatus), (status = 401, body = ErrorBody)))]
pub async fn bot_stop(State(state): State<AppState>) -> Result<Json<BotStatus>> {
    set_bot_state(&state, BotState::Stopped).await
}

/// Wind down: exits run, entries are rejected.
#[utoipa::path(post, path = "/api/v2/bot/stop-entry", tag = "bot",
    responses((status = 200, body = BotStatus), (status = 401, body = ErrorBody)))]
pub async fn bot_stop_entry(State(state): State<AppState>) -> Result<Json<BotStatus>> {
    set_bot_state(&state, BotState::StopEntry).await
}
