//! The level-triggered decision: from a workload's projection and the current sources, the
//! desired record (what governs it, at which content), and the plan that takes the workload
//! from its applied record to it. Pure functions; `reconcile` does the I/O.

use std::collections::BTreeMap;

use crate::hash::ContentHash;
use crate::policy::{self, Rule, Skip};
use crate::record::{Applied, Record};
use crate::source::{NamespaceSources, SourceKind, SourceRef};
use crate::workload::Workload;

/// Reloader's `--reload-on-create` / `--reload-on-delete`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    pub reload_on_create: bool,
    pub reload_on_delete: bool,
}

/// Why a source is (or is not) part of the desired state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    Governs(Rule),
    /// The source is gone; it governed the workload before, so its applied entry is kept and
    /// a re-created source is compared with it.
    PreviouslyGoverned,
    Skipped(Skip),
}

/// One source considered for a workload, for the plan and for `reloader explain`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Considered {
    pub reason: Reason,
    /// Current state: its hash, or `Absent` if it does not exist.
    pub current: Applied,
    pub referenced: bool,
}

/// Every source that a workload's policy could involve, with the verdict on each.
pub fn consider(w: &Workload, sources: Option<&NamespaceSources>) -> BTreeMap<SourceRef, Considered> {
    let empty = NamespaceSources::default();
    let sources = sources.unwrap_or(&empty);
    let recorded = match &w.record {
        Ok(Some(r)) => Some(r),
        _ => None,
    };

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
        let verdict = policy::decide(w.policy.for_kind(c.kind), &c.name, info, referenced);
        let current = info.map_or(Applied::Absent, |i| Applied::Hash(i.hash));
        let was_applied = recorded.is_some_and(|r| matches!(r.get(&c), Some(Applied::Hash(_))));
        let reason = match verdict {
            Ok(rule) => Reason::Governs(rule),
            // A vanished source has no annotations to decide by (search mode needs `match`):
            // if it governed before, it still does, so a re-created one is compared by content.
            Err(Skip::NoRule | Skip::NotReferenced(_)) if info.is_none() && was_applied => Reason::PreviouslyGoverned,
            Err(skip) => Reason::Skipped(skip),
        };
        out.insert(c, Considered { reason, current, referenced });
    }
    out
}

/// The desired record: every governing source at its current state.
pub fn desired(considered: &BTreeMap<SourceRef, Considered>) -> Record {
    considered
        .iter()
        .filter(|(_, c)| !matches!(c.reason, Reason::Skipped(_)))
        .map(|(r, c)| (r.clone(), c.current))
        .collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    Updated,
    Created,
    Deleted,
}

/// A source change that rolls the workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub source: SourceRef,
    pub kind: ChangeKind,
    /// The new content hash (`None` for a deletion).
    pub hash: Option<ContentHash>,
}

/// What to do with a workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    Nothing,
    /// First sight (or an unreadable record): record the current state as the baseline, no
    /// rollout. This is how a switch from Reloader causes zero rollouts.
    Adopt(Record),
    /// The governing set changed without a change that counts: update the record only.
    Record(Record),
    /// Roll the workload for these changes and record the new state.
    Reload { changes: Vec<Change>, record: Record },
}

/// Compares the desired record with the applied one.
pub fn plan(w: &Workload, desired: &Record, opts: Options) -> Plan {
    let old = match &w.record {
        Ok(Some(r)) => r,
        Ok(None) if desired.is_empty() => return Plan::Nothing,
        Ok(None) | Err(_) => return Plan::Adopt(desired.clone()),
    };
    let mut new = Record::new();
    let mut changes = Vec::new();
    for (src, want) in desired {
        let keep = match (old.get(src), *want) {
            // Newly governed (reference added, policy changed): the baseline, not a change.
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
        new.insert(src.clone(), keep);
    }
    if !changes.is_empty() {
        Plan::Reload { changes, record: new }
    } else if &new != old {
        Plan::Record(new)
    } else {
        Plan::Nothing
    }
}
