//! `ta-bench-operator`: the operator at scale (issue 7), against the local cluster harness and a
//! real `docker-registry`. Run by `make bench` (tests/bench/run.sh); prints one JSON object on
//! stdout and its progress on stderr.
//!
//!   ta-bench-operator --operator target/release/trading-agent-operator [--count 1000]
//!                     [--interval 10] [--window-intervals 3] [--replicas 0] [--ceiling-in-flight 96]
//!
//! 1. COUNT TradingAgents that follow one tag are created at once (50 requests in flight): the
//!    seconds until all 3×COUNT Deployments are pinned to the tag's digest, until every agent
//!    reports Ready, and the operator's peak RSS (VmHWM).
//! 2. Registry manifest requests per polling interval, counted by a proxy in front of the
//!    registry over WINDOW-INTERVALS intervals, with the operator's reconciliations in that time.
//! 3. A push to the tag with the registry's notification: push done → every Deployment re-pinned.
//! 4. A push the operator is not told about (a second registry process on the same storage, without
//!    notifications): push done → every Deployment re-pinned, by polling alone.
//! 5. Every agent deleted (the end of the lifecycle): until the garbage collector has removed every
//!    Deployment.
//! 6. The ceiling (issue 20), with the operator stopped: the same number of Deployments, the same
//!    specs, created as plain Deployments; then a plain client loop patches their image to a new
//!    digest (strategic merge patch, what `kubectl set image` sends) with CEILING-IN-FLIGHT requests
//!    in flight: the first request → every Deployment seen with the new digest.
//!
//! Every phase also reports the API server's writes (its own `apiserver_request_total`, verbs
//! POST/PUT/PATCH/APPLY/DELETE, by resource: this cluster serves the bench alone) and the CPU
//! seconds of each harness process (by the PIDs the harness recorded), the operator and the bench.
//!
//! Each role runs REPLICAS pods (default 0): the figures are the operator's work, not how fast the
//! scheduler and kwok start 3,000 pods on two cores; the controller-manager still syncs every
//! Deployment. The operator runs as its own process, so its memory is its own.

use std::collections::{BTreeMap, HashMap};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::watcher;
use serde_json::{Value, json};
use trading_agent_tests::cluster::{self, TestNamespace};
use trading_agent_tests::process::{free_loopback_port, wait_for_tcp};
use trading_agent_tests::proxy::FaultProxy;
use trading_agent_tests::registry::{Notifications, Pusher, RegistryOptions, TempRegistry};

const WEBHOOK_TOKEN: &str = "bench-webhook-token-0123456789";
const REPOSITORY: &str = "acme/bench";
const TAG: &str = "stable";
const IN_FLIGHT: usize = 50;
/// The operator's default `--concurrency` (reconciliations at once); each applies its three
/// Deployments at once, so the ceiling's loop keeps three times as many patches in flight.
const OPERATOR_CONCURRENCY: usize = 32;

type BenchResult<T> = Result<T, String>;

struct Args {
    operator: String,
    count: usize,
    interval_s: u64,
    window_intervals: u64,
    replicas: i32,
    /// Extra arguments for the operator (e.g. `--concurrency 16`).
    operator_args: Vec<String>,
    /// Keep the operator's log here (default: a temporary file, shown only if it fails).
    log: Option<String>,
    /// Patches in flight in the ceiling's client loop (0 skips the ceiling).
    ceiling_in_flight: usize,
}

fn parse_args() -> BenchResult<Args> {
    let mut args = Args {
        operator: String::new(),
        count: 1000,
        interval_s: 10,
        window_intervals: 3,
        replicas: 0,
        log: None,
        operator_args: Vec::new(),
        ceiling_in_flight: 3 * OPERATOR_CONCURRENCY,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            return Err(
                "usage: ta-bench-operator --operator BIN [--count 1000] [--interval SECONDS (10)] \
                 [--window-intervals 3] [--replicas 0] [--ceiling-in-flight 96 (0: no ceiling)] [--log FILE (the operator's log; RUST_LOG sets its level, default warn)] [--operator-arg ARG]..."
                    .into(),
            );
        }
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let number = || value.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--operator" => args.operator = value.clone(),
            "--count" => args.count = number()? as usize,
            "--interval" => args.interval_s = number()?.max(1),
            "--window-intervals" => args.window_intervals = number()?.max(1),
            "--replicas" => args.replicas = number()? as i32,
            "--log" => args.log = Some(value.clone()),
            "--ceiling-in-flight" => args.ceiling_in_flight = number()? as usize,
            "--operator-arg" => args.operator_args.push(value.clone()),
            _ => return Err(format!("unknown flag {flag} (try --help)")),
        }
    }
    if args.operator.is_empty() {
        return Err("--operator BIN is required (try --help)".into());
    }
    Ok(args)
}

fn log(message: impl AsRef<str>) {
    eprintln!("    [operator scale] {}", message.as_ref());
}

/// What the bench's own watches have seen: the digest of every Deployment and, per agent, whether
/// its status is Ready and about its current generation.
#[derive(Default)]
struct Seen {
    deployment_digests: HashMap<String, String>,
    /// The name of each Deployment's (first) container, for the ceiling's patches.
    deployment_containers: HashMap<String, String>,
    agents_ready: HashMap<String, Option<String>>,
}

impl Seen {
    fn deployments_pinned_to(&self, digest: &str) -> usize {
        self.deployment_digests
            .values()
            .filter(|d| d.as_str() == digest)
            .count()
    }

    fn agents_ready_on(&self, digest: &str) -> usize {
        self.agents_ready
            .values()
            .filter(|d| d.as_deref() == Some(digest))
            .count()
    }
}

fn deployment_digest(d: &Deployment) -> Option<String> {
    let (_, digest) = cluster::deployment_image(d)?.rsplit_once('@')?;
    Some(digest.to_owned())
}

/// The digest an agent is Ready on, if its status is Ready=True for its current generation.
fn ready_digest(agent: &DynamicObject) -> Option<String> {
    let status = agent.data.get("status")?;
    let current =
        status.get("observedGeneration").and_then(Value::as_i64) == agent.metadata.generation;
    let ready = status
        .get("conditions")?
        .as_array()?
        .iter()
        .any(|c| c["type"] == "Ready" && c["status"] == "True");
    (current && ready)
        .then(|| status.pointer("/image/digest")?.as_str().map(str::to_owned))
        .flatten()
}

async fn watch_deployments(api: Api<Deployment>, seen: Arc<Mutex<Seen>>) {
    let mut events = watcher(api, watcher::Config::default()).boxed();
    while let Ok(Some(event)) = events.try_next().await {
        let mut seen = seen.lock().expect("seen lock");
        match event {
            watcher::Event::Apply(d) | watcher::Event::InitApply(d) => {
                if let (Some(name), Some(digest)) = (d.metadata.name.clone(), deployment_digest(&d))
                {
                    let container = d
                        .spec
                        .as_ref()
                        .and_then(|s| s.template.spec.as_ref()?.containers.first())
                        .map(|c| c.name.clone())
                        .unwrap_or_default();
                    seen.deployment_containers.insert(name.clone(), container);
                    seen.deployment_digests.insert(name, digest);
                }
            }
            watcher::Event::Delete(d) => {
                let name = d.metadata.name.as_deref().unwrap_or_default();
                seen.deployment_digests.remove(name);
                seen.deployment_containers.remove(name);
            }
            watcher::Event::Init | watcher::Event::InitDone => {}
        }
    }
}

async fn watch_agents(api: Api<DynamicObject>, seen: Arc<Mutex<Seen>>) {
    let mut events = watcher(api, watcher::Config::default()).boxed();
    while let Ok(Some(event)) = events.try_next().await {
        let mut seen = seen.lock().expect("seen lock");
        match event {
            watcher::Event::Apply(a) | watcher::Event::InitApply(a) => {
                let name = a.metadata.name.clone().unwrap_or_default();
                seen.agents_ready.insert(name, ready_digest(&a));
            }
            watcher::Event::Delete(a) => {
                seen.agents_ready
                    .remove(a.metadata.name.as_deref().unwrap_or_default());
            }
            watcher::Event::Init | watcher::Event::InitDone => {}
        }
    }
}

/// Polls the watched state every 10 ms until `done` holds; the time it first held, or an error
/// naming `what` and the last progress after `timeout`.
async fn wait_for(
    seen: &Mutex<Seen>,
    what: &str,
    timeout: Duration,
    operator: &mut OperatorProcess,
    done: impl Fn(&Seen) -> (bool, String),
) -> BenchResult<Instant> {
    let deadline = Instant::now() + timeout;
    let mut last_report = Instant::now();
    loop {
        let (ok, progress) = done(&seen.lock().expect("seen lock"));
        if ok {
            return Ok(Instant::now());
        }
        operator.check_alive()?;
        if Instant::now() > deadline {
            return Err(format!("{what}: not done after {timeout:?} ({progress})"));
        }
        if last_report.elapsed() > Duration::from_secs(5) {
            log(format!("{what}: {progress}"));
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until all `total` Deployments carry `digest`.
async fn wait_pinned(
    seen: &Mutex<Seen>,
    what: &str,
    digest: &str,
    total: usize,
    timeout: Duration,
    operator: &mut OperatorProcess,
) -> BenchResult<Instant> {
    wait_for(seen, what, timeout, operator, |s| {
        let n = s.deployments_pinned_to(digest);
        (n >= total, format!("{n}/{total} Deployments pinned"))
    })
    .await
}

/// Waits until all `total` agents are Ready on `digest`.
async fn wait_ready(
    seen: &Mutex<Seen>,
    what: &str,
    digest: &str,
    total: usize,
    timeout: Duration,
    operator: &mut OperatorProcess,
) -> BenchResult<Instant> {
    wait_for(seen, what, timeout, operator, |s| {
        let n = s.agents_ready_on(digest);
        (n >= total, format!("{n}/{total} agents Ready"))
    })
    .await
}

/// The operator under test, as a child process; stopped with SIGTERM when dropped.
struct OperatorProcess {
    child: Child,
    metrics_port: u16,
    log_path: std::path::PathBuf,
    /// Stopped on purpose (for the ceiling): its exit is no failure.
    stopped: bool,
}

impl OperatorProcess {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then SIGKILL after 15 s; waits for the exit.
    fn stop(&mut self) {
        self.stopped = true;
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn check_alive(&mut self) -> BenchResult<()> {
        if self.stopped {
            return Ok(());
        }
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!(
                "the operator exited ({status}); the end of its log:\n{}",
                tail(&self.log_path, 3000)
            )),
            Err(e) => Err(format!("checking the operator: {e}")),
        }
    }

    /// (VmRSS, VmHWM) in KiB.
    fn memory_kib(&self) -> (u64, u64) {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// A counter from the operator's /metrics.
    async fn metric(&self, name: &str) -> f64 {
        let url = format!("http://127.0.0.1:{}/metrics", self.metrics_port);
        let text = match reqwest::get(&url).await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(f64::NAN)
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        if !self.stopped {
            self.stop();
        }
    }
}

/// (busy, total) CPU time of the whole machine so far, in clock ticks (from /proc/stat).
fn machine_cpu_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: u64 = ticks.iter().sum();
    // idle and iowait
    let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// Share of the machine's CPU busy between two [`machine_cpu_ticks`] readings.
fn busy_share(before: (u64, u64), after: (u64, u64)) -> f64 {
    let total = after.1.saturating_sub(before.1).max(1);
    after.0.saturating_sub(before.0) as f64 / total as f64
}

/// CPU seconds (user + system) a process has used so far.
fn process_cpu_s(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat(5), i.e. 11 and 12 after the name.
    (ticks(11) + ticks(12)) / clock_ticks_per_second()
}

/// The processes whose CPU time is accounted during the convergence, by their `comm` (at most 15
/// characters, so the controller-manager's is cut short).
const ACCOUNTED: [&str; 6] = [
    "kube-apiserver",
    "etcd",
    "kube-controller",
    "kube-scheduler",
    "kwok",
    "trading-agent-o",
];

/// CPU seconds used so far by every process named in [`ACCOUNTED`], summed per name.
fn cpu_s_by_process() -> HashMap<&'static str, f64> {
    let mut by_name = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return by_name;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if let Some(name) = ACCOUNTED.iter().find(|n| **n == comm.trim()) {
            *by_name.entry(*name).or_insert(0.0) += process_cpu_s(pid);
        }
    }
    by_name
}

/// The harness's processes by the PIDs `tests/harness/cluster.sh` recorded beside the kubeconfig
/// (`<cache>/cluster/pids/NAME.pid`), those still alive: another cluster on the same machine (the
/// shared one, say) is never counted.
fn harness_pids() -> Vec<(String, u32)> {
    let Some(dir) = cluster::kubeconfig_path().parent().map(|d| d.join("pids")) else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let name = e.path().file_stem()?.to_str()?.to_owned();
            let pid = std::fs::read_to_string(e.path())
                .ok()?
                .trim()
                .parse()
                .ok()?;
            std::path::Path::new(&format!("/proc/{pid}"))
                .exists()
                .then_some((name, pid))
        })
        .collect()
}

/// CPU seconds so far of each harness process (by recorded PID; by name if the harness recorded
/// none), of the operator while it runs and of this bench (the ceiling's client).
fn cpu_by_process(operator: Option<u32>) -> BTreeMap<String, f64> {
    let mut by_name: BTreeMap<String, f64> = harness_pids()
        .into_iter()
        .map(|(name, pid)| (name, process_cpu_s(pid)))
        .collect();
    if by_name.is_empty() {
        by_name = cpu_s_by_process()
            .into_iter()
            .filter(|(name, _)| *name != "trading-agent-o")
            .map(|(name, cpu)| (name.to_owned(), cpu))
            .collect();
    }
    if let Some(pid) = operator {
        by_name.insert("operator".into(), process_cpu_s(pid));
    }
    by_name.insert("bench".into(), process_cpu_s(std::process::id()));
    by_name
}

/// Write requests the API server has answered so far, by "VERB resource[/subresource][ (group)]",
/// from its own `apiserver_request_total` (server-side apply is its own verb, APPLY).
type Writes = BTreeMap<String, f64>;

async fn apiserver_writes(client: &kube::Client) -> BenchResult<Writes> {
    let request = http::Request::get("/metrics")
        .body(Vec::new())
        .map_err(|e| e.to_string())?;
    let text = client
        .request_text(request)
        .await
        .map_err(|e| format!("reading the API server's /metrics: {e}"))?;
    Ok(parse_writes(&text))
}

fn parse_writes(metrics: &str) -> Writes {
    const WRITE_VERBS: [&str; 6] = [
        "POST",
        "PUT",
        "PATCH",
        "APPLY",
        "DELETE",
        "DELETECOLLECTION",
    ];
    let mut writes = Writes::new();
    for line in metrics.lines() {
        let Some((labels, value)) = line
            .strip_prefix("apiserver_request_total{")
            .and_then(|rest| rest.rsplit_once("} "))
        else {
            continue;
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        let label = |name: &str| {
            labels
                .split(',')
                .find_map(|kv| {
                    kv.strip_prefix(name)?
                        .strip_prefix("=\"")?
                        .strip_suffix('"')
                })
                .unwrap_or_default()
        };
        let verb = label("verb");
        if !WRITE_VERBS.contains(&verb) || !label("dry_run").is_empty() {
            continue;
        }
        let mut key = format!("{verb} {}", label("resource"));
        if !label("subresource").is_empty() {
            key = format!("{key}/{}", label("subresource"));
        }
        if !label("group").is_empty() {
            key = format!("{key} ({})", label("group"));
        }
        // A refused write (409 conflict, 422) still cost the API server a round trip: kept, marked.
        if !label("code").starts_with('2') {
            key = format!("{key} [{}]", label("code"));
        }
        *writes.entry(key).or_insert(0.0) += value;
    }
    writes
}

/// The writes between two readings, without the heartbeats that go on whatever the bench does:
/// Leases (kwok's nodes, the components) and kwok's node status.
fn writes_between(before: &Writes, after: &Writes) -> Writes {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(k, v)| *v > 0.0 && !k.contains(" leases") && !k.contains(" nodes/status"))
        .collect()
}

/// Of those, the operator's own: its server-side applies (children and status; nobody else here
/// applies) and its events (events.k8s.io; the controller-manager writes core/v1 events).
fn operator_writes(writes: &Writes) -> f64 {
    writes
        .iter()
        .filter(|(k, _)| k.starts_with("APPLY ") || k.ends_with("(events.k8s.io)"))
        .map(|(_, v)| v)
        .sum::<f64>()
        + 0.0 // an empty sum is -0.0
}

/// One phase's API server writes and CPU seconds by process.
struct Phase {
    started: Instant,
    writes: Writes,
    cpu: BTreeMap<String, f64>,
}

impl Phase {
    async fn start(client: &kube::Client, operator: Option<u32>) -> BenchResult<Self> {
        Ok(Self {
            writes: apiserver_writes(client).await?,
            cpu: cpu_by_process(operator),
            started: Instant::now(),
        })
    }

    /// `per`: what one unit of the phase is (an agent, a Deployment), to divide by.
    async fn finish(
        &self,
        client: &kube::Client,
        operator: Option<u32>,
        per: usize,
    ) -> BenchResult<Value> {
        let elapsed = self.started.elapsed().as_secs_f64();
        let writes = writes_between(&self.writes, &apiserver_writes(client).await?);
        let total: f64 = writes.values().sum();
        let by_operator = operator_writes(&writes);
        let cpu: BTreeMap<String, f64> = cpu_by_process(operator)
            .into_iter()
            .filter_map(|(name, cpu)| Some((name.clone(), cpu - self.cpu.get(&name)?)))
            .collect();
        let per = per.max(1) as f64;
        Ok(json!({
            "elapsed_s": elapsed,
            "writes": writes,
            "writes_total": total,
            "writes_operator": by_operator,
            "writes_total_per_unit": total / per,
            "writes_operator_per_unit": by_operator / per,
            "cpu_s": cpu,
        }))
    }
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

fn tail(path: &std::path::Path, bytes: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text[text.len().saturating_sub(bytes)..].to_owned()
}

fn agent(name: &str, image: &str, interval_s: u64, replicas: i32) -> Value {
    json!({
        "apiVersion": "tradingagents.dev/v1alpha1",
        "kind": "TradingAgent",
        "metadata": {"name": name},
        "spec": {
            "image": image,
            "imageUpdate": {"interval": format!("{interval_s}s")},
            "database": {"secretRef": {"name": "bench-db", "key": "url"}},
            "api": {"replicas": replicas},
            "bot": {"replicas": replicas},
            "strategy": {"replicas": replicas},
        },
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let client = match cluster::client().await {
        Ok(client) => client,
        Err(e) => {
            eprintln!("ta-bench-operator: {e}");
            return ExitCode::FAILURE;
        }
    };
    let namespace = match TestNamespace::create(&client, "ta-bench-scale").await {
        Ok(ns) => ns,
        Err(e) => {
            eprintln!("ta-bench-operator: {e}");
            return ExitCode::FAILURE;
        }
    };
    let ns = namespace.name.clone();
    let result = run(&client, &ns, &args).await;
    log(format!("deleting namespace {ns}"));
    if let Err(e) = namespace.delete(Duration::from_secs(180)).await {
        log(format!("{e}"));
    }
    match result {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ta-bench-operator: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(client: &kube::Client, ns: &str, args: &Args) -> BenchResult<Value> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.get_opt("tradingagents.tradingagents.dev")
        .await
        .map_err(|e| format!("reading the CRD: {e}"))?
        .ok_or("the TradingAgent CRD is not installed: kubectl apply -f crds/tradingagents.yaml")?;
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "bench-db"},
        "stringData": {"url": "postgres://bench@postgres:5432/bench"},
    }))
    .map_err(|e| e.to_string())?;
    Api::<Secret>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &secret)
        .await
        .map_err(|e| format!("creating the database Secret: {e}"))?;

    // A registry that notifies the operator, a proxy in front of it that counts requests, and a
    // second registry process on the same storage that tells no one.
    let webhook_port = free_loopback_port().map_err(|e| e.to_string())?;
    let notified = TempRegistry::start(RegistryOptions {
        notifications: Some(Notifications {
            url: format!("http://127.0.0.1:{webhook_port}/registry/notifications"),
            bearer_token: Some(WEBHOOK_TOKEN.to_owned()),
        }),
        ..RegistryOptions::default()
    })
    .map_err(|e| format!("registry: {e}"))?;
    let silent = TempRegistry::start(RegistryOptions {
        storage_dir: Some(notified.storage_dir()),
        ..RegistryOptions::default()
    })
    .map_err(|e| format!("second registry: {e}"))?;
    let proxy = FaultProxy::start(&notified.host())
        .await
        .map_err(|e| format!("proxy: {e}"))?;
    let d1 = Pusher::new(&notified.host())
        .push_image(REPOSITORY, TAG, "scale-1")
        .await
        .map_err(|e| format!("push: {e}"))?;
    let image = format!("{}/{REPOSITORY}:{TAG}", proxy.host());

    let work = tempfile::Builder::new()
        .prefix("ta-bench-operator-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let log_path = args
        .log
        .as_ref()
        .map_or_else(|| work.path().join("operator.log"), Into::into);
    let metrics_port = free_loopback_port().map_err(|e| e.to_string())?;
    let child = Command::new(&args.operator)
        .args([
            "--namespace",
            ns,
            "--leader-election=false",
            "--log-format",
            "json",
        ])
        .args(["--metrics-addr", &format!("127.0.0.1:{metrics_port}")])
        .args(["--webhook-addr", &format!("127.0.0.1:{webhook_port}")])
        .args(["--insecure-registry", &proxy.host()])
        .args(&args.operator_args)
        .env("WEBHOOK_TOKEN", WEBHOOK_TOKEN)
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .env("KUBECONFIG", cluster::kubeconfig_path())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log_path).map_err(|e| e.to_string())?)
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("starting {}: {e}", args.operator))?;
    let mut operator = OperatorProcess {
        child,
        metrics_port,
        log_path,
        stopped: false,
    };
    wait_for_tcp(("127.0.0.1", metrics_port), Duration::from_secs(30))
        .map_err(|e| e.to_string())?;
    let (rss_idle_kib, _) = operator.memory_kib();

    let seen = Arc::new(Mutex::new(Seen::default()));
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("tradingagents.dev", "v1alpha1", "TradingAgent"),
        "tradingagents",
    );
    let agents: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource);
    let watches = [
        tokio::spawn(watch_deployments(
            Api::namespaced(client.clone(), ns),
            seen.clone(),
        )),
        tokio::spawn(watch_agents(agents.clone(), seen.clone())),
    ];
    let count = args.count;
    let deployments = 3 * count;
    // A busy 2-core machine needed more than 300 s for 1,000 agents to be Ready again after a push.
    let ready_timeout = Duration::from_secs(300 + count as u64);

    // 1. COUNT agents at once.
    log(format!(
        "creating {count} TradingAgents at once ({IN_FLIGHT} requests in flight), {} replica(s) per role",
        args.replicas
    ));
    let converge_phase = Phase::start(client, Some(operator.pid())).await?;
    let start = Instant::now();
    let cpu_before = machine_cpu_ticks();
    let operator_cpu_before = process_cpu_s(operator.pid());
    futures::stream::iter(0..count)
        .map(|i| {
            let agents = agents.clone();
            let body = agent(
                &format!("agent-{i:04}"),
                &image,
                args.interval_s,
                args.replicas,
            );
            async move {
                let object: DynamicObject =
                    serde_json::from_value(body).map_err(|e| e.to_string())?;
                agents
                    .create(&PostParams::default(), &object)
                    .await
                    .map_err(|e| format!("creating a TradingAgent: {e}"))
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .try_collect::<Vec<_>>()
        .await?;
    let created_s = start.elapsed().as_secs_f64();
    log(format!(
        "created in {created_s:.1} s; waiting for the operator"
    ));
    let pinned_at = wait_pinned(
        &seen,
        "all Deployments pinned",
        &d1,
        deployments,
        Duration::from_secs(600),
        &mut operator,
    )
    .await?;
    let ready_at = wait_ready(
        &seen,
        "all agents Ready",
        &d1,
        count,
        Duration::from_secs(600),
        &mut operator,
    )
    .await?;
    let (rss_kib, hwm_kib) = operator.memory_kib();
    let machine_cpu_busy = busy_share(cpu_before, machine_cpu_ticks());
    let create_phase = converge_phase
        .finish(client, Some(operator.pid()), count)
        .await?;
    let converge = json!({
        "machine_cpu_busy": machine_cpu_busy,
        "operator_cpu_s": process_cpu_s(operator.pid()) - operator_cpu_before,
        "cpu_s_by_process": create_phase["cpu_s"].clone(),
        "elapsed_s": start.elapsed().as_secs_f64(),
        "created_s": created_s,
        "deployments_pinned_s": (pinned_at - start).as_secs_f64(),
        "ready_s": (ready_at - start).as_secs_f64(),
        "rss_kib": rss_kib,
        "hwm_kib": hwm_kib,
    });
    log(format!("{converge}"));
    let children = children_per_agent(client, ns, count).await?;

    // 2. Registry requests per polling interval, once every agent polls.
    let interval = Duration::from_secs(args.interval_s);
    tokio::time::sleep(interval).await;
    let window = interval * args.window_intervals as u32;
    log(format!(
        "counting manifest requests over {} intervals of {}s",
        args.window_intervals, args.interval_s
    ));
    let reconciles_before = operator
        .metric("trading_agent_operator_reconciliations_total")
        .await;
    let applies_before = operator
        .metric("trading_agent_operator_applies_total")
        .await;
    let polling_phase = Phase::start(client, Some(operator.pid())).await?;
    let window_start = Instant::now();
    tokio::time::sleep(window).await;
    let idle_phase = polling_phase
        .finish(client, Some(operator.pid()), args.window_intervals as usize)
        .await?;
    let manifest_requests = proxy
        .manifest_requests()
        .iter()
        .filter(|r| r.at >= window_start && r.at < window_start + window)
        .count();
    let polling = json!({
        "interval_s": args.interval_s,
        "intervals": args.window_intervals,
        "manifest_requests": manifest_requests,
        "per_interval": manifest_requests as f64 / args.window_intervals as f64,
        "reconciliations": operator.metric("trading_agent_operator_reconciliations_total").await - reconciles_before,
        "applies": operator.metric("trading_agent_operator_applies_total").await - applies_before,
        "phase_per_interval": idle_phase,
    });
    log(format!("{polling}"));

    // 3. A push the registry notifies the operator about.
    log("pushing a new digest to the notifying registry");
    let notified_phase = Phase::start(client, Some(operator.pid())).await?;
    let d2 = Pusher::new(&notified.host())
        .push_image(REPOSITORY, TAG, "scale-2")
        .await
        .map_err(|e| format!("push: {e}"))?;
    let pushed = Instant::now();
    let requests_before = proxy.manifest_requests().len();
    let notified_at = wait_pinned(
        &seen,
        "notified push re-pinned",
        &d2,
        deployments,
        ready_timeout,
        &mut operator,
    )
    .await?;
    let notified_s = (notified_at - pushed).as_secs_f64();
    // Up to the moment every Deployment carries the digest: what the ceiling is compared with.
    let notified_repin_phase = notified_phase
        .finish(client, Some(operator.pid()), count)
        .await?;
    let notified_requests = proxy.manifest_requests().len() - requests_before;
    log(format!(
        "notified push: all {deployments} Deployments re-pinned {notified_s:.2} s after the push ({notified_requests} manifest requests)"
    ));
    let settle = wait_ready(
        &seen,
        "agents Ready on the new digest",
        &d2,
        count,
        ready_timeout,
        &mut operator,
    )
    .await?;
    let notified_ready_s = (settle - pushed).as_secs_f64();
    let notified_phase = notified_phase
        .finish(client, Some(operator.pid()), count)
        .await?;
    log(format!(
        "notified push: {} API writes per agent ({} the operator's), CPU s {}",
        notified_phase["writes_total_per_unit"],
        notified_phase["writes_operator_per_unit"],
        notified_phase["cpu_s"]
    ));

    // 4. A push nobody is told about: polling alone.
    log("pushing a new digest through the silent registry (same storage, no notification)");
    let polled_phase = Phase::start(client, Some(operator.pid())).await?;
    let d3 = Pusher::new(&silent.host())
        .push_image(REPOSITORY, TAG, "scale-3")
        .await
        .map_err(|e| format!("push: {e}"))?;
    let pushed = Instant::now();
    let polled_at = wait_pinned(
        &seen,
        "silent push re-pinned",
        &d3,
        deployments,
        interval * 4 + Duration::from_secs(120),
        &mut operator,
    )
    .await?;
    let polled_s = (polled_at - pushed).as_secs_f64();
    log(format!(
        "silent push: all {deployments} Deployments re-pinned {polled_s:.2} s after the push (interval {}s)",
        args.interval_s
    ));
    wait_ready(
        &seen,
        "agents Ready on the polled digest",
        &d3,
        count,
        ready_timeout,
        &mut operator,
    )
    .await?;
    let polled_phase = polled_phase
        .finish(client, Some(operator.pid()), count)
        .await?;

    // 5. The end of the lifecycle: every agent deleted, the garbage collector removes the rest.
    let deployment_api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let specs = deployment_api
        .list(&ListParams::default())
        .await
        .map_err(|e| format!("listing the Deployments: {e}"))?;
    log(format!(
        "deleting the {count} TradingAgents ({IN_FLIGHT} requests in flight)"
    ));
    let delete_phase = Phase::start(client, Some(operator.pid())).await?;
    futures::stream::iter(0..count)
        .map(|i| {
            let agents = agents.clone();
            async move {
                agents
                    .delete(&format!("agent-{i:04}"), &DeleteParams::background())
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("deleting a TradingAgent: {e}"))
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .try_collect::<Vec<_>>()
        .await?;
    wait_for(
        &seen,
        "Deployments garbage-collected",
        ready_timeout,
        &mut operator,
        |s| {
            let n = s.deployment_digests.len();
            (n == 0, format!("{n} Deployments left"))
        },
    )
    .await?;
    wait_replicasets_gone(client, ns).await?;
    let delete_phase = delete_phase
        .finish(client, Some(operator.pid()), count)
        .await?;
    let (rss_kib, hwm_kib) = operator.memory_kib();
    let operator_cpu_s = process_cpu_s(operator.pid());
    let operator_metrics = json!({
        "reconciliations": operator.metric("trading_agent_operator_reconciliations_total").await,
        "applies": operator.metric("trading_agent_operator_applies_total").await,
        "applies_skipped": operator.metric("trading_agent_operator_applies_skipped_total").await,
        "webhook_triggered": operator.metric("trading_agent_operator_webhook_notifications_total{result=\"triggered\"}").await,
    });

    // 6. The ceiling, with the operator stopped.
    operator.stop();
    let ceiling = if args.ceiling_in_flight > 0 {
        Some(
            ceiling(
                client,
                ns,
                &seen,
                &silent,
                &proxy,
                specs.items,
                args.ceiling_in_flight,
                &mut operator,
            )
            .await?,
        )
    } else {
        None
    };
    for watch in watches {
        watch.abort();
    }
    let lifecycle = json!({
        "children_per_agent": children,
        "create": create_phase,
        "update_notified": notified_phase,
        "update_notified_until_repinned": notified_repin_phase,
        "update_polled": polled_phase,
        "delete": delete_phase,
    });
    Ok(json!({
        "count": count,
        "replicas": args.replicas,
        "rss_idle_kib": rss_idle_kib,
        "converge": converge,
        "polling": polling,
        "push_notified": {"repinned_s": notified_s, "ready_s": notified_ready_s, "manifest_requests": notified_requests},
        "push_polled": {"repinned_s": polled_s, "interval_s": args.interval_s},
        "rss_kib": rss_kib,
        "hwm_kib": hwm_kib,
        "reconciliations": operator_metrics["reconciliations"],
        "applies": operator_metrics["applies"],
        "applies_skipped": operator_metrics["applies_skipped"],
        "webhook_triggered": operator_metrics["webhook_triggered"],
        "operator_cpu_s": operator_cpu_s,
        "lifecycle": lifecycle,
        "ceiling": ceiling,
    }))
}

/// Objects the operator made per agent, by kind (read once all agents converged).
async fn children_per_agent(client: &kube::Client, ns: &str, count: usize) -> BenchResult<Value> {
    use k8s_openapi::api::core::v1::Service;
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    let owned = |refs: Option<
        &Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>,
    >| { refs.is_some_and(|r| r.iter().any(|o| o.kind == "TradingAgent")) };
    let lp = ListParams::default();
    let per = count.max(1) as f64;
    let deployments = Api::<Deployment>::namespaced(client.clone(), ns)
        .list(&lp)
        .await
        .map_err(|e| format!("listing Deployments: {e}"))?
        .items
        .iter()
        .filter(|o| owned(o.metadata.owner_references.as_ref()))
        .count();
    let services = Api::<Service>::namespaced(client.clone(), ns)
        .list(&lp)
        .await
        .map_err(|e| format!("listing Services: {e}"))?
        .items
        .iter()
        .filter(|o| owned(o.metadata.owner_references.as_ref()))
        .count();
    let pdbs = Api::<PodDisruptionBudget>::namespaced(client.clone(), ns)
        .list(&lp)
        .await
        .map_err(|e| format!("listing PodDisruptionBudgets: {e}"))?
        .items
        .iter()
        .filter(|o| owned(o.metadata.owner_references.as_ref()))
        .count();
    Ok(json!({
        "deployments": deployments as f64 / per,
        "services": services as f64 / per,
        "poddisruptionbudgets": pdbs as f64 / per,
    }))
}

/// Waits (3 minutes at most) until the garbage collector has removed every ReplicaSet.
async fn wait_replicasets_gone(client: &kube::Client, ns: &str) -> BenchResult<()> {
    use k8s_openapi::api::apps::v1::ReplicaSet;
    let api = Api::<ReplicaSet>::namespaced(client.clone(), ns);
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let left = api
            .list_metadata(&ListParams::default())
            .await
            .map_err(|e| format!("listing ReplicaSets: {e}"))?
            .items
            .len();
        if left == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{left} ReplicaSets left 180 s after the agents were deleted"
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The ceiling: the operator's Deployments again (same names and specs, no owner), created as plain
/// Deployments and settled; then a plain client loop patches every one's image to a new digest,
/// `in_flight` at once. The first patch → every Deployment seen with the new digest.
#[allow(clippy::too_many_arguments)]
async fn ceiling(
    client: &kube::Client,
    ns: &str,
    seen: &Mutex<Seen>,
    registry: &TempRegistry,
    proxy: &FaultProxy,
    specs: Vec<Deployment>,
    in_flight: usize,
    operator: &mut OperatorProcess,
) -> BenchResult<Value> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let total = specs.len();
    let first_digest = specs
        .first()
        .and_then(deployment_digest)
        .ok_or("no Deployment to copy for the ceiling")?;
    log(format!(
        "ceiling: creating {total} plain Deployments (the operator is stopped)"
    ));
    futures::stream::iter(specs)
        .map(|d| {
            let api = api.clone();
            async move {
                let copy = Deployment {
                    metadata: kube::api::ObjectMeta {
                        name: d.metadata.name.clone(),
                        labels: d.metadata.labels.clone(),
                        ..Default::default()
                    },
                    spec: d.spec.clone(),
                    status: None,
                };
                api.create(&PostParams::default(), &copy)
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("creating a plain Deployment: {e}"))
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .try_collect::<Vec<_>>()
        .await?;
    wait_pinned(
        seen,
        "ceiling's Deployments created",
        &first_digest,
        total,
        Duration::from_secs(600),
        operator,
    )
    .await?;
    wait_deployments_settled(&api, total).await?;

    let digest = Pusher::new(&registry.host())
        .push_image(REPOSITORY, TAG, "ceiling")
        .await
        .map_err(|e| format!("push: {e}"))?;
    let image = format!("{}/{REPOSITORY}@{digest}", proxy.host());
    let targets: Vec<(String, String)> = seen
        .lock()
        .expect("seen lock")
        .deployment_containers
        .iter()
        .map(|(name, container)| (name.clone(), container.clone()))
        .collect();
    log(format!(
        "ceiling: patching {total} Deployments' image, {in_flight} requests in flight"
    ));
    let phase = Phase::start(client, None).await?;
    let started = Instant::now();
    futures::stream::iter(targets)
        .map(|(name, container)| {
            let api = api.clone();
            let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": container, "image": image}]}}}});
            async move {
                api.patch(&name, &PatchParams::default(), &Patch::Strategic(&patch))
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("patching {name}: {e}"))
            }
        })
        .buffer_unordered(in_flight.max(1))
        .try_collect::<Vec<_>>()
        .await?;
    let responses_s = started.elapsed().as_secs_f64();
    let pinned_at = wait_pinned(
        seen,
        "ceiling: all patched",
        &digest,
        total,
        Duration::from_secs(600),
        operator,
    )
    .await?;
    let repinned_s = (pinned_at - started).as_secs_f64();
    let phase = phase.finish(client, None, total).await?;
    log(format!(
        "ceiling: {total} Deployments patched in {responses_s:.2} s, all seen {repinned_s:.2} s after the first patch"
    ));
    Ok(json!({
        "deployments": total,
        "in_flight": in_flight,
        "responses_s": responses_s,
        "repinned_s": repinned_s,
        "phase": phase,
    }))
}

/// Waits (10 minutes at most) until the controller-manager has observed every Deployment's current
/// generation, so the ceiling's patches meet a quiet cluster as the operator's push did.
async fn wait_deployments_settled(api: &Api<Deployment>, total: usize) -> BenchResult<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(|e| format!("listing Deployments: {e}"))?;
        let settled = list
            .items
            .iter()
            .filter(|d| {
                d.status.as_ref().and_then(|s| s.observed_generation) == d.metadata.generation
            })
            .count();
        if settled >= total {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "ceiling: {settled}/{total} Deployments observed after 600 s"
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
