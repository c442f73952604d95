//! Integration-test harness: the local control plane (started once per run, or reused if it is
//! up), a throw-away namespace per test, the controller run in-process or as the binary, and
//! "await this condition within N s" helpers. A control plane that cannot start fails the test run.

#![allow(dead_code)]

pub mod csi;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use reloader::cli::Cli;
use reloader::config::Settings;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

pub struct Cluster {
    pub kubeconfig: PathBuf,
    pub bin: PathBuf,
}

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The local control plane; started on first use.
pub fn cluster() -> &'static Cluster {
    static C: OnceLock<Cluster> = OnceLock::new();
    C.get_or_init(|| {
        let out = Command::new("bash")
            .arg(repo().join("hack/cluster.sh"))
            .arg("ensure")
            .output()
            .expect("run hack/cluster.sh");
        if !out.status.success() {
            panic!(
                "the local control plane did not start; integration tests cannot run without it.\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let last = stdout.lines().last().unwrap_or_default();
        let path = last.strip_prefix("export KUBECONFIG=").unwrap_or_else(|| panic!("unexpected output: {stdout}"));
        let bin = Command::new("bash").arg(repo().join("hack/tools.sh")).arg("--check").output().expect("tools");
        Cluster {
            kubeconfig: PathBuf::from(path),
            bin: PathBuf::from(String::from_utf8_lossy(&bin.stdout).trim().to_string()),
        }
    })
}

pub async fn client() -> Client {
    let c = cluster();
    let kc = Kubeconfig::read_from(&c.kubeconfig).expect("read kubeconfig");
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.expect("kubeconfig");
    Client::try_from(config).expect("client")
}

/// Runs the cluster's own kubectl.
pub fn kubectl(args: &[&str]) -> std::process::Output {
    let c = cluster();
    Command::new(c.bin.join("kubectl")).args(args).env("KUBECONFIG", &c.kubeconfig).output().expect("run kubectl")
}

/// A namespace for one test, deleted when dropped (even on panic).
pub struct TestNs {
    pub name: String,
    pub client: Client,
}

impl TestNs {
    pub async fn new(prefix: &str) -> TestNs {
        let client = client().await;
        let suffix: u32 = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let name = format!("{prefix}-{:x}{:x}", suffix, std::process::id() & 0xfff);
        let ns: Namespace = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"reloader-test": name}}
        }))
        .unwrap();
        Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await.expect("create namespace");
        // Pods need the namespace's default ServiceAccount, which the controller-manager adds.
        // Right after a test restarted kube-apiserver (faults.rs) its informers take up to
        // ~30 s to come back (client-go's backoff), so this waits longer than a test would.
        let sa: Api<k8s_openapi::api::core::v1::ServiceAccount> = Api::namespaced(client.clone(), &name);
        eventually(Duration::from_secs(90), "default ServiceAccount", || async {
            sa.get_opt("default").await.ok().flatten()
        })
        .await;
        TestNs { name, client }
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }

    pub async fn apply_json<K>(&self, v: Value) -> K
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + std::fmt::Debug
            + serde::de::DeserializeOwned
            + serde::Serialize,
    {
        let obj: K = serde_json::from_value(v).expect("valid object");
        let name = obj.meta().name.clone().expect("name");
        self.api::<K>()
            .patch(&name, &PatchParams::apply("reloader-tests").force(), &Patch::Apply(&obj))
            .await
            .expect("apply")
    }

    pub async fn set_configmap(&self, name: &str, data: Value) {
        self.apply_json::<ConfigMap>(
            json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":name},"data":data}),
        )
        .await;
    }

    pub async fn set_secret(&self, name: &str, data: Value) {
        self.apply_json::<Secret>(
            json!({"apiVersion":"v1","kind":"Secret","metadata":{"name":name},"stringData":data}),
        )
        .await;
    }

    pub async fn delete<K>(&self, name: &str)
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + std::fmt::Debug
            + serde::de::DeserializeOwned,
    {
        self.api::<K>().delete(name, &DeleteParams::default()).await.expect("delete");
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        let _ = kubectl(&["delete", "namespace", &self.name, "--wait=false"]);
    }
}

/// Polls `f` until it yields `Some`, or panics after `timeout` naming `what`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Asserts `f` stays `true` for the whole `duration` (polled), naming `what` otherwise.
pub async fn holds<F, Fut>(duration: Duration, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < duration {
        assert!(f().await, "{what} stopped holding after {:?}", start.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Parses controller settings from Reloader-style arguments.
pub fn settings(args: &[&str]) -> Settings {
    use clap::Parser;
    let mut all = vec!["reloader"];
    // Tests run many controllers in one process: no fixed port unless a test asks for one.
    if !args.iter().any(|a| a.starts_with("--metrics-addr")) {
        all.push("--metrics-addr=off");
    }
    // Engine tests reload one workload several times in a row; the storm brake has its own tests.
    if !args.iter().any(|a| a.starts_with("--min-reload-interval")) {
        all.push("--min-reload-interval=0");
    }
    if !args.iter().any(|a| a.starts_with("--flap-limit")) {
        all.push("--flap-limit=0");
    }
    all.extend_from_slice(args);
    let cli = Cli::try_parse_from(all).expect("valid args");
    cli.run.settings().expect("valid settings")
}

/// The controller, running in-process until stopped or dropped.
pub struct Controller {
    pub ctx: std::sync::Arc<reloader::controller::Ctx>,
    token: CancellationToken,
    handle: Option<tokio::task::JoinHandle<Result<(), reloader::error::Error>>>,
}

impl Controller {
    /// Starts the controller scoped to `ns` (plus `args`), and waits for its initial sync.
    pub async fn start(ns: &TestNs, args: &[&str]) -> Controller {
        let scope = format!("--namespaces={}", ns.name);
        let mut all = vec![scope.as_str()];
        all.extend_from_slice(args);
        Self::start_with(settings(&all)).await
    }

    pub async fn start_with(settings: Settings) -> Controller {
        let ctx = reloader::controller::Ctx::new(client().await, settings);
        let token = CancellationToken::new();
        let mut synced = ctx.subscribe_ready();
        let handle = tokio::spawn(reloader::controller::run(ctx.clone(), token.clone()));
        tokio::time::timeout(Duration::from_secs(20), synced.wait_for(|s| *s))
            .await
            .expect("controller synced within 20 s")
            .expect("sync channel");
        // Let the first pass over the workloads finish before the test changes anything.
        tokio::time::sleep(Duration::from_millis(300)).await;
        Controller { ctx, token, handle: Some(handle) }
    }

    /// Whether the controller's index holds the ConfigMap or Secret `name` of `ns` (`kind`:
    /// configmap or secret): it has seen the source, and not yet its deletion.
    pub fn indexes(&self, ns: &TestNs, kind: &str, name: &str) -> bool {
        self.ctx.tracks_source(&ns.name, kind, name)
    }

    pub async fn stop(mut self) {
        self.token.cancel();
        if let Some(h) = self.handle.take() {
            h.await.expect("controller task").expect("controller result");
        }
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

/// Plain-HTTP client for probes and receivers (rustls needs a provider installed once).
pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Status and body of `GET path` on the local `port`; `None` while nothing answers there.
pub async fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let r = http().get(format!("http://127.0.0.1:{port}{path}")).send().await.ok()?;
    let status = r.status().as_u16();
    Some((status, r.text().await.unwrap_or_default()))
}

/// One sample of a metric in a `/metrics` scrape (`series`: the exact text before the value);
/// 0 when the series is absent, as an untouched counter is.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .map(|v| v.trim().parse().expect("a number"))
        .unwrap_or(0.0)
}

/// The controller binary as a process, scoped to `namespaces` of the local control plane, with
/// metrics and probes on a free port and stdout and stderr in one log file; killed when
/// dropped (even on panic), so no test leaves a controller running.
pub struct Process {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Process {
    /// Starts it with `RUST_LOG=info`; `env` comes last, so it may override that and
    /// `KUBECONFIG`. Returns at once: [`Process::await_ready`] waits for `/ready`.
    pub fn start(namespaces: &[&TestNs], args: &[&str], env: &[(&str, &str)]) -> Process {
        let port = free_port();
        let names: Vec<&str> = namespaces.iter().map(|n| n.name.as_str()).collect();
        // The port in the name: a test may run several processes in one namespace.
        let log = std::env::temp_dir().join(format!("reloader-{}-{port}.log", names[0]));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_reloader"))
            .arg(format!("--namespaces={}", names.join(",")))
            .arg(format!("--metrics-addr=127.0.0.1:{port}"))
            .args(args)
            .env("KUBECONFIG", &cluster().kubeconfig)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start the controller");
        Process { child, port, log }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The first log line containing `text`, waiting for it.
    pub async fn log_line(&self, text: &str) -> String {
        eventually(Duration::from_secs(10), &format!("a log line with {text:?}"), || {
            let logs = self.logs();
            async move { logs.lines().find(|l| l.contains(text)).map(String::from) }
        })
        .await
    }

    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
        get(self.port, path).await
    }

    pub async fn await_ready(&self) {
        eventually(Duration::from_secs(20), "/ready = 200", || async {
            (self.get("/ready").await?.0 == 200).then_some(())
        })
        .await;
    }

    /// One sample of a metric, scraped now (see [`metric`]).
    pub async fn metric(&self, series: &str) -> f64 {
        let (_, text) = self.get("/metrics").await.expect("scrape /metrics");
        metric(&text, series)
    }

    /// Sends `sig` (TERM, KILL, STOP, CONT…) to the process.
    pub fn signal(&self, sig: &str) {
        let ok =
            Command::new("kill").arg(format!("-{sig}")).arg(self.child.id().to_string()).status().unwrap().success();
        assert!(ok, "kill -{sig}");
    }

    pub async fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        eventually(within, "the controller to exit", || {
            let s = self.child.try_wait().ok().flatten();
            async move { s }
        })
        .await
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub const LAST_RELOADED_FROM: &str = "reloader.stakater.com/last-reloaded-from";
pub const RECORD: &str = "reloader.kube-reloader.dev/applied";

/// A Deployment (3 replicas) whose pod template uses the given container/volume JSON.
pub fn deployment(name: &str, annotations: Value, pod_spec: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec}
        }
    })
}

/// A single-container pod spec with `envFrom` on the named ConfigMaps.
pub fn env_from_configmaps(names: &[&str]) -> Value {
    let refs: Vec<Value> = names.iter().map(|n| json!({"configMapRef": {"name": n}})).collect();
    json!({"containers": [{"name": "app", "image": "example.com/app:1", "envFrom": refs}]})
}

/// The Deployment's pod template, serialised: a rollout is exactly a change of it. (The
/// generation is no measure: Deployments bump it on metadata-annotation changes too.)
pub async fn pod_template(ns: &TestNs, name: &str) -> String {
    let d = ns.api::<Deployment>().get(name).await.expect("get deployment");
    serde_json::to_string(&d.spec.expect("spec").template).expect("serialise")
}

/// The number of ReplicaSets of a Deployment: one per distinct pod template it rolled to.
pub async fn replica_sets(ns: &TestNs, name: &str) -> usize {
    use k8s_openapi::api::apps::v1::ReplicaSet;
    let list = ns.api::<ReplicaSet>().list(&Default::default()).await.expect("list rs");
    list.items
        .iter()
        .filter(|rs| rs.metadata.owner_references.iter().flatten().any(|o| o.kind == "Deployment" && o.name == name))
        .count()
}

pub async fn template_annotation(ns: &TestNs, name: &str, key: &str) -> Option<String> {
    let d = ns.api::<Deployment>().get(name).await.expect("get deployment");
    d.spec?.template.metadata?.annotations?.get(key).cloned()
}

pub async fn record_of(ns: &TestNs, name: &str) -> Option<String> {
    let d = ns.api::<Deployment>().get(name).await.expect("get deployment");
    d.metadata.annotations?.get(RECORD).cloned()
}

/// ConfigMap `cfg` and a Deployment `web` with `auto: "true"` using it; returns its pod template.
pub async fn auto_workload(ns: &TestNs) -> String {
    ns.set_configmap("cfg", json!({"v": "1"})).await;
    ns.apply_json::<Deployment>(deployment(
        "web",
        json!({"reloader.stakater.com/auto": "true"}),
        env_from_configmaps(&["cfg"]),
    ))
    .await;
    pod_template(ns, "web").await
}

/// Waits until the Deployment carries a record (the controller has seen it).
pub async fn await_record(ns: &TestNs, name: &str) -> String {
    eventually(Duration::from_secs(10), "the applied record on the workload", || async { record_of(ns, name).await })
        .await
}

/// Waits (up to 2 s, the promised latency) for the Deployment's pod template to change from
/// `from`; returns the new template.
pub async fn await_reload(ns: &TestNs, name: &str, from: &str) -> String {
    eventually(Duration::from_secs(2), &format!("a reload of {name}"), || async {
        let t = pod_template(ns, name).await;
        (t != from).then_some(t)
    })
    .await
}

/// Asserts the pod template stays `now` for 5 s.
pub async fn assert_no_reload(ns: &TestNs, name: &str, now: &str) {
    holds(Duration::from_secs(5), &format!("no reload of {name}"), || async { pod_template(ns, name).await == now })
        .await;
}

/// What the controller needs in one namespace: read sources and workloads, patch the apps
/// kinds, write Events.
pub fn controller_rules(secrets: bool) -> Value {
    let sources: &[&str] = if secrets { &["configmaps", "secrets"] } else { &["configmaps"] };
    json!([{"apiGroups":[""],"resources":sources,"verbs":["get","list","watch"]},
           {"apiGroups":["apps"],"resources":["deployments","statefulsets","daemonsets"],"verbs":["get","list","watch","patch"]},
           {"apiGroups":["batch"],"resources":["jobs","cronjobs"],"verbs":["get","list","watch"]},
           {"apiGroups":["events.k8s.io"],"resources":["events"],"verbs":["create","patch"]}])
}

/// ServiceAccount `ctl` of `ns`, bound to a Role with `rules` there; returns the path of a
/// kubeconfig holding its token, to run the controller with exactly that identity.
pub fn service_account(ns: &TestNs, rules: Value) -> String {
    let role =
        json!({"apiVersion":"rbac.authorization.k8s.io/v1","kind":"Role","metadata":{"name":"ctl"},"rules":rules});
    let f = std::env::temp_dir().join(format!("{}-role.json", ns.name));
    std::fs::write(&f, role.to_string()).unwrap();
    let binding = format!("--serviceaccount={}:ctl", ns.name);
    for args in [
        vec!["-n", &ns.name, "create", "serviceaccount", "ctl"],
        vec!["-n", &ns.name, "apply", "-f", f.to_str().unwrap()],
        vec!["-n", &ns.name, "create", "rolebinding", "ctl", "--role=ctl", &binding],
    ] {
        let out = kubectl(&args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let path = std::env::temp_dir().join(format!("{}.kubeconfig", ns.name));
    let out = Command::new("bash")
        .arg(repo().join("hack/cluster.sh"))
        .args(["sa-kubeconfig", &ns.name, "ctl", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A ValidatingAdmissionPolicy (and its binding) that refuses matching requests in the
/// namespaces labelled for one test; removed when dropped. The API server takes a moment to
/// enforce a new policy: use [`DenyPolicy::await_enforced`] with a probe request.
pub struct DenyPolicy {
    name: String,
}

impl DenyPolicy {
    /// `rules`: the policy's `resourceRules`; `expression`: CEL that must hold, else `message`.
    pub fn new(ns: &TestNs, what: &str, rules: Value, expression: &str, message: &str) -> DenyPolicy {
        let name = format!("{what}-{}", ns.name);
        let vap = json!({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {"resourceRules": rules},
                "validations": [{"expression": expression, "message": message}]
            }
        });
        let binding = json!({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": name},
            "spec": {"policyName": name, "validationActions": ["Deny"],
                     "matchResources": {"namespaceSelector": {"matchLabels": {"reloader-test": ns.name}}}}
        });
        for m in [&vap, &binding] {
            let f = std::env::temp_dir().join(format!("{name}-{}.json", m["kind"].as_str().unwrap()));
            std::fs::write(&f, m.to_string()).unwrap();
            let out = kubectl(&["apply", "-f", f.to_str().unwrap()]);
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        }
        DenyPolicy { name }
    }

    /// Waits until `probe` (a request the policy refuses) is refused.
    pub async fn await_enforced<F, Fut>(&self, mut probe: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        eventually(Duration::from_secs(20), &format!("policy {} enforced", self.name), || {
            let refused = probe();
            async move { refused.await.then_some(()) }
        })
        .await;
    }

    /// Removes the policy now (the API server stops enforcing it within about a second).
    pub fn remove(&self) {
        let _ = kubectl(&[
            "delete",
            "validatingadmissionpolicybinding,validatingadmissionpolicy",
            &self.name,
            "--ignore-not-found",
        ]);
    }
}

impl Drop for DenyPolicy {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Installs the Argo Rollouts CRD (from the pinned argo-rollouts Go module) once per test
/// binary, and waits until it is Established (`kubectl wait` fails while it has no conditions).
pub fn install_rollout_crd() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let out = Command::new("bash").arg(repo().join("hack/argo-crd.sh")).output().expect("argo-crd.sh");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let out = kubectl(&["apply", "--server-side", "-f", &path]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let start = Instant::now();
        loop {
            let out = kubectl(&[
                "get",
                "crd/rollouts.argoproj.io",
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Established\")].status}",
            ]);
            if String::from_utf8_lossy(&out.stdout).trim() == "True" {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(30), "the Rollout CRD was not established");
            std::thread::sleep(Duration::from_millis(200));
        }
    });
}

/// `reloader explain <target> -n <ns> [extra]` against the local control plane; its stdout.
pub fn explain_with(ns: &TestNs, target: &str, extra: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_reloader"))
        .args(["explain", target, "-n", &ns.name])
        .args(extra)
        .env("KUBECONFIG", &cluster().kubeconfig)
        .output()
        .expect("run reloader explain");
    assert!(out.status.success(), "explain failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}
