//! `trading-agent backtest`: load, run with a progress bar, print a summary, write JSON.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use chrono::{DateTime, NaiveDate, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use sqlx::ConnectOptions;

use super::{BacktestError, BacktestInput, BacktestReport, Monitor, input};
use crate::config::{BacktestArgs, ConfigError, DatabaseConfig};
use crate::domain::{Symbol, Timeframe};
use crate::error::{Error, Result};

/// A UTC time from RFC 3339 or a plain date (midnight).
pub fn parse_time(text: &str) -> std::result::Result<DateTime<Utc>, String> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| format!("`{text}` is neither RFC 3339 nor YYYY-MM-DD"))
}

fn config(message: String) -> Error {
    Error::Config(ConfigError(message))
}

struct Bar(Option<ProgressBar>);

impl Monitor for Bar {
    fn progress(&mut self, done: u64, total: u64) -> std::result::Result<(), BacktestError> {
        if let Some(bar) = &self.0 {
            bar.set_length(total);
            bar.set_position(done);
        }
        Ok(())
    }
}

pub async fn run(args: BacktestArgs) -> Result<()> {
    let limits = args.risk.validate()?;
    let from = parse_time(&args.from).map_err(|e| config(format!("--from: {e}")))?;
    let to = match &args.to {
        Some(text) => parse_time(text).map_err(|e| config(format!("--to: {e}")))?,
        None => Utc::now(),
    };
    if from >= to {
        return Err(config("--from must be before --to".into()));
    }
    if args.starting_balance <= rust_decimal::Decimal::ZERO {
        return Err(config("--starting-balance must be greater than 0".into()));
    }
    let mut csv: Vec<(String, PathBuf)> = Vec::new();
    for entry in &args.csv {
        let (symbol, path) = entry
            .split_once('=')
            .ok_or_else(|| config(format!("--csv `{entry}` must be SYMBOL=FILE")))?;
        let symbol = Symbol::parse(symbol.trim()).map_err(|e| config(format!("--csv: {e}")))?;
        csv.push((symbol.into_string(), PathBuf::from(path)));
    }
    // The database only when something has to come from it, and then read-only.
    let needs_database = args.strategy_id.is_some() || csv.is_empty();
    let pool = if needs_database {
        let database = args.database.validate()?;
        Some(connect_read_only(&database).await?)
    } else {
        None
    };
    let (mut strategy, strategy_timeframe) = match (
        args.strategy_id,
        &args.strategy_file,
        &args.strategy_definition,
        &pool,
    ) {
        (Some(id), _, _, Some(pool)) => {
            input::from_stored(&crate::store::strategies::get(pool, id).await?)?
        }
        (_, Some(path), _, _) => input::read_definition(path)?,
        (_, _, Some(json), _) => input::parse_definition(json.as_bytes(), "--strategy-definition")?,
        _ => {
            return Err(config(
                "--strategy-id, --strategy-file or --strategy-definition is required".into(),
            ));
        }
    };
    if !args.symbols.is_empty() {
        strategy.symbols = args.symbols.iter().map(|s| s.trim().to_owned()).collect();
    }
    let timeframe: Timeframe = match &args.timeframe {
        Some(text) => text
            .parse()
            .map_err(|e| config(format!("--timeframe: {e}")))?,
        None => strategy_timeframe,
    };
    let strategies = vec![strategy];
    let start = input::warm_up_start(from, timeframe, &strategies);
    let symbols = strategies[0].symbols.clone();
    let mut series = Vec::new();
    let mut from_database = Vec::new();
    for symbol in &symbols {
        match csv.iter().find(|(s, _)| s == symbol) {
            Some((_, path)) => series.push(input::load_csv(path, symbol, timeframe, start, to)?),
            None => from_database.push(symbol.clone()),
        }
    }
    let currency = match &pool {
        Some(pool) if !from_database.is_empty() => {
            series.extend(
                input::load_from_database(
                    pool,
                    &from_database,
                    timeframe,
                    start,
                    to,
                    args.max_candles,
                )
                .await?,
            );
            input::shared_quote_currency(pool, &symbols).await?
        }
        _ if !from_database.is_empty() => {
            return Err(config(format!(
                "no --csv for {} and no database to read them from",
                from_database.join(", ")
            )));
        }
        _ => args.quote_currency.clone(),
    };
    if let Some(pool) = pool {
        pool.close().await;
    }
    let candles: u64 = series.iter().map(|s| s.candles.len() as u64).sum();
    if candles > args.max_candles {
        return Err(input::too_many(candles, args.max_candles));
    }
    let backtest = BacktestInput {
        strategies,
        timeframe,
        series,
        from,
        to,
        limits,
        currency,
        starting_balance: args.starting_balance,
    };
    let bar = (!args.no_progress && std::io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::new(0);
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} backtest [{bar:40}] {pos}/{len} steps, {per_sec}, eta {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar
    });
    let mut monitor = Bar(bar);
    let started = std::time::Instant::now();
    let report = tokio::task::block_in_place(|| super::run(&backtest, &mut monitor))
        .map_err(|e| Error::invalid("backtest", e.to_string()))?;
    if let Some(bar) = monitor.0 {
        bar.finish_and_clear();
    }
    let elapsed = started.elapsed();
    if let Some(path) = &args.summary_file {
        let text = serde_json::to_vec(&ShortSummary::of(&report.summary))
            .map_err(std::io::Error::other)?;
        std::fs::write(path, text).map_err(|e| {
            std::io::Error::new(e.kind(), format!("--summary-file {}: {e}", path.display()))
        })?;
    }
    match args.output.as_deref() {
        Some(path) if path.as_os_str() == "-" => {
            let mut out = std::io::stdout().lock();
            serde_json::to_writer(&mut out, &report).map_err(std::io::Error::other)?;
            writeln!(out)?;
        }
        Some(path) => {
            let file = std::fs::File::create(path)?;
            let mut writer = std::io::BufWriter::new(file);
            serde_json::to_writer(&mut writer, &report).map_err(std::io::Error::other)?;
            writer.flush()?;
            print!("{}", summary_text(&backtest, &report, elapsed));
            println!("written to {}", path.display());
        }
        None => print!("{}", summary_text(&backtest, &report, elapsed)),
    }
    Ok(())
}

/// Connects without running migrations, every transaction read-only
/// (`default_transaction_read_only=on` in the connection's startup options): a backtest reads
/// strategies and candles and never writes, so PostgreSQL refuses any write it might attempt
/// (SQLSTATE 25006).
pub async fn connect_read_only(database: &DatabaseConfig) -> Result<sqlx::PgPool> {
    let options = database
        .options
        .clone()
        .options([("default_transaction_read_only", "on")])
        .disable_statement_logging();
    Ok(sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect_with(options)
        .await?)
}

/// Most bytes of [`ShortSummary`] as JSON: what Kubernetes keeps of a termination message.
pub const SHORT_SUMMARY_MAX_BYTES: usize = 4096;

/// The headline figures of a run, as `--summary-file` writes them (fixed fields, no per-pair
/// table, so always far below [`SHORT_SUMMARY_MAX_BYTES`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShortSummary {
    pub closed_trades: u64,
    pub open_trades: u64,
    pub wins: u64,
    pub losses: u64,
    pub win_rate: Option<f64>,
    /// Realised profit net of fees, in `currency`, as a decimal string.
    pub profit: String,
    pub profit_ratio: f64,
    pub currency: String,
    pub max_drawdown: f64,
    pub profit_factor: Option<f64>,
    pub final_equity: String,
    pub candles: u64,
    pub steps: u64,
}

impl ShortSummary {
    pub fn of(summary: &super::Summary) -> Self {
        Self {
            closed_trades: summary.closed_trades,
            open_trades: summary.open_trades,
            wins: summary.wins,
            losses: summary.losses,
            win_rate: summary.win_rate,
            profit: summary.total_profit.normalize().to_string(),
            profit_ratio: summary.total_profit_ratio,
            currency: summary.currency.chars().take(16).collect(),
            max_drawdown: summary.max_drawdown,
            profit_factor: summary.profit_factor,
            final_equity: summary.final_equity.normalize().to_string(),
            candles: summary.candles,
            steps: summary.steps,
        }
    }
}

fn percent(value: Option<f64>) -> String {
    value.map_or_else(|| "-".into(), |v| format!("{:.2} %", v * 100.0))
}

fn number(value: Option<f64>) -> String {
    value.map_or_else(|| "-".into(), |v| format!("{v:.3}"))
}

/// The readable summary printed on the terminal.
pub fn summary_text(
    input: &BacktestInput,
    report: &BacktestReport,
    elapsed: std::time::Duration,
) -> String {
    let s = &report.summary;
    let names: Vec<&str> = input.strategies.iter().map(|s| s.name.as_str()).collect();
    let mut text = format!(
        "backtest of {} on {} {} from {} to {}\n\
         {} candles, {} steps in {:.2} s\n\n\
         trades        {} closed, {} open ({} signals; rejected: {})\n\
         profit        {} {} ({}), final equity {}\n\
         win rate      {}   profit factor {}\n\
         max drawdown  {} ({} {})\n\
         sharpe        {}   sortino {}   exposure {}\n",
        names.join(", "),
        input.timeframe,
        s.per_pair.keys().cloned().collect::<Vec<_>>().join(","),
        input.from.to_rfc3339(),
        input.to.to_rfc3339(),
        s.candles,
        s.steps,
        elapsed.as_secs_f64(),
        s.closed_trades,
        s.open_trades,
        s.signals,
        if s.rejected.is_empty() {
            "none".to_owned()
        } else {
            s.rejected
                .iter()
                .map(|(code, n)| format!("{code} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        },
        s.total_profit.round_dp(2),
        s.currency,
        percent(Some(s.total_profit_ratio)),
        s.final_equity.round_dp(2),
        percent(s.win_rate),
        number(s.profit_factor),
        percent(Some(s.max_drawdown)),
        s.max_drawdown_abs.round_dp(2),
        s.currency,
        number(s.sharpe),
        number(s.sortino),
        percent(Some(s.exposure)),
    );
    if !s.per_pair.is_empty() {
        text.push_str("\npair          trades  wins  profit\n");
        for (pair, p) in &s.per_pair {
            text.push_str(&format!(
                "{pair:<13} {:>6} {:>5}  {}\n",
                p.trades,
                p.wins,
                p.profit.round_dp(2)
            ));
        }
    }
    text
}
