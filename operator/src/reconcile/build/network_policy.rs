//! The NetworkPolicies of a TradingAgent (`spec.networkPolicy.enabled`), one per role: the api
//! pods accept connections on the api port only, from pods of the TradingAgent's namespace and
//! from `spec.networkPolicy.allowFrom`; the bot and strategy pods accept nothing.
//!
//! The kubelet's probes are not subject to NetworkPolicy (they come from the node itself, which
//! network plugins always admit), so the workers' `/healthz` and `/readyz` keep working; a
//! Prometheus in another namespace no longer reaches their `/metrics`.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use super::{deployment_name, object_meta, selector_labels};
use crate::error::Result;
use crate::resource::{NetworkPeer, Role, Selector, TradingAgent};

/// The NetworkPolicy of each role (named like its Deployment), or none when
/// `spec.networkPolicy.enabled` is off.
pub fn desired_network_policies(agent: &TradingAgent) -> Result<Vec<(Role, NetworkPolicy)>> {
    let enabled = agent
        .spec
        .network_policy
        .as_ref()
        .is_some_and(|policy| policy.enabled);
    if !enabled {
        return Ok(Vec::new());
    }
    let name = agent.name_any();
    Role::ALL
        .into_iter()
        .map(|role| {
            let ingress = match role {
                Role::Api => Some(vec![api_ingress(agent)]),
                // Nothing: policy type Ingress without a rule admits nothing. (Absent, not `[]`:
                // the API server drops an empty list, and the applied object must read back as
                // built.)
                Role::Bot | Role::Strategy => None,
            };
            Ok((
                role,
                NetworkPolicy {
                    metadata: object_meta(agent, deployment_name(&name, role), role)?,
                    spec: Some(NetworkPolicySpec {
                        pod_selector: Some(LabelSelector {
                            match_labels: Some(selector_labels(&name, role)),
                            ..LabelSelector::default()
                        }),
                        policy_types: Some(vec!["Ingress".to_owned()]),
                        ingress,
                        ..NetworkPolicySpec::default()
                    }),
                },
            ))
        })
        .collect()
}

/// The api port, from the namespace's pods and from `allowFrom`.
fn api_ingress(agent: &TradingAgent) -> NetworkPolicyIngressRule {
    let same_namespace = NetworkPolicyPeer {
        pod_selector: Some(LabelSelector::default()),
        ..NetworkPolicyPeer::default()
    };
    let named = agent
        .spec
        .network_policy
        .iter()
        .flat_map(|policy| policy.allow_from.iter())
        .map(peer);
    NetworkPolicyIngressRule {
        from: Some(std::iter::once(same_namespace).chain(named).collect()),
        ports: Some(vec![NetworkPolicyPort {
            port: Some(IntOrString::Int(agent.spec.api.port)),
            protocol: Some("TCP".to_owned()),
            ..NetworkPolicyPort::default()
        }]),
    }
}

fn peer(peer: &NetworkPeer) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        namespace_selector: peer.namespace_selector.as_ref().map(label_selector),
        pod_selector: peer.pod_selector.as_ref().map(label_selector),
        ip_block: None,
    }
}

fn label_selector(selector: &Selector) -> LabelSelector {
    LabelSelector {
        match_labels: (!selector.match_labels.is_empty()).then(|| {
            selector
                .match_labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<BTreeMap<_, _>>()
        }),
        match_expressions: (!selector.match_expressions.is_empty()).then(|| {
            selector
                .match_expressions
                .iter()
                .map(|r| LabelSelectorRequirement {
                    key: r.key.clone(),
                    operator: r.operator.as_str().to_owned(),
                    values: (!r.values.is_empty()).then(|| r.values.clone()),
                })
                .collect()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::build::fixtures::*;
    use crate::resource::{NetworkPolicySpec as PolicySpec, SelectorOperator, SelectorRequirement};

    fn enabled(allow_from: Vec<NetworkPeer>) -> TradingAgent {
        let mut a = agent();
        a.spec.network_policy = Some(PolicySpec {
            enabled: true,
            allow_from,
        });
        a
    }

    #[test]
    fn off_unless_enabled() {
        assert!(desired_network_policies(&agent()).unwrap().is_empty());
        let mut a = agent();
        a.spec.network_policy = Some(PolicySpec::default());
        assert!(desired_network_policies(&a).unwrap().is_empty());
    }

    #[test]
    fn the_api_port_from_the_namespace_and_the_named_peers_and_nothing_to_the_workers() {
        let monitoring = NetworkPeer {
            namespace_selector: Some(Selector {
                match_labels: BTreeMap::from([(
                    "kubernetes.io/metadata.name".to_owned(),
                    "ingress".to_owned(),
                )]),
                ..Selector::default()
            }),
            pod_selector: Some(Selector {
                match_expressions: vec![SelectorRequirement {
                    key: "app".into(),
                    operator: SelectorOperator::In,
                    values: vec!["nginx".into()],
                }],
                ..Selector::default()
            }),
        };
        let policies = desired_network_policies(&enabled(vec![monitoring])).unwrap();
        let value = serde_json::to_value(
            policies
                .iter()
                .map(|(role, p)| (role.as_str(), p))
                .collect::<BTreeMap<_, _>>(),
        )
        .unwrap();
        let api = &value["api"];
        assert_eq!(api["metadata"]["name"], "alpha-api");
        assert_eq!(
            api["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"],
            "api"
        );
        assert_eq!(api["spec"]["policyTypes"], serde_json::json!(["Ingress"]));
        let rule = &api["spec"]["ingress"][0];
        assert_eq!(
            rule["ports"],
            serde_json::json!([{"port": 8000, "protocol": "TCP"}])
        );
        assert_eq!(
            rule["from"],
            serde_json::json!([
                {"podSelector": {}},
                {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress"}},
                    "podSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["nginx"]}]}
                }
            ])
        );
        assert_eq!(
            api["metadata"]["ownerReferences"][0]["kind"],
            "TradingAgent"
        );
        for role in ["bot", "strategy"] {
            let policy = &value[role];
            assert_eq!(policy["metadata"]["name"], format!("alpha-{role}"));
            assert_eq!(
                policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"],
                role
            );
            // Ingress named as a policy type with no rules at all: nothing is admitted (an empty
            // list would be dropped by the API server and read back differently).
            assert_eq!(
                policy["spec"]["policyTypes"],
                serde_json::json!(["Ingress"]),
                "{role}"
            );
            assert!(
                policy["spec"].get("ingress").is_none(),
                "{role} accepts nothing: {policy}"
            );
        }
    }
}
