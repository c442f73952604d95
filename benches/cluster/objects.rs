//! The objects of the scenarios, and their layout per controller.

use super::*;

/// Deterministic filler bytes (xorshift), so runs are comparable and nothing random is logged.
pub(crate) fn filler(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b'a' + (x % 26) as u8
        })
        .collect()
}

/// Secret `i` of the scale set: most 1–4 KiB, 1 % 100 KiB, 0.1 % 1 MiB, 10 % Helm releases.
pub(crate) fn scale_secret(i: usize) -> Secret {
    let size = match i {
        i if i % 1000 == 999 => 1 << 20,
        i if i % 100 == 50 => 100 << 10,
        i => 1024 + (i * 37) % 3072,
    };
    let mut s: Secret = serde_json::from_value(json!({"metadata": {"name": format!("s-{i}")}})).unwrap();
    if i % 10 == 3 {
        s.type_ = Some("helm.sh/release.v1".into());
    }
    s.data = Some([("payload".to_string(), ByteString(filler(i as u64, size)))].into());
    s
}

pub(crate) fn configmap(name: &str, value: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"v": value}})).unwrap()
}

/// An auto-annotated Deployment with no replicas (rollouts still create ReplicaSets) using the
/// given ConfigMaps through `envFrom` and, optionally, a Secret volume.
pub(crate) fn deployment(name: &str, configmaps: &[String], secret: Option<&str>) -> Deployment {
    let env_from: Vec<Value> = configmaps.iter().map(|c| json!({"configMapRef": {"name": c}})).collect();
    let mut spec = json!({"containers": [{"name": "app", "image": "example.com/app:1", "envFrom": env_from}]});
    if let Some(s) = secret {
        spec["volumes"] = json!([{"name": "s", "secret": {"secretName": s}}]);
        spec["containers"][0]["volumeMounts"] = json!([{"name": "s", "mountPath": "/s"}]);
    }
    serde_json::from_value(json!({
        "metadata": {"name": name, "annotations": {"reloader.stakater.com/auto": "true"}},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": spec}}
    }))
    .unwrap()
}

pub(crate) async fn create_all<K>(api: &Api<K>, objects: Vec<K>) -> anyhow::Result<()>
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    stream::iter(objects)
        .map(|o| async move { api.create(&PostParams::default(), &o).await.map(|_| ()) })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await
        .context("create objects")?;
    Ok(())
}

pub(crate) async fn namespace(client: &Client, name: &str) -> anyhow::Result<()> {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .with_context(|| name.to_string())?;
    Ok(())
}

pub(crate) async fn set_data(client: &Client, ns: &str, name: &str, value: &str) -> anyhow::Result<()> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    api.patch(name, &PatchParams::default(), &Patch::Merge(json!({"data": {"v": value}}))).await?;
    Ok(())
}

/// The size of large ConfigMap `i`: 100 KiB to 1000 KiB (the API's limit is 1 MiB per object).
pub(crate) fn large_size(i: usize) -> usize {
    (100 + (i * 389) % 901) << 10
}

pub(crate) fn large_value(seed: u64, i: usize) -> String {
    String::from_utf8(filler(seed, large_size(i))).expect("filler is ASCII")
}

/// The scenario objects of one controller, created before it starts so every controller
/// starts from the same state.
pub(crate) struct Layout {
    pub(crate) lat: Vec<String>,
    pub(crate) fan: String,
    pub(crate) burst: String,
    pub(crate) noop: String,
    pub(crate) churn: String,
    pub(crate) large: String,
    pub(crate) pressure: String,
    pub(crate) mixed: String,
}

impl Layout {
    pub(crate) fn new(tag: &str) -> Layout {
        Layout {
            lat: vec![format!("{tag}-lat-a"), format!("{tag}-lat-b")],
            fan: format!("{tag}-fan"),
            burst: format!("{tag}-burst"),
            noop: format!("{tag}-noop"),
            churn: format!("{tag}-churn"),
            large: format!("{tag}-large"),
            pressure: format!("{tag}-pressure"),
            mixed: format!("{tag}-mixed"),
        }
    }
    pub(crate) fn namespaces(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.lat.iter().map(String::as_str).collect();
        v.extend([self.fan.as_str(), self.burst.as_str(), self.noop.as_str(), self.churn.as_str()]);
        v.extend([self.large.as_str(), self.pressure.as_str(), self.mixed.as_str()]);
        v
    }

    /// Only scenario 3's namespace and objects (`--only fanout`).
    pub(crate) async fn create_fan(&self, client: &Client, sz: &Sizes) -> anyhow::Result<()> {
        namespace(client, &self.fan).await?;
        self.fan_objects(client, sz).await
    }

    async fn fan_objects(&self, client: &Client, sz: &Sizes) -> anyhow::Result<()> {
        create_all(&Api::namespaced(client.clone(), &self.fan), vec![configmap("shared", "0")]).await?;
        let ds = (0..sz.fanout).map(|i| deployment(&format!("d-{i}"), &["shared".into()], None)).collect();
        create_all(&Api::namespaced(client.clone(), &self.fan), ds).await
    }

    pub(crate) async fn create(&self, client: &Client, sz: &Sizes) -> anyhow::Result<()> {
        for ns in self.namespaces() {
            namespace(client, ns).await?;
        }
        for ns in self.lat.iter().chain([&self.noop, &self.pressure]) {
            let n = match ns {
                ns if *ns == self.noop => sz.noop_edits.min(50),
                ns if *ns == self.pressure => sz.pressure_sources,
                _ => sz.latency_updates,
            };
            let cms = (0..n).map(|i| configmap(&format!("c-{i}"), "0")).collect();
            create_all(&Api::namespaced(client.clone(), ns), cms).await?;
            let ds = (0..n).map(|i| deployment(&format!("d-{i}"), &[format!("c-{i}")], None)).collect();
            create_all(&Api::namespaced(client.clone(), ns), ds).await?;
        }
        self.fan_objects(client, sz).await?;
        let mut cms = Vec::new();
        let mut ds = Vec::new();
        for b in 0..sz.bursts {
            let names: Vec<String> = (0..5).map(|k| format!("b{b}-{k}")).collect();
            cms.extend(names.iter().map(|n| configmap(n, "0")));
            ds.push(deployment(&format!("d-{b}"), &names, None));
        }
        create_all(&Api::namespaced(client.clone(), &self.burst), cms).await?;
        create_all(&Api::namespaced(client.clone(), &self.burst), ds).await?;
        let cms = (0..CHURN_SOURCES).map(|i| configmap(&format!("c-{i}"), "0")).collect();
        create_all(&Api::namespaced(client.clone(), &self.churn), cms).await?;
        for (kind, name, _) in MIXED {
            let o = json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": name}, "data": {"v": "MA=="}});
            create_json(client, &self.mixed, o).await?;
        }
        for w in mixed_workloads() {
            create_json(client, &self.mixed, w).await?;
        }
        Ok(())
    }
}

/// Scenario 10's sources: (kind, name, the workload that uses it, as a bench watch key suffix).
pub(crate) const MIXED: [(&str, &str, &str); 7] = [
    ("ConfigMap", "m-volume", "statefulset/sts-volume"),
    ("ConfigMap", "m-projected", "daemonset/ds-projected"),
    ("Secret", "s-projected", "daemonset/ds-projected"),
    ("ConfigMap", "m-init", "d-init"),
    ("Secret", "s-valuefrom", "d-valuefrom"),
    ("Secret", "s-envfrom", "statefulset/sts-envfrom"),
    ("ConfigMap", "m-init-envfrom", "daemonset/ds-init-envfrom"),
];

/// Scenario 10's workloads, each using its sources in a different way.
fn mixed_workloads() -> Vec<Value> {
    let container = |name: &str, extra: Value| {
        let mut c = json!({"name": name, "image": "example.com/app:1"});
        c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        c
    };
    let key_ref = |kind: &str, name: &str| json!({kind: {"name": name, "key": "v"}});
    let workload = |kind: &str, name: &str, spec: Value| {
        let mut w = json!({
            "apiVersion": "apps/v1", "kind": kind,
            "metadata": {"name": name, "annotations": {"reloader.stakater.com/auto": "true"}},
            "spec": {"selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": spec}}
        });
        match kind {
            "Deployment" => w["spec"]["replicas"] = json!(0),
            "StatefulSet" => {
                w["spec"]["replicas"] = json!(0);
                w["spec"]["serviceName"] = json!(name);
            }
            _ => {}
        }
        w
    };
    vec![
        workload(
            "StatefulSet",
            "sts-volume",
            json!({"containers": [container("app", json!({"volumeMounts": [{"name": "c", "mountPath": "/c"}]}))],
                   "volumes": [{"name": "c", "configMap": {"name": "m-volume"}}]}),
        ),
        workload(
            "DaemonSet",
            "ds-projected",
            json!({"containers": [container("app", json!({"volumeMounts": [{"name": "p", "mountPath": "/p"}]}))],
                   "volumes": [{"name": "p", "projected": {"sources": [
                       {"configMap": {"name": "m-projected"}}, {"secret": {"name": "s-projected"}}]}}]}),
        ),
        workload(
            "Deployment",
            "d-init",
            json!({"initContainers": [container("init", json!({"env": [{"name": "V", "valueFrom": key_ref("configMapKeyRef", "m-init")}]}))],
                   "containers": [container("app", json!({}))]}),
        ),
        workload(
            "Deployment",
            "d-valuefrom",
            json!({"containers": [container("app", json!({"env": [{"name": "V", "valueFrom": key_ref("secretKeyRef", "s-valuefrom")}]}))]}),
        ),
        workload(
            "StatefulSet",
            "sts-envfrom",
            json!({"containers": [container("app", json!({"envFrom": [{"secretRef": {"name": "s-envfrom"}}]}))]}),
        ),
        workload(
            "DaemonSet",
            "ds-init-envfrom",
            json!({"initContainers": [container("init", json!({"envFrom": [{"configMapRef": {"name": "m-init-envfrom"}}]}))],
                   "containers": [container("app", json!({}))]}),
        ),
    ]
}

/// Creates any namespaced object from its JSON (`apiVersion` and `kind` set).
pub(crate) async fn create_json(client: &Client, ns: &str, o: Value) -> anyhow::Result<()> {
    let what =
        format!("{} {}/{}", o["kind"].as_str().unwrap_or("?"), ns, o["metadata"]["name"].as_str().unwrap_or("?"));
    let (group, version) = match o["apiVersion"].as_str().unwrap_or("v1").split_once('/') {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (String::new(), o["apiVersion"].as_str().unwrap_or("v1").to_string()),
    };
    let kind = o["kind"].as_str().unwrap_or_default().to_string();
    let gvk = kube::api::GroupVersionKind::gvk(&group, &version, &kind);
    let ar = kube::api::ApiResource::from_gvk(&gvk);
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    let obj: kube::api::DynamicObject = serde_json::from_value(o)?;
    api.create(&PostParams::default(), &obj).await.with_context(|| what)?;
    Ok(())
}

impl Layout {
    /// Changes one of scenario 10's sources to new content.
    pub(crate) async fn change_mixed(
        &self,
        client: &Client,
        kind: &str,
        name: &str,
        value: &str,
    ) -> anyhow::Result<()> {
        if kind == "Secret" {
            // stringData: the API server encodes it into data.
            let patch = Patch::Merge(json!({"stringData": {"v": value}}));
            Api::<Secret>::namespaced(client.clone(), &self.mixed).patch(name, &PatchParams::default(), &patch).await?;
        } else {
            let patch = Patch::Merge(json!({"data": {"v": value}}));
            Api::<ConfigMap>::namespaced(client.clone(), &self.mixed)
                .patch(name, &PatchParams::default(), &patch)
                .await?;
        }
        Ok(())
    }
}
