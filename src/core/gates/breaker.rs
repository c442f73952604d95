//! The circuit breaker (`--halt-on-failed-rollouts K`, with waves): once K rollouts caused by
//! the same source change failed, no further reload for that change starts; the workloads
//! still waiting for it are held. A change is a source at one content hash, so the hold lifts
//! by itself when the source changes again (a fix or a revert), or when the source carries
//! `RELEASE_ANNOTATION` naming the change. Everything is counted from the tracking notes on the
//! workloads that use the source (`core::model::note`), so a restart or a failover keeps the hold.
//! Pure.

use std::collections::{HashMap, HashSet};

use crate::core::model::cause::{Cause, ShortHash};
use crate::core::model::note::{Ended, Tracked};
use crate::core::model::source::SourceRef;
use crate::core::model::workload::WorkloadKey;

/// The annotation on a ConfigMap or Secret that lifts the breaker for a change of it: its
/// 12-character hash as Events and `reloader explain` name it (`configmap/app@1a2b3c4d5e6f`:
/// `1a2b3c4d5e6f`), which lifts that change only, so a later bad change is held again; or
/// `true`, which lifts it for every change of the source until the annotation is removed.
pub(crate) const RELEASE_ANNOTATION: &str = "reloader.kube-reloader.dev/release-hold";

/// Whether the release mark on a source (`RELEASE_ANNOTATION`'s value) lifts the breaker for
/// its change to the content `content` (`None`: its deletion).
pub(crate) fn released(mark: Option<&str>, content: Option<ShortHash>) -> bool {
    let Some(mark) = mark.map(|m| m.trim().to_ascii_lowercase()) else {
        return false;
    };
    mark == "true" || content.is_some_and(|h| ShortHash::parse(&mark) == Some(h))
}

/// How the rollouts a change caused went so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    pub(crate) started: usize,
    pub(crate) in_progress: usize,
    pub(crate) failed: usize,
}

/// Counts the rollouts caused by the change `cause` among the tracking notes of the workloads
/// using its source.
pub(crate) fn tally<'a>(cause: &Cause, notes: impl IntoIterator<Item = &'a Tracked>) -> Tally {
    let mut t = Tally::default();
    for n in notes.into_iter().filter(|n| n.cause.contains(cause)) {
        t.started += 1;
        match n.outcome {
            None => t.in_progress += 1,
            Some(Ended::Failed) => t.failed += 1,
            Some(Ended::Succeeded | Ended::Superseded) => {}
        }
    }
    t
}

/// Whether a reload for a change may start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Gate {
    Go,
    /// A rollout of this change failed and others are still rolling: wait for them before
    /// starting more, so that no more than the wave already under way rolls a bad change.
    Pause,
    /// K of them failed: held until the source changes again.
    Held(Tally),
}

impl Gate {
    /// The stricter of two.
    pub(crate) fn and(self, other: Gate) -> Gate {
        match (self, other) {
            (Gate::Held(t), _) | (_, Gate::Held(t)) => Gate::Held(t),
            (Gate::Pause, _) | (_, Gate::Pause) => Gate::Pause,
            _ => Gate::Go,
        }
    }
}

/// The gate for a change with `tally`, at `limit` failures (`None`: no breaker).
pub(crate) fn gate(limit: Option<usize>, tally: Tally) -> Gate {
    let Some(k) = limit else {
        return Gate::Go;
    };
    if tally.failed >= k {
        Gate::Held(tally)
    } else if tally.failed > 0 && tally.in_progress > 0 {
        Gate::Pause
    } else {
        Gate::Go
    }
}

/// The words of the hold, for Events, logs and `reloader explain`.
pub(crate) fn held_note(cause: &Cause, t: Tally) -> String {
    format!(
        "held: {} of the first {} rollouts for {cause} failed (--halt-on-failed-rollouts); no more start until the source changes again or carries {RELEASE_ANNOTATION}: {}",
        t.failed,
        t.started,
        cause.release_value()
    )
}

/// What is reported of a hold: the Event on the source, the one on each workload held, and
/// the release.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Subject {
    Source,
    Workload(WorkloadKey),
    Released,
}

/// What this process has reported of the breaker's holds, per source and only for its latest
/// change: it stays as small as the holds in force, however many changes were held before.
#[derive(Debug, Default)]
pub(crate) struct Reported {
    /// (namespace, source) → the change reported on, and what was reported of it.
    by_source: HashMap<(String, SourceRef), (Cause, HashSet<Subject>)>,
}

impl Reported {
    /// Whether `what` is reported for the first time for the change `cause` of a source of
    /// `ns`. What was reported of an earlier change of that source is forgotten.
    pub(crate) fn first(&mut self, ns: &str, cause: &Cause, what: Subject) -> bool {
        let entry = self
            .by_source
            .entry((ns.to_string(), cause.source.clone()))
            .or_insert_with(|| (cause.clone(), HashSet::new()));
        if entry.0 != *cause {
            *entry = (cause.clone(), HashSet::new());
        }
        entry.1.insert(what)
    }

    /// Subjects remembered, over all sources.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_source.values().map(|(_, s)| s.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::core::kinds::WorkloadKind;
    use crate::core::model::cause::Causes;

    const CAUSE: &str = "configmap/app@1a2b3c4d5e6f";

    fn cause(s: &str) -> Cause {
        Cause::parse(s).expect("a cause")
    }

    fn note(cause: &str, outcome: Option<Ended>) -> Tracked {
        Tracked {
            cause: Causes::parse(cause).expect("causes"),
            at: 0,
            generation: 2,
            outcome,
            ended: None,
            reason: None,
        }
    }

    #[test]
    fn tallies_count_only_the_change() {
        let notes = [
            note(CAUSE, None),
            note(CAUSE, Some(Ended::Failed)),
            note(&format!("secret/s@000000000000, {CAUSE}"), Some(Ended::Failed)),
            note(CAUSE, Some(Ended::Succeeded)),
            note(CAUSE, Some(Ended::Superseded)),
            note("configmap/app@ffffffffffff", Some(Ended::Failed)),
            note("configmap/app-other@1a2b3c4d5e6f", Some(Ended::Failed)),
        ];
        assert_eq!(tally(&cause(CAUSE), &notes), Tally { started: 5, in_progress: 1, failed: 2 });
        assert_eq!(tally(&cause("configmap/none@1a2b3c4d5e6f"), &notes), Tally::default());
    }

    #[test]
    fn gates() {
        let t = |started, in_progress, failed| Tally { started, in_progress, failed };
        let cases = [
            (None, t(5, 0, 5), Gate::Go),
            (Some(3), t(0, 0, 0), Gate::Go),
            (Some(3), t(5, 5, 0), Gate::Go),
            (Some(3), t(5, 4, 1), Gate::Pause),
            (Some(3), t(5, 0, 2), Gate::Go),
            (Some(3), t(5, 2, 3), Gate::Held(t(5, 2, 3))),
            (Some(3), t(5, 0, 4), Gate::Held(t(5, 0, 4))),
            (Some(1), t(1, 0, 1), Gate::Held(t(1, 0, 1))),
        ];
        for (k, tally, want) in cases {
            assert_eq!(gate(k, tally), want, "{k:?} {tally:?}");
        }
    }

    #[test]
    fn the_stricter_gate_wins() {
        let held = Gate::Held(Tally { started: 3, in_progress: 0, failed: 3 });
        assert_eq!(Gate::Go.and(Gate::Pause), Gate::Pause);
        assert_eq!(Gate::Pause.and(held.clone()), held);
        assert_eq!(held.clone().and(Gate::Go), held);
        assert_eq!(Gate::Go.and(Gate::Go), Gate::Go);
    }

    #[test]
    fn release_marks() {
        let h = Some("1a2b3c4d5e6f");
        let cases = [
            (None, h, false),
            (Some("true"), h, true),
            (Some(" TRUE "), h, true),
            (Some("true"), None, true),
            (Some("1a2b3c4d5e6f"), h, true),
            (Some("1A2B3C4D5E6F"), h, true),
            (Some("1a2b3c4d5e6f"), Some("ffffffffffff"), false),
            (Some("1a2b3c4d5e6f"), None, false),
            (Some("1a2b3c"), h, false),
            (Some("false"), h, false),
            (Some(""), h, false),
        ];
        for (mark, short, want) in cases {
            let content = short.map(|s| ShortHash::parse(s).expect("a short hash"));
            assert_eq!(released(mark, content), want, "{mark:?} {short:?}");
        }
    }

    #[test]
    fn each_hold_is_reported_once_and_only_the_latest_change_is_remembered() {
        let mut r = Reported::default();
        let (a, b) = (&cause("configmap/app@1a2b3c4d5e6f"), &cause("configmap/app@ffffffffffff"));
        let w1 = || {
            Subject::Workload(WorkloadKey { kind: WorkloadKind::Deployment, namespace: "ns".into(), name: "w1".into() })
        };
        assert!(r.first("ns", a, Subject::Source));
        assert!(r.first("ns", a, w1()));
        assert!(!r.first("ns", a, Subject::Source), "once");
        assert!(!r.first("ns", a, w1()), "once");
        assert!(r.first("other", a, Subject::Source), "another namespace's source");
        assert!(r.first("ns", &cause("secret/app@1a2b3c4d5e6f"), Subject::Source), "another source");
        assert_eq!(r.len(), 4);
        // The next change of the source: reported afresh, the earlier one forgotten.
        assert!(r.first("ns", b, Subject::Source));
        assert_eq!(r.len(), 3);
        assert!(r.first("ns", a, Subject::Source), "a change back is a hold of its own");
    }

    #[test]
    fn the_note_says_why() {
        let n = held_note(&cause(CAUSE), Tally { started: 5, in_progress: 0, failed: 3 });
        assert!(n.starts_with("held: 3 of the first 5 rollouts for configmap/app@1a2b3c4d5e6f failed"), "{n}");
    }
}
