//! The answer of `reloader explain`, built from a workload's projection and its namespace's
//! sources by the same pure functions the controller runs, and rendered as text or JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::config::Settings;
use crate::core::decide::govern::Rule;
use crate::core::decide::outcome::{self, Stage};
use crate::core::decide::{self, Change, ChangeKind, Considered, Decision, Plan, Reason, Resume};
use crate::core::gates::breaker::{self, Gate};
use crate::core::kinds::Write;
use crate::core::model::cause::Cause;
use crate::core::model::note::Ended;
use crate::core::model::policy::{KindPolicy, Origin};
use crate::core::model::record::Applied;
use crate::core::model::source::{NamespaceSources, SourceKind, SourceRef};
use crate::core::model::workload::Workload;

/// The answer, as printed with `-o json`.
#[derive(Debug, Serialize)]
pub struct Explanation {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub policy: BTreeMap<String, PolicySummary>,
    pub problems: Vec<String>,
    pub record: RecordSummary,
    pub sources: Vec<SourceLine>,
    /// Held by the storm brake, as the controller's Events show.
    pub held: Option<String>,
    /// With `--enable-ha`: who may write.
    pub leader: Option<String>,
    /// The rollout the last reload started: under way, or how it ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<String>,
    pub decision: NextStep,
    /// The changes a reload would apply, for the circuit breaker's check.
    #[serde(skip)]
    pub(crate) causes: Vec<Cause>,
}

#[derive(Debug, Serialize)]
pub struct PolicySummary {
    pub from: String,
    pub rules: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct RecordSummary {
    pub present: bool,
    pub written_by_other: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct SourceLine {
    pub source: String,
    pub governs: bool,
    pub why: String,
    pub used_by: Option<String>,
    pub current: Option<String>,
    pub applied: Option<String>,
    /// SecretProviderClasses: the objects and versions mounted now (`id=version`; the driver
    /// reports no values).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub versions: Option<Vec<String>>,
}

/// What the controller would do with the workload now.
#[derive(Debug, Serialize)]
pub struct NextStep {
    pub action: Action,
    pub detail: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Nothing,
    Adopt,
    Record,
    Reload,
    Resume,
    /// A reload the storm brake holds.
    Held,
    /// A reload the storm brake spaces: it goes later, with every change until then.
    Deferred,
    /// A reload the circuit breaker holds.
    Halted,
}

impl Action {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Action::Nothing => "nothing",
            Action::Adopt => "adopt",
            Action::Record => "record",
            Action::Reload => "reload",
            Action::Resume => "resume",
            Action::Held => "held",
            Action::Deferred => "deferred",
            Action::Halted => "halted",
        }
    }

    /// Whether the controller would write to the workload.
    pub(crate) fn writes(self) -> bool {
        matches!(self, Action::Reload | Action::Adopt | Action::Record | Action::Resume)
    }
}

/// The `id=version` lines of each SecretProviderClass's current content.
pub(crate) type SpcVersions = BTreeMap<String, Vec<String>>;

/// Builds the explanation from a projection and the namespace's sources (pure).
pub(crate) fn explain(w: &Workload, sources: &NamespaceSources, versions: &SpcVersions, s: &Settings) -> Explanation {
    // A one-shot look has no history of changes: every source is taken as it is now.
    let now = k8s_openapi::jiff::Timestamp::now();
    let (considered, d) = decide::decide(w, Some(sources), None, s.options, &s.keys.pause_period, now);
    let causes = match &d.plan {
        Plan::Reload { changes, .. } => changes.iter().map(Change::cause).collect(),
        _ => Vec::new(),
    };
    Explanation {
        kind: w.key.kind.to_string(),
        namespace: w.key.namespace.clone(),
        name: w.key.name.clone(),
        policy: policy(w, s.keys.csi),
        problems: d.problems.clone(),
        record: RecordSummary {
            present: matches!(w.record, Ok(Some(_))),
            written_by_other: w.record_foreign.clone(),
            error: w.record.as_ref().err().cloned(),
        },
        sources: considered.iter().map(|(r, c)| source_line(w, r, c, versions)).collect(),
        held: None,
        leader: None,
        rollout: rollout_line(w, now.as_second(), s.rollout_timeout),
        decision: with_resume(next_step(w, &d, decide::desired(&considered).is_empty()), d.resume),
        causes,
    }
}

/// The policy as parsed, per source kind.
fn policy(w: &Workload, csi: bool) -> BTreeMap<String, PolicySummary> {
    SourceKind::ALL
        .into_iter()
        .filter(|k| *k != SourceKind::SecretProviderClass || csi)
        .map(|kind| {
            let p = w.policy.for_kind(kind);
            let from = match p.origin {
                Origin::Workload => "workload annotations",
                Origin::PodTemplate => "pod template annotations (fallback)",
            };
            (kind.resource().to_string(), PolicySummary { from: from.into(), rules: rules(p) })
        })
        .collect()
}

fn rules(p: &KindPolicy) -> Vec<String> {
    let mut r = Vec::new();
    if !p.named.is_empty() {
        r.push(format!("named [{}]", p.named.iter().map(|n| n.raw.as_str()).collect::<Vec<_>>().join(", ")));
    }
    if p.search {
        r.push("search (sources with match=\"true\")".into());
    }
    let flag = |r: &mut Vec<String>, v: Option<bool>, what: &str| match v {
        Some(true) => r.push(what.into()),
        Some(false) => r.push(format!("{what}: false")),
        None => {}
    };
    flag(&mut r, p.auto, "auto");
    flag(&mut r, p.typed_auto, "typed auto");
    if p.auto_all {
        r.push(Rule::AutoReloadAll.to_string());
    }
    if !p.exclude.is_empty() {
        r.push(format!("exclude [{}]", p.exclude.join(", ")));
    }
    r
}

fn short(a: Applied) -> String {
    match a {
        Applied::Hash(h) => h.short(),
        Applied::Absent => "absent".into(),
    }
}

fn source_line(w: &Workload, r: &SourceRef, c: &Considered, versions: &SpcVersions) -> SourceLine {
    let (governs, why) = match &c.reason {
        Reason::Governs(rule) => (true, rule.to_string()),
        Reason::PreviouslyGoverned => (true, "governed it before it disappeared; its last content is kept".into()),
        Reason::Skipped(skip) => (false, skip.to_string()),
    };
    SourceLine {
        source: r.to_string(),
        governs,
        why,
        used_by: w.refs.get(r).cloned(),
        current: Some(short(c.current)),
        applied: w.trusted_record().and_then(|rec| rec.get(r)).map(|a| short(*a)),
        versions: (r.kind == SourceKind::SecretProviderClass)
            .then(|| versions.get(&r.name).cloned().unwrap_or_default()),
    }
}

/// What the plan does, in words.
fn next_step(w: &Workload, d: &Decision, nothing_governs: bool) -> NextStep {
    let step = |action, detail: &str| NextStep { action, detail: detail.to_string() };
    match &d.plan {
        Plan::Nothing if nothing_governs => step(Action::Nothing, "no source governs this workload"),
        Plan::Nothing => step(Action::Nothing, "every governing source is as applied"),
        Plan::Adopt(r) => step(
            Action::Adopt,
            &format!(
                "no trusted record yet: record the current state of {} source(s) as the baseline, without a rollout",
                r.len()
            ),
        ),
        Plan::Record(_) => step(
            Action::Record,
            "the governing sources changed without a change that rolls (new reference or policy, or a creation/deletion without --reload-on-create/--reload-on-delete): update the record only",
        ),
        Plan::Reload { changes, .. } => {
            let list: Vec<String> = changes
                .iter()
                .map(|c| {
                    let what = match c.kind {
                        ChangeKind::Updated if d.behind_reloader.contains(&c.source) => {
                            "changed since Stakater Reloader last applied it (its mark names another content)"
                        }
                        ChangeKind::Updated => "changed",
                        ChangeKind::Created => "was created",
                        ChangeKind::Deleted => "was deleted",
                    };
                    format!("{} {what}", c.source)
                })
                .collect();
            let mut detail = format!("roll it: {}", list.join(", "));
            if let Some(why) = &d.record_only {
                detail = format!("{detail}; but {why}, so the change is recorded and nothing rolls");
            } else if w.key.kind.info().write == Write::SpawnJob {
                detail = format!("{detail} (a Job is created from the job template)");
            }
            if let Some(p) = d.pause_for {
                detail = format!("{detail}; the Deployment is paused for {} with it", humantime::format_duration(p));
            }
            NextStep { action: Action::Reload, detail }
        }
    }
}

/// A Deployment this controller paused resumes first, or says when it will.
fn with_resume(next: NextStep, resume: Option<Resume>) -> NextStep {
    match resume {
        Some(Resume::Now) => NextStep {
            action: Action::Resume,
            detail: "the controller paused this Deployment and its pause period is over: resume it first".into(),
        },
        Some(Resume::After(left)) => NextStep {
            detail: format!(
                "{}; the controller paused this Deployment, which resumes in {}",
                next.detail,
                humantime::format_duration(Duration::from_secs(left.as_secs()))
            ),
            ..next
        },
        None => next,
    }
}

/// Where the rollout the last reload started stands, in words.
fn rollout_line(w: &Workload, now: i64, timeout: Option<Duration>) -> Option<String> {
    let t = w.tracked.as_ref()?;
    let ago = |at: i64| humantime::format_duration(Duration::from_secs(now.saturating_sub(at).max(0) as u64));
    let took = t.ended.unwrap_or(t.at).saturating_sub(t.at);
    Some(match t.outcome {
        Some(Ended::Succeeded) => format!("succeeded for {}: available {took} s after the reload", t.cause),
        Some(Ended::Failed) => format!("failed for {}: {}", t.cause, t.reason.as_deref().unwrap_or("unknown")),
        Some(Ended::Superseded) => format!("superseded for {}", t.cause),
        None => match outcome::classify(t, &w.progress, now, timeout) {
            Stage::InProgress(why) => format!("in progress for {} (reloaded {} ago): {why}", t.cause, ago(t.at)),
            // A success is not written on the workload: its status is the record.
            Stage::Succeeded => format!("succeeded for {}: complete and available", t.cause),
            Stage::Failed(why) => format!("failed for {} (not recorded by the controller yet): {why}", t.cause),
            Stage::Untracked => format!("not followed for {}: the workload has no rollout status", t.cause),
        },
    })
}

/// The circuit breaker's hold on the reload `e` decides, if any, unless the source's release
/// mark lifts it (pure). `peers`: the workloads whose tracking notes the breaker counts.
pub(crate) fn halted(
    e: &Explanation,
    peers: &[Workload],
    limit: Option<usize>,
    marks: &BTreeMap<SourceRef, String>,
) -> Option<String> {
    let notes: Vec<_> = peers.iter().filter_map(|p| p.tracked.as_ref()).collect();
    e.causes.iter().find_map(|cause| {
        if breaker::released(marks.get(&cause.source).map(String::as_str), cause.content) {
            return None;
        }
        match breaker::gate(limit, breaker::tally(cause, notes.iter().copied())) {
            Gate::Held(t) => Some(breaker::held_note(cause, t)),
            _ => None,
        }
    })
}

/// Plain text.
pub fn render_text(e: &Explanation) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "{} {}/{}", e.kind, e.namespace, e.name);
    let _ = writeln!(o, "policy:");
    for (kind, p) in &e.policy {
        if p.rules.is_empty() {
            let _ = writeln!(o, "  {kind}: none");
        } else {
            let _ = writeln!(o, "  {kind}: {} (from {})", p.rules.join("; "), p.from);
        }
    }
    if e.problems.is_empty() {
        let _ = writeln!(o, "annotation problems: none");
    } else {
        let _ = writeln!(o, "annotation problems:");
        for p in &e.problems {
            let _ = writeln!(o, "  - {p}");
        }
    }
    let record = match (&e.record.error, &e.record.written_by_other, e.record.present) {
        (Some(err), _, _) => format!("unreadable ({err})"),
        (None, Some(by), _) => format!("written by {by}, not by the controller (not trusted)"),
        (None, None, true) => "present".into(),
        (None, None, false) => "none yet".into(),
    };
    let _ = writeln!(o, "applied record: {record}");
    render_sources(&mut o, &e.sources);
    for (what, line) in [("storm brake", &e.held), ("leader", &e.leader), ("rollout", &e.rollout)] {
        if let Some(l) = line {
            let _ = writeln!(o, "{what}: {l}");
        }
    }
    let _ = writeln!(o, "decision: {}: {}", e.decision.action.as_str(), e.decision.detail);
    o
}

fn render_sources(o: &mut String, sources: &[SourceLine]) {
    if sources.is_empty() {
        let _ = writeln!(o, "sources: none");
        return;
    }
    let _ = writeln!(o, "sources:");
    for s in sources {
        let verdict = if s.governs { "governs" } else { "skipped" };
        let _ = write!(o, "  {}: {verdict}: {}", s.source, s.why);
        if let Some(c) = &s.used_by {
            let _ = write!(o, "; used by container {c:?}");
        }
        if s.governs {
            let current = s.current.as_deref().unwrap_or("-");
            let _ = write!(o, "; current {current}, applied {}", s.applied.as_deref().unwrap_or("not recorded"));
        }
        if let Some(v) = &s.versions {
            let mounted = if v.is_empty() { "nothing (no pod mounts it)".to_string() } else { v.join(", ") };
            let _ = write!(o, "; mounted versions: {mounted}");
        }
        let _ = writeln!(o);
    }
}
