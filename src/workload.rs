//! Workloads as the controller keeps them: a compact projection of each Deployment,
//! StatefulSet and DaemonSet (policy, the sources it uses, the applied record), never the
//! whole object.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::policy::{Keys, Policy};
use crate::record::{self, FIELD_MANAGER, RECORD_ANNOTATION, Record};
use crate::refs;
use crate::source::SourceRef;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
}

impl WorkloadKind {
    pub const ALL: [WorkloadKind; 3] = [WorkloadKind::Deployment, WorkloadKind::StatefulSet, WorkloadKind::DaemonSet];

    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
        }
    }

    pub fn api_version(self) -> &'static str {
        "apps/v1"
    }

    /// Parses `deployment`, `deploy`, `Deployment`, `deployments`, … (for `reloader explain`).
    pub fn parse(s: &str) -> Option<WorkloadKind> {
        match s.to_ascii_lowercase().as_str() {
            "deployment" | "deployments" | "deploy" => Some(WorkloadKind::Deployment),
            "statefulset" | "statefulsets" | "sts" => Some(WorkloadKind::StatefulSet),
            "daemonset" | "daemonsets" | "ds" => Some(WorkloadKind::DaemonSet),
            _ => None,
        }
    }
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkloadKey {
    pub kind: WorkloadKind,
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for WorkloadKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.kind, self.namespace, self.name)
    }
}

/// The projection of one workload.
#[derive(Clone, Debug)]
pub struct Workload {
    pub key: WorkloadKey,
    pub uid: Option<String>,
    pub resource_version: String,
    pub policy: Policy,
    /// Sources the pod template uses, with the container each is attributed to.
    pub refs: BTreeMap<SourceRef, String>,
    /// The first regular container: named reloads of unused sources are attributed to it.
    pub first_container: Option<String>,
    /// `STAKATER_*` env vars present, per container (for `--reload-on-delete` with env-vars).
    pub stakater_env: BTreeSet<(String, String)>,
    /// The applied record; `Ok(None)` when the workload carries none yet.
    pub record: Result<Option<Record>, String>,
    /// Set (to the writer's field manager) when the record was last written by someone else:
    /// `kubectl rollout undo` copies an old ReplicaSet's annotations, record included, back
    /// onto the Deployment while restarting its pods. Such a record does not describe what the
    /// running pods have, so it is not trusted: the workload is adopted as seen.
    pub record_foreign: Option<String>,
    /// A digest of everything above that decisions read (not the resourceVersion), so that
    /// status-only updates of a workload do not cause a reconcile.
    pub fingerprint: u64,
}

impl Workload {
    /// A reference for Events about this workload.
    pub fn object_ref(&self) -> k8s_openapi::api::core::v1::ObjectReference {
        k8s_openapi::api::core::v1::ObjectReference {
            api_version: Some(self.key.kind.api_version().into()),
            kind: Some(self.key.kind.as_str().into()),
            name: Some(self.key.name.clone()),
            namespace: Some(self.key.namespace.clone()),
            uid: self.uid.clone(),
            ..Default::default()
        }
    }

    pub fn container_for(&self, source: &SourceRef) -> Option<&str> {
        self.refs.get(source).map(String::as_str).or(self.first_container.as_deref())
    }
}

/// Builds the projection of a workload from its metadata and pod template.
pub fn project(
    kind: WorkloadKind,
    meta: &ObjectMeta,
    template: Option<&PodTemplateSpec>,
    keys: &Keys,
    auto_reload_all: bool,
) -> Workload {
    let template_annotations = template.and_then(|t| t.metadata.as_ref()).and_then(|m| m.annotations.as_ref());
    let policy = Policy::parse(keys, meta.annotations.as_ref(), template_annotations, auto_reload_all);
    let spec = template.and_then(|t| t.spec.as_ref());
    let refs = spec.map(refs::references).unwrap_or_default();
    let first_container = spec.and_then(|s| s.containers.first()).map(|c| c.name.clone());
    let stakater_env: BTreeSet<(String, String)> = spec
        .into_iter()
        .flat_map(|s| s.containers.iter())
        .flat_map(|c| {
            c.env.iter().flatten().filter(|e| e.name.starts_with("STAKATER_")).map(|e| (c.name.clone(), e.name.clone()))
        })
        .collect();
    let record = match meta.annotations.as_ref().and_then(|a| a.get(RECORD_ANNOTATION)) {
        None => Ok(None),
        Some(s) => record::decode(s).map(Some),
    };
    let record_foreign = match &record {
        Ok(Some(_)) => foreign_writer(meta),
        _ => None,
    };
    let fingerprint = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        meta.annotations.hash(&mut h);
        template_annotations.hash(&mut h);
        refs.hash(&mut h);
        first_container.hash(&mut h);
        stakater_env.hash(&mut h);
        h.finish()
    };
    Workload {
        key: WorkloadKey {
            kind,
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
        },
        uid: meta.uid.clone(),
        resource_version: meta.resource_version.clone().unwrap_or_default(),
        policy,
        refs,
        first_container,
        stakater_env,
        record,
        record_foreign,
        fingerprint,
    }
}

/// Who last wrote the record annotation, if not this controller (from `managedFields`). An
/// object without managed fields is trusted.
fn foreign_writer(meta: &ObjectMeta) -> Option<String> {
    let entries = meta.managed_fields.as_ref().filter(|m| !m.is_empty())?;
    let key = format!("f:{RECORD_ANNOTATION}");
    let owns = |e: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry| {
        e.fields_v1.as_ref().and_then(|f| f.0.get("f:metadata")?.get("f:annotations")?.get(&key)).is_some()
    };
    if entries.iter().any(|e| e.manager.as_deref() == Some(FIELD_MANAGER) && owns(e)) {
        return None;
    }
    Some(entries.iter().find(|e| owns(e)).and_then(|e| e.manager.clone()).unwrap_or_else(|| "unknown".into()))
}

/// The Kubernetes types this controller rolls.
pub trait WorkloadObject:
    kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + Clone
    + fmt::Debug
    + serde::de::DeserializeOwned
    + serde::Serialize
    + Send
    + Sync
    + 'static
{
    const KIND: WorkloadKind;
    /// The API resource (plural), for metrics labels.
    const RESOURCE: &'static str;
    fn template(&self) -> Option<&PodTemplateSpec>;
}

impl WorkloadObject for Deployment {
    const KIND: WorkloadKind = WorkloadKind::Deployment;
    const RESOURCE: &'static str = "deployments";
    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref().map(|s| &s.template)
    }
}

impl WorkloadObject for StatefulSet {
    const KIND: WorkloadKind = WorkloadKind::StatefulSet;
    const RESOURCE: &'static str = "statefulsets";
    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref().map(|s| &s.template)
    }
}

impl WorkloadObject for DaemonSet {
    const KIND: WorkloadKind = WorkloadKind::DaemonSet;
    const RESOURCE: &'static str = "daemonsets";
    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref().map(|s| &s.template)
    }
}
