//! The wording of failures, with the binary as a process at its default log level: a refused
//! reload is a `ReloadFail` Event whose note carries the API server's message once (not kube's
//! `Display`, which repeats it and appends a dump of the Status); an Event the API refuses is
//! one warn line per failure, with the message once, and counted; and an Event deleted while
//! its series goes on (the API server's `--event-ttl`) is published again, not patched in vain.

mod common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::events::v1::Event;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

async fn events_about(ns: &TestNs, name: &str, reason: &str) -> Vec<Event> {
    let list = ns.api::<Event>().list(&ListParams::default()).await.expect("list events").items;
    list.into_iter()
        .filter(|e| {
            e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name) && e.reason.as_deref() == Some(reason)
        })
        .collect()
}

const FROZEN: &str = "pod template changes of frozen are refused";
const QUIET: &str = "events about quiet are refused";

#[tokio::test]
async fn a_refused_reload_and_a_refused_event_are_each_told_once() {
    let ns = TestNs::new("wording").await;
    ns.set_configmap("cfg", json!({"v": "1"})).await;
    for name in ["frozen", "quiet"] {
        ns.apply_json::<Deployment>(deployment(
            name,
            json!({"reloader.stakater.com/auto": "true"}),
            env_from_configmaps(&["cfg"]),
        ))
        .await;
    }
    let template = DenyPolicy::new(
        &ns,
        "deny-frozen",
        json!([{"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["UPDATE"], "resources": ["deployments"]}]),
        "object.metadata.name != 'frozen' || object.spec.template == oldObject.spec.template",
        FROZEN,
    );
    let events = DenyPolicy::new(
        &ns,
        "deny-quiet-events",
        json!([{"apiGroups": ["events.k8s.io"], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["events"]}]),
        "!has(object.regarding) || !has(object.regarding.name) || object.regarding.name != 'quiet'",
        QUIET,
    );
    let deployments = ns.api::<Deployment>();
    template
        .await_enforced(|| async {
            let p = json!({"spec": {"template": {"metadata": {"annotations": {"example.com/probe": "1"}}}}});
            let dry_run = PatchParams { dry_run: true, ..Default::default() };
            deployments.patch("frozen", &dry_run, &Patch::Merge(&p)).await.is_err()
        })
        .await;
    let event_api = ns.api::<Event>();
    events
        .await_enforced(|| async {
            let probe: Event = serde_json::from_value(json!({
                "metadata": {"name": "probe"}, "eventTime": "2026-01-01T00:00:00.000000Z",
                "reportingController": "tests/probe", "reportingInstance": "probe", "action": "Probe",
                "reason": "Probe", "type": "Normal",
                "regarding": {"kind": "Deployment", "name": "quiet", "namespace": ns.name}
            }))
            .unwrap();
            let dry_run = PostParams { dry_run: true, ..Default::default() };
            event_api.create(&dry_run, &probe).await.is_err()
        })
        .await;

    // The default log level, as users run it.
    let p = Process::start(&[&ns], &[], &[("RUST_LOG", "")]);
    p.await_ready().await;
    await_record(&ns, "frozen").await;
    await_record(&ns, "quiet").await;

    let t0 = pod_template(&ns, "quiet").await;
    ns.set_configmap("cfg", json!({"v": "2"})).await;
    await_reload(&ns, "quiet", &t0).await;

    // The refused reload: one ReloadFail Event whose note has the API message once.
    let fail = eventually(Duration::from_secs(10), "a ReloadFail Event on frozen", || async {
        events_about(&ns, "frozen", "ReloadFail").await.into_iter().next()
    })
    .await;
    let note = fail.note.clone().unwrap_or_default();
    assert!(
        note.starts_with(&format!(
            "Update for 'frozen' of type 'Deployment' in namespace '{}' failed with error deployments.apps \"frozen\" is forbidden: ValidatingAdmissionPolicy",
            ns.name
        )),
        "{note}"
    );
    assert_eq!(note.matches(FROZEN).count(), 1, "the API message once: {note}");
    assert!(!note.contains("Status {") && !note.contains("ApiError"), "no dump of the Status: {note}");
    eprintln!("ReloadFail note: {note}");

    // The refused Event about quiet, its `Reloaded`: one warn line, the message once, counted
    // once. Once its rollout is complete nothing more is published (a success has no Event).
    let succeeded = "reloader_rollouts_total{workload_kind=\"Deployment\",outcome=\"succeeded\"}";
    let (metrics, logs) = eventually(Duration::from_secs(30), "quiet's rollout seen complete", || async {
        let (_, text) = p.get("/metrics").await?;
        (metric(&text, succeeded) >= 1.0 && metric(&text, "reloader_errors_total{type=\"event_publish\"}") >= 1.0)
            .then(|| (text, p.logs()))
    })
    .await;
    assert_eq!(metric(&metrics, "reloader_errors_total{type=\"event_publish\"}"), 1.0, "one Event refused");
    let mentions: Vec<&str> = logs.lines().filter(|l| l.contains(QUIET)).collect();
    assert_eq!(mentions.len(), 1, "one log line for the refused Event:\n{logs}");
    for line in mentions {
        eprintln!("refused Event: {line}");
        assert!(line.contains(" WARN ") && line.contains("could not publish an Event"), "{line}");
        assert!(line.contains("reason=Reloaded"), "{line}");
        assert_eq!(line.matches(QUIET).count(), 1, "the message once: {line}");
        assert!(!line.contains("Status {") && !line.contains("ApiError"), "no dump of the Status: {line}");
    }
    // Each failed reload attempt is one warn line naming the write, with the message once.
    for l in logs.lines().filter(|l| l.contains(FROZEN)) {
        assert!(l.contains(" WARN ") && l.contains("reloading Deployment/"), "{l}");
        assert_eq!(l.matches(FROZEN).count(), 1, "{l}");
        assert!(!l.contains("Status {") && !l.contains("ApiError"), "{l}");
    }

    // The ReloadFail Event is deleted while frozen keeps failing (retries back off from 2 s):
    // the next failure publishes a new Event instead of patching the missing one.
    let first = fail.metadata.name.clone().unwrap();
    event_api.delete(&first, &DeleteParams::default()).await.expect("delete the Event");
    let again = eventually(Duration::from_secs(30), "a new ReloadFail Event after the first was deleted", || async {
        events_about(&ns, "frozen", "ReloadFail").await.into_iter().find(|e| e.metadata.name.as_deref() != Some(&first))
    })
    .await;
    assert_eq!(again.note.as_deref(), Some(note.as_str()));
    let (_, metrics) = p.get("/metrics").await.unwrap();
    assert_eq!(metric(&metrics, "reloader_errors_total{type=\"event_publish\"}"), 1.0, "no publish failed meanwhile");
}
