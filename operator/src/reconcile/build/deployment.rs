//! One Deployment per role: the workload binary with the role as its argument, pinned to a
//! digest, hardened for Pod Security `restricted`, rolled out without losing a ready pod.

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    HTTPGetAction, LocalObjectReference, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    SeccompProfile, SecretKeySelector, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use super::{
    HEALTH_PATH, HTTP_PORT_NAME, READY_PATH, RUN_AS_USER, TMP_SIZE_LIMIT, deployment_name, labels,
    object_meta, selector_labels,
};
use crate::digest::reference::PinnedImage;
use crate::error::Result;
use crate::resource::{Role, TradingAgent};

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
        // So that the pod can say which code it runs (`/healthz` reports the digest).
        EnvVar {
            name: "IMAGE_REF".to_owned(),
            value: Some(image.image()),
            ..EnvVar::default()
        },
    ];
    if let (Role::Api, Some(token)) = (role, &agent.spec.api.token_secret_ref) {
        env.push(EnvVar {
            name: "API_TOKEN".to_owned(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: token.name.clone(),
                    key: token.key.clone(),
                    optional: Some(false),
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        });
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    use crate::digest::reference::{Digest, ImageReference};
    use crate::reconcile::build::fixtures::*;
    use crate::resource::{EnvVar as SpecEnvVar, LocalSecretReference};
    use k8s_openapi::api::core::v1::ResourceRequirements;

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
    fn every_pod_is_told_its_pinned_image_and_the_api_its_token_secret() {
        let mut a = agent();
        a.spec.api.token_secret_ref = Some(crate::resource::SecretKeyReference {
            name: "desk-api".into(),
            key: "token".into(),
        });
        for role in Role::ALL {
            let d = deployment(&a, role);
            let c = container(&d);
            assert_eq!(
                env(c, "IMAGE_REF").unwrap().value.as_deref(),
                c.image.as_deref(),
                "{role}: IMAGE_REF is the container's pinned image"
            );
            let token = env(c, "API_TOKEN");
            if role != Role::Api {
                assert!(token.is_none(), "{role} gets no API token");
                continue;
            }
            let token = token.unwrap();
            assert_eq!(token.value, None, "never inline");
            let selector = token
                .value_from
                .as_ref()
                .unwrap()
                .secret_key_ref
                .as_ref()
                .unwrap();
            assert_eq!(
                (selector.name.as_str(), selector.key.as_str()),
                ("desk-api", "token")
            );
            assert_eq!(selector.optional, Some(false));
        }
        // Without a token Secret the api gets no API_TOKEN (and will not start: the docs say so).
        let d = deployment(&agent(), Role::Api);
        assert!(env(container(&d), "API_TOKEN").is_none());
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
        assert_eq!(
            names,
            ["DATABASE_URL", "PORT", "IMAGE_REF", "RISK_MAX_OPEN_TRADES"]
        );

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
}
