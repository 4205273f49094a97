//! `GET /balance` and `/profit`: the paper account, with open trades valued at their latest close.

use axum::Json;
use axum::extract::State;
use rust_decimal::Decimal;
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::paper::{self, Position, Valuation};
use crate::error::{Error, ErrorBody, Result};
use crate::http::AppState;
use crate::store::{self};

/// The paper account. Amounts are decimal strings in `currency`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Balance {
    #[schema(example = "USDT")]
    pub currency: String,
    #[schema(value_type = String)]
    pub starting_balance: Decimal,
    /// Cash not in trades.
    #[schema(value_type = String)]
    pub free: Decimal,
    /// Cost of the open trades (entry notional plus entry fee).
    #[schema(value_type = String)]
    pub in_trades: Decimal,
    /// Free cash plus open positions at their latest close.
    #[schema(value_type = String)]
    pub equity: Decimal,
    pub open_trades: usize,
}

/// Profit and statistics.
#[derive(Debug, Serialize, ToSchema)]
pub struct Profit {
    /// Net of fees, closed trades.
    #[schema(value_type = String)]
    pub realized: Decimal,
    /// Open trades at their latest close, net of entry fees.
    #[schema(value_type = String)]
    pub unrealized: Decimal,
    #[schema(value_type = String)]
    pub total: Decimal,
    /// `total` as a percentage of the starting balance.
    #[schema(value_type = String)]
    pub total_pct: Decimal,
    pub closed_trades: i64,
    pub winning_trades: i64,
    pub losing_trades: i64,
    #[schema(value_type = String)]
    pub fees_paid: Decimal,
}

async fn value_open_trades(pool: &sqlx::PgPool) -> Result<Valuation> {
    let open = store::trading::open_positions(pool).await?;
    let symbols: Vec<String> = open.iter().map(|p| p.0.clone()).collect();
    let prices = store::candles::latest_closes(pool, &symbols).await?;
    let positions: Vec<Position> = open
        .into_iter()
        .map(|(symbol, quantity, entry_price, entry_fee)| Position {
            quantity,
            entry_price,
            entry_fee,
            price: prices
                .iter()
                .find(|(s, _)| *s == symbol)
                .map_or(entry_price, |(_, close)| *close),
        })
        .collect();
    paper::value(&positions).ok_or_else(out_of_range)
}

/// Stored prices and quantities whose product leaves the decimal range: the data's fault (they
/// came from clients), named as such rather than a panic or a bare 500.
fn out_of_range() -> Error {
    Error::invalid(
        "candles",
        "the open trades valued at the latest prices exceed the supported range",
    )
}

#[utoipa::path(get, path = "/api/v2/balance", tag = "trading",
    responses((status = 200, body = Balance), (status = 401, body = ErrorBody)))]
pub async fn balance(State(state): State<AppState>) -> Result<Json<Balance>> {
    let pool = state.db.pool()?;
    let account = store::trading::account(pool).await?;
    let valuation = value_open_trades(pool).await?;
    Ok(Json(Balance {
        currency: account.currency,
        starting_balance: account.starting_balance,
        free: account.balance,
        in_trades: valuation.in_trades.round_dp(8),
        equity: account
            .balance
            .checked_add(valuation.market_value)
            .ok_or_else(out_of_range)?
            .round_dp(8),
        open_trades: valuation.open_trades,
    }))
}

#[utoipa::path(get, path = "/api/v2/profit", tag = "trading",
    responses((status = 200, body = Profit), (status = 401, body = ErrorBody)))]
pub async fn profit(State(state): State<AppState>) -> Result<Json<Profit>> {
    let pool = state.db.pool()?;
    let account = store::trading::account(pool).await?;
    let totals = store::trading::totals(pool).await?;
    let valuation = value_open_trades(pool).await?;
    let unrealized = valuation
        .market_value
        .checked_sub(valuation.in_trades)
        .ok_or_else(out_of_range)?
        .round_dp(8);
    let total = totals
        .realized
        .checked_add(unrealized)
        .ok_or_else(out_of_range)?;
    let total_pct = if account.starting_balance.is_zero() {
        Decimal::ZERO
    } else {
        total
            .checked_div(account.starting_balance)
            .and_then(|ratio| ratio.checked_mul(Decimal::ONE_HUNDRED))
            .ok_or_else(out_of_range)?
            .round_dp(4)
    };
    Ok(Json(Profit {
        realized: totals.realized,
        unrealized,
        total,
        total_pct,
        closed_trades: totals.closed_trades,
        winning_trades: totals.winning_trades,
        losing_trades: totals.losing_trades,
        fees_paid: totals.fees,
    }))
}
