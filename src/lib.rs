//! A Kubernetes controller that rolls Deployments, StatefulSets, DaemonSets, CronJobs, Jobs and
//! Argo Rollouts when the ConfigMaps and Secrets they use change; a drop-in replacement for
//! Stakater Reloader that keeps only hashes, records what it applied on each workload, and
//! coalesces bursts.
//!
//! Layers, each using only those below it (docs/architecture.md walks one change through them):
//! - `core`: pure decisions over k8s-openapi types (no client, no spawn, no clock), in rooms:
//!   `kinds` (one file per workload kind), `model` (what is kept of objects), `index` (the
//!   state the watches fill), `decide` (what to do about a workload) and `gates` (the safety
//!   checks before a write);
//! - `config` turns flags (`cli`) into settings; `error` is the one error type;
//! - `runtime`: the services of the process (`store`, `scheduler`, `writer`, `reporter`, held
//!   by the context) and its machinery (readiness, leader election, the HTTP server, memory,
//!   logs, the API client);
//! - `watch` feeds the store from the API; `reconcile` takes one workload from a snapshot to a
//!   write;
//! - `controller` wires them; `explain` runs the same core for one workload on demand.

pub mod cli;
pub mod config;
pub mod controller;
pub mod error;
pub mod explain;

pub(crate) mod core;
pub(crate) mod reconcile;
pub(crate) mod runtime;
pub(crate) mod watch;

// What the binary, the integration tests and the benchmark use.
pub use core::model::note::OUTCOME_FIELD_MANAGER;
pub use core::model::record::FIELD_MANAGER;
pub use runtime::reporter::metrics;
pub use runtime::{client, memory, meta_info, telemetry};

/// The workload kinds, as far as the packaging needs to know them (the RBAC test).
pub mod kinds {
    pub use crate::core::kinds::{KindRule, rbac_rules};
}
