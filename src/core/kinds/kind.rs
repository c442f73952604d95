//! What a workload kind is made of: the trait each kind's file implements on its Kubernetes
//! type, and what it tells the rest of the controller (its names, write mode, when it is
//! watched, its RBAC; the controls and the rollout status read from an object of it).

use std::fmt;

use k8s_openapi::api::core::v1::PodTemplateSpec;

/// The Kubernetes types this controller rolls.
pub(crate) trait Kind:
    kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + k8s_openapi::Resource
    + Clone
    + fmt::Debug
    + serde::de::DeserializeOwned
    + serde::Serialize
    + Send
    + Sync
    + 'static
{
    /// What is known of the kind without an object of it.
    const INFO: KindInfo;
    /// Its pod template (`None`: it has none here, and nothing is reloaded).
    fn template(&self) -> Option<&PodTemplateSpec>;
    /// Fills the kind-specific controls its decisions read.
    fn controls(&self, _c: &mut Controls) {}
    /// How its rollout goes, from its status, for outcome tracking.
    fn progress(&self) -> Progress {
        Progress::Untracked
    }
    /// An object of the kind with this metadata, template and controls (property tests).
    #[cfg(test)]
    fn fixture(
        meta: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
        template: PodTemplateSpec,
        controls: &Controls,
    ) -> Self;
}

/// A workload kind without an object: its names, how a reload is written, when it is watched,
/// and what it may do.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KindInfo {
    /// `Deployment`: metrics labels, Events, log lines in Reloader's words.
    pub(crate) kind: &'static str,
    pub(crate) api_version: &'static str,
    /// The API group (`""`: core).
    pub(crate) group: &'static str,
    pub(crate) version: &'static str,
    /// The API resource: RBAC rules, metrics labels, `--ignored-workload-types`.
    pub(crate) plural: &'static str,
    /// Short names `reloader explain` takes besides the kind and its plural (`deploy`).
    pub(crate) aliases: &'static [&'static str],
    /// How a reload is written.
    pub(crate) write: Write,
    /// When it is watched.
    pub(crate) watched: Watched,
    /// The RBAC rules the controller needs for it: (API group, resource, verbs).
    pub(crate) rbac: &'static [(&'static str, &'static str, &'static [&'static str])],
    /// A custom resource: watched only once API discovery finds it (its CRD is not installed
    /// everywhere), and written with JSON merge patches (no strategic merge).
    pub(crate) custom: bool,
    /// Its rollout can be followed (its objects carry tracking notes the breaker counts).
    pub(crate) follows_rollouts: bool,
    /// It honours Reloader's pause-period annotation.
    pub(crate) pause_period: bool,
}

impl KindInfo {
    /// The names of `K`, and defaults for the rest: a template patch, always watched, no
    /// rules, a built-in kind without rollout tracking or pause.
    pub(crate) const fn of<K: k8s_openapi::Resource>() -> KindInfo {
        KindInfo {
            kind: K::KIND,
            api_version: K::API_VERSION,
            group: K::GROUP,
            version: K::VERSION,
            plural: K::URL_PATH_SEGMENT,
            aliases: &[],
            write: Write::PatchTemplate,
            watched: Watched::Always,
            rbac: &[],
            custom: false,
            follows_rollouts: false,
            pause_period: false,
        }
    }
}

/// How a reload of a kind is written (`runtime::writer` carries each out).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Write {
    /// The pod template change and the record in one strategic-merge patch, with the
    /// workload's `resourceVersion` as a precondition.
    PatchTemplate,
    /// A Job created from the job template, named after the change; the object itself only
    /// gets the record (a CronJob).
    SpawnJob,
    /// Deleted and created again with the new template, which is immutable (a Job).
    Recreate,
    /// `spec.restartAt` with Reloader's restart strategy, else the template replaced (an Argo
    /// Rollout: a custom resource takes no strategic merge).
    ArgoRollout,
}

/// When a kind is watched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Watched {
    Always,
    /// Unless `--ignored-workload-types` names its plural (Reloader: `jobs`, `cronjobs`).
    UnlessIgnored,
    /// Only with `flag` on (its chart value `chart` sets it and grants the RBAC). `product`
    /// names it in the log when discovery finds it.
    WithFlag {
        flag: &'static str,
        chart: &'static str,
        product: &'static str,
    },
}

/// Kind-specific state that decisions read, filled by each kind from its object (and the
/// pause annotations, read from any workload's metadata).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct Controls {
    /// A CronJob's `spec.suspend`: a reload is recorded, and no Job runs (Reloader #822).
    pub(crate) suspended: bool,
    /// A Deployment's `spec.paused`.
    pub(crate) spec_paused: bool,
    /// The pause-period annotation, raw (Deployments honour it; others get a warning).
    pub(crate) pause_period: Option<String>,
    /// The paused-at annotation written when this controller paused the Deployment.
    pub(crate) paused_at: Option<String>,
    /// An Argo Rollout's `reloader.stakater.com/rollout-strategy: restart`.
    pub(crate) restart_strategy: bool,
}

/// How a workload's rollout goes, as its own status tells: a compact summary its kind reads
/// from the object the watch delivers, kept with the workload (never in its fingerprint, so
/// status updates cause no reconcile unless a rollout is tracked). `decide::outcome` reads it
/// against the tracking note of the reload that started the rollout.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) enum Progress {
    /// A kind or update strategy without a rollout to follow (CronJob, Job, `OnDelete`, an
    /// Argo Rollout without a template of its own).
    #[default]
    Untracked,
    Status(RolloutStatus),
}

/// The status of a rollout, as its kind reads it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct RolloutStatus {
    /// `metadata.generation`.
    pub(crate) generation: i64,
    /// The generation the kind's controller has acted on; `None` when it cannot be read (Argo
    /// Rollouts before 0.10 wrote a hash there): taken as observed, as their plugin does.
    pub(crate) observed_generation: Option<i64>,
    /// Whose controller observes it, in messages ("the Deployment controller").
    pub(crate) controller: &'static str,
    /// A failure the status reports: what, and when it was reported (Unix seconds; `None`:
    /// the status gives no time, so it counts whenever it is seen).
    pub(crate) failed: Option<(Option<i64>, String)>,
    /// Why it is still rolling, in words; `None`: complete and available.
    pub(crate) rolling: Option<String>,
}

impl Progress {
    /// Whether a reload of this workload has a rollout to follow.
    pub(crate) fn trackable(&self) -> bool {
        matches!(self, Progress::Status(_))
    }

    /// The generation the object has now (0 when untracked).
    pub(crate) fn generation(&self) -> i64 {
        match self {
            Progress::Untracked => 0,
            Progress::Status(s) => s.generation,
        }
    }
}
