//! Argo Rollouts (`argoproj.io/v1alpha1`), with `--is-Argo-Rollouts`: the part of the object this
//! controller reads. A reload sets `spec.restartAt` with Reloader's restart strategy, or else
//! replaces the pod template; writes go through dynamic objects, so fields not modelled here
//! are never lost. The rollout is followed by the phase the Argo Rollouts controller computes,
//! read as `kubectl argo rollouts status` does.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

use super::kind::{Controls, Kind, KindInfo, Progress, RolloutStatus, Watched, Write};

/// Reloader's Rollout strategy annotation (not configurable): `restart` restarts the pods
/// through `spec.restartAt` and leaves the template as in Git.
pub(crate) const ROLLOUT_STRATEGY: &str = "reloader.stakater.com/rollout-strategy";

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub(crate) struct Rollout {
    pub(crate) metadata: ObjectMeta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) spec: Option<RolloutSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) status: Option<ArgoStatus>,
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
pub(crate) struct ArgoStatus {
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

impl Kind for Rollout {
    const INFO: KindInfo = KindInfo {
        aliases: &["ro"],
        write: Write::ArgoRollout,
        watched: Watched::WithFlag {
            flag: "is-Argo-Rollouts",
            chart: "reloader.isArgoRollouts",
            product: "Argo Rollouts",
        },
        rbac: &[("argoproj.io", "rollouts", &["get", "list", "watch", "patch", "update"])],
        custom: true,
        follows_rollouts: true,
        ..KindInfo::of::<Rollout>()
    };

    fn template(&self) -> Option<&PodTemplateSpec> {
        // A Rollout with `workloadRef` has no template: nothing to reload (Reloader #751).
        self.spec.as_ref().and_then(|s| s.template.as_ref())
    }

    fn controls(&self, c: &mut Controls) {
        let strategy = self.metadata.annotations.as_ref().and_then(|a| a.get(ROLLOUT_STRATEGY));
        c.restart_strategy = strategy.map(String::as_str) == Some("restart");
    }

    fn progress(&self) -> Progress {
        if self.template().is_none() {
            return Progress::Untracked;
        }
        // Read in place: this runs on every watch event of the kind.
        let unset = ArgoStatus::default();
        let st = self.status.as_ref().unwrap_or(&unset);
        let said = |what: &str| {
            if st.message.as_deref().unwrap_or("").is_empty() {
                what.to_string()
            } else {
                format!("{what}: {}", st.message.as_deref().unwrap_or(""))
            }
        };
        let (failed, rolling) = if st.controller_pause && st.pause_conditions.is_empty() {
            // Paused by its controller with no pause condition left: about to unpause.
            (None, Some("waiting for the Rollout to unpause".to_string()))
        } else {
            match st.phase.as_deref().unwrap_or("") {
                "Healthy" => (None, None),
                "Degraded" => (Some((None, said("Degraded"))), None),
                // A canary step waiting for promotion, or a manual pause: still under way, as
                // for the plugin (`--rollout-timeout` ends the wait).
                "Paused" => (None, Some(said("paused"))),
                "" => (None, Some("no phase reported by the Argo Rollouts controller yet".to_string())),
                other => (None, Some(said(other))),
            }
        };
        Progress::Status(RolloutStatus {
            generation: self.metadata.generation.unwrap_or(0),
            observed_generation: st.observed_generation.as_deref().map(|g| g.parse::<i64>().ok()).unwrap_or(Some(0)),
            controller: "the Argo Rollouts controller",
            failed,
            rolling,
        })
    }

    #[cfg(test)]
    fn fixture(metadata: ObjectMeta, template: PodTemplateSpec, _: &Controls) -> Self {
        let spec = RolloutSpec { template: Some(template), workload_ref: None };
        Rollout { metadata, spec: Some(spec), status: None }
    }
}
