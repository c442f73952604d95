//! The model: what the controller keeps of the objects it sees.

pub(crate) mod csi;
pub(crate) mod duration;
pub(crate) mod hash;
pub(crate) mod policy;
pub(crate) mod record;
pub(crate) mod refs;
pub(crate) mod source;
pub(crate) mod workload;
