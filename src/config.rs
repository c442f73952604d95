//! Flags into validated [`Settings`]: Reloader's flags with the same names and meanings, this
//! project's own, and their checks. An invalid value stops start-up with a message naming the
//! flag and what it accepts.

use std::net::SocketAddr;
use std::time::Duration;

use crate::cli::RunArgs;
use crate::core::decide::Options;
use crate::core::decide::patch::Strategy;
use crate::core::gates::brake::BrakeSettings;
use crate::core::model::policy::Keys;
use crate::core::model::workload::WorkloadKind;
use crate::error::Error;
use crate::runtime::reporter::alerts::AlertConfig;

/// HA settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HaSettings {
    /// `POD_NAME`.
    pub identity: String,
    /// `POD_NAMESPACE`.
    pub namespace: String,
    pub lease_name: String,
    pub lease_duration: Duration,
}

/// Which namespaces the controller watches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Cluster-wide, minus ignored namespaces, optionally limited by a namespace selector.
    All { ignore: Vec<String>, selector: Option<String> },
    /// Exactly these namespaces.
    Namespaces(Vec<String>),
}

/// Validated settings.
#[derive(Clone, Debug)]
pub struct Settings {
    pub(crate) keys: Keys,
    pub(crate) auto_reload_all: bool,
    pub(crate) scope: Scope,
    pub(crate) resource_label_selector: Option<String>,
    pub(crate) watch_configmaps: bool,
    pub(crate) watch_secrets: bool,
    pub(crate) watch_helm_release_secrets: bool,
    pub(crate) strategy: Strategy,
    pub(crate) options: Options,
    /// The most a source change waits for more (`--debounce`): the cap of the window.
    pub(crate) debounce: Duration,
    /// How long a source change waits for another (`--debounce-quiet`).
    pub(crate) debounce_quiet: Duration,
    pub(crate) workers: usize,
    /// `--adoption-writes-per-second` (0: unlimited).
    pub(crate) adoption_writes_per_second: u32,
    pub(crate) metrics_addr: Option<SocketAddr>,
    pub(crate) ha: Option<HaSettings>,
    pub(crate) webhook_url: Option<String>,
    pub(crate) alert: Option<AlertConfig>,
    /// `METRICS_COUNT_BY_NAMESPACE=enabled`.
    pub(crate) count_by_namespace: bool,
    pub(crate) dry_run: bool,
    pub(crate) brake: BrakeSettings,
    /// `--rollout-timeout` (`None`: 0, never).
    pub(crate) rollout_timeout: Option<Duration>,
    /// `--max-concurrent-rollouts` (`None`: 0, unlimited).
    pub(crate) max_concurrent_rollouts: Option<usize>,
    /// `--halt-on-failed-rollouts` (`None`: 0, off).
    pub(crate) halt_on_failed_rollouts: Option<usize>,
    pub(crate) ignore_jobs: bool,
    pub(crate) ignore_cronjobs: bool,
    pub(crate) is_argo_rollouts: bool,
    pub log_format: LogFormat,
    pub log_level: String,
    /// Start-up warnings about accepted flags that change nothing here.
    pub notices: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

fn flag_err(flag: &'static str, message: impl Into<String>) -> Error {
    Error::flag(flag, message)
}

impl Settings {
    /// This replica's leader-election identity, when leader election is on.
    pub fn ha_identity(&self) -> Option<&str> {
        self.ha.as_ref().map(|h| h.identity.as_str())
    }

    /// The workload kinds watched: all but those `--ignored-workload-types` names, and Argo
    /// Rollouts only with `--is-Argo-Rollouts`.
    pub(crate) fn workload_kinds(&self) -> Vec<WorkloadKind> {
        use WorkloadKind::*;
        [Deployment, StatefulSet, DaemonSet, CronJob, Job, Rollout]
            .into_iter()
            .filter(|k| match k {
                CronJob => !self.ignore_cronjobs,
                Job => !self.ignore_jobs,
                Rollout => self.is_argo_rollouts,
                _ => true,
            })
            .collect()
    }

    /// The field selector that keeps Helm release Secrets out of the Secret watch (they are
    /// large, one per release revision, and never mounted), unless they are wanted.
    pub(crate) fn secret_field_selector(&self) -> Option<&'static str> {
        (!self.watch_helm_release_secrets).then_some("type!=helm.sh/release.v1")
    }
}

/// Reloader's selector normalisation: `k:v` → `k=v`, `k:*` / `k=*` → `k`; elements joined by `,`.
pub fn normalise_selector(elements: &[String]) -> Option<String> {
    let parts: Vec<String> = elements
        .iter()
        .map(|e| e.trim())
        .filter(|e| !e.is_empty())
        .map(|e| {
            if let Some(k) = e.strip_suffix(":*").or_else(|| e.strip_suffix("=*")) {
                k.to_string()
            } else if !e.contains('=') && !e.contains(' ') && !e.contains('(') && e.contains(':') {
                e.replacen(':', "=", 1)
            } else {
                e.to_string()
            }
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join(","))
}

fn validate_selector(flag: &'static str, sel: &str) -> Result<(), Error> {
    check_selector(sel).map_err(|why| flag_err(flag, format!("{sel:?} is not a valid label selector: {why}")))
}

/// Checks a label selector as the API server parses it: requirements separated by commas, each
/// `key`, `!key`, `key=value`, `key==value`, `key!=value`, `key in (v,…)` or `key notin (v,…)`.
/// Caught here, at start, a bad one names its flag; otherwise every list would be refused.
fn check_selector(sel: &str) -> Result<(), String> {
    let mut rest = sel.trim();
    loop {
        let (req, tail) = split_requirement(rest)?;
        check_requirement(req.trim())?;
        match tail {
            Some(t) => rest = t,
            None => return Ok(()),
        }
    }
}

/// The first requirement and what follows its comma (commas inside `( )` belong to it).
fn split_requirement(s: &str) -> Result<(&str, Option<&str>), String> {
    let mut depth = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' if depth == 0 => return Err("a ')' without '('".into()),
            ')' => depth -= 1,
            ',' if depth == 0 => return Ok((&s[..i], Some(&s[i + 1..]))),
            _ => {}
        }
    }
    if depth > 0 { Err("a '(' without ')'".into()) } else { Ok((s, None)) }
}

fn check_requirement(r: &str) -> Result<(), String> {
    if r.is_empty() {
        return Err("an empty requirement".into());
    }
    if let Some(key) = r.strip_prefix('!') {
        return check_key(key.trim());
    }
    for op in [" notin ", " in "] {
        if let Some((key, set)) = r.split_once(op) {
            check_key(key.trim())?;
            let set = set.trim();
            let inner = set
                .strip_prefix('(')
                .and_then(|x| x.strip_suffix(')'))
                .ok_or_else(|| format!("{set:?} is not a list of values in parentheses"))?;
            return inner.split(',').try_for_each(|v| check_value(v.trim()));
        }
    }
    for op in ["==", "!=", "="] {
        if let Some((key, value)) = r.split_once(op) {
            check_key(key.trim())?;
            return check_value(value.trim());
        }
    }
    check_key(r)
}

/// A label key: an optional DNS-subdomain prefix and `/`, then a name of at most 63 characters.
fn check_key(k: &str) -> Result<(), String> {
    let (prefix, name) = match k.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    if let Some(p) = prefix
        && !crate::core::model::policy::is_object_name(p)
    {
        return Err(format!("{p:?} is not a DNS subdomain (a label key prefix)"));
    }
    if name.is_empty() || check_value(name).is_err() {
        return Err(format!("{k:?} is not a label key"));
    }
    Ok(())
}

/// A label value: empty, or at most 63 characters of `[A-Za-z0-9._-]` starting and ending
/// with a letter or digit.
fn check_value(v: &str) -> Result<(), String> {
    let b = v.as_bytes();
    let ok = v.is_empty()
        || (b.len() <= 63
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|c| c.is_ascii_alphanumeric() || b"._-".contains(c)));
    if ok { Ok(()) } else { Err(format!("{v:?} is not a label value")) }
}

/// A namespace name: a DNS-1123 label (at most 63 of `[a-z0-9-]`, alphanumeric at both ends).
fn is_namespace_name(n: &str) -> bool {
    let b = n.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

impl RunArgs {
    pub fn settings(&self) -> Result<Settings, Error> {
        let keys = self.keys();

        let (watch_configmaps, watch_secrets) = self.watched_kinds()?;

        let (scope, ignored_in_scoped_mode) = self.scope()?;
        let resource_label_selector = normalise_selector(&self.resource_label_selector);
        if let Some(s) = &resource_label_selector {
            validate_selector("resource-label-selector", s)?;
        }

        let (log_format, log_level) = self.logging()?;
        if self.workers == 0 {
            return Err(flag_err("workers", "must be at least 1"));
        }
        if self.halt_on_failed_rollouts > 0 && self.max_concurrent_rollouts == 0 {
            // Without waves every reload starts at once: there is nothing left to halt.
            return Err(flag_err("halt-on-failed-rollouts", "needs --max-concurrent-rollouts"));
        }
        let mut notices = Vec::new();
        for flag in ignored_in_scoped_mode {
            // As in Reloader, a namespace list or KUBERNETES_NAMESPACE wins; say so.
            notices.push(format!("{flag} is ignored: --namespaces or KUBERNETES_NAMESPACE limits the scope"));
        }
        if self.enable_pprof {
            notices.push("--enable-pprof is accepted for compatibility and has no effect".to_string());
        }
        if self.sync_after_restart {
            notices.push(
                "--sync-after-restart is always on in effect: changes made while stopped are applied exactly once"
                    .to_string(),
            );
        }
        let ha = self.ha()?;
        let webhook_url = (!self.webhook_url.trim().is_empty()).then(|| self.webhook_url.trim().to_string());
        if let Some(u) = &webhook_url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            return Err(flag_err("webhook-url", format!("{u:?} is not an http(s) URL")));
        }
        let alert = match AlertConfig::from_env(|k| std::env::var(k).ok()) {
            Ok(a) => a,
            Err(e) => {
                notices.push(e);
                None
            }
        };

        Ok(Settings {
            keys,
            auto_reload_all: self.auto_reload_all,
            scope,
            resource_label_selector,
            watch_configmaps,
            watch_secrets,
            watch_helm_release_secrets: self.watch_helm_release_secrets,
            strategy: self.reload_strategy,
            options: Options { reload_on_create: self.reload_on_create, reload_on_delete: self.reload_on_delete },
            debounce: self.debounce,
            debounce_quiet: self.debounce_quiet,
            workers: self.workers,
            adoption_writes_per_second: self.adoption_writes_per_second,
            metrics_addr: self.metrics_addr.0,
            ha,
            webhook_url,
            alert,
            count_by_namespace: std::env::var("METRICS_COUNT_BY_NAMESPACE").as_deref() == Ok("enabled"),
            dry_run: self.dry_run,
            rollout_timeout: (!self.rollout_timeout.is_zero()).then_some(self.rollout_timeout),
            max_concurrent_rollouts: (self.max_concurrent_rollouts > 0).then_some(self.max_concurrent_rollouts),
            halt_on_failed_rollouts: (self.halt_on_failed_rollouts > 0).then_some(self.halt_on_failed_rollouts),
            brake: BrakeSettings {
                min_interval: self.min_reload_interval,
                flap_limit: self.flap_limit,
                flap_window: self.flap_window,
                settle: self.flap_settle,
            },
            ignore_jobs: self.ignored_workload_types.iter().any(|t| t == "jobs"),
            ignore_cronjobs: self.ignored_workload_types.iter().any(|t| t == "cronjobs"),
            is_argo_rollouts: self.is_argo_rollouts,
            log_format,
            log_level,
            notices,
        })
    }

    /// The annotation keys, as configured.
    fn keys(&self) -> Keys {
        Keys {
            auto: self.auto_annotation.clone(),
            configmap_auto: self.configmap_auto_annotation.clone(),
            secret_auto: self.secret_auto_annotation.clone(),
            configmap_reload: self.configmap_annotation.clone(),
            secret_reload: self.secret_annotation.clone(),
            search: self.auto_search_annotation.clone(),
            match_: self.search_match_annotation.clone(),
            ignore: self.ignore_annotation.clone(),
            pause_period: self.pause_deployment_annotation.clone(),
            paused_at: self.pause_deployment_time_annotation.clone(),
            csi: self.enable_csi_integration,
        }
    }

    /// `--resources-to-ignore`: which of ConfigMaps and Secrets are watched; and the workload
    /// types `--ignored-workload-types` accepts.
    fn watched_kinds(&self) -> Result<(bool, bool), Error> {
        for t in &self.ignored_workload_types {
            if !matches!(t.as_str(), "jobs" | "cronjobs") {
                return Err(flag_err(
                    "ignored-workload-types",
                    format!("accepts 'jobs', 'cronjobs', or both, not '{t}'"),
                ));
            }
        }
        let mut watch_configmaps = true;
        let mut watch_secrets = true;
        let ignored: Vec<String> =
            self.resources_to_ignore.iter().filter(|r| !r.is_empty()).map(|r| r.to_ascii_lowercase()).collect();
        if ignored.len() > 1 {
            return Err(flag_err("resources-to-ignore", "accepts 'configmaps' or 'secrets', not both"));
        }
        match ignored.first().map(String::as_str) {
            None => {}
            Some("configmaps") => watch_configmaps = false,
            Some("secrets") => watch_secrets = false,
            Some(other) => {
                return Err(flag_err(
                    "resources-to-ignore",
                    format!("accepts 'configmaps' or 'secrets', not '{other}'"),
                ));
            }
        }
        Ok((watch_configmaps, watch_secrets))
    }

    /// The namespaces watched, and the flags that scoped mode ignores.
    fn scope(&self) -> Result<(Scope, Vec<&'static str>), Error> {
        let namespaces: Vec<String> = self.namespaces.iter().filter(|n| !n.is_empty()).cloned().collect();
        for n in namespaces.iter().chain(&self.namespaces_to_ignore).chain(&self.kubernetes_namespace) {
            if !n.is_empty() && !is_namespace_name(n) {
                let flag = if self.namespaces.contains(n) {
                    "namespaces"
                } else if self.namespaces_to_ignore.contains(n) {
                    "namespaces-to-ignore"
                } else {
                    "kubernetes-namespace"
                };
                return Err(flag_err(
                    flag,
                    format!("{n:?} is not a namespace name (lower-case letters, digits and '-', at most 63)"),
                ));
            }
        }
        let scoped = !namespaces.is_empty() || self.kubernetes_namespace.as_ref().is_some_and(|n| !n.is_empty());
        let mut ignored_in_scoped_mode = Vec::new();
        if scoped && self.namespace_selector.iter().any(|x| !x.is_empty()) {
            ignored_in_scoped_mode.push("--namespace-selector");
        }
        if scoped && self.namespaces_to_ignore.iter().any(|x| !x.is_empty()) {
            ignored_in_scoped_mode.push("--namespaces-to-ignore");
        }
        let scope = if !namespaces.is_empty() {
            let mut n = namespaces;
            n.sort();
            n.dedup();
            Scope::Namespaces(n)
        } else if let Some(ns) = self.kubernetes_namespace.as_ref().filter(|n| !n.is_empty()) {
            Scope::Namespaces(vec![ns.clone()])
        } else {
            let selector = normalise_selector(&self.namespace_selector);
            if let Some(s) = &selector {
                validate_selector("namespace-selector", s)?;
            }
            Scope::All {
                ignore: self.namespaces_to_ignore.iter().filter(|n| !n.is_empty()).cloned().collect(),
                selector,
            }
        };
        Ok((scope, ignored_in_scoped_mode))
    }

    fn logging(&self) -> Result<(LogFormat, String), Error> {
        let log_format = match self.log_format.as_str() {
            "" | "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(flag_err(
                    "log-format",
                    format!("{other:?} is not supported; use \"json\" or leave it empty for text"),
                ));
            }
        };
        let log_level = match self.log_level.to_ascii_lowercase().as_str() {
            "trace" => "trace",
            "debug" => "debug",
            "info" => "info",
            "warn" | "warning" => "warn",
            "error" | "fatal" | "panic" => "error",
            other => {
                return Err(flag_err(
                    "log-level",
                    format!("{other:?} is not a level; use trace, debug, info, warn or error"),
                ));
            }
        }
        .to_string();
        Ok((log_format, log_level))
    }

    /// `--enable-ha` and its lease.
    fn ha(&self) -> Result<Option<HaSettings>, Error> {
        Ok(if self.enable_ha {
            let Some(identity) = self.pod_name.clone().filter(|p| !p.is_empty()) else {
                return Err(flag_err("enable-ha", "POD_NAME not set, cannot run in HA mode without POD_NAME set"));
            };
            let Some(namespace) = self.pod_namespace.clone().filter(|p| !p.is_empty()) else {
                return Err(flag_err(
                    "enable-ha",
                    "POD_NAMESPACE not set, cannot run in HA mode without POD_NAMESPACE set",
                ));
            };
            if self.lease_duration < Duration::from_secs(2) {
                return Err(flag_err("lease-duration", "must be at least 2s"));
            }
            Some(HaSettings {
                identity,
                namespace,
                lease_name: self.lease_name.clone(),
                lease_duration: self.lease_duration,
            })
        } else {
            None
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::{CommandFactory, Parser};

    fn parse(args: &[&str]) -> Result<Settings, String> {
        let cli =
            Cli::try_parse_from(std::iter::once("reloader").chain(args.iter().copied())).map_err(|e| e.to_string())?;
        cli.run.settings().map_err(|e| e.to_string())
    }

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults() {
        let s = parse(&[]).unwrap();
        assert_eq!(s.strategy, Strategy::Annotations);
        assert!(!s.auto_reload_all);
        assert_eq!(s.debounce, Duration::from_millis(500));
        assert_eq!(s.debounce_quiet, Duration::from_millis(50));
        assert_eq!(s.adoption_writes_per_second, 20);
        assert_eq!(s.rollout_timeout, Some(Duration::from_secs(600)));
        assert_eq!(s.max_concurrent_rollouts, None, "unlimited, as Reloader");
        assert!(s.watch_configmaps && s.watch_secrets && !s.watch_helm_release_secrets);
        assert_eq!(s.keys.auto, "reloader.stakater.com/auto");
    }

    #[test]
    fn reloader_flag_forms() {
        let s = parse(&[
            "--auto-reload-all",
            "--reload-on-create=true",
            "--reload-on-delete",
            "True",
            "--reload-strategy=env-vars",
        ])
        .unwrap();
        assert!(s.auto_reload_all && s.options.reload_on_create && s.options.reload_on_delete);
        assert_eq!(s.strategy, Strategy::EnvVars);
        let s = parse(&["--namespaces=b,a", "--namespaces", "c,a"]).unwrap();
        assert_eq!(s.scope, Scope::Namespaces(vec!["a".into(), "b".into(), "c".into()]));
        let s = parse(&[
            "--namespace-selector=\"team:a\"",
            "--namespace-selector=env=*",
            "--namespaces-to-ignore=kube-system",
        ])
        .unwrap();
        assert_eq!(s.scope, Scope::All { ignore: vec!["kube-system".into()], selector: Some("team=a,env".into()) });
        let s = parse(&["--resources-to-ignore=Secrets"]).unwrap();
        assert!(s.watch_configmaps && !s.watch_secrets);
        let s = parse(&["--is-Argo-Rollouts=true", "--dry-run", "--ignored-workload-types=jobs"]).unwrap();
        assert!(s.is_argo_rollouts && s.dry_run && s.ignore_jobs && !s.ignore_cronjobs);
        assert!(s.notices.is_empty(), "Rollouts are supported: no warning {:?}", s.notices);
        let s = parse(&["--enable-csi-integration"]).unwrap();
        assert!(s.keys.csi && s.notices.is_empty(), "CSI is supported: no warning {:?}", s.notices);
        assert!(!parse(&["--enable-csi-integration=false"]).unwrap().keys.csi);
        assert!(!parse(&[]).unwrap().keys.csi, "off by default");
        let s = parse(&["--is-Argo-Rollouts", "false", "--metrics-addr=:9091"]).unwrap();
        assert!(!s.is_argo_rollouts);
        assert_eq!(s.metrics_addr, Some("0.0.0.0:9091".parse().unwrap()));
        let s = parse(&["--debounce=0"]).unwrap();
        assert_eq!(s.debounce, Duration::ZERO);
        let s = parse(&["--debounce=2s", "--debounce-quiet", "200ms"]).unwrap();
        assert_eq!((s.debounce, s.debounce_quiet), (Duration::from_secs(2), Duration::from_millis(200)));
        let s = parse(&["--debounce-quiet=0"]).unwrap();
        assert_eq!((s.debounce, s.debounce_quiet), (Duration::from_millis(500), Duration::ZERO));
        let s = parse(&["--adoption-writes-per-second=5"]).unwrap();
        assert_eq!(s.adoption_writes_per_second, 5);
        let s = parse(&["--adoption-writes-per-second", "0"]).unwrap();
        assert_eq!(s.adoption_writes_per_second, 0, "0: unlimited");
        assert_eq!(parse(&["--rollout-timeout=90s"]).unwrap().rollout_timeout, Some(Duration::from_secs(90)));
        assert_eq!(parse(&["--rollout-timeout=0"]).unwrap().rollout_timeout, None, "0: never");
        assert_eq!(parse(&["--max-concurrent-rollouts=5"]).unwrap().max_concurrent_rollouts, Some(5));
        assert_eq!(parse(&["--max-concurrent-rollouts=0"]).unwrap().max_concurrent_rollouts, None);
        let s = parse(&["--max-concurrent-rollouts=5", "--halt-on-failed-rollouts=3"]).unwrap();
        assert_eq!((s.max_concurrent_rollouts, s.halt_on_failed_rollouts), (Some(5), Some(3)));
        assert_eq!(parse(&[]).unwrap().halt_on_failed_rollouts, None, "off by default");
        assert!(parse(&["--halt-on-failed-rollouts=3"]).is_err(), "needs waves");
    }

    #[test]
    fn valid_selectors_pass() {
        for ok in [
            "team",
            "!team",
            "team=a",
            "team==a",
            "team!=a",
            "team in (a,b)",
            "team notin (a, b)",
            "example.com/team=a,env",
            "env=,tier in (web)",
            "a.b-c_d=E.f-g_h",
        ] {
            assert_eq!(check_selector(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn scoped_mode_says_which_flags_it_ignores() {
        let s = parse(&["--namespaces=a", "--namespace-selector=team=x", "--namespaces-to-ignore=b"]).unwrap();
        assert_eq!(s.scope, Scope::Namespaces(vec!["a".into()]));
        assert!(s.notices.iter().any(|n| n.starts_with("--namespace-selector is ignored")), "{:?}", s.notices);
        assert!(s.notices.iter().any(|n| n.starts_with("--namespaces-to-ignore is ignored")), "{:?}", s.notices);
    }

    #[test]
    fn invalid_values_name_the_flag() {
        let cases = [
            (vec!["--reload-strategy=rolling"], "reload-strategy"),
            (vec!["--resources-to-ignore=configmaps,secrets"], "resources-to-ignore"),
            (vec!["--resources-to-ignore=pods"], "resources-to-ignore"),
            (vec!["--ignored-workload-types=pods"], "ignored-workload-types"),
            (vec!["--log-format=xml"], "log-format"),
            (vec!["--log-level=loud"], "log-level"),
            (vec!["--reload-on-create=yes"], "reload-on-create"),
            (vec!["--debounce=soon"], "debounce"),
            (vec!["--debounce-quiet=50"], "debounce-quiet"),
            (vec!["--adoption-writes-per-second=fast"], "adoption-writes-per-second"),
            (vec!["--adoption-writes-per-second=-1"], "adoption-writes-per-second"),
            (vec!["--adoption-writes-per-second=2.5"], "adoption-writes-per-second"),
            (vec!["--no-such-flag"], "no-such-flag"),
            (vec!["--enable-ha"], "POD_NAME"),
            (vec!["--enable-ha", "--pod-name=p"], "POD_NAMESPACE"),
            (vec!["--webhook-url=ftp://x"], "webhook-url"),
            (vec!["--metrics-addr=nowhere"], "metrics-addr"),
            (vec!["--namespace-selector=a==b==c"], "namespace-selector"),
            (vec!["--namespace-selector=team in (a"], "namespace-selector"),
            (vec!["--namespace-selector=!!bad"], "namespace-selector"),
            (vec!["--resource-label-selector=reload=yes!"], "resource-label-selector"),
            (vec!["--resource-label-selector=a b"], "resource-label-selector"),
            (vec!["--namespaces=Bad_NS"], "namespaces"),
            (vec!["--namespaces=ok,-lead"], "namespaces"),
            (vec!["--namespaces-to-ignore=kube_system"], "namespaces-to-ignore"),
        ];
        for (args, flag) in cases {
            let err = parse(&args).expect_err(flag);
            assert!(err.contains(flag), "{args:?}: {err}");
        }
    }
}
