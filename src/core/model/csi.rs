//! Secrets Store CSI: the two `secrets-store.csi.x-k8s.io/v1` types this controller reads, the
//! content hash of one pod's mount, and the rule that turns many pods' mounts of one
//! SecretProviderClass (SPC) into the one content its workloads are compared with.
//!
//! The driver writes one SecretProviderClassPodStatus (SPCPS) per pod and SPC: the objects it
//! mounted and their versions (never values). A rotation reaches the pods one by one, and every
//! pod that starts (ours, after a reload) brings a new SPCPS. The SPC's content must move once
//! per rotation and never because pods come and go.
//!
//! **The rule.** Each SPCPS holds a content hash *since* the resourceVersion at which it took
//! that content (live: the write that changed it; after a (re)start: its current
//! resourceVersion, the best bound there is). A content's *first sight* is the smallest `since`
//! of the SPCPS objects holding it. The SPC's content is the content with the newest first
//! sight, and it only ever moves forward: it changes only to a content first seen after the
//! current one was, and it stays while any SPCPS of the SPC exists, even when no pod holds it
//! any more. So:
//! - a rotation seen through pods one by one: the first pod's new content is first seen after the
//!   old one, so the SPC moves once; the other pods' updates add holders, nothing else;
//! - new pods mounting the applied content: more holders of the current content, no change;
//! - old pods' SPCPS deleted: fewer holders of an older content, no change;
//! - a pod that mounts an older content again (a stale provider cache on one node, or a status
//!   created late for a mount made before the rotation): a content seen before is never news
//!   again, even once no other pod holds it; that pod needs the rotation too, and the reload
//!   that rolls it away gives it the current content. The first sights of the last
//!   `REMEMBERED` contents are kept for that, holders or not;
//! - a rotation back to an older content (a secret rolled back at the provider) is still news:
//!   it reaches a pod that held the current content, and from that pod the content is taken
//!   as first seen now;
//! - a restart: the first sights are rebuilt from the objects' resourceVersions. The newest
//!   content was first written after every older content's first holder (only rotated pods and
//!   pods started since hold it), so the same content comes out and, the applied record on the
//!   workload matching it, nothing rolls. A rotation during the downtime is a newer content than
//!   the record holds: one rollout on return. The bound fails only when every pod still on an
//!   older content had some other write (labels, finalizers) after the newest content's first
//!   holder; then one extra rollout follows, never a loop.
//! - terminating SPCPS objects (a deletion timestamp) hold nothing;
//! - all SPCPS of an SPC gone: the SPC is absent (no pod mounts it). Its first mount afterwards
//!   is the content its pods start with, like the creation of a ConfigMap, and never rolls
//!   (Reloader handles no SPCPS creation or deletion either).

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

use crate::core::model::hash::{ContentHash, spcps_hash};

pub(crate) const GROUP_VERSION: &str = "secrets-store.csi.x-k8s.io/v1";

/// A SecretProviderClassPodStatus: only what the hash needs.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub(crate) struct SecretProviderClassPodStatus {
    pub(crate) metadata: ObjectMeta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) status: Option<PodStatus>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PodStatus {
    #[serde(default)]
    pub(crate) pod_name: Option<String>,
    #[serde(default)]
    pub(crate) secret_provider_class_name: Option<String>,
    #[serde(default)]
    pub(crate) objects: Option<Vec<MountedObject>>,
}

/// One mounted object: its provider id and version (no value).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub(crate) struct MountedObject {
    #[serde(default)]
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) version: String,
}

namespaced_resource!(
    SecretProviderClassPodStatus,
    "secrets-store.csi.x-k8s.io",
    "v1",
    "SecretProviderClassPodStatus",
    "secretproviderclasspodstatuses"
);

/// A SecretProviderClass: only its metadata (its `match` and `ignore` annotations). Its spec
/// (provider parameters) is dropped when decoded.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub(crate) struct SecretProviderClass {
    pub(crate) metadata: ObjectMeta,
}

namespaced_resource!(
    SecretProviderClass,
    "secrets-store.csi.x-k8s.io",
    "v1",
    "SecretProviderClass",
    "secretproviderclasses"
);

/// What one SPCPS says is mounted: the SPC and the content hash. `None` when it holds nothing
/// (no status or no objects yet, no SPC name, or being deleted).
pub(crate) fn mount_of(s: &SecretProviderClassPodStatus) -> Option<(String, ContentHash)> {
    if s.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let st = s.status.as_ref()?;
    let spc = st.secret_provider_class_name.as_deref().filter(|n| !n.is_empty())?;
    let objects = st.objects.as_ref()?;
    Some((spc.to_string(), spcps_hash(spc, objects.iter().map(|o| (o.id.as_str(), o.version.as_str())))))
}

/// The `id=version` lines of one SPCPS, sorted (for `reloader explain`: versions, no values).
pub(crate) fn versions_of(s: &SecretProviderClassPodStatus) -> Vec<String> {
    let mut v: Vec<String> =
        s.status.iter().flat_map(|st| st.objects.iter().flatten()).map(|o| format!("{}={}", o.id, o.version)).collect();
    v.sort();
    v
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Held {
    hash: ContentHash,
    /// The resourceVersion since which this SPCPS holds `hash`.
    since: u64,
}

/// How many contents' first sights an SPC remembers beyond those its pods hold (one per
/// rotation: a handful covers a rotation seen late by some pods, at 40 bytes each).
const REMEMBERED: usize = 8;

/// The mounts of one SecretProviderClass (one namespace) and its content by the rule above.
#[derive(Clone, Debug, Default)]
pub(crate) struct SpcMounts {
    /// SPCPS name → what it holds.
    held: HashMap<String, Held>,
    /// The SPC's content and the first sight it was chosen with.
    current: Option<(ContentHash, u64)>,
    /// The first sight of each content seen lately, held or not (at most `REMEMBERED` beyond
    /// the held ones): what makes an old content old even when no pod holds it any more.
    first: BTreeMap<ContentHash, u64>,
}

impl SpcMounts {
    /// The SPC's content: `None` when no SPCPS of it holds anything.
    pub(crate) fn current(&self) -> Option<ContentHash> {
        self.current.map(|(h, _)| h)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// The SPCPS `name` holds `hash`, as of resourceVersion `rv`. Returns whether its own
    /// content changed (a new holder, or another hash).
    pub(crate) fn set(&mut self, name: &str, hash: ContentHash, rv: u64) -> bool {
        let before = match self.held.get(name) {
            Some(h) if h.hash == hash => return false,
            before => before.map(|h| h.hash),
        };
        // A pod moving off the current content is a rotation seen now, whatever the content
        // it moves to; any other arrival of a content keeps its earliest sight.
        let rotated = before.is_some() && before == self.current();
        let first = self.first.entry(hash).or_insert(rv);
        if rotated {
            *first = rv;
        } else {
            *first = (*first).min(rv);
        }
        self.held.insert(name.to_string(), Held { hash, since: rv });
        self.settle();
        true
    }

    /// The SPCPS `name` holds nothing any more (deleted, terminating, or moved to another SPC).
    pub(crate) fn remove(&mut self, name: &str) -> bool {
        let had = self.held.remove(name).is_some();
        self.settle();
        had
    }

    fn settle(&mut self) {
        if self.held.is_empty() {
            self.current = None;
            return;
        }
        // The held contents, each at its first sight: the earliest of its holders', or the
        // one remembered from before.
        let mut first: BTreeMap<ContentHash, u64> = BTreeMap::new();
        for h in self.held.values() {
            let remembered = self.first.get(&h.hash).copied().unwrap_or(h.since);
            let e = first.entry(h.hash).or_insert(remembered);
            *e = (*e).min(h.since);
        }
        // The newest first sight; equal ones (only with unparseable resourceVersions) by hash.
        let newest = first.iter().map(|(h, s)| (*h, *s)).max_by_key(|(h, since)| (*since, *h)).expect("not empty");
        // While some pod holds the current content, the newest content is the content. Once
        // none does, it stays until a content first seen after it arrives.
        match self.current {
            Some((h, since)) if !first.contains_key(&h) && newest.1 <= since => {}
            _ => self.current = Some(newest),
        }
        self.forget_beyond(&first);
    }

    /// Keeps the first sights of the held contents, the current one and the `REMEMBERED`
    /// newest others.
    fn forget_beyond(&mut self, held: &BTreeMap<ContentHash, u64>) {
        let current = self.current();
        let mut others: Vec<(u64, ContentHash)> = self
            .first
            .iter()
            .filter(|(h, _)| !held.contains_key(*h) && Some(**h) != current)
            .map(|(h, s)| (*s, *h))
            .collect();
        if others.len() <= REMEMBERED {
            return;
        }
        others.sort_unstable();
        for (_, h) in &others[..others.len() - REMEMBERED] {
            self.first.remove(h);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn h(n: u8) -> ContentHash {
        ContentHash([n; 32])
    }

    enum Op {
        Set(&'static str, u8, u64),
        Remove(&'static str),
    }
    use Op::*;

    /// A step and the content wanted after it.
    type Step = (Op, Option<u8>);
    /// A status object, its content and its resourceVersion.
    type Listed = (&'static str, u8, u64);

    /// Each row: the steps, then the content wanted after each one.
    #[test]
    fn the_spc_content_moves_once_per_rotation() {
        let rows: Vec<(&str, Vec<Step>)> = vec![
            (
                "three pods rotate one by one: one change, at the first",
                vec![
                    (Set("p1", 1, 10), Some(1)),
                    (Set("p2", 1, 11), Some(1)),
                    (Set("p3", 1, 12), Some(1)),
                    (Set("p1", 2, 20), Some(2)),
                    (Set("p2", 2, 21), Some(2)),
                    (Set("p3", 2, 22), Some(2)),
                ],
            ),
            (
                "the rollout: new pods with the applied content, old ones deleted",
                vec![
                    (Set("p1", 1, 10), Some(1)),
                    (Set("p2", 1, 11), Some(1)),
                    (Set("p1", 2, 20), Some(2)),
                    (Set("n1", 2, 30), Some(2)),
                    (Remove("p1"), Some(2)),
                    (Set("n2", 2, 31), Some(2)),
                    (Remove("p2"), Some(2)),
                ],
            ),
            (
                "the only rotated pod goes before any other holds the new content: it stays",
                vec![
                    (Set("p1", 1, 10), Some(1)),
                    (Set("p2", 1, 11), Some(1)),
                    (Set("p1", 2, 20), Some(2)),
                    (Remove("p1"), Some(2)),
                    (Set("p3", 2, 40), Some(2)),
                ],
            ),
            (
                "an old content mounted again by a new pod does not win while older pods hold it",
                vec![(Set("p1", 1, 10), Some(1)), (Set("p2", 2, 20), Some(2)), (Set("p3", 1, 30), Some(2))],
            ),
            (
                "the same content written again (labels, a status refresh) changes nothing",
                vec![(Set("p1", 1, 10), Some(1)), (Set("p2", 2, 20), Some(2)), (Set("p1", 1, 50), Some(2))],
            ),
            (
                "a second rotation during the first one's rollout moves it again",
                vec![(Set("p1", 1, 10), Some(1)), (Set("p1", 2, 20), Some(2)), (Set("n1", 3, 30), Some(3))],
            ),
            (
                "every pod gone: absent; the next mount is a first mount",
                vec![(Set("p1", 1, 10), Some(1)), (Remove("p1"), None), (Set("p2", 2, 20), Some(2))],
            ),
            (
                "a status created late with the content before the rotation is no news (issue: it rolled twice)",
                vec![
                    (Set("a", 1, 10), Some(1)),
                    (Set("a", 2, 20), Some(2)),
                    (Set("b", 1, 21), Some(2)),
                    (Set("b", 2, 30), Some(2)),
                ],
            ),
            (
                "an old content no pod holds any more, mounted again by a new pod: no news",
                vec![
                    (Set("p1", 1, 10), Some(1)),
                    (Set("p1", 2, 20), Some(2)),
                    (Set("p2", 2, 21), Some(2)),
                    (Set("n1", 1, 40), Some(2)),
                    (Remove("n1"), Some(2)),
                ],
            ),
            (
                "a rotation back to an older content, seen on a pod that held the current one: news, once",
                vec![
                    (Set("p1", 1, 10), Some(1)),
                    (Set("p2", 1, 11), Some(1)),
                    (Set("p1", 2, 20), Some(2)),
                    (Set("p2", 2, 21), Some(2)),
                    (Set("p1", 1, 40), Some(1)),
                    (Set("p2", 1, 41), Some(1)),
                ],
            ),
            (
                "a rotation back while a late status still holds the older content: news, once",
                vec![
                    (Set("a", 1, 10), Some(1)),
                    (Set("a", 2, 20), Some(2)),
                    (Set("b", 1, 21), Some(2)),
                    (Set("a", 1, 40), Some(1)),
                    (Set("b", 1, 41), Some(1)),
                ],
            ),
        ];
        for (name, steps) in rows {
            let mut m = SpcMounts::default();
            for (i, (op, want)) in steps.into_iter().enumerate() {
                match op {
                    Set(n, c, rv) => {
                        m.set(n, h(c), rv);
                    }
                    Remove(n) => {
                        m.remove(n);
                    }
                }
                assert_eq!(m.current(), want.map(h), "{name}: step {i}");
            }
        }
    }

    /// A restart sees each SPCPS once, at its current resourceVersion, in any order: the
    /// content must be the one the live controller had.
    #[test]
    fn a_restart_finds_the_same_content_in_any_list_order() {
        // (SPCPS, content, resourceVersion now), and the content a live controller chose.
        let rows: Vec<(&str, Vec<Listed>, u8)> = vec![
            ("mid-rotation: one pod rotated", vec![("p1", 2, 20), ("p2", 1, 11), ("p3", 1, 12)], 2),
            ("rotation done, rollout under way", vec![("p2", 2, 21), ("n1", 2, 30), ("p3", 2, 22)], 2),
            ("nothing rotated", vec![("p1", 1, 10), ("p2", 1, 11)], 1),
            (
                "an old pod's later label change does not hide the rotation while another old pod has none",
                vec![("p3", 1, 25), ("p2", 1, 11), ("p1", 2, 20)],
                2,
            ),
        ];
        for (name, objs, want) in rows {
            for order in [objs.clone(), objs.iter().rev().cloned().collect()] {
                let mut m = SpcMounts::default();
                for (n, c, rv) in order {
                    m.set(n, h(c), rv);
                }
                assert_eq!(m.current(), Some(h(want)), "{name}");
            }
        }
    }

    #[test]
    fn set_says_whether_the_pods_own_content_changed() {
        let mut m = SpcMounts::default();
        assert!(m.set("p", h(1), 1), "new holder");
        assert!(!m.set("p", h(1), 2), "same content");
        assert!(m.set("p", h(2), 3), "rotated");
        assert!(m.remove("p"));
        assert!(!m.remove("p"));
        assert!(m.is_empty());
    }

    fn spcps(v: serde_json::Value) -> SecretProviderClassPodStatus {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn what_a_status_object_holds() {
        let ok = spcps(
            json!({"metadata": {"name": "p-ns-spc"}, "status": {"podName": "p", "secretProviderClassName": "spc",
            "mounted": true, "objects": [{"id": "secret/b", "version": "2"}, {"id": "secret/a", "version": "1"}]}}),
        );
        let (spc, hash) = mount_of(&ok).unwrap();
        assert_eq!(spc, "spc");
        let reordered = spcps(json!({"metadata": {"name": "x"}, "status": {"secretProviderClassName": "spc",
            "objects": [{"id": "secret/a", "version": "1"}, {"id": "secret/b", "version": "2"}]}}));
        assert_eq!(mount_of(&reordered).unwrap().1, hash, "object order does not matter");
        let other_spc = spcps(json!({"metadata": {"name": "x"}, "status": {"secretProviderClassName": "spc2",
            "objects": [{"id": "secret/a", "version": "1"}, {"id": "secret/b", "version": "2"}]}}));
        assert_ne!(mount_of(&other_spc).unwrap().1, hash, "the SPC name is part of the content, as in Reloader");
        assert_eq!(versions_of(&ok), ["secret/a=1", "secret/b=2"]);
        for (name, v) in [
            ("no status", json!({"metadata": {"name": "x"}})),
            ("no objects", json!({"metadata": {"name": "x"}, "status": {"secretProviderClassName": "spc"}})),
            ("no SPC name", json!({"metadata": {"name": "x"}, "status": {"objects": []}})),
            (
                "terminating",
                json!({"metadata": {"name": "x", "deletionTimestamp": "2026-01-01T00:00:00Z"},
                    "status": {"secretProviderClassName": "spc", "objects": []}}),
            ),
        ] {
            assert!(mount_of(&spcps(v)).is_none(), "{name}");
        }
    }

    /// Every order in which the events of one rotation seen late by a pod can arrive: the
    /// content moves once, to the rotated one, and ends there.
    #[test]
    fn a_rotation_seen_late_by_one_pod_moves_the_content_once_in_any_order() {
        // Pod a: v1 since 10, then v2 at 20. Pod b's status: created holding v1 at 21 (its
        // mount predates the rotation), then v2 at 30. The orders a watch can deliver them in
        // keep each object's own order.
        let orders: [&[Op]; 3] = [
            &[Set("a", 2, 20), Set("b", 1, 21), Set("b", 2, 30)],
            &[Set("b", 1, 21), Set("a", 2, 20), Set("b", 2, 30)],
            &[Set("b", 1, 21), Set("b", 2, 30), Set("a", 2, 20)],
        ];
        for (i, order) in orders.iter().enumerate() {
            let mut m = SpcMounts::default();
            m.set("a", h(1), 10);
            let mut contents = vec![m.current()];
            for op in order.iter() {
                if let Set(n, c, rv) = op {
                    m.set(n, h(*c), *rv);
                }
                if contents.last() != Some(&m.current()) {
                    contents.push(m.current());
                }
            }
            assert_eq!(contents, [Some(h(1)), Some(h(2))], "order {i}");
        }
    }

    #[test]
    fn only_a_few_old_contents_are_remembered() {
        let mut m = SpcMounts::default();
        for (i, rv) in (1..=30u8).zip((10..).step_by(10)) {
            m.set("p", h(i), rv);
        }
        assert_eq!(m.current(), Some(h(30)));
        assert_eq!(m.first.len(), REMEMBERED + 1, "the held content and the newest others");
    }
}
