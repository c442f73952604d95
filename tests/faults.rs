//! Faults of the control plane itself, in a test binary of its own (test binaries run one after
//! another, so restarting the API server disturbs no other test).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use reloader::metrics::Success;
use serde_json::json;

/// One restart at a time: the tests of this binary run in parallel otherwise.
static RESTARTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// kube-apiserver is stopped for 15 s and started again with the same arguments; a ConfigMap
/// changed as soon as it answers again is applied within seconds, exactly once.
#[tokio::test]
async fn a_change_right_after_an_api_server_restart_is_applied_within_seconds() {
    let _one = RESTARTS.lock().await;
    change_right_after_a_restart("restart-apiserver", "apirestart").await;
}

/// etcd is stopped for 10 s and started again on its data: the API server answers again once
/// it reconnects, and a change made then is applied within seconds, exactly once.
#[tokio::test]
async fn a_change_right_after_an_etcd_restart_is_applied_within_seconds() {
    let _one = RESTARTS.lock().await;
    change_right_after_a_restart("restart-etcd", "etcdrestart").await;
}

async fn change_right_after_a_restart(command: &str, prefix: &str) {
    let ns = TestNs::new(prefix).await;
    let t0 = auto_workload(&ns).await;
    let ctl = Controller::start(&ns, &[]).await;
    await_record(&ns, "web").await;

    let out = Command::new("bash")
        .arg(repo().join("hack/cluster.sh"))
        .args([command, if command == "restart-etcd" { "10" } else { "15" }])
        .output()
        .expect("restart a control-plane component");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let back = Instant::now();
    ns.set_configmap("cfg", json!({"v": "2"})).await;
    let t1 = eventually(Duration::from_secs(15), "the reload after the restart", || async {
        let t = pod_template(&ns, "web").await;
        (t != t0).then_some(t)
    })
    .await;
    let took = back.elapsed();
    eprintln!("{command}: change applied {took:?} after /readyz answered again");
    assert!(took <= Duration::from_secs(10), "{command}: applied {took:?} after /readyz answered again");
    assert_no_reload(&ns, "web", &t1).await;
    // Counted from the controller's side: kube-controller-manager itself may take a while to
    // reconnect and make the new ReplicaSet.
    let reloads = ctl.ctx.metrics.reload_executed.get_or_create(&Success { success: "true" }).get();
    assert_eq!(reloads, 1, "exactly one reload");
    // Leave a recovered control plane to the test binaries that run next: the Deployment
    // controller has caught up once it made the ReplicaSet of the new template.
    eventually(Duration::from_secs(120), "kube-controller-manager caught up", || async {
        (replica_sets(&ns, "web").await == 2).then_some(())
    })
    .await;
}
