//! `trading-agent-operator`: run the operator, or print its CRD.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{ArgAction, Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use trading_agent_operator::digest::RegistryClientConfig;
use trading_agent_operator::runtime::endpoint::WebhookEndpoint;
use trading_agent_operator::runtime::telemetry::{self, LogFormat};
use trading_agent_operator::runtime::tls::WebhookTls;
use trading_agent_operator::{Config, Error, Operator, WebhookToken, resource};

/// Kubernetes operator for TradingAgent resources (tradingagents.dev/v1alpha1).
///
/// Each TradingAgent becomes api, bot and strategy Deployments (and an api Service) running one
/// image pinned to its digest, so a stale image is never started under a mutable tag.
#[derive(Parser, Debug)]
#[command(
    name = "trading-agent-operator",
    version,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the operator (the default when no subcommand is given).
    Run(Box<RunArgs>),
    /// Print a CustomResourceDefinition as YAML (what crds/<plural>.yaml holds).
    Crd {
        /// Which one: `tradingagents` or `backtests`.
        #[arg(value_enum, default_value_t = CrdKind::Tradingagents)]
        kind: CrdKind,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum CrdKind {
    /// The TradingAgent CRD (crds/tradingagents.yaml).
    Tradingagents,
    /// The Backtest CRD (crds/backtests.yaml).
    Backtests,
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Address of the HTTP server for /healthz, /readyz and /metrics.
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,

    /// Run the controller only while holding the leader Lease (disable for a single replica).
    #[arg(long, env = "LEADER_ELECTION", default_value_t = true, action = ArgAction::Set)]
    leader_election: bool,

    /// Namespace of the leader Lease [default: $POD_NAMESPACE, else the client's namespace].
    #[arg(long, env = "POD_NAMESPACE")]
    lease_namespace: Option<String>,

    /// Name of the leader Lease.
    #[arg(long, env = "LEASE_NAME", default_value = "trading-agent-operator")]
    lease_name: String,

    /// Seconds a Lease stays valid without renewal; a standby takes over after this.
    #[arg(long, default_value_t = 15)]
    lease_duration_seconds: u64,

    /// Seconds before expiry at which the leader renews its Lease.
    #[arg(long, default_value_t = 5)]
    lease_grace_seconds: u64,

    /// Identity in the Lease and in events [default: $POD_NAME, else hostname-pid].
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,

    /// Watch one namespace only [default: all namespaces].
    #[arg(long, env = "WATCH_NAMESPACE")]
    namespace: Option<String>,

    /// Reconciliations allowed to run at once (0 = unbounded). They mostly wait on the API
    /// server, so this may well exceed the number of cores.
    #[arg(long, default_value_t = 32)]
    concurrency: u16,

    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    log_format: LogFormat,

    /// Address of the registry webhook (POST /registry/notifications; HTTPS with
    /// --webhook-tls-cert and --webhook-tls-key, else plain HTTP).
    #[arg(long, env = "WEBHOOK_ADDR", default_value = "0.0.0.0:8443")]
    webhook_addr: SocketAddr,

    /// PEM certificate chain (leaf first) the webhook serves HTTPS with; needs --webhook-tls-key.
    /// Read once at start: a renewed certificate takes effect after a restart.
    #[arg(long, env = "WEBHOOK_TLS_CERT", requires = "webhook_tls_key")]
    webhook_tls_cert: Option<std::path::PathBuf>,

    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of --webhook-tls-cert.
    #[arg(long, env = "WEBHOOK_TLS_KEY", requires = "webhook_tls_cert")]
    webhook_tls_key: Option<std::path::PathBuf>,

    /// Bearer token the registry webhook requires; without one the webhook is not served.
    #[arg(long, env = "WEBHOOK_TOKEN", hide_env_values = true)]
    webhook_token: Option<String>,

    /// EndpointSlice (in the Lease's namespace) of the webhook Service: the leader writes its
    /// --pod-ip there, so only the leader receives webhook traffic. Unset: not routed.
    #[arg(long, env = "WEBHOOK_ENDPOINT_SLICE", requires = "pod_ip")]
    webhook_endpoint_slice: Option<String>,

    /// This pod's IP address (from the downward API), written to --webhook-endpoint-slice.
    #[arg(long, env = "POD_IP")]
    pod_ip: Option<std::net::IpAddr>,

    /// A registry (HOST[:PORT]) spoken to over plain HTTP, for local development; repeatable.
    /// Also the only hosts whose plain-HTTP token realm (Bearer challenge) is followed.
    #[arg(
        long = "insecure-registry",
        value_name = "HOST[:PORT]",
        env = "INSECURE_REGISTRIES",
        value_delimiter = ','
    )]
    insecure_registries: Vec<String>,

    /// Timeout of one registry request, in seconds.
    #[arg(long, env = "REGISTRY_TIMEOUT", default_value_t = 10)]
    registry_timeout: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Crd { kind }) => match match kind {
            CrdKind::Tradingagents => resource::crd_yaml(),
            CrdKind::Backtests => trading_agent_operator::backtest::resource::crd_yaml(),
        } {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("could not generate the CRD: {e}");
                ExitCode::FAILURE
            }
        },
        Some(Command::Run(args)) => run(*args),
        None => run(cli.run),
    }
}

fn run(args: RunArgs) -> ExitCode {
    telemetry::init(args.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            error!(error = %e, "could not start the Tokio runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run_async(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!(error = %e, reason = e.metric_label(), "operator failed");
            ExitCode::FAILURE
        }
    }
}

async fn run_async(args: RunArgs) -> Result<(), Error> {
    let client = kube::Client::try_default()
        .await
        .map_err(|e| Error::KubeConfig(e.to_string()))?;
    let pod_name = args.identity.clone();
    let identity = args.identity.unwrap_or_else(default_identity);
    let lease_namespace = args
        .lease_namespace
        .unwrap_or_else(|| client.default_namespace().to_owned());
    let webhook_endpoint = args
        .webhook_endpoint_slice
        .zip(args.pod_ip)
        .map(|(slice, address)| WebhookEndpoint {
            namespace: lease_namespace.clone(),
            slice,
            address,
            pod: pod_name,
        });
    let config = Config {
        metrics_addr: args.metrics_addr,
        leader_election: args.leader_election,
        lease_name: args.lease_name,
        lease_duration: std::time::Duration::from_secs(args.lease_duration_seconds),
        lease_grace: std::time::Duration::from_secs(args.lease_grace_seconds),
        namespace: args.namespace,
        concurrency: args.concurrency,
        registry: Some(RegistryClientConfig {
            insecure_hosts: args
                .insecure_registries
                .iter()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
                .collect(),
            request_timeout: std::time::Duration::from_secs(args.registry_timeout.max(1)),
        }),
        webhook_addr: Some(args.webhook_addr),
        webhook_token: args
            .webhook_token
            .filter(|t| !t.trim().is_empty())
            .map(|t| WebhookToken(t.trim().to_owned())),
        webhook_tls: args
            .webhook_tls_cert
            .zip(args.webhook_tls_key)
            .map(|(cert, key)| WebhookTls { cert, key }),
        webhook_endpoint,
        ..Config::new(identity, lease_namespace)
    };
    info!(
        ?config,
        "starting trading-agent-operator {}",
        env!("CARGO_PKG_VERSION")
    );

    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    Operator::bind(config).await?.run(client, shutdown).await
}

/// Cancel on SIGTERM (the kubelet stopping the pod) or SIGINT; a second signal exits at once.
async fn cancel_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        error!("could not install signal handlers");
        return;
    };
    tokio::select! {
        _ = term.recv() => info!("SIGTERM: shutting down gracefully"),
        _ = int.recv() => info!("SIGINT: shutting down gracefully"),
    }
    shutdown.cancel();
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    error!("second signal: exiting now");
    std::process::exit(130);
}

fn default_identity() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "trading-agent-operator".to_owned());
    format!("{host}-{}", std::process::id())
}
