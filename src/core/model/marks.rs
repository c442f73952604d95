//! The marks Stakater Reloader leaves on a workload it reloaded (shared spec §5), read at a
//! switch from it: with the `env-vars` strategy, a `STAKATER_<NAME>_<TYPE>` variable in one
//! container holding its hash of the source; with `annotations`, the pod template's
//! `reloader.stakater.com/last-reloaded-from`, naming the last source it reloaded for and that
//! source's hash. Only Reloader's own 40-hex SHA-1 values are marks: this controller writes
//! its 64-hex hashes in the same places, and its record says more.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PodSpec;

use crate::core::model::hash::ReloaderHash;
use crate::core::model::source::{SourceKind, SourceRef};

/// Reloader's pod-template annotation for the `annotations` strategy.
pub(crate) const LAST_RELOADED_FROM: &str = "reloader.stakater.com/last-reloaded-from";

/// Reloader's `ConvertToEnvVarName`: upper-case, keep `[A-Z0-9]`, turn each run of other bytes
/// into one `_` (none at the start).
pub(crate) fn env_var_component(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut last_valid = false;
    for b in name.to_ascii_uppercase().bytes() {
        if b.is_ascii_uppercase() || b.is_ascii_digit() {
            out.push(char::from(b));
            last_valid = true;
        } else if last_valid {
            out.push('_');
            last_valid = false;
        }
    }
    out
}

/// `STAKATER_<NAME>_<CONFIGMAP|SECRET|SECRETPROVIDERCLASS>`.
pub(crate) fn env_var_for(source: &SourceRef) -> String {
    format!("STAKATER_{}_{}", env_var_component(&source.name), source.kind.type_name())
}

/// The marks found on one workload (kept only where there are some).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct ReloaderMarks {
    /// `STAKATER_*` variable → the hash it holds. Names, not sources: `my-config` and
    /// `my.config` share one, as they do in Reloader.
    env: BTreeMap<String, ReloaderHash>,
    /// What `last-reloaded-from` names.
    last: Option<(SourceRef, ReloaderHash)>,
}

impl ReloaderMarks {
    /// Reads the marks from a pod template: every container's `STAKATER_*` variables (Reloader
    /// picks one container per source; which one does not matter here) and the annotation.
    /// `None` when there is none.
    pub(crate) fn read(
        spec: Option<&PodSpec>,
        template_annotations: Option<&BTreeMap<String, String>>,
    ) -> Option<Self> {
        let env: BTreeMap<String, ReloaderHash> = spec
            .into_iter()
            .flat_map(|s| s.init_containers.iter().flatten().chain(s.containers.iter()))
            .flat_map(|c| c.env.iter().flatten())
            .filter(|e| e.name.starts_with("STAKATER_"))
            .filter_map(|e| Some((e.name.clone(), ReloaderHash::from_hex(e.value.as_deref()?)?)))
            .collect();
        let last = template_annotations.and_then(|a| a.get(LAST_RELOADED_FROM)).and_then(|v| last_reloaded_from(v));
        (!env.is_empty() || last.is_some()).then_some(ReloaderMarks { env, last })
    }

    /// The content Reloader last applied for `source`, if a mark says: `last-reloaded-from`
    /// when it names the source, else its variable.
    pub(crate) fn applied(&self, source: &SourceRef) -> Option<ReloaderHash> {
        match &self.last {
            Some((s, h)) if s == source => Some(*h),
            _ => self.env.get(&env_var_for(source)).copied(),
        }
    }
}

/// The source and hash a `last-reloaded-from` value names, if it is Reloader's.
fn last_reloaded_from(v: &str) -> Option<(SourceRef, ReloaderHash)> {
    #[derive(serde::Deserialize)]
    struct ReloadSource {
        #[serde(rename = "type")]
        type_: String,
        name: String,
        hash: String,
    }
    let r: ReloadSource = serde_json::from_str(v).ok()?;
    let kind = SourceKind::ALL.into_iter().find(|k| k.type_name() == r.type_)?;
    Some((SourceRef::new(kind, &r.name), ReloaderHash::from_hex(&r.hash)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const OLD: &str = "dc30e0faa89a70dec1033016a2309bbeb9efcbd0";
    const NEW: &str = "f83e99e324ba68ccc373a58ef1eb42f8ab88646a";

    fn marks(spec: serde_json::Value, annotations: serde_json::Value) -> Option<ReloaderMarks> {
        let spec: PodSpec = serde_json::from_value(spec).unwrap();
        let a: BTreeMap<String, String> = serde_json::from_value(annotations).unwrap();
        ReloaderMarks::read(Some(&spec), Some(&a))
    }

    fn h(hex: &str) -> Option<ReloaderHash> {
        ReloaderHash::from_hex(hex)
    }

    #[test]
    fn env_var_names() {
        for (input, want) in [
            ("my-config", "MY_CONFIG"),
            ("www.stakater.com", "WWW_STAKATER_COM"),
            ("a--b", "A_B"),
            ("-x-", "X_"),
            ("vault-spc", "VAULT_SPC"),
            ("abc", "ABC"),
            ("9lives", "9LIVES"),
            ("ü-x", "X"),
            ("db.credentials", "DB_CREDENTIALS"),
        ] {
            assert_eq!(env_var_component(input), want, "{input}");
        }
        assert_eq!(
            env_var_for(&SourceRef::new(SourceKind::Secret, "db.credentials")),
            "STAKATER_DB_CREDENTIALS_SECRET"
        );
    }

    #[test]
    fn reads_what_reloader_writes() {
        let cm = |n: &str| SourceRef::new(SourceKind::ConfigMap, n);
        let sec = |n: &str| SourceRef::new(SourceKind::Secret, n);
        let env = json!({"containers": [
            {"name": "side", "image": "x"},
            {"name": "app", "image": "x", "env": [
                {"name": "STAKATER_APP_CONFIG_CONFIGMAP", "value": OLD},
                {"name": "STAKATER_DB_CREDENTIALS_SECRET", "value": NEW},
                {"name": "STAKATER_OURS_CONFIGMAP", "value": "ab".repeat(32)},
                {"name": "OTHER", "value": OLD}]}]});
        let m = marks(env, json!({})).unwrap();
        assert_eq!(m.applied(&cm("app-config")), h(OLD));
        assert_eq!(m.applied(&cm("app.config")), h(OLD), "the same variable, as in Reloader");
        assert_eq!(m.applied(&sec("db.credentials")), h(NEW));
        assert_eq!(m.applied(&sec("app-config")), None, "the type is part of the name");
        assert_eq!(m.applied(&cm("ours")), None, "a 64-hex value is this controller's");
        assert_eq!(m.applied(&cm("other")), None);

        let lrf = json!({"type":"SECRET","name":"db.credentials","namespace":"ns","hash":OLD,
                         "containerRefs":["app"],"observedAt":1767225600});
        let spec = json!({"containers": [{"name": "app", "image": "x"}]});
        let m = marks(spec.clone(), json!({LAST_RELOADED_FROM: lrf.to_string()})).unwrap();
        assert_eq!(m.applied(&sec("db.credentials")), h(OLD));
        assert_eq!(m.applied(&cm("db.credentials")), None, "it names one source");

        for (why, v) in [
            ("not JSON", "x".to_string()),
            ("ours: a 64-hex hash", json!({"type":"SECRET","name":"s","hash":"ab".repeat(32)}).to_string()),
            ("an unknown type", json!({"type":"POD","name":"s","hash":OLD}).to_string()),
        ] {
            assert_eq!(marks(spec.clone(), json!({LAST_RELOADED_FROM: v})), None, "{why}");
        }
        assert_eq!(marks(spec, json!({})), None, "no marks");
    }
}
