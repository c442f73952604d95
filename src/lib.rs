//! A Kubernetes controller that rolls Deployments, StatefulSets and DaemonSets when the
//! ConfigMaps and Secrets they use change; a drop-in replacement for Stakater Reloader that
//! keeps only hashes, records what it applied on each workload, and coalesces bursts.
//!
//! Layout: `hash`, `refs`, `policy`, `decide` and `patch` are pure; `state` holds the in-memory
//! index; `watch` feeds it from the API; `reconcile` applies plans; `controller` wires them.

pub mod alerts;
pub mod brake;
pub mod client;
pub mod config;
pub mod controller;
pub mod decide;
pub mod duration;
pub mod explain;
pub mod hash;
pub mod history;
pub mod leader;
pub mod metrics;
pub mod patch;
pub mod policy;
pub mod queue;
pub mod readiness;
pub mod reconcile;
pub mod record;
pub mod refs;
pub mod rollout;
pub mod server;
pub mod source;
pub mod state;
pub mod telemetry;
pub mod watch;
pub mod workload;
pub mod write;
