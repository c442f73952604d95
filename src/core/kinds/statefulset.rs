//! StatefulSets (`apps/v1`): a reload patches the pod template; the rollout is followed from the
//! status (partitions honoured), unless the update strategy is `OnDelete`.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::PodTemplateSpec;

use super::kind::{Kind, KindInfo, Progress, RolloutStatus, Watched, Write};

impl Kind for StatefulSet {
    const INFO: KindInfo = KindInfo {
        aliases: &["sts"],
        write: Write::PatchTemplate,
        watched: Watched::Always,
        rbac: &[("apps", "statefulsets", &["get", "list", "watch", "patch"])],
        follows_rollouts: true,
        ..KindInfo::of::<StatefulSet>()
    };

    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref().map(|s| &s.template)
    }

    fn progress(&self) -> Progress {
        let spec = self.spec.as_ref();
        let strategy = spec.and_then(|s| s.update_strategy.as_ref());
        if strategy.and_then(|u| u.type_.as_deref()) == Some("OnDelete") {
            return Progress::Untracked;
        }
        // Read in place: this runs on every watch event of the kind.
        let unset = k8s_openapi::api::apps::v1::StatefulSetStatus::default();
        let st = self.status.as_ref().unwrap_or(&unset);
        let desired = spec.and_then(|s| s.replicas).unwrap_or(1);
        let partition = strategy.and_then(|u| u.rolling_update.as_ref()).and_then(|r| r.partition).unwrap_or(0);
        let (updated, ready) = (st.updated_replicas.unwrap_or(0), st.ready_replicas.unwrap_or(0));
        let (current, update) =
            (st.current_revision.as_deref().unwrap_or(""), st.update_revision.as_deref().unwrap_or(""));
        let rolling = if ready < desired {
            Some(format!("{ready} of {desired} replicas ready"))
        } else if partition > 0 {
            // Only the pods above the partition are updated; the revisions never converge.
            let expected = (desired - partition).max(0);
            (updated < expected).then(|| format!("{updated} of {expected} replicas above the partition updated"))
        } else if update != current {
            Some(format!("{updated} of {desired} replicas updated to revision {update}"))
        } else {
            None
        };
        Progress::Status(RolloutStatus {
            generation: self.metadata.generation.unwrap_or(0),
            observed_generation: Some(st.observed_generation.unwrap_or(0)),
            controller: "the StatefulSet controller",
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
        let spec = k8s_openapi::api::apps::v1::StatefulSetSpec { template, ..Default::default() };
        StatefulSet { metadata, spec: Some(spec), status: None }
    }
}
