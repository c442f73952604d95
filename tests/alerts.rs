//! The alerts and the dashboard the chart ships: promtool's unit tests of every alert, and every
//! metric the alerts and the dashboard's panels name exported by a running controller (names
//! drift silently otherwise).

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::Value;

const RULES: &str = "charts/reloader/files/alerts.rules.yaml";
const RULE_TESTS: &str = "tests/alerts/alerts.test.yaml";
const DASHBOARD: &str = "charts/reloader/files/dashboard.json";

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

#[test]
fn every_alert_passes_its_promtool_tests() {
    let out = Command::new(cluster().bin.join("promtool"))
        .args(["test", "rules", RULE_TESTS])
        .current_dir(repo())
        .output()
        .expect("run promtool (built by hack/tools.sh)");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    eprintln!("{text}");
    assert!(out.status.success(), "promtool test rules failed:\n{text}");
    let (rules, tests) = (read(RULES), read(RULE_TESTS));
    let alerts: Vec<&str> = rules.lines().filter_map(|l| l.trim().strip_prefix("- alert: ")).collect();
    assert!(alerts.len() >= 7, "{alerts:?}");
    for a in alerts {
        assert!(
            tests.contains(&format!("alertname: {a}\n        exp_alerts:\n          - exp_labels")),
            "{a} has no firing test"
        );
        assert!(tests.contains(&format!("alertname: {a}\n        exp_alerts: []")), "{a} has no silent test");
    }
}

/// The sample names a family declared by `# TYPE name type` is exported with.
fn exported(metrics: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else { continue };
        let (name, kind) = rest.split_once(' ').expect("# TYPE name type");
        match kind {
            "counter" => names.insert(format!("{name}_total")),
            "histogram" => {
                for s in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{s}"));
                }
                true
            }
            _ => names.insert(name.to_string()),
        };
    }
    names
}

/// Every PromQL expression of the rules and of the dashboard's panels.
fn expressions() -> Vec<String> {
    let mut exprs: Vec<String> =
        read(RULES).lines().filter_map(|l| l.trim().strip_prefix("expr: ")).map(String::from).collect();
    let dashboard: Value = serde_json::from_str(&read(DASHBOARD)).expect("the dashboard is JSON");
    for panel in dashboard["panels"].as_array().expect("panels") {
        for t in panel["targets"].as_array().into_iter().flatten() {
            exprs.push(t["expr"].as_str().expect("a target's expr").to_string());
        }
    }
    exprs
}

#[tokio::test]
async fn every_metric_the_alerts_and_the_dashboard_name_is_exported() {
    let ns = TestNs::new("metric-names").await;
    let t0 = auto_workload(&ns).await;
    // The per-namespace counter is opt-in; the dashboard has a panel for it.
    let p = Process::start(&[&ns], &[], &[("METRICS_COUNT_BY_NAMESPACE", "enabled")]);
    p.await_ready().await;
    await_record(&ns, "web").await;
    // A reload whose rollout completes: the histograms have series only once observed.
    ns.set_configmap("cfg", serde_json::json!({"v": "2"})).await;
    await_reload(&ns, "web", &t0).await;
    let text = eventually(Duration::from_secs(30), "the rollout's outcome in the metrics", || async {
        let (_, text) = p.get("/metrics").await?;
        text.contains("reloader_reload_to_available_seconds_count").then_some(text)
    })
    .await;
    let exported = exported(&text);
    let name = regex::Regex::new(r"\b(?:reloader|process)_[a-z_]+\b").unwrap();
    let exprs = expressions();
    let named: BTreeSet<&str> = exprs.iter().flat_map(|e| name.find_iter(e).map(|m| m.as_str())).collect();
    eprintln!("{} expressions name {} metrics: {named:?}", exprs.len(), named.len());
    assert!(named.len() >= 25 && named.contains("reloader_ready"), "the check reads the expressions: {named:?}");
    let missing: Vec<&&str> = named.iter().filter(|n| !exported.contains(**n)).collect();
    assert!(missing.is_empty(), "named but not exported: {missing:?}\nexported: {exported:?}");
}

/// `helm template` with the new values renders a PrometheusRule that the Prometheus operator's
/// own CRD (from its pinned Go module) accepts, holding every alert of the rule file, and a
/// dashboard ConfigMap holding the dashboard as it is in the repository.
#[test]
fn the_chart_renders_a_valid_prometheus_rule_and_dashboard() {
    let crd = Command::new("bash").arg(repo().join("hack/prometheus-crd.sh")).output().expect("prometheus-crd.sh");
    assert!(crd.status.success(), "{}", String::from_utf8_lossy(&crd.stderr));
    let crd = String::from_utf8_lossy(&crd.stdout).trim().to_string();
    let out = kubectl(&["apply", "--server-side", "-f", &crd]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out =
        kubectl(&["wait", "--for=condition=Established", "--timeout=30s", "crd/prometheusrules.monitoring.coreos.com"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let rendered = std::env::temp_dir().join(format!("reloader-alerts-{}.yaml", std::process::id()));
    let out = Command::new(cluster().bin.join("helm"))
        .args([
            "template",
            "reloader",
            "charts/reloader",
            "-n",
            "default",
            "--api-versions",
            "monitoring.coreos.com/v1",
        ])
        .args(["--set", "reloader.prometheusRule.enabled=true", "--set", "reloader.grafanaDashboard.enabled=true"])
        .args(["--show-only", "templates/prometheusrule.yaml", "--show-only", "templates/dashboard.yaml"])
        .current_dir(repo())
        .output()
        .expect("helm");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::write(&rendered, &out.stdout).unwrap();
    // The API server validates both against their schemas, and answers what it would store.
    let out = kubectl(&["apply", "--dry-run=server", "-o", "json", "-f", rendered.to_str().unwrap()]);
    assert!(out.status.success(), "rejected: {}", String::from_utf8_lossy(&out.stderr));
    let stored: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let items = stored["items"].as_array().expect("a list of the two objects");
    let of = |kind: &str| items.iter().find(|i| i["kind"] == kind).unwrap_or_else(|| panic!("a {kind} in {stored}"));
    let (rule, dashboard) = (of("PrometheusRule"), of("ConfigMap"));
    let rule = rule["spec"]["groups"][0]["rules"].as_array().unwrap();
    let names: Vec<&str> = rule.iter().map(|r| r["alert"].as_str().unwrap()).collect();
    let want: Vec<String> =
        read(RULES).lines().filter_map(|l| l.trim().strip_prefix("- alert: ")).map(String::from).collect();
    assert_eq!(names, want, "every alert of the rule file, in order");
    let json: Value = serde_json::from_str(dashboard["data"]["kube-reloader.json"].as_str().unwrap()).unwrap();
    assert_eq!(json, serde_json::from_str::<Value>(&read(DASHBOARD)).unwrap());
    assert_eq!(dashboard["metadata"]["labels"]["grafana_dashboard"], "1");
}
