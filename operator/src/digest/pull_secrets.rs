//! Registry credentials from a TradingAgent's `imagePullSecrets` (talks to the API server); the
//! Secret formats are parsed in [`super::credentials`].

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::{Client, ResourceExt};

use super::credentials::{Credentials, DockerConfig};
use super::reference::ImageReference;
use crate::error::Error;
use crate::resource::TradingAgent;

/// Every credential of the agent's pull secrets that matches `reference`, in the order the
/// kubelet tries them (see [`super::credentials`]); empty: anonymous.
pub async fn credentials(
    client: &Client,
    agent: &TradingAgent,
    reference: &ImageReference,
) -> Result<Vec<Credentials>, Error> {
    if agent.spec.image_pull_secrets.is_empty() {
        return Ok(Vec::new());
    }
    let ns = agent.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let mut config = DockerConfig::default();
    for name in agent.spec.image_pull_secrets.iter().map(|s| &s.name) {
        let secret = match secrets.get_opt(name).await {
            Ok(Some(secret)) => secret,
            Ok(None) => {
                return Err(Error::PullSecretNotFound {
                    namespace: ns,
                    name: name.clone(),
                });
            }
            Err(e) => {
                return Err(Error::PullSecretUnreadable {
                    name: name.clone(),
                    detail: e.to_string(),
                });
            }
        };
        let data: BTreeMap<String, Vec<u8>> = secret
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect();
        let parsed = DockerConfig::from_secret(secret.type_.as_deref().unwrap_or(""), &data)
            .map_err(|e| Error::PullSecretInvalid {
                name: name.clone(),
                detail: e.to_string(),
            })?;
        config.extend(parsed);
    }
    Ok(config
        .candidates(reference.registry(), reference.repository())
        .into_iter()
        .cloned()
        .collect())
}
