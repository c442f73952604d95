//! ConfigMaps, Secrets and SecretProviderClasses as the controller sees them: a kind, a name and
//! a content hash. (A SecretProviderClass's content is what the Secrets Store CSI driver reports
//! as mounted: see `csi`.)

use std::fmt;

use crate::core::model::hash::{ContentHash, ReloaderHash};

/// The kinds of configuration source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum SourceKind {
    ConfigMap,
    Secret,
    /// A Secrets Store CSI SecretProviderClass (only with `--enable-csi-integration`).
    SecretProviderClass,
}

impl SourceKind {
    pub(crate) const ALL: [SourceKind; 3] =
        [SourceKind::ConfigMap, SourceKind::Secret, SourceKind::SecretProviderClass];

    /// Reloader's type name, used in `last-reloaded-from`, env-var names and messages.
    pub(crate) fn type_name(self) -> &'static str {
        match self {
            SourceKind::ConfigMap => "CONFIGMAP",
            SourceKind::Secret => "SECRET",
            SourceKind::SecretProviderClass => "SECRETPROVIDERCLASS",
        }
    }

    /// The API resource (plural), as in RBAC rules, metrics labels and `--resources-to-ignore`.
    pub(crate) fn resource(self) -> &'static str {
        match self {
            SourceKind::ConfigMap => "configmaps",
            SourceKind::Secret => "secrets",
            SourceKind::SecretProviderClass => "secretproviderclasses",
        }
    }

    /// The lower-case singular used in the applied-hash record (`configmap/name`).
    pub(crate) fn singular(self) -> &'static str {
        match self {
            SourceKind::ConfigMap => "configmap",
            SourceKind::Secret => "secret",
            SourceKind::SecretProviderClass => "secretproviderclass",
        }
    }

    pub(crate) fn kind_name(self) -> &'static str {
        match self {
            SourceKind::ConfigMap => "ConfigMap",
            SourceKind::Secret => "Secret",
            SourceKind::SecretProviderClass => "SecretProviderClass",
        }
    }

    pub(crate) fn api_version(self) -> &'static str {
        match self {
            SourceKind::ConfigMap | SourceKind::Secret => "v1",
            SourceKind::SecretProviderClass => "secrets-store.csi.x-k8s.io/v1",
        }
    }

    /// The resource whose events carry this kind's changes, for the events-received metric:
    /// SecretProviderClasses change through their pod statuses, as in Reloader.
    pub(crate) fn event_resource(self) -> &'static str {
        match self {
            SourceKind::SecretProviderClass => "secretproviderclasspodstatuses",
            k => k.resource(),
        }
    }
}

/// A source named from a workload in the same namespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct SourceRef {
    pub(crate) kind: SourceKind,
    pub(crate) name: String,
}

impl SourceRef {
    pub(crate) fn new(kind: SourceKind, name: impl Into<String>) -> Self {
        SourceRef { kind, name: name.into() }
    }

    /// Parses `configmap/name`, `secret/name` or `secretproviderclass/name`.
    pub(crate) fn parse(s: &str) -> Option<Self> {
        let (kind, name) = s.split_once('/')?;
        let kind = match kind {
            "configmap" => SourceKind::ConfigMap,
            "secret" => SourceKind::Secret,
            "secretproviderclass" => SourceKind::SecretProviderClass,
            _ => return None,
        };
        (!name.is_empty()).then(|| SourceRef::new(kind, name))
    }
}

impl fmt::Display for SourceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind.singular(), self.name)
    }
}

/// Everything the controller keeps of one ConfigMap or Secret: no data, only its hash and the
/// two annotations that decisions read from the source itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SourceInfo {
    pub(crate) hash: ContentHash,
    /// `reloader.stakater.com/match: "true"` (search mode).
    pub(crate) matched: bool,
    /// `reloader.stakater.com/ignore: "true"`: never triggers a reload.
    pub(crate) ignored: bool,
    /// The resourceVersion at which its content last changed, or was first seen: its place in
    /// the wave's line (`waves::place`). Kept here, not in a map of its own: such a map, keyed
    /// by copies of the names, took 3 MiB at 20,000 sources.
    pub(crate) content_rv: Option<u64>,
    /// Stakater Reloader's hash of the same content, to read its marks at a switch from it
    /// (`model::marks`); the default for SecretProviderClasses, whose marks are not read.
    pub(crate) reloader: ReloaderHash,
}

/// The field managers of the tools that write many objects in one go: `kubectl apply`
/// (client-side and server-side), Helm, Argo CD, Flux, kapp. One of their runs writes the
/// sources of a workload one after another, a few hundred milliseconds apart, more on a busy
/// API server; a controller that rotates one Secret writes one.
pub(crate) const BATCH_WRITERS: [&str; 8] = [
    "kubectl-client-side-apply",
    "kubectl",
    "helm",
    "argocd-controller",
    "argocd-application-controller",
    "kustomize-controller",
    "helm-controller",
    "kapp",
];

/// Whether the object's latest write (the `managedFields` entry with the newest time) came
/// from one of the `BATCH_WRITERS`: its change then waits longer for the rest of the batch
/// (`Scheduler::changed`). Entries share a time to the second; any batch writer among the
/// newest counts.
pub(crate) fn written_by_a_batch_tool(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> bool {
    let entries = meta.managed_fields.iter().flatten();
    let Some(newest) = entries.clone().filter_map(|e| e.time.as_ref()).map(|t| t.0).max() else {
        return false;
    };
    entries
        .filter(|e| e.time.as_ref().is_some_and(|t| t.0 == newest))
        .any(|e| e.manager.as_deref().is_some_and(|m| BATCH_WRITERS.contains(&m)))
}

/// A source's `match` and `ignore` annotations as read from one object of it: what
/// [`SourceInfo`] keeps besides the hash, and all that is kept of a deleted object.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SourceFlags {
    pub(crate) matched: bool,
    pub(crate) ignored: bool,
}

/// The ConfigMaps, Secrets and SecretProviderClasses of one namespace.
#[derive(Clone, Debug, Default)]
pub(crate) struct NamespaceSources {
    pub(crate) configmaps: std::collections::HashMap<String, SourceInfo>,
    pub(crate) secrets: std::collections::HashMap<String, SourceInfo>,
    /// Those some pod has mounted, with the content the driver reports (see `csi`).
    pub(crate) secret_provider_classes: std::collections::HashMap<String, SourceInfo>,
}

impl NamespaceSources {
    pub(crate) fn of_kind(&self, kind: SourceKind) -> &std::collections::HashMap<String, SourceInfo> {
        match kind {
            SourceKind::ConfigMap => &self.configmaps,
            SourceKind::Secret => &self.secrets,
            SourceKind::SecretProviderClass => &self.secret_provider_classes,
        }
    }

    pub(crate) fn of_kind_mut(&mut self, kind: SourceKind) -> &mut std::collections::HashMap<String, SourceInfo> {
        match kind {
            SourceKind::ConfigMap => &mut self.configmaps,
            SourceKind::Secret => &mut self.secrets,
            SourceKind::SecretProviderClass => &mut self.secret_provider_classes,
        }
    }

    pub(crate) fn get(&self, r: &SourceRef) -> Option<&SourceInfo> {
        self.of_kind(r.kind).get(&r.name)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.configmaps.is_empty() && self.secrets.is_empty() && self.secret_provider_classes.is_empty()
    }
}

/// A ConfigMap or Secret type.
pub(crate) trait SourceObject:
    kube::Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static
{
    const KIND: SourceKind;
    fn content_hash(&self) -> ContentHash;
    fn reloader_hash(&self) -> ReloaderHash;
}

impl SourceObject for k8s_openapi::api::core::v1::ConfigMap {
    const KIND: SourceKind = SourceKind::ConfigMap;
    fn content_hash(&self) -> ContentHash {
        crate::core::model::hash::configmap_hash(self)
    }
    fn reloader_hash(&self) -> ReloaderHash {
        crate::core::model::hash::reloader_configmap_hash(self)
    }
}

impl SourceObject for k8s_openapi::api::core::v1::Secret {
    const KIND: SourceKind = SourceKind::Secret;
    fn content_hash(&self) -> ContentHash {
        crate::core::model::hash::secret_hash(self)
    }
    fn reloader_hash(&self) -> ReloaderHash {
        crate::core::model::hash::reloader_secret_hash(self)
    }
}

impl SourceInfo {
    /// What is kept of a ConfigMap or Secret: its content hash and its match/ignore flags
    /// (`Keys::flags`). The watches and `reloader explain` both build it here, so they cannot
    /// disagree.
    pub(crate) fn of<K: SourceObject>(obj: &K, flags: SourceFlags) -> SourceInfo {
        SourceInfo {
            hash: obj.content_hash(),
            matched: flags.matched,
            ignored: flags.ignored,
            content_rv: None,
            reloader: obj.reloader_hash(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What is kept per source is the controller's memory at scale (10 k sources: 10 k of
    /// these, plus the name): Reloader's hash fits in the padding, and nothing else may grow it
    /// unnoticed.
    #[test]
    fn batch_tools_are_known_by_their_latest_write() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
        let meta = |entries: serde_json::Value| -> ObjectMeta {
            serde_json::from_value(serde_json::json!({"name": "c", "managedFields": entries})).unwrap()
        };
        let at =
            |manager: &str, time: &str| serde_json::json!({"manager": manager, "operation": "Update", "time": time});
        let cases = [
            ("kubectl apply, client-side", vec![at("kubectl-client-side-apply", "2026-01-01T00:00:01Z")], true),
            ("server-side apply", vec![at("kubectl", "2026-01-01T00:00:01Z")], true),
            ("helm", vec![at("helm", "2026-01-01T00:00:01Z")], true),
            ("Argo CD", vec![at("argocd-controller", "2026-01-01T00:00:01Z")], true),
            ("Flux", vec![at("kustomize-controller", "2026-01-01T00:00:01Z")], true),
            ("a controller rotating a Secret", vec![at("vault-secrets-operator", "2026-01-01T00:00:01Z")], false),
            ("kubectl edit by hand", vec![at("kubectl-edit", "2026-01-01T00:00:01Z")], false),
            (
                "created by helm, rotated since by a controller",
                vec![at("helm", "2026-01-01T00:00:01Z"), at("external-secrets", "2026-01-01T00:05:00Z")],
                false,
            ),
            (
                "created by a controller, applied since",
                vec![at("external-secrets", "2026-01-01T00:00:01Z"), at("kubectl", "2026-01-01T00:05:00Z")],
                true,
            ),
            ("no managed fields", vec![], false),
        ];
        for (name, entries, want) in cases {
            assert_eq!(written_by_a_batch_tool(&meta(serde_json::Value::Array(entries))), want, "{name}");
        }
    }

    #[test]
    fn what_is_kept_per_source_stays_small() {
        assert_eq!(std::mem::size_of::<SourceInfo>(), 56);
    }
}
