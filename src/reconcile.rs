//! Reconciling one workload: a snapshot of it and its sources from the store, the decision
//! (`core::decide`), the gates (`core::gates`, through the scheduler), the write (the writer)
//! and the report (the reporter). A pass carries out what those answer; it decides nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{Instrument, debug, info, info_span};

use crate::core::decide::outcome::{self, Stage};
use crate::core::decide::{self, Change, Decision, Plan, Resume};
use crate::core::gates::breaker::tally;
use crate::core::gates::{Admission, ChangeRollouts, Request, waves};
use crate::core::model::cause::Causes;
use crate::core::model::note::{Ended, Tracked};
use crate::core::model::record::Record;
use crate::core::model::workload::{Workload, WorkloadKey};
use crate::error::Error;
use crate::runtime::context::Ctx;
use crate::runtime::reporter::metrics::{ResultLabel, WorkloadKindLabel};
use crate::runtime::writer::{self, Written};

/// What one pass did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pass {
    /// It wrote to the workload.
    Wrote,
    Nothing,
    /// Our view was stale (409); the watch delivers the newer object, check again soon.
    Stale,
}

impl Pass {
    fn of(w: Written) -> Pass {
        match w {
            Written::Rolled | Written::RecordedOnly(_) | Written::Done => Pass::Wrote,
            Written::Stale => Pass::Stale,
            Written::Gone | Written::Withheld => Pass::Nothing,
        }
    }
}

/// Reconciles one workload: compares what governs it now with what it recorded, and writes
/// the difference.
pub(crate) async fn reconcile(ctx: &Arc<Ctx>, key: &WorkloadKey) -> Result<Pass, Error> {
    let started = Instant::now();
    let result = pass(ctx, key, started).instrument(info_span!("reconcile", workload = %key)).await;
    let label = match &result {
        Ok(Pass::Wrote) => "success",
        Ok(_) => "skipped",
        Err(_) => "error",
    };
    let label = ResultLabel { result: label };
    ctx.metrics.reconcile.get_or_create(&label).inc();
    ctx.metrics.reconcile_duration.get_or_create(&label).observe(started.elapsed().as_secs_f64());
    result
}

async fn pass(ctx: &Arc<Ctx>, key: &WorkloadKey, started: Instant) -> Result<Pass, Error> {
    let Some((mut w, d)) = snapshot(ctx, key) else {
        // Looked at again when its scope is ready (or selected) again, with a new turn if needed.
        ctx.scheduler.drop_adoption_turn(key);
        return Ok(Pass::Nothing);
    };
    ctx.reporter.problems(&w, &d, &ctx.settings.keys.pause_period);
    if let Some(done) = follow_rollout(ctx, &mut w).await? {
        return Ok(done);
    }
    match d.resume {
        Some(Resume::Now) => return resume(ctx, &w).await,
        Some(Resume::After(due)) => ctx.scheduler.after(key.clone(), due),
        None => {}
    }
    // Only adoptions wait their turn. A `Record` follows an edit of a workload or a source, as
    // a reload does, and what it records can be the baseline of the next change (a source
    // created without --reload-on-create): held back, that change would be taken for the
    // creation and recorded instead of rolled.
    if !d.quiet_adoption {
        ctx.scheduler.drop_adoption_turn(key);
    }
    if !matches!(d.plan, Plan::Reload { .. }) {
        // Nothing to roll (any more): it no longer waits for a place in the wave.
        ctx.scheduler.no_reload(key);
    }
    match &d.plan {
        Plan::Nothing => Ok(Pass::Nothing),
        Plan::Adopt(record) if d.quiet_adoption => adopt(ctx, &w, record).await,
        Plan::Adopt(record) => {
            let done = record_only(ctx, &w, record, None).await?;
            if done == Pass::Wrote {
                ctx.metrics.adoption_writes.inc();
            }
            Ok(done)
        }
        Plan::Record(record) => record_only(ctx, &w, record, None).await,
        Plan::Reload { changes, record } => {
            if let Some(why) = &d.record_only {
                return record_only(ctx, &w, record, Some(why)).await;
            }
            if !admitted(ctx, &w, changes) {
                return Ok(Pass::Nothing);
            }
            let done = reload(ctx, &w, &d, changes, record, started).await;
            if w.progress.trackable() && !matches!(done, Ok(Pass::Wrote)) {
                // Admitted, but no rollout was written: the place goes to the next one.
                ctx.scheduler.not_written(key);
            }
            done
        }
    }
}

/// The workload and the decision on it, from the store, or `None` if there is nothing to do.
fn snapshot(ctx: &Ctx, key: &WorkloadKey) -> Option<(Workload, Decision)> {
    if !ctx.health.readiness.scope_ready(&key.namespace) {
        // Its sources are not all listed yet: deciding now could take them for missing. It is
        // queued again when they are.
        return None;
    }
    let index = ctx.store.lock();
    let w = index.workload(key)?;
    if !ctx.store.namespace_selected(&key.namespace) {
        ctx.metrics.skip("ignored_or_not_selected");
        return None;
    }
    // In dry-run nothing is written, so what "would have been" recorded stands in.
    let w = ctx.writer.as_if_written(w.clone());
    let now = k8s_openapi::jiff::Timestamp::now();
    let s = &ctx.settings;
    let sources = index.sources(&key.namespace);
    let (_, d) = decide::decide(&w, sources, Some(index.history()), s.options, &s.keys.pause_period, now);
    Some((w, d))
}

/// What the gates need to know of a reload, from the store: for the breaker, how the rollouts
/// of each change went (the tracking notes of every workload using its source) and the
/// source's release mark; for the waves, its place in line.
fn request(ctx: &Ctx, w: &Workload, changes: &[Change]) -> Request {
    let limits = &ctx.settings.limits;
    let trackable = w.progress.trackable();
    let ns = &w.key.namespace;
    let index = ctx.store.lock();
    let rollouts = |c: &Change| {
        let cause = c.cause();
        let users = index.affected(ns, &c.source);
        let notes = users.iter().filter_map(|k| index.workload(k)).filter_map(|u| u.tracked.as_ref());
        let tally = tally(&cause, notes);
        ChangeRollouts { cause, tally, mark: index.release_of(ns, &c.source).map(String::from) }
    };
    let breaker = trackable && limits.halt_on_failed_rollouts.is_some();
    let waves = trackable && limits.max_concurrent_rollouts.is_some();
    Request {
        key: w.key.clone(),
        trackable,
        changes: if breaker { changes.iter().map(rollouts).collect() } else { Vec::new() },
        place: if waves { waves::place(changes.iter().map(|c| index.content_rv(ns, &c.source))) } else { u64::MAX },
    }
}

/// Asks the gates whether the reload may be written now, and carries out their answer.
fn admitted(ctx: &Ctx, w: &Workload, changes: &[Change]) -> bool {
    let answer = ctx.scheduler.admit(&request(ctx, w, changes));
    for (cause, t) in &answer.released {
        ctx.reporter.released(&w.key.namespace, cause, *t);
    }
    match answer.admission {
        Admission::Go => true,
        Admission::Later { after, newly } => {
            debug!(in_ = ?after, "reloaded repeatedly; spacing the next reload, changes meanwhile fold into it");
            if newly {
                ctx.reporter.deferred(w, changes, after, &ctx.settings.limits.brake);
            }
            ctx.scheduler.after(w.key.clone(), after);
            false
        }
        Admission::Held { after, newly } => {
            if newly {
                ctx.reporter.held(w, changes, &ctx.settings.limits.brake);
            }
            ctx.scheduler.after(w.key.clone(), after);
            false
        }
        Admission::Paused => {
            debug!("a rollout of this change failed and others still roll; waiting for them");
            false
        }
        Admission::Halted { cause, tally } => {
            ctx.reporter.halted(w, &cause, tally);
            false
        }
        Admission::Queued { ahead, in_progress } => {
            debug!(ahead, in_progress, "waiting for a place in the wave (--max-concurrent-rollouts)");
            false
        }
    }
}

/// Follows the rollout the last reload started, from the workload's status as the watch
/// delivered it, and reports how it ended. A failure is recorded on the workload: the
/// circuit breaker counts it, and a restarted controller or a new leader must neither report
/// it again nor forget it. A success is only kept in memory (the workload's status is its
/// record; see `decide::outcome::carried`): one request fewer per reload, and no write that
/// other watchers of the workload would see. `Some` when it wrote; the watch then delivers
/// the workload again for the rest of the pass.
async fn follow_rollout(ctx: &Ctx, w: &mut Workload) -> Result<Option<Pass>, Error> {
    let Some(t) = w.pending_rollout() else {
        return Ok(None);
    };
    let now = k8s_openapi::jiff::Timestamp::now().as_second();
    let timeout = ctx.settings.rollout_timeout;
    let (ended, reason) = match outcome::classify(t, &w.progress, now, timeout) {
        Stage::Untracked => return Ok(None),
        Stage::InProgress(why) => {
            debug!(cause = %t.cause, "rollout in progress: {why}");
            if let Some(limit) = timeout {
                // Looked at again when it is due, should the status not move before.
                let due = (t.at + limit.as_secs() as i64 - now).max(0) as u64;
                ctx.scheduler.after(w.key.clone(), Duration::from_secs(due + 1));
            }
            return Ok(None);
        }
        Stage::Succeeded => {
            let done = t.ended(Ended::Succeeded, now, None);
            if ctx.store.lock().end_rollout(&w.key, &done) {
                ctx.scheduler.rollout_seen(&w.key, false, false);
                // The leader reports, as it would have written the outcome.
                if ctx.writer.can_write() {
                    ctx.reporter.outcome(w, &done);
                }
            }
            w.tracked = Some(done);
            return Ok(None);
        }
        Stage::Failed(why) => (Ended::Failed, Some(why)),
    };
    let done = t.ended(ended, now, reason);
    match ctx.writer.outcome(w, &done).await? {
        Written::Withheld => Ok(None),
        written => {
            if written == Written::Done {
                ctx.reporter.outcome(w, &done);
            }
            Ok(Some(Pass::of(written)))
        }
    }
}

/// A Deployment this controller paused resumes when its period is over, whoever is leader
/// and however often the controller restarted meanwhile (the start is on the object).
async fn resume(ctx: &Ctx, w: &Workload) -> Result<Pass, Error> {
    let written = ctx.writer.resume(w, &ctx.settings.keys.paused_at).await?;
    if written == Written::Done {
        info!("Successfully resumed deployment '{}' in namespace '{}'", w.key.name, w.key.namespace);
    }
    Ok(Pass::of(written))
}

/// Adopts a workload that nothing changed since its first sight, in its turn: until then it is
/// queued again for its turn, holding no worker. One request per workload on a quiet cluster;
/// the write carries the `resourceVersion` it was decided on, so a workload another writer
/// touched in between (the controller-manager still settling a Deployment created moments
/// before) gets a 409, is looked at again from the newer object, and waits for a new turn.
async fn adopt(ctx: &Ctx, w: &Workload, record: &Record) -> Result<Pass, Error> {
    // The turn is taken only for a write that can happen (dry-run keeps its record at once).
    if ctx.writer.can_write()
        && let Some(wait) = ctx.scheduler.adoption_turn(&w.key)
    {
        debug!(in_ = ?wait, "adoption write waits for its turn (--adoption-writes-per-second)");
        ctx.scheduler.after(w.key.clone(), wait);
        return Ok(Pass::Nothing);
    }
    debug!(sources = record.len(), "adopting: recording the governing sources");
    let written = ctx.writer.record(w, record).await?;
    if written == Written::Done {
        ctx.metrics.adoption_writes.inc();
        ctx.scheduler.take_change_age(&w.key);
    }
    Ok(Pass::of(written))
}

/// Writes the record alone: adoption, a newly governed source, or a change that must not roll
/// (`why`).
async fn record_only(ctx: &Ctx, w: &Workload, record: &Record, why: Option<&str>) -> Result<Pass, Error> {
    debug!(sources = record.len(), "recording the governing sources");
    let written = ctx.writer.record(w, record).await?;
    if written == Written::Done {
        if let Some(why) = why {
            ctx.reporter.not_reloading(w, why);
        }
        ctx.scheduler.take_change_age(&w.key);
    }
    Ok(Pass::of(written))
}

/// The tracking note of a reload about to be written, for kinds whose rollout can be followed.
fn tracking_note(w: &Workload, changes: &[Change]) -> Option<Tracked> {
    if !w.progress.trackable() {
        return None;
    }
    Some(Tracked {
        cause: changes.iter().map(Change::cause).collect::<Causes>(),
        at: k8s_openapi::jiff::Timestamp::now().as_second(),
        generation: w.progress.generation() + 1,
        outcome: None,
        ended: None,
        reason: None,
    })
}

async fn reload(
    ctx: &Ctx,
    w: &Workload,
    d: &Decision,
    changes: &[Change],
    record: &Record,
    started: Instant,
) -> Result<Pass, Error> {
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
    let tracked = extra.tracked.is_some();
    let r = writer::Reload { w, changes, record, strategy: ctx.settings.strategy, extra };
    let written = match ctx.writer.reload(&r).await {
        Ok(written) => written,
        Err(e) => {
            if let Error::Write { source, .. } = &e {
                ctx.reporter.reload_failed(w, changes, source);
            }
            return Err(e);
        }
    };
    match written {
        Written::Rolled => {}
        Written::RecordedOnly(why) => {
            ctx.scheduler.not_written(key);
            ctx.reporter.not_reloading(w, why);
            ctx.scheduler.take_change_age(key);
            return Ok(Pass::Wrote);
        }
        Written::Withheld if ctx.settings.dry_run => {
            // The brake counts what would have been written, so dry-run shows its holds too.
            ctx.scheduler.reloaded(key);
            for c in changes {
                info!(source = %c.source, "dry-run: would reload '{}' of type '{}' for a change of {}", key.name, key.kind, c.source);
            }
            return Ok(Pass::Nothing);
        }
        other => return Ok(Pass::of(other)),
    }
    ctx.scheduler.reloaded(key);
    if let Some(t) = w.pending_rollout() {
        debug!(cause = %t.cause, "the rollout of the previous reload had not ended: superseded");
        ctx.metrics.rollout(key.kind.as_str(), Ended::Superseded.as_str(), None);
    }
    if let (Some(limit), true) = (ctx.settings.rollout_timeout, tracked) {
        ctx.scheduler.after(key.clone(), limit + Duration::from_secs(1));
    }
    if let Some(period) = d.pause_for {
        ctx.scheduler.after(key.clone(), period);
    }
    ctx.metrics.reload(key.kind.as_str(), &key.namespace, true, started.elapsed().as_secs_f64());
    if let Some(age) = ctx.scheduler.take_change_age(key) {
        let kind = WorkloadKindLabel { workload_kind: key.kind.as_str() };
        ctx.metrics.change_to_patch.get_or_create(&kind).observe(age.as_secs_f64());
    }
    for c in changes {
        ctx.reporter.reload(w, c);
    }
    Ok(Pass::Wrote)
}
