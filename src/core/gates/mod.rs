//! The safety gates.

pub(crate) mod brake;
pub(crate) mod breaker;
pub(crate) mod waves;
