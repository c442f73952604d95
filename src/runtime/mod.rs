//! The process's machinery: the shared context, the work queue, readiness, leader election,
//! the probe and metrics server, metrics, alerts, logs and signals, and the API client.

pub(crate) mod alerts;
pub mod client;
pub(crate) mod context;
pub(crate) mod events;
pub(crate) mod leader;
pub mod memory;
pub mod metrics;
pub(crate) mod pacer;
pub(crate) mod queue;
pub(crate) mod readiness;
pub(crate) mod server;
pub(crate) mod slots;
pub mod telemetry;
