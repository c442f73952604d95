//! Every annotation mode (positive and negative), every reference kind and both strategies,
//! on Deployments, StatefulSets and DaemonSets: one row per workload, all changed at once.

mod common;

use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};

#[derive(Clone, Copy, Debug)]
enum Kind {
    Deployment,
    StatefulSet,
    DaemonSet,
}

impl Kind {
    fn resource(self) -> ApiResource {
        match self {
            Kind::Deployment => ApiResource::erase::<Deployment>(&()),
            Kind::StatefulSet => ApiResource::erase::<StatefulSet>(&()),
            Kind::DaemonSet => ApiResource::erase::<DaemonSet>(&()),
        }
    }
}

/// How the pod template uses the row's source.
#[derive(Clone, Copy, Debug)]
enum Use {
    None,
    EnvFrom,
    KeyRef,
    Volume,
    Projected,
    InitEnvFrom,
}

struct Row {
    name: &'static str,
    secret: bool,
    workload_annotations: Value,
    source_annotations: Value,
    uses: Use,
    reload: bool,
}

fn row(name: &'static str, secret: bool, wa: Value, sa: Value, uses: Use, reload: bool) -> Row {
    Row { name, secret, workload_annotations: wa, source_annotations: sa, uses, reload }
}

fn rows() -> Vec<Row> {
    let auto = json!({"reloader.stakater.com/auto": "true"});
    let none = json!({});
    vec![
        row("auto cm envFrom", false, auto.clone(), none.clone(), Use::EnvFrom, true),
        row("auto secret keyRef", true, auto.clone(), none.clone(), Use::KeyRef, true),
        row("auto cm volume", false, auto.clone(), none.clone(), Use::Volume, true),
        row("auto secret volume", true, auto.clone(), none.clone(), Use::Volume, true),
        row("auto cm projected", false, auto.clone(), none.clone(), Use::Projected, true),
        row("auto secret init container", true, auto.clone(), none.clone(), Use::InitEnvFrom, true),
        row("auto, source not used", false, auto.clone(), none.clone(), Use::None, false),
        row("auto false", false, json!({"reloader.stakater.com/auto": "false"}), none.clone(), Use::EnvFrom, false),
        row("no annotation", false, none.clone(), none.clone(), Use::EnvFrom, false),
        row(
            "typed cm auto, cm",
            false,
            json!({"configmap.reloader.stakater.com/auto": "true"}),
            none.clone(),
            Use::EnvFrom,
            true,
        ),
        row(
            "typed cm auto, secret",
            true,
            json!({"configmap.reloader.stakater.com/auto": "true"}),
            none.clone(),
            Use::EnvFrom,
            false,
        ),
        row(
            "typed secret auto, secret",
            true,
            json!({"secret.reloader.stakater.com/auto": "true"}),
            none.clone(),
            Use::Volume,
            true,
        ),
        row(
            "named cm, not used",
            false,
            json!({"configmap.reloader.stakater.com/reload": "SELF"}),
            none.clone(),
            Use::None,
            true,
        ),
        row(
            "named secret regex",
            true,
            json!({"secret.reloader.stakater.com/reload": "other, SELF-ish|SELF"}),
            none.clone(),
            Use::None,
            true,
        ),
        row(
            "named cm, other name",
            false,
            json!({"configmap.reloader.stakater.com/reload": "something-else"}),
            none.clone(),
            Use::EnvFrom,
            false,
        ),
        row(
            "named beats auto false",
            false,
            json!({"configmap.reloader.stakater.com/reload": "SELF", "reloader.stakater.com/auto": "false"}),
            none.clone(),
            Use::EnvFrom,
            true,
        ),
        row(
            "search + match",
            false,
            json!({"reloader.stakater.com/search": "true"}),
            json!({"reloader.stakater.com/match": "true"}),
            Use::EnvFrom,
            true,
        ),
        row(
            "search, no match",
            false,
            json!({"reloader.stakater.com/search": "true"}),
            none.clone(),
            Use::EnvFrom,
            false,
        ),
        row(
            "search + match, not used",
            true,
            json!({"reloader.stakater.com/search": "true"}),
            json!({"reloader.stakater.com/match": "true"}),
            Use::None,
            false,
        ),
        row(
            "auto, excluded",
            false,
            json!({"reloader.stakater.com/auto": "true", "configmaps.exclude.reloader.stakater.com/reload": "x, SELF"}),
            none.clone(),
            Use::EnvFrom,
            false,
        ),
        row(
            "auto, other kind excluded",
            true,
            json!({"reloader.stakater.com/auto": "true", "configmaps.exclude.reloader.stakater.com/reload": "SELF"}),
            none.clone(),
            Use::EnvFrom,
            true,
        ),
        row(
            "auto, source ignored",
            true,
            auto.clone(),
            json!({"reloader.stakater.com/ignore": "true"}),
            Use::EnvFrom,
            false,
        ),
        row(
            "named, source ignored",
            false,
            json!({"configmap.reloader.stakater.com/reload": "SELF"}),
            json!({"reloader.stakater.com/ignore": "true"}),
            Use::None,
            false,
        ),
    ]
}

fn pod_spec(source: &str, secret: bool, uses: Use) -> Value {
    let from = if secret { json!({"secretRef": {"name": source}}) } else { json!({"configMapRef": {"name": source}}) };
    let mut app = json!({"name": "app", "image": "example.com/app:1"});
    let mut spec = json!({"containers": []});
    match uses {
        Use::None => {}
        Use::EnvFrom => app["envFrom"] = json!([from]),
        Use::KeyRef => {
            let r = if secret {
                json!({"secretKeyRef": {"name": source, "key": "v"}})
            } else {
                json!({"configMapKeyRef": {"name": source, "key": "v"}})
            };
            app["env"] = json!([{"name": "V", "valueFrom": r}]);
        }
        Use::Volume => {
            app["volumeMounts"] = json!([{"name": "data", "mountPath": "/data"}]);
            spec["volumes"] = if secret {
                json!([{"name": "data", "secret": {"secretName": source}}])
            } else {
                json!([{"name": "data", "configMap": {"name": source}}])
            };
        }
        Use::Projected => {
            app["volumeMounts"] = json!([{"name": "p", "mountPath": "/p"}]);
            let s = if secret { json!({"secret": {"name": source}}) } else { json!({"configMap": {"name": source}}) };
            spec["volumes"] = json!([{"name": "p", "projected": {"sources": [s]}}]);
        }
        Use::InitEnvFrom => {
            spec["initContainers"] = json!([{"name": "init", "image": "example.com/init:1", "envFrom": [from]}]);
        }
    }
    spec["containers"] = json!([app]);
    spec
}

fn manifest(kind: Kind, name: &str, annotations: &Value, spec: Value) -> Value {
    let ar = kind.resource();
    let template = json!({"metadata": {"labels": {"app": name}}, "spec": spec});
    let mut body = json!({"selector": {"matchLabels": {"app": name}}, "template": template});
    match kind {
        Kind::Deployment => body["replicas"] = json!(1),
        Kind::StatefulSet => {
            body["replicas"] = json!(1);
            body["serviceName"] = json!(name);
        }
        Kind::DaemonSet => {}
    }
    json!({"apiVersion": ar.api_version, "kind": ar.kind, "metadata": {"name": name, "annotations": annotations}, "spec": body})
}

async fn template(api: &Api<DynamicObject>, name: &str) -> String {
    api.get(name).await.expect("get workload").data["spec"]["template"].to_string()
}

async fn run(kind: Kind, strategy: &str) {
    let ns = TestNs::new(&format!("modes-{}", format!("{kind:?}").to_lowercase())).await;
    let api: Api<DynamicObject> = Api::namespaced_with(ns.client.clone(), &ns.name, &kind.resource());
    let rows = rows();
    let pp = PatchParams::apply("reloader-tests").force();
    let source = |i: usize| format!("src-{i}");
    let set_source = |i: usize, v: &'static str| {
        let r = &rows[i];
        let mut obj = json!({"apiVersion": "v1", "metadata": {"name": source(i), "annotations": r.source_annotations}});
        if r.secret {
            obj["kind"] = json!("Secret");
            obj["stringData"] = json!({"v": v});
        } else {
            obj["kind"] = json!("ConfigMap");
            obj["data"] = json!({"v": v});
        }
        let ns = &ns;
        async move {
            let ar = if obj["kind"] == "Secret" {
                ApiResource::erase::<k8s_openapi::api::core::v1::Secret>(&())
            } else {
                ApiResource::erase::<k8s_openapi::api::core::v1::ConfigMap>(&())
            };
            let a: Api<DynamicObject> = Api::namespaced_with(ns.client.clone(), &ns.name, &ar);
            let name = obj["metadata"]["name"].as_str().unwrap().to_string();
            a.patch(&name, &PatchParams::apply("reloader-tests").force(), &Patch::Apply(&obj))
                .await
                .expect("apply source");
        }
    };
    for (i, r) in rows.iter().enumerate() {
        set_source(i, "1").await;
        let annotations = serde_json::to_string(&r.workload_annotations).unwrap().replace("SELF", &source(i));
        let annotations: Value = serde_json::from_str(&annotations).unwrap();
        let m = manifest(kind, &format!("w-{i}"), &annotations, pod_spec(&source(i), r.secret, r.uses));
        api.patch(&format!("w-{i}"), &pp, &Patch::Apply(&m)).await.unwrap_or_else(|e| panic!("{}: {e}", r.name));
    }
    let _ctl = Controller::start(&ns, &[&format!("--reload-strategy={strategy}")]).await;
    // Every governed workload is adopted (recorded) before the change.
    for (i, r) in rows.iter().enumerate() {
        if r.reload {
            eventually(Duration::from_secs(10), &format!("{}: record", r.name), || async {
                api.get(&format!("w-{i}")).await.ok()?.metadata.annotations?.get(RECORD).cloned()
            })
            .await;
        }
    }
    let mut before = Vec::new();
    for i in 0..rows.len() {
        before.push(template(&api, &format!("w-{i}")).await);
    }
    for i in 0..rows.len() {
        set_source(i, "2").await;
    }
    let changed_at = Instant::now();
    // Positive rows: reloaded within 2 s of the last change.
    for (i, r) in rows.iter().enumerate().filter(|(_, r)| r.reload) {
        let remaining = Duration::from_secs(2).saturating_sub(changed_at.elapsed()).max(Duration::from_millis(100));
        eventually(remaining, &format!("{kind:?}/{strategy}: {} reloads", r.name), || async {
            (template(&api, &format!("w-{i}")).await != before[i]).then_some(())
        })
        .await;
    }
    // Negative rows: untouched for 5 s after the change.
    let rest = Duration::from_secs(5).saturating_sub(changed_at.elapsed());
    holds(rest, &format!("{kind:?}/{strategy}: the rows that must not reload stay untouched"), || async {
        for (i, _) in rows.iter().enumerate().filter(|(_, r)| !r.reload) {
            if template(&api, &format!("w-{i}")).await != before[i] {
                return false;
            }
        }
        true
    })
    .await;
    for (i, r) in rows.iter().enumerate() {
        let now = template(&api, &format!("w-{i}")).await;
        assert_eq!(now != before[i], r.reload, "{kind:?}/{strategy}: {}", r.name);
        if r.reload && strategy == "env-vars" {
            let var = if r.secret { "_SECRET" } else { "_CONFIGMAP" };
            assert!(now.contains(&format!("STAKATER_SRC_{i}{var}")), "{}: {now}", r.name);
        }
        if r.reload && strategy == "annotations" {
            assert!(now.contains(LAST_RELOADED_FROM), "{}: {now}", r.name);
        }
    }
}

#[tokio::test]
async fn deployments_annotations() {
    run(Kind::Deployment, "annotations").await;
}

#[tokio::test]
async fn deployments_env_vars() {
    run(Kind::Deployment, "env-vars").await;
}

#[tokio::test]
async fn statefulsets_annotations() {
    run(Kind::StatefulSet, "annotations").await;
}

#[tokio::test]
async fn statefulsets_env_vars() {
    run(Kind::StatefulSet, "env-vars").await;
}

#[tokio::test]
async fn daemonsets_annotations() {
    run(Kind::DaemonSet, "annotations").await;
}

#[tokio::test]
async fn daemonsets_env_vars() {
    run(Kind::DaemonSet, "env-vars").await;
}
