//! Read-only views the dashboard needs in one request each: a chart (candles, indicator lines,
//! signal and trade markers), the equity curve, per-strategy statistics, a trade with its orders,
//! and the overview.

use chrono::{DateTime, TimeZone, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use axum::Json;
use axum::extract::State;

use super::AppState;
use super::extract::{ApiPath, ApiQuery};
use crate::build::Build;
use crate::domain::equity::Worth;
use crate::domain::stats::{self, IndicatorSpec, StrategyStats};
use crate::domain::{Symbol, Timeframe};
use crate::error::{Error, ErrorBody, Result};
use crate::store::{self, bot::BotStatus, heartbeats::ComponentHealth, trading::Trade};

/// Most candles one chart request returns (older ones page in with `to`).
pub const MAX_CHART_CANDLES: i64 = 10_000;
const DEFAULT_CHART_CANDLES: i64 = 1_000;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChartQuery {
    #[param(value_type = String, example = "BTCUSDT", pattern = "^[A-Z0-9][A-Z0-9._-]{0,31}$")]
    pub symbol: Symbol,
    #[param(inline)]
    pub timeframe: Timeframe,
    /// Candles before this time (exclusive, RFC 3339); without it, the newest.
    pub to: Option<DateTime<Utc>>,
    /// 1-10000, default 1000.
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<i64>,
    /// Simple moving averages to draw, e.g. `20,50`. Without `sma`, `ema` and `rsi`: the lines of
    /// the enabled strategies trading this symbol and timeframe (or SMA 20, EMA 50, RSI 14).
    #[param(example = "20,50")]
    pub sma: Option<String>,
    /// Exponential moving averages to draw, e.g. `12,26`.
    pub ema: Option<String>,
    /// RSI periods for the pane below, e.g. `14`.
    pub rsi: Option<String>,
}

/// A candle as plotted: Unix seconds, prices as JSON numbers (exact decimals: GET /candles).
#[derive(Debug, Serialize, ToSchema)]
pub struct ChartCandle {
    pub time: i64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChartPoint {
    pub time: i64,
    pub value: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IndicatorLine {
    /// `SMA(20)`, `EMA(12)`, `RSI(14)`.
    pub label: String,
    /// `sma`, `ema` or `rsi`.
    #[schema(example = "sma")]
    pub kind: &'static str,
    pub period: u32,
    /// `price` (over the candles) or `oscillator` (the pane below, 0-100).
    pub pane: &'static str,
    /// From the first candle where the indicator is defined.
    pub points: Vec<ChartPoint>,
}

/// A marker on a candle.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChartMarker {
    /// Open time of the candle it belongs to (Unix seconds).
    pub time: i64,
    /// `signal`, `entry` or `exit`.
    pub kind: &'static str,
    /// `buy` or `sell`.
    pub side: String,
    /// Short text: the reason, the status of a signal, the profit of an exit.
    pub text: String,
    /// The signal's or the trade's id.
    pub id: i64,
    pub strategy_id: Option<i64>,
    /// Signals: `new`, `executed` or `rejected`; trades: `open` or `closed`.
    pub status: String,
    /// Fill price (entries and exits).
    pub price: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Chart {
    pub symbol: String,
    pub timeframe: Timeframe,
    /// Oldest first.
    pub candles: Vec<ChartCandle>,
    /// Older candles exist (ask again with `to` = the first candle's time).
    pub has_more: bool,
    pub indicators: Vec<IndicatorLine>,
    /// Sorted by time.
    pub markers: Vec<ChartMarker>,
}

/// Candles with indicator lines and signal/trade markers, for one symbol and timeframe.
#[utoipa::path(get, path = "/api/v2/chart", tag = "dashboard", params(ChartQuery),
    responses((status = 200, body = Chart), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn chart(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ChartQuery>,
) -> Result<Json<Chart>> {
    let limit = match q.limit {
        None => DEFAULT_CHART_CANDLES,
        Some(n) if (1..=MAX_CHART_CANDLES).contains(&n) => n,
        Some(n) => {
            return Err(Error::invalid(
                "limit",
                format!("must be between 1 and {MAX_CHART_CANDLES} (got {n})"),
            ));
        }
    };
    let pool = state.db.pool()?;
    let symbol = q.symbol.as_str();
    if !store::instruments::exists(pool, symbol).await? {
        return Err(Error::not_found(format!("instrument {symbol}")));
    }
    let specs = chart_specs(&state, &q).await?;
    let warmup = specs.iter().map(|s| s.warmup()).max().unwrap_or(0);
    let fetched =
        store::views::plot_candles(pool, symbol, q.timeframe, q.to, limit + warmup as i64 + 1)
            .await?;
    let shown_from = fetched.len().saturating_sub(limit as usize);
    let has_more = shown_from > 0;
    let closes: Vec<f64> = fetched.iter().map(|c| c.close).collect();
    let indicators = specs
        .iter()
        .map(|spec| IndicatorLine {
            label: spec.label(),
            kind: spec.kind(),
            period: spec.period(),
            pane: match spec {
                IndicatorSpec::Rsi(_) => "oscillator",
                _ => "price",
            },
            points: spec
                .values(&closes)
                .into_iter()
                .zip(&fetched)
                .skip(shown_from)
                .filter_map(|(v, c)| {
                    v.filter(|v| v.is_finite()).map(|value| ChartPoint {
                        time: c.time,
                        value,
                    })
                })
                .collect(),
        })
        .collect();
    let shown = &fetched[shown_from..];
    let markers = match (shown.first(), shown.last()) {
        (Some(first), Some(last)) => {
            let from = timestamp(first.time);
            let to = timestamp(last.time) + q.timeframe.duration();
            chart_markers(pool, symbol, q.timeframe, from, to).await?
        }
        _ => Vec::new(),
    };
    Ok(Json(Chart {
        symbol: symbol.to_owned(),
        timeframe: q.timeframe,
        candles: shown
            .iter()
            .map(|c| ChartCandle {
                time: c.time,
                open: c.open,
                high: c.high,
                low: c.low,
                close: c.close,
                volume: c.volume,
            })
            .collect(),
        has_more,
        indicators,
        markers,
    }))
}

fn timestamp(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(seconds, 0).single().unwrap_or_default()
}

async fn chart_specs(state: &AppState, q: &ChartQuery) -> Result<Vec<IndicatorSpec>> {
    if q.sma.is_some() || q.ema.is_some() || q.rsi.is_some() {
        let mut specs = Vec::new();
        for (field, text, make) in [
            (
                "sma",
                &q.sma,
                IndicatorSpec::Sma as fn(u32) -> IndicatorSpec,
            ),
            ("ema", &q.ema, IndicatorSpec::Ema),
            ("rsi", &q.rsi, IndicatorSpec::Rsi),
        ] {
            if let Some(text) = text {
                specs.extend(stats::parse_periods(field, text, make)?);
            }
        }
        specs.sort();
        specs.dedup();
        return Ok(specs);
    }
    let strategies = store::strategies::list(state.db.pool()?, Some(true)).await?;
    let params: Vec<_> = strategies
        .iter()
        .filter(|s| s.timeframe == q.timeframe && s.symbols.iter().any(|x| x == q.symbol.as_str()))
        .filter_map(|s| s.parsed_params().ok())
        .collect();
    let specs = stats::specs_of_strategies(&params);
    Ok(if specs.is_empty() {
        vec![
            IndicatorSpec::Sma(20),
            IndicatorSpec::Ema(50),
            IndicatorSpec::Rsi(14),
        ]
    } else {
        specs
    })
}

async fn chart_markers(
    pool: &sqlx::PgPool,
    symbol: &str,
    timeframe: Timeframe,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<ChartMarker>> {
    let bar = |t: DateTime<Utc>| timeframe.floor(t).timestamp();
    let in_window = |t: DateTime<Utc>| t >= from && t < to;
    let mut markers = Vec::new();
    for s in store::views::signal_marks(pool, symbol, timeframe, from, to).await? {
        let text = match &s.status_reason {
            Some(why) => format!("{} ({}: {why})", s.reason, s.status),
            None => format!("{} ({})", s.reason, s.status),
        };
        markers.push(ChartMarker {
            time: bar(s.at),
            kind: "signal",
            side: s.action,
            text,
            id: s.id,
            strategy_id: s.strategy_id,
            status: s.status,
            price: None,
        });
    }
    for t in store::views::trade_marks(pool, symbol, from, to).await? {
        let status = if t.closed_at.is_some() {
            "closed"
        } else {
            "open"
        };
        if in_window(t.opened_at) {
            markers.push(ChartMarker {
                time: bar(t.opened_at),
                kind: "entry",
                side: "buy".into(),
                text: format!(
                    "entry #{}{}",
                    t.id,
                    t.entry_reason.map(|r| format!(": {r}")).unwrap_or_default()
                ),
                id: t.id,
                strategy_id: t.strategy_id,
                status: status.into(),
                price: Some(t.entry_price),
            });
        }
        if let Some(closed_at) = t.closed_at.filter(|c| in_window(*c)) {
            let profit = t.profit.map(|p| format!(" {p:+}")).unwrap_or_default();
            markers.push(ChartMarker {
                time: bar(closed_at),
                kind: "exit",
                side: "sell".into(),
                text: format!(
                    "exit #{}{profit}{}",
                    t.id,
                    t.exit_reason.map(|r| format!(": {r}")).unwrap_or_default()
                ),
                id: t.id,
                strategy_id: t.strategy_id,
                status: status.into(),
                price: t.exit_price,
            });
        }
    }
    markers.sort_by_key(|m| (m.time, m.kind != "signal", m.id));
    Ok(markers)
}

// ---- equity ----

/// The most points per currency one equity request returns (a longer range is thinned).
pub const MAX_EQUITY_POINTS: i64 = 2000;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EquityQuery {
    /// Start of the range (RFC 3339); default `to` minus the 30 days snapshots are kept.
    pub from: Option<DateTime<Utc>>,
    /// End of the range (RFC 3339); default now.
    pub to: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EquityPoint {
    /// When the snapshot was taken (the start of its minute).
    pub time: DateTime<Utc>,
    #[schema(value_type = String)]
    pub cash: Decimal,
    #[schema(value_type = String)]
    pub positions: Decimal,
    /// `cash + positions`.
    #[schema(value_type = String)]
    pub equity: Decimal,
}

/// One quote currency's curve.
#[derive(Debug, Serialize, ToSchema)]
pub struct CurrencyEquity {
    #[schema(example = "USDT")]
    pub currency: String,
    /// What the wallet started with in this currency.
    #[schema(value_type = String)]
    pub starting_balance: Decimal,
    /// The snapshots in the range, oldest first.
    pub points: Vec<EquityPoint>,
    /// Worth now (not a snapshot: computed for this answer).
    pub current: Worth,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Equity {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Seconds between points: one snapshot a minute, or wider buckets (the last snapshot of each)
    /// when the range holds more than 2000 minutes.
    pub step_seconds: i64,
    /// The account's currency first, then the others by name.
    pub currencies: Vec<CurrencyEquity>,
}

/// The equity curve: each quote currency's worth (cash plus open positions at the latest close),
/// recorded by the bot once a minute and kept 30 days, over a time range.
#[utoipa::path(get, path = "/api/v2/equity", tag = "dashboard", params(EquityQuery),
    responses((status = 200, body = Equity), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn equity(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<EquityQuery>,
) -> Result<Json<Equity>> {
    let to = q.to.unwrap_or_else(Utc::now);
    let from = q
        .from
        .unwrap_or(to - chrono::Duration::days(store::equity::RETENTION_DAYS));
    if from >= to {
        return Err(Error::invalid(
            "from",
            format!(
                "must be before to ({} >= {})",
                from.to_rfc3339(),
                to.to_rfc3339()
            ),
        ));
    }
    let step = equity_step(from, to);
    let pool = state.db.pool()?;
    let account = store::trading::account(pool).await?;
    let wallets = store::trading::wallets(pool).await?;
    let snapshots = store::equity::history(pool, from, to, step).await?;
    let mut currencies: Vec<CurrencyEquity> = store::equity::current(pool)
        .await?
        .into_iter()
        .map(|current| CurrencyEquity {
            currency: current.currency.clone(),
            starting_balance: wallets
                .iter()
                .find(|w| w.currency == current.currency)
                .map_or(Decimal::ZERO, |w| w.starting_balance),
            points: Vec::new(),
            current,
        })
        .collect();
    for s in snapshots {
        let point = EquityPoint {
            time: s.taken_at,
            cash: s.cash,
            positions: s.positions,
            equity: s.equity,
        };
        match currencies.iter_mut().find(|c| c.currency == s.currency) {
            Some(c) => c.points.push(point),
            // A currency recorded once and no longer held.
            None => currencies.push(CurrencyEquity {
                currency: s.currency.clone(),
                starting_balance: Decimal::ZERO,
                points: vec![point],
                current: Worth {
                    currency: s.currency,
                    cash: Decimal::ZERO,
                    positions: Decimal::ZERO,
                    equity: Decimal::ZERO,
                },
            }),
        }
    }
    currencies.sort_by(|a, b| {
        (a.currency != account.currency, &a.currency)
            .cmp(&(b.currency != account.currency, &b.currency))
    });
    Ok(Json(Equity {
        from,
        to,
        step_seconds: step.num_seconds(),
        currencies,
    }))
}

/// The bucket width that keeps a range at most [`MAX_EQUITY_POINTS`] points: whole minutes, at
/// least the snapshot period.
pub fn equity_step(from: DateTime<Utc>, to: DateTime<Utc>) -> chrono::Duration {
    let minutes = (to - from).num_minutes().max(1);
    let per_point = (minutes + MAX_EQUITY_POINTS - 1) / MAX_EQUITY_POINTS;
    chrono::Duration::minutes(per_point.max(1)).max(store::equity::SNAPSHOT_EVERY)
}

fn market_value(t: &store::views::ValuedTrade) -> Decimal {
    t.quantity * t.current_price.unwrap_or(t.entry_price)
}

// ---- per-strategy statistics ----

#[derive(Debug, Serialize, ToSchema)]
pub struct StrategyStatsRow {
    /// The strategy's name; `manual` for force-enter and POST /orders trades.
    pub name: String,
    pub open_trades: i64,
    #[serde(flatten)]
    pub stats: StrategyStats,
}

/// Closed and open trades, win rate, profit and drawdown per strategy (manual trades apart).
/// Strategies without trades are listed with zeros.
#[utoipa::path(get, path = "/api/v2/stats/strategies", tag = "dashboard",
    responses((status = 200, body = [StrategyStatsRow]), (status = 401, body = ErrorBody)))]
pub async fn strategy_stats(State(state): State<AppState>) -> Result<Json<Vec<StrategyStatsRow>>> {
    let pool = state.db.pool()?;
    let strategies = store::strategies::list(pool, None).await?;
    let closed = store::views::closed_profits(pool).await?;
    let open = store::views::open_counts(pool).await?;
    let computed = stats::strategy_stats(&closed);
    let mut ids: Vec<Option<i64>> = strategies.iter().map(|s| Some(s.id)).collect();
    for id in computed
        .iter()
        .map(|s| s.strategy_id)
        .chain(open.iter().map(|(id, _)| *id))
    {
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    let rows = ids
        .into_iter()
        .map(|id| StrategyStatsRow {
            name: match id {
                None => "manual".into(),
                Some(id) => strategies
                    .iter()
                    .find(|s| s.id == id)
                    .map_or_else(|| format!("strategy {id}"), |s| s.name.clone()),
            },
            open_trades: open.iter().find(|(s, _)| *s == id).map_or(0, |(_, n)| *n),
            stats: computed
                .iter()
                .find(|s| s.strategy_id == id)
                .cloned()
                .unwrap_or(StrategyStats {
                    strategy_id: id,
                    closed_trades: 0,
                    winning_trades: 0,
                    losing_trades: 0,
                    win_rate_pct: Decimal::ZERO,
                    profit: Decimal::ZERO,
                    max_drawdown: Decimal::ZERO,
                }),
        })
        .collect();
    Ok(Json(rows))
}

// ---- trade detail ----

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderDetail {
    #[serde(flatten)]
    pub order: store::trading::Order,
    /// The reason of the signal that caused the order (strategy rule, force-exit, ...).
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TradeDetail {
    pub trade: Trade,
    /// Oldest first: the entry, then the exit.
    pub orders: Vec<OrderDetail>,
}

/// A trade with its orders and why each was placed.
#[utoipa::path(get, path = "/api/v2/trades/{id}/detail", tag = "dashboard", params(("id" = i64, Path)),
    responses((status = 200, body = TradeDetail), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn trade_detail(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<TradeDetail>> {
    let pool = state.db.pool()?;
    let trade = store::trading::get_trade(pool, id).await?;
    let orders = store::views::orders_of_trade(pool, id)
        .await?
        .into_iter()
        .map(|o| OrderDetail {
            order: o.order,
            reason: o.reason,
        })
        .collect();
    Ok(Json(TradeDetail { trade, orders }))
}

// ---- overview ----

/// This api process.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiInstance {
    #[schema(example = "api")]
    pub role: &'static str,
    /// Host (pod) name.
    pub instance: String,
    #[schema(example = "0.1.0")]
    pub version: &'static str,
    /// The commit the build was made from, or `unknown`.
    #[schema(example = "3b7f13f")]
    pub commit: &'static str,
    /// The pinned image reference this pod runs (`IMAGE_REF`); absent outside Kubernetes.
    pub image_ref: Option<&'static str>,
    /// Its digest.
    #[schema(example = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")]
    pub image_digest: Option<&'static str>,
}

/// What the account holds in one currency: cash in the quote currency, or an open position.
#[derive(Debug, Serialize, ToSchema)]
pub struct Holding {
    #[schema(example = "BTC")]
    pub currency: String,
    /// Amount held (cash, or the quantity of the open positions).
    #[schema(value_type = String)]
    pub amount: Decimal,
    /// Worth in the quote currency at the latest close.
    #[schema(value_type = String)]
    pub value: Decimal,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OpenTrade {
    pub id: i64,
    pub symbol: String,
    pub strategy_id: Option<i64>,
    /// The strategy's name; absent for manual trades.
    pub strategy: Option<String>,
    #[schema(value_type = String)]
    pub quantity: Decimal,
    #[schema(value_type = String)]
    pub entry_price: Decimal,
    pub opened_at: DateTime<Utc>,
    /// Latest close of the symbol; absent without candles.
    #[schema(value_type = Option<String>)]
    pub current_price: Option<Decimal>,
    /// At the current price, net of the entry fee.
    #[schema(value_type = String)]
    pub profit: Decimal,
    /// `profit` as a percentage of the cost (notional plus entry fee).
    #[schema(value_type = String)]
    pub profit_pct: Decimal,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Overview {
    pub api: ApiInstance,
    /// The bot and strategy instances' heartbeats.
    pub components: Vec<ComponentHealth>,
    pub bot: BotStatus,
    /// The quote currency of the account.
    #[schema(example = "USDT")]
    pub currency: String,
    /// Cash first, then one row per base asset held.
    pub balances: Vec<Holding>,
    /// Cash plus open positions at their latest close.
    #[schema(value_type = String)]
    pub equity: Decimal,
    pub open_trades: Vec<OpenTrade>,
    /// Realised profit of the trades closed since 00:00 UTC today.
    #[schema(value_type = String)]
    pub today_realized: Decimal,
    /// Profit of the open trades at the current prices.
    #[schema(value_type = String)]
    pub unrealized: Decimal,
}

/// Everything the overview page shows, in one request.
#[utoipa::path(get, path = "/api/v2/overview", tag = "dashboard",
    responses((status = 200, body = Overview), (status = 401, body = ErrorBody)))]
pub async fn overview(State(state): State<AppState>) -> Result<Json<Overview>> {
    let pool = state.db.pool()?;
    let account = store::trading::account(pool).await?;
    let open = store::views::open_trades_valued(pool).await?;
    let midnight = Utc::now()
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc());
    let today_realized = match midnight {
        Some(m) => store::trading::realized_since(pool, m).await?,
        None => Decimal::ZERO,
    };
    let mut balances = vec![Holding {
        currency: account.currency.clone(),
        amount: account.balance,
        value: account.balance,
    }];
    let mut open_trades = Vec::with_capacity(open.len());
    let mut unrealized = Decimal::ZERO;
    for t in &open {
        let value = market_value(t);
        let cost = t.quantity * t.entry_price + t.entry_fee;
        let profit = (value - cost).round_dp(8);
        unrealized += profit;
        match balances.iter_mut().find(|b| b.currency == t.base_asset) {
            Some(b) => {
                b.amount += t.quantity;
                b.value += value;
            }
            None => balances.push(Holding {
                currency: t.base_asset.clone(),
                amount: t.quantity,
                value,
            }),
        }
        open_trades.push(OpenTrade {
            id: t.id,
            symbol: t.symbol.clone(),
            strategy_id: t.strategy_id,
            strategy: t.strategy.clone(),
            quantity: t.quantity,
            entry_price: t.entry_price,
            opened_at: t.opened_at,
            current_price: t.current_price,
            profit,
            profit_pct: if cost.is_zero() {
                Decimal::ZERO
            } else {
                (profit / cost * Decimal::ONE_HUNDRED).round_dp(4)
            },
        });
    }
    for b in &mut balances {
        b.value = b.value.round_dp(8);
    }
    let equity = balances
        .iter()
        .map(|b| b.value)
        .sum::<Decimal>()
        .round_dp(8);
    Ok(Json(Overview {
        api: ApiInstance {
            role: "api",
            instance: host_name(),
            version: env!("CARGO_PKG_VERSION"),
            commit: crate::build::COMMIT,
            image_ref: Build::current().image_ref.as_deref(),
            image_digest: Build::current().image_digest.as_deref(),
        },
        components: store::heartbeats::components(pool).await?,
        bot: store::bot::state(pool).await?,
        currency: account.currency,
        balances,
        equity,
        open_trades,
        today_realized,
        unrealized,
    }))
}

fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}
