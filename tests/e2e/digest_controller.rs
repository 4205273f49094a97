//! The operator resolving tags at a real registry (Debian's `docker-registry`) against the
//! harness: a push re-pins the Deployments within a second of the registry's own notification, or
//! within one polling interval without it; fifty TradingAgents on one image cost about one
//! registry request per interval; private registries with the right and the wrong pull secret; a
//! registry that goes down and comes back; a failed first lookup retried within seconds (not a
//! polling interval); the webhook's refusals.
//!
//! Faults are injected by a proxy in front of the real registry; the registry is never mocked.
//! Figures (latencies, request counts) are printed: run with `--nocapture` to see them.

#[path = "digest_support.rs"]
mod digest;

use std::time::{Duration, Instant};

use digest::support::{
    apply_agent, client, create_db_secret, eventually, install_crd, run_kubectl, wait_condition,
};
use digest::*;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use trading_agent_operator::TradingAgent;
use trading_agent_operator::reconcile::conditions::find_condition;
use trading_agent_tests::cluster::TestNamespace;
use trading_agent_tests::process::free_loopback_port;
use trading_agent_tests::proxy::FaultProxy;
use trading_agent_tests::registry::{Notifications, Pusher, RegistryOptions, TempRegistry};
use trading_agent_tests::token_issuer::TokenIssuer;

const TIMEOUT: Duration = Duration::from_secs(60);

async fn namespace(client: &kube::Client, prefix: &str) -> TestNamespace {
    install_crd(client).await;
    let namespace = TestNamespace::create(client, prefix)
        .await
        .expect("namespace");
    create_db_secret(client, &namespace.name).await;
    namespace
}

#[tokio::test]
async fn a_push_repins_within_a_second_of_the_notification_and_within_an_interval_by_polling() {
    let _serial = SERIAL.lock().await;
    let client = client().await;
    let ns = namespace(&client, "digest-push").await;
    let webhook_port = free_loopback_port().expect("port");
    let notified = TempRegistry::start(RegistryOptions {
        notifications: Some(Notifications {
            url: format!("http://127.0.0.1:{webhook_port}/registry/notifications"),
            bearer_token: Some(WEBHOOK_TOKEN.to_owned()),
        }),
        ..RegistryOptions::default()
    })
    .expect("registry with notifications");
    let quiet = TempRegistry::start(RegistryOptions::default()).expect("registry");
    let operator = DigestOperator::start(
        &client,
        &ns.name,
        &[notified.host(), quiet.host()],
        webhook_port,
    )
    .await;

    // 1. Webhook: polling off, so only the registry's notification can move it.
    let pusher = Pusher::new(&notified.host());
    let d1 = pusher
        .push_image("acme/trading-agent", "stable", "v1")
        .await
        .unwrap();
    let image = format!("{}/acme/trading-agent:stable", notified.host());
    apply_agent(
        &client,
        &ns.name,
        &tracking_agent("hooked", &image, "0s", 1),
    )
    .await;
    wait_pinned(&client, &ns.name, "hooked", &d1, TIMEOUT).await;
    wait_resolved_to(&client, &ns.name, "hooked", &d1).await;

    let before_push = Instant::now();
    let d2 = pusher
        .push_image("acme/trading-agent", "stable", "v2")
        .await
        .unwrap();
    assert_ne!(d1, d2);
    let pushed = Instant::now();
    let pinned = wait_pinned(&client, &ns.name, "hooked", &d2, Duration::from_secs(10)).await;
    let arrived = operator
        .triggers
        .last_notification()
        .expect("the registry's notification reached the webhook");
    assert!(
        arrived >= before_push,
        "the notification is the one of this push"
    );
    let latency = pinned.duration_since(arrived);
    println!(
        "webhook: notification arrived {} ms after the push completed; all three Deployments pinned to the new digest {} ms after the notification arrived ({} ms after the push)",
        arrived.saturating_duration_since(pushed).as_millis(),
        latency.as_millis(),
        pinned.duration_since(pushed).as_millis()
    );
    assert!(
        latency < Duration::from_secs(1),
        "webhook → pinned took {latency:?}"
    );
    let agents: Api<TradingAgent> = Api::namespaced(client.clone(), &ns.name);
    let history = eventually("the history records the new digest", TIMEOUT, || {
        let agents = agents.clone();
        let d2 = d2.clone();
        async move {
            let status = agents.get("hooked").await.ok()?.status?;
            status
                .history
                .iter()
                .any(|r| r.digest == d2)
                .then_some(status.history)
        }
    })
    .await;
    assert_eq!(
        history.first().map(|r| r.digest.as_str()),
        Some(d1.as_str())
    );

    // 1b. Then a push nobody announces (the same storage through a registry that notifies no
    // one), found by polling. The last notification named d2, which the registry answered: the
    // new answer is the tag moving on, not a registry lagging behind that notification.
    let silent = TempRegistry::start(RegistryOptions {
        storage_dir: Some(notified.storage_dir()),
        ..RegistryOptions::default()
    })
    .expect("a silent registry on the same storage");
    apply_agent(
        &client,
        &ns.name,
        &tracking_agent("hooked", &image, "2s", 1),
    )
    .await;
    let d3 = Pusher::new(&silent.host())
        .push_image("acme/trading-agent", "stable", "v3")
        .await
        .unwrap();
    wait_pinned(&client, &ns.name, "hooked", &d3, TIMEOUT).await;
    // Long enough for the back-off that waits for a notified digest (6.35 s in all) to run out.
    tokio::time::sleep(Duration::from_secs(8)).await;
    wait_resolved_to(&client, &ns.name, "hooked", &d3).await;
    let (_, events) = run_kubectl(&["get", "events", "-n", &ns.name, "-o", "json"]).await;
    assert!(
        !events.contains("NotifiedPushNotSeen"),
        "no lagging registry is reported after a push that followed a confirmed notification: {events}"
    );

    // 2. Polling every 2 s, no notifications from this registry.
    let interval = Duration::from_secs(2);
    let quiet_pusher = Pusher::new(&quiet.host());
    let p1 = quiet_pusher
        .push_image("acme/polled", "stable", "p1")
        .await
        .unwrap();
    let polled_image = format!("{}/acme/polled:stable", quiet.host());
    apply_agent(
        &client,
        &ns.name,
        &tracking_agent("polled", &polled_image, "2s", 1),
    )
    .await;
    wait_pinned(&client, &ns.name, "polled", &p1, TIMEOUT).await;
    // `mode: Pin` on the same tag resolves once and never moves.
    let mut frozen = tracking_agent("frozen", &polled_image, "1s", 1);
    frozen["spec"]["imageUpdate"]["mode"] = "Pin".into();
    apply_agent(&client, &ns.name, &frozen).await;
    wait_pinned(&client, &ns.name, "frozen", &p1, TIMEOUT).await;
    let mut worst = Duration::ZERO;
    for round in 2..=3 {
        // Push at different phases of the polling cycle.
        tokio::time::sleep(Duration::from_millis(700 * round)).await;
        let next = quiet_pusher
            .push_image("acme/polled", "stable", &format!("p{round}"))
            .await
            .unwrap();
        let pushed = Instant::now();
        let pinned = wait_pinned(&client, &ns.name, "polled", &next, Duration::from_secs(10)).await;
        let took = pinned.duration_since(pushed);
        println!(
            "polling (interval 2s): push → all three Deployments pinned in {} ms",
            took.as_millis()
        );
        worst = worst.max(took);
    }
    assert!(
        worst <= interval + Duration::from_secs(1),
        "polling took {worst:?}"
    );
    assert_eq!(
        deployment_digests(&client, &ns.name, "frozen").await,
        vec![Some(p1.clone()); 3],
        "mode: Pin never moves"
    );

    // 3. The manual trigger: polling off, no notification; a new annotation value resolves now.
    let m1 = quiet_pusher
        .push_image("acme/manual", "stable", "m1")
        .await
        .unwrap();
    let manual_image = format!("{}/acme/manual:stable", quiet.host());
    apply_agent(
        &client,
        &ns.name,
        &tracking_agent("manual", &manual_image, "0s", 1),
    )
    .await;
    wait_pinned(&client, &ns.name, "manual", &m1, TIMEOUT).await;
    let m2 = quiet_pusher
        .push_image("acme/manual", "stable", "m2")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        deployment_digests(&client, &ns.name, "manual").await,
        vec![Some(m1.clone()); 3],
        "without a trigger nothing moves"
    );
    let annotated = Instant::now();
    agents
        .patch(
            "manual",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"annotations": {"tradingagents.dev/resolve-now": "1"}}}),
            ),
        )
        .await
        .expect("annotate");
    let pinned = wait_pinned(&client, &ns.name, "manual", &m2, Duration::from_secs(10)).await;
    println!(
        "manual trigger: annotation → pinned in {} ms",
        pinned.duration_since(annotated).as_millis()
    );

    let metrics = operator.metrics_text().await;
    assert!(
        metrics
            .contains("trading_agent_operator_webhook_notifications_total{result=\"triggered\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("trading_agent_operator_image_resolutions_total{outcome=\"resolved\"}")
    );
    operator.stop().await;
    ns.delete(TIMEOUT).await.expect("delete namespace");
}

#[tokio::test]
async fn fifty_agents_on_one_image_cost_about_one_manifest_request_per_interval() {
    let _serial = SERIAL.lock().await;
    let client = client().await;
    let ns = namespace(&client, "digest-fifty").await;
    let registry = TempRegistry::start(RegistryOptions::default()).expect("registry");
    let proxy = FaultProxy::start(&registry.host()).await.expect("proxy");
    let operator = DigestOperator::start(&client, &ns.name, &[proxy.host()], 0).await;
    let d1 = Pusher::new(&registry.host())
        .push_image("acme/shared", "stable", "s1")
        .await
        .unwrap();
    let image = format!("{}/acme/shared:stable", proxy.host());
    // No pods: the point is the registry traffic, not the scheduler's.
    for i in 0..50 {
        apply_agent(
            &client,
            &ns.name,
            &tracking_agent(&format!("agent-{i:02}"), &image, "2s", 0),
        )
        .await;
    }
    let agents: Api<TradingAgent> = Api::namespaced(client.clone(), &ns.name);
    eventually(
        "all fifty agents are pinned",
        Duration::from_secs(120),
        || {
            let agents = agents.clone();
            let d1 = d1.clone();
            async move {
                let list = agents.list(&Default::default()).await.ok()?;
                let pinned = list
                    .items
                    .iter()
                    .filter(|a| {
                        a.status
                            .as_ref()
                            .and_then(|s| s.image.as_ref())
                            .and_then(|i| i.digest.as_deref())
                            == Some(d1.as_str())
                    })
                    .count();
                (pinned == 50).then_some(())
            }
        },
    )
    .await;

    let start = Instant::now();
    let window = Duration::from_secs(30);
    let reconciles_before = metric(
        &operator.metrics_text().await,
        "trading_agent_operator_reconciliations_total",
    );
    tokio::time::sleep(window).await;
    let requests = proxy
        .manifest_requests()
        .into_iter()
        .filter(|r| r.at >= start && r.at < start + window)
        .count();
    let reconciles = metric(
        &operator.metrics_text().await,
        "trading_agent_operator_reconciliations_total",
    ) - reconciles_before;
    println!(
        "50 TradingAgents on one image, interval 2s, {}s: {requests} manifest requests at the registry ({reconciles} reconciliations)",
        window.as_secs()
    );
    assert!(
        reconciles >= 500.0,
        "every agent kept polling: {reconciles} reconciliations"
    );
    assert!(
        (8..=20).contains(&requests),
        "{requests} manifest requests in 30 s"
    );
    operator.stop().await;
    ns.delete(TIMEOUT).await.expect("delete namespace");
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn a_private_registry_resolves_with_the_right_pull_secret_and_says_why_with_the_wrong_one() {
    let _serial = SERIAL.lock().await;
    let client = client().await;
    let ns = namespace(&client, "digest-private").await;
    let registry = TempRegistry::start(RegistryOptions {
        basic_auth: Some(("trader".into(), "correct-horse".into())),
        ..RegistryOptions::default()
    })
    .expect("registry with htpasswd");
    let host = registry.host();
    let operator = DigestOperator::start(&client, &ns.name, std::slice::from_ref(&host), 0).await;
    let d1 = Pusher::new(&host)
        .with_basic_auth("trader", "correct-horse")
        .push_image("acme/private", "stable", "x1")
        .await
        .unwrap();
    create_pull_secret(
        &client,
        &ns.name,
        "regcred",
        &host,
        "trader",
        "correct-horse",
    )
    .await;
    create_pull_secret(&client, &ns.name, "wrongcred", &host, "trader", "wrong").await;
    let image = format!("{host}/acme/private:stable");
    let with_secret = |name: &str, secret: &str| {
        let mut manifest = tracking_agent(name, &image, "5m", 1);
        manifest["spec"]["imagePullSecrets"] = json!([{ "name": secret }]);
        manifest
    };
    apply_agent(&client, &ns.name, &with_secret("right", "regcred")).await;
    apply_agent(&client, &ns.name, &with_secret("wrong", "wrongcred")).await;
    apply_agent(&client, &ns.name, &with_secret("missing", "nosuchsecret")).await;
    apply_agent(
        &client,
        &ns.name,
        &tracking_agent("anonymous", &image, "5m", 1),
    )
    .await;

    wait_pinned(&client, &ns.name, "right", &d1, TIMEOUT).await;
    for (name, reason, needle) in [
        ("wrong", "RegistryUnauthorized", "refused the credentials"),
        (
            "anonymous",
            "RegistryUnauthorized",
            "refused the credentials",
        ),
        ("missing", "PullSecretNotFound", "nosuchsecret"),
    ] {
        let agent = wait_condition(
            &client,
            &ns.name,
            name,
            "ImageResolved",
            "False",
            Some(reason),
            TIMEOUT,
        )
        .await;
        let status = agent.status.unwrap();
        let condition = find_condition(&status.conditions, "ImageResolved").unwrap();
        println!(
            "{name}: ImageResolved=False {}: {}",
            condition.reason, condition.message
        );
        assert!(condition.message.contains(needle), "{}", condition.message);
        assert_eq!(
            find_condition(&status.conditions, "Ready").unwrap().status,
            "False"
        );
        assert_eq!(
            deployment_digests(&client, &ns.name, name).await,
            vec![None, None, None],
            "{name}: nothing is deployed without a digest"
        );
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
        assert!(
            deployments
                .get_opt(&format!("{name}-api"))
                .await
                .unwrap()
                .is_none()
        );
    }
    operator.stop().await;
    ns.delete(TIMEOUT).await.expect("delete namespace");
}

#[tokio::test]
async fn token_auth_and_multi_arch_indexes_resolve_through_the_controller() {
    let _serial = SERIAL.lock().await;
    let client = client().await;
    let ns = namespace(&client, "digest-token").await;
    // Push through an open registry; resolve through one sharing its storage that wants tokens.
    let open = TempRegistry::start(RegistryOptions::default()).expect("open registry");
    let index = Pusher::new(&open.host())
        .push_index("private/multi", "v1", "i1")
        .await
        .unwrap();
    let issuer = TokenIssuer::start("robot", "token-pw")
        .await
        .expect("token issuer");
    let registry = TempRegistry::start(RegistryOptions {
        auth_yaml: Some(issuer.registry_auth_yaml()),
        storage_dir: Some(open.storage_dir()),
        ..RegistryOptions::default()
    })
    .expect("registry with token auth");
    let host = registry.host();
    // The realm is plain http: followed only because its host is on the insecure list too.
    let insecure = [host.clone(), issuer.host()];
    let operator = DigestOperator::start(&client, &ns.name, &insecure, 0).await;
    create_pull_secret(&client, &ns.name, "robot", &host, "robot", "token-pw").await;
    create_pull_secret(&client, &ns.name, "intruder", &host, "robot", "guess").await;
    let image = format!("{host}/private/multi:v1");
    for (name, secret) in [("tokened", "robot"), ("refused", "intruder")] {
        let mut manifest = tracking_agent(name, &image, "5m", 1);
        manifest["spec"]["imagePullSecrets"] = json!([{ "name": secret }]);
        apply_agent(&client, &ns.name, &manifest).await;
    }
    // The index digest is pinned, so every platform stays available.
    wait_pinned(&client, &ns.name, "tokened", &index, TIMEOUT).await;
    assert!(issuer.issued() >= 1, "a token was fetched");
    let agent = wait_condition(
        &client,
        &ns.name,
        "refused",
        "ImageResolved",
        "False",
        Some("RegistryUnauthorized"),
        TIMEOUT,
    )
    .await;
    let status = agent.status.unwrap();
    println!(
        "token auth, wrong password: {}",
        find_condition(&status.conditions, "ImageResolved")
            .unwrap()
            .message
    );
    assert_eq!(
        deployment_digests(&client, &ns.name, "refused").await,
        vec![None, None, None]
    );
    operator.stop().await;
    ns.delete(TIMEOUT).await.expect("delete namespace");
}

#[tokio::test]
async fn a_registry_outage_keeps_the_pinned_digest_and_recovers_by_itself() {
    let _serial = SERIAL.lock().await;
    let client = client().await;
    let ns = namespace(&client, "digest-outage").await;
    let mut registry = TempRegistry::start(RegistryOptions::default()).expect("registry");
    let operator = DigestOperator::start(&client, &ns.name, &[registry.host()], 0).await;
    let d1 = Pusher::new(&registry.host())
        .push_image("acme/outage", "stable", "o1")
        .await
        .unwrap();
    let image = format!("{}/acme/outage:stable", registry.host());
    apply_agent(
        &client,
        &ns.name,
        &tracking_agent("steady", &image, "1s", 1),
    )
    .await;
    wait_pinned(&client, &ns.name, "steady", &d1, TIMEOUT).await;
    wait_resolved_to(&client, &ns.name, "steady", &d1).await;

    registry.stop();
    let stopped = Instant::now();
    let agent = wait_condition(
        &client,
        &ns.name,
        "steady",
        "ImageResolved",
        "False",
        Some("RegistryUnreachable"),
        Duration::from_secs(20),
    )
    .await;
    println!(
        "registry down: ImageResolved=False RegistryUnreachable after {} ms",
        stopped.elapsed().as_millis()
    );
    let status = agent.status.unwrap();
    let condition = find_condition(&status.conditions, "ImageResolved").unwrap();
    assert!(
        condition.message.contains(&d1),
        "names the digest that stays: {}",
        condition.message
    );
    assert_eq!(status.image.unwrap().digest.as_deref(), Some(d1.as_str()));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        deployment_digests(&client, &ns.name, "steady").await,
        vec![Some(d1.clone()); 3]
    );

    registry.restart().expect("restart the registry");
    let restarted = Instant::now();
    wait_condition(
        &client,
        &ns.name,
        "steady",
        "ImageResolved",
        "True",
        None,
        Duration::from_secs(20),
    )
    .await;
    println!(
        "registry back: ImageResolved=True after {} ms",
        restarted.elapsed().as_millis()
    );
    assert_eq!(
        deployment_digests(&client, &ns.name, "steady").await,
        vec![Some(d1.clone()); 3]
    );
    operator.stop().await;
    ns.delete(TIMEOUT).await.expect("delete namespace");
}

#[tokio::test]
async fn the_webhook_refuses_bad_tokens_and_oversized_bodies_and_ignores_what_moves_no_tag() {
    let _serial = SERIAL.lock().await;
    let client = client().await;
    let ns = namespace(&client, "digest-webhook").await;
    let operator = DigestOperator::start(&client, &ns.name, &[], 0).await;
    // An agent following the tag the events name, so that "ignored" really means ignored.
    apply_agent(
        &client,
        &ns.name,
        &tracking_agent("follower", "127.0.0.1:1/acme/agent:stable", "0s", 0),
    )
    .await;
    wait_condition(
        &client,
        &ns.name,
        "follower",
        "ImageResolved",
        "False",
        None,
        TIMEOUT,
    )
    .await;
    let http = reqwest::Client::new();
    let url = operator.webhook_url();
    let post = |token: Option<&str>, body: Vec<u8>| {
        let mut request = http
            .post(&url)
            .header(
                "content-type",
                "application/vnd.docker.distribution.events.v1+json",
            )
            .body(body);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        async move {
            let response = request.send().await.expect("POST");
            let code = response.status().as_u16();
            (code, response.text().await.unwrap_or_default())
        }
    };
    let event = |action: &str, media_type: &str, tag: &str| {
        json!({
            "id": "e", "timestamp": "2026-11-24T03:00:00Z", "action": action,
            "target": {"mediaType": media_type, "digest": "sha256:aa", "repository": "acme/agent", "tag": tag},
            "request": {"method": "PUT"}
        })
    };
    let envelope =
        |events: Vec<serde_json::Value>| serde_json::to_vec(&json!({ "events": events })).unwrap();
    let push = envelope(vec![event(
        "push",
        "application/vnd.oci.image.manifest.v1+json",
        "stable",
    )]);

    assert_eq!(post(None, push.clone()).await.0, 401);
    assert_eq!(post(Some("wrong-token"), push.clone()).await.0, 401);
    let oversized = vec![b' '; 2 * 1024 * 1024];
    assert_eq!(post(Some(WEBHOOK_TOKEN), oversized).await.0, 413);
    let (code, body) = post(Some(WEBHOOK_TOKEN), b"not json".to_vec()).await;
    assert_eq!(code, 400);
    assert!(body.contains("\"error\""), "{body}");
    for (what, body) in [
        (
            "a pull",
            envelope(vec![event(
                "pull",
                "application/vnd.oci.image.manifest.v1+json",
                "stable",
            )]),
        ),
        (
            "a blob push",
            envelope(vec![event("push", "application/octet-stream", "")]),
        ),
        (
            "an untagged push",
            envelope(vec![event(
                "push",
                "application/vnd.oci.image.manifest.v1+json",
                "",
            )]),
        ),
        (
            "another tag",
            envelope(vec![event(
                "push",
                "application/vnd.oci.image.manifest.v1+json",
                "v2",
            )]),
        ),
    ] {
        let (code, answer) = post(Some(WEBHOOK_TOKEN), body).await;
        assert_eq!(
            (code, answer.as_str()),
            (202, r#"{"triggered":0}"#),
            "{what}"
        );
    }
    assert!(
        operator.triggers.last_notification().is_none(),
        "nothing was triggered"
    );
    // The tag the agent follows, as an envelope and in the generic form: triggered.
    assert_eq!(
        post(Some(WEBHOOK_TOKEN), push).await,
        (202, r#"{"triggered":1}"#.to_owned())
    );
    let generic = br#"{"repository":"acme/agent","tag":"stable"}"#.to_vec();
    assert_eq!(
        post(Some(WEBHOOK_TOKEN), generic).await,
        (202, r#"{"triggered":1}"#.to_owned())
    );

    let metrics = operator.metrics_text().await;
    for (result, count) in [
        ("unauthorized", 2),
        ("too_large", 1),
        ("bad_request", 1),
        ("ignored", 4),
        ("triggered", 2),
    ] {
        let line = format!(
            "trading_agent_operator_webhook_notifications_total{{result=\"{result}\"}} {count}"
        );
        assert!(metrics.contains(&line), "{line}\n{metrics}");
    }
    operator.stop().await;
    ns.delete(TIMEOUT).await.expect("delete namespace");
}

#[tokio::test]
async fn a_failed_first_lookup_is_retried_within_seconds_not_an_interval() {
    let _serial = SERIAL.lock().await;
    let client = client().await;
    let ns = namespace(&client, "digest-retry").await;
    let registry = TempRegistry::start(RegistryOptions::default()).expect("registry");
    let operator = DigestOperator::start(&client, &ns.name, &[registry.host()], 0).await;
    // The default polling interval (5m): only the failed lookup's back-off can explain a retry
    // within seconds (and the 30 s resync is longer than the bound below).
    let image = format!("{}/acme/not-yet:stable", registry.host());
    let manifest = support::agent("early", json!({"image": image}));
    apply_agent(&client, &ns.name, &manifest).await;
    let agent = wait_condition(
        &client,
        &ns.name,
        "early",
        "ImageResolved",
        "False",
        Some("TagNotFound"),
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(agent.spec.image_update.interval, "5m");
    assert_eq!(
        deployment_digests(&client, &ns.name, "early").await,
        vec![None; 3],
        "nothing is deployed before the tag resolves"
    );

    let pushed_digest = Pusher::new(&registry.host())
        .push_image("acme/not-yet", "stable", "n1")
        .await
        .unwrap();
    let pushed = Instant::now();
    let pinned = wait_pinned(
        &client,
        &ns.name,
        "early",
        &pushed_digest,
        Duration::from_secs(10),
    )
    .await;
    println!(
        "failed first lookup: pinned {} ms after the tag was pushed (interval 5m; retries back off 1, 2, 4 … 30 s)",
        pinned.duration_since(pushed).as_millis()
    );
    wait_condition(
        &client,
        &ns.name,
        "early",
        "ImageResolved",
        "True",
        None,
        Duration::from_secs(10),
    )
    .await;
    operator.stop().await;
    ns.delete(TIMEOUT).await.expect("delete namespace");
}

/// Debian's docker-registry (CNCF Distribution) sends the push notification before it moves the
/// tag in storage, so the lookup the notification triggers may still see the old digest. Here the
/// race is made certain: the notification (the registry's own envelope shape, naming the pushed
/// manifest's digest) is delivered 300 ms before the tag moves. With polling off, only the
/// operator looking again can roll it out. A notification naming a digest the tag never takes is
/// not trusted: the old digest stays and the status says why.
#[tokio::test]
async fn a_notification_that_arrives_before_the_tag_moves_still_rolls_out() {
    let _serial = SERIAL.lock().await;
    let client = client().await;
    let ns = namespace(&client, "digest-early").await;
    let registry = TempRegistry::start(RegistryOptions::default()).expect("registry");
    let operator = DigestOperator::start(&client, &ns.name, &[registry.host()], 0).await;
    let pusher = Pusher::new(&registry.host());
    let d1 = pusher
        .push_image("acme/trading-agent", "stable", "early-v1")
        .await
        .unwrap();
    let image = format!("{}/acme/trading-agent:stable", registry.host());
    apply_agent(&client, &ns.name, &tracking_agent("early", &image, "0s", 1)).await;
    wait_pinned(&client, &ns.name, "early", &d1, TIMEOUT).await;

    // The new image exists under another tag; `stable` still names d1.
    let d2 = pusher
        .push_image("acme/trading-agent", "candidate", "early-v2")
        .await
        .unwrap();
    let notify = |digest: &str| {
        let body = serde_json::to_vec(&json!({"events": [{
            "id": "e", "timestamp": "2026-11-27T20:00:00Z", "action": "push",
            "target": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest,
                       "repository": "acme/trading-agent", "tag": "stable"},
            "request": {"method": "PUT"}
        }]}))
        .unwrap();
        let request = reqwest::Client::new()
            .post(operator.webhook_url())
            .header("authorization", format!("Bearer {WEBHOOK_TOKEN}"))
            .body(body);
        async move { request.send().await.expect("POST").status().as_u16() }
    };
    let notified = Instant::now();
    assert_eq!(notify(&d2).await, 202);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let moved = pusher
        .push_image("acme/trading-agent", "stable", "early-v2")
        .await
        .unwrap();
    assert_eq!(moved, d2, "the same manifest, now under stable");
    let pinned = wait_pinned(&client, &ns.name, "early", &d2, Duration::from_secs(10)).await;
    println!(
        "notification 300 ms before the tag moved: pinned to the pushed digest {} ms after the notification",
        pinned.duration_since(notified).as_millis()
    );
    assert!(
        pinned.duration_since(notified) < Duration::from_secs(3),
        "took {:?}",
        pinned.duration_since(notified)
    );

    // A digest the tag never takes: looked up again for a bounded time, then the registry's
    // answer (d2) stays and the status names the problem.
    let forged = format!("sha256:{}", "f".repeat(64));
    let started = Instant::now();
    assert_eq!(notify(&forged).await, 202);
    let agent = wait_condition(
        &client,
        &ns.name,
        "early",
        "ImageResolved",
        "False",
        Some("NotifiedPushNotSeen"),
        Duration::from_secs(30),
    )
    .await;
    let condition = find_condition(&agent.status.as_ref().unwrap().conditions, "ImageResolved")
        .unwrap()
        .clone();
    println!(
        "forged notification: NotifiedPushNotSeen after {} ms: {}",
        started.elapsed().as_millis(),
        condition.message
    );
    assert!(condition.message.contains(&forged), "{}", condition.message);
    assert_eq!(
        agent.status.unwrap().image.unwrap().digest.as_deref(),
        Some(d2.as_str())
    );
    for digest in deployment_digests(&client, &ns.name, "early").await {
        assert_eq!(digest.as_deref(), Some(d2.as_str()));
    }
    operator.stop().await;
}

/// Wait until `name` says `ImageResolved=True`, then check that its status pins `digest`.
async fn wait_resolved_to(client: &kube::Client, namespace: &str, name: &str, digest: &str) {
    let agent = wait_condition(
        client,
        namespace,
        name,
        "ImageResolved",
        "True",
        None,
        TIMEOUT,
    )
    .await;
    assert_eq!(
        agent.status.unwrap().image.unwrap().digest.as_deref(),
        Some(digest),
        "{namespace}/{name}: status.image.digest"
    );
}
