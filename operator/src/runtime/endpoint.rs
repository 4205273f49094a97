//! Only the leader receives webhook traffic. The chart's webhook Service has no selector; its one
//! EndpointSlice (created by the chart) lists the address the leader writes there on taking the
//! Lease, and the leader withdraws it when it steps down (the next leader overwrites it anyway).
//! So a registry's push reaches the process that can act on it at the first try, instead of a
//! standby answering 503 about half the time.
//!
//! The only right this needs is `patch` on that one EndpointSlice, by name: no write access to
//! pods (a label on the leader's own pod would need `patch` on every pod of the namespace).

use std::net::IpAddr;
use std::time::Duration;

use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::error::Result;

/// How often the leader writes its address again (a `helm upgrade` or a person may have reset
/// the slice); an unchanged patch costs the API server no write.
pub const REPUBLISH_INTERVAL: Duration = Duration::from_secs(30);
/// Wait before retrying a failed write.
const RETRY: Duration = Duration::from_secs(1);

/// The EndpointSlice that routes the webhook Service to the leader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookEndpoint {
    /// Namespace of the slice (the release namespace).
    pub namespace: String,
    /// Name of the slice.
    pub slice: String,
    /// This process's address (the pod IP).
    pub address: IpAddr,
    /// This pod's name, recorded as the endpoint's `targetRef`.
    pub pod: Option<String>,
}

impl WebhookEndpoint {
    fn api(&self, client: &Client) -> Api<EndpointSlice> {
        Api::namespaced(client.clone(), &self.namespace)
    }

    /// The slice's endpoints with only this process in them, ready.
    pub fn published(&self) -> serde_json::Value {
        let mut endpoint = json!({
            "addresses": [self.address.to_string()],
            "conditions": {"ready": true, "serving": true, "terminating": false},
        });
        if let Some(pod) = &self.pod {
            endpoint["targetRef"] =
                json!({"kind": "Pod", "name": pod, "namespace": self.namespace});
        }
        json!({ "endpoints": [endpoint] })
    }

    /// Point the webhook Service at this process.
    pub async fn publish(&self, client: &Client) -> Result<()> {
        self.api(client)
            .patch(
                &self.slice,
                &PatchParams::default(),
                &Patch::Merge(self.published()),
            )
            .await?;
        Ok(())
    }

    /// Remove this process from the slice, only if it is still the one listed (a JSON Patch
    /// `test`: a successor's address is never removed).
    pub async fn withdraw(&self, client: &Client) -> Result<()> {
        let patch: json_patch::Patch = serde_json::from_value(json!([
            {"op": "test", "path": "/endpoints/0/addresses/0", "value": self.address.to_string()},
            {"op": "replace", "path": "/endpoints", "value": []},
        ]))?;
        self.api(client)
            .patch(
                &self.slice,
                &PatchParams::default(),
                &Patch::Json::<()>(patch),
            )
            .await?;
        Ok(())
    }

    /// While leading: publish once `ready` resolves (the controller can act on a push), then
    /// again every [`REPUBLISH_INTERVAL`], until `stop`; then withdraw.
    pub async fn serve_while_leading(
        &self,
        client: Client,
        ready: impl std::future::Future<Output = ()>,
        stop: CancellationToken,
    ) {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ready => {}
        }
        let mut published = false;
        loop {
            match self.publish(&client).await {
                Ok(()) if !published => {
                    published = true;
                    info!(slice = %self.slice, address = %self.address, "webhook traffic now routed to this leader");
                }
                Ok(()) => {}
                Err(e) => {
                    warn!(slice = %self.slice, error = %e, "could not route webhook traffic to this leader")
                }
            }
            let wait = if published { REPUBLISH_INTERVAL } else { RETRY };
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(wait) => {}
            }
        }
        match tokio::time::timeout(Duration::from_secs(2), self.withdraw(&client)).await {
            Ok(Ok(())) => info!(slice = %self.slice, "webhook traffic no longer routed here"),
            // The test failed (a successor already wrote its address), or the API server is
            // unreachable: the successor overwrites the slice either way.
            Ok(Err(e)) => info!(slice = %self.slice, error = %e, "webhook endpoint not withdrawn"),
            Err(_) => warn!(slice = %self.slice, "webhook endpoint withdrawal timed out"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_published_endpoint_is_this_pod_ready() {
        let endpoint = WebhookEndpoint {
            namespace: "ops".into(),
            slice: "op-webhook".into(),
            address: "10.1.2.3".parse().unwrap(),
            pod: Some("op-7d9c".into()),
        };
        let published = endpoint.published();
        assert_eq!(published["endpoints"][0]["addresses"], json!(["10.1.2.3"]));
        assert_eq!(published["endpoints"][0]["conditions"]["ready"], true);
        assert_eq!(published["endpoints"][0]["targetRef"]["name"], "op-7d9c");
        assert_eq!(published["endpoints"].as_array().unwrap().len(), 1);
    }
}
