//! Shared by the `operator_*` suites (included with `#[path]`): the CRD, an operator running in
//! this process and scoped to one test namespace, TradingAgent fixtures and polling helpers.
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::task::JoinHandle;
use trading_agent_operator::metrics::Metrics;
use trading_agent_operator::reconcile::conditions::find_condition;
use trading_agent_operator::{CancellationToken, Config, Operator, TradingAgent, resource};

/// A digest kwok never pulls: any well-formed one will do.
pub const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
/// The image of the fixtures, pinned.
pub const IMAGE: &str = "registry.example.com/acme/trading-agent:stable@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
/// The database Secret of the fixtures.
pub const DB_SECRET: &str = "desk-db";
/// Field manager of the tests' own writes.
pub const TEST_MANAGER: &str = "trading-agent-tests";

/// A client for the harness (fails with a hint when the cluster is not up).
pub async fn client() -> Client {
    trading_agent_tests::cluster::client()
        .await
        .expect("the local cluster is up (make cluster-up)")
}

/// Install (server-side apply) the CRD generated from the Rust types and wait until it is served.
pub async fn install_crd(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    // The operator runs the Backtest controller beside the TradingAgent one: both CRDs.
    for crd in [
        trading_agent_operator::backtest::resource::crd(),
        resource::crd(),
    ] {
        let name = crd.name_any();
        crds.patch(
            &name,
            &PatchParams::apply(TEST_MANAGER).force(),
            &Patch::Apply(&crd),
        )
        .await
        .expect("apply the CRD");
        tokio::time::timeout(
            Duration::from_secs(30),
            await_condition(crds.clone(), &name, conditions::is_crd_established()),
        )
        .await
        .expect("CRD established within 30 s")
        .expect("watch the CRD");
    }
    // Established can precede discovery by a moment.
    eventually("TradingAgents are served", Duration::from_secs(30), || {
        let api: Api<TradingAgent> = Api::all(client.clone());
        async move { api.list(&Default::default()).await.ok().map(|_| ()) }
    })
    .await;
}

/// An operator running in this process.
pub struct RunningOperator {
    pub addr: SocketAddr,
    pub metrics: Metrics,
    shutdown: CancellationToken,
    task: JoinHandle<trading_agent_operator::Result<()>>,
}

/// How a test operator runs.
#[derive(Clone, Debug)]
pub struct OperatorOptions {
    pub namespace: String,
    /// `Some((lease name, identity))` turns leader election on, with the Lease in `namespace`.
    pub leader: Option<(String, String)>,
}

impl RunningOperator {
    /// Start an operator watching only `namespace`, without leader election.
    pub async fn start(client: &Client, namespace: &str) -> Self {
        Self::start_with(
            client,
            OperatorOptions {
                namespace: namespace.to_owned(),
                leader: None,
            },
        )
        .await
    }

    pub async fn start_with(client: &Client, options: OperatorOptions) -> Self {
        capture_operator_logs();
        let identity = options
            .leader
            .as_ref()
            .map_or_else(|| "test-operator".to_owned(), |(_, id)| id.clone());
        let mut config = Config::new(identity, options.namespace.clone());
        config.metrics_addr = SocketAddr::from(([127, 0, 0, 1], 0));
        config.namespace = Some(options.namespace.clone());
        config.leader_election = options.leader.is_some();
        config.lease_duration = Duration::from_secs(6);
        config.lease_grace = Duration::from_secs(2);
        if let Some((lease, _)) = &options.leader {
            config.lease_name = lease.clone();
        }
        let operator = Operator::bind(config).await.expect("bind the operator");
        let addr = operator.local_addr().expect("address");
        let metrics = operator.metrics();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(operator.run(client.clone(), shutdown.clone()));
        Self {
            addr,
            metrics,
            shutdown,
            task,
        }
    }

    /// Graceful shutdown: finish running reconciliations, release the Lease.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("operator stops within 30 s")
            .expect("operator task")
            .expect("operator ran without error");
    }

    /// Like a crash: drop everything at once, release nothing.
    pub fn abort(self) {
        self.task.abort();
    }

    /// GET a path of the operator's HTTP server; returns (status code, body).
    pub async fn get(&self, path: &str) -> (u16, String) {
        http_get(self.addr, path).await
    }
}

/// A minimal HTTP/1.1 GET (keeps the suites free of an HTTP client dependency).
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let request = format!("GET {path} HTTP/1.1\r\nHost: operator\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).expect("write");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("read");
        let code = response
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (code, body)
    })
    .await
    .expect("HTTP GET task")
}

/// Create the database Secret in `namespace`.
pub async fn create_db_secret(client: &Client, namespace: &str) {
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": DB_SECRET},
        "stringData": {"url": "postgres://trader:secret@db.desk.svc:5432/trading"},
    }))
    .expect("secret");
    Api::<Secret>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &secret)
        .await
        .expect("create the database Secret");
}

/// A TradingAgent manifest: the pinned fixture image and the database Secret, plus `spec` merged
/// over it.
pub fn agent(name: &str, spec: serde_json::Value) -> serde_json::Value {
    let mut base = json!({
        "apiVersion": "tradingagents.dev/v1alpha1",
        "kind": "TradingAgent",
        "metadata": {"name": name},
        "spec": {
            "image": IMAGE,
            "database": {"secretRef": {"name": DB_SECRET, "key": "url"}},
        },
    });
    merge(&mut base["spec"], spec);
    base
}

fn merge(base: &mut serde_json::Value, patch: serde_json::Value) {
    match (base, patch) {
        (serde_json::Value::Object(b), serde_json::Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (b, p) => *b = p,
    }
}

/// Server-side apply a TradingAgent manifest as the test's field manager.
pub async fn apply_agent(
    client: &Client,
    namespace: &str,
    manifest: &serde_json::Value,
) -> TradingAgent {
    let name = manifest["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_owned();
    Api::<TradingAgent>::namespaced(client.clone(), namespace)
        .patch(
            &name,
            &PatchParams::apply(TEST_MANAGER).force(),
            &Patch::Apply(manifest),
        )
        .await
        .expect("apply the TradingAgent")
}

/// Merge-patch a TradingAgent's spec.
pub async fn patch_spec(client: &Client, namespace: &str, name: &str, spec: serde_json::Value) {
    Api::<TradingAgent>::namespaced(client.clone(), namespace)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": spec })),
        )
        .await
        .expect("patch the TradingAgent");
}

/// Send the in-process operators' logs (`RUST_LOG`, by default the operator's info and everyone's
/// warnings) to the test's captured output: a failing test then shows what the operator did and
/// which of its requests failed. Once per test binary; the first caller installs it.
pub fn capture_operator_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,trading_agent_operator=info"));
    // An error only says another test installed it already.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .with_ansi(false)
        .try_init();
}

/// Poll `check` every 200 ms until it returns `Some`, or panic naming `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    eventually_seeing(what, timeout, || {
        let checked = check();
        async move { checked.await.ok_or_else(String::new) }
    })
    .await
}

/// Like [`eventually`], but `check` says what it saw when it is not satisfied (`Err`), and the
/// panic repeats the last of it: a timeout on a busy CI machine then tells where things stood.
pub async fn eventually_seeing<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let seen = match check().await {
            Ok(value) => return value,
            Err(seen) => seen,
        };
        if tokio::time::Instant::now() >= deadline {
            if seen.is_empty() {
                panic!("timed out after {timeout:?} waiting until {what}");
            }
            panic!("timed out after {timeout:?} waiting until {what}; last seen: {seen}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Wait until the TradingAgent's condition `type_` has `status` (and, if given, `reason`) for its
/// current generation; returns the resource.
pub async fn wait_condition(
    client: &Client,
    namespace: &str,
    name: &str,
    type_: &str,
    status: &str,
    reason: Option<&str>,
    timeout: Duration,
) -> TradingAgent {
    let api: Api<TradingAgent> = Api::namespaced(client.clone(), namespace);
    let what = format!("{namespace}/{name} has {type_}={status} {reason:?}");
    eventually_seeing(&what, timeout, || {
        let api = api.clone();
        async move {
            let agent = match api.get_opt(name).await {
                Ok(Some(agent)) => agent,
                Ok(None) => return Err("no such TradingAgent".to_owned()),
                Err(error) => return Err(format!("GET failed: {error}")),
            };
            let Some(current) = agent.status.as_ref() else {
                return Err("no status yet".to_owned());
            };
            let fresh = current.observed_generation == agent.metadata.generation;
            let satisfied = find_condition(&current.conditions, type_).is_some_and(|condition| {
                fresh && condition.status == status && reason.is_none_or(|r| condition.reason == r)
            });
            if satisfied {
                Ok(agent)
            } else {
                Err(format!(
                    "generation {:?}, observed {:?}, conditions {}",
                    agent.metadata.generation,
                    current.observed_generation,
                    serde_json::to_string(&current.conditions).unwrap_or_default()
                ))
            }
        }
    })
    .await
}

/// The kubectl the harness built (same release as the API server).
pub fn kubectl() -> PathBuf {
    let cache = std::env::var_os("TRADING_AGENT_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
                .join(".cache/trading-agent")
        });
    let built = cache.join("bin/kubectl");
    if built.exists() {
        built
    } else {
        PathBuf::from("kubectl")
    }
}

/// Run kubectl against the harness; returns (success, stdout + stderr).
pub async fn run_kubectl(args: &[&str]) -> (bool, String) {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let output = std::process::Command::new(kubectl())
            .arg("--kubeconfig")
            .arg(trading_agent_tests::cluster::kubeconfig_path())
            .args(&args)
            .output()
            .expect("run kubectl");
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        (output.status.success(), text)
    })
    .await
    .expect("kubectl task")
}
