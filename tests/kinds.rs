//! CronJobs, Jobs and Argo Rollouts, and the controls: pause period, storm brake, dry-run and
//! ignored workload types.

mod common;

use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::{Value, json};

fn pod_template(cm: &str) -> Value {
    json!({"spec": {"restartPolicy": "Never", "containers": [{"name": "app", "image": "example.com/app:1", "envFrom": [{"configMapRef": {"name": cm}}]}]}})
}

async fn jobs(ns: &TestNs) -> Vec<Job> {
    ns.api::<Job>().list(&ListParams::default()).await.expect("list jobs").items
}

fn cronjob(name: &str, suspend: bool) -> Value {
    json!({"apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": name, "annotations": {"reloader.stakater.com/auto": "true"}},
        "spec": {"schedule": "0 0 1 1 *", "suspend": suspend,
                 "jobTemplate": {"metadata": {"labels": {"from": name}}, "spec": {"template": pod_template("cfg")}}}})
}

#[tokio::test]
async fn a_cronjob_change_creates_one_job_and_a_suspended_one_none() {
    let ns = TestNs::new("cronjob").await;
    ns.set_configmap("cfg", json!({"v": "1"})).await;
    ns.apply_json::<CronJob>(cronjob("nightly", false)).await;
    ns.apply_json::<CronJob>(cronjob("paused", true)).await;
    let _ctl = Controller::start(&ns, &[]).await;
    let cj = ns.api::<CronJob>();
    eventually(Duration::from_secs(10), "both CronJobs recorded", || async {
        let a = cj.get("nightly").await.ok()?.metadata.annotations?.contains_key(RECORD);
        let b = cj.get("paused").await.ok()?.metadata.annotations?.contains_key(RECORD);
        (a && b).then_some(())
    })
    .await;
    assert!(jobs(&ns).await.is_empty(), "adoption spawns nothing");
    let before_paused = cj.get("paused").await.unwrap().metadata.annotations.unwrap()[RECORD].clone();

    ns.set_configmap("cfg", json!({"v": "2"})).await;
    let job = eventually(Duration::from_secs(2), "a Job spawned from nightly", || async {
        jobs(&ns).await.into_iter().find(|j| j.metadata.name.as_deref().is_some_and(|n| n.starts_with("nightly-")))
    })
    .await;
    let annotations = job.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(annotations.get("cronjob.kubernetes.io/instantiate").map(String::as_str), Some("manual"));
    let owner = &job.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.name.as_str(), owner.controller), ("CronJob", "nightly", Some(true)));
    assert_eq!(job.metadata.labels.as_ref().and_then(|l| l.get("from")).map(String::as_str), Some("nightly"));
    let tpl = serde_json::to_string(&job.spec.unwrap().template).unwrap();
    assert!(tpl.contains(LAST_RELOADED_FROM), "{tpl}");

    // The suspended CronJob records the change and spawns nothing.
    eventually(Duration::from_secs(5), "the suspended CronJob's record updated", || async {
        let r = cj.get("paused").await.ok()?.metadata.annotations?.get(RECORD).cloned()?;
        (r != before_paused).then_some(())
    })
    .await;
    holds(Duration::from_secs(3), "no second Job", || async { jobs(&ns).await.len() == 1 }).await;
    let all = jobs(&ns).await;
    assert_eq!(all.len(), 1, "exactly one Job: {:?}", all.iter().map(|j| j.metadata.name.clone()).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_job_is_recreated_with_the_new_template() {
    let ns = TestNs::new("job").await;
    ns.set_configmap("cfg", json!({"v": "1"})).await;
    ns.apply_json::<Job>(json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "migrate", "annotations": {"reloader.stakater.com/auto": "true"}},
        "spec": {"backoffLimit": 0, "template": pod_template("cfg")}}))
        .await;
    let _ctl = Controller::start(&ns, &[]).await;
    let api = ns.api::<Job>();
    eventually(Duration::from_secs(10), "the Job recorded", || async {
        api.get("migrate").await.ok()?.metadata.annotations?.contains_key(RECORD).then_some(())
    })
    .await;
    let old = api.get("migrate").await.unwrap();
    ns.set_configmap("cfg", json!({"v": "2"})).await;
    let new = eventually(Duration::from_secs(5), "the Job re-created", || async {
        let j = api.get_opt("migrate").await.ok().flatten()?;
        (j.metadata.uid != old.metadata.uid).then_some(j)
    })
    .await;
    let spec = new.spec.unwrap();
    let tpl = serde_json::to_string(&spec.template).unwrap();
    assert!(tpl.contains(LAST_RELOADED_FROM), "{tpl}");
    let labels = spec.template.metadata.unwrap().labels.unwrap_or_default();
    assert_eq!(
        labels.get("batch.kubernetes.io/controller-uid"),
        new.metadata.uid.as_ref(),
        "labels regenerated for the new uid"
    );
    assert!(new.metadata.annotations.unwrap().contains_key(RECORD), "the new Job carries the record");
    // And it settles: no second re-creation.
    let uid = new.metadata.uid.clone();
    holds(Duration::from_secs(4), "the Job stays", || async {
        api.get_opt("migrate").await.ok().flatten().is_some_and(|j| j.metadata.uid == uid)
    })
    .await;
}

#[tokio::test]
async fn argo_rollouts_restart_or_update_their_template() {
    install_rollout_crd();
    let ns = TestNs::new("argo").await;
    ns.set_configmap("cfg", json!({"v": "1"})).await;
    let ar = ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Rollout"));
    let api: Api<DynamicObject> = Api::namespaced_with(ns.client.clone(), &ns.name, &ar);
    let rollout = |name: &str, restart: bool| {
        let mut ann = json!({"reloader.stakater.com/auto": "true"});
        if restart {
            ann["reloader.stakater.com/rollout-strategy"] = json!("restart");
        }
        json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": name, "annotations": ann},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "strategy": {"canary": {}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "app", "image": "example.com/app:1", "envFrom": [{"configMapRef": {"name": "cfg"}}]}]}}}})
    };
    let pp = PatchParams::apply("reloader-tests").force();
    for (name, restart) in [("restarted", true), ("updated", false)] {
        api.patch(name, &pp, &Patch::Apply(&rollout(name, restart))).await.unwrap();
    }
    // A Rollout with workloadRef has no template: it must not crash anything (Reloader #751).
    let by_ref = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "by-ref", "annotations": {"reloader.stakater.com/auto": "true"}},
        "spec": {"replicas": 1, "workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "elsewhere"}, "strategy": {"canary": {}}}});
    api.patch("by-ref", &pp, &Patch::Apply(&by_ref)).await.unwrap();

    let _ctl = Controller::start(&ns, &["--is-Argo-Rollouts=true"]).await;
    for name in ["restarted", "updated"] {
        eventually(Duration::from_secs(10), &format!("{name} recorded"), || async {
            api.get(name).await.ok()?.metadata.annotations?.contains_key(RECORD).then_some(())
        })
        .await;
    }
    let template = |o: &DynamicObject| o.data["spec"]["template"].to_string();
    let before_restart = api.get("restarted").await.unwrap();
    let before_update = api.get("updated").await.unwrap();
    ns.set_configmap("cfg", json!({"v": "2"})).await;
    eventually(Duration::from_secs(3), "restartAt set, template untouched", || async {
        let o = api.get("restarted").await.ok()?;
        (o.data["spec"]["restartAt"].is_string() && template(&o) == template(&before_restart)).then_some(())
    })
    .await;
    eventually(Duration::from_secs(3), "template updated, no restartAt", || async {
        let o = api.get("updated").await.ok()?;
        (template(&o) != template(&before_update) && o.data["spec"]["restartAt"].is_null()).then_some(())
    })
    .await;
    let updated = api.get("updated").await.unwrap();
    assert!(template(&updated).contains("last-reloaded-from"));
    assert_eq!(updated.data["spec"]["strategy"], json!({"canary": {}}), "fields we do not model are kept");
}

#[tokio::test]
async fn ignored_workload_types_are_not_touched() {
    let ns = TestNs::new("ignored-kinds").await;
    ns.set_configmap("cfg", json!({"v": "1"})).await;
    ns.apply_json::<Job>(json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "migrate", "annotations": {"reloader.stakater.com/auto": "true"}},
        "spec": {"template": pod_template("cfg")}}))
        .await;
    ns.apply_json::<CronJob>(cronjob("nightly", false)).await;
    // The control: a Deployment using the same ConfigMap, which is not an ignored type.
    ns.apply_json::<Deployment>(deployment(
        "web",
        json!({"reloader.stakater.com/auto": "true"}),
        env_from_configmaps(&["cfg"]),
    ))
    .await;
    let _ctl = Controller::start(&ns, &["--ignored-workload-types=jobs,cronjobs"]).await;
    await_record(&ns, "web").await;
    let t0 = common::pod_template(&ns, "web").await;
    let uid = ns.api::<Job>().get("migrate").await.unwrap().metadata.uid;
    ns.set_configmap("cfg", json!({"v": "2"})).await;
    // The controller runs and acted on the change...
    await_reload(&ns, "web", &t0).await;
    // ...and left the Job and the CronJob alone: no record, no re-creation, no Job spawned.
    holds(Duration::from_secs(4), "no Job touched or spawned", || async {
        let js = jobs(&ns).await;
        js.len() == 1
            && js[0].metadata.uid == uid
            && !js[0].metadata.annotations.clone().unwrap_or_default().contains_key(RECORD)
    })
    .await;
    let cj = ns.api::<CronJob>().get("nightly").await.unwrap();
    assert!(!cj.metadata.annotations.unwrap_or_default().contains_key(RECORD), "the CronJob is not recorded");
}

#[tokio::test]
async fn a_paused_deployment_resumes_after_the_period_across_a_restart() {
    let ns = TestNs::new("pause").await;
    ns.set_configmap("cfg", json!({"v": "1"})).await;
    let ann = json!({"reloader.stakater.com/auto": "true", "deployment.reloader.stakater.com/pause-period": "6s"});
    ns.apply_json::<Deployment>(deployment("web", ann, env_from_configmaps(&["cfg"]))).await;
    let ctl = Controller::start(&ns, &[]).await;
    await_record(&ns, "web").await;
    let t0 = common::pod_template(&ns, "web").await;
    ns.set_configmap("cfg", json!({"v": "2"})).await;
    await_reload(&ns, "web", &t0).await;
    let api = ns.api::<Deployment>();
    let d = api.get("web").await.unwrap();
    assert_eq!(d.spec.as_ref().unwrap().paused, Some(true), "paused with the reload");
    assert!(d.metadata.annotations.as_ref().unwrap().contains_key("deployment.reloader.stakater.com/paused-at"));
    let paused = Instant::now();
    // The controller goes away mid-pause; its successor resumes from the recorded paused-at.
    ctl.stop().await;
    holds(Duration::from_secs(1), "still paused while no controller runs", || async {
        api.get("web").await.is_ok_and(|d| d.spec.and_then(|s| s.paused) == Some(true))
    })
    .await;
    let _ctl = Controller::start(&ns, &[]).await;
    let d = eventually(Duration::from_secs(12), "resumed", || async {
        let d = api.get("web").await.ok()?;
        (d.spec.as_ref()?.paused != Some(true)).then_some(d)
    })
    .await;
    assert!(paused.elapsed() >= Duration::from_secs(4), "not before the period: {:?}", paused.elapsed());
    assert!(!d.metadata.annotations.unwrap_or_default().contains_key("deployment.reloader.stakater.com/paused-at"));
}

#[tokio::test]
async fn a_malformed_pause_period_is_reported_and_the_reload_happens_unpaused() {
    let ns = TestNs::new("pause-bad").await;
    ns.set_configmap("cfg", json!({"v": "1"})).await;
    let ann =
        json!({"reloader.stakater.com/auto": "true", "deployment.reloader.stakater.com/pause-period": "five minutes"});
    ns.apply_json::<Deployment>(deployment("web", ann, env_from_configmaps(&["cfg"]))).await;
    let _ctl = Controller::start(&ns, &[]).await;
    await_record(&ns, "web").await;
    let t0 = common::pod_template(&ns, "web").await;
    ns.set_configmap("cfg", json!({"v": "2"})).await;
    await_reload(&ns, "web", &t0).await;
    let d = ns.api::<Deployment>().get("web").await.unwrap();
    assert_ne!(d.spec.unwrap().paused, Some(true));
    eventually(Duration::from_secs(5), "an InvalidAnnotation event", || async {
        ns.api::<Event>().list(&ListParams::default()).await.ok()?.items.into_iter().find(|e| {
            e.reason.as_deref() == Some("InvalidAnnotation")
                && e.note.as_deref().is_some_and(|n| n.contains("pause-period"))
        })
    })
    .await;
}

#[tokio::test]
async fn a_flapping_secret_causes_a_bounded_number_of_rollouts() {
    let ns = TestNs::new("storm").await;
    ns.set_secret("contested", json!({"v": "0"})).await;
    let spec = json!({"containers": [{"name": "app", "image": "example.com/app:1", "envFrom": [{"secretRef": {"name": "contested"}}]}]});
    ns.apply_json::<Deployment>(deployment("web", json!({"reloader.stakater.com/auto": "true"}), spec)).await;
    let _ctl =
        Controller::start(&ns, &["--min-reload-interval=2s", "--flap-limit=2", "--flap-window=1m", "--flap-settle=3s"])
            .await;
    await_record(&ns, "web").await;
    // Two writers fighting: 20 flips in 10 s, the last one to a value never seen before.
    for i in 0..20 {
        let v = if i == 19 { "final".to_string() } else { format!("{}", i % 2 + 1) };
        ns.set_secret("contested", json!({ "v": v })).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let during = replica_sets(&ns, "web").await - 1;
    // Bound: 2 reloads (the flap limit), then held; once quiet (twice the flips' rhythm, 2 s
    // to 3 s), one more with the final content. Without the brake this would be up to 20.
    assert!(during <= 2, "{during} rollouts while flapping");
    let held = eventually(Duration::from_secs(5), "a ReloadHeld warning", || async {
        ns.api::<Event>()
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("ReloadHeld"))
    })
    .await;
    assert_eq!(held.type_.as_deref(), Some("Warning"));
    eventually(Duration::from_secs(8), "the final content applied after the sources settle", || async {
        (replica_sets(&ns, "web").await - 1 == during + 1).then_some(())
    })
    .await;
    holds(Duration::from_secs(3), "no rollout after the final content", || async {
        replica_sets(&ns, "web").await - 1 == during + 1
    })
    .await;
    let total = replica_sets(&ns, "web").await - 1;
    assert!(total <= 3, "{total} rollouts in all for 20 flips");
}

#[tokio::test]
async fn dry_run_changes_no_object() {
    let ns = TestNs::new("dry").await;
    auto_workload(&ns).await;
    let before = ns.api::<Deployment>().get("web").await.unwrap();
    let ctl = Controller::start(&ns, &["--dry-run"]).await;
    ns.set_configmap("cfg", json!({"v": "2"})).await;
    // The controller decided to reload (counted instead of written)...
    eventually(Duration::from_secs(5), "the dry-run reload counted", || async {
        ctl.ctx.metrics.encode().contains("reloader_dry_run_total{action=\"reload\"} 1").then_some(())
    })
    .await;
    // ...and writes nothing, then or later.
    holds(Duration::from_secs(2), "no record and no template change", || async {
        let d = ns.api::<Deployment>().get("web").await.unwrap();
        !d.metadata.annotations.unwrap_or_default().contains_key(RECORD) && d.spec == before.spec
    })
    .await;
    let after = ns.api::<Deployment>().get("web").await.unwrap();
    // (Its status moves as the Deployment controller works; its spec and metadata must not.)
    assert!(!after.metadata.annotations.clone().unwrap_or_default().contains_key(RECORD), "no record written");
    assert_eq!(before.spec, after.spec, "no template change");
    let managers: Vec<String> =
        after.metadata.managed_fields.unwrap_or_default().into_iter().filter_map(|m| m.manager).collect();
    assert!(!managers.iter().any(|m| m == "kube-reloader"), "{managers:?}");
    let text = ctl.ctx.metrics.encode();
    assert!(text.contains("reloader_dry_run_total{action=\"record\"} 1"), "{text}");
    assert!(text.contains("reloader_dry_run_total{action=\"reload\"} 1"), "{text}");
}
