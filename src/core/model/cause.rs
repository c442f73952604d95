//! A change's identity: a source at a content. Events, tracking notes, the circuit breaker and
//! `reloader explain` name a change `configmap/app@1a2b3c4d5e6f` (the first 12 hex digits of
//! its content hash, `@deleted` for a deletion); that text is made and read here, and nowhere
//! else.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::core::model::hash::ContentHash;
use crate::core::model::source::SourceRef;

/// The first 6 bytes of a content hash: 12 hex digits, as changes are named.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ShortHash([u8; 6]);

impl ShortHash {
    pub(crate) fn of(h: &ContentHash) -> ShortHash {
        let mut b = [0u8; 6];
        b.copy_from_slice(&h.0[..6]);
        ShortHash(b)
    }

    /// 12 lower- or upper-case hex digits.
    pub(crate) fn parse(s: &str) -> Option<ShortHash> {
        if s.len() != 12 || !s.is_ascii() {
            return None;
        }
        let mut b = [0u8; 6];
        for (i, out) in b.iter_mut().enumerate() {
            *out = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(ShortHash(b))
    }
}

impl fmt::Display for ShortHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// One source change: the source, and the content it changed to (`None`: it was deleted).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Cause {
    pub(crate) source: SourceRef,
    pub(crate) content: Option<ShortHash>,
}

const DELETED: &str = "deleted";

impl Cause {
    pub(crate) fn new(source: SourceRef, hash: Option<ContentHash>) -> Cause {
        Cause { source, content: hash.as_ref().map(ShortHash::of) }
    }

    /// Parses `configmap/app@1a2b3c4d5e6f` or `secret/db@deleted`.
    pub(crate) fn parse(s: &str) -> Option<Cause> {
        let (source, content) = s.rsplit_once('@')?;
        let content = if content == DELETED { None } else { Some(ShortHash::parse(content)?) };
        Some(Cause { source: SourceRef::parse(source)?, content })
    }

    /// The value of the release mark (`breaker::RELEASE_ANNOTATION`) that lifts a hold of this
    /// change alone: its short hash, or `true` for a deletion, which has none.
    pub(crate) fn release_value(&self) -> String {
        self.content.map_or_else(|| "true".to_string(), |h| h.to_string())
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.content {
            Some(h) => write!(f, "{}@{h}", self.source),
            None => write!(f, "{}@{DELETED}", self.source),
        }
    }
}

/// The changes one reload applied, as its tracking note lists them: written as one string,
/// joined with `, ` (a source's name never holds one).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Causes(pub(crate) Vec<Cause>);

impl Causes {
    pub(crate) fn contains(&self, c: &Cause) -> bool {
        self.0.contains(c)
    }

    pub(crate) fn first(&self) -> Option<&Cause> {
        self.0.first()
    }

    pub(crate) fn parse(s: &str) -> Option<Causes> {
        s.split(", ").map(Cause::parse).collect::<Option<Vec<_>>>().map(Causes)
    }
}

impl FromIterator<Cause> for Causes {
    fn from_iter<I: IntoIterator<Item = Cause>>(iter: I) -> Self {
        Causes(iter.into_iter().collect())
    }
}

impl fmt::Display for Causes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, c) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

impl Serialize for Causes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Causes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Causes::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("{s:?} is not a list of source@hash")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::source::SourceKind;

    #[test]
    fn causes_read_back_as_they_are_written() {
        let hash = ContentHash([
            0x1a, 0x2b, 0x3c, 0x4d, 0x5e, 0x6f, 7, 8, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0, 0,
        ]);
        let app = Cause::new(SourceRef::new(SourceKind::ConfigMap, "app.config-1"), Some(hash));
        let gone = Cause::new(SourceRef::new(SourceKind::Secret, "db"), None);
        assert_eq!(app.to_string(), "configmap/app.config-1@1a2b3c4d5e6f");
        assert_eq!(app.to_string(), format!("configmap/app.config-1@{}", hash.short()));
        assert_eq!(gone.to_string(), "secret/db@deleted");
        assert_eq!(app.release_value(), "1a2b3c4d5e6f");
        assert_eq!(gone.release_value(), "true");
        let both = Causes(vec![app.clone(), gone.clone()]);
        assert_eq!(both.to_string(), "configmap/app.config-1@1a2b3c4d5e6f, secret/db@deleted");
        assert_eq!(Causes::parse(&both.to_string()), Some(both.clone()));
        assert_eq!(Cause::parse("configmap/app.config-1@1A2B3C4D5E6F"), Some(app));
        for bad in
            ["configmap/app", "configmap/app@", "configmap/app@1a2b", "pod/x@1a2b3c4d5e6f", "@deleted", "x@é1a2b3c4d5e"]
        {
            assert_eq!(Cause::parse(bad), None, "{bad:?}");
        }
        assert_eq!(Causes::parse("configmap/a@deleted, nonsense"), None);
        let json = serde_json::to_string(&both).unwrap();
        assert_eq!(serde_json::from_str::<Causes>(&json).unwrap(), both);
        assert!(serde_json::from_str::<Causes>("\"not a cause\"").is_err());
    }
}
