//! Secrets Store CSI (`--enable-csi-integration`) against the local control plane: the two CRDs
//! from `tests/fixtures/csi-crds.yaml`, and a stand-in for the driver that writes one
//! SecretProviderClassPodStatus per pod and class, as the driver does (status set on create and
//! update, owned by the pod, each new pod mounting what the provider serves now, a rotation
//! reaching the pods one by one). Which workloads a rotation rolls (auto, typed auto, named
//! regex, exclude, search/match, ignore), one rollout per rotation however many pods report it,
//! no loop when the new pods report the applied versions, silence across a restart, catch-up of
//! a rotation made while stopped or half-seen, the env-vars strategy, metrics, Events and
//! `reloader explain`.

mod common;

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use common::csi::*;
use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Patch, PatchParams};
use reloader::metrics::{EventLabels, Success};
use serde_json::{Value, json};

const AUTO: &str = "reloader.stakater.com/auto";
const SPC_AUTO: &str = "secretproviderclass.reloader.stakater.com/auto";
const SPC_RELOAD: &str = "secretproviderclass.reloader.stakater.com/reload";
const SPC_EXCLUDE: &str = "secretproviderclasses.exclude.reloader.stakater.com/reload";
const CSI: &str = "--enable-csi-integration=true";

async fn deploy(ns: &TestNs, name: &str, replicas: i64, annotations: Value, pod: Value) {
    let mut d = deployment(name, annotations, pod);
    d["spec"]["replicas"] = json!(replicas);
    ns.apply_json::<Deployment>(d).await;
}

/// Waits until the workload's record holds a mounted content of `class` (not just "absent").
async fn await_recorded(ns: &TestNs, name: &str, class: &str) -> String {
    let key = format!("\"secretproviderclass/{class}\":\"");
    eventually(Duration::from_secs(20), &format!("{name} recording {class}"), || async {
        let r = record_of(ns, name).await?;
        let at = r.find(&key)? + key.len();
        (!r[at..].starts_with('-')).then_some(r)
    })
    .await
}

fn reloads(ctl: &Controller) -> u64 {
    ctl.ctx.metrics.reload_executed.get_or_create(&Success { success: "true" }).get()
}

#[tokio::test]
async fn annotations_decide_which_workloads_a_rotation_rolls() {
    install_csi_crds();
    let ns = TestNs::new("csi-policy").await;
    spc(&ns, "vault-app", json!({})).await;
    spc(&ns, "vault-matched", json!({"reloader.stakater.com/match": "true"})).await;
    spc(&ns, "vault-ignored", json!({"reloader.stakater.com/ignore": "true"})).await;
    let driver = Driver::start(&ns, &[("vault-app", "1"), ("vault-matched", "1"), ("vault-ignored", "1")]);
    let ctl = Controller::start(&ns, &[CSI]).await;
    // (name, annotations, class mounted, rolls)
    let rows: Vec<(&str, Value, &str, bool)> = vec![
        ("auto", json!({AUTO: "true"}), "vault-app", true),
        ("typed-auto", json!({SPC_AUTO: "true"}), "vault-app", true),
        ("cm-typed-auto", json!({"configmap.reloader.stakater.com/auto": "true"}), "vault-app", false),
        ("named-regex", json!({SPC_RELOAD: "other, vault-(app|db)"}), "vault-unrelated", true),
        ("excluded", json!({AUTO: "true", SPC_EXCLUDE: "vault-app"}), "vault-app", false),
        ("search-match", json!({"reloader.stakater.com/search": "true"}), "vault-matched", true),
        ("search-no-match", json!({"reloader.stakater.com/search": "true"}), "vault-app", false),
        ("ignored", json!({AUTO: "true"}), "vault-ignored", false),
    ];
    for (name, ann, class, _) in &rows {
        deploy(&ns, name, 1, ann.clone(), mounting(class)).await;
    }
    for (class, n) in [("vault-app", 5), ("vault-matched", 1), ("vault-ignored", 1)] {
        driver.await_mounted(class, "1", n).await;
    }
    for (name, _, class, rolls) in &rows {
        if *rolls {
            let class = if *name == "named-regex" { "vault-app" } else { class };
            await_recorded(&ns, name, class).await;
        }
    }
    let mut before = HashMap::new();
    for (name, ..) in &rows {
        before.insert(*name, pod_template(&ns, name).await);
    }
    for class in ["vault-app", "vault-matched", "vault-ignored"] {
        driver.rotate(class, "2", Duration::ZERO).await;
    }
    for (name, _, _, rolls) in &rows {
        if *rolls {
            let t = await_reload(&ns, name, &before[name]).await;
            assert!(t.contains("SECRETPROVIDERCLASS"), "{name}: {t}");
        }
    }
    let quiet: Vec<_> = rows.iter().filter(|r| !r.3).map(|r| r.0).collect();
    futures::future::join_all(quiet.iter().map(|name| assert_no_reload(&ns, name, &before[name]))).await;
    assert_eq!(reloads(&ctl), 4, "one rollout for each workload the rotation governs");
    // Metrics and Events, as for other sources.
    let updates = ctl
        .ctx
        .metrics
        .events_received
        .get_or_create(&EventLabels { event_type: "update", resource_type: "secretproviderclasspodstatuses" });
    assert!(updates.get() >= 7, "status updates counted: {}", updates.get());
    let reloaded = eventually(Duration::from_secs(10), "four Reloaded Events", || async {
        let out = kubectl(&["get", "events.events.k8s.io", "-n", &ns.name, "-o", "json"]);
        let events: Value = serde_json::from_slice(&out.stdout).ok()?;
        let reloaded: Vec<Value> =
            events["items"].as_array()?.iter().filter(|e| e["reason"] == "Reloaded").cloned().collect();
        (reloaded.len() >= 4).then_some(reloaded)
    })
    .await;
    assert_eq!(reloaded.len(), 4, "{reloaded:?}");
    for e in &reloaded {
        assert!(e["note"].as_str().unwrap().contains("SECRETPROVIDERCLASS"), "{e}");
        assert_eq!(e["related"]["kind"], "SecretProviderClass", "{e}");
        assert_eq!(e["related"]["apiVersion"], "secrets-store.csi.x-k8s.io/v1", "{e}");
    }
}

#[tokio::test]
async fn a_rotation_seen_through_three_pods_rolls_once_and_the_new_pods_do_not_roll_again() {
    install_csi_crds();
    let ns = TestNs::new("csi-rotation").await;
    spc(&ns, "vault-app", json!({})).await;
    let driver = Driver::start(&ns, &[("vault-app", "1")]);
    let ctl = Controller::start(&ns, &[CSI]).await;
    deploy(&ns, "web", 3, json!({AUTO: "true"}), mounting("vault-app")).await;
    driver.await_mounted("vault-app", "1", 3).await;
    await_recorded(&ns, "web", "vault-app").await;
    let before = pod_template(&ns, "web").await;
    assert_eq!(replica_sets(&ns, "web").await, 1);
    // The driver reaches the three pods one by one, a second apart: far longer than the
    // debounce, so three rollouts would show.
    let old_pods = driver.statuses("vault-app").await;
    assert_eq!(old_pods.len(), 3);
    driver.served.lock().unwrap().insert("vault-app".into(), "2".into());
    for (i, name) in old_pods.iter().enumerate() {
        let patch = json!({"status": {"objects": objects("2")}});
        let _ = driver.api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await;
        if i == 0 {
            await_reload(&ns, "web", &before).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let after = pod_template(&ns, "web").await;
    // The new pods come up mounting version 2 and the old ones go: nothing more rolls.
    eventually(Duration::from_secs(30), "three new pods with their status objects", || async {
        let now = driver.statuses("vault-app").await;
        (now.len() == 3 && now.iter().all(|n| !old_pods.contains(n))).then_some(())
    })
    .await;
    driver.await_mounted("vault-app", "2", 3).await;
    assert_no_reload(&ns, "web", &after).await;
    assert_eq!(replica_sets(&ns, "web").await, 2, "one rollout");
    assert_eq!(reloads(&ctl), 1);
}

#[tokio::test]
async fn a_restart_rolls_nothing_and_rotations_while_stopped_or_half_seen_roll_once() {
    install_csi_crds();
    let ns = TestNs::new("csi-restart").await;
    spc(&ns, "vault-app", json!({})).await;
    let driver = Driver::start(&ns, &[("vault-app", "1")]);
    deploy(&ns, "web", 2, json!({AUTO: "true"}), mounting("vault-app")).await;
    driver.await_mounted("vault-app", "1", 2).await;
    let ctl = Controller::start(&ns, &[CSI]).await;
    await_recorded(&ns, "web", "vault-app").await;
    let t0 = pod_template(&ns, "web").await;
    ctl.stop().await;

    // A restart with nothing changed rolls nothing.
    let ctl = Controller::start(&ns, &[CSI]).await;
    assert_no_reload(&ns, "web", &t0).await;
    assert_eq!(reloads(&ctl), 0);
    ctl.stop().await;

    // A rotation made while stopped is applied once on return, and the new pods' status
    // objects do not roll it again.
    driver.rotate("vault-app", "2", Duration::from_millis(200)).await;
    let ctl = Controller::start(&ns, &[CSI]).await;
    let t1 = await_reload(&ns, "web", &t0).await;
    driver.await_mounted("vault-app", "2", 2).await;
    assert_no_reload(&ns, "web", &t1).await;
    assert_eq!(reloads(&ctl), 1);
    ctl.stop().await;

    // Stopped half-way through a rotation (one pod of two updated): rolled once on return;
    // the rest of the rotation and the new pods change nothing more.
    eventually(Duration::from_secs(20), "the old pods gone", || async {
        (driver.statuses("vault-app").await.len() == 2).then_some(())
    })
    .await;
    driver.served.lock().unwrap().insert("vault-app".into(), "3".into());
    driver.rotate_one("vault-app", 0, "3").await;
    let ctl = Controller::start(&ns, &[CSI]).await;
    let t2 = await_reload(&ns, "web", &t1).await;
    driver.rotate("vault-app", "3", Duration::ZERO).await;
    driver.await_mounted("vault-app", "3", 2).await;
    assert_no_reload(&ns, "web", &t2).await;
    assert_eq!(reloads(&ctl), 1);
    assert_eq!(replica_sets(&ns, "web").await, 3, "one rollout per rotation");
    ctl.stop().await;
}

#[tokio::test]
async fn the_env_vars_strategy_names_the_class() {
    install_csi_crds();
    let ns = TestNs::new("csi-env").await;
    spc(&ns, "vault-spc", json!({})).await;
    let driver = Driver::start(&ns, &[("vault-spc", "1")]);
    let _ctl = Controller::start(&ns, &[CSI, "--reload-strategy=env-vars"]).await;
    deploy(&ns, "web", 1, json!({SPC_AUTO: "true"}), mounting("vault-spc")).await;
    driver.await_mounted("vault-spc", "1", 1).await;
    await_recorded(&ns, "web", "vault-spc").await;
    let before = pod_template(&ns, "web").await;
    driver.rotate("vault-spc", "2", Duration::ZERO).await;
    let t = await_reload(&ns, "web", &before).await;
    assert!(t.contains("STAKATER_VAULT_SPC_SECRETPROVIDERCLASS"), "{t}");
}

#[tokio::test]
async fn explain_shows_the_mounted_versions() {
    install_csi_crds();
    let ns = TestNs::new("csi-explain").await;
    spc(&ns, "vault-app", json!({})).await;
    let driver = Driver::start(&ns, &[("vault-app", "41")]);
    deploy(&ns, "web", 1, json!({AUTO: "true"}), mounting("vault-app")).await;
    driver.await_mounted("vault-app", "41", 1).await;
    let out = Command::new(env!("CARGO_BIN_EXE_reloader"))
        .args(["explain", "deployment/web", "-n", &ns.name, CSI])
        .env("KUBECONFIG", &cluster().kubeconfig)
        .output()
        .expect("run reloader explain");
    assert!(out.status.success(), "explain failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("secretproviderclasses: auto"), "{text}");
    assert!(
        text.contains("secretproviderclass/vault-app: governs: auto; used by container \"app\"; current "),
        "{text}"
    );
    assert!(text.contains("mounted versions: secret/api-key=7, secret/db-password=41"), "{text}");
    // Without the integration, the class is nothing to it.
    let out = Command::new(env!("CARGO_BIN_EXE_reloader"))
        .args(["explain", "deployment/web", "-n", &ns.name])
        .env("KUBECONFIG", &cluster().kubeconfig)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains("secretproviderclass"), "{text}");
}

/// A status object written by hand, as the driver would for a pod: `name` holds `version`.
async fn status(ns: &TestNs, name: &str, class: &str, version: &str) {
    let api = spcps_api(ns);
    let obj: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "secrets-store.csi.x-k8s.io/v1", "kind": "SecretProviderClassPodStatus",
        "metadata": {"name": name},
        "status": {"podName": name, "secretProviderClassName": class, "mounted": true, "objects": objects(version)}
    }))
    .unwrap();
    match api.get_opt(name).await.expect("get status") {
        None => {
            api.create(&kube::api::PostParams::default(), &obj).await.expect("create status");
        }
        Some(_) => {
            let patch = json!({"status": {"objects": objects(version)}});
            api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.expect("update status");
        }
    }
}

/// Pod a's status rotates v1 → v2; 0.3 s later pod b's status is created still holding v1 (its
/// mount predates the rotation); then b rotates too. One rollout, for v2, and the record ends on
/// v2: a content seen before is no news again (it rolled for v2, then for the stale v1, and
/// recorded v1 while every pod held v2).
#[tokio::test]
async fn a_status_created_late_with_the_content_before_a_rotation_rolls_nothing_more() {
    install_csi_crds();
    let ns = TestNs::new("csi-late").await;
    spc(&ns, "vault-app", json!({})).await;
    deploy(&ns, "web", 1, json!({AUTO: "true"}), mounting("vault-app")).await;
    status(&ns, "a", "vault-app", "1").await;
    // No spacing between reloads, so a second rollout would show at once.
    let ctl = Controller::start(&ns, &[CSI, "--min-reload-interval=0s"]).await;
    let first = await_recorded(&ns, "web", "vault-app").await;
    let t0 = pod_template(&ns, "web").await;

    status(&ns, "a", "vault-app", "2").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    status(&ns, "b", "vault-app", "1").await;
    let t1 = await_reload(&ns, "web", &t0).await;
    status(&ns, "b", "vault-app", "2").await;
    holds(Duration::from_secs(5), "no second rollout", || async { pod_template(&ns, "web").await == t1 }).await;
    assert_eq!(reloads(&ctl), 1, "one rollout for the rotation");
    let last = record_of(&ns, "web").await.unwrap();
    assert_ne!(last, first, "the record moved to v2");
    let e = explain_of(&ns, "deployment/web");
    assert!(e.contains("decision: nothing: every governing source is as applied"), "{e}");
}

fn explain_of(ns: &TestNs, target: &str) -> String {
    explain_with(ns, target, &["--enable-csi-integration=true"])
}
