//! Reconciling one workload: take a snapshot of it and its sources from the index, decide,
//! write the difference (per workload kind) and report it (log line, Event, metrics, alert).

pub(crate) mod reconcile;
pub(crate) mod report;
pub(crate) mod write;
