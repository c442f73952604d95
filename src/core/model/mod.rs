//! The model: what the controller keeps of the objects it sees. ConfigMaps, Secrets and
//! SecretProviderClasses are a kind, a name and a content hash (`source`, `hash`, `csi`); a
//! workload is a compact projection (`workload`) with its parsed policy (`policy`, read with
//! the annotation keys of `keys`), the sources its pod template uses (`refs`), the record of
//! what was applied (`record`) and the tracking note of its last reload (`note`), whose
//! changes are named by `cause`; and the marks Stakater Reloader left on it (`marks`).

pub(crate) mod cause;
pub(crate) mod csi;
pub(crate) mod duration;
pub(crate) mod hash;
pub(crate) mod keys;
pub(crate) mod marks;
pub(crate) mod note;
pub(crate) mod policy;
pub(crate) mod record;
pub(crate) mod refs;
pub(crate) mod source;
pub(crate) mod workload;

/// Parses a resourceVersion as KEP-5504 defines it: a positive decimal integer. Versions are
/// comparable across resources, so "was it seen before that change?" is a comparison.
pub(crate) fn parse_rv(rv: Option<&str>) -> Option<u64> {
    rv.and_then(|s| s.parse::<u64>().ok()).filter(|n| *n > 0)
}
