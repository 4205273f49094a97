//! Bad TradingAgents are refused by the API server itself (OpenAPI schema and CEL rules of the
//! generated CRD), with a message that names the field. Server-side dry runs: nothing is stored,
//! no operator is needed.

#[path = "operator_support.rs"]
mod support;

use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use support::*;
use trading_agent_operator::TradingAgent;
use trading_agent_tests::cluster::TestNamespace;

/// (what is wrong, the manifest, text the API server's message must contain)
fn cases() -> Vec<(&'static str, Value, &'static str)> {
    let long_name = "a".repeat(55);
    let mut no_image = agent("no-image", json!({}));
    no_image["spec"].as_object_mut().unwrap().remove("image");
    let mut no_database = agent("no-database", json!({}));
    no_database["spec"]
        .as_object_mut()
        .unwrap()
        .remove("database");
    let mut no_secret_ref = agent("no-secret-ref", json!({}));
    no_secret_ref["spec"]["database"] = json!({});
    let mut bad_name = agent("bad.name", json!({}));
    bad_name["metadata"]["name"] = json!("alpha.beta");
    let mut too_long = agent("too-long", json!({}));
    too_long["metadata"]["name"] = json!(long_name);
    vec![
        (
            "empty image",
            agent("a", json!({"image": ""})),
            "spec.image",
        ),
        ("missing image", no_image, "spec.image: Required value"),
        (
            "upper-case repository",
            agent("a", json!({"image": "registry.example.com/ACME/app:1"})),
            "spec.image",
        ),
        (
            "space in the reference",
            agent(
                "a",
                json!({"image": "registry.example.com/acme/app:bad tag"}),
            ),
            "spec.image",
        ),
        (
            "truncated digest",
            agent(
                "a",
                json!({"image": "registry.example.com/acme/app@sha256:abc"}),
            ),
            "spec.image",
        ),
        (
            "URL instead of a reference",
            agent(
                "a",
                json!({"image": "https://registry.example.com/acme/app:1"}),
            ),
            "spec.image",
        ),
        (
            "api replicas above 50",
            agent("a", json!({"api": {"replicas": 51}})),
            "spec.api.replicas",
        ),
        (
            "negative bot replicas",
            agent("a", json!({"bot": {"replicas": -1}})),
            "spec.bot.replicas",
        ),
        (
            "replicas as text",
            agent("a", json!({"strategy": {"replicas": "two"}})),
            "spec.strategy.replicas",
        ),
        (
            "port 0",
            agent("a", json!({"api": {"port": 0}})),
            "spec.api.port",
        ),
        (
            "port above 65535",
            agent("a", json!({"bot": {"port": 70000}})),
            "spec.bot.port",
        ),
        (
            "interval in days",
            agent("a", json!({"imageUpdate": {"interval": "5d"}})),
            "spec.imageUpdate.interval",
        ),
        (
            "interval below one second",
            agent("a", json!({"imageUpdate": {"interval": "500ms"}})),
            "spec.imageUpdate.interval",
        ),
        (
            "interval without unit",
            agent("a", json!({"imageUpdate": {"interval": "300"}})),
            "spec.imageUpdate.interval",
        ),
        (
            "verify window in days",
            agent("a", json!({"imageUpdate": {"verify": "2d"}})),
            "spec.imageUpdate.verify",
        ),
        (
            "verify window above 24h",
            agent("a", json!({"imageUpdate": {"verify": "25h"}})),
            "spec.imageUpdate.verify",
        ),
        (
            "unknown update mode",
            agent("a", json!({"imageUpdate": {"mode": "Off"}})),
            "spec.imageUpdate.mode: Unsupported value",
        ),
        (
            "YAML 1.1 boolean as rollback",
            agent("a", json!({"imageUpdate": {"rollback": false}})),
            "spec.imageUpdate.rollback",
        ),
        (
            "missing database",
            no_database,
            "spec.database: Required value",
        ),
        (
            "missing secretRef",
            no_secret_ref,
            "spec.database.secretRef: Required value",
        ),
        (
            "empty Secret name",
            agent(
                "a",
                json!({"database": {"secretRef": {"name": "", "key": "url"}}}),
            ),
            "spec.database.secretRef.name",
        ),
        (
            "Secret name not DNS-1123",
            agent(
                "a",
                json!({"database": {"secretRef": {"name": "Desk_DB", "key": "url"}}}),
            ),
            "spec.database.secretRef.name",
        ),
        (
            "Secret key with a slash",
            agent(
                "a",
                json!({"database": {"secretRef": {"name": "db", "key": "a/b"}}}),
            ),
            "spec.database.secretRef.key",
        ),
        (
            "env name starting with a digit",
            agent(
                "a",
                json!({"bot": {"env": [{"name": "1BAD", "value": "x"}]}}),
            ),
            "spec.bot.env[0].name",
        ),
        (
            "DATABASE_URL inline",
            agent(
                "a",
                json!({"api": {"env": [{"name": "DATABASE_URL", "value": "postgres://x"}]}}),
            ),
            "spec.api.env[0].name",
        ),
        (
            "duplicate env names",
            agent(
                "a",
                json!({"api": {"env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]}}),
            ),
            "spec.api.env[1]",
        ),
        (
            "value and valueFrom together",
            agent(
                "a",
                json!({"strategy": {"env": [{"name": "POD", "value": "x",
                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}}),
            ),
            "spec.strategy.env[0]",
        ),
        (
            "pull secret name not DNS-1123",
            agent("a", json!({"imagePullSecrets": [{"name": "RegCred"}]})),
            "spec.imagePullSecrets[0].name",
        ),
        (
            "progress deadline too short",
            agent("a", json!({"progressDeadlineSeconds": 1})),
            "spec.progressDeadlineSeconds",
        ),
        (
            "cpu as a word",
            agent(
                "a",
                json!({"api": {"resources": {"requests": {"cpu": "abc"}}}}),
            ),
            "spec.api.resources.requests.cpu",
        ),
        (
            "negative memory limit",
            agent(
                "a",
                json!({"bot": {"resources": {"limits": {"memory": "-1Gi"}}}}),
            ),
            "spec.bot.resources.limits.memory",
        ),
        (
            "space before the unit",
            agent(
                "a",
                json!({"strategy": {"resources": {"requests": {"memory": "512 Mi"}}}}),
            ),
            "spec.strategy.resources.requests.memory",
        ),
        // spec.trading and spec.networkPolicy (issue 19).
        (
            "unknown trading state",
            agent(
                "a",
                json!({"trading": {"state": "Paused"},
                "api": {"tokenSecretRef": {"name": "api", "key": "token"}}}),
            ),
            "spec.trading.state: Unsupported value",
        ),
        (
            "trading state in lower case",
            agent(
                "a",
                json!({"trading": {"state": "stop_entry"},
                "api": {"tokenSecretRef": {"name": "api", "key": "token"}}}),
            ),
            "spec.trading.state: Unsupported value",
        ),
        (
            "trading without an api token",
            agent("a", json!({"trading": {"state": "StopEntry"}})),
            "spec.trading",
        ),
        (
            "networkPolicy.enabled as text",
            agent("a", json!({"networkPolicy": {"enabled": "yes"}})),
            "spec.networkPolicy.enabled",
        ),
        (
            "allowFrom entry without a selector",
            agent(
                "a",
                json!({"networkPolicy": {"enabled": true, "allowFrom": [{}]}}),
            ),
            "spec.networkPolicy.allowFrom[0]",
        ),
        (
            "selector label key with a space",
            agent(
                "a",
                json!({"networkPolicy": {"enabled": true, "allowFrom": [
                {"namespaceSelector": {"matchLabels": {"team name": "ops"}}}]}}),
            ),
            "spec.networkPolicy.allowFrom[0].namespaceSelector.matchLabels",
        ),
        (
            "selector label value starting with a dash",
            agent(
                "a",
                json!({"networkPolicy": {"enabled": true, "allowFrom": [
                {"podSelector": {"matchLabels": {"app": "-ingress"}}}]}}),
            ),
            "spec.networkPolicy.allowFrom[0].podSelector.matchLabels",
        ),
        (
            "unknown selector operator",
            agent(
                "a",
                json!({"networkPolicy": {"enabled": true, "allowFrom": [
                {"podSelector": {"matchExpressions": [{"key": "app", "operator": "Like", "values": ["x"]}]}}]}}),
            ),
            "spec.networkPolicy.allowFrom[0].podSelector.matchExpressions[0].operator: Unsupported value",
        ),
        (
            "In without values",
            agent(
                "a",
                json!({"networkPolicy": {"enabled": true, "allowFrom": [
                {"podSelector": {"matchExpressions": [{"key": "app", "operator": "In"}]}}]}}),
            ),
            "spec.networkPolicy.allowFrom[0].podSelector.matchExpressions[0]",
        ),
        (
            "Exists with values",
            agent(
                "a",
                json!({"networkPolicy": {"enabled": true, "allowFrom": [
                {"namespaceSelector": {"matchExpressions": [{"key": "team", "operator": "Exists", "values": ["a"]}]}}]}}),
            ),
            "spec.networkPolicy.allowFrom[0].namespaceSelector.matchExpressions[0]",
        ),
        (
            "selector requirement key not a label key",
            agent(
                "a",
                json!({"networkPolicy": {"enabled": true, "allowFrom": [
                {"podSelector": {"matchExpressions": [{"key": "a/b/c", "operator": "Exists"}]}}]}}),
            ),
            "spec.networkPolicy.allowFrom[0].podSelector.matchExpressions[0].key",
        ),
        ("name with a dot", bad_name, "metadata.name"),
        ("name too long for the children", too_long, "metadata.name"),
    ]
}

#[tokio::test]
async fn bad_resources_are_refused_with_the_field_named() {
    let client = client().await;
    install_crd(&client).await;
    let namespace = TestNamespace::create(&client, "op-valid")
        .await
        .expect("namespace");
    let api: Api<TradingAgent> = Api::namespaced(client.clone(), &namespace.name);
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };

    // A good one passes, so the refusals below are about the one thing each case breaks.
    let good: TradingAgent = serde_json::from_value(agent(
        "good",
        json!({
            "imagePullSecrets": [{"name": "regcred"}],
            "imageUpdate": {"mode": "Pin", "interval": "1h30m", "rollback": "Never"},
            "api": {"replicas": 2, "port": 9000, "env": [{"name": "RUST_LOG", "value": "info"}],
                    "resources": {"requests": {"cpu": 1, "memory": "256Mi"}, "limits": {"cpu": "1500m", "memory": "1Gi"}}},
            "bot": {"env": [{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]},
        }),
    ))
    .unwrap();
    api.create(&dry_run, &good)
        .await
        .expect("a valid TradingAgent is accepted");
    let good: TradingAgent = serde_json::from_value(agent(
        "good-trading",
        json!({
            "api": {"tokenSecretRef": {"name": "api", "key": "token"}},
            "trading": {"state": "StopEntry"},
            "networkPolicy": {"enabled": true, "allowFrom": [
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress"}},
                 "podSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["nginx"]},
                                                      {"key": "canary", "operator": "DoesNotExist"}]}},
                {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus", "tier": ""}}}
            ]},
        }),
    ))
    .unwrap();
    api.create(&dry_run, &good)
        .await
        .expect("a valid TradingAgent is accepted");

    let cases = cases();
    assert!(cases.len() >= 15);
    let mut failures = Vec::new();
    for (what, manifest, expected) in &cases {
        // Posted as raw JSON: several cases are not representable in the Rust types.
        let request = kube::core::Request::new(format!(
            "/apis/tradingagents.dev/v1alpha1/namespaces/{}/tradingagents",
            namespace.name
        ))
        .create(&dry_run, serde_json::to_vec(manifest).unwrap())
        .unwrap();
        match client.request::<Value>(request).await {
            Ok(_) => failures.push(format!("{what}: accepted")),
            Err(kube::Error::Api(status)) => {
                let message = status.message.clone();
                println!("{what:32} -> {} {message}", status.code);
                if status.code != 422 || !message.contains(expected) {
                    failures.push(format!(
                        "{what}: HTTP {} {message:?} does not name {expected:?}",
                        status.code
                    ));
                }
            }
            Err(e) => failures.push(format!("{what}: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    namespace
        .delete(std::time::Duration::from_secs(60))
        .await
        .expect("namespace deleted");
}

/// The CRD's quantity pattern agrees with Kubernetes' own parser: a text quantity is accepted in
/// a TradingAgent's resources exactly when the API server accepts it in a ResourceQuota (negative
/// quantities aside, which no request or limit may have).
#[tokio::test]
async fn quantity_pattern_agrees_with_the_api_server() {
    let client = client().await;
    install_crd(&client).await;
    let namespace = TestNamespace::create(&client, "op-quantity")
        .await
        .expect("namespace");
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let accepted = |path: String, body: Value| {
        let client = client.clone();
        let request = kube::core::Request::new(path)
            .create(&dry_run, serde_json::to_vec(&body).unwrap())
            .unwrap();
        async move {
            match client.request::<Value>(request).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(status)) if (400..500).contains(&status.code) => Ok(false),
                Err(e) => Err(e),
            }
        }
    };
    let mut disagreements = Vec::new();
    for quantity in [
        "1", "250m", "1.5", ".5", "5.", "512Mi", "2Gi", "1Ei", "1e3", "1E-3", "100u", "10n", "1k",
        "+1", "0", "abc", "", "1 Gi", "1K", "1KI", "1.5.5", "1e", "0x10", "1m1", "1mi", "Mi",
    ] {
        // Kubernetes reads a unit without a number ("Mi") as zero; refusing it is deliberate.
        let deliberately_stricter = quantity == "Mi";
        let agent_ok = accepted(
            format!(
                "/apis/tradingagents.dev/v1alpha1/namespaces/{}/tradingagents",
                namespace.name
            ),
            agent(
                "q",
                json!({"api": {"resources": {"requests": {"cpu": quantity}}}}),
            ),
        )
        .await
        .expect("TradingAgent dry run");
        let quota_ok = accepted(
            format!("/api/v1/namespaces/{}/resourcequotas", namespace.name),
            json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q"},
                   "spec": {"hard": {"requests.cpu": quantity}}}),
        )
        .await
        .expect("ResourceQuota dry run");
        println!("{quantity:>6?}: TradingAgent {agent_ok}, ResourceQuota {quota_ok}");
        if agent_ok != (quota_ok && !deliberately_stricter) {
            disagreements.push(format!(
                "{quantity:?}: TradingAgent {agent_ok}, ResourceQuota {quota_ok}"
            ));
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
    namespace
        .delete(std::time::Duration::from_secs(60))
        .await
        .expect("namespace deleted");
}

#[tokio::test]
async fn kubectl_explain_documents_the_fields_and_defaults() {
    let client = client().await;
    install_crd(&client).await;
    let (ok, out) = run_kubectl(&["explain", "ta.spec.imageUpdate"]).await;
    assert!(ok, "{out}");
    assert!(out.contains("Track") && out.contains("Pin"), "{out}");
    assert!(out.contains("interval"), "{out}");
    assert!(
        out.contains("verify") && out.contains("BecameUnready"),
        "the verification window is documented: {out}"
    );
    let (ok, out) = run_kubectl(&["explain", "tradingagents.spec.database.secretRef"]).await;
    assert!(ok, "{out}");
    assert!(out.contains("DATABASE_URL"), "{out}");
    let (ok, out) = run_kubectl(&["api-resources", "--categories=trading", "-o", "name"]).await;
    assert!(
        ok && out.contains("tradingagents.tradingagents.dev"),
        "{out}"
    );
}
