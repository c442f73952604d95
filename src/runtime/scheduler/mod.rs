//! The scheduler.

pub(crate) mod pacer;
pub(crate) mod queue;
pub(crate) mod slots;
