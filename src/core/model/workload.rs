//! Workloads as the controller keeps them: a compact projection of an object of any kind
//! (`kinds`): its policy, the sources it uses, the applied record, the few controls a decision
//! reads and how its rollout goes; never the whole object.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::hash::{Hash, Hasher};

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::core::kinds::{Controls, Progress, WorkloadKind, WorkloadType};
use crate::core::model::keys::Keys;
use crate::core::model::marks::ReloaderMarks;
use crate::core::model::note::{ROLLOUT_ANNOTATION, Tracked};
use crate::core::model::policy::Policy;
use crate::core::model::record::{self, FIELD_MANAGER, RECORD_ANNOTATION, Record};
use crate::core::model::refs;
use crate::core::model::source::SourceRef;

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
    /// The marks Stakater Reloader left on it, if any: read while it has no record of ours,
    /// at a switch from Reloader (`decide::migrate`).
    pub(crate) reloader_marks: Option<Box<ReloaderMarks>>,
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

    /// The applied record, if it can be trusted: one someone else wrote (see `record_foreign`)
    /// or an unreadable one is not evidence of what the pods run.
    pub(crate) fn trusted_record(&self) -> Option<&Record> {
        match &self.record {
            Ok(Some(r)) if self.record_foreign.is_none() => Some(r),
            _ => None,
        }
    }

    pub(crate) fn container_for(&self, source: &SourceRef) -> Option<&str> {
        self.refs.get(source).map(String::as_str).or(self.first_container.as_deref())
    }
}

/// The controls every workload's metadata can carry: the pause annotations (the kind fills
/// in the rest, see `Kind::controls`).
fn controls_of(meta: &ObjectMeta, keys: &Keys) -> Controls {
    let get = |k: &str| meta.annotations.as_ref().and_then(|a| a.get(k)).cloned();
    Controls { pause_period: get(&keys.pause_period), paused_at: get(&keys.paused_at), ..Default::default() }
}

#[cfg(test)]
pub(crate) fn project(
    kind: WorkloadKind,
    meta: &ObjectMeta,
    template: Option<&PodTemplateSpec>,
    keys: &Keys,
    auto_reload_all: bool,
) -> Workload {
    project_with(kind, meta, template, controls_of(meta, keys), keys, auto_reload_all, Progress::Untracked)
}

/// Builds the projection of a workload of any kind.
pub(crate) fn project_object<K: WorkloadType>(obj: &K, keys: &Keys, auto_reload_all: bool) -> Workload {
    let mut controls = controls_of(obj.meta(), keys);
    obj.controls(&mut controls);
    project_with(K::WORKLOAD, obj.meta(), obj.template(), controls, keys, auto_reload_all, obj.progress())
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
    // Read only while no record of ours is trusted (`decide::migrate`): not kept afterwards.
    let trusted = matches!(record, Ok(Some(_))) && record_foreign.is_none();
    let reloader_marks = if trusted { None } else { ReloaderMarks::read(spec, template_annotations).map(Box::new) };
    // What governs the workload besides its own annotations; both digests cover it.
    let governs = (template_annotations, &refs, &first_container, &stakater_env, &controls);
    let fingerprint = digest(|h| (&meta.annotations, governs, &reloader_marks).hash(h));
    // The annotations the policy is parsed from, not all of them: other writers' (the
    // Deployment revision, tools' tracking marks, our own record) do not move the anchor.
    let anchor_digest = digest(|h| {
        meta.annotations.iter().flatten().filter(|(k, _)| keys.is_policy_key(k)).for_each(|kv| kv.hash(h));
        governs.hash(h);
    });
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
        anchor: crate::core::model::parse_rv(meta.resource_version.as_deref()),
        anchor_digest,
        tracked: match &record_foreign {
            Some(_) => None,
            None => {
                meta.annotations.as_ref().and_then(|a| a.get(ROLLOUT_ANNOTATION)).and_then(|s| Tracked::decode(s).ok())
            }
        },
        record_foreign,
        progress,
        reloader_marks,
    }
}

/// A digest of what `feed` hashes (in memory only; never compared across processes).
fn digest(feed: impl FnOnce(&mut DefaultHasher)) -> u64 {
    let mut h = DefaultHasher::new();
    feed(&mut h);
    h.finish()
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
