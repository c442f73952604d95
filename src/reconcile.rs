//! Applies plans: the only place that writes to workloads.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use kube::api::{Api, Patch, PatchParams};
use serde_json::Value;
use tracing::{debug, error, info, warn};

use crate::controller::Ctx;
use crate::decide::{self, ChangeKind, Plan};
use crate::patch;
use crate::workload::{WorkloadKey, WorkloadKind};

pub use crate::record::FIELD_MANAGER;

/// Errors of applying a plan.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("patching {key} failed: {source}")]
    Patch {
        key: WorkloadKey,
        #[source]
        source: kube::Error,
    },
}

/// What happened, for the worker's retry policy.
pub enum Outcome {
    Done,
    /// Our view was stale (409); the watch delivers the newer object, check again soon.
    Stale,
}

/// Reconciles one workload: compares what governs it now with what it recorded, and writes
/// the difference.
pub async fn reconcile(ctx: &Arc<Ctx>, key: &WorkloadKey) -> Result<Outcome, ReconcileError> {
    let (w, plan) = {
        let st = ctx.state.lock().expect("state lock");
        let Some(w) = st.workload(key) else { return Ok(Outcome::Done) };
        if !ctx.namespace_selected(&key.namespace) {
            return Ok(Outcome::Done);
        }
        let considered = decide::consider(w, st.sources(&key.namespace));
        let desired = decide::desired(&considered);
        (w.clone(), decide::plan(w, &desired, ctx.settings.options))
    };
    for e in &w.policy.errors {
        // Reported on every evaluation that sees it, like Reloader; the rest of the policy applies.
        error!(workload = %key, "Skipping invalid reload annotation on {} '{}' in namespace '{}': {e}", key.kind, key.name, key.namespace);
    }
    if let Err(e) = &w.record {
        warn!(workload = %key, error = %e, "unreadable {} annotation; adopting the current state", crate::record::RECORD_ANNOTATION);
    }

    let body = match &plan {
        Plan::Nothing => return Ok(Outcome::Done),
        Plan::Adopt(record) => {
            debug!(workload = %key, sources = record.len(), "adopting current state as baseline");
            patch::record_patch(&w, record)
        }
        Plan::Record(record) => {
            debug!(workload = %key, sources = record.len(), "recording governing sources");
            patch::record_patch(&w, record)
        }
        Plan::Reload { changes, record } => {
            let now =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
            match patch::template_patch(&w, changes, ctx.settings.strategy, now) {
                Some(t) => patch::reload_patch(&w, t, record),
                None => {
                    warn!(workload = %key, "no container to reload; recording the change only");
                    patch::record_patch(&w, record)
                }
            }
        }
    };

    match apply(ctx, key, body).await {
        Ok(()) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {
            debug!(workload = %key, "workload changed since we looked; will look again");
            return Ok(Outcome::Stale);
        }
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(Outcome::Done),
        Err(source) => {
            if let Plan::Reload { changes, .. } = &plan {
                for c in changes {
                    error!(
                        workload = %key,
                        source = %c.source,
                        "Update for '{}' of type '{}' in namespace '{}' failed with error {source}",
                        key.name, key.kind, key.namespace
                    );
                }
            }
            return Err(ReconcileError::Patch { key: key.clone(), source });
        }
    }

    if let Plan::Reload { changes, .. } = &plan {
        for c in changes {
            let what = match c.kind {
                ChangeKind::Updated => "Changes detected",
                ChangeKind::Created => "Creation detected",
                ChangeKind::Deleted => "Deletion detected",
            };
            info!(
                workload = %key,
                source = %c.source,
                hash = c.hash.map(|h| h.short()).unwrap_or_default(),
                "{what} in '{}' of type '{}' in namespace '{}'; updated '{}' of type '{}' in namespace '{}'",
                c.source.name, c.source.kind.type_name(), key.namespace, key.name, key.kind, key.namespace
            );
        }
    }
    Ok(Outcome::Done)
}

async fn apply(ctx: &Ctx, key: &WorkloadKey, body: Value) -> Result<(), kube::Error> {
    let pp = PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
    let patch = Patch::Strategic(body);
    let c = ctx.client.clone();
    let (ns, name) = (key.namespace.as_str(), key.name.as_str());
    match key.kind {
        WorkloadKind::Deployment => Api::<Deployment>::namespaced(c, ns).patch(name, &pp, &patch).await.map(drop),
        WorkloadKind::StatefulSet => Api::<StatefulSet>::namespaced(c, ns).patch(name, &pp, &patch).await.map(drop),
        WorkloadKind::DaemonSet => Api::<DaemonSet>::namespaced(c, ns).patch(name, &pp, &patch).await.map(drop),
    }
}

/// Delay before retrying a failed workload: 1 s doubling to 5 min.
pub fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.min(8)).min(Duration::from_secs(300))
}
