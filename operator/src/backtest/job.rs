//! The Job of a Backtest, built as a pure function of the Backtest and what it runs on (the
//! pinned image, the database Secret key, the pull secrets).

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EnvVar, EnvVarSource, LocalObjectReference, PodSecurityContext,
    PodSpec, PodTemplateSpec, SeccompProfile, SecretKeySelector, SecurityContext,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{Resource, ResourceExt};

use super::resource::Backtest;
use crate::error::{Error, Result};
use crate::reconcile::build::{APP_NAME, MANAGED_BY, RUN_AS_USER};
use crate::resource::{LocalSecretReference, SecretKeyReference};

/// The container's name.
pub const CONTAINER: &str = "backtest";
/// Where the CLI writes its short summary: the container's termination message, which the
/// kubelet keeps in the pod's status (at most 4 KiB).
pub const TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";
/// Seconds a finished Job (and its pod) stays for the operator to read the summary, then the
/// TTL controller deletes it. The Backtest owns it too, so deleting the Backtest deletes it sooner.
pub const TTL_SECONDS_AFTER_FINISHED: i32 = 600;
/// The label naming the Backtest on its Job and pod.
pub const BACKTEST_LABEL: &str = "tradingagents.dev/backtest";
/// The annotation on the Job naming the digest it runs.
pub const DIGEST_ANNOTATION: &str = "tradingagents.dev/digest";

/// Name of a Backtest's Job.
pub fn job_name(backtest_name: &str) -> String {
    format!("backtest-{backtest_name}")
}

/// What a Backtest's Job runs on.
#[derive(Clone, Debug, PartialEq)]
pub struct Target<'a> {
    /// `repository[:tag]@sha256:…`, never a bare tag.
    pub image: String,
    /// The digest in `image`.
    pub digest: String,
    /// The Secret key holding `DATABASE_URL`.
    pub database: &'a SecretKeyReference,
    /// Registry credentials for the kubelet.
    pub pull_secrets: &'a [LocalSecretReference],
}

/// The pod's labels: the Backtest's name, and no `managed-by`/`instance`, so the TradingAgent
/// controller's pod watch never takes a backtest pod for a workload's.
fn pod_labels(backtest_name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), APP_NAME.to_owned()),
        (
            "app.kubernetes.io/component".to_owned(),
            "backtest".to_owned(),
        ),
        (BACKTEST_LABEL.to_owned(), backtest_name.to_owned()),
    ])
}

/// The Job of `backtest` on `target`: the backtest CLI with the strategy definition inline, the
/// database URL from its Secret, the summary written as the termination message; owned by the
/// Backtest, not retried (a backtest is deterministic), deleted after
/// [`TTL_SECONDS_AFTER_FINISHED`].
pub fn desired_job(backtest: &Backtest, target: &Target<'_>) -> Result<Job> {
    let name = backtest.name_any();
    let namespace = backtest
        .namespace()
        .ok_or(Error::MissingObjectKey("metadata.namespace"))?;
    let owner = backtest
        .controller_owner_ref(&())
        .ok_or(Error::MissingObjectKey("metadata.uid"))?;
    let spec = &backtest.spec;
    let definition = serde_json::to_string(&spec.strategy)?;

    let mut args = vec![
        "backtest".to_owned(),
        "--from".to_owned(),
        spec.from.clone(),
        "--to".to_owned(),
        spec.to.clone(),
        "--summary-file".to_owned(),
        TERMINATION_MESSAGE_PATH.to_owned(),
        "--no-progress".to_owned(),
    ];
    if let Some(balance) = &spec.starting_balance {
        args.extend(["--starting-balance".to_owned(), balance.clone()]);
    }
    let env = vec![
        EnvVar {
            name: "DATABASE_URL".to_owned(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: target.database.name.clone(),
                    key: target.database.key.clone(),
                    optional: Some(false),
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        },
        EnvVar {
            name: "BACKTEST_STRATEGY".to_owned(),
            value: Some(definition),
            ..EnvVar::default()
        },
        EnvVar {
            name: "IMAGE_REF".to_owned(),
            value: Some(target.image.clone()),
            ..EnvVar::default()
        },
        // Plain log lines: a failure's last lines become the termination message, read by people
        // in `kubectl get backtests -o wide`.
        EnvVar {
            name: "NO_COLOR".to_owned(),
            value: Some("1".to_owned()),
            ..EnvVar::default()
        },
    ];
    let seccomp = SeccompProfile {
        type_: "RuntimeDefault".to_owned(),
        ..SeccompProfile::default()
    };
    let container = Container {
        name: CONTAINER.to_owned(),
        image: Some(target.image.clone()),
        image_pull_policy: Some("IfNotPresent".to_owned()),
        args: Some(args),
        env: Some(env),
        resources: spec.resources.clone(),
        termination_message_path: Some(TERMINATION_MESSAGE_PATH.to_owned()),
        // A run that fails before writing its summary leaves its last log lines (the error) as
        // the message instead.
        termination_message_policy: Some("FallbackToLogsOnError".to_owned()),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                ..Capabilities::default()
            }),
            seccomp_profile: Some(seccomp.clone()),
            ..SecurityContext::default()
        }),
        ..Container::default()
    };
    let image_pull_secrets = (!target.pull_secrets.is_empty()).then(|| {
        target
            .pull_secrets
            .iter()
            .map(|s| LocalObjectReference {
                name: s.name.clone(),
            })
            .collect()
    });
    let mut labels = pod_labels(&name);
    let pod_labels = labels.clone();
    labels.insert(
        "app.kubernetes.io/managed-by".to_owned(),
        MANAGED_BY.to_owned(),
    );
    Ok(Job {
        metadata: ObjectMeta {
            name: Some(job_name(&name)),
            namespace: Some(namespace),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(
                DIGEST_ANNOTATION.to_owned(),
                target.digest.clone(),
            )])),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            active_deadline_seconds: Some(spec.active_deadline_seconds),
            ttl_seconds_after_finished: Some(TTL_SECONDS_AFTER_FINISHED),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    restart_policy: Some("Never".to_owned()),
                    image_pull_secrets,
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(RUN_AS_USER),
                        run_as_group: Some(RUN_AS_USER),
                        seccomp_profile: Some(seccomp),
                        ..PodSecurityContext::default()
                    }),
                    ..PodSpec::default()
                }),
            },
            ..JobSpec::default()
        }),
        status: None,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::backtest::resource::BacktestSpec;
    use serde_json::json;

    pub(crate) const DIGEST: &str =
        "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    pub(crate) fn backtest(spec: serde_json::Value) -> Backtest {
        let spec: BacktestSpec = serde_json::from_value(spec).unwrap();
        let mut backtest = Backtest::new("sma-q1", spec);
        backtest.metadata.namespace = Some("desk".into());
        backtest.metadata.uid = Some("0000-1111".into());
        backtest
    }

    pub(crate) fn sma_spec() -> serde_json::Value {
        json!({
            "tradingAgentRef": {"name": "alpha"},
            "strategy": {
                "name": "sma 10-30", "kind": "sma_cross", "params": {"fast": 10, "slow": 30},
                "symbols": ["BTCUSDT"], "timeframe": "5m",
                "exits": {"stop_loss": "0.05", "minimal_roi": {"0": "0.04", "30": "0"}},
            },
            "from": "2025-01-01T00:00:00Z",
            "to": "2025-04-01T00:00:00Z",
        })
    }

    fn target(database: &SecretKeyReference) -> Target<'_> {
        Target {
            image: format!("registry.example.com/acme/trading-agent:stable@{DIGEST}"),
            digest: DIGEST.to_owned(),
            database,
            pull_secrets: &[],
        }
    }

    fn database() -> SecretKeyReference {
        SecretKeyReference {
            name: "desk-db".into(),
            key: "url".into(),
        }
    }

    fn container(job: &Job) -> &Container {
        &job.spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
    }

    fn env<'a>(container: &'a Container, name: &str) -> &'a EnvVar {
        container
            .env
            .as_ref()
            .unwrap()
            .iter()
            .find(|e| e.name == name)
            .unwrap()
    }

    #[test]
    fn runs_the_cli_on_the_pinned_digest_with_the_definition_inline() {
        let database = database();
        let job = desired_job(&backtest(sma_spec()), &target(&database)).unwrap();
        assert_eq!(job.metadata.name.as_deref(), Some("backtest-sma-q1"));
        assert_eq!(job.metadata.namespace.as_deref(), Some("desk"));
        let c = container(&job);
        assert!(c.image.as_deref().unwrap().ends_with(&format!("@{DIGEST}")));
        assert_eq!(
            c.args.as_deref().unwrap(),
            [
                "backtest",
                "--from",
                "2025-01-01T00:00:00Z",
                "--to",
                "2025-04-01T00:00:00Z",
                "--summary-file",
                "/dev/termination-log",
                "--no-progress"
            ]
        );
        assert_eq!(c.command, None, "the image's entrypoint is the CLI");
        // The definition is the CLI's definition-file shape, snake_case inside.
        let definition: serde_json::Value =
            serde_json::from_str(env(c, "BACKTEST_STRATEGY").value.as_deref().unwrap()).unwrap();
        assert_eq!(
            definition,
            json!({
                "name": "sma 10-30", "kind": "sma_cross", "params": {"fast": 10, "slow": 30},
                "symbols": ["BTCUSDT"], "timeframe": "5m",
                "exits": {"stop_loss": "0.05", "minimal_roi": {"0": "0.04", "30": "0"}},
            })
        );
        let url = env(c, "DATABASE_URL");
        assert_eq!(url.value, None, "never inline");
        let key = url
            .value_from
            .as_ref()
            .unwrap()
            .secret_key_ref
            .as_ref()
            .unwrap();
        assert_eq!((key.name.as_str(), key.key.as_str()), ("desk-db", "url"));
        assert_eq!(
            c.termination_message_path.as_deref(),
            Some(TERMINATION_MESSAGE_PATH)
        );
        assert_eq!(
            c.termination_message_policy.as_deref(),
            Some("FallbackToLogsOnError")
        );
    }

    #[test]
    fn owned_by_the_backtest_not_retried_and_cleaned_up() {
        let database = database();
        let job = desired_job(&backtest(sma_spec()), &target(&database)).unwrap();
        let owner = &job.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
            ("Backtest", "sma-q1", "0000-1111")
        );
        assert_eq!(owner.controller, Some(true));
        let spec = job.spec.as_ref().unwrap();
        assert_eq!(spec.backoff_limit, Some(0));
        assert_eq!(spec.ttl_seconds_after_finished, Some(600));
        assert_eq!(spec.active_deadline_seconds, Some(3600));
        let pod = spec.template.spec.as_ref().unwrap();
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        assert_eq!(pod.automount_service_account_token, Some(false));
        assert_eq!(
            job.metadata.annotations.as_ref().unwrap()[DIGEST_ANNOTATION],
            DIGEST
        );
    }

    #[test]
    fn pod_labels_are_not_a_trading_agents() {
        let database = database();
        let job = desired_job(&backtest(sma_spec()), &target(&database)).unwrap();
        let labels = job
            .spec
            .as_ref()
            .unwrap()
            .template
            .metadata
            .as_ref()
            .unwrap();
        let labels = labels.labels.as_ref().unwrap();
        assert_eq!(labels[BACKTEST_LABEL], "sma-q1");
        assert!(!labels.contains_key("app.kubernetes.io/managed-by"));
        assert!(!labels.contains_key("app.kubernetes.io/instance"));
    }

    #[test]
    fn starting_balance_resources_and_pull_secrets_are_passed_on() {
        let mut spec = sma_spec();
        spec["startingBalance"] = json!("2500.5");
        spec["activeDeadlineSeconds"] = json!(120);
        spec["resources"] = json!({"limits": {"memory": "256Mi"}});
        let database = database();
        let secrets = [LocalSecretReference {
            name: "registry".into(),
        }];
        let target = Target {
            pull_secrets: &secrets,
            ..target(&database)
        };
        let job = desired_job(&backtest(spec), &target).unwrap();
        let c = container(&job);
        let args = c.args.as_ref().unwrap();
        assert_eq!(&args[args.len() - 2..], ["--starting-balance", "2500.5"]);
        assert!(c.resources.as_ref().unwrap().limits.is_some());
        let spec = job.spec.as_ref().unwrap();
        assert_eq!(spec.active_deadline_seconds, Some(120));
        let pull = spec
            .template
            .spec
            .as_ref()
            .unwrap()
            .image_pull_secrets
            .as_ref();
        assert_eq!(pull.unwrap()[0].name, "registry");
    }

    #[test]
    fn a_backtest_without_namespace_or_uid_is_an_error_not_a_job() {
        let database = database();
        let mut orphan = backtest(sma_spec());
        orphan.metadata.uid = None;
        assert!(desired_job(&orphan, &target(&database)).is_err());
    }
}
