//! The context shared by watches, workers and the HTTP server: the client and settings, the
//! index, the queue, metrics and Events, readiness, the write gate, the pace of adoption writes,
//! and the per-workload slots (retry counts, pending-change times, storm brakes, adoption turns,
//! dry-run records), which are dropped when a workload is deleted.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::Client;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::config::{Scope, Settings};
use crate::core::gates::brake::Verdict;
use crate::core::gates::waves::{Admit, Wave};
use crate::core::index::State;
use crate::core::model::record::Record;
use crate::core::model::workload::{Workload, WorkloadKey};
use crate::runtime::leader::Leadership;
use crate::runtime::readiness::Health;
use crate::runtime::reporter::alerts::Notifier;
use crate::runtime::reporter::events::Events;
use crate::runtime::reporter::metrics::Metrics;
use crate::runtime::scheduler::pacer::Pacer;
use crate::runtime::scheduler::queue::WorkQueue;
use crate::runtime::scheduler::slots::Slots;

/// Shared by watches, workers and the HTTP server.
pub struct Ctx {
    pub client: Client,
    pub settings: Settings,
    pub(crate) state: Mutex<State>,
    pub(crate) queue: WorkQueue<WorkloadKey>,
    pub metrics: Metrics,
    pub(crate) events: Events,
    pub(crate) notifier: Notifier,
    /// Readiness of the watches, failing watches, shutdown.
    pub(crate) health: Health,
    /// Who may write (the lease and its write gate, with HA).
    pub(crate) leadership: Leadership,
    /// With `--namespace-selector`: the namespaces that currently match.
    selected: Mutex<Option<HashSet<String>>>,
    /// Per-workload state that lives only in memory, dropped with the workload.
    slots: Slots,
    /// `--adoption-writes-per-second`.
    adoption_pacer: Pacer,
    /// The annotation keys the watches use, when they differ from the settings': without the
    /// CSI driver's CRDs, `--enable-csi-integration` changes nothing at all (set once, at start).
    keys_in_effect: std::sync::OnceLock<crate::core::model::policy::Keys>,
    /// `--max-concurrent-rollouts`: the rollouts in progress and the reloads waiting.
    wave: Mutex<Wave>,
    /// Holds of the circuit breaker already reported.
    halts: Mutex<crate::core::gates::breaker::Reported>,
}

impl Ctx {
    /// The annotation keys in effect (see `keys_in_effect`).
    pub(crate) fn keys(&self) -> &crate::core::model::policy::Keys {
        self.keys_in_effect.get().unwrap_or(&self.settings.keys)
    }

    /// The CSI driver's CRDs are not installed: SecretProviderClasses are no sources.
    pub(crate) fn without_csi(&self) {
        let keys = crate::core::model::policy::Keys { csi: false, ..self.settings.keys.clone() };
        let _ = self.keys_in_effect.set(keys);
    }

    pub fn new(client: Client, settings: Settings) -> Arc<Ctx> {
        let selected = match &settings.scope {
            Scope::All { selector: Some(_), .. } => Some(HashSet::new()),
            _ => None,
        };
        let notifier = Notifier::new(settings.alert.clone(), settings.webhook_url.clone()).unwrap_or_else(|e| {
            warn!("alerts disabled: {e}");
            Notifier::new(None, settings.webhook_url.clone()).expect("plain client")
        });
        Arc::new(Ctx {
            events: Events::new(client.clone(), "kube-reloader", settings.ha.as_ref().map(|h| h.identity.as_str())),
            client,
            metrics: Metrics::new(settings.count_by_namespace),
            notifier,
            state: Mutex::new(State::default()),
            queue: WorkQueue::new(),
            health: Health::new(),
            leadership: Leadership::new(settings.ha.is_some()),
            selected: Mutex::new(selected),
            slots: Slots::default(),
            adoption_pacer: Pacer::new(settings.adoption_writes_per_second),
            keys_in_effect: std::sync::OnceLock::new(),
            wave: Mutex::new(Wave::default()),
            halts: Mutex::new(Default::default()),
            settings,
        })
    }

    /// Schedules a workload after a source change: it waits `--debounce-quiet` for more
    /// changes, each restarting the wait, up to `--debounce` after the first, so a burst folds
    /// into one reconcile.
    pub(crate) fn enqueue_debounced(&self, key: WorkloadKey) {
        let now = Instant::now();
        self.slots.changed(&key, now);
        self.metrics.queue_adds.inc();
        self.queue.add_debounced(key, self.settings.debounce_quiet, self.settings.debounce);
    }

    pub(crate) fn enqueue(&self, key: WorkloadKey, delay: Duration) {
        self.metrics.queue_adds.inc();
        self.queue.add_after(key, delay);
    }

    /// Asks for a place in the wave for a reload of `key` (`--max-concurrent-rollouts`), whose
    /// place in line is `place` (`waves::place`).
    pub(crate) fn wave_admit(&self, key: &WorkloadKey, place: u64) -> Admit {
        let mut wave = self.wave.lock().expect("wave lock");
        let a = wave.admit(self.settings.max_concurrent_rollouts, key, place);
        self.wave_gauges(&wave);
        a
    }

    /// Sets `key` aside without a place (the breaker pauses its change), keeping `place`.
    pub(crate) fn wave_wait(&self, key: &WorkloadKey, place: u64) {
        let mut wave = self.wave.lock().expect("wave lock");
        wave.wait(key, place);
        self.wave_gauges(&wave);
    }

    /// Whether `what` (the source, a workload, the release) of the hold of the change `cause`
    /// of a source of `ns` is reported for the first time by this process.
    pub(crate) fn first_halt(&self, ns: &str, cause: &str, what: &str) -> bool {
        self.halts.lock().expect("halts lock").first(ns, cause, what)
    }

    /// What the watch saw of a workload's rollout (in progress or not), or that it is gone
    /// (`gone`: it also leaves the waiting line). Frees places: the oldest waiting go next.
    pub(crate) fn wave_seen(&self, key: &WorkloadKey, in_progress: bool, gone: bool) {
        if self.settings.max_concurrent_rollouts.is_none() {
            return;
        }
        let mut wave = self.wave.lock().expect("wave lock");
        wave.seen(key, in_progress);
        if gone {
            wave.leave(key);
        }
        self.wave_next(&wave);
    }

    /// A reload admitted wrote no rollout after all, or `key` needs no reload any more.
    pub(crate) fn wave_release(&self, key: &WorkloadKey, leave: bool) {
        if self.settings.max_concurrent_rollouts.is_none() {
            return;
        }
        let mut wave = self.wave.lock().expect("wave lock");
        let changed = if leave { wave.leave(key) } else { wave.release(key) };
        if changed {
            self.wave_next(&wave);
        }
    }

    fn wave_next(&self, wave: &Wave) {
        for k in wave.next(self.settings.max_concurrent_rollouts) {
            self.enqueue(k, Duration::ZERO);
        }
        self.wave_gauges(wave);
    }

    fn wave_gauges(&self, wave: &Wave) {
        self.metrics.rollouts_in_progress.set(wave.taken() as i64);
        self.metrics.rollouts_waiting.set(wave.waiting_count() as i64);
    }

    /// A reconcile of `key` finished: its retry counts start over.
    pub(crate) fn settled(&self, key: &WorkloadKey) {
        self.slots.settled(key);
    }

    /// A write of `key` met a 409: how long until it is looked at again.
    pub(crate) fn conflicted(&self, key: &WorkloadKey) -> Duration {
        self.slots.conflicted(key)
    }

    /// A reconcile of `key` failed: how long until it is retried.
    pub(crate) fn failed(&self, key: &WorkloadKey) -> Duration {
        self.slots.failed(key, Instant::now())
    }

    pub(crate) fn begin_shutdown(&self) {
        self.health.begin_shutdown();
    }

    /// Turns true once every watch has finished its first list.
    pub fn subscribe_ready(&self) -> tokio::sync::watch::Receiver<bool> {
        self.health.readiness.subscribe()
    }

    /// Whether the index holds a source: `kind` is `configmap` or `secret` (as in the record).
    pub fn tracks_source(&self, namespace: &str, kind: &str, name: &str) -> bool {
        let Some(r) = crate::core::model::source::SourceRef::parse(&format!("{kind}/{name}")) else { return false };
        let st = self.state.lock().expect("state lock");
        st.sources(namespace).is_some_and(|s| s.get(&r).is_some())
    }

    /// Workloads held in the index.
    pub fn tracked_workloads(&self) -> usize {
        self.state.lock().expect("state lock").workload_count()
    }

    /// Drops every per-workload slot of a workload that is gone, so that churn leaves nothing
    /// behind (the index itself is pruned by the watch).
    pub(crate) fn forget(&self, key: &WorkloadKey) {
        self.slots.forget(key);
    }

    /// Workloads with per-workload state held (something pending, or a recent reload).
    pub fn slot_count(&self) -> usize {
        self.slots.len()
    }

    /// The time since the oldest pending source change of `key`, consumed.
    pub(crate) fn take_change_age(&self, key: &WorkloadKey) -> Option<Duration> {
        self.slots.take_change_age(key)
    }

    pub(crate) fn watch_failed(&self, what: &str, resource: &'static str) {
        self.metrics.watch_restarts.get_or_create(&crate::runtime::reporter::metrics::ResourceLabel { resource }).inc();
        self.health.watch_failed(what);
    }

    pub(crate) fn watch_ok(&self, what: &str) {
        self.health.watch_ok(what);
    }

    /// Why `/ready` is false, or `None` when ready.
    pub fn not_ready_reason(&self) -> Option<String> {
        let not_ready = self.health.not_ready();
        if not_ready.is_some() {
            return not_ready;
        }
        // No replica may be able to write: say so rather than look healthy.
        let (g, ha) = (self.leadership.gate.as_ref()?, self.settings.ha.as_ref()?);
        g.failing_for(ha.lease_duration)
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
        if let Some(b) = crate::runtime::memory::heap_in_use() {
            self.metrics.heap_bytes.set(b as i64);
        }
        let held = self.slots.held();
        self.metrics.held_workloads.set(held as i64);
        self.metrics.adoptions_waiting.set(self.slots.adoptions_waiting() as i64);
    }

    /// Whether this replica may write now: checked at each write, against the renew deadline.
    pub fn is_leader(&self) -> bool {
        self.leadership.may_write()
    }

    /// The write gate: not in dry-run (counted and logged instead), and only while leading.
    pub(crate) fn may_write(&self, action: &'static str, w: &Workload) -> bool {
        if self.settings.dry_run {
            self.metrics.dry_run.get_or_create(&crate::runtime::reporter::metrics::ActionLabel { action }).inc();
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
    pub(crate) fn with_dry_run_record(&self, w: &Workload) -> Workload {
        let mut w = w.clone();
        if self.settings.dry_run
            && let Some(r) = self.slots.dry_record(&w.key)
        {
            w.record = Ok(Some(r.clone()));
            w.record_foreign = None;
        }
        w
    }

    pub(crate) fn set_dry_run_record(&self, key: &WorkloadKey, record: &Record) {
        if self.settings.dry_run {
            self.slots.set_dry_record(key, record);
        }
    }

    /// Whether the adoption write of `key` may go now (`None`), or how long until its turn.
    pub(crate) fn adoption_turn(&self, key: &WorkloadKey) -> Option<Duration> {
        self.slots.adoption_turn(key, &self.adoption_pacer, Instant::now())
    }

    pub(crate) fn drop_adoption_turn(&self, key: &WorkloadKey) {
        self.slots.drop_adoption_turn(key);
    }

    pub(crate) fn brake_check(&self, key: &WorkloadKey) -> Verdict {
        self.slots.brake_check(key, &self.settings.brake, Instant::now())
    }

    pub(crate) fn brake_reloaded(&self, key: &WorkloadKey) {
        self.slots.brake_reloaded(key, Instant::now());
    }

    pub fn namespace_selected(&self, ns: &str) -> bool {
        self.selected.lock().expect("ns lock").as_ref().is_none_or(|s| s.contains(ns))
    }

    pub(crate) fn selected_namespaces(&self) -> Vec<String> {
        self.selected.lock().expect("ns lock").iter().flatten().cloned().collect()
    }

    /// A namespace joins or leaves the selector; joining reconciles its workloads.
    pub(crate) fn select_namespace(&self, ns: &str, selected: bool) {
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
            let keys = self.state.lock().expect("state lock").rebase(ns);
            for k in keys {
                self.enqueue(k, Duration::ZERO);
            }
        }
    }

    pub(crate) fn enqueue_all(&self) {
        let keys: Vec<WorkloadKey> = self.state.lock().expect("state lock").workload_keys().cloned().collect();
        for k in keys {
            self.enqueue(k, Duration::ZERO);
        }
    }
}
