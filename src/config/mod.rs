//! Flags into validated [`Settings`]: Reloader's flags with the same names and meanings, this
//! project's own, and their checks. An invalid value stops start-up with a message naming the
//! flag and what it accepts.

pub(crate) mod alerts;
pub(crate) mod selector;

use std::net::SocketAddr;
use std::time::Duration;

use crate::cli::{ModeArgs, ProcessArgs, RunArgs, SafetyArgs, ScopeArgs};
use crate::config::alerts::AlertConfig;
pub use crate::config::selector::normalise_selector;
use crate::config::selector::{is_namespace_name, validate_selector};
use crate::core::decide::Options;
use crate::core::decide::patch::Strategy;
use crate::core::gates::Limits;
use crate::core::gates::brake::BrakeSettings;
use crate::core::kinds::{Watched, WorkloadKind};
use crate::core::model::keys::Keys;
use crate::error::Error;

/// HA settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HaSettings {
    /// `POD_NAME`.
    pub identity: String,
    /// `POD_NAMESPACE`.
    pub namespace: String,
    pub lease_name: String,
    pub lease_duration: Duration,
    /// How long after a renewal was sent the holder may still write.
    pub renew_deadline: Duration,
    /// How soon a standby or a failing holder tries again.
    pub retry_period: Duration,
}

/// Which namespaces the controller watches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Cluster-wide, minus ignored namespaces, optionally limited by a namespace selector.
    All { ignore: Vec<String>, selector: Option<String> },
    /// Exactly these namespaces.
    Namespaces(Vec<String>),
}

/// What is watched besides the scope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Watch {
    pub(crate) configmaps: bool,
    pub(crate) secrets: bool,
    /// `--watch-helm-release-secrets`.
    pub(crate) helm_release_secrets: bool,
    /// `--resource-label-selector`, normalised.
    pub(crate) label_selector: Option<String>,
    /// The workload kinds watched, in the order of `WorkloadKind::ALL`.
    pub(crate) kinds: Vec<WorkloadKind>,
    /// `--initial-list`.
    pub(crate) initial_list: InitialList,
}

/// `--initial-list`: how the watches list what exists at start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitialList {
    Auto,
    Stream,
    Page,
}

/// Validated settings.
#[derive(Clone, Debug)]
pub struct Settings {
    pub(crate) keys: Keys,
    pub(crate) auto_reload_all: bool,
    pub(crate) scope: Scope,
    pub(crate) watch: Watch,
    pub(crate) strategy: Strategy,
    pub(crate) options: Options,
    /// The most a source change waits for more (`--debounce`): the cap of the window.
    pub(crate) debounce: Duration,
    /// How long a source change waits for another (`--debounce-quiet`).
    pub(crate) debounce_quiet: Duration,
    /// The storm brake, the waves and the circuit breaker.
    pub(crate) limits: Limits,
    /// `--rollout-timeout` (`None`: 0, never).
    pub(crate) rollout_timeout: Option<Duration>,
    /// `--adoption-writes-per-second` (0: unlimited).
    pub(crate) adoption_writes_per_second: u32,
    pub(crate) dry_run: bool,
    pub(crate) workers: usize,
    pub(crate) metrics_addr: Option<SocketAddr>,
    pub(crate) ha: Option<HaSettings>,
    pub(crate) webhook_url: Option<String>,
    pub(crate) alert: Option<AlertConfig>,
    /// `METRICS_COUNT_BY_NAMESPACE=enabled`.
    pub(crate) count_by_namespace: bool,
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

    /// Whether workloads of `kind` are watched.
    #[cfg(test)]
    pub(crate) fn watches(&self, kind: WorkloadKind) -> bool {
        self.watch.kinds.contains(&kind)
    }

    /// The field selector that keeps Helm release Secrets out of the Secret watch (they are
    /// large, one per release revision, and never mounted), unless they are wanted.
    pub(crate) fn secret_field_selector(&self) -> Option<&'static str> {
        (!self.watch.helm_release_secrets).then_some("type!=helm.sh/release.v1")
    }
}

impl RunArgs {
    pub fn settings(&self) -> Result<Settings, Error> {
        let (scope, ignored_in_scoped_mode) = self.scope.scope()?;
        let (log_format, log_level) = self.logging()?;
        let mut notices = self.mode.notices(&self.reload);
        for flag in ignored_in_scoped_mode {
            // As in Reloader, a namespace list or KUBERNETES_NAMESPACE wins; say so.
            notices.push(format!("{flag} is ignored: --namespaces or KUBERNETES_NAMESPACE limits the scope"));
        }
        let alert = match AlertConfig::from_env(|k| std::env::var(k).ok()) {
            Ok(a) => a,
            Err(e) => {
                notices.push(e);
                None
            }
        };
        let r = &self.reload;
        Ok(Settings {
            keys: self.keys(),
            auto_reload_all: self.policy.auto_reload_all,
            scope,
            watch: self.watch()?,
            strategy: r.reload_strategy,
            options: Options { reload_on_create: r.reload_on_create, reload_on_delete: r.reload_on_delete },
            debounce: self.safety.debounce,
            debounce_quiet: self.safety.debounce_quiet,
            limits: self.safety.limits()?,
            rollout_timeout: (!self.safety.rollout_timeout.is_zero()).then_some(self.safety.rollout_timeout),
            adoption_writes_per_second: self.safety.adoption_writes_per_second,
            dry_run: self.safety.dry_run,
            workers: self.process.workers()?,
            metrics_addr: self.process.metrics_addr.0,
            ha: self.ha()?,
            webhook_url: self.mode.webhook_url()?,
            alert,
            count_by_namespace: std::env::var("METRICS_COUNT_BY_NAMESPACE").as_deref() == Ok("enabled"),
            log_format,
            log_level,
            notices,
        })
    }

    /// The annotation keys, as configured.
    fn keys(&self) -> Keys {
        let p = &self.policy;
        Keys {
            auto: p.auto_annotation.clone(),
            configmap_auto: p.configmap_auto_annotation.clone(),
            secret_auto: p.secret_auto_annotation.clone(),
            configmap_reload: p.configmap_annotation.clone(),
            secret_reload: p.secret_annotation.clone(),
            search: p.auto_search_annotation.clone(),
            match_: p.search_match_annotation.clone(),
            ignore: p.ignore_annotation.clone(),
            pause_period: p.pause_deployment_annotation.clone(),
            paused_at: p.pause_deployment_time_annotation.clone(),
            csi: self.mode.enable_csi_integration,
        }
    }

    /// What is watched: the sources (`--resources-to-ignore`), their label selector, and the
    /// workload kinds (`--ignored-workload-types`, and the flags of opt-in kinds).
    fn watch(&self) -> Result<Watch, Error> {
        let (configmaps, secrets) = self.scope.sources()?;
        let label_selector = normalise_selector(&self.scope.resource_label_selector);
        if let Some(s) = &label_selector {
            validate_selector("resource-label-selector", s)?;
        }
        let ignorable: Vec<&str> = WorkloadKind::ALL
            .iter()
            .filter(|k| k.info().watched == Watched::UnlessIgnored)
            .map(|k| k.plural())
            .collect();
        for t in &self.scope.ignored_workload_types {
            if !ignorable.contains(&t.as_str()) {
                let list: Vec<String> = ignorable.iter().map(|n| format!("'{n}'")).collect();
                return Err(flag_err(
                    "ignored-workload-types",
                    format!("accepts {}, or several of them, not '{t}'", list.join(", ")),
                ));
            }
        }
        let kinds = WorkloadKind::ALL
            .iter()
            .copied()
            .filter(|k| match k.info().watched {
                Watched::Always => true,
                Watched::UnlessIgnored => !self.scope.ignored_workload_types.iter().any(|t| t == k.plural()),
                Watched::WithFlag { flag, .. } => self.mode.kind_flag(flag),
            })
            .collect();
        Ok(Watch {
            configmaps,
            secrets,
            helm_release_secrets: self.process.watch_helm_release_secrets,
            label_selector,
            kinds,
            initial_list: match self.process.initial_list.as_str() {
                "stream" => InitialList::Stream,
                "page" => InitialList::Page,
                _ => InitialList::Auto,
            },
        })
    }

    fn logging(&self) -> Result<(LogFormat, String), Error> {
        let log_format = match self.log.log_format.as_str() {
            "" | "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(flag_err(
                    "log-format",
                    format!("{other:?} is not supported; use \"json\" or leave it empty for text"),
                ));
            }
        };
        let log_level = match self.log.log_level.to_ascii_lowercase().as_str() {
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
        if !self.mode.enable_ha {
            return Ok(None);
        }
        let p = &self.process;
        let Some(identity) = p.pod_name.clone().filter(|p| !p.is_empty()) else {
            return Err(flag_err("enable-ha", "POD_NAME not set, cannot run in HA mode without POD_NAME set"));
        };
        let Some(namespace) = p.pod_namespace.clone().filter(|p| !p.is_empty()) else {
            return Err(flag_err(
                "enable-ha",
                "POD_NAMESPACE not set, cannot run in HA mode without POD_NAMESPACE set",
            ));
        };
        let (renew_deadline, retry_period) =
            lease_timings(p.lease_duration, p.leader_election_renew_deadline, p.leader_election_retry_period)?;
        Ok(Some(HaSettings {
            identity,
            namespace,
            lease_name: p.lease_name.clone(),
            lease_duration: p.lease_duration,
            renew_deadline,
            retry_period,
        }))
    }
}

/// client-go's retry jitter: a renew deadline must leave room for one jittered retry.
const JITTER: f64 = 1.2;

/// The leader-election timings: the renew deadline and retry period, defaulted from the lease
/// duration and checked as client-go and Reloader check them. The lease is stored on the Lease
/// in whole seconds, and a standby judges expiry from that; a fraction would be cut off and let
/// a standby take over before the leader's deadline, so it is refused.
fn lease_timings(
    lease: Duration,
    renew: Option<Duration>,
    retry: Option<Duration>,
) -> Result<(Duration, Duration), Error> {
    const LEASE: &str = "lease-duration";
    const RENEW: &str = "leader-election-renew-deadline";
    const RETRY: &str = "leader-election-retry-period";
    let show = |d: Duration| format!("{d:?}");
    if lease.subsec_nanos() != 0 || lease < Duration::from_secs(1) || lease.as_secs() > i32::MAX as u64 {
        return Err(flag_err(
            LEASE,
            format!("{} is not a whole number of seconds from 1s (the Lease stores whole seconds)", show(lease)),
        ));
    }
    let renew = renew.unwrap_or(lease * 2 / 3);
    let retry = retry.unwrap_or_else(|| Duration::from_secs(2).min(renew / 2));
    if renew.is_zero() || renew >= lease {
        return Err(flag_err(
            RENEW,
            format!("{} must be above 0 and shorter than the lease duration ({})", show(renew), show(lease)),
        ));
    }
    if retry.is_zero() || renew.as_secs_f64() <= JITTER * retry.as_secs_f64() {
        return Err(flag_err(
            RETRY,
            format!(
                "{} must be above 0, and the renew deadline ({}) longer than {JITTER} times it",
                show(retry),
                show(renew)
            ),
        ));
    }
    Ok((renew, retry))
}

impl ScopeArgs {
    /// `--resources-to-ignore`: whether ConfigMaps and Secrets are watched.
    fn sources(&self) -> Result<(bool, bool), Error> {
        let ignored: Vec<String> =
            self.resources_to_ignore.iter().filter(|r| !r.is_empty()).map(|r| r.to_ascii_lowercase()).collect();
        if ignored.len() > 1 {
            return Err(flag_err("resources-to-ignore", "accepts 'configmaps' or 'secrets', not both"));
        }
        match ignored.first().map(String::as_str) {
            None => Ok((true, true)),
            Some("configmaps") => Ok((false, true)),
            Some("secrets") => Ok((true, false)),
            Some(other) => {
                Err(flag_err("resources-to-ignore", format!("accepts 'configmaps' or 'secrets', not '{other}'")))
            }
        }
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
}

impl ModeArgs {
    /// The value of the flag that turns an opt-in workload kind on (`Watched::WithFlag`).
    fn kind_flag(&self, flag: &str) -> bool {
        match flag {
            "is-Argo-Rollouts" => self.is_argo_rollouts,
            other => unreachable!("no flag --{other} turns a workload kind on (see config::tests)"),
        }
    }

    fn webhook_url(&self) -> Result<Option<String>, Error> {
        let url = (!self.webhook_url.trim().is_empty()).then(|| self.webhook_url.trim().to_string());
        match url {
            Some(u) if !(u.starts_with("http://") || u.starts_with("https://")) => {
                Err(flag_err("webhook-url", format!("{u:?} is not an http(s) URL")))
            }
            u => Ok(u),
        }
    }

    /// Warnings about flags accepted for compatibility that change nothing here.
    fn notices(&self, reload: &crate::cli::ReloadArgs) -> Vec<String> {
        let mut notices = Vec::new();
        if self.enable_pprof {
            notices.push("--enable-pprof is accepted for compatibility and has no effect".to_string());
        }
        if reload.sync_after_restart {
            notices.push(
                "--sync-after-restart is always on in effect: changes made while stopped are applied exactly once"
                    .to_string(),
            );
        }
        notices
    }
}

impl SafetyArgs {
    /// The storm brake, the waves and the circuit breaker.
    fn limits(&self) -> Result<Limits, Error> {
        if self.halt_on_failed_rollouts > 0 && self.max_concurrent_rollouts == 0 {
            // Without waves every reload starts at once: there is nothing left to halt.
            return Err(flag_err("halt-on-failed-rollouts", "needs --max-concurrent-rollouts"));
        }
        Ok(Limits {
            brake: BrakeSettings {
                min_interval: self.min_reload_interval,
                flap_limit: self.flap_limit,
                flap_window: self.flap_window,
                settle: self.flap_settle,
                hold_max: self.flap_hold_max,
            },
            max_concurrent_rollouts: (self.max_concurrent_rollouts > 0).then_some(self.max_concurrent_rollouts),
            halt_on_failed_rollouts: (self.halt_on_failed_rollouts > 0).then_some(self.halt_on_failed_rollouts),
        })
    }
}

impl ProcessArgs {
    fn workers(&self) -> Result<usize, Error> {
        if self.workers == 0 {
            return Err(flag_err("workers", "must be at least 1"));
        }
        Ok(self.workers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use crate::config::selector::check_selector;
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
        assert_eq!(s.debounce, Duration::from_secs(3));
        assert_eq!(s.debounce_quiet, Duration::from_millis(400));
        assert_eq!(s.adoption_writes_per_second, 20);
        assert_eq!(s.rollout_timeout, Some(Duration::from_secs(600)));
        assert_eq!(s.limits.max_concurrent_rollouts, None, "unlimited, as Reloader");
        assert!(s.watch.configmaps && s.watch.secrets && !s.watch.helm_release_secrets);
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
        assert!(s.watch.configmaps && !s.watch.secrets);
        let s = parse(&["--is-Argo-Rollouts=true", "--dry-run", "--ignored-workload-types=jobs"]).unwrap();
        assert!(
            s.watches(WorkloadKind::Rollout)
                && s.dry_run
                && !s.watches(WorkloadKind::Job)
                && s.watches(WorkloadKind::CronJob)
        );
        assert!(s.notices.is_empty(), "Rollouts are supported: no warning {:?}", s.notices);
        let s = parse(&["--enable-csi-integration"]).unwrap();
        assert!(s.keys.csi && s.notices.is_empty(), "CSI is supported: no warning {:?}", s.notices);
        assert!(!parse(&["--enable-csi-integration=false"]).unwrap().keys.csi);
        assert!(!parse(&[]).unwrap().keys.csi, "off by default");
        let s = parse(&["--is-Argo-Rollouts", "false", "--metrics-addr=:9091"]).unwrap();
        assert!(!s.watches(WorkloadKind::Rollout));
        assert_eq!(s.metrics_addr, Some("0.0.0.0:9091".parse().unwrap()));
        let s = parse(&["--debounce=0"]).unwrap();
        assert_eq!(s.debounce, Duration::ZERO);
        let s = parse(&["--debounce=2s", "--debounce-quiet", "200ms"]).unwrap();
        assert_eq!((s.debounce, s.debounce_quiet), (Duration::from_secs(2), Duration::from_millis(200)));
        let s = parse(&["--debounce-quiet=0"]).unwrap();
        assert_eq!((s.debounce, s.debounce_quiet), (Duration::from_secs(3), Duration::ZERO));
        let s = parse(&["--adoption-writes-per-second=5"]).unwrap();
        assert_eq!(s.adoption_writes_per_second, 5);
        let s = parse(&["--adoption-writes-per-second", "0"]).unwrap();
        assert_eq!(s.adoption_writes_per_second, 0, "0: unlimited");
        assert_eq!(parse(&["--rollout-timeout=90s"]).unwrap().rollout_timeout, Some(Duration::from_secs(90)));
        assert_eq!(parse(&["--rollout-timeout=0"]).unwrap().rollout_timeout, None, "0: never");
        assert_eq!(parse(&["--max-concurrent-rollouts=5"]).unwrap().limits.max_concurrent_rollouts, Some(5));
        assert_eq!(parse(&["--max-concurrent-rollouts=0"]).unwrap().limits.max_concurrent_rollouts, None);
        let s = parse(&["--max-concurrent-rollouts=5", "--halt-on-failed-rollouts=3"]).unwrap();
        assert_eq!((s.limits.max_concurrent_rollouts, s.limits.halt_on_failed_rollouts), (Some(5), Some(3)));
        assert_eq!(parse(&[]).unwrap().limits.halt_on_failed_rollouts, None, "off by default");
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

    /// The leader-election timings: defaults derived from the lease, and the combinations
    /// client-go and Reloader refuse, refused with the flag to change.
    #[test]
    fn lease_timings_table() {
        let s = Duration::from_secs;
        let ms = Duration::from_millis;
        let ns = Duration::from_nanos;
        type Row =
            (&'static str, Duration, Option<Duration>, Option<Duration>, Result<(Duration, Duration), &'static str>);
        let rows: [Row; 12] = [
            ("defaults: client-go's 15s/10s/2s", s(15), None, None, Ok((s(10), s(2)))),
            ("a short lease keeps a retry under its deadline", s(3), None, None, Ok((s(2), s(1)))),
            ("the shortest lease", s(1), None, None, Ok((ns(666_666_666), ns(333_333_333)))),
            ("all given", s(60), Some(s(40)), Some(s(5)), Ok((s(40), s(5)))),
            ("renew deadline given", s(15), Some(s(12)), None, Ok((s(12), s(2)))),
            ("a fraction of a second cannot be stored", ms(1500), None, None, Err("--lease-duration: 1.5s")),
            ("under a second", ms(500), None, None, Err("--lease-duration")),
            ("beyond the Lease's int32", s(1 << 31), None, None, Err("--lease-duration")),
            (
                "deadline not shorter than the lease",
                s(15),
                Some(s(15)),
                None,
                Err("--leader-election-renew-deadline: 15s"),
            ),
            ("deadline zero", s(15), Some(s(0)), None, Err("--leader-election-renew-deadline")),
            ("deadline within 1.2 retries", s(15), Some(s(2)), Some(s(2)), Err("--leader-election-retry-period: 2s")),
            ("retry zero", s(15), None, Some(s(0)), Err("--leader-election-retry-period")),
        ];
        for (name, lease, renew, retry, want) in rows {
            let got = lease_timings(lease, renew, retry).map_err(|e| e.to_string());
            match (got, want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{name}"),
                (Err(got), Err(want)) => assert!(got.starts_with(want), "{name}: {got}"),
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
        // The flags reach the settings, Reloader's name for the lease included.
        let ha = |args: &[&str]| {
            let mut all = vec!["--enable-ha", "--pod-name=p", "--pod-namespace=n"];
            all.extend_from_slice(args);
            parse(&all).map(|s| s.ha.expect("ha"))
        };
        let h = ha(&["--leader-election-lease-duration=30s", "--leader-election-renew-deadline=20s"]).unwrap();
        assert_eq!((h.lease_duration, h.renew_deadline, h.retry_period), (s(30), s(20), s(2)));
        let h = ha(&["--lease-duration=6s"]).unwrap();
        assert_eq!((h.lease_duration, h.renew_deadline, h.retry_period), (s(6), s(4), s(2)));
        assert!(ha(&["--leader-election-retry-period=9s"]).unwrap_err().contains("retry-period"));
        // Without --enable-ha the timings are not used, so not checked (as in Reloader).
        assert!(parse(&["--leader-election-renew-deadline=1h"]).unwrap().ha.is_none());
    }

    #[test]
    fn every_kind_is_watched_by_default_or_by_its_own_flag() {
        let all = parse(&["--is-Argo-Rollouts"]).unwrap();
        for k in WorkloadKind::ALL {
            // A kind naming a flag `kind_flag` does not know would stop the controller at start.
            if let Watched::WithFlag { flag, .. } = k.info().watched {
                assert!(Cli::try_parse_from(["reloader", &format!("--{flag}")]).is_ok(), "{k}: --{flag}");
                assert!(all.watches(*k), "{k} with --{flag}");
            } else {
                assert!(parse(&[]).unwrap().watches(*k), "{k} by default");
            }
        }
        let none = parse(&["--ignored-workload-types=jobs,cronjobs"]).unwrap();
        assert_eq!(none.watch.kinds, [WorkloadKind::Deployment, WorkloadKind::StatefulSet, WorkloadKind::DaemonSet]);
    }
}
