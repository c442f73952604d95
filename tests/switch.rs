//! A switch from Stakater Reloader. Workloads carry the exact marks Reloader writes (shared
//! spec §5: `STAKATER_<NAME>_<TYPE>` variables with the env-vars strategy, the pod template's
//! `last-reloaded-from` with annotations; names with `-` and `.`, several sources per workload,
//! `last-reloaded-from` naming only one of them). Where every mark names the current content,
//! the workload is adopted without a rollout; where a mark names an older one (a change made
//! while neither controller ran), it rolls exactly once, and not again after a restart.

mod common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use serde_json::{Value, json};

/// Reloader's hashes (shared spec §6) of the contents below.
const EMPTY: &str = "da39a3ee5e6b4b0d3255bfef95601890afd80709";
const KEY_VALUE: &str = "dc30e0faa89a70dec1033016a2309bbeb9efcbd0";
const A1_B2: &str = "f83e99e324ba68ccc373a58ef1eb42f8ab88646a";
const PASSWORD: &str = "d93dd00779cd04e2ec1db21fa3d0e20deea13f9c";

/// A pod spec using the named sources (`configmap/…`, `secret/…`), with `env` on its second
/// container (Reloader marks one container; the first is a sidecar here).
fn pod(sources: &[&str], env: Value) -> Value {
    let refs: Vec<Value> = sources
        .iter()
        .map(|s| match s.split_once('/').unwrap() {
            ("configmap", n) => json!({"configMapRef": {"name": n}}),
            (_, n) => json!({"secretRef": {"name": n}}),
        })
        .collect();
    json!({"containers": [
        {"name": "side", "image": "example.com/side:1"},
        {"name": "app", "image": "example.com/app:1", "envFrom": refs, "env": env}]})
}

fn last_reloaded_from(ns: &TestNs, kind: &str, name: &str, hash: &str) -> Value {
    json!({"reloader.stakater.com/last-reloaded-from": json!({"type": kind, "name": name,
        "namespace": ns.name, "hash": hash, "containerRefs": ["app"], "observedAt": 1767225600}).to_string()})
}

fn explain(ns: &TestNs, target: &str) -> String {
    explain_with(ns, target, &[])
}

#[tokio::test]
async fn reloaders_marks_roll_what_it_had_not_applied_and_adopt_the_rest() {
    let ns = TestNs::new("switch").await;
    ns.set_configmap("app-config", json!({"key": "value"})).await;
    ns.set_configmap("feature.flags", json!({"a": "1", "b": "2"})).await;
    ns.set_secret("db.credentials", json!({"password": "s3cr3t"})).await;
    let env = |cm: &str, secret: &str| {
        json!([{"name": "STAKATER_APP_CONFIG_CONFIGMAP", "value": cm},
               {"name": "STAKATER_DB_CREDENTIALS_SECRET", "value": secret}])
    };
    let both = ["configmap/app-config", "secret/db.credentials"];
    // (name, template annotations, pod spec, rolls at the switch)
    let workloads = [
        ("env-current", json!({}), pod(&both, env(KEY_VALUE, PASSWORD)), false),
        ("env-stale", json!({}), pod(&both, env(EMPTY, PASSWORD)), true),
        (
            "ann-current",
            last_reloaded_from(&ns, "CONFIGMAP", "feature.flags", A1_B2),
            pod(&["configmap/feature.flags", "configmap/app-config"], json!([])),
            false,
        ),
        (
            "ann-stale",
            last_reloaded_from(&ns, "SECRET", "db.credentials", EMPTY),
            pod(&["secret/db.credentials", "configmap/feature.flags"], json!([])),
            true,
        ),
        ("no-marks", json!({}), pod(&both, json!([])), false),
    ];
    let mut before = Vec::new();
    for (name, template_annotations, spec, _) in &workloads {
        let mut d = deployment(name, json!({"reloader.stakater.com/auto": "true"}), spec.clone());
        d["spec"]["template"]["metadata"]["annotations"] = template_annotations.clone();
        ns.apply_json::<Deployment>(d).await;
        before.push(pod_template(&ns, name).await);
    }

    // Before the switch, `reloader explain` says which will roll and why.
    for (name, _, _, rolls) in &workloads {
        let e = explain(&ns, &format!("deployment/{name}"));
        if *rolls {
            assert!(e.contains("changed since Stakater Reloader last applied it"), "{name}: {e}");
        } else {
            assert!(e.contains("without a rollout"), "{name}: {e}");
        }
    }

    let ctl = Controller::start(&ns, &[]).await;
    for ((name, _, _, rolls), t0) in workloads.iter().zip(&before) {
        if *rolls {
            eventually(Duration::from_secs(10), &format!("{name} rolled at the switch"), || async {
                (pod_template(&ns, name).await != *t0).then_some(())
            })
            .await;
        } else {
            await_record(&ns, name).await;
        }
    }
    holds(Duration::from_secs(3), "nothing else rolled", || async {
        let mut ok = true;
        for ((name, _, _, rolls), t0) in workloads.iter().zip(&before) {
            ok &= *rolls || pod_template(&ns, name).await == *t0;
        }
        ok
    })
    .await;
    for (name, _, _, rolls) in &workloads {
        assert_eq!(replica_sets(&ns, name).await, if *rolls { 2 } else { 1 }, "{name}");
    }
    let text = ctl.ctx.metrics.encode();
    let reloads = metric(&text, "reloader_reload_executed_total{success=\"true\"}");
    assert_eq!(reloads, 2.0, "one reload each for the two stale workloads");

    // The records written at the switch are what counts from now on: a restart rolls nothing.
    let after: Vec<String> = {
        let mut v = Vec::new();
        for (name, ..) in &workloads {
            v.push(pod_template(&ns, name).await);
        }
        v
    };
    ctl.stop().await;
    let _ctl = Controller::start(&ns, &[]).await;
    holds(Duration::from_secs(4), "no rollout after a restart", || async {
        let mut ok = true;
        for ((name, ..), t) in workloads.iter().zip(&after) {
            ok &= pod_template(&ns, name).await == *t;
        }
        ok
    })
    .await;
}
