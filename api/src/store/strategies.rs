//! `strategies`: which rule runs on which symbols and timeframe.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgExecutor;
use sqlx::types::Json;
use utoipa::ToSchema;

use crate::domain::exits::Exits;
use crate::domain::{StrategyKind, StrategyParams, Timeframe};
use crate::error::{Error, Result};

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Strategy {
    pub id: i64,
    #[schema(example = "btc-sma-10-30")]
    pub name: String,
    #[sqlx(try_from = "String")]
    pub kind: StrategyKind,
    /// Kind-specific parameters, e.g. `{"fast": 10, "slow": 30}`.
    #[schema(value_type = Object)]
    pub params: Json<serde_json::Value>,
    #[schema(example = json!(["BTCUSDT"]))]
    pub symbols: Vec<String>,
    #[sqlx(try_from = "String")]
    pub timeframe: Timeframe,
    pub enabled: bool,
    /// Protective exits copied onto every trade the strategy opens.
    #[schema(value_type = Exits)]
    pub exits: Json<Exits>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Strategy {
    /// The stored parameters, validated again (a row written by an older version may not parse).
    pub fn parsed_params(&self) -> Result<StrategyParams> {
        Ok(StrategyParams::parse(self.kind, &self.params.0)?)
    }
}

/// A validated strategy to store.
#[derive(Debug, Clone)]
pub struct StrategySpec {
    pub name: String,
    pub params: StrategyParams,
    pub symbols: Vec<String>,
    pub timeframe: Timeframe,
    pub enabled: bool,
    pub exits: Exits,
}

fn name_taken(name: &str) -> Error {
    Error::Conflict(format!("a strategy named `{name}` already exists"))
}

pub async fn create(db: impl PgExecutor<'_>, spec: &StrategySpec) -> Result<Strategy> {
    sqlx::query_as(
        "INSERT INTO strategies (name, kind, params, symbols, timeframe, enabled, exits)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (name) DO NOTHING RETURNING *",
    )
    .bind(&spec.name)
    .bind(spec.params.kind().as_str())
    .bind(Json(spec.params.to_json()))
    .bind(&spec.symbols)
    .bind(spec.timeframe.as_str())
    .bind(spec.enabled)
    .bind(Json(&spec.exits))
    .fetch_optional(db)
    .await?
    .ok_or_else(|| name_taken(&spec.name))
}

pub async fn update(db: impl PgExecutor<'_>, id: i64, spec: &StrategySpec) -> Result<Strategy> {
    let result = sqlx::query_as(
        "UPDATE strategies SET name = $2, kind = $3, params = $4, symbols = $5, timeframe = $6,
                enabled = $7, exits = $8, updated_at = now()
         WHERE id = $1 RETURNING *",
    )
    .bind(id)
    .bind(&spec.name)
    .bind(spec.params.kind().as_str())
    .bind(Json(spec.params.to_json()))
    .bind(&spec.symbols)
    .bind(spec.timeframe.as_str())
    .bind(spec.enabled)
    .bind(Json(&spec.exits))
    .fetch_optional(db)
    .await;
    match result {
        Ok(Some(strategy)) => Ok(strategy),
        Ok(None) => Err(Error::not_found(format!("strategy {id}"))),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(name_taken(&spec.name)),
        Err(e) => Err(e.into()),
    }
}

pub async fn set_enabled(db: impl PgExecutor<'_>, id: i64, enabled: bool) -> Result<Strategy> {
    sqlx::query_as(
        "UPDATE strategies SET enabled = $2, updated_at = now() WHERE id = $1 RETURNING *",
    )
    .bind(id)
    .bind(enabled)
    .fetch_optional(db)
    .await?
    .ok_or_else(|| Error::not_found(format!("strategy {id}")))
}

/// The protective exits of strategy `id` (empty when it has none).
pub async fn exits(db: impl PgExecutor<'_>, id: i64) -> Result<Exits> {
    let exits: Option<Json<Exits>> =
        sqlx::query_scalar("SELECT exits FROM strategies WHERE id = $1")
            .bind(id)
            .fetch_optional(db)
            .await?;
    Ok(exits.map(|e| e.0).unwrap_or_default())
}

pub async fn get(db: impl PgExecutor<'_>, id: i64) -> Result<Strategy> {
    sqlx::query_as("SELECT * FROM strategies WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await?
        .ok_or_else(|| Error::not_found(format!("strategy {id}")))
}

pub async fn list(db: impl PgExecutor<'_>, enabled: Option<bool>) -> Result<Vec<Strategy>> {
    Ok(sqlx::query_as(
        "SELECT * FROM strategies WHERE ($1::boolean IS NULL OR enabled = $1) ORDER BY id",
    )
    .bind(enabled)
    .fetch_all(db)
    .await?)
}

/// Deletes a strategy that has never produced a signal; one with history can only be disabled.
pub async fn delete(db: impl PgExecutor<'_>, id: i64) -> Result<()> {
    let result = sqlx::query("DELETE FROM strategies WHERE id = $1")
        .bind(id)
        .execute(db)
        .await;
    match result {
        Ok(r) if r.rows_affected() == 1 => Ok(()),
        Ok(_) => Err(Error::not_found(format!("strategy {id}"))),
        Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => Err(Error::Conflict(
            format!("strategy {id} has signals or trades; disable it instead"),
        )),
        Err(e) => Err(e.into()),
    }
}

/// Creates the strategy unless one with the same name exists (demo seeding).
pub async fn ensure(db: impl PgExecutor<'_>, spec: &StrategySpec) -> Result<()> {
    sqlx::query(
        "INSERT INTO strategies (name, kind, params, symbols, timeframe, enabled, exits)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (name) DO NOTHING",
    )
    .bind(&spec.name)
    .bind(spec.params.kind().as_str())
    .bind(Json(spec.params.to_json()))
    .bind(&spec.symbols)
    .bind(spec.timeframe.as_str())
    .bind(spec.enabled)
    .bind(Json(&spec.exits))
    .execute(db)
    .await?;
    Ok(())
}
