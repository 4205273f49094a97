//! Where a backtest's strategies and candles come from: a stored strategy or a definition file
//! (the JSON body of `POST /api/v2/strategies`), and candles from PostgreSQL or CSV files.

use std::path::Path;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::{BacktestStrategy, Series};
use crate::domain::{Invalid, Timeframe, market};
use crate::error::{Error, Result};
use crate::http::strategies::StrategyInput;
use crate::store::{self, strategies::Strategy};

/// A stored strategy, ready to run (its parameters validated again).
pub fn from_stored(strategy: &Strategy) -> Result<(BacktestStrategy, Timeframe)> {
    Ok((
        BacktestStrategy {
            id: strategy.id,
            name: strategy.name.clone(),
            params: strategy.parsed_params()?,
            exits: strategy.exits.0.clone(),
            symbols: strategy.symbols.clone(),
        },
        strategy.timeframe,
    ))
}

/// A strategy definition (the body of `POST /api/v2/strategies`), validated the same way.
pub fn from_definition(definition: StrategyInput) -> Result<(BacktestStrategy, Timeframe)> {
    let spec = definition.validate()?;
    Ok((
        BacktestStrategy {
            id: 0,
            name: spec.name,
            params: spec.params,
            exits: spec.exits,
            symbols: spec.symbols,
        },
        spec.timeframe,
    ))
}

/// Reads a strategy definition file.
pub fn read_definition(path: &Path) -> Result<(BacktestStrategy, Timeframe)> {
    let text = std::fs::read(path).map_err(|e| io_error(path, e))?;
    parse_definition(&text, &format!("strategy file {}", path.display()))
}

/// Parses a strategy definition (JSON) that came from `source` (named in the error).
pub fn parse_definition(text: &[u8], source: &str) -> Result<(BacktestStrategy, Timeframe)> {
    let definition: StrategyInput = serde_json::from_slice(text)
        .map_err(|e| Error::Invalid(Invalid::new(source, e.to_string())))?;
    from_definition(definition)
}

fn io_error(path: &Path, e: std::io::Error) -> Error {
    Error::Io(std::io::Error::new(
        e.kind(),
        format!("{}: {e}", path.display()),
    ))
}

/// Where the candles the strategies read start: `lookback` candles before `from` warm the
/// indicators up, as the runner's window would hold them at the first decision.
pub fn warm_up_start(
    from: DateTime<Utc>,
    timeframe: Timeframe,
    strategies: &[BacktestStrategy],
) -> DateTime<Utc> {
    let lookback = strategies
        .iter()
        .map(|s| s.params.lookback())
        .max()
        .unwrap_or(0);
    i32::try_from(lookback)
        .ok()
        .and_then(|n| from.checked_sub_signed(timeframe.duration() * n))
        .unwrap_or(from)
}

/// Candles of `symbols` opening in `[start, to)` from PostgreSQL, refused above `max_candles`
/// before anything is loaded.
pub async fn load_from_database(
    pool: &PgPool,
    symbols: &[String],
    timeframe: Timeframe,
    start: DateTime<Utc>,
    to: DateTime<Utc>,
    max_candles: u64,
) -> Result<Vec<Series>> {
    let count = store::candles::count_between(pool, symbols, timeframe, start, to).await?;
    if u64::try_from(count).unwrap_or(u64::MAX) > max_candles {
        return Err(too_many(count, max_candles));
    }
    let mut series = Vec::with_capacity(symbols.len());
    for symbol in symbols {
        let candles = store::candles::closes_between(pool, symbol, timeframe, start, to).await?;
        series.push(Series {
            symbol: symbol.clone(),
            candles,
        });
    }
    Ok(series)
}

pub fn too_many(count: impl std::fmt::Display, max_candles: u64) -> Error {
    Error::invalid(
        "candles",
        format!(
            "the backtest would read {count} candles, more than the limit of {max_candles}; \
             narrow the time range or the symbols (or raise BACKTEST_MAX_CANDLES)"
        ),
    )
}

/// The quote currency every symbol shares (a backtest keeps one wallet currency).
pub async fn shared_quote_currency(pool: &PgPool, symbols: &[String]) -> Result<String> {
    let mut currency: Option<String> = None;
    for symbol in symbols {
        let quote = store::instruments::quote_asset(pool, symbol)
            .await?
            .ok_or_else(|| Error::invalid("symbols", format!("unknown instrument `{symbol}`")))?;
        match &currency {
            Some(c) if *c != quote => {
                return Err(Error::invalid(
                    "symbols",
                    format!("all symbols must share one quote currency ({c} and {quote})"),
                ));
            }
            _ => currency = Some(quote),
        }
    }
    currency.ok_or_else(|| Error::invalid("symbols", "no symbol to backtest"))
}

/// Candles of one symbol from a CSV file (the format of `import-candles`, validated the same
/// way), those opening in `[start, to)`.
pub fn load_csv(
    path: &Path,
    symbol: &str,
    timeframe: Timeframe,
    start: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Series> {
    let data = std::fs::read(path).map_err(|e| io_error(path, e))?;
    let mut candles: Vec<(DateTime<Utc>, rust_decimal::Decimal)> =
        market::parse_csv(&data, timeframe, Utc::now())
            .map_err(|e| e.within(&path.display().to_string()))?
            .into_iter()
            .filter(|c| c.open_time >= start && c.open_time < to)
            .map(|c| (c.open_time, c.close))
            .collect();
    // A file may list candles in any order; the last row for an open time wins, as an upsert would.
    candles.reverse();
    candles.sort_by_key(|(t, _)| *t);
    candles.dedup_by_key(|(t, _)| *t);
    Ok(Series {
        symbol: symbol.to_owned(),
        candles,
    })
}
