//! The operator against the real API server of the harness, with kwok nodes running the pods:
//! what a TradingAgent becomes, how changes and hand edits are reconciled, garbage collection,
//! pausing, and the states where nothing may be deployed (tag-only image, missing Secret).
//!
//! Each test has its own namespace (Pod Security `restricted` enforced) and its own operator,
//! running in this process and watching only that namespace.

#[path = "operator_support.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use support::*;
use trading_agent_operator::TradingAgent;
use trading_agent_operator::reconcile::conditions::find_condition;
use trading_agent_tests::cluster::TestNamespace;

const TIMEOUT: Duration = Duration::from_secs(60);

struct Fixture {
    client: Client,
    namespace: TestNamespace,
    operator: RunningOperator,
}

impl Fixture {
    async fn new(prefix: &str) -> Self {
        let client = client().await;
        install_crd(&client).await;
        let namespace = TestNamespace::create_restricted(&client, prefix)
            .await
            .expect("namespace");
        create_db_secret(&client, &namespace.name).await;
        let operator = RunningOperator::start(&client, &namespace.name).await;
        Self {
            client,
            namespace,
            operator,
        }
    }

    fn ns(&self) -> &str {
        &self.namespace.name
    }

    fn deployments(&self) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), self.ns())
    }

    fn agents(&self) -> Api<TradingAgent> {
        Api::namespaced(self.client.clone(), self.ns())
    }

    async fn ready(&self, name: &str) -> TradingAgent {
        wait_condition(
            &self.client,
            self.ns(),
            name,
            "Ready",
            "True",
            None,
            TIMEOUT,
        )
        .await
    }

    async fn generations(&self, name: &str) -> BTreeMap<String, i64> {
        let mut out = BTreeMap::new();
        for role in ["api", "bot", "strategy"] {
            let d = self
                .deployments()
                .get(&format!("{name}-{role}"))
                .await
                .expect("deployment");
            out.insert(role.to_owned(), d.metadata.generation.unwrap_or(0));
        }
        out
    }

    /// The events about TradingAgent `name`, once every one of `reasons` is among them (or after
    /// 15 s, to show what there was): the operator publishes them beside its status write, in a
    /// task of their own, so they may land just after the status a test waited for.
    async fn events(&self, name: &str, reasons: &[&str]) -> Vec<(String, String, String)> {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let events = self.events_now(name).await;
            let all_there = reasons
                .iter()
                .all(|wanted| events.iter().any(|(_, r, _)| r == wanted));
            if all_there || std::time::Instant::now() > deadline {
                return events;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn events_now(&self, name: &str) -> Vec<(String, String, String)> {
        let events: Api<Event> = Api::namespaced(self.client.clone(), self.ns());
        events
            .list(&ListParams::default())
            .await
            .expect("events")
            .items
            .into_iter()
            .filter(|e| {
                e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
                    && e.regarding.as_ref().and_then(|r| r.kind.as_deref()) == Some("TradingAgent")
            })
            .map(|e| {
                (
                    e.type_.unwrap_or_default(),
                    e.reason.unwrap_or_default(),
                    e.note.unwrap_or_default(),
                )
            })
            .collect()
    }

    async fn finish(self) {
        self.operator.stop().await;
        self.namespace
            .delete(Duration::from_secs(90))
            .await
            .expect("namespace deleted");
    }
}

fn container(d: &Deployment) -> &k8s_openapi::api::core::v1::Container {
    &d.spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
}

#[tokio::test]
async fn a_digest_image_becomes_three_ready_deployments_and_a_service() {
    let f = Fixture::new("op-create").await;
    let applied = apply_agent(
        &f.client,
        f.ns(),
        &agent("alpha", json!({"api": {"replicas": 2}})),
    )
    .await;
    let started = tokio::time::Instant::now();

    let agent = f.ready("alpha").await;
    println!("Ready=True after {:?}", started.elapsed());
    let status = agent.status.clone().unwrap();
    assert_eq!(status.observed_generation, applied.metadata.generation);
    let ready = find_condition(&status.conditions, "Ready").unwrap();
    assert_eq!(ready.reason, "AllComponentsReady");
    assert_eq!(ready.observed_generation, agent.metadata.generation);
    let image = status.image.clone().unwrap();
    assert_eq!(image.digest.as_deref(), Some(DIGEST));
    assert_eq!(image.short_digest.as_deref(), Some("sha256:0123456789ab"));
    assert_eq!(image.last_healthy_digest.as_deref(), Some(DIGEST));
    let components = status.components.clone().unwrap();
    assert_eq!(components.api.as_ref().unwrap().ready_replicas, 2);
    assert_eq!(
        components.bot.as_ref().unwrap().digest.as_deref(),
        Some(DIGEST)
    );
    assert_eq!(status.history.len(), 1);

    let uid = agent.metadata.uid.clone().unwrap();
    for role in ["api", "bot", "strategy"] {
        let d = f.deployments().get(&format!("alpha-{role}")).await.unwrap();
        let labels = d.labels();
        assert_eq!(labels["app.kubernetes.io/name"], "trading-agent");
        assert_eq!(labels["app.kubernetes.io/instance"], "alpha");
        assert_eq!(labels["app.kubernetes.io/component"], role);
        assert_eq!(
            labels["app.kubernetes.io/managed-by"],
            "trading-agent-operator"
        );
        let owners = d.owner_references();
        assert_eq!(owners.len(), 1);
        assert_eq!(owners[0].kind, "TradingAgent");
        assert_eq!(owners[0].uid, uid);
        assert_eq!(owners[0].controller, Some(true));

        let spec = d.spec.as_ref().unwrap();
        let rolling = spec
            .strategy
            .as_ref()
            .unwrap()
            .rolling_update
            .as_ref()
            .unwrap();
        assert_eq!(rolling.max_unavailable, Some(IntOrString::Int(0)));
        assert_eq!(spec.progress_deadline_seconds, Some(120));

        let c = container(&d);
        assert_eq!(c.image.as_deref(), Some(IMAGE), "pinned to the digest");
        assert_eq!(c.args.as_deref(), Some(&[role.to_owned()][..]));
        let env = c.env.as_ref().unwrap();
        let db = env.iter().find(|e| e.name == "DATABASE_URL").unwrap();
        assert_eq!(db.value, None, "never inline");
        let secret_ref = db
            .value_from
            .as_ref()
            .unwrap()
            .secret_key_ref
            .as_ref()
            .unwrap();
        assert_eq!(
            (secret_ref.name.as_str(), secret_ref.key.as_str()),
            (DB_SECRET, "url")
        );
        let port = if role == "api" { "8000" } else { "8080" };
        assert_eq!(
            env.iter()
                .find(|e| e.name == "PORT")
                .unwrap()
                .value
                .as_deref(),
            Some(port)
        );
        for (probe, path) in [
            (&c.startup_probe, "/healthz"),
            (&c.liveness_probe, "/healthz"),
            (&c.readiness_probe, "/readyz"),
        ] {
            let get = probe.as_ref().unwrap().http_get.as_ref().unwrap();
            assert_eq!(get.path.as_deref(), Some(path));
            assert_eq!(get.port, IntOrString::String("http".into()));
        }
        let sc = c.security_context.as_ref().unwrap();
        assert_eq!(sc.run_as_non_root, Some(true));
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(
            sc.capabilities.as_ref().unwrap().drop.as_deref(),
            Some(&["ALL".to_owned()][..])
        );
        assert_eq!(sc.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");
    }

    // The pods passed Pod Security "restricted" admission (the namespace enforces it) and kwok
    // runs them.
    let pods: Api<Pod> = Api::namespaced(f.client.clone(), f.ns());
    let running = pods
        .list(&ListParams::default().labels("app.kubernetes.io/instance=alpha"))
        .await
        .unwrap();
    assert_eq!(running.items.len(), 4, "2 api + 1 bot + 1 strategy");
    for pod in &running.items {
        assert_eq!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Running")
        );
    }

    let svc: Api<Service> = Api::namespaced(f.client.clone(), f.ns());
    let svc = svc.get("alpha-api").await.unwrap();
    let spec = svc.spec.unwrap();
    assert_eq!(spec.ports.unwrap()[0].port, 8000);
    assert_eq!(spec.selector.unwrap()["app.kubernetes.io/component"], "api");
    assert_eq!(svc.metadata.owner_references.unwrap()[0].uid, uid);
    let pdb: Api<PodDisruptionBudget> = Api::namespaced(f.client.clone(), f.ns());
    assert!(
        pdb.get_opt("alpha-api").await.unwrap().is_some(),
        "PDB for 2 api replicas"
    );

    // What users run.
    let (ok, out) = run_kubectl(&[
        "-n",
        f.ns(),
        "wait",
        "--for=condition=Ready",
        "ta/alpha",
        "--timeout=30s",
    ])
    .await;
    assert!(ok, "kubectl wait: {out}");
    let (ok, out) = run_kubectl(&["-n", f.ns(), "get", "ta"]).await;
    assert!(ok, "{out}");
    assert!(out.contains("READY") && out.contains("DIGEST"), "{out}");
    assert!(
        out.contains("True") && out.contains("sha256:0123456789ab"),
        "{out}"
    );

    let events = f
        .events("alpha", &["Created", "Ready", "DigestPinned"])
        .await;
    let reasons: Vec<&str> = events.iter().map(|(_, r, _)| r.as_str()).collect();
    assert!(reasons.contains(&"Created"), "{events:?}");
    // One Created event for all the children, not one each.
    let created: Vec<&str> = events
        .iter()
        .filter(|(_, r, _)| r == "Created")
        .map(|(_, _, note)| note.as_str())
        .collect();
    assert_eq!(created.len(), 1, "{events:?}");
    for child in [
        "Deployment alpha-api",
        "Deployment alpha-bot",
        "Deployment alpha-strategy",
        "Service alpha-api",
    ] {
        assert!(created[0].contains(child), "{child} in {created:?}");
    }
    assert!(reasons.contains(&"Ready"), "{events:?}");
    assert!(reasons.contains(&"DigestPinned"), "{events:?}");
    let (ok, out) = run_kubectl(&["-n", f.ns(), "describe", "ta", "alpha"]).await;
    assert!(
        ok && out.contains("DigestPinned"),
        "kubectl describe shows events: {out}"
    );

    // The operator's own surface.
    assert_eq!(f.operator.get("/healthz").await.0, 200);
    assert_eq!(f.operator.get("/readyz").await.0, 200);
    let (code, metrics) = f.operator.get("/metrics").await;
    assert_eq!(code, 200);
    assert!(
        metrics.contains("trading_agent_operator_reconciliations_total"),
        "{metrics}"
    );
    assert!(metrics.contains("trading_agent_operator_reconcile_duration_seconds_bucket"));

    f.finish().await;
}

#[tokio::test]
async fn the_status_is_not_rewritten_when_nothing_changes() {
    let f = Fixture::new("op-quiet").await;
    apply_agent(&f.client, f.ns(), &agent("quiet", json!({}))).await;
    f.ready("quiet").await;
    // Let the last Deployment status updates settle, then watch for a while.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = f.agents().get("quiet").await.unwrap();
    let writes_before = f.operator.metrics.status_updates.get();
    let reconciles_before = f.operator.metrics.reconciliations.get();
    tokio::time::sleep(Duration::from_secs(8)).await;
    let after = f.agents().get("quiet").await.unwrap();
    assert_eq!(
        before.resource_version(),
        after.resource_version(),
        "no status write without a change"
    );
    assert_eq!(f.operator.metrics.status_updates.get(), writes_before);
    let reconciles = f.operator.metrics.reconciliations.get() - reconciles_before;
    assert!(
        reconciles <= 2,
        "no reconcile storm: {reconciles} reconciles in 8 s"
    );
    f.finish().await;
}

#[tokio::test]
async fn changing_one_role_changes_only_its_deployment() {
    let f = Fixture::new("op-change").await;
    apply_agent(&f.client, f.ns(), &agent("alpha", json!({}))).await;
    f.ready("alpha").await;
    let g0 = f.generations("alpha").await;

    // replicas of the bot
    patch_spec(&f.client, f.ns(), "alpha", json!({"bot": {"replicas": 3}})).await;
    let agent = f.ready("alpha").await;
    assert_eq!(
        agent
            .status
            .unwrap()
            .components
            .unwrap()
            .bot
            .unwrap()
            .ready_replicas,
        3
    );
    let g1 = f.generations("alpha").await;
    assert_eq!(g1["bot"], g0["bot"] + 1);
    assert_eq!((g1["api"], g1["strategy"]), (g0["api"], g0["strategy"]));
    let bot = f.deployments().get("alpha-bot").await.unwrap();
    assert_eq!(bot.spec.unwrap().replicas, Some(3));

    // env of the strategy
    patch_spec(
        &f.client,
        f.ns(),
        "alpha",
        json!({"strategy": {"env": [{"name": "STRATEGY_TICK", "value": "5s"}]}}),
    )
    .await;
    f.ready("alpha").await;
    let g2 = f.generations("alpha").await;
    assert_eq!(g2["strategy"], g1["strategy"] + 1);
    assert_eq!((g2["api"], g2["bot"]), (g1["api"], g1["bot"]));
    let strategy = f.deployments().get("alpha-strategy").await.unwrap();
    let env = container(&strategy).env.clone().unwrap();
    assert!(
        env.iter()
            .any(|e| e.name == "STRATEGY_TICK" && e.value.as_deref() == Some("5s"))
    );

    // resources of the api
    patch_spec(
        &f.client,
        f.ns(),
        "alpha",
        json!({"api": {"resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}}),
    )
    .await;
    f.ready("alpha").await;
    let g3 = f.generations("alpha").await;
    assert_eq!(g3["api"], g2["api"] + 1);
    assert_eq!((g3["bot"], g3["strategy"]), (g2["bot"], g2["strategy"]));
    let api = f.deployments().get("alpha-api").await.unwrap();
    let requests = container(&api).resources.clone().unwrap().requests.unwrap();
    assert_eq!(requests["cpu"].0, "100m");

    // api replicas 1 -> 2 adds the PodDisruptionBudget, 2 -> 1 removes it
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(f.client.clone(), f.ns());
    assert!(pdbs.get_opt("alpha-api").await.unwrap().is_none());
    patch_spec(&f.client, f.ns(), "alpha", json!({"api": {"replicas": 2}})).await;
    eventually("the PDB exists", TIMEOUT, || {
        let pdbs = pdbs.clone();
        async move { pdbs.get_opt("alpha-api").await.ok().flatten() }
    })
    .await;
    patch_spec(&f.client, f.ns(), "alpha", json!({"api": {"replicas": 1}})).await;
    eventually("the PDB is gone", TIMEOUT, || {
        let pdbs = pdbs.clone();
        async move {
            pdbs.get_opt("alpha-api")
                .await
                .ok()
                .and_then(|p| p.is_none().then_some(()))
        }
    })
    .await;
    f.finish().await;
}

#[tokio::test]
async fn hand_edits_and_deletions_are_undone() {
    let f = Fixture::new("op-drift").await;
    apply_agent(&f.client, f.ns(), &agent("alpha", json!({}))).await;
    f.ready("alpha").await;

    // Someone scales the api and swaps its image for a mutable tag.
    f.deployments()
        .patch(
            "alpha-api",
            &PatchParams::default(),
            &Patch::Strategic(
                json!({"spec": {"replicas": 4, "template": {"spec": {"containers": [
                    {"name": "api", "image": "registry.example.com/acme/trading-agent:latest"}
                ]}}}}),
            ),
        )
        .await
        .unwrap();
    eventually("the api Deployment is restored", TIMEOUT, || {
        let deployments = f.deployments();
        async move {
            let d = deployments.get("alpha-api").await.ok()?;
            (d.spec.as_ref()?.replicas == Some(1) && container(&d).image.as_deref() == Some(IMAGE))
                .then_some(())
        }
    })
    .await;

    // Someone deletes the bot Deployment and the Service.
    let old_uid = f.deployments().get("alpha-bot").await.unwrap().uid();
    f.deployments()
        .delete("alpha-bot", &DeleteParams::default())
        .await
        .unwrap();
    let services: Api<Service> = Api::namespaced(f.client.clone(), f.ns());
    services
        .delete("alpha-api", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the bot Deployment is back", TIMEOUT, || {
        let deployments = f.deployments();
        let old_uid = old_uid.clone();
        async move {
            let d = deployments.get_opt("alpha-bot").await.ok()??;
            (d.uid() != old_uid && d.metadata.deletion_timestamp.is_none()).then_some(())
        }
    })
    .await;
    eventually("the Service is back", TIMEOUT, || {
        let services = services.clone();
        async move { services.get_opt("alpha-api").await.ok()? }
    })
    .await;
    f.ready("alpha").await;
    f.finish().await;
}

#[tokio::test]
async fn deleting_the_agent_garbage_collects_its_children() {
    let f = Fixture::new("op-gc").await;
    apply_agent(
        &f.client,
        f.ns(),
        &agent("alpha", json!({"api": {"replicas": 2}})),
    )
    .await;
    apply_agent(&f.client, f.ns(), &agent("beta", json!({}))).await;
    f.ready("alpha").await;
    f.ready("beta").await;

    f.agents()
        .delete("alpha", &DeleteParams::background())
        .await
        .unwrap();
    let selector = "app.kubernetes.io/instance=alpha";
    let deployments = f.deployments();
    let services: Api<Service> = Api::namespaced(f.client.clone(), f.ns());
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(f.client.clone(), f.ns());
    let pods: Api<Pod> = Api::namespaced(f.client.clone(), f.ns());
    eventually(
        "alpha's children are collected",
        Duration::from_secs(90),
        || {
            let (deployments, services, pdbs, pods) = (
                deployments.clone(),
                services.clone(),
                pdbs.clone(),
                pods.clone(),
            );
            async move {
                let lp = ListParams::default().labels(selector);
                let left = deployments.list(&lp).await.ok()?.items.len()
                    + services.list(&lp).await.ok()?.items.len()
                    + pdbs.list(&lp).await.ok()?.items.len()
                    + pods.list(&lp).await.ok()?.items.len();
                (left == 0).then_some(())
            }
        },
    )
    .await;
    // beta is untouched.
    let beta = f
        .deployments()
        .list(&ListParams::default().labels("app.kubernetes.io/instance=beta"))
        .await
        .unwrap();
    assert_eq!(beta.items.len(), 3);
    f.finish().await;
}

#[tokio::test]
async fn paused_reports_status_and_changes_nothing() {
    let f = Fixture::new("op-pause").await;
    apply_agent(&f.client, f.ns(), &agent("alpha", json!({}))).await;
    f.ready("alpha").await;
    let g0 = f.generations("alpha").await;

    patch_spec(
        &f.client,
        f.ns(),
        "alpha",
        json!({"paused": true, "bot": {"replicas": 2}}),
    )
    .await;
    let agent = wait_condition(
        &f.client,
        f.ns(),
        "alpha",
        "Progressing",
        "False",
        Some("Paused"),
        TIMEOUT,
    )
    .await;
    // Reported, with the current generation observed, but not applied.
    assert_eq!(
        agent.status.as_ref().unwrap().observed_generation,
        agent.metadata.generation
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        f.generations("alpha").await,
        g0,
        "nothing applied while paused"
    );
    let bot = f.deployments().get("alpha-bot").await.unwrap();
    assert_eq!(bot.spec.unwrap().replicas, Some(1));
    // Paused does not mean broken: the running components are still ready.
    let ready = find_condition(&agent.status.unwrap().conditions, "Ready")
        .unwrap()
        .clone();
    assert_eq!(ready.status, "True");

    patch_spec(&f.client, f.ns(), "alpha", json!({"paused": false})).await;
    eventually("the bot is scaled once resumed", TIMEOUT, || {
        let deployments = f.deployments();
        async move {
            let d = deployments.get("alpha-bot").await.ok()?;
            (d.spec?.replicas == Some(2)).then_some(())
        }
    })
    .await;
    f.ready("alpha").await;
    let reasons: Vec<String> = f
        .events("alpha", &["Paused", "Resumed"])
        .await
        .into_iter()
        .map(|(_, r, _)| r)
        .collect();
    assert!(reasons.contains(&"Paused".to_owned()), "{reasons:?}");
    assert!(reasons.contains(&"Resumed".to_owned()), "{reasons:?}");
    f.finish().await;
}

#[tokio::test]
async fn a_tag_only_image_is_never_deployed() {
    let f = Fixture::new("op-tag").await;
    apply_agent(
        &f.client,
        f.ns(),
        &agent(
            "tagged",
            json!({"image": "registry.example.com/acme/trading-agent:stable"}),
        ),
    )
    .await;
    let agent = wait_condition(
        &f.client,
        f.ns(),
        "tagged",
        "ImageResolved",
        "False",
        Some("DigestRequired"),
        TIMEOUT,
    )
    .await;
    let conditions = agent.status.unwrap().conditions;
    let ready = find_condition(&conditions, "Ready").unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "DigestRequired")
    );
    assert!(
        ready.message.contains("never deploys a mutable tag"),
        "{}",
        ready.message
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let deployments = f
        .deployments()
        .list(&ListParams::default().labels("app.kubernetes.io/instance=tagged"))
        .await
        .unwrap();
    assert!(
        deployments.items.is_empty(),
        "nothing deployed from a mutable tag"
    );
    let events = f.events("tagged", &["DigestRequired"]).await;
    assert!(
        events
            .iter()
            .any(|(t, r, _)| t == "Warning" && r == "DigestRequired"),
        "{events:?}"
    );

    // Pinning the image makes it deployable.
    patch_spec(&f.client, f.ns(), "tagged", json!({"image": IMAGE})).await;
    f.ready("tagged").await;
    f.finish().await;
}

#[tokio::test]
async fn a_missing_secret_is_reported_and_retried_not_a_crash_loop() {
    let f = Fixture::new("op-secret").await;
    apply_agent(
        &f.client,
        f.ns(),
        &agent(
            "nosecret",
            json!({"database": {"secretRef": {"name": "later-db", "key": "url"}}}),
        ),
    )
    .await;
    let agent = wait_condition(
        &f.client,
        f.ns(),
        "nosecret",
        "Ready",
        "False",
        Some("SecretNotFound"),
        TIMEOUT,
    )
    .await;
    let ready = find_condition(&agent.status.unwrap().conditions, "Ready")
        .unwrap()
        .clone();
    assert!(ready.message.contains("later-db"), "{}", ready.message);
    assert!(
        ready.message.contains("spec.database.secretRef.name"),
        "{}",
        ready.message
    );
    let events = f.events("nosecret", &["SecretNotFound"]).await;
    assert!(
        events
            .iter()
            .any(|(t, r, _)| t == "Warning" && r == "SecretNotFound"),
        "{events:?}"
    );
    let none = f
        .deployments()
        .list(&ListParams::default().labels("app.kubernetes.io/instance=nosecret"))
        .await
        .unwrap();
    assert!(none.items.is_empty());
    // Retried with back-off, counted as a failure; the operator keeps serving.
    let (_, metrics) = f.operator.get("/metrics").await;
    assert!(
        metrics.contains(
            "trading_agent_operator_reconcile_failures_total{reason=\"secret_not_found\"}"
        ),
        "{metrics}"
    );
    assert_eq!(f.operator.get("/healthz").await.0, 200);

    // The Secret appears: the next retry picks it up.
    let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json!({
        "metadata": {"name": "later-db"},
        "stringData": {"url": "postgres://trader:secret@db/trading"},
    }))
    .unwrap();
    Api::<k8s_openapi::api::core::v1::Secret>::namespaced(f.client.clone(), f.ns())
        .create(&Default::default(), &secret)
        .await
        .unwrap();
    f.ready("nosecret").await;

    f.finish().await;
}
