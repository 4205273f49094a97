//! The api PodDisruptionBudget, with more than one api replica.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use super::{api_service_name, object_meta, selector_labels};
use crate::error::Result;
use crate::resource::{Role, TradingAgent};

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
    use crate::reconcile::build::fixtures::*;

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
}
