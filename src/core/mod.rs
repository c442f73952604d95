//! Pure decisions: nothing here talks to the API server, spawns a task or reads a clock (times
//! are passed in). Five rooms, each using only the rooms before it:
//! - `kinds`: the workload kinds, one file each, and the one list of them;
//! - `model`: what is kept of the objects (sources and their hashes, workload projections, the
//!   policy as annotations say it, the record and the tracking note, a change's identity);
//! - `index`: what the watches fill: hashes, projections, source → workloads, recent changes;
//! - `decide`: what to do about one workload (which sources govern it, the plan, the patch, how
//!   its rollout stands);
//! - `gates`: the safety checks before a write (storm brake, circuit breaker, waves).

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
