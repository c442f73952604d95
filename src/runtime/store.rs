//! The store: the index the watches fill (`core::index::Index`) under one lock, the namespaces
//! `--namespace-selector` matches now, and the annotation keys in effect. Watches write it;
//! reconciles take a snapshot of one workload from it.

use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard, OnceLock};

use tracing::info;

use crate::core::index::Index;
use crate::core::model::keys::Keys;
use crate::core::model::source::SourceRef;
use crate::core::model::workload::WorkloadKey;

pub(crate) struct Store {
    index: Mutex<Index>,
    /// With `--namespace-selector`: the namespaces that currently match.
    selected: Mutex<Option<HashSet<String>>>,
    keys: Keys,
    /// The keys in effect when they differ from the settings': without the CSI driver's CRDs,
    /// `--enable-csi-integration` changes nothing at all (set once, at start).
    keys_in_effect: OnceLock<Keys>,
}

impl Store {
    /// `selector`: whether `--namespace-selector` limits the namespaces.
    pub(crate) fn new(keys: Keys, selector: bool) -> Store {
        Store {
            index: Mutex::new(Index::default()),
            selected: Mutex::new(selector.then(HashSet::new)),
            keys,
            keys_in_effect: OnceLock::new(),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Index> {
        self.index.lock().expect("index lock")
    }

    /// The annotation keys in effect.
    pub(crate) fn keys(&self) -> &Keys {
        self.keys_in_effect.get().unwrap_or(&self.keys)
    }

    /// The CSI driver's CRDs are not installed: SecretProviderClasses are no sources.
    pub(crate) fn without_csi(&self) {
        let _ = self.keys_in_effect.set(Keys { csi: false, ..self.keys.clone() });
    }

    /// Whether the index holds a source: `kind` is `configmap` or `secret` (as in the record).
    pub(crate) fn tracks_source(&self, namespace: &str, kind: &str, name: &str) -> bool {
        let Some(r) = SourceRef::parse(&format!("{kind}/{name}")) else { return false };
        self.lock().sources(namespace).is_some_and(|s| s.get(&r).is_some())
    }

    pub(crate) fn namespace_selected(&self, ns: &str) -> bool {
        self.selected.lock().expect("ns lock").as_ref().is_none_or(|s| s.contains(ns))
    }

    pub(crate) fn selected_namespaces(&self) -> Vec<String> {
        self.selected.lock().expect("ns lock").iter().flatten().cloned().collect()
    }

    /// A namespace joins or leaves the selector. Joining, its workloads are seen as of now and
    /// returned, to be looked at.
    pub(crate) fn select_namespace(&self, ns: &str, selected: bool) -> Vec<WorkloadKey> {
        let joined = {
            let mut g = self.selected.lock().expect("ns lock");
            let Some(set) = g.as_mut() else { return Vec::new() };
            if selected {
                set.insert(ns.to_string())
            } else {
                if set.remove(ns) {
                    info!(namespace = ns, "namespace no longer matches the selector");
                }
                false
            }
        };
        if !joined {
            return Vec::new();
        }
        info!(namespace = ns, "namespace matches the selector; watching it");
        self.lock().rebase(ns)
    }
}
