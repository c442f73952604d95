//! Command line and environment: Reloader's flags with the same names and meanings (each also
//! settable from an environment variable), this project's own, and their validation into
//! [`Settings`]. Invalid values stop start-up with a message naming the flag.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::alerts::AlertConfig;
use crate::brake::BrakeSettings;
use crate::decide::Options;
use crate::leader::HaSettings;
use crate::patch::Strategy;
use crate::policy::{Keys, parse_go_bool};

#[derive(Debug, Parser)]
#[command(name = "reloader", version, about = "Rolls workloads when the ConfigMaps and Secrets they use change")]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the controller (the default).
    Run(Box<RunArgs>),
    /// Explain why a workload did or did not reload, and what the controller would do now.
    Explain(Box<crate::explain::ExplainArgs>),
}

fn go_bool(s: &str) -> Result<bool, String> {
    parse_go_bool(s).ok_or_else(|| format!("{s:?} is not a boolean; use true or false"))
}

/// A listen address, or none (`off`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenAddr(pub Option<SocketAddr>);

fn listen_addr(s: &str) -> Result<ListenAddr, String> {
    if s.is_empty() || s == "off" {
        return Ok(ListenAddr(None));
    }
    // Go-style ":9090" means every interface.
    let full = if s.starts_with(':') { format!("0.0.0.0{s}") } else { s.to_string() };
    full.parse().map(|a| ListenAddr(Some(a))).map_err(|e| format!("{s:?} is not an address like 0.0.0.0:9090 ({e})"))
}

fn duration(s: &str) -> Result<Duration, String> {
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(s).map_err(|e| format!("{s:?} is not a duration like 500ms, 10s or 1m ({e})"))
}

/// Strips the literal quotes Reloader's chart puts around some values (pflag's CSV parser
/// removes them too).
fn unquote(s: &str) -> Result<String, String> {
    Ok(s.trim().trim_matches('"').to_string())
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Reload every workload for the sources it uses, unless it opts out with auto: "false".
    #[arg(long, env = "RELOADER_AUTO_RELOAD_ALL", default_value = "false", num_args = 0..=1, default_missing_value = "true", value_parser = go_bool)]
    pub auto_reload_all: bool,

    /// Annotation key for named ConfigMap reloads.
    #[arg(long, env = "RELOADER_CONFIGMAP_ANNOTATION", default_value = "configmap.reloader.stakater.com/reload")]
    pub configmap_annotation: String,
    /// Annotation key for named Secret reloads.
    #[arg(long, env = "RELOADER_SECRET_ANNOTATION", default_value = "secret.reloader.stakater.com/reload")]
    pub secret_annotation: String,
    /// Annotation key for auto reloads.
    #[arg(long, env = "RELOADER_AUTO_ANNOTATION", default_value = "reloader.stakater.com/auto")]
    pub auto_annotation: String,
    /// Annotation key, on a ConfigMap or Secret, that makes it never trigger a reload.
    #[arg(long, env = "RELOADER_IGNORE_ANNOTATION", default_value = "reloader.stakater.com/ignore")]
    pub ignore_annotation: String,
    /// Annotation key for ConfigMap-only auto reloads.
    #[arg(long, env = "RELOADER_CONFIGMAP_AUTO_ANNOTATION", default_value = "configmap.reloader.stakater.com/auto")]
    pub configmap_auto_annotation: String,
    /// Annotation key for Secret-only auto reloads.
    #[arg(long, env = "RELOADER_SECRET_AUTO_ANNOTATION", default_value = "secret.reloader.stakater.com/auto")]
    pub secret_auto_annotation: String,
    /// Annotation key for search mode on workloads.
    #[arg(long, env = "RELOADER_AUTO_SEARCH_ANNOTATION", default_value = "reloader.stakater.com/search")]
    pub auto_search_annotation: String,
    /// Annotation key, on a ConfigMap or Secret, that search-mode workloads match.
    #[arg(long, env = "RELOADER_SEARCH_MATCH_ANNOTATION", default_value = "reloader.stakater.com/match")]
    pub search_match_annotation: String,
    /// Annotation key for the pause period of Deployments.
    #[arg(
        long,
        env = "RELOADER_PAUSE_DEPLOYMENT_ANNOTATION",
        default_value = "deployment.reloader.stakater.com/pause-period"
    )]
    pub pause_deployment_annotation: String,
    /// Annotation key recording when a Deployment was paused.
    #[arg(
        long,
        env = "RELOADER_PAUSE_DEPLOYMENT_TIME_ANNOTATION",
        default_value = "deployment.reloader.stakater.com/paused-at"
    )]
    pub pause_deployment_time_annotation: String,

    /// Log format: "" or "text" (human-readable) or "json".
    #[arg(long, env = "RELOADER_LOG_FORMAT", default_value = "")]
    pub log_format: String,
    /// Log level: trace, debug, info, warn (warning), error (fatal and panic map to error).
    #[arg(long, env = "RELOADER_LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// Which ConfigMaps/Secrets kind to ignore: configmaps or secrets (not both).
    #[arg(long, env = "RELOADER_RESOURCES_TO_IGNORE", value_delimiter = ',', value_parser = unquote)]
    pub resources_to_ignore: Vec<String>,
    /// Workload kinds not to reload: jobs, cronjobs.
    #[arg(long, env = "RELOADER_IGNORED_WORKLOAD_TYPES", value_delimiter = ',', value_parser = unquote)]
    pub ignored_workload_types: Vec<String>,
    /// Watch only these namespaces (one namespaced watch each, so Roles suffice).
    #[arg(long, env = "RELOADER_NAMESPACES", value_delimiter = ',', value_parser = unquote)]
    pub namespaces: Vec<String>,
    /// Namespaces to skip (cluster-wide mode only).
    #[arg(long, env = "RELOADER_NAMESPACES_TO_IGNORE", value_delimiter = ',', value_parser = unquote)]
    pub namespaces_to_ignore: Vec<String>,
    /// Only namespaces with these labels (cluster-wide mode only); followed live.
    #[arg(long, env = "RELOADER_NAMESPACE_SELECTOR", value_delimiter = ',', value_parser = unquote)]
    pub namespace_selector: Vec<String>,
    /// Only ConfigMaps and Secrets with these labels (applied by the API server).
    #[arg(long, env = "RELOADER_RESOURCE_LABEL_SELECTOR", value_delimiter = ',', value_parser = unquote)]
    pub resource_label_selector: Vec<String>,

    /// How a reload changes the pod template: annotations or env-vars.
    #[arg(long, env = "RELOADER_RELOAD_STRATEGY", value_enum, default_value = "annotations")]
    pub reload_strategy: Strategy,
    /// A source appearing counts as a change.
    #[arg(long, env = "RELOADER_RELOAD_ON_CREATE", default_value = "false", num_args = 0..=1, default_missing_value = "true", value_parser = go_bool)]
    pub reload_on_create: bool,
    /// A source disappearing counts as a change.
    #[arg(long, env = "RELOADER_RELOAD_ON_DELETE", default_value = "false", num_args = 0..=1, default_missing_value = "true", value_parser = go_bool)]
    pub reload_on_delete: bool,
    /// Accepted for compatibility; catch-up after a restart is always exact here.
    #[arg(long, env = "RELOADER_SYNC_AFTER_RESTART", default_value = "false", num_args = 0..=1, default_missing_value = "true", value_parser = go_bool)]
    pub sync_after_restart: bool,

    /// Argo Rollouts support: "true" to enable (exact string, as in Reloader).
    #[arg(long = "is-Argo-Rollouts", env = "RELOADER_IS_ARGO_ROLLOUTS", default_value = "false", num_args = 0..=1, default_missing_value = "true", value_parser = go_bool)]
    pub is_argo_rollouts: bool,
    /// Leader election; needs POD_NAME and POD_NAMESPACE.
    #[arg(long, env = "RELOADER_ENABLE_HA", default_value = "false", num_args = 0..=1, default_missing_value = "true", value_parser = go_bool)]
    pub enable_ha: bool,
    /// Send a webhook instead of reloading.
    #[arg(long, env = "RELOADER_WEBHOOK_URL", default_value = "")]
    pub webhook_url: String,
    /// Accepted for compatibility (Go pprof has no equivalent here).
    #[arg(long, env = "RELOADER_ENABLE_PPROF", default_value = "false", num_args = 0..=1, default_missing_value = "true", value_parser = go_bool)]
    pub enable_pprof: bool,
    /// Accepted for compatibility.
    #[arg(long, env = "RELOADER_PPROF_ADDR", default_value = ":6060")]
    pub pprof_addr: String,
    /// Accepted for compatibility; SecretProviderClass (CSI) reloads are not supported.
    #[arg(long, env = "RELOADER_ENABLE_CSI_INTEGRATION", default_value = "false", num_args = 0..=1, default_missing_value = "true", value_parser = go_bool)]
    pub enable_csi_integration: bool,

    /// Decide everything, write nothing: log and count each write that would happen.
    #[arg(long, env = "RELOADER_DRY_RUN", default_value = "false", num_args = 0..=1, default_missing_value = "true", value_parser = go_bool)]
    pub dry_run: bool,
    /// A workload is reloaded at most once per this interval; changes in between fold into the next reload.
    #[arg(long, env = "RELOADER_MIN_RELOAD_INTERVAL", default_value = "10s", value_parser = duration)]
    pub min_reload_interval: Duration,
    /// A workload that would reload more than this many times within --flap-window is held (0: never).
    #[arg(long, env = "RELOADER_FLAP_LIMIT", default_value = "5")]
    pub flap_limit: usize,
    /// The window of --flap-limit.
    #[arg(long, env = "RELOADER_FLAP_WINDOW", default_value = "10m", value_parser = duration)]
    pub flap_window: Duration,
    /// A held workload is released once its sources stayed unchanged this long.
    #[arg(long, env = "RELOADER_FLAP_SETTLE", default_value = "2m", value_parser = duration)]
    pub flap_settle: Duration,

    /// Changes to one workload's sources within this window give one rollout.
    #[arg(long, env = "RELOADER_DEBOUNCE", default_value = "500ms", value_parser = duration)]
    pub debounce: Duration,
    /// Watch Helm release Secrets too (type helm.sh/release.v1; excluded by default).
    #[arg(long, env = "RELOADER_WATCH_HELM_RELEASE_SECRETS", default_value = "false", num_args = 0..=1, default_missing_value = "true", value_parser = go_bool)]
    pub watch_helm_release_secrets: bool,
    /// Parallel workload reconciles.
    #[arg(long, env = "RELOADER_WORKERS", default_value = "4")]
    pub workers: usize,
    /// Address of the metrics and probe server (`off` for none).
    #[arg(long, env = "RELOADER_METRICS_ADDR", default_value = "0.0.0.0:9090", value_parser = listen_addr)]
    pub metrics_addr: ListenAddr,
    /// Name of the Lease used for leader election (in POD_NAMESPACE).
    #[arg(long, env = "RELOADER_LEASE_NAME", default_value = "kube-reloader-lock")]
    pub lease_name: String,
    /// How long a leader's lease lasts without renewal; a standby takes over after it.
    #[arg(long, env = "RELOADER_LEASE_DURATION", default_value = "15s", value_parser = duration)]
    pub lease_duration: Duration,
    /// This replica's identity for leader election.
    #[arg(long = "pod-name", env = "POD_NAME", hide = true)]
    pub pod_name: Option<String>,
    /// The namespace holding the Lease.
    #[arg(long = "pod-namespace", env = "POD_NAMESPACE", hide = true)]
    pub pod_namespace: Option<String>,

    /// Single-namespace mode (when --namespaces is empty).
    #[arg(long = "kubernetes-namespace", env = "KUBERNETES_NAMESPACE", hide = true)]
    pub kubernetes_namespace: Option<String>,
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
    pub keys: Keys,
    pub auto_reload_all: bool,
    pub scope: Scope,
    pub resource_label_selector: Option<String>,
    pub watch_configmaps: bool,
    pub watch_secrets: bool,
    pub watch_helm_release_secrets: bool,
    pub strategy: Strategy,
    pub options: Options,
    pub debounce: Duration,
    pub workers: usize,
    pub metrics_addr: Option<SocketAddr>,
    pub ha: Option<HaSettings>,
    pub webhook_url: Option<String>,
    pub alert: Option<AlertConfig>,
    /// `METRICS_COUNT_BY_NAMESPACE=enabled`.
    pub count_by_namespace: bool,
    pub dry_run: bool,
    pub brake: BrakeSettings,
    pub ignore_jobs: bool,
    pub ignore_cronjobs: bool,
    pub is_argo_rollouts: bool,
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

/// A start-up error naming the flag and what it accepts.
#[derive(Debug, thiserror::Error)]
#[error("--{flag}: {message}")]
pub struct FlagError {
    pub flag: &'static str,
    pub message: String,
}

fn flag_err(flag: &'static str, message: impl Into<String>) -> FlagError {
    FlagError { flag, message: message.into() }
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

fn validate_selector(flag: &'static str, sel: &str) -> Result<(), FlagError> {
    // A light syntax check; the API server is the judge and rejects the watch otherwise.
    let ok = sel.split(',').all(|t| {
        let t = t.trim();
        !t.is_empty() && t.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=!() ,".contains(c) || c == ' ')
    }) || sel.contains(" in ")
        || sel.contains(" notin ");
    if ok { Ok(()) } else { Err(flag_err(flag, format!("{sel:?} is not a valid label selector"))) }
}

impl RunArgs {
    pub fn settings(&self) -> Result<Settings, FlagError> {
        let keys = Keys {
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
        };

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
        for t in &self.ignored_workload_types {
            if !matches!(t.as_str(), "jobs" | "cronjobs") {
                return Err(flag_err(
                    "ignored-workload-types",
                    format!("accepts 'jobs', 'cronjobs', or both, not '{t}'"),
                ));
            }
        }

        let namespaces: Vec<String> = self.namespaces.iter().filter(|n| !n.is_empty()).cloned().collect();
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
        let resource_label_selector = normalise_selector(&self.resource_label_selector);
        if let Some(s) = &resource_label_selector {
            validate_selector("resource-label-selector", s)?;
        }

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
        if self.workers == 0 {
            return Err(flag_err("workers", "must be at least 1"));
        }
        let mut notices = Vec::new();
        if self.enable_pprof {
            notices.push("--enable-pprof is accepted for compatibility and has no effect".to_string());
        }
        if self.enable_csi_integration {
            notices.push(
                "--enable-csi-integration: SecretProviderClass reloads are not supported; ignoring it".to_string(),
            );
        }
        if self.sync_after_restart {
            notices.push(
                "--sync-after-restart is always on in effect: changes made while stopped are applied exactly once"
                    .to_string(),
            );
        }
        let ha = if self.enable_ha {
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
        };
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
            workers: self.workers,
            metrics_addr: self.metrics_addr.0,
            ha,
            webhook_url,
            alert,
            count_by_namespace: std::env::var("METRICS_COUNT_BY_NAMESPACE").as_deref() == Ok("enabled"),
            dry_run: self.dry_run,
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

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
        let s = parse(&["--is-Argo-Rollouts", "false", "--metrics-addr=:9091"]).unwrap();
        assert!(!s.is_argo_rollouts);
        assert_eq!(s.metrics_addr, Some("0.0.0.0:9091".parse().unwrap()));
        let s = parse(&["--debounce=0"]).unwrap();
        assert_eq!(s.debounce, Duration::ZERO);
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
            (vec!["--no-such-flag"], "no-such-flag"),
            (vec!["--enable-ha"], "POD_NAME"),
            (vec!["--enable-ha", "--pod-name=p"], "POD_NAMESPACE"),
            (vec!["--webhook-url=ftp://x"], "webhook-url"),
            (vec!["--metrics-addr=nowhere"], "metrics-addr"),
        ];
        for (args, flag) in cases {
            let err = parse(&args).expect_err(flag);
            assert!(err.contains(flag), "{args:?}: {err}");
        }
    }
}
