//! Writes per workload kind. Deployments, StatefulSets and DaemonSets get one strategic-merge
//! patch (pod template + record, with the `resourceVersion` as a precondition). A CronJob
//! spawns a Job from its job template; a Job is deleted and re-created with the new template;
//! an Argo Rollout gets `spec.restartAt` or a template update.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams, Preconditions, PropagationPolicy,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::core::decide::Change;
use crate::core::decide::outcome::{OUTCOME_FIELD_MANAGER, ROLLOUT_ANNOTATION, Tracked};
use crate::core::decide::patch::{self, Strategy};
use crate::core::kinds::rollout::Rollout;
use crate::core::model::record::{self, FIELD_MANAGER, RECORD_ANNOTATION, Record};
use crate::core::model::workload::{Workload, WorkloadKind};

/// What a reload write did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Wrote {
    /// Pods will roll (or a Job was spawned / re-created, or a Rollout restarted).
    Rolled,
    /// Only the record changed, for the given reason.
    RecordedOnly(&'static str),
    /// The object was replaced since it was read (a Job re-created by someone else): look again.
    Stale,
}

/// Extra fields written with a reload: pause it (Deployments); the rollout's tracking note
/// (Deployments, StatefulSets, DaemonSets, Argo Rollouts).
#[derive(Clone, Debug, Default)]
pub(crate) struct Extra {
    pub(crate) pause_at: Option<(String, String)>,
    pub(crate) tracked: Option<Tracked>,
}

fn pp() -> PatchParams {
    pp_as(FIELD_MANAGER)
}

fn pp_as(manager: &str) -> PatchParams {
    PatchParams { field_manager: Some(manager.into()), ..Default::default() }
}

/// RFC 3339 at whole seconds, as Kubernetes times are written.
pub(crate) fn now_rfc3339() -> String {
    k8s_openapi::jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn now_unix() -> i64 {
    k8s_openapi::jiff::Timestamp::now().as_second()
}

fn rollout_api(c: &kube::Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(c.clone(), ns, &ApiResource::erase::<Rollout>(&()))
}

/// A patch to the workload itself: strategic merge for built-in kinds, JSON merge for Rollouts
/// (custom resources do not take strategic merge).
pub(crate) async fn patch_workload(client: &kube::Client, w: &Workload, body: Value) -> Result<(), kube::Error> {
    patch_workload_as(client, w, body, FIELD_MANAGER).await
}

/// `patch_workload` under another field manager.
async fn patch_workload_as(client: &kube::Client, w: &Workload, body: Value, manager: &str) -> Result<(), kube::Error> {
    let (ns, name) = (w.key.namespace.as_str(), w.key.name.as_str());
    let c = client.clone();
    let smp = Patch::Strategic(body.clone());
    let pp = || pp_as(manager);
    match w.key.kind {
        WorkloadKind::Deployment => Api::<Deployment>::namespaced(c, ns).patch(name, &pp(), &smp).await.map(drop),
        WorkloadKind::StatefulSet => Api::<StatefulSet>::namespaced(c, ns).patch(name, &pp(), &smp).await.map(drop),
        WorkloadKind::DaemonSet => Api::<DaemonSet>::namespaced(c, ns).patch(name, &pp(), &smp).await.map(drop),
        WorkloadKind::CronJob => Api::<CronJob>::namespaced(c, ns).patch(name, &pp(), &smp).await.map(drop),
        WorkloadKind::Job => Api::<Job>::namespaced(c, ns).patch(name, &pp(), &smp).await.map(drop),
        WorkloadKind::Rollout => rollout_api(&c, ns).patch(name, &pp(), &Patch::Merge(body)).await.map(drop),
    }
}

/// Records the change without rolling anything, for the reason given.
async fn recorded_only(
    client: &kube::Client,
    w: &Workload,
    record: &Record,
    why: &'static str,
) -> Result<Wrote, kube::Error> {
    write_record(client, w, record).await?;
    Ok(Wrote::RecordedOnly(why))
}

/// Records the given state on the workload: no rollout.
pub(crate) async fn write_record(client: &kube::Client, w: &Workload, record: &Record) -> Result<(), kube::Error> {
    patch_workload(client, w, patch::record_patch(w, record)).await
}

/// Performs a reload.
pub(crate) async fn write_reload(
    client: &kube::Client,
    w: &Workload,
    changes: &[Change],
    record: &Record,
    strategy: Strategy,
    extra: &Extra,
) -> Result<Wrote, kube::Error> {
    match w.key.kind {
        WorkloadKind::Deployment | WorkloadKind::StatefulSet | WorkloadKind::DaemonSet => {
            let Some(t) = patch::template_patch(w, changes, strategy, now_unix()) else {
                return recorded_only(client, w, record, "no container to reload").await;
            };
            let mut body = patch::reload_patch(w, t, record);
            if let Some(t) = &extra.tracked {
                body["metadata"]["annotations"][ROLLOUT_ANNOTATION] = json!(t.encode());
            }
            if let Some((key, at)) = &extra.pause_at {
                body["metadata"]["annotations"][key] = json!(at);
                body["spec"]["paused"] = json!(true);
            }
            patch_workload(client, w, body).await?;
            Ok(Wrote::Rolled)
        }
        WorkloadKind::CronJob => cronjob(client, w, changes, record, strategy).await,
        WorkloadKind::Job => job(client, w, changes, record, strategy).await,
        WorkloadKind::Rollout => rollout(client, w, changes, record, strategy, extra).await,
    }
}

/// Records how the tracked rollout ended, on the object it was decided on (a newer reload's
/// note is never overwritten: the precondition fails with 409). Under its own field manager,
/// so that the audit log and `managedFields` tell these writes from reloads.
pub(crate) async fn write_outcome(client: &kube::Client, w: &Workload, t: &Tracked) -> Result<(), kube::Error> {
    let body =
        json!({"metadata": {"resourceVersion": w.resource_version, "annotations": {ROLLOUT_ANNOTATION: t.encode()}}});
    patch_workload_as(client, w, body, OUTCOME_FIELD_MANAGER).await
}

/// Resumes a Deployment this controller paused.
pub(crate) async fn resume(client: &kube::Client, w: &Workload, paused_at_key: &str) -> Result<(), kube::Error> {
    let body = json!({"metadata": {"resourceVersion": w.resource_version, "annotations": {paused_at_key: null}}, "spec": {"paused": false}});
    patch_workload(client, w, body).await
}

/// The name of the Job a reload of a CronJob spawns: derived from the change, so a retried
/// reload finds its Job instead of creating a second one.
pub(crate) fn spawned_job_name(cronjob: &str, record: &Record) -> String {
    let digest = Sha256::digest(record::encode(record).as_bytes());
    let suffix: String = digest.iter().take(5).map(|b| format!("{b:02x}")).collect();
    let base: String = cronjob.chars().take(63 - 1 - suffix.len()).collect();
    format!("{}-{suffix}", base.trim_end_matches('-'))
}

async fn cronjob(
    client: &kube::Client,
    w: &Workload,
    changes: &[Change],
    record: &Record,
    strategy: Strategy,
) -> Result<Wrote, kube::Error> {
    let (ns, name) = (w.key.namespace.as_str(), w.key.name.as_str());
    let cj = Api::<CronJob>::namespaced(client.clone(), ns).get(name).await?;
    let jt = cj.spec.job_template.clone();
    let Some(mut spec) = jt.spec else {
        return recorded_only(client, w, record, "the CronJob has no job template").await;
    };
    if !patch::mutate_template(&mut spec.template, w, changes, strategy, now_unix()) {
        return recorded_only(client, w, record, "no container to reload").await;
    }
    let jt_meta = jt.metadata.unwrap_or_default();
    let mut annotations: BTreeMap<String, String> =
        [("cronjob.kubernetes.io/instantiate".to_string(), "manual".to_string())].into();
    annotations.extend(jt_meta.annotations.unwrap_or_default());
    let job = Job {
        metadata: ObjectMeta {
            name: Some(spawned_job_name(name, record)),
            namespace: Some(ns.to_string()),
            labels: jt_meta.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![OwnerReference {
                api_version: "batch/v1".into(),
                kind: "CronJob".into(),
                name: name.to_string(),
                uid: cj.metadata.uid.clone().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    };
    let pp = PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
    match Api::<Job>::namespaced(client.clone(), ns).create(&pp, &job).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {} // spawned by an earlier attempt
        Err(e) => return Err(e),
    }
    write_record(client, w, record).await?;
    Ok(Wrote::Rolled)
}

const JOB_LABELS: [&str; 4] =
    ["controller-uid", "batch.kubernetes.io/controller-uid", "batch.kubernetes.io/job-name", "job-name"];

async fn job(
    client: &kube::Client,
    w: &Workload,
    changes: &[Change],
    record: &Record,
    strategy: Strategy,
) -> Result<Wrote, kube::Error> {
    let (ns, name) = (w.key.namespace.as_str(), w.key.name.as_str());
    let api = Api::<Job>::namespaced(client.clone(), ns);
    let old = api.get(name).await?;
    if old.metadata.uid != w.uid {
        return Ok(Wrote::Stale);
    }
    let mut new = old.clone();
    let Some(spec) = new.spec.as_mut() else {
        return recorded_only(client, w, record, "the Job has no spec").await;
    };
    if !patch::mutate_template(&mut spec.template, w, changes, strategy, now_unix()) {
        return recorded_only(client, w, record, "no container to reload").await;
    }
    // A Job's template is immutable: delete it and create it again, without the fields the
    // API server owns, so it gets a new uid, selector and labels.
    if spec.manual_selector != Some(true) {
        spec.selector = None;
    }
    if let Some(labels) = spec.template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.retain(|k, _| !JOB_LABELS.contains(&k.as_str()));
    }
    new.status = None;
    let m = &mut new.metadata;
    m.uid = None;
    m.resource_version = None;
    m.creation_timestamp = None;
    m.generation = None;
    m.managed_fields = None;
    m.deletion_timestamp = None;
    m.deletion_grace_period_seconds = None;
    if let Some(labels) = m.labels.as_mut() {
        labels.retain(|k, _| !JOB_LABELS.contains(&k.as_str()));
    }
    m.annotations.get_or_insert_default().insert(RECORD_ANNOTATION.into(), record::encode(record));
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        preconditions: Some(Preconditions { uid: old.metadata.uid.clone(), resource_version: None }),
        ..Default::default()
    };
    api.delete(name, &dp).await?;
    let pp = PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
    // The old object can linger for a moment (finalizers); keep the new one in hand until it fits.
    let mut last = None;
    for attempt in 0..40 {
        match api.create(&pp, &new).await {
            Ok(_) => return Ok(Wrote::Rolled),
            Err(kube::Error::Api(s)) if s.code == 409 => {
                last = Some(kube::Error::Api(s));
                tokio::time::sleep(Duration::from_millis(100 + 50 * attempt)).await;
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.expect("at least one attempt"))
}

async fn rollout(
    client: &kube::Client,
    w: &Workload,
    changes: &[Change],
    record: &Record,
    strategy: Strategy,
    extra: &Extra,
) -> Result<Wrote, kube::Error> {
    let (ns, name) = (w.key.namespace.as_str(), w.key.name.as_str());
    let api = rollout_api(client, ns);
    if w.controls.restart_strategy {
        // Reloader's `restart`: Argo restarts the pods; the template stays as in Git.
        let mut body = json!({
            "metadata": {"resourceVersion": w.resource_version, "annotations": {RECORD_ANNOTATION: record::encode(record)}},
            "spec": {"restartAt": now_rfc3339()}
        });
        if let Some(t) = &extra.tracked {
            body["metadata"]["annotations"][ROLLOUT_ANNOTATION] = json!(t.encode());
        }
        api.patch(name, &pp(), &Patch::Merge(body)).await?;
        return Ok(Wrote::Rolled);
    }
    let mut obj = api.get(name).await?;
    let template = obj.data.get("spec").and_then(|s| s.get("template")).cloned();
    let Some(mut template) =
        template.and_then(|t| serde_json::from_value::<k8s_openapi::api::core::v1::PodTemplateSpec>(t).ok())
    else {
        return recorded_only(client, w, record, "the Rollout has no pod template (workloadRef)").await;
    };
    if !patch::mutate_template(&mut template, w, changes, strategy, now_unix()) {
        return recorded_only(client, w, record, "no container to reload").await;
    }
    obj.data["spec"]["template"] = serde_json::to_value(&template).expect("serialisable");
    let annotations = obj.metadata.annotations.get_or_insert_default();
    annotations.insert(RECORD_ANNOTATION.into(), record::encode(record));
    if let Some(t) = &extra.tracked {
        annotations.insert(ROLLOUT_ANNOTATION.into(), t.encode());
    }
    obj.metadata.managed_fields = None;
    let pp = PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
    api.replace(name, &pp, &obj).await?;
    Ok(Wrote::Rolled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::record::Applied;
    use crate::core::model::source::{SourceKind, SourceRef};

    #[test]
    fn spawned_job_names_fit_and_follow_the_change() {
        let mut r = Record::new();
        r.insert(SourceRef::new(SourceKind::ConfigMap, "c"), Applied::Absent);
        let a = spawned_job_name("nightly", &r);
        assert!(a.starts_with("nightly-") && a.len() == "nightly-".len() + 10, "{a}");
        assert_eq!(a, spawned_job_name("nightly", &r), "deterministic");
        r.insert(SourceRef::new(SourceKind::Secret, "s"), Applied::Absent);
        assert_ne!(a, spawned_job_name("nightly", &r), "another change, another Job");
        let long = "x".repeat(52);
        assert!(spawned_job_name(&long, &r).len() <= 63);
    }
}
