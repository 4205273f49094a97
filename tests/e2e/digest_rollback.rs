//! Rollback against the harness and a real registry: a digest whose pods never become ready (the
//! harness's kwok stage `pod-start-unready`, keyed on that image's digest, keeps them unready) is
//! rolled back to the last healthy digest after the progress deadline, rejected and reported as
//! `Degraded`; it is not retried while the tag points at it, until the `clear-rejected` annotation
//! clears it (it rolls out again, fails again and is rejected again); a fixed image pushed under
//! the same tag rolls forward again. Figures are printed: run with `--nocapture` to see them.

#[path = "digest_support.rs"]
mod digest;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use digest::support::{
    apply_agent, client, create_db_secret, eventually, install_crd, run_kubectl, wait_condition,
};
use digest::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use trading_agent_operator::TradingAgent;
use trading_agent_operator::reconcile::conditions::find_condition;
use trading_agent_operator::reconcile::rollback::CLEAR_REJECTED_ANNOTATION;
use trading_agent_operator::resource::RolloutOutcome;
use trading_agent_operator::resource::TradingAgentStatus;
use trading_agent_tests::cluster::TestNamespace;
use trading_agent_tests::registry::{Pusher, RegistryOptions, TempRegistry};

const TIMEOUT: Duration = Duration::from_secs(60);
/// The harness's kwok stages: pods of the image whose digest they name never become ready.
const KWOK_STAGES: &str = include_str!("../harness/kwok/stages.yaml");

/// Whether any Deployment of `name` reports `Progressing=False ProgressDeadlineExceeded`.
async fn deadline_exceeded(client: &kube::Client, namespace: &str, name: &str) -> bool {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let list = api
        .list(&ListParams::default().labels(&format!("app.kubernetes.io/instance={name}")))
        .await
        .expect("list Deployments");
    list.items.iter().any(|d| {
        d.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| {
                cs.iter().any(|c| {
                    c.type_ == "Progressing"
                        && c.status == "False"
                        && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
                })
            })
    })
}

#[tokio::test]
async fn a_digest_that_never_becomes_ready_is_rolled_back_rejected_and_rolled_forward_past() {
    let _serial = SERIAL.lock().await;
    let client = client().await;
    install_crd(&client).await;
    let ns = TestNamespace::create(&client, "digest-rollback")
        .await
        .expect("namespace");
    create_db_secret(&client, &ns.name).await;
    let registry = TempRegistry::start(RegistryOptions::default()).expect("registry");
    let operator = DigestOperator::start(&client, &ns.name, &[registry.host()], 0).await;
    let pusher = Pusher::new(&registry.host());
    let agents: Api<TradingAgent> = Api::namespaced(client.clone(), &ns.name);

    // A healthy first digest.
    let good = pusher
        .push_image("acme/rollback", "stable", "good-1")
        .await
        .unwrap();
    let image = format!("{}/acme/rollback:stable", registry.host());
    let mut manifest = tracking_agent("desk", &image, "1s", 1);
    manifest["spec"]["progressDeadlineSeconds"] = 5.into();
    // The fixed digest at the end is verified this long before it counts as healthy.
    manifest["spec"]["imageUpdate"]["verify"] = "3s".into();
    apply_agent(&client, &ns.name, &manifest).await;
    wait_pinned(&client, &ns.name, "desk", &good, TIMEOUT).await;
    let agent = wait_condition(&client, &ns.name, "desk", "Ready", "True", None, TIMEOUT).await;
    let status = agent.status.unwrap();
    assert_eq!(
        status.image.unwrap().last_healthy_digest.as_deref(),
        Some(good.as_str())
    );

    // A digest whose pods never become ready, under the same tag.
    let bad = pusher
        .push_image("acme/rollback", "stable", "never-ready")
        .await
        .unwrap();
    assert!(
        KWOK_STAGES.contains(bad.trim_start_matches("sha256:")),
        "tests/harness/kwok/stages.yaml must key its never-ready stage on {bad} (the digest of the never-ready test image changed)"
    );
    let bad_pinned = wait_pinned(&client, &ns.name, "desk", &bad, Duration::from_secs(10)).await;
    println!(
        "bad digest pinned ({} ms after the push was polled)",
        bad_pinned.elapsed().as_millis()
    );

    // The deadline passes; the operator goes back to the last healthy digest.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut exceeded_at = None;
    let restored_at = loop {
        assert!(Instant::now() < deadline, "no rollback within 60 s");
        if exceeded_at.is_none() && deadline_exceeded(&client, &ns.name, "desk").await {
            exceeded_at = Some(Instant::now());
        }
        let digests = deployment_digests(&client, &ns.name, "desk").await;
        if digests.iter().all(|d| d.as_deref() == Some(good.as_str())) {
            break Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let after_pin = restored_at.duration_since(bad_pinned);
    match exceeded_at {
        Some(at) => println!(
            "rollback: Deployments back on the last healthy digest {} ms after ProgressDeadlineExceeded was visible, {} ms after the bad digest was pinned (progressDeadlineSeconds 5)",
            restored_at.duration_since(at).as_millis(),
            after_pin.as_millis()
        ),
        None => println!(
            "rollback: Deployments back on the last healthy digest {} ms after the bad digest was pinned (progressDeadlineSeconds 5; the deadline condition was not caught by the 25 ms poll)",
            after_pin.as_millis()
        ),
    }
    assert!(
        after_pin < Duration::from_secs(5 + 10),
        "rolled back {after_pin:?} after the bad pin (deadline 5 s + 10 s)"
    );

    let agent = wait_condition(
        &client,
        &ns.name,
        "desk",
        "Degraded",
        "True",
        Some("RolledBack"),
        TIMEOUT,
    )
    .await;
    let status = agent.status.clone().unwrap();
    let degraded = find_condition(&status.conditions, "Degraded").unwrap();
    println!("Degraded=True RolledBack: {}", degraded.message);
    assert!(
        degraded.message.contains(&good) && degraded.message.contains(&bad),
        "{}",
        degraded.message
    );
    let image_status = status.image.clone().unwrap();
    assert_eq!(image_status.digest.as_deref(), Some(good.as_str()));
    assert_eq!(image_status.rejected_digests, vec![bad.clone()]);
    let record = status
        .history
        .iter()
        .find(|r| r.digest == bad)
        .expect("history has the bad digest");
    assert_eq!(record.outcome, Some(RolloutOutcome::RolledBack));
    let resolved = wait_condition(
        &client,
        &ns.name,
        "desk",
        "ImageResolved",
        "False",
        Some("DigestRejected"),
        TIMEOUT,
    )
    .await;
    let resolved_status = resolved.status.unwrap();
    let condition = find_condition(&resolved_status.conditions, "ImageResolved").unwrap();
    assert!(condition.message.contains(&bad), "{}", condition.message);
    let events: Api<Event> = Api::namespaced(client.clone(), &ns.name);
    // Events are published just after the status is written.
    let warning = eventually("a RolledBack event", Duration::from_secs(10), || {
        let events = events.clone();
        async move {
            events
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .into_iter()
                .find(|e| e.reason.as_deref() == Some("RolledBack"))
        }
    })
    .await;
    println!(
        "event: {} {}: {}",
        warning.type_.as_deref().unwrap_or(""),
        warning.reason.as_deref().unwrap_or(""),
        warning.note.as_deref().unwrap_or("")
    );
    assert_eq!(warning.type_.as_deref(), Some("Warning"));

    // The tag still points at the bad digest: it is not tried again.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        deployment_digests(&client, &ns.name, "desk").await,
        vec![Some(good.clone()); 3]
    );
    let agent = agents.get("desk").await.expect("agent");
    assert_eq!(
        agent.status.unwrap().image.unwrap().digest.as_deref(),
        Some(good.as_str())
    );

    // A user clears the rejection: the digest rolls out again (and, still never ready, is rolled
    // back and rejected again; the annotation acts once).
    agents
        .patch(
            "desk",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({
                "metadata": {"annotations": {CLEAR_REJECTED_ANNOTATION: bad.clone()}}
            })),
        )
        .await
        .expect("annotate clear-rejected");
    let cleared_at = Instant::now();
    let retried = wait_pinned(&client, &ns.name, "desk", &bad, Duration::from_secs(10)).await;
    println!(
        "clear-rejected: the cleared digest pinned again {} ms after the annotation",
        retried.duration_since(cleared_at).as_millis()
    );
    let status = eventually("rolled back and rejected again", TIMEOUT, || {
        let agents = agents.clone();
        let (good, bad) = (good.clone(), bad.clone());
        async move {
            let status = agents.get("desk").await.ok()?.status?;
            let image = status.image.as_ref()?;
            let again = image.digest.as_deref() == Some(good.as_str())
                && image.rejected_digests == vec![bad.clone()]
                && image.cleared_rejections.as_deref() == Some(bad.as_str());
            again.then_some(status)
        }
    })
    .await;
    let rolled_back = status
        .history
        .iter()
        .filter(|r| r.digest == bad && r.outcome == Some(RolloutOutcome::RolledBack))
        .count();
    assert_eq!(rolled_back, 2, "{:?}", status.history);

    // A fixed image under the same tag rolls forward.
    let fixed = pusher
        .push_image("acme/rollback", "stable", "good-2")
        .await
        .unwrap();
    let pushed = Instant::now();
    let forward = wait_pinned(&client, &ns.name, "desk", &fixed, Duration::from_secs(10)).await;
    println!(
        "roll forward: fixed digest pinned {} ms after the push (interval 1s)",
        forward.duration_since(pushed).as_millis()
    );
    // Ready on the fixed digest: Degraded clears, the rollout is recorded as a success.
    let status = eventually(
        "the fixed digest is rolled out and healthy",
        TIMEOUT,
        || {
            let agents = agents.clone();
            let fixed = fixed.clone();
            async move {
                let status = agents.get("desk").await.ok()?.status?;
                let healthy =
                    status.image.as_ref()?.last_healthy_digest.as_deref() == Some(fixed.as_str());
                healthy.then_some(status)
            }
        },
    )
    .await;
    for (type_, expected) in [
        ("Ready", "True"),
        ("Degraded", "False"),
        ("ImageResolved", "True"),
    ] {
        let condition = find_condition(&status.conditions, type_).unwrap();
        assert_eq!(condition.status, expected, "{type_}: {}", condition.message);
    }
    let image_status = status.image.unwrap();
    assert_eq!(image_status.digest.as_deref(), Some(fixed.as_str()));
    assert_eq!(image_status.rejected_digests, vec![bad.clone()]);
    let last = status.history.last().unwrap();
    assert_eq!(
        (last.digest.as_str(), last.outcome),
        (fixed.as_str(), Some(RolloutOutcome::Succeeded))
    );
    let outcomes: Vec<_> = status
        .history
        .iter()
        .map(|r| (r.digest.clone(), r.outcome))
        .collect();
    println!("history: {outcomes:?}");

    operator.stop().await;
    ns.delete(TIMEOUT).await.expect("delete namespace");
}

/// The verification window of the verify test.
const VERIFY_WINDOW: Duration = Duration::from_secs(20);

/// The digest `agent`'s `history` records as rolled out last for `digest`, and when it became
/// Available.
fn available_at(status: &TradingAgentStatus, digest: &str) -> Option<Timestamp> {
    status
        .history
        .iter()
        .rev()
        .find(|r| r.digest == digest)?
        .available
        .as_ref()
        .map(|t| t.0)
}

#[tokio::test]
async fn a_digest_whose_pods_turn_unready_within_the_verify_window_is_rolled_back() {
    let _serial = SERIAL.lock().await;
    let client = client().await;
    install_crd(&client).await;
    let ns = TestNamespace::create(&client, "digest-verify")
        .await
        .expect("namespace");
    create_db_secret(&client, &ns.name).await;
    let registry = TempRegistry::start(RegistryOptions::default()).expect("registry");
    let operator = DigestOperator::start(&client, &ns.name, &[registry.host()], 0).await;
    let pusher = Pusher::new(&registry.host());
    let agents: Api<TradingAgent> = Api::namespaced(client.clone(), &ns.name);

    // A first install is Ready as soon as it is rolled out: nothing to roll back to, nothing to
    // verify.
    let first = pusher
        .push_image("acme/verify", "stable", "verify-1")
        .await
        .unwrap();
    let image = format!("{}/acme/verify:stable", registry.host());
    let mut manifest = tracking_agent("desk", &image, "1s", 1);
    manifest["spec"]["imageUpdate"]["verify"] = "20s".into();
    apply_agent(&client, &ns.name, &manifest).await;
    wait_pinned(&client, &ns.name, "desk", &first, TIMEOUT).await;
    wait_condition(&client, &ns.name, "desk", "Ready", "True", None, TIMEOUT).await;

    // A healthy second digest: Ready (and `kubectl wait --for=condition=Ready`) waits for the
    // window; Progressing says why.
    let second = pusher
        .push_image("acme/verify", "stable", "verify-2")
        .await
        .unwrap();
    wait_pinned(&client, &ns.name, "desk", &second, Duration::from_secs(10)).await;
    let verifying = wait_condition(
        &client,
        &ns.name,
        "desk",
        "Progressing",
        "True",
        Some("Verifying"),
        Duration::from_secs(20),
    )
    .await
    .status
    .unwrap();
    let ready = find_condition(&verifying.conditions, "Ready").unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "Verifying"),
        "{}",
        ready.message
    );
    println!("verifying: {}", ready.message);
    let available = available_at(&verifying, &second).expect("the rollout became Available");
    let (ok, out) = run_kubectl(&[
        "-n",
        &ns.name,
        "wait",
        "--for=condition=Ready",
        "ta/desk",
        "--timeout=60s",
    ])
    .await;
    assert!(ok, "kubectl wait: {out}");
    let status = agents.get("desk").await.unwrap().status.unwrap();
    let ready = find_condition(&status.conditions, "Ready").unwrap();
    let waited = ready.last_transition_time.0.duration_since(available);
    println!(
        "kubectl wait --for=condition=Ready returned; Ready {} s after the rollout became Available (verify 20s)",
        waited.as_secs()
    );
    assert!(
        waited >= SignedDuration::try_from(VERIFY_WINDOW).unwrap()
            && waited <= SignedDuration::from_secs(20 + 10),
        "Ready {waited:?} after Available, window 20 s"
    );
    let image_status = status.image.clone().unwrap();
    assert_eq!(
        image_status.last_healthy_digest.as_deref(),
        Some(second.as_str())
    );
    assert_eq!(
        status
            .history
            .last()
            .map(|r| (r.digest.as_str(), r.outcome)),
        Some((second.as_str(), Some(RolloutOutcome::Succeeded)))
    );

    // A digest whose bot pods lose readiness 5 s after they started (the harness's kwok stage
    // pod-turn-unready): Available first, then a late failure within the window, while its api
    // and strategy pods stay ready (the evidence points at the digest).
    let late = pusher
        .push_image("acme/verify", "stable", "late-unready")
        .await
        .unwrap();
    assert!(
        KWOK_STAGES.contains(late.trim_start_matches("sha256:")),
        "tests/harness/kwok/stages.yaml must key its pod-turn-unready stage on {late} (the digest of the late-unready test image changed)"
    );
    wait_pinned(&client, &ns.name, "desk", &late, Duration::from_secs(10)).await;
    let verifying = wait_condition(
        &client,
        &ns.name,
        "desk",
        "Progressing",
        "True",
        Some("Verifying"),
        Duration::from_secs(20),
    )
    .await;
    let seen_verifying = Instant::now();
    let available = available_at(verifying.status.as_ref().unwrap(), &late)
        .expect("the late digest became Available");
    let restored = wait_pinned(
        &client,
        &ns.name,
        "desk",
        &second,
        VERIFY_WINDOW + Duration::from_secs(10),
    )
    .await;
    println!(
        "late failure: Deployments back on the last healthy digest {} ms after Verifying was seen (verify 20s)",
        restored.duration_since(seen_verifying).as_millis()
    );
    let agent = wait_condition(
        &client,
        &ns.name,
        "desk",
        "Degraded",
        "True",
        Some("RolledBack"),
        TIMEOUT,
    )
    .await;
    let status = agent.status.unwrap();
    let degraded = find_condition(&status.conditions, "Degraded").unwrap();
    println!("Degraded=True RolledBack: {}", degraded.message);
    assert!(
        degraded.message.contains("BecameUnready") && degraded.message.contains(&late),
        "{}",
        degraded.message
    );
    let record = status
        .history
        .iter()
        .rev()
        .find(|r| r.digest == late)
        .expect("history has the late digest");
    assert_eq!(record.outcome, Some(RolloutOutcome::RolledBack));
    assert_eq!(record.reason.as_deref(), Some("BecameUnready"));
    let finished = record.finished.as_ref().unwrap().0;
    let within = finished.duration_since(available);
    println!(
        "rolled back {} s after the late digest became Available (window 20 s + 10 s allowed)",
        within.as_secs()
    );
    assert!(
        within <= SignedDuration::from_secs(20 + 10),
        "rolled back {within:?} after Available"
    );
    let image_status = status.image.unwrap();
    assert_eq!(image_status.digest.as_deref(), Some(second.as_str()));
    assert_eq!(image_status.rejected_digests, vec![late.clone()]);
    let rejection = &image_status.rejections[0];
    assert_eq!(rejection.reason, "BecameUnready");
    assert!(
        rejection.message.contains("bot"),
        "names the bot's pod: {}",
        rejection.message
    );
    let events: Api<Event> = Api::namespaced(client.clone(), &ns.name);
    let warning = eventually("a RolledBack event", Duration::from_secs(10), || {
        let events = events.clone();
        async move {
            events
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .into_iter()
                .find(|e| e.reason.as_deref() == Some("RolledBack"))
        }
    })
    .await;
    let note = warning.note.clone().unwrap_or_default();
    println!("event: Warning RolledBack: {note}");
    assert_eq!(warning.type_.as_deref(), Some("Warning"));
    assert!(note.contains("BecameUnready"), "{note}");

    operator.stop().await;
    ns.delete(TIMEOUT).await.expect("delete namespace");
}

/// The database of a `db-outage-…` namespace, as the harness's kwok stages see it: every pod of
/// the namespace is annotated with whether the database is reachable, and kwok makes a pod ready
/// exactly while it says so (a new pod starts unready until it does), as `/readyz` follows the
/// database.
struct Database {
    reachable: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

const DATABASE_ANNOTATION: &str = "e2e.tradingagents.dev/database";

impl Database {
    fn start(client: &kube::Client, namespace: &str) -> Self {
        let reachable = Arc::new(AtomicBool::new(true));
        let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
        let state = reachable.clone();
        let task = tokio::spawn(async move {
            loop {
                let wanted = if state.load(Ordering::SeqCst) {
                    "reachable"
                } else {
                    "unreachable"
                };
                if let Ok(list) = pods.list(&ListParams::default()).await {
                    for pod in list.items {
                        let current = pod.annotations().get(DATABASE_ANNOTATION).cloned();
                        if current.as_deref() != Some(wanted) {
                            let _ = pods
                                .patch(
                                    &pod.name_any(),
                                    &PatchParams::default(),
                                    &Patch::Merge(serde_json::json!({
                                        "metadata": {"annotations": {DATABASE_ANNOTATION: wanted}}
                                    })),
                                )
                                .await;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Self { reachable, task }
    }

    fn set_reachable(&self, reachable: bool) {
        self.reachable.store(reachable, Ordering::SeqCst);
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Whether every pod of the namespace (at least one) is unready.
async fn all_pods_unready(client: &kube::Client, namespace: &str) -> bool {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let Ok(list) = pods.list(&ListParams::default()).await else {
        return false;
    };
    !list.items.is_empty()
        && list.items.iter().all(|p| {
            !p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
}

#[tokio::test]
async fn a_database_outage_during_a_rollout_rejects_nothing_and_says_degraded() {
    let _serial = SERIAL.lock().await;
    let client = client().await;
    install_crd(&client).await;
    // The harness's database stages act on namespaces named db-outage-….
    let ns = TestNamespace::create(&client, "db-outage")
        .await
        .expect("namespace");
    assert!(ns.name.starts_with("db-outage-"), "{}", ns.name);
    create_db_secret(&client, &ns.name).await;
    let database = Database::start(&client, &ns.name);
    let registry = TempRegistry::start(RegistryOptions::default()).expect("registry");
    let operator = DigestOperator::start(&client, &ns.name, &[registry.host()], 0).await;
    let pusher = Pusher::new(&registry.host());
    let agents: Api<TradingAgent> = Api::namespaced(client.clone(), &ns.name);

    let first = pusher
        .push_image("acme/outage", "stable", "outage-1")
        .await
        .unwrap();
    let image = format!("{}/acme/outage:stable", registry.host());
    let mut manifest = tracking_agent("desk", &image, "1s", 1);
    manifest["spec"]["progressDeadlineSeconds"] = 5.into();
    manifest["spec"]["imageUpdate"]["verify"] = "3s".into();
    apply_agent(&client, &ns.name, &manifest).await;
    wait_pinned(&client, &ns.name, "desk", &first, TIMEOUT).await;
    wait_condition(&client, &ns.name, "desk", "Ready", "True", None, TIMEOUT).await;

    // The database goes down for everyone: every pod, of every role, loses readiness.
    database.set_reachable(false);
    eventually("every pod unready", Duration::from_secs(20), || {
        let client = client.clone();
        let ns = ns.name.clone();
        async move { all_pods_unready(&client, &ns).await.then_some(()) }
    })
    .await;

    // A healthy new digest rolls out meanwhile: its pods cannot become ready either, the
    // progress deadline passes, and the environment is blamed.
    let second = pusher
        .push_image("acme/outage", "stable", "outage-2")
        .await
        .unwrap();
    let pinned = wait_pinned(&client, &ns.name, "desk", &second, Duration::from_secs(10)).await;
    let agent = wait_condition(
        &client,
        &ns.name,
        "desk",
        "Degraded",
        "True",
        Some("EnvironmentUnhealthy"),
        Duration::from_secs(30),
    )
    .await;
    let status = agent.status.unwrap();
    let degraded = find_condition(&status.conditions, "Degraded").unwrap();
    println!(
        "outage: Degraded=True EnvironmentUnhealthy {} ms after the new digest was pinned: {}",
        pinned.elapsed().as_millis(),
        degraded.message
    );
    assert!(
        degraded.message.contains(&second) && degraded.message.contains("unready"),
        "{}",
        degraded.message
    );
    let events: Api<Event> = Api::namespaced(client.clone(), &ns.name);
    let warning = eventually(
        "an EnvironmentUnhealthy event",
        Duration::from_secs(10),
        || {
            let events = events.clone();
            async move {
                events
                    .list(&ListParams::default())
                    .await
                    .ok()?
                    .items
                    .into_iter()
                    .find(|e| e.reason.as_deref() == Some("EnvironmentUnhealthy"))
            }
        },
    )
    .await;
    assert_eq!(warning.type_.as_deref(), Some("Warning"));

    // Nothing is rejected and the pin stays, however long the outage lasts.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        deployment_digests(&client, &ns.name, "desk").await,
        vec![Some(second.clone()); 3]
    );
    let status = agents.get("desk").await.unwrap().status.unwrap();
    let image_status = status.image.clone().unwrap();
    assert_eq!(image_status.digest.as_deref(), Some(second.as_str()));
    assert!(
        image_status.rejected_digests.is_empty(),
        "{:?}",
        image_status.rejected_digests
    );
    assert!(
        status
            .history
            .iter()
            .all(|r| r.outcome != Some(RolloutOutcome::RolledBack)),
        "{:?}",
        status.history
    );

    // The database comes back: the rollout completes, is verified, and succeeds.
    database.set_reachable(true);
    let recovered = Instant::now();
    let status = eventually("the new digest is rolled out and healthy", TIMEOUT, || {
        let agents = agents.clone();
        let second = second.clone();
        async move {
            let status = agents.get("desk").await.ok()?.status?;
            let healthy =
                status.image.as_ref()?.last_healthy_digest.as_deref() == Some(second.as_str());
            healthy.then_some(status)
        }
    })
    .await;
    println!(
        "database back: {second} healthy {} ms later (verify 3s)",
        recovered.elapsed().as_millis()
    );
    for (type_, expected) in [("Ready", "True"), ("Degraded", "False")] {
        let condition = find_condition(&status.conditions, type_).unwrap();
        assert_eq!(condition.status, expected, "{type_}: {}", condition.message);
    }
    let image_status = status.image.unwrap();
    assert!(image_status.rejected_digests.is_empty());
    assert_eq!(
        status
            .history
            .last()
            .map(|r| (r.digest.as_str(), r.outcome)),
        Some((second.as_str(), Some(RolloutOutcome::Succeeded)))
    );

    drop(database);
    operator.stop().await;
    ns.delete(TIMEOUT).await.expect("delete namespace");
}
