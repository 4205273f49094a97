//! The `TradingAgent` custom resource (`tradingagents.dev/v1alpha1`).
//!
//! The Rust types are the single source of truth: the CRD YAML in `crds/` is generated from them
//! (`trading-agent-operator crd`), doc comments become the schema's descriptions (what
//! `kubectl explain` prints), serde defaults become schema defaults, and CEL rules
//! (`x-kubernetes-validations`) catch what OpenAPI alone cannot say, so that a bad resource is
//! refused by the API server with a message that names the field.

use std::fmt;

use k8s_openapi::api::core::v1::{EnvVarSource, ResourceRequirements};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, ValidationRule,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of the resource.
pub const GROUP: &str = "tradingagents.dev";
/// Served and stored version.
pub const VERSION: &str = "v1alpha1";

/// Longest `metadata.name` a TradingAgent may have: its children are named `<name>-strategy`
/// and labelled `app.kubernetes.io/instance=<name>` (label values are at most 63 characters), and
/// the api Service `<name>-api` must be a DNS-1035 label.
pub const MAX_NAME_LENGTH: usize = 54;

// ---- CEL rules -------------------------------------------------------------------------------
// The patterns are RE2 syntax (what CEL's `matches` uses) that the Rust `regex` crate reads the
// same way, so the unit tests check them without an API server.

/// A CEL rule `self.matches('<pattern>')`, with the pattern's backslashes escaped for the CEL
/// string literal.
pub fn cel_matches(pattern: &str) -> String {
    format!("self.matches('{}')", pattern.replace('\\', "\\\\"))
}

/// The distribution reference grammar (`[domain[:port]/]path[:tag][@sha256:hex]`), restricted to
/// sha256 digests because those are the only ones the operator pins to.
pub const IMAGE_REFERENCE_PATTERN: &str = concat!(
    "^(?:",
    // domain: DNS name, IPv4 or bracketed IPv6, optional port
    "(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:[.][a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*",
    r"|\[[a-fA-F0-9:]+\])(?::[0-9]+)?/",
    ")?",
    // path components, lower case, separated by `.`, `_`, `__` or dashes
    "[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*)*",
    // tag
    "(?::[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,127})?",
    // digest
    "(?:@sha256:[a-f0-9]{64})?$",
);

/// A Go-style duration made of whole numbers and the units `ms`, `s`, `m` and `h` (`5m`, `1h30m`).
pub const DURATION_PATTERN: &str = "^([0-9]+(ms|s|m|h))+$";

/// A DNS-1123 subdomain (Secret names).
pub const DNS_SUBDOMAIN_PATTERN: &str =
    "^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// A Secret data key.
pub const SECRET_KEY_PATTERN: &str = "^[-._a-zA-Z0-9]+$";

/// An environment variable name the workloads' shells and runtimes can all read.
pub const ENV_NAME_PATTERN: &str = "^[A-Za-z_][A-Za-z0-9_]*$";

/// A DNS-1035 label: what the api Service name `<name>-api` must be.
pub const DNS_LABEL_PATTERN: &str = "^[a-z]([-a-z0-9]*[a-z0-9])?$";

/// Environment variables the operator sets itself and a user may not override.
pub const RESERVED_ENV_NAMES: [&str; 4] = ["DATABASE_URL", "PORT", "API_TOKEN", "IMAGE_REF"];

// ---- spec ------------------------------------------------------------------------------------

/// Desired state of a TradingAgent: one workload image run as three roles (api, bot, strategy)
/// against one PostgreSQL database.
// The printer columns repeat `type_`, which clippy mistakes for a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "tradingagents.dev",
    version = "v1alpha1",
    kind = "TradingAgent",
    plural = "tradingagents",
    shortname = "ta",
    category = "trading",
    namespaced,
    status = "TradingAgentStatus",
    derive = "PartialEq",
    doc = "A trading system (api, bot and strategy Deployments on PostgreSQL) whose workloads are pinned to an immutable image digest.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Whether every component is rolled out and ready"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason",
        description = "Why the resource is (not) ready"
    ),
    printcolumn(
        name = "Digest",
        type_ = "string",
        json_path = ".status.image.shortDigest",
        description = "The image digest the workloads are pinned to (short form)"
    ),
    printcolumn(
        name = "State",
        type_ = "string",
        json_path = ".status.trading.state",
        description = "The bot's trading state as last observed (Running, StopEntry, Stopped)"
    ),
    printcolumn(
        name = "Open",
        type_ = "integer",
        json_path = ".status.trading.openTrades",
        description = "Open trades as last observed"
    ),
    printcolumn(
        name = "Profit",
        type_ = "string",
        json_path = ".status.trading.profit",
        description = "Total profit (realised and unrealised) in the account's currency"
    ),
    printcolumn(
        name = "Image",
        type_ = "string",
        json_path = ".spec.image",
        priority = 1,
        description = "The image reference as written in the spec"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!has(self.trading) || (has(self.api) && has(self.api.tokenSecretRef))",
    "message": "trading needs api.tokenSecretRef: the operator sets and reads the bot's state through the api with that token",
    "fieldPath": ".trading",
    "reason": "FieldValueRequired",
}]))]
pub struct TradingAgentSpec {
    /// Image that all three roles run, as a tag (`registry.example.com/acme/trading-agent:stable`)
    /// or a digest (`…/trading-agent@sha256:<64 hex>`). Workloads are always pinned to a digest;
    /// a tag is resolved at the registry and never deployed by its mutable name.
    #[schemars(length(min = 1, max = 512))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": cel_matches(IMAGE_REFERENCE_PATTERN),
        "message": "must be an image reference such as registry.example.com/team/app:tag or …/app@sha256:<64 hex digits> (lower-case repository path, optional tag, sha256 digest)",
    }]))]
    pub image: String,

    /// Secrets holding registry credentials (`kubernetes.io/dockerconfigjson` or
    /// `kubernetes.io/dockercfg`), used by the kubelet to pull the image and by the operator to
    /// resolve its digest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub image_pull_secrets: Vec<LocalSecretReference>,

    /// How the image's digest is followed and what happens when a new digest fails to roll out.
    #[serde(default)]
    pub image_update: ImageUpdate,

    /// The PostgreSQL database all roles use.
    pub database: Database,

    /// The HTTP API role.
    #[serde(default)]
    pub api: ApiSpec,

    /// The bot role: turns signals into paper orders and trades.
    #[serde(default)]
    pub bot: WorkerSpec,

    /// The strategy role: computes indicators and writes signals.
    #[serde(default)]
    pub strategy: WorkerSpec,

    /// Seconds a Deployment may take to make progress before its rollout counts as failed
    /// (`ProgressDeadlineExceeded`); a failed rollout of a new digest is rolled back when
    /// `imageUpdate.rollback` is `Auto`.
    #[serde(default = "default_progress_deadline_seconds")]
    #[schemars(range(min = 5, max = 3600))]
    pub progress_deadline_seconds: i32,

    /// When true the operator reports status but changes nothing.
    #[serde(default)]
    pub paused: bool,

    /// The bot's trading state, declared: the operator keeps the bot in it through the api
    /// (with `api.tokenSecretRef`'s token) and copies what the bot is doing into
    /// `status.trading`. Absent: the operator neither sets nor reads the bot's state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trading: Option<TradingSpec>,

    /// A NetworkPolicy for the TradingAgent's pods: ingress only to the api port, from the
    /// namespace and from `allowFrom`; the bot and strategy pods accept nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_policy: Option<NetworkPolicySpec>,
}

/// The declared trading state of the bot.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TradingSpec {
    /// `Running` executes signals; `StopEntry` executes exits only (wind down); `Stopped` opens
    /// nothing (exits still run, so no position is left without its way out). Re-applied when the
    /// bot's state drifts (a dashboard button, a restored database).
    #[serde(default)]
    pub state: TradingState,
}

/// A trading state of the bot.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum TradingState {
    /// Signals are executed.
    #[default]
    Running,
    /// Exits are executed, entries rejected.
    StopEntry,
    /// No entries; exits still run.
    Stopped,
}

impl TradingState {
    /// The name the spec and status use.
    pub fn as_str(self) -> &'static str {
        match self {
            TradingState::Running => "Running",
            TradingState::StopEntry => "StopEntry",
            TradingState::Stopped => "Stopped",
        }
    }
}

impl fmt::Display for TradingState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A label key: an optional DNS-subdomain prefix and `/`, then a name of at most 63 characters.
pub const LABEL_KEY_PATTERN: &str = "^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$";
/// A label value (may be empty).
pub const LABEL_VALUE_PATTERN: &str = "^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$";

/// The NetworkPolicy of a TradingAgent.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySpec {
    /// Whether the NetworkPolicy exists. Off unless asked for: it cuts every client of the pods
    /// outside the namespace (ingress controllers, Prometheus scraping the workers' `/metrics`),
    /// which an upgrade must not do behind a user's back, and it takes effect only where the
    /// network plugin enforces NetworkPolicy.
    #[serde(default)]
    pub enabled: bool,

    /// Who else may reach the api port, besides pods of the TradingAgent's namespace: each entry
    /// a namespace selector, a pod selector, or both (pods matching the pod selector in the
    /// namespaces matching the namespace selector; a pod selector alone means this namespace).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub allow_from: Vec<NetworkPeer>,
}

/// A source the api port accepts connections from.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.namespaceSelector) || has(self.podSelector)",
    "message": "needs namespaceSelector, podSelector or both",
}]))]
pub struct NetworkPeer {
    /// Namespaces whose pods may connect (`{}`: every namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<Selector>,
    /// Pods that may connect (`{}`: every pod of the selected namespaces).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_selector: Option<Selector>,
}

/// A label selector, checked at admission (keys, values and operators).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Selector {
    /// Labels that must all be present with these values.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 16))]
    #[schemars(extend("x-kubernetes-validations" = [
        {
            "rule": format!("self.all(k, size(k) <= 317 && {})", cel_matches(LABEL_KEY_PATTERN).replacen("self", "k", 1)),
            "message": "keys must be label keys ([prefix/]name: a name of at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit)",
        },
        {
            "rule": format!("self.all(k, {})", cel_matches(LABEL_VALUE_PATTERN).replacen("self", "self[k]", 1)),
            "message": "values must be label values (at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit, or empty)",
        },
    ]))]
    #[schemars(extend("additionalProperties" = {"type": "string", "maxLength": 63}))]
    pub match_labels: std::collections::BTreeMap<String, String>,

    /// Label requirements that must all hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub match_expressions: Vec<SelectorRequirement>,
}

/// One label requirement.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!(self.operator in ['In', 'NotIn']) || (has(self.values) && size(self.values) > 0)",
        "message": "In and NotIn need at least one value",
    },
    {
        "rule": "!(self.operator in ['Exists', 'DoesNotExist']) || !has(self.values) || size(self.values) == 0",
        "message": "Exists and DoesNotExist take no values",
    },
]))]
pub struct SelectorRequirement {
    /// The label key.
    #[schemars(length(min = 1, max = 317))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": cel_matches(LABEL_KEY_PATTERN),
        "message": "must be a label key ([prefix/]name: a name of at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit)",
    }]))]
    pub key: String,
    /// How the key relates to the values.
    pub operator: SelectorOperator,
    /// The values (`In`, `NotIn`); none for `Exists` and `DoesNotExist`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[schemars(extend("items" = {"type": "string", "maxLength": 63}))]
    pub values: Vec<String>,
}

/// A label selector operator.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum SelectorOperator {
    /// The label's value is one of `values`.
    In,
    /// The label is absent or its value is none of `values`.
    NotIn,
    /// The label is present.
    Exists,
    /// The label is absent.
    DoesNotExist,
}

impl SelectorOperator {
    /// The name Kubernetes label selectors use.
    pub fn as_str(self) -> &'static str {
        match self {
            SelectorOperator::In => "In",
            SelectorOperator::NotIn => "NotIn",
            SelectorOperator::Exists => "Exists",
            SelectorOperator::DoesNotExist => "DoesNotExist",
        }
    }
}

fn default_progress_deadline_seconds() -> i32 {
    120
}

/// A reference to a Secret in the TradingAgent's namespace.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct LocalSecretReference {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": cel_matches(DNS_SUBDOMAIN_PATTERN),
        "message": "must be a Secret name (lower-case DNS-1123 subdomain)",
    }]))]
    pub name: String,
}

/// Image update policy.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageUpdate {
    /// `Track` follows the tag: every new digest pushed under it is rolled out. `Pin` resolves the
    /// tag once and never moves. A digest in `spec.image` is always used as given.
    #[serde(default)]
    pub mode: UpdateMode,

    /// How often the registry is asked for the tag's digest, as a duration (`30s`, `5m`, `1h`).
    /// `0s` turns polling off: only registry webhooks and the manual trigger find new digests.
    #[serde(default = "default_interval")]
    #[schemars(length(min = 2, max = 32))]
    #[schemars(extend("x-kubernetes-validations" = [
        {
            "rule": cel_matches(DURATION_PATTERN),
            "message": "must be a duration of whole numbers with units ms, s, m or h, such as 30s, 5m or 1h30m",
        },
        {
            "rule": format!("!{} || duration(self) == duration('0s') || duration(self) >= duration('1s')", cel_matches(DURATION_PATTERN)),
            "message": "must be 0s (polling off) or at least 1s",
        },
    ]))]
    pub interval: String,

    /// `Auto` returns to the last healthy digest when a rollout fails; `Never` leaves the failed
    /// rollout in place.
    #[serde(default)]
    pub rollback: RollbackPolicy,

    /// How long a new digest's pods are watched after its rollout became Available, as a duration
    /// (`60s`, `5m`; `0s` turns verification off). A restart (`CrashLoop`) or lost readiness
    /// (`BecameUnready`) of the new digest's pods within the window rolls back like a failed
    /// rollout, when the evidence points at the digest (other roles' pods stay ready); when every
    /// pod is unready or pods cannot be scheduled, the environment is blamed: `Degraded` says so,
    /// nothing is rejected and the window starts again once all is ready. While the window runs,
    /// `Progressing` is `True` (`Verifying`) and `Ready` stays `False`. It applies when there is
    /// something to roll back to (`rollback: Auto` and a last healthy digest other than the new
    /// one), so a first install is Ready as soon as it is rolled out.
    #[serde(default = "default_verify")]
    #[schemars(length(min = 2, max = 32))]
    #[schemars(extend("x-kubernetes-validations" = [
        {
            "rule": cel_matches(DURATION_PATTERN),
            "message": "must be a duration of whole numbers with units ms, s, m or h, such as 30s, 5m or 1h30m",
        },
        {
            "rule": format!("!{} || duration(self) <= duration('24h')", cel_matches(DURATION_PATTERN)),
            "message": "must be at most 24h",
        },
    ]))]
    pub verify: String,
}

fn default_interval() -> String {
    "5m".to_owned()
}

fn default_verify() -> String {
    "60s".to_owned()
}

impl Default for ImageUpdate {
    fn default() -> Self {
        Self {
            mode: UpdateMode::default(),
            interval: default_interval(),
            rollback: RollbackPolicy::default(),
            verify: default_verify(),
        }
    }
}

impl ImageUpdate {
    /// The polling interval; `None` when polling is off (`0s`).
    pub fn poll_interval(
        &self,
    ) -> Result<Option<std::time::Duration>, kube::core::duration::ParseError> {
        let parsed: kube::core::Duration = self.interval.parse()?;
        let duration = std::time::Duration::from(parsed);
        Ok((!duration.is_zero()).then_some(duration))
    }

    /// The verification window after a rollout; zero when verification is off (`0s`).
    pub fn verify_window(&self) -> Result<std::time::Duration, kube::core::duration::ParseError> {
        let parsed: kube::core::Duration = self.verify.parse()?;
        Ok(std::time::Duration::from(parsed))
    }
}

/// Whether the operator follows the tag's digest or resolves it only once.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum UpdateMode {
    /// Follow the tag: roll out every new digest pushed under it.
    #[default]
    Track,
    /// Resolve the tag once and never move.
    Pin,
}

/// What to do when a new digest fails to roll out.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum RollbackPolicy {
    /// Pin the last healthy digest again and reject the failed one.
    #[default]
    Auto,
    /// Leave the failed rollout as it is.
    Never,
}

/// The database connection.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Database {
    /// The Secret key holding the `DATABASE_URL` (a PostgreSQL connection URL). It reaches the pods
    /// only through a `secretKeyRef`, never inline.
    pub secret_ref: SecretKeyReference,
}

/// A key of a Secret in the TradingAgent's namespace.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct SecretKeyReference {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": cel_matches(DNS_SUBDOMAIN_PATTERN),
        "message": "must be a Secret name (lower-case DNS-1123 subdomain)",
    }]))]
    pub name: String,

    /// Key within the Secret.
    #[schemars(length(min = 1, max = 253))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": cel_matches(SECRET_KEY_PATTERN),
        "message": "must be a Secret key (letters, digits, '-', '_' and '.')",
    }]))]
    pub key: String,
}

/// The api role's Deployment (and Service).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiSpec {
    /// Number of pods. With more than one, a PodDisruptionBudget keeps all but one through node
    /// drains.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0, max = 50))]
    pub replicas: i32,

    /// Port the api serves its REST API, `/healthz`, `/readyz` and `/metrics` on, and the port of
    /// its Service; passed to the pod as `PORT`.
    #[serde(default = "default_api_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,

    /// Compute resources of the api container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Extra environment variables of the api container. `DATABASE_URL`, `PORT`, `API_TOKEN` and
    /// `IMAGE_REF` are set by the operator and may not appear here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub env: Vec<EnvVar>,

    /// The Secret key holding the bearer token every request under `/api/v2` must carry. It
    /// reaches the api pods only as `API_TOKEN` through a `secretKeyRef`; the api does not start
    /// without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret_ref: Option<SecretKeyReference>,
}

/// A worker role's Deployment (bot or strategy).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkerSpec {
    /// Number of pods.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0, max = 50))]
    pub replicas: i32,

    /// Port the worker serves `/healthz`, `/readyz` and `/metrics` on; passed to the pod as `PORT`.
    #[serde(default = "default_worker_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,

    /// Compute resources of the worker container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Extra environment variables of the worker container. `DATABASE_URL`, `PORT`, `API_TOKEN` and
    /// `IMAGE_REF` are set by the operator and may not appear here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub env: Vec<EnvVar>,
}

fn default_replicas() -> i32 {
    1
}

/// Default HTTP port of the api role.
pub const DEFAULT_API_PORT: i32 = 8000;
/// Default HTTP port of the bot and strategy roles.
pub const DEFAULT_WORKER_PORT: i32 = 8080;

fn default_api_port() -> i32 {
    DEFAULT_API_PORT
}

fn default_worker_port() -> i32 {
    DEFAULT_WORKER_PORT
}

impl Default for ApiSpec {
    fn default() -> Self {
        Self {
            replicas: default_replicas(),
            port: DEFAULT_API_PORT,
            resources: None,
            env: Vec::new(),
            token_secret_ref: None,
        }
    }
}

impl Default for WorkerSpec {
    fn default() -> Self {
        Self {
            replicas: default_replicas(),
            port: DEFAULT_WORKER_PORT,
            resources: None,
            env: Vec::new(),
        }
    }
}

/// The settings every role has, borrowed from the role's spec.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Component<'a> {
    /// Number of pods.
    pub replicas: i32,
    /// HTTP port.
    pub port: i32,
    /// Compute resources.
    pub resources: Option<&'a ResourceRequirements>,
    /// Extra environment variables.
    pub env: &'a [EnvVar],
}

/// An environment variable of a role's container.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!(has(self.value) && has(self.valueFrom))",
    "message": "value and valueFrom are mutually exclusive",
}]))]
pub struct EnvVar {
    /// Name of the variable.
    #[schemars(length(min = 1, max = 128))]
    #[schemars(extend("x-kubernetes-validations" = [
        {
            "rule": cel_matches(ENV_NAME_PATTERN),
            "message": "must be an environment variable name: letters, digits and '_', not starting with a digit",
        },
        {
            "rule": "!(self in ['DATABASE_URL', 'PORT', 'API_TOKEN', 'IMAGE_REF'])",
            "message": "DATABASE_URL, PORT, API_TOKEN and IMAGE_REF are set by the operator (use spec.database.secretRef, the component's port and spec.api.tokenSecretRef)",
        },
    ]))]
    pub name: String,

    /// Literal value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32768))]
    pub value: Option<String>,

    /// Value taken from a Secret, ConfigMap or field of the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<EnvVarSource>,
}

// ---- status ----------------------------------------------------------------------------------

/// Observed state of a TradingAgent.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TradingAgentStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// `Ready`, `ImageResolved`, `Progressing` and `Degraded`, in the standard condition shape.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// The image the workloads are pinned to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageStatus>,

    /// What each role's Deployment reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub components: Option<ComponentsStatus>,

    /// The last rollouts of new digests, newest last.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<RolloutRecord>,

    /// What the bot is doing, as the operator last saw it through the api (with
    /// `spec.trading` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trading: Option<TradingStatus>,
}

/// What the bot is doing, as last observed through the api.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TradingStatus {
    /// `spec.trading.state` as the operator last acted on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declared_state: Option<TradingState>,

    /// The state in force: the bot's state as last observed (after any correction).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<TradingState>,

    /// Who set the state in force last: `Operator` (it called the api to apply
    /// `spec.trading.state`) or `External` (someone else, e.g. a dashboard button, and the
    /// operator has not corrected it yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_by: Option<String>,

    /// When the bot's state last changed, as the api reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_changed_at: Option<String>,

    /// The last drift the operator corrected: what it found instead of the declared state, and when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_drift: Option<TradingDrift>,

    /// Set while the bot rejects entries because the day's realised loss reached its limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_loss_halt: Option<String>,

    /// Open trades.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_trades: Option<i64>,

    /// Total profit (realised and unrealised) in the account's currency, such as `12.50 USDT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profit: Option<String>,

    /// Balance and profit per quote currency.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub currencies: Vec<CurrencyStatus>,

    /// The bot's last completed loop, as its heartbeat reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_bot_tick: Option<String>,

    /// When the operator last looked (whether or not the look succeeded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_observed: Option<Time>,

    /// Why the last look failed; absent when it succeeded (the other fields then are fresh).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A bot state the operator found instead of the declared one, and corrected.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct TradingDrift {
    /// The state found.
    pub found: TradingState,
    /// When it was found (and corrected).
    pub at: Time,
}

/// Balance and profit in one quote currency. Amounts are decimal strings as the api reports them.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CurrencyStatus {
    /// The quote currency.
    pub currency: String,
    /// Cash not in trades.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free: Option<String>,
    /// Free cash plus open positions at their latest close.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equity: Option<String>,
    /// Open trades in this currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_trades: Option<i64>,
    /// Realised and unrealised profit, net of fees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profit: Option<String>,
}

/// The image the workloads are pinned to.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageStatus {
    /// `spec.image` as written.
    pub reference: String,

    /// The digest (`sha256:…`) the workloads are pinned to now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,

    /// Short form of `digest` (`sha256:` and its first 12 hex digits), for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub short_digest: Option<String>,

    /// When the workloads were pinned to `digest`: when a lookup of `reference` found it (a new
    /// digest) or a rollback restored it. Lookups that find the same digest again, and failed
    /// lookups, leave it as it is (the `ImageResolved` condition tells how the last lookup went).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<Time>,

    /// The last digest whose rollout succeeded; the rollback target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_healthy_digest: Option<String>,

    /// Digests whose rollout failed through their own fault (their pods failed while other pods
    /// stayed ready); never retried until the tag moves again, or until the
    /// `tradingagents.dev/clear-rejected` annotation clears them (a digest, `all`, or a
    /// comma-separated list): clear one that was rejected for something that was not its fault,
    /// and it rolls out again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejected_digests: Vec<String>,

    /// Why and when each digest in `rejectedDigests` was rejected, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejections: Vec<Rejection>,

    /// The last `tradingagents.dev/clear-rejected` value acted on. Each value clears once; to
    /// clear again, set another value or remove the annotation first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleared_rejections: Option<String>,
}

/// Status of the three roles.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct ComponentsStatus {
    /// The api Deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<ComponentStatus>,
    /// The bot Deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot: Option<ComponentStatus>,
    /// The strategy Deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<ComponentStatus>,
}

/// What one role's Deployment reports.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentStatus {
    /// Desired pods.
    #[serde(default)]
    pub replicas: i32,
    /// Pods passing their readiness probe.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Pods running the current pod template.
    #[serde(default)]
    pub updated_replicas: i32,
    /// The digest of the Deployment's pod template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// A rejected digest, why and when.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct Rejection {
    /// The digest rejected.
    pub digest: String,
    /// Why (`ProgressDeadlineExceeded`, `CrashLoop`, `BecameUnready`).
    pub reason: String,
    /// What happened, naming the failed role.
    pub message: String,
    /// When it was rejected.
    pub at: Time,
}

/// One rollout of a digest.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct RolloutRecord {
    /// The digest rolled out.
    pub digest: String,
    /// When the rollout started.
    pub started: Time,
    /// When it ended; absent while in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<Time>,
    /// How it ended; absent while in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<RolloutOutcome>,
    /// Why it was rolled back (`ProgressDeadlineExceeded`, `CrashLoop`, `BecameUnready`);
    /// absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When every role became Available on this digest: the verification window
    /// (`imageUpdate.verify`) runs from here. Absent before, and again after an environment fault
    /// (the window then starts over).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available: Option<Time>,
}

/// How a rollout ended.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RolloutOutcome {
    /// Every role became ready on the new digest.
    Succeeded,
    /// The rollout failed and the previous digest was pinned again.
    RolledBack,
}

// ---- roles -----------------------------------------------------------------------------------

/// The three roles of the workload binary; each becomes one Deployment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// The HTTP API (has a Service).
    Api,
    /// The paper-trading bot.
    Bot,
    /// The strategy runner.
    Strategy,
}

impl Role {
    /// Every role, in the order they are applied.
    pub const ALL: [Role; 3] = [Role::Api, Role::Bot, Role::Strategy];

    /// The role's name: the container argument, the component label and the name suffix.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Api => "api",
            Role::Bot => "bot",
            Role::Strategy => "strategy",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TradingAgentSpec {
    /// The spec of one role.
    pub fn component(&self, role: Role) -> Component<'_> {
        match role {
            Role::Api => Component {
                replicas: self.api.replicas,
                port: self.api.port,
                resources: self.api.resources.as_ref(),
                env: &self.api.env,
            },
            Role::Bot | Role::Strategy => {
                let worker = if role == Role::Bot {
                    &self.bot
                } else {
                    &self.strategy
                };
                Component {
                    replicas: worker.replicas,
                    port: worker.port,
                    resources: worker.resources.as_ref(),
                    env: &worker.env,
                }
            }
        }
    }
}

impl ComponentsStatus {
    /// The status of one role.
    pub fn get(&self, role: Role) -> Option<&ComponentStatus> {
        match role {
            Role::Api => self.api.as_ref(),
            Role::Bot => self.bot.as_ref(),
            Role::Strategy => self.strategy.as_ref(),
        }
    }

    /// Set the status of one role.
    pub fn set(&mut self, role: Role, status: ComponentStatus) {
        let slot = match role {
            Role::Api => &mut self.api,
            Role::Bot => &mut self.bot,
            Role::Strategy => &mut self.strategy,
        };
        *slot = Some(status);
    }
}

// ---- the CRD ---------------------------------------------------------------------------------

/// The CustomResourceDefinition, with the rules that need `metadata` (which the derived schema
/// does not cover) and a pattern on every resource quantity.
pub fn crd() -> CustomResourceDefinition {
    let mut crd = TradingAgent::crd();
    for version in &mut crd.spec.versions {
        if let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        {
            schema
                .x_kubernetes_validations
                .get_or_insert_with(Vec::new)
                .push(ValidationRule {
                    rule: format!(
                        "size(self.metadata.name) <= {MAX_NAME_LENGTH} && self.metadata.name.matches('{DNS_LABEL_PATTERN}')"
                    ),
                    message: Some(format!(
                        "metadata.name must be a DNS-1035 label (lower-case letters, digits and '-', starting with a letter) of at most {MAX_NAME_LENGTH} characters: it names the '<name>-strategy' Deployment and the '<name>-api' Service"
                    )),
                    reason: Some("FieldValueInvalid".to_owned()),
                    ..ValidationRule::default()
                });
        }
    }
    constrain_quantities(crd)
}

/// A resource quantity written as text (`250m`, `1.5`, `512Mi`, `1e3`), as Kubernetes parses it,
/// without a sign: a negative request or limit is never valid. Integers (`cpu: 1`) are not
/// strings and need no pattern.
pub const QUANTITY_PATTERN: &str =
    r"^\+?([0-9]+(\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?$";

/// Give every `Quantity` (resource requests and limits) a pattern, so `cpu: abc` is refused at
/// admission naming the field instead of failing the Deployment apply later. A pattern, not a CEL
/// `isQuantity()` rule: CEL's cost estimate for an unbounded map of strings exceeds the CRD's
/// budget. The very long description Kubernetes gives `Quantity` is shortened on the way (it would
/// appear once per map, and `kubectl explain` stays readable).
pub(crate) fn constrain_quantities(crd: CustomResourceDefinition) -> CustomResourceDefinition {
    fn visit(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                if let Some(serde_json::Value::String(d)) = map.get_mut("description")
                    && d.starts_with("Quantity is a fixed-point representation of a number.")
                {
                    *d = "A quantity such as 250m, 1, 512Mi or 2Gi.".to_owned();
                    map.insert("pattern".to_owned(), QUANTITY_PATTERN.into());
                }
                map.values_mut().for_each(visit);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(visit),
            _ => {}
        }
    }
    let mut value = serde_json::to_value(&crd).expect("a CRD always serializes");
    visit(&mut value);
    serde_json::from_value(value).expect("adding a pattern keeps the CRD well-formed")
}

/// The CRD as YAML, exactly what `trading-agent-operator crd` prints and `crds/` holds.
pub fn crd_yaml() -> Result<String, crate::Error> {
    let yaml = serde_yaml_ng::to_string(&serde_json::to_value(crd())?)?;
    Ok(format!(
        "# Generated by `trading-agent-operator crd` from operator/src/resource.rs. Do not edit.\n{yaml}"
    ))
}

/// The status conditions' types and reasons (part of the API: users and tools match on them).
pub mod conditions {
    /// Condition types.
    pub mod types {
        /// Every component is rolled out on the pinned digest and ready.
        pub const READY: &str = "Ready";
        /// `spec.image` is pinned to a digest.
        pub const IMAGE_RESOLVED: &str = "ImageResolved";
        /// A rollout is under way.
        pub const PROGRESSING: &str = "Progressing";
        /// A rollout failed or pods cannot be created.
        pub const DEGRADED: &str = "Degraded";
        /// The bot's trading state matches `spec.trading.state` (with `spec.trading` only).
        pub const TRADING: &str = "Trading";
    }

    /// Condition reasons (CamelCase, part of the API: users and tools match on them).
    pub mod reasons {
        /// Ready: every component is ready.
        pub const ALL_COMPONENTS_READY: &str = "AllComponentsReady";
        /// Ready: some component is not ready yet.
        pub const COMPONENTS_NOT_READY: &str = "ComponentsNotReady";
        /// Ready/Progressing: reconciliation is paused.
        pub const PAUSED: &str = "Paused";
        /// ImageResolved: pinned to a digest (written in `spec.image`, or resolved from its tag).
        pub const DIGEST_PINNED: &str = "DigestPinned";
        /// ImageResolved: `spec.image` is a tag and no resolver can turn it into a digest.
        pub const DIGEST_REQUIRED: &str = "DigestRequired";
        /// ImageResolved: `spec.image` does not parse.
        pub const INVALID_IMAGE_REFERENCE: &str = "InvalidImageReference";
        /// ImageResolved: the tag points at a digest whose rollout failed; the current pin stays.
        pub const DIGEST_REJECTED: &str = "DigestRejected";
        /// ImageResolved: a Secret named in `spec.imagePullSecrets` does not exist.
        pub const PULL_SECRET_NOT_FOUND: &str = "PullSecretNotFound";
        /// ImageResolved: a Secret named in `spec.imagePullSecrets` is not a registry credential.
        pub const PULL_SECRET_INVALID: &str = "PullSecretInvalid";
        /// ImageResolved: a Secret named in `spec.imagePullSecrets` could not be read.
        pub const PULL_SECRET_UNREADABLE: &str = "PullSecretUnreadable";
        /// Degraded: a new digest failed to roll out and the last healthy one is pinned again.
        pub const ROLLED_BACK: &str = "RolledBack";
        /// The database Secret does not exist.
        pub const SECRET_NOT_FOUND: &str = "SecretNotFound";
        /// The database Secret lacks the key.
        pub const SECRET_KEY_MISSING: &str = "SecretKeyMissing";
        /// Ready: the database Secret could not be read (a 403, say); the message is the API
        /// server's.
        pub const SECRET_UNREADABLE: &str = "SecretUnreadable";
        /// Ready: the API server refused the objects the spec makes (400/422, e.g. `cpu: abc`);
        /// the message is the API server's.
        pub const INVALID_SPEC: &str = "InvalidSpec";
        /// Ready: the API server forbade applying the objects (403: a ResourceQuota, an admission
        /// policy, or the operator's RBAC); the message is the API server's.
        pub const APPLY_FORBIDDEN: &str = "ApplyForbidden";
        /// Progressing: Deployments are rolling out.
        pub const ROLLING_OUT: &str = "RollingOut";
        /// Progressing: nothing left to roll out.
        pub const ROLLOUT_COMPLETE: &str = "RolloutComplete";
        /// Degraded: a Deployment exceeded its progress deadline.
        pub const PROGRESS_DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";
        /// Degraded: a Deployment cannot create its pods.
        pub const REPLICA_FAILURE: &str = "ReplicaFailure";
        /// Degraded: nothing is wrong.
        pub const AS_EXPECTED: &str = "AsExpected";
        /// Ready/Progressing: the new digest is rolled out and watched for the verification
        /// window (`imageUpdate.verify`).
        pub const VERIFYING: &str = "Verifying";
        /// Degraded/rollback: a container of the new digest restarted within the window.
        pub const CRASH_LOOP: &str = "CrashLoop";
        /// Degraded/rollback: a pod of the new digest lost readiness within the window.
        pub const BECAME_UNREADY: &str = "BecameUnready";
        /// Degraded: a rollout failed, but every pod is unready whatever its digest or role (the
        /// database down for everyone, say): the environment is blamed, nothing is rejected.
        pub const ENVIRONMENT_UNHEALTHY: &str = "EnvironmentUnhealthy";
        /// Degraded: a rollout failed because pods of the new digest cannot be scheduled (no node
        /// has room): the environment is blamed, nothing is rejected.
        pub const UNSCHEDULABLE: &str = "Unschedulable";
        /// Trading: the bot is in the declared state.
        pub const STATE_IN_SYNC: &str = "StateInSync";
        /// Trading: the bot was in another state and the operator has just applied the declared one.
        pub const STATE_APPLIED: &str = "StateApplied";
        /// Trading: the api could not be reached or answered with an error (the message says which).
        pub const API_UNREACHABLE: &str = "ApiUnreachable";
        /// Trading: the api Secret's token is missing or the api refused it (401/403).
        pub const API_TOKEN_REJECTED: &str = "ApiTokenRejected";
        /// Trading: the api has no Service or no pods yet.
        pub const API_NOT_AVAILABLE: &str = "ApiNotAvailable";
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex::Regex;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn crds_directory_matches_the_rust_types() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds/tradingagents.yaml");
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        let generated = crd_yaml().unwrap();
        assert!(
            committed == generated,
            "{} is out of date: regenerate it with `cargo run -p trading-agent-operator -- crd > crds/tradingagents.yaml`",
            path.display()
        );
    }

    #[test]
    fn crd_names_scope_and_subresources() {
        let crd = crd();
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some("tradingagents.tradingagents.dev")
        );
        assert_eq!(crd.spec.group, "tradingagents.dev");
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(crd.spec.names.short_names, Some(vec!["ta".to_owned()]));
        assert_eq!(crd.spec.names.categories, Some(vec!["trading".to_owned()]));
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, "v1alpha1");
        assert!(version.subresources.as_ref().unwrap().status.is_some());
        let columns: Vec<_> = version
            .additional_printer_columns
            .as_ref()
            .unwrap()
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(
            columns,
            [
                "Ready", "Reason", "Digest", "State", "Open", "Profit", "Image", "Age"
            ]
        );
    }

    fn schema() -> serde_json::Value {
        let crd = serde_json::to_value(crd()).unwrap();
        crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
    }

    #[test]
    fn conditions_are_a_list_map_keyed_by_type() {
        let conditions = &schema()["properties"]["status"]["properties"]["conditions"];
        assert_eq!(conditions["x-kubernetes-list-type"], "map");
        assert_eq!(
            conditions["x-kubernetes-list-map-keys"],
            serde_json::json!(["type"])
        );
    }

    #[test]
    fn schema_carries_defaults_ranges_enums_and_descriptions() {
        let spec = &schema()["properties"]["spec"];
        assert_eq!(spec["required"], serde_json::json!(["database", "image"]));
        let update = &spec["properties"]["imageUpdate"];
        assert_eq!(update["default"]["mode"], "Track");
        assert_eq!(update["default"]["interval"], "5m");
        assert_eq!(
            update["properties"]["mode"]["enum"],
            serde_json::json!(["Track", "Pin"])
        );
        assert_eq!(
            update["properties"]["rollback"]["enum"],
            serde_json::json!(["Auto", "Never"])
        );
        let api = &spec["properties"]["api"];
        assert_eq!(api["default"]["port"], 8000);
        assert_eq!(api["properties"]["replicas"]["minimum"], 0.0);
        assert_eq!(api["properties"]["replicas"]["maximum"], 50.0);
        assert_eq!(api["properties"]["port"]["maximum"], 65535.0);
        assert_eq!(spec["properties"]["bot"]["default"]["port"], 8080);
        assert!(
            spec["properties"]["image"]["description"]
                .as_str()
                .unwrap()
                .contains("digest")
        );
    }

    #[test]
    fn enum_values_are_not_yaml_1_1_booleans() {
        let yaml_booleans = ["y", "yes", "n", "no", "true", "false", "on", "off"];
        let text = serde_json::to_string(&schema()).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        fn enums(v: &serde_json::Value, out: &mut Vec<String>) {
            match v {
                serde_json::Value::Object(m) => {
                    if let Some(serde_json::Value::Array(values)) = m.get("enum") {
                        out.extend(values.iter().filter_map(|v| v.as_str().map(str::to_owned)));
                    }
                    m.values().for_each(|v| enums(v, out));
                }
                serde_json::Value::Array(a) => a.iter().for_each(|v| enums(v, out)),
                _ => {}
            }
        }
        let mut values = Vec::new();
        enums(&value, &mut values);
        assert!(!values.is_empty());
        for v in values {
            assert!(!yaml_booleans.contains(&v.to_lowercase().as_str()), "{v}");
        }
    }

    #[test]
    fn every_spec_field_has_a_description() {
        fn check(path: &str, v: &serde_json::Value) {
            if let Some(props) = v.get("properties").and_then(|p| p.as_object()) {
                for (name, prop) in props {
                    let here = format!("{path}.{name}");
                    assert!(
                        prop.get("description").is_some(),
                        "{here} has no description"
                    );
                    check(&here, prop);
                    if let Some(items) = prop.get("items") {
                        check(&here, items);
                    }
                }
            }
        }
        check("", &schema());
    }

    fn matches(pattern: &str, input: &str) -> bool {
        Regex::new(pattern).unwrap().is_match(input)
    }

    #[test]
    fn image_pattern_accepts_what_the_parser_accepts() {
        for ok in [
            "nginx".to_owned(),
            "nginx:1.27".to_owned(),
            "acme/app:v1".to_owned(),
            "localhost:5000/app".to_owned(),
            "127.0.0.1:5000/team/app:stable".to_owned(),
            "[::1]:5000/app:1".to_owned(),
            "registry.example.com/a/b/c/trading-agent:stable".to_owned(),
            format!("registry.example.com/acme/trading-agent:stable@{DIGEST}"),
            format!("ghcr.io/acme/app@{DIGEST}"),
            "a.b/c_d/e__f/g-h/i---j".to_owned(),
        ] {
            assert!(matches(IMAGE_REFERENCE_PATTERN, &ok), "{ok}");
            crate::digest::reference::ImageReference::parse(&ok).unwrap();
        }
    }

    #[test]
    fn image_pattern_refuses_what_the_parser_refuses() {
        for bad in [
            "".to_owned(),
            "Nginx".to_owned(),
            "acme//app".to_owned(),
            "acme/-app".to_owned(),
            "app:".to_owned(),
            "app:.bad".to_owned(),
            "has space/app".to_owned(),
            "app@sha256:abc".to_owned(),
            format!("app@sha512:{}", "a".repeat(128)),
            format!("app@{}", DIGEST.to_uppercase()),
            "https://registry.example.com/app".to_owned(),
        ] {
            assert!(!matches(IMAGE_REFERENCE_PATTERN, &bad), "{bad}");
            assert!(
                crate::digest::reference::ImageReference::parse(&bad).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn every_resource_quantity_has_the_pattern() {
        let yaml = crd_yaml().unwrap();
        // requests and limits of api, bot and strategy
        assert_eq!(yaml.matches("pattern: ^\\+?([0-9]+").count(), 6, "{yaml}");
        assert!(!yaml.contains("Quantity is a fixed-point"));
        for ok in ["1", "250m", "1.5", ".5", "512Mi", "1e3", "1E-3", "+2"] {
            assert!(matches(QUANTITY_PATTERN, ok), "{ok}");
        }
        for bad in ["", "abc", "-1", "1 Gi", "1K", "0x10", "Mi"] {
            assert!(!matches(QUANTITY_PATTERN, bad), "{bad}");
        }
    }

    #[test]
    fn cel_string_literals_escape_backslashes() {
        assert_eq!(cel_matches(r"^a\[b$"), r"self.matches('^a\\[b$')");
        assert_eq!(cel_matches("^x$"), "self.matches('^x$')");
    }

    #[test]
    fn duration_pattern() {
        for ok in ["0s", "5m", "1h30m", "500ms", "90s"] {
            assert!(matches(DURATION_PATTERN, ok), "{ok}");
            let update = ImageUpdate {
                interval: ok.into(),
                ..ImageUpdate::default()
            };
            update.poll_interval().unwrap();
        }
        for bad in ["", "5", "5 m", "-5m", "1.5h", "5d", "m"] {
            assert!(!matches(DURATION_PATTERN, bad), "{bad}");
        }
        let off = ImageUpdate {
            interval: "0s".into(),
            ..ImageUpdate::default()
        };
        assert_eq!(off.poll_interval().unwrap(), None);
        assert_eq!(
            ImageUpdate::default().poll_interval().unwrap(),
            Some(std::time::Duration::from_secs(300))
        );
    }

    #[test]
    fn name_and_key_patterns() {
        assert!(matches(DNS_SUBDOMAIN_PATTERN, "desk-db"));
        assert!(matches(DNS_SUBDOMAIN_PATTERN, "desk.db-1"));
        assert!(!matches(DNS_SUBDOMAIN_PATTERN, "Desk"));
        assert!(!matches(DNS_SUBDOMAIN_PATTERN, "-desk"));
        assert!(matches(SECRET_KEY_PATTERN, "database.url"));
        assert!(!matches(SECRET_KEY_PATTERN, "a/b"));
        assert!(matches(ENV_NAME_PATTERN, "RUST_LOG"));
        assert!(!matches(ENV_NAME_PATTERN, "1BAD"));
        assert!(!matches(ENV_NAME_PATTERN, "BAD-NAME"));
        assert!(matches(DNS_LABEL_PATTERN, "alpha"));
        assert!(!matches(DNS_LABEL_PATTERN, "1alpha"));
        assert!(!matches(DNS_LABEL_PATTERN, "alpha.beta"));
    }

    #[test]
    fn component_accessors() {
        let mut status = ComponentsStatus::default();
        status.set(
            Role::Bot,
            ComponentStatus {
                replicas: 2,
                ..ComponentStatus::default()
            },
        );
        assert_eq!(status.get(Role::Bot).unwrap().replicas, 2);
        assert!(status.get(Role::Api).is_none());
        assert_eq!(Role::Strategy.to_string(), "strategy");
    }
}
