//! Deployments (`apps/v1`): a reload patches the pod template; the rollout is followed from the
//! status; the only kind that honours Reloader's pause period.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::PodTemplateSpec;

use super::kind::{Controls, Kind, KindInfo, Progress, RolloutStatus, Watched, Write};

/// The reason of the `Progressing` condition when `progressDeadlineSeconds` passed.
const DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";

impl Kind for Deployment {
    const INFO: KindInfo = KindInfo {
        aliases: &["deploy"],
        write: Write::PatchTemplate,
        watched: Watched::Always,
        rbac: &[("apps", "deployments", &["get", "list", "watch", "patch"])],
        follows_rollouts: true,
        pause_period: true,
        ..KindInfo::of::<Deployment>()
    };

    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref().map(|s| &s.template)
    }

    fn controls(&self, c: &mut Controls) {
        c.spec_paused = self.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
    }

    fn progress(&self) -> Progress {
        let spec = self.spec.as_ref();
        // Read in place: this runs on every watch event of the kind.
        let unset = k8s_openapi::api::apps::v1::DeploymentStatus::default();
        let st = self.status.as_ref().unwrap_or(&unset);
        // A deadline is reported with the time of its condition: one left from an earlier
        // rollout (kept while an old ReplicaSet is reused) says nothing about a later reload.
        let failed = st
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Progressing" && c.reason.as_deref() == Some(DEADLINE_EXCEEDED))
            .map(|c| {
                let t = c.last_update_time.as_ref().or(c.last_transition_time.as_ref()).map_or(0, |t| t.0.as_second());
                let why = match c.message.as_deref() {
                    None | Some("") => DEADLINE_EXCEEDED.to_string(),
                    Some(m) => format!("{DEADLINE_EXCEEDED}: {m}"),
                };
                (Some(t), why)
            });
        let desired = spec.and_then(|s| s.replicas).unwrap_or(1);
        let (replicas, updated) = (st.replicas.unwrap_or(0), st.updated_replicas.unwrap_or(0));
        let available = st.available_replicas.unwrap_or(0);
        let rolling = if updated < desired {
            Some(format!("{updated} of {desired} replicas updated"))
        } else if replicas > updated {
            Some(format!("{} old replicas pending termination", replicas - updated))
        } else if available < updated {
            Some(format!("{available} of {updated} updated replicas available"))
        } else {
            None
        };
        Progress::Status(RolloutStatus {
            generation: self.metadata.generation.unwrap_or(0),
            observed_generation: Some(st.observed_generation.unwrap_or(0)),
            controller: "the Deployment controller",
            failed,
            rolling,
        })
    }

    #[cfg(test)]
    fn fixture(
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
        template: PodTemplateSpec,
        controls: &Controls,
    ) -> Self {
        let spec = k8s_openapi::api::apps::v1::DeploymentSpec {
            template,
            paused: Some(controls.spec_paused),
            ..Default::default()
        };
        Deployment { metadata, spec: Some(spec), status: None }
    }
}
