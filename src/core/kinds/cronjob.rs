//! CronJobs (`batch/v1`): a reload creates a Job from the job template, as
//! `kubectl create job --from` does, and records the change on the CronJob; a suspended
//! CronJob only records it (Reloader #822). Skipped with `--ignored-workload-types=cronjobs`.

use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::PodTemplateSpec;

use super::kind::{Controls, Kind, KindInfo, Watched, Write};

impl Kind for CronJob {
    const INFO: KindInfo = KindInfo {
        aliases: &["cj"],
        write: Write::SpawnJob,
        watched: Watched::UnlessIgnored,
        rbac: &[("batch", "cronjobs", &["get", "list", "watch", "patch"]), ("batch", "jobs", &["create"])],
        ..KindInfo::of::<CronJob>()
    };

    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.job_template.spec.as_ref().map(|s| &s.template)
    }

    fn controls(&self, c: &mut Controls) {
        c.suspended = self.spec.suspend.unwrap_or(false);
    }

    #[cfg(test)]
    fn fixture(
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
        template: PodTemplateSpec,
        controls: &Controls,
    ) -> Self {
        use k8s_openapi::api::batch::v1::{CronJobSpec, JobSpec, JobTemplateSpec};
        let job = JobSpec { template, ..Default::default() };
        let spec = CronJobSpec {
            job_template: JobTemplateSpec { metadata: None, spec: Some(job) },
            suspend: Some(controls.suspended),
            ..Default::default()
        };
        CronJob { metadata, spec, status: None }
    }
}
