//! Whether one source governs a workload, from the workload's parsed policy and the source's
//! flags: the same rules, in the same order, as Reloader's `ShouldReload`.
//!
//! Precedence: resource `ignore` > exclude > named > search > auto > `--auto-reload-all`.

use std::fmt;

use crate::core::model::policy::KindPolicy;
use crate::core::model::source::SourceInfo;

/// Why a source governs a workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Rule {
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
pub(crate) enum Skip {
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

/// Whether a source governs a workload. `source` is `None` when the source does not
/// exist (then it has no annotations); `referenced` says whether the pod template uses it.
pub(crate) fn govern(
    policy: &KindPolicy,
    name: &str,
    source: Option<&SourceInfo>,
    referenced: bool,
) -> Result<Rule, Skip> {
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::core::model::hash::ContentHash;
    use crate::core::model::keys::{
        CONFIGMAP_EXCLUDE, Keys, SECRET_EXCLUDE, SPC_AUTO, SPC_EXCLUDE, SPC_RELOAD, parse_go_bool,
    };
    use crate::core::model::policy::{Origin, Policy, is_object_name};
    use crate::core::model::source::SourceKind;

    const AUTO: &str = "reloader.stakater.com/auto";
    const CM_AUTO: &str = "configmap.reloader.stakater.com/auto";
    const SECRET_AUTO: &str = "secret.reloader.stakater.com/auto";
    const CM_RELOAD: &str = "configmap.reloader.stakater.com/reload";
    const SECRET_RELOAD: &str = "secret.reloader.stakater.com/reload";
    const SEARCH: &str = "reloader.stakater.com/search";
    const MATCH: &str = "reloader.stakater.com/match";
    const IGNORE: &str = "reloader.stakater.com/ignore";
    const PAUSE: &str = "deployment.reloader.stakater.com/pause-period";

    use SourceKind::{ConfigMap as CM, Secret as SEC};

    /// The state of the source being decided on.
    #[derive(Clone, Copy, Debug)]
    enum Src {
        /// It does not exist (no annotations).
        Missing,
        Plain,
        /// `match: "true"`.
        Matched,
        /// `ignore: "true"`.
        Ignored,
        /// Both `match` and `ignore`.
        MatchedIgnored,
    }

    impl Src {
        fn info(self) -> Option<SourceInfo> {
            let mk = |matched, ignored| {
                Some(SourceInfo {
                    hash: ContentHash([7; 32]),
                    matched,
                    ignored,
                    content_rv: None,
                    reloader: Default::default(),
                })
            };
            match self {
                Src::Missing => None,
                Src::Plain => mk(false, false),
                Src::Matched => mk(true, false),
                Src::Ignored => mk(false, true),
                Src::MatchedIgnored => mk(true, true),
            }
        }
    }

    fn mk_ann(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn mk_policy(workload: &[(&str, &str)], template: &[(&str, &str)], auto_reload_all: bool) -> Policy {
        mk_policy_with(&Keys::default(), workload, template, auto_reload_all)
    }

    fn mk_policy_with(keys: &Keys, workload: &[(&str, &str)], template: &[(&str, &str)], all: bool) -> Policy {
        Policy::parse(keys, Some(&mk_ann(workload)), Some(&mk_ann(template)), all)
    }

    fn named(p: &str) -> Result<Rule, Skip> {
        Ok(Rule::Named(p.to_string()))
    }

    fn not_referenced(r: Rule) -> Result<Rule, Skip> {
        Err(Skip::NotReferenced(r))
    }

    /// One `decide` row: a workload's policy, one source, and the decision expected for it.
    struct DecideCase {
        name: &'static str,
        workload: &'static [(&'static str, &'static str)],
        template: &'static [(&'static str, &'static str)],
        auto_reload_all: bool,
        kind: SourceKind,
        source: &'static str,
        state: Src,
        referenced: bool,
        want: Result<Rule, Skip>,
        /// Where the policy must have been read from, when the row says.
        origin: Option<Origin>,
    }

    impl DecideCase {
        /// The policy must have been read from the workload or from its pod template.
        fn read_from(self, origin: Origin) -> DecideCase {
            DecideCase { origin: Some(origin), ..self }
        }
    }

    /// A `decide` row in the making: its name, the source's kind and state, and the settings
    /// that differ from the defaults (no pod-template annotations, no `--auto-reload-all`, the
    /// source is named "app" and the pod template uses it). [`Row::is`] completes it.
    struct Row {
        name: &'static str,
        kind: SourceKind,
        state: Src,
        template: &'static [(&'static str, &'static str)],
        auto_reload_all: bool,
        source: &'static str,
        referenced: bool,
    }

    fn row(name: &'static str, kind: SourceKind, state: Src) -> Row {
        Row { name, kind, state, template: &[], auto_reload_all: false, source: "app", referenced: true }
    }

    impl Row {
        /// The pod template carries these annotations.
        fn template(self, template: &'static [(&'static str, &'static str)]) -> Row {
            Row { template, ..self }
        }
        /// The source has this name instead of "app".
        fn source(self, source: &'static str) -> Row {
            Row { source, ..self }
        }
        /// The controller runs with `--auto-reload-all`.
        fn auto_reload_all(self) -> Row {
            Row { auto_reload_all: true, ..self }
        }
        /// The pod template does not use the source.
        fn unreferenced(self) -> Row {
            Row { referenced: false, ..self }
        }
        /// The workload's own annotations, and the decision expected.
        fn is(self, workload: &'static [(&'static str, &'static str)], want: Result<Rule, Skip>) -> DecideCase {
            let Row { name, kind, state, template, auto_reload_all, source, referenced } = self;
            DecideCase {
                name,
                workload,
                template,
                auto_reload_all,
                kind,
                source,
                state,
                referenced,
                want,
                origin: None,
            }
        }
    }

    fn run_decide(keys: &Keys, cases: &[DecideCase]) {
        for c in cases {
            let p = mk_policy_with(keys, c.workload, c.template, c.auto_reload_all);
            let info = c.state.info();
            let got = govern(p.for_kind(c.kind), c.source, info.as_ref(), c.referenced);
            assert_eq!(got, c.want, "row {:?}: policy {:?}", c.name, p.for_kind(c.kind));
            if let Some(origin) = c.origin {
                assert_eq!(p.for_kind(c.kind).origin, origin, "row {:?}: origin", c.name);
            }
        }
    }

    #[test]
    fn decide_precedence_table() {
        let cases = [
            // --- resource ignore beats everything ---
            row("ignore beats named", CM, Src::Ignored).is(&[(CM_RELOAD, "app")], Err(Skip::Ignored)),
            row("ignore beats exclude", CM, Src::Ignored)
                .is(&[(CONFIGMAP_EXCLUDE, "app"), (AUTO, "true")], Err(Skip::Ignored)),
            row("ignore beats search with match", CM, Src::MatchedIgnored).is(&[(SEARCH, "true")], Err(Skip::Ignored)),
            row("ignore beats auto", SEC, Src::Ignored).is(&[(AUTO, "true")], Err(Skip::Ignored)),
            row("ignore beats auto-reload-all", SEC, Src::Ignored).auto_reload_all().is(&[], Err(Skip::Ignored)),
            // --- exclude beats named, search, auto, typed auto, auto-all ---
            row("exclude beats named", CM, Src::Plain)
                .is(&[(CM_RELOAD, "app"), (CONFIGMAP_EXCLUDE, "app")], Err(Skip::Excluded)),
            row("exclude beats search", CM, Src::Matched)
                .is(&[(SEARCH, "true"), (CONFIGMAP_EXCLUDE, "app")], Err(Skip::Excluded)),
            row("exclude beats auto", SEC, Src::Plain)
                .is(&[(AUTO, "true"), (SECRET_EXCLUDE, "app")], Err(Skip::Excluded)),
            row("exclude beats typed auto", CM, Src::Plain)
                .is(&[(CM_AUTO, "true"), (CONFIGMAP_EXCLUDE, "app")], Err(Skip::Excluded)),
            row("exclude beats auto-reload-all", CM, Src::Plain)
                .auto_reload_all()
                .is(&[(CONFIGMAP_EXCLUDE, "app")], Err(Skip::Excluded)),
            row("exclude applies to a missing source too", CM, Src::Missing)
                .unreferenced()
                .is(&[(CM_RELOAD, "app"), (CONFIGMAP_EXCLUDE, "app")], Err(Skip::Excluded)),
            row("exclude comma list is trimmed", CM, Src::Plain)
                .is(&[(AUTO, "true"), (CONFIGMAP_EXCLUDE, " other ,  app , x")], Err(Skip::Excluded)),
            row("exclude is exact match, not a regex", CM, Src::Plain)
                .is(&[(AUTO, "true"), (CONFIGMAP_EXCLUDE, "ap.*")], Ok(Rule::Auto)),
            row("exclude is exact match, not a prefix", CM, Src::Plain)
                .source("app-2")
                .is(&[(AUTO, "true"), (CONFIGMAP_EXCLUDE, "app")], Ok(Rule::Auto)),
            row("exclude is exact match, not a substring", CM, Src::Plain)
                .is(&[(AUTO, "true"), (CONFIGMAP_EXCLUDE, "my-app-config")], Ok(Rule::Auto)),
            row("secrets exclude does not apply to ConfigMaps", CM, Src::Plain)
                .is(&[(AUTO, "true"), (SECRET_EXCLUDE, "app")], Ok(Rule::Auto)),
            row("configmaps exclude does not apply to Secrets", SEC, Src::Plain)
                .is(&[(AUTO, "true"), (CONFIGMAP_EXCLUDE, "app")], Ok(Rule::Auto)),
            row("empty exclude excludes nothing", CM, Src::Plain)
                .is(&[(AUTO, "true"), (CONFIGMAP_EXCLUDE, "")], Ok(Rule::Auto)),
            row("exclude with only commas and blanks excludes nothing", CM, Src::Plain)
                .is(&[(AUTO, "true"), (CONFIGMAP_EXCLUDE, " , ,")], Ok(Rule::Auto)),
            row("exclude on the pod template is never read", CM, Src::Plain)
                .template(&[(AUTO, "true"), (CONFIGMAP_EXCLUDE, "app")])
                .is(&[], Ok(Rule::Auto)),
            row("exclude on the workload applies to a policy read from the template", CM, Src::Plain)
                .template(&[(AUTO, "true")])
                .is(&[(CONFIGMAP_EXCLUDE, "app")], Err(Skip::Excluded)),
            // --- named ---
            row("named wins over auto false", CM, Src::Plain).is(&[(AUTO, "false"), (CM_RELOAD, "app")], named("app")),
            row("named wins over typed auto false", SEC, Src::Plain)
                .source("db")
                .auto_reload_all()
                .is(&[(SECRET_AUTO, "false"), (SECRET_RELOAD, "db")], named("db")),
            row("named does not need a reference", CM, Src::Plain)
                .unreferenced()
                .is(&[(CM_RELOAD, "app")], named("app")),
            row("named governs a source that does not exist", CM, Src::Missing)
                .unreferenced()
                .is(&[(CM_RELOAD, "app")], named("app")),
            row("named wins over search with match", CM, Src::Matched)
                .is(&[(SEARCH, "true"), (CM_RELOAD, "app")], named("app")),
            row("named wins over auto true", CM, Src::Plain).is(&[(AUTO, "true"), (CM_RELOAD, "app")], named("app")),
            row("named that does not match falls through to auto", CM, Src::Plain)
                .is(&[(AUTO, "true"), (CM_RELOAD, "other")], Ok(Rule::Auto)),
            row("named that does not match and no other rule", CM, Src::Plain)
                .is(&[(CM_RELOAD, "other")], Err(Skip::NoRule)),
            row("secret named key does not apply to ConfigMaps", CM, Src::Plain)
                .is(&[(SECRET_RELOAD, "app")], Err(Skip::NoRule)),
            row("configmap named key does not apply to Secrets", SEC, Src::Plain)
                .is(&[(CM_RELOAD, "app")], Err(Skip::NoRule)),
            // --- search ---
            row("search with match and reference", CM, Src::Matched).is(&[(SEARCH, "true")], Ok(Rule::Search)),
            row("search applies to Secrets too", SEC, Src::Matched).is(&[(SEARCH, "true")], Ok(Rule::Search)),
            row("search with match but no reference", CM, Src::Matched)
                .unreferenced()
                .is(&[(SEARCH, "true")], not_referenced(Rule::Search)),
            row("search without match, no auto", CM, Src::Plain).is(&[(SEARCH, "true")], Err(Skip::NoRule)),
            row("search without match falls through to auto", CM, Src::Plain)
                .is(&[(SEARCH, "true"), (AUTO, "true")], Ok(Rule::Auto)),
            row("search without match falls through to typed auto", CM, Src::Plain)
                .is(&[(SEARCH, "true"), (CM_AUTO, "true")], Ok(Rule::TypedAuto)),
            row("search without match falls through to auto-reload-all", CM, Src::Plain)
                .auto_reload_all()
                .is(&[(SEARCH, "true")], Ok(Rule::AutoReloadAll)),
            row("search on a missing source (no annotations) has no match", CM, Src::Missing)
                .is(&[(SEARCH, "true")], Err(Skip::NoRule)),
            row("search with match wins over auto", CM, Src::Matched)
                .is(&[(SEARCH, "true"), (AUTO, "true")], Ok(Rule::Search)),
            row("search must be exactly \"true\" (\"True\" is off)", CM, Src::Matched)
                .is(&[(SEARCH, "True")], Err(Skip::NoRule)),
            row("search must be exactly \"true\" (\"1\" is off)", CM, Src::Matched)
                .is(&[(SEARCH, "1")], Err(Skip::NoRule)),
            row("match on the source without search on the workload", CM, Src::Matched).is(&[], Err(Skip::NoRule)),
            // --- auto ---
            row("auto with reference", CM, Src::Plain).is(&[(AUTO, "true")], Ok(Rule::Auto)),
            row("auto applies to Secrets", SEC, Src::Plain).is(&[(AUTO, "true")], Ok(Rule::Auto)),
            row("auto without reference", CM, Src::Plain)
                .unreferenced()
                .is(&[(AUTO, "true")], not_referenced(Rule::Auto)),
            row("auto on a missing but referenced source", CM, Src::Missing).is(&[(AUTO, "true")], Ok(Rule::Auto)),
            row("auto beats typed auto", CM, Src::Plain).is(&[(AUTO, "true"), (CM_AUTO, "true")], Ok(Rule::Auto)),
            row("auto false does not stop typed auto true (OR)", CM, Src::Plain)
                .is(&[(AUTO, "false"), (CM_AUTO, "true")], Ok(Rule::TypedAuto)),
            row("typed auto false does not stop auto true (OR)", CM, Src::Plain)
                .is(&[(AUTO, "true"), (CM_AUTO, "false")], Ok(Rule::Auto)),
            row("auto false alone", CM, Src::Plain).is(&[(AUTO, "false")], Err(Skip::NoRule)),
            // --- typed auto ---
            row("configmap typed auto for a ConfigMap", CM, Src::Plain).is(&[(CM_AUTO, "true")], Ok(Rule::TypedAuto)),
            row("configmap typed auto without reference", CM, Src::Plain)
                .unreferenced()
                .is(&[(CM_AUTO, "true")], not_referenced(Rule::TypedAuto)),
            row("configmap typed auto does not apply to Secrets", SEC, Src::Plain)
                .is(&[(CM_AUTO, "true")], Err(Skip::NoRule)),
            row("secret typed auto for a Secret", SEC, Src::Plain).is(&[(SECRET_AUTO, "true")], Ok(Rule::TypedAuto)),
            row("secret typed auto does not apply to ConfigMaps", CM, Src::Plain)
                .is(&[(SECRET_AUTO, "true")], Err(Skip::NoRule)),
            row("typed auto beats auto-reload-all", CM, Src::Plain)
                .auto_reload_all()
                .is(&[(CM_AUTO, "true")], Ok(Rule::TypedAuto)),
            // --- --auto-reload-all ---
            row("auto-reload-all on an annotation-less workload", CM, Src::Plain)
                .auto_reload_all()
                .is(&[], Ok(Rule::AutoReloadAll)),
            row("auto-reload-all for Secrets", SEC, Src::Plain).auto_reload_all().is(&[], Ok(Rule::AutoReloadAll)),
            row("auto-reload-all requires a reference", CM, Src::Plain)
                .auto_reload_all()
                .unreferenced()
                .is(&[], not_referenced(Rule::AutoReloadAll)),
            row("without the flag an annotation-less workload is not governed", CM, Src::Plain)
                .is(&[], Err(Skip::NoRule)),
            row("auto true with auto-reload-all reports auto", CM, Src::Plain)
                .auto_reload_all()
                .is(&[(AUTO, "true")], Ok(Rule::Auto)),
            row("auto-reload-all: auto false blocks ConfigMaps", CM, Src::Plain)
                .auto_reload_all()
                .is(&[(AUTO, "false")], Err(Skip::NoRule)),
            row("auto-reload-all: auto false blocks Secrets", SEC, Src::Plain)
                .auto_reload_all()
                .is(&[(AUTO, "false")], Err(Skip::NoRule)),
            row("auto-reload-all: configmap auto false blocks ConfigMaps", CM, Src::Plain)
                .auto_reload_all()
                .is(&[(CM_AUTO, "false")], Err(Skip::NoRule)),
            row("auto-reload-all: configmap auto false does not block Secrets", SEC, Src::Plain)
                .auto_reload_all()
                .is(&[(CM_AUTO, "false")], Ok(Rule::AutoReloadAll)),
            row("auto-reload-all: secret auto false blocks Secrets", SEC, Src::Plain)
                .auto_reload_all()
                .is(&[(SECRET_AUTO, "false")], Err(Skip::NoRule)),
            row("auto-reload-all: secret auto false does not block ConfigMaps", CM, Src::Plain)
                .auto_reload_all()
                .is(&[(SECRET_AUTO, "false")], Ok(Rule::AutoReloadAll)),
            row("auto-reload-all: auto \"yes\" blocks ConfigMaps", CM, Src::Plain)
                .auto_reload_all()
                .is(&[(AUTO, "yes")], Err(Skip::NoRule)),
            row("auto-reload-all: auto \"yes\" blocks Secrets", SEC, Src::Plain)
                .auto_reload_all()
                .is(&[(AUTO, "yes")], Err(Skip::NoRule)),
            row("auto-reload-all: configmap auto \"yes\" blocks only ConfigMaps", CM, Src::Plain)
                .auto_reload_all()
                .is(&[(CM_AUTO, "yes")], Err(Skip::NoRule)),
            row("auto-reload-all: configmap auto \"yes\" leaves Secrets", SEC, Src::Plain)
                .auto_reload_all()
                .is(&[(CM_AUTO, "yes")], Ok(Rule::AutoReloadAll)),
            row("auto-reload-all: empty auto value does not block", CM, Src::Plain)
                .auto_reload_all()
                .is(&[(AUTO, "")], Ok(Rule::AutoReloadAll)),
            row("auto-reload-all: empty typed auto value does not block", SEC, Src::Plain)
                .auto_reload_all()
                .is(&[(SECRET_AUTO, "")], Ok(Rule::AutoReloadAll)),
            row("auto-reload-all: auto false on the pod template blocks (fallback)", CM, Src::Plain)
                .template(&[(AUTO, "false")])
                .auto_reload_all()
                .is(&[], Err(Skip::NoRule)),
            row("auto-reload-all: template auto false ignored when workload has a key of the four", CM, Src::Plain)
                .template(&[(AUTO, "false")])
                .auto_reload_all()
                .is(&[(SEARCH, "")], Ok(Rule::AutoReloadAll)),
            row("auto-reload-all: non-policy annotations do not block", CM, Src::Plain)
                .auto_reload_all()
                .is(&[(PAUSE, "5m"), ("app.kubernetes.io/name", "web")], Ok(Rule::AutoReloadAll)),
        ];
        run_decide(&Keys::default(), &cases);
    }

    #[test]
    fn parse_bool_forms_table() {
        struct Case {
            name: &'static str,
            value: &'static str,
            want: Option<bool>,
        }
        let cases = [
            Case { name: "1", value: "1", want: Some(true) },
            Case { name: "t", value: "t", want: Some(true) },
            Case { name: "T", value: "T", want: Some(true) },
            Case { name: "TRUE", value: "TRUE", want: Some(true) },
            Case { name: "true", value: "true", want: Some(true) },
            Case { name: "True", value: "True", want: Some(true) },
            Case { name: "0", value: "0", want: Some(false) },
            Case { name: "f", value: "f", want: Some(false) },
            Case { name: "F", value: "F", want: Some(false) },
            Case { name: "FALSE", value: "FALSE", want: Some(false) },
            Case { name: "false", value: "false", want: Some(false) },
            Case { name: "False", value: "False", want: Some(false) },
            Case { name: "yes is not a bool", value: "yes", want: None },
            Case { name: "no is not a bool", value: "no", want: None },
            Case { name: "mixed case tRUE", value: "tRUE", want: None },
            Case { name: "mixed case TRue", value: "TRue", want: None },
            Case { name: "leading space", value: " true", want: None },
            Case { name: "trailing space", value: "true ", want: None },
            Case { name: "2", value: "2", want: None },
            Case { name: "on", value: "on", want: None },
            Case { name: "y", value: "y", want: None },
        ];
        for c in &cases {
            assert_eq!(parse_go_bool(c.value), c.want, "row {:?}: parse_go_bool", c.name);

            // The same value on the generic and on the typed auto key, through the full policy.
            for key in [AUTO, CM_AUTO] {
                for auto_reload_all in [false, true] {
                    let p = mk_policy(&[(key, c.value)], &[], auto_reload_all);
                    let info = Src::Plain.info();
                    let got = govern(&p.configmap, "app", info.as_ref(), true);
                    let want = match c.want {
                        Some(true) if key == AUTO => Ok(Rule::Auto),
                        Some(true) => Ok(Rule::TypedAuto),
                        // false and non-bool values both opt out, even of --auto-reload-all.
                        _ => Err(Skip::NoRule),
                    };
                    assert_eq!(got, want, "row {:?}: {key}={:?} auto_reload_all={auto_reload_all}", c.name, c.value);
                    let want_errors = if c.want.is_none() { 1 } else { 0 };
                    assert_eq!(
                        p.errors.iter().filter(|e| e.key == key).count(),
                        want_errors,
                        "row {:?}: {key}={:?} errors {:?}",
                        c.name,
                        c.value,
                        p.errors
                    );
                }
            }
        }
    }

    #[test]
    fn invalid_bool_annotation_error_table() {
        /// Decided with `--auto-reload-all`, for a ConfigMap and a Secret both named "app".
        struct Case {
            name: &'static str,
            workload: &'static [(&'static str, &'static str)],
            template: &'static [(&'static str, &'static str)],
            /// (key, value) of every expected error.
            want_errors: &'static [(&'static str, &'static str)],
            want_cm: Result<Rule, Skip>,
            want_secret: Result<Rule, Skip>,
        }
        /// A row in the making: no pod-template annotations and no errors expected unless said.
        struct Given(Case);
        fn row(name: &'static str, workload: &'static [(&'static str, &'static str)]) -> Given {
            let (template, want_errors, want) = (&[], &[], Err(Skip::NoRule));
            Given(Case { name, workload, template, want_errors, want_cm: want.clone(), want_secret: want })
        }
        impl Given {
            fn template(self, template: &'static [(&'static str, &'static str)]) -> Given {
                Given(Case { template, ..self.0 })
            }
            fn errors(self, want_errors: &'static [(&'static str, &'static str)]) -> Given {
                Given(Case { want_errors, ..self.0 })
            }
            /// The decisions expected for the ConfigMap and for the Secret.
            fn is(self, want_cm: Result<Rule, Skip>, want_secret: Result<Rule, Skip>) -> Case {
                Case { want_cm, want_secret, ..self.0 }
            }
        }
        let cases = [
            row("auto yes blocks both kinds, one error", &[(AUTO, "yes")])
                .errors(&[(AUTO, "yes")])
                .is(Err(Skip::NoRule), Err(Skip::NoRule)),
            row("configmap auto yes blocks ConfigMaps only", &[(CM_AUTO, "yes")])
                .errors(&[(CM_AUTO, "yes")])
                .is(Err(Skip::NoRule), Ok(Rule::AutoReloadAll)),
            row("secret auto enabled blocks Secrets only", &[(SECRET_AUTO, "enabled")])
                .errors(&[(SECRET_AUTO, "enabled")])
                .is(Ok(Rule::AutoReloadAll), Err(Skip::NoRule)),
            row("auto yes on the pod template (fallback) is reported too", &[])
                .template(&[(AUTO, "yes")])
                .errors(&[(AUTO, "yes")])
                .is(Err(Skip::NoRule), Err(Skip::NoRule)),
            row("a bad auto value does not stop a valid typed auto", &[(AUTO, "yes"), (SECRET_AUTO, "true")])
                .errors(&[(AUTO, "yes")])
                .is(Err(Skip::NoRule), Ok(Rule::TypedAuto)),
            row("valid values produce no error", &[(AUTO, "False"), (CM_AUTO, "T")])
                .is(Ok(Rule::TypedAuto), Err(Skip::NoRule)),
            row("empty values produce no error", &[(AUTO, ""), (CM_AUTO, ""), (SECRET_AUTO, "")])
                .is(Ok(Rule::AutoReloadAll), Ok(Rule::AutoReloadAll)),
        ];
        for c in &cases {
            let p = mk_policy(c.workload, c.template, true);
            let info = Src::Plain.info();
            assert_eq!(govern(&p.configmap, "app", info.as_ref(), true), c.want_cm, "row {:?}: ConfigMap", c.name);
            assert_eq!(govern(&p.secret, "app", info.as_ref(), true), c.want_secret, "row {:?}: Secret", c.name);
            let mut got: Vec<(&str, &str)> = p.errors.iter().map(|e| (e.key.as_str(), e.value.as_str())).collect();
            got.sort();
            got.dedup();
            let mut want = c.want_errors.to_vec();
            want.sort();
            assert_eq!(got, want, "row {:?}: errors {:?}", c.name, p.errors);
            for e in &p.errors {
                assert!(!e.problem.is_empty(), "row {:?}: error without a problem: {e:?}", c.name);
                assert!(e.to_string().contains(&e.key), "row {:?}: Display names the key: {e}", c.name);
            }
        }
    }

    #[test]
    fn pod_template_fallback_table() {
        let cases = [
            row("nothing on the workload: auto read from the template", CM, Src::Plain)
                .template(&[(AUTO, "true")])
                .is(&[], Ok(Rule::Auto))
                .read_from(Origin::PodTemplate),
            row("nothing on the workload: named read from the template", CM, Src::Plain)
                .template(&[(CM_RELOAD, "app")])
                .is(&[], named("app"))
                .read_from(Origin::PodTemplate),
            row("nothing on the workload: typed auto read from the template", SEC, Src::Plain)
                .template(&[(SECRET_AUTO, "true")])
                .is(&[], Ok(Rule::TypedAuto))
                .read_from(Origin::PodTemplate),
            row("nothing on the workload: search read from the template", CM, Src::Matched)
                .template(&[(SEARCH, "true")])
                .is(&[], Ok(Rule::Search))
                .read_from(Origin::PodTemplate),
            row("auto on the workload: template named key not read", CM, Src::Plain)
                .template(&[(CM_RELOAD, "other")])
                .source("other")
                .is(&[(AUTO, "true")], Ok(Rule::Auto))
                .read_from(Origin::Workload),
            row("empty auto on the workload counts as present", CM, Src::Plain)
                .template(&[(AUTO, "true")])
                .is(&[(AUTO, "")], Err(Skip::NoRule))
                .read_from(Origin::Workload),
            row("empty search on the workload counts as present", SEC, Src::Plain)
                .template(&[(AUTO, "true")])
                .is(&[(SEARCH, "")], Err(Skip::NoRule))
                .read_from(Origin::Workload),
            row("empty named key of this type on the workload counts as present", CM, Src::Plain)
                .template(&[(AUTO, "true")])
                .is(&[(CM_RELOAD, "")], Err(Skip::NoRule))
                .read_from(Origin::Workload),
            row("empty typed auto of this type on the workload counts as present", CM, Src::Plain)
                .template(&[(AUTO, "true")])
                .is(&[(CM_AUTO, "")], Err(Skip::NoRule))
                .read_from(Origin::Workload),
            row("all or nothing: workload named + template auto are not mixed", CM, Src::Plain)
                .template(&[(AUTO, "true")])
                .is(&[(CM_RELOAD, "other")], Err(Skip::NoRule))
                .read_from(Origin::Workload),
            row("all or nothing: workload auto false + template named are not mixed", CM, Src::Plain)
                .template(&[(CM_RELOAD, "app")])
                .is(&[(AUTO, "false")], Err(Skip::NoRule))
                .read_from(Origin::Workload),
            row("all or nothing: workload search + template auto are not mixed", CM, Src::Plain)
                .template(&[(AUTO, "true")])
                .is(&[(SEARCH, "true")], Err(Skip::NoRule))
                .read_from(Origin::Workload),
            row("per kind: secret named on the workload, ConfigMap named read from the template", CM, Src::Plain)
                .template(&[(CM_RELOAD, "app")])
                .is(&[(SECRET_RELOAD, "db")], named("app"))
                .read_from(Origin::PodTemplate),
            row("per kind: secret named on the workload, Secrets read from the workload", SEC, Src::Plain)
                .template(&[(CM_RELOAD, "app"), (SECRET_RELOAD, "other")])
                .source("db")
                .is(&[(SECRET_RELOAD, "db")], named("db"))
                .read_from(Origin::Workload),
            row("per kind: template's secret named key is not mixed in", SEC, Src::Plain)
                .template(&[(CM_RELOAD, "app"), (SECRET_RELOAD, "other")])
                .source("other")
                .is(&[(SECRET_RELOAD, "db")], Err(Skip::NoRule))
                .read_from(Origin::Workload),
            row("per kind: secret named on the workload, template auto applies to ConfigMaps", CM, Src::Plain)
                .template(&[(AUTO, "true")])
                .is(&[(SECRET_RELOAD, "db")], Ok(Rule::Auto))
                .read_from(Origin::PodTemplate),
            row("per kind: secret named on the workload, template auto not applied to Secrets", SEC, Src::Plain)
                .template(&[(AUTO, "true")])
                .is(&[(SECRET_RELOAD, "db")], Err(Skip::NoRule))
                .read_from(Origin::Workload),
            row("per kind: configmap typed auto on the workload, Secrets read from the template", SEC, Src::Plain)
                .template(&[(SECRET_AUTO, "true")])
                .is(&[(CM_AUTO, "true")], Ok(Rule::TypedAuto))
                .read_from(Origin::PodTemplate),
            row("generic auto on the workload stops fallback for both kinds", SEC, Src::Plain)
                .template(&[(SECRET_AUTO, "true")])
                .is(&[(AUTO, "false")], Err(Skip::NoRule))
                .read_from(Origin::Workload),
            row("exclude on the workload does not stop fallback", SEC, Src::Plain)
                .template(&[(AUTO, "true")])
                .is(&[(SECRET_EXCLUDE, "other")], Ok(Rule::Auto))
                .read_from(Origin::PodTemplate),
            row("pause-period and unrelated annotations do not stop fallback", CM, Src::Plain)
                .template(&[(CM_AUTO, "true")])
                .is(&[(PAUSE, "5m"), ("team", "a")], Ok(Rule::TypedAuto))
                .read_from(Origin::PodTemplate),
            row("match/ignore on the workload are not policy keys", CM, Src::Plain)
                .template(&[(AUTO, "true")])
                .is(&[(MATCH, "true"), (IGNORE, "true")], Ok(Rule::Auto))
                .read_from(Origin::PodTemplate),
            row("exclude on the template only is never read", CM, Src::Plain)
                .template(&[(CM_RELOAD, "app"), (CONFIGMAP_EXCLUDE, "app")])
                .is(&[], named("app"))
                .read_from(Origin::PodTemplate),
        ];
        for c in &cases {
            let p = mk_policy(c.workload, c.template, c.auto_reload_all);
            let kp = p.for_kind(c.kind);
            assert_eq!(Some(kp.origin), c.origin, "row {:?}: origin", c.name);
            let info = c.state.info();
            assert_eq!(govern(kp, c.source, info.as_ref(), c.referenced), c.want, "row {:?}: decide {kp:?}", c.name);
            if c.template.iter().all(|(k, _)| !k.contains("exclude")) {
                continue;
            }
            assert!(kp.exclude.is_empty(), "row {:?}: exclude read from the template: {:?}", c.name, kp.exclude);
        }
    }

    #[test]
    fn pod_template_fallback_with_absent_annotation_maps() {
        struct Case {
            name: &'static str,
            workload: Option<BTreeMap<String, String>>,
            template: Option<BTreeMap<String, String>>,
            want_origin: Origin,
            want: Result<Rule, Skip>,
        }
        let cases = [
            Case {
                name: "no annotations anywhere",
                workload: None,
                template: None,
                want_origin: Origin::PodTemplate,
                want: Err(Skip::NoRule),
            },
            Case {
                name: "no workload annotations, template auto",
                workload: None,
                template: Some(mk_ann(&[(AUTO, "true")])),
                want_origin: Origin::PodTemplate,
                want: Ok(Rule::Auto),
            },
            Case {
                name: "workload auto, no template annotations",
                workload: Some(mk_ann(&[(AUTO, "true")])),
                template: None,
                want_origin: Origin::Workload,
                want: Ok(Rule::Auto),
            },
        ];
        for c in &cases {
            let p = Policy::parse(&Keys::default(), c.workload.as_ref(), c.template.as_ref(), false);
            assert_eq!(p.configmap.origin, c.want_origin, "row {:?}: origin", c.name);
            let info = Src::Plain.info();
            assert_eq!(govern(&p.configmap, "app", info.as_ref(), true), c.want, "row {:?}", c.name);
            assert!(p.errors.is_empty(), "row {:?}: {:?}", c.name, p.errors);
        }
    }

    #[test]
    fn named_pattern_table() {
        struct Case {
            name: &'static str,
            value: &'static str,
            source: &'static str,
            /// The raw pattern expected to match, or `None` for no match.
            want: Option<&'static str>,
            /// Values of the expected AnnotationErrors on the named key.
            want_errors: &'static [&'static str],
        }
        fn row(
            name: &'static str,
            value: &'static str,
            source: &'static str,
            want: Option<&'static str>,
            want_errors: &'static [&'static str],
        ) -> Case {
            Case { name, value, source, want, want_errors }
        }
        let cases = [
            row("single literal matches", "app", "app", Some("app"), &[]),
            row("anchored at the end", "app", "app-2", None, &[]),
            row("anchored at the start", "app", "my-app", None, &[]),
            row("case sensitive", "app", "App", None, &[]),
            row("comma list, first", "a,b,c", "a", Some("a"), &[]),
            row("comma list, middle", "a,b,c", "b", Some("b"), &[]),
            row("comma list, last", "a,b,c", "c", Some("c"), &[]),
            row("comma list, none", "a,b,c", "d", None, &[]),
            row("whitespace trimmed around elements", "  one ,\tapp  , two", "app", Some("app"), &[]),
            row("whitespace trimmed, single", " app ", "app", Some("app"), &[]),
            row("whitespace is not part of the name", "app, other", " other", None, &[]),
            row("alternation: a|b matches a", "a|b", "a", Some("a|b"), &[]),
            row("alternation: a|b matches b", "a|b", "b", Some("a|b"), &[]),
            row("alternation grouped: a|b does not match abc (starts with a)", "a|b", "abc", None, &[]),
            row("alternation grouped: a|b does not match xb (ends with b)", "a|b", "xb", None, &[]),
            row("alternation grouped: a|b does not match ab", "a|b", "ab", None, &[]),
            row("alternation grouped: app|db does not match app-config", "app|db", "app-config", None, &[]),
            row("regex feature-.* matches feature-x", "feature-.*", "feature-x", Some("feature-.*"), &[]),
            row("regex feature-.* matches feature- (empty tail)", "feature-.*", "feature-", Some("feature-.*"), &[]),
            row("regex feature-.* is anchored at the start", "feature-.*", "my-feature-x", None, &[]),
            row("regex in a list with literals", "app-config, feature-.*", "feature-flags", Some("feature-.*"), &[]),
            row("regex character class", "cfg-[0-9]+", "cfg-42", Some("cfg-[0-9]+"), &[]),
            row("regex character class does not match letters", "cfg-[0-9]+", "cfg-x", None, &[]),
            row("a dot is a regex wildcard", "app.config", "app-config", Some("app.config"), &[]),
            row("the first matching element is reported", "a.*, abc", "abc", Some("a.*"), &[]),
            row("invalid regex alone is skipped with an error", "(", "(", None, &["("]),
            row("invalid regex skipped, valid element after it still works", "(, app", "app", Some("app"), &["("]),
            row(
                "invalid regex skipped, valid element before it still works",
                "app, [z-a]",
                "app",
                Some("app"),
                &["[z-a]"],
            ),
            row("two invalid elements, two errors", "(, app, *", "app", Some("app"), &["(", "*"]),
            row("empty elements ignored", ",, app,,", "app", Some("app"), &[]),
            row("only commas and blanks", " , ,", "app", None, &[]),
            row("empty value", "", "app", None, &[]),
        ];
        for c in &cases {
            for (kind, key) in [(CM, CM_RELOAD), (SEC, SECRET_RELOAD)] {
                let p = mk_policy(&[(key, c.value)], &[], false);
                let info = Src::Plain.info();
                let got = govern(p.for_kind(kind), c.source, info.as_ref(), false);
                let want = match c.want {
                    Some(raw) => named(raw),
                    None => Err(Skip::NoRule),
                };
                assert_eq!(got, want, "row {:?}: {key}={:?} vs {:?}", c.name, c.value, c.source);
                let errs: Vec<&str> = p.errors.iter().map(|e| e.value.as_str()).collect();
                assert_eq!(errs, c.want_errors, "row {:?}: {key} errors {:?}", c.name, p.errors);
                for e in &p.errors {
                    assert_eq!(e.key, key, "row {:?}: error key", c.name);
                    assert!(!e.problem.contains('\n'), "row {:?}: multi-line problem {:?}", c.name, e.problem);
                }
                // The other kind is untouched.
                let other = match kind {
                    CM => &p.secret,
                    _ => &p.configmap,
                };
                assert!(other.named.is_empty(), "row {:?}: {key} leaked into the other kind", c.name);
            }
        }
    }

    /// SecretProviderClasses follow the same rules with their own fixed keys (A4, A7, A13), the
    /// generic auto (A1) included, and are no policy at all without the CSI integration.
    #[test]
    fn secret_provider_class_policy_table() {
        let csi = Keys { csi: true, ..Keys::default() };
        let spc = SourceKind::SecretProviderClass;
        type Row = (&'static str, Vec<(&'static str, &'static str)>, Src, bool, Result<Rule, Skip>);
        let rows: Vec<Row> = vec![
            ("generic auto", vec![(AUTO, "true")], Src::Plain, true, Ok(Rule::Auto)),
            ("typed auto", vec![(SPC_AUTO, "true")], Src::Plain, true, Ok(Rule::TypedAuto)),
            ("a ConfigMap's typed auto does not apply", vec![(CM_AUTO, "true")], Src::Plain, true, Err(Skip::NoRule)),
            (
                "typed auto needs the reference",
                vec![(SPC_AUTO, "true")],
                Src::Plain,
                false,
                not_referenced(Rule::TypedAuto),
            ),
            ("named regex, unreferenced", vec![(SPC_RELOAD, "vault-.*")], Src::Plain, false, named("vault-.*")),
            (
                "excluded",
                vec![(AUTO, "true"), (SPC_EXCLUDE, "other, vault-spc")],
                Src::Plain,
                true,
                Err(Skip::Excluded),
            ),
            (
                "a Secret exclude does not apply",
                vec![(AUTO, "true"), (SECRET_EXCLUDE, "vault-spc")],
                Src::Plain,
                true,
                Ok(Rule::Auto),
            ),
            ("search and match on the class", vec![(SEARCH, "true")], Src::Matched, true, Ok(Rule::Search)),
            ("search without match", vec![(SEARCH, "true")], Src::Plain, true, Err(Skip::NoRule)),
            (
                "ignore on the class wins over named",
                vec![(SPC_RELOAD, "vault-spc")],
                Src::Ignored,
                true,
                Err(Skip::Ignored),
            ),
            (
                "typed auto false blocks --auto-reload-all",
                vec![(SPC_AUTO, "false")],
                Src::Plain,
                true,
                Err(Skip::NoRule),
            ),
        ];
        for (name, ann, src, referenced, want) in rows {
            let p = mk_policy_with(&csi, &ann, &[], false);
            let got = govern(p.for_kind(spc), "vault-spc", src.info().as_ref(), referenced);
            assert_eq!(got, want, "{name}");
            let off = mk_policy_with(&Keys::default(), &ann, &[], false);
            let got = govern(off.for_kind(spc), "vault-spc", src.info().as_ref(), referenced);
            assert!(matches!(got, Err(Skip::NoRule | Skip::Ignored)), "{name}: without the integration: {got:?}");
        }
        let all = mk_policy_with(&csi, &[], &[], true);
        assert_eq!(govern(all.for_kind(spc), "x", Src::Plain.info().as_ref(), true), Ok(Rule::AutoReloadAll));
        let from_template = mk_policy_with(&csi, &[], &[(SPC_AUTO, "true")], false);
        assert_eq!(from_template.secret_provider_class.origin, Origin::PodTemplate);
        assert_eq!(govern(from_template.for_kind(spc), "x", Src::Plain.info().as_ref(), true), Ok(Rule::TypedAuto));
        assert!(csi.is_policy_key(SPC_EXCLUDE) && !Keys::default().is_policy_key(SPC_EXCLUDE));
    }

    /// Each comma element must be a valid regex on its own: wrapping it as `^(?:element)$` must
    /// not turn an invalid element into a valid one (an invalid element of a named-reload list
    /// is skipped and reported as an error, never a panic, while the list's other elements still
    /// apply), nor re-open the ungrouped "starts with / ends with" reading the project rejects
    /// (deliberate difference for `a|b`).
    #[test]
    fn named_pattern_invalid_unless_wrapped_table() {
        struct Case {
            name: &'static str,
            value: &'static str,
            /// Names that must not match.
            sources: &'static [&'static str],
        }
        let cases = [
            Case { name: "a)|(b would read as starts-with-a or ends-with-b", value: "a)|(b", sources: &["abc", "xb"] },
            Case { name: "a)(b would match ab", value: "a)(b", sources: &["ab"] },
            Case { name: "x)|.*|(y would match every name", value: "x)|.*|(y", sources: &["anything", "app"] },
        ];
        // Every row is checked before failing, so the report lists all of them.
        let mut failures = Vec::new();
        for c in &cases {
            assert!(regex::Regex::new(c.value).is_err(), "row {:?}: the element is invalid on its own", c.name);
            let p = mk_policy(&[(CM_RELOAD, c.value)], &[], false);
            for src in c.sources {
                let info = Src::Plain.info();
                let got = govern(&p.configmap, src, info.as_ref(), true);
                if got != Err(Skip::NoRule) {
                    failures.push(format!("row {:?}: {:?} matched {src:?}: {got:?}", c.name, c.value));
                }
            }
            let errs: Vec<&str> = p.errors.iter().map(|e| e.value.as_str()).collect();
            if errs != [c.value] {
                failures.push(format!("row {:?}: want one AnnotationError for {:?}, got {errs:?}", c.name, c.value));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn custom_keys_table() {
        let keys = Keys {
            auto: "example.com/auto".into(),
            configmap_auto: "example.com/cm-auto".into(),
            secret_auto: "example.com/secret-auto".into(),
            configmap_reload: "example.com/cm-reload".into(),
            secret_reload: "example.com/secret-reload".into(),
            search: "example.com/search".into(),
            match_: "example.com/match".into(),
            ignore: "example.com/ignore".into(),
            ..Keys::default()
        };
        let cases = [
            row("custom configmap named key", CM, Src::Plain)
                .unreferenced()
                .is(&[("example.com/cm-reload", "app")], named("app")),
            row("default configmap named key is ignored once overridden", CM, Src::Plain)
                .unreferenced()
                .is(&[(CM_RELOAD, "app")], Err(Skip::NoRule)),
            row("custom secret named key", SEC, Src::Plain)
                .source("db-main")
                .unreferenced()
                .is(&[("example.com/secret-reload", "db-.*")], named("db-.*")),
            row("custom auto key", SEC, Src::Plain).is(&[("example.com/auto", "true")], Ok(Rule::Auto)),
            row("default auto key ignored once overridden", SEC, Src::Plain).is(&[(AUTO, "true")], Err(Skip::NoRule)),
            row("default auto key false does not block auto-reload-all once overridden", CM, Src::Plain)
                .auto_reload_all()
                .is(&[(AUTO, "false")], Ok(Rule::AutoReloadAll)),
            row("custom typed auto key", CM, Src::Plain).is(&[("example.com/cm-auto", "true")], Ok(Rule::TypedAuto)),
            row("custom search key", CM, Src::Matched).is(&[("example.com/search", "true")], Ok(Rule::Search)),
            row("custom named key on the workload blocks the template fallback", CM, Src::Plain)
                .template(&[("example.com/auto", "true")])
                .is(&[("example.com/cm-reload", "")], Err(Skip::NoRule)),
            row("default named key on the workload no longer blocks the fallback", CM, Src::Plain)
                .template(&[("example.com/auto", "true")])
                .is(&[(CM_RELOAD, "")], Ok(Rule::Auto)),
            row("custom named key read from the template", CM, Src::Plain)
                .template(&[("example.com/cm-reload", "app")])
                .unreferenced()
                .is(&[], named("app")),
        ];
        run_decide(&keys, &cases);
    }

    #[test]
    fn only_configmap_reload_overridden() {
        // The brief's example: overriding just the ConfigMap named key leaves the others at
        // their defaults.
        let keys = Keys { configmap_reload: "my.org/cm".into(), ..Keys::default() };
        struct Case {
            name: &'static str,
            workload: &'static [(&'static str, &'static str)],
            kind: SourceKind,
            want: Result<Rule, Skip>,
        }
        let cases = [
            Case { name: "overridden key works", workload: &[("my.org/cm", "app")], kind: CM, want: named("app") },
            Case { name: "old key ignored", workload: &[(CM_RELOAD, "app")], kind: CM, want: Err(Skip::NoRule) },
            Case { name: "secret default kept", workload: &[(SECRET_RELOAD, "app")], kind: SEC, want: named("app") },
            Case { name: "auto default kept", workload: &[(AUTO, "true")], kind: CM, want: Ok(Rule::Auto) },
        ];
        for c in &cases {
            let p = mk_policy_with(&keys, c.workload, &[], false);
            let info = Src::Plain.info();
            assert_eq!(govern(p.for_kind(c.kind), "app", info.as_ref(), true), c.want, "row {:?}", c.name);
        }
    }

    #[test]
    fn source_flags_table() {
        struct Case {
            name: &'static str,
            annotations: Option<&'static [(&'static str, &'static str)]>,
            want: (bool, bool),
        }
        let cases = [
            Case { name: "no annotations", annotations: None, want: (false, false) },
            Case { name: "empty annotations", annotations: Some(&[]), want: (false, false) },
            Case { name: "match true", annotations: Some(&[(MATCH, "true")]), want: (true, false) },
            Case { name: "ignore true", annotations: Some(&[(IGNORE, "true")]), want: (false, true) },
            Case { name: "both", annotations: Some(&[(MATCH, "true"), (IGNORE, "true")]), want: (true, true) },
            Case { name: "match True is not exact", annotations: Some(&[(MATCH, "True")]), want: (false, false) },
            Case { name: "ignore 1 is not exact", annotations: Some(&[(IGNORE, "1")]), want: (false, false) },
            Case { name: "match false", annotations: Some(&[(MATCH, "false")]), want: (false, false) },
            Case { name: "match empty", annotations: Some(&[(MATCH, "")]), want: (false, false) },
            Case {
                name: "workload keys on a source mean nothing",
                annotations: Some(&[(AUTO, "true"), (SEARCH, "true")]),
                want: (false, false),
            },
        ];
        for c in &cases {
            let a = c.annotations.map(mk_ann);
            let f = Keys::default().flags(a.as_ref());
            assert_eq!((f.matched, f.ignored), c.want, "row {:?}", c.name);
        }
    }

    #[test]
    fn is_active_table() {
        struct Case {
            name: &'static str,
            workload: &'static [(&'static str, &'static str)],
            auto_reload_all: bool,
            want: (bool, bool),
        }
        let cases = [
            Case { name: "nothing", workload: &[], auto_reload_all: false, want: (false, false) },
            Case { name: "auto-reload-all", workload: &[], auto_reload_all: true, want: (true, true) },
            Case { name: "auto true", workload: &[(AUTO, "true")], auto_reload_all: false, want: (true, true) },
            Case { name: "auto false", workload: &[(AUTO, "false")], auto_reload_all: true, want: (false, false) },
            Case { name: "cm auto", workload: &[(CM_AUTO, "true")], auto_reload_all: false, want: (true, false) },
            Case {
                name: "secret auto false under auto-all",
                workload: &[(SECRET_AUTO, "false")],
                auto_reload_all: true,
                want: (true, false),
            },
            Case { name: "cm named", workload: &[(CM_RELOAD, "x")], auto_reload_all: false, want: (true, false) },
            Case { name: "search", workload: &[(SEARCH, "true")], auto_reload_all: false, want: (true, true) },
            Case {
                name: "only invalid named patterns",
                workload: &[(SECRET_RELOAD, "(")],
                auto_reload_all: false,
                want: (false, false),
            },
        ];
        for c in &cases {
            let p = mk_policy(c.workload, &[], c.auto_reload_all);
            assert_eq!((p.configmap.is_active(), p.secret.is_active()), c.want, "row {:?}", c.name);
            assert_eq!(p.is_active(), c.want.0 || c.want.1, "row {:?}: Policy::is_active", c.name);
        }
    }

    #[test]
    fn literal_names_are_object_names_and_still_anchored_regexes() {
        // (value, tracked by its literal name before it exists, names it matches, names it does not)
        let rows: &[(&str, bool, &[&str], &[&str])] = &[
            ("app-config", true, &["app-config"], &["app-config-2", "xapp-config"]),
            ("db.credentials", true, &["db.credentials", "dbxcredentials"], &["db.credentials.old"]),
            ("tls-cert-v2", true, &["tls-cert-v2"], &["tls-cert-v23"]),
            ("later", true, &["later"], &["later2"]),
            ("a1.b-2.c3", true, &["a1.b-2.c3"], &[]),
            ("feature-.*", false, &["feature-x", "feature-"], &["featurex"]),
            ("a|b", false, &["a", "b"], &["ab"]),
            ("App-Config", false, &["App-Config"], &["app-config"]),
            ("-lead", false, &["-lead"], &[]),
            ("trail-", false, &["trail-"], &[]),
            ("dot..dot", false, &["dot..dot"], &[]),
        ];
        for (value, literal, yes, no) in rows {
            let p = mk_policy(&[(CM_RELOAD, value)], &[], false);
            assert!(p.errors.is_empty(), "{value}: {:?}", p.errors);
            let pat = &p.configmap.named[0];
            assert_eq!(pat.is_literal(), *literal, "{value}: literal");
            for n in *yes {
                assert!(pat.is_match(n), "{value} matches {n}");
            }
            for n in *no {
                assert!(!pat.is_match(n), "{value} does not match {n}");
            }
        }
        assert!(is_object_name(&"a".repeat(253)) && !is_object_name(&"a".repeat(254)), "length limit");
        assert!(!is_object_name(""), "empty");
    }
}
