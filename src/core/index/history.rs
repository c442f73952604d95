//! What recently changed sources held before each change, and at which resourceVersion the
//! change happened, so that a workload seen for the first time is given the content its pods
//! started with as its baseline, not whatever is current when its record is finally written.
//!
//! Without it two orders of events lose a reload: the adoption write of a new workload gets a
//! 409 (the controller-manager has just touched the object) and its retry comes after the
//! source changed; or the source's update is processed before the workload's own ADD. Both
//! are answered by comparing resourceVersions: the change happened after the workload was
//! seen exactly when its resourceVersion is the larger. Kubernetes guarantees resourceVersions
//! are comparable integers (KEP-5504, v1.35); across resources they come from one etcd
//! revision counter unless the API server stores them in separate etcd clusters.
//!
//! A deletion also keeps the deleted object's match/ignore annotations: whether the deletion
//! of a source counts for a workload is read from the deleted object, as Reloader does, and
//! the index has nothing else left of it.
//!
//! Only changes of the last few minutes are kept, a few per source: no Secret value, only hashes.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::core::model::record::Applied;
use crate::core::model::source::{SourceInfo, SourceRef};

/// How long a change is remembered: far longer than any watch lag or 409 retry.
pub(crate) const KEEP: Duration = Duration::from_secs(600);
/// Changes kept per source; older ones only matter when a source flaps, and then any kept
/// one still differs from the current content.
const STEPS: usize = 8;
/// How often expired changes are swept.
const SWEEP: Duration = Duration::from_secs(60);

#[derive(Clone, Debug)]
struct Step {
    /// The resourceVersion of the change (`u64::MAX` when unknown: a deletion seen on relist).
    rv: u64,
    /// The source before it (`None`: absent), with its match/ignore flags; for a deletion,
    /// those of the deleted object.
    before: Option<SourceInfo>,
    at: Instant,
}

/// Recent changes of every source, by namespace and source.
#[derive(Debug, Default)]
pub(crate) struct History {
    changes: HashMap<(String, SourceRef), VecDeque<Step>>,
    last_sweep: Option<Instant>,
}

impl History {
    /// Notes that `source` changed at `rv` from `before` (`None`: absent) to something else.
    pub(crate) fn changed(
        &mut self,
        namespace: &str,
        source: &SourceRef,
        rv: u64,
        before: Option<SourceInfo>,
        now: Instant,
    ) {
        if self.last_sweep.is_none_or(|t| now.saturating_duration_since(t) >= SWEEP) {
            self.sweep(now);
        }
        let steps = self.changes.entry((namespace.to_string(), source.clone())).or_default();
        steps.push_back(Step { rv, before, at: now });
        if steps.len() > STEPS {
            steps.pop_front();
        }
    }

    /// The content `source` had at resourceVersion `rv`, given its content now: the content
    /// before the first kept change made after `rv`, or `current` if none was.
    pub(crate) fn content_at(&self, namespace: &str, source: &SourceRef, rv: u64, current: Applied) -> Applied {
        // The key is built only for sources that have changes at all.
        if self.changes.is_empty() {
            return current;
        }
        self.changes
            .get(&(namespace.to_string(), source.clone()))
            .and_then(|steps| steps.iter().find(|s| s.rv > rv))
            .map_or(current, |s| s.before.as_ref().map_or(Applied::Absent, |i| Applied::Hash(i.hash)))
    }

    /// `source` as it was just before its latest kept change. For a source that does not
    /// exist now that change was its deletion, so this is the deleted object: its match and
    /// ignore flags say whether the deletion counts. `None`: no change kept, or it was a
    /// creation.
    pub(crate) fn before_last_change(&self, namespace: &str, source: &SourceRef) -> Option<&SourceInfo> {
        if self.changes.is_empty() {
            return None;
        }
        self.changes.get(&(namespace.to_string(), source.clone()))?.back()?.before.as_ref()
    }

    /// Sources with remembered changes.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.changes.len()
    }

    /// Forgets every change older than [`KEEP`].
    fn sweep(&mut self, now: Instant) {
        self.last_sweep = Some(now);
        self.changes.retain(|_, steps| {
            steps.retain(|s| now.saturating_duration_since(s.at) < KEEP);
            !steps.is_empty()
        });
        self.changes.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::hash::ContentHash;
    use crate::core::model::parse_rv;
    use crate::core::model::source::SourceKind;

    fn h(n: u8) -> Applied {
        Applied::Hash(ContentHash([n; 32]))
    }
    /// A source with content `n` and no match/ignore flags.
    fn src(n: u8) -> Option<SourceInfo> {
        Some(SourceInfo {
            hash: ContentHash([n; 32]),
            matched: false,
            ignored: false,
            content_rv: None,
            reloader: Default::default(),
        })
    }

    #[test]
    fn content_at_a_resource_version() {
        let cm = SourceRef::new(SourceKind::ConfigMap, "app-config");
        let t0 = Instant::now();
        let mut hist = History::default();
        // Created at 10 (absent before), changed 1 -> 2 at 20 and 2 -> 3 at 30; now 3.
        hist.changed("ns", &cm, 10, None, t0);
        hist.changed("ns", &cm, 20, src(1), t0);
        hist.changed("ns", &cm, 30, src(2), t0);
        let rows = [(5, Applied::Absent), (10, h(1)), (15, h(1)), (20, h(2)), (29, h(2)), (30, h(3)), (99, h(3))];
        for (rv, want) in rows {
            assert_eq!(hist.content_at("ns", &cm, rv, h(3)), want, "at {rv}");
        }
        assert_eq!(hist.content_at("other", &cm, 5, h(3)), h(3), "another namespace");
        let sec = SourceRef::new(SourceKind::Secret, "app-config");
        assert_eq!(hist.content_at("ns", &sec, 5, h(3)), h(3), "another kind");
    }

    #[test]
    fn unknown_resource_version_counts_as_after_everything() {
        let cm = SourceRef::new(SourceKind::ConfigMap, "c");
        let mut hist = History::default();
        hist.changed("ns", &cm, u64::MAX, src(1), Instant::now());
        assert_eq!(hist.content_at("ns", &cm, 1_000_000, Applied::Absent), h(1));
    }

    #[test]
    fn keeps_a_few_recent_changes_only() {
        let cm = SourceRef::new(SourceKind::ConfigMap, "c");
        let t0 = Instant::now();
        let mut hist = History::default();
        for i in 0..20u8 {
            hist.changed("ns", &cm, 100 + u64::from(i), src(i), t0);
        }
        // The 8 newest are kept: the oldest kept change is at 112, before it 12.
        assert_eq!(hist.content_at("ns", &cm, 1, h(99)), h(12));
        let other = SourceRef::new(SourceKind::Secret, "s");
        hist.changed("ns", &other, 5, src(1), t0 + KEEP + SWEEP);
        assert_eq!(hist.len(), 1, "expired changes are swept");
        assert_eq!(hist.content_at("ns", &cm, 1, h(99)), h(99));
    }

    /// A deleted source is remembered as the deleted object was, flags included; the last
    /// change counts, and a creation leaves nothing to remember.
    #[test]
    fn the_deleted_object_is_kept_with_its_flags() {
        let cm = SourceRef::new(SourceKind::ConfigMap, "c");
        let t0 = Instant::now();
        let mut hist = History::default();
        assert_eq!(hist.before_last_change("ns", &cm), None, "no history at all");
        let ignored = SourceInfo {
            hash: ContentHash([1; 32]),
            matched: false,
            ignored: true,
            content_rv: None,
            reloader: Default::default(),
        };
        let matched = SourceInfo {
            hash: ContentHash([2; 32]),
            matched: true,
            ignored: false,
            content_rv: None,
            reloader: Default::default(),
        };
        hist.changed("ns", &cm, 10, Some(ignored.clone()), t0);
        assert_eq!(hist.before_last_change("ns", &cm), Some(&ignored), "deleted while ignored");
        assert_eq!(hist.before_last_change("other", &cm), None, "another namespace");
        hist.changed("ns", &cm, 20, None, t0);
        assert_eq!(hist.before_last_change("ns", &cm), None, "re-created");
        hist.changed("ns", &cm, 30, Some(matched.clone()), t0);
        assert_eq!(hist.before_last_change("ns", &cm), Some(&matched), "deleted again, with match");
        assert_eq!(hist.content_at("ns", &cm, 5, Applied::Absent), h(1), "content is kept as before");
        hist.changed("ns", &SourceRef::new(SourceKind::Secret, "s"), 40, None, t0 + KEEP + SWEEP);
        assert_eq!(hist.before_last_change("ns", &cm), None, "forgotten once expired");
    }

    #[test]
    fn resource_versions_parse_as_kep_5504_says() {
        assert_eq!(parse_rv(Some("12345")), Some(12345));
        for bad in [None, Some(""), Some("0"), Some("-1"), Some("abc"), Some("1.5")] {
            assert_eq!(parse_rv(bad), None, "{bad:?}");
        }
    }
}
