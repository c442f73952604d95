//! The process's services and machinery: the context (`context`) and the services it holds
//! (`store`, `scheduler`, `writer`, `reporter`), readiness, leader election, the probe and
//! metrics server, memory, logs and signals, the API client, the throttle on writes in flight,
//! and the `reloader-meta-info` ConfigMap published at start.

pub mod client;
pub(crate) mod context;
pub(crate) mod leader;
pub(crate) mod lists;
pub mod memory;
pub mod meta_info;
pub(crate) mod readiness;
pub(crate) mod reporter;
pub(crate) mod scheduler;
pub(crate) mod server;
pub(crate) mod store;
pub mod telemetry;
pub(crate) mod throttle;
pub(crate) mod writer;
