//! Malformed annotations and awkward sources: reported or handled, never a crash, and the rest
//! of a workload's rules keep working.

mod common;

use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Patch, PatchParams};
use serde_json::json;

#[tokio::test]
async fn an_invalid_pattern_does_not_disable_the_valid_ones() {
    let ns = TestNs::new("badregex").await;
    ns.set_configmap("good", json!({"v": "1"})).await;
    let ann = json!({"configmap.reloader.stakater.com/reload": "(, good", "reloader.stakater.com/auto": "maybe"});
    ns.apply_json::<Deployment>(deployment("web", ann, env_from_configmaps(&[]))).await;
    let _ctl = Controller::start(&ns, &[]).await;
    await_record(&ns, "web").await;
    let t0 = pod_template(&ns, "web").await;
    ns.set_configmap("good", json!({"v": "2"})).await;
    await_reload(&ns, "web", &t0).await;
}

#[tokio::test]
async fn missing_sources_long_names_big_and_binary_sources() {
    let ns = TestNs::new("awkward").await;
    let long = "l".repeat(253);
    ns.set_configmap(&long, json!({"v": "1"})).await;
    let many: serde_json::Map<String, serde_json::Value> =
        (0..3000).map(|i| (format!("key-{i}"), json!(format!("value-{i}")))).collect();
    ns.set_configmap("many", serde_json::Value::Object(many.clone())).await;
    ns.set_secret("big", json!({"blob": "x".repeat(1_000_000)})).await;
    ns.apply_json::<ConfigMap>(
        json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"bin"},"binaryData":{"b":"AAE="}}),
    )
    .await;
    let spec = json!({"containers": [{"name": "app", "image": "example.com/app:1", "envFrom": [
        {"configMapRef": {"name": long}}, {"configMapRef": {"name": "many"}}, {"configMapRef": {"name": "bin"}},
        {"secretRef": {"name": "big"}}, {"configMapRef": {"name": "does-not-exist"}}
    ]}]});
    ns.apply_json::<Deployment>(deployment("web", json!({"reloader.stakater.com/auto": "true"}), spec)).await;
    // Not a test of debouncing: each change below is reconciled at once.
    let _ctl = Controller::start(&ns, &["--debounce=0"]).await;
    let record = await_record(&ns, "web").await;
    assert!(record.contains("\"configmap/does-not-exist\":\"-\""), "a missing source is recorded as absent: {record}");

    let mut t = pod_template(&ns, "web").await;
    ns.set_configmap(&long, json!({"v": "2"})).await;
    t = await_reload(&ns, "web", &t).await;

    let mut many2 = many;
    many2.insert("key-2999".into(), json!("changed"));
    ns.set_configmap("many", serde_json::Value::Object(many2)).await;
    t = await_reload(&ns, "web", &t).await;

    ns.set_secret("big", json!({"blob": "y".repeat(1_000_000)})).await;
    t = await_reload(&ns, "web", &t).await;

    let p = json!({"binaryData": {"b": "AAI="}});
    ns.api::<ConfigMap>().patch("bin", &PatchParams::default(), &Patch::Merge(&p)).await.unwrap();
    await_reload(&ns, "web", &t).await;

    // The controller never wrote a Secret value anywhere on the workload, neither as it is nor
    // base64-encoded as the API serves it ("eXl5" is "yyy", "eHh4" is "xxx"); it names sources
    // and their hashes only.
    let d = ns.api::<Deployment>().get("web").await.unwrap();
    let text = serde_json::to_string(&d).unwrap();
    for value in ["yyyyyyyy", "xxxxxxxx", "eXl5eXl5", "eHh4eHh4"] {
        assert!(!text.contains(value), "a Secret value ({value}...) on the workload");
    }
    let record: std::collections::BTreeMap<String, String> =
        serde_json::from_str(&record_of(&ns, "web").await.expect("the record")).expect("the record is a JSON map");
    assert_eq!(record.len(), 5, "every source is recorded: {record:?}");
    for (source, applied) in &record {
        let hash = applied.len() == 64 && applied.bytes().all(|b| b.is_ascii_hexdigit());
        assert!(hash || applied == "-", "{source} is recorded as a hash or as absent, not {applied:?}");
    }

    // And it never wrote to the Secret itself: it holds what the test wrote, written by the
    // test's field manager alone.
    let secret = ns.api::<Secret>().get("big").await.unwrap();
    let blob = secret.data.as_ref().and_then(|d| d.get("blob")).expect("the blob");
    assert!(blob.0.len() == 1_000_000 && blob.0.iter().all(|b| *b == b'y'), "the Secret's content is untouched");
    let managers: Vec<String> =
        secret.metadata.managed_fields.unwrap_or_default().into_iter().filter_map(|m| m.manager).collect();
    assert_eq!(managers, ["reloader-tests"], "only the test wrote the Secret");
}
