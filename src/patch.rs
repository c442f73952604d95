//! The patches the controller sends. Strategic-merge patches carry the workload's
//! `resourceVersion`, so a patch computed from a stale view fails with 409 instead of
//! overwriting a newer object; they touch only the keys named here.

use serde::Serialize;
use serde_json::{Value, json};

use crate::decide::{Change, ChangeKind};
use crate::record::{self, RECORD_ANNOTATION, Record};
use crate::workload::Workload;

/// Reloader's pod-template annotation for the `annotations` strategy.
pub const LAST_RELOADED_FROM: &str = "reloader.stakater.com/last-reloaded-from";

/// Reloader's hash for a deleted source: SHA-1 of `__RELOADER_EMPTY_DELETE_MARKER__`.
pub const DELETE_MARKER: &str = "aae45badef99284e4dae01d6046154ea9d99532f";

/// `--reload-strategy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Strategy {
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

/// Reloader's `ConvertToEnvVarName`: upper-case, keep `[A-Z0-9]`, turn each run of other bytes
/// into one `_` (none at the start).
pub fn env_var_component(name: &str) -> String {
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

/// `STAKATER_<NAME>_<CONFIGMAP|SECRET>`.
pub fn env_var_name(change: &Change) -> String {
    format!("STAKATER_{}_{}", env_var_component(&change.source.name), change.source.kind.type_name())
}

/// Records the given state on the workload's metadata: no rollout.
pub fn record_patch(w: &Workload, record: &Record) -> Value {
    json!({"metadata": {"resourceVersion": w.resource_version, "annotations": {RECORD_ANNOTATION: record::encode(record)}}})
}

/// The pod-template part of a reload, or `None` when there is nothing to change in it (the
/// env-vars strategy with no container to put a variable in).
pub fn template_patch(w: &Workload, changes: &[Change], strategy: Strategy, now_unix: i64) -> Option<Value> {
    match strategy {
        Strategy::Annotations => {
            let c = changes.first()?;
            let container = w.container_for(&c.source);
            let source = ReloadSource {
                type_: c.source.kind.type_name(),
                name: &c.source.name,
                namespace: &w.key.namespace,
                hash: c.hash.map_or_else(|| DELETE_MARKER.to_string(), |h| h.to_hex()),
                container_refs: container.into_iter().collect(),
                observed_at: now_unix,
            };
            let value = serde_json::to_string(&source).expect("serialisable");
            Some(json!({"metadata": {"annotations": {LAST_RELOADED_FROM: value}}}))
        }
        Strategy::EnvVars => {
            // Group the variables by container; the list merges by name on both levels.
            let mut containers: Vec<(String, Vec<Value>)> = Vec::new();
            for c in changes {
                let Some(container) = w.container_for(&c.source) else { continue };
                let name = env_var_name(c);
                let entry = match c.kind {
                    ChangeKind::Deleted => {
                        if !w.stakater_env.contains(&(container.to_string(), name.clone())) {
                            continue;
                        }
                        json!({"name": name, "$patch": "delete"})
                    }
                    _ => json!({"name": name, "value": c.hash.map(|h| h.to_hex()).unwrap_or_default()}),
                };
                match containers.iter_mut().find(|(n, _)| n == container) {
                    Some((_, env)) => env.push(entry),
                    None => containers.push((container.to_string(), vec![entry])),
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

/// A reload of a Deployment, StatefulSet or DaemonSet: the pod-template change plus the new
/// record, in one patch, so the record never claims a rollout that did not happen.
pub fn reload_patch(w: &Workload, template: Value, record: &Record) -> Value {
    let mut p = record_patch(w, record);
    p["spec"] = json!({"template": template});
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_var_names() {
        let cases = [
            ("my-config", "MY_CONFIG"),
            ("www.stakater.com", "WWW_STAKATER_COM"),
            ("a--b", "A_B"),
            ("-x-", "X_"),
            ("vault-spc", "VAULT_SPC"),
            ("abc", "ABC"),
            ("9lives", "9LIVES"),
            ("ü-x", "X"),
        ];
        for (input, want) in cases {
            assert_eq!(env_var_component(input), want, "{input}");
        }
    }
}
