//! Wiring: the watches for the configured scope, leader election, the probe/metrics server
//! and the workers.
//!
//! The queue and workers are hand-written rather than kube-runtime's `Controller`: that
//! reconciles objects of one kind, each keyed by itself, from reflector stores, while here a
//! change of one ConfigMap or Secret fans out to many workloads of every kind through an N:M
//! index that keeps only hashes and projections, and the queue needs per-key deadlines to fold a
//! burst of changes into one rollout.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::Client;
use kube::api::Api;
use kube::runtime::watcher;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::{Scope, Settings};
use crate::core::kinds::{Watched, WorkloadType, with_kind_type};
use crate::error::Error;
use crate::reconcile::{self, Pass};
pub use crate::runtime::context::Ctx;
use crate::runtime::lists::{self, Lists};
use crate::runtime::scheduler::Finished;
use crate::runtime::{leader, server};
use crate::watch;

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

/// The watch scopes (`None`: all namespaces), the namespaces they leave out, and how they list.
struct Scopes {
    scopes: Vec<Option<String>>,
    ignore: Vec<String>,
    lists: Lists,
}

impl Scopes {
    async fn of(s: &Settings, client: &Client) -> Scopes {
        let (scopes, ignore) = match &s.scope {
            Scope::All { ignore, .. } => (vec![None], ignore.clone()),
            Scope::Namespaces(list) => (list.iter().cloned().map(Some).collect(), vec![]),
        };
        let first = scopes.first().cloned().flatten();
        let lists = lists::choose(client, s.watch.initial_list, first.as_deref()).await;
        Scopes { scopes, ignore, lists }
    }

    /// A watch without a label selector: `--namespaces-to-ignore` server-side.
    fn plain(&self) -> watcher::Config {
        self.lists.apply(watcher::Config { field_selector: field_selector(&self.ignore, &[]), ..Default::default() })
    }
}

fn spawn_workloads<K: WorkloadType>(set: &mut JoinSet<()>, ctx: &Arc<Ctx>, s: &Scopes) {
    for scope in &s.scopes {
        let synced = ctx.health.readiness.handle_in(scope.clone());
        let api = scoped_api(&ctx.client, scope);
        set.spawn(watch::workloads::<K>(ctx.clone(), api, s.plain(), scope.clone(), synced));
    }
}

/// The resources the API server serves in `api_version` (none: the group is not installed),
/// or why discovery failed otherwise than with "not found".
async fn served(client: &Client, api_version: &str) -> Result<Vec<String>, String> {
    match client.list_api_group_resources(api_version).await {
        Ok(list) => Ok(list.resources.into_iter().map(|r| r.name).collect()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Vec::new()),
        Err(e) => Err(crate::error::api_message(&e)),
    }
}

/// Watches every workload kind the settings name; a custom resource only if its API is served
/// (its CRD is not installed everywhere).
async fn spawn_workload_watches(set: &mut JoinSet<()>, ctx: &Arc<Ctx>, s: &Scopes) {
    for kind in ctx.settings.watch.kinds.iter().copied() {
        let i = kind.info();
        if i.custom {
            let (flag, product) = match i.watched {
                Watched::WithFlag { flag, product, .. } => (format!("--{flag} is true but "), product),
                _ => (String::new(), i.kind),
            };
            if !served(&ctx.client, i.api_version).await.is_ok_and(|r| r.iter().any(|n| n == i.plural)) {
                warn!("{flag}the {} {} API is not installed; {}s are not watched", i.api_version, i.kind, i.kind);
                continue;
            }
            info!("{product} found; watching {}.{}", i.plural, i.group);
        }
        with_kind_type!(kind, K => spawn_workloads::<K>(set, ctx, s));
    }
}

/// Watches ConfigMaps and Secrets (unless `--resources-to-ignore` names them) in every scope.
fn spawn_source_watches(set: &mut JoinSet<()>, ctx: &Arc<Ctx>, s: &Scopes) {
    let w = &ctx.settings.watch;
    let cfg = |extra: &[&str]| {
        s.lists.apply(watcher::Config {
            label_selector: w.label_selector.clone(),
            field_selector: field_selector(&s.ignore, extra),
            ..Default::default()
        })
    };
    for scope in &s.scopes {
        if w.configmaps {
            let api: Api<ConfigMap> = scoped_api(&ctx.client, scope);
            let synced = ctx.health.readiness.handle_in(scope.clone());
            set.spawn(watch::sources(ctx.clone(), api, cfg(&[]), scope.clone(), synced));
        }
        if w.secrets {
            let api: Api<Secret> = scoped_api(&ctx.client, scope);
            // Helm keeps every release revision in a Secret; they are large and never mounted.
            let helm = ctx.settings.secret_field_selector();
            let synced = ctx.health.readiness.handle_in(scope.clone());
            set.spawn(watch::sources(ctx.clone(), api, cfg(helm.as_slice()), scope.clone(), synced));
        }
    }
}

/// With `--enable-csi-integration`: watches SecretProviderClassPodStatuses (and
/// SecretProviderClasses, for their match/ignore annotations) in every scope, if the CSI
/// driver's CRDs are installed; otherwise says so once and leaves everything else as it is.
async fn spawn_csi(set: &mut JoinSet<()>, ctx: &Arc<Ctx>, s: &Scopes) {
    use crate::core::model::csi::{GROUP_VERSION, SecretProviderClass, SecretProviderClassPodStatus};
    let found = served(&ctx.client, GROUP_VERSION).await.map(|r| {
        let has = |n: &str| r.iter().any(|x| x == n);
        (has("secretproviderclasspodstatuses"), has("secretproviderclasses"))
    });
    let (statuses, classes) = match found {
        Ok(found) => found,
        Err(e) => {
            ctx.store.without_csi();
            warn!(
                "CSI provider is not installed, as far as discovery of secrets-store.csi.x-k8s.io/v1 could tell \
                 ({e}): SecretProviderClasses are not watched until the controller restarts"
            );
            return;
        }
    };
    if !statuses {
        ctx.store.without_csi();
        warn!(
            "CSI provider is not installed: --enable-csi-integration is on, but the secrets-store.csi.x-k8s.io/v1 \
             SecretProviderClassPodStatus API is not served; SecretProviderClasses are not watched"
        );
        return;
    }
    info!("CSI provider is installed; watching secretproviderclasspodstatuses");
    for scope in &s.scopes {
        // Not `--resource-label-selector`: the driver labels nothing, so Reloader's selector on
        // them (its quirk Q13) only turns CSI reloads off.
        let cfg = s.plain();
        let synced = ctx.health.readiness.handle_in(scope.clone());
        let api: Api<SecretProviderClassPodStatus> = scoped_api(&ctx.client, scope);
        set.spawn(watch::spc_pod_statuses(ctx.clone(), api, cfg.clone(), scope.clone(), synced));
        if classes {
            let synced = ctx.health.readiness.handle_in(scope.clone());
            let api: Api<SecretProviderClass> = scoped_api(&ctx.client, scope);
            set.spawn(watch::spcs(ctx.clone(), api, cfg, scope.clone(), synced));
        }
    }
    if !classes {
        warn!("the SecretProviderClass API is not served: match and ignore cannot be read from SecretProviderClasses");
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
    if let Some(sel) = &s.watch.label_selector {
        warn!("resource-label-selector is set, will only detect changes on resources with these labels: {sel}.");
    }
    if s.dry_run {
        warn!("dry-run: decisions are logged and counted; nothing is written");
    }
    if let Some(url) = &s.webhook_url {
        warn!("webhook-url is set, will only send webhook to {url}, no resources will be reloaded");
    }
}

/// Starts every watch, with a readiness handle each. The wiring holds a handle of its own
/// until every watch has one, so readiness cannot turn true while one is still to start.
async fn spawn_watches(tasks: &mut JoinSet<()>, ctx: &Arc<Ctx>) {
    let mut wiring = ctx.health.readiness.handle();
    let scopes = Scopes::of(&ctx.settings, &ctx.client).await;
    spawn_source_watches(tasks, ctx, &scopes);
    if ctx.settings.keys.csi {
        spawn_csi(tasks, ctx, &scopes).await;
    }
    spawn_workload_watches(tasks, ctx, &scopes).await;
    if let Scope::All { selector: Some(sel), .. } = &ctx.settings.scope {
        let cfg = scopes.lists.apply(watcher::Config::default().labels(sel));
        let synced = ctx.health.readiness.handle();
        tasks.spawn(watch::namespaces(ctx.clone(), Api::<Namespace>::all(ctx.client.clone()), cfg, synced));
    }
    ctx.health.readiness.wired();
    wiring.done();
}

/// With HA, runs the lease until `stop`; standbys keep their watches warm, only the holder writes.
fn start_lease(ctx: &Ctx, stop: &CancellationToken) -> Option<JoinHandle<()>> {
    let l = ctx.writer.leadership();
    let (ha, gate) = (ctx.settings.ha.as_ref()?, l.gate.as_ref()?);
    let lease = leader::run(ctx.client.clone(), ha.clone(), gate.clone(), l.leading.clone(), stop.clone());
    Some(tokio::spawn(lease))
}

/// Logs the initial sync once every watch has listed, and gives the memory its lists took back.
fn log_initial_sync(tasks: &mut JoinSet<()>, ctx: &Arc<Ctx>) {
    let mut synced = ctx.health.readiness.subscribe();
    let ctx = ctx.clone();
    tasks.spawn(async move {
        if synced.wait_for(|s| *s).await.is_ok() {
            {
                let index = ctx.store.lock();
                info!(sources = index.source_count(), workloads = index.workload_count(), "initial sync complete");
            }
            crate::runtime::memory::release_free();
        }
    });
}

/// After a burst of work (a fan-out, a wave, many workloads created), the allocator keeps the
/// pages it freed: gives them back once the queue has drained, at most every 30 s (glibc; a
/// no-op on musl, whose allocator returns memory itself).
fn trim_when_idle(tasks: &mut JoinSet<()>, ctx: &Arc<Ctx>, stop: &CancellationToken) {
    use std::time::Duration;
    let (ctx, stop) = (ctx.clone(), stop.clone());
    tasks.spawn(async move {
        let mut trimmed: Option<(tokio::time::Instant, u64)> = None;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                _ = stop.cancelled() => return,
            }
            let adds = ctx.metrics.queue_adds.get();
            let due = trimmed.is_none_or(|(at, seen)| seen != adds && at.elapsed() >= Duration::from_secs(30));
            if due && ctx.scheduler.queue_len() == 0 {
                crate::runtime::memory::release_free();
                trimmed = Some((tokio::time::Instant::now(), adds));
            }
        }
    });
}

/// Every time this replica (again) may write, looks at every workload: level-triggered, so
/// nothing rolls unless a source changed since it was recorded.
fn look_at_all_when_leading(tasks: &mut JoinSet<()>, ctx: &Arc<Ctx>, stop: &CancellationToken) {
    let mut leading = ctx.writer.leadership().leading.subscribe();
    let (ctx, stop) = (ctx.clone(), stop.clone());
    tasks.spawn(async move {
        loop {
            tokio::select! {
                r = leading.wait_for(|l| *l) => if r.is_err() { return },
                _ = stop.cancelled() => return,
            }
            ctx.look_at_all();
            tokio::select! {
                r = leading.wait_for(|l| !*l) => if r.is_err() { return },
                _ = stop.cancelled() => return,
            }
        }
    });
}

/// Starts every watch, the server and (with HA) the lease; once the watches have listed
/// everything, reconciles while this replica may write, until `shutdown`.
pub async fn run(ctx: Arc<Ctx>, shutdown: CancellationToken) -> Result<(), Error> {
    let s = &ctx.settings;
    let listener = match s.metrics_addr {
        Some(addr) => Some(server::bind(addr).await?),
        None => None,
    };
    log_scope(s);
    let mut tasks = JoinSet::new();
    let server_stop = CancellationToken::new();
    if let Some(l) = listener {
        info!(addr = %l.local_addr().map_err(Error::Server)?, "serving /live, /ready and /metrics");
        let (ctx, stop) = (ctx.clone(), server_stop.clone());
        tasks.spawn(async move {
            if let Err(e) = server::serve(l, ctx, stop).await {
                warn!(error = %e, "the probe/metrics server stopped");
            }
        });
    }
    let kinds: Vec<&'static str> = s.watch.kinds.iter().map(|k| k.as_str()).collect();
    let mut resources: Vec<&'static str> = s.watch.kinds.iter().map(|k| k.plural()).collect();
    resources.extend(s.watch.configmaps.then_some("configmaps"));
    resources.extend(s.watch.secrets.then_some("secrets"));
    ctx.metrics.zero_series(&kinds, &resources);
    spawn_watches(&mut tasks, &ctx).await;
    let lease_stop = CancellationToken::new();
    let lease = start_lease(&ctx, &lease_stop);
    log_initial_sync(&mut tasks, &ctx);
    trim_when_idle(&mut tasks, &ctx, &shutdown);

    // Workers start now: a workload is decided on only once every watch of its namespace (or
    // the cluster-wide ones) has listed, so one namespace that cannot list blocks only itself.
    let mut workers = JoinSet::new();
    if ctx.reporter.webhook_mode() {
        info!("webhook mode: no workload is written");
    } else if !shutdown.is_cancelled() {
        look_at_all_when_leading(&mut tasks, &ctx, &shutdown);
        for _ in 0..s.workers {
            workers.spawn(worker(ctx.clone()));
        }
    }

    shutdown.cancelled().await;
    ctx.health.begin_shutdown();
    info!("stopping: finishing in-flight patches");
    ctx.scheduler.close();
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
    while let Some((key, _)) = ctx.scheduler.next().await {
        let how = match reconcile::reconcile(&ctx, &key).await {
            Ok(Pass::Stale) => Finished::Stale,
            Ok(_) => Finished::Done,
            Err(e) => {
                ctx.metrics.error("handler_error");
                ctx.metrics.failure(e.metric_label());
                let delay = ctx.scheduler.finished(key, Finished::Failed);
                warn!(retry_in = ?delay, "{e}");
                continue;
            }
        };
        ctx.scheduler.finished(key, how);
    }
}
