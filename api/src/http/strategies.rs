//! Strategies: create, list, get, replace, enable/disable, delete.

use std::collections::HashSet;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use crate::domain::exits::Exits;
use crate::domain::{Invalid, StrategyKind, StrategyParams, Symbol, Timeframe};
use crate::error::{Error, ErrorBody, Result};
use crate::store::{self, strategies::Strategy, strategies::StrategySpec};

/// Most symbols one strategy may trade.
pub const MAX_SYMBOLS: usize = 50;

/// A strategy as a client writes it (create and full replace).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StrategyInput {
    /// Unique, 1-64 characters: letters, digits, space, `_`, `-`, `.`, `:`.
    #[schema(example = "btc-sma-10-30", pattern = "^[A-Za-z0-9 _.:-]{1,64}$")]
    pub name: String,
    pub kind: StrategyKind,
    /// `sma_cross`/`ema_cross`: `{"fast": 10, "slow": 30}` (1 <= fast < slow <= 500);
    /// `rsi`: `{"period": 14, "oversold": 30, "overbought": 70}` (2 <= period <= 500, 0 < oversold < overbought < 100).
    #[schema(value_type = Object, example = json!({"fast": 10, "slow": 30}))]
    pub params: serde_json::Value,
    /// Instrument symbols (must exist), 1-50, no repeats.
    #[schema(example = json!(["BTCUSDT"]), min_items = 1, max_items = 50)]
    pub symbols: Vec<String>,
    pub timeframe: Timeframe,
    #[serde(default = "default_enabled")]
    pub enabled: bool,
    /// Protective exits (stop-loss, trailing stop, minimal ROI by age) for the trades it opens.
    #[serde(default)]
    pub exits: Exits,
}

fn default_enabled() -> bool {
    true
}

impl StrategyInput {
    /// Everything that can be checked without the database.
    pub fn validate(self) -> Result<StrategySpec, Invalid> {
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 64 {
            return Err(Invalid::new("name", "must be 1-64 characters"));
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || " _-.:".contains(c))
        {
            return Err(Invalid::new(
                "name",
                "may only contain letters, digits, space, '_', '-', '.' and ':'",
            ));
        }
        let params = StrategyParams::parse(self.kind, &self.params)?;
        if self.symbols.is_empty() {
            return Err(Invalid::new("symbols", "must name at least one instrument"));
        }
        if self.symbols.len() > MAX_SYMBOLS {
            return Err(Invalid::new(
                "symbols",
                format!("at most {MAX_SYMBOLS} symbols per strategy"),
            ));
        }
        let mut seen = HashSet::with_capacity(self.symbols.len());
        for (i, symbol) in self.symbols.iter().enumerate() {
            Symbol::parse(symbol).map_err(|e| Invalid::new(format!("symbols[{i}]"), e))?;
            if !seen.insert(symbol.as_str()) {
                return Err(Invalid::new(
                    format!("symbols[{i}]"),
                    format!("`{symbol}` is listed twice"),
                ));
            }
        }
        self.exits.validate()?;
        Ok(StrategySpec {
            name: name.to_owned(),
            params,
            symbols: self.symbols,
            timeframe: self.timeframe,
            enabled: self.enabled,
            exits: self.exits,
        })
    }
}

/// Validates the input, including that every symbol is a known instrument.
async fn spec_from(state: &AppState, input: StrategyInput) -> Result<StrategySpec> {
    let spec = input.validate()?;
    let unknown = store::instruments::unknown(state.db.pool()?, &spec.symbols).await?;
    if let Some(first) = unknown.first() {
        let index = spec.symbols.iter().position(|s| s == first).unwrap_or(0);
        return Err(Error::invalid(
            format!("symbols[{index}]"),
            format!("unknown instrument `{first}`"),
        ));
    }
    Ok(spec)
}

#[utoipa::path(post, path = "/api/v2/strategies", tag = "strategies", request_body = StrategyInput,
    responses((status = 201, body = Strategy), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 409, description = "Name taken", body = ErrorBody), (status = 415, description = "Body is not JSON", body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_strategy(
    State(state): State<AppState>,
    ApiJson(input): ApiJson<StrategyInput>,
) -> Result<(StatusCode, Json<Strategy>)> {
    let spec = spec_from(&state, input).await?;
    let created = store::strategies::create(state.db.pool()?, &spec).await?;
    tracing::info!(id = created.id, name = %created.name, "strategy created");
    Ok((StatusCode::CREATED, Json(created)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StrategyListQuery {
    /// Only enabled (`true`) or disabled (`false`) strategies.
    pub enabled: Option<bool>,
}

#[utoipa::path(get, path = "/api/v2/strategies", tag = "strategies", params(StrategyListQuery),
    responses((status = 200, body = [Strategy]), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list_strategies(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<StrategyListQuery>,
) -> Result<Json<Vec<Strategy>>> {
    Ok(Json(
        store::strategies::list(state.db.pool()?, q.enabled).await?,
    ))
}

#[utoipa::path(get, path = "/api/v2/strategies/{id}", tag = "strategies", params(("id" = i64, Path)),
    responses((status = 200, body = Strategy), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn get_strategy(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Strategy>> {
    Ok(Json(store::strategies::get(state.db.pool()?, id).await?))
}

/// Replaces the whole strategy (same rules as create).
#[utoipa::path(put, path = "/api/v2/strategies/{id}", tag = "strategies", params(("id" = i64, Path)),
    request_body = StrategyInput,
    responses((status = 200, body = Strategy), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 415, description = "Body is not JSON", body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_strategy(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(input): ApiJson<StrategyInput>,
) -> Result<Json<Strategy>> {
    let spec = spec_from(&state, input).await?;
    Ok(Json(
        store::strategies::update(state.db.pool()?, id, &spec).await?,
    ))
}

#[utoipa::path(post, path = "/api/v2/strategies/{id}/enable", tag = "strategies", params(("id" = i64, Path)),
    responses((status = 200, body = Strategy), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn enable_strategy(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Strategy>> {
    Ok(Json(
        store::strategies::set_enabled(state.db.pool()?, id, true).await?,
    ))
}

#[utoipa::path(post, path = "/api/v2/strategies/{id}/disable", tag = "strategies", params(("id" = i64, Path)),
    responses((status = 200, body = Strategy), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn disable_strategy(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Strategy>> {
    Ok(Json(
        store::strategies::set_enabled(state.db.pool()?, id, false).await?,
    ))
}

/// Deletes a strategy that has never signalled; one with history answers 409 (disable it instead).
#[utoipa::path(delete, path = "/api/v2/strategies/{id}", tag = "strategies", params(("id" = i64, Path)),
    responses((status = 204, description = "Deleted"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_strategy(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode> {
    store::strategies::delete(state.db.pool()?, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
