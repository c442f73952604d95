//! Prometheus metrics, OpenMetrics text. Reloader's names and labels are kept so existing
//! dashboards and alerts keep working; our own are listed after them. No label carries an
//! object name; the per-namespace counter is opt-in, as in Reloader.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

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

/// The metrics table: each line a field of [`Metrics`], how it is made, and the name and help it
/// is exported with, registered in this order. Adding a metric is adding a line. Two are not in
/// it because they are exported only sometimes: the per-namespace reload counter and the heap.
macro_rules! metrics {
    ($($(#[$doc:meta])* $field:ident: $ty:ty = $make:expr => $name:literal, $help:literal;)*) => {
        /// Every metric the controller exports.
        pub struct Metrics {
            pub registry: Registry,
            /// Opt-in (`METRICS_COUNT_BY_NAMESPACE=enabled`); exported as a gauge because its
            /// name, kept from Reloader, does not end in `_total`.
            pub reload_executed_by_namespace: Option<Family<SuccessNamespace, Gauge>>,
            /// Exported when the allocator can count it (glibc).
            pub heap_bytes: Gauge,
            $($(#[$doc])* pub $field: $ty,)*
        }

        impl Metrics {
            /// The table's metrics, made and registered in `r`.
            fn table(mut r: Registry) -> Metrics {
                $(
                    let $field: $ty = $make;
                    r.register($name, $help, $field.clone());
                )*
                Metrics { registry: r, reload_executed_by_namespace: None, heap_bytes: Gauge::default(), $($field,)* }
            }
        }
    };
}

metrics! {
    // Reloader's, with its names and labels.
    reload_executed: Family<Success, Counter> = Family::default()
        => "reloader_reload_executed", "Counter of reloads executed by Reloader.";
    reconcile: Family<ResultLabel, Counter> = Family::default()
        => "reloader_reconcile", "Total number of reconcile/handler invocations by result.";
    reconcile_duration: HistogramFamily<ResultLabel> = HistogramFamily::new_with_constructor(reconcile_histogram)
        => "reloader_reconcile_duration_seconds", "Time spent in reconcile/handler in seconds.";
    action: Family<KindResult, Counter> = Family::default()
        => "reloader_action", "Total number of reload actions by workload kind and result.";
    action_latency: HistogramFamily<WorkloadKindLabel> = HistogramFamily::new_with_constructor(action_histogram)
        => "reloader_action_latency_seconds", "Time from event received to action applied in seconds.";
    skipped: Family<Reason, Counter> = Family::default()
        => "reloader_skipped", "Total number of skipped operations by reason.";
    queue_depth: Gauge = Gauge::default()
        => "reloader_workqueue_depth", "Current depth of the work queue.";
    queue_adds: Counter = Counter::default()
        => "reloader_workqueue_adds", "Total number of items added to the work queue.";
    queue_latency: Histogram = queue_histogram()
        => "reloader_workqueue_latency_seconds", "Time spent in the work queue in seconds.";
    errors: Family<TypeLabel, Counter> = Family::default()
        => "reloader_errors", "Total number of errors by type.";
    retries: Counter = Counter::default()
        => "reloader_retries", "Total number of retry attempts.";
    events_received: Family<EventLabels, Counter> = Family::default()
        => "reloader_events_received", "Total number of events received by type and resource.";
    workloads_matched: Family<KindLabel, Counter> = Family::default()
        => "reloader_workloads_matched", "Total number of workloads matched for reload by kind.";
    // Ours.
    change_to_patch: HistogramFamily<WorkloadKindLabel> = HistogramFamily::new_with_constructor(action_histogram)
        => "reloader_change_to_patch_seconds",
        "Time from a source change being observed to the workload being patched, debounce included.";
    watch_restarts: Family<ResourceLabel, Counter> = Family::default()
        => "reloader_watch_restarts", "Watch failures followed by a backoff and a new watch.";
    tracked_sources: Gauge = Gauge::default()
        => "reloader_tracked_sources", "ConfigMaps and Secrets whose hashes are held in memory.";
    tracked_workloads: Gauge = Gauge::default()
        => "reloader_tracked_workloads", "Workloads held in the in-memory index.";
    held_workloads: Gauge = Gauge::default()
        => "reloader_held_workloads", "Workloads held back by the storm brake.";
    deferred_workloads: Gauge = Gauge::default()
        => "reloader_deferred_workloads", "Workloads whose reload waits for the storm brake's spacing.";
    leader: Gauge = Gauge::default()
        => "reloader_leader", "1 while this replica may write (leader, or HA off).";
    ready: Gauge = Gauge::default()
        => "reloader_ready",
        "1 while /ready answers 200: every watch has listed and works, and leader election is not failing.";
    // Go's process collector's names, which Reloader exports: dashboards built on them keep working.
    resident_memory: Gauge = Gauge::default()
        => "process_resident_memory_bytes", "Resident memory size in bytes.";
    cpu_seconds: Counter<f64, AtomicU64> = Counter::default()
        => "process_cpu_seconds", "Total user and system CPU time spent in seconds.";
    alerts: Family<SinkResult, Counter> = Family::default()
        => "reloader_alerts", "Reload alerts sent, by sink and result.";
    webhooks: Family<ResultLabel, Counter> = Family::default()
        => "reloader_webhooks", "--webhook-url notifications sent, by result.";
    dry_run: Family<ActionLabel, Counter> = Family::default()
        => "reloader_dry_run", "Writes --dry-run did not make, by action (reload, record, resume).";
    write_limit: Gauge = Gauge::default()
        => "reloader_write_limit",
        "Writes allowed in flight now: grows while the API server keeps pace, shrinks when it slows or answers 429 (at most --workers).";
    write_slowdowns: Family<Reason, Counter> = Family::default()
        => "reloader_write_slowdowns",
        "Times the writes in flight were cut, by reason: slow (answers slowed down) or throttled (a 429 reached the controller).";
    write_conflicts: Family<WorkloadKindLabel, Counter> = Family::default()
        => "reloader_write_conflicts",
        "Writes refused with 409 Conflict (the workload changed since it was read); each is retried.";
    adoption_writes: Counter = Counter::default()
        => "reloader_adoption_writes", "Workloads adopted: their first record written, without a rollout.";
    adoptions_waiting: Gauge = Gauge::default()
        => "reloader_adoptions_waiting", "Adoption writes waiting for their turn (--adoption-writes-per-second).";
    failures: Family<Reason, Counter> = Family::default()
        => "reloader_failures",
        "Failed reconciles by what went wrong (forbidden, invalid, conflict, not_found, server_error, transport, ...).";
    rollouts: Family<KindOutcome, Counter> = Family::default()
        => "reloader_rollouts", "Rollouts started by reloads, by how they ended (succeeded, failed, superseded).";
    reload_to_available: HistogramFamily<WorkloadKindLabel> = HistogramFamily::new_with_constructor(rollout_histogram)
        => "reloader_reload_to_available_seconds", "Time from a reload's write to its rollout being complete and available.";
    rollouts_in_progress: Gauge = Gauge::default()
        => "reloader_rollouts_in_progress",
        "Rollouts started by reloads and not ended yet (counted with --max-concurrent-rollouts).";
    rollouts_waiting: Gauge = Gauge::default()
        => "reloader_rollouts_waiting", "Reloads waiting for a place under --max-concurrent-rollouts.";
    changes_halted: Counter = Counter::default()
        => "reloader_changes_halted",
        "Source changes whose rollouts the circuit breaker stopped (--halt-on-failed-rollouts).";
    rollouts_halted: Counter = Counter::default()
        => "reloader_rollouts_halted", "Reloads held by the circuit breaker, once per workload and change.";
}

impl Metrics {
    pub fn new(count_by_namespace: bool) -> Metrics {
        let mut m = Metrics::table(Registry::default());
        // Both series exist from the start, as in Reloader.
        for s in ["true", "false"] {
            let _ = m.reload_executed.get_or_create(&Success { success: s });
        }
        if count_by_namespace {
            let f = Family::<SuccessNamespace, Gauge>::default();
            m.registry.register(
                "reloader_reload_executed_total_by_namespace",
                "Counter of reloads executed by Reloader by namespace.",
                f.clone(),
            );
            m.reload_executed_by_namespace = Some(f);
        }
        if crate::runtime::memory::heap_in_use().is_some() {
            m.registry.register(
                "reloader_heap_bytes",
                "Heap bytes allocated and not freed, as the allocator counts them (RSS also counts what it keeps after frees).",
                m.heap_bytes.clone(),
            );
        }
        m
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String");
        out
    }

    /// Series at zero for the label values known at start: a counter's first increment then
    /// shows in `increase()` (a series that appears at 1 is no increase, so an alert on the
    /// first failed rollout would miss it), and the alerts and the dashboard see every series.
    pub fn zero_series(&self, kinds: &[&'static str], resources: &[&'static str]) {
        for reason in ["forbidden", "not_found", "conflict", "invalid", "throttled", "server_error", "transport"] {
            let _ = self.failures.get_or_create(&Reason { reason });
        }
        for t in ["handler_error", "event_publish"] {
            let _ = self.errors.get_or_create(&TypeLabel { r#type: t });
        }
        for reason in ["slow", "throttled"] {
            let _ = self.write_slowdowns.get_or_create(&Reason { reason });
        }
        for &workload_kind in kinds {
            for outcome in ["succeeded", "failed", "superseded"] {
                let _ = self.rollouts.get_or_create(&KindOutcome { workload_kind, outcome });
            }
            for result in ["success", "error"] {
                let _ = self.action.get_or_create(&KindResult { workload_kind, result });
            }
            let _ = self.write_conflicts.get_or_create(&WorkloadKindLabel { workload_kind });
        }
        for &resource in resources {
            let _ = self.watch_restarts.get_or_create(&ResourceLabel { resource });
        }
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
    fn the_series_alerts_use_start_at_zero() {
        let m = Metrics::new(false);
        m.zero_series(&["Deployment"], &["configmaps"]);
        let text = m.encode();
        for want in [
            "reloader_rollouts_total{workload_kind=\"Deployment\",outcome=\"failed\"} 0",
            "reloader_failures_total{reason=\"forbidden\"} 0",
            "reloader_watch_restarts_total{resource=\"configmaps\"} 0",
            "reloader_action_total{workload_kind=\"Deployment\",result=\"error\"} 0",
            "reloader_write_slowdowns_total{reason=\"throttled\"} 0",
            "reloader_errors_total{type=\"event_publish\"} 0",
            "reloader_write_conflicts_total{workload_kind=\"Deployment\"} 0",
        ] {
            assert!(text.contains(want), "{want} in\n{text}");
        }
    }

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
