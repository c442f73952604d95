//! Pure decisions: what a source's content is (hash), which sources a pod template uses
//! (refs), which of them govern a workload (policy), what was applied (record), what to do
//! about it (decide) and how the workload's template changes (patch); plus the storm brake,
//! the index the watches fill, and the history of recent source changes. Nothing here talks to
//! the API server, spawns a task or reads a clock: times are passed in.

pub(crate) mod brake;
pub(crate) mod csi;
pub(crate) mod decide;
pub(crate) mod duration;
pub(crate) mod hash;
pub(crate) mod history;
pub(crate) mod index;
pub(crate) mod patch;
pub(crate) mod policy;
#[cfg(test)]
mod properties;
pub(crate) mod record;
pub(crate) mod refs;
pub(crate) mod rollout;
pub(crate) mod source;
pub(crate) mod workload;
