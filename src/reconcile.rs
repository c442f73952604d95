//! Applies plans: the only place that writes to workloads, and where reloads are reported
//! (log line, Event on the workload, metrics, alert).

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use serde_json::Value;
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::controller::Ctx;
use crate::decide::{self, Change, ChangeKind, Plan};
use crate::metrics::ResultLabel;
use crate::patch;
pub use crate::record::FIELD_MANAGER;
use crate::workload::{Workload, WorkloadKey, WorkloadKind};

/// Errors of applying a plan.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("patching {key} failed: {source}")]
    Patch {
        key: WorkloadKey,
        #[source]
        source: kube::Error,
    },
}

/// What happened, for the worker's retry policy.
pub enum Outcome {
    Done,
    /// Our view was stale (409); the watch delivers the newer object, check again soon.
    Stale,
}

fn source_ref(namespace: &str, c: &Change) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some(c.source.kind.kind_name().into()),
        name: Some(c.source.name.clone()),
        namespace: Some(namespace.to_string()),
        ..Default::default()
    }
}

/// Publishes an Event off the reload path; the recorder aggregates repeats into a series.
fn publish(ctx: &Arc<Ctx>, w: &Workload, ev: Event) {
    let ctx = ctx.clone();
    let reference = w.object_ref();
    tokio::spawn(async move {
        if let Err(e) = ctx.recorder.publish(&ev, &reference).await {
            debug!(error = %e, reason = %ev.reason, "could not publish an Event");
            ctx.metrics.error("event_publish");
        }
    });
}

fn note(s: String) -> Option<String> {
    // The API caps notes at 1 KiB.
    Some(if s.len() > 1000 { format!("{}…", &s[..s.floor_char_boundary(1000)]) } else { s })
}

/// Reconciles one workload: compares what governs it now with what it recorded, and writes
/// the difference.
pub async fn reconcile(ctx: &Arc<Ctx>, key: &WorkloadKey) -> Result<Outcome, ReconcileError> {
    let started = Instant::now();
    let span = info_span!("reconcile", workload = %key);
    let result = reconcile_inner(ctx, key, started).instrument(span).await;
    let label = match &result {
        Ok(Some(true)) => "success",
        Ok(_) => "skipped",
        Err(_) => "error",
    };
    ctx.metrics.reconcile.get_or_create(&ResultLabel { result: label }).inc();
    ctx.metrics
        .reconcile_duration
        .get_or_create(&ResultLabel { result: label })
        .observe(started.elapsed().as_secs_f64());
    result.map(|r| if r.is_none() { Outcome::Stale } else { Outcome::Done })
}

/// `Some(true)` wrote, `Some(false)` nothing to do, `None` stale view.
async fn reconcile_inner(ctx: &Arc<Ctx>, key: &WorkloadKey, started: Instant) -> Result<Option<bool>, ReconcileError> {
    let (w, plan) = {
        let st = ctx.state.lock().expect("state lock");
        let Some(w) = st.workload(key) else { return Ok(Some(false)) };
        if !ctx.namespace_selected(&key.namespace) {
            ctx.metrics.skip("ignored_or_not_selected");
            return Ok(Some(false));
        }
        let considered = decide::consider(w, st.sources(&key.namespace));
        let desired = decide::desired(&considered);
        (w.clone(), decide::plan(w, &desired, ctx.settings.options))
    };
    for e in &w.policy.errors {
        // Reported on every evaluation that sees it, like Reloader; the rest of the policy applies.
        error!(
            "Skipping invalid reload annotation on {} '{}' in namespace '{}': {e}",
            key.kind, key.name, key.namespace
        );
        publish(
            ctx,
            &w,
            Event {
                type_: EventType::Warning,
                reason: "InvalidAnnotation".into(),
                note: note(format!("{e}; the workload's other rules still apply")),
                action: "Evaluate".into(),
                secondary: None,
            },
        );
    }
    if let Err(e) = &w.record {
        warn!(error = %e, "unreadable {} annotation; adopting the current state", crate::record::RECORD_ANNOTATION);
    }
    if let Some(by) = &w.record_foreign {
        info!(writer = %by, "the applied record was written by someone else (e.g. a rollout undo); adopting the current state");
    }

    let (body, changes) = match &plan {
        Plan::Nothing => return Ok(Some(false)),
        Plan::Adopt(record) => {
            debug!(sources = record.len(), "adopting the current state as the baseline");
            (patch::record_patch(&w, record), None)
        }
        Plan::Record(record) => {
            debug!(sources = record.len(), "recording the governing sources");
            (patch::record_patch(&w, record), None)
        }
        Plan::Reload { changes, record } => {
            let now =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
            match patch::template_patch(&w, changes, ctx.settings.strategy, now) {
                Some(t) => (patch::reload_patch(&w, t, record), Some(changes)),
                None => {
                    warn!("no container to reload; recording the change only");
                    ctx.metrics.skip("strategy_not_updated");
                    (patch::record_patch(&w, record), None)
                }
            }
        }
    };

    // The write gate: only the leader (or the only replica) writes.
    if !ctx.is_leader() {
        debug!("not the leader; not writing");
        return Ok(Some(false));
    }
    match apply(ctx, key, body).await {
        Ok(()) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {
            debug!("the workload changed since we looked; looking again");
            return Ok(None);
        }
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(Some(false)),
        Err(source) => {
            if let Some(changes) = changes {
                ctx.metrics.reload(key.kind.as_str(), &key.namespace, false, 0.0);
                let msg = format!(
                    "Update for '{}' of type '{}' in namespace '{}' failed with error {source}",
                    key.name, key.kind, key.namespace
                );
                error!("{msg}");
                publish(
                    ctx,
                    &w,
                    Event {
                        type_: EventType::Warning,
                        reason: "ReloadFail".into(),
                        note: note(msg),
                        action: "Reload".into(),
                        secondary: changes.first().map(|c| source_ref(&key.namespace, c)),
                    },
                );
            }
            return Err(ReconcileError::Patch { key: key.clone(), source });
        }
    }

    if let Some(changes) = changes {
        let elapsed = started.elapsed().as_secs_f64();
        ctx.metrics.reload(key.kind.as_str(), &key.namespace, true, elapsed);
        if let Some(age) = ctx.take_change_age(key) {
            ctx.metrics
                .change_to_patch
                .get_or_create(&crate::metrics::WorkloadKindLabel { workload_kind: key.kind.as_str() })
                .observe(age.as_secs_f64());
        }
        for c in changes {
            report_reload(ctx, &w, c);
        }
    } else {
        ctx.take_change_age(key);
    }
    Ok(Some(true))
}

fn report_reload(ctx: &Arc<Ctx>, w: &Workload, c: &Change) {
    let key = &w.key;
    let what = match c.kind {
        ChangeKind::Updated => "Changes detected",
        ChangeKind::Created => "Creation detected",
        ChangeKind::Deleted => "Deletion detected",
    };
    let (src, typ, ns) = (&c.source.name, c.source.kind.type_name(), &key.namespace);
    info!(
        source = %c.source,
        hash = c.hash.map(|h| h.short()).unwrap_or_default(),
        "{what} in '{src}' of type '{typ}' in namespace '{ns}'; updated '{}' of type '{}' in namespace '{ns}'",
        key.name,
        key.kind
    );
    publish(
        ctx,
        w,
        Event {
            type_: EventType::Normal,
            reason: "Reloaded".into(),
            note: note(format!(
                "{what} in '{src}' of type '{typ}' in namespace '{ns}', Updated '{}' of type '{}' in namespace '{ns}'",
                key.name, key.kind
            )),
            action: "Reload".into(),
            secondary: Some(source_ref(ns, c)),
        },
    );
    let msg = crate::alerts::message(
        src,
        typ,
        &key.name,
        key.kind.as_str(),
        ns,
        ctx.settings.alert.as_ref().and_then(|a| a.additional_info.as_deref()),
    );
    let ctx = ctx.clone();
    tokio::spawn(async move {
        if let Some((sink, result)) = ctx.notifier.alert(&msg).await {
            let result = if result.is_ok() { "success" } else { "error" };
            ctx.metrics.alerts.get_or_create(&crate::metrics::SinkResult { sink: sink.label(), result }).inc();
        }
    });
}

async fn apply(ctx: &Ctx, key: &WorkloadKey, body: Value) -> Result<(), kube::Error> {
    let pp = PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
    let patch = Patch::Strategic(body);
    let c = ctx.client.clone();
    let (ns, name) = (key.namespace.as_str(), key.name.as_str());
    match key.kind {
        WorkloadKind::Deployment => Api::<Deployment>::namespaced(c, ns).patch(name, &pp, &patch).await.map(drop),
        WorkloadKind::StatefulSet => Api::<StatefulSet>::namespaced(c, ns).patch(name, &pp, &patch).await.map(drop),
        WorkloadKind::DaemonSet => Api::<DaemonSet>::namespaced(c, ns).patch(name, &pp, &patch).await.map(drop),
    }
}

/// Delay before retrying a failed workload: 1 s doubling to 5 min.
pub fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.min(8)).min(Duration::from_secs(300))
}
