//! The `Backtest` custom resource (`tradingagents.dev/v1alpha1`): one run of `trading-agent
//! backtest` on an exact image digest, as a Job, with its summary in the status.
//!
//! The strategy definition has the shape of the backtest CLI's definition file (the body of
//! `POST /api/v2/strategies`, snake_case inside), so the operator hands it to the CLI as it is;
//! the schema and its CEL rules refuse at admission what the CLI would refuse, naming the field.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::resource::{
    DNS_SUBDOMAIN_PATTERN, IMAGE_REFERENCE_PATTERN, LocalSecretReference, SecretKeyReference,
    cel_matches,
};

/// A strategy name the api accepts: letters, digits, space, `_`, `-`, `.`, `:`, no space at
/// either end (the api trims it), 1-64 characters.
pub const STRATEGY_NAME_PATTERN: &str = "^[A-Za-z0-9_.:-]([A-Za-z0-9 _.:-]{0,62}[A-Za-z0-9_.:-])?$";

/// An instrument symbol: 1-32 characters of `A-Z`, `0-9`, `.`, `_`, `-`, starting with a letter or
/// digit.
pub const SYMBOL_PATTERN: &str = "^[A-Z0-9][A-Z0-9._-]{0,31}$";

/// A fraction strictly between 0 and 1 as a decimal string (`0.05`).
pub const OPEN_FRACTION_PATTERN: &str = "^0?[.][0-9]{0,27}[1-9][0-9]{0,27}$";

/// A minimal-ROI profit fraction from 0 to 100 as a decimal string (`0.04`, `0`).
pub const ROI_PATTERN: &str = "^(100([.]0{1,28})?|[0-9]{1,2}([.][0-9]{1,28})?)$";

/// Longest `metadata.name` of a Backtest: its Job is `backtest-<name>`, and the Job's name goes
/// into its pods' `job-name` label (at most 63 characters).
pub const MAX_BACKTEST_NAME_LENGTH: usize = 54;

/// Desired state of a Backtest: which digest runs which strategy over which candles.
// The printer columns repeat `type_`, which clippy mistakes for a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "tradingagents.dev",
    version = "v1alpha1",
    kind = "Backtest",
    plural = "backtests",
    shortname = "bt",
    category = "trading",
    namespaced,
    status = "BacktestStatus",
    derive = "PartialEq",
    doc = "A backtest of a strategy on an exact image digest (a TradingAgent's pinned digest, or an image resolved to one), run as a Job read-only on the database's candles.",
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Pending, Running, Succeeded or Failed"
    ),
    printcolumn(
        name = "Trades",
        type_ = "integer",
        json_path = ".status.result.trades",
        description = "Closed trades"
    ),
    printcolumn(
        name = "Profit",
        type_ = "string",
        json_path = ".status.result.profit",
        description = "Realised profit net of fees, in the quote currency"
    ),
    printcolumn(
        name = "Drawdown",
        type_ = "string",
        json_path = ".status.result.maxDrawdown",
        description = "Deepest fall of the equity from a peak, in percent"
    ),
    printcolumn(
        name = "WinRate",
        type_ = "string",
        json_path = ".status.result.winRate",
        description = "Winning trades among the closed ones, in percent"
    ),
    printcolumn(
        name = "Digest",
        type_ = "string",
        json_path = ".status.shortDigest",
        description = "The image digest tested (short form)"
    ),
    printcolumn(
        name = "Message",
        type_ = "string",
        json_path = ".status.message",
        priority = 1,
        description = "Why the Backtest is in its phase"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "has(self.tradingAgentRef) != has(self.image)",
        "message": "name exactly one of tradingAgentRef (test its pinned digest) and image",
    },
    {
        "rule": "!has(self.image) || has(self.database)",
        "message": "an image needs database.secretRef: there is no TradingAgent to take it from",
        "fieldPath": ".database",
    },
    {
        "rule": "has(self.image) || !has(self.imagePullSecrets)",
        "message": "with tradingAgentRef the TradingAgent's imagePullSecrets are used",
        "fieldPath": ".imagePullSecrets",
    },
    {
        "rule": "timestamp(self.from) < timestamp(self.to)",
        "message": "must be after from",
        "fieldPath": ".to",
    },
    {
        "rule": "self == oldSelf",
        "message": "a Backtest's spec cannot change once created: create another Backtest",
    },
]))]
pub struct BacktestSpec {
    /// The TradingAgent (in this namespace) whose pinned digest (`status.image.digest`) is tested,
    /// with its database Secret and image pull secrets. Exclusive with `image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trading_agent_ref: Option<TradingAgentReference>,

    /// An image to test instead of a TradingAgent's: a digest, or a tag that the operator resolves
    /// to a digest once at the registry (never run by its mutable name). Needs `database`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": cel_matches(IMAGE_REFERENCE_PATTERN),
        "message": "must be an image reference such as registry.example.com/team/app:tag or …/app@sha256:<64 hex digits>",
    }]))]
    pub image: Option<String>,

    /// Registry credentials for `image` (with `tradingAgentRef`, the TradingAgent's are used).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub image_pull_secrets: Vec<LocalSecretReference>,

    /// The database whose candles are read, for `image` (with `tradingAgentRef`, the
    /// TradingAgent's). The backtest's connection is read-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<BacktestDatabase>,

    /// The strategy, as the backtest CLI's definition file has it (the body of
    /// `POST /api/v2/strategies`).
    pub strategy: StrategyDefinition,

    /// First candle open time decided on (RFC 3339, e.g. `2025-01-01T00:00:00Z`); earlier candles
    /// the strategy reads only warm its indicators up.
    #[schemars(extend("format" = "date-time"))]
    #[schemars(length(max = 64))]
    pub from: String,

    /// End of the range (exclusive; RFC 3339).
    #[schemars(extend("format" = "date-time"))]
    #[schemars(length(max = 64))]
    pub to: String,

    /// Cash in the quote currency at the start, as a decimal string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]{1,15}([.][0-9]{1,8})?$"))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "!self.matches('^[0.]*$')",
        "message": "must be greater than 0",
    }]))]
    pub starting_balance: Option<String>,

    /// Seconds the Job may run before it is stopped and the Backtest fails.
    #[serde(default = "default_active_deadline_seconds")]
    #[schemars(range(min = 10, max = 86400))]
    pub active_deadline_seconds: i64,

    /// Compute resources of the backtest container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

fn default_active_deadline_seconds() -> i64 {
    3600
}

/// A TradingAgent in the Backtest's namespace.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct TradingAgentReference {
    /// Name of the TradingAgent.
    #[schemars(length(min = 1, max = 253))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": cel_matches(DNS_SUBDOMAIN_PATTERN),
        "message": "must be a TradingAgent name (lower-case DNS-1123 subdomain)",
    }]))]
    pub name: String,
}

/// The database of a Backtest of an image.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BacktestDatabase {
    /// The Secret key holding the `DATABASE_URL`; it reaches the pod only through a
    /// `secretKeyRef`.
    pub secret_ref: SecretKeyReference,
}

/// A strategy definition: the backtest CLI's definition file, field for field.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.kind == 'rsi' || (has(self.params.fast) && has(self.params.slow) && !has(self.params.period) && !has(self.params.oversold) && !has(self.params.overbought))",
        "message": "sma_cross and ema_cross take params.fast and params.slow only",
        "fieldPath": ".params",
    },
    {
        "rule": "self.kind != 'rsi' || (has(self.params.period) && has(self.params.oversold) && has(self.params.overbought) && !has(self.params.fast) && !has(self.params.slow))",
        "message": "rsi takes params.period, params.oversold and params.overbought only",
        "fieldPath": ".params",
    },
]))]
pub struct StrategyDefinition {
    /// Name of the strategy (1-64 characters: letters, digits, space, `_`, `-`, `.`, `:`).
    #[schemars(length(min = 1, max = 64))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": cel_matches(STRATEGY_NAME_PATTERN),
        "message": "must be 1-64 letters, digits, spaces, '_', '-', '.' or ':', not starting or ending with a space",
    }]))]
    pub name: String,

    /// `sma_cross`, `ema_cross` or `rsi`.
    pub kind: StrategyKind,

    /// `sma_cross`/`ema_cross`: `fast` and `slow` (1 <= fast < slow <= 500); `rsi`: `period`
    /// (2-500), `oversold` and `overbought` (0 < oversold < overbought < 100).
    pub params: StrategyParams,

    /// Instrument symbols (1-50, no repeats), as stored in the database.
    #[schemars(length(min = 1, max = 50))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    #[schemars(inner(
        length(min = 1, max = 32),
        regex(pattern = r"^[A-Z0-9][A-Z0-9._-]{0,31}$")
    ))]
    pub symbols: Vec<String>,

    /// Candle timeframe.
    pub timeframe: Timeframe,

    /// Protective exits of the trades it opens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exits: Option<Exits>,
}

/// The strategy kinds of the workloads' strategy runner.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StrategyKind {
    /// Simple moving average crossover.
    SmaCross,
    /// Exponential moving average crossover.
    EmaCross,
    /// Relative strength index.
    Rsi,
}

/// The parameters of a strategy kind.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!has(self.fast) || !has(self.slow) || self.fast < self.slow",
        "message": "must be less than slow",
        "fieldPath": ".fast",
    },
    {
        "rule": "!has(self.oversold) || !has(self.overbought) || self.oversold < self.overbought",
        "message": "must be less than overbought",
        "fieldPath": ".oversold",
    },
]))]
pub struct StrategyParams {
    /// The fast moving average's period (crossovers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 499))]
    pub fast: Option<u32>,
    /// The slow moving average's period (crossovers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 2, max = 500))]
    pub slow: Option<u32>,
    /// The RSI period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 2, max = 500))]
    pub period: Option<u32>,
    /// RSI level to climb back above to buy (exclusive 0-100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self > 0.0 && self < 100.0",
        "message": "must be between 0 and 100 (exclusive)",
    }]))]
    pub oversold: Option<f64>,
    /// RSI level to fall back below to sell (exclusive 0-100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self > 0.0 && self < 100.0",
        "message": "must be between 0 and 100 (exclusive)",
    }]))]
    pub overbought: Option<f64>,
}

/// Candle timeframes.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Timeframe {
    /// One minute.
    #[serde(rename = "1m")]
    M1,
    /// Five minutes.
    #[serde(rename = "5m")]
    M5,
    /// Fifteen minutes.
    #[serde(rename = "15m")]
    M15,
    /// Thirty minutes.
    #[serde(rename = "30m")]
    M30,
    /// One hour.
    #[serde(rename = "1h")]
    H1,
    /// Four hours.
    #[serde(rename = "4h")]
    H4,
    /// One day.
    #[serde(rename = "1d")]
    D1,
}

/// Protective exits, all optional.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct Exits {
    /// Exit when the price falls this fraction below the entry price (`"0.05"`: 5 % below).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": cel_matches(OPEN_FRACTION_PATTERN),
        "message": "must be a decimal fraction between 0 and 1, exclusive, such as \"0.05\"",
    }]))]
    pub stop_loss: Option<String>,

    /// Exit when the price falls this fraction below the highest price since entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": cel_matches(OPEN_FRACTION_PATTERN),
        "message": "must be a decimal fraction between 0 and 1, exclusive, such as \"0.03\"",
    }]))]
    pub trailing_stop: Option<String>,

    /// Trade age in minutes (at most 525600) → profit fraction (0 to 100) enough to exit from that
    /// age on, e.g. `{"0": "0.04", "30": "0.02", "60": "0"}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 50))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self.all(age, age.matches('^[0-9]{1,6}$') && int(age) <= 525600)",
        "message": "keys must be trade ages in whole minutes, at most 525600",
    }]))]
    #[schemars(inner(
        length(max = 32),
        regex(pattern = r"^(100([.]0{1,28})?|[0-9]{1,2}([.][0-9]{1,28})?)$")
    ))]
    pub minimal_roi: BTreeMap<String, String>,
}

// ---- status ----------------------------------------------------------------------------------

/// Observed state of a Backtest.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BacktestStatus {
    /// `Pending` (waiting for a digest or the Job), `Running`, `Succeeded` or `Failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<BacktestPhase>,

    /// Why the Backtest is in its phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,

    /// The image the Job runs: `repository[:tag]@sha256:…`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,

    /// The digest tested (`sha256:…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,

    /// Short form of `digest`, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub short_digest: Option<String>,

    /// The Job running the backtest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,

    /// When the Job started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,

    /// When the Job finished (succeeded or failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,

    /// The summary of a successful run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<BacktestResult>,
}

/// The phase of a Backtest.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum BacktestPhase {
    /// Waiting: for the TradingAgent's pinned digest, the image's resolution, or the Job's pod.
    Pending,
    /// The Job runs.
    Running,
    /// The run finished; `result` holds its summary.
    Succeeded,
    /// The run failed; `message` says why.
    Failed,
}

impl BacktestPhase {
    /// Whether nothing more will happen.
    pub fn is_final(self) -> bool {
        matches!(self, BacktestPhase::Succeeded | BacktestPhase::Failed)
    }

    /// The phase's name.
    pub fn as_str(self) -> &'static str {
        match self {
            BacktestPhase::Pending => "Pending",
            BacktestPhase::Running => "Running",
            BacktestPhase::Succeeded => "Succeeded",
            BacktestPhase::Failed => "Failed",
        }
    }
}

/// The summary of a successful run (from the CLI's `--summary-file`).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BacktestResult {
    /// Closed trades.
    pub trades: i64,
    /// Trades still open at the end (not in the profit figures).
    pub open_trades: i64,
    /// Closed trades with a profit.
    pub wins: i64,
    /// Closed trades with a loss.
    pub losses: i64,
    /// Realised profit net of fees, in `currency` (a decimal string).
    pub profit: String,
    /// Quote currency of the profit.
    pub currency: String,
    /// Profit relative to the starting balance, in percent (two decimals).
    pub profit_percent: String,
    /// Deepest fall of the equity from a peak, in percent of the peak (two decimals).
    pub max_drawdown: String,
    /// Winning trades among the closed ones, in percent (two decimals); absent without trades.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub win_rate: Option<String>,
    /// Gross profit over gross loss (three decimals); absent when nothing was lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profit_factor: Option<String>,
    /// Equity at the end (a decimal string).
    pub final_equity: String,
    /// Candles read, warm-up included.
    pub candles: i64,
}

/// The Backtest CRD.
pub fn crd() -> CustomResourceDefinition {
    let mut crd = Backtest::crd();
    for version in &mut crd.spec.versions {
        if let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        {
            schema
                .x_kubernetes_validations
                .get_or_insert_with(Vec::new)
                .push(k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::ValidationRule {
                    rule: format!(
                        "size(self.metadata.name) <= {MAX_BACKTEST_NAME_LENGTH}"
                    ),
                    message: Some(format!(
                        "metadata.name must be at most {MAX_BACKTEST_NAME_LENGTH} characters: it names the Job 'backtest-<name>'"
                    )),
                    reason: Some("FieldValueInvalid".to_owned()),
                    ..Default::default()
                });
        }
    }
    crate::resource::constrain_quantities(crd)
}

/// The CRD as YAML, exactly what `trading-agent-operator crd backtests` prints and `crds/` holds.
pub fn crd_yaml() -> Result<String, crate::Error> {
    let yaml = serde_yaml_ng::to_string(&serde_json::to_value(crd())?)?;
    Ok(format!(
        "# Generated by `trading-agent-operator crd backtests` from operator/src/backtest/resource.rs. Do not edit.\n{yaml}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex::Regex;

    #[test]
    fn crds_directory_and_chart_match_the_rust_types() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let generated = crd_yaml().unwrap();
        for path in [
            root.join("crds/backtests.yaml"),
            root.join("charts/trading-agent-operator/crds/backtests.yaml"),
        ] {
            let committed = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                committed == generated,
                "{} is out of date: regenerate it with `make crd`",
                path.display()
            );
        }
    }

    fn schema() -> serde_json::Value {
        let crd = serde_json::to_value(crd()).unwrap();
        crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
    }

    #[test]
    fn names_scope_columns_and_status() {
        let crd = crd();
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some("backtests.tradingagents.dev")
        );
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(crd.spec.names.short_names, Some(vec!["bt".to_owned()]));
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, "v1alpha1");
        assert!(version.subresources.as_ref().unwrap().status.is_some());
        let columns: Vec<_> = version
            .additional_printer_columns
            .as_ref()
            .unwrap()
            .iter()
            .map(|c| (c.name.as_str(), c.json_path.as_str()))
            .collect();
        assert_eq!(
            columns,
            [
                ("Phase", ".status.phase"),
                ("Trades", ".status.result.trades"),
                ("Profit", ".status.result.profit"),
                ("Drawdown", ".status.result.maxDrawdown"),
                ("WinRate", ".status.result.winRate"),
                ("Digest", ".status.shortDigest"),
                ("Message", ".status.message"),
                ("Age", ".metadata.creationTimestamp"),
            ]
        );
    }

    #[test]
    fn the_strategy_is_the_cli_definition_shape() {
        let strategy = &schema()["properties"]["spec"]["properties"]["strategy"];
        assert_eq!(
            strategy["required"],
            serde_json::json!(["kind", "name", "params", "symbols", "timeframe"])
        );
        assert_eq!(
            strategy["properties"]["kind"]["enum"],
            serde_json::json!(["sma_cross", "ema_cross", "rsi"])
        );
        assert_eq!(
            strategy["properties"]["timeframe"]["enum"],
            serde_json::json!(["1m", "5m", "15m", "30m", "1h", "4h", "1d"])
        );
        let exits = &strategy["properties"]["exits"]["properties"];
        assert!(exits["stop_loss"].is_object() && exits["minimal_roi"].is_object());
        assert_eq!(strategy["properties"]["symbols"]["maxItems"], 50);
        assert_eq!(
            strategy["properties"]["symbols"]["x-kubernetes-list-type"],
            "set"
        );
        let spec = &schema()["properties"]["spec"];
        assert_eq!(spec["properties"]["from"]["format"], "date-time");
    }

    #[test]
    fn every_field_has_a_description() {
        fn check(path: &str, v: &serde_json::Value) {
            if let Some(props) = v.get("properties").and_then(|p| p.as_object()) {
                for (name, prop) in props {
                    let here = format!("{path}.{name}");
                    assert!(prop.get("description").is_some(), "{here}");
                    check(&here, prop);
                }
            }
        }
        check("", &schema());
    }

    fn matches(pattern: &str, input: &str) -> bool {
        Regex::new(pattern).unwrap().is_match(input)
    }

    #[test]
    fn patterns() {
        for ok in ["sma", "sma 10-30", "a:b.c_d", "x"] {
            assert!(matches(STRATEGY_NAME_PATTERN, ok), "{ok}");
        }
        for bad in ["", " sma", "sma ", "sma/1", &"a".repeat(65)] {
            assert!(!matches(STRATEGY_NAME_PATTERN, bad), "{bad}");
        }
        for ok in ["0.05", ".5", "0.999"] {
            assert!(matches(OPEN_FRACTION_PATTERN, ok), "{ok}");
        }
        for bad in ["0", "0.0", "1", "1.5", "-0.1", "abc", "0."] {
            assert!(!matches(OPEN_FRACTION_PATTERN, bad), "{bad}");
        }
        for ok in ["0", "0.04", "100", "99.5"] {
            assert!(matches(ROI_PATTERN, ok), "{ok}");
        }
        for bad in ["101", "-1", "100.1", "x"] {
            assert!(!matches(ROI_PATTERN, bad), "{bad}");
        }
        assert!(matches(SYMBOL_PATTERN, "BTCUSDT"));
        assert!(!matches(SYMBOL_PATTERN, "btcusdt"));
    }
}
