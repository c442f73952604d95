//! Wiring: the shared context, the watches for the configured scope, leader election, the
//! probe/metrics server and the workers.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::Client;
use kube::api::Api;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::watcher;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::alerts::Notifier;
use crate::brake::{Brake, Verdict};
use crate::config::{Scope, Settings};
use crate::metrics::Metrics;
use crate::queue::WorkQueue;
use crate::readiness::Readiness;
use crate::reconcile::{self, Outcome};
use crate::record::Record;
use crate::rollout::Rollout;
use crate::state::State;
use crate::watch;
use crate::workload::{Workload, WorkloadKey, WorkloadObject};
use crate::{leader, server};

/// Objects per page of a (re)list. A page is held whole (response text and decoded objects)
/// while it is processed, and Deployments carry kilobytes of managedFields each, so pages of
/// client-go's 500 set the memory peak; at 100 the RSS at 10k Secrets + 10k ConfigMaps + 1k
/// Deployments drops from ~68 MiB to ~37 MiB for a few more list calls (see bench/README.md).
pub const LIST_PAGE_SIZE: u32 = 100;

/// Shared by watches, workers and the HTTP server.
pub struct Ctx {
    pub client: Client,
    pub settings: Settings,
    pub state: Mutex<State>,
    pub queue: WorkQueue<WorkloadKey>,
    pub metrics: Metrics,
    pub recorder: Recorder,
    pub notifier: Notifier,
    /// Whether every watch has finished its first list.
    pub readiness: Arc<Readiness>,
    /// True while this replica may write: always without HA, while holding the lease with it.
    /// Follows `gate` (for transitions: a new leader looks at every workload).
    pub leader: tokio::sync::watch::Sender<bool>,
    /// With HA: the write gate, closed at the renew deadline by the monotonic clock.
    gate: Option<Arc<leader::Gate>>,
    shutting_down: AtomicBool,
    /// Watches currently failing (by description), for readiness.
    failing: Mutex<HashSet<String>>,
    /// With `--namespace-selector`: the namespaces that currently match.
    selected: Mutex<Option<HashSet<String>>>,
    failures: Mutex<HashMap<WorkloadKey, u32>>,
    /// 409s in a row per workload, for a prompt retry that backs off.
    conflicts: Mutex<HashMap<WorkloadKey, u32>>,
    /// When the oldest not-yet-applied source change of a workload was seen.
    first_change: Mutex<HashMap<WorkloadKey, Instant>>,
    /// Storm-brake history per workload.
    brakes: Mutex<HashMap<WorkloadKey, Brake>>,
    /// `--dry-run`: the records that would have been written.
    dry_records: Mutex<HashMap<WorkloadKey, Record>>,
}

impl Ctx {
    pub fn new(client: Client, settings: Settings) -> Arc<Ctx> {
        let selected = match &settings.scope {
            Scope::All { selector: Some(_), .. } => Some(HashSet::new()),
            _ => None,
        };
        let reporter =
            Reporter { controller: "kube-reloader".into(), instance: settings.ha.as_ref().map(|h| h.identity.clone()) };
        let notifier = Notifier::new(settings.alert.clone(), settings.webhook_url.clone()).unwrap_or_else(|e| {
            warn!("alerts disabled: {e}");
            Notifier::new(None, settings.webhook_url.clone()).expect("plain client")
        });
        Arc::new(Ctx {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics: Metrics::new(settings.count_by_namespace),
            notifier,
            state: Mutex::new(State::default()),
            queue: WorkQueue::new(),
            readiness: Readiness::new(),
            leader: tokio::sync::watch::channel(settings.ha.is_none()).0,
            gate: settings.ha.as_ref().map(|_| Arc::new(leader::Gate::default())),
            shutting_down: AtomicBool::new(false),
            failing: Mutex::new(HashSet::new()),
            selected: Mutex::new(selected),
            failures: Mutex::new(HashMap::new()),
            conflicts: Mutex::new(HashMap::new()),
            first_change: Mutex::new(HashMap::new()),
            brakes: Mutex::new(HashMap::new()),
            dry_records: Mutex::new(HashMap::new()),
            settings,
        })
    }

    /// Schedules a workload after a source change: within the debounce window, changes fold
    /// into one reconcile.
    pub fn enqueue_debounced(&self, key: WorkloadKey) {
        let now = Instant::now();
        self.first_change.lock().expect("lock").entry(key.clone()).or_insert(now);
        self.brakes.lock().expect("lock").entry(key.clone()).or_default().changed(now);
        self.enqueue(key, self.settings.debounce);
    }

    pub fn enqueue(&self, key: WorkloadKey, delay: Duration) {
        self.metrics.queue_adds.inc();
        self.queue.add_after(key, delay);
    }

    /// Drops every per-workload slot of a workload that is gone, so that churn leaves nothing
    /// behind (the index itself is pruned by the watch).
    pub fn forget(&self, key: &WorkloadKey) {
        self.failures.lock().expect("lock").remove(key);
        self.conflicts.lock().expect("lock").remove(key);
        self.first_change.lock().expect("lock").remove(key);
        self.brakes.lock().expect("lock").remove(key);
        self.dry_records.lock().expect("lock").remove(key);
    }

    /// How many per-workload slots are held, by kind of slot (for tests and the churn check).
    pub fn slot_counts(&self) -> [usize; 5] {
        [
            self.failures.lock().expect("lock").len(),
            self.conflicts.lock().expect("lock").len(),
            self.first_change.lock().expect("lock").len(),
            self.brakes.lock().expect("lock").len(),
            self.dry_records.lock().expect("lock").len(),
        ]
    }

    /// The time since the oldest pending source change of `key`, consumed.
    pub fn take_change_age(&self, key: &WorkloadKey) -> Option<Duration> {
        self.first_change.lock().expect("lock").remove(key).map(|t| t.elapsed())
    }

    pub fn watch_failed(&self, what: &str, resource: &'static str) {
        self.metrics.watch_restarts.get_or_create(&crate::metrics::ResourceLabel { resource }).inc();
        self.failing.lock().expect("lock").insert(what.to_string());
    }

    pub fn watch_ok(&self, what: &str) {
        let mut f = self.failing.lock().expect("lock");
        if !f.is_empty() {
            f.remove(what);
        }
    }

    /// Why `/ready` is false, or `None` when ready.
    pub fn not_ready_reason(&self) -> Option<String> {
        if self.shutting_down.load(Ordering::SeqCst) {
            return Some("shutting down".into());
        }
        if !self.readiness.is_ready() {
            return Some("initial list of the watches not complete".into());
        }
        if let (Some(g), Some(ha)) = (&self.gate, &self.settings.ha)
            && let Some(why) = g.failing_for(ha.lease_duration)
        {
            // No replica may be able to write: say so rather than look healthy.
            return Some(why);
        }
        let failing = self.failing.lock().expect("lock");
        if !failing.is_empty() {
            let mut v: Vec<&String> = failing.iter().collect();
            v.sort();
            return Some(format!("watches failing: {}", v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")));
        }
        None
    }

    /// Updates the gauges that are read off the state (at scrape time).
    pub fn refresh_gauges(&self) {
        let (s, w) = {
            let st = self.state.lock().expect("state lock");
            (st.source_count(), st.workload_count())
        };
        self.metrics.tracked_sources.set(s as i64);
        self.metrics.tracked_workloads.set(w as i64);
        self.metrics.queue_depth.set(self.queue.len() as i64);
        self.metrics.leader.set(i64::from(self.is_leader()));
        let held = self.brakes.lock().expect("lock").values().filter(|b| b.is_held()).count();
        self.metrics.held_workloads.set(held as i64);
    }

    /// Whether this replica may write now: checked at each write, against the renew deadline.
    pub fn is_leader(&self) -> bool {
        self.gate.as_ref().is_none_or(|g| g.open())
    }

    /// The write gate: not in dry-run (counted and logged instead), and only while leading.
    pub fn may_write(&self, action: &'static str, w: &Workload) -> bool {
        if self.settings.dry_run {
            self.metrics.dry_run.get_or_create(&crate::metrics::ActionLabel { action }).inc();
            info!(workload = %w.key, "dry-run: would {action}");
            return false;
        }
        if !self.is_leader() {
            tracing::debug!(workload = %w.key, "not the leader; not writing");
            return false;
        }
        true
    }

    /// In dry-run, the workload as if the records it would have been given were written.
    pub fn with_dry_run_record(&self, w: &Workload) -> Workload {
        let mut w = w.clone();
        if self.settings.dry_run
            && let Some(r) = self.dry_records.lock().expect("lock").get(&w.key)
        {
            w.record = Ok(Some(r.clone()));
            w.record_foreign = None;
        }
        w
    }

    pub fn set_dry_run_record(&self, key: &WorkloadKey, record: &Record) {
        if self.settings.dry_run {
            self.dry_records.lock().expect("lock").insert(key.clone(), record.clone());
        }
    }

    pub fn brake_check(&self, key: &WorkloadKey) -> Verdict {
        self.brakes.lock().expect("lock").entry(key.clone()).or_default().check(&self.settings.brake, Instant::now())
    }

    pub fn brake_reloaded(&self, key: &WorkloadKey) {
        self.brakes.lock().expect("lock").entry(key.clone()).or_default().reloaded(Instant::now());
    }

    pub fn namespace_selected(&self, ns: &str) -> bool {
        self.selected.lock().expect("ns lock").as_ref().is_none_or(|s| s.contains(ns))
    }

    pub fn selected_namespaces(&self) -> Vec<String> {
        self.selected.lock().expect("ns lock").iter().flatten().cloned().collect()
    }

    /// A namespace joins or leaves the selector; joining reconciles its workloads.
    pub fn select_namespace(&self, ns: &str, selected: bool) {
        let joined = {
            let mut g = self.selected.lock().expect("ns lock");
            let Some(set) = g.as_mut() else { return };
            if selected {
                set.insert(ns.to_string())
            } else {
                if set.remove(ns) {
                    info!(namespace = ns, "namespace no longer matches the selector");
                }
                false
            }
        };
        if joined {
            info!(namespace = ns, "namespace matches the selector; watching it");
            let keys = self.state.lock().expect("state lock").workloads_in(ns);
            for k in keys {
                self.enqueue(k, Duration::ZERO);
            }
        }
    }

    fn enqueue_all(&self) {
        let keys: Vec<WorkloadKey> = self.state.lock().expect("state lock").workload_keys().cloned().collect();
        for k in keys {
            self.enqueue(k, Duration::ZERO);
        }
    }
}

/// The `metadata.namespace!=` terms for `--namespaces-to-ignore`, plus `extra`, as one field selector.
fn field_selector(ignore: &[String], extra: &[&str]) -> Option<String> {
    let parts: Vec<String> =
        ignore.iter().map(|n| format!("metadata.namespace!={n}")).chain(extra.iter().map(|e| e.to_string())).collect();
    (!parts.is_empty()).then(|| parts.join(","))
}

/// The API of one watch scope: one namespace, or all of them.
fn scoped_api<K>(client: &Client, scope: &Option<String>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match scope {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

fn spawn_workloads<K: WorkloadObject>(
    set: &mut JoinSet<()>,
    ctx: &Arc<Ctx>,
    scopes: &[Option<String>],
    ignore: &[String],
) {
    for scope in scopes {
        let cfg = watcher::Config {
            field_selector: field_selector(ignore, &[]),
            page_size: Some(LIST_PAGE_SIZE),
            ..Default::default()
        };
        let synced = ctx.readiness.handle();
        set.spawn(watch::workloads::<K>(ctx.clone(), scoped_api(&ctx.client, scope), cfg, scope.clone(), synced));
    }
}

/// Whether the Argo Rollouts API is served.
async fn rollouts_installed(client: &Client) -> bool {
    match client.list_api_group_resources("argoproj.io/v1alpha1").await {
        Ok(list) => list.resources.iter().any(|r| r.name == "rollouts"),
        Err(_) => false,
    }
}

fn log_scope(s: &Settings) {
    match &s.scope {
        Scope::All { ignore, selector } => {
            if ignore.is_empty() {
                warn!("KUBERNETES_NAMESPACE is unset, will detect changes in all namespaces.");
            } else {
                warn!(
                    "KUBERNETES_NAMESPACE is unset, will detect changes in all namespaces except: {}.",
                    ignore.join(", ")
                );
            }
            if let Some(sel) = selector {
                warn!("namespace-selector is set, will only detect changes in namespaces with these labels: {sel}.");
            }
        }
        Scope::Namespaces(list) => info!("Watching scoped namespaces: {}", list.join(", ")),
    }
    if let Some(sel) = &s.resource_label_selector {
        warn!("resource-label-selector is set, will only detect changes on resources with these labels: {sel}.");
    }
    if s.dry_run {
        warn!("dry-run: decisions are logged and counted; nothing is written");
    }
    if let Some(url) = &s.webhook_url {
        warn!("webhook-url is set, will only send webhook to {url}, no resources will be reloaded");
    }
}

/// Starts every watch, the server and (with HA) the lease; once the watches have listed
/// everything, reconciles while this replica may write, until `shutdown`.
pub async fn run(ctx: Arc<Ctx>, shutdown: CancellationToken) -> anyhow::Result<()> {
    let s = &ctx.settings;
    let listener = match s.metrics_addr {
        Some(addr) => Some(server::bind(addr).await?),
        None => None,
    };
    log_scope(s);
    let (scopes, ignore): (Vec<Option<String>>, Vec<String>) = match &s.scope {
        Scope::All { ignore, .. } => (vec![None], ignore.clone()),
        Scope::Namespaces(list) => (list.iter().cloned().map(Some).collect(), vec![]),
    };

    // Held until every watch below has been started with a readiness handle of its own.
    let mut wiring = ctx.readiness.handle();
    let mut tasks = JoinSet::new();
    let server_stop = CancellationToken::new();
    if let Some(l) = listener {
        info!(addr = %l.local_addr()?, "serving /live, /ready and /metrics");
        let (ctx, stop) = (ctx.clone(), server_stop.clone());
        tasks.spawn(async move {
            if let Err(e) = server::serve(l, ctx, stop).await {
                warn!(error = %e, "the probe/metrics server stopped");
            }
        });
    }

    for scope in &scopes {
        let mk_cfg = |extra: &[&str]| watcher::Config {
            label_selector: s.resource_label_selector.clone(),
            field_selector: field_selector(&ignore, extra),
            page_size: Some(LIST_PAGE_SIZE),
            ..Default::default()
        };
        if s.watch_configmaps {
            let api: Api<ConfigMap> = scoped_api(&ctx.client, scope);
            let synced = ctx.readiness.handle();
            tasks.spawn(watch::sources(ctx.clone(), api, mk_cfg(&[]), scope.clone(), synced));
        }
        if s.watch_secrets {
            let api: Api<Secret> = scoped_api(&ctx.client, scope);
            // Helm keeps every release revision in a Secret; they are large and never mounted.
            let extra: &[&str] = if s.watch_helm_release_secrets { &[] } else { &["type!=helm.sh/release.v1"] };
            let synced = ctx.readiness.handle();
            tasks.spawn(watch::sources(ctx.clone(), api, mk_cfg(extra), scope.clone(), synced));
        }
    }
    spawn_workloads::<Deployment>(&mut tasks, &ctx, &scopes, &ignore);
    spawn_workloads::<StatefulSet>(&mut tasks, &ctx, &scopes, &ignore);
    spawn_workloads::<DaemonSet>(&mut tasks, &ctx, &scopes, &ignore);
    if !s.ignore_cronjobs {
        spawn_workloads::<CronJob>(&mut tasks, &ctx, &scopes, &ignore);
    }
    if !s.ignore_jobs {
        spawn_workloads::<Job>(&mut tasks, &ctx, &scopes, &ignore);
    }
    if s.is_argo_rollouts {
        if rollouts_installed(&ctx.client).await {
            info!("Argo Rollouts found; watching rollouts.argoproj.io");
            spawn_workloads::<Rollout>(&mut tasks, &ctx, &scopes, &ignore);
        } else {
            warn!(
                "--is-Argo-Rollouts is true but the argoproj.io/v1alpha1 Rollout API is not installed; Rollouts are not watched"
            );
        }
    }
    if let Scope::All { selector: Some(sel), .. } = &s.scope {
        let cfg = watcher::Config::default().labels(sel).page_size(LIST_PAGE_SIZE);
        let synced = ctx.readiness.handle();
        tasks.spawn(watch::namespaces(ctx.clone(), Api::<Namespace>::all(ctx.client.clone()), cfg, synced));
    }

    wiring.done();

    // Standbys keep their watches warm; only the lease holder writes.
    let lease_stop = CancellationToken::new();
    let lease = match (&s.ha, &ctx.gate) {
        (Some(ha), Some(gate)) => Some(tokio::spawn(leader::run(
            ctx.client.clone(),
            ha.clone(),
            gate.clone(),
            ctx.leader.clone(),
            lease_stop.clone(),
        ))),
        _ => None,
    };

    // Decisions need the whole picture: a workload evaluated before the sources are listed
    // would see them as missing.
    let mut synced = ctx.readiness.subscribe();
    tokio::select! {
        _ = synced.wait_for(|s| *s) => {}
        _ = shutdown.cancelled() => {}
    }
    if !shutdown.is_cancelled() {
        let st = ctx.state.lock().expect("state lock");
        info!(sources = st.source_count(), workloads = st.workload_count(), "initial sync complete");
    }

    let mut workers = JoinSet::new();
    if ctx.notifier.webhook_mode() {
        info!("webhook mode: no workload is written");
    } else if !shutdown.is_cancelled() {
        // Every time this replica (again) may write, look at every workload: level-triggered,
        // so nothing rolls unless a source changed since it was recorded.
        let mut leader_rx = ctx.leader.subscribe();
        let ctx2 = ctx.clone();
        let stop = shutdown.clone();
        tasks.spawn(async move {
            loop {
                tokio::select! {
                    r = leader_rx.wait_for(|l| *l) => if r.is_err() { return },
                    _ = stop.cancelled() => return,
                }
                ctx2.enqueue_all();
                tokio::select! {
                    r = leader_rx.wait_for(|l| !*l) => if r.is_err() { return },
                    _ = stop.cancelled() => return,
                }
            }
        });
        for _ in 0..s.workers {
            workers.spawn(worker(ctx.clone()));
        }
    }

    shutdown.cancelled().await;
    ctx.shutting_down.store(true, Ordering::SeqCst);
    info!("stopping: finishing in-flight patches");
    ctx.queue.close();
    let _ = tokio::time::timeout(Duration::from_secs(10), async { while workers.join_next().await.is_some() {} }).await;
    if let Some(lease) = lease {
        // Stop writing and give the lease up, so a standby takes over without waiting.
        lease_stop.cancel();
        if tokio::time::timeout(Duration::from_secs(5), lease).await.is_err() {
            warn!("releasing the lease timed out; it will expire");
        }
    }
    server_stop.cancel();
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    info!("stopped");
    Ok(())
}

async fn worker(ctx: Arc<Ctx>) {
    while let Some((key, queued)) = ctx.queue.next().await {
        ctx.metrics.queue_latency.observe(queued.as_secs_f64());
        let result = reconcile::reconcile(&ctx, &key).await;
        let retry = match result {
            Ok(Outcome::Done) => {
                ctx.failures.lock().expect("failures lock").remove(&key);
                ctx.conflicts.lock().expect("conflicts lock").remove(&key);
                None
            }
            Ok(Outcome::Stale) => {
                let mut c = ctx.conflicts.lock().expect("conflicts lock");
                let n = c.entry(key.clone()).or_insert(0);
                *n += 1;
                Some(reconcile::conflict_backoff(*n))
            }
            Err(e) => {
                ctx.metrics.error("handler_error");
                ctx.metrics.retries.inc();
                let mut f = ctx.failures.lock().expect("failures lock");
                let n = f.entry(key.clone()).or_insert(0);
                *n += 1;
                let delay = reconcile::backoff(*n);
                warn!(error = %e, retry_in = ?delay, "reconcile failed");
                Some(delay)
            }
        };
        ctx.queue.done(&key);
        if let Some(d) = retry {
            ctx.queue.add_after(key, d);
        }
    }
}
