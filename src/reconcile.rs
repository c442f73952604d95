//! Applies plans: the only place that writes to workloads, and where reloads are reported
//! (log line, Event on the workload, metrics, alert).

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType};
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::brake::Verdict;
use crate::controller::Ctx;
use crate::decide::{self, Change, ChangeKind, Plan};
use crate::metrics::ResultLabel;
pub use crate::record::FIELD_MANAGER;
use crate::workload::{Workload, WorkloadKey, WorkloadKind};
use crate::write::{self, Wrote};

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
        // In dry-run nothing is written, so what "would have been" recorded stands in.
        let w = ctx.with_dry_run_record(w);
        let considered = decide::consider(&w, st.sources(&key.namespace), Some(st.history()));
        let desired = decide::desired(&considered);
        let plan = decide::plan(&w, &desired, &decide::seen(&considered), ctx.settings.options);
        (w, plan)
    };
    let mut problems: Vec<String> = w.policy.errors.iter().map(|e| e.to_string()).collect();
    let pause = pause_period(&w);
    match &pause {
        Some(Err(e)) => problems
            .push(format!("annotation {:?}: {e}; reloads happen without a pause", ctx.settings.keys.pause_period)),
        Some(Ok(_)) if key.kind != WorkloadKind::Deployment => {
            warn!("Annotation '{}' only applicable for deployments", ctx.settings.keys.pause_period)
        }
        _ => {}
    }
    for e in &problems {
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

    // A Deployment this controller paused resumes when its period is over, whoever is leader
    // and however often the controller restarted meanwhile (the start is on the object).
    if key.kind == WorkloadKind::Deployment
        && w.controls.spec_paused
        && let Some(at) = &w.controls.paused_at
    {
        let period = match &pause {
            Some(Ok(d)) => *d,
            _ => Duration::ZERO,
        };
        let due = match at.parse::<k8s_openapi::jiff::Timestamp>() {
            Ok(t) => {
                let elapsed = k8s_openapi::jiff::Timestamp::now().duration_since(t);
                let elapsed = Duration::try_from(elapsed).unwrap_or(Duration::ZERO);
                period.saturating_sub(elapsed)
            }
            Err(_) => Duration::ZERO,
        };
        if due.is_zero() {
            if !ctx.may_write("resume", &w) {
                return Ok(Some(false));
            }
            return match write::resume(&ctx.client, &w, &ctx.settings.keys.paused_at).await {
                Ok(()) => {
                    info!("Successfully resumed deployment '{}' in namespace '{}'", key.name, key.namespace);
                    Ok(Some(true))
                }
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(conflict(ctx, key, &s.message)),
                Err(kube::Error::Api(s)) if s.code == 404 => Ok(Some(false)),
                Err(source) => Err(ReconcileError::Patch { key: key.clone(), source }),
            };
        }
        ctx.enqueue(key.clone(), due);
    }

    let (changes, record) = match &plan {
        Plan::Nothing => return Ok(Some(false)),
        Plan::Adopt(record) | Plan::Record(record) => {
            debug!(sources = record.len(), adopt = matches!(plan, Plan::Adopt(_)), "recording the governing sources");
            if !ctx.may_write("record", &w) {
                ctx.set_dry_run_record(key, record);
                return Ok(Some(false));
            }
            return match write::write_record(&ctx.client, &w, record).await {
                Ok(()) => {
                    ctx.take_change_age(key);
                    Ok(Some(true))
                }
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(conflict(ctx, key, &s.message)),
                Err(kube::Error::Api(s)) if s.code == 404 => Ok(Some(false)),
                Err(source) => Err(ReconcileError::Patch { key: key.clone(), source }),
            };
        }
        Plan::Reload { changes, record } => (changes, record),
    };

    // The storm brake: at most one reload per interval, and a flapping workload is held.
    match ctx.brake_check(key) {
        Verdict::Go => {}
        Verdict::Wait(at) => {
            debug!(in_ = ?at.saturating_duration_since(tokio::time::Instant::now()), "reloaded recently; folding changes into the next reload");
            ctx.queue.add_after(key.clone(), at.saturating_duration_since(tokio::time::Instant::now()));
            return Ok(Some(false));
        }
        Verdict::Hold { until, newly } => {
            if newly {
                let b = &ctx.settings.brake;
                let msg = format!(
                    "more than {} reloads within {}; holding reloads until its sources stay unchanged for {}",
                    b.flap_limit,
                    humantime::format_duration(b.flap_window),
                    humantime::format_duration(b.settle)
                );
                warn!("{msg}");
                publish(
                    ctx,
                    &w,
                    Event {
                        type_: EventType::Warning,
                        reason: "ReloadHeld".into(),
                        note: note(msg),
                        action: "Reload".into(),
                        secondary: changes.first().map(|c| source_ref(&key.namespace, c)),
                    },
                );
            }
            ctx.queue.add_after(key.clone(), until.saturating_duration_since(tokio::time::Instant::now()));
            return Ok(Some(false));
        }
    }

    let mut extra = write::Extra::default();
    if key.kind == WorkloadKind::Deployment
        && let Some(Ok(period)) = &pause
    {
        if !w.controls.spec_paused {
            info!(
                "Pausing Deployment '{}' in namespace '{}' for {}",
                key.name,
                key.namespace,
                humantime::format_duration(*period)
            );
            extra.pause_at = Some((ctx.settings.keys.paused_at.clone(), write::now_rfc3339()));
        } else if w.controls.paused_at.is_none() {
            info!("Deployment '{}' in namespace '{}' already paused", key.name, key.namespace);
        }
    }

    if !ctx.may_write("reload", &w) {
        if ctx.settings.dry_run {
            ctx.set_dry_run_record(key, record);
            ctx.brake_reloaded(key);
            for c in changes.iter() {
                info!(source = %c.source, "dry-run: would reload '{}' of type '{}' for a change of {}", key.name, key.kind, c.source);
            }
        }
        return Ok(Some(false));
    }
    let wrote = match write::write_reload(&ctx.client, &w, changes, record, ctx.settings.strategy, &extra).await {
        Ok(wrote) => wrote,
        Err(kube::Error::Api(s)) if s.code == 409 => return Ok(conflict(ctx, key, &s.message)),
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(Some(false)),
        Err(source) => {
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
            return Err(ReconcileError::Patch { key: key.clone(), source });
        }
    };
    if let Wrote::RecordedOnly(why) = wrote {
        info!(
            "not reloading '{}' of type '{}' in namespace '{}': {why}; the change is recorded",
            key.name, key.kind, key.namespace
        );
        ctx.metrics.skip("strategy_not_updated");
        ctx.take_change_age(key);
        return Ok(Some(true));
    }
    ctx.brake_reloaded(key);
    if extra.pause_at.is_some()
        && let Some(Ok(period)) = &pause
    {
        ctx.enqueue(key.clone(), *period);
    }
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
    Ok(Some(true))
}

/// A write refused with 409: the workload changed since it was read. Counted, and retried
/// promptly by the worker (the watch is about to deliver the newer object).
fn conflict(ctx: &Ctx, key: &WorkloadKey, message: &str) -> Option<bool> {
    ctx.metrics
        .write_conflicts
        .get_or_create(&crate::metrics::WorkloadKindLabel { workload_kind: key.kind.as_str() })
        .inc();
    debug!(reason = message, "the workload changed since it was read; looking again");
    None
}

/// The pause period of a workload, parsed (only Deployments act on it).
fn pause_period(w: &Workload) -> Option<Result<Duration, String>> {
    w.controls.pause_period.as_deref().map(crate::duration::parse_go_duration)
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

/// Delay before looking again after the `n`th 409 in a row: 50 ms doubling to 1 s. The
/// newer object is usually in the index by then; a baseline is not lost by waiting, since
/// the decision compares from the workload's first sight (see `history`).
pub fn conflict_backoff(n: u32) -> Duration {
    Duration::from_millis(50u64 << n.saturating_sub(1).min(5)).min(Duration::from_secs(1))
}

/// Delay before retrying a failed workload: 1 s doubling to 5 min.
pub fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.min(8)).min(Duration::from_secs(300))
}
