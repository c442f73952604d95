//! Wiring: the shared context, the watches for the configured scope, and the workers.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::Client;
use kube::api::Api;
use kube::runtime::watcher;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::{Scope, Settings};
use crate::queue::WorkQueue;
use crate::reconcile::{self, Outcome};
use crate::state::State;
use crate::watch::{self, Synced};
use crate::workload::{WorkloadKey, WorkloadObject};

/// Shared by watches and workers.
pub struct Ctx {
    pub client: Client,
    pub settings: Settings,
    pub state: Mutex<State>,
    pub queue: WorkQueue<WorkloadKey>,
    /// Watches that have not finished their first list yet.
    pub pending_syncs: AtomicUsize,
    /// True once every watch has finished its first list.
    pub synced: tokio::sync::watch::Sender<bool>,
    /// With `--namespace-selector`: the namespaces that currently match.
    selected: Mutex<Option<HashSet<String>>>,
    failures: Mutex<HashMap<WorkloadKey, u32>>,
}

impl Ctx {
    pub fn new(client: Client, settings: Settings) -> Arc<Ctx> {
        let selected = match &settings.scope {
            Scope::All { selector: Some(_), .. } => Some(HashSet::new()),
            _ => None,
        };
        Arc::new(Ctx {
            client,
            settings,
            state: Mutex::new(State::default()),
            queue: WorkQueue::new(),
            pending_syncs: AtomicUsize::new(0),
            synced: tokio::sync::watch::channel(false).0,
            selected: Mutex::new(selected),
            failures: Mutex::new(HashMap::new()),
        })
    }

    pub fn enqueue_debounced(&self, key: WorkloadKey) {
        self.queue.add_after(key, self.settings.debounce);
    }

    pub fn metrics_event(&self, _event_type: &str, _resource: &str) {}

    pub fn watch_failed(&self) {}

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
                set.remove(ns);
                false
            }
        };
        if selected {
            info!(namespace = ns, "namespace matches the selector; watching it");
        }
        if joined {
            let keys = self.state.lock().expect("state lock").workloads_in(ns);
            for k in keys {
                self.queue.add_after(k, Duration::ZERO);
            }
        }
    }
}

fn field_selector(parts: &[String]) -> Option<String> {
    (!parts.is_empty()).then(|| parts.join(","))
}

fn spawn_workloads<K: WorkloadObject>(
    set: &mut JoinSet<()>,
    ctx: &Arc<Ctx>,
    scopes: &[Option<String>],
    ignore: &[String],
) {
    for scope in scopes {
        let api: Api<K> = match scope {
            Some(ns) => Api::namespaced(ctx.client.clone(), ns),
            None => Api::all(ctx.client.clone()),
        };
        let fs: Vec<String> = ignore.iter().map(|n| format!("metadata.namespace!={n}")).collect();
        let cfg = watcher::Config { field_selector: field_selector(&fs), ..Default::default() };
        let synced = Synced::new(ctx.clone());
        set.spawn(watch::workloads::<K>(ctx.clone(), api, cfg, scope.clone(), synced));
    }
}

/// Starts every watch, waits for their first lists, then reconciles until `shutdown`.
pub async fn run(ctx: Arc<Ctx>, shutdown: CancellationToken) -> anyhow::Result<()> {
    let s = &ctx.settings;
    let (scopes, ignore): (Vec<Option<String>>, Vec<String>) = match &s.scope {
        Scope::All { ignore, .. } => (vec![None], ignore.clone()),
        Scope::Namespaces(list) => (list.iter().cloned().map(Some).collect(), vec![]),
    };
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

    let mut tasks = JoinSet::new();
    let ns_fs: Vec<String> = ignore.iter().map(|n| format!("metadata.namespace!={n}")).collect();
    for scope in &scopes {
        let mk_cfg = |extra: &[String]| {
            let mut fs = ns_fs.clone();
            fs.extend_from_slice(extra);
            watcher::Config {
                label_selector: s.resource_label_selector.clone(),
                field_selector: field_selector(&fs),
                ..Default::default()
            }
        };
        if s.watch_configmaps {
            let api: Api<ConfigMap> = match scope {
                Some(ns) => Api::namespaced(ctx.client.clone(), ns),
                None => Api::all(ctx.client.clone()),
            };
            let synced = Synced::new(ctx.clone());
            tasks.spawn(watch::sources(ctx.clone(), api, mk_cfg(&[]), scope.clone(), synced));
        }
        if s.watch_secrets {
            let api: Api<Secret> = match scope {
                Some(ns) => Api::namespaced(ctx.client.clone(), ns),
                None => Api::all(ctx.client.clone()),
            };
            // Helm keeps every release revision in a Secret; they are large and never mounted.
            let extra =
                if s.watch_helm_release_secrets { vec![] } else { vec!["type!=helm.sh/release.v1".to_string()] };
            let synced = Synced::new(ctx.clone());
            tasks.spawn(watch::sources(ctx.clone(), api, mk_cfg(&extra), scope.clone(), synced));
        }
    }
    spawn_workloads::<Deployment>(&mut tasks, &ctx, &scopes, &ignore);
    spawn_workloads::<StatefulSet>(&mut tasks, &ctx, &scopes, &ignore);
    spawn_workloads::<DaemonSet>(&mut tasks, &ctx, &scopes, &ignore);
    if let Scope::All { selector: Some(sel), .. } = &s.scope {
        let cfg = watcher::Config::default().labels(sel);
        let synced = Synced::new(ctx.clone());
        tasks.spawn(watch::namespaces(ctx.clone(), Api::<Namespace>::all(ctx.client.clone()), cfg, synced));
    }

    // Decisions need the whole picture: a workload evaluated before the sources are listed
    // would see them as missing.
    let mut synced = ctx.synced.subscribe();
    tokio::select! {
        _ = synced.wait_for(|s| *s) => {}
        _ = shutdown.cancelled() => { tasks.abort_all(); return Ok(()); }
    }
    {
        let st = ctx.state.lock().expect("state lock");
        info!(sources = st.source_count(), workloads = st.workload_count(), "initial sync complete");
        for k in st.workload_keys() {
            ctx.queue.add_after(k.clone(), Duration::ZERO);
        }
    }

    let mut workers = JoinSet::new();
    for _ in 0..s.workers {
        let ctx = ctx.clone();
        workers.spawn(async move {
            while let Some(key) = ctx.queue.next().await {
                let result = reconcile::reconcile(&ctx, &key).await;
                let retry = match result {
                    Ok(Outcome::Done) => {
                        ctx.failures.lock().expect("failures lock").remove(&key);
                        None
                    }
                    Ok(Outcome::Stale) => Some(Duration::from_secs(1)),
                    Err(e) => {
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
        });
    }

    shutdown.cancelled().await;
    ctx.queue.close();
    // Let in-flight patches finish, within bounds.
    let _ = tokio::time::timeout(Duration::from_secs(10), async { while workers.join_next().await.is_some() {} }).await;
    tasks.abort_all();
    Ok(())
}
