//! The build stage: pure functions from a TradingAgent (and the image it is pinned to) to the
//! Kubernetes objects it should own. No I/O here, so every rule is unit-tested without a cluster.
//!
//! Per role: a Deployment `<name>-<role>` running the workload binary with the role as its
//! argument. For the api: a Service `<name>-api`, and a PodDisruptionBudget when it has more than
//! one replica.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    HTTPGetAction, LocalObjectReference, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    SeccompProfile, SecretKeySelector, SecurityContext, Service, ServicePort, ServiceSpec, Volume,
    VolumeMount,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};

use crate::digest::reference::PinnedImage;
use crate::error::{Error, Result};
use crate::reconcile::applied;
use crate::resource::{Role, TradingAgent};

/// The field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "trading-agent-operator";
/// `app.kubernetes.io/name` of every object the operator makes.
pub const APP_NAME: &str = "trading-agent";
/// `app.kubernetes.io/managed-by`; the watches select on it.
pub const MANAGED_BY: &str = "trading-agent-operator";
/// Label selector matching everything the operator manages.
pub const MANAGED_BY_SELECTOR: &str = "app.kubernetes.io/managed-by=trading-agent-operator";

/// Name of the container port (and the Service's target port) every role serves HTTP on.
pub const HTTP_PORT_NAME: &str = "http";
/// The workload's liveness endpoint (also used for start-up).
pub const HEALTH_PATH: &str = "/healthz";
/// The workload's readiness endpoint (fails while the database is unusable).
pub const READY_PATH: &str = "/readyz";
/// Non-root user and group the pods run as (distroless `nonroot`).
pub const RUN_AS_USER: i64 = 65532;
/// Size limit of the writable `/tmp` emptyDir (the root filesystem is read-only).
pub const TMP_SIZE_LIMIT: &str = "64Mi";

/// Name of a role's Deployment: `<name>-<role>`.
pub fn deployment_name(agent_name: &str, role: Role) -> String {
    format!("{agent_name}-{role}")
}

/// Name of the api Service and PodDisruptionBudget: `<name>-api`.
pub fn api_service_name(agent_name: &str) -> String {
    deployment_name(agent_name, Role::Api)
}

/// The labels selecting one role's pods (the Deployment selector, which is immutable).
pub fn selector_labels(agent_name: &str, role: Role) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), APP_NAME.to_owned()),
        (
            "app.kubernetes.io/instance".to_owned(),
            agent_name.to_owned(),
        ),
        (
            "app.kubernetes.io/component".to_owned(),
            role.as_str().to_owned(),
        ),
    ])
}

/// The labels of every object made for one role: the selector labels plus `managed-by`.
pub fn labels(agent_name: &str, role: Role) -> BTreeMap<String, String> {
    let mut labels = selector_labels(agent_name, role);
    labels.insert(
        "app.kubernetes.io/managed-by".to_owned(),
        MANAGED_BY.to_owned(),
    );
    labels
}

/// Everything a TradingAgent should own right now.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredObjects {
    /// One Deployment per role, in [`Role::ALL`] order.
    pub deployments: Vec<(Role, Deployment)>,
    /// The api Service.
    pub service: Service,
    /// The api PodDisruptionBudget, when the api has more than one replica.
    pub pod_disruption_budget: Option<PodDisruptionBudget>,
}

/// Build every object for `agent` pinned to `image`, each stamped with its fingerprint
/// ([`applied::stamp`]).
pub fn desired_objects(agent: &TradingAgent, image: &PinnedImage) -> Result<DesiredObjects> {
    let deployments = Role::ALL
        .into_iter()
        .map(|role| {
            let mut deployment = desired_deployment(agent, role, image)?;
            applied::stamp(&mut deployment);
            Ok((role, deployment))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut service = desired_service(agent)?;
    applied::stamp(&mut service);
    let mut pod_disruption_budget = desired_pod_disruption_budget(agent)?;
    if let Some(pdb) = pod_disruption_budget.as_mut() {
        applied::stamp(pdb);
    }
    Ok(DesiredObjects {
        deployments,
        service,
        pod_disruption_budget,
    })
}

fn object_meta(agent: &TradingAgent, name: String, role: Role) -> Result<ObjectMeta> {
    Ok(ObjectMeta {
        name: Some(name),
        namespace: Some(
            agent
                .namespace()
                .ok_or(Error::MissingObjectKey("metadata.namespace"))?,
        ),
        labels: Some(labels(&agent.name_any(), role)),
        owner_references: Some(vec![owner_reference(agent)?]),
        ..ObjectMeta::default()
    })
}

fn owner_reference(agent: &TradingAgent) -> Result<OwnerReference> {
    agent
        .controller_owner_ref(&())
        .ok_or(Error::MissingObjectKey("metadata.uid"))
}

/// The Deployment of one role, running `image` (always pinned to a digest).
pub fn desired_deployment(
    agent: &TradingAgent,
    role: Role,
    image: &PinnedImage,
) -> Result<Deployment> {
    let name = agent.name_any();
    let component = agent.spec.component(role);

    let mut env = vec![
        EnvVar {
            name: "DATABASE_URL".to_owned(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: agent.spec.database.secret_ref.name.clone(),
                    key: agent.spec.database.secret_ref.key.clone(),
                    optional: Some(false),
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        },
        EnvVar {
            name: "PORT".to_owned(),
            value: Some(component.port.to_string()),
            ..EnvVar::default()
        },
    ];
    env.extend(component.env.iter().map(|var| EnvVar {
        name: var.name.clone(),
        value: var.value.clone(),
        value_from: var.value_from.clone(),
    }));

    let http_get = |path: &str| HTTPGetAction {
        path: Some(path.to_owned()),
        port: IntOrString::String(HTTP_PORT_NAME.to_owned()),
        scheme: Some("HTTP".to_owned()),
        ..HTTPGetAction::default()
    };
    let container = Container {
        name: role.as_str().to_owned(),
        image: Some(image.image()),
        image_pull_policy: Some("IfNotPresent".to_owned()),
        args: Some(vec![role.as_str().to_owned()]),
        env: Some(env),
        ports: Some(vec![ContainerPort {
            name: Some(HTTP_PORT_NAME.to_owned()),
            container_port: component.port,
            protocol: Some("TCP".to_owned()),
            ..ContainerPort::default()
        }]),
        // Start-up gets a minute before liveness takes over; readiness is separate so that a
        // database outage takes pods out of service instead of restarting them.
        startup_probe: Some(Probe {
            http_get: Some(http_get(HEALTH_PATH)),
            period_seconds: Some(2),
            timeout_seconds: Some(2),
            failure_threshold: Some(30),
            ..Probe::default()
        }),
        liveness_probe: Some(Probe {
            http_get: Some(http_get(HEALTH_PATH)),
            period_seconds: Some(10),
            timeout_seconds: Some(2),
            failure_threshold: Some(3),
            ..Probe::default()
        }),
        readiness_probe: Some(Probe {
            http_get: Some(http_get(READY_PATH)),
            period_seconds: Some(5),
            timeout_seconds: Some(2),
            failure_threshold: Some(2),
            ..Probe::default()
        }),
        resources: component.resources.cloned(),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                ..Capabilities::default()
            }),
            seccomp_profile: Some(runtime_default_seccomp()),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(vec![VolumeMount {
            name: "tmp".to_owned(),
            mount_path: "/tmp".to_owned(),
            ..VolumeMount::default()
        }]),
        ..Container::default()
    };

    let image_pull_secrets = (!agent.spec.image_pull_secrets.is_empty()).then(|| {
        agent
            .spec
            .image_pull_secrets
            .iter()
            .map(|s| LocalObjectReference {
                name: s.name.clone(),
            })
            .collect()
    });

    let pod_spec = PodSpec {
        containers: vec![container],
        image_pull_secrets,
        // The workloads never talk to the Kubernetes API, and service links would only add
        // environment noise.
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(RUN_AS_USER),
            run_as_group: Some(RUN_AS_USER),
            seccomp_profile: Some(runtime_default_seccomp()),
            ..PodSecurityContext::default()
        }),
        volumes: Some(vec![Volume {
            name: "tmp".to_owned(),
            empty_dir: Some(EmptyDirVolumeSource {
                size_limit: Some(Quantity(TMP_SIZE_LIMIT.to_owned())),
                ..EmptyDirVolumeSource::default()
            }),
            ..Volume::default()
        }]),
        ..PodSpec::default()
    };

    Ok(Deployment {
        metadata: object_meta(agent, deployment_name(&name, role), role)?,
        spec: Some(DeploymentSpec {
            replicas: Some(component.replicas),
            selector: LabelSelector {
                match_labels: Some(selector_labels(&name, role)),
                ..LabelSelector::default()
            },
            // A new pod must be ready before an old one goes: no unavailable api pod during a
            // rollout, and a digest that never becomes ready leaves the old pods serving.
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".to_owned()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::Int(1)),
                    max_unavailable: Some(IntOrString::Int(0)),
                }),
            }),
            progress_deadline_seconds: Some(agent.spec.progress_deadline_seconds),
            revision_history_limit: Some(5),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(&name, role)),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod_spec),
            },
            ..DeploymentSpec::default()
        }),
        status: None,
    })
}

fn runtime_default_seccomp() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".to_owned(),
        ..SeccompProfile::default()
    }
}

/// The Service in front of the api pods, on the api's port.
pub fn desired_service(agent: &TradingAgent) -> Result<Service> {
    let name = agent.name_any();
    Ok(Service {
        metadata: object_meta(agent, api_service_name(&name), Role::Api)?,
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(selector_labels(&name, Role::Api)),
            ports: Some(vec![ServicePort {
                name: Some(HTTP_PORT_NAME.to_owned()),
                port: agent.spec.api.port,
                target_port: Some(IntOrString::String(HTTP_PORT_NAME.to_owned())),
                protocol: Some("TCP".to_owned()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    })
}

/// A PodDisruptionBudget keeping all but one api pod through voluntary disruptions (node drains),
/// only when the api has more than one replica: with one, it would block drains forever.
pub fn desired_pod_disruption_budget(agent: &TradingAgent) -> Result<Option<PodDisruptionBudget>> {
    if agent.spec.api.replicas <= 1 {
        return Ok(None);
    }
    let name = agent.name_any();
    Ok(Some(PodDisruptionBudget {
        metadata: object_meta(agent, api_service_name(&name), Role::Api)?,
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(selector_labels(&name, Role::Api)),
                ..LabelSelector::default()
            }),
            // Pods that are not ready (e.g. the database is down) may always be evicted.
            unhealthy_pod_eviction_policy: Some("AlwaysAllow".to_owned()),
            ..PodDisruptionBudgetSpec::default()
        }),
        status: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::reference::{Digest, ImageReference};
    use crate::resource::{
        ApiSpec, Database, EnvVar as SpecEnvVar, LocalSecretReference, SecretKeyReference,
        TradingAgentSpec,
    };
    use k8s_openapi::api::core::v1::ResourceRequirements;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn agent() -> TradingAgent {
        let spec: TradingAgentSpec = serde_json::from_value(serde_json::json!({
            "image": format!("registry.example.com/acme/trading-agent:stable@{DIGEST}"),
            "database": {"secretRef": {"name": "desk-db", "key": "url"}},
        }))
        .unwrap();
        let mut agent = TradingAgent::new("alpha", spec);
        agent.metadata.namespace = Some("desk".into());
        agent.metadata.uid = Some("uid-1".into());
        agent
    }

    fn pinned(agent: &TradingAgent) -> PinnedImage {
        ImageReference::parse(&agent.spec.image)
            .unwrap()
            .pinned_to(Digest::parse(DIGEST).unwrap())
    }

    fn deployment(agent: &TradingAgent, role: Role) -> Deployment {
        desired_deployment(agent, role, &pinned(agent)).unwrap()
    }

    fn container(d: &Deployment) -> &Container {
        &d.spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
    }

    fn pod_spec(d: &Deployment) -> &PodSpec {
        d.spec.as_ref().unwrap().template.spec.as_ref().unwrap()
    }

    fn env<'a>(c: &'a Container, name: &str) -> Option<&'a EnvVar> {
        c.env.as_ref().unwrap().iter().find(|e| e.name == name)
    }

    #[test]
    fn spec_defaults_are_applied_when_deserializing() {
        let a = agent();
        assert_eq!(a.spec.api, ApiSpec::default());
        assert_eq!(a.spec.api.port, 8000);
        assert_eq!(a.spec.bot.port, 8080);
        assert_eq!(a.spec.strategy.replicas, 1);
        assert_eq!(a.spec.image_update.interval, "5m");
        assert_eq!(a.spec.progress_deadline_seconds, 120);
        assert!(!a.spec.paused);
    }

    #[test]
    fn one_deployment_per_role_named_after_the_agent() {
        let a = agent();
        let objects = desired_objects(&a, &pinned(&a)).unwrap();
        let names: Vec<_> = objects
            .deployments
            .iter()
            .map(|(_, d)| d.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["alpha-api", "alpha-bot", "alpha-strategy"]);
        for (_, d) in &objects.deployments {
            assert_eq!(d.metadata.namespace.as_deref(), Some("desk"));
        }
        assert_eq!(objects.service.metadata.name.as_deref(), Some("alpha-api"));
        assert_eq!(objects.pod_disruption_budget, None);
    }

    #[test]
    fn labels_identify_name_instance_component_and_manager() {
        let a = agent();
        for role in Role::ALL {
            let d = deployment(&a, role);
            let expected = BTreeMap::from([
                (
                    "app.kubernetes.io/name".to_owned(),
                    "trading-agent".to_owned(),
                ),
                ("app.kubernetes.io/instance".to_owned(), "alpha".to_owned()),
                ("app.kubernetes.io/component".to_owned(), role.to_string()),
                (
                    "app.kubernetes.io/managed-by".to_owned(),
                    "trading-agent-operator".to_owned(),
                ),
            ]);
            assert_eq!(d.metadata.labels.as_ref(), Some(&expected));
            let template = d.spec.as_ref().unwrap().template.metadata.as_ref().unwrap();
            assert_eq!(template.labels.as_ref(), Some(&expected));
            let selector = d
                .spec
                .as_ref()
                .unwrap()
                .selector
                .match_labels
                .as_ref()
                .unwrap();
            assert!(!selector.contains_key("app.kubernetes.io/managed-by"));
            assert_eq!(
                selector.get("app.kubernetes.io/component").unwrap(),
                role.as_str()
            );
            assert!(selector.iter().all(|(k, v)| expected.get(k) == Some(v)));
        }
    }

    #[test]
    fn children_have_a_controller_owner_reference() {
        let a = agent();
        let objects = desired_objects(&a, &pinned(&a)).unwrap();
        let mut metas: Vec<&ObjectMeta> = objects
            .deployments
            .iter()
            .map(|(_, d)| &d.metadata)
            .collect();
        metas.push(&objects.service.metadata);
        for meta in metas {
            let owners = meta.owner_references.as_ref().unwrap();
            assert_eq!(owners.len(), 1);
            assert_eq!(owners[0].api_version, "tradingagents.dev/v1alpha1");
            assert_eq!(owners[0].kind, "TradingAgent");
            assert_eq!(owners[0].name, "alpha");
            assert_eq!(owners[0].uid, "uid-1");
            assert_eq!(owners[0].controller, Some(true));
        }
    }

    #[test]
    fn missing_uid_or_namespace_is_an_error_not_a_panic() {
        let mut a = agent();
        a.metadata.uid = None;
        assert!(matches!(
            desired_deployment(&a, Role::Api, &pinned(&a)),
            Err(Error::MissingObjectKey("metadata.uid"))
        ));
        let mut a = agent();
        a.metadata.namespace = None;
        assert!(matches!(
            desired_service(&a),
            Err(Error::MissingObjectKey("metadata.namespace"))
        ));
    }

    #[test]
    fn the_role_is_the_argument_and_the_container_name() {
        let a = agent();
        for role in Role::ALL {
            let d = deployment(&a, role);
            let c = container(&d);
            assert_eq!(c.name, role.as_str());
            assert_eq!(c.args.as_deref(), Some(&[role.as_str().to_owned()][..]));
            assert_eq!(
                c.command, None,
                "the image's entrypoint is the workload binary"
            );
        }
    }

    #[test]
    fn image_is_pinned_to_the_digest() {
        let a = agent();
        for role in Role::ALL {
            let d = deployment(&a, role);
            assert_eq!(
                container(&d).image.as_deref(),
                Some(format!("registry.example.com/acme/trading-agent:stable@{DIGEST}").as_str())
            );
        }
        let mut tagged = agent();
        tagged.spec.image = "registry.example.com/acme/trading-agent:stable".into();
        let image = ImageReference::parse(&tagged.spec.image)
            .unwrap()
            .pinned_to(Digest::parse(DIGEST).unwrap());
        let d = desired_deployment(&tagged, Role::Bot, &image).unwrap();
        assert!(
            container(&d)
                .image
                .as_deref()
                .unwrap()
                .ends_with(&format!(":stable@{DIGEST}"))
        );
    }

    #[test]
    fn database_url_comes_only_from_the_secret() {
        let a = agent();
        for role in Role::ALL {
            let d = deployment(&a, role);
            let var = env(container(&d), "DATABASE_URL").unwrap();
            assert_eq!(var.value, None);
            let selector = var
                .value_from
                .as_ref()
                .unwrap()
                .secret_key_ref
                .as_ref()
                .unwrap();
            assert_eq!(selector.name, "desk-db");
            assert_eq!(selector.key, "url");
            assert_eq!(selector.optional, Some(false));
        }
    }

    #[test]
    fn port_env_container_port_and_probes_use_the_component_port() {
        let mut a = agent();
        a.spec.api.port = 9000;
        let d = deployment(&a, Role::Api);
        let c = container(&d);
        assert_eq!(env(c, "PORT").unwrap().value.as_deref(), Some("9000"));
        let port = &c.ports.as_ref().unwrap()[0];
        assert_eq!(port.container_port, 9000);
        assert_eq!(port.name.as_deref(), Some("http"));
        let d = deployment(&a, Role::Strategy);
        assert_eq!(
            env(container(&d), "PORT").unwrap().value.as_deref(),
            Some("8080")
        );
    }

    #[test]
    fn probes_hit_healthz_and_readyz_on_the_named_port() {
        let a = agent();
        for role in Role::ALL {
            let d = deployment(&a, role);
            let c = container(&d);
            let get = |p: &Option<Probe>| {
                let action = p.as_ref().unwrap().http_get.as_ref().unwrap();
                (action.path.clone().unwrap(), action.port.clone())
            };
            let named = IntOrString::String("http".into());
            assert_eq!(get(&c.startup_probe), ("/healthz".into(), named.clone()));
            assert_eq!(get(&c.liveness_probe), ("/healthz".into(), named.clone()));
            assert_eq!(get(&c.readiness_probe), ("/readyz".into(), named));
            let startup = c.startup_probe.as_ref().unwrap();
            assert!(
                startup.period_seconds.unwrap() * startup.failure_threshold.unwrap() >= 60,
                "start-up gets at least a minute"
            );
        }
    }

    #[test]
    fn pods_pass_pod_security_restricted() {
        let a = agent();
        for role in Role::ALL {
            let d = deployment(&a, role);
            let pod = pod_spec(&d);
            let psc = pod.security_context.as_ref().unwrap();
            assert_eq!(psc.run_as_non_root, Some(true));
            assert_ne!(psc.run_as_user, Some(0));
            assert_eq!(
                psc.seccomp_profile.as_ref().unwrap().type_,
                "RuntimeDefault"
            );
            let sc = container(&d).security_context.as_ref().unwrap();
            assert_eq!(sc.allow_privilege_escalation, Some(false));
            assert_eq!(sc.read_only_root_filesystem, Some(true));
            assert_eq!(sc.run_as_non_root, Some(true));
            assert_eq!(sc.privileged, None);
            assert_eq!(
                sc.capabilities.as_ref().unwrap().drop.as_deref(),
                Some(&["ALL".to_owned()][..])
            );
            assert_eq!(sc.capabilities.as_ref().unwrap().add, None);
            assert_eq!(sc.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");
            // restricted forbids hostPath and host namespaces; only an emptyDir for /tmp.
            let volumes = pod.volumes.as_ref().unwrap();
            assert_eq!(volumes.len(), 1);
            assert!(volumes[0].empty_dir.is_some());
            assert_eq!(pod.host_network, None);
            assert_eq!(pod.host_pid, None);
            let mount = &container(&d).volume_mounts.as_ref().unwrap()[0];
            assert_eq!(
                (mount.name.as_str(), mount.mount_path.as_str()),
                ("tmp", "/tmp")
            );
            assert_eq!(pod.automount_service_account_token, Some(false));
        }
    }

    #[test]
    fn rolling_update_never_takes_a_pod_away_first() {
        let a = agent();
        for role in Role::ALL {
            let d = deployment(&a, role);
            let spec = d.spec.as_ref().unwrap();
            let rolling = spec
                .strategy
                .as_ref()
                .unwrap()
                .rolling_update
                .as_ref()
                .unwrap();
            assert_eq!(rolling.max_unavailable, Some(IntOrString::Int(0)));
            assert_eq!(rolling.max_surge, Some(IntOrString::Int(1)));
            assert_eq!(spec.progress_deadline_seconds, Some(120));
        }
        let mut a = agent();
        a.spec.progress_deadline_seconds = 30;
        assert_eq!(
            deployment(&a, Role::Bot)
                .spec
                .unwrap()
                .progress_deadline_seconds,
            Some(30)
        );
    }

    #[test]
    fn replicas_resources_and_env_come_from_the_role_only() {
        let mut a = agent();
        a.spec.bot.replicas = 3;
        a.spec.bot.resources = Some(ResourceRequirements {
            requests: Some(BTreeMap::from([(
                "cpu".to_owned(),
                Quantity("100m".into()),
            )])),
            ..ResourceRequirements::default()
        });
        a.spec.bot.env = vec![SpecEnvVar {
            name: "RISK_MAX_OPEN_TRADES".into(),
            value: Some("3".into()),
            value_from: None,
        }];
        let bot = deployment(&a, Role::Bot);
        assert_eq!(bot.spec.as_ref().unwrap().replicas, Some(3));
        let c = container(&bot);
        assert_eq!(c.resources, a.spec.bot.resources);
        assert_eq!(
            env(c, "RISK_MAX_OPEN_TRADES").unwrap().value.as_deref(),
            Some("3")
        );
        // The user's variables come after the operator's.
        let names: Vec<_> = c
            .env
            .as_ref()
            .unwrap()
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        assert_eq!(names, ["DATABASE_URL", "PORT", "RISK_MAX_OPEN_TRADES"]);

        // The other roles are untouched: their desired objects equal those of the unchanged agent.
        let before = agent();
        for role in [Role::Api, Role::Strategy] {
            assert_eq!(deployment(&a, role), deployment(&before, role));
        }
    }

    #[test]
    fn image_pull_secrets_reach_the_pods() {
        let mut a = agent();
        assert_eq!(
            pod_spec(&deployment(&a, Role::Api)).image_pull_secrets,
            None
        );
        a.spec.image_pull_secrets = vec![LocalSecretReference {
            name: "regcred".into(),
        }];
        let d = deployment(&a, Role::Api);
        assert_eq!(
            pod_spec(&d).image_pull_secrets.as_deref(),
            Some(
                &[LocalObjectReference {
                    name: "regcred".into()
                }][..]
            )
        );
    }

    #[test]
    fn service_targets_the_api_pods_by_named_port() {
        let mut a = agent();
        a.spec.api.port = 8001;
        let svc = desired_service(&a).unwrap();
        let spec = svc.spec.unwrap();
        assert_eq!(spec.selector, Some(selector_labels("alpha", Role::Api)));
        let port = &spec.ports.unwrap()[0];
        assert_eq!(port.port, 8001);
        assert_eq!(port.target_port, Some(IntOrString::String("http".into())));
        assert_eq!(svc.metadata.labels, Some(labels("alpha", Role::Api)));
    }

    #[test]
    fn pdb_only_with_more_than_one_api_replica() {
        let mut a = agent();
        for replicas in [0, 1] {
            a.spec.api.replicas = replicas;
            assert_eq!(desired_pod_disruption_budget(&a).unwrap(), None);
        }
        a.spec.api.replicas = 2;
        let pdb = desired_pod_disruption_budget(&a).unwrap().unwrap();
        assert_eq!(pdb.metadata.name.as_deref(), Some("alpha-api"));
        let spec = pdb.spec.unwrap();
        assert_eq!(spec.max_unavailable, Some(IntOrString::Int(1)));
        assert_eq!(spec.min_available, None);
        assert_eq!(
            spec.selector.unwrap().match_labels,
            Some(selector_labels("alpha", Role::Api))
        );
    }

    #[test]
    fn building_is_deterministic() {
        let a = agent();
        assert_eq!(
            desired_objects(&a, &pinned(&a)).unwrap(),
            desired_objects(&a, &pinned(&a)).unwrap()
        );
    }

    #[test]
    fn objects_serialize_with_api_version_and_kind_for_server_side_apply() {
        let a = agent();
        let value = serde_json::to_value(deployment(&a, Role::Api)).unwrap();
        assert_eq!(value["apiVersion"], "apps/v1");
        assert_eq!(value["kind"], "Deployment");
        assert!(value.get("status").is_none());
        let value = serde_json::to_value(
            desired_pod_disruption_budget(&{
                let mut a = agent();
                a.spec.api.replicas = 3;
                a
            })
            .unwrap()
            .unwrap(),
        )
        .unwrap();
        assert_eq!(value["apiVersion"], "policy/v1");
    }

    #[test]
    fn database_secret_ref_is_required() {
        let err = serde_json::from_value::<TradingAgentSpec>(serde_json::json!({"image": "a"}));
        assert!(err.is_err());
        let spec = TradingAgentSpec {
            database: Database {
                secret_ref: SecretKeyReference {
                    name: "x".into(),
                    key: "y".into(),
                },
            },
            ..agent().spec
        };
        assert_eq!(spec.database.secret_ref.key, "y");
    }
}
