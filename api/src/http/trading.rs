//! Signals, orders, trades, balance and profit, and bot control. Manual orders (POST /orders,
//! force-enter, force-exit) are queued as manual signals: the bot executes them through the same
//! risk checks and transaction as strategy signals, so there is one execution path.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::json::{self, JsonBytes};
use super::{AppState, page_limit};
use crate::domain::{Action, BotState, Invalid, Symbol};
use crate::error::{Error, ErrorBody, Result};
use crate::store::bot::BotStatus;
use crate::store::events::{Level, NewEvent};
use crate::store::signals::{NewManualSignal, Signal, SignalFilter};
use crate::store::trading::{Order, OrderFilter, Trade};
use crate::store::{self};

// ---- signals ----

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SignalStatus {
    New,
    Executed,
    Rejected,
}

impl SignalStatus {
    fn as_str(self) -> &'static str {
        match self {
            SignalStatus::New => "new",
            SignalStatus::Executed => "executed",
            SignalStatus::Rejected => "rejected",
        }
    }
}

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
        status: q.status.map(SignalStatus::as_str),
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

// ---- orders ----

/// A manual paper order. `buy` opens a trade for `stake` quote units (default: the bot's stake);
/// `sell` closes the open trade of the symbol.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderRequest {
    #[schema(example = "BTCUSDT", pattern = "^[A-Z0-9][A-Z0-9._-]{0,31}$")]
    pub symbol: String,
    pub side: Action,
    /// Quote amount to spend (buy only), > 0.
    #[schema(value_type = Option<String>, example = "100")]
    pub stake: Option<Decimal>,
    /// Idempotency key chosen by the client (1-64 characters: letters, digits, `_-.:`): sending the
    /// same request again returns the first one instead of ordering twice.
    #[schema(example = "my-order-0001", pattern = "^[A-Za-z0-9_.:-]{1,64}$")]
    pub client_order_id: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrderQuery {
    pub symbol: Option<String>,
    pub signal_id: Option<i64>,
    pub before_id: Option<i64>,
    /// 1-1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// Paper orders, newest first.
#[utoipa::path(get, path = "/api/v2/orders", tag = "trading", params(OrderQuery),
    responses((status = 200, body = [Order]), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn list_orders(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<OrderQuery>,
) -> Result<Json<Vec<Order>>> {
    let filter = OrderFilter {
        symbol: q.symbol.as_deref(),
        signal_id: q.signal_id,
        before_id: q.before_id,
        limit: page_limit(q.limit)?,
    };
    Ok(Json(
        store::trading::list_orders(state.db.pool()?, &filter).await?,
    ))
}

#[utoipa::path(get, path = "/api/v2/orders/{id}", tag = "trading", params(("id" = i64, Path)),
    responses((status = 200, body = Order), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn get_order(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Order>> {
    Ok(Json(store::trading::get_order(state.db.pool()?, id).await?))
}

/// Queues a manual order for the bot and answers 202 with the signal that carries it (the order
/// appears under /orders?signal_id=<id> once executed). A repeated `client_order_id` with the same
/// request answers 200 with the original signal.
#[utoipa::path(post, path = "/api/v2/orders", tag = "trading", request_body = OrderRequest,
    responses((status = 202, description = "Queued", body = Signal),
              (status = 200, description = "Same client_order_id seen before", body = Signal),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 409, description = "Bot stopped, no trade to exit, or client_order_id reused", body = ErrorBody),
              (status = 415, description = "Body is not JSON", body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_order(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<OrderRequest>,
) -> Result<(StatusCode, Json<Signal>)> {
    queue_manual(&state, req, "manual order").await
}

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

fn check_client_order_id(id: &str) -> Result<(), Invalid> {
    let ok = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Invalid::new(
            "client_order_id",
            "must be 1-64 characters: letters, digits, '_', '-', '.', ':'",
        ))
    }
}

/// A key for requests that bring none: unique per process (random start) and per request.
fn generated_key() -> String {
    use std::hash::{BuildHasher, RandomState};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static PROCESS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let process = *PROCESS.get_or_init(|| RandomState::new().hash_one(std::process::id()));
    format!(
        "api-{process:016x}-{}",
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

async fn queue_manual(
    state: &AppState,
    req: OrderRequest,
    source: &str,
) -> Result<(StatusCode, Json<Signal>)> {
    let symbol = Symbol::parse(&req.symbol).map_err(|e| Invalid::new("symbol", e))?;
    match (req.side, req.stake) {
        (Action::Buy, Some(stake)) if stake <= Decimal::ZERO => {
            return Err(Error::invalid(
                "stake",
                format!("must be greater than 0 (got {stake})"),
            ));
        }
        (Action::Buy, Some(stake)) if stake > crate::config::max_amount() => {
            return Err(Error::invalid(
                "stake",
                format!(
                    "must be at most {} (got {stake})",
                    crate::config::max_amount()
                ),
            ));
        }
        (Action::Sell, Some(_)) => {
            return Err(Error::invalid("stake", "only applies to buy orders"));
        }
        _ => {}
    }
    if let Some(id) = &req.client_order_id {
        check_client_order_id(id)?;
    }
    let pool = state.db.pool()?;
    if !store::instruments::exists(pool, symbol.as_str()).await? {
        return Err(Error::invalid(
            "symbol",
            format!("unknown instrument `{symbol}`"),
        ));
    }
    let key = req.client_order_id.clone().unwrap_or_else(generated_key);
    let mut tx = pool.begin().await?;
    let (signal, created) = store::signals::insert_manual(
        &mut tx,
        &NewManualSignal {
            symbol: symbol.as_str(),
            action: req.side,
            stake: req.stake,
            idempotency_key: &key,
            reason: format!("{source} via API"),
        },
    )
    .await?;
    if !created {
        tx.rollback().await?;
        return Ok((StatusCode::OK, Json(signal)));
    }
    // Refuse what the bot would certainly reject, while the client is still listening.
    let bot = store::bot::state(&mut *tx).await?;
    match (req.side, bot.state) {
        (Action::Buy, BotState::Stopped) => {
            return Err(Error::Conflict(
                "the bot is stopped; POST /api/v2/bot/start first".into(),
            ));
        }
        (Action::Buy, BotState::StopEntry) => {
            return Err(Error::Conflict(
                "entries are paused (stop-entry); POST /api/v2/bot/start first".into(),
            ));
        }
        _ => {}
    }
    if req.side == Action::Sell
        && store::trading::open_trade_for(&mut tx, symbol.as_str())
            .await?
            .is_none()
    {
        return Err(Error::Conflict(format!("no open trade for {symbol}")));
    }
    tx.commit().await?;
    tracing::info!(signal = signal.id, %symbol, side = req.side.as_str(), source, "manual order queued");
    Ok((StatusCode::ACCEPTED, Json(signal)))
}

// ---- trades, balance, profit ----

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TradeStatus {
    Open,
    Closed,
}

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
    let status = q.status.map(|s| match s {
        TradeStatus::Open => "open",
        TradeStatus::Closed => "closed",
    });
    let limit = page_limit(q.limit)?;
    let trades =
        store::trading::list_trades(state.db.pool()?, status, q.symbol.as_deref(), limit).await?;
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

struct Valuation {
    in_trades: Decimal,
    market_value: Decimal,
    open_trades: usize,
}

async fn value_open_trades(pool: &sqlx::PgPool) -> Result<Valuation> {
    let positions = store::trading::open_positions(pool).await?;
    let symbols: Vec<String> = positions.iter().map(|p| p.0.clone()).collect();
    let prices = store::candles::latest_closes(pool, &symbols).await?;
    let mut valuation = Valuation {
        in_trades: Decimal::ZERO,
        market_value: Decimal::ZERO,
        open_trades: positions.len(),
    };
    for (symbol, quantity, entry_price, entry_fee) in positions {
        let price = prices
            .iter()
            .find(|(s, _)| *s == symbol)
            .map_or(entry_price, |(_, close)| *close);
        valuation.in_trades += quantity * entry_price + entry_fee;
        valuation.market_value += quantity * price;
    }
    Ok(valuation)
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
        equity: (account.balance + valuation.market_value).round_dp(8),
        open_trades: valuation.open_trades,
    }))
}

#[utoipa::path(get, path = "/api/v2/profit", tag = "trading",
    responses((status = 200, body = Profit), (status = 401, body = ErrorBody)))]
pub async fn profit(State(state): State<AppState>) -> Result<Json<Profit>> {
    let pool = state.db.pool()?;
    let account = store::trading::account(pool).await?;
    let totals = store::trading::closed_totals(pool).await?;
    let valuation = value_open_trades(pool).await?;
    let unrealized = (valuation.market_value - valuation.in_trades).round_dp(8);
    let total = totals.realized + unrealized;
    let total_pct = if account.starting_balance.is_zero() {
        Decimal::ZERO
    } else {
        (total / account.starting_balance * Decimal::ONE_HUNDRED).round_dp(4)
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

// ---- bot control ----

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
