//! The Helm chart and the kustomize base: lint, render, schema, install into common-service,
//! and RBAC proven by running the controller out-of-cluster with a token of the chart's own
//! ServiceAccount, cluster-wide and namespaced.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::*;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

fn helm(args: &[&str]) -> Output {
    Command::new(cluster().bin.join("helm"))
        .args(args)
        .env("KUBECONFIG", &cluster().kubeconfig)
        .output()
        .expect("run helm")
}

fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn chart() -> String {
    repo().join("charts/reloader").to_string_lossy().to_string()
}

fn custom_values() -> String {
    repo().join("tests/fixtures/values-custom.yaml").to_string_lossy().to_string()
}

#[test]
fn lint_and_template_with_default_and_custom_values() {
    ok(&helm(&["lint", &chart()]), "helm lint (defaults)");
    ok(&helm(&["lint", &chart(), "-f", &custom_values()]), "helm lint (custom)");
    let default = ok(&helm(&["template", "reloader", &chart(), "-n", "common-service"]), "helm template (defaults)");
    for want in [
        "kind: ClusterRole",
        "kind: ClusterRoleBinding",
        "kind: ServiceAccount",
        "kind: Deployment",
        "runAsNonRoot: true",
        "readOnlyRootFilesystem: true",
        "allowPrivilegeEscalation: false",
        "- ALL",
        "type: RuntimeDefault",
        "path: /live",
        "path: /ready",
        "containerPort: 9090",
        "--rollout-timeout=10m",
    ] {
        assert!(default.contains(want), "default render lacks {want:?}");
    }
    assert_eq!(default.matches("\nkind: Role\n").count(), 1, "only the metadata Role (meta-info ConfigMap)");
    assert!(default.contains("resourceNames: [\"reloader-meta-info\"]"), "metadata Role scoped to its ConfigMap");
    for unwanted in [
        "leases",
        "kind: PrometheusRule",
        "grafana_dashboard",
        "namespaces\"]",
        "argoproj.io",
        "--enable-ha",
        "secrets-store.csi.x-k8s.io",
        "secretproviderclass",
        "--enable-csi-integration",
        "--max-concurrent-rollouts",
        "--halt-on-failed-rollouts",
    ] {
        assert!(!default.contains(unwanted), "default render has {unwanted:?}");
    }
    let custom = ok(
        &helm(&[
            "template",
            "reloader",
            &chart(),
            "-n",
            "common-service",
            "-f",
            &custom_values(),
            "--api-versions",
            "monitoring.coreos.com/v1",
        ]),
        "helm template (custom)",
    );
    for want in [
        "--namespaces=common-service,team-a,team-b",
        "--reload-strategy=env-vars",
        "--resources-to-ignore=secrets",
        "--ignored-workload-types=jobs",
        "--is-Argo-Rollouts=true",
        "--enable-csi-integration=true",
        "apiGroups: [\"secrets-store.csi.x-k8s.io\"]",
        "resources: [\"secretproviderclasspodstatuses\", \"secretproviderclasses\"]",
        "--enable-ha=true",
        "--dry-run=true",
        "--max-concurrent-rollouts=5",
        "--halt-on-failed-rollouts=3",
        "--rollout-timeout=15m",
        "--auto-annotation=example.com/auto",
        "--pause-deployment-annotation=example.com/pause",
        "name: POD_NAME",
        "METRICS_COUNT_BY_NAMESPACE",
        "kind: ServiceMonitor",
        "kind: PodMonitor",
        "kind: PodDisruptionBudget",
        "kind: NetworkPolicy",
        "kind: Secret",
        "registry.example.com/kube-reloader:1.2.3",
        "- name: regcred",
        "resources: [\"leases\"]",
        "podAntiAffinity",
        "--leader-election-lease-duration=20s",
        "--leader-election-renew-deadline=12s",
        "--leader-election-retry-period=3s",
        "kind: PrometheusRule",
        "team: platform",
        "alert: ReloaderRolloutFailed",
        "grafana_dashboard: \"1\"",
        "kube-reloader.json:",
    ] {
        assert!(custom.contains(want), "custom render lacks {want:?}");
    }
    assert!(!custom.contains("kind: ClusterRole"), "namespaced mode grants no ClusterRole");
    assert_eq!(
        custom.matches("\nkind: Role\n").count(),
        5,
        "one Role per watched namespace, plus the lease Role and the metadata Role"
    );
    // RBAC follows the values: Secrets ignored, so not granted; Jobs ignored but CronJobs kept, so only create.
    assert!(!custom.contains("\"secrets\""), "no Secret access when secrets are ignored");
    assert!(custom.contains("resources: [\"jobs\"]\n    verbs: [\"create\"]"), "{custom}");
}

#[test]
fn the_schema_and_the_templates_reject_bad_values() {
    let bad = [
        (vec!["--set", "reloader.reloadStrategy=rolling"], "reloadStrategy"),
        (vec!["--set", "reloader.logFormat=xml"], "logFormat"),
        (vec!["--set", "reloader.debounce=soon"], "debounce"),
        (vec!["--set", "reloader.namespaces={a}"], "watchGlobally"),
        (vec!["--set", "reloader.ignoreSecrets=true", "--set", "reloader.ignoreConfigMaps=true"], "ignoreConfigMaps"),
        (vec!["--set", "reloader.custom_annotations.nope=x"], "nope"),
    ];
    for (args, needle) in bad {
        let mut all = vec!["template", "reloader"];
        let c = chart();
        all.push(&c);
        all.extend(args.iter().copied());
        let out = helm(&all);
        assert!(!out.status.success(), "{args:?} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn deploy_matches_the_chart() {
    let out = Command::new("bash").arg(repo().join("hack/render-deploy.sh")).arg("--check").output().unwrap();
    ok(&out, "hack/render-deploy.sh --check");
}

/// A release of the chart in common-service, uninstalled when dropped.
struct Release {
    name: String,
}

impl Release {
    fn install(name: &str, sets: &[String]) -> Release {
        let mut args = vec![
            "install".to_string(),
            name.to_string(),
            chart(),
            "-n".into(),
            "common-service".into(),
            "--create-namespace".into(),
            "--wait=false".into(),
        ];
        for s in sets {
            args.push("--set".into());
            args.push(s.clone());
        }
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        ok(&helm(&a), &format!("helm install {name}"));
        Release { name: name.to_string() }
    }

    fn sa(&self) -> String {
        format!("{}-reloader", self.name)
    }

    /// The container args the chart rendered for its Deployment.
    fn args(&self) -> Vec<String> {
        let out = ok(
            &kubectl(&["-n", "common-service", "get", "deployment", &self.sa(), "-o", "json"]),
            "get the chart's Deployment",
        );
        let d: Value = serde_json::from_str(&out).unwrap();
        d["spec"]["template"]["spec"]["containers"][0]["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect()
    }

    /// A kubeconfig holding a TokenRequest token of the chart's ServiceAccount.
    fn kubeconfig(&self) -> PathBuf {
        let path = std::env::temp_dir().join(format!("{}.kubeconfig", self.name));
        let out = Command::new("bash")
            .arg(repo().join("hack/cluster.sh"))
            .args(["sa-kubeconfig", "common-service", &self.sa(), path.to_str().unwrap()])
            .output()
            .unwrap();
        ok(&out, "sa-kubeconfig");
        path
    }

    /// Runs the controller binary out-of-cluster with the chart's args and ServiceAccount.
    fn run(&self, extra: &[&str]) -> (Child, PathBuf) {
        let log = std::env::temp_dir().join(format!("{}-controller.log", self.name));
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut args = self.args();
        args.push(format!("--metrics-addr=127.0.0.1:{port}"));
        args.extend(extra.iter().map(|s| s.to_string()));
        let child = Command::new(env!("CARGO_BIN_EXE_reloader"))
            .args(&args)
            .env("KUBECONFIG", self.kubeconfig())
            .env("RELOADER_NAMESPACE", "common-service")
            .env("RELOADER_DEPLOYMENT_NAME", self.sa())
            // The chart's --log-level decides what is logged, not the test runner's environment.
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        (child, log)
    }
}

/// The log of a controller run: it must exist and show the controller started, so that what
/// it does not contain means something.
fn controller_log(log: &Path) -> String {
    let text =
        std::fs::read_to_string(log).unwrap_or_else(|e| panic!("read the controller log {}: {e}", log.display()));
    assert!(text.contains("Starting Reloader"), "the controller log {} shows no start-up:\n{text}", log.display());
    text
}

impl Drop for Release {
    fn drop(&mut self) {
        let _ = helm(&["uninstall", &self.name, "-n", "common-service"]);
    }
}

/// The engine's basic guarantees under the chart's permissions: adoption without a rollout,
/// a reload within 2 s, a Reloaded Event written.
async fn reloads_under_chart_rbac(ns: &TestNs, t0: &str) {
    await_record(ns, "web").await;
    assert_eq!(pod_template(ns, "web").await, t0, "adopted without a rollout");
    ns.set_configmap("cfg", json!({"v": "2"})).await;
    await_reload(ns, "web", t0).await;
    eventually(Duration::from_secs(5), "a Reloaded Event (events create is granted)", || async {
        let list = ns.api::<k8s_openapi::api::events::v1::Event>().list(&Default::default()).await.ok()?;
        list.items.into_iter().find(|e| e.reason.as_deref() == Some("Reloaded"))
    })
    .await;
}

#[tokio::test]
async fn cluster_wide_install_works_under_its_own_rbac() {
    let ns = TestNs::new("rbac-global").await;
    let other = TestNs::new("rbac-global-out").await;
    let key = format!("rbac-{}", ns.name);
    let p = json!({"metadata": {"labels": {key.clone(): "yes"}}});
    Api::<Namespace>::all(ns.client.clone()).patch(&ns.name, &PatchParams::default(), &Patch::Merge(&p)).await.unwrap();
    let release = Release::install(
        &format!("g{}", &ns.name[ns.name.len() - 6..]),
        &[format!("reloader.namespaceSelector={key}=yes")],
    );
    let t0 = auto_workload(&ns).await;
    let t_out = auto_workload(&other).await;
    let (mut child, log) = release.run(&[]);
    reloads_under_chart_rbac(&ns, &t0).await;
    other.set_configmap("cfg", json!({"v": "2"})).await;
    assert_no_reload(&other, "web", &t_out).await;
    // The meta-info ConfigMap, written under the chart's metadata Role.
    let meta: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(ns.client.clone(), "common-service");
    eventually(Duration::from_secs(10), "reloader-meta-info in common-service", || async {
        meta.get_opt("reloader-meta-info").await.ok().flatten()
    })
    .await;
    let _ = child.kill();
    let _ = child.wait();
    let text = controller_log(&log);
    assert!(!text.contains("forbidden"), "no permission error:\n{text}");
    assert!(!text.contains("cannot write the reloader-meta-info"), "{text}");
}

#[tokio::test]
async fn namespaced_install_works_only_in_its_namespaces() {
    let a = TestNs::new("rbac-a").await;
    let b = TestNs::new("rbac-b").await;
    let c = TestNs::new("rbac-c").await;
    let release = Release::install(
        &format!("n{}", &a.name[a.name.len() - 6..]),
        &["reloader.watchGlobally=false".to_string(), format!("reloader.namespaces={{{},{}}}", a.name, b.name)],
    );
    let (ta, tb, tc) = (auto_workload(&a).await, auto_workload(&b).await, auto_workload(&c).await);
    let args = release.args();
    assert!(
        args.iter().any(|x| x.starts_with("--namespaces=") && x.contains(&a.name) && x.contains(&b.name)),
        "{args:?}"
    );
    let (mut child, log) = release.run(&[]);
    reloads_under_chart_rbac(&a, &ta).await;
    reloads_under_chart_rbac(&b, &tb).await;
    c.set_configmap("cfg", json!({"v": "2"})).await;
    assert_no_reload(&c, "web", &tc).await;
    assert!(record_of(&c, "web").await.is_none(), "a namespace outside the list is not touched");
    let _ = child.kill();
    let _ = child.wait();
    let text = controller_log(&log);
    assert!(!text.contains("forbidden"), "no permission error:\n{text}");

    // Asked to watch a namespace the chart grants nothing in: the error names verb and resource.
    let out_args: Vec<String> = release
        .args()
        .into_iter()
        .map(|x| if x.starts_with("--namespaces=") { format!("{x},{}", c.name) } else { x })
        .collect();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let log = std::env::temp_dir().join(format!("{}-forbidden.log", release.name));
    let mut child = Command::new(env!("CARGO_BIN_EXE_reloader"))
        .args(&out_args)
        .arg(format!("--metrics-addr=127.0.0.1:{port}"))
        .env("KUBECONFIG", release.kubeconfig())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let text = eventually(Duration::from_secs(15), "a permission error in the log", || {
        let t = std::fs::read_to_string(&log).unwrap_or_default();
        async move { t.contains("forbidden").then_some(t) }
    })
    .await;
    let _ = child.kill();
    let _ = child.wait();
    // The verb is `watch` with streaming lists (the default on this API server), `list` with pages.
    assert!(
        text.contains("cannot watch resource") || text.contains("cannot list resource"),
        "names the verb and resource:\n{text}"
    );
    assert!(
        text.contains(&format!("in the namespace \\\"{}\\\"", c.name))
            || text.contains(&format!("in the namespace \"{}\"", c.name)),
        "{text}"
    );
}

#[tokio::test]
async fn kustomize_base_applies() {
    let dir = repo().join("deploy");
    let out = kubectl(&["apply", "--server-side", "-k", dir.to_str().unwrap()]);
    let text = ok(&out, "kubectl apply -k deploy/");
    for want in
        ["serviceaccount/reloader", "clusterrole.rbac.authorization.k8s.io/reloader-role", "deployment.apps/reloader"]
    {
        assert!(text.contains(want), "{want} in\n{text}");
    }
    let d = ok(
        &kubectl(&[
            "-n",
            "common-service",
            "get",
            "deployment",
            "reloader",
            "-o",
            "jsonpath={.spec.template.spec.serviceAccountName}",
        ]),
        "get",
    );
    assert_eq!(d, "reloader");
    let _ = kubectl(&["delete", "-n", "common-service", "deployment/reloader", "serviceaccount/reloader"]);
    let _ = kubectl(&["delete", "clusterrole/reloader-role", "clusterrolebinding/reloader-role-binding"]);
    let _ = kubectl(&[
        "delete",
        "-n",
        "common-service",
        "role/reloader-metadata-role",
        "rolebinding/reloader-metadata-role-binding",
    ]);
}

/// `reloader.enableCSIIntegration=true`: the chart's RBAC lets the controller watch the CSI
/// driver's two resources, and a rotation rolls under it; no permission error.
#[tokio::test]
async fn csi_integration_works_under_its_own_rbac() {
    use common::csi::{Driver, install_csi_crds, mounting, spc};
    install_csi_crds();
    let ns = TestNs::new("rbac-csi").await;
    let release = Release::install(
        &format!("c{}", &ns.name[ns.name.len() - 6..]),
        &[
            "reloader.watchGlobally=false".to_string(),
            format!("reloader.namespaces={{{}}}", ns.name),
            "reloader.enableCSIIntegration=true".to_string(),
        ],
    );
    assert!(release.args().iter().any(|a| a == "--enable-csi-integration=true"));
    spc(&ns, "vault-app", json!({"reloader.stakater.com/match": "true"})).await;
    let driver = Driver::start(&ns, &[("vault-app", "1")]);
    let mut d = deployment("web", json!({"reloader.stakater.com/search": "true"}), mounting("vault-app"));
    d["spec"]["replicas"] = json!(1);
    ns.apply_json::<k8s_openapi::api::apps::v1::Deployment>(d).await;
    driver.await_mounted("vault-app", "1", 1).await;
    let (mut child, log) = release.run(&[]);
    let t0 = eventually(Duration::from_secs(20), "web recorded with vault-app", || async {
        let r = record_of(&ns, "web").await?;
        r.contains("secretproviderclass/vault-app").then_some(())?;
        Some(pod_template(&ns, "web").await)
    })
    .await;
    driver.rotate("vault-app", "2", Duration::ZERO).await;
    await_reload(&ns, "web", &t0).await;
    let _ = child.kill();
    let _ = child.wait();
    let text = controller_log(&log);
    assert!(!text.contains("forbidden"), "no permission error:\n{text}");
    assert!(text.contains("CSI provider is installed"), "{text}");
}
