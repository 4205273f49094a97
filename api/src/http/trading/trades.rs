//! `GET /trades`, `/trades/{id}`. A page of trades is written by hand into one buffer
//! ([`crate::http::json`]): byte for byte what serde writes, which a test checks.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::domain::exits::Exits;
use crate::error::{ErrorBody, Result};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery};
use crate::http::json::{self, JsonBytes, WriteJson};
use crate::http::{AppState, page_limit};
use crate::store::trading::{Trade, TradeStatus};
use crate::store::{self};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TradeQuery {
    #[param(inline)]
    pub status: Option<TradeStatus>,
    pub symbol: Option<String>,
    /// 1-1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// Trades, newest first; `?status=open` or `?status=closed`.
#[utoipa::path(get, path = "/api/v2/trades", tag = "trading", params(TradeQuery),
    responses((status = 200, body = [Trade]), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn list_trades(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<TradeQuery>,
) -> Result<JsonBytes> {
    let limit = page_limit(q.limit)?;
    let trades =
        store::trading::list_trades(state.db.pool()?, q.status, q.symbol.as_deref(), limit).await?;
    // About 300 bytes a closed trade: one allocation for the whole page.
    Ok(json::array(&trades, 320))
}

#[utoipa::path(get, path = "/api/v2/trades/{id}", tag = "trading", params(("id" = i64, Path)),
    responses((status = 200, body = Trade), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn get_trade(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Trade>> {
    Ok(Json(store::trading::get_trade(state.db.pool()?, id).await?))
}

impl WriteJson for Trade {
    fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(br#"{"id":"#);
        json::int(out, self.id);
        out.extend_from_slice(br#","symbol":"#);
        json::string(out, &self.symbol);
        out.extend_from_slice(br#","strategy_id":"#);
        json::opt_int(out, self.strategy_id);
        out.extend_from_slice(br#","status":"#);
        json::string(out, self.status.as_str());
        out.extend_from_slice(br#","quantity":"#);
        json::decimal(out, &self.quantity);
        out.extend_from_slice(br#","entry_price":"#);
        json::decimal(out, &self.entry_price);
        out.extend_from_slice(br#","entry_fee":"#);
        json::decimal(out, &self.entry_fee);
        out.extend_from_slice(br#","opened_at":"#);
        json::timestamp(out, &self.opened_at);
        out.extend_from_slice(br#","exit_price":"#);
        json::opt_decimal(out, self.exit_price.as_ref());
        out.extend_from_slice(br#","exit_fee":"#);
        json::opt_decimal(out, self.exit_fee.as_ref());
        out.extend_from_slice(br#","closed_at":"#);
        json::opt_timestamp(out, self.closed_at.as_ref());
        out.extend_from_slice(br#","profit":"#);
        json::opt_decimal(out, self.profit.as_ref());
        out.extend_from_slice(br#","exit_reason":"#);
        match self.exit_reason {
            Some(reason) => json::string(out, reason.as_str()),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(br#","exits":"#);
        if self.exits.is_empty() {
            out.extend_from_slice(b"{}");
        } else {
            json::serde(out, &self.exits);
        }
        out.extend_from_slice(br#","peak_price":"#);
        json::opt_decimal(out, self.peak_price.as_ref());
        out.push(b'}');
    }
}

/// Replaces the protective exits of an open trade (the strategy's apply until then).
#[utoipa::path(put, path = "/api/v2/trades/{id}/exits", tag = "trading", params(("id" = i64, Path)),
    request_body = Exits,
    responses((status = 200, body = Trade), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, description = "The trade is closed", body = ErrorBody),
              (status = 415, description = "Body is not JSON", body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn set_trade_exits(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(exits): ApiJson<Exits>,
) -> Result<Json<Trade>> {
    exits.validate()?;
    let pool = state.db.pool()?;
    store::trading::get_trade(pool, id).await?;
    let trade = store::trading::set_exits(pool, id, &exits).await?;
    tracing::info!(trade = id, "protective exits set");
    Ok(Json(trade))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use rust_decimal::dec;

    use super::*;
    use crate::domain::exits::ExitReason;

    /// The hand-written body of whole trades, open and closed, is exactly what serde writes.
    #[test]
    fn whole_trades_match_serde() {
        let opened = chrono::Utc.with_ymd_and_hms(2026, 11, 24, 5, 7, 9).unwrap();
        let open = Trade {
            id: 7,
            symbol: "BTCUSDT".into(),
            strategy_id: None,
            status: TradeStatus::Open,
            quantity: dec!(0.00123400),
            entry_price: dec!(64250.5),
            entry_fee: dec!(0.07928),
            opened_at: opened + chrono::Duration::microseconds(123_456),
            exit_price: None,
            exit_fee: None,
            closed_at: None,
            profit: None,
            exit_reason: None,
            exits: Exits::default(),
            peak_price: None,
        };
        let closed = Trade {
            id: i64::MAX,
            symbol: "ETH-\"Q\"".into(),
            strategy_id: Some(3),
            status: TradeStatus::Closed,
            quantity: dec!(2),
            entry_price: dec!(3000),
            entry_fee: dec!(6.000),
            opened_at: opened,
            exit_price: Some(dec!(2990.25)),
            exit_fee: Some(dec!(5.9805)),
            closed_at: Some(opened + chrono::Duration::milliseconds(1500)),
            profit: Some(dec!(-31.4805)),
            exit_reason: Some(ExitReason::TrailingStop),
            exits: serde_json::from_value(serde_json::json!({
                "stop_loss": "0.05", "trailing_stop": "0.030", "minimal_roi": {"0": "0.1", "60": 0}
            }))
            .unwrap(),
            peak_price: Some(dec!(3100.5)),
        };
        let trades = vec![open, closed];
        let JsonBytes(bytes) = json::array(&trades, 320);
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            serde_json::to_string(&trades).unwrap()
        );
    }
}
