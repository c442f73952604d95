//! The tracking note a reload leaves on the workload (`ROLLOUT_ANNOTATION`): what caused it, when,
//! the generation it made, and once its rollout ended, how. Restarts and failovers read it back,
//! so an outcome is neither reported twice nor forgotten; the circuit breaker and the waves
//! count rollouts from these notes. `decide::outcome` says how a rollout stands.

use serde::{Deserialize, Serialize};

use crate::core::model::cause::Causes;

/// The annotation, under this project's own domain, that holds the tracking note.
pub(crate) const ROLLOUT_ANNOTATION: &str = "reloader.kube-reloader.dev/rollout";

/// The field manager of the write that records an outcome: the API server's audit log (its
/// request URI carries `fieldManager`) and `managedFields` tell these writes from reloads.
pub const OUTCOME_FIELD_MANAGER: &str = "kube-reloader-outcome";

/// How a tracked rollout ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Ended {
    Succeeded,
    Failed,
    /// A later reload replaced it before it ended.
    Superseded,
}

impl Ended {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Ended::Succeeded => "succeeded",
            Ended::Failed => "failed",
            Ended::Superseded => "superseded",
        }
    }
}

/// The tracking note a reload writes on the workload, with the reload itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Tracked {
    /// What caused it: `configmap/app-config@1a2b3c4d5e6f` (several joined with `, `).
    pub(crate) cause: Causes,
    /// When the reload was written, Unix seconds (the controller's clock).
    pub(crate) at: i64,
    /// The generation the reload made: the one it was decided on plus one (the write carries
    /// that `resourceVersion` as a precondition, and a template change bumps it by one).
    pub(crate) generation: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) outcome: Option<Ended>,
    /// When the outcome was seen, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) ended: Option<i64>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
}

impl Tracked {
    pub(crate) fn encode(&self) -> String {
        serde_json::to_string(self).expect("a tracking note serialises")
    }

    pub(crate) fn decode(s: &str) -> Result<Tracked, String> {
        serde_json::from_str(s).map_err(|e| format!("unreadable {ROLLOUT_ANNOTATION} annotation: {e}"))
    }

    /// Still under way (no outcome recorded yet).
    pub(crate) fn pending(&self) -> bool {
        self.outcome.is_none()
    }

    /// Whether `other` is the note of the same reload (whatever either says of its outcome).
    pub(crate) fn same_reload(&self, other: &Tracked) -> bool {
        self.at == other.at && self.generation == other.generation && self.cause == other.cause
    }

    /// The note with its outcome.
    pub(crate) fn ended(&self, outcome: Ended, now: i64, reason: Option<String>) -> Tracked {
        Tracked { outcome: Some(outcome), ended: Some(now), reason, ..self.clone() }
    }
}
