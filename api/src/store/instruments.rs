//! `instruments`: the symbols the system knows.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgExecutor;
use utoipa::ToSchema;

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema, sqlx::FromRow)]
pub struct Instrument {
    #[schema(example = "BTCUSDT")]
    pub symbol: String,
    #[schema(example = "BTC")]
    pub base_asset: String,
    #[schema(example = "USDT")]
    pub quote_asset: String,
    pub created_at: DateTime<Utc>,
}

pub async fn list(db: impl PgExecutor<'_>) -> Result<Vec<Instrument>> {
    Ok(sqlx::query_as("SELECT * FROM instruments ORDER BY symbol")
        .fetch_all(db)
        .await?)
}

pub async fn get(db: impl PgExecutor<'_>, symbol: &str) -> Result<Option<Instrument>> {
    Ok(
        sqlx::query_as("SELECT * FROM instruments WHERE symbol = $1")
            .bind(symbol)
            .fetch_optional(db)
            .await?,
    )
}

/// Inserts a new instrument; 409 when the symbol exists.
pub async fn create(
    db: impl PgExecutor<'_>,
    symbol: &str,
    base_asset: &str,
    quote_asset: &str,
) -> Result<Instrument> {
    sqlx::query_as(
        "INSERT INTO instruments (symbol, base_asset, quote_asset) VALUES ($1, $2, $3)
         ON CONFLICT (symbol) DO NOTHING RETURNING *",
    )
    .bind(symbol)
    .bind(base_asset)
    .bind(quote_asset)
    .fetch_optional(db)
    .await?
    .ok_or_else(|| Error::Conflict(format!("instrument {symbol} already exists")))
}

/// Inserts the instrument unless it exists (demo seeding).
pub async fn ensure(
    db: impl PgExecutor<'_>,
    symbol: &str,
    base_asset: &str,
    quote_asset: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO instruments (symbol, base_asset, quote_asset) VALUES ($1, $2, $3)
         ON CONFLICT (symbol) DO NOTHING",
    )
    .bind(symbol)
    .bind(base_asset)
    .bind(quote_asset)
    .execute(db)
    .await?;
    Ok(())
}

/// The quote currency of `symbol` (what its prices are in, and what buying it spends).
pub async fn quote_asset(db: impl PgExecutor<'_>, symbol: &str) -> Result<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT quote_asset FROM instruments WHERE symbol = $1")
            .bind(symbol)
            .fetch_optional(db)
            .await?,
    )
}

pub async fn exists(db: impl PgExecutor<'_>, symbol: &str) -> Result<bool> {
    Ok(
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM instruments WHERE symbol = $1)")
            .bind(symbol)
            .fetch_one(db)
            .await?,
    )
}

/// The symbols of `symbols` that are not instruments, in input order.
pub async fn unknown(db: impl PgExecutor<'_>, symbols: &[String]) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT s FROM unnest($1::text[]) WITH ORDINALITY AS u(s, n)
         WHERE NOT EXISTS (SELECT 1 FROM instruments i WHERE i.symbol = u.s)
         ORDER BY n",
    )
    .bind(symbols)
    .fetch_all(db)
    .await?)
}
