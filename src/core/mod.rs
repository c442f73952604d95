//! Pure decisions: what a source's content is (hash), which sources a pod template uses
//! (refs), which of them govern a workload (policy), what was applied (record), what to do
//! about it (decide) and how the workload's template changes (patch); plus the storm brake,
//! the index the watches fill, the history of recent source changes, and how the rollouts that
//! reloads start end (outcome), how many may be under way at once (waves) and when a change
//! whose rollouts fail stops (breaker). Nothing here talks to the API server, spawns a task or reads a
//! clock: times are passed in.

/// `k8s_openapi::Resource` and `Metadata` for a namespaced custom resource of our own (a
/// type with a `metadata: ObjectMeta` field and only the fields the controller reads), so kube's
/// typed `Api` and watcher take it like a built-in kind.
macro_rules! namespaced_resource {
    ($ty:ty, $group:literal, $version:literal, $kind:literal, $plural:literal) => {
        impl k8s_openapi::Resource for $ty {
            const API_VERSION: &'static str = concat!($group, "/", $version);
            const GROUP: &'static str = $group;
            const KIND: &'static str = $kind;
            const VERSION: &'static str = $version;
            const URL_PATH_SEGMENT: &'static str = $plural;
            type Scope = k8s_openapi::NamespaceResourceScope;
        }

        impl k8s_openapi::Metadata for $ty {
            type Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
            fn metadata(&self) -> &Self::Ty {
                &self.metadata
            }
            fn metadata_mut(&mut self) -> &mut Self::Ty {
                &mut self.metadata
            }
        }
    };
}

pub(crate) mod decide;
pub(crate) mod gates;
pub(crate) mod index;
pub(crate) mod kinds;
pub(crate) mod model;
#[cfg(test)]
mod properties;
