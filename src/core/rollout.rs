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
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RolloutSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) template: Option<PodTemplateSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) workload_ref: Option<serde_json::Value>,
}

namespaced_resource!(Rollout, "argoproj.io", "v1alpha1", "Rollout", "rollouts");
