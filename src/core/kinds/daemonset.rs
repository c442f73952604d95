//! DaemonSets (`apps/v1`): a reload patches the pod template; the rollout is followed from the
//! status, unless the update strategy is `OnDelete`.

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::PodTemplateSpec;

use super::kind::{Kind, KindInfo, Progress, RolloutStatus, Watched, Write};

impl Kind for DaemonSet {
    const INFO: KindInfo = KindInfo {
        aliases: &["ds"],
        write: Write::PatchTemplate,
        watched: Watched::Always,
        rbac: &[("apps", "daemonsets", &["get", "list", "watch", "patch"])],
        follows_rollouts: true,
        ..KindInfo::of::<DaemonSet>()
    };

    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref().map(|s| &s.template)
    }

    fn progress(&self) -> Progress {
        let strategy = self.spec.as_ref().and_then(|s| s.update_strategy.as_ref());
        if strategy.and_then(|u| u.type_.as_deref()) == Some("OnDelete") {
            return Progress::Untracked;
        }
        // Read in place: this runs on every watch event of the kind.
        let unset = k8s_openapi::api::apps::v1::DaemonSetStatus::default();
        let st = self.status.as_ref().unwrap_or(&unset);
        let desired = st.desired_number_scheduled;
        let (updated, available) = (st.updated_number_scheduled.unwrap_or(0), st.number_available.unwrap_or(0));
        let rolling = if updated < desired {
            Some(format!("{updated} of {desired} scheduled pods updated"))
        } else if available < desired {
            Some(format!("{available} of {desired} updated pods available"))
        } else {
            None
        };
        Progress::Status(RolloutStatus {
            generation: self.metadata.generation.unwrap_or(0),
            observed_generation: Some(st.observed_generation.unwrap_or(0)),
            controller: "the DaemonSet controller",
            failed: None,
            rolling,
        })
    }

    #[cfg(test)]
    fn fixture(
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
        template: PodTemplateSpec,
        _: &super::kind::Controls,
    ) -> Self {
        let spec = k8s_openapi::api::apps::v1::DaemonSetSpec { template, ..Default::default() };
        DaemonSet { metadata, spec: Some(spec), status: None }
    }
}
