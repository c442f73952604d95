//! The process's machinery: the shared context, the work queue, readiness, leader election,
//! the probe and metrics server, metrics, alerts, logs and signals, and the API client.

pub mod client;
pub(crate) mod context;
pub(crate) mod leader;
pub mod memory;
pub(crate) mod readiness;
pub(crate) mod reporter;
pub(crate) mod scheduler;
pub(crate) mod server;
pub mod telemetry;
pub(crate) mod writer;
