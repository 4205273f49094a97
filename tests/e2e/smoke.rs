//! Smoke test of the local cluster harness: a Deployment scheduled onto kwok's simulated nodes
//! becomes Available, and deleting it (then its namespace) garbage-collects its ReplicaSet and pods
//! through the real kube-controller-manager.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, ReplicaSet};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::Api;
use kube::api::{DeleteParams, ListParams, ObjectMeta, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use trading_agent_tests::cluster::{self, TestNamespace};

fn deployment(name: &str, replicas: i32) -> Deployment {
    let labels = BTreeMap::from([("app".to_owned(), name.to_owned())]);
    Deployment {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(labels.clone()),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "main".into(),
                        // kwok never pulls: any well-formed reference will do.
                        image: Some(format!("127.0.0.1:5000/smoke@sha256:{}", "ab".repeat(32))),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn wait_for_count<K>(
    api: &Api<K>,
    selector: &str,
    expected: usize,
    timeout: Duration,
) -> usize
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let count = api
            .list(&ListParams::default().labels(selector))
            .await
            .expect("list")
            .items
            .len();
        if count == expected || tokio::time::Instant::now() >= deadline {
            return count;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn deployment_becomes_available_on_kwok_nodes_and_is_garbage_collected() {
    let client = cluster::client()
        .await
        .expect("the local cluster is up (make cluster-up)");
    let namespace = TestNamespace::create(&client, "smoke").await.unwrap();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &namespace.name);
    let replica_sets: Api<ReplicaSet> = Api::namespaced(client.clone(), &namespace.name);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace.name);

    let started = tokio::time::Instant::now();
    deployments
        .create(&PostParams::default(), &deployment("web", 3))
        .await
        .unwrap();
    tokio::time::timeout(
        Duration::from_secs(60),
        await_condition(
            deployments.clone(),
            "web",
            conditions::is_deployment_completed(),
        ),
    )
    .await
    .expect("deployment completes its rollout within 60 s")
    .unwrap();
    let web = deployments.get("web").await.unwrap();
    let status = web.status.unwrap();
    assert_eq!(status.available_replicas, Some(3));
    let available = status
        .conditions
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "Available")
        .unwrap();
    assert_eq!(available.status, "True");
    println!("deployment available after {:?}", started.elapsed());

    let running = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    assert_eq!(running.items.len(), 3);
    for pod in &running.items {
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        assert!(
            node.starts_with("kwok-node-"),
            "pod scheduled onto a kwok node, got {node:?}"
        );
        assert_eq!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Running")
        );
    }
    assert_eq!(
        replica_sets
            .list(&ListParams::default().labels("app=web"))
            .await
            .unwrap()
            .items
            .len(),
        1
    );

    // The garbage collector removes the ReplicaSet and the pods once their owner is gone.
    deployments
        .delete("web", &DeleteParams::background())
        .await
        .unwrap();
    assert_eq!(
        wait_for_count(&replica_sets, "app=web", 0, Duration::from_secs(60)).await,
        0,
        "ReplicaSet collected"
    );
    assert_eq!(
        wait_for_count(&pods, "app=web", 0, Duration::from_secs(60)).await,
        0,
        "pods collected"
    );

    // A second Deployment goes with its namespace.
    deployments
        .create(&PostParams::default(), &deployment("api", 1))
        .await
        .unwrap();
    assert_eq!(
        wait_for_count(&pods, "app=api", 1, Duration::from_secs(60)).await,
        1
    );
    let name = namespace.name.clone();
    namespace
        .delete(Duration::from_secs(90))
        .await
        .expect("namespace and everything in it deleted");
    let after = Api::<Pod>::namespaced(client, &name)
        .list(&ListParams::default())
        .await
        .unwrap();
    assert!(after.items.is_empty());
}
