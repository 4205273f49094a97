//! Rollback against the harness and a real registry: a digest whose pods never become ready (the
//! harness's kwok stage `pod-start-unready`, keyed on that image's digest, keeps them unready) is
//! rolled back to the last healthy digest after the progress deadline, rejected and reported as
//! `Degraded`; it is not retried while the tag points at it, until the `clear-rejected` annotation
//! clears it (it rolls out again, fails again and is rejected again); a fixed image pushed under
//! the same tag rolls forward again. Figures are printed: run with `--nocapture` to see them.

#[path = "digest_support.rs"]
mod digest;

use std::time::{Duration, Instant};

use digest::support::{
    apply_agent, client, create_db_secret, eventually, install_crd, wait_condition,
};
use digest::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams};
use trading_agent_operator::TradingAgent;
use trading_agent_operator::reconcile::conditions::find_condition;
use trading_agent_operator::reconcile::rollback::CLEAR_REJECTED_ANNOTATION;
use trading_agent_operator::resource::RolloutOutcome;
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
