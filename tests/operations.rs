//! Running it in production, with the real binary as a process: metrics, Events, probes,
//! leader election and failover, graceful shutdown, alerts and webhook mode.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::routing::post;
use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::events::v1::Event;
use kube::api::ListParams;
use serde_json::json;

async fn events_for(ns: &TestNs, name: &str) -> Vec<Event> {
    let list = ns.api::<Event>().list(&ListParams::default()).await.expect("list events").items;
    list.into_iter().filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)).collect()
}

#[tokio::test]
async fn metrics_move_and_reload_events_are_published() {
    let ns = TestNs::new("metrics").await;
    let t0 = auto_workload(&ns).await;
    let p = Process::start(&[&ns], &[], &[]);
    p.await_ready().await;
    await_record(&ns, "web").await;
    let ok = "reloader_reload_executed_total{success=\"true\"}";
    let action = "reloader_action_total{workload_kind=\"Deployment\",result=\"success\"}";
    assert_eq!(p.metric(ok).await, 0.0);
    assert_eq!(p.metric("reloader_tracked_workloads").await, 1.0);

    ns.set_configmap("cfg", json!({"v": "2"})).await;
    await_reload(&ns, "web", &t0).await;
    eventually(Duration::from_secs(5), "reload counters", || async {
        (p.metric(ok).await == 1.0 && p.metric(action).await == 1.0).then_some(())
    })
    .await;
    assert!(
        p.metric("reloader_events_received_total{event_type=\"update\",resource_type=\"configmaps\"}").await >= 1.0
    );
    assert_eq!(p.metric("reloader_change_to_patch_seconds_count{workload_kind=\"Deployment\"}").await, 1.0);
    assert!(p.metric("reloader_reconcile_total{result=\"success\"}").await >= 2.0, "adoption and reload");

    // A label-only edit is a skipped no-op.
    let patch = json!({"metadata": {"labels": {"x": "y"}}});
    ns.api::<k8s_openapi::api::core::v1::ConfigMap>()
        .patch("cfg", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch))
        .await
        .unwrap();
    eventually(Duration::from_secs(5), "no_data_change", || async {
        (p.metric("reloader_skipped_total{reason=\"no_data_change\"}").await >= 1.0).then_some(())
    })
    .await;

    let ev = eventually(Duration::from_secs(5), "a Reloaded event", || async {
        events_for(&ns, "web").await.into_iter().find(|e| e.reason.as_deref() == Some("Reloaded"))
    })
    .await;
    assert_eq!(ev.type_.as_deref(), Some("Normal"));
    let note = ev.note.unwrap_or_default();
    assert_eq!(
        note,
        format!(
            "Changes detected in 'cfg' of type 'CONFIGMAP' in namespace '{0}', Updated 'web' of type 'Deployment' in namespace '{0}'",
            ns.name
        )
    );
    let related = ev.related.expect("the source is the related object");
    assert_eq!((related.kind.as_deref(), related.name.as_deref()), (Some("ConfigMap"), Some("cfg")));
}

#[tokio::test]
async fn failed_reloads_and_invalid_annotations_are_warning_events() {
    let ns = TestNs::new("failures").await;
    // The API rejects any pod-template change of this namespace's Deployments, so the reload
    // patch fails while the record-only adoption succeeds.
    let policy = DenyPolicy::new(
        &ns,
        "deny-template",
        json!([{"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["UPDATE"], "resources": ["deployments"]}]),
        "object.spec.template == oldObject.spec.template",
        "pod template changes are frozen here",
    );
    ns.set_configmap("cfg", json!({"v": "1"})).await;
    let ann = json!({"reloader.stakater.com/auto": "true", "configmap.reloader.stakater.com/reload": "(unclosed"});
    ns.apply_json::<Deployment>(deployment("web", ann, env_from_configmaps(&["cfg"]))).await;
    // The policy takes a moment to be enforced: wait until a (dry-run) template change is refused.
    let deployments = ns.api::<Deployment>();
    policy
        .await_enforced(|| async {
            let p = json!({"spec": {"template": {"metadata": {"annotations": {"example.com/probe": "1"}}}}});
            let dry_run = kube::api::PatchParams { dry_run: true, ..Default::default() };
            deployments.patch("web", &dry_run, &kube::api::Patch::Merge(&p)).await.is_err()
        })
        .await;
    let p = Process::start(&[&ns], &[], &[]);
    p.await_ready().await;
    await_record(&ns, "web").await;
    ns.set_configmap("cfg", json!({"v": "2"})).await;
    let failed = "reloader_reload_executed_total{success=\"false\"}";
    eventually(Duration::from_secs(10), "a rejected reload", || async {
        (p.metric(failed).await >= 1.0).then_some(())
    })
    .await;
    let events = eventually(Duration::from_secs(10), "ReloadFail and InvalidAnnotation events", || async {
        let ev = events_for(&ns, "web").await;
        let fail = ev.iter().find(|e| e.reason.as_deref() == Some("ReloadFail")).cloned();
        let invalid = ev.iter().find(|e| e.reason.as_deref() == Some("InvalidAnnotation")).cloned();
        Some((fail?, invalid?))
    })
    .await;
    let (fail, invalid) = events;
    assert_eq!(fail.type_.as_deref(), Some("Warning"));
    let note = fail.note.unwrap_or_default();
    assert!(
        note.starts_with(&format!(
            "Update for 'web' of type 'Deployment' in namespace '{}' failed with error",
            ns.name
        )),
        "{note}"
    );
    assert!(note.contains("frozen"), "{note}");
    assert_eq!(invalid.type_.as_deref(), Some("Warning"));
    assert!(invalid.note.unwrap_or_default().contains("(unclosed"));
    assert!(p.metric("reloader_errors_total{type=\"handler_error\"}").await >= 1.0);
    // Aggregated by the recorder: repeated failures do not create an Event each.
    let fails = events_for(&ns, "web").await.into_iter().filter(|e| e.reason.as_deref() == Some("ReloadFail")).count();
    assert_eq!(fails, 1, "one ReloadFail event, as a series");
}

#[tokio::test]
async fn ready_only_after_the_initial_list_and_while_watches_work() {
    let ns = TestNs::new("ready").await;
    // A ServiceAccount that may not list Secrets yet: the Secret watch cannot list.
    let sa = "ctl";
    let kubeconfig = service_account(&ns, controller_rules(false));

    let p = Process::start(&[&ns], &[], &[("KUBECONFIG", &kubeconfig)]);
    // Alive, but not ready: the Secret list is forbidden.
    eventually(Duration::from_secs(10), "/live", || async { (p.get("/live").await?.0 == 200).then_some(()) }).await;
    holds(Duration::from_secs(3), "/ready stays 503 while a watch cannot list", || async {
        matches!(p.get("/ready").await, Some((503, _)))
    })
    .await;
    let (_, why) = p.get("/ready").await.unwrap();
    assert!(why.contains("initial list"), "{why}");

    // Grant it: the watch recovers and the controller becomes ready.
    let out = kubectl(&["-n", &ns.name, "create", "role", "secrets", "--verb=get,list,watch", "--resource=secrets"]);
    assert!(out.status.success());
    let out = kubectl(&[
        "-n",
        &ns.name,
        "create",
        "rolebinding",
        "secrets",
        "--role=secrets",
        &format!("--serviceaccount={}:{sa}", ns.name),
    ]);
    assert!(out.status.success());
    eventually(Duration::from_secs(40), "/ready = 200 after the grant", || async {
        (p.get("/ready").await?.0 == 200).then_some(())
    })
    .await;
}

async fn lease_holder(ns: &TestNs) -> Option<String> {
    ns.api::<Lease>().get_opt("kube-reloader-lock").await.ok().flatten()?.spec?.holder_identity
}

#[tokio::test]
async fn failover_rolls_once_for_a_change_and_never_for_nothing() {
    let ns = TestNs::new("ha").await;
    let t0 = auto_workload(&ns).await;
    let ha = |name: &'static str| {
        let nsname = ns.name.clone();
        move |ns: &TestNs| {
            // Reloader's flag names for the timings (its PR #1206).
            Process::start(
                &[ns],
                &[
                    "--enable-ha",
                    "--leader-election-lease-duration=6s",
                    "--leader-election-renew-deadline=4s",
                    "--leader-election-retry-period=1s",
                ],
                &[("POD_NAME", name), ("POD_NAMESPACE", &nsname)],
            )
        }
    };
    let mut a = ha("replica-a")(&ns);
    let holder = eventually(Duration::from_secs(20), "a leader", || async { lease_holder(&ns).await }).await;
    assert_eq!(holder, "replica-a");
    let lease = ns.api::<Lease>().get("kube-reloader-lock").await.unwrap();
    assert_eq!(lease.spec.unwrap().lease_duration_seconds, Some(6), "the lease duration given");
    let mut b = ha("replica-b")(&ns);
    b.await_ready().await;
    await_record(&ns, "web").await;
    assert_eq!(b.metric("reloader_leader").await, 0.0, "b is a standby");

    // Failover with nothing changed: no rollout.
    a.signal("KILL");
    a.wait_exit(Duration::from_secs(5)).await;
    let holder = eventually(Duration::from_secs(10), "b takes over", || async {
        lease_holder(&ns).await.filter(|h| h == "replica-b")
    })
    .await;
    assert_eq!(holder, "replica-b");
    assert_no_reload(&ns, "web", &t0).await;

    // Failover followed by a change: exactly one rollout by the new leader.
    let mut c = ha("replica-c")(&ns);
    c.await_ready().await;
    b.signal("KILL");
    b.wait_exit(Duration::from_secs(5)).await;
    let killed = Instant::now();
    ns.set_configmap("cfg", json!({"v": "2"})).await;
    let t1 = eventually(Duration::from_secs(6 + 2), "a rollout by the standby within lease duration + 2 s", || async {
        let t = pod_template(&ns, "web").await;
        (t != t0).then_some(t)
    })
    .await;
    eprintln!("failover rollout after {:?}", killed.elapsed());
    assert_eq!(lease_holder(&ns).await.as_deref(), Some("replica-c"));
    assert_no_reload(&ns, "web", &t1).await;
    assert_eq!(replica_sets(&ns, "web").await, 2, "exactly one rollout");

    // SIGTERM: the lease is released and the process exits 0.
    c.signal("TERM");
    let status = c.wait_exit(Duration::from_secs(15)).await;
    assert!(status.success(), "exit status {status:?}\n{}", c.logs());
    let holder = lease_holder(&ns).await;
    assert!(holder.is_none() || holder.as_deref() == Some(""), "lease released, holder {holder:?}");
}

/// A leader whose Lease writes are refused (an admission policy) closes its write gate at its
/// renew deadline by its own clock, writes nothing while it cannot renew, says why in
/// `/ready`, and leads again, catching up exactly, once the API lets it renew.
#[tokio::test]
async fn a_leader_that_cannot_renew_stops_writing_at_its_deadline_and_recovers() {
    let ns = TestNs::new("fence").await;
    let t0 = auto_workload(&ns).await;
    let p = Process::start(
        &[&ns],
        &["--enable-ha", "--lease-duration=6s"],
        &[("POD_NAME", "replica-a"), ("POD_NAMESPACE", &ns.name)],
    );
    eventually(Duration::from_secs(20), "replica-a leads", || async {
        (lease_holder(&ns).await.as_deref() == Some("replica-a")).then_some(())
    })
    .await;
    p.await_ready().await;
    await_record(&ns, "web").await;
    assert_eq!(p.metric("reloader_leader").await, 1.0);

    let policy = DenyPolicy::new(
        &ns,
        "deny-lease",
        json!([{"apiGroups": ["coordination.k8s.io"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"], "resources": ["leases"]}]),
        "false",
        "lease writes are refused here",
    );
    let leases = ns.api::<Lease>();
    policy
        .await_enforced(|| async {
            let l: Lease = serde_json::from_value(json!({"metadata": {"name": "probe"}})).unwrap();
            leases.create(&Default::default(), &l).await.is_err()
        })
        .await;
    let refused = Instant::now();
    // The last renewal was at most 2 s (a third of 6 s) before the refusal began; the gate
    // closes 4 s (two thirds) after it. Allow for the metric being read a moment late.
    eventually(Duration::from_secs(6), "the write gate closed", || async {
        (p.metric("reloader_leader").await == 0.0).then_some(())
    })
    .await;
    let closed_after = refused.elapsed();
    assert!(closed_after <= Duration::from_secs(5), "closed {closed_after:?} after the refusal began");
    assert!(p.logs().contains("no longer leader"), "{}", p.logs());
    // Nothing is written while it cannot renew, even for a change.
    ns.set_configmap("cfg", json!({"v": "2"})).await;
    assert_no_reload(&ns, "web", &t0).await;
    let (code, why) = p.get("/ready").await.unwrap();
    assert_eq!(code, 503, "{why}");
    assert!(why.contains("leader election failing") && why.contains("refused"), "{why}");

    policy.remove();
    eventually(Duration::from_secs(20), "leading again", || async {
        (p.metric("reloader_leader").await == 1.0).then_some(())
    })
    .await;
    let t1 = eventually(Duration::from_secs(5), "the change applied once it leads again", || async {
        let t = pod_template(&ns, "web").await;
        (t != t0).then_some(t)
    })
    .await;
    assert_no_reload(&ns, "web", &t1).await;
    assert_eq!(replica_sets(&ns, "web").await, 2, "exactly one rollout");
    p.await_ready().await;
}

/// A start-up failure (the metrics address is taken) is one line naming the flag and exit 2,
/// not a Rust backtrace, even with RUST_BACKTRACE set; and `--is-Argo-Rollouts` starts
/// without a false "not supported" warning.
#[tokio::test]
async fn a_start_up_failure_is_one_clear_line_and_exit_2() {
    let ns = TestNs::new("exit2").await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_reloader"))
        .arg(format!("--namespaces={}", ns.name))
        .arg(format!("--metrics-addr={addr}"))
        .arg("--is-Argo-Rollouts=true")
        .env("KUBECONFIG", &cluster().kubeconfig)
        .env("RUST_BACKTRACE", "1")
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("reloader: cannot listen on")
            && last.contains("--metrics-addr")
            && last.contains(&addr.to_string()),
        "{stderr}"
    );
    assert!(!stderr.contains("backtrace") && !stderr.contains("Stack"), "no backtrace: {stderr}");
    assert!(!stderr.contains("not supported"), "no false warning about Argo Rollouts: {stderr}");
    drop(taken);
}

/// The `reloader-meta-info` ConfigMap, as Reloader publishes it at start: created, updated by
/// the next start with that start's options; where it cannot be written, a warning, and
/// reloads go on.
#[tokio::test]
async fn the_meta_info_configmap_is_published_at_start_and_a_failure_is_only_a_warning() {
    use k8s_openapi::api::core::v1::ConfigMap;
    let ns = TestNs::new("meta").await;
    let t0 = auto_workload(&ns).await;
    let env = [("RELOADER_NAMESPACE", ns.name.as_str()), ("RELOADER_DEPLOYMENT_NAME", "reloader-reloader")];
    let option = |cm: &ConfigMap, key: &str| {
        let options: serde_json::Value = serde_json::from_str(&cm.data.as_ref().unwrap()["reloaderOptions"]).unwrap();
        options[key].clone()
    };
    let meta_info = || async { ns.api::<ConfigMap>().get_opt("reloader-meta-info").await.ok().flatten() };

    let mut p = Process::start(&[&ns], &[], &env);
    let cm = eventually(Duration::from_secs(10), "the meta-info ConfigMap", meta_info).await;
    assert_eq!(cm.metadata.labels.as_ref().unwrap()["reloader.stakater.com/meta-info"], "reloader");
    let data = cm.data.as_ref().unwrap();
    assert_eq!(data.keys().collect::<Vec<_>>(), ["buildInfo", "deploymentInfo", "reloaderOptions"]);
    assert_eq!(
        data["deploymentInfo"],
        format!(r#"{{"name":"reloader-reloader","namespace":"{}","creationTimestamp":null}}"#, ns.name)
    );
    assert_eq!(option(&cm, "reloadStrategy"), "annotations");
    assert_eq!(option(&cm, "logLevel"), "info");
    p.signal("TERM");
    p.wait_exit(Duration::from_secs(15)).await;

    let p = Process::start(&[&ns], &["--log-level=debug"], &env);
    p.log_line("Meta info configmap already exists, updating it").await;
    eventually(Duration::from_secs(10), "the options of the second start", || async {
        meta_info().await.filter(|cm| option(cm, "logLevel") == "debug")
    })
    .await;
    drop(p);

    let p = Process::start(&[&ns], &[], &[("RELOADER_NAMESPACE", "no-such-namespace-for-meta-info")]);
    let line = p.log_line("cannot write the reloader-meta-info ConfigMap").await;
    eprintln!("{line}");
    assert!(line.contains("WARN") && line.contains("no-such-namespace-for-meta-info"), "{line}");
    p.await_ready().await;
    ns.set_configmap("cfg", json!({"v": "2"})).await;
    await_reload(&ns, "web", &t0).await;
}

/// A leader paused (SIGSTOP) for longer than its lease: the standby takes over and applies a
/// change made meanwhile; when the old leader resumes it finds its deadline passed and writes
/// nothing, so the change rolls exactly once.
#[tokio::test]
async fn a_leader_paused_past_its_lease_writes_nothing_when_it_resumes() {
    let ns = TestNs::new("paused").await;
    let t0 = auto_workload(&ns).await;
    let ha = |name: &str| {
        Process::start(
            &[&ns],
            &["--enable-ha", "--lease-duration=6s"],
            &[("POD_NAME", name), ("POD_NAMESPACE", &ns.name)],
        )
    };
    let a = ha("replica-a");
    eventually(Duration::from_secs(20), "replica-a leads", || async {
        (lease_holder(&ns).await.as_deref() == Some("replica-a")).then_some(())
    })
    .await;
    await_record(&ns, "web").await;
    let b = ha("replica-b");
    b.await_ready().await;

    a.signal("STOP");
    eventually(Duration::from_secs(15), "replica-b takes over", || async {
        (lease_holder(&ns).await.as_deref() == Some("replica-b")).then_some(())
    })
    .await;
    ns.set_configmap("cfg", json!({"v": "2"})).await;
    let t1 = await_reload(&ns, "web", &t0).await;
    a.signal("CONT");
    // The resumed replica's gate is closed by its own clock: no second rollout, no write.
    assert_no_reload(&ns, "web", &t1).await;
    assert_eq!(replica_sets(&ns, "web").await, 2, "exactly one rollout");
    assert_eq!(a.metric("reloader_leader").await, 0.0, "the resumed replica does not lead");
    assert_eq!(lease_holder(&ns).await.as_deref(), Some("replica-b"));
}

#[tokio::test]
async fn sigterm_without_ha_exits_zero() {
    let ns = TestNs::new("term").await;
    let mut p = Process::start(&[&ns], &[], &[]);
    p.await_ready().await;
    p.signal("TERM");
    let status = p.wait_exit(Duration::from_secs(15)).await;
    assert!(status.success(), "{status:?}");
    assert!(p.logs().contains("stopped"), "{}", p.logs());
}

type Received = Arc<Mutex<Vec<(BTreeMap<String, String>, String)>>>;

/// A local HTTP receiver recording every POST.
async fn receiver() -> (String, Received) {
    let got: Received = Arc::default();
    let g = got.clone();
    let app = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: Bytes| {
            let g = g.clone();
            async move {
                let h = headers.iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string())).collect();
                g.lock().unwrap().push((h, String::from_utf8_lossy(&body).to_string()));
                "ok"
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (url, got)
}

#[tokio::test]
async fn alerts_reach_each_sink_with_its_body() {
    let ns = TestNs::new("alerts").await;
    let mut t = auto_workload(&ns).await;
    let want = |sink: &str, ns: &str| {
        let msg = format!(
            "Reloader detected changes in *cfg* of type *CONFIGMAP* in namespace *{ns}*. Hence reloaded *web* of type *Deployment* in namespace *{ns}*"
        );
        match sink {
            "slack" => {
                json!({"attachments": [{"color": "good", "author_name": "Reloader", "text": format!("prod : {msg}")}]})
                    .to_string()
            }
            "teams" | "gchat" => json!({"text": format!("prod : {msg}")}).to_string(),
            _ => format!("prod : {msg}").replace('*', ""),
        }
    };
    for (i, sink) in ["slack", "teams", "gchat", "raw"].into_iter().enumerate() {
        let (url, got) = receiver().await;
        let p = Process::start(
            &[&ns],
            &[],
            &[
                ("ALERT_ON_RELOAD", "true"),
                ("ALERT_SINK", sink),
                ("ALERT_WEBHOOK_URL", &url),
                ("ALERT_ADDITIONAL_INFO", "prod"),
            ],
        );
        p.await_ready().await;
        // The first process adopts the workload at the current hash; a change made before that
        // write would be adopted, not reloaded, so wait for the record before changing.
        await_record(&ns, "web").await;
        ns.set_configmap("cfg", json!({"v": format!("{}", i + 2)})).await;
        t = await_reload(&ns, "web", &t).await;
        let (headers, body) = eventually(Duration::from_secs(5), &format!("the {sink} alert"), || async {
            got.lock().unwrap().first().cloned()
        })
        .await;
        let expected = want(sink, &ns.name);
        if sink == "raw" {
            assert_eq!(headers.get("content-type").map(String::as_str), Some("text/plain"));
            assert_eq!(body, expected);
        } else {
            let a: serde_json::Value = serde_json::from_str(&body).unwrap();
            let b: serde_json::Value = serde_json::from_str(&expected).unwrap();
            assert_eq!(a, b, "{sink}");
        }
        assert_eq!(
            p.metric(&format!(
                "reloader_alerts_total{{sink=\"{}\",result=\"success\"}}",
                if sink == "raw" { "webhook" } else { sink }
            ))
            .await,
            1.0
        );
        drop(p);
    }
}

#[tokio::test]
async fn webhook_mode_posts_and_reloads_nothing() {
    let ns = TestNs::new("webhook").await;
    let t0 = auto_workload(&ns).await;
    let (url, got) = receiver().await;
    let p = Process::start(&[&ns], &[&format!("--webhook-url={url}")], &[]);
    p.await_ready().await;
    ns.set_configmap("cfg", json!({"v": "2"})).await;
    let (headers, body) =
        eventually(Duration::from_secs(5), "the webhook", || async { got.lock().unwrap().first().cloned() }).await;
    assert_eq!(body, r#"{"webhook":"update successful"}"#);
    assert_eq!(headers.get("content-type").map(String::as_str), Some("application/json"));
    assert_no_reload(&ns, "web", &t0).await;
    assert!(record_of(&ns, "web").await.is_none(), "webhook mode writes nothing to workloads");
    assert_eq!(got.lock().unwrap().len(), 1, "one POST per change");
}

#[tokio::test]
async fn json_logs_carry_reloaders_field_names_and_never_secret_values() {
    let ns = TestNs::new("jsonlog").await;
    ns.set_secret("creds", json!({"password": "hunter2-very-secret"})).await;
    let spec = json!({"containers": [{"name": "app", "image": "example.com/app:1", "envFrom": [{"secretRef": {"name": "creds"}}]}]});
    ns.apply_json::<Deployment>(deployment("web", json!({"reloader.stakater.com/auto": "true"}), spec)).await;
    let t0 = pod_template(&ns, "web").await;
    let p = Process::start(&[&ns], &["--log-format=json", "--log-level=debug"], &[("RUST_LOG", "")]);
    p.await_ready().await;
    await_record(&ns, "web").await;
    ns.set_secret("creds", json!({"password": "hunter3-very-secret"})).await;
    await_reload(&ns, "web", &t0).await;
    let line = eventually(Duration::from_secs(5), "the reload log line", || {
        let logs = p.logs();
        async move { logs.lines().find(|l| l.contains("Changes detected")).map(String::from) }
    })
    .await;
    let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON log line");
    // logrus's keys, as Stakater Reloader writes them (its message text included), so alerts
    // on its logs keep matching: `level`, `msg`, `time` (RFC 3339).
    assert_eq!(v["level"], "info");
    let msg = v["msg"].as_str().unwrap();
    assert!(
        msg.starts_with(&format!("Changes detected in 'creds' of type 'SECRET' in namespace '{}'", ns.name)),
        "{line}"
    );
    assert!(v["time"].as_str().unwrap().parse::<k8s_openapi::jiff::Timestamp>().is_ok(), "{line}");
    assert_eq!(v["source"], "secret/creds");
    assert_eq!(v["hash"].as_str().unwrap().len(), 12, "a hash prefix");
    assert!(v["span"]["workload"].as_str().unwrap().ends_with("/web"), "{line}");
    let logs = p.logs();
    for l in logs.lines().filter(|l| !l.trim().is_empty()) {
        assert!(serde_json::from_str::<serde_json::Value>(l).is_ok(), "not JSON: {l}");
    }
    assert!(!logs.contains("hunter"), "a Secret value was logged");
}

/// One namespace of `--namespaces` where the controller may list nothing does not hold up the
/// others: a change in the namespace it can read rolls its workload, while `/ready` stays 503
/// naming the watches that fail in the other.
#[tokio::test]
async fn a_namespace_without_rbac_does_not_block_the_others() {
    let ok = TestNs::new("rbac-ok").await;
    let denied = TestNs::new("rbac-none").await;
    let t0 = auto_workload(&ok).await;
    let kubeconfig = service_account(&ok, controller_rules(true));

    let p = Process::start(&[&ok, &denied], &[], &[("KUBECONFIG", &kubeconfig)]);
    await_record(&ok, "web").await;
    ok.set_configmap("cfg", json!({"v": "2"})).await;
    await_reload(&ok, "web", &t0).await;
    let (code, why) = eventually(Duration::from_secs(10), "/ready naming the failing namespace", || async {
        p.get("/ready").await.filter(|(_, why)| why.contains(&denied.name))
    })
    .await;
    assert_eq!(code, 503, "{why}");
    assert!(why.starts_with("initial list of the watches not complete; failing:"), "{why}");
}

/// Templates of every Deployment in the namespace, by name.
async fn templates(ns: &TestNs) -> BTreeMap<String, String> {
    let list = ns.api::<Deployment>().list(&ListParams::default()).await.expect("list Deployments");
    list.items
        .into_iter()
        .map(|d| {
            let t = serde_json::to_string(&d.spec.as_ref().map(|s| &s.template)).unwrap();
            (d.metadata.name.unwrap_or_default(), t)
        })
        .collect()
}

/// ReplicaSets per owning Deployment: one more than the rollouts it went through.
async fn replica_sets_by_owner(ns: &TestNs) -> BTreeMap<String, usize> {
    let api = ns.api::<k8s_openapi::api::apps::v1::ReplicaSet>();
    let mut by = BTreeMap::new();
    for rs in api.list(&ListParams::default()).await.expect("list ReplicaSets").items {
        for o in rs.metadata.owner_references.unwrap_or_default() {
            *by.entry(o.name).or_default() += 1;
        }
    }
    by
}

/// The controller is SIGKILLed while it is rolling a change out to many workloads, and started
/// again: the workloads it had not reached yet roll once, the ones it had reached do not roll
/// again (their record was written in the same patch as their template).
#[tokio::test]
async fn killed_in_the_middle_of_a_fan_out_it_finishes_it_once_after_a_restart() {
    const N: usize = 40;
    let ns = TestNs::new("midkill").await;
    ns.set_configmap("cfg", json!({"v": "0"})).await;
    for i in 0..N {
        let mut d =
            deployment(&format!("w-{i}"), json!({"reloader.stakater.com/auto": "true"}), env_from_configmaps(&["cfg"]));
        d["spec"]["replicas"] = json!(0);
        ns.apply_json::<Deployment>(d).await;
    }
    // One worker makes the fan-out slow enough to be cut in the middle.
    let args = ["--debounce=0", "--workers=1", "--min-reload-interval=0"];
    let mut p = Process::start(&[&ns], &args, &[]);
    p.await_ready().await;
    for i in 0..N {
        await_record(&ns, &format!("w-{i}")).await;
    }
    let mut cut_mid_way = 0;
    let rounds = 3;
    for round in 1..=rounds {
        let before = templates(&ns).await;
        ns.set_configmap("cfg", json!({"v": round.to_string()})).await;
        // Kill as soon as the first workload rolled.
        let rolled_at_kill = eventually(Duration::from_secs(20), "the first rollout", || async {
            let now = templates(&ns).await;
            let rolled = now.iter().filter(|(k, t)| before.get(*k) != Some(*t)).count();
            (rolled > 0).then_some(rolled)
        })
        .await;
        p.signal("KILL");
        p.wait_exit(Duration::from_secs(5)).await;
        let rolled = templates(&ns).await.iter().filter(|(k, t)| before.get(*k) != Some(*t)).count();
        eprintln!("round {round}: killed after {rolled_at_kill} rollouts seen, {rolled} of {N} rolled at exit");
        if rolled < N {
            cut_mid_way += 1;
        }
        p = Process::start(&[&ns], &args, &[]);
        p.await_ready().await;
        eventually(Duration::from_secs(30), "every workload rolled once more", || async {
            let now = templates(&ns).await;
            (now.iter().filter(|(k, t)| before.get(*k) != Some(*t)).count() == N).then_some(())
        })
        .await;
    }
    assert!(cut_mid_way > 0, "no kill landed in the middle of a fan-out; the test shows nothing");
    // Exactly one rollout per change and workload: rounds + 1 ReplicaSets each, and no more
    // after a quiet while.
    eventually(Duration::from_secs(60), "the Deployment controller caught up", || async {
        let by = replica_sets_by_owner(&ns).await;
        (by.len() == N && by.values().all(|n| *n == rounds + 1)).then_some(())
    })
    .await;
    holds(Duration::from_secs(3), "no extra rollout", || async {
        replica_sets_by_owner(&ns).await.values().all(|n| *n == rounds + 1)
    })
    .await;
}

/// The watches list by streaming where the API server serves it (this one does: the probe at
/// start finds the end-of-initial-events bookmark) and in pages otherwise (forced here); both
/// sync every object that exists, and the controller reloads after either.
#[tokio::test]
async fn streaming_and_paged_initial_lists_both_sync_and_reload() {
    for (args, line) in
        [(&[][..], "the API server serves streaming lists"), (&["--initial-list=page"][..], "initial lists: paged")]
    {
        let ns = TestNs::new("lists").await;
        // More objects than a page (100), so a paged list takes several requests.
        for i in 0..150 {
            ns.set_configmap(&format!("extra-{i}"), json!({"v": "1"})).await;
        }
        let t0 = auto_workload(&ns).await;
        let p = Process::start(&[&ns], args, &[]);
        p.log_line(line).await;
        p.await_ready().await;
        let tracked = p.metric("reloader_tracked_sources").await;
        assert!(tracked >= 151.0, "{args:?}: every ConfigMap listed, {tracked} tracked");
        await_record(&ns, "web").await;
        ns.set_configmap("cfg", json!({"v": "2"})).await;
        await_reload(&ns, "web", &t0).await;
    }
}

/// A priority level of API Priority and Fairness for ServiceAccount `ctl` of `ns` alone: 3
/// seats (1 share of the server's 600, none borrowed) that reject the excess with 429 instead
/// of queueing it. Removed when dropped.
struct RejectingPriorityLevel {
    name: String,
}

impl RejectingPriorityLevel {
    fn new(ns: &TestNs) -> RejectingPriorityLevel {
        let name = ns.name.clone();
        let pl = json!({"apiVersion": "flowcontrol.apiserver.k8s.io/v1", "kind": "PriorityLevelConfiguration",
            "metadata": {"name": name},
            "spec": {"type": "Limited", "limited": {"nominalConcurrencyShares": 1, "lendablePercent": 0,
                "borrowingLimitPercent": 0, "limitResponse": {"type": "Reject"}}}});
        let fs = json!({"apiVersion": "flowcontrol.apiserver.k8s.io/v1", "kind": "FlowSchema",
            "metadata": {"name": name},
            "spec": {"priorityLevelConfiguration": {"name": name}, "matchingPrecedence": 50,
                "distinguisherMethod": {"type": "ByUser"},
                "rules": [{"subjects": [{"kind": "ServiceAccount", "serviceAccount": {"namespace": name, "name": "ctl"}}],
                    "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"], "namespaces": ["*"], "clusterScope": true}],
                    "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}]}]}});
        for (what, o) in [("pl", pl), ("fs", fs)] {
            let f = std::env::temp_dir().join(format!("{name}-{what}.json"));
            std::fs::write(&f, o.to_string()).unwrap();
            let out = kubectl(&["apply", "-f", f.to_str().unwrap()]);
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        }
        RejectingPriorityLevel { name }
    }

    /// Requests of this priority level the API server refused, from its own metrics.
    fn rejected(&self) -> f64 {
        let out = kubectl(&["get", "--raw", "/metrics"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let label = format!("priority_level=\"{}\"", self.name);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("apiserver_flowcontrol_rejected_requests_total{") && l.contains(&label))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

impl Drop for RejectingPriorityLevel {
    fn drop(&mut self) {
        for kind in ["flowschema", "prioritylevelconfiguration"] {
            let _ = kubectl(&["delete", kind, &self.name, "--ignore-not-found", "--wait=false"]);
        }
    }
}

/// The API server refuses what the controller sends beyond what its priority level admits
/// (API Priority and Fairness, `Reject`): the writes in flight shrink to what it admits, and a
/// change used by 30 Deployments still rolls each of them, once.
#[tokio::test]
async fn writes_in_flight_adapt_when_the_api_server_rejects_the_excess() {
    const N: usize = 30;
    let ns = TestNs::new("apf").await;
    ns.set_configmap("shared", json!({"v": "1"})).await;
    for i in 0..N {
        ns.apply_json::<Deployment>(deployment(
            &format!("d-{i}"),
            json!({"reloader.stakater.com/auto": "true"}),
            env_from_configmaps(&["shared"]),
        ))
        .await;
    }
    let kubeconfig = service_account(&ns, controller_rules(true));
    let apf = RejectingPriorityLevel::new(&ns);
    let p = Process::start(&[&ns], &["--min-reload-interval=0"], &[("KUBECONFIG", &kubeconfig)]);
    p.await_ready().await;
    for i in 0..N {
        await_record(&ns, &format!("d-{i}")).await;
    }
    let before = templates(&ns).await;

    ns.set_configmap("shared", json!({"v": "2"})).await;
    let after = eventually(Duration::from_secs(90), "every Deployment rolled", || async {
        let now = templates(&ns).await;
        now.iter().all(|(name, t)| before.get(name) != Some(t)).then_some(now)
    })
    .await;
    let rejected = apf.rejected();
    let cuts = p.metric("reloader_write_slowdowns_total{reason=\"slow\"}").await
        + p.metric("reloader_write_slowdowns_total{reason=\"throttled\"}").await;
    eprintln!("rejected by the API server: {rejected}; cuts of the writes in flight: {cuts}");
    assert!(rejected > 0.0, "the priority level never rejected anything: the fault was not injected");
    assert!(cuts >= 1.0, "rejections never cut the writes in flight");
    assert!(p.metric("reloader_write_limit").await >= 1.0);
    assert_eq!(p.metric("reloader_reload_executed_total{success=\"true\"}").await, N as f64);
    holds(Duration::from_secs(3), "each rolled once", || async { templates(&ns).await == after }).await;
}
