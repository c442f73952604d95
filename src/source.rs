//! ConfigMaps and Secrets as the controller sees them: a kind, a name and a content hash.

use std::fmt;

use crate::hash::ContentHash;

/// The two kinds of configuration source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SourceKind {
    ConfigMap,
    Secret,
}

impl SourceKind {
    pub const ALL: [SourceKind; 2] = [SourceKind::ConfigMap, SourceKind::Secret];

    /// Reloader's type name, used in `last-reloaded-from`, env-var names and messages.
    pub fn type_name(self) -> &'static str {
        match self {
            SourceKind::ConfigMap => "CONFIGMAP",
            SourceKind::Secret => "SECRET",
        }
    }

    /// The API resource (plural), as in RBAC rules, metrics labels and `--resources-to-ignore`.
    pub fn resource(self) -> &'static str {
        match self {
            SourceKind::ConfigMap => "configmaps",
            SourceKind::Secret => "secrets",
        }
    }

    /// The lower-case singular used in the applied-hash record (`configmap/name`).
    pub fn singular(self) -> &'static str {
        match self {
            SourceKind::ConfigMap => "configmap",
            SourceKind::Secret => "secret",
        }
    }

    pub fn kind_name(self) -> &'static str {
        match self {
            SourceKind::ConfigMap => "ConfigMap",
            SourceKind::Secret => "Secret",
        }
    }
}

/// A source named from a workload in the same namespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceRef {
    pub kind: SourceKind,
    pub name: String,
}

impl SourceRef {
    pub fn new(kind: SourceKind, name: impl Into<String>) -> Self {
        SourceRef { kind, name: name.into() }
    }

    /// Parses `configmap/name` or `secret/name`.
    pub fn parse(s: &str) -> Option<Self> {
        let (kind, name) = s.split_once('/')?;
        let kind = match kind {
            "configmap" => SourceKind::ConfigMap,
            "secret" => SourceKind::Secret,
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
pub struct SourceInfo {
    pub hash: ContentHash,
    /// `reloader.stakater.com/match: "true"` (search mode).
    pub matched: bool,
    /// `reloader.stakater.com/ignore: "true"`: never triggers a reload.
    pub ignored: bool,
}

/// The ConfigMaps and Secrets of one namespace.
#[derive(Clone, Debug, Default)]
pub struct NamespaceSources {
    pub configmaps: std::collections::HashMap<String, SourceInfo>,
    pub secrets: std::collections::HashMap<String, SourceInfo>,
}

impl NamespaceSources {
    pub fn of_kind(&self, kind: SourceKind) -> &std::collections::HashMap<String, SourceInfo> {
        match kind {
            SourceKind::ConfigMap => &self.configmaps,
            SourceKind::Secret => &self.secrets,
        }
    }

    pub fn of_kind_mut(&mut self, kind: SourceKind) -> &mut std::collections::HashMap<String, SourceInfo> {
        match kind {
            SourceKind::ConfigMap => &mut self.configmaps,
            SourceKind::Secret => &mut self.secrets,
        }
    }

    pub fn get(&self, r: &SourceRef) -> Option<&SourceInfo> {
        self.of_kind(r.kind).get(&r.name)
    }

    pub fn is_empty(&self) -> bool {
        self.configmaps.is_empty() && self.secrets.is_empty()
    }
}
