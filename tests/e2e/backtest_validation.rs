//! Bad Backtests are refused by the API server itself (OpenAPI schema and CEL rules of the
//! generated CRD), with a message that names the field; a Backtest's spec cannot change once
//! created. Server-side dry runs and one real create: no operator is needed.

#[path = "operator_support.rs"]
mod support;

use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use support::*;
use trading_agent_operator::backtest::Backtest;
use trading_agent_tests::cluster::TestNamespace;

fn backtest(name: &str, patch: Value) -> Value {
    let mut manifest = json!({
        "apiVersion": "tradingagents.dev/v1alpha1",
        "kind": "Backtest",
        "metadata": {"name": name},
        "spec": {
            "tradingAgentRef": {"name": "alpha"},
            "strategy": {
                "name": "sma 10-30", "kind": "sma_cross", "params": {"fast": 10, "slow": 30},
                "symbols": ["BTCUSDT", "ETHUSDT"], "timeframe": "5m",
                "exits": {"stop_loss": "0.05", "trailing_stop": "0.03", "minimal_roi": {"0": "0.04", "60": "0"}},
            },
            "from": "2025-01-01T00:00:00Z",
            "to": "2025-04-01T00:00:00Z",
        },
    });
    merge(&mut manifest["spec"], patch);
    manifest
}

/// JSON merge patch (RFC 7386): `null` removes.
fn merge(target: &mut Value, patch: Value) {
    match patch {
        Value::Object(fields) => {
            if !target.is_object() {
                *target = json!({});
            }
            let object = target.as_object_mut().unwrap();
            for (key, value) in fields {
                if value.is_null() {
                    object.remove(&key);
                } else {
                    merge(object.entry(key).or_insert(Value::Null), value);
                }
            }
        }
        other => *target = other,
    }
}

/// (what is wrong, the manifest, text the API server's message must contain)
fn cases() -> Vec<(&'static str, Value, &'static str)> {
    let strategy = |patch: Value| backtest("b", json!({"strategy": patch}));
    let mut too_long = backtest("b", json!({}));
    too_long["metadata"]["name"] = json!("a".repeat(55));
    vec![
        (
            "both a TradingAgent and an image",
            backtest("b", json!({"image": "registry.example.com/acme/app:1"})),
            "spec: Invalid value",
        ),
        (
            "neither a TradingAgent nor an image",
            backtest("b", json!({"tradingAgentRef": null})),
            "spec: Invalid value",
        ),
        (
            "an image without a database",
            backtest(
                "b",
                json!({"tradingAgentRef": null, "image": "registry.example.com/acme/app:1"}),
            ),
            "spec.database",
        ),
        (
            "an image that is no reference",
            backtest(
                "b",
                json!({"tradingAgentRef": null, "image": "https://registry.example.com/app",
                       "database": {"secretRef": {"name": "db", "key": "url"}}}),
            ),
            "spec.image",
        ),
        (
            "to before from",
            backtest("b", json!({"to": "2024-12-31T00:00:00Z"})),
            "spec.to",
        ),
        (
            "from is not a time",
            backtest("b", json!({"from": "last tuesday"})),
            "spec.from",
        ),
        (
            "fast not below slow",
            strategy(json!({"params": {"fast": 30, "slow": 10}})),
            "spec.strategy.params.fast",
        ),
        (
            "rsi with crossover params",
            strategy(json!({"kind": "rsi"})),
            "spec.strategy.params",
        ),
        (
            "rsi oversold at 0",
            strategy(json!({"kind": "rsi", "params": {"fast": null, "slow": null,
                "period": 14, "oversold": 0, "overbought": 70}})),
            "spec.strategy.params.oversold",
        ),
        (
            "slow period above 500",
            strategy(json!({"params": {"slow": 501}})),
            "spec.strategy.params.slow",
        ),
        (
            "unknown strategy kind",
            strategy(json!({"kind": "macd"})),
            "spec.strategy.kind",
        ),
        (
            "unknown timeframe",
            strategy(json!({"timeframe": "2m"})),
            "spec.strategy.timeframe",
        ),
        (
            "lower-case symbol",
            strategy(json!({"symbols": ["btcusdt"]})),
            "spec.strategy.symbols[0]",
        ),
        (
            "a symbol twice",
            strategy(json!({"symbols": ["BTCUSDT", "BTCUSDT"]})),
            "spec.strategy.symbols[1]",
        ),
        (
            "no symbols",
            strategy(json!({"symbols": []})),
            "spec.strategy.symbols",
        ),
        (
            "strategy name with a slash",
            strategy(json!({"name": "sma 10/30"})),
            "spec.strategy.name",
        ),
        (
            "stop loss above 1",
            strategy(json!({"exits": {"stop_loss": "1.5"}})),
            "spec.strategy.exits.stop_loss",
        ),
        (
            "minimal ROI age that is no number",
            strategy(json!({"exits": {"minimal_roi": {"soon": "0.01"}}})),
            "spec.strategy.exits.minimal_roi",
        ),
        (
            "starting balance of zero",
            backtest("b", json!({"startingBalance": "0.00"})),
            "spec.startingBalance",
        ),
        (
            "deadline below 10 s",
            backtest("b", json!({"activeDeadlineSeconds": 1})),
            "spec.activeDeadlineSeconds",
        ),
        (
            "no strategy",
            backtest("b", json!({"strategy": null})),
            "spec.strategy: Required value",
        ),
        ("name too long for its Job", too_long, "metadata.name"),
    ]
}

#[tokio::test]
async fn bad_backtests_are_refused_with_the_field_named() {
    let client = client().await;
    install_crd(&client).await;
    let namespace = TestNamespace::create(&client, "bt-valid")
        .await
        .expect("namespace");
    let api: Api<Backtest> = Api::namespaced(client.clone(), &namespace.name);
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    // Good ones pass, so the refusals below are about the one thing each case breaks.
    for good in [
        backtest(
            "good",
            json!({"startingBalance": "2500.50", "activeDeadlineSeconds": 600}),
        ),
        backtest(
            "good-rsi",
            json!({"strategy": {"kind": "rsi", "params": {"fast": null, "slow": null,
                "period": 14, "oversold": 30, "overbought": 70.5}, "exits": null}}),
        ),
        backtest(
            "good-image",
            json!({"tradingAgentRef": null, "image": "registry.example.com/acme/app:stable",
                   "imagePullSecrets": [{"name": "regcred"}],
                   "database": {"secretRef": {"name": "db", "key": "url"}}}),
        ),
    ] {
        let good: Backtest = serde_json::from_value(good).unwrap();
        api.create(&dry_run, &good)
            .await
            .expect("a valid Backtest is accepted");
    }

    let cases = cases();
    assert!(cases.len() >= 20);
    let mut failures = Vec::new();
    for (what, manifest, expected) in &cases {
        // Raw JSON: several cases are not representable in the Rust types.
        let request = kube::core::Request::new(format!(
            "/apis/tradingagents.dev/v1alpha1/namespaces/{}/backtests",
            namespace.name
        ))
        .create(&dry_run, serde_json::to_vec(manifest).unwrap())
        .unwrap();
        match client.request::<Value>(request).await {
            Ok(_) => failures.push(format!("{what}: accepted")),
            Err(kube::Error::Api(status)) => {
                let message = status.message.clone();
                println!("{what:36} -> {} {message}", status.code);
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

    // Once created, the spec stays: a changed range is refused.
    let created: Backtest = serde_json::from_value(backtest("kept", json!({}))).unwrap();
    api.create(&PostParams::default(), &created)
        .await
        .expect("create");
    let change = api
        .patch(
            "kept",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"to": "2025-05-01T00:00:00Z"}})),
        )
        .await;
    match change {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "{status:?}");
            assert!(
                status.message.contains("spec: Invalid value"),
                "{}",
                status.message
            );
            assert!(
                status.message.contains("cannot change"),
                "{}",
                status.message
            );
        }
        other => panic!("a changed spec was not refused: {other:?}"),
    }
    namespace
        .delete(std::time::Duration::from_secs(60))
        .await
        .expect("namespace deleted");
}
