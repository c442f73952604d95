//! Bad input, one test per row of the "Bad input" table in docs/troubleshooting.md: what the user
//! sees (the log line at the default level, the Warning Event, the metric) and, each time, a
//! well-formed workload next to it that keeps reloading meanwhile. The controller runs as the
//! real binary, so its log is what a user would read.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::{Value, json};

/// The controller binary at its default log level, scoped to `namespaces`, with no storm brake
/// and no debounce unless `args` set them; returns once it is ready.
async fn start_ctl(namespaces: &[&TestNs], args: &[&str]) -> Process {
    let mut all = vec!["--min-reload-interval=0", "--flap-limit=0"];
    if !args.iter().any(|a| a.starts_with("--debounce")) {
        all.push("--debounce=0");
    }
    all.extend_from_slice(args);
    let ctl = Process::start(namespaces, &all, &[("RUST_LOG", "")]);
    ctl.await_ready().await;
    ctl
}

/// The note of the Event `reason` about `name`, waiting for it.
async fn event_note(ns: &TestNs, name: &str, reason: &str) -> (String, String) {
    let ev = eventually(Duration::from_secs(10), &format!("a {reason} Event on {name}"), || async {
        let list = ns.api::<Event>().list(&ListParams::default()).await.ok()?.items;
        list.into_iter().find(|e| {
            e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name) && e.reason.as_deref() == Some(reason)
        })
    })
    .await;
    (ev.type_.unwrap_or_default(), ev.note.unwrap_or_default())
}

/// The well-formed neighbour (`web`, auto, on ConfigMap `cfg`) reloads for a change of `cfg`.
async fn neighbour_reloads(ns: &TestNs, v: &str) {
    let t = pod_template(ns, "web").await;
    ns.set_configmap("cfg", json!({"v": v})).await;
    await_reload(ns, "web", &t).await;
}

fn uses(names: &[&str]) -> Value {
    env_from_configmaps(names)
}

#[tokio::test]
async fn an_invalid_regex_is_reported_and_the_valid_patterns_still_apply() {
    let ns = TestNs::new("bad-regex").await;
    auto_workload(&ns).await;
    ns.set_configmap("good", json!({"v": "1"})).await;
    let ann = json!({"configmap.reloader.stakater.com/reload": "(, good"});
    ns.apply_json::<Deployment>(deployment("bad", ann, uses(&[]))).await;
    let ctl = start_ctl(&[&ns], &[]).await;
    await_record(&ns, "bad").await;

    let line = ctl.log_line("Skipping invalid reload annotation").await;
    eprintln!("log: {line}");
    assert!(line.contains("ERROR"), "{line}");
    assert!(
        line.contains(&format!(
            "Skipping invalid reload annotation on Deployment 'bad' in namespace '{}': annotation \"configmap.reloader.stakater.com/reload\" = \"(\": invalid regular expression, pattern skipped: regex parse error:",
            ns.name
        )),
        "{line}"
    );
    let (type_, note) = event_note(&ns, "bad", "InvalidAnnotation").await;
    eprintln!("event: {type_} InvalidAnnotation: {note}");
    assert_eq!(type_, "Warning");
    assert!(
        note.starts_with("annotation \"configmap.reloader.stakater.com/reload\" = \"(\": invalid regular expression")
            && note.ends_with("; the workload's other rules still apply"),
        "{note}"
    );

    // The valid pattern of the same annotation still applies, and the neighbour reloads.
    let t = pod_template(&ns, "bad").await;
    ns.set_configmap("good", json!({"v": "2"})).await;
    await_reload(&ns, "bad", &t).await;
    neighbour_reloads(&ns, "2").await;
}

#[tokio::test]
async fn an_invalid_boolean_counts_as_false_and_is_reported() {
    let ns = TestNs::new("bad-bool").await;
    auto_workload(&ns).await;
    ns.apply_json::<Deployment>(deployment("bad", json!({"reloader.stakater.com/auto": "maybe"}), uses(&["cfg"])))
        .await;
    let ctl = start_ctl(&[&ns], &[]).await;
    await_record(&ns, "web").await;

    let line = ctl.log_line("Skipping invalid reload annotation").await;
    eprintln!("log: {line}");
    assert!(line.contains("ERROR"), "{line}");
    assert!(
        line.contains("annotation \"reloader.stakater.com/auto\" = \"maybe\": not a boolean; use \"true\" or \"false\" (treated as false)"),
        "{line}"
    );
    let (type_, note) = event_note(&ns, "bad", "InvalidAnnotation").await;
    eprintln!("event: {type_} InvalidAnnotation: {note}");
    assert_eq!(type_, "Warning");
    assert_eq!(
        note,
        "annotation \"reloader.stakater.com/auto\" = \"maybe\": not a boolean; use \"true\" or \"false\" (treated as false); the workload's other rules still apply"
    );

    // Treated as false: the neighbour on the same ConfigMap reloads, `bad` does not.
    let t_bad = pod_template(&ns, "bad").await;
    neighbour_reloads(&ns, "2").await;
    assert_no_reload(&ns, "bad", &t_bad).await;
}

/// Two problems on one workload (an invalid regex and an invalid boolean): the log has a line
/// for each, and one Warning Event names both (Events of one workload and reason form one
/// series whatever their note, so a second Event would never show its text).
#[tokio::test]
async fn two_problems_on_one_workload_are_named_in_one_event() {
    let ns = TestNs::new("bad-two").await;
    auto_workload(&ns).await;
    ns.set_configmap("good", json!({"v": "1"})).await;
    let ann = json!({"configmap.reloader.stakater.com/reload": "(, good", "reloader.stakater.com/auto": "maybe"});
    ns.apply_json::<Deployment>(deployment("bad", ann, uses(&["cfg"]))).await;
    let ctl = start_ctl(&[&ns], &[]).await;
    await_record(&ns, "bad").await;

    let regex = "annotation \"configmap.reloader.stakater.com/reload\" = \"(\": invalid regular expression";
    let boolean = "annotation \"reloader.stakater.com/auto\" = \"maybe\": not a boolean; use \"true\" or \"false\" (treated as false)";
    for problem in [regex, boolean] {
        let line = ctl.log_line(problem).await;
        eprintln!("log: {line}");
        assert!(
            line.contains("ERROR") && line.contains("Skipping invalid reload annotation on Deployment 'bad'"),
            "{line}"
        );
    }
    let (type_, note) = event_note(&ns, "bad", "InvalidAnnotation").await;
    eprintln!("event: {type_} InvalidAnnotation: {note}");
    assert_eq!(type_, "Warning");
    assert!(note.starts_with("2 annotation problems: (1) annotation "), "{note}");
    assert!(note.contains(regex) && note.contains(boolean), "both problems in one note: {note}");
    assert!(note.ends_with("; the workload's other rules still apply"), "{note}");
    // Evaluated again (a change of `good`): still one Event, counted as a repeat.
    let t = pod_template(&ns, "bad").await;
    ns.set_configmap("good", json!({"v": "2"})).await;
    await_reload(&ns, "bad", &t).await;
    neighbour_reloads(&ns, "2").await;
    let list = ns.api::<Event>().list(&ListParams::default()).await.unwrap().items;
    let invalid: Vec<&Event> = list
        .iter()
        .filter(|e| {
            e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("bad")
                && e.reason.as_deref() == Some("InvalidAnnotation")
        })
        .collect();
    assert_eq!(invalid.len(), 1, "one Event: {invalid:?}");
}

#[tokio::test]
async fn an_invalid_pause_period_is_reported_and_the_reload_happens_without_a_pause() {
    let ns = TestNs::new("bad-duration").await;
    auto_workload(&ns).await;
    let ann =
        json!({"reloader.stakater.com/auto": "true", "deployment.reloader.stakater.com/pause-period": "5 minutes"});
    ns.apply_json::<Deployment>(deployment("bad", ann, uses(&["cfg"]))).await;
    let ctl = start_ctl(&[&ns], &[]).await;
    await_record(&ns, "bad").await;
    await_record(&ns, "web").await;

    let line = ctl.log_line("Skipping invalid reload annotation").await;
    eprintln!("log: {line}");
    assert!(line.contains("ERROR") && line.contains("pause-period"), "{line}");
    let (type_, note) = event_note(&ns, "bad", "InvalidAnnotation").await;
    eprintln!("event: {type_} InvalidAnnotation: {note}");
    assert_eq!(type_, "Warning");
    assert_eq!(
        note,
        "annotation \"deployment.reloader.stakater.com/pause-period\": \"5 minutes\" is not a duration like \"10s\", \"5m\" or \"1h30m\"; reloads happen without a pause; the workload's other rules still apply"
    );

    // Both roll for the change; `bad` is not paused.
    let t_bad = pod_template(&ns, "bad").await;
    neighbour_reloads(&ns, "2").await;
    await_reload(&ns, "bad", &t_bad).await;
    let d = ns.api::<Deployment>().get("bad").await.unwrap();
    assert_ne!(d.spec.unwrap().paused, Some(true), "not paused");
    assert!(!d.metadata.annotations.unwrap().contains_key("deployment.reloader.stakater.com/paused-at"));
}

/// Invalid flag values (an unknown strategy, a non-boolean, a non-duration, leader-election
/// timings client-go refuses) stop start-up with
/// one message naming the flag, and exit 2: nothing runs with a half-understood configuration.
#[test]
fn invalid_flags_stop_start_up_with_exit_2() {
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 7] = [
        (
            &["--reload-strategy=rolling"],
            &[],
            "invalid value 'rolling' for '--reload-strategy <RELOAD_STRATEGY>'\n  [possible values: annotations, env-vars]",
        ),
        (
            &[],
            &[("RELOADER_RELOAD_STRATEGY", "rolling")],
            "invalid value 'rolling' for '--reload-strategy <RELOAD_STRATEGY>'\n  [possible values: annotations, env-vars]",
        ),
        (&["--reload-on-create=maybe"], &[], "\"maybe\" is not a boolean; use true or false"),
        (&["--debounce=soon"], &[], "\"soon\" is not a duration like 500ms, 10s or 1m"),
        (&["--flap-window=10"], &[], "\"10\" is not a duration like 500ms, 10s or 1m"),
        // Leader-election timings that client-go would refuse (or that allow two leaders).
        (
            &["--enable-ha", "--leader-election-lease-duration=15s", "--leader-election-renew-deadline=15s"],
            &[("POD_NAME", "p"), ("POD_NAMESPACE", "n")],
            "--leader-election-renew-deadline: 15s must be above 0 and shorter than the lease duration (15s)",
        ),
        (
            &["--enable-ha", "--leader-election-lease-duration=1500ms"],
            &[("POD_NAME", "p"), ("POD_NAMESPACE", "n")],
            "--lease-duration: 1.5s is not a whole number of seconds from 1s (the Lease stores whole seconds)",
        ),
    ];
    for (args, env, want) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_reloader"))
            .args(args)
            .envs(env.iter().copied())
            .env("KUBECONFIG", "/nonexistent")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        eprintln!("{args:?} {env:?}: exit {:?}: {}", out.status.code(), stderr.lines().next().unwrap_or_default());
        assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}: {stderr}");
        assert!(stderr.contains(want), "{args:?} {env:?}: {stderr}");
    }
}

#[tokio::test]
async fn big_many_key_and_binary_only_sources_reload_like_any_other() {
    let ns = TestNs::new("awkward").await;
    auto_workload(&ns).await;
    let long = "l".repeat(253);
    ns.set_configmap(&long, json!({"v": "1"})).await;
    // 10,000 keys, about 200 KiB of data; the object stays well under the API's 1 MiB limit
    // (managed fields included).
    let many: serde_json::Map<String, Value> =
        (0..10_000).map(|i| (format!("key-{i}"), json!(format!("value-{i}")))).collect();
    ns.set_configmap("many", Value::Object(many.clone())).await;
    let size = serde_json::to_string(&ns.api::<ConfigMap>().get("many").await.unwrap()).unwrap().len();
    assert!(size < 1 << 20, "the 10,000-key ConfigMap is {size} bytes");
    // A 1 MiB Secret: the API's limit for the whole object, so the value is a little less.
    ns.set_secret("big", json!({"blob": "x".repeat(1_000_000)})).await;
    ns.apply_json::<ConfigMap>(
        json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"bin"},"binaryData":{"b":"AAE="}}),
    )
    .await;
    let spec = json!({"containers": [{"name": "app", "image": "example.com/app:1", "envFrom": [
        {"configMapRef": {"name": long}}, {"configMapRef": {"name": "many"}}, {"configMapRef": {"name": "bin"}},
        {"secretRef": {"name": "big"}}
    ]}]});
    ns.apply_json::<Deployment>(deployment("awkward", json!({"reloader.stakater.com/auto": "true"}), spec)).await;
    let ctl = start_ctl(&[&ns], &[]).await;
    await_record(&ns, "awkward").await;
    await_record(&ns, "web").await;

    let mut t = pod_template(&ns, "awkward").await;
    ns.set_configmap(&long, json!({"v": "2"})).await;
    t = await_reload(&ns, "awkward", &t).await;
    neighbour_reloads(&ns, "2").await;

    let mut many2 = many;
    many2.insert("key-9999".into(), json!("changed"));
    let started = Instant::now();
    ns.set_configmap("many", Value::Object(many2)).await;
    t = await_reload(&ns, "awkward", &t).await;
    eprintln!("10,000-key ConfigMap ({size} bytes): written and rolled in {:?}", started.elapsed());
    neighbour_reloads(&ns, "3").await;

    let started = Instant::now();
    ns.set_secret("big", json!({"blob": "y".repeat(1_000_000)})).await;
    t = await_reload(&ns, "awkward", &t).await;
    eprintln!("1 MB Secret: written and rolled in {:?}", started.elapsed());
    neighbour_reloads(&ns, "4").await;

    let p = json!({"binaryData": {"b": "AAI="}});
    ns.api::<ConfigMap>().patch("bin", &PatchParams::default(), &Patch::Merge(&p)).await.unwrap();
    await_reload(&ns, "awkward", &t).await;
    neighbour_reloads(&ns, "5").await;

    // Each change is a Reloaded Event naming its source, and nothing failed.
    for (source, typ) in [("many", "CONFIGMAP"), ("big", "SECRET"), ("bin", "CONFIGMAP")] {
        let ev = eventually(Duration::from_secs(10), &format!("a Reloaded Event for {source}"), || async {
            let list = ns.api::<Event>().list(&ListParams::default()).await.ok()?.items;
            list.into_iter().find(|e| {
                e.reason.as_deref() == Some("Reloaded")
                    && e.related.as_ref().and_then(|r| r.name.as_deref()) == Some(source)
            })
        })
        .await;
        let note = ev.note.unwrap_or_default();
        assert!(
            note.starts_with(&format!("Changes detected in '{source}' of type '{typ}' in namespace '{}'", ns.name)),
            "{note}"
        );
    }
    assert_eq!(ctl.metric("reloader_reload_executed_total{success=\"false\"}").await, 0.0);
    assert_eq!(ctl.metric("reloader_reload_executed_total{success=\"true\"}").await, 8.0, "4 + 4 reloads");
    let logs = ctl.logs();
    assert!(!logs.contains("WARN") && !logs.contains("ERROR"), "no warning or error:\n{logs}");

    // The controller never wrote a Secret value anywhere on the workload, neither as it is nor
    // base64-encoded as the API serves it ("eXl5" is "yyy", "eHh4" is "xxx"); it names sources
    // and their hashes only.
    let d = ns.api::<Deployment>().get("awkward").await.unwrap();
    let text = serde_json::to_string(&d).unwrap();
    for value in ["yyyyyyyy", "xxxxxxxx", "eXl5eXl5", "eHh4eHh4"] {
        assert!(!text.contains(value), "a Secret value ({value}...) on the workload");
    }
    let record: std::collections::BTreeMap<String, String> =
        serde_json::from_str(&record_of(&ns, "awkward").await.expect("the record")).expect("a JSON map");
    assert_eq!(record.len(), 4, "every source is recorded: {record:?}");
    for (source, applied) in &record {
        let hash = applied.len() == 64 && applied.bytes().all(|b| b.is_ascii_hexdigit());
        assert!(hash, "{source} is recorded as a hash, not {applied:?}");
    }

    // And it never wrote to the Secret itself: it holds what the test wrote, written by the
    // test's field manager alone.
    let secret = ns.api::<Secret>().get("big").await.unwrap();
    let blob = secret.data.as_ref().and_then(|d| d.get("blob")).expect("the blob");
    assert!(blob.0.len() == 1_000_000 && blob.0.iter().all(|b| *b == b'y'), "the Secret's content is untouched");
    let managers: Vec<String> =
        secret.metadata.managed_fields.unwrap_or_default().into_iter().filter_map(|m| m.manager).collect();
    assert_eq!(managers, ["reloader-tests"], "only the test wrote the Secret");
}

#[tokio::test]
async fn a_missing_source_is_recorded_absent_and_followed_once_it_appears() {
    let ns = TestNs::new("late").await;
    auto_workload(&ns).await;
    ns.apply_json::<Deployment>(deployment("bad", json!({"reloader.stakater.com/auto": "true"}), uses(&["late"])))
        .await;
    let ctl = start_ctl(&[&ns], &[]).await;
    let record = await_record(&ns, "bad").await;
    eprintln!("record: {record}");
    assert_eq!(record, r#"{"configmap/late":"-"}"#);
    neighbour_reloads(&ns, "2").await;

    // It appears: recorded, not rolled (that takes --reload-on-create).
    let t = pod_template(&ns, "bad").await;
    ns.set_configmap("late", json!({"v": "1"})).await;
    eventually(Duration::from_secs(5), "the appeared source recorded", || async {
        record_of(&ns, "bad").await.filter(|r| !r.contains("\"-\""))
    })
    .await;
    assert_no_reload(&ns, "bad", &t).await;
    assert!(!ctl.logs().contains("'late'"), "no log line for the appearance:\n{}", ctl.logs());
    let events = ns.api::<Event>().list(&ListParams::default()).await.unwrap().items;
    let ours = ["Reloaded", "ReloadFail", "ReloadHeld", "InvalidAnnotation"];
    let on_bad: Vec<_> = events
        .iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("bad"))
        .filter(|e| ours.contains(&e.reason.as_deref().unwrap_or_default()))
        .collect();
    assert!(on_bad.is_empty(), "no Event for the appearance: {on_bad:?}");
    // From then on it is followed like any other.
    ns.set_configmap("late", json!({"v": "2"})).await;
    await_reload(&ns, "bad", &t).await;
    let (type_, note) = event_note(&ns, "bad", "Reloaded").await;
    eprintln!("event: {type_} Reloaded: {note}");
    assert!(note.starts_with("Changes detected in 'late' of type 'CONFIGMAP'"), "{note}");
    neighbour_reloads(&ns, "3").await;
    let logs = ctl.logs();
    assert!(!logs.contains("WARN") && !logs.contains("ERROR"), "no warning or error:\n{logs}");
}

/// A Deployment without containers never gets past the API server. The workloads that do have
/// no container to reload — an Argo Rollout with `workloadRef` (no pod template), and, with the
/// env-vars strategy, a Rollout whose template has an empty container list — get the change
/// recorded and no rollout, with a log line and `reloader_skipped_total{reason="strategy_not_updated"}`.
#[tokio::test]
async fn a_workload_without_containers_gets_the_change_recorded_and_no_rollout() {
    install_rollout_crd();
    let ns = TestNs::new("no-containers").await;
    auto_workload(&ns).await;
    ns.set_configmap("named", json!({"v": "1"})).await;

    let empty: Deployment = serde_json::from_value(deployment("empty", json!({}), json!({"containers": []}))).unwrap();
    let refused = ns.api::<Deployment>().create(&Default::default(), &empty).await.expect_err("refused");
    let kube::Error::Api(status) = &refused else { panic!("{refused}") };
    eprintln!("API: {} ({} {})", status.message, status.code, status.reason);
    assert!(status.message.ends_with("spec.template.spec.containers: Required value"), "{}", status.message);

    let named = json!({"configmap.reloader.stakater.com/reload": "named"});
    let ar = ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Rollout"));
    let rollouts: Api<DynamicObject> = Api::namespaced_with(ns.client.clone(), &ns.name, &ar);
    let by_ref = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "by-ref", "annotations": named},
        "spec": {"replicas": 1, "workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "elsewhere"},
                 "strategy": {"canary": {}}}});
    let no_containers = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "no-containers", "annotations": named},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "x"}}, "strategy": {"canary": {}},
                 "template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": []}}}});
    let pp = PatchParams::apply("reloader-tests").force();
    rollouts.patch("by-ref", &pp, &Patch::Apply(&by_ref)).await.unwrap();
    rollouts.patch("no-containers", &pp, &Patch::Apply(&no_containers)).await.unwrap();

    let ctl = start_ctl(&[&ns], &["--reload-strategy=env-vars", "--is-Argo-Rollouts=true"]).await;
    await_record(&ns, "web").await;
    let recorded = |o: &DynamicObject| o.metadata.annotations.as_ref().and_then(|a| a.get(RECORD).cloned());
    let mut before = Vec::new();
    for name in ["by-ref", "no-containers"] {
        before.push(
            eventually(Duration::from_secs(10), &format!("{name} recorded"), || async {
                let o = rollouts.get(name).await.ok()?;
                recorded(&o).map(|_| o)
            })
            .await,
        );
    }
    ns.set_configmap("named", json!({"v": "2"})).await;

    for (name, why) in
        [("by-ref", "the Rollout has no pod template (workloadRef)"), ("no-containers", "no container to reload")]
    {
        let line =
            ctl.log_line(&format!("not reloading '{name}' of type 'Rollout' in namespace '{}': {why}", ns.name)).await;
        eprintln!("log: {line}");
        assert!(line.contains(" INFO ") && line.ends_with("; the change is recorded"), "{line}");
    }
    assert_eq!(ctl.metric("reloader_skipped_total{reason=\"strategy_not_updated\"}").await, 2.0);
    for b in &before {
        let after = rollouts.get(&b.metadata.name.clone().unwrap()).await.unwrap();
        assert_ne!(recorded(&after), recorded(b), "the change is recorded on the Rollout");
        assert_eq!(after.data["spec"], b.data["spec"], "the Rollout's spec is untouched");
    }
    neighbour_reloads(&ns, "2").await;
    let logs = ctl.logs();
    assert!(!logs.contains("WARN") && !logs.contains("ERROR"), "no warning or error:\n{logs}");
}

/// A namespace deleted while its workloads wait in the queue (a 2 s quiet window): the controller
/// drops them as their deletions arrive, writes nothing that fails, and the other namespace's
/// workload reloads meanwhile and after.
#[tokio::test]
async fn a_namespace_deleted_while_its_workloads_are_queued() {
    let doomed = TestNs::new("doomed").await;
    let kept = TestNs::new("kept").await;
    doomed.set_configmap("cfg", json!({"v": "1"})).await;
    for i in 0..5 {
        doomed
            .apply_json::<Deployment>(deployment(
                &format!("app-{i}"),
                json!({"reloader.stakater.com/auto": "true"}),
                uses(&["cfg"]),
            ))
            .await;
    }
    auto_workload(&kept).await;
    let ctl = start_ctl(&[&doomed, &kept], &["--debounce=2s", "--debounce-quiet=2s"]).await;
    for i in 0..5 {
        await_record(&doomed, &format!("app-{i}")).await;
    }
    await_record(&kept, "web").await;
    assert_eq!(ctl.metric("reloader_tracked_workloads").await, 6.0);

    // Queued for 2 s, then the namespace goes.
    doomed.set_configmap("cfg", json!({"v": "2"})).await;
    let out = kubectl(&["delete", "namespace", &doomed.name, "--wait=false"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let deleted = Instant::now();
    // Meanwhile the other namespace reloads (within the debounce + 2 s).
    let t = pod_template(&kept, "web").await;
    kept.set_configmap("cfg", json!({"v": "2"})).await;
    eventually(Duration::from_secs(4), "a reload in the other namespace", || async {
        (pod_template(&kept, "web").await != t).then_some(())
    })
    .await;

    let namespaces: Api<Namespace> = Api::all(kept.client.clone());
    eventually(Duration::from_secs(120), "the namespace gone", || async {
        namespaces.get_opt(&doomed.name).await.ok()?.is_none().then_some(())
    })
    .await;
    eprintln!("namespace gone after {:?}", deleted.elapsed());
    eventually(Duration::from_secs(10), "its workloads dropped from the index", || async {
        (ctl.metric("reloader_tracked_workloads").await == 1.0).then_some(())
    })
    .await;
    let t = pod_template(&kept, "web").await;
    kept.set_configmap("cfg", json!({"v": "3"})).await;
    eventually(Duration::from_secs(4), "a reload in the other namespace after", || async {
        (pod_template(&kept, "web").await != t).then_some(())
    })
    .await;
    assert_eq!(ctl.get("/ready").await.map(|r| r.0), Some(200), "still ready");
    let logs = ctl.logs();
    let doomed_lines: Vec<&str> = logs.lines().filter(|l| l.contains(&doomed.name)).collect();
    eprintln!("log lines naming the deleted namespace:\n{}", doomed_lines.join("\n"));
    eprintln!(
        "reloads: ok {}, failed {}; event_publish errors {}",
        ctl.metric("reloader_reload_executed_total{success=\"true\"}").await,
        ctl.metric("reloader_reload_executed_total{success=\"false\"}").await,
        ctl.metric("reloader_errors_total{type=\"event_publish\"}").await
    );
    assert_eq!(ctl.metric("reloader_reload_executed_total{success=\"false\"}").await, 0.0, "no failed reload");
    assert!(!logs.contains("ERROR"), "no error:\n{logs}");
    // What may show, depending on how far the deletion got when the queue fired: the reload
    // is written (updates are allowed while a namespace terminates) and its Event is refused.
    for l in logs.lines().filter(|l| l.contains(" WARN ")) {
        assert!(
            l.contains("could not publish an Event")
                && l.contains(&format!(
                    "unable to create new content in namespace {} because it is being terminated",
                    doomed.name
                )),
            "{l}"
        );
    }
}
