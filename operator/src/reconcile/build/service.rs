//! The api Service, on the api's port.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use super::{HTTP_PORT_NAME, api_service_name, object_meta, selector_labels};
use crate::error::Result;
use crate::resource::{Role, TradingAgent};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::build::fixtures::*;
    use crate::reconcile::build::labels;

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
}
