//! `orders`, `trades` and `account`: what the paper exchange executed and what it left us with.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{PgConnection, PgExecutor, Row};
use utoipa::ToSchema;

use crate::domain::Action;
use crate::domain::exits::{ExitReason, Exits};
use crate::domain::paper::Fill;
use crate::error::{Error, Result};
use crate::store::PgDecimal;

/// Paper orders fill at once, so `filled` is the only status so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Filled,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Filled => "filled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "filled" => Some(OrderStatus::Filled),
            _ => None,
        }
    }
}

/// `open` until the position is sold, then `closed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TradeStatus {
    Open,
    Closed,
}

impl TradeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TradeStatus::Open => "open",
            TradeStatus::Closed => "closed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "open" => Some(TradeStatus::Open),
            "closed" => Some(TradeStatus::Closed),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Order {
    pub id: i64,
    /// `signal-<signal id>`: one signal can never produce two orders.
    pub idempotency_key: String,
    pub signal_id: i64,
    pub trade_id: i64,
    pub symbol: String,
    #[sqlx(try_from = "String")]
    pub side: Action,
    #[schema(value_type = String)]
    pub quantity: Decimal,
    #[schema(value_type = String)]
    pub price: Decimal,
    #[schema(value_type = String)]
    pub notional: Decimal,
    #[schema(value_type = String)]
    pub fee: Decimal,
    #[sqlx(try_from = "String")]
    pub status: OrderStatus,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Trade {
    pub id: i64,
    pub symbol: String,
    pub strategy_id: Option<i64>,
    pub status: TradeStatus,
    #[schema(value_type = String)]
    pub quantity: Decimal,
    #[schema(value_type = String)]
    pub entry_price: Decimal,
    #[schema(value_type = String)]
    pub entry_fee: Decimal,
    pub opened_at: DateTime<Utc>,
    #[schema(value_type = Option<String>)]
    pub exit_price: Option<Decimal>,
    #[schema(value_type = Option<String>)]
    pub exit_fee: Option<Decimal>,
    pub closed_at: Option<DateTime<Utc>>,
    /// Realised profit net of both fees (closed trades).
    #[schema(value_type = Option<String>)]
    pub profit: Option<Decimal>,
    /// Why it was closed (closed trades).
    pub exit_reason: Option<ExitReason>,
    /// Protective exits watched by the bot: the strategy's at entry, or set on the trade.
    pub exits: Exits,
    /// Highest price seen since entry (for the trailing stop), once the bot has watched it.
    #[schema(value_type = Option<String>)]
    pub peak_price: Option<Decimal>,
}

// By hand rather than derived: the NUMERIC columns go through the fast decoder (`PgDecimal`),
// which is most of the work of a page of trades.
impl<'r> sqlx::FromRow<'r, PgRow> for Trade {
    fn from_row(row: &'r PgRow) -> sqlx::Result<Self> {
        let decimal = |name| row.try_get::<PgDecimal, _>(name).map(|d| d.0);
        let opt_decimal = |name| {
            row.try_get::<Option<PgDecimal>, _>(name)
                .map(|d| d.map(|d| d.0))
        };
        Ok(Trade {
            id: row.try_get("id")?,
            symbol: row.try_get("symbol")?,
            strategy_id: row.try_get("strategy_id")?,
            status: row
                .try_get::<String, _>("status")?
                .try_into()
                .map_err(|e: String| sqlx::Error::ColumnDecode {
                    index: "status".into(),
                    source: e.into(),
                })?,
            quantity: decimal("quantity")?,
            entry_price: decimal("entry_price")?,
            entry_fee: decimal("entry_fee")?,
            opened_at: row.try_get("opened_at")?,
            exit_price: opt_decimal("exit_price")?,
            exit_fee: opt_decimal("exit_fee")?,
            closed_at: row.try_get("closed_at")?,
            profit: opt_decimal("profit")?,
            exit_reason: row
                .try_get::<Option<String>, _>("exit_reason")?
                .map(|text| {
                    ExitReason::parse(&text).ok_or_else(|| sqlx::Error::ColumnDecode {
                        index: "exit_reason".into(),
                        source: format!("unexpected exit reason `{text}`").into(),
                    })
                })
                .transpose()?,
            exits: row.try_get::<Json<Exits>, _>("exits")?.0,
            peak_price: opt_decimal("peak_price")?,
        })
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Account {
    pub currency: String,
    pub starting_balance: Decimal,
    pub balance: Decimal,
}

/// Locks the account row for the rest of the transaction: entries by concurrent bots are
/// serialised on it, so two of them can never both spend the same free balance.
pub async fn lock_account(tx: &mut PgConnection) -> Result<Account> {
    Ok(sqlx::query_as(
        "SELECT currency, starting_balance, balance FROM account WHERE id = 1 FOR UPDATE",
    )
    .fetch_one(tx)
    .await?)
}

pub async fn account(db: impl PgExecutor<'_>) -> Result<Account> {
    Ok(
        sqlx::query_as("SELECT currency, starting_balance, balance FROM account WHERE id = 1")
            .fetch_one(db)
            .await?,
    )
}

/// One quote currency's cash.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Wallet {
    pub currency: String,
    pub starting_balance: Decimal,
    pub balance: Decimal,
}

/// Locks the balance of `currency` (`None`: the wallet holds none of it). The account's own
/// currency reads its cash from `account`, which a rolled-back binary may have written since.
pub async fn lock_wallet(tx: &mut PgConnection, currency: &str) -> Result<Option<Wallet>> {
    Ok(sqlx::query_as(
        "SELECT b.currency, b.starting_balance, COALESCE(a.balance, b.balance) AS balance
         FROM balances b LEFT JOIN account a ON a.currency = b.currency
         WHERE b.currency = $1 FOR UPDATE OF b",
    )
    .bind(currency)
    .fetch_optional(tx)
    .await?)
}

/// Every currency's balance, by currency.
pub async fn wallets(db: impl PgExecutor<'_>) -> Result<Vec<Wallet>> {
    Ok(sqlx::query_as(
        "SELECT b.currency, b.starting_balance, COALESCE(a.balance, b.balance) AS balance
         FROM balances b LEFT JOIN account a ON a.currency = b.currency ORDER BY b.currency",
    )
    .fetch_all(db)
    .await?)
}

/// Sets the cash of `currency` (a currency first received by a sale starts at 0). The single-row
/// `account` follows its own currency, so the previous binary still finds the right cash there
/// after a rollback.
pub async fn set_balance(tx: &mut PgConnection, currency: &str, balance: Decimal) -> Result<()> {
    sqlx::query(
        "INSERT INTO balances (currency, starting_balance, balance) VALUES ($1, 0, $2)
         ON CONFLICT (currency) DO UPDATE SET balance = EXCLUDED.balance, updated_at = now()",
    )
    .bind(currency)
    .bind(balance)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE account SET balance = $2, updated_at = now() WHERE id = 1 AND currency = $1",
    )
    .bind(currency)
    .bind(balance)
    .execute(tx)
    .await?;
    Ok(())
}

/// Adds `currency` to the wallet with `amount` unless it holds that currency already (the starting
/// wallet of paper trading: applied once, never reset). Returns whether it was added.
pub async fn ensure_wallet(
    db: impl PgExecutor<'_>,
    currency: &str,
    amount: Decimal,
) -> Result<bool> {
    let result = sqlx::query(
        "INSERT INTO balances (currency, starting_balance, balance) VALUES ($1, $2, $2)
         ON CONFLICT (currency) DO NOTHING",
    )
    .bind(currency)
    .bind(amount)
    .execute(db)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// The open trade of `symbol` owned by `strategy_id` (`None`: the manual one), locked.
pub async fn open_trade_of(
    tx: &mut PgConnection,
    symbol: &str,
    strategy_id: Option<i64>,
) -> Result<Option<Trade>> {
    Ok(sqlx::query_as(
        "SELECT * FROM trades WHERE symbol = $1 AND status = 'open'
           AND strategy_id IS NOT DISTINCT FROM $2 FOR UPDATE",
    )
    .bind(symbol)
    .bind(strategy_id)
    .fetch_optional(tx)
    .await?)
}

/// The oldest open trade of `symbol`, whoever owns it, locked.
pub async fn oldest_open_trade(tx: &mut PgConnection, symbol: &str) -> Result<Option<Trade>> {
    Ok(sqlx::query_as(
        "SELECT * FROM trades WHERE symbol = $1 AND status = 'open' ORDER BY id LIMIT 1 FOR UPDATE",
    )
    .bind(symbol)
    .fetch_optional(tx)
    .await?)
}

pub async fn count_open(db: impl PgExecutor<'_>) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM trades WHERE status = 'open'")
            .fetch_one(db)
            .await?,
    )
}

/// Realised profit of the trades closed since `since`, whatever their currency.
pub async fn realized_since(db: impl PgExecutor<'_>, since: DateTime<Utc>) -> Result<Decimal> {
    Ok(sqlx::query_scalar(
        "SELECT COALESCE(sum(profit), 0) FROM trades WHERE status = 'closed' AND closed_at >= $1",
    )
    .bind(since)
    .fetch_one(db)
    .await?)
}

/// Realised profit, in `currency`, of the trades quoted in it that closed since `since`.
pub async fn realized_in_since(
    db: impl PgExecutor<'_>,
    currency: &str,
    since: DateTime<Utc>,
) -> Result<Decimal> {
    Ok(sqlx::query_scalar(
        "SELECT COALESCE(sum(t.profit), 0) FROM trades t JOIN instruments i USING (symbol)
         WHERE t.status = 'closed' AND t.closed_at >= $1 AND i.quote_asset = $2",
    )
    .bind(since)
    .bind(currency)
    .fetch_one(db)
    .await?)
}

pub async fn insert_open_trade(
    tx: &mut PgConnection,
    symbol: &str,
    strategy_id: Option<i64>,
    fill: &Fill,
    exits: &Exits,
    at: DateTime<Utc>,
) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "INSERT INTO trades (symbol, strategy_id, status, quantity, entry_price, entry_fee, opened_at, exits)
         VALUES ($1, $2, 'open', $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(symbol)
    .bind(strategy_id)
    .bind(fill.quantity)
    .bind(fill.price)
    .bind(fill.fee)
    .bind(at)
    .bind(Json(exits))
    .fetch_one(tx)
    .await?)
}

pub async fn close_trade(
    tx: &mut PgConnection,
    trade_id: i64,
    fill: &Fill,
    profit: Decimal,
    reason: ExitReason,
    at: DateTime<Utc>,
) -> Result<()> {
    sqlx::query(
        "UPDATE trades SET status = 'closed', exit_price = $2, exit_fee = $3, profit = $4,
                closed_at = $5, exit_reason = $6
         WHERE id = $1",
    )
    .bind(trade_id)
    .bind(fill.price)
    .bind(fill.fee)
    .bind(profit)
    .bind(at)
    .bind(reason.as_str())
    .execute(tx)
    .await?;
    Ok(())
}

/// The open trade `id`, locked; `None` when it is closed or unknown.
pub async fn open_trade(tx: &mut PgConnection, id: i64) -> Result<Option<Trade>> {
    Ok(
        sqlx::query_as("SELECT * FROM trades WHERE id = $1 AND status = 'open' FOR UPDATE")
            .bind(id)
            .fetch_optional(tx)
            .await?,
    )
}

/// Open trades with protective exits, oldest first.
pub async fn open_trades_with_exits(db: impl PgExecutor<'_>) -> Result<Vec<Trade>> {
    Ok(sqlx::query_as(
        "SELECT * FROM trades WHERE status = 'open' AND exits <> '{}'::jsonb ORDER BY id",
    )
    .fetch_all(db)
    .await?)
}

/// Raises the trade's peak price (never lowers it).
pub async fn raise_peak(db: impl PgExecutor<'_>, id: i64, peak: Decimal) -> Result<()> {
    sqlx::query(
        "UPDATE trades SET peak_price = $2
         WHERE id = $1 AND status = 'open' AND (peak_price IS NULL OR peak_price < $2)",
    )
    .bind(id)
    .bind(peak)
    .execute(db)
    .await?;
    Ok(())
}

/// Replaces the protective exits of open trade `id`.
pub async fn set_exits(db: impl PgExecutor<'_>, id: i64, exits: &Exits) -> Result<Trade> {
    let updated: Option<Trade> = sqlx::query_as(
        "UPDATE trades SET exits = $2 WHERE id = $1 AND status = 'open' RETURNING *",
    )
    .bind(id)
    .bind(Json(exits))
    .fetch_optional(db)
    .await?;
    updated.ok_or_else(|| Error::Conflict(format!("trade {id} is not open (or does not exist)")))
}

/// Inserts the order for a signal. `None` when an order with this key exists already.
pub async fn insert_order(
    tx: &mut PgConnection,
    signal_id: i64,
    trade_id: i64,
    symbol: &str,
    side: Action,
    fill: &Fill,
) -> Result<Option<Order>> {
    Ok(sqlx::query_as(
        "INSERT INTO orders (idempotency_key, signal_id, trade_id, symbol, side, quantity, price, notional, fee)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (idempotency_key) DO NOTHING RETURNING *",
    )
    .bind(order_key(signal_id))
    .bind(signal_id)
    .bind(trade_id)
    .bind(symbol)
    .bind(side.as_str())
    .bind(fill.quantity)
    .bind(fill.price)
    .bind(fill.notional)
    .bind(fill.fee)
    .fetch_optional(tx)
    .await?)
}

/// Whether the signal already produced an order (a retry after a crash that happened after commit).
pub async fn order_exists_for(tx: &mut PgConnection, signal_id: i64) -> Result<bool> {
    Ok(
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM orders WHERE idempotency_key = $1)")
            .bind(order_key(signal_id))
            .fetch_one(tx)
            .await?,
    )
}

/// The idempotency key of the order a signal produces.
pub fn order_key(signal_id: i64) -> String {
    format!("signal-{signal_id}")
}

#[derive(Debug, Default)]
pub struct OrderFilter<'a> {
    pub symbol: Option<&'a str>,
    pub signal_id: Option<i64>,
    pub before_id: Option<i64>,
    pub limit: i64,
}

pub async fn list_orders(db: impl PgExecutor<'_>, f: &OrderFilter<'_>) -> Result<Vec<Order>> {
    Ok(sqlx::query_as(
        "SELECT * FROM orders
         WHERE ($1::text IS NULL OR symbol = $1)
           AND ($2::bigint IS NULL OR signal_id = $2)
           AND ($3::bigint IS NULL OR id < $3)
         ORDER BY id DESC LIMIT $4",
    )
    .bind(f.symbol)
    .bind(f.signal_id)
    .bind(f.before_id)
    .bind(f.limit)
    .fetch_all(db)
    .await?)
}

pub async fn get_order(db: impl PgExecutor<'_>, id: i64) -> Result<Order> {
    sqlx::query_as("SELECT * FROM orders WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await?
        .ok_or_else(|| Error::not_found(format!("order {id}")))
}

pub async fn list_trades(
    db: impl PgExecutor<'_>,
    status: Option<TradeStatus>,
    symbol: Option<&str>,
    limit: i64,
) -> Result<Vec<Trade>> {
    Ok(sqlx::query_as(
        "SELECT * FROM trades
         WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR symbol = $2)
         ORDER BY id DESC LIMIT $3",
    )
    .bind(status.map(TradeStatus::as_str))
    .bind(symbol)
    .bind(limit)
    .fetch_all(db)
    .await?)
}

pub async fn get_trade(db: impl PgExecutor<'_>, id: i64) -> Result<Trade> {
    sqlx::query_as("SELECT * FROM trades WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await?
        .ok_or_else(|| Error::not_found(format!("trade {id}")))
}

/// Totals over the trades of one quote currency: counts and profit of the closed ones, fees of all
/// (the entry fee of an open trade is paid already).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TradeTotals {
    pub currency: String,
    pub closed_trades: i64,
    pub winning_trades: i64,
    pub losing_trades: i64,
    pub realized: Decimal,
    pub fees: Decimal,
}

/// Totals per quote currency, by currency.
pub async fn totals(db: impl PgExecutor<'_>) -> Result<Vec<TradeTotals>> {
    Ok(sqlx::query_as(
        "SELECT i.quote_asset AS currency,
                count(*) FILTER (WHERE t.status = 'closed') AS closed_trades,
                count(*) FILTER (WHERE t.status = 'closed' AND t.profit > 0) AS winning_trades,
                count(*) FILTER (WHERE t.status = 'closed' AND t.profit < 0) AS losing_trades,
                COALESCE(sum(t.profit) FILTER (WHERE t.status = 'closed'), 0) AS realized,
                COALESCE(sum(t.entry_fee), 0) + COALESCE(sum(t.exit_fee), 0) AS fees
         FROM trades t JOIN instruments i USING (symbol)
         GROUP BY i.quote_asset ORDER BY i.quote_asset",
    )
    .fetch_all(db)
    .await?)
}

/// Open positions: (symbol, quote currency, quantity, entry price, entry fee).
pub async fn open_positions(
    db: impl PgExecutor<'_>,
) -> Result<Vec<(String, String, Decimal, Decimal, Decimal)>> {
    Ok(sqlx::query_as(
        "SELECT t.symbol, i.quote_asset, t.quantity, t.entry_price, t.entry_fee
         FROM trades t JOIN instruments i USING (symbol)
         WHERE t.status = 'open' ORDER BY t.symbol",
    )
    .fetch_all(db)
    .await?)
}
