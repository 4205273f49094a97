//! Command line and environment: every role's settings, parsed by clap and then validated into plain
//! config structs, so a bad setting stops the process at start with a message that names it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use rust_decimal::Decimal;
use sqlx::postgres::PgConnectOptions;

use crate::domain::{RiskLimits, Symbol, Timeframe};

/// `trading-agent`: one binary, three long-running roles and a few maintenance commands.
#[derive(Debug, Parser)]
#[command(name = "trading-agent", version, about, propagate_version = true)]
pub struct Cli {
    /// Log format: human-readable text or one JSON object per line.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    /// Log filter, in `tracing` EnvFilter syntax (e.g. `info` or `info,trading_agent=debug`).
    #[arg(long, env = "LOG_LEVEL", default_value = "info", global = true)]
    pub log_level: String,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the REST API under /api/v2 (plus /docs, /openapi.json and the probes).
    Api(ApiArgs),
    /// Run the bot: turn new signals into paper orders and trades, deliver notifications.
    Bot(BotArgs),
    /// Run the strategy runner: compute indicators on closed candles and write signals.
    Strategy(StrategyArgs),
    /// Apply the embedded database migrations and exit.
    Migrate(DatabaseArgs),
    /// Import candles for one instrument and timeframe from a CSV file and exit.
    ImportCandles(ImportArgs),
    /// Create demo instruments, strategies and a synthetic candle history, then exit.
    SeedDemo(SeedDemoArgs),
    /// Replay closed candles through the strategy runner's and the bot's own code; print a
    /// summary and write the trades, figures and equity curve as JSON.
    #[command(after_help = BACKTEST_EXAMPLES)]
    Backtest(BacktestArgs),
}

const BACKTEST_EXAMPLES: &str = "Examples:
  trading-agent backtest --strategy-id 3 --from 2025-01-01 --to 2025-07-01 --output bt.json
  trading-agent backtest --strategy-file sma.json --csv BTCUSDT=btc-5m.csv --csv ETHUSDT=eth-5m.csv \\
      --from 2025-01-01 --to 2026-01-01 --quote-currency USDT

A strategy file is the JSON body of POST /api/v2/strategies:
  {\"name\": \"sma\", \"kind\": \"sma_cross\", \"params\": {\"fast\": 10, \"slow\": 30},
   \"symbols\": [\"BTCUSDT\"], \"timeframe\": \"5m\", \"exits\": {\"stop_loss\": \"0.05\"}}
Candles from CSV need no database: the header row names open_time,open,high,low,close,volume.";

#[derive(Debug, Clone, Args)]
pub struct BacktestArgs {
    /// The stored strategy to run (needs the database).
    #[arg(
        long,
        conflicts_with_all = ["strategy_file", "strategy_definition"],
        required_unless_present_any = ["strategy_file", "strategy_definition"]
    )]
    pub strategy_id: Option<i64>,

    /// A strategy definition file (the JSON body of POST /api/v2/strategies).
    #[arg(long, value_name = "FILE", conflicts_with = "strategy_definition")]
    pub strategy_file: Option<std::path::PathBuf>,

    /// A strategy definition given inline, as JSON (the same shape as --strategy-file; what the
    /// operator's Backtest Jobs pass).
    #[arg(long, value_name = "JSON", env = "BACKTEST_STRATEGY")]
    pub strategy_definition: Option<String>,

    /// Symbols to run on, comma-separated (default: the strategy's).
    #[arg(long, value_delimiter = ',')]
    pub symbols: Vec<String>,

    /// Timeframe of the candles (default: the strategy's): 1m, 5m, 15m, 30m, 1h, 4h or 1d.
    #[arg(long)]
    pub timeframe: Option<String>,

    /// First candle open time to decide on (RFC 3339 or YYYY-MM-DD, UTC); the candles before it
    /// that the strategy reads warm the indicators up.
    #[arg(long)]
    pub from: String,

    /// End of the range (exclusive; RFC 3339 or YYYY-MM-DD, UTC; default: now).
    #[arg(long)]
    pub to: Option<String>,

    /// Read a symbol's candles from a CSV file instead of the database: SYMBOL=FILE, repeatable.
    /// With every symbol from CSV and a strategy file, no database is needed.
    #[arg(long, value_name = "SYMBOL=FILE")]
    pub csv: Vec<String>,

    /// Quote currency of the symbols when no database names it (CSV only).
    #[arg(long, default_value = "USDT")]
    pub quote_currency: String,

    /// Cash in the quote currency at the start.
    #[arg(long, default_value = "10000")]
    pub starting_balance: Decimal,

    /// Write the result (summary, trades, equity curve) as JSON to this file (`-`: standard output,
    /// instead of the summary).
    #[arg(long, value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,

    /// Also write a short JSON summary (trades, profit, drawdown, win rate; at most 4 KiB) to this
    /// file: a Kubernetes container's termination message (`/dev/termination-log`).
    #[arg(long, value_name = "FILE")]
    pub summary_file: Option<std::path::PathBuf>,

    /// No progress bar (it is drawn on standard error only when that is a terminal).
    #[arg(long, default_value_t = false)]
    pub no_progress: bool,

    /// Most candles one backtest reads (a memory bound: about 40 bytes each).
    #[arg(long, env = "BACKTEST_MAX_CANDLES", default_value_t = 20_000_000)]
    pub max_candles: u64,

    #[command(flatten)]
    pub risk: RiskArgs,

    #[command(flatten)]
    pub database: DatabaseArgs,
}

/// Which long-running role this process runs (the `api`, `bot` or `strategy` command).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Api,
    Bot,
    Strategy,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Api => "api",
            Role::Bot => "bot",
            Role::Strategy => "strategy",
        }
    }
}

/// How to reach PostgreSQL.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// PostgreSQL URL, e.g. postgres://user:password@host:5432/db
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Size of the connection pool.
    #[arg(long, env = "DB_MAX_CONNECTIONS", default_value_t = 10)]
    pub db_max_connections: u32,
}

/// Settings shared by every long-running role.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// TCP port for HTTP (the API for `api`; probes and metrics for every role).
    #[arg(long, env = "PORT", default_value_t = 8000)]
    pub port: u16,

    /// Address to listen on.
    #[arg(long, env = "BIND_ADDRESS", default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED))]
    pub bind_address: IpAddr,

    /// Do not apply migrations at start (when a separate `migrate` job does it).
    #[arg(long, env = "SKIP_MIGRATIONS", default_value_t = false)]
    pub skip_migrations: bool,

    #[command(flatten)]
    pub database: DatabaseArgs,
}

#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    #[command(flatten)]
    pub serve: ServeArgs,

    /// Bearer token that every request under /api/v2 (except /api/v2/version) must carry.
    #[arg(long, env = "API_TOKEN", hide_env_values = true, value_parser = parse_secret)]
    pub api_token: Option<Secret>,

    /// After SIGTERM: how long /readyz answers 503 while requests are still served, so that load
    /// balancers stop sending traffic before the listener closes. A second signal skips it.
    #[arg(long, env = "SHUTDOWN_DELAY", default_value = "5s", value_parser = parse_duration)]
    pub shutdown_delay: Duration,

    /// Most candles one backtest of POST /api/v2/backtests reads (memory: about 40 bytes each
    /// while it runs); a larger request is refused with 422.
    #[arg(long, env = "BACKTEST_MAX_CANDLES", default_value_t = 5_000_000)]
    pub backtest_max_candles: u64,

    /// Longest run of one backtest (loading included); a longer one stops and is stored `failed`.
    #[arg(long, env = "BACKTEST_TIME_LIMIT", default_value = "10m", value_parser = parse_duration)]
    pub backtest_time_limit: Duration,

    /// Backtests one api process runs at once; more are refused with 409.
    #[arg(long, env = "BACKTEST_CONCURRENCY", default_value_t = 1)]
    pub backtest_concurrency: usize,
}

/// Settings of a worker loop.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub serve: ServeArgs,

    /// Time between two ticks of the loop.
    #[arg(long, env = "TICK_INTERVAL", value_parser = parse_duration)]
    pub tick_interval: Option<Duration>,

    /// /healthz answers 503 when no tick has completed for this many intervals (at least 10 s).
    #[arg(long, env = "STALL_INTERVALS", default_value_t = 5)]
    pub stall_intervals: u32,

    /// Name of this instance in the component-health table (defaults to the host name, i.e. the pod name).
    #[arg(long, env = "INSTANCE_NAME")]
    pub instance_name: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct BotArgs {
    #[command(flatten)]
    pub worker: WorkerArgs,

    #[command(flatten)]
    pub risk: RiskArgs,

    /// Webhook that receives notifications (JSON POST); none: notifications stay in the feed only.
    /// Such URLs often carry a secret: --help never shows the value.
    #[arg(long, env = "NOTIFY_WEBHOOK_URL", hide_env_values = true, value_parser = parse_secret)]
    pub webhook_url: Option<Secret>,

    /// First retry delay of a failed webhook delivery; it doubles per attempt (capped at 10 min).
    #[arg(long, env = "NOTIFY_RETRY_BASE", default_value = "2s", value_parser = parse_duration)]
    pub webhook_retry_base: Duration,

    /// Delivery attempts before a notification is given up.
    #[arg(long, env = "NOTIFY_MAX_ATTEMPTS", default_value_t = 10)]
    pub webhook_max_attempts: u32,

    /// Paper trading's starting wallet, per quote currency: `USDT=10000,BTC=0.5`. Each currency the
    /// wallet does not hold yet is added once; a held one is never reset. (Without it, the wallet
    /// is the 10000 USDT the schema starts with.)
    #[arg(long, env = "STARTING_WALLET", value_delimiter = ',')]
    pub starting_wallet: Vec<String>,

    /// Fault injection for crash-recovery tests: `crash-after-claim` aborts the process after a
    /// signal has been claimed and before its transaction commits.
    #[arg(long, env = "TRADING_AGENT_FAULT", hide = true)]
    pub fault: Option<Fault>,
}

/// The bot's risk limits and paper exchange (shared by `bot` and `backtest`).
#[derive(Debug, Clone, Args)]
pub struct RiskArgs {
    /// Quote-currency amount put into each new trade.
    #[arg(long, env = "STAKE_AMOUNT", default_value = "100")]
    pub stake_amount: Decimal,

    /// Most trades open at once.
    #[arg(long, env = "MAX_OPEN_TRADES", default_value_t = 5)]
    pub max_open_trades: u32,

    /// Largest notional (price x quantity) of one order, in the quote currency.
    #[arg(long, env = "MAX_NOTIONAL", default_value = "1000")]
    pub max_notional: Decimal,

    /// New entries stop for the rest of the UTC day once realised losses reach this amount.
    #[arg(long, env = "DAILY_LOSS_LIMIT", default_value = "500")]
    pub daily_loss_limit: Decimal,

    /// Fee rate of the paper exchange, as a fraction of notional (0.001 = 0.1 %).
    #[arg(long, env = "FEE_RATE", default_value = "0.001")]
    pub fee_rate: Decimal,

    /// Slippage of the paper exchange in basis points (against us on both sides).
    #[arg(long, env = "SLIPPAGE_BPS", default_value = "5")]
    pub slippage_bps: Decimal,

    /// Entry signals older than this are rejected as stale instead of executed (exits always run).
    #[arg(long, env = "MAX_SIGNAL_AGE", default_value = "15m", value_parser = parse_duration)]
    pub max_signal_age: Duration,

    /// Manual orders and protective exits fill at the latest candle close only if that candle
    /// closed at most this long ago.
    #[arg(long, env = "MAX_PRICE_AGE", default_value = "5m", value_parser = parse_duration)]
    pub max_price_age: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Fault {
    CrashAfterClaim,
}

#[derive(Debug, Clone, Args)]
pub struct StrategyArgs {
    #[command(flatten)]
    pub worker: WorkerArgs,

    /// Also write a deterministic synthetic price feed for the demo symbols each tick (no network).
    #[arg(long, env = "DEMO_FEED", default_value_t = false)]
    pub demo_feed: bool,

    /// A closed candle that the feed has not declared final (`"final": true` on PUT /candles) is
    /// used once this long has passed after its close.
    #[arg(long, env = "CANDLE_GRACE", default_value = "10s", value_parser = parse_duration)]
    pub candle_grace: Duration,

    #[command(flatten)]
    pub demo: DemoArgs,
}

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Symbols of the synthetic demo feed.
    #[arg(
        long,
        env = "DEMO_SYMBOLS",
        value_delimiter = ',',
        default_value = "BTCUSDT,ETHUSDT"
    )]
    pub demo_symbols: Vec<String>,

    /// Timeframe of the synthetic demo feed.
    #[arg(long, env = "DEMO_TIMEFRAME", default_value = "1m")]
    pub demo_timeframe: String,
}

#[derive(Debug, Clone, Args)]
pub struct SeedDemoArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,

    #[command(flatten)]
    pub demo: DemoArgs,

    /// Number of closed candles of history to write per symbol (500: more than the demo
    /// strategies read, RSI(14)'s 420 with its warm-up included).
    #[arg(long, default_value_t = 500)]
    pub history: u32,
}

#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,

    /// CSV file with a header row: open_time,open,high,low,close,volume
    #[arg(long)]
    pub file: std::path::PathBuf,

    /// Instrument symbol (must exist).
    #[arg(long)]
    pub symbol: String,

    /// Timeframe of the candles: 1m, 5m, 15m, 30m, 1h, 4h or 1d.
    #[arg(long)]
    pub timeframe: String,
}

/// A setting that cannot work: the process exits with status 2 and this message.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

fn invalid(message: impl Into<String>) -> ConfigError {
    ConfigError(message.into())
}

/// Validated database settings.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    pub options: PgConnectOptions,
    pub max_connections: u32,
}

impl DatabaseArgs {
    pub fn validate(&self) -> Result<DatabaseConfig, ConfigError> {
        let url = self
            .database_url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .ok_or_else(|| invalid("DATABASE_URL is not set (use --database-url or the DATABASE_URL environment variable)"))?;
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(invalid(
                "DATABASE_URL must start with postgres:// or postgresql://",
            ));
        }
        // The parser's message can quote the URL, password included: keep it out of the output.
        let options = PgConnectOptions::from_str(url)
            .map_err(|_| invalid("DATABASE_URL is not a valid PostgreSQL URL"))?;
        if !(1..=1000).contains(&self.db_max_connections) {
            return Err(invalid("DB_MAX_CONNECTIONS must be between 1 and 1000"));
        }
        Ok(DatabaseConfig {
            options: options.application_name("trading-agent"),
            max_connections: self.db_max_connections,
        })
    }
}

/// Validated settings of a long-running role's HTTP side and database.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub run_migrations: bool,
    pub database: DatabaseConfig,
}

impl ServeArgs {
    pub fn validate(&self) -> Result<ServeConfig, ConfigError> {
        Ok(ServeConfig {
            listen: SocketAddr::new(self.bind_address, self.port),
            run_migrations: !self.skip_migrations,
            database: self.database.validate()?,
        })
    }
}

/// A secret setting: `Debug` and logs show `<redacted>`, never the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for the one place that needs it (comparing a request's bearer token).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret::new(value)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub serve: ServeConfig,
    pub api_token: Secret,
    pub shutdown_delay: Duration,
    pub backtests: crate::backtest::job::BacktestLimits,
}

/// Shortest bearer token accepted: shorter ones are guessable.
pub const MIN_TOKEN_LEN: usize = 16;

impl ApiArgs {
    pub fn validate(&self) -> Result<ApiConfig, ConfigError> {
        let serve = self.serve.validate()?;
        let token = self
            .api_token
            .as_ref()
            .map(Secret::expose)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                invalid(
                    "API_TOKEN is not set (use --api-token or the API_TOKEN environment variable)",
                )
            })?;
        if token.len() < MIN_TOKEN_LEN {
            return Err(invalid(format!(
                "API_TOKEN must be at least {MIN_TOKEN_LEN} characters long"
            )));
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid("API_TOKEN must be printable ASCII without spaces"));
        }
        if self.shutdown_delay > Duration::from_secs(300) {
            return Err(invalid("SHUTDOWN_DELAY must be at most 5m"));
        }
        if !(1..=1_000_000_000).contains(&self.backtest_max_candles) {
            return Err(invalid(
                "BACKTEST_MAX_CANDLES must be between 1 and 1000000000",
            ));
        }
        if self.backtest_time_limit < Duration::from_secs(1) {
            return Err(invalid("BACKTEST_TIME_LIMIT must be at least 1s"));
        }
        if !(1..=64).contains(&self.backtest_concurrency) {
            return Err(invalid("BACKTEST_CONCURRENCY must be between 1 and 64"));
        }
        Ok(ApiConfig {
            serve,
            api_token: Secret::new(token),
            shutdown_delay: self.shutdown_delay,
            backtests: crate::backtest::job::BacktestLimits {
                max_candles: self.backtest_max_candles,
                time_limit: self.backtest_time_limit,
                concurrency: self.backtest_concurrency,
            },
        })
    }
}

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub serve: ServeConfig,
    pub tick_interval: Duration,
    /// No completed tick for this long: /healthz answers 503.
    pub stall_after: Duration,
    pub instance: String,
}

impl WorkerArgs {
    fn validate(&self, default_interval: Duration) -> Result<WorkerConfig, ConfigError> {
        let serve = self.serve.validate()?;
        let tick_interval = self.tick_interval.unwrap_or(default_interval);
        if tick_interval < Duration::from_millis(100) || tick_interval > Duration::from_secs(3600) {
            return Err(invalid("TICK_INTERVAL must be between 100ms and 1h"));
        }
        if !(2..=100).contains(&self.stall_intervals) {
            return Err(invalid("STALL_INTERVALS must be between 2 and 100"));
        }
        let stall_after = (tick_interval * self.stall_intervals).max(Duration::from_secs(10));
        let instance = match &self.instance_name {
            Some(name) if !name.trim().is_empty() => name.trim().to_owned(),
            Some(_) => return Err(invalid("INSTANCE_NAME must not be blank")),
            None => std::env::var("HOSTNAME")
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| format!("pid-{}", std::process::id())),
        };
        Ok(WorkerConfig {
            serve,
            tick_interval,
            stall_after,
            instance,
        })
    }
}

#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub url: Secret,
    pub retry_base: Duration,
    pub max_attempts: u32,
}

#[derive(Debug, Clone)]
pub struct BotConfig {
    pub worker: WorkerConfig,
    pub limits: RiskLimits,
    pub starting_wallet: Vec<(String, Decimal)>,
    pub webhook: Option<WebhookConfig>,
    pub fault: Option<Fault>,
}

impl BotArgs {
    pub fn validate(&self) -> Result<BotConfig, ConfigError> {
        let worker = self.worker.validate(Duration::from_secs(2))?;
        let limits = self.risk.validate()?;
        let webhook = match self.webhook_url.as_ref().map(|u| u.expose().trim()) {
            None | Some("") => None,
            Some(url) => {
                let parsed = reqwest::Url::parse(url)
                    .map_err(|e| invalid(format!("NOTIFY_WEBHOOK_URL is not a valid URL: {e}")))?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    return Err(invalid(
                        "NOTIFY_WEBHOOK_URL must be an http:// or https:// URL",
                    ));
                }
                if !(1..=100).contains(&self.webhook_max_attempts) {
                    return Err(invalid("NOTIFY_MAX_ATTEMPTS must be between 1 and 100"));
                }
                Some(WebhookConfig {
                    url: Secret::new(url),
                    retry_base: self.webhook_retry_base.max(Duration::from_millis(10)),
                    max_attempts: self.webhook_max_attempts,
                })
            }
        };
        let mut starting_wallet: Vec<(String, Decimal)> = Vec::new();
        for entry in self
            .starting_wallet
            .iter()
            .map(|e| e.trim())
            .filter(|e| !e.is_empty())
        {
            let bad = || {
                invalid(format!(
                    "STARTING_WALLET entry `{entry}` must be CURRENCY=AMOUNT, e.g. USDT=10000"
                ))
            };
            let (currency, amount) = entry.split_once('=').ok_or_else(bad)?;
            let currency = currency.trim();
            if currency.is_empty()
                || currency.len() > 16
                || !currency
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
            {
                return Err(invalid(format!(
                    "STARTING_WALLET currency `{currency}` must be 1-16 upper-case letters or digits"
                )));
            }
            let amount: Decimal = amount.trim().parse().map_err(|_| bad())?;
            if amount.is_sign_negative() || amount > max_amount() {
                return Err(invalid(format!(
                    "STARTING_WALLET amount of {currency} must be between 0 and {}",
                    max_amount()
                )));
            }
            if starting_wallet.iter().any(|(c, _)| c == currency) {
                return Err(invalid(format!("STARTING_WALLET names {currency} twice")));
            }
            starting_wallet.push((currency.to_owned(), amount));
        }
        Ok(BotConfig {
            worker,
            starting_wallet,
            limits,
            webhook,
            fault: self.fault,
        })
    }
}

impl RiskArgs {
    pub fn validate(&self) -> Result<RiskLimits, ConfigError> {
        if self.stake_amount <= Decimal::ZERO {
            return Err(invalid("STAKE_AMOUNT must be greater than 0"));
        }
        if self.max_notional <= Decimal::ZERO || self.max_notional > max_amount() {
            return Err(invalid(format!(
                "MAX_NOTIONAL must be greater than 0 and at most {}",
                max_amount()
            )));
        }
        if self.stake_amount > self.max_notional {
            return Err(invalid("STAKE_AMOUNT must not exceed MAX_NOTIONAL"));
        }
        if !(1..=10_000).contains(&self.max_open_trades) {
            return Err(invalid("MAX_OPEN_TRADES must be between 1 and 10000"));
        }
        if self.daily_loss_limit <= Decimal::ZERO || self.daily_loss_limit > max_amount() {
            return Err(invalid(format!(
                "DAILY_LOSS_LIMIT must be greater than 0 and at most {}",
                max_amount()
            )));
        }
        if self.fee_rate < Decimal::ZERO || self.fee_rate >= Decimal::new(1, 1) {
            return Err(invalid("FEE_RATE must be at least 0 and below 0.1"));
        }
        if self.slippage_bps < Decimal::ZERO || self.slippage_bps > Decimal::from(1000) {
            return Err(invalid("SLIPPAGE_BPS must be between 0 and 1000"));
        }
        if self.max_signal_age < Duration::from_secs(1) {
            return Err(invalid("MAX_SIGNAL_AGE must be at least 1s"));
        }
        if self.max_price_age < Duration::from_secs(1) {
            return Err(invalid("MAX_PRICE_AGE must be at least 1s"));
        }
        Ok(RiskLimits {
            stake_amount: self.stake_amount,
            max_open_trades: self.max_open_trades,
            max_notional: self.max_notional,
            daily_loss_limit: self.daily_loss_limit,
            fee_rate: self.fee_rate,
            slippage_bps: self.slippage_bps,
            max_signal_age: chrono::Duration::from_std(self.max_signal_age)
                .map_err(|_| invalid("MAX_SIGNAL_AGE is too large"))?,
            max_price_age: chrono::Duration::from_std(self.max_price_age)
                .map_err(|_| invalid("MAX_PRICE_AGE is too large"))?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct DemoConfig {
    pub symbols: Vec<Symbol>,
    pub timeframe: Timeframe,
}

impl DemoArgs {
    pub fn validate(&self) -> Result<DemoConfig, ConfigError> {
        let symbols = self
            .demo_symbols
            .iter()
            .map(|s| Symbol::parse(s.trim()).map_err(|e| invalid(format!("DEMO_SYMBOLS: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        if symbols.is_empty() {
            return Err(invalid("DEMO_SYMBOLS must name at least one symbol"));
        }
        let timeframe = Timeframe::from_str(&self.demo_timeframe)
            .map_err(|e| invalid(format!("DEMO_TIMEFRAME: {e}")))?;
        Ok(DemoConfig { symbols, timeframe })
    }
}

#[derive(Debug, Clone)]
pub struct StrategyConfig {
    pub worker: WorkerConfig,
    pub candle_grace: chrono::Duration,
    pub demo_feed: Option<DemoConfig>,
}

impl StrategyArgs {
    pub fn validate(&self) -> Result<StrategyConfig, ConfigError> {
        if self.candle_grace > Duration::from_secs(86_400) {
            return Err(invalid("CANDLE_GRACE must be at most 24h"));
        }
        Ok(StrategyConfig {
            worker: self.worker.validate(Duration::from_secs(10))?,
            candle_grace: chrono::Duration::from_std(self.candle_grace)
                .map_err(|_| invalid("CANDLE_GRACE is too large"))?,
            demo_feed: if self.demo_feed {
                Some(self.demo.validate()?)
            } else {
                None
            },
        })
    }
}

/// Largest amount a limit or a manual stake may name (10^12 quote units): far below where decimal
/// arithmetic on it could overflow.
pub fn max_amount() -> Decimal {
    Decimal::from(1_000_000_000_000_i64)
}

fn parse_secret(text: &str) -> Result<Secret, String> {
    Ok(Secret::new(text))
}

/// Parses `250ms`, `5s`, `2m`, `1h` (a bare number means seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (examples: 500ms, 5s, 2m, 1h)"))?;
    let duration = match unit {
        "ms" => Duration::from_millis(value),
        "" | "s" => Duration::from_secs(value),
        "m" => Duration::from_secs(value.saturating_mul(60)),
        "h" => Duration::from_secs(value.saturating_mul(3600)),
        _ => {
            return Err(format!("`{text}` has an unknown unit (use ms, s, m or h)"));
        }
    };
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(args).expect("parses")
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("5 minutes").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn api_requires_database_url_and_a_long_token() {
        let Command::Api(args) = parse(&["trading-agent", "api"]).command else {
            panic!("api");
        };
        let mut args = ApiArgs {
            serve: ServeArgs {
                database: DatabaseArgs {
                    database_url: None,
                    ..args.serve.database
                },
                ..args.serve
            },
            api_token: None,
            ..args
        };
        let err = args.validate().unwrap_err().to_string();
        assert!(err.contains("DATABASE_URL is not set"), "{err}");

        args.serve.database.database_url = Some("mysql://x".into());
        let err = args.validate().unwrap_err().to_string();
        assert!(err.contains("postgres://"), "{err}");

        args.serve.database.database_url = Some("postgres://u:secret@db:5432/x".into());
        let err = args.validate().unwrap_err().to_string();
        assert!(err.contains("API_TOKEN is not set"), "{err}");

        args.api_token = Some("short".into());
        let err = args.validate().unwrap_err().to_string();
        assert!(err.contains("at least 16"), "{err}");

        args.api_token = Some("0123456789abcdef".into());
        let config = args.validate().expect("valid");
        assert_eq!(config.serve.listen.port(), 8000);
        assert!(config.serve.run_migrations);
    }

    #[test]
    fn starting_wallet_is_parsed_and_checked() {
        let bot = |wallet: &str| {
            let cli = parse(&[
                "trading-agent",
                "bot",
                "--database-url",
                "postgres://localhost/x",
                "--starting-wallet",
                wallet,
            ]);
            let Command::Bot(args) = cli.command else {
                panic!("bot")
            };
            args.validate().map(|c| c.starting_wallet)
        };
        assert_eq!(
            bot("USDT=10000, BTC=0.5").unwrap(),
            vec![
                ("USDT".to_owned(), Decimal::from(10_000)),
                ("BTC".to_owned(), Decimal::new(5, 1))
            ]
        );
        for bad in ["USDT", "usdt=1", "USDT=-1", "USDT=x", "USDT=1,USDT=2"] {
            let err = bot(bad).unwrap_err().to_string();
            assert!(err.contains("STARTING_WALLET"), "{bad}: {err}");
        }
    }

    #[test]
    fn secrets_never_appear_in_debug_output() {
        let cli = parse(&[
            "trading-agent",
            "api",
            "--database-url",
            "postgres://localhost/x",
            "--api-token",
            "token-0123456789-abcdef",
        ]);
        assert!(!format!("{cli:?}").contains("token-0123456789"), "{cli:?}");
        let Command::Api(args) = cli.command else {
            panic!("api")
        };
        let config = args.validate().expect("valid");
        assert_eq!(config.api_token.expose(), "token-0123456789-abcdef");
        assert!(!format!("{config:?}").contains("token-0123456789"));

        let cli = parse(&[
            "trading-agent",
            "bot",
            "--database-url",
            "postgres://localhost/x",
            "--webhook-url",
            "https://hooks.example/T0/secret-path",
        ]);
        assert!(!format!("{cli:?}").contains("secret-path"), "{cli:?}");
        let Command::Bot(args) = cli.command else {
            panic!("bot")
        };
        let config = args.validate().expect("valid");
        assert!(!format!("{config:?}").contains("secret-path"));
    }

    #[test]
    fn database_url_password_never_appears_in_errors() {
        let args = DatabaseArgs {
            database_url: Some("postgres://u:hunter2@db:notaport/x".into()),
            db_max_connections: 10,
        };
        let err = args.validate().unwrap_err().to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn bot_limits_are_checked() {
        let cli = parse(&[
            "trading-agent",
            "bot",
            "--database-url",
            "postgres://localhost/x",
            "--stake-amount",
            "2000",
        ]);
        let Command::Bot(args) = cli.command else {
            panic!("bot")
        };
        let err = args.validate().unwrap_err().to_string();
        assert!(
            err.contains("STAKE_AMOUNT must not exceed MAX_NOTIONAL"),
            "{err}"
        );
    }

    #[test]
    fn worker_defaults() {
        let cli = parse(&[
            "trading-agent",
            "strategy",
            "--database-url",
            "postgres://localhost/x",
            "--tick-interval",
            "1s",
        ]);
        let Command::Strategy(args) = cli.command else {
            panic!("strategy")
        };
        let config = args.validate().unwrap();
        assert_eq!(config.worker.tick_interval, Duration::from_secs(1));
        assert_eq!(config.worker.stall_after, Duration::from_secs(10));
        assert!(config.demo_feed.is_none());
    }

    #[test]
    fn bad_webhook_url_is_rejected() {
        let cli = parse(&[
            "trading-agent",
            "bot",
            "--database-url",
            "postgres://localhost/x",
            "--webhook-url",
            "ftp://example.invalid/hook",
        ]);
        let Command::Bot(args) = cli.command else {
            panic!("bot")
        };
        assert!(args.validate().unwrap_err().to_string().contains("http://"));
    }
}
