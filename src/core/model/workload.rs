//! Workloads as the controller keeps them: a compact projection of each Deployment,
//! StatefulSet, DaemonSet, CronJob, Job and Argo Rollout (policy, the sources it uses, the
//! applied record, the few controls a decision reads), never the whole object.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::core::decide::outcome::{Progress, ROLLOUT_ANNOTATION, Tracked};
use crate::core::model::policy::{Keys, Policy};
use crate::core::model::record::{self, FIELD_MANAGER, RECORD_ANNOTATION, Record};
use crate::core::model::refs;
use crate::core::model::source::SourceRef;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
    CronJob,
    Job,
    Rollout,
}

impl WorkloadKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
            WorkloadKind::CronJob => "CronJob",
            WorkloadKind::Job => "Job",
            WorkloadKind::Rollout => "Rollout",
        }
    }

    pub(crate) fn api_version(self) -> &'static str {
        match self {
            WorkloadKind::Deployment | WorkloadKind::StatefulSet | WorkloadKind::DaemonSet => "apps/v1",
            WorkloadKind::CronJob | WorkloadKind::Job => "batch/v1",
            WorkloadKind::Rollout => "argoproj.io/v1alpha1",
        }
    }

    /// Parses `deployment`, `deploy`, `Deployment`, `deployments`, … (for `reloader explain`).
    pub(crate) fn parse(s: &str) -> Option<WorkloadKind> {
        match s.to_ascii_lowercase().as_str() {
            "deployment" | "deployments" | "deploy" => Some(WorkloadKind::Deployment),
            "statefulset" | "statefulsets" | "sts" => Some(WorkloadKind::StatefulSet),
            "daemonset" | "daemonsets" | "ds" => Some(WorkloadKind::DaemonSet),
            "cronjob" | "cronjobs" | "cj" => Some(WorkloadKind::CronJob),
            "job" | "jobs" => Some(WorkloadKind::Job),
            "rollout" | "rollouts" | "ro" => Some(WorkloadKind::Rollout),
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
pub(crate) struct WorkloadKey {
    pub(crate) kind: WorkloadKind,
    pub(crate) namespace: String,
    pub(crate) name: String,
}

impl fmt::Display for WorkloadKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.kind, self.namespace, self.name)
    }
}

/// The projection of one workload.
#[derive(Clone, Debug)]
pub(crate) struct Workload {
    pub(crate) key: WorkloadKey,
    pub(crate) uid: Option<String>,
    pub(crate) resource_version: String,
    pub(crate) policy: Policy,
    /// Sources the pod template uses, with the container each is attributed to.
    pub(crate) refs: BTreeMap<SourceRef, String>,
    /// The first regular container: named reloads of unused sources are attributed to it.
    pub(crate) first_container: Option<String>,
    /// `STAKATER_*` env vars present, per container (for `--reload-on-delete` with env-vars).
    pub(crate) stakater_env: BTreeSet<(String, String)>,
    /// Kind-specific state decisions read (suspend, pause, Rollout strategy).
    pub(crate) controls: Controls,
    /// The applied record; `Ok(None)` when the workload carries none yet.
    pub(crate) record: Result<Option<Record>, String>,
    /// Set (to the writer's field manager) when the record was last written by someone else:
    /// `kubectl rollout undo` copies an old ReplicaSet's annotations, record included, back
    /// onto the Deployment while restarting its pods. Such a record does not describe what the
    /// running pods have, so it is not trusted: the workload is adopted as seen.
    pub(crate) record_foreign: Option<String>,
    /// A digest of everything above that decisions read (not the resourceVersion), so that
    /// status-only updates of a workload do not cause a reconcile.
    pub(crate) fingerprint: u64,
    /// The resourceVersion at which what governs this workload was first seen as it is now
    /// (its creation, or the last change of its template or policy). A source that changed
    /// after it counts as changed even when the workload has no record yet: see `history`.
    /// Set from the object here; the index keeps the older one while `anchor_digest` holds.
    pub(crate) anchor: Option<u64>,
    /// A digest of what governs it: the parsed policy, the pod template's annotations and
    /// references, the controls; not the record, nor annotations other writers change.
    pub(crate) anchor_digest: u64,
    /// The tracking note of the last reload's rollout (`None`: none, or unreadable); not
    /// trusted when the record is foreign (a rollout undo copies it back too).
    pub(crate) tracked: Option<Tracked>,
    /// How its rollout goes, from its status; not part of the fingerprint.
    pub(crate) progress: Progress,
}

impl Workload {
    /// A reference for Events about this workload.
    pub(crate) fn object_ref(&self) -> k8s_openapi::api::core::v1::ObjectReference {
        k8s_openapi::api::core::v1::ObjectReference {
            api_version: Some(self.key.kind.api_version().into()),
            kind: Some(self.key.kind.as_str().into()),
            name: Some(self.key.name.clone()),
            namespace: Some(self.key.namespace.clone()),
            uid: self.uid.clone(),
            ..Default::default()
        }
    }

    /// The tracking note of a rollout still under way.
    pub(crate) fn pending_rollout(&self) -> Option<&Tracked> {
        self.tracked.as_ref().filter(|t| t.pending())
    }

    pub(crate) fn container_for(&self, source: &SourceRef) -> Option<&str> {
        self.refs.get(source).map(String::as_str).or(self.first_container.as_deref())
    }
}

/// Builds the projection of a workload from its metadata and pod template.
/// Kind-specific state that decisions read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct Controls {
    /// CronJob `spec.suspend`.
    pub(crate) suspended: bool,
    /// Deployment `spec.paused`.
    pub(crate) spec_paused: bool,
    /// The pause-period annotation, raw (Deployments honour it; others get a warning).
    pub(crate) pause_period: Option<String>,
    /// The paused-at annotation written when this controller paused the Deployment.
    pub(crate) paused_at: Option<String>,
    /// Argo Rollout: `reloader.stakater.com/rollout-strategy: restart`.
    pub(crate) restart_strategy: bool,
}

/// Reloader's Rollout strategy annotation (not configurable).
pub(crate) const ROLLOUT_STRATEGY: &str = "reloader.stakater.com/rollout-strategy";

impl Controls {
    fn from_meta(meta: &ObjectMeta, keys: &Keys) -> Controls {
        let a = meta.annotations.as_ref();
        let get = |k: &str| a.and_then(|a| a.get(k)).cloned();
        Controls {
            pause_period: get(&keys.pause_period),
            paused_at: get(&keys.paused_at),
            restart_strategy: get(ROLLOUT_STRATEGY).as_deref() == Some("restart"),
            ..Default::default()
        }
    }
}

#[cfg(test)]
pub(crate) fn project(
    kind: WorkloadKind,
    meta: &ObjectMeta,
    template: Option<&PodTemplateSpec>,
    keys: &Keys,
    auto_reload_all: bool,
) -> Workload {
    project_with(kind, meta, template, Controls::from_meta(meta, keys), keys, auto_reload_all, Progress::Untracked)
}

/// Builds the projection of a workload of any kind.
pub(crate) fn project_object<K: WorkloadObject>(obj: &K, keys: &Keys, auto_reload_all: bool) -> Workload {
    let mut controls = Controls::from_meta(obj.meta(), keys);
    obj.controls(&mut controls);
    project_with(K::KIND, obj.meta(), obj.template(), controls, keys, auto_reload_all, obj.progress())
}

fn project_with(
    kind: WorkloadKind,
    meta: &ObjectMeta,
    template: Option<&PodTemplateSpec>,
    controls: Controls,
    keys: &Keys,
    auto_reload_all: bool,
    progress: Progress,
) -> Workload {
    let template_annotations = template.and_then(|t| t.metadata.as_ref()).and_then(|m| m.annotations.as_ref());
    let policy = Policy::parse(keys, meta.annotations.as_ref(), template_annotations, auto_reload_all);
    let spec = template.and_then(|t| t.spec.as_ref());
    let refs = spec.map(|s| refs::references(s, keys.csi)).unwrap_or_default();
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
        controls.hash(&mut h);
        h.finish()
    };
    let anchor_digest = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        // The annotations the policy is parsed from, not all of them: other writers' (the
        // Deployment revision, tools' tracking marks, our own record) do not move the anchor.
        for (k, v) in meta.annotations.iter().flatten().filter(|(k, _)| keys.is_policy_key(k)) {
            (k, v).hash(&mut h);
        }
        template_annotations.hash(&mut h);
        refs.hash(&mut h);
        first_container.hash(&mut h);
        stakater_env.hash(&mut h);
        controls.hash(&mut h);
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
        controls,
        record,
        fingerprint,
        anchor: crate::core::index::history::parse_rv(meta.resource_version.as_deref()),
        anchor_digest,
        tracked: match &record_foreign {
            Some(_) => None,
            None => {
                meta.annotations.as_ref().and_then(|a| a.get(ROLLOUT_ANNOTATION)).and_then(|s| Tracked::decode(s).ok())
            }
        },
        record_foreign,
        progress,
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

/// Runs `$body` with `$K` naming the Kubernetes type of the workload kind `$kind`: the one
/// place that maps a kind to its type, for the watches and `reloader explain`.
macro_rules! with_workload_type {
    ($kind:expr, $K:ident => $body:expr) => {
        match $kind {
            $crate::core::model::workload::WorkloadKind::Deployment => {
                type $K = k8s_openapi::api::apps::v1::Deployment;
                $body
            }
            $crate::core::model::workload::WorkloadKind::StatefulSet => {
                type $K = k8s_openapi::api::apps::v1::StatefulSet;
                $body
            }
            $crate::core::model::workload::WorkloadKind::DaemonSet => {
                type $K = k8s_openapi::api::apps::v1::DaemonSet;
                $body
            }
            $crate::core::model::workload::WorkloadKind::CronJob => {
                type $K = k8s_openapi::api::batch::v1::CronJob;
                $body
            }
            $crate::core::model::workload::WorkloadKind::Job => {
                type $K = k8s_openapi::api::batch::v1::Job;
                $body
            }
            $crate::core::model::workload::WorkloadKind::Rollout => {
                type $K = $crate::core::kinds::rollout::Rollout;
                $body
            }
        }
    };
}
pub(crate) use with_workload_type;

/// The Kubernetes types this controller rolls.
pub(crate) trait WorkloadObject:
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
    /// Fills the kind-specific controls.
    fn controls(&self, _c: &mut Controls) {}
    /// How its rollout goes, for outcome tracking.
    fn progress(&self) -> Progress {
        Progress::Untracked
    }
}

impl WorkloadObject for Deployment {
    const KIND: WorkloadKind = WorkloadKind::Deployment;
    const RESOURCE: &'static str = "deployments";
    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref().map(|s| &s.template)
    }
    fn controls(&self, c: &mut Controls) {
        c.spec_paused = self.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
    }
    fn progress(&self) -> Progress {
        Progress::of_deployment(self)
    }
}

impl WorkloadObject for CronJob {
    const KIND: WorkloadKind = WorkloadKind::CronJob;
    const RESOURCE: &'static str = "cronjobs";
    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.job_template.spec.as_ref().map(|s| &s.template)
    }
    fn controls(&self, c: &mut Controls) {
        c.suspended = self.spec.suspend.unwrap_or(false);
    }
}

impl WorkloadObject for Job {
    const KIND: WorkloadKind = WorkloadKind::Job;
    const RESOURCE: &'static str = "jobs";
    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref().map(|s| &s.template)
    }
}

impl WorkloadObject for crate::core::kinds::rollout::Rollout {
    const KIND: WorkloadKind = WorkloadKind::Rollout;
    const RESOURCE: &'static str = "rollouts";
    fn template(&self) -> Option<&PodTemplateSpec> {
        // A Rollout with `workloadRef` has no template: nothing to reload (Reloader #751).
        self.spec.as_ref().and_then(|s| s.template.as_ref())
    }
    fn progress(&self) -> Progress {
        Progress::of_rollout(self)
    }
}

impl WorkloadObject for StatefulSet {
    const KIND: WorkloadKind = WorkloadKind::StatefulSet;
    const RESOURCE: &'static str = "statefulsets";
    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref().map(|s| &s.template)
    }
    fn progress(&self) -> Progress {
        Progress::of_statefulset(self)
    }
}

impl WorkloadObject for DaemonSet {
    const KIND: WorkloadKind = WorkloadKind::DaemonSet;
    const RESOURCE: &'static str = "daemonsets";
    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref().map(|s| &s.template)
    }
    fn progress(&self) -> Progress {
        Progress::of_daemonset(self)
    }
}
