//! The circuit breaker (`--halt-on-failed-rollouts K`, with waves): once K rollouts caused by
//! the same source change failed, no further reload for that change starts; the workloads
//! still waiting for it are held. A change is a source at one content hash, so the hold lifts
//! by itself when the source changes again (a fix or a revert), or when the source carries
//! `RELEASE_ANNOTATION` naming the change. Everything is counted from the tracking notes on the
//! workloads that use the source (`core::outcome`), so a restart or a failover keeps the hold.
//! Pure.

use std::collections::{HashMap, HashSet};

use crate::core::decide::outcome::{Ended, Tracked};

/// The annotation on a ConfigMap or Secret that lifts the breaker for a change of it: its
/// 12-character hash as Events and `reloader explain` name it (`configmap/app@1a2b3c4d5e6f`:
/// `1a2b3c4d5e6f`), which lifts that change only, so a later bad change is held again; or
/// `true`, which lifts it for every change of the source until the annotation is removed.
pub(crate) const RELEASE_ANNOTATION: &str = "reloader.kube-reloader.dev/release-hold";

/// Whether the release mark on a source (`RELEASE_ANNOTATION`'s value) lifts the breaker for
/// its change to the content whose short hash is `short` (`None`: its deletion).
pub(crate) fn released(mark: Option<&str>, short: Option<&str>) -> bool {
    let Some(mark) = mark.map(|m| m.trim().to_ascii_lowercase()) else {
        return false;
    };
    mark == "true" || short.is_some_and(|s| s == mark)
}

/// How the rollouts a change caused went so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    pub(crate) started: usize,
    pub(crate) in_progress: usize,
    pub(crate) failed: usize,
}

/// Counts the rollouts caused by the change `cause` (`configmap/app@1a2b3c4d5e6f`) among the
/// tracking notes of the workloads using its source.
pub(crate) fn tally<'a>(cause: &str, notes: impl IntoIterator<Item = &'a Tracked>) -> Tally {
    let mut t = Tally::default();
    for n in notes.into_iter().filter(|n| n.cause.split(", ").any(|c| c == cause)) {
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
pub(crate) fn held_note(cause: &str, t: Tally) -> String {
    format!(
        "held: {} of the first {} rollouts for {cause} failed (--halt-on-failed-rollouts); no more start until the source changes again or carries {RELEASE_ANNOTATION}: {}",
        t.failed,
        t.started,
        match cause.rsplit('@').next() {
            Some(h) if h != "deleted" => h,
            _ => "true",
        }
    )
}

/// What this process has reported of the breaker's holds, per source and only for its latest
/// change: it stays as small as the holds in force, however many changes were held before.
#[derive(Debug, Default)]
pub(crate) struct Reported {
    /// `<ns>/<source>` → the change reported on, and what was reported of it.
    by_source: HashMap<String, (String, HashSet<String>)>,
}

impl Reported {
    /// Whether `what` (the source's Event, a workload's, the release) is reported for the first
    /// time for the change `cause` (`configmap/app@1a2b3c4d5e6f`) of a source of `ns`. What was
    /// reported of an earlier change of that source is forgotten.
    pub(crate) fn first(&mut self, ns: &str, cause: &str, what: &str) -> bool {
        let source = format!("{ns}/{}", cause.split('@').next().unwrap_or(cause));
        let entry = self.by_source.entry(source).or_default();
        if entry.0 != cause {
            *entry = (cause.to_string(), HashSet::new());
        }
        entry.1.insert(what.to_string())
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

    const CAUSE: &str = "configmap/app@1a2b3c4d5e6f";

    fn note(cause: &str, outcome: Option<Ended>) -> Tracked {
        Tracked { cause: cause.into(), at: 0, generation: 2, outcome, ended: None, reason: None }
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
        assert_eq!(tally(CAUSE, &notes), Tally { started: 5, in_progress: 1, failed: 2 });
        assert_eq!(tally("configmap/none@1a2b3c4d5e6f", &notes), Tally::default());
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
            assert_eq!(released(mark, short), want, "{mark:?} {short:?}");
        }
    }

    #[test]
    fn each_hold_is_reported_once_and_only_the_latest_change_is_remembered() {
        let mut r = Reported::default();
        let (a, b) = ("configmap/app@1a2b3c4d5e6f", "configmap/app@ffffffffffff");
        assert!(r.first("ns", a, "source"));
        assert!(r.first("ns", a, "Deployment/ns/w1"));
        assert!(!r.first("ns", a, "source"), "once");
        assert!(!r.first("ns", a, "Deployment/ns/w1"), "once");
        assert!(r.first("other", a, "source"), "another namespace's source");
        assert!(r.first("ns", "secret/app@1a2b3c4d5e6f", "source"), "another source");
        assert_eq!(r.len(), 4);
        // The next change of the source: reported afresh, the earlier one forgotten.
        assert!(r.first("ns", b, "source"));
        assert_eq!(r.len(), 3);
        assert!(r.first("ns", a, "source"), "a change back is a hold of its own");
    }

    #[test]
    fn the_note_says_why() {
        let n = held_note(CAUSE, Tally { started: 5, in_progress: 0, failed: 3 });
        assert!(n.starts_with("held: 3 of the first 5 rollouts for configmap/app@1a2b3c4d5e6f failed"), "{n}");
    }
}
