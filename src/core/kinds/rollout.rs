//! The part of Argo Rollouts (`argoproj.io/v1alpha1`) this controller reads. Writes go through
//! dynamic objects, so fields not modelled here are never lost.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub(crate) struct Rollout {
    pub(crate) metadata: ObjectMeta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) spec: Option<RolloutSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) status: Option<RolloutStatus>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RolloutSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) template: Option<PodTemplateSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) workload_ref: Option<serde_json::Value>,
}

/// What `kubectl argo rollouts status` reads of a Rollout's status (`GetRolloutPhase`).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RolloutStatus {
    /// A number as a string (Argo Rollouts ≥ 0.10; older ones wrote a hash here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) observed_generation: Option<String>,
    /// `Healthy`, `Progressing`, `Paused` or `Degraded`, computed by the Argo Rollouts controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) phase: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) message: Option<String>,
    #[serde(default)]
    pub(crate) controller_pause: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) pause_conditions: Vec<serde_json::Value>,
}

namespaced_resource!(Rollout, "argoproj.io", "v1alpha1", "Rollout", "rollouts");
