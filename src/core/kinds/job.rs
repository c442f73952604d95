//! Jobs (`batch/v1`): a Job's template is immutable, so a reload deletes it and creates it
//! again with the new template. Skipped with `--ignored-workload-types=jobs`.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::PodTemplateSpec;

use super::kind::{Kind, KindInfo, Watched, Write};

impl Kind for Job {
    const INFO: KindInfo = KindInfo {
        write: Write::Recreate,
        watched: Watched::UnlessIgnored,
        rbac: &[("batch", "jobs", &["get", "list", "watch", "patch", "create", "delete"])],
        ..KindInfo::of::<Job>()
    };

    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref().map(|s| &s.template)
    }

    #[cfg(test)]
    fn fixture(
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
        template: PodTemplateSpec,
        _: &super::kind::Controls,
    ) -> Self {
        let spec = k8s_openapi::api::batch::v1::JobSpec { template, ..Default::default() };
        Job { metadata, spec: Some(spec), status: None }
    }
}
