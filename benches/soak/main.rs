//! The chaos soak. On the local control plane that `hack/soak.sh` starts (API audit log on), it
//! creates workloads of every kind and policy over ConfigMaps and Secrets, starts an HA pair
//! (annotations strategy) and a single env-vars controller under a ServiceAccount with only
//! their RBAC, then changes sources at random while a fault driver kills, pauses and refuses.
//! When the faults stop it checks, independently of the controller:
//! - lost reloads: every workload's applied record equals the hashes the driver computes for
//!   the sources that govern it, and the last rollout carried them;
//! - extra rollouts: no workload rolled more often than its governing sources changed, or
//!   without applying anything new (a rollout is a pod-template change as the soak's own watch
//!   sees it: the outcome notes the controller writes after a rollout touch only metadata);
//! - writes by a non-leader, from the audit log's user agents and Lease writes (outcome notes
//!   included; they are also counted on their own, by their field manager);
//! - panics and exits no fault caused.
//!
//! A seed fixes the world, the changes and the faults; it is printed first, so a failure can
//! be replayed. Usage (via `hack/soak.sh`, i.e. `make soak [QUICK=1] [SEED=n]`):
//!   cargo bench --bench soak -- --audit-log PATH --cluster-script PATH [--quick] [--seed N] [--out DIR]
//!
//! Files: `model` (the world and the hash encoding), `chaos` (processes and faults), `check`
//! (the independent watch, the verdicts and the audit-log analysis).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::{StreamExt, stream};
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::rbac::v1::RoleBinding;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Config};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

mod chaos;
mod check;
mod model;

use chaos::*;
use check::*;
use model::*;

const SOAK_AGENT: &str = "kube-reloader-soak";
const RECORD: &str = "reloader.kube-reloader.dev/applied";
/// Lease duration of the HA pair: short, so failovers happen often within the run.
const LEASE_DURATION: Duration = Duration::from_secs(8);

struct Args {
    quick: bool,
    /// `--scale N`: N times the sources, workloads and changes.
    scale: usize,
    /// `--minutes M`: rounds of faults (and their changes) until about M minutes are planned.
    minutes: Option<u64>,
    seed: u64,
    out: PathBuf,
    audit_log: PathBuf,
    cluster_script: PathBuf,
}

fn args() -> anyhow::Result<Args> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let mut a = Args {
        quick: false,
        scale: 1,
        minutes: None,
        seed: now.as_micros() as u64 % 1_000_000_007,
        out: PathBuf::from("target/soak"),
        audit_log: PathBuf::new(),
        cluster_script: PathBuf::from("hack/cluster.sh"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--quick" => a.quick = true,
            "--seed" => a.seed = value("--seed")?.parse().context("--seed: a non-negative number")?,
            "--scale" => {
                a.scale =
                    value("--scale")?.parse().ok().filter(|n| *n >= 1).context("--scale: a whole number from 1")?
            }
            "--minutes" => {
                a.minutes = Some(
                    value("--minutes")?.parse().ok().filter(|n| *n >= 1).context("--minutes: a whole number from 1")?,
                )
            }
            "--out" => a.out = value("--out")?.into(),
            "--audit-log" => a.audit_log = value("--audit-log")?.into(),
            "--cluster-script" => a.cluster_script = value("--cluster-script")?.into(),
            "--bench" => {}
            other => bail!("unknown argument {other:?}; see the top of benches/soak/main.rs"),
        }
    }
    if a.audit_log.as_os_str().is_empty() {
        bail!("--audit-log is required: run the soak with hack/soak.sh (make soak)");
    }
    Ok(a)
}

/// Sizes: (sources per namespace, workloads per namespace, changes per round of faults), each
/// times `scale`. Five namespaces.
fn sizes(quick: bool, scale: usize) -> (usize, usize, usize) {
    let (s, w, c) = if quick { (8, 10, 240) } else { (40, 60, 2_000) };
    (s * scale, w * scale, c * scale)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    let started = Instant::now();
    let replay = format!(
        "make soak{}{}{} SEED={}",
        if a.quick { " QUICK=1" } else { "" },
        if a.scale > 1 { format!(" SCALE={}", a.scale) } else { String::new() },
        a.minutes.map(|m| format!(" MINUTES={m}")).unwrap_or_default(),
        a.seed
    );
    eprintln!("soak: seed {} (replay with: {replay})", a.seed);
    check_encoding()?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = Config::infer().await.context("a kubeconfig (run through hack/soak.sh)")?;
    let client = reloader::client::named(config, SOAK_AGENT)?;
    client.apiserver_version().await.context("reach the API server")?;
    let logs = a.out.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("create {}", logs.display()))?;

    let mut rng = Rng::new(a.seed);
    let (per_ns_sources, per_ns_workloads, changes_per_round) = sizes(a.quick, a.scale);
    let world = Arc::new(World::generate(&mut rng, per_ns_sources, per_ns_workloads));
    let state = Arc::new(Driver::new(a.seed, &world));
    eprintln!(
        ">> {} sources, {} workloads, {} changes per round of faults",
        world.sources.len(),
        world.workloads.len(),
        changes_per_round
    );

    // The world, the controllers' RBAC, and the observer.
    setup(&client, &world, &state).await?;
    let kubeconfig = a.out.join("reloader.kubeconfig");
    let out = Command::new("bash")
        .arg(&a.cluster_script)
        .args(["sa-kubeconfig", SYSTEM_NAMESPACE, "reloader"])
        .arg(&kubeconfig)
        .output()?;
    if !out.status.success() {
        bail!("sa-kubeconfig: {}", String::from_utf8_lossy(&out.stderr));
    }
    let observer = Observer::start(&client);
    observer.wait_synced().await;

    let audit_from = std::fs::metadata(&a.audit_log).map(|m| m.len()).unwrap_or(0);
    let ha_namespaces = HA_NAMESPACES.iter().copied().chain([PROBE_NAMESPACE]).collect::<Vec<_>>().join(",");
    let kube_env = ("KUBECONFIG".to_string(), kubeconfig.display().to_string());
    let replicas = REPLICAS
        .iter()
        .map(|r| {
            Controller::new(
                &format!("replica-{r}"),
                vec![
                    "--enable-ha".into(),
                    format!("--lease-duration={}s", LEASE_DURATION.as_secs()),
                    format!("--namespaces={ha_namespaces}"),
                    "--flap-limit=0".into(),
                ],
                vec![
                    kube_env.clone(),
                    ("POD_NAME".into(), format!("replica-{r}")),
                    ("POD_NAMESPACE".into(), SYSTEM_NAMESPACE.into()),
                ],
                &logs,
            )
        })
        .collect::<Vec<_>>();
    let env = Controller::new(
        "env-vars",
        vec!["--reload-strategy=env-vars".into(), format!("--namespaces={ENV_NAMESPACE}"), "--flap-settle=20s".into()],
        vec![kube_env.clone()],
        &logs,
    );
    let mut chaos = Chaos {
        client: client.clone(),
        cluster_script: a.cluster_script.clone(),
        replicas,
        env,
        counts: Counts::default(),
        probe: Probe { version: 0 },
    };
    for c in chaos.replicas.iter_mut().chain([&mut chaos.env]) {
        c.start()?;
    }
    let t = Instant::now();
    let mut keys: Vec<String> = world.workloads.iter().map(|w| w.key()).collect();
    keys.push(format!("{PROBE_NAMESPACE}/{PROBE}"));
    let memory = Memory::start(started);
    wait_until(Duration::from_secs(180) * a.scale as u32, "every workload adopted (a record on each)", || {
        keys.iter().all(|k| observer.get(k).is_some_and(|s| s.record.is_some()))
    })
    .await?;
    eprintln!(">> controllers up; every workload adopted in {:.1} s", t.elapsed().as_secs_f64());

    // Changes and faults together: one round of faults, or rounds until `--minutes` are planned.
    let gap = |rng: &mut Rng| rng.between(Duration::from_secs(4), Duration::from_secs(if a.quick { 8 } else { 14 }));
    let (mut faults, mut gaps, mut rounds) = (Vec::new(), Vec::new(), 0);
    let length = |faults: &[Fault], gaps: &[Duration]| {
        faults.iter().map(|f| f.length()).sum::<Duration>() + gaps.iter().sum::<Duration>()
    };
    while rounds == 0 || a.minutes.is_some_and(|m| length(&faults, &gaps) < Duration::from_secs(m * 60)) {
        let round = plan(&mut rng, a.quick, LEASE_DURATION);
        gaps.extend(round.iter().map(|_| gap(&mut rng)));
        faults.extend(round);
        rounds += 1;
    }
    let planned = length(&faults, &gaps);
    let n_changes = changes_per_round * rounds;
    eprintln!(
        ">> {} faults in {rounds} round(s) over about {:.0} s, {n_changes} changes meanwhile",
        faults.len(),
        planned.as_secs_f64()
    );
    let changes =
        tokio::spawn(run_changes(client.clone(), world.clone(), state.clone(), rng.next(), n_changes, planned));
    for (fault, gap) in faults.iter().zip(&gaps) {
        tokio::time::sleep(*gap).await;
        eprintln!("   [{:>5.0} s] {}", started.elapsed().as_secs_f64(), fault.describe());
        chaos.run(fault).await.with_context(|| fault.describe())?;
    }
    let change_stats = changes.await??;
    chaos.check_alive()?;
    eprintln!(">> faults done; {} changes made; waiting for the controllers to catch up", change_stats.made);

    // Convergence, then a quiet spell in which nothing may roll.
    let expected = state.expected(&world);
    let t = Instant::now();
    let converge_within = Duration::from_secs(if a.quick { 120 } else { 240 }) * a.scale as u32;
    let converged = wait_until(converge_within, "convergence", || {
        world.workloads.iter().all(|w| {
            observer.get(&w.key()).and_then(|s| s.record).map(|r| parse_record(&r)).as_ref() == expected.get(&w.key())
        })
    })
    .await
    .map(|_| t.elapsed());
    tokio::time::sleep(Duration::from_secs(10)).await;
    let until = Timestamp::now();

    // Verdicts.
    let history = state.history(&world);
    let governing_changes = state.changes_per_source();
    let (mut rollouts, mut lost, mut extra, mut bogus) = (0, Vec::new(), 0, Vec::new());
    for w in &world.workloads {
        let changes: usize = w.governs.iter().map(|&i| governing_changes[i]).sum();
        let v = judge(observer.get(&w.key()).as_ref(), &expected[&w.key()], changes, &history[&w.ns]);
        rollouts += v.rollouts;
        extra += v.extra;
        if let Some(why) = v.lost {
            lost.push(format!("{} ({}, {:?}): {why}", w.key(), w.policy.label(), w.kind));
        }
        bogus.extend(v.bogus.into_iter().map(|b| format!("{}: {b}", w.key())));
    }
    let (leases, writes) = read_audit(&a.audit_log, audit_from, until)?;
    let (non_leader, failovers) = non_leader_writes(&leases, &writes, LEASE_DURATION);
    // The HA pair's workload writes: reloads and records, and apart from them the notes that
    // record how each tracked rollout ended (a second write per reload, never a rollout).
    let outcome_writes = writes.iter().filter(|w| w.outcome).count();
    let reload_writes = writes.len() - outcome_writes;
    // The checks, checked on a workload that rolled.
    let sample = world.workloads.iter().find_map(|w| {
        let s = observer.get(&w.key()).filter(|s| !s.rollouts.is_empty())?;
        Some((w, s))
    });
    let blind = match sample {
        Some((w, s)) => {
            let changes = w.governs.iter().map(|&i| governing_changes[i]).sum();
            self_test(&s, &expected[&w.key()], changes, &history[&w.ns], &leases, &writes)
        }
        None => vec!["no workload rolled at all"],
    };
    for c in chaos.replicas.iter_mut().chain([&mut chaos.env]) {
        c.stop();
    }
    let mut panics = Vec::new();
    let mut crashes = Vec::new();
    for c in chaos.replicas.iter().chain([&chaos.env]) {
        panics.extend(c.log_text().lines().filter(|l| l.contains("panicked at")).map(|l| format!("{}: {l}", c.name)));
        crashes.extend(c.crashes.iter().cloned());
    }

    let c = &chaos.counts;
    let recovery_max = c.recovery_s.iter().copied().fold(0.0, f64::max);
    for (what, list) in [
        ("lost", &lost),
        ("bogus record", &bogus),
        ("non-leader write", &non_leader),
        ("panic", &panics),
        ("crash", &crashes),
    ] {
        for l in list.iter().take(20) {
            eprintln!("!! {what}: {l}");
        }
    }
    for b in &blind {
        eprintln!("!! a check is blind: {b}");
    }
    let rss = memory.stop();
    let summary = json!({
        "seed": a.seed, "quick": a.quick, "scale": a.scale, "minutes": a.minutes,
        "rss_peak_mib": rss.peaks(), "rss_samples": rss.samples,
        "sources": world.sources.len(), "workloads": world.workloads.len(),
        "changes": change_stats.made, "change_kinds": change_stats.kinds,
        "faults": faults.iter().map(|f| f.describe()).collect::<Vec<_>>(),
        "kills": c.kills, "api_restarts": c.api_restarts, "failovers": failovers, "pauses": c.pauses,
        "rollouts": rollouts, "lost": lost.len(), "extra": extra, "bogus": bogus.len(),
        "ha_workload_writes": reload_writes, "ha_outcome_writes": outcome_writes,
        "non_leader_writes": non_leader.len(), "panics": panics.len(), "crashes": crashes,
        "recovery_s": c.recovery_s, "checks_checked": blind.is_empty(), "converged_s": converged.as_ref().map(|d| d.as_secs_f64()).ok(),
        "duration_s": started.elapsed().as_secs_f64(),
    });
    std::fs::write(a.out.join("soak.json"), serde_json::to_string_pretty(&summary)?)?;
    println!(
        "soak: seed {} · {} changes · {} kills · {} API restarts · {} failovers · {} pauses · {} rollouts · \
         HA writes: {} reloads and records, {} outcome notes · {} lost reloads · {} extra rollouts · {} writes by a non-leader · {} panics · recovery ≤ {:.2} s · \
         converged in {} · RSS peak {} · {:.0} s",
        a.seed,
        change_stats.made,
        c.kills,
        c.api_restarts,
        failovers,
        c.pauses,
        rollouts,
        reload_writes,
        outcome_writes,
        lost.len(),
        extra,
        non_leader.len(),
        panics.len() + crashes.len(),
        recovery_max,
        converged.as_ref().map(|d| format!("{:.1} s", d.as_secs_f64())).unwrap_or_else(|_| "never".into()),
        rss.summary(),
        started.elapsed().as_secs_f64(),
    );
    let mut failed = Vec::new();
    if !lost.is_empty() || converged.is_err() {
        failed.push("lost reloads");
    }
    if extra > 0 {
        failed.push("extra rollouts");
    }
    if !bogus.is_empty() {
        failed.push("records with hashes no source had");
    }
    if !non_leader.is_empty() {
        failed.push("writes by a non-leader");
    }
    if !panics.is_empty() || !crashes.is_empty() {
        failed.push("panics or crashes");
    }
    if !blind.is_empty() {
        failed.push("a check that cannot fail");
    }
    if recovery_max > RECOVERY_GOAL.as_secs_f64() {
        failed.push("recovery slower than 5 s after /readyz");
    }
    if !failed.is_empty() {
        bail!("the soak failed: {} (seed {}; logs in {})", failed.join(", "), a.seed, logs.display());
    }
    Ok(())
}

/// A change made right after the API answers again must be applied within this.
const RECOVERY_GOAL: Duration = Duration::from_secs(5);

async fn wait_until(limit: Duration, what: &str, mut f: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    bail!("{what}: not within {} s", limit.as_secs())
}

/// The driver's side: each source's version, the hashes it has had, and a lock so that one
/// source's changes happen one after the other (the last write is the one expected).
pub(crate) struct Driver {
    seed: u64,
    sources: Vec<tokio::sync::Mutex<SourceState>>,
}

#[derive(Default)]
struct SourceState {
    version: u64,
    touch: u64,
    hash: String,
    history: HashSet<String>,
    changes: usize,
}

impl Driver {
    fn new(seed: u64, world: &World) -> Driver {
        let sources = world
            .sources
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let hash = content_hash(s.kind, &s.content(seed, i, 0));
                tokio::sync::Mutex::new(SourceState {
                    history: HashSet::from([hash.clone()]),
                    hash,
                    ..Default::default()
                })
            })
            .collect();
        Driver { seed, sources }
    }

    /// Each workload's expected record: `kind/name` → hash, over its governing sources.
    fn expected(&self, world: &World) -> HashMap<String, BTreeMap<String, String>> {
        world
            .workloads
            .iter()
            .map(|w| {
                let m = w
                    .governs
                    .iter()
                    .map(|&i| {
                        (world.sources[i].key(), self.sources[i].try_lock().expect("changes are over").hash.clone())
                    })
                    .collect();
                (w.key(), m)
            })
            .collect()
    }

    /// Namespace → `kind/name` → every hash that source had (for the bogus check).
    fn history(&self, world: &World) -> HashMap<String, HashMap<String, HashSet<String>>> {
        let mut out: HashMap<String, HashMap<String, HashSet<String>>> = HashMap::new();
        for (s, st) in world.sources.iter().zip(&self.sources) {
            let st = st.try_lock().expect("changes are over");
            out.entry(s.ns.clone()).or_default().insert(s.key(), st.history.clone());
        }
        out
    }

    fn changes_per_source(&self) -> Vec<usize> {
        self.sources.iter().map(|s| s.try_lock().expect("changes are over").changes).collect()
    }
}

/// What the change driver did.
struct ChangeStats {
    made: usize,
    kinds: BTreeMap<&'static str, usize>,
}

/// `n` random changes spread over `over`: data edits, label-only edits, and delete-then-create
/// with new content. Each is retried with the same content until the API takes it.
async fn run_changes(
    client: Client,
    world: Arc<World>,
    state: Arc<Driver>,
    seed: u64,
    n: usize,
    over: Duration,
) -> anyhow::Result<ChangeStats> {
    let mut rng = Rng::new(seed);
    let every = over / n.max(1) as u32;
    let plan: Vec<(usize, u8, Duration)> = (0..n)
        .map(|_| {
            let op = match rng.below(100) {
                0..70 => 0,
                70..85 => 1,
                _ => 2,
            };
            (rng.below(world.sources.len()), op, rng.between(Duration::ZERO, Duration::from_secs(2)))
        })
        .collect();
    let start = Instant::now();
    let results: Vec<anyhow::Result<&'static str>> = stream::iter(plan.into_iter().enumerate())
        .map(|(k, (i, op, gap))| {
            let (client, world, state) = (client.clone(), world.clone(), state.clone());
            async move {
                // Pace: change k starts no earlier than k × every.
                tokio::time::sleep_until((start + every * k as u32).into()).await;
                change(&client, &world, &state, i, op, gap).await
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let mut stats = ChangeStats { made: 0, kinds: BTreeMap::new() };
    for r in results {
        *stats.kinds.entry(r?).or_default() += 1;
        stats.made += 1;
    }
    Ok(stats)
}

async fn change(
    client: &Client,
    world: &World,
    state: &Driver,
    i: usize,
    op: u8,
    gap: Duration,
) -> anyhow::Result<&'static str> {
    let src = &world.sources[i];
    let mut st = state.sources[i].lock().await;
    st.touch += 1;
    let kind = match op {
        0 | 2 => {
            st.version += 1;
            let c = src.content(state.seed, i, st.version);
            let hash = content_hash(src.kind, &c);
            if op == 2 {
                let api = dynamic_api(client, src.manifest(&c, st.touch)["kind"].as_str().unwrap_or(""), &src.ns)?;
                let dp = DeleteParams::default();
                retry("delete a source", || api.delete(&src.name, &dp)).await?;
                tokio::time::sleep(gap).await;
            }
            apply_all(client, &[src.manifest(&c, st.touch)]).await?;
            st.history.insert(hash.clone());
            st.hash = hash;
            st.changes += 1;
            if op == 0 { "data edit" } else { "delete and create" }
        }
        _ => {
            let c = src.content(state.seed, i, st.version);
            apply_all(client, &[src.manifest(&c, st.touch)]).await?;
            "label edit"
        }
    };
    Ok(kind)
}

/// Creates the namespaces, the controllers' ServiceAccount and RBAC, the sources at their
/// first version, the workloads, and the probe.
async fn setup(client: &Client, world: &World, state: &Driver) -> anyhow::Result<()> {
    let t = Instant::now();
    let mut namespaces: Vec<&str> = HA_NAMESPACES.to_vec();
    namespaces.extend([ENV_NAMESPACE, PROBE_NAMESPACE, SYSTEM_NAMESPACE]);
    let mut base: Vec<Value> = namespaces
        .iter()
        .map(
            |ns| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": {"soak": "true"}}}),
        )
        .collect();
    base.push(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "reloader", "namespace": SYSTEM_NAMESPACE}}));
    // The chart's ClusterRole, bound per namespace so that one binding can be taken away.
    base.push(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "soak-reloader"},
        "rules": [
            {"apiGroups": [""], "resources": ["configmaps", "secrets"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["apps"], "resources": ["deployments", "daemonsets", "statefulsets"], "verbs": ["get", "list", "watch", "patch"]},
            {"apiGroups": ["batch"], "resources": ["cronjobs"], "verbs": ["get", "list", "watch", "patch"]},
            {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list", "watch", "patch", "create", "delete"]},
            {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
        ]
    }));
    base.push(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "soak-lease", "namespace": SYSTEM_NAMESPACE},
        "rules": [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]}]
    }));
    base.push(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "soak-lease", "namespace": SYSTEM_NAMESPACE},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "soak-lease"},
        "subjects": [{"kind": "ServiceAccount", "name": "reloader", "namespace": SYSTEM_NAMESPACE}]
    }));
    for ns in &namespaces {
        base.push(role_binding(ns));
    }
    apply_all(client, &base).await?;

    let mut sources: Vec<Value> =
        world.sources.iter().enumerate().map(|(i, s)| s.manifest(&s.content(state.seed, i, 0), 0)).collect();
    let probe = Probe::source();
    sources.push(probe.manifest(&probe.content(0, usize::MAX, 0), 0));
    apply_all(client, &sources).await?;
    let mut workloads: Vec<Value> = world.workloads.iter().map(|w| w.manifest(&world.sources)).collect();
    let probe_w = Workload {
        ns: PROBE_NAMESPACE.into(),
        name: PROBE.into(),
        kind: WorkloadKind::Deployment,
        policy: Policy::Auto,
        refs: vec![0],
        governs: vec![0],
    };
    workloads.push(probe_w.manifest(std::slice::from_ref(&probe)));
    apply_all(client, &workloads).await?;
    eprintln!(">> created in {:.1} s", t.elapsed().as_secs_f64());
    Ok(())
}

/// Server-side applies each object (idempotent: a retry sends the same object), 8 at a time.
async fn apply_all(client: &Client, objects: &[Value]) -> anyhow::Result<()> {
    let results: Vec<anyhow::Result<()>> = stream::iter(objects.to_vec())
        .map(|o| async move {
            let client = client.clone();
            let client = &client;
            let name = o["metadata"]["name"].as_str().unwrap_or_default();
            let ns = o["metadata"]["namespace"].as_str().unwrap_or_default();
            let api = dynamic_api(client, o["kind"].as_str().unwrap_or_default(), ns)?;
            let obj: DynamicObject = serde_json::from_value(o.clone())?;
            let pp = PatchParams::apply(SOAK_AGENT).force();
            let patch = Patch::Apply(&obj);
            retry(&format!("apply {} {ns}/{name}", o["kind"]), || api.patch(name, &pp, &patch)).await?;
            Ok(())
        })
        .buffer_unordered(8)
        .collect()
        .await;
    results.into_iter().collect()
}

fn dynamic_api(client: &Client, kind: &str, ns: &str) -> anyhow::Result<Api<DynamicObject>> {
    let (group, version, plural, namespaced) = match kind {
        "Namespace" => ("", "v1", "namespaces", false),
        "ServiceAccount" => ("", "v1", "serviceaccounts", true),
        "ConfigMap" => ("", "v1", "configmaps", true),
        "Secret" => ("", "v1", "secrets", true),
        "Deployment" => ("apps", "v1", "deployments", true),
        "StatefulSet" => ("apps", "v1", "statefulsets", true),
        "DaemonSet" => ("apps", "v1", "daemonsets", true),
        "ClusterRole" => ("rbac.authorization.k8s.io", "v1", "clusterroles", false),
        "Role" => ("rbac.authorization.k8s.io", "v1", "roles", true),
        "RoleBinding" => ("rbac.authorization.k8s.io", "v1", "rolebindings", true),
        "ValidatingAdmissionPolicy" => ("admissionregistration.k8s.io", "v1", "validatingadmissionpolicies", false),
        "ValidatingAdmissionPolicyBinding" => {
            ("admissionregistration.k8s.io", "v1", "validatingadmissionpolicybindings", false)
        }
        other => bail!("the soak does not create {other:?}"),
    };
    let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
    Ok(if namespaced { Api::namespaced_with(client.clone(), ns, &ar) } else { Api::all_with(client.clone(), &ar) })
}

/// Retries a request while the API is away (for up to 3 minutes); a 404 counts as done, for
/// deletes of what is already gone.
async fn retry<T, F, Fut>(what: &str, mut f: F) -> anyhow::Result<Option<T>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = kube::Result<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut wait = Duration::from_millis(100);
    loop {
        match f().await {
            Ok(v) => return Ok(Some(v)),
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(None),
            Err(kube::Error::Api(s)) if s.code == 400 || s.code == 422 => bail!("{what}: {}", s.message),
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(2));
            }
            Err(e) => return Err(anyhow::anyhow!("{what}: {e}")),
        }
    }
}

/// The controllers' resident memory over the run: every 15 s, each process of this build's
/// binary, named by its `POD_NAME` (the HA replicas) or `env-vars`, from `/proc`.
struct Memory {
    samples: Arc<Mutex<Vec<Sample>>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone, Serialize)]
struct Sample {
    at_s: f64,
    controller: String,
    rss_mib: f64,
}

/// What the sampler saw.
struct Rss {
    samples: Vec<Sample>,
}

impl Memory {
    fn start(started: Instant) -> Memory {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let into = samples.clone();
        let task = tokio::spawn(async move {
            loop {
                let at_s = started.elapsed().as_secs_f64();
                let now: Vec<Sample> = controllers_rss()
                    .into_iter()
                    .map(|(controller, rss_mib)| Sample { at_s, controller, rss_mib })
                    .collect();
                into.lock().expect("samples").extend(now);
                tokio::time::sleep(Duration::from_secs(15)).await;
            }
        });
        Memory { samples, task }
    }

    fn stop(self) -> Rss {
        self.task.abort();
        Rss { samples: self.samples.lock().expect("samples").clone() }
    }
}

impl Rss {
    /// Each controller's highest RSS, MiB.
    fn peaks(&self) -> BTreeMap<String, f64> {
        let mut peaks = BTreeMap::new();
        for s in &self.samples {
            let p = peaks.entry(s.controller.clone()).or_insert(0.0_f64);
            *p = p.max(s.rss_mib);
        }
        peaks
    }

    /// `replica-a 31.2 MiB, …` for the closing line.
    fn summary(&self) -> String {
        let peaks = self.peaks();
        if peaks.is_empty() {
            return "not sampled".into();
        }
        peaks.iter().map(|(c, p)| format!("{c} {p:.1} MiB")).collect::<Vec<_>>().join(", ")
    }
}

/// The running controllers of this build and their RSS in MiB, read from `/proc`.
fn controllers_rss() -> Vec<(String, f64)> {
    let binary = std::fs::canonicalize(env!("CARGO_BIN_EXE_reloader")).unwrap_or_default();
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else { return out };
    for entry in dir.flatten() {
        let pid = entry.path();
        if std::fs::read_link(pid.join("exe")).ok().as_deref() != Some(binary.as_path()) {
            continue;
        }
        let environ = std::fs::read(pid.join("environ")).unwrap_or_default();
        let name = environ
            .split(|b| *b == 0)
            .find_map(|kv| kv.strip_prefix(b"POD_NAME="))
            .map(|v| String::from_utf8_lossy(v).to_string())
            .unwrap_or_else(|| "env-vars".into());
        let status = std::fs::read_to_string(pid.join("status")).unwrap_or_default();
        let kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok());
        if let Some(kib) = kib {
            out.push((name, kib / 1024.0));
        }
    }
    out
}
