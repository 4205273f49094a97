//! Leader election and crashes: two operators at once, only the Lease holder writes; an operator
//! killed with SIGKILL at random moments during 50 create/update/delete cycles converges after
//! restart, with no duplicate or orphaned objects.
//!
//! Crashes need a real process: this test binary re-executes itself with
//! `--exact child_operator_process` and an environment variable, and that child runs the operator
//! until it is killed.

#[path = "operator_support.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DeleteParams, ListParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use support::*;
use trading_agent_operator::TradingAgent;
use trading_agent_operator::reconcile::conditions::find_condition;
use trading_agent_tests::cluster::TestNamespace;

const CHILD_ENV: &str = "TRADING_AGENT_OPERATOR_TEST_CHILD";
const MANAGED: &str = "app.kubernetes.io/managed-by=trading-agent-operator";

/// Not a test of its own: the body of the child process (does nothing unless [`CHILD_ENV`] is set).
#[test]
fn child_operator_process() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut parts = spec.split('|');
    let (namespace, identity, lease) = (
        parts.next().unwrap().to_owned(),
        parts.next().unwrap().to_owned(),
        parts.next().unwrap().to_owned(),
    );
    trading_agent_operator::runtime::telemetry::init(
        trading_agent_operator::runtime::telemetry::LogFormat::Text,
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        let client = client().await;
        let _operator = RunningOperator::start_with(
            &client,
            OperatorOptions {
                namespace,
                leader: Some((lease, identity)),
            },
        )
        .await;
        // Runs until killed.
        std::future::pending::<()>().await;
    });
}

/// An operator in a child process, killed (SIGKILL) when dropped.
struct OperatorProcess {
    child: Child,
}

impl OperatorProcess {
    fn spawn(namespace: &str, identity: &str, lease: &str) -> Self {
        let log = std::env::temp_dir().join(format!("{namespace}-{identity}.log"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("child log");
        let child = Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "child_operator_process",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(CHILD_ENV, format!("{namespace}|{identity}|{lease}"))
            .env("RUST_LOG", "info")
            .stdout(Stdio::from(file.try_clone().unwrap()))
            .stderr(Stdio::from(file))
            .spawn()
            .expect("spawn the operator process");
        Self { child }
    }

    /// SIGKILL: no shutdown, no Lease release, requests cut mid-flight.
    fn kill(mut self) {
        self.kill_now();
    }

    fn kill_now(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        self.kill_now();
    }
}

/// A small deterministic generator (xorshift), seeded from the clock and printed, so a failing
/// run can be replayed with `CHAOS_SEED`.
struct Rng(u64);

impl Rng {
    fn new() -> Self {
        let seed = std::env::var("CHAOS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        println!("CHAOS_SEED={seed}");
        Self(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

async fn lease_holder(client: &Client, namespace: &str, lease: &str) -> Option<String> {
    Api::<Lease>::namespaced(client.clone(), namespace)
        .get_opt(lease)
        .await
        .ok()
        .flatten()
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
        .filter(|h| !h.is_empty())
}

#[tokio::test]
async fn only_the_lease_holder_writes_and_a_standby_takes_over() {
    let client = client().await;
    install_crd(&client).await;
    let namespace = TestNamespace::create_restricted(&client, "op-leader")
        .await
        .unwrap();
    let ns = namespace.name.clone();
    create_db_secret(&client, &ns).await;
    let lease = "trading-agent-operator";
    let options = |identity: &str| OperatorOptions {
        namespace: ns.clone(),
        leader: Some((lease.to_owned(), identity.to_owned())),
    };

    let first = RunningOperator::start_with(&client, options("first")).await;
    eventually("the first operator leads", Duration::from_secs(30), || {
        let m = first.metrics.clone();
        async move { (m.leader.get() == 1).then_some(()) }
    })
    .await;
    let second = RunningOperator::start_with(&client, options("second")).await;

    apply_agent(&client, &ns, &agent("alpha", json!({}))).await;
    wait_condition(
        &client,
        &ns,
        "alpha",
        "Ready",
        "True",
        None,
        Duration::from_secs(60),
    )
    .await;
    patch_spec(&client, &ns, "alpha", json!({"bot": {"replicas": 2}})).await;
    wait_condition(
        &client,
        &ns,
        "alpha",
        "Ready",
        "True",
        None,
        Duration::from_secs(60),
    )
    .await;

    assert_eq!(
        lease_holder(&client, &ns, lease).await.as_deref(),
        Some("first")
    );
    assert!(first.metrics.reconciliations.get() > 0);
    assert!(first.metrics.status_updates.get() > 0);
    assert_eq!(second.metrics.leader.get(), 0, "one leader at a time");
    assert_eq!(
        second.metrics.reconciliations.get(),
        0,
        "the standby never reconciles"
    );
    assert_eq!(
        second.metrics.status_updates.get(),
        0,
        "the standby never writes"
    );
    let (code, body) = second.get("/readyz").await;
    assert_eq!(code, 200, "a standby is ready to take over: {body}");
    assert!(body.contains("standby"), "{body}");

    // A graceful stop releases the Lease: the standby takes over without waiting for expiry.
    let stopped = Instant::now();
    first.stop().await;
    let holder = lease_holder(&client, &ns, lease).await;
    assert!(
        holder.is_none() || holder.as_deref() == Some("second"),
        "the stopped leader released its Lease, holder now {holder:?}"
    );
    // (kube-lease-manager's standby sleeps until the old term would have ended, so the takeover
    // itself still takes up to one Lease duration.)
    eventually("the second operator leads", Duration::from_secs(30), || {
        let m = second.metrics.clone();
        async move { (m.leader.get() == 1).then_some(()) }
    })
    .await;
    println!(
        "standby took over {:?} after the leader stopped",
        stopped.elapsed()
    );
    assert_eq!(
        lease_holder(&client, &ns, lease).await.as_deref(),
        Some("second")
    );
    patch_spec(&client, &ns, "alpha", json!({"strategy": {"replicas": 2}})).await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    eventually(
        "the new leader applies changes",
        Duration::from_secs(60),
        || {
            let deployments = deployments.clone();
            async move {
                let d = deployments.get("alpha-strategy").await.ok()?;
                (d.spec?.replicas == Some(2)).then_some(())
            }
        },
    )
    .await;
    assert!(second.metrics.reconciliations.get() > 0);
    second.stop().await;
    namespace.delete(Duration::from_secs(90)).await.unwrap();
}

#[tokio::test]
async fn a_killed_leader_is_replaced_after_its_lease_expires() {
    let client = client().await;
    install_crd(&client).await;
    let namespace = TestNamespace::create_restricted(&client, "op-failover")
        .await
        .unwrap();
    let ns = namespace.name.clone();
    create_db_secret(&client, &ns).await;
    let lease = "trading-agent-operator";

    let leader = OperatorProcess::spawn(&ns, "doomed", lease);
    apply_agent(&client, &ns, &agent("alpha", json!({}))).await;
    wait_condition(
        &client,
        &ns,
        "alpha",
        "Ready",
        "True",
        None,
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(
        lease_holder(&client, &ns, lease).await.as_deref(),
        Some("doomed")
    );

    let standby = RunningOperator::start_with(
        &client,
        OperatorOptions {
            namespace: ns.clone(),
            leader: Some((lease.to_owned(), "heir".to_owned())),
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(standby.metrics.leader.get(), 0);

    let killed = Instant::now();
    leader.kill();
    eventually("the standby leads", Duration::from_secs(40), || {
        let m = standby.metrics.clone();
        async move { (m.leader.get() == 1).then_some(()) }
    })
    .await;
    let took = killed.elapsed();
    println!("standby took over {took:?} after SIGKILL of the leader");
    assert!(
        took >= Duration::from_secs(2),
        "the killed leader's Lease is honoured until it expires (took {took:?})"
    );
    patch_spec(&client, &ns, "alpha", json!({"api": {"replicas": 2}})).await;
    wait_condition(
        &client,
        &ns,
        "alpha",
        "Ready",
        "True",
        None,
        Duration::from_secs(60),
    )
    .await;
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), &ns);
    assert!(pdbs.get_opt("alpha-api").await.unwrap().is_some());
    standby.stop().await;
    namespace.delete(Duration::from_secs(90)).await.unwrap();
}

#[tokio::test]
async fn sigkill_at_random_moments_during_50_cycles_then_convergence() {
    let client = client().await;
    install_crd(&client).await;
    let namespace = TestNamespace::create_restricted(&client, "op-chaos")
        .await
        .unwrap();
    let ns = namespace.name.clone();
    create_db_secret(&client, &ns).await;
    let lease = "trading-agent-operator";
    let agents: Api<TradingAgent> = Api::namespaced(client.clone(), &ns);
    let mut rng = Rng::new();

    let mut generation = 0;
    let mut operator = OperatorProcess::spawn(&ns, &format!("chaos-{generation}"), lease);
    let mut kills = 0;
    let mut next_kill = 3 + rng.below(6);
    let started = Instant::now();
    for cycle in 0..50u64 {
        let name = format!("agent-{}", rng.below(6));
        match rng.below(10) {
            0 | 1 => {
                let _ = agents.delete(&name, &DeleteParams::background()).await;
            }
            _ => {
                let spec = json!({
                    "api": {"replicas": 1 + rng.below(3)},
                    "bot": {"replicas": rng.below(3)},
                    "strategy": {"replicas": 1 + rng.below(2),
                                 "env": [{"name": "CYCLE", "value": cycle.to_string()}]},
                });
                apply_agent(&client, &ns, &agent(&name, spec)).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.below(400))).await;
        if cycle == next_kill {
            operator.kill();
            kills += 1;
            generation += 1;
            // Sometimes the operator stays down while changes pile up.
            tokio::time::sleep(Duration::from_millis(rng.below(1500))).await;
            operator = OperatorProcess::spawn(&ns, &format!("chaos-{generation}"), lease);
            next_kill = cycle + 3 + rng.below(6);
        }
    }
    println!("50 cycles with {kills} SIGKILLs in {:?}", started.elapsed());
    assert!(kills >= 5);

    // Converged: every agent Ready at its generation, with exactly its objects.
    let converge = Instant::now();
    eventually("everything converges", Duration::from_secs(180), || {
        let client = client.clone();
        let ns = ns.clone();
        async move { converged(&client, &ns).await.then_some(()) }
    })
    .await;
    println!("converged {:?} after the last restart", converge.elapsed());
    drop(operator);
    namespace.delete(Duration::from_secs(120)).await.unwrap();
}

/// Whether every TradingAgent is Ready at its current generation and the namespace holds exactly
/// the objects they own: no duplicates, no orphans.
async fn converged(client: &Client, ns: &str) -> bool {
    let lp = ListParams::default();
    let Ok(agents) = Api::<TradingAgent>::namespaced(client.clone(), ns)
        .list(&lp)
        .await
    else {
        return false;
    };
    let managed = ListParams::default().labels(MANAGED);
    let (Ok(deployments), Ok(services), Ok(pdbs)) = (
        Api::<Deployment>::namespaced(client.clone(), ns)
            .list(&managed)
            .await,
        Api::<Service>::namespaced(client.clone(), ns)
            .list(&managed)
            .await,
        Api::<PodDisruptionBudget>::namespaced(client.clone(), ns)
            .list(&managed)
            .await,
    ) else {
        return false;
    };

    let mut expected_deployments = BTreeMap::new();
    let mut expected_services = BTreeSet::new();
    let mut expected_pdbs = BTreeSet::new();
    for agent in &agents.items {
        if agent.metadata.deletion_timestamp.is_some() {
            return false;
        }
        let Some(status) = &agent.status else {
            return false;
        };
        let ready = find_condition(&status.conditions, "Ready");
        if status.observed_generation != agent.metadata.generation
            || ready.is_none_or(|c| c.status != "True")
        {
            return false;
        }
        let name = agent.name_any();
        let uid = agent.uid().unwrap_or_default();
        for (role, replicas) in [
            ("api", agent.spec.api.replicas),
            ("bot", agent.spec.bot.replicas),
            ("strategy", agent.spec.strategy.replicas),
        ] {
            expected_deployments.insert(format!("{name}-{role}"), (uid.clone(), replicas));
        }
        expected_services.insert((format!("{name}-api"), uid.clone()));
        if agent.spec.api.replicas > 1 {
            expected_pdbs.insert((format!("{name}-api"), uid.clone()));
        }
    }

    let owner = |o: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference]| {
        (o.len() == 1 && o[0].controller == Some(true)).then(|| o[0].uid.clone())
    };
    let actual_deployments: BTreeMap<_, _> = deployments
        .items
        .iter()
        .filter(|d| d.metadata.deletion_timestamp.is_none())
        .map(|d| {
            (
                d.name_any(),
                (
                    owner(d.owner_references()).unwrap_or_default(),
                    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(-1),
                ),
            )
        })
        .collect();
    let actual_services: BTreeSet<_> = services
        .items
        .iter()
        .filter(|s| s.metadata.deletion_timestamp.is_none())
        .map(|s| {
            (
                s.name_any(),
                owner(s.owner_references()).unwrap_or_default(),
            )
        })
        .collect();
    let actual_pdbs: BTreeSet<_> = pdbs
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| {
            (
                p.name_any(),
                owner(p.owner_references()).unwrap_or_default(),
            )
        })
        .collect();
    let all_listed = deployments.items.len() == actual_deployments.len()
        && services.items.len() == actual_services.len()
        && pdbs.items.len() == actual_pdbs.len();
    all_listed
        && actual_deployments == expected_deployments
        && actual_services == expected_services
        && actual_pdbs == expected_pdbs
}
