//! The applied-hash record: what the controller last applied to a workload, kept on the
//! workload's own metadata so that restarts and failovers need no other state. Metadata
//! changes do not roll pods, so writing the record alone is free.

use std::collections::BTreeMap;

use crate::core::model::hash::ContentHash;
use crate::core::model::source::SourceRef;

/// The annotation, under this project's own domain, that holds the record.
pub(crate) const RECORD_ANNOTATION: &str = "reloader.kube-reloader.dev/applied";

/// The field manager of every write this controller makes.
pub const FIELD_MANAGER: &str = "kube-reloader";

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

/// The record format this release writes, and the only one it reads.
///
/// Format 1: a compact JSON object, keys sorted, from `<kind>/<name>` (`configmap`, `secret`,
/// `secretproviderclass`) to the content hash as 64 lower-case hex digits (the encoding of
/// `hash`, pinned by its known vectors) or `-` for a source that did not exist. It carries no
/// version field: it is every record written so far (`tests/fixtures/records/`).
///
/// A later format must name itself with a `"format"` member (`"format":"2"`), which no
/// format-1 key can be, and its release must still read format 1. A release that meets a
/// format it does not know does not trust the record: the workload is adopted as found (no
/// rollout, the record rewritten in its own format), never taken as stale, so a rollback
/// cannot roll every workload at once. Changing the hash encoding is a new format too: read
/// under the old one, every record would look stale.
pub(crate) const FORMAT: u32 = 1;

/// The member that names a record's format from format 2 on.
const FORMAT_KEY: &str = "format";

/// Serialises a record as compact JSON with sorted keys, so equal records give equal strings.
pub(crate) fn encode(record: &Record) -> String {
    let m: BTreeMap<String, String> = record.iter().map(|(k, v)| (k.to_string(), v.encode())).collect();
    serde_json::to_string(&m).expect("a map of strings serialises")
}

/// Parses a record. A malformed one, or one in a format this release does not read, is an
/// error the caller reports, and the workload is then treated as seen for the first time
/// (adopted without a rollout).
pub(crate) fn decode(s: &str) -> Result<Record, String> {
    let mut m: BTreeMap<String, String> =
        serde_json::from_str(s).map_err(|e| format!("not a JSON object of strings: {e}"))?;
    if let Some(f) = m.remove(FORMAT_KEY)
        && f != FORMAT.to_string()
    {
        return Err(format!(
            "record format {f:?}, written by another release of this controller; this one reads format {FORMAT}"
        ));
    }
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

    /// Every record format written so far, read as it was written: each fixture decodes to
    /// what it says, and encodes back to the same bytes (so a controller that finds nothing
    /// changed rewrites nothing). `tests/records.rs` reads the same fixtures on a cluster.
    #[test]
    fn every_format_written_so_far_reads_as_written() {
        let fixture: serde_json::Value =
            serde_json::from_str(include_str!("../../../tests/fixtures/records/format-1.json")).unwrap();
        assert_eq!(fixture["format"], FORMAT, "the newest fixture is this release's format");
        for case in fixture["records"].as_array().unwrap() {
            let name = case["name"].as_str().unwrap();
            let text = case["annotation"].as_str().unwrap();
            let r = decode(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            let want: BTreeMap<String, String> = serde_json::from_value(case["applied"].clone()).unwrap();
            let got: BTreeMap<String, String> = r.iter().map(|(k, v)| (k.to_string(), v.encode())).collect();
            assert_eq!(got, want, "{name}");
            assert_eq!(encode(&r), text, "{name}: written back byte for byte");
        }
    }

    #[test]
    fn a_format_this_release_does_not_read_is_not_trusted() {
        let h = "ab".repeat(32);
        let explicit = format!("{{\"configmap/c\":\"{h}\",\"format\":\"1\"}}");
        assert_eq!(decode(&explicit).unwrap().len(), 1, "format 1, named, reads too");
        let newer = format!("{{\"configmap/c\":\"{h}\",\"format\":\"2\"}}");
        let e = decode(&newer).unwrap_err();
        assert!(e.contains("record format \"2\"") && e.contains("reads format 1"), "{e}");
    }
}
