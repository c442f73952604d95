//! The applied-hash record: what the controller last applied to a workload, kept on the
//! workload's own metadata so that restarts and failovers need no other state. Metadata
//! changes do not roll pods, so writing the record alone is free.

use std::collections::BTreeMap;

use crate::core::model::hash::ContentHash;
use crate::core::model::source::SourceRef;

/// The annotation, under this project's own domain, that holds the record.
pub(crate) const RECORD_ANNOTATION: &str = "reloader.kube-reloader.dev/applied";

/// The field manager of every write this controller makes.
pub(crate) const FIELD_MANAGER: &str = "kube-reloader";

/// What was applied for one source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Applied {
    /// Its content with this hash.
    Hash(ContentHash),
    /// It did not exist.
    Absent,
}

const ABSENT: &str = "-";

impl Applied {
    fn encode(&self) -> String {
        match self {
            Applied::Hash(h) => h.to_hex(),
            Applied::Absent => ABSENT.to_string(),
        }
    }

    fn decode(s: &str) -> Option<Applied> {
        if s == ABSENT {
            return Some(Applied::Absent);
        }
        if s.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
            let hex = std::str::from_utf8(chunk).ok()?;
            out[i] = u8::from_str_radix(hex, 16).ok()?;
        }
        Some(Applied::Hash(ContentHash(out)))
    }
}

/// Source → what was applied, for every source that governs the workload.
pub(crate) type Record = BTreeMap<SourceRef, Applied>;

/// Serialises a record as compact JSON with sorted keys, so equal records give equal strings.
pub(crate) fn encode(record: &Record) -> String {
    let m: BTreeMap<String, String> = record.iter().map(|(k, v)| (k.to_string(), v.encode())).collect();
    serde_json::to_string(&m).expect("a map of strings serialises")
}

/// Parses a record. A malformed one is an error the caller reports, and the workload is then
/// treated as seen for the first time (adopted without a rollout).
pub(crate) fn decode(s: &str) -> Result<Record, String> {
    let m: BTreeMap<String, String> =
        serde_json::from_str(s).map_err(|e| format!("not a JSON object of strings: {e}"))?;
    m.into_iter()
        .map(|(k, v)| {
            let r = SourceRef::parse(&k).ok_or_else(|| format!("bad source key {k:?}"))?;
            let a = Applied::decode(&v).ok_or_else(|| format!("bad hash {v:?} for {k}"))?;
            Ok((r, a))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::source::SourceKind;

    #[test]
    fn round_trip() {
        let mut r = Record::new();
        r.insert(SourceRef::new(SourceKind::Secret, "s"), Applied::Absent);
        r.insert(SourceRef::new(SourceKind::ConfigMap, "c"), Applied::Hash(ContentHash([0xab; 32])));
        let s = encode(&r);
        assert_eq!(s, format!("{{\"configmap/c\":\"{}\",\"secret/s\":\"-\"}}", "ab".repeat(32)));
        assert_eq!(decode(&s).unwrap(), r);
    }

    #[test]
    fn malformed() {
        for bad in
            ["", "[]", "{\"configmap/c\":1}", "{\"pod/c\":\"-\"}", "{\"configmap/c\":\"xyz\"}", "{\"secret/\":\"-\"}"]
        {
            assert!(decode(bad).is_err(), "{bad}");
        }
    }
}
