//! Level 3 of the harness: the real node that `NODE=real tests/harness/cluster.sh up` adds beside
//! the kwok nodes (kubelet, containerd, kube-proxy; `tests/harness/real-node.sh`).
//!
//! Pods reach it only from namespaces made by [`RealNode::namespace`]: the node is tainted, and
//! those namespaces give their pods the toleration and a node selector (the API server's
//! `PodTolerationRestriction` and `PodNodeSelector` admission plugins read them from namespace
//! annotations), so the product's own pod templates need no harness-specific fields.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use k8s_openapi::api::core::v1::{Namespace, Node};
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::cluster::TestNamespace;
use crate::process::run_checked;
use crate::{Error, Result};

/// The node's label, and the key of its `NoSchedule` taint (value `real`).
pub const NODE_LABEL: (&str, &str) = ("trading-agent.dev/node", "real");

/// The real node, as the cluster reports it.
#[derive(Clone, Debug)]
pub struct RealNode {
    /// Node name (`REAL_NODE_NAME`, default `real-node-0`).
    pub name: String,
    /// Its InternalIP: the dummy interface's address; pods reach the host there.
    pub ip: String,
    /// The pods' subnet (`REAL_NODE_POD_CIDR`, default `10.77.0.0/24`).
    pub pod_cidr: String,
}

/// Whether this run includes level 3: `NODE=kwok` leaves it out on purpose (`Ok(None)`); anything
/// else requires a Ready real node, and its absence is an error that says how to get one.
pub async fn required(client: &Client) -> Result<Option<RealNode>> {
    if std::env::var("NODE").is_ok_and(|mode| mode == "kwok") {
        return Ok(None);
    }
    let name = std::env::var("REAL_NODE_NAME").unwrap_or_else(|_| "real-node-0".to_owned());
    let unavailable = |why: String| {
        Error::Missing(format!(
            "level 3 (the real node {name}): {why}. Start the cluster with the real node \
             (`make cluster-up NODE=real`, or NODE=real for `make test`), or set NODE=kwok to \
             leave level 3 out of this run on purpose"
        ))
    };
    let node = Api::<Node>::all(client.clone())
        .get_opt(&name)
        .await
        .map_err(|e| unavailable(format!("cannot read the node: {e}")))?
        .ok_or_else(|| unavailable("no such node in the cluster".to_owned()))?;
    let status = node.status.unwrap_or_default();
    let ready = status
        .conditions
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    if !ready {
        return Err(unavailable("the node is not Ready".to_owned()));
    }
    let ip = status
        .addresses
        .unwrap_or_default()
        .into_iter()
        .find(|a| a.type_ == "InternalIP")
        .map(|a| a.address)
        .ok_or_else(|| unavailable("the node reports no InternalIP".to_owned()))?;
    Ok(Some(RealNode {
        name,
        ip,
        pod_cidr: std::env::var("REAL_NODE_POD_CIDR").unwrap_or_else(|_| "10.77.0.0/24".to_owned()),
    }))
}

impl RealNode {
    /// A test namespace (Pod Security `restricted`) whose pods all run on this node.
    pub async fn namespace(&self, client: &Client, prefix: &str) -> Result<TestNamespace> {
        let namespace = TestNamespace::create_restricted(client, prefix).await?;
        let (key, value) = NODE_LABEL;
        let toleration =
            json!([{"key": key, "operator": "Equal", "value": value, "effect": "NoSchedule"}]);
        let annotations = BTreeMap::from([
            (
                "scheduler.alpha.kubernetes.io/node-selector",
                format!("{key}={value}"),
            ),
            (
                "scheduler.alpha.kubernetes.io/defaultTolerations",
                toleration.to_string(),
            ),
        ]);
        Api::<Namespace>::all(client.clone())
            .patch(
                &namespace.name,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"annotations": annotations}})),
            )
            .await
            .map_err(|e| Error::Startup(format!("annotating namespace {}: {e}", namespace.name)))?;
        Ok(namespace)
    }

    /// Let the node's containerd pull over plain HTTP from a registry on this host (`127.0.0.1:PORT`,
    /// or the node's address for one that pods reach too).
    pub fn allow_registry(&self, host: &str) -> Result<()> {
        run_checked(
            Command::new(harness_dir().join("real-node.sh"))
                .arg("allow-registry")
                .arg(host),
            "real-node.sh allow-registry",
        )
    }
}

fn harness_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("harness")
}
