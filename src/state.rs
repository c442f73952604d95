//! The in-memory index the watches feed: source hashes per namespace, workload projections,
//! and the reverse index source → workloads, so a change is resolved without any API call.

use std::collections::{HashMap, HashSet};

use crate::source::{NamespaceSources, SourceInfo, SourceKind, SourceRef};
use crate::workload::{Workload, WorkloadKey};

#[derive(Default)]
pub struct State {
    sources: HashMap<String, NamespaceSources>,
    workloads: HashMap<WorkloadKey, Workload>,
    /// (namespace, source) → workloads that use it or recorded it.
    by_source: HashMap<(String, SourceRef), HashSet<WorkloadKey>>,
    /// namespace → workloads with named-reload patterns (they may match any source name).
    with_patterns: HashMap<String, HashSet<WorkloadKey>>,
}

impl State {
    pub fn sources(&self, namespace: &str) -> Option<&NamespaceSources> {
        self.sources.get(namespace)
    }

    pub fn workload(&self, key: &WorkloadKey) -> Option<&Workload> {
        self.workloads.get(key)
    }

    pub fn workload_keys(&self) -> impl Iterator<Item = &WorkloadKey> {
        self.workloads.keys()
    }

    pub fn source_count(&self) -> usize {
        self.sources.values().map(|n| n.configmaps.len() + n.secrets.len()).sum()
    }

    pub fn workload_count(&self) -> usize {
        self.workloads.len()
    }

    /// Sets a source; returns whether its hash changed (or it is new).
    pub fn upsert_source(&mut self, namespace: &str, kind: SourceKind, name: &str, info: SourceInfo) -> bool {
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

    /// Removes a source; returns whether it existed.
    pub fn remove_source(&mut self, namespace: &str, kind: SourceKind, name: &str) -> bool {
        let Some(ns) = self.sources.get_mut(namespace) else { return false };
        let existed = ns.of_kind_mut(kind).remove(name).is_some();
        if ns.is_empty() {
            self.sources.remove(namespace);
        }
        existed
    }

    /// Every source of one kind (for a relist diff).
    pub fn source_names(&self, kind: SourceKind) -> Vec<(String, String)> {
        self.sources.iter().flat_map(|(ns, s)| s.of_kind(kind).keys().map(move |n| (ns.clone(), n.clone()))).collect()
    }

    /// Workloads a change of this source may concern.
    pub fn affected(&self, namespace: &str, source: &SourceRef) -> Vec<WorkloadKey> {
        let mut out: Vec<WorkloadKey> = Vec::new();
        if let Some(set) = self.by_source.get(&(namespace.to_string(), source.clone())) {
            out.extend(set.iter().cloned());
        }
        if let Some(set) = self.with_patterns.get(namespace) {
            out.extend(set.iter().filter(|k| !out.contains(k)).cloned().collect::<Vec<_>>());
        }
        out
    }

    /// Workloads in a namespace.
    pub fn workloads_in(&self, namespace: &str) -> Vec<WorkloadKey> {
        self.workloads.keys().filter(|k| k.namespace == namespace).cloned().collect()
    }

    fn index_keys(w: &Workload) -> Vec<SourceRef> {
        let mut keys: Vec<SourceRef> = w.refs.keys().cloned().collect();
        if let Ok(Some(r)) = &w.record {
            keys.extend(r.keys().filter(|k| !w.refs.contains_key(k)).cloned());
        }
        keys
    }

    /// Sets a workload projection; returns whether it differs in anything decisions read.
    pub fn upsert_workload(&mut self, w: Workload) {
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

    pub fn remove_workload(&mut self, key: &WorkloadKey) -> bool {
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

    /// Keys of workloads of one kind (for a relist diff).
    pub fn workload_keys_of(&self, kind: crate::workload::WorkloadKind) -> Vec<WorkloadKey> {
        self.workloads.keys().filter(|k| k.kind == kind).cloned().collect()
    }
}
