//! Secret values never leak: a Secret changes from one distinctive value to another while the
//! controller runs with every crate logging at trace level and alerts going to a local
//! receiver; one workload reloads, another's reload is refused by an admission policy. Neither
//! value, as it is or base64-encoded, appears in any log line, Event, `explain` output (text or
//! JSON), the metrics, an alert body, or the workloads and ReplicaSets the controller wrote.

mod common;

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
use common::*;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::api::ListParams;
use serde_json::json;
use sha2::{Digest, Sha256};

/// A 32-character token no one else writes: hex of a hash of the time, the process and `label`.
fn token(label: &str) -> String {
    let seed = format!("{label}-{:?}-{}", std::time::SystemTime::now(), std::process::id());
    let hex: String = Sha256::digest(seed.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    hex[..32].to_string()
}

fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// What to search for: the value itself, and its base64 encoding wherever it starts in the
/// encoded bytes (each of the three alignments gives other characters; the part that depends
/// only on the value is kept), in the standard and the URL-safe alphabet.
fn needles(value: &str) -> Vec<String> {
    let mut out = vec![value.to_string()];
    for pad in 0..3 {
        let mut bytes = vec![0u8; pad];
        bytes.extend_from_slice(value.as_bytes());
        let enc = base64(&bytes);
        let start = pad.div_ceil(3) * 4;
        let end = (bytes.len() / 3) * 4;
        let core = enc[start..end].to_string();
        out.push(core.replace('+', "-").replace('/', "_"));
        out.push(core);
    }
    out.sort();
    out.dedup();
    out
}

fn explain(ns: &TestNs, target: &str, json: bool) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_reloader"));
    cmd.args(["explain", target, "-n", &ns.name]).env("KUBECONFIG", &cluster().kubeconfig).env("RUST_LOG", "trace");
    if json {
        cmd.args(["-o", "json"]);
    }
    let out = cmd.output().expect("run reloader explain");
    assert!(out.status.success(), "explain failed: {}", String::from_utf8_lossy(&out.stderr));
    // Both streams: whatever it prints anywhere counts.
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[tokio::test]
async fn a_secret_value_appears_in_no_log_event_explain_metric_alert_or_workload() {
    let ns = TestNs::new("leak").await;
    let old = token("old");
    let new = token("new");
    assert_ne!(old, new);

    // Alerts go to a local receiver that keeps every body.
    let bodies: Arc<Mutex<Vec<String>>> = Arc::default();
    let b = bodies.clone();
    let app = Router::new().route(
        "/hook",
        post(move |body: Bytes| {
            let b = b.clone();
            async move {
                b.lock().unwrap().push(String::from_utf8_lossy(&body).to_string());
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    // One Secret, used by two auto Deployments; the API refuses pod-template changes of
    // `frozen`, so its reload fails (ReloadFail) while `web` reloads (Reloaded, an alert).
    ns.set_secret("creds", json!({"token": old})).await;
    let spec = json!({"containers": [{"name": "app", "image": "example.com/app:1",
        "envFrom": [{"secretRef": {"name": "creds"}}],
        "volumeMounts": [{"name": "creds", "mountPath": "/creds"}]}],
        "volumes": [{"name": "creds", "secret": {"secretName": "creds"}}]});
    for name in ["web", "frozen"] {
        ns.apply_json::<Deployment>(deployment(name, json!({"reloader.stakater.com/auto": "true"}), spec.clone()))
            .await;
    }
    let policy = DenyPolicy::new(
        &ns,
        "deny-frozen",
        json!([{"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["UPDATE"], "resources": ["deployments"]}]),
        "object.metadata.name != 'frozen' || object.spec.template == oldObject.spec.template",
        "pod template changes of frozen are refused",
    );
    let deployments = ns.api::<Deployment>();
    policy
        .await_enforced(|| async {
            let p = json!({"spec": {"template": {"metadata": {"annotations": {"example.com/probe": "1"}}}}});
            let dry_run = kube::api::PatchParams { dry_run: true, ..Default::default() };
            deployments.patch("frozen", &dry_run, &kube::api::Patch::Merge(&p)).await.is_err()
        })
        .await;

    // The binary, with every crate at trace level (RUST_LOG overrides the default filter that
    // keeps kube, hyper, h2, rustls… at warn), stdout and stderr into one file.
    let p = Process::start(
        &[&ns],
        &["--log-level=trace"],
        &[("RUST_LOG", "trace"), ("ALERT_ON_RELOAD", "true"), ("ALERT_SINK", "slack"), ("ALERT_WEBHOOK_URL", &hook)],
    );
    p.await_ready().await;
    await_record(&ns, "web").await;
    await_record(&ns, "frozen").await;

    let t0 = pod_template(&ns, "web").await;
    ns.set_secret("creds", json!({"token": new})).await;
    eventually(Duration::from_secs(3), "a reload of web", || async {
        (pod_template(&ns, "web").await != t0).then_some(())
    })
    .await;
    let events = eventually(Duration::from_secs(10), "Reloaded on web and ReloadFail on frozen", || async {
        let ev = ns.api::<Event>().list(&ListParams::default()).await.ok()?.items;
        let on = |name: &str, reason: &str| {
            ev.iter().any(|e| {
                e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
                    && e.reason.as_deref() == Some(reason)
            })
        };
        (on("web", "Reloaded") && on("frozen", "ReloadFail")).then_some(ev)
    })
    .await;
    let alerts = eventually(Duration::from_secs(5), "the alert", || async {
        let got = bodies.lock().unwrap().clone();
        (!got.is_empty()).then_some(got)
    })
    .await;
    let metrics = eventually(Duration::from_secs(10), "a failed and a successful reload counted", || async {
        let (_, text) = p.get("/metrics").await?;
        (metric(&text, "reloader_reload_executed_total{success=\"true\"}") >= 1.0
            && metric(&text, "reloader_reload_executed_total{success=\"false\"}") >= 1.0)
            .then_some(text)
    })
    .await;
    let logs = eventually(Duration::from_secs(5), "the reload and the failure in the log", || {
        let logs = p.logs();
        async move {
            (logs.contains("Changes detected in 'creds' of type 'SECRET'") && logs.contains("reloading Deployment/"))
                .then_some(logs)
        }
    })
    .await;

    // Everything else a user or an observer can read.
    let core_events = kubectl(&["get", "events", "-n", &ns.name, "-o", "json"]);
    assert!(core_events.status.success());
    let core_events = String::from_utf8_lossy(&core_events.stdout).to_string();
    let explains: Vec<(String, String)> = [("web", false), ("web", true), ("frozen", false), ("frozen", true)]
        .into_iter()
        .map(|(w, json)| {
            (
                format!("explain deployment/{w}{}", if json { " -o json" } else { "" }),
                explain(&ns, &format!("deployment/{w}"), json),
            )
        })
        .collect();
    let workloads = serde_json::to_string(&deployments.list(&ListParams::default()).await.unwrap()).unwrap();
    let replica_sets =
        serde_json::to_string(&ns.api::<ReplicaSet>().list(&ListParams::default()).await.unwrap()).unwrap();
    let (_, ready) = p.get("/ready").await.unwrap();

    // Not vacuous: each piece holds what it is supposed to.
    let trace_lines = logs.lines().filter(|l| l.contains(" TRACE ")).count();
    assert!(trace_lines > 0, "trace lines logged");
    for target in ["kube_client", "hyper_util", "rustls"] {
        assert!(
            logs.lines().any(|l| (l.contains(" TRACE ") || l.contains(" DEBUG ")) && l.contains(target)),
            "{target} logs at trace/debug level are captured"
        );
    }
    assert!(events.len() >= 2 && core_events.contains("ReloadFail"), "Events: {core_events}");
    let fail = events.iter().find(|e| e.reason.as_deref() == Some("ReloadFail")).unwrap();
    let note = fail.note.clone().unwrap_or_default();
    assert_eq!(note.matches("pod template changes of frozen are refused").count(), 1, "the API message once: {note}");
    for (what, text) in &explains {
        assert!(text.contains("secret/creds"), "{what} names the Secret: {text}");
    }
    assert!(alerts.iter().any(|a| a.contains("creds") && a.contains("web")), "alert: {alerts:?}");
    assert!(metrics.contains("reloader_reconcile_total"), "metrics: {metrics}");
    assert!(workloads.contains("creds") && replica_sets.contains("creds"), "workloads and ReplicaSets name the Secret");
    // The needles do find a value where it is: the Secret as the API serves it (base64).
    let secret = serde_json::to_string(&ns.api::<Secret>().get("creds").await.unwrap()).unwrap();
    // (The plain value is not among them: the needles are sorted, so it need not come first.)
    assert!(
        needles(&new).iter().filter(|n| **n != new).any(|n| secret.contains(n.as_str())),
        "the base64 needles match the Secret"
    );

    let mut material: Vec<(String, String)> = vec![
        ("controller log (trace)".into(), logs.clone()),
        ("events.k8s.io Events".into(), serde_json::to_string(&events).unwrap()),
        ("core Events (kubectl)".into(), core_events),
        ("/metrics".into(), metrics),
        ("/ready".into(), ready),
        ("Deployments".into(), workloads),
        ("ReplicaSets".into(), replica_sets),
    ];
    material.extend(explains);
    material.extend(alerts.into_iter().enumerate().map(|(i, a)| (format!("alert body {i}"), a)));
    let mut leaks = Vec::new();
    for value in [&old, &new] {
        for needle in needles(value) {
            for (what, text) in &material {
                let hits = text.matches(needle.as_str()).count();
                if hits > 0 {
                    let line = text.lines().find(|l| l.contains(needle.as_str())).unwrap_or_default();
                    leaks.push(format!("{what}: {hits} × {needle:?}, e.g. {line}"));
                }
            }
        }
    }
    assert!(leaks.is_empty(), "Secret values leaked:\n{}", leaks.join("\n"));
    eprintln!(
        "searched {} bytes of log ({} lines, {trace_lines} at trace), {} Events, 4 explain outputs, metrics, {} alert(s)",
        logs.len(),
        logs.lines().count(),
        events.len(),
        bodies.lock().unwrap().len()
    );
}
