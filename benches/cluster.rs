//! The cluster benchmark. Runs every scenario against each controller, one after the other, on
//! the local control plane that `hack/bench.sh` starts with the API audit log on, and measures
//! from outside the controller:
//! - memory and CPU from `/proc/<pid>` (RSS sampled every 100 ms, peak from `VmHWM`);
//! - reload latency and rollouts with an independent watch on Deployments and ReplicaSets;
//! - API requests from the audit log, by the controller's user agent.
//!
//! Writes `results.json`, `RESULTS.md` and `plot.svg` into `--out`. Usage (via `hack/bench.sh`):
//!   cargo bench --bench cluster -- --audit-log PATH [--quick] [--repeat N] [--out DIR] [--only churn]
//!                                  [--reloader-bin PATH]

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Client, Config};
use serde::Serialize;
use serde_json::{Value, json};

const BENCH_AGENT: &str = "kube-reloader-bench";
const WORKLOAD_RESOURCES: [&str; 6] = ["deployments", "statefulsets", "daemonsets", "jobs", "cronjobs", "rollouts"];
/// ConfigMaps the churned Deployments share.
const CHURN_SOURCES: usize = 10;
/// How long one expected reload may take before the run counts it as missed.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Serialize)]
struct Sizes {
    secrets: usize,
    configmaps: usize,
    deployments: usize,
    latency_updates: usize,
    fanout: usize,
    bursts: usize,
    noop_edits: usize,
    churn_workloads: usize,
    churn_rounds: usize,
}

impl Sizes {
    fn new(quick: bool) -> Sizes {
        if quick {
            Sizes {
                secrets: 400,
                configmaps: 400,
                deployments: 40,
                latency_updates: 20,
                fanout: 20,
                bursts: 3,
                noop_edits: 20,
                churn_workloads: 50,
                churn_rounds: 2,
            }
        } else {
            Sizes {
                secrets: 10_000,
                configmaps: 10_000,
                deployments: 1_000,
                latency_updates: 200,
                fanout: 500,
                bursts: 5,
                noop_edits: 200,
                churn_workloads: 1_000,
                churn_rounds: 4,
            }
        }
    }
}

struct Args {
    quick: bool,
    repeat: usize,
    out: PathBuf,
    audit_log: PathBuf,
    reloader_bin: Option<PathBuf>,
    /// Run one scenario only (`churn`), print its figures and write no results files.
    only: Option<String>,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        quick: false,
        repeat: 0,
        out: PathBuf::from("bench"),
        audit_log: PathBuf::new(),
        reloader_bin: None,
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--quick" => a.quick = true,
            "--repeat" => a.repeat = value("--repeat")?.parse().context("--repeat: a number")?,
            "--out" => a.out = value("--out")?.into(),
            "--audit-log" => a.audit_log = value("--audit-log")?.into(),
            "--reloader-bin" => a.reloader_bin = Some(value("--reloader-bin")?.into()),
            "--only" => match value("--only")?.as_str() {
                "churn" => a.only = Some("churn".into()),
                other => bail!("--only: {other:?} is not a scenario that runs alone; use churn"),
            },
            // cargo bench passes --bench to harness-less targets.
            "--bench" => {}
            other => bail!("unknown argument {other:?}; see the top of benches/cluster.rs"),
        }
    }
    if a.audit_log.as_os_str().is_empty() {
        bail!("--audit-log is required: run the benchmark with hack/bench.sh (make bench)");
    }
    if a.repeat == 0 {
        a.repeat = if a.quick { 1 } else { 3 };
    }
    Ok(a)
}

// ---------------------------------------------------------------------------------------------
// The controllers under test.

/// A controller binary and how to run it equivalently: annotations strategy, all namespaces,
/// out-of-cluster with the bench's kubeconfig.
#[derive(Clone)]
struct Subject {
    name: String,
    bin: PathBuf,
    args: Vec<String>,
    ready_url: String,
    /// Prefix of the `User-Agent` its requests carry in the audit log.
    agent: String,
    /// Variants for the latency scenario: (label, extra args).
    latency_variants: Vec<(String, Vec<String>)>,
}

fn ours() -> Subject {
    let port = free_port();
    Subject {
        name: "kube-reloader".into(),
        bin: PathBuf::from(env!("CARGO_BIN_EXE_reloader")),
        args: vec![format!("--metrics-addr=127.0.0.1:{port}"), "--reload-strategy=annotations".into()],
        ready_url: format!("http://127.0.0.1:{port}/ready"),
        agent: reloader::client::USER_AGENT.split('/').next().unwrap_or_default().to_string() + "/",
        latency_variants: vec![
            ("debounce default".into(), vec![]),
            ("debounce off".into(), vec!["--debounce=0".into()]),
        ],
    }
}

/// Stakater Reloader: client-go names requests after the binary; metrics are on a fixed :9090.
fn stakater(bin: PathBuf) -> Subject {
    let base = bin.file_name().map(|f| f.to_string_lossy().to_string()).unwrap_or_default();
    Subject {
        name: "Stakater Reloader".into(),
        bin,
        args: vec!["--reload-strategy=annotations".into()],
        ready_url: "http://127.0.0.1:9090/metrics".into(),
        agent: format!("{base}/"),
        latency_variants: vec![("no debounce".into(), vec![])],
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(18080)
}

/// A running controller process, sampled.
struct Running {
    child: Child,
    started: Instant,
    peak_sampled_kib: Arc<Mutex<u64>>,
    stop_sampling: Arc<AtomicBool>,
}

impl Running {
    fn start(s: &Subject, extra: &[String], log: &Path) -> anyhow::Result<Running> {
        let out = std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
        let child = Command::new(&s.bin)
            .args(&s.args)
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(out.try_clone()?)
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("start {}", s.bin.display()))?;
        let (peak, stop) = (Arc::new(Mutex::new(0)), Arc::new(AtomicBool::new(false)));
        let (p, st, pid) = (peak.clone(), stop.clone(), child.id());
        std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                if let Some(kib) = proc_status(pid, "VmRSS") {
                    let mut m = p.lock().unwrap();
                    *m = (*m).max(kib);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Ok(Running { child, started: Instant::now(), peak_sampled_kib: peak, stop_sampling: stop })
    }

    async fn wait_ready(&mut self, url: &str) -> anyhow::Result<Duration> {
        let http = reqwest::Client::new();
        while self.started.elapsed() < Duration::from_secs(600) {
            if let Some(status) = self.child.try_wait()? {
                bail!("the controller exited before it was ready: {status}");
            }
            if matches!(http.get(url).send().await, Ok(r) if r.status().is_success()) {
                return Ok(self.started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("not ready within 600 s ({url})")
    }

    fn rss_kib(&self) -> u64 {
        proc_status(self.child.id(), "VmRSS").unwrap_or(0)
    }

    /// The kernel's high-water mark and the highest sample, whichever is larger.
    fn peak_kib(&self) -> u64 {
        proc_status(self.child.id(), "VmHWM").unwrap_or(0).max(*self.peak_sampled_kib.lock().unwrap())
    }

    /// User + system CPU seconds so far (`/proc/<pid>/stat`, USER_HZ = 100).
    fn cpu_secs(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        (ticks(11) + ticks(12)) / 100.0
    }

    /// SIGTERM, then SIGKILL after 15 s.
    fn stop(mut self) {
        self.stop_sampling.store(true, Ordering::Relaxed);
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn proc_status(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

// ---------------------------------------------------------------------------------------------
// The audit log: requests per controller, by user agent, between two offsets.

struct Audit {
    path: PathBuf,
}

#[derive(Default, Debug, Clone, Serialize)]
struct Requests {
    /// verb → resource → count
    by_verb: BTreeMap<String, BTreeMap<String, usize>>,
}

impl Requests {
    fn count(&self, verb: &str) -> usize {
        self.by_verb.get(verb).map(|m| m.values().sum()).unwrap_or(0)
    }
    fn workload_writes(&self) -> usize {
        ["create", "update", "patch", "delete"]
            .iter()
            .filter_map(|v| self.by_verb.get(*v))
            .flat_map(|m| m.iter())
            .filter(|(r, _)| WORKLOAD_RESOURCES.contains(&r.as_str()))
            .map(|(_, n)| n)
            .sum()
    }
    fn total(&self) -> usize {
        self.by_verb.values().flat_map(|m| m.values()).sum()
    }
}

impl Audit {
    fn offset(&self) -> u64 {
        std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0)
    }

    /// Requests whose user agent starts with `agent`, logged between `from` and now. Each
    /// request is counted once: at `ResponseComplete`, or at `ResponseStarted` for watches.
    fn since(&self, from: u64, agent: &str) -> anyhow::Result<Requests> {
        Ok(self.read(from, agent)?.0)
    }

    /// Like `since`, plus the offset just past the last complete line read, to resume from.
    fn read(&self, from: u64, agent: &str) -> anyhow::Result<(Requests, u64)> {
        let mut f = std::fs::File::open(&self.path).with_context(|| format!("open {}", self.path.display()))?;
        f.seek(SeekFrom::Start(from))?;
        let (mut r, mut end) = (Requests::default(), from);
        let mut reader = BufReader::new(f);
        let mut line = String::new();
        while reader.read_line(&mut line)? > 0 {
            if !line.ends_with('\n') {
                break; // still being written; the next read starts at it
            }
            end += line.len() as u64;
            if let Ok(e) = serde_json::from_str::<Value>(&line)
                && e["userAgent"].as_str().unwrap_or("").starts_with(agent)
            {
                let verb = e["verb"].as_str().unwrap_or("").to_string();
                let stage = e["stage"].as_str().unwrap_or("");
                let counted = if verb == "watch" { stage == "ResponseStarted" } else { stage == "ResponseComplete" };
                if counted {
                    let resource = e["objectRef"]["resource"].as_str().unwrap_or("-").to_string();
                    *r.by_verb.entry(verb).or_default().entry(resource).or_default() += 1;
                }
            }
            line.clear();
        }
        Ok((r, end))
    }

    /// Waits until `agent` has made no request other than a watch for `quiet` (its start-up
    /// work is done). Reads only what was appended since the previous look.
    async fn quiesce(&self, agent: &str, quiet: Duration) -> anyhow::Result<()> {
        let (mut pos, mut since) = (self.offset(), Instant::now());
        let deadline = Instant::now() + Duration::from_secs(600);
        while Instant::now() < deadline {
            let (seen, end) = self.read(pos, agent)?;
            pos = end;
            if seen.total() > seen.count("watch") {
                since = Instant::now();
            } else if since.elapsed() >= quiet {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        bail!("{agent} kept calling the API for 600 s")
    }
}

// ---------------------------------------------------------------------------------------------
// The independent watch: when each Deployment's pod template changed.

/// A Deployment's current pod template (serialised) and the instants it changed.
type Seen = (String, Vec<Instant>);

#[derive(Clone, Default)]
struct Templates {
    /// namespace/name → what was seen of it
    seen: Arc<Mutex<HashMap<String, Seen>>>,
    ready: Arc<AtomicBool>,
}

impl Templates {
    fn start(client: Client) -> Templates {
        let t = Templates::default();
        let t2 = t.clone();
        tokio::spawn(async move {
            let api: Api<Deployment> = Api::all(client);
            let mut s = watcher::watcher(api, watcher::Config::default()).boxed();
            while let Some(ev) = s.next().await {
                let now = Instant::now();
                match ev {
                    Ok(watcher::Event::Apply(d) | watcher::Event::InitApply(d)) => t2.observe(&d, now),
                    Ok(watcher::Event::InitDone) => t2.ready.store(true, Ordering::SeqCst),
                    _ => {}
                }
            }
        });
        t
    }

    fn observe(&self, d: &Deployment, now: Instant) {
        let key =
            format!("{}/{}", d.metadata.namespace.as_deref().unwrap_or(""), d.metadata.name.as_deref().unwrap_or(""));
        let template = serde_json::to_string(&d.spec.as_ref().map(|s| &s.template)).unwrap_or_default();
        let mut seen = self.seen.lock().unwrap();
        match seen.get_mut(&key) {
            Some((t, changes)) if *t != template => {
                *t = template;
                changes.push(now);
            }
            Some(_) => {}
            None => {
                seen.insert(key, (template, Vec::new()));
            }
        }
    }

    async fn wait_synced(&self) {
        while !self.ready.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The first change of `key` after `after`, waiting up to the reload timeout.
    async fn change_after(&self, key: &str, after: Instant) -> Option<Instant> {
        let deadline = Instant::now() + RELOAD_TIMEOUT;
        loop {
            let hit = self.seen.lock().unwrap().get(key).and_then(|(_, c)| c.iter().find(|t| **t >= after).copied());
            if hit.is_some() || Instant::now() > deadline {
                return hit;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Forgets the Deployments of a namespace (churned ones are created again under the same names).
    fn forget(&self, namespace: &str) {
        self.seen.lock().unwrap().retain(|k, _| !k.starts_with(&format!("{namespace}/")));
    }

    /// Template changes of Deployments in `namespaces` since `after`.
    fn changes_since(&self, namespaces: &[&str], after: Instant) -> usize {
        let seen = self.seen.lock().unwrap();
        seen.iter()
            .filter(|(k, _)| namespaces.iter().any(|ns| k.starts_with(&format!("{ns}/"))))
            .map(|(_, (_, c))| c.iter().filter(|t| **t >= after).count())
            .sum()
    }
}

// ---------------------------------------------------------------------------------------------
// Objects.

/// Deterministic filler bytes (xorshift), so runs are comparable and nothing random is logged.
fn filler(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b'a' + (x % 26) as u8
        })
        .collect()
}

/// Secret `i` of the scale set: most 1–4 KiB, 1 % 100 KiB, 0.1 % 1 MiB, 10 % Helm releases.
fn scale_secret(i: usize) -> Secret {
    let size = match i {
        i if i % 1000 == 999 => 1 << 20,
        i if i % 100 == 50 => 100 << 10,
        i => 1024 + (i * 37) % 3072,
    };
    let mut s: Secret = serde_json::from_value(json!({"metadata": {"name": format!("s-{i}")}})).unwrap();
    if i % 10 == 3 {
        s.type_ = Some("helm.sh/release.v1".into());
    }
    s.data = Some([("payload".to_string(), ByteString(filler(i as u64, size)))].into());
    s
}

fn configmap(name: &str, value: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"v": value}})).unwrap()
}

/// An auto-annotated Deployment with no replicas (rollouts still create ReplicaSets) using the
/// given ConfigMaps through `envFrom` and, optionally, a Secret volume.
fn deployment(name: &str, configmaps: &[String], secret: Option<&str>) -> Deployment {
    let env_from: Vec<Value> = configmaps.iter().map(|c| json!({"configMapRef": {"name": c}})).collect();
    let mut spec = json!({"containers": [{"name": "app", "image": "example.com/app:1", "envFrom": env_from}]});
    if let Some(s) = secret {
        spec["volumes"] = json!([{"name": "s", "secret": {"secretName": s}}]);
        spec["containers"][0]["volumeMounts"] = json!([{"name": "s", "mountPath": "/s"}]);
    }
    serde_json::from_value(json!({
        "metadata": {"name": name, "annotations": {"reloader.stakater.com/auto": "true"}},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": spec}}
    }))
    .unwrap()
}

async fn create_all<K>(api: &Api<K>, objects: Vec<K>) -> anyhow::Result<()>
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    stream::iter(objects)
        .map(|o| async move { api.create(&PostParams::default(), &o).await.map(|_| ()) })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await
        .context("create objects")?;
    Ok(())
}

async fn namespace(client: &Client, name: &str) -> anyhow::Result<()> {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .with_context(|| name.to_string())?;
    Ok(())
}

async fn set_data(client: &Client, ns: &str, name: &str, value: &str) -> anyhow::Result<()> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    api.patch(name, &PatchParams::default(), &Patch::Merge(json!({"data": {"v": value}}))).await?;
    Ok(())
}

/// The scenario objects of one controller, created before it starts so every controller
/// starts from the same state.
struct Layout {
    lat: Vec<String>,
    fan: String,
    burst: String,
    noop: String,
    churn: String,
}

impl Layout {
    fn new(tag: &str) -> Layout {
        Layout {
            lat: vec![format!("{tag}-lat-a"), format!("{tag}-lat-b")],
            fan: format!("{tag}-fan"),
            burst: format!("{tag}-burst"),
            noop: format!("{tag}-noop"),
            churn: format!("{tag}-churn"),
        }
    }
    fn namespaces(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.lat.iter().map(String::as_str).collect();
        v.extend([self.fan.as_str(), self.burst.as_str(), self.noop.as_str(), self.churn.as_str()]);
        v
    }

    async fn create(&self, client: &Client, sz: &Sizes) -> anyhow::Result<()> {
        for ns in self.namespaces() {
            namespace(client, ns).await?;
        }
        for ns in self.lat.iter().chain([&self.noop]) {
            let n = if *ns == self.noop { sz.noop_edits.min(50) } else { sz.latency_updates };
            let cms = (0..n).map(|i| configmap(&format!("c-{i}"), "0")).collect();
            create_all(&Api::namespaced(client.clone(), ns), cms).await?;
            let ds = (0..n).map(|i| deployment(&format!("d-{i}"), &[format!("c-{i}")], None)).collect();
            create_all(&Api::namespaced(client.clone(), ns), ds).await?;
        }
        create_all(&Api::namespaced(client.clone(), &self.fan), vec![configmap("shared", "0")]).await?;
        let ds = (0..sz.fanout).map(|i| deployment(&format!("d-{i}"), &["shared".into()], None)).collect();
        create_all(&Api::namespaced(client.clone(), &self.fan), ds).await?;
        let mut cms = Vec::new();
        let mut ds = Vec::new();
        for b in 0..sz.bursts {
            let names: Vec<String> = (0..5).map(|k| format!("b{b}-{k}")).collect();
            cms.extend(names.iter().map(|n| configmap(n, "0")));
            ds.push(deployment(&format!("d-{b}"), &names, None));
        }
        create_all(&Api::namespaced(client.clone(), &self.burst), cms).await?;
        create_all(&Api::namespaced(client.clone(), &self.burst), ds).await?;
        let cms = (0..CHURN_SOURCES).map(|i| configmap(&format!("c-{i}"), "0")).collect();
        create_all(&Api::namespaced(client.clone(), &self.churn), cms).await?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Results.

#[derive(Serialize, Default)]
struct ScaleRun {
    ready_s: f64,
    cpu_at_ready_s: f64,
    rss_steady_mib: f64,
    rss_peak_mib: f64,
    requests_during_sync: Requests,
}

#[derive(Serialize, Default)]
struct SubjectResult {
    name: String,
    scale: Vec<ScaleRun>,
    /// variant → latencies in milliseconds (a missed reload is not included; see `missed`)
    latency_ms: BTreeMap<String, Vec<f64>>,
    fanout_s: Vec<f64>,
    fanout_patches: Vec<usize>,
    burst_spread_ms: Vec<f64>,
    burst_rollouts: Vec<usize>,
    noop_workload_writes: usize,
    noop_template_changes: usize,
    restart_rollouts: usize,
    restart_workload_writes: usize,
    lists_after_sync: usize,
    requests_after_sync: Requests,
    /// Workload churn: RSS after each round of create, reload, delete.
    churn_rss_mib: Vec<f64>,
    missed: Vec<String>,
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

// ---------------------------------------------------------------------------------------------
// Scenarios.

struct Bench {
    client: Client,
    audit: Audit,
    templates: Templates,
    sizes: Sizes,
    repeat: usize,
    logs: PathBuf,
    only: Option<String>,
}

impl Bench {
    async fn setup_scale(&self) -> anyhow::Result<()> {
        let sz = &self.sizes;
        let ns = "bench-scale";
        namespace(&self.client, ns).await?;
        let t = Instant::now();
        let secrets = Api::<Secret>::namespaced(self.client.clone(), ns);
        create_all(&secrets, (0..sz.secrets).map(scale_secret).collect()).await?;
        let cms = Api::<ConfigMap>::namespaced(self.client.clone(), ns);
        let filler_cm = |i: usize| {
            let v = String::from_utf8(filler(i as u64 + 7, 1024 + (i * 53) % 3072)).unwrap();
            configmap(&format!("c-{i}"), &v)
        };
        create_all(&cms, (0..sz.configmaps).map(filler_cm).collect()).await?;
        let ds = (0..sz.deployments)
            .map(|i| {
                let s = format!("s-{}", (i * 7) % sz.secrets);
                deployment(&format!("d-{i}"), &[format!("c-{}", (i * 13) % sz.configmaps)], Some(&s))
            })
            .collect();
        create_all(&Api::<Deployment>::namespaced(self.client.clone(), ns), ds).await?;
        eprintln!(
            ">> scale set: {} Secrets, {} ConfigMaps, {} Deployments created in {:.0} s",
            sz.secrets,
            sz.configmaps,
            sz.deployments,
            t.elapsed().as_secs_f64()
        );
        Ok(())
    }

    async fn run_subject(&self, s: &Subject) -> anyhow::Result<SubjectResult> {
        let mut r = SubjectResult { name: s.name.clone(), ..Default::default() };
        let tag = s.name.to_lowercase().replace(' ', "-");
        let layout = Layout::new(&tag);
        layout.create(&self.client, &self.sizes).await?;
        if self.only.as_deref() == Some("churn") {
            self.churn(s, &layout, &tag, &mut r).await?;
            return Ok(r);
        }

        // 1. Scale: time to ready, memory and CPU, requests during the initial sync.
        for rep in 0..self.repeat {
            let from = self.audit.offset();
            let mut p = Running::start(s, &[], &self.logs.join(format!("{tag}-scale-{rep}.log")))?;
            let ready = p.wait_ready(&s.ready_url).await?;
            let cpu = p.cpu_secs();
            self.audit.quiesce(&s.agent, Duration::from_secs(3)).await?;
            tokio::time::sleep(Duration::from_secs(2)).await;
            let run = ScaleRun {
                ready_s: ready.as_secs_f64(),
                cpu_at_ready_s: cpu,
                rss_steady_mib: mib(p.rss_kib()),
                rss_peak_mib: mib(p.peak_kib()),
                requests_during_sync: self.audit.since(from, &s.agent)?,
            };
            // Every count below filters the audit log by user agent; zero lists means the filter
            // is wrong, and a "0 writes" would then prove nothing.
            if run.requests_during_sync.count("list") == 0 {
                bail!("no LIST by user agent {:?} in the audit log; is it the controller's?", s.agent);
            }
            eprintln!(
                ">> {}: scale run {}: ready in {:.2} s, RSS {:.1} MiB (peak {:.1} MiB)",
                s.name,
                rep + 1,
                run.ready_s,
                run.rss_steady_mib,
                run.rss_peak_mib
            );
            r.scale.push(run);
            p.stop();
        }

        // 2–5 run against one process; its start-up writes (adoption) are over before they begin.
        let mut p = Running::start(s, &[], &self.logs.join(format!("{tag}-main.log")))?;
        p.wait_ready(&s.ready_url).await?;
        self.audit.quiesce(&s.agent, Duration::from_secs(3)).await?;
        let after_sync = self.audit.offset();

        // 2. Latency (first variant: the default settings).
        let (label, _) = &s.latency_variants[0];
        let lat = self.latency(&layout.lat[0], &mut r).await?;
        r.latency_ms.insert(label.clone(), lat);

        // 3. Fan-out: one ConfigMap used by many Deployments.
        for rep in 0..self.repeat {
            if rep > 0 {
                // Past our --min-reload-interval default (10 s), so each repeat is a plain reload.
                tokio::time::sleep(Duration::from_secs(11)).await;
            }
            let from = self.audit.offset();
            let t0 = Instant::now();
            set_data(&self.client, &layout.fan, "shared", &format!("{rep}-{}", uniq())).await?;
            let mut last = t0;
            for i in 0..self.sizes.fanout {
                match self.templates.change_after(&format!("{}/d-{i}", layout.fan), t0).await {
                    Some(t) => last = last.max(t),
                    None => r.missed.push(format!("fan-out {rep}: d-{i}")),
                }
            }
            r.fanout_s.push((last - t0).as_secs_f64());
            tokio::time::sleep(Duration::from_secs(1)).await;
            r.fanout_patches.push(self.audit.since(from, &s.agent)?.workload_writes());
        }

        // 4. Burst: five sources of one workload changed within ~100 ms → rollouts.
        let rs_api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), &layout.burst);
        for b in 0..self.sizes.bursts {
            let d = format!("d-{b}");
            let before = owned_replicasets(&rs_api, &d).await?;
            let t0 = Instant::now();
            let updates = (0..5).map(|k| {
                let name = format!("b{b}-{k}");
                let c = self.client.clone();
                let ns = layout.burst.clone();
                async move {
                    tokio::time::sleep(Duration::from_millis(20 * k)).await;
                    set_data(&c, &ns, &name, &uniq()).await
                }
            });
            futures::future::try_join_all(updates).await?;
            r.burst_spread_ms.push(t0.elapsed().as_secs_f64() * 1000.0);
            if self.templates.change_after(&format!("{}/{d}", layout.burst), t0).await.is_none() {
                r.missed.push(format!("burst {b}"));
            }
            // Long enough for a second rollout to show if the changes were not coalesced.
            tokio::time::sleep(Duration::from_secs(5)).await;
            r.burst_rollouts.push(owned_replicasets(&rs_api, &d).await?.saturating_sub(before));
        }

        // 5. No-op: label- and annotation-only edits of used sources.
        let from = self.audit.offset();
        let t0 = Instant::now();
        let cms: Api<ConfigMap> = Api::namespaced(self.client.clone(), &layout.noop);
        let used = self.sizes.noop_edits.min(50);
        for i in 0..self.sizes.noop_edits {
            let field = if i % 2 == 0 { "labels" } else { "annotations" };
            let patch = json!({"metadata": {field: {"bench/edit": format!("{i}")}}});
            cms.patch(&format!("c-{}", i % used), &PatchParams::default(), &Patch::Merge(patch)).await?;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
        r.noop_workload_writes = self.audit.since(from, &s.agent)?.workload_writes();
        r.noop_template_changes = self.templates.changes_since(&[&layout.noop], t0);

        r.requests_after_sync = self.audit.since(after_sync, &s.agent)?;
        r.lists_after_sync = r.requests_after_sync.count("list");
        p.stop();

        // 6. Restart with nothing changed: rollouts and workload writes.
        let from = self.audit.offset();
        let t0 = Instant::now();
        let mut p = Running::start(s, &[], &self.logs.join(format!("{tag}-restart.log")))?;
        p.wait_ready(&s.ready_url).await?;
        self.audit.quiesce(&s.agent, Duration::from_secs(3)).await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut all = layout.namespaces();
        all.push("bench-scale");
        r.restart_rollouts = self.templates.changes_since(&all, t0);
        r.restart_workload_writes = self.audit.since(from, &s.agent)?.workload_writes();
        p.stop();

        // 7. Workload churn.
        self.churn(s, &layout, &tag, &mut r).await?;

        // Further latency variants, each on its own set of workloads.
        for (i, (label, extra)) in s.latency_variants.iter().enumerate().skip(1) {
            let Some(ns) = layout.lat.get(i) else { break };
            let mut p = Running::start(s, extra, &self.logs.join(format!("{tag}-latency-{i}.log")))?;
            p.wait_ready(&s.ready_url).await?;
            self.audit.quiesce(&s.agent, Duration::from_secs(3)).await?;
            let lat = self.latency(ns, &mut r).await?;
            r.latency_ms.insert(label.clone(), lat);
            p.stop();
        }
        Ok(r)
    }

    /// Scenario 7, workload churn: rounds of creating annotated Deployments, changing their
    /// sources and deleting them; the RSS after each round must not grow round over round.
    async fn churn(&self, s: &Subject, layout: &Layout, tag: &str, r: &mut SubjectResult) -> anyhow::Result<()> {
        let mut p = Running::start(s, &[], &self.logs.join(format!("{tag}-churn.log")))?;
        p.wait_ready(&s.ready_url).await?;
        self.audit.quiesce(&s.agent, Duration::from_secs(3)).await?;
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), &layout.churn);
        for round in 0..self.sizes.churn_rounds {
            let ds = (0..self.sizes.churn_workloads)
                .map(|i| deployment(&format!("d-{i}"), &[format!("c-{}", i % CHURN_SOURCES)], None))
                .collect();
            create_all(&deployments, ds).await?;
            // Let the controller take them in (ours records each) before their sources change.
            self.audit.quiesce(&s.agent, Duration::from_secs(2)).await?;
            let t0 = Instant::now();
            for c in 0..CHURN_SOURCES {
                set_data(&self.client, &layout.churn, &format!("c-{c}"), &format!("{round}-{}", uniq())).await?;
            }
            for i in 0..self.sizes.churn_workloads {
                if self.templates.change_after(&format!("{}/d-{i}", layout.churn), t0).await.is_none() {
                    r.missed.push(format!("churn {round}: d-{i}"));
                }
            }
            deployments.delete_collection(&Default::default(), &Default::default()).await?;
            while !deployments.list(&ListParams::default().limit(1)).await?.items.is_empty() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            self.templates.forget(&layout.churn);
            self.audit.quiesce(&s.agent, Duration::from_secs(2)).await?;
            tokio::time::sleep(Duration::from_secs(2)).await;
            let rss = mib(p.rss_kib());
            eprintln!(">> {}: churn round {}: RSS {rss:.1} MiB", s.name, round + 1);
            r.churn_rss_mib.push(rss);
        }
        p.stop();
        Ok(())
    }

    /// One update at a time, each to a different workload's ConfigMap: from the update's API
    /// response to the template change seen by the independent watch.
    async fn latency(&self, ns: &str, r: &mut SubjectResult) -> anyhow::Result<Vec<f64>> {
        let mut out = Vec::new();
        for i in 0..self.sizes.latency_updates {
            // The reload can be seen before this process gets round to the update's response,
            // so a change counts from the moment the request left; latency from the response.
            let sent = Instant::now();
            set_data(&self.client, ns, &format!("c-{i}"), &uniq()).await?;
            let t0 = Instant::now();
            match self.templates.change_after(&format!("{ns}/d-{i}"), sent).await {
                Some(t) => out.push(t.saturating_duration_since(t0).as_secs_f64() * 1000.0),
                None => r.missed.push(format!("latency {ns}/d-{i}")),
            }
        }
        Ok(out)
    }
}

fn uniq() -> String {
    format!("{:?}", std::time::SystemTime::now())
}

async fn owned_replicasets(api: &Api<ReplicaSet>, deployment: &str) -> anyhow::Result<usize> {
    let list = api.list(&ListParams::default()).await?;
    Ok(list
        .items
        .iter()
        .filter(|rs| {
            rs.metadata.owner_references.iter().flatten().any(|o| o.kind == "Deployment" && o.name == deployment)
        })
        .count())
}

// ---------------------------------------------------------------------------------------------
// Report.

fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let rank = (p / 100.0 * (s.len() - 1) as f64).round() as usize;
    s[rank.min(s.len() - 1)]
}

/// "median [min–max]" of a series.
fn spread(v: &[f64], digits: usize) -> String {
    if v.is_empty() {
        return "–".into();
    }
    let (lo, hi) = (percentile(v, 0.0), percentile(v, 100.0));
    if v.len() == 1 {
        format!("{:.*}", digits, v[0])
    } else {
        format!("{:.*} [{:.*}–{:.*}]", digits, percentile(v, 50.0), digits, lo, digits, hi)
    }
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpu.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).unwrap_or("?");
    let mem = proc_meminfo_gib();
    json!({
        "cpu": model.trim(),
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "memory_gib": mem,
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
    })
}

fn proc_meminfo_gib() -> f64 {
    let m = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    m.lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map(|kib| (kib / 1024.0 / 1024.0 * 10.0).round() / 10.0)
        .unwrap_or(0.0)
}

fn markdown(results: &[SubjectResult], meta: &Value) -> String {
    let mut md = String::new();
    md.push_str("# Benchmark results\n\n");
    md.push_str(&format!(
        "Command: `{}`  \nMachine: {} ({} cores, {} GiB), kernel {}; Kubernetes {} on the local control plane.  \n",
        meta["command"].as_str().unwrap_or(""),
        meta["machine"]["cpu"].as_str().unwrap_or(""),
        meta["machine"]["cores"],
        meta["machine"]["memory_gib"],
        meta["machine"]["kernel"].as_str().unwrap_or(""),
        meta["kubernetes"].as_str().unwrap_or(""),
    ));
    md.push_str(&format!("Sizes: `{}`; repeats: {}.\n\n", meta["sizes"], meta["repeat"]));
    md.push_str("Values are median [min–max] over the repeats; latency is p50 / p95 / p99 over all updates.\n\n");
    let names: Vec<&str> = results.iter().map(|r| r.name.as_str()).collect();
    md.push_str(&format!("| scenario | measure | {} |\n", names.join(" | ")));
    md.push_str(&format!("|---|---|{}\n", "---|".repeat(names.len())));
    let mut row = |scenario: &str, measure: &str, f: &dyn Fn(&SubjectResult) -> String| {
        let cells: Vec<String> = results.iter().map(f).collect();
        md.push_str(&format!("| {scenario} | {measure} | {} |\n", cells.join(" | ")));
    };
    let col = |f: fn(&ScaleRun) -> f64, d: usize| {
        move |r: &SubjectResult| spread(&r.scale.iter().map(f).collect::<Vec<_>>(), d)
    };
    row("1 scale", "time to ready (s)", &col(|s| s.ready_s, 2));
    row("1 scale", "RSS after sync (MiB)", &col(|s| s.rss_steady_mib, 1));
    row("1 scale", "RSS peak (MiB)", &col(|s| s.rss_peak_mib, 1));
    row("1 scale", "CPU time to ready (s)", &col(|s| s.cpu_at_ready_s, 2));
    row("1 scale", "LIST / WATCH requests during sync", &|r| {
        let l: Vec<f64> = r.scale.iter().map(|s| s.requests_during_sync.count("list") as f64).collect();
        let w: Vec<f64> = r.scale.iter().map(|s| s.requests_during_sync.count("watch") as f64).collect();
        format!("{} / {}", spread(&l, 0), spread(&w, 0))
    });
    row("1 scale", "workload writes during sync", &|r| {
        spread(&r.scale.iter().map(|s| s.requests_during_sync.workload_writes() as f64).collect::<Vec<_>>(), 0)
    });
    let variants: Vec<String> = {
        let mut v: Vec<String> = results.iter().flat_map(|r| r.latency_ms.keys().cloned()).collect();
        v.dedup();
        v
    };
    for variant in &variants {
        row("2 latency", &format!("p50 / p95 / p99 (ms), {variant}"), &|r| match r.latency_ms.get(variant) {
            Some(v) => format!("{:.0} / {:.0} / {:.0}", percentile(v, 50.0), percentile(v, 95.0), percentile(v, 99.0)),
            None => "–".into(),
        });
    }
    row("3 fan-out", "time until all patched (s)", &|r| spread(&r.fanout_s, 2));
    row("3 fan-out", "workload writes per change", &|r| {
        spread(&r.fanout_patches.iter().map(|n| *n as f64).collect::<Vec<_>>(), 0)
    });
    row("4 burst", "rollouts for 5 changes", &|r| {
        spread(&r.burst_rollouts.iter().map(|n| *n as f64).collect::<Vec<_>>(), 0)
    });
    row("4 burst", "spread of the 5 updates (ms)", &|r| spread(&r.burst_spread_ms, 0));
    row("5 no-op", "workload writes / template changes", &|r| {
        format!("{} / {}", r.noop_workload_writes, r.noop_template_changes)
    });
    row("6 restart", "rollouts / workload writes", &|r| {
        format!("{} / {}", r.restart_rollouts, r.restart_workload_writes)
    });
    row("7 churn", "RSS after each round (MiB)", &|r| {
        r.churn_rss_mib.iter().map(|v| format!("{v:.1}")).collect::<Vec<_>>().join(" → ")
    });
    row("–", "LIST requests after the initial sync", &|r| r.lists_after_sync.to_string());
    row("–", "missed reloads (30 s timeout)", &|r| r.missed.len().to_string());
    if results.len() == 1 {
        md.push_str(
            "\nOnly this project's controller ran: no Stakater Reloader binary was given (`make bench \
             RELOADER_BIN=...`), so there are no ratios. See bench/README.md.\n",
        );
    }
    md.push_str("\n![latency and memory](plot.svg)\n");
    md
}

/// Latency CDFs (left) and memory bars (right), as a plain SVG.
fn svg(results: &[SubjectResult]) -> String {
    let colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"];
    let (w, h, pad) = (900.0, 360.0, 50.0);
    let mut s = format!(
        "<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{h}' font-family='sans-serif' font-size='12'>\n\
         <rect width='100%' height='100%' fill='white'/>\n"
    );
    // Left panel: CDF of latency.
    let series: Vec<(String, &Vec<f64>)> =
        results.iter().flat_map(|r| r.latency_ms.iter().map(move |(k, v)| (format!("{} ({k})", r.name), v))).collect();
    let max_ms = series.iter().flat_map(|(_, v)| v.iter().copied()).fold(1.0_f64, f64::max);
    let (x0, x1, y0, y1) = (pad, w / 2.0 + 100.0, h - pad, pad);
    s.push_str(&format!(
        "<text x='{x0}' y='20' font-weight='bold'>Reload latency, CDF (ms)</text>\n\
         <line x1='{x0}' y1='{y0}' x2='{x1}' y2='{y0}' stroke='black'/><line x1='{x0}' y1='{y0}' x2='{x0}' y2='{y1}' stroke='black'/>\n\
         <text x='{x1}' y='{}' text-anchor='end'>{max_ms:.0} ms</text><text x='{x0}' y='{}'>0</text>\n\
         <text x='{}' y='{}' text-anchor='end'>100 %</text>\n",
        y0 + 15.0,
        y0 + 15.0,
        x0 - 5.0,
        y1 + 4.0
    ));
    for q in 1..4 {
        let x = x0 + q as f64 / 4.0 * (x1 - x0);
        s.push_str(&format!(
            "<line x1='{x:.1}' y1='{y0}' x2='{x:.1}' y2='{}' stroke='black'/>\n\
             <text x='{x:.1}' y='{}' text-anchor='middle'>{:.0}</text>\n",
            y0 + 4.0,
            y0 + 15.0,
            max_ms * q as f64 / 4.0
        ));
    }
    for (i, (label, v)) in series.iter().enumerate() {
        let mut sorted = v.to_vec();
        sorted.sort_by(f64::total_cmp);
        let pts: Vec<String> = sorted
            .iter()
            .enumerate()
            .map(|(k, ms)| {
                let x = x0 + ms / max_ms * (x1 - x0);
                let y = y0 - (k + 1) as f64 / sorted.len() as f64 * (y0 - y1);
                format!("{x:.1},{y:.1}")
            })
            .collect();
        let c = colors[i % colors.len()];
        s.push_str(&format!(
            "<polyline fill='none' stroke='{c}' stroke-width='2' points='{}'/>\n\
             <text x='{}' y='{}' fill='{c}'>{}</text>\n",
            pts.join(" "),
            x0 + 10.0,
            y1 + 15.0 * (i + 1) as f64,
            xml(label)
        ));
    }
    // Right panel: memory.
    let (bx0, by0, by1) = (w / 2.0 + 160.0, h - pad, pad);
    let max_mib = results.iter().flat_map(|r| r.scale.iter().map(|x| x.rss_peak_mib)).fold(1.0_f64, f64::max);
    s.push_str(&format!("<text x='{bx0}' y='20' font-weight='bold'>Memory at scale (MiB)</text>\n"));
    for (i, r) in results.iter().enumerate() {
        let steady = percentile(&r.scale.iter().map(|x| x.rss_steady_mib).collect::<Vec<_>>(), 50.0);
        let peak = percentile(&r.scale.iter().map(|x| x.rss_peak_mib).collect::<Vec<_>>(), 50.0);
        let c = colors[i % colors.len()];
        for (j, (what, v)) in [("after sync", steady), ("peak", peak)].into_iter().enumerate() {
            let x = bx0 + (i * 2 + j) as f64 * 60.0;
            let bh = if v.is_nan() { 0.0 } else { v / max_mib * (by0 - by1) };
            let opacity = if j == 0 { "1" } else { "0.5" };
            s.push_str(&format!(
                "<rect x='{x}' y='{}' width='45' height='{bh:.1}' fill='{c}' fill-opacity='{opacity}'/>\n\
                 <text x='{}' y='{}' text-anchor='middle'>{v:.1}</text>\n\
                 <text x='{}' y='{}' text-anchor='middle' font-size='10'>{what}</text>\n",
                by0 - bh,
                x + 22.5,
                by0 - bh - 4.0,
                x + 22.5,
                by0 + 14.0
            ));
        }
        s.push_str(&format!(
            "<text x='{}' y='{}' fill='{c}'>{}</text>\n",
            bx0 + (i * 2) as f64 * 60.0,
            by0 + 30.0,
            xml(&r.name)
        ));
    }
    s.push_str("</svg>\n");
    s
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = Config::infer().await.context("a kubeconfig (run through hack/bench.sh)")?;
    let client = reloader::client::named(config, BENCH_AGENT)?;
    let version = client.apiserver_version().await.context("reach the API server")?;
    let sizes = Sizes::new(a.quick);
    let logs = a.out.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("create {}", logs.display()))?;

    let mut subjects = vec![ours()];
    if let Some(bin) = &a.reloader_bin {
        subjects.push(stakater(bin.clone()));
    }
    let templates = Templates::start(client.clone());
    templates.wait_synced().await;
    let bench = Bench {
        client,
        audit: Audit { path: a.audit_log.clone() },
        templates,
        sizes,
        repeat: a.repeat,
        logs,
        only: a.only.clone(),
    };
    if a.only.is_none() {
        bench.setup_scale().await?;
    }
    let mut results = Vec::new();
    for s in &subjects {
        eprintln!(">> {}: running the scenarios", s.name);
        results.push(bench.run_subject(s).await.with_context(|| s.name.clone())?);
    }
    if a.only.is_some() {
        for r in &results {
            let rounds: Vec<String> = r.churn_rss_mib.iter().map(|v| format!("{v:.1}")).collect();
            println!(
                "{}: churn RSS per round (MiB): {}; missed reloads: {}",
                r.name,
                rounds.join(" → "),
                r.missed.len()
            );
        }
        return Ok(());
    }

    let command = format!("make bench{}", if a.quick { " QUICK=1" } else { "" });
    let meta = json!({
        "command": command,
        "machine": machine(),
        "kubernetes": version.git_version,
        "sizes": sizes,
        "repeat": a.repeat,
    });
    let md = markdown(&results, &meta);
    let json = serde_json::to_string_pretty(&json!({"meta": meta, "results": results}))?;
    std::fs::write(a.out.join("results.json"), json)?;
    std::fs::write(a.out.join("RESULTS.md"), &md)?;
    std::fs::write(a.out.join("plot.svg"), svg(&results))?;
    println!("{md}");
    let missed: usize = results.iter().map(|r| r.missed.len()).sum();
    if missed > 0 {
        bail!(
            "{missed} expected reloads never happened within {RELOAD_TIMEOUT:?}; see {}",
            a.out.join("logs").display()
        );
    }
    Ok(())
}
