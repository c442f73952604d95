//! Watches that feed the index. Each is a kube-runtime watcher with backoff; a relist
//! (start-up, or after `410 Gone`) is diffed against the index so that objects deleted while the
//! watch was down are noticed too. Handlers update the index and return what follows (the
//! affected workloads, webhooks, forgotten slots); the driver carries that out.

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

use crate::core::decide::outcome;
use crate::core::decide::{Options, SourceAction, source_action};
use crate::core::gates::breaker::RELEASE_ANNOTATION;
use crate::core::index::Index;
use crate::core::kinds::WorkloadType;
use crate::core::model::csi::{self, SecretProviderClass, SecretProviderClassPodStatus};
use crate::core::model::hash::ContentHash;
use crate::core::model::keys::Keys;
use crate::core::model::source::{
    SourceFlags, SourceInfo, SourceKind, SourceObject, SourceRef, written_by_a_batch_tool,
};
use crate::core::model::workload::{self, WorkloadKey};
use crate::runtime::context::Ctx;
use crate::runtime::readiness::Handle;
use crate::runtime::reporter::metrics::ResourceLabel;

fn in_scope(scope: Option<&str>, namespace: &str) -> bool {
    scope.is_none_or(|s| s == namespace)
}

/// `(namespace, name)` of every object a (re)list returned.
type Listed = HashSet<(String, String)>;

/// Of the `known` objects, those in `scope` that a relist no longer returned.
fn gone(known: Vec<(String, String)>, scope: Option<&str>, listed: &Listed) -> Vec<(String, String)> {
    known.into_iter().filter(|(ns, n)| in_scope(scope, ns) && !listed.contains(&(ns.clone(), n.clone()))).collect()
}

/// What the handlers need to know of the settings and the moment.
pub(crate) struct Intake<'a> {
    pub(crate) keys: &'a Keys,
    pub(crate) auto_reload_all: bool,
    pub(crate) webhook: bool,
    pub(crate) options: Options,
    /// The initial lists are done (a creation seen before that is not news).
    pub(crate) synced: bool,
    /// This watch has not finished its first list: what it returns is where the index starts,
    /// not a change (its content before is unknown, so nothing is noted in the history).
    pub(crate) first_list: bool,
}

/// What a source event was, for `reloader_events_received_total{event_type}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Received {
    Add,
    Update,
    Delete,
}

impl Received {
    fn as_str(self) -> &'static str {
        match self {
            Received::Add => "add",
            Received::Update => "update",
            Received::Delete => "delete",
        }
    }
}

/// What the runtime does once a handler has updated the index.
#[derive(Debug, Default)]
pub(crate) struct Handled {
    /// Look at these workloads now.
    pub(crate) now: Vec<WorkloadKey>,
    /// A source's content changed: these workloads, after the debounce.
    pub(crate) debounced: Vec<WorkloadKey>,
    /// The change was written by a tool that writes many sources in one go (`BATCH_WRITERS`):
    /// the debounce waits longer for the rest.
    pub(crate) batch: bool,
    /// Webhook mode: notify about these sources (namespace, source) instead.
    pub(crate) webhooks: Vec<(String, SourceRef)>,
    /// These workloads are gone: drop their per-workload slots.
    pub(crate) forget: Vec<WorkloadKey>,
    /// Namespaces joining (`true`) or leaving `--namespace-selector`.
    pub(crate) select: Vec<(String, bool)>,
    /// With a relist of namespaces: every namespace that matches now (the others leave).
    pub(crate) selected_only: Option<Listed>,
    /// `reloader_events_received_total{event_type}`, for sources.
    pub(crate) received: Option<Received>,
    /// `reloader_skipped_total{reason}`.
    pub(crate) skipped: Option<&'static str>,
    /// A workload's rollout seen in progress (`true`) or not any more (`false`), for the wave.
    pub(crate) rollouts: Vec<(WorkloadKey, bool)>,
    /// Look at these workloads now, unless they wait already: their rollout moved.
    pub(crate) progressed: Vec<WorkloadKey>,
}

impl Handled {
    /// Adds the workloads and webhooks `other` asks for (a relist's deletions, as one).
    fn absorb(&mut self, other: Handled) {
        self.now.extend(other.now);
        self.debounced.extend(other.debounced);
        self.batch |= other.batch;
        self.webhooks.extend(other.webhooks);
    }
}

/// What one watch does with its objects: it updates the index and says what follows; it never
/// sees the runtime. The driver handles relists, health, readiness and the effects.
trait Handler<K> {
    fn apply(&mut self, idx: &mut Index, intake: &Intake, obj: K) -> Handled;
    fn delete(&mut self, idx: &mut Index, intake: &Intake, obj: K) -> Handled;
    /// A (re)list finished: forget whatever in this watch's scope it did not return.
    fn relisted(&mut self, idx: &mut Index, intake: &Intake, listed: &Listed) -> Handled;
}

/// Runs one watch: kube-runtime's watcher with backoff, its events fed to `handler`. `what`
/// names it in logs and in `/ready`; `resource` labels its metrics.
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
    let stream = watcher::watcher(api, cfg).backoff(WatchBackoff::default());
    futures::pin_mut!(stream);
    let mut listing: Option<Listed> = None;
    let mut listed_once = false;
    while let Some(event) = stream.next().await {
        if event.is_ok() {
            ctx.health.watch_ok(&what);
        }
        let s = &ctx.settings;
        let intake = Intake {
            keys: ctx.store.keys(),
            auto_reload_all: s.auto_reload_all,
            webhook: ctx.reporter.webhook_mode(),
            options: s.options,
            synced: ctx.health.readiness.is_ready(),
            first_list: !listed_once,
        };
        let handled = {
            let mut st = ctx.store.lock();
            match event {
                Ok(Event::Init) => {
                    listing = Some(Listed::new());
                    continue;
                }
                Ok(Event::InitApply(obj)) => {
                    if let Some(l) = listing.as_mut() {
                        l.insert((obj.namespace().unwrap_or_default(), obj.name_any()));
                    }
                    handler.apply(&mut st, &intake, obj)
                }
                Ok(Event::Apply(obj)) => handler.apply(&mut st, &intake, obj),
                Ok(Event::Delete(obj)) => handler.delete(&mut st, &intake, obj),
                Ok(Event::InitDone) => {
                    listed_once = true;
                    let mut h = handler.relisted(&mut st, &intake, &listing.take().unwrap_or_default());
                    if synced.done() {
                        // Every watch of this scope has listed: its workloads can be decided on.
                        h.now.extend(st.workload_keys_in(synced.scope()));
                    }
                    drop(st);
                    info!(watch = %what, "watch synced");
                    h
                }
                Err(e) => {
                    drop(st);
                    warn!(watch = %what, error = %crate::error::watch_message(&e), "watch failed; retrying with backoff");
                    ctx.metrics.watch_restarts.get_or_create(&ResourceLabel { resource }).inc();
                    ctx.health.watch_failed(&what);
                    continue;
                }
            }
        };
        act(&ctx, resource, handled);
    }
}

/// The wait between retries of a failing watch: 250 ms doubling to 2 s, and back to 250 ms
/// after any event that succeeded. kube-runtime's default (0.8 s doubling to 30 s, reset only
/// once 120 s passed without an error) kept a watch that failed during an API-server outage
/// waiting up to 30 s more after the server answered again, so a change made right after it
/// came back was applied a minute late; with a 5 s cap the soak still measured 6 s. A refused
/// connection costs the server nothing, so retrying every 2 s during an outage is cheap.
#[derive(Debug)]
struct WatchBackoff {
    next: Duration,
}

const WATCH_RETRY_MIN: Duration = Duration::from_millis(250);
const WATCH_RETRY_MAX: Duration = Duration::from_secs(2);

impl Default for WatchBackoff {
    fn default() -> Self {
        WatchBackoff { next: WATCH_RETRY_MIN }
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;
    fn next(&mut self) -> Option<Duration> {
        let d = self.next;
        self.next = (d * 2).min(WATCH_RETRY_MAX);
        Some(d)
    }
}

impl kube::runtime::utils::Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.next = WATCH_RETRY_MIN;
    }
}

/// Carries out what a handler asked for.
fn act(ctx: &Ctx, resource: &'static str, h: Handled) {
    if let Some(r) = h.received {
        ctx.metrics.event(r.as_str(), resource);
    }
    if let Some(reason) = h.skipped {
        ctx.metrics.skip(reason);
    }
    for k in &h.forget {
        ctx.scheduler.forget(k);
        ctx.writer.forget(k);
    }
    for (k, in_progress) in &h.rollouts {
        ctx.scheduler.rollout_seen(k, *in_progress, false);
    }
    for k in h.now {
        ctx.scheduler.after(k, Duration::ZERO);
    }
    for k in h.progressed {
        ctx.scheduler.progressed(k);
    }
    for k in h.debounced {
        ctx.scheduler.changed(k, h.batch);
    }
    for (ns, r) in h.webhooks {
        ctx.reporter.webhook(&ns, r.kind, &r.name);
    }
    let mut select = h.select;
    if let Some(listed) = h.selected_only {
        let gone =
            ctx.store.selected_namespaces().into_iter().filter(|ns| !listed.contains(&(String::new(), ns.clone())));
        select.splice(0..0, gone.map(|ns| (ns, false)));
    }
    for (ns, selected) in select {
        for k in ctx.store.select_namespace(&ns, selected) {
            ctx.scheduler.after(k, Duration::ZERO);
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
    fn apply(&mut self, idx: &mut Index, intake: &Intake, obj: K) -> Handled {
        let ns = obj.namespace().unwrap_or_default();
        let r = SourceRef::new(K::KIND, obj.name_any());
        let mut info = SourceInfo::of(&obj, intake.keys.flags(obj.meta().annotations.as_ref()));
        let rv = crate::core::model::parse_rv(obj.meta().resource_version.as_deref());
        let release = obj.meta().annotations.as_ref().and_then(|a| a.get(RELEASE_ANNOTATION)).cloned();
        let batch = written_by_a_batch_tool(obj.meta());
        // The object (and any secret bytes in it) is dropped here; only the hash is kept.
        drop(obj);
        idx.observe_rv(rv);
        let old = idx.sources(&ns).and_then(|s| s.get(&r)).cloned();
        let (before, after) = (old.as_ref().map(|i| i.hash), Some(info.hash));
        let flags_changed = old.as_ref().is_some_and(|o| (o.matched, o.ignored) != (info.matched, info.ignored));
        let hash = info.hash;
        // The content's resourceVersion moves only when the content does.
        info.content_rv = if before == after { old.as_ref().and_then(|o| o.content_rv) } else { rv };
        idx.upsert_source(&ns, K::KIND, &r.name, info);
        let mut h = Handled {
            received: Some(if old.is_some() { Received::Update } else { Received::Add }),
            batch,
            ..Default::default()
        };
        if before == after {
            h.skipped = Some("no_data_change");
        } else {
            // A source listed at start is no change from "absent": what it held before is
            // unknown, and a workload without a record takes it as its baseline. Noting it
            // would also keep a history entry per source for ten minutes (half the heap after
            // the initial sync).
            if old.is_some() || !intake.first_list {
                idx.note_change(&ns, &r, rv, old.clone(), std::time::Instant::now());
            }
            debug!(source = %r, namespace = %ns, hash = %hash.short(), "source changed");
        }
        // A release mark set or changed: reloads the circuit breaker holds may start now.
        let released = idx.set_release(&ns, &r, release.clone()) && release.is_some() && intake.synced;
        let action = source_action(before, after, flags_changed, intake.webhook, intake.options, intake.synced);
        let mut h = effects(idx, &ns, r.clone(), action, h);
        if released {
            h.now.extend(idx.affected(&ns, &r));
        }
        h
    }
    fn delete(&mut self, idx: &mut Index, intake: &Intake, obj: K) -> Handled {
        let rv = crate::core::model::parse_rv(obj.meta().resource_version.as_deref());
        // Whether the deletion counts is read from the deleted object, as Reloader does.
        let flags = intake.keys.flags(obj.meta().annotations.as_ref());
        let (ns, r) = (obj.namespace().unwrap_or_default(), SourceRef::new(K::KIND, obj.name_any()));
        drop(obj);
        let h = Handled { received: Some(Received::Delete), ..Default::default() };
        forget_source(idx, intake, &ns, r, rv, Some(flags), h)
    }
    fn relisted(&mut self, idx: &mut Index, intake: &Intake, listed: &Listed) -> Handled {
        let mut all = Handled::default();
        for (ns, name) in gone(idx.source_names(K::KIND), self.scope.as_deref(), listed) {
            all.absorb(forget_source(idx, intake, &ns, SourceRef::new(K::KIND, name), None, None, Handled::default()));
        }
        all
    }
}

/// A source is gone. `rv`: the resourceVersion of the deletion; `flags`: the deleted object's
/// match/ignore annotations (both `None` when a relist found it gone).
fn forget_source(
    idx: &mut Index,
    intake: &Intake,
    ns: &str,
    r: SourceRef,
    rv: Option<u64>,
    flags: Option<SourceFlags>,
    h: Handled,
) -> Handled {
    idx.observe_rv(rv);
    let Some(old) = idx.delete_source(ns, &r, rv, flags, std::time::Instant::now()) else { return h };
    debug!(source = %r, namespace = %ns, "source deleted");
    let action = source_action(Some(old.hash), None, false, intake.webhook, intake.options, intake.synced);
    effects(idx, ns, r, action, h)
}

/// The workloads a source event concerns, by what it asks for.
fn effects(idx: &Index, ns: &str, r: SourceRef, action: SourceAction, mut h: Handled) -> Handled {
    match action {
        SourceAction::Nothing => {}
        SourceAction::Regovern => h.now = idx.affected(ns, &r),
        SourceAction::Reload => h.debounced = idx.affected(ns, &r),
        SourceAction::Webhook => h.webhooks.push((ns.to_string(), r)),
    }
    h
}

/// Watches SecretProviderClassPodStatuses (Secrets Store CSI) in one scope: what the driver
/// mounted for each pod, folded per SecretProviderClass into one content (see `core::model::csi`).
pub(crate) async fn spc_pod_statuses(
    ctx: Arc<Ctx>,
    api: Api<SecretProviderClassPodStatus>,
    cfg: watcher::Config,
    scope: Option<String>,
    synced: Handle,
) {
    let resource = SourceKind::SecretProviderClass.event_resource();
    let what = format!("{resource} in {}", scope.as_deref().unwrap_or("all namespaces"));
    drive(ctx, api, cfg, what, resource, synced, SpcPodStatuses { scope }).await
}

struct SpcPodStatuses {
    scope: Option<String>,
}

impl SpcPodStatuses {
    fn set(
        idx: &mut Index,
        intake: &Intake,
        ns: &str,
        name: &str,
        mount: Option<(String, ContentHash)>,
        rv: Option<u64>,
    ) -> Handled {
        idx.observe_rv(rv);
        let gone = mount.is_none();
        // Unknown resourceVersions do not happen; such a write would count as the newest.
        let (known, changed, touched) = idx.set_spc_mount(ns, name, mount, rv.unwrap_or(u64::MAX));
        let received = match (known, gone) {
            (_, true) => Received::Delete,
            (true, false) => Received::Update,
            (false, false) => Received::Add,
        };
        let mut h = Handled { received: Some(received), ..Default::default() };
        if !changed {
            h.skipped = Some("no_data_change");
        }
        for spc in touched {
            let e = spc_settled(idx, intake, ns, &spc, rv, Handled::default());
            h.now.extend(e.now);
            h.debounced.extend(e.debounced);
            h.webhooks.extend(e.webhooks);
        }
        h
    }
}

impl Handler<SecretProviderClassPodStatus> for SpcPodStatuses {
    fn apply(&mut self, idx: &mut Index, intake: &Intake, obj: SecretProviderClassPodStatus) -> Handled {
        let (ns, name) = (obj.namespace().unwrap_or_default(), obj.name_any());
        let rv = crate::core::model::parse_rv(obj.meta().resource_version.as_deref());
        let mount = csi::mount_of(&obj);
        drop(obj);
        let mut h = Self::set(idx, intake, &ns, &name, mount.clone(), rv);
        if mount.is_none() {
            // Terminating, or nothing mounted yet: it holds nothing, but it was not deleted.
            h.received = Some(Received::Update);
        }
        h
    }
    fn delete(&mut self, idx: &mut Index, intake: &Intake, obj: SecretProviderClassPodStatus) -> Handled {
        let (ns, name) = (obj.namespace().unwrap_or_default(), obj.name_any());
        let rv = crate::core::model::parse_rv(obj.meta().resource_version.as_deref());
        Self::set(idx, intake, &ns, &name, None, rv)
    }
    fn relisted(&mut self, idx: &mut Index, intake: &Intake, listed: &Listed) -> Handled {
        let mut all = Handled::default();
        for (ns, name) in gone(idx.spcps_names(), self.scope.as_deref(), listed) {
            all.absorb(Self::set(idx, intake, &ns, &name, None, None));
        }
        all
    }
}

/// Watches SecretProviderClasses in one scope, for their `match` and `ignore` annotations: the
/// decisions read them from the index, as those of ConfigMaps and Secrets, rather than with a
/// GET per decision (no API call during a rotation across many pods, and a change of them is
/// acted on at once).
pub(crate) async fn spcs(
    ctx: Arc<Ctx>,
    api: Api<SecretProviderClass>,
    cfg: watcher::Config,
    scope: Option<String>,
    synced: Handle,
) {
    let what = format!("secretproviderclasses in {}", scope.as_deref().unwrap_or("all namespaces"));
    drive(ctx, api, cfg, what, "secretproviderclasses", synced, Spcs { scope }).await
}

struct Spcs {
    scope: Option<String>,
}

impl Handler<SecretProviderClass> for Spcs {
    fn apply(&mut self, idx: &mut Index, intake: &Intake, obj: SecretProviderClass) -> Handled {
        let (ns, name) = (obj.namespace().unwrap_or_default(), obj.name_any());
        idx.set_spc_flags(&ns, &name, Some(intake.keys.flags(obj.meta().annotations.as_ref())));
        spc_settled(idx, intake, &ns, &name, None, Handled::default())
    }
    fn delete(&mut self, idx: &mut Index, intake: &Intake, obj: SecretProviderClass) -> Handled {
        let (ns, name) = (obj.namespace().unwrap_or_default(), obj.name_any());
        idx.set_spc_flags(&ns, &name, None);
        spc_settled(idx, intake, &ns, &name, None, Handled::default())
    }
    fn relisted(&mut self, idx: &mut Index, intake: &Intake, listed: &Listed) -> Handled {
        let mut all = Handled::default();
        for (ns, name) in gone(idx.spc_names(), self.scope.as_deref(), listed) {
            idx.set_spc_flags(&ns, &name, None);
            all.absorb(spc_settled(idx, intake, &ns, &name, None, Handled::default()));
        }
        all
    }
}

/// Brings the index's entry of a SecretProviderClass in line with its mounts and flags, and
/// says what follows: its content changed (at resourceVersion `rv`), or only its flags.
fn spc_settled(idx: &mut Index, intake: &Intake, ns: &str, spc: &str, rv: Option<u64>, h: Handled) -> Handled {
    let r = SourceRef::new(SourceKind::SecretProviderClass, spc);
    let old = idx.sources(ns).and_then(|s| s.get(&r)).cloned();
    let new = idx.spc_info(ns, spc);
    if old == new {
        return h;
    }
    let (before, after) = (old.as_ref().map(|i| i.hash), new.as_ref().map(|i| i.hash));
    let flags_changed = matches!((&old, &new), (Some(o), Some(n)) if (o.matched, o.ignored) != (n.matched, n.ignored));
    match new {
        Some(info) => {
            idx.upsert_source(ns, r.kind, spc, info);
        }
        None => {
            idx.remove_source(ns, r.kind, spc);
        }
    }
    if before != after {
        idx.note_change(ns, &r, rv, old, std::time::Instant::now());
        debug!(source = %r, namespace = %ns, hash = ?after, "mounted content changed");
    }
    // Neither the first mount nor the last unmount is a creation or deletion (see `decide::plan`).
    let action = source_action(before, after, flags_changed, intake.webhook, Options::default(), intake.synced);
    effects(idx, ns, r, action, h)
}

/// Watches one workload kind in one scope.
pub(crate) async fn workloads<K: WorkloadType>(
    ctx: Arc<Ctx>,
    api: Api<K>,
    cfg: watcher::Config,
    scope: Option<String>,
    synced: Handle,
) {
    let what = format!("{} in {}", K::INFO.plural, scope.as_deref().unwrap_or("all namespaces"));
    drive(ctx, api, cfg, what, K::INFO.plural, synced, Workloads { scope }).await
}

struct Workloads {
    scope: Option<String>,
}

impl<K: WorkloadType> Handler<K> for Workloads {
    fn apply(&mut self, idx: &mut Index, intake: &Intake, obj: K) -> Handled {
        let mut w = workload::project_object(&obj, intake.keys, intake.auto_reload_all);
        let key = w.key.clone();
        idx.observe_rv(w.anchor);
        let old = idx.workload(&key);
        // A success is not written on the workload: what this process knows of it is carried.
        if let Some(t) = &w.tracked
            && let Some(known) = outcome::carried(t, old.map(|o| o.tracked.as_ref()), &w.progress)
        {
            w.tracked = Some(known);
        }
        let changed = old.is_none_or(|old| old.fingerprint != w.fingerprint);
        // A rollout a reload started moved: its outcome may be known now.
        let progressed = !changed && w.pending_rollout().is_some() && old.is_some_and(|o| o.progress != w.progress);
        let rolling = w.pending_rollout().is_some();
        let rollouts = if old.is_none_or(|o| o.pending_rollout().is_some() != rolling || o.tracked != w.tracked) {
            vec![(key.clone(), rolling)]
        } else {
            vec![]
        };
        idx.upsert_workload(w);
        // Other status-only updates (the rollout itself) change nothing we decide on.
        Handled {
            now: if changed { vec![key.clone()] } else { vec![] },
            progressed: if progressed { vec![key] } else { vec![] },
            rollouts,
            ..Default::default()
        }
    }
    fn delete(&mut self, idx: &mut Index, _: &Intake, obj: K) -> Handled {
        let key =
            WorkloadKey { kind: K::WORKLOAD, namespace: obj.namespace().unwrap_or_default(), name: obj.name_any() };
        idx.remove_workload(&key);
        Handled { forget: vec![key], ..Default::default() }
    }
    fn relisted(&mut self, idx: &mut Index, _: &Intake, listed: &Listed) -> Handled {
        let gone: Vec<WorkloadKey> = idx
            .workload_keys_of(K::WORKLOAD)
            .into_iter()
            .filter(|k| {
                in_scope(self.scope.as_deref(), &k.namespace)
                    && !listed.contains(&(k.namespace.clone(), k.name.clone()))
            })
            .collect();
        for k in &gone {
            idx.remove_workload(k);
        }
        Handled { forget: gone, ..Default::default() }
    }
}

/// Follows the namespaces that match `--namespace-selector`; a namespace joining it has its
/// workloads reconciled at once.
pub(crate) async fn namespaces(ctx: Arc<Ctx>, api: Api<Namespace>, cfg: watcher::Config, synced: Handle) {
    drive(ctx, api, cfg, "namespaces".into(), "namespaces", synced, Namespaces).await
}

struct Namespaces;

impl Handler<Namespace> for Namespaces {
    fn apply(&mut self, _: &mut Index, _: &Intake, ns: Namespace) -> Handled {
        Handled { select: vec![(ns.name_any(), true)], ..Default::default() }
    }
    fn delete(&mut self, _: &mut Index, _: &Intake, ns: Namespace) -> Handled {
        // The API server sends a deletion when a namespace stops matching the selector, too.
        Handled { select: vec![(ns.name_any(), false)], ..Default::default() }
    }
    fn relisted(&mut self, _: &mut Index, _: &Intake, listed: &Listed) -> Handled {
        Handled { selected_only: Some(listed.clone()), ..Default::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::utils::Backoff;

    #[test]
    fn watch_retries_back_off_to_two_seconds_and_start_over_after_a_success() {
        let mut b = WatchBackoff::default();
        let waits: Vec<u64> = (0..6).map(|_| b.next().unwrap().as_millis() as u64).collect();
        assert_eq!(waits, [250, 500, 1000, 2000, 2000, 2000]);
        b.reset();
        assert_eq!(b.next(), Some(Duration::from_millis(250)));
    }

    /// The pod-status watch at the index level: which events send the workload that mounts the
    /// class to the queue. A rotation seen pod by pod sends it once; the new pods, old pods
    /// going, a label change and the class's own annotations do not send it for a rollout.
    #[test]
    fn pod_statuses_queue_the_workload_once_per_rotation() {
        use crate::core::kinds::WorkloadKind;
        use crate::core::model::workload::project;
        use serde_json::json;
        let keys = Keys { csi: true, ..Keys::default() };
        let intake = Intake {
            keys: &keys,
            auto_reload_all: false,
            webhook: false,
            options: Options::default(),
            synced: true,
            first_list: false,
        };
        let mut st = Index::default();
        let meta = serde_json::from_value(json!({"name": "web", "namespace": "ns", "resourceVersion": "1",
            "annotations": {"reloader.stakater.com/auto": "true"}}))
        .unwrap();
        let t = serde_json::from_value(json!({"spec": {"containers": [{"name": "app",
            "volumeMounts": [{"name": "s", "mountPath": "/s"}]}],
            "volumes": [{"name": "s", "csi": {"driver": "secrets-store.csi.k8s.io",
                "volumeAttributes": {"secretProviderClass": "vault"}}}]}}))
        .unwrap();
        st.upsert_workload(project(WorkloadKind::Deployment, &meta, Some(&t), &keys, false));
        let status = |name: &str, rv: u64, version: &str, labels: serde_json::Value| -> SecretProviderClassPodStatus {
            serde_json::from_value(
                json!({"metadata": {"name": name, "namespace": "ns", "resourceVersion": rv.to_string(),
                "labels": labels},
                "status": {"secretProviderClassName": "vault", "objects": [{"id": "secret/db", "version": version}]}}),
            )
            .unwrap()
        };
        let mut h = SpcPodStatuses { scope: None };
        // (what happens, whether the workload is queued after the debounce)
        let mut rows: Vec<(&str, Handled)> = Vec::new();
        for (i, p) in ["p1", "p2", "p3"].iter().enumerate() {
            rows.push(("a pod mounts it", h.apply(&mut st, &intake, status(p, 10 + i as u64, "1", json!({})))));
        }
        rows.push(("p1 rotated", h.apply(&mut st, &intake, status("p1", 20, "2", json!({})))));
        rows.push(("p2 rotated", h.apply(&mut st, &intake, status("p2", 21, "2", json!({})))));
        rows.push(("p3 relabelled", h.apply(&mut st, &intake, status("p3", 22, "1", json!({"x": "y"})))));
        rows.push(("p3 rotated", h.apply(&mut st, &intake, status("p3", 23, "2", json!({})))));
        rows.push(("a new pod with the rotated version", h.apply(&mut st, &intake, status("n1", 30, "2", json!({})))));
        rows.push(("p1 deleted", h.delete(&mut st, &intake, status("p1", 31, "2", json!({})))));
        let mut spcs = Spcs { scope: None };
        let class: SecretProviderClass =
            serde_json::from_value(json!({"metadata": {"name": "vault", "namespace": "ns",
            "annotations": {"reloader.stakater.com/ignore": "true"}}}))
            .unwrap();
        rows.push(("the class gets ignore", spcs.apply(&mut st, &intake, class)));
        let queued: Vec<(&str, usize, usize)> =
            rows.iter().map(|(n, h)| (*n, h.debounced.len(), h.now.len())).collect();
        assert_eq!(
            queued,
            [
                ("a pod mounts it", 1, 0),
                ("a pod mounts it", 0, 0),
                ("a pod mounts it", 0, 0),
                ("p1 rotated", 1, 0),
                ("p2 rotated", 0, 0),
                ("p3 relabelled", 0, 0),
                ("p3 rotated", 0, 0),
                ("a new pod with the rotated version", 0, 0),
                ("p1 deleted", 0, 0),
                ("the class gets ignore", 0, 1),
            ],
            "(event, queued after the debounce, queued now)"
        );
        let received: Vec<Option<&str>> = rows.iter().map(|(_, h)| h.received.map(Received::as_str)).collect();
        assert_eq!(&received[..4], [Some("add"), Some("add"), Some("add"), Some("update")]);
        assert_eq!(rows[5].1.skipped, Some("no_data_change"), "a label change is no data change");
        let r = SourceRef::new(SourceKind::SecretProviderClass, "vault");
        assert!(st.sources("ns").unwrap().get(&r).unwrap().ignored);
    }

    /// A source's place in the wave's line is the resourceVersion of its last content change:
    /// label-only edits keep it, a data change moves it, a deletion forgets it.
    #[test]
    fn a_source_keeps_the_resource_version_of_its_content_through_label_edits() {
        use k8s_openapi::api::core::v1::ConfigMap;
        use serde_json::json;
        let keys = Keys::default();
        let mut intake = Intake {
            keys: &keys,
            auto_reload_all: false,
            webhook: false,
            options: Options::default(),
            synced: false,
            first_list: true,
        };
        let mut st = Index::default();
        let mut h = Sources { scope: None };
        let cm = |rv: u64, value: &str, labels: serde_json::Value| -> ConfigMap {
            serde_json::from_value(json!({"metadata": {"name": "app", "namespace": "ns",
                "resourceVersion": rv.to_string(), "labels": labels}, "data": {"k": value}}))
            .unwrap()
        };
        let r = SourceRef::new(SourceKind::ConfigMap, "app");
        let mut seen = Vec::new();
        h.apply(&mut st, &intake, cm(5, "a", json!({})));
        seen.push(st.content_rv("ns", &r));
        (intake.synced, intake.first_list) = (true, false);
        h.apply(&mut st, &intake, cm(9, "a", json!({"team": "x"})));
        seen.push(st.content_rv("ns", &r));
        h.apply(&mut st, &intake, cm(12, "b", json!({"team": "x"})));
        seen.push(st.content_rv("ns", &r));
        h.delete(&mut st, &intake, cm(14, "b", json!({"team": "x"})));
        seen.push(st.content_rv("ns", &r));
        assert_eq!(seen, [Some(5), Some(5), Some(12), None]);
    }
}
