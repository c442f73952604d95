//! A workload's first moments: a change made just after a workload is created is applied
//! exactly once, whatever the order in which the controller sees the two and however often
//! its first write is refused with a 409; and `--reload-on-create` / `--reload-on-delete`
//! track sources by their real names (`app-config`, `db.credentials`) before they exist.

mod common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use reloader::metrics::{Success, WorkloadKindLabel};
use serde_json::{Value, json};

/// The workload kinds a change can roll, as manifests using ConfigMap `cm`.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Deployment,
    StatefulSet,
    DaemonSet,
    Job,
}

impl Kind {
    fn resource(self) -> ApiResource {
        use k8s_openapi::api::apps::v1::{DaemonSet, StatefulSet};
        use k8s_openapi::api::batch::v1::Job;
        match self {
            Kind::Deployment => ApiResource::erase::<Deployment>(&()),
            Kind::StatefulSet => ApiResource::erase::<StatefulSet>(&()),
            Kind::DaemonSet => ApiResource::erase::<DaemonSet>(&()),
            Kind::Job => ApiResource::erase::<Job>(&()),
        }
    }

    fn manifest(self, name: &str, cm: &str) -> Value {
        let mut pod = json!({"containers": [{"name": "app", "image": "example.com/app:1",
            "envFrom": [{"configMapRef": {"name": cm}}]}]});
        let template = |pod: Value| json!({"metadata": {"labels": {"app": name}}, "spec": pod});
        let meta = json!({"name": name, "annotations": {"reloader.stakater.com/auto": "true"}});
        let selector = json!({"matchLabels": {"app": name}});
        match self {
            Kind::Deployment => json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
                "spec": {"replicas": 1, "selector": selector, "template": template(pod)}}),
            Kind::StatefulSet => json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": meta,
                "spec": {"replicas": 1, "serviceName": name, "selector": selector, "template": template(pod)}}),
            Kind::DaemonSet => json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": meta,
                "spec": {"selector": selector, "template": template(pod)}}),
            Kind::Job => {
                pod["restartPolicy"] = json!("Never");
                json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": meta,
                    "spec": {"backoffLimit": 0, "template": template(pod)}})
            }
        }
    }
}

fn api(ns: &TestNs, kind: Kind) -> Api<DynamicObject> {
    Api::namespaced_with(ns.client.clone(), &ns.name, &kind.resource())
}

/// The pod template's `last-reloaded-from` annotation, if the workload was reloaded.
async fn reloaded_from(api: &Api<DynamicObject>, name: &str) -> Option<String> {
    let o = api.get_opt(name).await.ok()??;
    o.data["spec"]["template"]["metadata"]["annotations"][LAST_RELOADED_FROM].as_str().map(String::from)
}

fn reloads(ctl: &Controller) -> i64 {
    ctl.ctx.metrics.reload_executed.get_or_create(&Success { success: "true" }).get() as i64
}

fn conflicts(ctl: &Controller, kind: &'static str) -> u64 {
    ctl.ctx.metrics.write_conflicts.get_or_create(&WorkloadKindLabel { workload_kind: kind }).get()
}

/// Creates `n` workloads of `kind` while the controller runs, each using its own ConfigMap,
/// and changes each ConfigMap 0–100 ms after its workload was created. Every workload must
/// be reloaded exactly once.
async fn change_in_the_first_moments(kind: Kind, n: usize) {
    let ns = TestNs::new(&format!("first-{}", format!("{kind:?}").to_lowercase())).await;
    let ctl = Controller::start(&ns, &[]).await;
    for i in 0..n {
        ns.set_configmap(&format!("cfg-{i}"), json!({"v": "1"})).await;
    }
    let api = api(&ns, kind);
    let tasks = (0..n).map(|i| {
        let (ns, api) = (&ns, api.clone());
        async move {
            // Staggered starts, and a delay spread evenly over 0–100 ms.
            tokio::time::sleep(Duration::from_millis(40 * i as u64)).await;
            let obj: DynamicObject =
                serde_json::from_value(kind.manifest(&format!("w-{i}"), &format!("cfg-{i}"))).unwrap();
            api.create(&PostParams::default(), &obj).await.expect("create workload");
            tokio::time::sleep(Duration::from_millis((i as u64 * 37) % 101)).await;
            ns.set_configmap(&format!("cfg-{i}"), json!({"v": "2"})).await;
        }
    });
    futures::future::join_all(tasks).await;

    let missing = eventually(Duration::from_secs(60), &format!("every {kind:?} reloaded"), || async {
        let mut missing = Vec::new();
        for i in 0..n {
            if reloaded_from(&api, &format!("w-{i}")).await.is_none() {
                missing.push(i);
            }
        }
        (missing.is_empty() && reloads(&ctl) >= n as i64).then_some(missing)
    })
    .await;
    assert!(missing.is_empty());
    // Every one reloaded, and exactly n reloads in all: each exactly once. It stays so.
    holds(Duration::from_secs(3), &format!("exactly {n} reloads of {n} {kind:?}s"), || async {
        reloads(&ctl) == n as i64
    })
    .await;
    for i in 0..n {
        let lrf = reloaded_from(&api, &format!("w-{i}")).await.unwrap();
        assert!(lrf.contains(&format!("\"name\":\"cfg-{i}\"")), "w-{i} reloaded for its own ConfigMap: {lrf}");
    }
}

#[tokio::test]
async fn deployments_changed_in_their_first_moments_reload_exactly_once() {
    change_in_the_first_moments(Kind::Deployment, 50).await;
}

#[tokio::test]
async fn statefulsets_changed_in_their_first_moments_reload_exactly_once() {
    change_in_the_first_moments(Kind::StatefulSet, 50).await;
}

#[tokio::test]
async fn daemonsets_changed_in_their_first_moments_reload_exactly_once() {
    change_in_the_first_moments(Kind::DaemonSet, 50).await;
}

#[tokio::test]
async fn jobs_changed_in_their_first_moments_reload_exactly_once() {
    change_in_the_first_moments(Kind::Job, 50).await;
}

/// Another writer touches the new Deployment every few milliseconds, so the controller's
/// first writes (which carry the resourceVersion they were computed from) are refused with
/// 409; the ConfigMap changes meanwhile. The change still rolls, once.
#[tokio::test]
async fn a_conflict_on_the_first_write_does_not_lose_the_change() {
    let ns = TestNs::new("conflict").await;
    ns.set_configmap("cfg", json!({"v": "1"})).await;
    let ctl = Controller::start(&ns, &[]).await;
    let deployments = ns.api::<Deployment>();
    deployments
        .create(
            &PostParams::default(),
            &serde_json::from_value(deployment(
                "web",
                json!({"reloader.stakater.com/auto": "true"}),
                env_from_configmaps(&["cfg"]),
            ))
            .unwrap(),
        )
        .await
        .expect("create");
    let g0 = pod_template(&ns, "web").await;
    // Four writers touch it back to back until the controller has met a 409 (on its first
    // write, or on the reload's), for 10 s at most: a write computed from a view a few
    // milliseconds old is refused.
    let touch = {
        let touchers = (0..4).map(|t| {
            let (api, ctx) = (deployments.clone(), ctl.ctx.clone());
            async move {
                let kind = WorkloadKindLabel { workload_kind: "Deployment" };
                let start = std::time::Instant::now();
                let mut i = 0;
                while ctx.metrics.write_conflicts.get_or_create(&kind).get() == 0
                    && start.elapsed() < Duration::from_secs(10)
                {
                    i += 1;
                    let p = json!({"metadata": {"annotations": {format!("example.com/touched-{t}"): i.to_string()}}});
                    let _ = api.patch("web", &PatchParams::default(), &Patch::Merge(&p)).await;
                }
            }
        });
        tokio::spawn(futures::future::join_all(touchers))
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    ns.set_configmap("cfg", json!({"v": "2"})).await;
    touch.await.unwrap();
    assert!(conflicts(&ctl, "Deployment") > 0, "the touching caused at least one 409 on the controller's writes");
    let g1 = eventually(Duration::from_secs(5), "a reload of web", || async {
        let t = pod_template(&ns, "web").await;
        (t != g0).then_some(t)
    })
    .await;
    assert_no_reload(&ns, "web", &g1).await;
    assert_eq!(reloads(&ctl), 1, "exactly one reload");
    let lrf = template_annotation(&ns, "web", LAST_RELOADED_FROM).await.unwrap();
    assert!(lrf.contains("\"name\":\"cfg\""), "{lrf}");
}

/// The first record write of a new Deployment is refused (an admission policy rejects any
/// update that adds the record) while its ConfigMap changes; when writes are allowed again,
/// the late first write must still roll the workload for that change, once.
#[tokio::test]
async fn a_first_record_written_late_still_rolls_for_a_change_made_meanwhile() {
    let ns = TestNs::new("late-first").await;
    ns.set_configmap("cfg", json!({"v": "1"})).await;
    let policy = DenyPolicy::new(
        &ns,
        "deny-record",
        json!([{"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["UPDATE"], "resources": ["deployments"]}]),
        "!has(object.metadata.annotations) || !('reloader.kube-reloader.dev/applied' in object.metadata.annotations)",
        "no applied record yet",
    );
    let deployments = ns.api::<Deployment>();
    ns.apply_json::<Deployment>(deployment("probe", json!({}), env_from_configmaps(&[]))).await;
    policy
        .await_enforced(|| async {
            let p = json!({"metadata": {"annotations": {RECORD: "{}"}}});
            deployments.patch("probe", &PatchParams::default(), &Patch::Merge(&p)).await.is_err()
        })
        .await;

    let ctl = Controller::start(&ns, &[]).await;
    ns.apply_json::<Deployment>(deployment(
        "web",
        json!({"reloader.stakater.com/auto": "true"}),
        env_from_configmaps(&["cfg"]),
    ))
    .await;
    let g0 = pod_template(&ns, "web").await;
    // The controller has tried and failed to record it.
    eventually(Duration::from_secs(10), "a refused first write", || async {
        (ctl.ctx.metrics.errors.get_or_create(&reloader::metrics::TypeLabel { r#type: "handler_error" }).get() > 0)
            .then_some(())
    })
    .await;
    ns.set_configmap("cfg", json!({"v": "2"})).await;
    holds(Duration::from_secs(1), "nothing recorded and nothing rolled while refused", || async {
        record_of(&ns, "web").await.is_none() && pod_template(&ns, "web").await == g0
    })
    .await;
    policy.remove();
    let g1 = eventually(Duration::from_secs(20), "the reload once writes are allowed", || async {
        let t = pod_template(&ns, "web").await;
        (t != g0).then_some(t)
    })
    .await;
    assert_no_reload(&ns, "web", &g1).await;
    assert_eq!(reloads(&ctl), 1, "exactly one reload");
}

/// Created while the controller runs, recorded, then a change while it is stopped: applied
/// once at the next start.
#[tokio::test]
async fn a_change_while_stopped_after_first_sight_is_applied_once_at_start() {
    let ns = TestNs::new("first-restart").await;
    ns.set_configmap("cfg", json!({"v": "1"})).await;
    let ctl = Controller::start(&ns, &[]).await;
    ns.apply_json::<Deployment>(deployment(
        "web",
        json!({"reloader.stakater.com/auto": "true"}),
        env_from_configmaps(&["cfg"]),
    ))
    .await;
    await_record(&ns, "web").await;
    let g0 = pod_template(&ns, "web").await;
    ctl.stop().await;
    ns.set_configmap("cfg", json!({"v": "2"})).await;
    let ctl = Controller::start(&ns, &[]).await;
    let g1 = await_reload(&ns, "web", &g0).await;
    assert_no_reload(&ns, "web", &g1).await;
    assert_eq!(reloads(&ctl), 1);
}

/// A workload created while the controller is down, and its ConfigMap created after it: at
/// start the ConfigMap is where the workload's record begins, not a creation to reload for,
/// even with `--reload-on-create` (Reloader also ignores the adds of its initial sync). Its
/// next change rolls it once.
#[tokio::test]
async fn sources_listed_at_start_are_the_baseline_even_with_reload_on_create() {
    let ns = TestNs::new("start-baseline").await;
    ns.apply_json::<Deployment>(deployment(
        "web",
        json!({"reloader.stakater.com/auto": "true"}),
        env_from_configmaps(&["cfg"]),
    ))
    .await;
    // Once its rollout is done nothing writes the Deployment, so the ConfigMap is newer.
    let deployments = ns.api::<Deployment>();
    eventually(Duration::from_secs(30), "web available", || async {
        let d = deployments.get("web").await.ok()?;
        let s = d.status?;
        (s.observed_generation == d.metadata.generation && s.available_replicas.unwrap_or(0) >= 1).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    ns.set_configmap("cfg", json!({"v": "1"})).await;
    let g0 = pod_template(&ns, "web").await;
    let ctl = Controller::start(&ns, &["--reload-on-create=true"]).await;
    await_record(&ns, "web").await;
    assert_no_reload(&ns, "web", &g0).await;
    assert_eq!(reloads(&ctl), 0, "recorded, not reloaded");
    ns.set_configmap("cfg", json!({"v": "2"})).await;
    let g1 = await_reload(&ns, "web", &g0).await;
    assert_no_reload(&ns, "web", &g1).await;
    assert_eq!(reloads(&ctl), 1);
}

/// Sources named as real objects are (`app-config`, `db.credentials`, `tls-cert-v2`), not
/// created yet: with both flags, their creation and deletion reload the workloads that name
/// them, by a reload annotation or by a reference of every kind.
#[tokio::test]
async fn reload_on_create_and_delete_track_hyphenated_and_dotted_names() {
    let ns = TestNs::new("names").await;
    // Named in reload annotations, referenced nowhere (Reloader's `cm-hyphen` case).
    ns.apply_json::<Deployment>(deployment(
        "named",
        json!({"configmap.reloader.stakater.com/reload": "app-config,feature.flags",
               "secret.reloader.stakater.com/reload": "db.credentials,tls-cert-v2"}),
        env_from_configmaps(&[]),
    ))
    .await;
    // auto, with one reference of each kind.
    ns.apply_json::<Deployment>(deployment(
        "referenced",
        json!({"reloader.stakater.com/auto": "true"}),
        json!({
            "containers": [{"name": "app", "image": "example.com/app:1",
                "envFrom": [{"configMapRef": {"name": "app-config"}}],
                "env": [{"name": "DB", "valueFrom": {"secretKeyRef": {"name": "db.credentials", "key": "password"}}}],
                "volumeMounts": [{"name": "tls", "mountPath": "/tls"}, {"name": "p", "mountPath": "/p"}]}],
            "volumes": [
                {"name": "tls", "secret": {"secretName": "tls-cert-v2"}},
                {"name": "p", "projected": {"sources": [{"configMap": {"name": "feature.flags"}}]}}
            ]
        }),
    ))
    .await;
    let _ctl = Controller::start(&ns, &["--reload-on-create=true", "--reload-on-delete=true"]).await;
    for w in ["named", "referenced"] {
        await_record(&ns, w).await;
    }
    let steps: [(&str, bool); 4] =
        [("app-config", false), ("db.credentials", true), ("tls-cert-v2", true), ("feature.flags", false)];
    for (create, what) in [(true, "creation"), (false, "deletion")] {
        for (name, secret) in steps {
            let before = [pod_template(&ns, "named").await, pod_template(&ns, "referenced").await];
            match (create, secret) {
                (true, false) => ns.set_configmap(name, json!({"password": "1"})).await,
                (true, true) => ns.set_secret(name, json!({"password": "1"})).await,
                (false, false) => ns.delete::<ConfigMap>(name).await,
                (false, true) => ns.delete::<Secret>(name).await,
            }
            for (w, from) in ["named", "referenced"].iter().zip(before) {
                eventually(Duration::from_secs(5), &format!("{w} reloaded for the {what} of {name}"), || async {
                    let lrf = template_annotation(&ns, w, LAST_RELOADED_FROM).await?;
                    (pod_template(&ns, w).await != from && lrf.contains(&format!("\"name\":\"{name}\""))).then_some(())
                })
                .await;
            }
        }
    }
}
