//! The patches the controller sends. Strategic-merge patches carry the workload's
//! `resourceVersion`, so a patch computed from a stale view fails with 409 instead of
//! overwriting a newer object; they touch only the keys named here.

use k8s_openapi::api::core::v1::{EnvVar, PodTemplateSpec};
use serde::Serialize;
use serde_json::{Value, json};

use crate::core::decide::{Change, ChangeKind};
pub(crate) use crate::core::model::marks::LAST_RELOADED_FROM;
use crate::core::model::marks::env_var_for;
use crate::core::model::record::{self, RECORD_ANNOTATION, Record};
use crate::core::model::workload::Workload;

/// Reloader's hash for a deleted source: SHA-1 of `__RELOADER_EMPTY_DELETE_MARKER__`.
pub(crate) const DELETE_MARKER: &str = "aae45badef99284e4dae01d6046154ea9d99532f";

/// `--reload-strategy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Strategy {
    #[value(name = "annotations")]
    Annotations,
    #[value(name = "env-vars")]
    EnvVars,
}

/// Reloader's `ReloadSource`, fields in its order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReloadSource<'a> {
    #[serde(rename = "type")]
    type_: &'a str,
    name: &'a str,
    namespace: &'a str,
    hash: String,
    container_refs: Vec<&'a str>,
    observed_at: i64,
}

/// `STAKATER_<NAME>_<CONFIGMAP|SECRET>`.
pub(crate) fn env_var_name(change: &Change) -> String {
    env_var_for(&change.source)
}

/// A patch of the workload's annotations, with the `resourceVersion` it was decided on as a
/// precondition (a `null` value removes an annotation).
pub(crate) fn meta_patch(w: &Workload, annotations: Value) -> Value {
    json!({"metadata": {"resourceVersion": w.resource_version, "annotations": annotations}})
}

/// Records the given state on the workload's metadata: no rollout.
pub(crate) fn record_patch(w: &Workload, record: &Record) -> Value {
    meta_patch(w, json!({RECORD_ANNOTATION: record::encode(record)}))
}

/// The `last-reloaded-from` value for a reload (it names the first change).
pub(crate) fn reload_annotation(w: &Workload, changes: &[Change], now_unix: i64) -> Option<String> {
    let c = changes.first()?;
    let source = ReloadSource {
        type_: c.source.kind.type_name(),
        name: &c.source.name,
        namespace: &w.key.namespace,
        hash: c.hash.map_or_else(|| DELETE_MARKER.to_string(), |h| h.to_hex()),
        container_refs: w.container_for(&c.source).into_iter().collect(),
        observed_at: now_unix,
    };
    Some(serde_json::to_string(&source).expect("serialisable"))
}

/// One env-var change of the env-vars strategy: set to a hash, or remove (`None`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EnvUpdate {
    pub(crate) container: String,
    pub(crate) name: String,
    pub(crate) value: Option<String>,
}

/// The env-var changes for a reload, in change order; a deleted source's variable is removed
/// only where it is present.
pub(crate) fn env_updates(w: &Workload, changes: &[Change]) -> Vec<EnvUpdate> {
    let mut out = Vec::new();
    for c in changes {
        let Some(container) = w.container_for(&c.source) else { continue };
        let name = env_var_name(c);
        let value = match c.kind {
            ChangeKind::Deleted => {
                if !w.stakater_env.contains(&(container.to_string(), name.clone())) {
                    continue;
                }
                None
            }
            _ => Some(c.hash.map(|h| h.to_hex()).unwrap_or_default()),
        };
        out.push(EnvUpdate { container: container.to_string(), name, value });
    }
    out
}

/// The pod-template part of a reload as a strategic-merge fragment, or `None` when there is
/// nothing to change in it (env-vars with no container to put a variable in).
pub(crate) fn template_patch(w: &Workload, changes: &[Change], strategy: Strategy, now_unix: i64) -> Option<Value> {
    match strategy {
        Strategy::Annotations => {
            let value = reload_annotation(w, changes, now_unix)?;
            Some(json!({"metadata": {"annotations": {LAST_RELOADED_FROM: value}}}))
        }
        Strategy::EnvVars => {
            // Grouped by container; both lists merge by name.
            let mut containers: Vec<(String, Vec<Value>)> = Vec::new();
            for u in env_updates(w, changes) {
                let entry = match &u.value {
                    Some(v) => json!({"name": u.name, "value": v}),
                    None => json!({"name": u.name, "$patch": "delete"}),
                };
                match containers.iter_mut().find(|(n, _)| *n == u.container) {
                    Some((_, env)) => env.push(entry),
                    None => containers.push((u.container, vec![entry])),
                }
            }
            if containers.is_empty() {
                return None;
            }
            let list: Vec<Value> = containers.into_iter().map(|(n, env)| json!({"name": n, "env": env})).collect();
            Some(json!({"spec": {"containers": list}}))
        }
    }
}

/// Applies a reload to a whole pod template (for kinds written as whole objects: the Job a
/// CronJob spawns, a re-created Job, an Argo Rollout). Returns whether anything changed.
pub(crate) fn mutate_template(
    t: &mut PodTemplateSpec,
    w: &Workload,
    changes: &[Change],
    strategy: Strategy,
    now_unix: i64,
) -> bool {
    match strategy {
        Strategy::Annotations => {
            let Some(value) = reload_annotation(w, changes, now_unix) else { return false };
            t.metadata
                .get_or_insert_default()
                .annotations
                .get_or_insert_default()
                .insert(LAST_RELOADED_FROM.into(), value);
            true
        }
        Strategy::EnvVars => {
            let Some(spec) = t.spec.as_mut() else { return false };
            let mut changed = false;
            for u in env_updates(w, changes) {
                let Some(c) = spec.containers.iter_mut().find(|c| c.name == u.container) else { continue };
                let env = c.env.get_or_insert_default();
                match u.value {
                    Some(v) => {
                        match env.iter_mut().find(|e| e.name == u.name) {
                            Some(e) => {
                                e.value = Some(v);
                                e.value_from = None;
                            }
                            None => env.push(EnvVar { name: u.name, value: Some(v), value_from: None }),
                        }
                        changed = true;
                    }
                    None => {
                        let before = env.len();
                        env.retain(|e| e.name != u.name);
                        changed |= env.len() != before;
                    }
                }
            }
            changed
        }
    }
}

/// A reload of a Deployment, StatefulSet or DaemonSet: the pod-template change plus the new
/// record, in one patch, so the record never claims a rollout that did not happen.
pub(crate) fn reload_patch(w: &Workload, template: Value, record: &Record) -> Value {
    let mut p = record_patch(w, record);
    p["spec"] = json!({"template": template});
    p
}
