//! Outcome tracking against the local control plane: the rollout a reload starts is followed
//! from the Deployment's status (the watch the controller already has) to its end, and
//! reported as metrics, a log line and a line of `reloader explain`; a failure is also
//! recorded on the Deployment and reported as an Event.

mod common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::events::v1::Event;
use kube::api::ListParams;
use serde_json::{Value, json};

const ROLLOUT: &str = "reloader.kube-reloader.dev/rollout";

async fn note(ns: &TestNs, name: &str) -> Option<Value> {
    let d = ns.api::<Deployment>().get(name).await.ok()?;
    serde_json::from_str(d.metadata.annotations?.get(ROLLOUT)?).ok()
}

/// Waits until the tracking note records an outcome; returns the note.
async fn await_outcome(ns: &TestNs, name: &str, within: Duration) -> Value {
    eventually(within, &format!("the rollout outcome of {name} recorded"), || async {
        note(ns, name).await.filter(|n| n.get("outcome").is_some())
    })
    .await
}

async fn event(ns: &TestNs, reason: &str) -> Event {
    eventually(Duration::from_secs(5), &format!("a {reason} Event"), || async {
        ns.api::<Event>()
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some(reason))
    })
    .await
}

fn explain(ns: &TestNs, target: &str) -> String {
    explain_with(ns, target, &[])
}

fn rollouts(ctl: &Controller, kind: &str, outcome: &str) -> f64 {
    metric(
        &ctl.ctx.metrics.encode(),
        &format!("reloader_rollouts_total{{workload_kind=\"{kind}\",outcome=\"{outcome}\"}}"),
    )
}

/// Waits until the controller has seen `n` rollouts of `kind` end with `outcome`.
async fn await_rollouts(ctl: &Controller, kind: &str, outcome: &str, n: f64, within: Duration) {
    eventually(within, &format!("{n} {kind} rollouts {outcome}"), || async {
        (rollouts(ctl, kind, outcome) == n).then_some(())
    })
    .await;
}

async fn reasons(ns: &TestNs) -> Vec<String> {
    let events = ns.api::<Event>().list(&ListParams::default()).await.unwrap().items;
    events.into_iter().filter_map(|e| e.reason).collect()
}

#[tokio::test]
async fn a_successful_rollout_is_reported_once_and_not_written() {
    let ns = TestNs::new("outcome-ok").await;
    let t0 = auto_workload(&ns).await;
    let ctl = Controller::start(&ns, &["--rollout-timeout=2m"]).await;
    await_record(&ns, "web").await;
    assert!(note(&ns, "web").await.is_none(), "adoption starts no rollout");

    ns.set_configmap("cfg", json!({"v": "2"})).await;
    await_reload(&ns, "web", &t0).await;
    let pending = eventually(Duration::from_secs(5), "the tracking note", || note(&ns, "web")).await;
    let cause = pending["cause"].as_str().unwrap().to_string();
    assert!(cause.starts_with("configmap/cfg@") && cause.len() == "configmap/cfg@".len() + 12, "{cause}");

    await_rollouts(&ctl, "Deployment", "succeeded", 1.0, Duration::from_secs(60)).await;
    let d = ns.api::<Deployment>().get("web").await.unwrap();
    let st = d.status.unwrap();
    assert!(st.observed_generation.unwrap() >= pending["generation"].as_i64().unwrap(), "{pending}");
    assert_eq!(st.available_replicas, Some(2));
    // The status is the record of a success: no second write, no Event beyond `Reloaded`.
    assert_eq!(note(&ns, "web").await.unwrap(), pending, "the note is left as the reload wrote it");
    let managers: Vec<_> =
        d.metadata.managed_fields.unwrap_or_default().into_iter().filter_map(|m| m.manager).collect();
    assert!(!managers.iter().any(|m| m == reloader::OUTCOME_FIELD_MANAGER), "{managers:?}");
    event(&ns, "Reloaded").await;
    let r = reasons(&ns).await;
    assert!(!r.iter().any(|r| r == "ReloadSucceeded"), "{r:?}");

    let text = ctl.ctx.metrics.encode();
    assert_eq!(metric(&text, "reloader_rollouts_total{workload_kind=\"Deployment\",outcome=\"failed\"}"), 0.0);
    assert_eq!(metric(&text, "reloader_reload_to_available_seconds_count{workload_kind=\"Deployment\"}"), 1.0);
    // The controller sees it end once, however often the watch delivers the workload again.
    holds(Duration::from_secs(2), "one success", || async { rollouts(&ctl, "Deployment", "succeeded") == 1.0 }).await;

    let e = explain(&ns, "deployment/web");
    assert!(e.contains(&format!("rollout: succeeded for {cause}: complete and available")), "{e}");

    // A restarted controller reads the success from the status: nothing is reported again,
    // and the next reload does not take the earlier one for unfinished.
    ctl.stop().await;
    let ctl = Controller::start(&ns, &["--rollout-timeout=2m"]).await;
    holds(Duration::from_secs(3), "no second outcome", || async {
        rollouts(&ctl, "Deployment", "succeeded") == 0.0 && rollouts(&ctl, "Deployment", "failed") == 0.0
    })
    .await;
    assert_eq!(note(&ns, "web").await.unwrap(), pending, "the note stays as written");
    let t1 = pod_template(&ns, "web").await;
    ns.set_configmap("cfg", json!({"v": "3"})).await;
    await_reload(&ns, "web", &t1).await;
    await_rollouts(&ctl, "Deployment", "succeeded", 1.0, Duration::from_secs(60)).await;
    assert_eq!(rollouts(&ctl, "Deployment", "superseded"), 0.0, "the first rollout had ended");
}

#[tokio::test]
async fn a_rollout_past_its_progress_deadline_is_reported_failed() {
    let ns = TestNs::new("outcome-fail").await;
    ns.set_configmap("cfg", json!({"v": "1"})).await;
    // Pods no node can take: they stay Pending, never ready, and the Deployment exceeds its
    // 5 s progress deadline.
    let mut spec = env_from_configmaps(&["cfg"]);
    spec["nodeSelector"] = json!({"kube-reloader.dev/no-such-node": "true"});
    let mut d = deployment("web", json!({"reloader.stakater.com/auto": "true"}), spec);
    d["spec"]["progressDeadlineSeconds"] = json!(5);
    ns.apply_json::<Deployment>(d).await;
    // The first rollout exceeds its deadline before any reload: a condition left from it must
    // not be taken for the outcome of the reload's rollout.
    eventually(Duration::from_secs(30), "the initial rollout past its deadline", || async {
        let d = ns.api::<Deployment>().get("web").await.ok()?;
        d.status?.conditions?.into_iter().find(|c| c.reason.as_deref() == Some("ProgressDeadlineExceeded"))
    })
    .await;
    let ctl = Controller::start(&ns, &["--rollout-timeout=5m"]).await;
    let t0 = pod_template(&ns, "web").await;
    await_record(&ns, "web").await;

    tokio::time::sleep(Duration::from_millis(1100)).await; // a later second than the old deadline
    ns.set_configmap("cfg", json!({"v": "2"})).await;
    await_reload(&ns, "web", &t0).await;
    let pending = eventually(Duration::from_secs(5), "the tracking note", || note(&ns, "web")).await;
    assert!(pending.get("outcome").is_none(), "the old deadline is not this rollout's: {pending}");
    let cause = pending["cause"].as_str().unwrap().to_string();

    let done = await_outcome(&ns, "web", Duration::from_secs(60)).await;
    assert_eq!(done["outcome"], "failed", "{done}");
    let reason = done["reason"].as_str().unwrap_or_default();
    assert!(reason.starts_with("ProgressDeadlineExceeded"), "{done}");
    assert!(done["ended"].as_i64().unwrap() - done["at"].as_i64().unwrap() >= 5, "not before the deadline: {done}");

    let ev = event(&ns, "ReloadRolloutFailed").await;
    assert_eq!(ev.type_.as_deref(), Some("Warning"));
    let n = ev.note.unwrap_or_default();
    assert!(n.contains(&cause) && n.contains("ProgressDeadlineExceeded"), "{n}");

    let text = ctl.ctx.metrics.encode();
    assert_eq!(metric(&text, "reloader_rollouts_total{workload_kind=\"Deployment\",outcome=\"failed\"}"), 1.0);
    assert_eq!(metric(&text, "reloader_reload_to_available_seconds_count{workload_kind=\"Deployment\"}"), 0.0);
    let e = explain(&ns, "deployment/web");
    assert!(e.contains(&format!("rollout: failed for {cause}: ProgressDeadlineExceeded")), "{e}");
}

#[tokio::test]
async fn the_rollout_timeout_fails_a_rollout_that_never_ends() {
    let ns = TestNs::new("outcome-timeout").await;
    ns.set_configmap("cfg", json!({"v": "1"})).await;
    // No progress deadline of its own would fire in time (the default is 600 s).
    let mut spec = env_from_configmaps(&["cfg"]);
    spec["nodeSelector"] = json!({"kube-reloader.dev/no-such-node": "true"});
    ns.apply_json::<Deployment>(deployment("web", json!({"reloader.stakater.com/auto": "true"}), spec)).await;
    let ctl = Controller::start(&ns, &["--rollout-timeout=4s"]).await;
    let t0 = pod_template(&ns, "web").await;
    await_record(&ns, "web").await;
    ns.set_configmap("cfg", json!({"v": "2"})).await;
    await_reload(&ns, "web", &t0).await;
    let done = await_outcome(&ns, "web", Duration::from_secs(20)).await;
    assert_eq!(done["outcome"], "failed", "{done}");
    assert!(done["reason"].as_str().unwrap_or_default().contains("--rollout-timeout"), "{done}");
    assert!(done["ended"].as_i64().unwrap() - done["at"].as_i64().unwrap() >= 4, "{done}");
    event(&ns, "ReloadRolloutFailed").await;
    let text = ctl.ctx.metrics.encode();
    assert_eq!(metric(&text, "reloader_rollouts_total{workload_kind=\"Deployment\",outcome=\"failed\"}"), 1.0);
}

/// The tracking note of any kind, by resource.
async fn note_of<K>(ns: &TestNs, name: &str) -> Option<Value>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let o = ns.api::<K>().get(name).await.ok()?;
    serde_json::from_str(o.meta().annotations.as_ref()?.get(ROLLOUT)?).ok()
}

fn sts(name: &str, pod_spec: Value) -> Value {
    json!({"apiVersion":"apps/v1","kind":"StatefulSet",
        "metadata":{"name":name,"annotations":{"reloader.stakater.com/auto":"true"}},
        "spec":{"replicas":2,"serviceName":name,"selector":{"matchLabels":{"app":name}},
                "template":{"metadata":{"labels":{"app":name}},"spec":pod_spec}}})
}

#[tokio::test]
async fn statefulset_and_daemonset_rollouts_are_followed_to_the_end() {
    use k8s_openapi::api::apps::v1::{DaemonSet, StatefulSet};
    let ns = TestNs::new("outcome-kinds").await;
    ns.set_configmap("cfg", json!({"v": "1"})).await;
    ns.apply_json::<StatefulSet>(sts("db", env_from_configmaps(&["cfg"]))).await;
    ns.apply_json::<DaemonSet>(json!({"apiVersion":"apps/v1","kind":"DaemonSet",
        "metadata":{"name":"agent","annotations":{"reloader.stakater.com/auto":"true"}},
        "spec":{"selector":{"matchLabels":{"app":"agent"}},
                "template":{"metadata":{"labels":{"app":"agent"}},"spec":env_from_configmaps(&["cfg"])}}}))
        .await;
    // A StatefulSet whose pods no node takes: its rollout never ends, and --rollout-timeout
    // fails it (StatefulSets have no progress deadline of their own).
    let mut stuck = env_from_configmaps(&["cfg"]);
    stuck["nodeSelector"] = json!({"kube-reloader.dev/no-such-node": "true"});
    ns.apply_json::<StatefulSet>(sts("stuck", stuck)).await;
    let ctl = Controller::start(&ns, &["--rollout-timeout=20s"]).await;
    let rec = |o: Option<std::collections::BTreeMap<String, String>>| o.and_then(|a| a.get(RECORD).cloned());
    eventually(Duration::from_secs(10), "records", || async {
        let a = rec(ns.api::<StatefulSet>().get("db").await.ok()?.metadata.annotations);
        let b = rec(ns.api::<DaemonSet>().get("agent").await.ok()?.metadata.annotations);
        let c = rec(ns.api::<StatefulSet>().get("stuck").await.ok()?.metadata.annotations);
        (a.is_some() && b.is_some() && c.is_some()).then_some(())
    })
    .await;
    ns.set_configmap("cfg", json!({"v": "2"})).await;

    let done = |n: Option<Value>| n.filter(|n| n.get("outcome").is_some());
    await_rollouts(&ctl, "StatefulSet", "succeeded", 1.0, Duration::from_secs(60)).await;
    let st = ns.api::<StatefulSet>().get("db").await.unwrap().status.unwrap();
    assert_eq!(st.current_revision, st.update_revision, "{st:?}");
    assert_eq!(st.ready_replicas, Some(2));
    await_rollouts(&ctl, "DaemonSet", "succeeded", 1.0, Duration::from_secs(60)).await;
    for (name, n) in
        [("db", note_of::<StatefulSet>(&ns, "db").await), ("agent", note_of::<DaemonSet>(&ns, "agent").await)]
    {
        let n = n.unwrap_or_else(|| panic!("{name} has its tracking note"));
        assert!(n.get("outcome").is_none(), "a success is not written: {n}");
    }
    let stuck = eventually(Duration::from_secs(60), "the stuck StatefulSet's outcome", || async {
        done(note_of::<StatefulSet>(&ns, "stuck").await)
    })
    .await;
    assert_eq!(stuck["outcome"], "failed", "{stuck}");
    assert!(stuck["reason"].as_str().unwrap_or_default().contains("--rollout-timeout"), "{stuck}");

    let text = ctl.ctx.metrics.encode();
    for (kind, outcome, n) in
        [("StatefulSet", "succeeded", 1.0), ("DaemonSet", "succeeded", 1.0), ("StatefulSet", "failed", 1.0)]
    {
        let series = format!("reloader_rollouts_total{{workload_kind=\"{kind}\",outcome=\"{outcome}\"}}");
        assert_eq!(metric(&text, &series), n, "{series}");
    }
    eventually(Duration::from_secs(5), "a failure Event on the stuck one", || async {
        let events = ns.api::<Event>().list(&ListParams::default()).await.ok()?.items;
        events
            .iter()
            .any(|e| {
                e.reason.as_deref() == Some("ReloadRolloutFailed")
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("stuck")
            })
            .then_some(())
    })
    .await;
    let r = reasons(&ns).await;
    assert!(!r.iter().any(|r| r == "ReloadSucceeded"), "{r:?}");
}

#[tokio::test]
async fn a_daemonset_whose_new_pods_never_become_available_fails_on_the_timeout() {
    use k8s_openapi::api::apps::v1::DaemonSet;
    let ns = TestNs::new("outcome-ds-fail").await;
    ns.set_configmap("cfg", json!({"v": "1"})).await;
    // Pods that ask for more CPU than any node has: a DaemonSet schedules one per node, none
    // ever runs, and its rollout never ends (DaemonSets have no progress deadline of their own).
    let mut spec = env_from_configmaps(&["cfg"]);
    spec["containers"][0]["resources"] = json!({"requests": {"cpu": "1000"}});
    ns.apply_json::<DaemonSet>(json!({"apiVersion":"apps/v1","kind":"DaemonSet",
        "metadata":{"name":"agent","annotations":{"reloader.stakater.com/auto":"true"}},
        "spec":{"selector":{"matchLabels":{"app":"agent"}},
                "template":{"metadata":{"labels":{"app":"agent"}},"spec":spec}}}))
        .await;
    let ctl = Controller::start(&ns, &["--rollout-timeout=6s"]).await;
    eventually(Duration::from_secs(10), "the record", || async {
        ns.api::<DaemonSet>().get("agent").await.ok()?.metadata.annotations?.get(RECORD).cloned()
    })
    .await;
    ns.set_configmap("cfg", json!({"v": "2"})).await;
    let pending = eventually(Duration::from_secs(10), "the tracking note", || note_of::<DaemonSet>(&ns, "agent")).await;
    assert!(pending.get("outcome").is_none(), "{pending}");
    let done = eventually(Duration::from_secs(30), "the DaemonSet's outcome", || async {
        note_of::<DaemonSet>(&ns, "agent").await.filter(|n| n.get("outcome").is_some())
    })
    .await;
    assert_eq!(done["outcome"], "failed", "{done}");
    let reason = done["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("--rollout-timeout") && reason.contains("available"), "{done}");
    assert!(done["ended"].as_i64().unwrap() - done["at"].as_i64().unwrap() >= 6, "{done}");
    let ev = event(&ns, "ReloadRolloutFailed").await;
    assert_eq!(ev.regarding.and_then(|r| r.name).as_deref(), Some("agent"));
    assert!(ev.note.unwrap_or_default().contains(pending["cause"].as_str().unwrap()));
    let text = ctl.ctx.metrics.encode();
    assert_eq!(metric(&text, "reloader_rollouts_total{workload_kind=\"DaemonSet\",outcome=\"failed\"}"), 1.0);
    assert_eq!(metric(&text, "reloader_rollouts_total{workload_kind=\"DaemonSet\",outcome=\"succeeded\"}"), 0.0);
    let e = explain(&ns, "daemonset/agent");
    assert!(e.contains("rollout: failed for configmap/cfg@"), "{e}");
}

async fn rollout_note(api: &kube::Api<kube::api::DynamicObject>, name: &str) -> Option<Value> {
    let o = api.get(name).await.ok()?;
    serde_json::from_str(o.metadata.annotations?.get(ROLLOUT)?).ok()
}

async fn rollout_outcome(api: &kube::Api<kube::api::DynamicObject>, name: &str) -> Value {
    eventually(Duration::from_secs(10), &format!("{name}'s outcome"), || async {
        rollout_note(api, name).await.filter(|n| n.get("outcome").is_some())
    })
    .await
}

/// Argo Rollouts: the outcome follows the phase the Argo Rollouts controller computes. No such
/// controller runs here, so the test writes the status it would (observedGeneration, phase,
/// message) through the status subresource.
#[tokio::test]
async fn argo_rollout_outcomes_follow_their_phase() {
    use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
    install_rollout_crd();
    let ns = TestNs::new("outcome-argo").await;
    ns.set_configmap("cfg", json!({"v": "1"})).await;
    let ar = ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Rollout"));
    let api: Api<DynamicObject> = Api::namespaced_with(ns.client.clone(), &ns.name, &ar);
    let pp = PatchParams::apply("reloader-tests").force();
    for name in ["good", "bad"] {
        let r = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": name, "annotations": {"reloader.stakater.com/auto": "true"}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}}, "strategy": {"canary": {}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [
                         {"name": "app", "image": "example.com/app:1", "envFrom": [{"configMapRef": {"name": "cfg"}}]}]}}}});
        api.patch(name, &pp, &Patch::Apply(&r)).await.unwrap();
    }
    // As the Argo Rollouts controller would, for the generation it saw.
    let status = |generation: i64, phase: &str, message: &str| {
        Patch::Merge(
            json!({"status": {"observedGeneration": generation.to_string(), "phase": phase, "message": message}}),
        )
    };
    for name in ["good", "bad"] {
        let g = api.get(name).await.unwrap().metadata.generation.unwrap();
        api.patch_status(name, &PatchParams::default(), &status(g, "Healthy", "")).await.unwrap();
    }
    let ctl = Controller::start(&ns, &["--is-Argo-Rollouts=true", "--rollout-timeout=2m"]).await;
    let note = |name: &'static str| rollout_note(&api, name);
    for name in ["good", "bad"] {
        eventually(Duration::from_secs(10), &format!("{name} recorded"), || async {
            api.get(name).await.ok()?.metadata.annotations?.contains_key(RECORD).then_some(())
        })
        .await;
    }
    ns.set_configmap("cfg", json!({"v": "2"})).await;
    let mut generations = std::collections::BTreeMap::new();
    for name in ["good", "bad"] {
        let pending = eventually(Duration::from_secs(10), &format!("{name}'s tracking note"), || note(name)).await;
        assert!(pending.get("outcome").is_none(), "{pending}");
        let g = api.get(name).await.unwrap().metadata.generation.unwrap();
        assert_eq!(pending["generation"].as_i64(), Some(g), "the note names the generation the reload made");
        generations.insert(name, g);
    }
    // The old generation's Healthy phase says nothing of this rollout; nor does Progressing.
    holds(Duration::from_secs(2), "no outcome before the new generation is observed", || async {
        note("good").await.is_some_and(|n| n.get("outcome").is_none())
    })
    .await;
    for name in ["good", "bad"] {
        let p = status(generations[name], "Progressing", "more replicas need to be updated");
        api.patch_status(name, &PatchParams::default(), &p).await.unwrap();
    }
    holds(Duration::from_secs(2), "no outcome while progressing", || async {
        note("good").await.is_some_and(|n| n.get("outcome").is_none())
            && note("bad").await.is_some_and(|n| n.get("outcome").is_none())
    })
    .await;
    api.patch_status("good", &PatchParams::default(), &status(generations["good"], "Healthy", "")).await.unwrap();
    let degraded = "ProgressDeadlineExceeded: ReplicaSet \"bad-7c9d\" has timed out progressing.";
    api.patch_status("bad", &PatchParams::default(), &status(generations["bad"], "Degraded", degraded)).await.unwrap();

    await_rollouts(&ctl, "Rollout", "succeeded", 1.0, Duration::from_secs(10)).await;
    let good = note("good").await.unwrap();
    assert!(good.get("outcome").is_none(), "a success is not written: {good}");
    let bad = rollout_outcome(&api, "bad").await;
    assert_eq!(bad["outcome"], "failed", "{bad}");
    assert_eq!(bad["reason"].as_str(), Some(format!("Degraded: {degraded}").as_str()), "{bad}");

    eventually(Duration::from_secs(5), "a failure Event on the bad one", || async {
        let events = ns.api::<Event>().list(&ListParams::default()).await.ok()?.items;
        events
            .iter()
            .any(|e| {
                e.reason.as_deref() == Some("ReloadRolloutFailed")
                    && e.regarding.as_ref().and_then(|r| r.kind.as_deref()) == Some("Rollout")
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("bad")
                    && e.note.as_deref().is_some_and(|n| n.contains("configmap/cfg@"))
            })
            .then_some(())
    })
    .await;
    let text = ctl.ctx.metrics.encode();
    for (outcome, n) in [("succeeded", 1.0), ("failed", 1.0)] {
        let series = format!("reloader_rollouts_total{{workload_kind=\"Rollout\",outcome=\"{outcome}\"}}");
        assert_eq!(metric(&text, &series), n, "{series}");
    }
    assert_eq!(metric(&text, "reloader_reload_to_available_seconds_count{workload_kind=\"Rollout\"}"), 1.0);
}
