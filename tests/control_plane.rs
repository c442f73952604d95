//! The local control plane itself: a pod-template change rolls a Deployment to a new
//! ReplicaSet whose pods all become Ready while the old ReplicaSet scales to zero — the
//! observable a reload must cause.

mod common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

async fn replica_sets(ns: &TestNs, app: &str) -> Vec<ReplicaSet> {
    ns.api::<ReplicaSet>().list(&ListParams::default().labels(&format!("app={app}"))).await.expect("list rs").items
}

fn rs_hash(rs: &ReplicaSet) -> String {
    rs.metadata.labels.as_ref().and_then(|l| l.get("pod-template-hash")).cloned().unwrap_or_default()
}

async fn rolled_out(ns: &TestNs, name: &str) -> bool {
    let d = ns.api::<Deployment>().get(name).await.expect("get");
    let (spec, status) = (d.spec.unwrap(), d.status.unwrap_or_default());
    let want = spec.replicas.unwrap_or(1);
    status.observed_generation >= d.metadata.generation
        && status.updated_replicas == Some(want)
        && status.ready_replicas == Some(want)
        && status.replicas == Some(want)
}

#[tokio::test]
async fn fake_nodes_are_ready() {
    let client = client().await;
    let nodes = Api::<Node>::all(client).list(&ListParams::default()).await.expect("list nodes").items;
    assert!(nodes.len() >= 2, "at least two kwok nodes, got {}", nodes.len());
    for n in nodes {
        let ready = n
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        assert!(ready, "node {:?} is Ready", n.metadata.name);
    }
}

#[tokio::test]
async fn deployment_rolls_to_a_new_replicaset_with_ready_pods() {
    let ns = TestNs::new("rollout").await;
    ns.apply_json::<Deployment>(deployment("web", json!({}), env_from_configmaps(&[]))).await;
    eventually(Duration::from_secs(30), "first rollout complete", || async {
        rolled_out(&ns, "web").await.then_some(())
    })
    .await;
    let first = replica_sets(&ns, "web").await;
    assert_eq!(first.len(), 1, "one ReplicaSet after creation");
    let old_hash = rs_hash(&first[0]);

    // Change the pod template, as a reload does.
    let patch = json!({"spec": {"template": {"metadata": {"annotations": {"rolled": "1"}}}}});
    ns.api::<Deployment>().patch("web", &PatchParams::default(), &Patch::Strategic(&patch)).await.expect("patch");

    eventually(Duration::from_secs(30), "second rollout complete", || async {
        let rs = replica_sets(&ns, "web").await;
        let new = rs.iter().find(|r| rs_hash(r) != old_hash)?;
        let old = rs.iter().find(|r| rs_hash(r) == old_hash)?;
        let new_ready = new.status.as_ref()?.ready_replicas == Some(2);
        let old_gone = old.spec.as_ref()?.replicas == Some(0) && old.status.as_ref()?.replicas == 0;
        (new_ready && old_gone && rolled_out(&ns, "web").await).then_some(())
    })
    .await;

    // Every pod now belongs to the new ReplicaSet and is Ready.
    eventually(Duration::from_secs(30), "old pods deleted, new pods Ready", || async {
        let pods = ns.api::<Pod>().list(&ListParams::default().labels("app=web")).await.ok()?.items;
        let all_new_ready = pods.len() == 2
            && pods.iter().all(|p| {
                let labels = p.metadata.labels.clone().unwrap_or_default();
                let ready = p
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
                labels.get("pod-template-hash") != Some(&old_hash) && ready
            });
        all_new_ready.then_some(())
    })
    .await;
}
