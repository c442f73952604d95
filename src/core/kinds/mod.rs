//! The workload kinds.

pub(crate) mod rollout;
