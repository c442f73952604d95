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
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams};
use reloader::metrics::{EventLabels, Success};
use serde_json::{Value, json};

const AUTO: &str = "reloader.stakater.com/auto";
const SPC_AUTO: &str = "secretproviderclass.reloader.stakater.com/auto";
const SPC_RELOAD: &str = "secretproviderclass.reloader.stakater.com/reload";
const SPC_EXCLUDE: &str = "secretproviderclasses.exclude.reloader.stakater.com/reload";
const CSI: &str = "--enable-csi-integration=true";

/// Installs the two CRDs once per run and waits until the API server serves them.
pub fn install_csi_crds() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let crds = repo().join("tests/fixtures/csi-crds.yaml");
        let out = kubectl(&["apply", "-f", &crds.to_string_lossy()]);
        assert!(out.status.success(), "install CSI CRDs: {}", String::from_utf8_lossy(&out.stderr));
        for crd in ["secretproviderclasses", "secretproviderclasspodstatuses"] {
            let name = format!("crd/{crd}.secrets-store.csi.x-k8s.io");
            let out = kubectl(&["wait", "--for=condition=Established", "--timeout=30s", &name]);
            assert!(out.status.success(), "{name} established: {}", String::from_utf8_lossy(&out.stderr));
        }
        let start = std::time::Instant::now();
        while !kubectl(&["get", "secretproviderclasspodstatuses", "-A"]).status.success() {
            assert!(start.elapsed() < Duration::from_secs(30), "CSI CRDs served within 30 s");
            std::thread::sleep(Duration::from_millis(200));
        }
    });
}

fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("secrets-store.csi.x-k8s.io", "v1", kind), plural)
}

fn spcps_api(ns: &TestNs) -> Api<DynamicObject> {
    Api::namespaced_with(
        ns.client.clone(),
        &ns.name,
        &resource("SecretProviderClassPodStatus", "secretproviderclasspodstatuses"),
    )
}

/// Creates a SecretProviderClass with these annotations.
async fn spc(ns: &TestNs, name: &str, annotations: Value) {
    let api: Api<DynamicObject> =
        Api::namespaced_with(ns.client.clone(), &ns.name, &resource("SecretProviderClass", "secretproviderclasses"));
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "secrets-store.csi.x-k8s.io/v1", "kind": "SecretProviderClass",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"provider": "vault", "parameters": {"roleName": "app", "objects": "- objectName: db-password"}}
    }))
    .unwrap();
    api.create(&PostParams::default(), &obj).await.expect("create SecretProviderClass");
}

fn objects(version: &str) -> Value {
    json!([{"id": "secret/db-password", "version": version}, {"id": "secret/api-key", "version": "7"}])
}

/// A stand-in for the CSI driver in one namespace: every pod with a CSI volume gets one
/// SecretProviderClassPodStatus per class, written with what the provider serves at that
/// moment; [`Driver::rotate`] serves a new version and updates the existing pods one by one.
struct Driver {
    served: Arc<Mutex<HashMap<String, String>>>,
    stop: tokio::task::JoinHandle<()>,
    api: Api<DynamicObject>,
}

impl Driver {
    fn start(ns: &TestNs, served: &[(&str, &str)]) -> Driver {
        let served: Arc<Mutex<HashMap<String, String>>> =
            Arc::new(Mutex::new(served.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()));
        let (pods, api, s, nsname) = (ns.api::<Pod>(), spcps_api(ns), served.clone(), ns.name.clone());
        let stop = tokio::spawn(async move {
            loop {
                if let Ok(list) = pods.list(&ListParams::default()).await {
                    // Unmounted with its pod: the driver deletes the pod's status objects.
                    let live: Vec<String> = list.items.iter().filter_map(|p| p.metadata.name.clone()).collect();
                    for o in api.list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default() {
                        let pod = o.data["status"]["podName"].as_str().unwrap_or_default();
                        if !live.iter().any(|p| p == pod) {
                            let _ = api.delete(&o.metadata.name.unwrap(), &Default::default()).await;
                        }
                    }
                    for p in list.items {
                        if p.metadata.deletion_timestamp.is_some() {
                            continue;
                        }
                        let (name, uid) = (p.metadata.name.clone().unwrap(), p.metadata.uid.clone().unwrap());
                        let classes: Vec<String> = p
                            .spec
                            .iter()
                            .flat_map(|s| s.volumes.iter().flatten())
                            .filter_map(|v| {
                                v.csi.as_ref()?.volume_attributes.as_ref()?.get("secretProviderClass").cloned()
                            })
                            .collect();
                        for class in classes {
                            let obj_name = format!("{name}-{nsname}-{class}");
                            if api.get_opt(&obj_name).await.ok().flatten().is_some() {
                                continue;
                            }
                            let Some(version) = s.lock().unwrap().get(&class).cloned() else { continue };
                            let obj: DynamicObject = serde_json::from_value(json!({
                                "apiVersion": "secrets-store.csi.x-k8s.io/v1", "kind": "SecretProviderClassPodStatus",
                                "metadata": {"name": obj_name,
                                    "labels": {"secrets-store.csi.k8s.io/node-name": "kwok-node-0"},
                                    "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": name, "uid": uid}]},
                                "status": {"podName": name, "secretProviderClassName": class, "mounted": true,
                                    "targetPath": format!("/var/lib/kubelet/pods/{uid}/volumes/kubernetes.io~csi/secrets/mount"),
                                    "objects": objects(&version)}
                            }))
                            .unwrap();
                            let _ = api.create(&PostParams::default(), &obj).await;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Driver { served, stop, api: spcps_api(ns) }
    }

    /// The status objects of one class, oldest first.
    async fn statuses(&self, class: &str) -> Vec<String> {
        let mut list = self.api.list(&ListParams::default()).await.expect("list statuses").items;
        list.sort_by_key(|o| o.metadata.creation_timestamp.clone().map(|t| t.0));
        list.into_iter()
            .filter(|o| o.data["status"]["secretProviderClassName"] == class)
            .map(|o| o.metadata.name.unwrap())
            .collect()
    }

    /// Waits until `n` status objects of `class` report `version`.
    async fn await_mounted(&self, class: &str, version: &str, n: usize) {
        eventually(Duration::from_secs(20), &format!("{n} pods mounting {class} at {version}"), || async {
            let list = self.api.list(&ListParams::default()).await.ok()?;
            let k = list
                .items
                .iter()
                .filter(|o| {
                    o.data["status"]["secretProviderClassName"] == class
                        && o.data["status"]["objects"] == objects(version)
                        && o.metadata.deletion_timestamp.is_none()
                })
                .count();
            (k >= n).then_some(())
        })
        .await;
    }

    /// The provider serves `version` of `class` from now on; the pods that have it mounted are
    /// updated one by one, `gap` apart, as the driver's rotation reconciler does.
    async fn rotate(&self, class: &str, version: &str, gap: Duration) {
        self.served.lock().unwrap().insert(class.to_string(), version.to_string());
        for (i, name) in self.statuses(class).await.into_iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(gap).await;
            }
            let patch = json!({"status": {"objects": objects(version)}});
            // A pod may be gone meanwhile (a rollout): the driver skips it too.
            let _ = self.api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await;
        }
    }

    /// Updates just the `i`-th (oldest first) status object of `class`, serving nothing new.
    async fn rotate_one(&self, class: &str, i: usize, version: &str) {
        let name = self.statuses(class).await[i].clone();
        let patch = json!({"status": {"objects": objects(version)}});
        self.api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await.expect("update status");
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.stop.abort();
    }
}

/// A pod spec with one container mounting the class through a CSI volume.
fn mounting(class: &str) -> Value {
    json!({"containers": [{"name": "app", "image": "example.com/app:1",
            "volumeMounts": [{"name": "secrets", "mountPath": "/mnt/secrets", "readOnly": true}]}],
        "volumes": [{"name": "secrets", "csi": {"driver": "secrets-store.csi.k8s.io", "readOnly": true,
            "volumeAttributes": {"secretProviderClass": class}}}]})
}

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
