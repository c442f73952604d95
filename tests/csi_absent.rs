//! `--enable-csi-integration` on a cluster without the Secrets Store CSI driver's CRDs: one
//! clear log line at start, ready as usual, and ConfigMap reloads unaffected. (A test binary of
//! its own: it removes the CRDs that `tests/csi.rs` installs, and test binaries run one after
//! another.)

mod common;

use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use serde_json::json;

#[tokio::test]
async fn without_the_crds_one_log_line_and_nothing_else_changes() {
    for crd in ["secretproviderclasses", "secretproviderclasspodstatuses"] {
        let name = format!("crd/{crd}.secrets-store.csi.x-k8s.io");
        let out = kubectl(&["delete", &name, "--ignore-not-found", "--wait=true", "--timeout=60s"]);
        assert!(out.status.success(), "delete {name}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let start = Instant::now();
    while kubectl(&["get", "secretproviderclasspodstatuses", "-A"]).status.success() {
        assert!(start.elapsed() < Duration::from_secs(30), "CSI CRDs gone within 30 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    let ns = TestNs::new("csi-absent").await;
    ns.set_configmap("cfg", json!({"v": "1"})).await;
    let pod = json!({"containers": [{"name": "app", "image": "example.com/app:1",
            "envFrom": [{"configMapRef": {"name": "cfg"}}],
            "volumeMounts": [{"name": "secrets", "mountPath": "/mnt/secrets"}]}],
        "volumes": [{"name": "secrets", "csi": {"driver": "secrets-store.csi.k8s.io",
            "volumeAttributes": {"secretProviderClass": "vault-app"}}}]});
    ns.apply_json::<Deployment>(deployment("web", json!({"reloader.stakater.com/auto": "true"}), pod)).await;

    let ctl = Process::start(&[&ns], &["--enable-csi-integration=true"], &[]);
    ctl.await_ready().await;
    let line = ctl.log_line("CSI provider is not installed").await;
    assert!(line.contains("secrets-store.csi.x-k8s.io/v1"), "{line}");
    let record = await_record(&ns, "web").await;
    assert!(record.contains("configmap/cfg") && !record.contains("secretproviderclass"), "{record}");
    let before = pod_template(&ns, "web").await;
    ns.set_configmap("cfg", json!({"v": "2"})).await;
    await_reload(&ns, "web", &before).await;
    let logs = ctl.logs();
    assert_eq!(logs.matches("CSI provider is not installed").count(), 1, "one line:\n{logs}");
    for bad in ["panicked", "ERROR", "watch failed"] {
        assert!(!logs.contains(bad), "{bad} in:\n{logs}");
    }
    assert_eq!(ctl.get("/ready").await.map(|r| r.0), Some(200), "still ready");
}
