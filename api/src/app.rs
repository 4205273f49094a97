//! Start-up and shutdown of each role. One Tokio runtime (built in `main`); the HTTP listener is
//! bound first so `/healthz` answers at once, the database comes up in the background, and a
//! termination signal drains before the pool is closed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::Utc;
use sqlx::ConnectOptions;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Role;
use crate::config::{
    ApiConfig, BotConfig, Cli, Command, DatabaseConfig, ImportArgs, StrategyConfig, WorkerConfig,
};
use crate::db::{self, Db};
use crate::domain::{Symbol, Timeframe, market};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::server::{Liveness, Probes, TerminationSignals};
use crate::workers::bot::Bot;
use crate::workers::notifier::Notifier;
use crate::workers::strategy::StrategyRunner;
use crate::workers::{LoopContext, Worker, run_loop};
use crate::{demo, http, store, workers};

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Validates the configuration of the chosen command, then runs it.
pub async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Api(args) => serve_api(args.validate()?).await,
        Command::Bot(args) => serve_bot(args.validate()?).await,
        Command::Strategy(args) => serve_strategy(args.validate()?).await,
        Command::Migrate(args) => {
            let config = args.validate()?;
            tracing::info!("applying migrations");
            db::migrate(&config.options).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::ImportCandles(args) => import_candles(args).await,
        Command::Backtest(args) => crate::backtest::cli::run(args).await,
        Command::SeedDemo(args) => {
            let database = args.database.validate()?;
            let feed = args.demo.validate()?;
            if !(1..=100_000).contains(&args.history) {
                return Err(crate::config::ConfigError(
                    "--history must be between 1 and 100000".into(),
                )
                .into());
            }
            let pool = connect_once(&database).await?;
            // The history ends in a breakout on the newest closed candle; seeded at the very end
            // of a candle, a strategy runner started right after would already see a newer one.
            if let Some(wait) = demo::wait_before_seeding(feed.timeframe, Utc::now()) {
                println!(
                    "waiting {} s for the next {} candle to open",
                    wait.as_secs(),
                    feed.timeframe
                );
                tokio::time::sleep(wait).await;
            }
            let written = demo::seed(&pool, &feed, args.history, Utc::now()).await?;
            pool.close().await;
            println!(
                "seeded {written} candles (ending in a breakout that every demo strategy buys) and the demo strategies"
            );
            Ok(())
        }
    }
}

/// For the one-shot commands: migrate, then a small pool.
/// A pool for a one-shot command, after applying the migrations.
pub(crate) async fn connect_once(config: &DatabaseConfig) -> Result<sqlx::PgPool> {
    db::migrate(&config.options).await?;
    Ok(sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect_with(config.options.clone().disable_statement_logging())
        .await?)
}

async fn import_candles(args: ImportArgs) -> Result<()> {
    let database = args.database.validate()?;
    let symbol = Symbol::parse(&args.symbol)
        .map_err(|e| crate::config::ConfigError(format!("--symbol: {e}")))?;
    let timeframe: Timeframe = args
        .timeframe
        .parse()
        .map_err(|e| crate::config::ConfigError(format!("--timeframe: {e}")))?;
    let data = std::fs::read(&args.file).map_err(|e| {
        Error::Io(std::io::Error::new(
            e.kind(),
            format!("{}: {e}", args.file.display()),
        ))
    })?;
    let candles = market::parse_csv(&data, timeframe, Utc::now())?;
    let pool = connect_once(&database).await?;
    if !store::instruments::exists(&pool, symbol.as_str()).await? {
        return Err(Error::invalid(
            "symbol",
            format!("unknown instrument `{symbol}`; create it first (POST /api/v2/instruments)"),
        ));
    }
    let written = store::candles::upsert(&pool, symbol.as_str(), timeframe, &candles).await?;
    pool.close().await;
    println!("imported {written} candles for {symbol} {timeframe}");
    Ok(())
}

/// How often the api looks for backtests cut off by a dead api process (and at start-up).
const INTERRUPTED_BACKTESTS_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// Backtests left `running` by an api process that died mid-run are marked failed
/// (`store::backtests::fail_interrupted`); a failure here is logged, never fatal.
async fn fail_interrupted_backtests(db: &Db) {
    let Ok(pool) = db.pool() else { return };
    match store::backtests::fail_interrupted(pool).await {
        Ok(ids) if ids.is_empty() => {}
        Ok(ids) => tracing::warn!(
            ?ids,
            "backtests interrupted by an earlier api process marked failed"
        ),
        Err(error) => tracing::warn!(%error, "cannot check for interrupted backtests"),
    }
}

/// What every long-running role sets up first.
struct Common {
    signals: TerminationSignals,
    metrics: Arc<Metrics>,
    db: Db,
    listener: TcpListener,
    stop: watch::Sender<bool>,
    db_task: tokio::task::JoinHandle<()>,
    draining: Arc<AtomicBool>,
}

async fn start_common(role: Role, serve: &crate::config::ServeConfig) -> Result<Common> {
    // Handlers first: a SIGTERM during start-up must go through the orderly path too.
    let signals = TerminationSignals::install()?;
    tracing::info!(
        role = role.as_str(),
        version = VERSION,
        "trading-agent initialising"
    );
    let metrics = Metrics::new(role.as_str());
    let db = Db::new(&serve.database, metrics.clone());
    let listener = TcpListener::bind(serve.listen).await.map_err(|e| {
        Error::Io(std::io::Error::new(
            e.kind(),
            format!("cannot listen on {}: {e}", serve.listen),
        ))
    })?;
    tracing::info!(address = %listener.local_addr()?, role = role.as_str(), "listening (healthz answers now)");
    let (stop, stop_rx) = watch::channel(false);
    let db_task = tokio::spawn({
        let db = db.clone();
        let run_migrations = serve.run_migrations;
        let mut stopping = stop_rx.clone();
        async move {
            db.start(run_migrations, stop_rx).await;
            if db.is_started() {
                tracing::info!(role = role.as_str(), "ready");
                if role == Role::Api {
                    fail_interrupted_backtests(&db).await;
                    tracing::info!("API v2 server ready");
                    // And again now and then: a run whose process died while this one was up
                    // (another replica), or whose session PostgreSQL had not ended yet at start-up.
                    while !*stopping.borrow() {
                        tokio::select! {
                            _ = tokio::time::sleep(INTERRUPTED_BACKTESTS_EVERY) => fail_interrupted_backtests(&db).await,
                            changed = stopping.changed() => if changed.is_err() { break },
                        }
                    }
                }
            }
        }
    });
    Ok(Common {
        signals,
        metrics,
        db,
        listener,
        stop,
        db_task,
        draining: Arc::new(AtomicBool::new(false)),
    })
}

async fn serve_api(config: ApiConfig) -> Result<()> {
    let Common {
        mut signals,
        metrics,
        db,
        listener,
        stop,
        db_task,
        draining,
    } = start_common(Role::Api, &config.serve).await?;
    let probes = Probes {
        role: Role::Api,
        db: db.clone(),
        liveness: None,
        draining: draining.clone(),
        metrics: metrics.clone(),
    };
    let mut state = http::state(db.clone(), metrics, config.api_token.expose());
    state.backtests = Arc::new(crate::backtest::job::BacktestJobs::new(
        config.backtests.clone(),
    ));
    let app = http::router(state, probes);
    let delay = config.shutdown_delay;
    let shutdown = async move {
        let name = signals.recv().await;
        draining.store(true, Ordering::SeqCst);
        tracing::info!(
            signal = name,
            delay_ms = delay.as_millis() as u64,
            "shutting down: readyz now 503, still serving during the drain delay"
        );
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            name = signals.recv() => tracing::info!(signal = name, "second signal: skipping the drain delay"),
        }
        tracing::info!("closing the listener; waiting for in-flight requests");
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    let _ = stop.send(true);
    let _ = db_task.await;
    db.close().await;
    tracing::info!("stopped");
    Ok(())
}

async fn serve_bot(config: BotConfig) -> Result<()> {
    let webhook = config.webhook.clone();
    let limits = config.limits.clone();
    let fault = config.fault;
    let starting_wallet = config.starting_wallet.clone();
    serve_worker(
        Role::Bot,
        config.worker,
        Some(workers::SIGNALS_CHANNEL),
        move |metrics| {
            Ok(Bot {
                limits,
                metrics,
                fault,
                starting_wallet,
            })
        },
        // Webhook delivery in a task of its own: a dead webhook never holds up the bot's loop.
        move |db, metrics, shutdown| {
            let notifier = webhook
                .map(|w| Notifier::new(w, metrics.clone()))
                .transpose()?;
            Ok(Some(tokio::spawn(workers::notifier::run(
                db.clone(),
                notifier,
                shutdown,
            ))))
        },
    )
    .await
}

async fn serve_strategy(config: StrategyConfig) -> Result<()> {
    let demo_feed = config.demo_feed.clone();
    let candle_grace = config.candle_grace;
    serve_worker(
        Role::Strategy,
        config.worker,
        None,
        move |metrics| {
            Ok(StrategyRunner {
                metrics,
                candle_grace,
                demo_feed,
            })
        },
        |_, _, _| Ok(None),
    )
    .await
}

/// A task started beside a worker loop, stopped with it.
type SideTask = Option<tokio::task::JoinHandle<()>>;

/// `wake_on`: a notification channel that triggers a tick at once (the bot: new signals);
/// `side`: a task of the role that runs beside the loop (the bot: webhook delivery).
async fn serve_worker<W: Worker>(
    role: Role,
    config: WorkerConfig,
    wake_on: Option<&'static str>,
    make: impl FnOnce(Arc<Metrics>) -> Result<W>,
    side: impl FnOnce(&Db, &Arc<Metrics>, tokio::sync::watch::Receiver<bool>) -> Result<SideTask>,
) -> Result<()> {
    let Common {
        mut signals,
        metrics,
        db,
        listener,
        stop,
        db_task,
        draining,
    } = start_common(role, &config.serve).await?;
    let worker = make(metrics.clone())?;
    let side_task = side(&db, &metrics, stop.subscribe())?;
    let liveness = Liveness::new(config.stall_after);
    let probes = Probes {
        role,
        db: db.clone(),
        liveness: Some(liveness.clone()),
        draining: draining.clone(),
        metrics: metrics.clone(),
    };
    let mut server_stop = stop.subscribe();
    let server = tokio::spawn(
        axum::serve(listener, http::worker_router(probes))
            .with_graceful_shutdown(async move {
                let _ = server_stop.wait_for(|s| *s).await;
            })
            .into_future(),
    );
    let wake = wake_on.map(|channel| {
        let notify = Arc::new(tokio::sync::Notify::new());
        tokio::spawn(workers::forward_notifications(
            db.clone(),
            channel,
            notify.clone(),
            stop.subscribe(),
        ));
        notify
    });
    let context = LoopContext {
        role,
        db: db.clone(),
        metrics,
        liveness,
        config,
        started_at: Utc::now(),
        wake,
    };
    let worker_loop = tokio::spawn(run_loop(context, worker, stop.subscribe()));
    tracing::info!(role = role.as_str(), "worker loop started");

    let name = signals.recv().await;
    draining.store(true, Ordering::SeqCst);
    tracing::info!(signal = name, "shutting down after the current tick");
    let _ = stop.send(true);
    if let Err(error) = worker_loop.await {
        tracing::error!(%error, "worker loop ended abnormally");
    }
    if let Some(task) = side_task
        && let Err(error) = task.await
    {
        tracing::error!(%error, "side task ended abnormally");
    }
    let _ = db_task.await;
    match server.await {
        Ok(result) => result?,
        Err(error) => tracing::error!(%error, "probe server ended abnormally"),
    }
    db.close().await;
    tracing::info!("stopped");
    Ok(())
}
