//! The process's services and machinery: the context (`context`) and the services it holds
//! (`store`, `scheduler`, `writer`, `reporter`), readiness, leader election, the probe and
//! metrics server, memory, logs and signals, the API client, and the throttle on writes in flight.

pub mod client;
pub(crate) mod context;
pub(crate) mod leader;
pub(crate) mod lists;
pub mod memory;
pub(crate) mod readiness;
pub(crate) mod reporter;
pub(crate) mod scheduler;
pub(crate) mod server;
pub(crate) mod store;
pub mod telemetry;
pub(crate) mod throttle;
pub(crate) mod writer;
