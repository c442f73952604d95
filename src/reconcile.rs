//! Reconciling one workload: a snapshot of it and its sources from the index, the decision
//! (`core::decide`), the write (`write`, the only code that writes workloads) and the report
//! (`report`).

use std::sync::Arc;
use std::time::Instant;

use kube::runtime::events::EventType;
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::core::decide::outcome::{self, Ended, Tracked, Verdict as Rollout};
use crate::core::decide::{self, Change, Decision, Plan, Resume};
use crate::core::gates::brake::Verdict;
use crate::core::gates::breaker::{self, Gate};
use crate::core::gates::waves::{self, Admit};
use crate::core::model::record::Record;
use crate::core::model::workload::{Workload, WorkloadKey};
use crate::error::Error;
use crate::runtime::context::Ctx;
use crate::runtime::reporter::metrics::ResultLabel;
use crate::runtime::reporter::{self, event, problems_note, publish, source_ref};
use crate::runtime::writer::{self, Wrote};

/// What happened, for the worker's retry policy.
pub(crate) enum Outcome {
    Done,
    /// Our view was stale (409); the watch delivers the newer object, check again soon.
    Stale,
}

/// What one pass did.
enum Did {
    Wrote,
    Nothing,
    Stale,
}

/// Reconciles one workload: compares what governs it now with what it recorded, and writes
/// the difference.
pub(crate) async fn reconcile(ctx: &Arc<Ctx>, key: &WorkloadKey) -> Result<Outcome, Error> {
    let started = Instant::now();
    let result = pass(ctx, key, started).instrument(info_span!("reconcile", workload = %key)).await;
    let label = match &result {
        Ok(Did::Wrote) => "success",
        Ok(_) => "skipped",
        Err(_) => "error",
    };
    ctx.metrics.reconcile.get_or_create(&ResultLabel { result: label }).inc();
    ctx.metrics
        .reconcile_duration
        .get_or_create(&ResultLabel { result: label })
        .observe(started.elapsed().as_secs_f64());
    result.map(|d| if matches!(d, Did::Stale) { Outcome::Stale } else { Outcome::Done })
}

async fn pass(ctx: &Arc<Ctx>, key: &WorkloadKey, started: Instant) -> Result<Did, Error> {
    let Some((w, d)) = snapshot(ctx, key) else {
        // Looked at again when its scope is ready (or selected) again, with a new turn if needed.
        ctx.drop_adoption_turn(key);
        return Ok(Did::Nothing);
    };
    report_problems(ctx, &w, &d);
    if let Some(did) = follow_rollout(ctx, &w).await? {
        return Ok(did);
    }
    match d.resume {
        Some(Resume::Now) => return resume(ctx, &w).await,
        Some(Resume::After(due)) => ctx.enqueue(key.clone(), due),
        None => {}
    }
    if !d.quiet_adoption {
        ctx.drop_adoption_turn(key);
    }
    // Only adoptions wait their turn. A `Record` follows an edit of a workload or a source, as
    // a reload does, and what it records can be the baseline of the next change (a source
    // created without --reload-on-create): held back, that change would be taken for the
    // creation and recorded instead of rolled.
    if !matches!(d.plan, Plan::Reload { .. }) {
        // Nothing to roll (any more): it no longer waits for a place in the wave.
        ctx.wave_release(key, true);
    }
    match &d.plan {
        Plan::Nothing => Ok(Did::Nothing),
        Plan::Adopt(record) if d.quiet_adoption => adopt(ctx, &w, record).await,
        Plan::Adopt(record) => {
            let did = record_only(ctx, &w, record, None).await?;
            if matches!(did, Did::Wrote) {
                ctx.metrics.adoption_writes.inc();
            }
            Ok(did)
        }
        Plan::Record(record) => record_only(ctx, &w, record, None).await,
        Plan::Reload { changes, record } => {
            if let Some(why) = d.record_only {
                return record_only(ctx, &w, record, Some(why)).await;
            }
            if !brake_allows(ctx, &w, changes) {
                return Ok(Did::Nothing);
            }
            if !breaker_allows(ctx, &w, changes) {
                return Ok(Did::Nothing);
            }
            if !wave_allows(ctx, &w, changes) {
                return Ok(Did::Nothing);
            }
            let did = reload(ctx, &w, &d, changes, record, started).await;
            if w.progress.trackable() && !matches!(did, Ok(Did::Wrote)) {
                // Admitted, but no rollout was written: the place goes to the next one.
                ctx.wave_release(key, false);
            }
            did
        }
    }
}

/// The workload and the decision on it, from the index, or `None` if there is nothing to do.
fn snapshot(ctx: &Ctx, key: &WorkloadKey) -> Option<(Workload, Decision)> {
    if !ctx.health.readiness.scope_ready(&key.namespace) {
        // Its sources are not all listed yet: deciding now could take them for missing. It is
        // queued again when they are.
        return None;
    }
    let st = ctx.state.lock().expect("state lock");
    let w = st.workload(key)?;
    if !ctx.namespace_selected(&key.namespace) {
        ctx.metrics.skip("ignored_or_not_selected");
        return None;
    }
    // In dry-run nothing is written, so what "would have been" recorded stands in.
    let w = ctx.with_dry_run_record(w);
    let now = k8s_openapi::jiff::Timestamp::now();
    let s = &ctx.settings;
    let (_, d) =
        decide::decide(&w, st.sources(&key.namespace), Some(st.history()), s.options, &s.keys.pause_period, now);
    Some((w, d))
}

fn report_problems(ctx: &Arc<Ctx>, w: &Workload, d: &Decision) {
    let key = &w.key;
    // Reported on every evaluation that sees them, like Reloader; the rest of the policy applies.
    for e in &d.problems {
        error!(
            "Skipping invalid reload annotation on {} '{}' in namespace '{}': {e}",
            key.kind, key.name, key.namespace
        );
    }
    if !d.problems.is_empty() {
        // One Event for all of them: they would be one series, showing the first one's note only.
        let mut ev = event(EventType::Warning, "InvalidAnnotation", problems_note(&d.problems), None);
        ev.action = "Evaluate".into();
        publish(ctx, w, ev);
    }
    if d.pause_ignored {
        warn!("Annotation '{}' only applicable for deployments", ctx.settings.keys.pause_period);
    }
    if let Err(e) = &w.record {
        warn!(error = %e, "unreadable {} annotation; adopting the current state", crate::core::model::record::RECORD_ANNOTATION);
    }
    if let Some(by) = &w.record_foreign {
        info!(writer = %by, "the applied record was written by someone else (e.g. a rollout undo); adopting the current state");
    }
}

/// Maps a write's result: a 409 is counted and looked at again soon, a 404 means it is gone.
fn written(ctx: &Ctx, w: &Workload, action: &'static str, r: Result<(), kube::Error>) -> Result<Did, Error> {
    match r {
        Ok(()) => Ok(Did::Wrote),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(conflict(ctx, &w.key, &s.message)),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Did::Nothing),
        Err(source) => Err(Error::Write { action, key: w.key.to_string(), source }),
    }
}

/// A write refused with 409: the workload changed since it was read. Counted, and retried
/// promptly by the worker (the watch is about to deliver the newer object).
fn conflict(ctx: &Ctx, key: &WorkloadKey, message: &str) -> Did {
    let kind = crate::runtime::reporter::metrics::WorkloadKindLabel { workload_kind: key.kind.as_str() };
    ctx.metrics.write_conflicts.get_or_create(&kind).inc();
    debug!(reason = message, "the workload changed since it was read; looking again");
    Did::Stale
}

/// A Deployment this controller paused resumes when its period is over, whoever is leader
/// and however often the controller restarted meanwhile (the start is on the object).
async fn resume(ctx: &Arc<Ctx>, w: &Workload) -> Result<Did, Error> {
    if !ctx.may_write("resume", w) {
        return Ok(Did::Nothing);
    }
    let r = writer::resume(&ctx.client, w, &ctx.settings.keys.paused_at).await;
    if r.is_ok() {
        info!("Successfully resumed deployment '{}' in namespace '{}'", w.key.name, w.key.namespace);
    }
    written(ctx, w, "resuming", r)
}

/// Adopts a workload that nothing changed since its first sight, in its turn: until then it is
/// queued again for its turn, holding no worker. One request per workload on a quiet cluster;
/// the write carries the `resourceVersion` it was decided on, so a workload another writer
/// touched in between (the controller-manager still settling a Deployment created moments
/// before) gets a 409, is looked at again from the newer object, and waits for a new turn.
async fn adopt(ctx: &Arc<Ctx>, w: &Workload, record: &Record) -> Result<Did, Error> {
    if !ctx.may_write("record", w) {
        ctx.set_dry_run_record(&w.key, record);
        return Ok(Did::Nothing);
    }
    if let Some(wait) = ctx.adoption_turn(&w.key) {
        debug!(in_ = ?wait, "adoption write waits for its turn (--adoption-writes-per-second)");
        ctx.enqueue(w.key.clone(), wait);
        return Ok(Did::Nothing);
    }
    debug!(sources = record.len(), "adopting: recording the governing sources");
    let did = written(ctx, w, "recording", writer::write_record(&ctx.client, w, record).await)?;
    if matches!(did, Did::Wrote) {
        ctx.metrics.adoption_writes.inc();
        ctx.take_change_age(&w.key);
    }
    Ok(did)
}

/// Writes the record alone: adoption, a newly governed source, or a change that must not roll
/// (`why`).
async fn record_only(ctx: &Arc<Ctx>, w: &Workload, record: &Record, why: Option<&'static str>) -> Result<Did, Error> {
    debug!(sources = record.len(), "recording the governing sources");
    if !ctx.may_write("record", w) {
        ctx.set_dry_run_record(&w.key, record);
        return Ok(Did::Nothing);
    }
    let did = written(ctx, w, "recording", writer::write_record(&ctx.client, w, record).await)?;
    if matches!(did, Did::Wrote) {
        if let Some(why) = why {
            not_reloading(ctx, w, why);
        }
        ctx.take_change_age(&w.key);
    }
    Ok(did)
}

fn not_reloading(ctx: &Ctx, w: &Workload, why: &str) {
    info!(
        "not reloading '{}' of type '{}' in namespace '{}': {why}; the change is recorded",
        w.key.name, w.key.kind, w.key.namespace
    );
    ctx.metrics.skip("strategy_not_updated");
}

/// The storm brake: at most one reload per interval, and a flapping workload is held.
fn brake_allows(ctx: &Arc<Ctx>, w: &Workload, changes: &[Change]) -> bool {
    let now = tokio::time::Instant::now();
    match ctx.brake_check(&w.key) {
        Verdict::Go => true,
        Verdict::Wait(at) => {
            debug!(in_ = ?at.saturating_duration_since(now), "reloaded recently; folding changes into the next reload");
            ctx.queue.add_after(w.key.clone(), at.saturating_duration_since(now));
            false
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
                let related = changes.first().map(|c| source_ref(&w.key.namespace, c));
                publish(ctx, w, event(EventType::Warning, "ReloadHeld", msg, related));
            }
            ctx.queue.add_after(w.key.clone(), until.saturating_duration_since(now));
            false
        }
    }
}

/// `--halt-on-failed-rollouts`: a reload for a change K of whose rollouts failed is held (it
/// leaves the wave's line; the next change of the source, or its release mark, lifts the
/// hold), and one for a change with a failure while others still roll waits in line for them.
fn breaker_allows(ctx: &Arc<Ctx>, w: &Workload, changes: &[Change]) -> bool {
    let limit = ctx.settings.halt_on_failed_rollouts;
    if limit.is_none() || !w.progress.trackable() {
        return true;
    }
    let mut verdict = Gate::Go;
    let mut held_for = None;
    let mut lifted = Vec::new();
    {
        let st = ctx.state.lock().expect("state lock");
        for c in changes {
            let cause = outcome::cause_of(c);
            let users = st.affected(&w.key.namespace, &c.source);
            let notes = users.iter().filter_map(|k| st.workload(k)).filter_map(|u| u.tracked.as_ref());
            let g = breaker::gate(limit, breaker::tally(&cause, notes));
            let short = c.hash.map(|h| h.short());
            if g != Gate::Go && breaker::released(st.release_of(&w.key.namespace, &c.source), short.as_deref()) {
                // The source says to go on with this change: its rollouts start again.
                if let Gate::Held(t) = g {
                    lifted.push((c.clone(), cause, t));
                }
                continue;
            }
            if let (Gate::Held(t), None) = (&g, &held_for) {
                held_for = Some((c.clone(), cause, *t));
            }
            verdict = verdict.and(g);
        }
    }
    for (c, cause, t) in lifted {
        reporter::report_released(ctx, &w.key.namespace, &c, &cause, t);
    }
    match verdict {
        Gate::Go => true,
        Gate::Pause => {
            debug!("a rollout of this change failed and others still roll; waiting for them");
            ctx.wave_wait(&w.key, wave_place(ctx, w, changes));
            false
        }
        Gate::Held(_) => {
            ctx.wave_release(&w.key, true);
            if let Some((c, cause, t)) = held_for {
                reporter::report_halted(ctx, w, &c, &cause, t);
            }
            false
        }
    }
}

/// `--max-concurrent-rollouts`: a reload that would start a rollout beyond the limit waits
/// for a place; it is looked at again, oldest change first, when rollouts end.
fn wave_allows(ctx: &Arc<Ctx>, w: &Workload, changes: &[Change]) -> bool {
    if ctx.settings.max_concurrent_rollouts.is_none() || !w.progress.trackable() {
        return true;
    }
    match ctx.wave_admit(&w.key, wave_place(ctx, w, changes)) {
        Admit::Go => true,
        Admit::Wait { ahead, in_progress } => {
            debug!(ahead, in_progress, "waiting for a place in the wave (--max-concurrent-rollouts)");
            false
        }
    }
}

/// The place in the wave's line of a reload applying `changes`: its oldest change.
fn wave_place(ctx: &Arc<Ctx>, w: &Workload, changes: &[Change]) -> u64 {
    let st = ctx.state.lock().expect("state lock");
    waves::place(changes.iter().map(|c| st.content_rv(&w.key.namespace, &c.source)))
}

/// Follows the rollout the last reload started, from the workload's status as the watch
/// delivered it: once it ended, records the outcome on the workload (which also keeps a
/// restarted controller or a new leader from reporting it again) and reports it. `Some` when
/// it wrote; the watch then delivers the workload again for the rest of the pass.
async fn follow_rollout(ctx: &Arc<Ctx>, w: &Workload) -> Result<Option<Did>, Error> {
    let Some(t) = w.pending_rollout() else {
        return Ok(None);
    };
    let now = k8s_openapi::jiff::Timestamp::now().as_second();
    let timeout = ctx.settings.rollout_timeout;
    let (ended, reason) = match outcome::classify(t, &w.progress, now, timeout) {
        Rollout::Untracked => return Ok(None),
        Rollout::InProgress(why) => {
            debug!(cause = %t.cause, "rollout in progress: {why}");
            if let Some(limit) = timeout {
                // Looked at again when it is due, should the status not move before.
                let due = (t.at + limit.as_secs() as i64 - now).max(0) as u64;
                ctx.enqueue(w.key.clone(), std::time::Duration::from_secs(due + 1));
            }
            return Ok(None);
        }
        Rollout::Succeeded => (Ended::Succeeded, None),
        Rollout::Failed(why) => (Ended::Failed, Some(why)),
    };
    if !ctx.may_write("outcome", w) {
        return Ok(None);
    }
    let done = t.ended(ended, now, reason);
    let did = written(ctx, w, "recording the rollout outcome", writer::write_outcome(&ctx.client, w, &done).await)?;
    if matches!(did, Did::Wrote) {
        reporter::report_outcome(ctx, w, &done);
    }
    Ok(Some(did))
}

/// The tracking note of a reload about to be written, for kinds whose rollout can be followed.
fn tracking_note(w: &Workload, changes: &[Change]) -> Option<Tracked> {
    if !w.progress.trackable() {
        return None;
    }
    let cause = changes.iter().map(outcome::cause_of).collect::<Vec<_>>().join(", ");
    Some(Tracked {
        cause,
        at: k8s_openapi::jiff::Timestamp::now().as_second(),
        generation: w.progress.generation() + 1,
        outcome: None,
        ended: None,
        reason: None,
    })
}

async fn reload(
    ctx: &Arc<Ctx>,
    w: &Workload,
    d: &Decision,
    changes: &[Change],
    record: &Record,
    started: Instant,
) -> Result<Did, Error> {
    let key = &w.key;
    let mut extra = writer::Extra { tracked: tracking_note(w, changes), ..Default::default() };
    if let Some(period) = d.pause_for {
        info!(
            "Pausing Deployment '{}' in namespace '{}' for {}",
            key.name,
            key.namespace,
            humantime::format_duration(period)
        );
        extra.pause_at = Some((ctx.settings.keys.paused_at.clone(), writer::now_rfc3339()));
    }
    if !ctx.may_write("reload", w) {
        if ctx.settings.dry_run {
            ctx.set_dry_run_record(key, record);
            ctx.brake_reloaded(key);
            for c in changes {
                info!(source = %c.source, "dry-run: would reload '{}' of type '{}' for a change of {}", key.name, key.kind, c.source);
            }
        }
        return Ok(Did::Nothing);
    }
    let wrote = match writer::write_reload(&ctx.client, w, changes, record, ctx.settings.strategy, &extra).await {
        Ok(wrote) => wrote,
        Err(kube::Error::Api(s)) if s.code == 409 => return Ok(conflict(ctx, key, &s.message)),
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(Did::Nothing),
        Err(source) => {
            ctx.metrics.reload(key.kind.as_str(), &key.namespace, false, 0.0);
            let related = changes.first().map(|c| source_ref(&key.namespace, c));
            publish(ctx, w, event(EventType::Warning, "ReloadFail", fail_note(key, &source), related));
            return Err(Error::Write { action: "reloading", key: key.to_string(), source });
        }
    };
    match wrote {
        Wrote::Stale => return Ok(conflict(ctx, key, "the object was replaced meanwhile")),
        Wrote::RecordedOnly(why) => {
            ctx.wave_release(key, false);
            not_reloading(ctx, w, why);
            ctx.take_change_age(key);
            return Ok(Did::Wrote);
        }
        Wrote::Rolled => {}
    }
    ctx.brake_reloaded(key);
    if let Some(t) = w.pending_rollout() {
        debug!(cause = %t.cause, "the rollout of the previous reload had not ended: superseded");
        ctx.metrics.rollout(key.kind.as_str(), Ended::Superseded.as_str(), None);
    }
    if let (Some(limit), Some(_)) = (ctx.settings.rollout_timeout, &extra.tracked) {
        ctx.enqueue(key.clone(), limit + std::time::Duration::from_secs(1));
    }
    if let Some(period) = d.pause_for {
        ctx.enqueue(key.clone(), period);
    }
    ctx.metrics.reload(key.kind.as_str(), &key.namespace, true, started.elapsed().as_secs_f64());
    if let Some(age) = ctx.take_change_age(key) {
        let kind = crate::runtime::reporter::metrics::WorkloadKindLabel { workload_kind: key.kind.as_str() };
        ctx.metrics.change_to_patch.get_or_create(&kind).observe(age.as_secs_f64());
    }
    for c in changes {
        reporter::report_reload(ctx, w, c);
    }
    Ok(Did::Wrote)
}

/// The note of a `ReloadFail` Event, in Reloader's words: the API server's message once, with
/// its code and reason, never kube's `Display` of the error (which repeats the message and
/// appends a `Debug` dump of the whole Status).
fn fail_note(key: &WorkloadKey, e: &kube::Error) -> String {
    format!(
        "Update for '{}' of type '{}' in namespace '{}' failed with error {}",
        key.name,
        key.kind,
        key.namespace,
        crate::error::api_message(e)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::workload::WorkloadKind;

    #[test]
    fn a_reload_fail_note_carries_the_api_message_once() {
        let key = WorkloadKey { kind: WorkloadKind::Deployment, namespace: "shop".into(), name: "web".into() };
        // What the API server answers when an admission policy refuses the patch.
        let message = "deployments.apps \"web\" is forbidden: ValidatingAdmissionPolicy 'freeze' with binding \
                       'freeze' denied request: pod template changes are frozen here";
        let status = kube::core::Status::failure(message, "Forbidden").with_code(403);
        let e = kube::Error::Api(status.boxed());
        assert_eq!(e.to_string().matches("frozen here").count(), 2, "kube's Display repeats it");
        let note = fail_note(&key, &e);
        assert_eq!(
            note,
            format!(
                "Update for 'web' of type 'Deployment' in namespace 'shop' failed with error {message} (403 Forbidden)"
            )
        );
        assert_eq!(note.matches("frozen here").count(), 1, "{note}");
        assert!(!note.contains("Status {") && !note.contains("ApiError"), "no Debug dump: {note}");
    }
}
