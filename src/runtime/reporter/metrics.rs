//! Prometheus metrics, OpenMetrics text. Reloader's names and labels are kept so existing
//! dashboards and alerts keep working; our own are listed after them. No label carries an
//! object name; the per-namespace counter is opt-in, as in Reloader.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Success {
    pub success: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SuccessNamespace {
    pub success: &'static str,
    pub namespace: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindResult {
    pub workload_kind: &'static str,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkloadKindLabel {
    pub workload_kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeLabel {
    pub r#type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    pub event_type: &'static str,
    pub resource_type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResourceLabel {
    pub resource: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabel {
    pub action: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SinkResult {
    pub sink: &'static str,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindOutcome {
    pub workload_kind: &'static str,
    pub outcome: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn seconds(buckets: &'static [f64]) -> impl Fn() -> Histogram {
    move || Histogram::new(buckets.iter().copied())
}

const ACTION_BUCKETS: [f64; 11] = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
const RECONCILE_BUCKETS: [f64; 12] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Reload to available: seconds to an hour (a Deployment's default progress deadline is 10 min).
const ROLLOUT_BUCKETS: [f64; 12] = [1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 3600.0];
const QUEUE_BUCKETS: [f64; 11] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

fn action_histogram() -> Histogram {
    seconds(&ACTION_BUCKETS)()
}
fn reconcile_histogram() -> Histogram {
    seconds(&RECONCILE_BUCKETS)()
}
fn rollout_histogram() -> Histogram {
    seconds(&ROLLOUT_BUCKETS)()
}
fn queue_histogram() -> Histogram {
    seconds(&QUEUE_BUCKETS)()
}

/// Every metric the controller exports.
pub struct Metrics {
    pub registry: Registry,
    pub reload_executed: Family<Success, Counter>,
    /// Opt-in (`METRICS_COUNT_BY_NAMESPACE=enabled`); exported as a gauge because its name,
    /// kept from Reloader, does not end in `_total`.
    pub reload_executed_by_namespace: Option<Family<SuccessNamespace, Gauge>>,
    pub reconcile: Family<ResultLabel, Counter>,
    pub reconcile_duration: HistogramFamily<ResultLabel>,
    pub action: Family<KindResult, Counter>,
    pub action_latency: HistogramFamily<WorkloadKindLabel>,
    pub skipped: Family<Reason, Counter>,
    pub queue_depth: Gauge,
    pub queue_adds: Counter,
    pub queue_latency: Histogram,
    pub errors: Family<TypeLabel, Counter>,
    pub retries: Counter,
    pub events_received: Family<EventLabels, Counter>,
    pub workloads_matched: Family<KindLabel, Counter>,
    // Ours.
    pub change_to_patch: HistogramFamily<WorkloadKindLabel>,
    pub watch_restarts: Family<ResourceLabel, Counter>,
    pub tracked_sources: Gauge,
    pub tracked_workloads: Gauge,
    pub held_workloads: Gauge,
    pub leader: Gauge,
    pub alerts: Family<SinkResult, Counter>,
    pub webhooks: Family<ResultLabel, Counter>,
    pub dry_run: Family<ActionLabel, Counter>,
    pub write_conflicts: Family<WorkloadKindLabel, Counter>,
    pub adoption_writes: Counter,
    pub adoptions_waiting: Gauge,
    pub failures: Family<Reason, Counter>,
    pub heap_bytes: Gauge,
    pub rollouts: Family<KindOutcome, Counter>,
    pub reload_to_available: HistogramFamily<WorkloadKindLabel>,
    pub rollouts_in_progress: Gauge,
    pub rollouts_waiting: Gauge,
    pub changes_halted: Counter,
    pub rollouts_halted: Counter,
}

impl Metrics {
    pub fn new(count_by_namespace: bool) -> Metrics {
        let mut r = Registry::default();
        let reload_executed = Family::<Success, Counter>::default();
        for s in ["true", "false"] {
            let _ = reload_executed.get_or_create(&Success { success: s });
        }
        r.register("reloader_reload_executed", "Counter of reloads executed by Reloader.", reload_executed.clone());
        let reload_executed_by_namespace = count_by_namespace.then(|| {
            let f = Family::<SuccessNamespace, Gauge>::default();
            r.register(
                "reloader_reload_executed_total_by_namespace",
                "Counter of reloads executed by Reloader by namespace.",
                f.clone(),
            );
            f
        });
        let reconcile = Family::<ResultLabel, Counter>::default();
        r.register("reloader_reconcile", "Total number of reconcile/handler invocations by result.", reconcile.clone());
        let reconcile_duration = HistogramFamily::<ResultLabel>::new_with_constructor(reconcile_histogram);
        r.register(
            "reloader_reconcile_duration_seconds",
            "Time spent in reconcile/handler in seconds.",
            reconcile_duration.clone(),
        );
        let action = Family::<KindResult, Counter>::default();
        r.register("reloader_action", "Total number of reload actions by workload kind and result.", action.clone());
        let action_latency = HistogramFamily::<WorkloadKindLabel>::new_with_constructor(action_histogram);
        r.register(
            "reloader_action_latency_seconds",
            "Time from event received to action applied in seconds.",
            action_latency.clone(),
        );
        let skipped = Family::<Reason, Counter>::default();
        r.register("reloader_skipped", "Total number of skipped operations by reason.", skipped.clone());
        let queue_depth = Gauge::default();
        r.register("reloader_workqueue_depth", "Current depth of the work queue.", queue_depth.clone());
        let queue_adds = Counter::default();
        r.register("reloader_workqueue_adds", "Total number of items added to the work queue.", queue_adds.clone());
        let queue_latency = queue_histogram();
        r.register(
            "reloader_workqueue_latency_seconds",
            "Time spent in the work queue in seconds.",
            queue_latency.clone(),
        );
        let errors = Family::<TypeLabel, Counter>::default();
        r.register("reloader_errors", "Total number of errors by type.", errors.clone());
        let retries = Counter::default();
        r.register("reloader_retries", "Total number of retry attempts.", retries.clone());
        let events_received = Family::<EventLabels, Counter>::default();
        r.register(
            "reloader_events_received",
            "Total number of events received by type and resource.",
            events_received.clone(),
        );
        let workloads_matched = Family::<KindLabel, Counter>::default();
        r.register(
            "reloader_workloads_matched",
            "Total number of workloads matched for reload by kind.",
            workloads_matched.clone(),
        );

        let change_to_patch = HistogramFamily::<WorkloadKindLabel>::new_with_constructor(action_histogram);
        r.register(
            "reloader_change_to_patch_seconds",
            "Time from a source change being observed to the workload being patched, debounce included.",
            change_to_patch.clone(),
        );
        let watch_restarts = Family::<ResourceLabel, Counter>::default();
        r.register(
            "reloader_watch_restarts",
            "Watch failures followed by a backoff and a new watch.",
            watch_restarts.clone(),
        );
        let tracked_sources = Gauge::default();
        r.register(
            "reloader_tracked_sources",
            "ConfigMaps and Secrets whose hashes are held in memory.",
            tracked_sources.clone(),
        );
        let tracked_workloads = Gauge::default();
        r.register("reloader_tracked_workloads", "Workloads held in the in-memory index.", tracked_workloads.clone());
        let held_workloads = Gauge::default();
        r.register("reloader_held_workloads", "Workloads held back by the storm brake.", held_workloads.clone());
        let leader = Gauge::default();
        r.register("reloader_leader", "1 while this replica may write (leader, or HA off).", leader.clone());
        let alerts = Family::<SinkResult, Counter>::default();
        r.register("reloader_alerts", "Reload alerts sent, by sink and result.", alerts.clone());
        let webhooks = Family::<ResultLabel, Counter>::default();
        r.register("reloader_webhooks", "--webhook-url notifications sent, by result.", webhooks.clone());

        let dry_run = Family::<ActionLabel, Counter>::default();
        r.register(
            "reloader_dry_run",
            "Writes --dry-run did not make, by action (reload, record, resume).",
            dry_run.clone(),
        );

        let write_conflicts = Family::<WorkloadKindLabel, Counter>::default();
        r.register(
            "reloader_write_conflicts",
            "Writes refused with 409 Conflict (the workload changed since it was read); each is retried.",
            write_conflicts.clone(),
        );

        let adoption_writes = Counter::default();
        r.register(
            "reloader_adoption_writes",
            "Workloads adopted: their first record written, without a rollout.",
            adoption_writes.clone(),
        );
        let adoptions_waiting = Gauge::default();
        r.register(
            "reloader_adoptions_waiting",
            "Adoption writes waiting for their turn (--adoption-writes-per-second).",
            adoptions_waiting.clone(),
        );

        let failures = Family::<Reason, Counter>::default();
        r.register(
            "reloader_failures",
            "Failed reconciles by what went wrong (forbidden, invalid, conflict, not_found, server_error, transport, ...).",
            failures.clone(),
        );

        let rollouts = Family::<KindOutcome, Counter>::default();
        r.register(
            "reloader_rollouts",
            "Rollouts started by reloads, by how they ended (succeeded, failed, superseded).",
            rollouts.clone(),
        );
        let reload_to_available = HistogramFamily::<WorkloadKindLabel>::new_with_constructor(rollout_histogram);
        r.register(
            "reloader_reload_to_available_seconds",
            "Time from a reload's write to its rollout being complete and available.",
            reload_to_available.clone(),
        );

        let rollouts_in_progress = Gauge::default();
        r.register(
            "reloader_rollouts_in_progress",
            "Rollouts started by reloads and not ended yet (counted with --max-concurrent-rollouts).",
            rollouts_in_progress.clone(),
        );
        let rollouts_waiting = Gauge::default();
        r.register(
            "reloader_rollouts_waiting",
            "Reloads waiting for a place under --max-concurrent-rollouts.",
            rollouts_waiting.clone(),
        );

        let changes_halted = Counter::default();
        r.register(
            "reloader_changes_halted",
            "Source changes whose rollouts the circuit breaker stopped (--halt-on-failed-rollouts).",
            changes_halted.clone(),
        );
        let rollouts_halted = Counter::default();
        r.register(
            "reloader_rollouts_halted",
            "Reloads held by the circuit breaker, once per workload and change.",
            rollouts_halted.clone(),
        );

        let heap_bytes = Gauge::default();
        if crate::runtime::memory::heap_in_use().is_some() {
            r.register(
                "reloader_heap_bytes",
                "Heap bytes allocated and not freed, as the allocator counts them (RSS also counts what it keeps after frees).",
                heap_bytes.clone(),
            );
        }

        Metrics {
            rollouts,
            reload_to_available,
            rollouts_in_progress,
            rollouts_waiting,
            changes_halted,
            rollouts_halted,
            heap_bytes,
            failures,
            dry_run,
            write_conflicts,
            adoption_writes,
            adoptions_waiting,
            registry: r,
            reload_executed,
            reload_executed_by_namespace,
            reconcile,
            reconcile_duration,
            action,
            action_latency,
            skipped,
            queue_depth,
            queue_adds,
            queue_latency,
            errors,
            retries,
            events_received,
            workloads_matched,
            change_to_patch,
            watch_restarts,
            tracked_sources,
            tracked_workloads,
            held_workloads,
            leader,
            alerts,
            webhooks,
        }
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String");
        out
    }

    /// A failed reconcile, by `Error::metric_label`.
    pub fn failure(&self, reason: &'static str) {
        self.failures.get_or_create(&Reason { reason }).inc();
    }

    pub fn error(&self, t: &'static str) {
        self.errors.get_or_create(&TypeLabel { r#type: t }).inc();
    }

    pub fn skip(&self, reason: &'static str) {
        self.skipped.get_or_create(&Reason { reason }).inc();
    }

    pub fn event(&self, event_type: &'static str, resource_type: &'static str) {
        self.events_received.get_or_create(&EventLabels { event_type, resource_type }).inc();
    }

    /// A tracked rollout ended; `seconds` from the reload to available, for successes.
    pub fn rollout(&self, kind: &'static str, outcome: &'static str, seconds: Option<f64>) {
        self.rollouts.get_or_create(&KindOutcome { workload_kind: kind, outcome }).inc();
        if let Some(s) = seconds {
            self.reload_to_available.get_or_create(&WorkloadKindLabel { workload_kind: kind }).observe(s);
        }
    }

    /// A workload write for a reload: Reloader's counters.
    pub fn reload(&self, kind: &'static str, namespace: &str, ok: bool, seconds: f64) {
        let success = if ok { "true" } else { "false" };
        self.reload_executed.get_or_create(&Success { success }).inc();
        if let Some(f) = &self.reload_executed_by_namespace {
            f.get_or_create(&SuccessNamespace { success, namespace: namespace.to_string() }).inc();
        }
        let result = if ok { "success" } else { "error" };
        self.action.get_or_create(&KindResult { workload_kind: kind, result }).inc();
        if ok {
            self.action_latency.get_or_create(&WorkloadKindLabel { workload_kind: kind }).observe(seconds);
            self.workloads_matched.get_or_create(&KindLabel { kind }).inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reloader_names_are_exported() {
        let m = Metrics::new(true);
        m.reload("Deployment", "ns", true, 0.2);
        m.skip("no_data_change");
        m.event("update", "configmaps");
        m.error("handler_error");
        m.reconcile.get_or_create(&ResultLabel { result: "success" }).inc();
        m.rollout("Deployment", "succeeded", Some(12.0));
        m.rollout("Deployment", "failed", None);
        let text = m.encode();
        for want in [
            "reloader_reload_executed_total{success=\"true\"} 1",
            "reloader_reload_executed_total{success=\"false\"} 0",
            "reloader_reload_executed_total_by_namespace{success=\"true\",namespace=\"ns\"} 1",
            "reloader_action_total{workload_kind=\"Deployment\",result=\"success\"} 1",
            "reloader_action_latency_seconds_bucket{le=\"0.25\",workload_kind=\"Deployment\"} 1",
            "reloader_skipped_total{reason=\"no_data_change\"} 1",
            "reloader_events_received_total{event_type=\"update\",resource_type=\"configmaps\"} 1",
            "reloader_errors_total{type=\"handler_error\"} 1",
            "reloader_reconcile_total{result=\"success\"} 1",
            "reloader_workloads_matched_total{kind=\"Deployment\"} 1",
            "reloader_workqueue_depth 0",
            "reloader_rollouts_total{workload_kind=\"Deployment\",outcome=\"succeeded\"} 1",
            "reloader_rollouts_total{workload_kind=\"Deployment\",outcome=\"failed\"} 1",
            "reloader_reload_to_available_seconds_bucket{le=\"20.0\",workload_kind=\"Deployment\"} 1",
            "reloader_reload_to_available_seconds_count{workload_kind=\"Deployment\"} 1",
            "# EOF",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
    }
}
