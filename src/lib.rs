//! A Kubernetes controller that rolls Deployments, StatefulSets, DaemonSets, CronJobs, Jobs and
//! Argo Rollouts when the ConfigMaps and Secrets they use change; a drop-in replacement for
//! Stakater Reloader that keeps only hashes, records what it applied on each workload, and
//! coalesces bursts.
//!
//! Layers, each using only those below it:
//! - `core`: pure decisions over k8s-openapi types (no client, no spawn, no clock);
//! - `runtime`: the process's machinery (context, queue, readiness, leader election, HTTP
//!   server, metrics, alerts, logs, the API client);
//! - `watch` feeds the index from the API; `apply` reconciles one workload (decide, write,
//!   report);
//! - `controller` wires them; `explain` runs the same core for one workload on demand;
//!   `cli` and `config` turn flags into settings; `error` is the one error type.

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
pub use core::decide::outcome::OUTCOME_FIELD_MANAGER;
pub use runtime::reporter::metrics;
pub use runtime::{client, memory, telemetry};
