//! The record formats written so far (`tests/fixtures/records/`), read on the local control
//! plane as they were written: a workload whose record names the current content of its
//! sources is neither rolled nor written when the controller starts, and one whose record
//! names an older content rolls exactly once, to a record of the current content. A change of
//! the record's format or of the hash encoding that is not a new, named format fails here.

mod common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

/// The workload's `envFrom` for the sources its record names (optional: some do not exist).
fn uses(applied: &serde_json::Map<String, Value>) -> Value {
    let refs: Vec<Value> = applied
        .keys()
        .map(|k| match k.split_once('/') {
            Some(("configmap", name)) => json!({"configMapRef": {"name": name, "optional": true}}),
            Some(("secret", name)) => json!({"secretRef": {"name": name, "optional": true}}),
            _ => panic!("a fixture source the test cannot build: {k}"),
        })
        .collect();
    json!({"containers": [{"name": "app", "image": "example.com/app:1", "envFrom": refs}]})
}

/// What must stay as it was on a workload that nothing is due for.
async fn state(ns: &TestNs, name: &str) -> (String, Option<String>, Option<i64>) {
    let d = ns.api::<Deployment>().get(name).await.expect("get deployment");
    let generation = d.metadata.generation;
    (pod_template(ns, name).await, record_of(ns, name).await, generation)
}

#[tokio::test]
async fn records_of_every_format_written_so_far_are_read_as_written() {
    let fixture: Value = serde_json::from_str(include_str!("fixtures/records/format-1.json")).unwrap();
    let ns = TestNs::new("records").await;
    for (key, body) in fixture["sources"].as_object().unwrap() {
        let (kind, name) = key.split_once('/').unwrap();
        let mut object = body.clone();
        object["metadata"] = json!({"name": name});
        match kind {
            "configmap" => {
                object["apiVersion"] = json!("v1");
                object["kind"] = json!("ConfigMap");
                ns.apply_json::<ConfigMap>(object).await;
            }
            "secret" => {
                object["apiVersion"] = json!("v1");
                object["kind"] = json!("Secret");
                ns.apply_json::<Secret>(object).await;
            }
            other => panic!("a fixture source kind the test cannot build: {other}"),
        }
    }
    let cases: Vec<&Value> =
        fixture["records"].as_array().unwrap().iter().filter(|c| c["cluster"].as_bool() != Some(false)).collect();
    // The record as this controller writes it: under its field manager (one written by
    // another, as `kubectl rollout undo` copies it back, is not trusted).
    let as_written = PatchParams { field_manager: Some(reloader::FIELD_MANAGER.into()), ..Default::default() };
    for (i, case) in cases.iter().enumerate() {
        let name = format!("w{i}");
        let spec = uses(case["applied"].as_object().unwrap());
        ns.apply_json::<Deployment>(deployment(&name, json!({"reloader.stakater.com/auto": "true"}), spec)).await;
        let record = Patch::Merge(json!({"metadata": {"annotations": {RECORD: case["annotation"]}}}));
        ns.api::<Deployment>().patch(&name, &as_written, &record).await.expect("write the record");
    }
    let mut before = Vec::new();
    for i in 0..cases.len() {
        before.push(state(&ns, &format!("w{i}")).await);
    }

    let _ctl = Controller::start(&ns, &[]).await;
    for (i, case) in cases.iter().enumerate() {
        let name = format!("w{i}");
        if case["stale"].as_array().unwrap().is_empty() {
            continue;
        }
        eventually(Duration::from_secs(10), &format!("{name} rolled: {}", case["name"]), || async {
            (pod_template(&ns, &name).await != before[i].0).then_some(())
        })
        .await;
    }
    holds(Duration::from_secs(4), "nothing more rolled or written", || async {
        let mut ok = true;
        for (i, case) in cases.iter().enumerate() {
            let name = format!("w{i}");
            if case["stale"].as_array().unwrap().is_empty() {
                ok &= state(&ns, &name).await == before[i];
            }
        }
        ok
    })
    .await;
    for (i, case) in cases.iter().enumerate() {
        let name = format!("w{i}");
        let stale = case["stale"].as_array().unwrap();
        let (_, record, _) = state(&ns, &name).await;
        let record: Value = serde_json::from_str(&record.expect("a record")).unwrap();
        if stale.is_empty() {
            continue;
        }
        assert_eq!(replica_sets(&ns, &name).await, 2, "{name} rolled exactly once: {}", case["name"]);
        for s in stale {
            let s = s.as_str().unwrap();
            assert_ne!(record[s], case["applied"][s], "{name}: the record names the current content of {s}");
        }
    }
}
