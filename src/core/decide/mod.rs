//! The level-triggered decision: from a workload's projection and the current sources, the
//! desired record (what governs it, at which content), and the plan that takes the workload
//! from its applied record to it. Pure functions; `reconcile` does the I/O.

pub(crate) mod govern;
pub(crate) mod migrate;
pub(crate) mod outcome;
pub(crate) mod patch;

use std::collections::{BTreeMap, BTreeSet};

use crate::core::decide::govern::{Rule, Skip, govern};
use crate::core::index::history::History;
use crate::core::model::cause::Cause;
use crate::core::model::hash::ContentHash;
use crate::core::model::record::{Applied, Record};
use crate::core::model::source::{NamespaceSources, SourceKind, SourceRef};
use crate::core::model::workload::Workload;

/// Reloader's `--reload-on-create` / `--reload-on-delete`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Options {
    pub(crate) reload_on_create: bool,
    pub(crate) reload_on_delete: bool,
}

/// Why a source is (or is not) part of the desired state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Reason {
    Governs(Rule),
    /// The source is gone, longer than the history keeps the deleted object; it governed the
    /// workload before, so its applied entry is kept and a re-created source is compared with it.
    PreviouslyGoverned,
    Skipped(Skip),
}

/// One source considered for a workload, for the plan and for `reloader explain`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Considered {
    pub(crate) reason: Reason,
    /// Current state: its hash, or `Absent` if it does not exist.
    pub(crate) current: Applied,
    /// Its state when the workload was first seen as it is (its anchor): differs from
    /// `current` only when the source changed after that. A source the workload has no record
    /// of starts from this baseline.
    pub(crate) seen: Applied,
    pub(crate) referenced: bool,
}

/// Every source that a workload's policy could involve, with the verdict on each. `history`
/// gives what recently changed sources held before (none: every source as it is now).
pub(crate) fn consider(
    w: &Workload,
    sources: Option<&NamespaceSources>,
    history: Option<&History>,
) -> BTreeMap<SourceRef, Considered> {
    let empty = NamespaceSources::default();
    let sources = sources.unwrap_or(&empty);
    let recorded = w.trusted_record();

    let mut candidates: Vec<SourceRef> = w.refs.keys().cloned().collect();
    for kind in SourceKind::ALL {
        let p = w.policy.for_kind(kind);
        if p.named.is_empty() {
            continue;
        }
        candidates.extend(
            sources
                .of_kind(kind)
                .keys()
                .filter(|n| p.named.iter().any(|pat| pat.is_match(n)))
                .map(|n| SourceRef::new(kind, n.as_str())),
        );
        // A literal name can be governed before it exists, so that its creation is a change
        // (`--reload-on-create`); a real pattern cannot be enumerated in advance.
        candidates
            .extend(p.named.iter().filter(|pat| pat.is_literal()).map(|pat| SourceRef::new(kind, pat.raw.as_str())));
    }
    if let Some(r) = recorded {
        candidates.extend(r.keys().cloned());
    }

    let mut out = BTreeMap::new();
    for c in candidates {
        if out.contains_key(&c) {
            continue;
        }
        let info = sources.get(&c);
        let referenced = w.refs.contains_key(&c);
        // A source that is gone is judged by the annotations of the deleted object, as Reloader
        // does: an ignored one never governs, a matched one still does in search mode.
        let deleted = match (info, history) {
            (None, Some(h)) => h.before_last_change(&w.key.namespace, &c),
            _ => None,
        };
        let verdict = govern(w.policy.for_kind(c.kind), &c.name, info.or(deleted), referenced);
        let current = info.map_or(Applied::Absent, |i| Applied::Hash(i.hash));
        let seen = match (history, w.anchor) {
            (Some(h), Some(rv)) => h.content_at(&w.key.namespace, &c, rv, current),
            _ => current,
        };
        let was_recorded = recorded.is_some_and(|r| r.contains_key(&c));
        let reason = match verdict {
            Ok(rule) => Reason::Governs(rule),
            // A source gone longer than the history remembers has no annotations left to
            // decide by (search mode needs `match`): if the template still uses it and it
            // governed before, it still does, so a re-created one is compared by content.
            Err(Skip::NoRule) if info.is_none() && deleted.is_none() && referenced && was_recorded => {
                Reason::PreviouslyGoverned
            }
            Err(skip) => Reason::Skipped(skip),
        };
        out.insert(c, Considered { reason, current, seen, referenced });
    }
    out
}

/// The desired record: every governing source at its current state.
pub(crate) fn desired(considered: &BTreeMap<SourceRef, Considered>) -> Record {
    considered
        .iter()
        .filter(|(_, c)| !matches!(c.reason, Reason::Skipped(_)))
        .map(|(r, c)| (r.clone(), c.current))
        .collect()
}

/// The baseline of every governing source: its state when the workload was first seen.
pub(crate) fn seen(considered: &BTreeMap<SourceRef, Considered>) -> Record {
    considered
        .iter()
        .filter(|(_, c)| !matches!(c.reason, Reason::Skipped(_)))
        .map(|(r, c)| (r.clone(), c.seen))
        .collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ChangeKind {
    Updated,
    Created,
    Deleted,
}

/// A source change that rolls the workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Change {
    pub(crate) source: SourceRef,
    pub(crate) kind: ChangeKind,
    /// The new content hash (`None` for a deletion).
    pub(crate) hash: Option<ContentHash>,
}

impl Change {
    /// Its identity, as notes, Events and the circuit breaker name it.
    pub(crate) fn cause(&self) -> Cause {
        Cause::new(self.source.clone(), self.hash)
    }
}

/// What to do with a workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Plan {
    Nothing,
    /// No (trusted) record yet and nothing changed since the workload was first seen: record
    /// the current state as the baseline, no rollout. This is how a switch from Reloader
    /// causes zero rollouts.
    Adopt(Record),
    /// The governing set changed without a change that counts: update the record only.
    Record(Record),
    /// Roll the workload for these changes and record the new state.
    Reload {
        changes: Vec<Change>,
        record: Record,
    },
}

/// Compares the desired record with the applied one. A source missing from the record (a
/// workload seen for the first time, or a source newly governed) is compared from `seen`, its
/// state when the workload was first seen as it is: a change after that is a change, so a
/// reload is not lost when the first record is written late. Without a record, a source in
/// `behind` (Stakater Reloader's marks show it had not applied its content, see `migrate`)
/// is a change too.
pub(crate) fn plan(w: &Workload, desired: &Record, seen: &Record, behind: &BTreeSet<SourceRef>, opts: Options) -> Plan {
    let untrusted = Record::new();
    let (old, adopt) = match (w.trusted_record(), &w.record) {
        (Some(r), _) => (r, false),
        (None, Ok(None)) if desired.is_empty() => return Plan::Nothing,
        // No record, one someone else wrote (see `Workload::record_foreign`), or an unreadable
        // one: the record is written whatever the outcome.
        _ => (&untrusted, true),
    };
    let mut new = Record::new();
    let mut changes = Vec::new();
    for (src, want) in desired {
        // A SecretProviderClass appears with the first pod that mounts it and disappears with
        // the last: neither is a change of what a pod sees, and Reloader acts on neither.
        let opts = if src.kind == SourceKind::SecretProviderClass { Options::default() } else { opts };
        let keep = match (old.get(src).or_else(|| seen.get(src)), *want) {
            (None, w) => w,
            (Some(Applied::Hash(a)), Applied::Hash(b)) => {
                if *a != b {
                    changes.push(Change { source: src.clone(), kind: ChangeKind::Updated, hash: Some(b) });
                }
                Applied::Hash(b)
            }
            (Some(Applied::Absent), Applied::Hash(b)) => {
                if opts.reload_on_create {
                    changes.push(Change { source: src.clone(), kind: ChangeKind::Created, hash: Some(b) });
                }
                Applied::Hash(b)
            }
            (Some(Applied::Hash(a)), Applied::Absent) => {
                if opts.reload_on_delete {
                    changes.push(Change { source: src.clone(), kind: ChangeKind::Deleted, hash: None });
                    Applied::Absent
                } else {
                    // Keep the content it had, so re-creating it with other content reloads
                    // and with the same content does not.
                    Applied::Hash(*a)
                }
            }
            (Some(Applied::Absent), Applied::Absent) => Applied::Absent,
        };
        if adopt
            && behind.contains(src)
            && !changes.iter().any(|c: &Change| &c.source == src)
            && let Applied::Hash(b) = keep
        {
            changes.push(Change { source: src.clone(), kind: ChangeKind::Updated, hash: Some(b) });
        }
        new.insert(src.clone(), keep);
    }
    if !changes.is_empty() {
        Plan::Reload { changes, record: new }
    } else if adopt {
        Plan::Adopt(new)
    } else if &new != old {
        Plan::Record(new)
    } else {
        Plan::Nothing
    }
}

/// What a ConfigMap/Secret event asks for, once the index has it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SourceAction {
    /// Nothing a pod sees changed (labels, annotations other than match/ignore).
    Nothing,
    /// Its match/ignore flags changed: which workloads it governs may have, so they are looked
    /// at now and record it (no rollout); its next content change is compared with that.
    Regovern,
    /// Its content changed (or it appeared or disappeared): the workloads that use it, after
    /// the debounce.
    Reload,
    /// Webhook mode (`--webhook-url`): notify instead of reloading.
    Webhook,
}

/// Decides what a source event asks for, from its content before and after (`None`: absent),
/// whether its match/ignore flags changed, and the mode. In webhook mode, as Reloader does,
/// every content change of an existing source notifies; a creation only with
/// `--reload-on-create` once the initial list is done; a deletion only with
/// `--reload-on-delete`.
pub(crate) fn source_action(
    before: Option<ContentHash>,
    after: Option<ContentHash>,
    flags_changed: bool,
    webhook: bool,
    opts: Options,
    synced: bool,
) -> SourceAction {
    if before == after {
        return if flags_changed && !webhook { SourceAction::Regovern } else { SourceAction::Nothing };
    }
    if !webhook {
        return SourceAction::Reload;
    }
    let notify = match (before, after) {
        (Some(_), Some(_)) => true,
        (None, Some(_)) => opts.reload_on_create && synced,
        (Some(_), None) => opts.reload_on_delete,
        (None, None) => false,
    };
    if notify { SourceAction::Webhook } else { SourceAction::Nothing }
}

/// A Deployment this controller paused: when to resume it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Resume {
    /// Its pause period is over (or cannot be read any more): resume now.
    Now,
    /// Look again after this long.
    After(std::time::Duration),
}

/// Everything `apply` acts on for one workload: the plan, and the rules around it that used to
/// live in the I/O code (pause and resume, suspended CronJobs, annotation problems).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Decision {
    pub(crate) plan: Plan,
    /// Malformed annotations, each reported; the rest of the policy still applies.
    pub(crate) problems: Vec<String>,
    /// A pause period on a kind that does not honour it (only Deployments do), to warn about.
    pub(crate) pause_ignored: bool,
    /// A Deployment paused by this controller (its paused-at annotation set).
    pub(crate) resume: Option<Resume>,
    /// With a reload of a Deployment that has a valid pause period and is not paused yet:
    /// pause it for this long.
    pub(crate) pause_for: Option<std::time::Duration>,
    /// The reload is recorded without rolling anything, for this reason (Reloader #822: a
    /// suspended CronJob must not run).
    pub(crate) record_only: Option<String>,
    /// An adoption of a workload none of whose governing sources changed since its first
    /// sight: the record only restates what that first sight already gives, so its write may
    /// wait its turn (`--adoption-writes-per-second`). Any later change brings the workload
    /// back at once and is decided from the first sight; an adoption that records something
    /// else (a source created or deleted since) is the baseline of the next change, and is
    /// written at once.
    pub(crate) quiet_adoption: bool,
    /// The governing sources Stakater Reloader's marks show it had not applied, at a switch
    /// from it (`migrate::behind`): each is a change of the plan.
    pub(crate) behind_reloader: BTreeSet<SourceRef>,
}

/// Decides for one workload from its projection, its namespace's sources, their recent
/// history and the wall-clock time `now` (for the pause period). `pause_key` names the
/// pause-period annotation in problem reports.
pub(crate) fn decide(
    w: &Workload,
    sources: Option<&NamespaceSources>,
    history: Option<&History>,
    opts: Options,
    pause_key: &str,
    now: k8s_openapi::jiff::Timestamp,
) -> (BTreeMap<SourceRef, Considered>, Decision) {
    let considered = consider(w, sources, history);
    let (desired, seen) = (desired(&considered), seen(&considered));
    let behind = migrate::behind(w, &desired, sources);
    let plan = plan(w, &desired, &seen, &behind, opts);
    let quiet_adoption = matches!(plan, Plan::Adopt(_)) && desired == seen;
    let mut problems: Vec<String> = w.policy.errors.iter().map(|e| e.to_string()).collect();
    let pause = w.controls.pause_period.as_deref().map(crate::core::model::duration::parse_go_duration);
    if let Some(Err(e)) = &pause {
        problems.push(format!("annotation {pause_key:?}: {e}; reloads happen without a pause"));
    }
    // Only Deployments honour it (`KindInfo::pause_period`).
    let honoured = w.key.kind.info().pause_period;
    let period = match &pause {
        Some(Ok(d)) if honoured => Some(*d),
        _ => None,
    };
    let resume = match (&w.controls.paused_at, honoured && w.controls.spec_paused) {
        (Some(at), true) => {
            let elapsed = at
                .parse::<k8s_openapi::jiff::Timestamp>()
                .ok()
                .and_then(|t| std::time::Duration::try_from(now.duration_since(t)).ok());
            // Unreadable start, or no valid period any more: resume now.
            let due = match (period, elapsed) {
                (Some(p), Some(e)) => p.saturating_sub(e),
                _ => std::time::Duration::ZERO,
            };
            Some(if due.is_zero() { Resume::Now } else { Resume::After(due) })
        }
        _ => None,
    };
    let reload = matches!(plan, Plan::Reload { .. });
    let pause_for = period.filter(|_| reload && !w.controls.spec_paused);
    let record_only = (reload && w.controls.suspended).then(|| format!("the {} is suspended", w.key.kind));
    let decision = Decision {
        plan,
        problems,
        pause_ignored: matches!(pause, Some(Ok(_))) && !honoured,
        resume,
        pause_for,
        record_only,
        quiet_adoption,
        behind_reloader: behind,
    };
    (considered, decision)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::kinds::WorkloadKind;
    use crate::core::model::hash::ContentHash;
    use crate::core::model::keys::Keys;
    use crate::core::model::record::{RECORD_ANNOTATION, encode};
    use crate::core::model::source::SourceInfo;
    use crate::core::model::workload::project;
    use k8s_openapi::api::core::v1::PodTemplateSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use serde_json::json;

    const AUTO: &str = "reloader.stakater.com/auto";
    const CM_RELOAD: &str = "configmap.reloader.stakater.com/reload";
    const SECRET_RELOAD: &str = "secret.reloader.stakater.com/reload";
    const SEARCH: &str = "reloader.stakater.com/search";
    const CM_EXCLUDE: &str = "configmaps.exclude.reloader.stakater.com/reload";

    fn h(n: u8) -> ContentHash {
        ContentHash([n; 32])
    }
    fn hash(n: u8) -> Applied {
        Applied::Hash(h(n))
    }
    fn cm(n: &str) -> SourceRef {
        SourceRef::new(SourceKind::ConfigMap, n)
    }
    fn sec(n: &str) -> SourceRef {
        SourceRef::new(SourceKind::Secret, n)
    }
    fn mk_record(entries: &[(SourceRef, Applied)]) -> Record {
        entries.iter().cloned().collect()
    }

    /// The record annotation a workload carries.
    #[derive(Clone, Debug)]
    enum Rec {
        None,
        Malformed,
        Some(Vec<(SourceRef, Applied)>),
    }

    impl Rec {
        fn annotation(&self) -> Option<String> {
            match self {
                Rec::None => None,
                Rec::Malformed => Some("{not json".to_string()),
                Rec::Some(entries) => Some(encode(&mk_record(entries))),
            }
        }
    }

    /// A workload spec: its own annotations, its pod-template annotations, the ConfigMaps and
    /// Secrets its single container uses (via `envFrom`), and its record.
    #[derive(Clone, Debug)]
    struct Spec {
        meta: Vec<(&'static str, &'static str)>,
        template: Vec<(&'static str, &'static str)>,
        cms: Vec<&'static str>,
        secrets: Vec<&'static str>,
    }

    fn mk_spec(meta: &[(&'static str, &'static str)], cms: &[&'static str], secrets: &[&'static str]) -> Spec {
        Spec { meta: meta.to_vec(), template: vec![], cms: cms.to_vec(), secrets: secrets.to_vec() }
    }

    fn mk_template(s: &Spec) -> PodTemplateSpec {
        let annotations: BTreeMap<&str, &str> = s.template.iter().copied().collect();
        let env_from: Vec<serde_json::Value> = s
            .cms
            .iter()
            .map(|n| json!({"configMapRef": {"name": n}}))
            .chain(s.secrets.iter().map(|n| json!({"secretRef": {"name": n}})))
            .collect();
        serde_json::from_value(json!({
            "metadata": {"annotations": annotations},
            "spec": {"containers": [{"name": "app", "image": "app:1", "envFrom": env_from}]},
        }))
        .expect("valid PodTemplateSpec")
    }

    fn mk_workload(s: &Spec, record: Option<String>) -> Workload {
        let mut annotations: BTreeMap<String, String> =
            s.meta.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        if let Some(r) = record {
            annotations.insert(RECORD_ANNOTATION.to_string(), r);
        }
        let meta = ObjectMeta {
            name: Some("web".into()),
            namespace: Some("ns".into()),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        };
        project(WorkloadKind::Deployment, &meta, Some(&mk_template(s)), &Keys::default(), false)
    }

    /// One ConfigMap or Secret in the namespace.
    #[derive(Clone, Debug)]
    struct Src {
        r: SourceRef,
        hash: u8,
        matched: bool,
        ignored: bool,
    }
    impl Src {
        fn info(&self) -> SourceInfo {
            SourceInfo {
                hash: h(self.hash),
                matched: self.matched,
                ignored: self.ignored,
                content_rv: None,
                reloader: Default::default(),
            }
        }
    }
    fn plain(r: SourceRef, hash: u8) -> Src {
        Src { r, hash, matched: false, ignored: false }
    }
    fn matched(r: SourceRef, hash: u8) -> Src {
        Src { r, hash, matched: true, ignored: false }
    }
    fn ignored(r: SourceRef, hash: u8) -> Src {
        Src { r, hash, matched: false, ignored: true }
    }
    fn mk_sources(list: &[Src]) -> NamespaceSources {
        let mut ns = NamespaceSources::default();
        for s in list {
            ns.of_kind_mut(s.r.kind).insert(s.r.name.clone(), s.info());
        }
        ns
    }

    fn no_opts() -> Options {
        Options::default()
    }
    fn on_create() -> Options {
        Options { reload_on_create: true, reload_on_delete: false }
    }
    fn on_delete() -> Options {
        Options { reload_on_create: false, reload_on_delete: true }
    }
    fn both() -> Options {
        Options { reload_on_create: true, reload_on_delete: true }
    }

    fn updated(r: SourceRef, n: u8) -> Change {
        Change { source: r, kind: ChangeKind::Updated, hash: Some(h(n)) }
    }
    fn created(r: SourceRef, n: u8) -> Change {
        Change { source: r, kind: ChangeKind::Created, hash: Some(h(n)) }
    }
    fn deleted(r: SourceRef) -> Change {
        Change { source: r, kind: ChangeKind::Deleted, hash: None }
    }
    fn reload(changes: Vec<Change>, record: &[(SourceRef, Applied)]) -> Plan {
        Plan::Reload { changes, record: mk_record(record) }
    }

    #[test]
    fn plan_table() {
        struct Case {
            name: &'static str,
            record: Rec,
            desired: Vec<(SourceRef, Applied)>,
            opts: Options,
            want: Plan,
        }
        /// A row in the making: its name and options, then [`Named::given`] the record the
        /// workload carries and the desired state, then [`Given::plans`] the expected plan.
        struct Named {
            name: &'static str,
            opts: Options,
        }
        struct Given {
            name: &'static str,
            opts: Options,
            record: Rec,
            desired: Vec<(SourceRef, Applied)>,
        }
        fn row(name: &'static str, opts: Options) -> Named {
            Named { name, opts }
        }
        impl Named {
            fn given(self, record: Rec, desired: &[(SourceRef, Applied)]) -> Given {
                Given { name: self.name, opts: self.opts, record, desired: desired.to_vec() }
            }
        }
        impl Given {
            fn plans(self, want: Plan) -> Case {
                Case { name: self.name, record: self.record, desired: self.desired, opts: self.opts, want }
            }
        }
        /// A record holding these entries.
        fn rec(entries: &[(SourceRef, Applied)]) -> Rec {
            Rec::Some(entries.to_vec())
        }
        let cases = vec![
            // --- first sight ---
            row("no record, nothing governs: nothing to do", no_opts()).given(Rec::None, &[]).plans(Plan::Nothing),
            row("no record, nothing governs, even with both flags", both()).given(Rec::None, &[]).plans(Plan::Nothing),
            row("no record: adopt the current state without a rollout", no_opts())
                .given(Rec::None, &[(cm("a"), hash(1)), (sec("s"), hash(2))])
                .plans(Plan::Adopt(mk_record(&[(cm("a"), hash(1)), (sec("s"), hash(2))]))),
            row("no record: adopt even with reload-on-create", both())
                .given(Rec::None, &[(cm("a"), hash(1))])
                .plans(Plan::Adopt(mk_record(&[(cm("a"), hash(1))]))),
            row("no record: adopt records absent sources as Absent", no_opts())
                .given(Rec::None, &[(cm("a"), Applied::Absent)])
                .plans(Plan::Adopt(mk_record(&[(cm("a"), Applied::Absent)]))),
            row("malformed record: adopt", both())
                .given(Rec::Malformed, &[(cm("a"), hash(1))])
                .plans(Plan::Adopt(mk_record(&[(cm("a"), hash(1))]))),
            row("malformed record and nothing governs: adopt the empty record (overwrite it)", no_opts())
                .given(Rec::Malformed, &[])
                .plans(Plan::Adopt(Record::new())),
            // --- steady state ---
            row("empty record, nothing governs", both()).given(rec(&[]), &[]).plans(Plan::Nothing),
            row("equal: nothing", both())
                .given(rec(&[(cm("a"), hash(1)), (sec("s"), hash(2))]), &[(cm("a"), hash(1)), (sec("s"), hash(2))])
                .plans(Plan::Nothing),
            row("equal with an Absent entry: nothing", both())
                .given(rec(&[(cm("a"), Applied::Absent)]), &[(cm("a"), Applied::Absent)])
                .plans(Plan::Nothing),
            // --- updates ---
            row("hash changed: reload Updated", no_opts())
                .given(rec(&[(cm("a"), hash(1))]), &[(cm("a"), hash(2))])
                .plans(reload(vec![updated(cm("a"), 2)], &[(cm("a"), hash(2))])),
            row("hash changed: Updated regardless of the create/delete flags", both())
                .given(rec(&[(sec("s"), hash(1))]), &[(sec("s"), hash(9))])
                .plans(reload(vec![updated(sec("s"), 9)], &[(sec("s"), hash(9))])),
            row("one of two changed: one change, both recorded", no_opts())
                .given(rec(&[(cm("a"), hash(1)), (cm("b"), hash(1))]), &[(cm("a"), hash(1)), (cm("b"), hash(2))])
                .plans(reload(vec![updated(cm("b"), 2)], &[(cm("a"), hash(1)), (cm("b"), hash(2))])),
            row("two sources changed at once: one reload with two changes", no_opts())
                .given(rec(&[(cm("a"), hash(1)), (sec("s"), hash(1))]), &[(cm("a"), hash(2)), (sec("s"), hash(3))])
                .plans(reload(
                    vec![updated(cm("a"), 2), updated(sec("s"), 3)],
                    &[(cm("a"), hash(2)), (sec("s"), hash(3))],
                )),
            // --- newly governed ---
            row("newly governed source: record only", no_opts())
                .given(rec(&[(cm("a"), hash(1))]), &[(cm("a"), hash(1)), (cm("b"), hash(5))])
                .plans(Plan::Record(mk_record(&[(cm("a"), hash(1)), (cm("b"), hash(5))]))),
            row("newly governed source: record only, even with reload-on-create", both())
                .given(rec(&[(cm("a"), hash(1))]), &[(cm("a"), hash(1)), (sec("b"), hash(5))])
                .plans(Plan::Record(mk_record(&[(cm("a"), hash(1)), (sec("b"), hash(5))]))),
            row("newly governed absent source: recorded as Absent", both())
                .given(rec(&[]), &[(cm("b"), Applied::Absent)])
                .plans(Plan::Record(mk_record(&[(cm("b"), Applied::Absent)]))),
            // --- created ---
            row("recorded Absent, now present, reload-on-create: reload Created", on_create())
                .given(rec(&[(cm("a"), Applied::Absent)]), &[(cm("a"), hash(4))])
                .plans(reload(vec![created(cm("a"), 4)], &[(cm("a"), hash(4))])),
            row("recorded Absent, now present, no reload-on-create: record only", no_opts())
                .given(rec(&[(cm("a"), Applied::Absent)]), &[(cm("a"), hash(4))])
                .plans(Plan::Record(mk_record(&[(cm("a"), hash(4))]))),
            row("recorded Absent, now present, only reload-on-delete: record only", on_delete())
                .given(rec(&[(sec("a"), Applied::Absent)]), &[(sec("a"), hash(4))])
                .plans(Plan::Record(mk_record(&[(sec("a"), hash(4))]))),
            row("recorded Absent, still absent: nothing", both())
                .given(rec(&[(cm("a"), Applied::Absent)]), &[(cm("a"), Applied::Absent)])
                .plans(Plan::Nothing),
            // --- deleted ---
            row("recorded hash, now absent, reload-on-delete: reload Deleted, record Absent", on_delete())
                .given(rec(&[(cm("a"), hash(1))]), &[(cm("a"), Applied::Absent)])
                .plans(reload(vec![deleted(cm("a"))], &[(cm("a"), Applied::Absent)])),
            row("recorded hash, now absent, no reload-on-delete: old hash kept, nothing", no_opts())
                .given(rec(&[(cm("a"), hash(1))]), &[(cm("a"), Applied::Absent)])
                .plans(Plan::Nothing),
            row("recorded hash, now absent, only reload-on-create: old hash kept, nothing", on_create())
                .given(rec(&[(sec("a"), hash(1))]), &[(sec("a"), Applied::Absent)])
                .plans(Plan::Nothing),
            row("kept hash, re-created with the same content: nothing", on_create())
                .given(rec(&[(cm("a"), hash(1))]), &[(cm("a"), hash(1))])
                .plans(Plan::Nothing),
            row("kept hash, re-created with other content: reload Updated", on_create())
                .given(rec(&[(cm("a"), hash(1))]), &[(cm("a"), hash(2))])
                .plans(reload(vec![updated(cm("a"), 2)], &[(cm("a"), hash(2))])),
            row("kept hash while absent, other source updated: kept hash stays in the new record", no_opts())
                .given(
                    rec(&[(cm("a"), hash(1)), (cm("b"), hash(1))]),
                    &[(cm("a"), Applied::Absent), (cm("b"), hash(2))],
                )
                .plans(reload(vec![updated(cm("b"), 2)], &[(cm("a"), hash(1)), (cm("b"), hash(2))])),
            row("update and delete together with reload-on-delete: one reload, two changes", on_delete())
                .given(
                    rec(&[(cm("a"), hash(1)), (sec("s"), hash(1))]),
                    &[(cm("a"), hash(2)), (sec("s"), Applied::Absent)],
                )
                .plans(reload(
                    vec![updated(cm("a"), 2), deleted(sec("s"))],
                    &[(cm("a"), hash(2)), (sec("s"), Applied::Absent)],
                )),
            row("create and delete together with both flags", both())
                .given(
                    rec(&[(cm("a"), Applied::Absent), (cm("b"), hash(1))]),
                    &[(cm("a"), hash(3)), (cm("b"), Applied::Absent)],
                )
                .plans(reload(
                    vec![created(cm("a"), 3), deleted(cm("b"))],
                    &[(cm("a"), hash(3)), (cm("b"), Applied::Absent)],
                )),
            // --- no longer governed ---
            row("source no longer governed: dropped from the record", no_opts())
                .given(rec(&[(cm("a"), hash(1)), (cm("b"), hash(1))]), &[(cm("a"), hash(1))])
                .plans(Plan::Record(mk_record(&[(cm("a"), hash(1))]))),
            row("last source no longer governed: empty record", both())
                .given(rec(&[(sec("s"), hash(1))]), &[])
                .plans(Plan::Record(Record::new())),
            row("dropped Absent entry: record only", both())
                .given(rec(&[(sec("s"), Applied::Absent)]), &[])
                .plans(Plan::Record(Record::new())),
            row("update + dropped + newly governed: one change, record is exactly the desired set", both())
                .given(rec(&[(cm("a"), hash(1)), (cm("gone"), hash(1))]), &[(cm("a"), hash(2)), (sec("new"), hash(7))])
                .plans(reload(vec![updated(cm("a"), 2)], &[(cm("a"), hash(2)), (sec("new"), hash(7))])),
        ];
        for c in &cases {
            let w = mk_workload(&mk_spec(&[], &[], &[]), c.record.annotation());
            match (&c.record, &w.record) {
                (Rec::Malformed, Err(_)) | (Rec::None, Ok(None)) | (Rec::Some(_), Ok(Some(_))) => {}
                (r, got) => panic!("row {:?}: record {r:?} projected as {got:?}", c.name),
            }
            // Nothing changed since first sight: the baseline is the current state.
            let desired = mk_record(&c.desired);
            let got = plan(&w, &desired, &desired, &BTreeSet::new(), c.opts);
            assert_eq!(got, c.want, "row {:?}", c.name);
        }
    }

    /// A source missing from the record is compared from its state when the workload was
    /// first seen (`seen`), so a change between first sight and the first record write rolls.
    #[test]
    fn plan_from_first_sight_table() {
        type Entries = Vec<(SourceRef, Applied)>;
        // (name, record, desired (now), seen (at first sight), options, plan)
        let rows: Vec<(&str, Rec, Entries, Entries, Options, Plan)> = vec![
            (
                "no record, changed since first sight: reload, and the record is written with it",
                Rec::None,
                vec![(cm("a"), hash(2)), (sec("s"), hash(5))],
                vec![(cm("a"), hash(1)), (sec("s"), hash(5))],
                no_opts(),
                reload(vec![updated(cm("a"), 2)], &[(cm("a"), hash(2)), (sec("s"), hash(5))]),
            ),
            (
                "no record, unchanged since first sight: adopt",
                Rec::None,
                vec![(cm("a"), hash(2))],
                vec![(cm("a"), hash(2))],
                both(),
                Plan::Adopt(mk_record(&[(cm("a"), hash(2))])),
            ),
            (
                "no record, created since first sight, reload-on-create: reload Created",
                Rec::None,
                vec![(cm("app-config"), hash(3))],
                vec![(cm("app-config"), Applied::Absent)],
                on_create(),
                reload(vec![created(cm("app-config"), 3)], &[(cm("app-config"), hash(3))]),
            ),
            (
                "no record, created since first sight, no reload-on-create: adopt",
                Rec::None,
                vec![(cm("app-config"), hash(3))],
                vec![(cm("app-config"), Applied::Absent)],
                no_opts(),
                Plan::Adopt(mk_record(&[(cm("app-config"), hash(3))])),
            ),
            (
                "no record, deleted since first sight, reload-on-delete: reload Deleted",
                Rec::None,
                vec![(cm("a"), Applied::Absent)],
                vec![(cm("a"), hash(1))],
                on_delete(),
                reload(vec![deleted(cm("a"))], &[(cm("a"), Applied::Absent)]),
            ),
            (
                "no record, deleted since first sight, no reload-on-delete: adopt keeping its content",
                Rec::None,
                vec![(cm("a"), Applied::Absent)],
                vec![(cm("a"), hash(1))],
                no_opts(),
                Plan::Adopt(mk_record(&[(cm("a"), hash(1))])),
            ),
            (
                "malformed record, changed since first sight: reload",
                Rec::Malformed,
                vec![(cm("a"), hash(2))],
                vec![(cm("a"), hash(1))],
                no_opts(),
                reload(vec![updated(cm("a"), 2)], &[(cm("a"), hash(2))]),
            ),
            (
                "newly governed source changed since it was first governed: reload",
                Rec::Some(vec![(cm("a"), hash(1))]),
                vec![(cm("a"), hash(1)), (cm("b"), hash(6))],
                vec![(cm("a"), hash(1)), (cm("b"), hash(5))],
                no_opts(),
                reload(vec![updated(cm("b"), 6)], &[(cm("a"), hash(1)), (cm("b"), hash(6))]),
            ),
            (
                "the record wins over first sight for recorded sources",
                Rec::Some(vec![(cm("a"), hash(2))]),
                vec![(cm("a"), hash(2))],
                vec![(cm("a"), hash(1))],
                both(),
                Plan::Nothing,
            ),
        ];
        for (name, record, desired, seen, opts, want) in rows {
            let w = mk_workload(&mk_spec(&[], &[], &[]), record.annotation());
            let got = plan(&w, &mk_record(&desired), &mk_record(&seen), &BTreeSet::new(), opts);
            assert_eq!(got, want, "row {name:?}");
        }
    }

    /// At a switch from Reloader (`migrate::behind`): a source its marks show it had not
    /// applied rolls the workload, with the others, once; with a record of ours they count not.
    #[test]
    fn plan_with_sources_reloader_had_not_applied() {
        let behind: BTreeSet<SourceRef> = [cm("a")].into();
        let now = vec![(cm("a"), hash(2)), (sec("s"), hash(5))];
        let rows: Vec<(&str, Rec, Plan)> = vec![
            (
                "no record: the source behind rolls, the record is written with it",
                Rec::None,
                reload(vec![updated(cm("a"), 2)], &[(cm("a"), hash(2)), (sec("s"), hash(5))]),
            ),
            ("a record of ours: nothing", Rec::Some(now.clone()), Plan::Nothing),
        ];
        for (name, record, want) in rows {
            let w = mk_workload(&mk_spec(&[], &[], &[]), record.annotation());
            let got = plan(&w, &mk_record(&now), &mk_record(&now), &behind, no_opts());
            assert_eq!(got, want, "row {name:?}");
        }
        // Changed since first sight too: one change, not two.
        let w = mk_workload(&mk_spec(&[], &[], &[]), Rec::None.annotation());
        let got =
            plan(&w, &mk_record(&now), &mk_record(&[(cm("a"), hash(1)), (sec("s"), hash(5))]), &behind, no_opts());
        assert_eq!(got, reload(vec![updated(cm("a"), 2)], &[(cm("a"), hash(2)), (sec("s"), hash(5))]));
    }

    #[test]
    fn first_sight_comes_from_the_history_at_the_workload_anchor() {
        use crate::core::index::history::History;
        let spec = mk_spec(&[(AUTO, "true")], &["app-config"], &[]);
        let mut w = mk_workload(&spec, None);
        w.anchor = Some(100);
        let sources = mk_sources(&[plain(cm("app-config"), 2)]);
        let mut hist = History::default();
        let t = std::time::Instant::now();
        // Changed 1 -> 2 at resourceVersion 105: after the workload was first seen (100).
        hist.changed("ns", &cm("app-config"), 105, Some(plain(cm("app-config"), 1).info()), t);
        let considered = consider(&w, Some(&sources), Some(&hist));
        assert_eq!(considered[&cm("app-config")].seen, hash(1));
        assert_eq!(considered[&cm("app-config")].current, hash(2));
        let p = plan(&w, &desired(&considered), &seen(&considered), &BTreeSet::new(), no_opts());
        assert_eq!(p, reload(vec![updated(cm("app-config"), 2)], &[(cm("app-config"), hash(2))]));

        // Seen after the change (anchor 110): adopted as it is.
        w.anchor = Some(110);
        let considered = consider(&w, Some(&sources), Some(&hist));
        let p = plan(&w, &desired(&considered), &seen(&considered), &BTreeSet::new(), no_opts());
        assert_eq!(p, Plan::Adopt(mk_record(&[(cm("app-config"), hash(2))])));

        // No anchor (a resourceVersion that is not a number): as it is now.
        w.anchor = None;
        let considered = consider(&w, Some(&sources), Some(&hist));
        assert_eq!(considered[&cm("app-config")].seen, hash(2));
    }

    /// Only an adoption that restates the first sight may wait its turn: one that records a
    /// creation or deletion since is the baseline of the next change.
    #[test]
    fn an_adoption_may_wait_only_if_nothing_changed_since_first_sight() {
        use crate::core::index::history::History;
        let spec = mk_spec(&[(AUTO, "true")], &["a", "b"], &[]);
        let t = std::time::Instant::now();
        let now = k8s_openapi::jiff::Timestamp::now();
        let quiet = |w: &Workload, sources: &NamespaceSources, hist: &History, opts: Options| {
            let (_, d) = decide(w, Some(sources), Some(hist), opts, "pause", now);
            (matches!(d.plan, Plan::Adopt(_)), d.quiet_adoption)
        };
        let mut w = mk_workload(&spec, None);
        w.anchor = Some(100);
        let sources = mk_sources(&[plain(cm("a"), 1), plain(cm("b"), 2)]);
        let mut hist = History::default();
        assert_eq!(quiet(&w, &sources, &hist, no_opts()), (true, true), "nothing changed");
        // Changed before the first sight: its content then is the current one.
        hist.changed("ns", &cm("a"), 90, Some(plain(cm("a"), 9).info()), t);
        assert_eq!(quiet(&w, &sources, &hist, no_opts()), (true, true), "changed before first sight");
        // Created after the first sight, without --reload-on-create: adopted at once.
        hist.changed("ns", &cm("b"), 105, None, t);
        assert_eq!(quiet(&w, &sources, &hist, no_opts()), (true, false), "created since");
        // Deleted after the first sight, without --reload-on-delete: its last content is kept.
        let mut hist = History::default();
        let only_a = mk_sources(&[plain(cm("a"), 1)]);
        hist.changed("ns", &cm("b"), 105, Some(plain(cm("b"), 2).info()), t);
        assert_eq!(quiet(&w, &only_a, &hist, no_opts()), (true, false), "deleted since");
        // A malformed record is adopted over, like no record.
        let mut bad = mk_workload(&spec, Rec::Malformed.annotation());
        bad.anchor = Some(100);
        assert_eq!(quiet(&bad, &sources, &History::default(), no_opts()), (true, true), "malformed record");
        // A record of our own: no adoption.
        let rec = Rec::Some(vec![(cm("a"), hash(1)), (cm("b"), hash(2))]);
        let mut recorded = mk_workload(&spec, rec.annotation());
        recorded.anchor = Some(100);
        assert_eq!(quiet(&recorded, &sources, &History::default(), no_opts()), (false, false), "recorded");
    }

    /// Expected verdict on one source.
    fn verdict(r: SourceRef, reason: Reason, current: Applied, referenced: bool) -> (SourceRef, Considered) {
        (r, Considered { reason, current, seen: current, referenced })
    }
    fn gov(rule: Rule) -> Reason {
        Reason::Governs(rule)
    }
    fn named(p: &str) -> Reason {
        Reason::Governs(Rule::Named(p.to_string()))
    }
    fn skipped(s: Skip) -> Reason {
        Reason::Skipped(s)
    }

    #[test]
    fn consider_table() {
        struct Case {
            name: &'static str,
            spec: Spec,
            record: Rec,
            /// `None`: the namespace has no entry in the index at all.
            sources: Option<Vec<Src>>,
            want: Vec<(SourceRef, Considered)>,
        }
        let cases = vec![
            // --- auto ---
            Case {
                name: "auto: referenced existing source governs",
                spec: mk_spec(&[(AUTO, "true")], &["a"], &[]),
                record: Rec::None,
                sources: Some(vec![plain(cm("a"), 1)]),
                want: vec![verdict(cm("a"), gov(Rule::Auto), hash(1), true)],
            },
            Case {
                name: "auto: referenced missing source governs as Absent",
                spec: mk_spec(&[(AUTO, "true")], &["a"], &["s"]),
                record: Rec::None,
                sources: Some(vec![plain(sec("s"), 2)]),
                want: vec![
                    verdict(cm("a"), gov(Rule::Auto), Applied::Absent, true),
                    verdict(sec("s"), gov(Rule::Auto), hash(2), true),
                ],
            },
            Case {
                name: "auto: no namespace index at all is the same as an empty one",
                spec: mk_spec(&[(AUTO, "true")], &["a"], &[]),
                record: Rec::None,
                sources: None,
                want: vec![verdict(cm("a"), gov(Rule::Auto), Applied::Absent, true)],
            },
            Case {
                name: "auto: unreferenced existing sources are not considered",
                spec: mk_spec(&[(AUTO, "true")], &["a"], &[]),
                record: Rec::None,
                sources: Some(vec![plain(cm("a"), 1), plain(cm("other"), 1), plain(sec("x"), 1)]),
                want: vec![verdict(cm("a"), gov(Rule::Auto), hash(1), true)],
            },
            Case {
                name: "auto: reference removed but recorded and existing: skipped NotReferenced",
                spec: mk_spec(&[(AUTO, "true")], &[], &[]),
                record: Rec::Some(vec![(cm("a"), hash(1))]),
                sources: Some(vec![plain(cm("a"), 2)]),
                want: vec![verdict(cm("a"), skipped(Skip::NotReferenced(Rule::Auto)), hash(2), false)],
            },
            Case {
                name: "auto: recorded, deleted, still referenced: still governs as Absent",
                spec: mk_spec(&[(AUTO, "true")], &["a"], &[]),
                record: Rec::Some(vec![(cm("a"), hash(1))]),
                sources: Some(vec![]),
                want: vec![verdict(cm("a"), gov(Rule::Auto), Applied::Absent, true)],
            },
            Case {
                name: "auto: ignored source skipped",
                spec: mk_spec(&[(AUTO, "true")], &["a"], &[]),
                record: Rec::None,
                sources: Some(vec![ignored(cm("a"), 1)]),
                want: vec![verdict(cm("a"), skipped(Skip::Ignored), hash(1), true)],
            },
            Case {
                name: "auto: excluded source skipped",
                spec: mk_spec(&[(AUTO, "true"), (CM_EXCLUDE, "a")], &["a", "b"], &[]),
                record: Rec::None,
                sources: Some(vec![plain(cm("a"), 1), plain(cm("b"), 1)]),
                want: vec![
                    verdict(cm("a"), skipped(Skip::Excluded), hash(1), true),
                    verdict(cm("b"), gov(Rule::Auto), hash(1), true),
                ],
            },
            Case {
                name: "no policy: references are considered and skipped",
                spec: mk_spec(&[], &["a"], &[]),
                record: Rec::None,
                sources: Some(vec![plain(cm("a"), 1)]),
                want: vec![verdict(cm("a"), skipped(Skip::NoRule), hash(1), true)],
            },
            // --- search ---
            Case {
                name: "search: matched referenced source governs",
                spec: mk_spec(&[(SEARCH, "true")], &["a"], &[]),
                record: Rec::None,
                sources: Some(vec![matched(cm("a"), 1)]),
                want: vec![verdict(cm("a"), gov(Rule::Search), hash(1), true)],
            },
            Case {
                name: "search: unmatched referenced source skipped",
                spec: mk_spec(&[(SEARCH, "true")], &["a"], &[]),
                record: Rec::None,
                sources: Some(vec![plain(cm("a"), 1)]),
                want: vec![verdict(cm("a"), skipped(Skip::NoRule), hash(1), true)],
            },
            Case {
                name: "search: recorded then deleted: kept as PreviouslyGoverned",
                spec: mk_spec(&[(SEARCH, "true")], &["a"], &[]),
                record: Rec::Some(vec![(cm("a"), hash(1))]),
                sources: Some(vec![]),
                want: vec![verdict(cm("a"), Reason::PreviouslyGoverned, Applied::Absent, true)],
            },
            Case {
                name: "search: recorded secret then deleted: kept as PreviouslyGoverned",
                spec: mk_spec(&[(SEARCH, "true")], &[], &["s"]),
                record: Rec::Some(vec![(sec("s"), hash(1))]),
                sources: None,
                want: vec![verdict(sec("s"), Reason::PreviouslyGoverned, Applied::Absent, true)],
            },
            Case {
                name: "search: deleted but never recorded: skipped",
                spec: mk_spec(&[(SEARCH, "true")], &["a"], &[]),
                record: Rec::Some(vec![]),
                sources: Some(vec![]),
                want: vec![verdict(cm("a"), skipped(Skip::NoRule), Applied::Absent, true)],
            },
            Case {
                name: "search: deleted, record unreadable: skipped",
                spec: mk_spec(&[(SEARCH, "true")], &["a"], &[]),
                record: Rec::Malformed,
                sources: Some(vec![]),
                want: vec![verdict(cm("a"), skipped(Skip::NoRule), Applied::Absent, true)],
            },
            Case {
                name: "search: recorded and existing but match removed: skipped (not PreviouslyGoverned)",
                spec: mk_spec(&[(SEARCH, "true")], &["a"], &[]),
                record: Rec::Some(vec![(cm("a"), hash(1))]),
                sources: Some(vec![plain(cm("a"), 1)]),
                want: vec![verdict(cm("a"), skipped(Skip::NoRule), hash(1), true)],
            },
            Case {
                name: "search: recorded and deleted but now excluded: skipped",
                spec: mk_spec(&[(SEARCH, "true"), (CM_EXCLUDE, "a")], &["a"], &[]),
                record: Rec::Some(vec![(cm("a"), hash(1))]),
                sources: Some(vec![]),
                want: vec![verdict(cm("a"), skipped(Skip::Excluded), Applied::Absent, true)],
            },
            Case {
                name: "search: re-created with match after deletion governs again",
                spec: mk_spec(&[(SEARCH, "true")], &["a"], &[]),
                record: Rec::Some(vec![(cm("a"), hash(1))]),
                sources: Some(vec![matched(cm("a"), 2)]),
                want: vec![verdict(cm("a"), gov(Rule::Search), hash(2), true)],
            },
            // --- named ---
            Case {
                name: "named pattern picks up every existing source whose name matches",
                spec: mk_spec(&[(CM_RELOAD, "feature-.*")], &[], &[]),
                record: Rec::None,
                sources: Some(vec![
                    plain(cm("feature-a"), 1),
                    plain(cm("feature-b"), 2),
                    plain(cm("other"), 3),
                    plain(cm("my-feature-c"), 3),
                    plain(sec("feature-s"), 4),
                ]),
                want: vec![
                    verdict(cm("feature-a"), named("feature-.*"), hash(1), false),
                    verdict(cm("feature-b"), named("feature-.*"), hash(2), false),
                ],
            },
            Case {
                name: "named list across kinds picks up matching sources of each kind",
                spec: mk_spec(&[(CM_RELOAD, "app, feature-.*"), (SECRET_RELOAD, "db-.*")], &["app"], &[]),
                record: Rec::None,
                sources: Some(vec![
                    plain(cm("app"), 1),
                    plain(cm("feature-x"), 2),
                    plain(sec("db-main"), 3),
                    plain(sec("db-replica"), 4),
                    plain(sec("app"), 5),
                    plain(cm("db-main"), 6),
                ]),
                want: vec![
                    verdict(cm("app"), named("app"), hash(1), true),
                    verdict(cm("feature-x"), named("feature-.*"), hash(2), false),
                    verdict(sec("db-main"), named("db-.*"), hash(3), false),
                    verdict(sec("db-replica"), named("db-.*"), hash(4), false),
                ],
            },
            Case {
                name: "named a|b picks up exactly a and b",
                spec: mk_spec(&[(CM_RELOAD, "a|b")], &[], &[]),
                record: Rec::None,
                sources: Some(vec![plain(cm("a"), 1), plain(cm("b"), 2), plain(cm("abc"), 3), plain(cm("xb"), 4)]),
                want: vec![
                    verdict(cm("a"), named("a|b"), hash(1), false),
                    verdict(cm("b"), named("a|b"), hash(2), false),
                ],
            },
            Case {
                name: "named: ignored and excluded matching sources are listed as skipped",
                spec: mk_spec(&[(CM_RELOAD, "cfg-.*"), (CM_EXCLUDE, "cfg-x")], &[], &[]),
                record: Rec::None,
                sources: Some(vec![plain(cm("cfg-a"), 1), ignored(cm("cfg-i"), 2), plain(cm("cfg-x"), 3)]),
                want: vec![
                    verdict(cm("cfg-a"), named("cfg-.*"), hash(1), false),
                    verdict(cm("cfg-i"), skipped(Skip::Ignored), hash(2), false),
                    verdict(cm("cfg-x"), skipped(Skip::Excluded), hash(3), false),
                ],
            },
            Case {
                name: "named: recorded source that was deleted still governs (Absent)",
                spec: mk_spec(&[(SECRET_RELOAD, "db")], &[], &[]),
                record: Rec::Some(vec![(sec("db"), hash(1))]),
                sources: Some(vec![]),
                want: vec![verdict(sec("db"), named("db"), Applied::Absent, false)],
            },
            Case {
                name: "named: referenced missing source governs (Absent)",
                spec: mk_spec(&[(CM_RELOAD, "a")], &["a"], &[]),
                record: Rec::None,
                sources: Some(vec![]),
                want: vec![verdict(cm("a"), named("a"), Applied::Absent, true)],
            },
            Case {
                name: "named pattern no longer matching a recorded source: skipped",
                spec: mk_spec(&[(CM_RELOAD, "new")], &[], &[]),
                record: Rec::Some(vec![(cm("old"), hash(1))]),
                sources: Some(vec![plain(cm("old"), 1), plain(cm("new"), 2)]),
                want: vec![
                    verdict(cm("new"), named("new"), hash(2), false),
                    verdict(cm("old"), skipped(Skip::NoRule), hash(1), false),
                ],
            },
            Case {
                name: "named plus auto: referenced sources by auto, unreferenced by name",
                spec: mk_spec(&[(AUTO, "true"), (CM_RELOAD, "extra")], &["a"], &[]),
                record: Rec::None,
                sources: Some(vec![plain(cm("a"), 1), plain(cm("extra"), 2)]),
                want: vec![
                    verdict(cm("a"), gov(Rule::Auto), hash(1), true),
                    verdict(cm("extra"), named("extra"), hash(2), false),
                ],
            },
        ];
        for c in &cases {
            let w = mk_workload(&c.spec, c.record.annotation());
            let ns = c.sources.as_deref().map(mk_sources);
            let got = consider(&w, ns.as_ref(), None);
            let want: BTreeMap<SourceRef, Considered> = c.want.iter().cloned().collect();
            assert_eq!(got, want, "row {:?}", c.name);

            // `desired` keeps exactly the governing and previously-governing entries.
            let want_desired: Record = want
                .iter()
                .filter(|(_, v)| !matches!(v.reason, Reason::Skipped(_)))
                .map(|(k, v)| (k.clone(), v.current))
                .collect();
            assert_eq!(desired(&got), want_desired, "row {:?}: desired", c.name);
        }
    }

    #[test]
    fn desired_table() {
        struct Case {
            name: &'static str,
            considered: Vec<(SourceRef, Considered)>,
            want: Vec<(SourceRef, Applied)>,
        }
        let cases = vec![
            Case { name: "empty", considered: vec![], want: vec![] },
            Case {
                name: "governing entries kept at their current state",
                considered: vec![
                    verdict(cm("a"), gov(Rule::Auto), hash(1), true),
                    verdict(sec("b"), named("b"), Applied::Absent, false),
                ],
                want: vec![(cm("a"), hash(1)), (sec("b"), Applied::Absent)],
            },
            Case {
                name: "previously governed kept (as Absent; plan keeps the hash)",
                considered: vec![verdict(cm("a"), Reason::PreviouslyGoverned, Applied::Absent, true)],
                want: vec![(cm("a"), Applied::Absent)],
            },
            Case {
                name: "every kind of skip dropped",
                considered: vec![
                    verdict(cm("i"), skipped(Skip::Ignored), hash(1), true),
                    verdict(cm("e"), skipped(Skip::Excluded), hash(1), true),
                    verdict(cm("n"), skipped(Skip::NotReferenced(Rule::Auto)), hash(1), false),
                    verdict(cm("r"), skipped(Skip::NoRule), hash(1), true),
                    verdict(sec("ok"), gov(Rule::Search), hash(2), true),
                ],
                want: vec![(sec("ok"), hash(2))],
            },
        ];
        for c in &cases {
            let considered: BTreeMap<SourceRef, Considered> = c.considered.iter().cloned().collect();
            assert_eq!(desired(&considered), mk_record(&c.want), "row {:?}", c.name);
        }
    }

    /// What a step is expected to do.
    #[derive(Clone, Debug, PartialEq, Eq)]
    enum Want {
        Nothing,
        Adopt,
        Record,
        Reload(Vec<(SourceRef, ChangeKind)>),
    }

    struct Step {
        name: &'static str,
        spec: Spec,
        sources: Vec<Src>,
        opts: Options,
        want: Want,
    }

    fn step(name: &'static str, spec: &Spec, sources: Vec<Src>, opts: Options, want: Want) -> Step {
        Step { name, spec: spec.clone(), sources, opts, want }
    }

    /// Runs consider → desired → plan for each step, writing the planned record back onto the
    /// workload as the reconciler would, and checks each step's outcome.
    fn run_scenario(scenario: &str, steps: &[Step]) {
        let mut record: Option<String> = None;
        for s in steps {
            let w = mk_workload(&s.spec, record.clone());
            let ns = mk_sources(&s.sources);
            let considered = consider(&w, Some(&ns), None);
            let want_record = desired(&considered);
            let p = plan(&w, &want_record, &seen(&considered), &BTreeSet::new(), s.opts);
            let got = match &p {
                Plan::Nothing => Want::Nothing,
                Plan::Adopt(_) => Want::Adopt,
                Plan::Record(_) => Want::Record,
                Plan::Reload { changes, .. } => {
                    Want::Reload(changes.iter().map(|c| (c.source.clone(), c.kind)).collect())
                }
            };
            assert_eq!(
                got, s.want,
                "scenario {scenario:?}, step {:?}: plan {p:?}, considered {considered:?}, record {record:?}",
                s.name
            );
            match p {
                Plan::Nothing => {}
                Plan::Adopt(r) | Plan::Record(r) | Plan::Reload { record: r, .. } => record = Some(encode(&r)),
            }
        }
    }

    #[test]
    fn lifecycle_scenarios() {
        use ChangeKind::{Created, Deleted, Updated};
        let auto = mk_spec(&[(AUTO, "true")], &["a"], &["s"]);
        let search = mk_spec(&[(SEARCH, "true")], &["a"], &[]);
        let named_cm = mk_spec(&[(CM_RELOAD, "a")], &["a"], &[]);
        let auto_no_ref = mk_spec(&[(AUTO, "true")], &[], &["s"]);
        let none = mk_spec(&[], &["a"], &["s"]);

        let scenarios: Vec<(&str, Vec<Step>)> = vec![
            (
                "auto: adopt, update, settle",
                vec![
                    step("first sight", &auto, vec![plain(cm("a"), 1), plain(sec("s"), 1)], no_opts(), Want::Adopt),
                    step("no change", &auto, vec![plain(cm("a"), 1), plain(sec("s"), 1)], no_opts(), Want::Nothing),
                    step(
                        "configmap updated",
                        &auto,
                        vec![plain(cm("a"), 2), plain(sec("s"), 1)],
                        no_opts(),
                        Want::Reload(vec![(cm("a"), Updated)]),
                    ),
                    step("settled", &auto, vec![plain(cm("a"), 2), plain(sec("s"), 1)], no_opts(), Want::Nothing),
                    step(
                        "both updated together",
                        &auto,
                        vec![plain(cm("a"), 3), plain(sec("s"), 3)],
                        no_opts(),
                        Want::Reload(vec![(cm("a"), Updated), (sec("s"), Updated)]),
                    ),
                    step(
                        "restart with the same state",
                        &auto,
                        vec![plain(cm("a"), 3), plain(sec("s"), 3)],
                        both(),
                        Want::Nothing,
                    ),
                ],
            ),
            (
                "auto: delete without reload-on-delete, re-create with same then other content",
                vec![
                    step("first sight", &auto, vec![plain(cm("a"), 1)], no_opts(), Want::Adopt),
                    step("deleted", &auto, vec![], no_opts(), Want::Nothing),
                    step("still deleted", &auto, vec![], no_opts(), Want::Nothing),
                    step("re-created, same content", &auto, vec![plain(cm("a"), 1)], no_opts(), Want::Nothing),
                    step("deleted again", &auto, vec![], no_opts(), Want::Nothing),
                    step(
                        "re-created, other content",
                        &auto,
                        vec![plain(cm("a"), 2)],
                        no_opts(),
                        Want::Reload(vec![(cm("a"), Updated)]),
                    ),
                ],
            ),
            (
                "auto: reload-on-delete and reload-on-create",
                vec![
                    step("first sight", &auto, vec![plain(cm("a"), 1), plain(sec("s"), 1)], both(), Want::Adopt),
                    step("deleted", &auto, vec![plain(sec("s"), 1)], both(), Want::Reload(vec![(cm("a"), Deleted)])),
                    step("still deleted", &auto, vec![plain(sec("s"), 1)], both(), Want::Nothing),
                    step(
                        "re-created",
                        &auto,
                        vec![plain(cm("a"), 1), plain(sec("s"), 1)],
                        both(),
                        Want::Reload(vec![(cm("a"), Created)]),
                    ),
                    step("settled", &auto, vec![plain(cm("a"), 1), plain(sec("s"), 1)], both(), Want::Nothing),
                ],
            ),
            (
                "auto: referenced source created after first sight",
                vec![
                    step("first sight, secret missing", &auto, vec![plain(cm("a"), 1)], on_create(), Want::Adopt),
                    step(
                        "secret created",
                        &auto,
                        vec![plain(cm("a"), 1), plain(sec("s"), 1)],
                        on_create(),
                        Want::Reload(vec![(sec("s"), Created)]),
                    ),
                ],
            ),
            (
                "auto: referenced source created after first sight, no reload-on-create",
                vec![
                    step("first sight, secret missing", &auto, vec![plain(cm("a"), 1)], no_opts(), Want::Adopt),
                    step("secret created", &auto, vec![plain(cm("a"), 1), plain(sec("s"), 1)], no_opts(), Want::Record),
                    step(
                        "secret updated",
                        &auto,
                        vec![plain(cm("a"), 1), plain(sec("s"), 2)],
                        no_opts(),
                        Want::Reload(vec![(sec("s"), Updated)]),
                    ),
                ],
            ),
            (
                "reference removed, then the source changes",
                vec![
                    step("first sight", &auto, vec![plain(cm("a"), 1), plain(sec("s"), 1)], no_opts(), Want::Adopt),
                    step(
                        "configmap reference removed",
                        &auto_no_ref,
                        vec![plain(cm("a"), 1), plain(sec("s"), 1)],
                        no_opts(),
                        Want::Record,
                    ),
                    step(
                        "unreferenced configmap changes",
                        &auto_no_ref,
                        vec![plain(cm("a"), 2), plain(sec("s"), 1)],
                        no_opts(),
                        Want::Nothing,
                    ),
                    step(
                        "reference restored: newly governed, baseline only",
                        &auto,
                        vec![plain(cm("a"), 2), plain(sec("s"), 1)],
                        both(),
                        Want::Record,
                    ),
                ],
            ),
            (
                "policy removed: the record empties, no rollout",
                vec![
                    step("first sight", &auto, vec![plain(cm("a"), 1)], no_opts(), Want::Adopt),
                    step("annotation removed", &none, vec![plain(cm("a"), 2)], no_opts(), Want::Record),
                    step("unrelated change", &none, vec![plain(cm("a"), 3)], no_opts(), Want::Nothing),
                ],
            ),
            (
                "search: match added later is a new baseline",
                vec![
                    step("first sight without match", &search, vec![plain(cm("a"), 1)], no_opts(), Want::Nothing),
                    step("match added", &search, vec![matched(cm("a"), 1)], no_opts(), Want::Adopt),
                    step(
                        "updated",
                        &search,
                        vec![matched(cm("a"), 2)],
                        no_opts(),
                        Want::Reload(vec![(cm("a"), Updated)]),
                    ),
                ],
            ),
            (
                "search: deleted without reload-on-delete, re-created with match",
                vec![
                    step("first sight", &search, vec![matched(cm("a"), 1)], no_opts(), Want::Adopt),
                    step("deleted: kept", &search, vec![], no_opts(), Want::Nothing),
                    step("still deleted", &search, vec![], no_opts(), Want::Nothing),
                    step("re-created, same content", &search, vec![matched(cm("a"), 1)], no_opts(), Want::Nothing),
                    step("deleted again", &search, vec![], no_opts(), Want::Nothing),
                    step(
                        "re-created, other content",
                        &search,
                        vec![matched(cm("a"), 2)],
                        no_opts(),
                        Want::Reload(vec![(cm("a"), Updated)]),
                    ),
                ],
            ),
            (
                "named: reload-on-delete and reload-on-create",
                vec![
                    step("first sight", &named_cm, vec![plain(cm("a"), 1)], both(), Want::Adopt),
                    step("deleted", &named_cm, vec![], both(), Want::Reload(vec![(cm("a"), Deleted)])),
                    step("still deleted", &named_cm, vec![], both(), Want::Nothing),
                    step(
                        "re-created",
                        &named_cm,
                        vec![plain(cm("a"), 1)],
                        both(),
                        Want::Reload(vec![(cm("a"), Created)]),
                    ),
                ],
            ),
        ];
        for (name, steps) in &scenarios {
            run_scenario(name, steps);
        }
    }

    /// With `--reload-on-delete` the deletion of a governing source reloads the workload, and with
    /// `--reload-on-create` so does the creation of one. In search mode too: after a deletion
    /// reloads, the re-creation of the same source reloads as well, as for auto and named
    /// workloads.
    #[test]
    fn search_deleted_then_recreated_with_both_flags() {
        use ChangeKind::{Created, Deleted};
        let search = mk_spec(&[(SEARCH, "true")], &["a"], &[]);
        let scenarios: Vec<(&str, Vec<Step>)> = vec![(
            "search: reload-on-delete and reload-on-create",
            vec![
                step("first sight", &search, vec![matched(cm("a"), 1)], both(), Want::Adopt),
                step("deleted", &search, vec![], both(), Want::Reload(vec![(cm("a"), Deleted)])),
                // The Absent entry must survive while the source is gone, exactly as for
                // auto and named, so that the re-creation below counts as a creation.
                step("still deleted", &search, vec![], both(), Want::Nothing),
                step(
                    "re-created with match",
                    &search,
                    vec![matched(cm("a"), 1)],
                    both(),
                    Want::Reload(vec![(cm("a"), Created)]),
                ),
            ],
        )];
        for (name, steps) in &scenarios {
            run_scenario(name, steps);
        }
    }

    /// With `--reload-on-create`, creating a source that did not exist yet reloads a workload
    /// whose named-reload annotation matches its name, as an update would; and a named reload
    /// needs no reference to the source from the pod template.
    #[test]
    fn named_unreferenced_source_created_with_reload_on_create() {
        use ChangeKind::Created;
        let named_later = mk_spec(&[(CM_RELOAD, "later")], &[], &[]);
        let scenarios: Vec<(&str, Vec<Step>)> = vec![(
            "named, unreferenced: a source created after first sight with reload-on-create",
            vec![
                // The named annotation already matches the name the source will be created
                // with; the pod template does not use it, and a named reload needs no reference.
                step("first sight, source missing: recorded as absent", &named_later, vec![], on_create(), Want::Adopt),
                step(
                    "source created",
                    &named_later,
                    vec![plain(cm("later"), 1)],
                    on_create(),
                    Want::Reload(vec![(cm("later"), Created)]),
                ),
            ],
        )];
        for (name, steps) in &scenarios {
            run_scenario(name, steps);
        }
    }

    /// A deletion is judged by the deleted object's annotations, as Reloader judges it: the
    /// watch hands them to the index, the index notes them in the history with the deletion,
    /// and `consider` reads them for a source that is gone. An ignored source never reloads,
    /// a matched one still governs a search workload; the index's flags stand in when a relist
    /// found the source gone.
    #[test]
    fn a_deletion_is_judged_by_the_deleted_object_table() {
        use crate::core::index::Index;
        use crate::core::model::source::SourceFlags;
        use ChangeKind::Deleted;
        struct Case {
            name: &'static str,
            meta: &'static [(&'static str, &'static str)],
            /// `a` as the index had it before the deletion.
            before: Src,
            /// The deleted object's flags (`None`: a relist found it gone).
            deleted: Option<SourceFlags>,
            /// The workload's record was written before the deletion.
            adopted: bool,
            opts: Options,
            want: Want,
        }
        const FLAGS: SourceFlags = SourceFlags { matched: false, ignored: false };
        const IGNORED: SourceFlags = SourceFlags { matched: false, ignored: true };
        const MATCHED: SourceFlags = SourceFlags { matched: true, ignored: false };
        let reload_a = || Want::Reload(vec![(cm("a"), Deleted)]);
        let cases = vec![
            Case {
                name: "auto: a plain source deleted reloads",
                meta: &[(AUTO, "true")],
                before: plain(cm("a"), 1),
                deleted: Some(FLAGS),
                adopted: true,
                opts: on_delete(),
                want: reload_a(),
            },
            Case {
                name: "auto: an ignored source deleted does not reload",
                meta: &[(AUTO, "true")],
                before: ignored(cm("a"), 1),
                deleted: Some(IGNORED),
                adopted: true,
                opts: on_delete(),
                want: Want::Nothing,
            },
            Case {
                name: "auto: an ignored source deleted before the first record is written: nothing",
                meta: &[(AUTO, "true")],
                before: ignored(cm("a"), 1),
                deleted: Some(IGNORED),
                adopted: false,
                opts: both(),
                want: Want::Nothing,
            },
            Case {
                name: "auto: ignore set on the deleted object only (the update unseen): dropped, no reload",
                meta: &[(AUTO, "true")],
                before: plain(cm("a"), 1),
                deleted: Some(IGNORED),
                adopted: true,
                opts: on_delete(),
                want: Want::Record,
            },
            Case {
                name: "auto: an ignored source found gone by a relist: the index's flags, nothing",
                meta: &[(AUTO, "true")],
                before: ignored(cm("a"), 1),
                deleted: None,
                adopted: true,
                opts: on_delete(),
                want: Want::Nothing,
            },
            Case {
                name: "auto: a plain source found gone by a relist reloads",
                meta: &[(AUTO, "true")],
                before: plain(cm("a"), 1),
                deleted: None,
                adopted: true,
                opts: on_delete(),
                want: reload_a(),
            },
            Case {
                name: "named: an ignored source deleted does not reload",
                meta: &[(CM_RELOAD, "a")],
                before: ignored(cm("a"), 1),
                deleted: Some(IGNORED),
                adopted: true,
                opts: on_delete(),
                want: Want::Nothing,
            },
            Case {
                name: "search: a matched source deleted reloads",
                meta: &[(SEARCH, "true")],
                before: matched(cm("a"), 1),
                deleted: Some(MATCHED),
                adopted: true,
                opts: on_delete(),
                want: reload_a(),
            },
            Case {
                name: "search: a matched source deleted before the first record is written reloads",
                meta: &[(SEARCH, "true")],
                before: matched(cm("a"), 1),
                deleted: Some(MATCHED),
                adopted: false,
                opts: on_delete(),
                want: reload_a(),
            },
            Case {
                name: "search: a matched source deleted, no reload-on-delete: nothing",
                meta: &[(SEARCH, "true")],
                before: matched(cm("a"), 1),
                deleted: Some(MATCHED),
                adopted: true,
                opts: on_create(),
                want: Want::Nothing,
            },
            Case {
                name: "search: a source without match deleted: nothing",
                meta: &[(SEARCH, "true")],
                before: plain(cm("a"), 1),
                deleted: Some(FLAGS),
                adopted: true,
                opts: on_delete(),
                want: Want::Nothing,
            },
            Case {
                name: "search: match removed on the deleted object only (the update unseen): dropped, no reload",
                meta: &[(SEARCH, "true")],
                before: matched(cm("a"), 1),
                deleted: Some(FLAGS),
                adopted: true,
                opts: on_delete(),
                want: Want::Record,
            },
            Case {
                name: "search: matched and ignored: ignore wins",
                meta: &[(SEARCH, "true"), (AUTO, "true")],
                before: Src { r: cm("a"), hash: 1, matched: true, ignored: true },
                deleted: Some(SourceFlags { matched: true, ignored: true }),
                adopted: true,
                opts: on_delete(),
                want: Want::Nothing,
            },
        ];
        for c in cases {
            let spec = mk_spec(c.meta, &["a"], &[]);
            let workload = |record: Option<String>| {
                let mut w = mk_workload(&spec, record);
                w.anchor = Some(100);
                w
            };
            let mut st = Index::default();
            let t = std::time::Instant::now();
            st.upsert_source("ns", SourceKind::ConfigMap, "a", c.before.info());
            st.note_change("ns", &cm("a"), Some(10), None, t);
            let mut w = workload(None);
            if c.adopted {
                let considered = consider(&w, st.sources("ns"), Some(st.history()));
                let record = match plan(&w, &desired(&considered), &seen(&considered), &BTreeSet::new(), c.opts) {
                    Plan::Adopt(r) => r,
                    Plan::Nothing => Record::new(),
                    p => panic!("row {:?}: first sight planned {p:?}", c.name),
                };
                w = workload(Some(encode(&record)));
            }
            let kept = st.delete_source("ns", &cm("a"), Some(110), c.deleted, t);
            assert_eq!(kept.map(|i| i.hash), Some(h(1)), "row {:?}: the index's content is noted", c.name);
            assert!(st.sources("ns").is_none(), "row {:?}: gone from the index", c.name);
            let considered = consider(&w, st.sources("ns"), Some(st.history()));
            let p = plan(&w, &desired(&considered), &seen(&considered), &BTreeSet::new(), c.opts);
            let got = match &p {
                Plan::Nothing => Want::Nothing,
                Plan::Adopt(_) => Want::Adopt,
                Plan::Record(_) => Want::Record,
                Plan::Reload { changes, .. } => {
                    Want::Reload(changes.iter().map(|c| (c.source.clone(), c.kind)).collect())
                }
            };
            assert_eq!(got, c.want, "row {:?}: plan {p:?}, considered {considered:?}", c.name);
        }
    }

    #[test]
    fn source_action_table() {
        use SourceAction::*;
        let (a, b) = (Some(h(1)), Some(h(2)));
        type Hashes = (Option<ContentHash>, Option<ContentHash>);
        // (name, (before, after), flags changed, webhook mode, options, synced, action)
        let rows: Vec<(&str, Hashes, bool, bool, Options, bool, SourceAction)> = vec![
            ("label edit", (a, a), false, false, no_opts(), true, Nothing),
            ("match flag added", (a, a), true, false, no_opts(), true, Regovern),
            ("match flag added, webhook mode", (a, a), true, true, no_opts(), true, Nothing),
            ("content changed", (a, b), false, false, no_opts(), true, Reload),
            ("created", (None, a), false, false, no_opts(), true, Reload),
            ("deleted", (a, None), false, false, no_opts(), true, Reload),
            ("webhook: content changed", (a, b), false, true, no_opts(), true, Webhook),
            ("webhook: created without the flag", (None, a), false, true, no_opts(), true, Nothing),
            ("webhook: created with the flag", (None, a), false, true, on_create(), true, Webhook),
            ("webhook: created during the initial list", (None, a), false, true, on_create(), false, Nothing),
            ("webhook: deleted without the flag", (a, None), false, true, on_create(), true, Nothing),
            ("webhook: deleted with the flag", (a, None), false, true, on_delete(), true, Webhook),
        ];
        for (name, (before, after), flags, webhook, opts, synced, want) in rows {
            assert_eq!(source_action(before, after, flags, webhook, opts, synced), want, "{name}");
        }
    }
}

#[cfg(test)]
mod csi_tests {
    use super::*;
    use crate::core::kinds::WorkloadKind;
    use crate::core::model::keys::Keys;
    use crate::core::model::record::{RECORD_ANNOTATION, encode};
    use crate::core::model::workload::project;
    use k8s_openapi::api::core::v1::PodTemplateSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use serde_json::json;

    fn h(n: u8) -> ContentHash {
        ContentHash([n; 32])
    }

    /// A Deployment with `auto` whose pods mount the class `spc`, having applied `applied`.
    fn workload(applied: Applied) -> Workload {
        let spc = SourceRef::new(SourceKind::SecretProviderClass, "spc");
        let rec = encode(&[(spc, applied)].into_iter().collect());
        let meta: ObjectMeta = serde_json::from_value(json!({"name": "web", "namespace": "ns", "uid": "u",
            "resourceVersion": "5", "annotations": {"reloader.stakater.com/auto": "true", RECORD_ANNOTATION: rec},
            "managedFields": [{"manager": "kube-reloader", "operation": "Apply", "apiVersion": "apps/v1",
                "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:annotations": {format!("f:{RECORD_ANNOTATION}"): {}}}}}]}))
        .unwrap();
        let t: PodTemplateSpec = serde_json::from_value(json!({"spec": {"containers": [{"name": "app",
            "volumeMounts": [{"name": "s", "mountPath": "/s"}]}],
            "volumes": [{"name": "s", "csi": {"driver": "secrets-store.csi.k8s.io", "volumeAttributes": {"secretProviderClass": "spc"}}}]}}))
        .unwrap();
        project(WorkloadKind::Deployment, &meta, Some(&t), &Keys { csi: true, ..Keys::default() }, false)
    }

    fn sources(current: Option<u8>) -> NamespaceSources {
        let mut ns = NamespaceSources::default();
        if let Some(n) = current {
            ns.secret_provider_classes.insert(
                "spc".into(),
                SourceInfo {
                    hash: h(n),
                    matched: false,
                    ignored: false,
                    content_rv: None,
                    reloader: Default::default(),
                },
            );
        }
        ns
    }

    use crate::core::model::source::SourceInfo;

    /// The first pod mounting a class and the last one going are not changes, whatever
    /// `--reload-on-create`/`--reload-on-delete` say; a new mounted content is.
    #[test]
    fn mounts_come_and_go_without_a_reload() {
        let all = Options { reload_on_create: true, reload_on_delete: true };
        let rows: Vec<(&str, Applied, Option<u8>, &str)> = vec![
            ("first mount", Applied::Absent, Some(1), "record"),
            ("same content", Applied::Hash(h(1)), Some(1), "nothing"),
            ("rotated", Applied::Hash(h(1)), Some(2), "reload"),
            ("no pod mounts it any more", Applied::Hash(h(1)), None, "nothing"),
        ];
        for (name, applied, current, want) in rows {
            let w = workload(applied);
            assert!(w.record_foreign.is_none(), "{name}: own record");
            let srcs = sources(current);
            let considered = consider(&w, Some(&srcs), None);
            let got = match plan(&w, &desired(&considered), &seen(&considered), &BTreeSet::new(), all) {
                Plan::Nothing => "nothing",
                Plan::Record(_) | Plan::Adopt(_) => "record",
                Plan::Reload { .. } => "reload",
            };
            assert_eq!(got, want, "{name}");
        }
    }
}
