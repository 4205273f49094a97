//! Paper orders: the list, and manual orders (`POST /orders`, also behind force-enter and
//! force-exit), which are queued as manual signals so that the bot executes them through the same
//! risk checks and transaction as strategy signals.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use rust_decimal::Decimal;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::domain::{Action, BotState, Invalid, Symbol};
use crate::error::{Error, ErrorBody, Result};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery};
use crate::http::{AppState, page_limit};
use crate::store::signals::{NewManualSignal, Signal};
use crate::store::trading::{Order, OrderFilter};
use crate::store::{self};

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

pub(super) async fn queue_manual(
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
        && store::trading::oldest_open_trade(&mut tx, symbol.as_str())
            .await?
            .is_none()
    {
        return Err(Error::Conflict(format!("no open trade for {symbol}")));
    }
    tx.commit().await?;
    tracing::info!(signal = signal.id, %symbol, side = req.side.as_str(), source, "manual order queued");
    Ok((StatusCode::ACCEPTED, Json(signal)))
}
