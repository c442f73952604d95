//! A workload's reload policy, parsed from its annotations (and its pod template's, as a
//! fallback), as Reloader reads them. Whether one source governs it is `decide::govern`.

use std::collections::BTreeMap;
use std::fmt;

use regex::Regex;

use crate::core::model::keys::{Keys, parse_go_bool};
use crate::core::model::source::SourceKind;

/// A malformed annotation: reported, and the rest of the policy still applies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AnnotationError {
    pub(crate) key: String,
    pub(crate) value: String,
    pub(crate) problem: String,
}

impl fmt::Display for AnnotationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "annotation {:?} = {:?}: {}", self.key, self.value, self.problem)
    }
}

/// Where the policy of one source kind was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    Workload,
    PodTemplate,
}

/// One named-reload pattern, compiled as `^(?:pattern)$`.
#[derive(Clone, Debug)]
pub(crate) struct Pattern {
    pub(crate) raw: String,
    re: Regex,
}

impl Pattern {
    pub(crate) fn is_match(&self, name: &str) -> bool {
        self.re.is_match(name)
    }

    /// Whether the value is also a valid ConfigMap/Secret name (a DNS-1123 subdomain such as
    /// `app-config` or `db.credentials`): such a source can be tracked by that literal name
    /// before it exists, while it still matches as an anchored regex. (`regex::escape` is no
    /// test for this: it escapes `-` and `.`, which every real name is full of.)
    pub(crate) fn is_literal(&self) -> bool {
        is_object_name(&self.raw)
    }
}

/// A DNS-1123 subdomain as Kubernetes validates it: at most 253 characters of `[a-z0-9.-]`,
/// each dot-separated part starting and ending with a letter or digit. ConfigMaps and Secrets
/// are named so.
pub(crate) fn is_object_name(s: &str) -> bool {
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty() && alnum(b[0]) && alnum(b[b.len() - 1]) && b.iter().all(|&c| alnum(c) || c == b'-')
        })
}

/// The policy for one source kind (ConfigMaps or Secrets).
#[derive(Clone, Debug)]
pub(crate) struct KindPolicy {
    pub(crate) origin: Origin,
    pub(crate) named: Vec<Pattern>,
    pub(crate) search: bool,
    /// Generic auto parsed as a bool; `None` when absent or empty.
    pub(crate) auto: Option<bool>,
    /// Typed auto parsed as a bool; `None` when absent or empty.
    pub(crate) typed_auto: Option<bool>,
    /// `--auto-reload-all` applies: both auto keys are absent or empty.
    pub(crate) auto_all: bool,
    pub(crate) exclude: Vec<String>,
}

impl KindPolicy {
    /// A policy that governs nothing: SecretProviderClasses without `--enable-csi-integration`.
    fn inert() -> KindPolicy {
        KindPolicy {
            origin: Origin::Workload,
            named: Vec::new(),
            search: false,
            auto: None,
            typed_auto: None,
            auto_all: false,
            exclude: Vec::new(),
        }
    }
}

/// A workload's whole policy.
#[derive(Clone, Debug)]
pub(crate) struct Policy {
    pub(crate) configmap: KindPolicy,
    pub(crate) secret: KindPolicy,
    pub(crate) secret_provider_class: KindPolicy,
    pub(crate) errors: Vec<AnnotationError>,
}

impl KindPolicy {
    /// Whether this policy can govern anything at all.
    pub(crate) fn is_active(&self) -> bool {
        !self.named.is_empty()
            || self.search
            || self.auto == Some(true)
            || self.typed_auto == Some(true)
            || self.auto_all
    }
}

impl Policy {
    /// Whether the workload is annotated for reloads of any kind of source.
    pub(crate) fn is_active(&self) -> bool {
        self.configmap.is_active() || self.secret.is_active() || self.secret_provider_class.is_active()
    }

    pub(crate) fn for_kind(&self, kind: SourceKind) -> &KindPolicy {
        match kind {
            SourceKind::ConfigMap => &self.configmap,
            SourceKind::Secret => &self.secret,
            SourceKind::SecretProviderClass => &self.secret_provider_class,
        }
    }

    pub(crate) fn has_named(&self) -> bool {
        SourceKind::ALL.iter().any(|k| !self.for_kind(*k).named.is_empty())
    }

    /// Parses the policy from the workload's own annotations and its pod template's.
    pub(crate) fn parse(
        keys: &Keys,
        workload: Option<&BTreeMap<String, String>>,
        template: Option<&BTreeMap<String, String>>,
        auto_reload_all: bool,
    ) -> Policy {
        let mut errors = Vec::new();
        let configmap = parse_kind(keys, SourceKind::ConfigMap, workload, template, auto_reload_all, &mut errors);
        let secret = parse_kind(keys, SourceKind::Secret, workload, template, auto_reload_all, &mut errors);
        let secret_provider_class = if keys.csi {
            parse_kind(keys, SourceKind::SecretProviderClass, workload, template, auto_reload_all, &mut errors)
        } else {
            KindPolicy::inert()
        };
        // The generic auto key is read once per kind: report each problem once.
        let mut seen = Vec::new();
        errors.retain(|e| {
            let new = !seen.contains(e);
            if new {
                seen.push(e.clone());
            }
            new
        });
        Policy { configmap, secret, secret_provider_class, errors }
    }
}

/// Annotations as the policy reads them: only through the keys `Keys::is_policy_key` lists, so
/// that a workload is anchored (`Workload::anchor_digest`) on every annotation its policy is
/// read from. A key read here but not listed there fails every test that reads it.
struct PolicyAnnotations<'a> {
    keys: &'a Keys,
    map: Option<&'a BTreeMap<String, String>>,
}

impl<'a> PolicyAnnotations<'a> {
    fn get(&self, key: &str) -> Option<&'a str> {
        debug_assert!(
            self.keys.is_policy_key(key),
            "the policy reads {key:?}, which Keys::is_policy_key does not list"
        );
        self.map.and_then(|m| m.get(key)).map(String::as_str)
    }
}

fn parse_kind(
    keys: &Keys,
    kind: SourceKind,
    workload: Option<&BTreeMap<String, String>>,
    template: Option<&BTreeMap<String, String>>,
    auto_reload_all: bool,
    errors: &mut Vec<AnnotationError>,
) -> KindPolicy {
    let workload = PolicyAnnotations { keys, map: workload };
    let template = PolicyAnnotations { keys, map: template };
    let four = [keys.named(kind), &keys.search, &keys.auto, keys.typed_auto(kind)];
    // Fallback is all-or-nothing: only when none of the four keys is present on the workload
    // (an empty value counts as present) are they read from the pod template instead.
    let (src, origin) = if four.iter().any(|k| workload.get(k).is_some()) {
        (&workload, Origin::Workload)
    } else {
        (&template, Origin::PodTemplate)
    };
    let get = |k: &str| src.get(k).unwrap_or("");

    let mut parse_bool = |k: &str| -> Option<bool> {
        let v = get(k);
        if v.is_empty() {
            return None;
        }
        match parse_go_bool(v) {
            Some(b) => Some(b),
            None => {
                errors.push(AnnotationError {
                    key: k.to_string(),
                    value: v.to_string(),
                    problem: "not a boolean; use \"true\" or \"false\" (treated as false)".into(),
                });
                Some(false)
            }
        }
    };
    let auto = parse_bool(&keys.auto);
    let typed_auto = parse_bool(keys.typed_auto(kind));
    let auto_all = auto_reload_all && get(&keys.auto).is_empty() && get(keys.typed_auto(kind)).is_empty();

    let mut named = Vec::new();
    let named_key = keys.named(kind);
    for element in get(named_key).split(',').map(str::trim).filter(|e| !e.is_empty()) {
        // Grouped on purpose: `a|b` means "a or b", not Reloader's "starts with a or ends with b".
        // Checked alone first: `a)|(b` is invalid, but would compile once wrapped.
        match Regex::new(element).and_then(|_| Regex::new(&format!("^(?:{element})$"))) {
            Ok(re) => named.push(Pattern { raw: element.to_string(), re }),
            Err(e) => errors.push(AnnotationError {
                key: named_key.to_string(),
                value: element.to_string(),
                problem: format!("invalid regular expression, pattern skipped: {}", one_line(&e.to_string())),
            }),
        }
    }

    let exclude = workload
        .get(Keys::exclude(kind))
        .map(|v| v.split(',').map(str::trim).filter(|e| !e.is_empty()).map(String::from).collect())
        .unwrap_or_default();

    KindPolicy { origin, named, search: get(&keys.search) == "true", auto, typed_auto, auto_all, exclude }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new policy annotation that `Keys::is_policy_key` does not list would be read but not
    /// anchored on; reading it fails loudly instead of silently.
    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "which Keys::is_policy_key does not list")]
    fn the_policy_reads_only_listed_keys() {
        let keys = Keys::default();
        let map = BTreeMap::from([("example.com/new-annotation".to_string(), "true".to_string())]);
        PolicyAnnotations { keys: &keys, map: Some(&map) }.get("example.com/new-annotation");
    }

    #[test]
    fn every_key_the_policy_reads_is_listed() {
        let keys = Keys { csi: true, ..Keys::default() };
        for kind in SourceKind::ALL {
            for k in [keys.named(kind), &keys.search, &keys.auto, keys.typed_auto(kind), Keys::exclude(kind)] {
                assert!(keys.is_policy_key(k), "{k}");
            }
        }
    }
}
