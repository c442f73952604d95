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

/// The scenario objects of one controller, created before it starts so every controller
/// starts from the same state.
pub(crate) struct Layout {
    pub(crate) lat: Vec<String>,
    pub(crate) fan: String,
    pub(crate) burst: String,
    pub(crate) noop: String,
    pub(crate) churn: String,
}

impl Layout {
    pub(crate) fn new(tag: &str) -> Layout {
        Layout {
            lat: vec![format!("{tag}-lat-a"), format!("{tag}-lat-b")],
            fan: format!("{tag}-fan"),
            burst: format!("{tag}-burst"),
            noop: format!("{tag}-noop"),
            churn: format!("{tag}-churn"),
        }
    }
    pub(crate) fn namespaces(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.lat.iter().map(String::as_str).collect();
        v.extend([self.fan.as_str(), self.burst.as_str(), self.noop.as_str(), self.churn.as_str()]);
        v
    }

    pub(crate) async fn create(&self, client: &Client, sz: &Sizes) -> anyhow::Result<()> {
        for ns in self.namespaces() {
            namespace(client, ns).await?;
        }
        for ns in self.lat.iter().chain([&self.noop]) {
            let n = if *ns == self.noop { sz.noop_edits.min(50) } else { sz.latency_updates };
            let cms = (0..n).map(|i| configmap(&format!("c-{i}"), "0")).collect();
            create_all(&Api::namespaced(client.clone(), ns), cms).await?;
            let ds = (0..n).map(|i| deployment(&format!("d-{i}"), &[format!("c-{i}")], None)).collect();
            create_all(&Api::namespaced(client.clone(), ns), ds).await?;
        }
        create_all(&Api::namespaced(client.clone(), &self.fan), vec![configmap("shared", "0")]).await?;
        let ds = (0..sz.fanout).map(|i| deployment(&format!("d-{i}"), &["shared".into()], None)).collect();
        create_all(&Api::namespaced(client.clone(), &self.fan), ds).await?;
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
        Ok(())
    }
}
