//! `GET /balance` and `/profit`: the paper wallet, one balance per quote currency, with open trades
//! valued at their latest close. The top-level fields are those of the account's currency (the
//! one the schema starts with); `currencies` lists every currency.

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::State;
use rust_decimal::Decimal;
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::paper::{self, Position, Valuation};
use crate::error::{Error, ErrorBody, Result};
use crate::http::AppState;
use crate::store::trading::{TradeTotals, Wallet};
use crate::store::{self};

/// Cash and open trades in one quote currency. Amounts are decimal strings in `currency`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CurrencyBalance {
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
    /// Every quote currency of the wallet or of a trade, the account's included.
    pub currencies: Vec<CurrencyBalance>,
}

/// Profit and statistics of the trades quoted in one currency.
#[derive(Debug, Serialize, ToSchema)]
pub struct CurrencyProfit {
    #[schema(example = "USDT")]
    pub currency: String,
    /// Net of fees, closed trades.
    #[schema(value_type = String)]
    pub realized: Decimal,
    /// Open trades at their latest close, net of entry fees.
    #[schema(value_type = String)]
    pub unrealized: Decimal,
    #[schema(value_type = String)]
    pub total: Decimal,
    /// `total` as a percentage of the currency's starting balance.
    #[schema(value_type = String)]
    pub total_pct: Decimal,
    pub closed_trades: i64,
    pub winning_trades: i64,
    pub losing_trades: i64,
    /// Entry and exit fees, open trades' entry fees included.
    #[schema(value_type = String)]
    pub fees_paid: Decimal,
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
    /// Entry and exit fees, open trades' entry fees included.
    #[schema(value_type = String)]
    pub fees_paid: Decimal,
    /// The same per quote currency, the account's included.
    pub currencies: Vec<CurrencyProfit>,
}

/// Everything the two endpoints need, per quote currency.
struct Book {
    /// The account's currency (top-level fields).
    primary: String,
    wallets: Vec<Wallet>,
    totals: Vec<TradeTotals>,
    /// (currency, valuation of its open trades).
    valuations: Vec<(String, Valuation)>,
}

impl Book {
    async fn load(pool: &sqlx::PgPool) -> Result<Book> {
        let primary = store::trading::account(pool).await?.currency;
        let wallets = store::trading::wallets(pool).await?;
        let totals = store::trading::totals(pool).await?;
        let open = store::trading::open_positions(pool).await?;
        let symbols: Vec<String> = open.iter().map(|p| p.0.clone()).collect();
        let prices = store::candles::latest_closes(pool, &symbols).await?;
        let currencies: BTreeSet<&String> = open.iter().map(|p| &p.1).collect();
        let mut valuations = Vec::new();
        for currency in currencies {
            let positions: Vec<Position> = open
                .iter()
                .filter(|p| p.1 == *currency)
                .map(|(symbol, _, quantity, entry_price, entry_fee)| Position {
                    quantity: *quantity,
                    entry_price: *entry_price,
                    entry_fee: *entry_fee,
                    price: prices
                        .iter()
                        .find(|(s, _)| s == symbol)
                        .map_or(*entry_price, |(_, close)| *close),
                })
                .collect();
            let valuation = paper::value(&positions).ok_or_else(out_of_range)?;
            valuations.push((currency.clone(), valuation));
        }
        Ok(Book {
            primary,
            wallets,
            totals,
            valuations,
        })
    }

    /// The primary currency first, then the others by name.
    fn currencies(&self) -> Vec<String> {
        let mut others: BTreeSet<&String> = self.wallets.iter().map(|w| &w.currency).collect();
        others.extend(self.totals.iter().map(|t| &t.currency));
        others.extend(self.valuations.iter().map(|v| &v.0));
        others.remove(&self.primary);
        std::iter::once(self.primary.clone())
            .chain(others.into_iter().cloned())
            .collect()
    }

    fn wallet(&self, currency: &str) -> (Decimal, Decimal) {
        self.wallets
            .iter()
            .find(|w| w.currency == currency)
            .map_or((Decimal::ZERO, Decimal::ZERO), |w| {
                (w.starting_balance, w.balance)
            })
    }

    fn valuation(&self, currency: &str) -> Valuation {
        self.valuations
            .iter()
            .find(|v| v.0 == currency)
            .map_or_else(Valuation::default, |v| v.1)
    }

    fn balance(&self, currency: &str) -> Result<CurrencyBalance> {
        let (starting_balance, free) = self.wallet(currency);
        let valuation = self.valuation(currency);
        Ok(CurrencyBalance {
            currency: currency.to_owned(),
            starting_balance,
            free,
            in_trades: valuation.in_trades.round_dp(8),
            equity: free
                .checked_add(valuation.market_value)
                .ok_or_else(out_of_range)?
                .round_dp(8),
            open_trades: valuation.open_trades,
        })
    }

    fn profit(&self, currency: &str) -> Result<CurrencyProfit> {
        let (starting_balance, _) = self.wallet(currency);
        let valuation = self.valuation(currency);
        let totals = self.totals.iter().find(|t| t.currency == currency);
        let realized = totals.map_or(Decimal::ZERO, |t| t.realized);
        let unrealized = valuation
            .market_value
            .checked_sub(valuation.in_trades)
            .ok_or_else(out_of_range)?
            .round_dp(8);
        let total = realized.checked_add(unrealized).ok_or_else(out_of_range)?;
        let total_pct = if starting_balance.is_zero() {
            Decimal::ZERO
        } else {
            total
                .checked_div(starting_balance)
                .and_then(|ratio| ratio.checked_mul(Decimal::ONE_HUNDRED))
                .ok_or_else(out_of_range)?
                .round_dp(4)
        };
        Ok(CurrencyProfit {
            currency: currency.to_owned(),
            realized,
            unrealized,
            total,
            total_pct,
            closed_trades: totals.map_or(0, |t| t.closed_trades),
            winning_trades: totals.map_or(0, |t| t.winning_trades),
            losing_trades: totals.map_or(0, |t| t.losing_trades),
            fees_paid: totals.map_or(Decimal::ZERO, |t| t.fees),
        })
    }
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
    responses((status = 200, body = Balance), (status = 401, body = ErrorBody),
              (status = 422, description = "Stored prices value the trades beyond the supported range", body = ErrorBody)))]
pub async fn balance(State(state): State<AppState>) -> Result<Json<Balance>> {
    let book = Book::load(state.db.pool()?).await?;
    let currencies = book
        .currencies()
        .iter()
        .map(|c| book.balance(c))
        .collect::<Result<Vec<_>>>()?;
    let primary = &currencies[0];
    Ok(Json(Balance {
        currency: primary.currency.clone(),
        starting_balance: primary.starting_balance,
        free: primary.free,
        in_trades: primary.in_trades,
        equity: primary.equity,
        open_trades: primary.open_trades,
        currencies,
    }))
}

#[utoipa::path(get, path = "/api/v2/profit", tag = "trading",
    responses((status = 200, body = Profit), (status = 401, body = ErrorBody),
              (status = 422, description = "Stored prices value the trades beyond the supported range", body = ErrorBody)))]
pub async fn profit(State(state): State<AppState>) -> Result<Json<Profit>> {
    let book = Book::load(state.db.pool()?).await?;
    let currencies = book
        .currencies()
        .iter()
        .map(|c| book.profit(c))
        .collect::<Result<Vec<_>>>()?;
    let primary = &currencies[0];
    Ok(Json(Profit {
        realized: primary.realized,
        unrealized: primary.unrealized,
        total: primary.total,
        total_pct: primary.total_pct,
        closed_trades: primary.closed_trades,
        winning_trades: primary.winning_trades,
        losing_trades: primary.losing_trades,
        fees_paid: primary.fees_paid,
        currencies,
    }))
}
