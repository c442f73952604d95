//! Wiring: the watches for the configured scope, leader election, the probe/metrics server
//! and the workers.
//!
//! The queue and workers are hand-written rather than kube-runtime's `Controller`: that
//! reconciles objects of one kind, each keyed by itself, from reflector stores, while here a
//! change of one ConfigMap or Secret fans out to many workloads of six kinds through an N:M
//! index that keeps only hashes and projections, and the queue needs per-key deadlines to fold a
//! burst of changes into one rollout.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::Client;
use kube::api::Api;
use kube::runtime::watcher;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::{Scope, Settings};
use crate::core::model::workload::{WorkloadKind, WorkloadObject, with_workload_type};
use crate::error::Error;
use crate::reconcile::{self, Outcome};
pub use crate::runtime::context::Ctx;
use crate::runtime::{leader, server};
use crate::watch;

/// Objects per page of a (re)list. A page is held whole (response text and decoded objects)
/// while it is processed, and Deployments carry kilobytes of managedFields each, so pages of
/// client-go's 500 set the memory peak; at 100 the RSS at 10k Secrets + 10k ConfigMaps + 1k
/// Deployments drops from ~68 MiB to ~37 MiB for a few more list calls (see bench/README.md).
pub const LIST_PAGE_SIZE: u32 = 100;

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

/// A watch without a label selector: listed in pages, `--namespaces-to-ignore` server-side.
fn paged(ignore: &[String]) -> watcher::Config {
    watcher::Config {
        field_selector: field_selector(ignore, &[]),
        page_size: Some(LIST_PAGE_SIZE),
        ..Default::default()
    }
}

fn spawn_workloads<K: WorkloadObject>(
    set: &mut JoinSet<()>,
    ctx: &Arc<Ctx>,
    scopes: &[Option<String>],
    ignore: &[String],
) {
    for scope in scopes {
        let cfg = paged(ignore);
        let synced = ctx.health.readiness.handle_in(scope.clone());
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

/// Which Secrets Store CSI APIs are served: (SecretProviderClassPodStatuses,
/// SecretProviderClasses), or why discovery failed otherwise than with "not found".
async fn csi_installed(client: &Client) -> Result<(bool, bool), String> {
    match client.list_api_group_resources(crate::core::model::csi::GROUP_VERSION).await {
        Ok(list) => {
            let has = |n: &str| list.resources.iter().any(|r| r.name == n);
            Ok((has("secretproviderclasspodstatuses"), has("secretproviderclasses")))
        }
        Err(kube::Error::Api(s)) if s.code == 404 => Ok((false, false)),
        Err(e) => Err(crate::error::api_message(&e)),
    }
}

/// With `--enable-csi-integration`: watches SecretProviderClassPodStatuses (and
/// SecretProviderClasses, for their match/ignore annotations) in every scope, if the CSI
/// driver's CRDs are installed; otherwise says so once and leaves everything else as it is.
async fn spawn_csi(set: &mut JoinSet<()>, ctx: &Arc<Ctx>, scopes: &[Option<String>], ignore: &[String]) {
    use crate::core::model::csi::{SecretProviderClass, SecretProviderClassPodStatus};
    let (statuses, classes) = match csi_installed(&ctx.client).await {
        Ok(found) => found,
        Err(e) => {
            ctx.without_csi();
            warn!(
                "CSI provider is not installed, as far as discovery of secrets-store.csi.x-k8s.io/v1 could tell \
                 ({e}): SecretProviderClasses are not watched until the controller restarts"
            );
            return;
        }
    };
    if !statuses {
        ctx.without_csi();
        warn!(
            "CSI provider is not installed: --enable-csi-integration is on, but the secrets-store.csi.x-k8s.io/v1 \
             SecretProviderClassPodStatus API is not served; SecretProviderClasses are not watched"
        );
        return;
    }
    info!("CSI provider is installed; watching secretproviderclasspodstatuses");
    for scope in scopes {
        // Not `--resource-label-selector`: the driver labels nothing, so Reloader's selector on
        // them (its quirk Q13) only turns CSI reloads off.
        let cfg = paged(ignore);
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
pub async fn run(ctx: Arc<Ctx>, shutdown: CancellationToken) -> Result<(), Error> {
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
    let mut wiring = ctx.health.readiness.handle();
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

    for scope in &scopes {
        let mk_cfg = |extra: &[&str]| watcher::Config {
            label_selector: s.resource_label_selector.clone(),
            field_selector: field_selector(&ignore, extra),
            page_size: Some(LIST_PAGE_SIZE),
            ..Default::default()
        };
        if s.watch_configmaps {
            let api: Api<ConfigMap> = scoped_api(&ctx.client, scope);
            let synced = ctx.health.readiness.handle_in(scope.clone());
            tasks.spawn(watch::sources(ctx.clone(), api, mk_cfg(&[]), scope.clone(), synced));
        }
        if s.watch_secrets {
            let api: Api<Secret> = scoped_api(&ctx.client, scope);
            // Helm keeps every release revision in a Secret; they are large and never mounted.
            let helm = s.secret_field_selector();
            let extra: &[&str] = helm.as_slice();
            let synced = ctx.health.readiness.handle_in(scope.clone());
            tasks.spawn(watch::sources(ctx.clone(), api, mk_cfg(extra), scope.clone(), synced));
        }
    }
    if s.keys.csi {
        spawn_csi(&mut tasks, &ctx, &scopes, &ignore).await;
    }
    for kind in s.workload_kinds() {
        if kind == WorkloadKind::Rollout {
            if !rollouts_installed(&ctx.client).await {
                warn!(
                    "--is-Argo-Rollouts is true but the argoproj.io/v1alpha1 Rollout API is not installed; Rollouts are not watched"
                );
                continue;
            }
            info!("Argo Rollouts found; watching rollouts.argoproj.io");
        }
        with_workload_type!(kind, K => spawn_workloads::<K>(&mut tasks, &ctx, &scopes, &ignore));
    }
    if let Scope::All { selector: Some(sel), .. } = &s.scope {
        let cfg = watcher::Config::default().labels(sel).page_size(LIST_PAGE_SIZE);
        let synced = ctx.health.readiness.handle();
        tasks.spawn(watch::namespaces(ctx.clone(), Api::<Namespace>::all(ctx.client.clone()), cfg, synced));
    }

    ctx.health.readiness.wired();
    wiring.done();

    // Standbys keep their watches warm; only the lease holder writes.
    let lease_stop = CancellationToken::new();
    let lease = match (&s.ha, &ctx.leadership.gate) {
        (Some(ha), Some(gate)) => Some(tokio::spawn(leader::run(
            ctx.client.clone(),
            ha.clone(),
            gate.clone(),
            ctx.leadership.leading.clone(),
            lease_stop.clone(),
        ))),
        _ => None,
    };

    // Workers start now: a workload is decided on only once every watch of its namespace (or
    // the cluster-wide ones) has listed, so one namespace that cannot list blocks only itself.
    let mut synced = ctx.health.readiness.subscribe();
    let ctx_log = ctx.clone();
    tasks.spawn(async move {
        if synced.wait_for(|s| *s).await.is_ok() {
            {
                let st = ctx_log.state.lock().expect("state lock");
                info!(sources = st.source_count(), workloads = st.workload_count(), "initial sync complete");
            }
            crate::runtime::memory::release_free();
        }
    });

    let mut workers = JoinSet::new();
    if ctx.notifier.webhook_mode() {
        info!("webhook mode: no workload is written");
    } else if !shutdown.is_cancelled() {
        // Every time this replica (again) may write, look at every workload: level-triggered,
        // so nothing rolls unless a source changed since it was recorded.
        let mut leader_rx = ctx.leadership.leading.subscribe();
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
    ctx.begin_shutdown();
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
                ctx.settled(&key);
                None
            }
            Ok(Outcome::Stale) => Some(ctx.conflicted(&key)),
            Err(e) => {
                ctx.metrics.error("handler_error");
                ctx.metrics.failure(e.metric_label());
                ctx.metrics.retries.inc();
                let delay = ctx.failed(&key);
                warn!(retry_in = ?delay, "{e}");
                Some(delay)
            }
        };
        ctx.queue.done(&key);
        if let Some(d) = retry {
            ctx.queue.add_after(key, d);
        }
    }
}
