//! `reloader explain`: golden-output tests for an auto, a named-regex, a search/match and an
//! excluded case, against the local control plane. `UPDATE_GOLDEN=1` rewrites the files.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use serde_json::json;

fn explain(ns: &TestNs, target: &str, extra: &[&str]) -> String {
    explain_with(ns, target, extra).replace(&ns.name, "<ns>")
}

fn golden(name: &str, got: &str) {
    let path = repo().join("tests/golden").join(format!("explain-{name}.txt"));
    if std::env::var("UPDATE_GOLDEN").is_ok() {
        std::fs::write(&path, got).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(got, want, "explain output differs from {}", path.display());
}

#[tokio::test]
async fn auto_with_a_pending_change() {
    let ns = TestNs::new("explain-auto").await;
    ns.set_configmap("cfg", json!({"v": "1"})).await;
    ns.set_secret("creds", json!({"p": "1"})).await;
    let spec = json!({"containers": [{"name": "app", "image": "example.com/app:1",
        "envFrom": [{"configMapRef": {"name": "cfg"}}], "volumeMounts": [{"name": "c", "mountPath": "/c"}]}],
        "volumes": [{"name": "c", "secret": {"secretName": "creds"}}]});
    ns.apply_json::<Deployment>(deployment("web", json!({"reloader.stakater.com/auto": "true"}), spec)).await;
    // Recorded by a controller that is then stopped; the change that follows is pending.
    let ctl = Controller::start(&ns, &[]).await;
    await_record(&ns, "web").await;
    ctl.stop().await;
    ns.set_configmap("cfg", json!({"v": "2"})).await;
    golden("auto", &explain(&ns, "deployment/web", &[]));

    let v: serde_json::Value = serde_json::from_str(&explain(&ns, "deploy/web", &["-o", "json"])).unwrap();
    assert_eq!(v["decision"]["action"], "reload");
    assert_eq!(v["sources"][0]["source"], "configmap/cfg");
}

#[tokio::test]
async fn named_regex_first_sight() {
    let ns = TestNs::new("explain-named").await;
    for n in ["app-one", "app-two", "unrelated"] {
        ns.set_configmap(n, json!({"v": n})).await;
    }
    let ann = json!({"configmap.reloader.stakater.com/reload": "app-.*, (broken"});
    ns.apply_json::<Deployment>(deployment("web", ann, env_from_configmaps(&[]))).await;
    golden("named", &explain(&ns, "deployment/web", &[]));
}

#[tokio::test]
async fn search_and_match() {
    let ns = TestNs::new("explain-search").await;
    ns.apply_json::<ConfigMap>(json!({"apiVersion":"v1","kind":"ConfigMap",
        "metadata":{"name":"marked","annotations":{"reloader.stakater.com/match":"true"}},"data":{"v":"1"}}))
        .await;
    ns.set_configmap("plain", json!({"v": "1"})).await;
    ns.apply_json::<Deployment>(deployment(
        "web",
        json!({"reloader.stakater.com/search": "true"}),
        env_from_configmaps(&["marked", "plain"]),
    ))
    .await;
    let ctl = Controller::start(&ns, &[]).await;
    await_record(&ns, "web").await;
    ctl.stop().await;
    golden("search", &explain(&ns, "deployment/web", &[]));
}

#[tokio::test]
async fn excluded_and_ignored() {
    let ns = TestNs::new("explain-exclude").await;
    ns.set_configmap("kept", json!({"v": "1"})).await;
    ns.set_configmap("excluded", json!({"v": "1"})).await;
    ns.apply_json::<ConfigMap>(json!({"apiVersion":"v1","kind":"ConfigMap",
        "metadata":{"name":"ignored","annotations":{"reloader.stakater.com/ignore":"true"}},"data":{"v":"1"}}))
        .await;
    let ann =
        json!({"reloader.stakater.com/auto": "true", "configmaps.exclude.reloader.stakater.com/reload": "excluded"});
    ns.apply_json::<Deployment>(deployment("web", ann, env_from_configmaps(&["kept", "excluded", "ignored"]))).await;
    let ctl = Controller::start(&ns, &[]).await;
    await_record(&ns, "web").await;
    ctl.stop().await;
    // Applied: explain reads the API, which serves the new content from now on.
    ns.set_configmap("excluded", json!({"v": "2"})).await;
    golden("excluded", &explain(&ns, "deployment/web", &[]));
}

#[tokio::test]
async fn a_missing_workload_is_a_clear_error() {
    let ns = TestNs::new("explain-missing").await;
    let out = Command::new(env!("CARGO_BIN_EXE_reloader"))
        .args(["explain", "deployment/nope", "-n", &ns.name])
        .env("KUBECONFIG", &cluster().kubeconfig)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("Deployment {}/nope not found", ns.name)), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_reloader"))
        .args(["explain", "pod/x"])
        .env("KUBECONFIG", &cluster().kubeconfig)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("KIND is one of"));
}

/// While the storm brake holds a workload, `explain` says so instead of "reload".
#[tokio::test]
async fn a_workload_held_by_the_storm_brake_is_explained_as_held() {
    let ns = TestNs::new("explain-held").await;
    ns.set_configmap("cfg", json!({"v": "0"})).await;
    ns.apply_json::<Deployment>(deployment(
        "web",
        json!({"reloader.stakater.com/auto": "true"}),
        env_from_configmaps(&["cfg"]),
    ))
    .await;
    let _ctl = Controller::start(
        &ns,
        &["--debounce=0", "--min-reload-interval=0", "--flap-limit=2", "--flap-window=10m", "--flap-settle=10m"],
    )
    .await;
    await_record(&ns, "web").await;
    // Flip until the brake holds it (a ReloadHeld Event); the last change stays pending.
    let events = ns.api::<k8s_openapi::api::events::v1::Event>();
    let mut i = 0;
    eventually(Duration::from_secs(30), "a ReloadHeld Event", || {
        i += 1;
        let (ns, events) = (&ns, events.clone());
        async move {
            ns.set_configmap("cfg", json!({"v": i.to_string()})).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            let list = events.list(&Default::default()).await.ok()?;
            list.items.iter().any(|e| e.reason.as_deref() == Some("ReloadHeld")).then_some(())
        }
    })
    .await;
    // Held until the sources go quiet: they keep changing while it is explained.
    let flipper = {
        let (client, name) = (ns.client.clone(), ns.name.clone());
        tokio::spawn(async move {
            let api = kube::Api::<ConfigMap>::namespaced(client, &name);
            for j in 0.. {
                let p = json!({"data": {"v": format!("flip-{j}")}});
                let _ = api.patch("cfg", &Default::default(), &kube::api::Patch::Merge(&p)).await;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
    };
    let text = explain(&ns, "deployment/web", &[]);
    let v: serde_json::Value = serde_json::from_str(&explain(&ns, "deploy/web", &["-o", "json"])).unwrap();
    flipper.abort();
    assert!(text.contains("storm brake: held since"), "{text}");
    assert!(text.contains("decision: held: would roll it"), "{text}");
    assert_eq!(v["decision"]["action"], "held");
}

/// A reload the storm brake spaces (a third within --flap-window) is told as a Normal
/// `ReloadDeferred` Event saying until when, and `explain` shows it as deferred.
#[tokio::test]
async fn a_reload_spaced_by_the_storm_brake_is_explained_as_deferred() {
    let ns = TestNs::new("explain-deferred").await;
    auto_workload(&ns).await;
    let _ctl = Controller::start(&ns, &["--min-reload-interval=5m", "--flap-limit=0"]).await;
    await_record(&ns, "web").await;
    let mut g = pod_template(&ns, "web").await;
    // Two reloads go at once; changes 4 s apart make the sources' rhythm 4 s, so the third
    // waits for the spacing (5 min) or 8 s of quiet.
    for v in ["a", "b"] {
        ns.set_configmap("cfg", json!({ "v": v })).await;
        g = await_reload(&ns, "web", &g).await;
        tokio::time::sleep(Duration::from_secs(4)).await;
    }
    ns.set_configmap("cfg", json!({"v": "c"})).await;
    let events = ns.api::<k8s_openapi::api::events::v1::Event>();
    let deferred = eventually(Duration::from_secs(5), "a ReloadDeferred Event", || async {
        let list = events.list(&Default::default()).await.ok()?;
        list.items.into_iter().find(|e| e.reason.as_deref() == Some("ReloadDeferred"))
    })
    .await;
    assert_eq!(deferred.type_.as_deref(), Some("Normal"));
    assert!(deferred.note.as_deref().unwrap_or_default().contains("waits until"), "{deferred:?}");
    let text = explain(&ns, "deployment/web", &[]);
    assert!(text.contains("storm brake: deferred since"), "{text}");
    assert!(text.contains("decision: deferred: would roll it") && text.contains("the storm brake defers it"), "{text}");
    // Then it goes, once the sources are quiet.
    eventually(Duration::from_secs(15), "the deferred reload", || async {
        (pod_template(&ns, "web").await != g).then_some(())
    })
    .await;
}
