//! Market data: instruments and candles.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{ApiBytes, ApiJson, ApiPath, ApiQuery};
use super::{AppState, page_limit};
use crate::domain::Invalid;
use crate::domain::market::{self, Candle, Symbol, Timeframe};
use crate::error::{Error, ErrorBody, Result};
use crate::store::{self, instruments::Instrument};

/// Most candles one JSON upsert accepts (the CSV import takes more).
pub const MAX_BATCH: usize = 10_000;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewInstrument {
    #[schema(value_type = String, example = "BTCUSDT", pattern = "^[A-Z0-9][A-Z0-9._-]{0,31}$")]
    pub symbol: Symbol,
    #[schema(example = "BTC", pattern = "^[A-Z0-9]{1,16}$")]
    pub base_asset: String,
    #[schema(example = "USDT", pattern = "^[A-Z0-9]{1,16}$")]
    pub quote_asset: String,
}

fn check_asset(field: &str, value: &str) -> Result<(), Invalid> {
    let ok = (1..=16).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(Invalid::new(
            field,
            format!(
                "`{}` is not an asset code (1-16 characters A-Z, 0-9)",
                market::truncate(value, 20)
            ),
        ))
    }
}

#[utoipa::path(get, path = "/api/v2/instruments", tag = "market data",
    responses((status = 200, body = [Instrument]), (status = 401, body = ErrorBody)))]
pub async fn list_instruments(State(state): State<AppState>) -> Result<Json<Vec<Instrument>>> {
    Ok(Json(store::instruments::list(state.db.pool()?).await?))
}

#[utoipa::path(post, path = "/api/v2/instruments", tag = "market data", request_body = NewInstrument,
    responses((status = 201, body = Instrument), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 409, description = "Symbol exists", body = ErrorBody),
              (status = 415, description = "Body is not JSON", body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_instrument(
    State(state): State<AppState>,
    ApiJson(input): ApiJson<NewInstrument>,
) -> Result<(StatusCode, Json<Instrument>)> {
    check_asset("base_asset", &input.base_asset)?;
    check_asset("quote_asset", &input.quote_asset)?;
    let created = store::instruments::create(
        state.db.pool()?,
        input.symbol.as_str(),
        &input.base_asset,
        &input.quote_asset,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

#[utoipa::path(get, path = "/api/v2/instruments/{symbol}", tag = "market data",
    params(("symbol" = String, Path, example = "BTCUSDT")),
    responses((status = 200, body = Instrument), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_instrument(
    State(state): State<AppState>,
    ApiPath(symbol): ApiPath<String>,
) -> Result<Json<Instrument>> {
    store::instruments::get(state.db.pool()?, &symbol)
        .await?
        .map(Json)
        .ok_or_else(|| Error::not_found(format!("instrument {}", market::truncate(&symbol, 40))))
}

/// Candles of one instrument and timeframe to insert or replace.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CandleBatch {
    #[schema(value_type = String, example = "BTCUSDT", pattern = "^[A-Z0-9][A-Z0-9._-]{0,31}$")]
    pub symbol: Symbol,
    pub timeframe: Timeframe,
    #[schema(min_items = 1, max_items = 10000)]
    pub candles: Vec<Candle>,
    /// The feed declares these candles final: no later version will come, so strategies may use
    /// them at once. Otherwise a closed candle is used once `CANDLE_GRACE` has passed after its
    /// close.
    #[serde(default, rename = "final")]
    pub is_final: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Upserted {
    /// Candles inserted or replaced.
    pub upserted: u64,
}

async fn require_known_symbol(state: &AppState, symbol: &Symbol) -> Result<()> {
    if store::instruments::exists(state.db.pool()?, symbol.as_str()).await? {
        Ok(())
    } else {
        Err(Error::invalid(
            "symbol",
            format!("unknown instrument `{symbol}` (create it under /api/v2/instruments first)"),
        ))
    }
}

/// Bulk upsert: every candle is validated (non-negative, `low <= open, close <= high`, open time
/// aligned to the timeframe, no duplicates) before anything is written; one bad candle rejects the
/// whole batch.
#[utoipa::path(put, path = "/api/v2/candles", tag = "market data", request_body = CandleBatch,
    responses((status = 200, body = Upserted), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 413, body = ErrorBody), (status = 415, description = "Body is not JSON", body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn upsert_candles(
    State(state): State<AppState>,
    ApiJson(batch): ApiJson<CandleBatch>,
) -> Result<Json<Upserted>> {
    if batch.candles.is_empty() {
        return Err(Error::invalid(
            "candles",
            "must contain at least one candle",
        ));
    }
    if batch.candles.len() > MAX_BATCH {
        return Err(Error::invalid(
            "candles",
            format!(
                "at most {MAX_BATCH} candles per request (got {}); use the CSV import for more",
                batch.candles.len()
            ),
        ));
    }
    market::validate_batch(&batch.candles, batch.timeframe, chrono::Utc::now())?;
    require_known_symbol(&state, &batch.symbol).await?;
    let upserted = store::candles::upsert_final(
        state.db.pool()?,
        batch.symbol.as_str(),
        batch.timeframe,
        &batch.candles,
        batch.is_final,
    )
    .await?;
    state.metrics.candles_upserted.inc_by(upserted);
    Ok(Json(Upserted { upserted }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    #[param(value_type = String, example = "BTCUSDT", pattern = "^[A-Z0-9][A-Z0-9._-]{0,31}$")]
    pub symbol: Symbol,
    #[param(inline)]
    pub timeframe: Timeframe,
}

/// CSV import: a header row with `open_time,open,high,low,close,volume` (any order; `open_time` in
/// RFC 3339 or Unix seconds, milliseconds, microseconds or nanoseconds), validated like the JSON
/// upsert (no candle in the future); errors name the line.
#[utoipa::path(post, path = "/api/v2/candles/import", tag = "market data", params(ImportQuery),
    request_body(content = String, content_type = "text/csv",
        example = "open_time,open,high,low,close,volume\n2025-01-01T00:00:00Z,100,101,99,100.5,12\n"),
    responses((status = 200, body = Upserted), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn import_candles(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ImportQuery>,
    ApiBytes(body): ApiBytes,
) -> Result<Json<Upserted>> {
    let candles = market::parse_csv(&body, query.timeframe, chrono::Utc::now())?;
    require_known_symbol(&state, &query.symbol).await?;
    let upserted = store::candles::upsert(
        state.db.pool()?,
        query.symbol.as_str(),
        query.timeframe,
        &candles,
    )
    .await?;
    state.metrics.candles_upserted.inc_by(upserted);
    Ok(Json(Upserted { upserted }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CandleQuery {
    #[param(example = "BTCUSDT")]
    pub symbol: String,
    #[param(inline)]
    pub timeframe: Timeframe,
    /// Inclusive start (RFC 3339). Without it, the newest candles are returned.
    pub from: Option<DateTime<Utc>>,
    /// Exclusive end (RFC 3339).
    pub to: Option<DateTime<Utc>>,
    /// 1-1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// Candles oldest first: from `from` onwards, or the newest `limit` before `to`.
#[utoipa::path(get, path = "/api/v2/candles", tag = "market data", params(CandleQuery),
    responses((status = 200, body = [Candle]), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn query_candles(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<CandleQuery>,
) -> Result<Json<Vec<Candle>>> {
    let limit = page_limit(q.limit)?;
    if let (Some(from), Some(to)) = (q.from, q.to)
        && from >= to
    {
        return Err(Error::invalid("from", "must be before `to`"));
    }
    let pool = state.db.pool()?;
    if !store::instruments::exists(pool, &q.symbol).await? {
        return Err(Error::not_found(format!(
            "instrument {}",
            market::truncate(&q.symbol, 40)
        )));
    }
    Ok(Json(
        store::candles::range(pool, &q.symbol, q.timeframe, q.from, q.to, limit).await?,
    ))
}
