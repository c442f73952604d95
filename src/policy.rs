//! A workload's reload policy, parsed from its annotations, and the decision whether one source
//! governs it. This is Reloader's `ShouldReload` (spec §2), as pure functions.
//!
//! Precedence: resource `ignore` > exclude > named > search > auto > `--auto-reload-all`.

use std::collections::BTreeMap;
use std::fmt;

use regex::Regex;

use crate::source::{SourceInfo, SourceKind};

/// Annotation keys; the overridable ones follow Reloader's flags.
#[derive(Clone, Debug)]
pub struct Keys {
    pub auto: String,
    pub configmap_auto: String,
    pub secret_auto: String,
    pub configmap_reload: String,
    pub secret_reload: String,
    pub search: String,
    pub match_: String,
    pub ignore: String,
    pub pause_period: String,
    pub paused_at: String,
}

impl Default for Keys {
    fn default() -> Self {
        Keys {
            auto: "reloader.stakater.com/auto".into(),
            configmap_auto: "configmap.reloader.stakater.com/auto".into(),
            secret_auto: "secret.reloader.stakater.com/auto".into(),
            configmap_reload: "configmap.reloader.stakater.com/reload".into(),
            secret_reload: "secret.reloader.stakater.com/reload".into(),
            search: "reloader.stakater.com/search".into(),
            match_: "reloader.stakater.com/match".into(),
            ignore: "reloader.stakater.com/ignore".into(),
            pause_period: "deployment.reloader.stakater.com/pause-period".into(),
            paused_at: "deployment.reloader.stakater.com/paused-at".into(),
        }
    }
}

/// Exclude keys are fixed in Reloader (no flag).
pub const CONFIGMAP_EXCLUDE: &str = "configmaps.exclude.reloader.stakater.com/reload";
pub const SECRET_EXCLUDE: &str = "secrets.exclude.reloader.stakater.com/reload";

impl Keys {
    fn typed_auto(&self, kind: SourceKind) -> &str {
        match kind {
            SourceKind::ConfigMap => &self.configmap_auto,
            SourceKind::Secret => &self.secret_auto,
        }
    }
    fn named(&self, kind: SourceKind) -> &str {
        match kind {
            SourceKind::ConfigMap => &self.configmap_reload,
            SourceKind::Secret => &self.secret_reload,
        }
    }
    fn exclude(kind: SourceKind) -> &'static str {
        match kind {
            SourceKind::ConfigMap => CONFIGMAP_EXCLUDE,
            SourceKind::Secret => SECRET_EXCLUDE,
        }
    }

    /// Whether a source's annotations say `match: "true"` / `ignore: "true"` (exact strings).
    pub fn source_flags(&self, annotations: Option<&BTreeMap<String, String>>) -> (bool, bool) {
        let is_true = |k: &str| annotations.and_then(|a| a.get(k)).is_some_and(|v| v == "true");
        (is_true(&self.match_), is_true(&self.ignore))
    }
}

/// A malformed annotation: reported, and the rest of the policy still applies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnotationError {
    pub key: String,
    pub value: String,
    pub problem: String,
}

impl fmt::Display for AnnotationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "annotation {:?} = {:?}: {}", self.key, self.value, self.problem)
    }
}

/// Go's `strconv.ParseBool`.
pub fn parse_go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Where the policy of one source kind was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    Workload,
    PodTemplate,
}

/// One named-reload pattern, compiled as `^(?:pattern)$`.
#[derive(Clone, Debug)]
pub struct Pattern {
    pub raw: String,
    re: Regex,
}

impl Pattern {
    pub fn is_match(&self, name: &str) -> bool {
        self.re.is_match(name)
    }
}

/// The policy for one source kind (ConfigMaps or Secrets).
#[derive(Clone, Debug)]
pub struct KindPolicy {
    pub origin: Origin,
    pub named: Vec<Pattern>,
    pub search: bool,
    /// Generic auto parsed as a bool; `None` when absent or empty.
    pub auto: Option<bool>,
    /// Typed auto parsed as a bool; `None` when absent or empty.
    pub typed_auto: Option<bool>,
    /// `--auto-reload-all` applies: both auto keys are absent or empty.
    pub auto_all: bool,
    pub exclude: Vec<String>,
}

impl KindPolicy {
    /// Whether this policy can govern anything at all.
    pub fn is_active(&self) -> bool {
        !self.named.is_empty() || self.search || self.auto == Some(true) || self.typed_auto == Some(true) || self.auto_all
    }
}

/// A workload's whole policy.
#[derive(Clone, Debug)]
pub struct Policy {
    pub configmap: KindPolicy,
    pub secret: KindPolicy,
    pub errors: Vec<AnnotationError>,
}

impl Policy {
    pub fn for_kind(&self, kind: SourceKind) -> &KindPolicy {
        match kind {
            SourceKind::ConfigMap => &self.configmap,
            SourceKind::Secret => &self.secret,
        }
    }

    pub fn is_active(&self) -> bool {
        self.configmap.is_active() || self.secret.is_active()
    }

    pub fn has_named(&self) -> bool {
        !self.configmap.named.is_empty() || !self.secret.named.is_empty()
    }

    /// Parses the policy from the workload's own annotations and its pod template's.
    pub fn parse(
        keys: &Keys,
        workload: Option<&BTreeMap<String, String>>,
        template: Option<&BTreeMap<String, String>>,
        auto_reload_all: bool,
    ) -> Policy {
        let mut errors = Vec::new();
        let configmap = parse_kind(keys, SourceKind::ConfigMap, workload, template, auto_reload_all, &mut errors);
        let secret = parse_kind(keys, SourceKind::Secret, workload, template, auto_reload_all, &mut errors);
        errors.dedup();
        Policy { configmap, secret, errors }
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
    let empty = BTreeMap::new();
    let workload = workload.unwrap_or(&empty);
    let template = template.unwrap_or(&empty);
    let four = [keys.named(kind), &keys.search, &keys.auto, keys.typed_auto(kind)];
    // Fallback is all-or-nothing: only when none of the four keys is present on the workload
    // (an empty value counts as present) are they read from the pod template instead.
    let (src, origin) = if four.iter().any(|k| workload.contains_key(*k)) {
        (workload, Origin::Workload)
    } else {
        (template, Origin::PodTemplate)
    };
    let get = |k: &str| src.get(k).map(String::as_str).unwrap_or("");

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
        match Regex::new(&format!("^(?:{element})$")) {
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

/// Why a source governs a workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rule {
    /// A named-reload pattern matched the source name.
    Named(String),
    /// Search mode and the source carries `match: "true"`.
    Search,
    /// `reloader.stakater.com/auto: "true"`.
    Auto,
    /// `configmap|secret.reloader.stakater.com/auto: "true"`.
    TypedAuto,
    /// `--auto-reload-all` and no opt-out.
    AutoReloadAll,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Named(p) => write!(f, "named reload pattern {p:?}"),
            Rule::Search => f.write_str("search mode, and the source has match=\"true\""),
            Rule::Auto => f.write_str("auto"),
            Rule::TypedAuto => f.write_str("typed auto"),
            Rule::AutoReloadAll => f.write_str("--auto-reload-all"),
        }
    }
}

/// Why a source does not govern a workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Skip {
    /// The source has `ignore: "true"`.
    Ignored,
    /// The workload's exclude list names it.
    Excluded,
    /// A rule applies only to sources the pod template uses, and it does not use this one.
    NotReferenced(Rule),
    /// No rule selects it.
    NoRule,
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Skip::Ignored => f.write_str("the source has ignore=\"true\""),
            Skip::Excluded => f.write_str("excluded by the workload's exclude annotation"),
            Skip::NotReferenced(r) => write!(f, "{r} applies, but the pod template does not use it"),
            Skip::NoRule => f.write_str("no annotation selects it"),
        }
    }
}

/// Decides whether a source governs a workload. `source` is `None` when the source does not
/// exist (then it has no annotations); `referenced` says whether the pod template uses it.
pub fn decide(policy: &KindPolicy, name: &str, source: Option<&SourceInfo>, referenced: bool) -> Result<Rule, Skip> {
    if source.is_some_and(|s| s.ignored) {
        return Err(Skip::Ignored);
    }
    if policy.exclude.iter().any(|e| e == name) {
        return Err(Skip::Excluded);
    }
    if let Some(p) = policy.named.iter().find(|p| p.is_match(name)) {
        // Named reloads do not require the template to use the source.
        return Ok(Rule::Named(p.raw.clone()));
    }
    let rule = if policy.search && source.is_some_and(|s| s.matched) {
        Rule::Search
    } else if policy.auto == Some(true) {
        Rule::Auto
    } else if policy.typed_auto == Some(true) {
        Rule::TypedAuto
    } else if policy.auto_all {
        Rule::AutoReloadAll
    } else {
        return Err(Skip::NoRule);
    };
    if referenced { Ok(rule) } else { Err(Skip::NotReferenced(rule)) }
}
