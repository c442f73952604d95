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

/// A slow consumer: the controller stops reading (SIGSTOP, as CPU starvation or a long pause
/// would) for 30 s while 3,000 writes to objects it watches go by and one source a workload
/// uses changes. Its watches fall behind, and the API server may close them or answer their
/// resumption with 410 Gone; after SIGCONT the change is applied within 10 s, exactly once.
#[tokio::test]
async fn a_controller_stopped_for_30_s_under_3000_writes_applies_the_change_once() {
    use futures::StreamExt;
    let _one = RESTARTS.lock().await;
    let ns = TestNs::new("slowconsumer").await;
    let t0 = auto_workload(&ns).await;
    for i in 0..30 {
        ns.set_configmap(&format!("noise-{i}"), json!({"v": "0"})).await;
    }
    let p = Process::start(&[&ns], &[], &[]);
    p.await_ready().await;
    await_record(&ns, "web").await;

    p.signal("STOP");
    let stopped = Instant::now();
    let write = |i: usize| {
        let ns = &ns;
        async move {
            if i == 1500 {
                ns.set_configmap("cfg", json!({"v": "2"})).await;
            }
            ns.set_configmap(&format!("noise-{}", i % 30), json!({"v": i.to_string()})).await;
        }
    };
    futures::stream::iter(0..3000).map(write).buffer_unordered(16).collect::<Vec<()>>().await;
    let wrote = stopped.elapsed();
    eprintln!("3,000 writes and the change in {wrote:?} while stopped");
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(wrote)).await;
    p.signal("CONT");
    let resumed = Instant::now();
    let t1 = eventually(Duration::from_secs(10), "the change applied after SIGCONT", || async {
        let t = pod_template(&ns, "web").await;
        (t != t0).then_some(t)
    })
    .await;
    eprintln!("applied {:?} after SIGCONT", resumed.elapsed());
    assert_no_reload(&ns, "web", &t1).await;
    assert_eq!(p.metric("reloader_reload_executed_total{success=\"true\"}").await, 1.0, "exactly one reload");
    let (_, text) = p.get("/metrics").await.expect("scrape /metrics");
    let restarts: Vec<&str> = text.lines().filter(|l| l.starts_with("reloader_watch_restarts_total")).collect();
    eprintln!("watch restarts meanwhile: {restarts:?}");
}
