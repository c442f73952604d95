//! Watches that feed the in-memory state. Each is a kube-runtime watcher with backoff; a
//! relist (start-up, or after `410 Gone`) is diffed against the state so that objects deleted
//! while the watch was down are noticed too.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Resource, ResourceExt};
use tracing::{debug, info, warn};

use crate::core::record::Applied;
use crate::core::source::{SourceInfo, SourceKind, SourceObject, SourceRef};
use crate::core::workload::{self, WorkloadKey, WorkloadObject};
use crate::runtime::context::Ctx;
use crate::runtime::readiness::Handle;

fn in_scope(scope: Option<&str>, namespace: &str) -> bool {
    scope.is_none_or(|s| s == namespace)
}

/// `(namespace, name)` of every object a (re)list returned.
type Listed = HashSet<(String, String)>;

/// What one watch does with its objects. The driver handles relists, health and readiness.
trait Handler<K> {
    fn apply(&mut self, ctx: &Ctx, obj: K);
    fn delete(&mut self, ctx: &Ctx, obj: K);
    /// A (re)list finished: forget whatever in this watch's scope it did not return.
    fn relisted(&mut self, ctx: &Ctx, listed: &Listed);
}

/// Runs one watch: kube-runtime's watcher with backoff, its events fed to `handler`. `what`
/// names it in logs and in `/ready`; `resource` labels its restart metric.
async fn drive<K, H>(
    ctx: Arc<Ctx>,
    api: Api<K>,
    cfg: watcher::Config,
    what: String,
    resource: &'static str,
    mut synced: Handle,
    mut handler: H,
) where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    H: Handler<K>,
{
    let stream = watcher::watcher(api, cfg).default_backoff();
    futures::pin_mut!(stream);
    let mut listing: Option<Listed> = None;
    while let Some(event) = stream.next().await {
        if event.is_ok() {
            ctx.watch_ok(&what);
        }
        match event {
            Ok(Event::Init) => listing = Some(Listed::new()),
            Ok(Event::InitApply(obj)) => {
                if let Some(l) = listing.as_mut() {
                    l.insert((obj.namespace().unwrap_or_default(), obj.name_any()));
                }
                handler.apply(&ctx, obj);
            }
            Ok(Event::Apply(obj)) => handler.apply(&ctx, obj),
            Ok(Event::Delete(obj)) => handler.delete(&ctx, obj),
            Ok(Event::InitDone) => {
                handler.relisted(&ctx, &listing.take().unwrap_or_default());
                info!(watch = %what, "watch synced");
                synced.done();
            }
            Err(e) => {
                warn!(watch = %what, error = %e, "watch failed; retrying with backoff");
                ctx.watch_failed(&what, resource);
            }
        }
    }
}

/// Watches ConfigMaps or Secrets in one scope (`None`: all namespaces).
pub(crate) async fn sources<K: SourceObject>(
    ctx: Arc<Ctx>,
    api: Api<K>,
    cfg: watcher::Config,
    scope: Option<String>,
    synced: Handle,
) {
    let what = format!("{} in {}", K::KIND.resource(), scope.as_deref().unwrap_or("all namespaces"));
    drive(ctx, api, cfg, what, K::KIND.resource(), synced, Sources { scope }).await
}

struct Sources {
    scope: Option<String>,
}

impl<K: SourceObject> Handler<K> for Sources {
    fn apply(&mut self, ctx: &Ctx, obj: K) {
        apply_source(ctx, obj);
    }
    fn delete(&mut self, ctx: &Ctx, obj: K) {
        ctx.metrics.event("delete", K::KIND.resource());
        let rv = crate::core::history::parse_rv(obj.meta().resource_version.as_deref());
        delete_source(ctx, K::KIND, &obj.namespace().unwrap_or_default(), &obj.name_any(), rv);
    }
    fn relisted(&mut self, ctx: &Ctx, listed: &Listed) {
        let gone: Vec<(String, String)> = {
            let st = ctx.state.lock().expect("state lock");
            st.source_names(K::KIND)
                .into_iter()
                .filter(|(ns, n)| in_scope(self.scope.as_deref(), ns) && !listed.contains(&(ns.clone(), n.clone())))
                .collect()
        };
        for (ns, name) in gone {
            delete_source(ctx, K::KIND, &ns, &name, None);
        }
    }
}

fn apply_source<K: SourceObject>(ctx: &Ctx, obj: K) {
    let kind = K::KIND;
    let ns = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let info = SourceInfo::of(&obj, &ctx.settings.keys);
    let rv = crate::core::history::parse_rv(obj.meta().resource_version.as_deref());
    // The object (and any secret bytes in it) is dropped here; only the hash is kept.
    drop(obj);
    let hash = info.hash;
    let (existed, affected) = {
        let mut st = ctx.state.lock().expect("state lock");
        st.observe_rv(rv);
        let r = SourceRef::new(kind, name.as_str());
        let old = st.sources(&ns).and_then(|s| s.get(&r)).map(|i| i.hash);
        ctx.metrics.event(if old.is_some() { "update" } else { "add" }, kind.resource());
        let changed = st.upsert_source(&ns, kind, &name, info);
        if old == Some(hash) {
            // Metadata only (labels, annotations): nothing a pod sees.
            ctx.metrics.skip("no_data_change");
        } else {
            st.note_change(&ns, &r, rv, old.map_or(Applied::Absent, Applied::Hash), std::time::Instant::now());
        }
        if !changed {
            return;
        }
        (old, st.affected(&ns, &r))
    };
    if existed == Some(hash) {
        // Its match/ignore annotations changed: which workloads it governs may have, so they
        // record it now (no rollout), and its next content change is compared with the record.
        for w in affected {
            ctx.enqueue(w, std::time::Duration::ZERO);
        }
        return;
    }
    debug!(resource = kind.resource(), namespace = %ns, name = %name, hash = %hash.short(), workloads = affected.len(), "source changed");
    if ctx.notifier.webhook_mode() {
        // Reloader's webhook mode: every data change of a watched source (a creation only with
        // --reload-on-create), no workload matching.
        if existed.is_some() || (ctx.settings.options.reload_on_create && ctx.readiness.is_ready()) {
            notify_webhook(ctx, &name, kind, &ns);
        }
        return;
    }
    for w in affected {
        ctx.enqueue_debounced(w);
    }
}

fn notify_webhook(ctx: &Ctx, name: &str, kind: SourceKind, ns: &str) {
    let notifier = ctx.notifier.clone();
    let counter = ctx.metrics.webhooks.clone();
    let (name, ns) = (name.to_string(), ns.to_string());
    tokio::spawn(async move {
        if let Some(r) = notifier.webhook(&name, kind.type_name(), &ns).await {
            let result = if r.is_ok() { "success" } else { "error" };
            counter.get_or_create(&crate::runtime::metrics::ResultLabel { result }).inc();
        }
    });
}

/// `rv`: the resourceVersion of the deletion (`None` when a relist found it gone).
fn delete_source(ctx: &Ctx, kind: SourceKind, ns: &str, name: &str, rv: Option<u64>) {
    let affected = {
        let mut st = ctx.state.lock().expect("state lock");
        st.observe_rv(rv);
        let Some(old) = st.remove_source(ns, kind, name) else { return };
        let r = SourceRef::new(kind, name);
        st.note_change(ns, &r, rv, Applied::Hash(old.hash), std::time::Instant::now());
        st.affected(ns, &r)
    };
    debug!(resource = kind.resource(), namespace = %ns, name = %name, workloads = affected.len(), "source deleted");
    if ctx.notifier.webhook_mode() {
        if ctx.settings.options.reload_on_delete {
            notify_webhook(ctx, name, kind, ns);
        }
        return;
    }
    for w in affected {
        ctx.enqueue_debounced(w);
    }
}

/// Watches one workload kind in one scope.
pub(crate) async fn workloads<K: WorkloadObject>(
    ctx: Arc<Ctx>,
    api: Api<K>,
    cfg: watcher::Config,
    scope: Option<String>,
    synced: Handle,
) {
    let what = format!("{} in {}", K::RESOURCE, scope.as_deref().unwrap_or("all namespaces"));
    drive(ctx, api, cfg, what, K::RESOURCE, synced, Workloads { scope }).await
}

struct Workloads {
    scope: Option<String>,
}

impl<K: WorkloadObject> Handler<K> for Workloads {
    fn apply(&mut self, ctx: &Ctx, obj: K) {
        apply_workload(ctx, &obj);
    }
    fn delete(&mut self, ctx: &Ctx, obj: K) {
        let key = WorkloadKey { kind: K::KIND, namespace: obj.namespace().unwrap_or_default(), name: obj.name_any() };
        ctx.state.lock().expect("state lock").remove_workload(&key);
        ctx.forget(&key);
    }
    fn relisted(&mut self, ctx: &Ctx, listed: &Listed) {
        let gone: Vec<WorkloadKey> = {
            let mut st = ctx.state.lock().expect("state lock");
            let gone: Vec<WorkloadKey> = st
                .workload_keys_of(K::KIND)
                .into_iter()
                .filter(|k| {
                    in_scope(self.scope.as_deref(), &k.namespace)
                        && !listed.contains(&(k.namespace.clone(), k.name.clone()))
                })
                .collect();
            for k in &gone {
                st.remove_workload(k);
            }
            gone
        };
        for k in &gone {
            ctx.forget(k);
        }
    }
}

fn apply_workload<K: WorkloadObject>(ctx: &Ctx, obj: &K) {
    let w = workload::project_object(obj, &ctx.settings.keys, ctx.settings.auto_reload_all);
    let key = w.key.clone();
    let changed = {
        let mut st = ctx.state.lock().expect("state lock");
        st.observe_rv(w.anchor);
        let changed = st.workload(&key).is_none_or(|old| old.fingerprint != w.fingerprint);
        st.upsert_workload(w);
        changed
    };
    // Status-only updates (the rollout itself) change nothing we decide on.
    if changed {
        ctx.enqueue(key, Duration::ZERO);
    }
}

/// Follows the namespaces that match `--namespace-selector`; a namespace joining it has its
/// workloads reconciled at once.
pub(crate) async fn namespaces(ctx: Arc<Ctx>, api: Api<Namespace>, cfg: watcher::Config, synced: Handle) {
    drive(ctx, api, cfg, "namespaces".into(), "namespaces", synced, Namespaces).await
}

struct Namespaces;

impl Handler<Namespace> for Namespaces {
    fn apply(&mut self, ctx: &Ctx, ns: Namespace) {
        ctx.select_namespace(&ns.name_any(), true);
    }
    fn delete(&mut self, ctx: &Ctx, ns: Namespace) {
        // The API server sends a deletion when a namespace stops matching the selector, too.
        ctx.select_namespace(&ns.name_any(), false);
    }
    fn relisted(&mut self, ctx: &Ctx, listed: &Listed) {
        for ns in ctx.selected_namespaces() {
            if !listed.contains(&(String::new(), ns.clone())) {
                ctx.select_namespace(&ns, false);
            }
        }
    }
}
