//! The reload engine against the local control plane: annotation modes, reference kinds,
//! strategies, and the level-triggered guarantees (restart, catch-up, adoption, re-creation,
//! rollback, create/delete flags, coalescing).

mod common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

fn app(extra: Value) -> Value {
    let mut c = json!({"name": "app", "image": "example.com/app:1"});
    c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    c
}

/// Sets up a Deployment with `annotations` and `pod_spec`, starts the controller, and returns
/// it with the Deployment's pod template once adopted.
async fn setup(ns: &TestNs, annotations: Value, pod_spec: Value, args: &[&str]) -> (Controller, String) {
    ns.apply_json::<Deployment>(deployment("web", annotations, pod_spec)).await;
    let ctl = Controller::start(ns, args).await;
    let t = pod_template(ns, "web").await;
    (ctl, t)
}

async fn label_configmap(ns: &TestNs, name: &str) {
    let p = json!({"metadata": {"labels": {"touched": "yes"}, "annotations": {"note": "x"}}});
    ns.api::<ConfigMap>().patch(name, &PatchParams::default(), &Patch::Merge(&p)).await.expect("label");
}

// ---------------------------------------------------------------- annotation modes

#[tokio::test]
async fn auto_reloads_on_a_referenced_configmap_change_and_not_on_label_edits() {
    let ns = TestNs::new("auto").await;
    ns.set_configmap("cfg", json!({"a": "1"})).await;
    let (_ctl, g0) =
        setup(&ns, json!({"reloader.stakater.com/auto": "true"}), env_from_configmaps(&["cfg"]), &[]).await;
    await_record(&ns, "web").await;
    assert_eq!(pod_template(&ns, "web").await, g0, "adoption does not roll");

    label_configmap(&ns, "cfg").await;
    assert_no_reload(&ns, "web", &g0).await;

    ns.set_configmap("cfg", json!({"a": "2"})).await;
    let g1 = await_reload(&ns, "web", &g0).await;
    let lrf: Value = serde_json::from_str(&template_annotation(&ns, "web", LAST_RELOADED_FROM).await.unwrap()).unwrap();
    assert_eq!(lrf["type"], "CONFIGMAP");
    assert_eq!(lrf["name"], "cfg");
    assert_eq!(lrf["namespace"], ns.name.as_str());
    assert_eq!(lrf["containerRefs"], json!(["app"]));
    assert_eq!(lrf["hash"].as_str().unwrap().len(), 64);
    let keys: Vec<&String> = lrf.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["containerRefs", "hash", "name", "namespace", "observedAt", "type"], "all fields present");
    assert!(
        template_annotation(&ns, "web", LAST_RELOADED_FROM).await.unwrap().starts_with("{\"type\":"),
        "Reloader's field order"
    );
    assert_no_reload(&ns, "web", &g1).await;
}

#[tokio::test]
async fn auto_false_and_unreferenced_sources_do_not_reload() {
    let ns = TestNs::new("auto-neg").await;
    ns.set_configmap("used", json!({"a": "1"})).await;
    ns.set_configmap("unused", json!({"a": "1"})).await;
    let (_ctl, g0) =
        setup(&ns, json!({"reloader.stakater.com/auto": "false"}), env_from_configmaps(&["used"]), &[]).await;
    ns.set_configmap("used", json!({"a": "2"})).await;
    assert_no_reload(&ns, "web", &g0).await;

    let p = json!({"metadata": {"annotations": {"reloader.stakater.com/auto": "true"}}});
    ns.api::<Deployment>().patch("web", &PatchParams::default(), &Patch::Merge(&p)).await.unwrap();
    await_record(&ns, "web").await;
    ns.set_configmap("unused", json!({"a": "2"})).await;
    assert_no_reload(&ns, "web", &g0).await;
}

#[tokio::test]
async fn typed_auto_only_reloads_for_its_kind() {
    let ns = TestNs::new("typed").await;
    ns.set_configmap("cfg", json!({"a": "1"})).await;
    ns.set_secret("sec", json!({"p": "1"})).await;
    let spec = json!({"containers": [app(json!({"envFrom": [{"configMapRef": {"name": "cfg"}}, {"secretRef": {"name": "sec"}}]}))]});
    let (_ctl, g0) = setup(&ns, json!({"secret.reloader.stakater.com/auto": "true"}), spec, &[]).await;
    await_record(&ns, "web").await;
    ns.set_configmap("cfg", json!({"a": "2"})).await;
    assert_no_reload(&ns, "web", &g0).await;
    ns.set_secret("sec", json!({"p": "2"})).await;
    await_reload(&ns, "web", &g0).await;
    let lrf = template_annotation(&ns, "web", LAST_RELOADED_FROM).await.unwrap();
    assert!(lrf.contains("\"type\":\"SECRET\"") && lrf.contains("\"name\":\"sec\""), "{lrf}");
}

#[tokio::test]
async fn named_reload_matches_regex_lists_without_a_reference() {
    let ns = TestNs::new("named").await;
    for n in ["app-config", "feature-x", "abc", "xb", "a"] {
        ns.set_configmap(n, json!({"v": "1"})).await;
    }
    let ann = json!({"configmap.reloader.stakater.com/reload": "app-config, feature-.*, a|b"});
    let (_ctl, g0) = setup(&ns, ann, env_from_configmaps(&[]), &[]).await;
    await_record(&ns, "web").await;

    // "a|b" means exactly a or b: abc and xb are not governed.
    ns.set_configmap("abc", json!({"v": "2"})).await;
    ns.set_configmap("xb", json!({"v": "2"})).await;
    assert_no_reload(&ns, "web", &g0).await;

    ns.set_configmap("feature-x", json!({"v": "2"})).await;
    let g1 = await_reload(&ns, "web", &g0).await;
    ns.set_configmap("a", json!({"v": "2"})).await;
    await_reload(&ns, "web", &g1).await;
}

#[tokio::test]
async fn search_reloads_only_for_matching_referenced_sources() {
    let ns = TestNs::new("search").await;
    ns.apply_json::<ConfigMap>(json!({"apiVersion":"v1","kind":"ConfigMap",
        "metadata":{"name":"marked","annotations":{"reloader.stakater.com/match":"true"}},"data":{"v":"1"}}))
        .await;
    ns.set_configmap("plain", json!({"v": "1"})).await;
    let (_ctl, g0) =
        setup(&ns, json!({"reloader.stakater.com/search": "true"}), env_from_configmaps(&["marked", "plain"]), &[])
            .await;
    await_record(&ns, "web").await;
    ns.set_configmap("plain", json!({"v": "2"})).await;
    assert_no_reload(&ns, "web", &g0).await;
    ns.apply_json::<ConfigMap>(json!({"apiVersion":"v1","kind":"ConfigMap",
        "metadata":{"name":"marked","annotations":{"reloader.stakater.com/match":"true"}},"data":{"v":"2"}}))
        .await;
    await_reload(&ns, "web", &g0).await;
}

#[tokio::test]
async fn exclude_and_ignore_win_over_auto() {
    let ns = TestNs::new("exclude").await;
    ns.set_configmap("excluded", json!({"v": "1"})).await;
    ns.apply_json::<ConfigMap>(json!({"apiVersion":"v1","kind":"ConfigMap",
        "metadata":{"name":"ignored","annotations":{"reloader.stakater.com/ignore":"true"}},"data":{"v":"1"}}))
        .await;
    ns.set_configmap("kept", json!({"v": "1"})).await;
    let ann =
        json!({"reloader.stakater.com/auto": "true", "configmaps.exclude.reloader.stakater.com/reload": "excluded"});
    let (_ctl, g0) = setup(&ns, ann, env_from_configmaps(&["excluded", "ignored", "kept"]), &[]).await;
    await_record(&ns, "web").await;
    ns.set_configmap("excluded", json!({"v": "2"})).await;
    ns.apply_json::<ConfigMap>(json!({"apiVersion":"v1","kind":"ConfigMap",
        "metadata":{"name":"ignored","annotations":{"reloader.stakater.com/ignore":"true"}},"data":{"v":"2"}}))
        .await;
    assert_no_reload(&ns, "web", &g0).await;
    ns.set_configmap("kept", json!({"v": "2"})).await;
    await_reload(&ns, "web", &g0).await;
}

#[tokio::test]
async fn pod_template_annotations_are_the_fallback() {
    let ns = TestNs::new("template").await;
    ns.set_configmap("cfg", json!({"v": "1"})).await;
    let spec = env_from_configmaps(&["cfg"]);
    let mut d = deployment("web", json!({}), spec);
    d["spec"]["template"]["metadata"]["annotations"] = json!({"reloader.stakater.com/auto": "true"});
    ns.apply_json::<Deployment>(d).await;
    let _ctl = Controller::start(&ns, &[]).await;
    await_record(&ns, "web").await;
    let g0 = pod_template(&ns, "web").await;
    ns.set_configmap("cfg", json!({"v": "2"})).await;
    await_reload(&ns, "web", &g0).await;
}

#[tokio::test]
async fn auto_reload_all_with_opt_outs() {
    let ns = TestNs::new("all").await;
    ns.set_configmap("cfg", json!({"v": "1"})).await;
    ns.set_secret("sec", json!({"v": "1"})).await;
    let spec = json!({"containers": [app(json!({"envFrom": [{"configMapRef": {"name": "cfg"}}, {"secretRef": {"name": "sec"}}]}))]});
    ns.apply_json::<Deployment>(deployment("plain", json!({}), spec.clone())).await;
    ns.apply_json::<Deployment>(deployment("optout", json!({"reloader.stakater.com/auto": "false"}), spec.clone()))
        .await;
    ns.apply_json::<Deployment>(deployment("nosecret", json!({"secret.reloader.stakater.com/auto": "false"}), spec))
        .await;
    let _ctl = Controller::start(&ns, &["--auto-reload-all"]).await;
    await_record(&ns, "plain").await;
    await_record(&ns, "nosecret").await;
    let (p0, o0, n0) =
        (pod_template(&ns, "plain").await, pod_template(&ns, "optout").await, pod_template(&ns, "nosecret").await);
    ns.set_secret("sec", json!({"v": "2"})).await;
    let p1 = await_reload(&ns, "plain", &p0).await;
    assert_no_reload(&ns, "nosecret", &n0).await;
    ns.set_configmap("cfg", json!({"v": "2"})).await;
    await_reload(&ns, "plain", &p1).await;
    await_reload(&ns, "nosecret", &n0).await;
    assert_eq!(pod_template(&ns, "optout").await, o0, "auto: \"false\" opts out of --auto-reload-all");
}

// ---------------------------------------------------------------- reference kinds

#[tokio::test]
async fn every_reference_kind_reloads() {
    let ns = TestNs::new("refs").await;
    let sources = [
        ("vol-cm", false),
        ("proj-cm", false),
        ("envfrom-cm", false),
        ("keyref-cm", false),
        ("init-cm", false),
        ("vol-secret", true),
        ("proj-secret", true),
        ("keyref-secret", true),
    ];
    for (n, secret) in sources {
        if secret {
            ns.set_secret(n, json!({"k": "1"})).await;
        } else {
            ns.set_configmap(n, json!({"k": "1"})).await;
        }
    }
    let spec = json!({
        "initContainers": [{"name": "init", "image": "example.com/init:1", "envFrom": [{"configMapRef": {"name": "init-cm"}}]}],
        "containers": [
            app(json!({
                "envFrom": [{"configMapRef": {"name": "envfrom-cm"}}],
                "env": [
                    {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "keyref-cm", "key": "k"}}},
                    {"name": "B", "valueFrom": {"secretKeyRef": {"name": "keyref-secret", "key": "k"}}}
                ],
                "volumeMounts": [{"name": "v1", "mountPath": "/v1"}, {"name": "creds", "mountPath": "/creds"}, {"name": "p", "mountPath": "/p"}]
            })),
        ],
        "volumes": [
            {"name": "v1", "configMap": {"name": "vol-cm"}},
            {"name": "creds", "secret": {"secretName": "vol-secret"}},
            {"name": "p", "projected": {"sources": [{"configMap": {"name": "proj-cm"}}, {"secret": {"name": "proj-secret"}}]}}
        ]
    });
    // Not a test of debouncing: each change is reconciled at once, and is its own rollout.
    let (_ctl, mut g) = setup(&ns, json!({"reloader.stakater.com/auto": "true"}), spec, &["--debounce=0"]).await;
    let record = await_record(&ns, "web").await;
    for (n, _) in sources {
        assert!(record.contains(n), "{n} is recorded: {record}");
    }
    for (n, secret) in sources {
        if secret {
            ns.set_secret(n, json!({"k": "2"})).await;
        } else {
            ns.set_configmap(n, json!({"k": "2"})).await;
        }
        g = await_reload(&ns, "web", &g).await;
        let lrf = template_annotation(&ns, "web", LAST_RELOADED_FROM).await.unwrap();
        assert!(lrf.contains(&format!("\"name\":\"{n}\"")), "{n}: {lrf}");
    }
}

// ---------------------------------------------------------------- workload kinds and strategies

#[tokio::test]
async fn statefulsets_and_daemonsets_reload() {
    let ns = TestNs::new("kinds").await;
    ns.set_configmap("cfg", json!({"v": "1"})).await;
    let template = json!({"metadata": {"labels": {"app": "x"}}, "spec": env_from_configmaps(&["cfg"])});
    ns.apply_json::<StatefulSet>(json!({"apiVersion":"apps/v1","kind":"StatefulSet",
        "metadata":{"name":"sts","annotations":{"reloader.stakater.com/auto":"true"}},
        "spec":{"replicas":1,"serviceName":"sts","selector":{"matchLabels":{"app":"x"}},"template":template}}))
        .await;
    ns.apply_json::<DaemonSet>(json!({"apiVersion":"apps/v1","kind":"DaemonSet",
        "metadata":{"name":"ds","annotations":{"configmap.reloader.stakater.com/reload":"cfg"}},
        "spec":{"selector":{"matchLabels":{"app":"x"}},"template":template}}))
        .await;
    let _ctl = Controller::start(&ns, &[]).await;
    let sts = ns.api::<StatefulSet>();
    let ds = ns.api::<DaemonSet>();
    let rec = |o: Option<std::collections::BTreeMap<String, String>>| o.and_then(|a| a.get(RECORD).cloned());
    eventually(Duration::from_secs(10), "records", || async {
        let a = rec(sts.get("sts").await.ok()?.metadata.annotations);
        let b = rec(ds.get("ds").await.ok()?.metadata.annotations);
        (a.is_some() && b.is_some()).then_some(())
    })
    .await;
    let tpl = |spec: Option<Value>| spec.map(|s| s["template"].to_string()).unwrap_or_default();
    let t_sts = tpl(sts.get("sts").await.unwrap().spec.map(|s| serde_json::to_value(s).unwrap()));
    let t_ds = tpl(ds.get("ds").await.unwrap().spec.map(|s| serde_json::to_value(s).unwrap()));
    ns.set_configmap("cfg", json!({"v": "2"})).await;
    eventually(Duration::from_secs(2), "StatefulSet and DaemonSet reloaded", || async {
        let a = tpl(sts.get("sts").await.ok()?.spec.map(|s| serde_json::to_value(s).unwrap())) != t_sts;
        let b = tpl(ds.get("ds").await.ok()?.spec.map(|s| serde_json::to_value(s).unwrap())) != t_ds;
        (a && b).then_some(())
    })
    .await;
}

#[tokio::test]
async fn env_vars_strategy_sets_reloader_named_variables() {
    let ns = TestNs::new("envvars").await;
    ns.set_configmap("my-config", json!({"v": "1"})).await;
    ns.set_secret("my-secret", json!({"v": "1"})).await;
    let spec = json!({"containers": [
        {"name": "side", "image": "example.com/side:1"},
        app(json!({"envFrom": [{"configMapRef": {"name": "my-config"}}, {"secretRef": {"name": "my-secret"}}]}))
    ]});
    // Both changes must land in one rollout to check both variables at once: a quiet window
    // wider than the default, since under CI load the two writes were seen over 300 ms apart.
    let (_ctl, g0) = setup(
        &ns,
        json!({"reloader.stakater.com/auto": "true"}),
        spec,
        &["--reload-strategy=env-vars", "--debounce-quiet=2s", "--debounce=5s"],
    )
    .await;
    await_record(&ns, "web").await;
    ns.set_configmap("my-config", json!({"v": "2"})).await;
    ns.set_secret("my-secret", json!({"v": "2"})).await;
    // The reload waits out the 2 s quiet window, so the promised 2 s come on top of it.
    eventually(Duration::from_secs(4), "a reload of web", || async {
        (pod_template(&ns, "web").await != g0).then_some(())
    })
    .await;
    let d = ns.api::<Deployment>().get("web").await.unwrap();
    let containers = d.spec.unwrap().template.spec.unwrap().containers;
    let env: Vec<String> = containers[1].env.clone().unwrap_or_default().into_iter().map(|e| e.name).collect();
    assert!(env.contains(&"STAKATER_MY_CONFIG_CONFIGMAP".to_string()), "{env:?}");
    assert!(env.contains(&"STAKATER_MY_SECRET_SECRET".to_string()), "{env:?}");
    assert!(containers[0].env.is_none(), "the other container is untouched");
    assert!(template_annotation(&ns, "web", LAST_RELOADED_FROM).await.is_none());
    eventually(Duration::from_secs(5), "the new ReplicaSet", || async {
        (replica_sets(&ns, "web").await == 2).then_some(())
    })
    .await;
    assert_no_reload(&ns, "web", &pod_template(&ns, "web").await).await;
    assert_eq!(replica_sets(&ns, "web").await, 2, "both changes in one rollout");
}

// ---------------------------------------------------------------- level-triggered guarantees

#[tokio::test]
async fn restart_with_nothing_changed_does_not_roll_and_catch_up_is_exact() {
    let ns = TestNs::new("restart").await;
    ns.set_configmap("cfg", json!({"v": "1"})).await;
    let (ctl, g0) = setup(&ns, json!({"reloader.stakater.com/auto": "true"}), env_from_configmaps(&["cfg"]), &[]).await;
    await_record(&ns, "web").await;
    ctl.stop().await;

    // Restart: nothing changed, nothing rolls.
    let ctl = Controller::start(&ns, &[]).await;
    assert_no_reload(&ns, "web", &g0).await;
    ctl.stop().await;

    // A change while stopped is applied once at start.
    ns.set_configmap("cfg", json!({"v": "2"})).await;
    holds(Duration::from_secs(1), "no rollout while the controller is stopped", || async {
        pod_template(&ns, "web").await == g0
    })
    .await;
    let _ctl = Controller::start(&ns, &[]).await;
    let g1 = await_reload(&ns, "web", &g0).await;
    assert_no_reload(&ns, "web", &g1).await;
    assert_eq!(replica_sets(&ns, "web").await, 2, "exactly one rollout at catch-up");
}

#[tokio::test]
async fn first_sight_is_adopted_without_a_rollout() {
    let ns = TestNs::new("adopt").await;
    ns.set_configmap("cfg", json!({"v": "1"})).await;
    // As left by Stakater Reloader, up to date: its annotation on the template with its hash of
    // the current content (SHA-1 of `v=1`), no record of ours. (One naming older content rolls
    // once: tests/switch.rs.)
    let mut d = deployment("web", json!({"reloader.stakater.com/auto": "true"}), env_from_configmaps(&["cfg"]));
    d["spec"]["template"]["metadata"]["annotations"] = json!({LAST_RELOADED_FROM:
        "{\"type\":\"CONFIGMAP\",\"name\":\"cfg\",\"namespace\":\"x\",\"hash\":\"1d365e2dc442c49fae367709ffda3887673f89fd\",\"containerRefs\":[\"app\"],\"observedAt\":1767225600}"});
    ns.apply_json::<Deployment>(d).await;
    let g0 = pod_template(&ns, "web").await;
    let _ctl = Controller::start(&ns, &[]).await;
    await_record(&ns, "web").await;
    assert_no_reload(&ns, "web", &g0).await;
}

#[tokio::test]
async fn recreated_secret_reloads_only_with_different_content() {
    let ns = TestNs::new("recreate").await;
    ns.set_secret("sec", json!({"p": "1"})).await;
    let spec = json!({"containers": [app(json!({"envFrom": [{"secretRef": {"name": "sec"}}]}))]});
    let (ctl, g0) = setup(&ns, json!({"reloader.stakater.com/auto": "true"}), spec, &[]).await;
    await_record(&ns, "web").await;
    // The Secret stays deleted until the controller has seen it go, and for longer than the
    // debounce window after that, so the workload is reconciled while the Secret is gone:
    // without --reload-on-delete that rolls nothing.
    let stays_deleted = || async {
        eventually(Duration::from_secs(5), "the controller sees the Secret deleted", || async {
            (!ctl.indexes(&ns, "secret", "sec")).then_some(())
        })
        .await;
        holds(Duration::from_millis(700), "no rollout while the Secret is deleted", || async {
            pod_template(&ns, "web").await == g0
        })
        .await;
    };

    ns.delete::<Secret>("sec").await;
    stays_deleted().await;
    ns.set_secret("sec", json!({"p": "1"})).await;
    assert_no_reload(&ns, "web", &g0).await;

    ns.delete::<Secret>("sec").await;
    stays_deleted().await;
    ns.set_secret("sec", json!({"p": "2"})).await;
    await_reload(&ns, "web", &g0).await;
}

#[tokio::test]
async fn rollout_undo_does_not_re_roll() {
    let ns = TestNs::new("undo").await;
    ns.set_configmap("cfg", json!({"v": "1"})).await;
    let (_ctl, g0) =
        setup(&ns, json!({"reloader.stakater.com/auto": "true"}), env_from_configmaps(&["cfg"]), &[]).await;
    await_record(&ns, "web").await;
    ns.set_configmap("cfg", json!({"v": "2"})).await;
    let g1 = await_reload(&ns, "web", &g0).await;
    // Let the Deployment controller record the revision before undoing it.
    eventually(Duration::from_secs(20), "rollout observed", || async {
        let d = ns.api::<Deployment>().get("web").await.ok()?;
        (d.status?.observed_generation? >= d.metadata.generation?).then_some(())
    })
    .await;
    let out = kubectl(&["-n", &ns.name, "rollout", "undo", "deployment/web"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let g2 = eventually(Duration::from_secs(5), "undo applied", || async {
        let g = pod_template(&ns, "web").await;
        (g != g1).then_some(g)
    })
    .await;
    assert_no_reload(&ns, "web", &g2).await;
}

#[tokio::test]
async fn reload_on_create_and_delete_follow_the_flags() {
    let ns = TestNs::new("create-del").await;
    let ann = json!({"reloader.stakater.com/auto": "true"});
    // Off: a missing source appearing, or a present one disappearing, is not a change.
    let (ctl, g0) = setup(&ns, ann.clone(), env_from_configmaps(&["late"]), &[]).await;
    await_record(&ns, "web").await;
    ns.set_configmap("late", json!({"v": "1"})).await;
    assert_no_reload(&ns, "web", &g0).await;
    ns.delete::<ConfigMap>("late").await;
    assert_no_reload(&ns, "web", &g0).await;
    ctl.stop().await;

    // On: both are changes.
    // (Not a test of debouncing: the re-creation below is reconciled at once.)
    let _ctl = Controller::start(&ns, &["--reload-on-create=true", "--reload-on-delete=true", "--debounce=0"]).await;
    // The record still holds the deleted source's content; with the flag on, the deletion counts.
    let g1 = await_reload(&ns, "web", &g0).await;
    let lrf = template_annotation(&ns, "web", LAST_RELOADED_FROM).await.unwrap();
    assert!(lrf.contains("aae45badef99284e4dae01d6046154ea9d99532f"), "delete marker: {lrf}");
    ns.set_configmap("late", json!({"v": "1"})).await;
    await_reload(&ns, "web", &g1).await;
}

/// A ConfigMap `name` with `data` and the given annotations.
fn annotated_configmap(name: &str, annotations: Value, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "annotations": annotations}, "data": data})
}

/// With `--reload-on-delete`, whether a deletion counts is read from the deleted object's
/// annotations, as in Reloader: deleting a used ConfigMap marked `ignore` rolls nothing, while
/// deleting a plain one in the same run rolls.
#[tokio::test]
async fn reload_on_delete_skips_an_ignored_source() {
    let ns = TestNs::new("del-ignored").await;
    ns.apply_json::<ConfigMap>(annotated_configmap(
        "quiet",
        json!({"reloader.stakater.com/ignore": "true"}),
        json!({"v": "1"}),
    ))
    .await;
    ns.set_configmap("loud", json!({"v": "1"})).await;
    let (ctl, g0) = setup(
        &ns,
        json!({"reloader.stakater.com/auto": "true"}),
        env_from_configmaps(&["quiet", "loud"]),
        &["--reload-on-delete=true"],
    )
    .await;
    await_record(&ns, "web").await;

    ns.delete::<ConfigMap>("quiet").await;
    eventually(Duration::from_secs(5), "the deletion of quiet seen", || async {
        (!ctl.indexes(&ns, "configmap", "quiet")).then_some(())
    })
    .await;
    assert_no_reload(&ns, "web", &g0).await;

    ns.delete::<ConfigMap>("loud").await;
    let g1 = await_reload(&ns, "web", &g0).await;
    let lrf = template_annotation(&ns, "web", LAST_RELOADED_FROM).await.unwrap();
    assert!(lrf.contains("\"name\":\"loud\""), "the plain deletion rolled: {lrf}");
    assert_no_reload(&ns, "web", &g1).await;
    assert_eq!(replica_sets(&ns, "web").await, 2, "one rollout, for loud");
}

/// In search mode the deleted object's `match` annotation decides, as in Reloader: with
/// `--reload-on-delete`, deleting a used ConfigMap marked `match` rolls a `search` workload,
/// deleting one without it does not.
#[tokio::test]
async fn reload_on_delete_in_search_mode_follows_the_deleted_match() {
    let ns = TestNs::new("del-match").await;
    ns.apply_json::<ConfigMap>(annotated_configmap(
        "matched",
        json!({"reloader.stakater.com/match": "true"}),
        json!({"v": "1"}),
    ))
    .await;
    ns.set_configmap("unmatched", json!({"v": "1"})).await;
    let (ctl, g0) = setup(
        &ns,
        json!({"reloader.stakater.com/search": "true"}),
        env_from_configmaps(&["matched", "unmatched"]),
        &["--reload-on-delete=true"],
    )
    .await;
    let record = await_record(&ns, "web").await;
    assert!(record.contains("configmap/matched") && !record.contains("configmap/unmatched"), "{record}");

    ns.delete::<ConfigMap>("unmatched").await;
    eventually(Duration::from_secs(5), "the deletion of unmatched seen", || async {
        (!ctl.indexes(&ns, "configmap", "unmatched")).then_some(())
    })
    .await;
    assert_no_reload(&ns, "web", &g0).await;

    ns.delete::<ConfigMap>("matched").await;
    let g1 = await_reload(&ns, "web", &g0).await;
    let lrf = template_annotation(&ns, "web", LAST_RELOADED_FROM).await.unwrap();
    assert!(lrf.contains("\"name\":\"matched\""), "the matched deletion rolled: {lrf}");
    assert_no_reload(&ns, "web", &g1).await;
}

#[tokio::test]
async fn several_sources_changed_together_give_one_rollout() {
    let ns = TestNs::new("burst").await;
    let names = ["c1", "c2", "c3", "c4", "c5"];
    for n in names {
        ns.set_configmap(n, json!({"v": "1"})).await;
    }
    let (_ctl, g0) = setup(&ns, json!({"reloader.stakater.com/auto": "true"}), env_from_configmaps(&names), &[]).await;
    await_record(&ns, "web").await;
    let start = std::time::Instant::now();
    for n in names {
        ns.set_configmap(n, json!({"v": "2"})).await;
    }
    assert!(start.elapsed() < Duration::from_millis(400), "the burst itself was quick");
    let g1 = await_reload(&ns, "web", &g0).await;
    assert_no_reload(&ns, "web", &g1).await;
    assert_eq!(replica_sets(&ns, "web").await, 2, "one rollout for the whole burst");
}

/// Five changes written 20 ms apart, each restarting the quiet window, give one rollout (with
/// the other tests of this file running at once on two cores, the controller saw such writes
/// up to 135 ms apart; the default window is 400 ms).
#[tokio::test]
async fn a_burst_20ms_apart_gives_one_rollout() {
    let ns = TestNs::new("burst20").await;
    let names = ["c1", "c2", "c3", "c4", "c5"];
    for n in names {
        ns.set_configmap(n, json!({"v": "1"})).await;
    }
    let (_ctl, g0) = setup(&ns, json!({"reloader.stakater.com/auto": "true"}), env_from_configmaps(&names), &[]).await;
    await_record(&ns, "web").await;
    // Each write starts 20 ms after the one before, however long the API server takes.
    let ns = &ns;
    futures::future::join_all(names.iter().enumerate().map(|(i, n)| async move {
        tokio::time::sleep(Duration::from_millis(20 * i as u64)).await;
        ns.set_configmap(n, json!({"v": "2"})).await;
    }))
    .await;
    let g1 = await_reload(ns, "web", &g0).await;
    assert_no_reload(ns, "web", &g1).await;
    assert_eq!(replica_sets(ns, "web").await, 2, "one rollout for the whole burst");
}

/// At the defaults, the storm brake included: one `kubectl apply -f dir/` of three changed
/// ConfigMaps of one Deployment gives one rollout with all three (kubectl writes them one by
/// one, 60-180 ms apart on the 2-core test machine).
#[tokio::test]
async fn one_kubectl_apply_of_three_changed_sources_gives_one_rollout() {
    let ns = TestNs::new("apply3").await;
    let names = ["a-cfg", "b-cfg", "c-cfg"];
    let dir = std::env::temp_dir().join(&ns.name);
    std::fs::create_dir_all(&dir).unwrap();
    let write = |v: &str| {
        for n in names {
            let doc = format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {n}\ndata:\n  v: \"{v}\"\n");
            std::fs::write(dir.join(format!("{n}.yaml")), doc).unwrap();
        }
        let out = kubectl(&["apply", "-n", &ns.name, "-f", dir.to_str().unwrap()]);
        assert!(out.status.success(), "kubectl apply: {}", String::from_utf8_lossy(&out.stderr));
    };
    write("1");
    let brake = ["--min-reload-interval=10s", "--flap-limit=5"];
    let (_ctl, g0) =
        setup(&ns, json!({"reloader.stakater.com/auto": "true"}), env_from_configmaps(&names), &brake).await;
    let r0 = await_record(&ns, "web").await;
    write("2");
    let g1 = await_reload(&ns, "web", &g0).await;
    assert_no_reload(&ns, "web", &g1).await;
    assert_eq!(replica_sets(&ns, "web").await, 2, "one rollout for the apply");
    let (before, after): (Value, Value) =
        (serde_json::from_str(&r0).unwrap(), serde_json::from_str(&record_of(&ns, "web").await.unwrap()).unwrap());
    for n in names {
        let s = format!("configmap/{n}");
        assert_ne!(before[&s], after[&s], "the one rollout applied {s}: {after}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A batch tool's writes on a loaded API server: three ConfigMaps applied by `kubectl apply`
/// 700 ms apart (beyond the 400 ms quiet window) still give one rollout, since a change whose
/// latest writer is a batch tool (`kubectl-client-side-apply`) waits 1.5 s for the rest.
#[tokio::test]
async fn a_kubectl_apply_spread_over_two_seconds_gives_one_rollout() {
    let ns = TestNs::new("applyslow").await;
    let names = ["a-cfg", "b-cfg", "c-cfg"];
    let dir = std::env::temp_dir().join(&ns.name);
    std::fs::create_dir_all(&dir).unwrap();
    let apply = |n: &str, v: &str| {
        let doc = format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {n}\ndata:\n  v: \"{v}\"\n");
        let f = dir.join(format!("{n}.yaml"));
        std::fs::write(&f, doc).unwrap();
        let out = kubectl(&["apply", "-n", &ns.name, "-f", f.to_str().unwrap()]);
        assert!(out.status.success(), "kubectl apply: {}", String::from_utf8_lossy(&out.stderr));
    };
    for n in names {
        apply(n, "1");
    }
    let (_ctl, g0) = setup(&ns, json!({"reloader.stakater.com/auto": "true"}), env_from_configmaps(&names), &[]).await;
    await_record(&ns, "web").await;
    let started = std::time::Instant::now();
    for (i, n) in names.iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(700)).await;
        }
        apply(n, "2");
    }
    eprintln!("three applies over {:?}", started.elapsed());
    let g1 = eventually(Duration::from_secs(4), "the rollout", || async {
        let t = pod_template(&ns, "web").await;
        (t != g0).then_some(t)
    })
    .await;
    assert_no_reload(&ns, "web", &g1).await;
    assert_eq!(replica_sets(&ns, "web").await, 2, "one rollout for the three applies");
    let _ = std::fs::remove_dir_all(&dir);
}

/// At the defaults, the storm brake included: a second change a few seconds after the first
/// (a typo fixed) is applied about as fast as the first, not after --min-reload-interval.
#[tokio::test]
async fn a_second_change_seconds_after_the_first_is_applied_at_once_at_the_defaults() {
    let ns = TestNs::new("typo").await;
    ns.set_configmap("cfg", json!({"v": "0"})).await;
    let brake = ["--min-reload-interval=10s", "--flap-limit=5"];
    let (_ctl, g0) =
        setup(&ns, json!({"reloader.stakater.com/auto": "true"}), env_from_configmaps(&["cfg"]), &brake).await;
    await_record(&ns, "web").await;
    ns.set_configmap("cfg", json!({"v": "1"})).await;
    let g1 = await_reload(&ns, "web", &g0).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let start = std::time::Instant::now();
    ns.set_configmap("cfg", json!({"v": "2"})).await;
    let g2 = await_reload(&ns, "web", &g1).await;
    assert!(start.elapsed() < Duration::from_secs(2), "the second took {:?}", start.elapsed());
    assert_no_reload(&ns, "web", &g2).await;
}

/// At the defaults: a ConfigMap and a Secret of one workload written back to back, as
/// `helm upgrade` does, give one rollout.
#[tokio::test]
async fn a_configmap_and_a_secret_changed_back_to_back_give_one_rollout() {
    let ns = TestNs::new("cm-secret").await;
    ns.set_configmap("cfg", json!({"v": "1"})).await;
    ns.set_secret("sec", json!({"v": "1"})).await;
    let spec = json!({"containers": [app(json!({"envFrom": [{"configMapRef": {"name": "cfg"}}, {"secretRef": {"name": "sec"}}]}))]});
    let (_ctl, g0) = setup(&ns, json!({"reloader.stakater.com/auto": "true"}), spec, &[]).await;
    let r0 = await_record(&ns, "web").await;
    ns.set_configmap("cfg", json!({"v": "2"})).await;
    ns.set_secret("sec", json!({"v": "2"})).await;
    let g1 = await_reload(&ns, "web", &g0).await;
    assert_no_reload(&ns, "web", &g1).await;
    assert_eq!(replica_sets(&ns, "web").await, 2, "one rollout for both");
    let (before, after): (Value, Value) =
        (serde_json::from_str(&r0).unwrap(), serde_json::from_str(&record_of(&ns, "web").await.unwrap()).unwrap());
    for s in ["configmap/cfg", "secret/sec"] {
        assert_ne!(before[s], after[s], "the one rollout applied {s}: {after}");
    }
}

/// At the defaults a lone change waits only the quiet window (400 ms), not the 3 s cap: the
/// fastest of three is patched well before the cap (the others allow for a loaded machine;
/// the benchmark reports the latency's p50 and p99).
#[tokio::test]
async fn a_lone_change_at_the_defaults_is_not_held_for_the_cap() {
    let ns = TestNs::new("lone").await;
    ns.set_configmap("cfg", json!({"v": "0"})).await;
    let (_ctl, mut g) =
        setup(&ns, json!({"reloader.stakater.com/auto": "true"}), env_from_configmaps(&["cfg"]), &[]).await;
    await_record(&ns, "web").await;
    let mut fastest = Duration::MAX;
    for v in 1..=3 {
        let start = std::time::Instant::now();
        ns.set_configmap("cfg", json!({"v": v.to_string()})).await;
        g = await_reload(&ns, "web", &g).await;
        fastest = fastest.min(start.elapsed());
    }
    assert!(fastest < Duration::from_millis(1500), "a lone change took at least {fastest:?}");
}

#[tokio::test]
async fn a_match_annotation_added_later_makes_the_next_change_reload() {
    let ns = TestNs::new("match-later").await;
    ns.set_configmap("cfg", json!({"v": "1"})).await;
    let (_ctl, g0) =
        setup(&ns, json!({"reloader.stakater.com/search": "true"}), env_from_configmaps(&["cfg"]), &[]).await;
    let marked = |v: &str| {
        json!({"apiVersion":"v1","kind":"ConfigMap",
            "metadata":{"name":"cfg","annotations":{"reloader.stakater.com/match":"true"}},"data":{"v":v}})
    };
    // Marking it is not a change of content: no rollout, but it is now recorded.
    ns.apply_json::<ConfigMap>(marked("1")).await;
    eventually(Duration::from_secs(5), "cfg recorded", || async {
        record_of(&ns, "web").await.filter(|r| r.contains("configmap/cfg"))
    })
    .await;
    assert_eq!(pod_template(&ns, "web").await, g0);
    ns.apply_json::<ConfigMap>(marked("2")).await;
    await_reload(&ns, "web", &g0).await;
}

/// Churn leaves nothing behind: after workloads are created, reloaded (some while a change is
/// still pending) and deleted, the index and every per-workload slot are empty again.
#[tokio::test]
async fn deleted_workloads_leave_no_state_behind() {
    let ns = TestNs::new("churn").await;
    ns.set_configmap("cfg", json!({"v": "0"})).await;
    // A fixed 200 ms window (quiet as long as the cap), so changes stay pending during deletions.
    let ctl = Controller::start(&ns, &["--debounce=200ms", "--debounce-quiet=200ms"]).await;
    let n = 20;
    for round in 1..=2 {
        for i in 0..n {
            ns.apply_json::<Deployment>(deployment(
                &format!("w-{i}"),
                json!({"reloader.stakater.com/auto": "true"}),
                env_from_configmaps(&["cfg"]),
            ))
            .await;
        }
        for i in 0..n {
            await_record(&ns, &format!("w-{i}")).await;
        }
        ns.set_configmap("cfg", json!({"v": round.to_string()})).await;
        eventually(Duration::from_secs(20), "all reloaded", || async {
            for i in 0..n {
                template_annotation(&ns, &format!("w-{i}"), LAST_RELOADED_FROM).await?;
            }
            Some(())
        })
        .await;
        // A change still pending (inside the debounce window) when they are deleted.
        ns.set_configmap("cfg", json!({"v": format!("{round}b")})).await;
        for i in 0..n {
            ns.delete::<Deployment>(&format!("w-{i}")).await;
        }
        eventually(Duration::from_secs(20), "the index and every per-workload slot empty", || async {
            let workloads = ctl.ctx.tracked_workloads();
            (workloads == 0 && ctl.ctx.slot_count() == 0).then_some(())
        })
        .await;
    }
}
