//! A switch from Stakater Reloader. A workload this controller has no record of is adopted as
//! it is, no rollout: right when Reloader left it up to date, wrong when a source changed
//! while neither controller ran (Reloader stopped, a ConfigMap changed, this one started).
//! Reloader's marks (`model::marks`) tell the two apart: a governing source whose mark names
//! another content than the current one was not applied, and is rolled once. A source
//! without a mark is adopted as before (Reloader never reloaded for it, or its strategy keeps
//! only the last source). SecretProviderClasses are left out: their content is what pods
//! report mounted, which Reloader hashes from other objects.

use std::collections::BTreeSet;

use crate::core::model::record::{Applied, Record};
use crate::core::model::source::{NamespaceSources, SourceKind, SourceRef};
use crate::core::model::workload::Workload;

/// The governing sources of `w` (`desired`) whose current content Reloader's marks show it
/// had not applied. Empty once `w` has a record this controller trusts.
pub(crate) fn behind(w: &Workload, desired: &Record, sources: Option<&NamespaceSources>) -> BTreeSet<SourceRef> {
    let (Some(marks), None, Some(sources)) = (w.reloader_marks.as_deref(), w.trusted_record(), sources) else {
        return BTreeSet::new();
    };
    desired
        .iter()
        .filter(|(src, want)| src.kind != SourceKind::SecretProviderClass && matches!(want, Applied::Hash(_)))
        .filter(|(src, _)| {
            let applied = marks.applied(src);
            let now = sources.of_kind(src.kind).get(&src.name).map(|s| s.reloader);
            matches!((applied, now), (Some(a), Some(n)) if a != n)
        })
        .map(|(src, _)| src.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::kinds::WorkloadKind;
    use crate::core::model::hash::{ContentHash, ReloaderHash};
    use crate::core::model::keys::Keys;
    use crate::core::model::source::SourceInfo;
    use crate::core::model::workload::project;
    use k8s_openapi::api::core::v1::PodTemplateSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use serde_json::json;

    const OLD: &str = "dc30e0faa89a70dec1033016a2309bbeb9efcbd0";
    const NEW: &str = "f83e99e324ba68ccc373a58ef1eb42f8ab88646a";

    fn info(hex: &str) -> SourceInfo {
        SourceInfo {
            hash: ContentHash([1; 32]),
            matched: false,
            ignored: false,
            content_rv: None,
            reloader: ReloaderHash::from_hex(hex).unwrap(),
        }
    }

    fn workload(env: serde_json::Value, template_annotations: serde_json::Value, record: Option<&str>) -> Workload {
        let template: PodTemplateSpec = serde_json::from_value(json!({
            "metadata": {"annotations": template_annotations},
            "spec": {"containers": [{"name": "app", "image": "x", "env": env,
                "envFrom": [{"configMapRef": {"name": "app-config"}}, {"secretRef": {"name": "db.credentials"}}]}]}
        }))
        .unwrap();
        let mut annotations = json!({"reloader.stakater.com/auto": "true"});
        if let Some(r) = record {
            annotations["reloader.kube-reloader.dev/applied"] = json!(r);
        }
        let meta: ObjectMeta =
            serde_json::from_value(json!({"name": "web", "namespace": "ns", "annotations": annotations})).unwrap();
        project(WorkloadKind::Deployment, &meta, Some(&template), &Keys::default(), false)
    }

    #[test]
    fn sources_whose_marks_name_older_content() {
        let cm = SourceRef::new(SourceKind::ConfigMap, "app-config");
        let sec = SourceRef::new(SourceKind::Secret, "db.credentials");
        let mut sources = NamespaceSources::default();
        sources.configmaps.insert("app-config".into(), info(NEW));
        sources.secrets.insert("db.credentials".into(), info(NEW));
        let desired: Record =
            [(cm.clone(), Applied::Hash(ContentHash([1; 32]))), (sec.clone(), Applied::Hash(ContentHash([1; 32])))]
                .into();
        let env = |c: &str, s: &str| {
            json!([{"name": "STAKATER_APP_CONFIG_CONFIGMAP", "value": c},
                   {"name": "STAKATER_DB_CREDENTIALS_SECRET", "value": s}])
        };
        let lrf = |name: &str, hash: &str| {
            json!({"reloader.stakater.com/last-reloaded-from":
                json!({"type": "SECRET", "name": name, "namespace": "ns", "hash": hash,
                       "containerRefs": ["app"], "observedAt": 1}).to_string()})
        };
        let record = format!("{{\"configmap/app-config\":\"{}\"}}", "01".repeat(32));
        let set = |v: &[&SourceRef]| v.iter().map(|s| (*s).clone()).collect::<BTreeSet<_>>();
        let cases: Vec<(&str, Workload, BTreeSet<SourceRef>)> = vec![
            ("env-vars, both current: adopted", workload(env(NEW, NEW), json!({}), None), set(&[])),
            ("env-vars, the ConfigMap changed since", workload(env(OLD, NEW), json!({}), None), set(&[&cm])),
            ("env-vars, both changed since", workload(env(OLD, OLD), json!({}), None), set(&[&cm, &sec])),
            ("annotations, the named Secret current", workload(json!([]), lrf("db.credentials", NEW), None), set(&[])),
            (
                "annotations, the named Secret changed; the other source has no mark",
                workload(json!([]), lrf("db.credentials", OLD), None),
                set(&[&sec]),
            ),
            ("no marks: adopted as before", workload(json!([]), json!({}), None), set(&[])),
            ("a record of ours: the marks are not read", workload(env(OLD, OLD), json!({}), Some(&record)), set(&[])),
        ];
        for (name, w, want) in cases {
            assert_eq!(behind(&w, &desired, Some(&sources)), want, "{name}");
        }
        // A source that is gone, or a mark for a source the workload is not governed by, is no change.
        let w = workload(env(OLD, OLD), json!({}), None);
        let only_cm: Record = [(cm.clone(), Applied::Hash(ContentHash([1; 32])))].into();
        assert_eq!(behind(&w, &only_cm, Some(&sources)), set(&[&cm]));
        let absent: Record = [(cm.clone(), Applied::Absent)].into();
        assert_eq!(behind(&w, &absent, Some(&sources)), set(&[]));
        assert_eq!(behind(&w, &desired, None), set(&[]), "sources not listed yet");
    }
}
