//! Namespace scope modes and server-side filters: a namespace list, single-namespace mode,
//! cluster-wide with a namespace selector (followed live) and an ignore list, and the
//! resource label selector.

mod common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

async fn label_namespace(ns: &TestNs, key: &str, value: Option<&str>) {
    let p = json!({"metadata": {"labels": {key: value}}});
    Api::<Namespace>::all(ns.client.clone()).patch(&ns.name, &PatchParams::default(), &Patch::Merge(&p)).await.unwrap();
}

#[tokio::test]
async fn namespace_list_watches_only_the_listed_namespaces() {
    let inside = TestNs::new("listed").await;
    let outside = TestNs::new("unlisted").await;
    let t_in = auto_workload(&inside).await;
    let t_out = auto_workload(&outside).await;
    let _ctl = Controller::start_with(settings(&[&format!("--namespaces={},no-such-namespace", inside.name)])).await;
    await_record(&inside, "web").await;
    inside.set_configmap("cfg", json!({"v": "2"})).await;
    outside.set_configmap("cfg", json!({"v": "2"})).await;
    await_reload(&inside, "web", &t_in).await;
    assert_no_reload(&outside, "web", &t_out).await;
    assert!(record_of(&outside, "web").await.is_none(), "nothing written outside the list");
}

#[tokio::test]
async fn single_namespace_mode_from_kubernetes_namespace() {
    let ns = TestNs::new("single").await;
    let other = TestNs::new("single-other").await;
    let t = auto_workload(&ns).await;
    let t_other = auto_workload(&other).await;
    let _ctl = Controller::start_with(settings(&[&format!("--kubernetes-namespace={}", ns.name)])).await;
    await_record(&ns, "web").await;
    ns.set_configmap("cfg", json!({"v": "2"})).await;
    other.set_configmap("cfg", json!({"v": "2"})).await;
    await_reload(&ns, "web", &t).await;
    assert_no_reload(&other, "web", &t_other).await;
}

#[tokio::test]
async fn namespace_selector_is_followed_live() {
    let ns = TestNs::new("selector").await;
    let key = format!("join-{}", ns.name);
    let t0 = auto_workload(&ns).await;
    let ctl = Controller::start_with(settings(&[&format!("--namespace-selector={key}:yes")])).await;

    // Not selected yet: nothing happens.
    ns.set_configmap("cfg", json!({"v": "2"})).await;
    assert_no_reload(&ns, "web", &t0).await;
    assert!(record_of(&ns, "web").await.is_none());

    // Joining: the workload is adopted at once (the change made while out of scope is the
    // baseline, as for any workload seen for the first time).
    label_namespace(&ns, &key, Some("yes")).await;
    await_record(&ns, "web").await;
    assert_eq!(pod_template(&ns, "web").await, t0);
    ns.set_configmap("cfg", json!({"v": "3"})).await;
    let t1 = await_reload(&ns, "web", &t0).await;

    // Leaving: changes are not acted on.
    label_namespace(&ns, &key, None).await;
    eventually(Duration::from_secs(5), "the namespace leaves the selection", || async {
        (!ctl.ctx.namespace_selected(&ns.name)).then_some(())
    })
    .await;
    ns.set_configmap("cfg", json!({"v": "4"})).await;
    assert_no_reload(&ns, "web", &t1).await;
}

#[tokio::test]
async fn ignored_namespaces_are_skipped_cluster_wide() {
    let kept = TestNs::new("kept").await;
    let ignored = TestNs::new("ignored").await;
    let key = format!("pair-{}", kept.name);
    label_namespace(&kept, &key, Some("1")).await;
    label_namespace(&ignored, &key, Some("1")).await;
    let t_kept = auto_workload(&kept).await;
    let t_ign = auto_workload(&ignored).await;
    let _ctl = Controller::start_with(settings(&[
        &format!("--namespace-selector={key}=1"),
        &format!("--namespaces-to-ignore={}", ignored.name),
    ]))
    .await;
    await_record(&kept, "web").await;
    kept.set_configmap("cfg", json!({"v": "2"})).await;
    ignored.set_configmap("cfg", json!({"v": "2"})).await;
    await_reload(&kept, "web", &t_kept).await;
    assert_no_reload(&ignored, "web", &t_ign).await;
    assert!(record_of(&ignored, "web").await.is_none());
}

#[tokio::test]
async fn resource_label_selector_filters_sources() {
    let ns = TestNs::new("labelsel").await;
    ns.apply_json::<ConfigMap>(json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"labelled","labels":{"team":"a"}},"data":{"v":"1"}}))
        .await;
    ns.set_configmap("plain", json!({"v": "1"})).await;
    ns.apply_json::<Deployment>(deployment(
        "web",
        json!({"reloader.stakater.com/auto": "true"}),
        env_from_configmaps(&["labelled", "plain"]),
    ))
    .await;
    let _ctl = Controller::start(&ns, &["--resource-label-selector=team=a"]).await;
    await_record(&ns, "web").await;
    let t0 = pod_template(&ns, "web").await;
    ns.set_configmap("plain", json!({"v": "2"})).await;
    assert_no_reload(&ns, "web", &t0).await;
    ns.apply_json::<ConfigMap>(json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"labelled","labels":{"team":"a"}},"data":{"v":"2"}}))
        .await;
    await_reload(&ns, "web", &t0).await;
}
