//! The kubectl plugin: the binary found by kubectl's plugin lookup as `kubectl-reloader` on
//! PATH, `kubectl reloader status` and `kubectl reloader explain` against the local control
//! plane, read from the cluster with no controller running.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use serde_json::{Value, json};

/// A directory holding `kubectl-reloader`, a link to the binary, for PATH.
fn plugin_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kubectl-reloader-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join("kubectl-reloader");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_reloader"), &link).unwrap();
    dir
}

/// `kubectl reloader <args>`, with kubectl resolving the plugin from PATH.
fn kubectl_reloader(args: &[&str]) -> Output {
    let path = format!("{}:{}", plugin_dir().display(), std::env::var("PATH").unwrap_or_default());
    Command::new(cluster().bin.join("kubectl"))
        .arg("reloader")
        .args(args)
        .env("PATH", path)
        .env("KUBECONFIG", &cluster().kubeconfig)
        .output()
        .expect("run kubectl")
}

fn stdout(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    text
}

/// `status -o json` as (workload, state) pairs.
fn states(ns: &TestNs) -> Vec<(String, String)> {
    let rows: Value =
        serde_json::from_str(&stdout(&kubectl_reloader(&["status", "-n", &ns.name, "-o", "json"]))).unwrap();
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| (r["workload"].as_str().unwrap().to_string(), r["state"].as_str().unwrap().to_string()))
        .collect()
}

#[tokio::test]
async fn kubectl_reloader_status_and_explain_read_the_cluster() {
    let ns = TestNs::new("plugin").await;
    let t0 = auto_workload(&ns).await;
    let pause = json!({"reloader.stakater.com/auto": "true", "deployment.reloader.stakater.com/pause-period": "1h"});
    ns.apply_json::<Deployment>(deployment("paused", pause, env_from_configmaps(&["cfg"]))).await;
    ns.apply_json::<Deployment>(deployment("plain", json!({}), env_from_configmaps(&["cfg"]))).await;

    // The controller adopts both and reloads them once; `paused` is then paused for an hour.
    let ctl = Controller::start(&ns, &[]).await;
    await_record(&ns, "web").await;
    ns.set_configmap("cfg", json!({"v": "2"})).await;
    let t1 = await_reload(&ns, "web", &t0).await;
    eventually(Duration::from_secs(5), "paused by the controller", || async {
        let d = ns.api::<Deployment>().get("paused").await.ok()?;
        (d.spec?.paused == Some(true)).then_some(())
    })
    .await;
    ctl.stop().await;

    // With no controller running: `web` rolls to completion on the fake nodes.
    // JSON states are kebab-case: `up-to-date`.
    let rows = eventually(Duration::from_secs(30), "web up to date", || async {
        let rows = states(&ns);
        rows.contains(&("deployment/web".into(), "up-to-date".into())).then_some(rows)
    })
    .await;
    eprintln!("{rows:?}");
    assert!(rows.contains(&("deployment/paused".into(), "paused".into())), "{rows:?}");
    assert!(!rows.iter().any(|(w, _)| w == "deployment/plain"), "not annotated, not listed: {rows:?}");

    // A change while no controller runs, and a workload it never saw.
    ns.set_configmap("cfg", json!({"v": "3"})).await;
    ns.apply_json::<Deployment>(deployment(
        "fresh",
        json!({"reloader.stakater.com/auto": "true"}),
        env_from_configmaps(&["cfg"]),
    ))
    .await;
    let table = stdout(&kubectl_reloader(&["status", "-n", &ns.name]));
    eprintln!("{table}");
    let line =
        |w: &str| table.lines().find(|l| l.starts_with(w)).unwrap_or_else(|| panic!("{w} in\n{table}")).to_string();
    assert!(table.starts_with("WORKLOAD"), "one namespace: no NAMESPACE column\n{table}");
    assert!(
        line("deployment/web ").contains("waiting") && line("deployment/web ").contains("configmap/cfg changed"),
        "{table}"
    );
    assert!(line("deployment/fresh ").contains("new"), "{table}");
    assert!(line("deployment/paused ").contains("paused"), "{table}");
    assert_eq!(pod_template(&ns, "web").await, t1, "status writes nothing");

    // Across namespaces: the NAMESPACE column, and this namespace's rows among the others.
    let all = stdout(&kubectl_reloader(&["status", "-A"]));
    assert!(all.starts_with("NAMESPACE"), "{all}");
    assert!(all.lines().any(|l| l.starts_with(&ns.name) && l.contains("deployment/fresh")), "{all}");

    // explain through the plugin: the same answer as `reloader explain`.
    let text = stdout(&kubectl_reloader(&["explain", "deployment/web", "-n", &ns.name]));
    assert!(text.contains("decision: reload: roll it: configmap/cfg changed"), "{text}");

    // Without a subcommand the plugin prints its help and runs no controller.
    let out = kubectl_reloader(&[]);
    let help = stdout(&out);
    assert!(help.contains("Usage: kubectl reloader") && help.contains("status"), "{help}");
}
