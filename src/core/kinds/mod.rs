//! The workload kinds the controller rolls: one file per kind, and the one list of them.
//!
//! A kind's file implements [`Kind`] on its Kubernetes type: where its pod template lives, the
//! controls its decisions read, how its rollout is followed, how a reload is written, when it is
//! watched and the RBAC it needs ([`KindInfo`]). Everything else iterates [`WorkloadKind::ALL`]:
//! the watches, `reloader explain`, the error text, the property tests, and the test that the
//! chart's and `deploy/`'s RBAC cover every kind.
//!
//! **Adding a kind**: a file here implementing [`Kind`] (for a custom resource, a type with the
//! fields it reads and `namespaced_resource!`), its `mod` line and one line in the `kinds!` list
//! below. The RBAC test then asks for the chart's rules. A new way of writing a reload is a
//! [`Write`] variant and its function in `runtime::writer` (docs/architecture.md has the list).

use std::fmt;

pub(crate) mod cronjob;
pub(crate) mod daemonset;
pub(crate) mod deployment;
pub(crate) mod job;
mod kind;
pub(crate) mod rollout;
pub(crate) mod statefulset;

pub(crate) use kind::{Controls, Kind, KindInfo, Progress, RolloutStatus, Watched, Write};

/// A kind in the list: its place in [`WorkloadKind`] (implemented by `kinds!` for every type
/// it lists, so a kind left out of the list cannot be watched).
pub(crate) trait WorkloadType: Kind {
    const WORKLOAD: WorkloadKind;
}

/// The one list of kinds, as `Variant => type` (an absolute path: the dispatch macro expands
/// where it is used). It defines [`WorkloadKind`], [`WorkloadKind::ALL`] in this order,
/// [`WorkloadType`] for each type, and `with_kind_type!`, which runs code with the Kubernetes
/// type of a kind. The list starts with `$`: the inner macro's own `$` tokens are written `$d`.
macro_rules! kinds {
    ($d:tt $($variant:ident => $ty:ty,)*) => {
        /// A workload kind.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub(crate) enum WorkloadKind {
            $($variant,)*
        }

        impl WorkloadKind {
            /// Every kind, in the order the watches start.
            pub(crate) const ALL: &'static [WorkloadKind] = &[$(WorkloadKind::$variant,)*];

            /// What is known of the kind without an object of it.
            pub(crate) fn info(self) -> &'static KindInfo {
                match self {
                    $(WorkloadKind::$variant => &<$ty as Kind>::INFO,)*
                }
            }
        }

        $(impl WorkloadType for $ty {
            const WORKLOAD: WorkloadKind = WorkloadKind::$variant;
        })*

        /// Runs `$body` with `$K` naming the Kubernetes type of the workload kind `$kind`.
        macro_rules! with_kind_type {
            ($d kind:expr, $d K:ident => $d body:expr) => {
                match $d kind {
                    $($crate::core::kinds::WorkloadKind::$variant => {
                        type $d K = $ty;
                        $d body
                    })*
                }
            };
        }
        pub(crate) use with_kind_type;
    };
}

kinds! {$
    Deployment => k8s_openapi::api::apps::v1::Deployment,
    StatefulSet => k8s_openapi::api::apps::v1::StatefulSet,
    DaemonSet => k8s_openapi::api::apps::v1::DaemonSet,
    CronJob => k8s_openapi::api::batch::v1::CronJob,
    Job => k8s_openapi::api::batch::v1::Job,
    Rollout => crate::core::kinds::rollout::Rollout,
}

impl WorkloadKind {
    pub(crate) fn as_str(self) -> &'static str {
        self.info().kind
    }

    pub(crate) fn api_version(self) -> &'static str {
        self.info().api_version
    }

    /// The API resource (plural), for metrics labels and RBAC.
    pub(crate) fn plural(self) -> &'static str {
        self.info().plural
    }

    /// Parses a kind as `reloader explain` takes it: its name, plural or an alias, in any case
    /// (`deployment`, `Deployment`, `deployments`, `deploy`).
    pub(crate) fn parse(s: &str) -> Option<WorkloadKind> {
        let s = s.to_ascii_lowercase();
        WorkloadKind::ALL.iter().copied().find(|k| {
            let i = k.info();
            i.kind.eq_ignore_ascii_case(&s) || i.plural == s || i.aliases.contains(&s.as_str())
        })
    }

    /// The kinds as `reloader explain` names them: `deployment, statefulset, …`.
    pub(crate) fn names() -> String {
        WorkloadKind::ALL.iter().map(|k| k.as_str().to_ascii_lowercase()).collect::<Vec<_>>().join(", ")
    }
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One RBAC rule a workload kind needs, for the test that the chart and `deploy/` grant it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KindRule {
    pub kind: &'static str,
    pub api_group: &'static str,
    pub resource: &'static str,
    pub verbs: &'static [&'static str],
    /// The chart value that turns the kind on, when it is opt-in (`reloader.isArgoRollouts`).
    pub chart_value: Option<&'static str>,
}

/// Every RBAC rule every workload kind needs.
pub fn rbac_rules() -> Vec<KindRule> {
    WorkloadKind::ALL
        .iter()
        .flat_map(|k| {
            let i = k.info();
            let chart_value = match i.watched {
                Watched::WithFlag { chart, .. } => Some(chart),
                _ => None,
            };
            i.rbac.iter().map(move |(api_group, resource, verbs)| KindRule {
                kind: i.kind,
                api_group,
                resource,
                verbs,
                chart_value,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_by_name_plural_and_alias() {
        let rows = [
            ("deployment", Some(WorkloadKind::Deployment)),
            ("Deployment", Some(WorkloadKind::Deployment)),
            ("deployments", Some(WorkloadKind::Deployment)),
            ("deploy", Some(WorkloadKind::Deployment)),
            ("sts", Some(WorkloadKind::StatefulSet)),
            ("statefulsets", Some(WorkloadKind::StatefulSet)),
            ("ds", Some(WorkloadKind::DaemonSet)),
            ("cj", Some(WorkloadKind::CronJob)),
            ("CronJobs", Some(WorkloadKind::CronJob)),
            ("job", Some(WorkloadKind::Job)),
            ("jobs", Some(WorkloadKind::Job)),
            ("ro", Some(WorkloadKind::Rollout)),
            ("rollout", Some(WorkloadKind::Rollout)),
            ("pod", None),
            ("", None),
        ];
        for (s, want) in rows {
            assert_eq!(WorkloadKind::parse(s), want, "{s:?}");
        }
        assert_eq!(WorkloadKind::names(), "deployment, statefulset, daemonset, cronjob, job, rollout");
    }

    #[test]
    fn every_kind_is_described_whole() {
        for k in WorkloadKind::ALL {
            let i = k.info();
            assert!(!i.rbac.is_empty(), "{k}: no RBAC rules");
            assert!(
                i.rbac.iter().any(|(g, r, v)| *g == i.group && *r == i.plural && v.contains(&"watch")),
                "{k}: its own resource is not watched by its rules"
            );
            assert_eq!(WorkloadKind::parse(i.kind), Some(*k));
            assert_eq!(WorkloadKind::parse(i.plural), Some(*k));
        }
    }
}
