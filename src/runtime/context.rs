//! The context shared by watches, workers and the HTTP server: the client and the settings, and
//! the services that do the work, each owning its own state:
//! - `store`: the index the watches fill, and the namespaces selected;
//! - `scheduler`: the queue and when each workload is looked at (debounce, retries, the storm
//!   brake, adoption pacing, the wave);
//! - `writer`: every write to a workload (the lease's write gate, dry-run), through the
//!   `throttle` that adapts the writes in flight to the API server's answers;
//! - `reporter`: log lines, Events, metrics and alerts;
//! - `health`: readiness of the watches, failing watches, shutdown.

use std::sync::Arc;

use kube::Client;
use tracing::warn;

use crate::config::{Scope, Settings};
use crate::runtime::readiness::Health;
use crate::runtime::reporter::Reporter;
use crate::runtime::reporter::alerts::Notifier;
use crate::runtime::reporter::events::Events;
use crate::runtime::reporter::metrics::Metrics;
use crate::runtime::scheduler::Scheduler;
use crate::runtime::store::Store;
use crate::runtime::throttle::Throttle;
use crate::runtime::writer::Writer;

/// Shared by watches, workers and the HTTP server.
pub struct Ctx {
    pub client: Client,
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
    pub(crate) health: Health,
    pub(crate) store: Store,
    pub(crate) scheduler: Scheduler,
    pub(crate) writer: Writer,
    pub(crate) reporter: Reporter,
}

impl Ctx {
    pub fn new(client: Client, settings: Settings) -> Arc<Ctx> {
        let s = &settings;
        let metrics = Arc::new(Metrics::new(s.count_by_namespace));
        let notifier = Notifier::new(s.alert.clone(), s.webhook_url.clone()).unwrap_or_else(|e| {
            warn!("alerts disabled: {e}");
            Notifier::new(None, s.webhook_url.clone()).expect("plain client")
        });
        let events = Events::new(client.clone(), "kube-reloader", s.ha.as_ref().map(|h| h.identity.as_str()));
        let alert_info = s.alert.as_ref().and_then(|a| a.additional_info.clone());
        let selector = matches!(&s.scope, Scope::All { selector: Some(_), .. });
        let throttle = Arc::new(Throttle::new(s.workers, metrics.clone()));
        Arc::new(Ctx {
            health: Health::new(),
            store: Store::new(s.keys.clone(), selector),
            scheduler: Scheduler::new(
                s.limits,
                s.debounce_quiet,
                s.debounce,
                s.adoption_writes_per_second,
                metrics.clone(),
            ),
            writer: Writer::new(client.clone(), s.ha.is_some(), s.dry_run, metrics.clone(), throttle.clone()),
            reporter: Reporter::new(events, notifier, metrics.clone(), throttle, alert_info),
            metrics,
            client,
            settings,
        })
    }

    /// Turns true once every watch has finished its first list.
    pub fn subscribe_ready(&self) -> tokio::sync::watch::Receiver<bool> {
        self.health.readiness.subscribe()
    }

    /// Whether the index holds a source: `kind` is `configmap` or `secret` (as in the record).
    pub fn tracks_source(&self, namespace: &str, kind: &str, name: &str) -> bool {
        self.store.tracks_source(namespace, kind, name)
    }

    /// Workloads held in the index.
    pub fn tracked_workloads(&self) -> usize {
        self.store.lock().workload_count()
    }

    /// Workloads with per-workload state held (something pending, or a recent reload).
    pub fn slot_count(&self) -> usize {
        self.scheduler.slot_count()
    }

    pub fn namespace_selected(&self, ns: &str) -> bool {
        self.store.namespace_selected(ns)
    }

    /// Whether this replica may write now.
    pub fn is_leader(&self) -> bool {
        self.writer.is_leader()
    }

    /// Why `/ready` is false, or `None` when ready.
    pub fn not_ready_reason(&self) -> Option<String> {
        let not_ready = self.health.not_ready();
        if not_ready.is_some() {
            return not_ready;
        }
        // No replica may be able to write: say so rather than look healthy.
        let (g, ha) = (self.writer.leadership().gate.as_ref()?, self.settings.ha.as_ref()?);
        g.failing_for(ha.lease_duration)
    }

    /// Updates the gauges that are read off the state (at scrape time).
    pub fn refresh_gauges(&self) {
        let (s, w) = {
            let index = self.store.lock();
            (index.source_count(), index.workload_count())
        };
        let m = &self.metrics;
        m.tracked_sources.set(s as i64);
        m.tracked_workloads.set(w as i64);
        m.queue_depth.set(self.scheduler.queue_len() as i64);
        m.leader.set(i64::from(self.is_leader()));
        if let Some(b) = crate::runtime::memory::heap_in_use() {
            m.heap_bytes.set(b as i64);
        }
        m.held_workloads.set(self.scheduler.held() as i64);
        m.deferred_workloads.set(self.scheduler.deferred() as i64);
        m.adoptions_waiting.set(self.scheduler.adoptions_waiting() as i64);
        m.ready.set(i64::from(self.not_ready_reason().is_none()));
        if let Some(u) = crate::runtime::memory::usage() {
            m.resident_memory.set(i64::try_from(u.resident_bytes).unwrap_or(i64::MAX));
            // A counter only grows: add what was used since the last scrape.
            let more = u.cpu_seconds - m.cpu_seconds.get();
            if more > 0.0 {
                m.cpu_seconds.inc_by(more);
            }
        }
    }

    /// Looks at every workload now (this replica may write again).
    pub(crate) fn look_at_all(&self) {
        let keys = self.store.lock().workload_keys_in(None);
        for k in keys {
            self.scheduler.after(k, std::time::Duration::ZERO);
        }
    }
}
