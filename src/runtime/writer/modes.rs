//! How each kind's reload is written, one function per `kinds::Write` mode beyond the plain
//! template patch: a Job spawned from a CronJob's template, a Job deleted and created again, an
//! Argo Rollout restarted or its template replaced.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, Patch, Preconditions, PropagationPolicy};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{
    Reload, Written, dynamic_api, now_rfc3339, now_unix, patch_params, post_params, recorded_only, write_record,
};
use crate::core::decide::patch;
use crate::core::kinds::WorkloadKind;
use crate::core::model::note::ROLLOUT_ANNOTATION;
use crate::core::model::record::{self, FIELD_MANAGER, RECORD_ANNOTATION, Record};

/// The name of the Job a reload of a CronJob spawns: derived from the change, so a retried
/// reload finds its Job instead of creating a second one.
pub(crate) fn spawned_job_name(cronjob: &str, record: &Record) -> String {
    let digest = Sha256::digest(record::encode(record).as_bytes());
    let suffix: String = digest.iter().take(5).map(|b| format!("{b:02x}")).collect();
    let base: String = cronjob.chars().take(63 - 1 - suffix.len()).collect();
    format!("{}-{suffix}", base.trim_end_matches('-'))
}

pub(super) async fn spawn_job(client: &kube::Client, r: &Reload<'_>) -> Result<Written, kube::Error> {
    let Reload { w, changes, record, strategy, .. } = *r;
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
    match Api::<Job>::namespaced(client.clone(), ns).create(&post_params(), &job).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {} // spawned by an earlier attempt
        Err(e) => return Err(e),
    }
    write_record(client, w, record).await?;
    Ok(Written::Rolled)
}

const JOB_LABELS: [&str; 4] =
    ["controller-uid", "batch.kubernetes.io/controller-uid", "batch.kubernetes.io/job-name", "job-name"];

pub(super) async fn recreate(client: &kube::Client, r: &Reload<'_>) -> Result<Written, kube::Error> {
    let Reload { w, changes, record, strategy, .. } = *r;
    let (ns, name) = (w.key.namespace.as_str(), w.key.name.as_str());
    let api = Api::<Job>::namespaced(client.clone(), ns);
    let old = api.get(name).await?;
    if old.metadata.uid != w.uid {
        return Ok(Written::Stale);
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
    let pp = post_params();
    // The old object can linger for a moment (finalizers); keep the new one in hand until it fits.
    let mut last = None;
    for attempt in 0..40 {
        match api.create(&pp, &new).await {
            Ok(_) => return Ok(Written::Rolled),
            Err(kube::Error::Api(s)) if s.code == 409 => {
                last = Some(kube::Error::Api(s));
                tokio::time::sleep(Duration::from_millis(100 + 50 * attempt)).await;
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.expect("at least one attempt"))
}

pub(super) async fn argo_rollout(client: &kube::Client, r: &Reload<'_>) -> Result<Written, kube::Error> {
    let Reload { w, changes, record, strategy, ref extra } = *r;
    let (ns, name) = (w.key.namespace.as_str(), w.key.name.as_str());
    let api = dynamic_api(client, WorkloadKind::Rollout, ns);
    if w.controls.restart_strategy {
        // Reloader's `restart`: Argo restarts the pods; the template stays as in Git.
        let mut body = patch::record_patch(w, record);
        body["spec"] = json!({"restartAt": now_rfc3339()});
        if let Some(t) = &extra.tracked {
            body["metadata"]["annotations"][ROLLOUT_ANNOTATION] = json!(t.encode());
        }
        api.patch(name, &patch_params(FIELD_MANAGER), &Patch::Merge(body)).await?;
        return Ok(Written::Rolled);
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
    api.replace(name, &post_params(), &obj).await?;
    Ok(Written::Rolled)
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
