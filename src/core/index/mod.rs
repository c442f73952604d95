//! The in-memory index the watches feed: source hashes per namespace, workload projections,
//! and the reverse index source → workloads, so a change is resolved without any API call.

pub(crate) mod history;

use std::collections::{HashMap, HashSet};

use crate::core::index::history::History;
use crate::core::model::csi::SpcMounts;
use crate::core::model::hash::ContentHash;
use crate::core::model::note::Tracked;
use crate::core::model::source::{NamespaceSources, SourceFlags, SourceInfo, SourceKind, SourceRef};
use crate::core::model::workload::{Workload, WorkloadKey};

#[derive(Default)]
pub(crate) struct Index {
    sources: HashMap<String, NamespaceSources>,
    workloads: HashMap<WorkloadKey, Workload>,
    /// (namespace, source) → workloads that use it or recorded it.
    by_source: HashMap<(String, SourceRef), HashSet<WorkloadKey>>,
    /// namespace → workloads with named-reload patterns (they may match any source name).
    with_patterns: HashMap<String, HashSet<WorkloadKey>>,
    /// What recently changed sources held before, for the baselines of newly seen workloads.
    history: History,
    /// The largest resourceVersion seen in any event: "now", in resourceVersions.
    rv_high_water: u64,
    /// Secrets Store CSI: the mounts of each (namespace, SecretProviderClass); its content, as
    /// `csi` decides it, is what `sources` holds for it.
    spc_mounts: HashMap<(String, String), SpcMounts>,
    /// (namespace, SecretProviderClassPodStatus) → the SecretProviderClass it holds content of.
    spcps: HashMap<(String, String), String>,
    /// (namespace, SecretProviderClass) → its match/ignore flags, from the object itself.
    spc_flags: HashMap<(String, String), SourceFlags>,
    /// (namespace, source) → its release mark for the circuit breaker (`breaker::RELEASE_ANNOTATION`).
    releases: HashMap<(String, SourceRef), String>,
}

impl Index {
    pub(crate) fn sources(&self, namespace: &str) -> Option<&NamespaceSources> {
        self.sources.get(namespace)
    }

    pub(crate) fn workload(&self, key: &WorkloadKey) -> Option<&Workload> {
        self.workloads.get(key)
    }

    /// Records, in memory, how the rollout of the workload's tracking note ended (a success is
    /// not written; see `decide::outcome::carried`). `false` if the workload no longer carries
    /// that note pending: a newer reload, or another pass, got there first.
    pub(crate) fn end_rollout(&mut self, key: &WorkloadKey, done: &Tracked) -> bool {
        match self.workloads.get_mut(key).and_then(|w| w.tracked.as_mut()) {
            Some(t) if t.pending() && t.same_reload(done) => {
                *t = done.clone();
                true
            }
            _ => false,
        }
    }

    pub(crate) fn history(&self) -> &History {
        &self.history
    }

    /// Notes a resourceVersion seen in an event (objects of every watch).
    pub(crate) fn observe_rv(&mut self, rv: Option<u64>) {
        if let Some(rv) = rv {
            self.rv_high_water = self.rv_high_water.max(rv);
        }
    }

    /// The workloads of `namespace` come into scope now (it joined `--namespace-selector`):
    /// they are seen for the first time as of now, so changes made while the namespace was out
    /// of scope are their baseline, and only later ones count.
    pub(crate) fn rebase(&mut self, namespace: &str) -> Vec<WorkloadKey> {
        let now = (self.rv_high_water > 0).then_some(self.rv_high_water);
        let mut keys = Vec::new();
        for (k, w) in self.workloads.iter_mut().filter(|(k, _)| k.namespace == namespace) {
            w.anchor = now;
            keys.push(k.clone());
        }
        keys
    }

    /// Notes that a source's content changed at resourceVersion `rv` (`None`: unknown, so
    /// after everything) from `before` (`None`: it did not exist).
    pub(crate) fn note_change(
        &mut self,
        namespace: &str,
        source: &SourceRef,
        rv: Option<u64>,
        before: Option<SourceInfo>,
        now: std::time::Instant,
    ) {
        self.history.changed(namespace, source, rv.unwrap_or(u64::MAX), before, now);
    }

    pub(crate) fn source_count(&self) -> usize {
        self.sources.values().map(|n| n.configmaps.len() + n.secrets.len() + n.secret_provider_classes.len()).sum()
    }

    pub(crate) fn workload_count(&self) -> usize {
        self.workloads.len()
    }

    /// Sets a source; returns whether its hash changed (or it is new).
    pub(crate) fn upsert_source(&mut self, namespace: &str, kind: SourceKind, name: &str, info: SourceInfo) -> bool {
        let map = self.sources.entry(namespace.to_string()).or_default().of_kind_mut(kind);
        match map.get_mut(name) {
            Some(old) => {
                let changed = old != &info;
                *old = info;
                changed
            }
            None => {
                map.insert(name.to_string(), info);
                true
            }
        }
    }

    /// Sets the release mark of a source (`None`: it has none); returns whether it changed.
    pub(crate) fn set_release(&mut self, namespace: &str, source: &SourceRef, mark: Option<String>) -> bool {
        let key = (namespace.to_string(), source.clone());
        match mark {
            Some(m) => self.releases.insert(key, m.clone()).is_none_or(|old| old != m),
            None => self.releases.remove(&key).is_some(),
        }
    }

    /// The resourceVersion at which a source's content last changed, if known.
    pub(crate) fn content_rv(&self, namespace: &str, source: &SourceRef) -> Option<u64> {
        self.sources.get(namespace)?.get(source)?.content_rv
    }

    /// The release mark of a source, if it carries one.
    pub(crate) fn release_of(&self, namespace: &str, source: &SourceRef) -> Option<&str> {
        self.releases.get(&(namespace.to_string(), source.clone())).map(String::as_str)
    }

    /// Removes a source; returns what was kept of it, if it existed.
    pub(crate) fn remove_source(&mut self, namespace: &str, kind: SourceKind, name: &str) -> Option<SourceInfo> {
        let key = (namespace.to_string(), SourceRef::new(kind, name));
        self.releases.remove(&key);
        let ns = self.sources.get_mut(namespace)?;
        let old = ns.of_kind_mut(kind).remove(name);
        if ns.is_empty() {
            self.sources.remove(namespace);
        }
        old
    }

    /// A source was deleted at resourceVersion `rv` (`None`: a relist found it gone). Its
    /// deletion is noted with the match/ignore `flags` of the deleted object, when there is
    /// one, else with those last seen: decisions read them, as Reloader reads the deleted
    /// object's annotations. Returns what was kept of the source, if it existed.
    pub(crate) fn delete_source(
        &mut self,
        namespace: &str,
        source: &SourceRef,
        rv: Option<u64>,
        flags: Option<SourceFlags>,
        now: std::time::Instant,
    ) -> Option<SourceInfo> {
        let mut old = self.remove_source(namespace, source.kind, &source.name)?;
        if let Some(f) = flags {
            (old.matched, old.ignored) = (f.matched, f.ignored);
        }
        self.note_change(namespace, source, rv, Some(old.clone()), now);
        Some(old)
    }

    /// The SecretProviderClassPodStatus `name` of `namespace` now holds `mount` (the class and
    /// content hash; `None`: nothing, or it is gone) as of resourceVersion `rv`. Returns whether
    /// the object was known, whether what it holds changed, and the classes whose mounts changed.
    pub(crate) fn set_spc_mount(
        &mut self,
        namespace: &str,
        name: &str,
        mount: Option<(String, ContentHash)>,
        rv: u64,
    ) -> (bool, bool, Vec<String>) {
        let key = (namespace.to_string(), name.to_string());
        let before = self.spcps.get(&key).cloned();
        let mut touched = Vec::new();
        let mut changed = false;
        if let Some(old) = &before
            && mount.as_ref().is_none_or(|(spc, _)| spc != old)
        {
            let k = (namespace.to_string(), old.clone());
            if let Some(m) = self.spc_mounts.get_mut(&k) {
                changed |= m.remove(name);
                if m.is_empty() {
                    self.spc_mounts.remove(&k);
                }
            }
            self.spcps.remove(&key);
            touched.push(old.clone());
        }
        if let Some((spc, hash)) = mount {
            let k = (namespace.to_string(), spc.clone());
            changed |= self.spc_mounts.entry(k).or_default().set(name, hash, rv);
            self.spcps.insert(key, spc.clone());
            if !touched.contains(&spc) {
                touched.push(spc);
            }
        }
        (before.is_some(), changed, touched)
    }

    /// A SecretProviderClass's match/ignore flags (`None`: it is gone).
    pub(crate) fn set_spc_flags(&mut self, namespace: &str, name: &str, flags: Option<SourceFlags>) {
        let key = (namespace.to_string(), name.to_string());
        match flags {
            Some(f) => self.spc_flags.insert(key, f),
            None => self.spc_flags.remove(&key),
        };
    }

    /// What the mounts and the object of a SecretProviderClass make of it: its content with its
    /// flags, or `None` when no pod mounts it.
    pub(crate) fn spc_info(&self, namespace: &str, name: &str) -> Option<SourceInfo> {
        let key = (namespace.to_string(), name.to_string());
        let hash = self.spc_mounts.get(&key)?.current()?;
        let f = self.spc_flags.get(&key).copied().unwrap_or_default();
        Some(SourceInfo {
            hash,
            matched: f.matched,
            ignored: f.ignored,
            content_rv: None,
            reloader: Default::default(),
        })
    }

    /// Every SecretProviderClassPodStatus that holds something (for a relist diff).
    pub(crate) fn spcps_names(&self) -> Vec<(String, String)> {
        self.spcps.keys().cloned().collect()
    }

    /// Every SecretProviderClass object seen (for a relist diff).
    pub(crate) fn spc_names(&self) -> Vec<(String, String)> {
        self.spc_flags.keys().cloned().collect()
    }

    /// Every source of one kind (for a relist diff).
    pub(crate) fn source_names(&self, kind: SourceKind) -> Vec<(String, String)> {
        self.sources.iter().flat_map(|(ns, s)| s.of_kind(kind).keys().map(move |n| (ns.clone(), n.clone()))).collect()
    }

    /// Workloads a change of this source may concern.
    pub(crate) fn affected(&self, namespace: &str, source: &SourceRef) -> Vec<WorkloadKey> {
        let mut out: Vec<WorkloadKey> = Vec::new();
        if let Some(set) = self.by_source.get(&(namespace.to_string(), source.clone())) {
            out.extend(set.iter().cloned());
        }
        if let Some(set) = self.with_patterns.get(namespace) {
            out.extend(set.iter().filter(|k| !out.contains(k)).cloned().collect::<Vec<_>>());
        }
        out
    }

    fn index_keys(w: &Workload) -> Vec<SourceRef> {
        let mut keys: Vec<SourceRef> = w.refs.keys().cloned().collect();
        if let Ok(Some(r)) = &w.record {
            keys.extend(r.keys().filter(|k| !w.refs.contains_key(k)).cloned());
        }
        keys
    }

    /// Sets a workload projection. While what governs it is unchanged (same object, same
    /// `anchor_digest`), the anchor of its first sight is kept.
    pub(crate) fn upsert_workload(&mut self, mut w: Workload) {
        if let Some(old) = self.workloads.get(&w.key)
            && old.uid == w.uid
            && old.anchor_digest == w.anchor_digest
        {
            w.anchor = old.anchor;
        }
        self.remove_workload(&w.key.clone());
        let ns = w.key.namespace.clone();
        for s in Self::index_keys(&w) {
            self.by_source.entry((ns.clone(), s)).or_default().insert(w.key.clone());
        }
        if w.policy.has_named() {
            self.with_patterns.entry(ns).or_default().insert(w.key.clone());
        }
        self.workloads.insert(w.key.clone(), w);
    }

    pub(crate) fn remove_workload(&mut self, key: &WorkloadKey) -> bool {
        let Some(old) = self.workloads.remove(key) else { return false };
        for s in Self::index_keys(&old) {
            let k = (key.namespace.clone(), s);
            if let Some(set) = self.by_source.get_mut(&k) {
                set.remove(key);
                if set.is_empty() {
                    self.by_source.remove(&k);
                }
            }
        }
        if let Some(set) = self.with_patterns.get_mut(&key.namespace) {
            set.remove(key);
            if set.is_empty() {
                self.with_patterns.remove(&key.namespace);
            }
        }
        true
    }

    /// Keys of the workloads of one namespace, or of all (`None`).
    pub(crate) fn workload_keys_in(&self, namespace: Option<&str>) -> Vec<WorkloadKey> {
        self.workloads.keys().filter(|k| namespace.is_none_or(|ns| k.namespace == ns)).cloned().collect()
    }

    /// Keys of workloads of one kind (for a relist diff).
    pub(crate) fn workload_keys_of(&self, kind: crate::core::kinds::WorkloadKind) -> Vec<WorkloadKey> {
        self.workloads.keys().filter(|k| k.kind == kind).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::kinds::WorkloadKind;
    use crate::core::model::keys::Keys;
    use crate::core::model::workload::project;
    use k8s_openapi::api::core::v1::PodTemplateSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use serde_json::json;

    fn seen_as(rv: &str, annotations: serde_json::Value, cms: &[&str], uid: &str) -> Workload {
        let meta: ObjectMeta = serde_json::from_value(json!({
            "name": "web", "namespace": "ns", "uid": uid, "resourceVersion": rv, "annotations": annotations
        }))
        .unwrap();
        let env_from: Vec<_> = cms.iter().map(|n| json!({"configMapRef": {"name": n}})).collect();
        let t: PodTemplateSpec =
            serde_json::from_value(json!({"spec": {"containers": [{"name": "app", "envFrom": env_from}]}})).unwrap();
        project(WorkloadKind::Deployment, &meta, Some(&t), &Keys::default(), false)
    }

    /// The anchor is the resourceVersion of first sight; it moves only when what governs the
    /// workload changes, never for other writers' annotations or our own record.
    #[test]
    fn the_anchor_moves_only_with_what_governs() {
        let auto = json!({"reloader.stakater.com/auto": "true"});
        let mut st = Index::default();
        let anchor = |st: &Index| st.workload(&seen_as("1", json!({}), &[], "u").key).unwrap().anchor;
        let rows: Vec<(&str, Workload, Option<u64>)> = vec![
            ("first sight", seen_as("100", auto.clone(), &["a"], "u"), Some(100)),
            (
                "the controller-manager's revision annotation",
                seen_as(
                    "101",
                    json!({"reloader.stakater.com/auto": "true", "deployment.kubernetes.io/revision": "1"}),
                    &["a"],
                    "u",
                ),
                Some(100),
            ),
            (
                "another tool's annotation and our record",
                seen_as(
                    "102",
                    json!({"reloader.stakater.com/auto": "true", "argocd.argoproj.io/tracking-id": "x",
                        "reloader.kube-reloader.dev/applied": "{}"}),
                    &["a"],
                    "u",
                ),
                Some(100),
            ),
            ("a new reference", seen_as("103", auto.clone(), &["a", "b"], "u"), Some(103)),
            (
                "a policy change",
                seen_as("104", json!({"reloader.stakater.com/auto": "false"}), &["a", "b"], "u"),
                Some(104),
            ),
            (
                "a new object under the same name",
                seen_as("105", json!({"reloader.stakater.com/auto": "false"}), &["a", "b"], "v"),
                Some(105),
            ),
            ("an unparseable resourceVersion on a new object", seen_as("x1", auto.clone(), &["a"], "w"), None),
        ];
        for (name, w, want) in rows {
            st.observe_rv(w.anchor);
            st.upsert_workload(w);
            assert_eq!(anchor(&st), want, "{name}");
        }
        // Its namespace joins the selector: seen as of the newest resourceVersion observed.
        st.observe_rv(Some(200));
        assert_eq!(st.rebase("ns").len(), 1);
        assert_eq!(anchor(&st), Some(200), "rebased to now");
        assert!(st.rebase("other").is_empty());
    }
}
