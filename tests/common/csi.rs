//! Secrets Store CSI for the tests: the driver's two CRDs (`tests/fixtures/csi-crds.yaml`) and a
//! stand-in for the driver, which writes SecretProviderClassPodStatus objects as it does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use super::{TestNs, eventually, kubectl, repo};

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

pub fn spcps_api(ns: &TestNs) -> Api<DynamicObject> {
    Api::namespaced_with(
        ns.client.clone(),
        &ns.name,
        &resource("SecretProviderClassPodStatus", "secretproviderclasspodstatuses"),
    )
}

/// Creates a SecretProviderClass with these annotations.
pub async fn spc(ns: &TestNs, name: &str, annotations: Value) {
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

pub fn objects(version: &str) -> Value {
    json!([{"id": "secret/db-password", "version": version}, {"id": "secret/api-key", "version": "7"}])
}

/// A stand-in for the CSI driver in one namespace: every pod with a CSI volume gets one
/// SecretProviderClassPodStatus per class, written with what the provider serves at that
/// moment; [`Driver::rotate`] serves a new version and updates the existing pods one by one.
pub struct Driver {
    pub served: Arc<Mutex<HashMap<String, String>>>,
    stop: tokio::task::JoinHandle<()>,
    pub api: Api<DynamicObject>,
}

impl Driver {
    pub fn start(ns: &TestNs, served: &[(&str, &str)]) -> Driver {
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
    pub async fn statuses(&self, class: &str) -> Vec<String> {
        let mut list = self.api.list(&ListParams::default()).await.expect("list statuses").items;
        list.sort_by_key(|o| o.metadata.creation_timestamp.clone().map(|t| t.0));
        list.into_iter()
            .filter(|o| o.data["status"]["secretProviderClassName"] == class)
            .map(|o| o.metadata.name.unwrap())
            .collect()
    }

    /// Waits until `n` status objects of `class` report `version`.
    pub async fn await_mounted(&self, class: &str, version: &str, n: usize) {
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
    pub async fn rotate(&self, class: &str, version: &str, gap: Duration) {
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
    pub async fn rotate_one(&self, class: &str, i: usize, version: &str) {
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
pub fn mounting(class: &str) -> Value {
    json!({"containers": [{"name": "app", "image": "example.com/app:1",
            "volumeMounts": [{"name": "secrets", "mountPath": "/mnt/secrets", "readOnly": true}]}],
        "volumes": [{"name": "secrets", "csi": {"driver": "secrets-store.csi.k8s.io", "readOnly": true,
            "volumeAttributes": {"secretProviderClass": class}}}]})
}
