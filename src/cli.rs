//! The command line: Reloader's flags with the same names (each also settable from an
//! environment variable), this project's own, and the `explain` and `status` subcommands.
//! `config` turns them into settings.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::core::decide::patch::Strategy;
use crate::core::model::keys::parse_go_bool;

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
    Explain(Box<ExplainArgs>),
    /// One line per annotated workload: up to date, rolling, failed, waiting, deferred, held,
    /// halted, paused or new, and since when.
    Status(Box<StatusArgs>),
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

fn per_second(s: &str) -> Result<u32, String> {
    s.trim().parse().map_err(|_| format!("{s:?} is not a whole number of writes per second (0: unlimited)"))
}

/// Strips the literal quotes Reloader's chart puts around some values (pflag's CSV parser
/// removes them too).
fn unquote(s: &str) -> Result<String, String> {
    Ok(s.trim().trim_matches('"').to_string())
}

/// The controller's flags, in groups (flattened: on the command line they are one list, in
/// this order).
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub(crate) policy: PolicyArgs,
    #[command(flatten)]
    pub(crate) log: LogArgs,
    #[command(flatten)]
    pub(crate) scope: ScopeArgs,
    #[command(flatten)]
    pub(crate) reload: ReloadArgs,
    #[command(flatten)]
    pub(crate) mode: ModeArgs,
    #[command(flatten)]
    pub(crate) safety: SafetyArgs,
    #[command(flatten)]
    pub(crate) process: ProcessArgs,
}

/// What governs a workload: Reloader's annotation keys, and `--auto-reload-all`.
#[derive(Debug, Clone, Args)]
pub struct PolicyArgs {
    /// Reload every workload for the sources it uses, unless it opts out with auto: "false".
    #[arg(long, env = "RELOADER_AUTO_RELOAD_ALL", default_value = "false", num_args = 0..=1, default_missing_value = "true", value_parser = go_bool)]
    pub(crate) auto_reload_all: bool,
    /// Annotation key for named ConfigMap reloads.
    #[arg(long, env = "RELOADER_CONFIGMAP_ANNOTATION", default_value = "configmap.reloader.stakater.com/reload")]
    pub(crate) configmap_annotation: String,
    /// Annotation key for named Secret reloads.
    #[arg(long, env = "RELOADER_SECRET_ANNOTATION", default_value = "secret.reloader.stakater.com/reload")]
    pub(crate) secret_annotation: String,
    /// Annotation key for auto reloads.
    #[arg(long, env = "RELOADER_AUTO_ANNOTATION", default_value = "reloader.stakater.com/auto")]
    pub(crate) auto_annotation: String,
    /// Annotation key, on a ConfigMap or Secret, that makes it never trigger a reload.
    #[arg(long, env = "RELOADER_IGNORE_ANNOTATION", default_value = "reloader.stakater.com/ignore")]
    pub(crate) ignore_annotation: String,
    /// Annotation key for ConfigMap-only auto reloads.
    #[arg(long, env = "RELOADER_CONFIGMAP_AUTO_ANNOTATION", default_value = "configmap.reloader.stakater.com/auto")]
    pub(crate) configmap_auto_annotation: String,
    /// Annotation key for Secret-only auto reloads.
    #[arg(long, env = "RELOADER_SECRET_AUTO_ANNOTATION", default_value = "secret.reloader.stakater.com/auto")]
    pub(crate) secret_auto_annotation: String,
    /// Annotation key for search mode on workloads.
    #[arg(long, env = "RELOADER_AUTO_SEARCH_ANNOTATION", default_value = "reloader.stakater.com/search")]
    pub(crate) auto_search_annotation: String,
    /// Annotation key, on a ConfigMap or Secret, that search-mode workloads match.
    #[arg(long, env = "RELOADER_SEARCH_MATCH_ANNOTATION", default_value = "reloader.stakater.com/match")]
    pub(crate) search_match_annotation: String,
    /// Annotation key for the pause period of Deployments.
    #[arg(
        long,
        env = "RELOADER_PAUSE_DEPLOYMENT_ANNOTATION",
        default_value = "deployment.reloader.stakater.com/pause-period"
    )]
    pub(crate) pause_deployment_annotation: String,
    /// Annotation key recording when a Deployment was paused.
    #[arg(
        long,
        env = "RELOADER_PAUSE_DEPLOYMENT_TIME_ANNOTATION",
        default_value = "deployment.reloader.stakater.com/paused-at"
    )]
    pub(crate) pause_deployment_time_annotation: String,
}

/// Logs.
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log format: "" or "text" (human-readable) or "json".
    #[arg(long, env = "RELOADER_LOG_FORMAT", default_value = "")]
    pub(crate) log_format: String,
    /// Log level: trace, debug, info, warn (warning), error (fatal and panic map to error).
    #[arg(long, env = "RELOADER_LOG_LEVEL", default_value = "info")]
    pub(crate) log_level: String,
}

/// What is watched: which sources and workload kinds, in which namespaces.
#[derive(Debug, Clone, Args)]
pub struct ScopeArgs {
    /// Which ConfigMaps/Secrets kind to ignore: configmaps or secrets (not both).
    #[arg(long, env = "RELOADER_RESOURCES_TO_IGNORE", value_delimiter = ',', value_parser = unquote)]
    pub(crate) resources_to_ignore: Vec<String>,
    /// Workload kinds not to reload: jobs, cronjobs.
    #[arg(long, env = "RELOADER_IGNORED_WORKLOAD_TYPES", value_delimiter = ',', value_parser = unquote)]
    pub(crate) ignored_workload_types: Vec<String>,
    /// Watch only these namespaces (one namespaced watch each, so Roles suffice).
    #[arg(long, env = "RELOADER_NAMESPACES", value_delimiter = ',', value_parser = unquote)]
    pub(crate) namespaces: Vec<String>,
    /// Namespaces to skip (cluster-wide mode only).
    #[arg(long, env = "RELOADER_NAMESPACES_TO_IGNORE", value_delimiter = ',', value_parser = unquote)]
    pub(crate) namespaces_to_ignore: Vec<String>,
    /// Only namespaces with these labels (cluster-wide mode only); followed live.
    #[arg(long, env = "RELOADER_NAMESPACE_SELECTOR", value_delimiter = ',', value_parser = unquote)]
    pub(crate) namespace_selector: Vec<String>,
    /// Only ConfigMaps and Secrets with these labels (applied by the API server).
    #[arg(long, env = "RELOADER_RESOURCE_LABEL_SELECTOR", value_delimiter = ',', value_parser = unquote)]
    pub(crate) resource_label_selector: Vec<String>,
    /// Single-namespace mode (when --namespaces is empty).
    #[arg(long = "kubernetes-namespace", env = "KUBERNETES_NAMESPACE", hide = true)]
    pub(crate) kubernetes_namespace: Option<String>,
}

/// How a change is applied, and which changes count.
#[derive(Debug, Clone, Args)]
pub struct ReloadArgs {
    /// How a reload changes the pod template: annotations or env-vars.
    #[arg(long, env = "RELOADER_RELOAD_STRATEGY", value_enum, default_value = "annotations")]
    pub(crate) reload_strategy: Strategy,
    /// A source appearing counts as a change.
    #[arg(long, env = "RELOADER_RELOAD_ON_CREATE", default_value = "false", num_args = 0..=1, default_missing_value = "true", value_parser = go_bool)]
    pub(crate) reload_on_create: bool,
    /// A source disappearing counts as a change.
    #[arg(long, env = "RELOADER_RELOAD_ON_DELETE", default_value = "false", num_args = 0..=1, default_missing_value = "true", value_parser = go_bool)]
    pub(crate) reload_on_delete: bool,
    /// Accepted for compatibility; catch-up after a restart is always exact here.
    #[arg(long, env = "RELOADER_SYNC_AFTER_RESTART", default_value = "false", num_args = 0..=1, default_missing_value = "true", value_parser = go_bool)]
    pub(crate) sync_after_restart: bool,
}

/// Reloader's switches: Argo Rollouts, leader election, webhook mode, pprof, Secrets Store CSI.
#[derive(Debug, Clone, Args)]
pub struct ModeArgs {
    /// Argo Rollouts support: "true" to enable (exact string, as in Reloader).
    #[arg(long = "is-Argo-Rollouts", env = "RELOADER_IS_ARGO_ROLLOUTS", default_value = "false", num_args = 0..=1, default_missing_value = "true", value_parser = go_bool)]
    pub(crate) is_argo_rollouts: bool,
    /// Leader election; needs POD_NAME and POD_NAMESPACE.
    #[arg(long, env = "RELOADER_ENABLE_HA", default_value = "false", num_args = 0..=1, default_missing_value = "true", value_parser = go_bool)]
    pub(crate) enable_ha: bool,
    /// Send a webhook instead of reloading.
    #[arg(long, env = "RELOADER_WEBHOOK_URL", default_value = "")]
    pub(crate) webhook_url: String,
    /// Accepted for compatibility (Go pprof has no equivalent here).
    #[arg(long, env = "RELOADER_ENABLE_PPROF", default_value = "false", num_args = 0..=1, default_missing_value = "true", value_parser = go_bool)]
    pub(crate) enable_pprof: bool,
    /// Accepted for compatibility.
    #[arg(long, env = "RELOADER_PPROF_ADDR", default_value = ":6060")]
    pub(crate) pprof_addr: String,
    /// Reload workloads when the secrets the Secrets Store CSI driver mounts for a
    /// SecretProviderClass they use rotate (watches SecretProviderClassPodStatuses and
    /// SecretProviderClasses, if installed).
    #[arg(long, env = "RELOADER_ENABLE_CSI_INTEGRATION", default_value = "false", num_args = 0..=1, default_missing_value = "true", value_parser = go_bool)]
    pub(crate) enable_csi_integration: bool,
}

/// This project's own: dry run, the storm brake, the debounce, adoption pacing, rollout outcomes, waves and the circuit breaker.
#[derive(Debug, Clone, Args)]
pub struct SafetyArgs {
    /// Decide everything, write nothing: log and count each write that would happen.
    #[arg(long, env = "RELOADER_DRY_RUN", default_value = "false", num_args = 0..=1, default_missing_value = "true", value_parser = go_bool)]
    pub(crate) dry_run: bool,
    /// After two reloads of a workload within --flap-window, the next waits this long after the
    /// previous, doubling for each further one; changes in between fold into it. 0: no spacing.
    #[arg(long, env = "RELOADER_MIN_RELOAD_INTERVAL", default_value = "10s", value_parser = duration)]
    pub(crate) min_reload_interval: Duration,
    /// A workload that would reload more than this many times within --flap-window is held (0: never).
    #[arg(long, env = "RELOADER_FLAP_LIMIT", default_value = "5")]
    pub(crate) flap_limit: usize,
    /// The window of --flap-limit.
    #[arg(long, env = "RELOADER_FLAP_WINDOW", default_value = "10m", value_parser = duration)]
    pub(crate) flap_window: Duration,
    /// A waiting or held reload goes once its sources stayed unchanged for twice their longest
    /// recent pause, and at most this long.
    #[arg(long, env = "RELOADER_FLAP_SETTLE", default_value = "2m", value_parser = duration)]
    pub(crate) flap_settle: Duration,
    // The default: with five reloads in the first minutes and one per 30 minutes after, a
    // source that never stops flapping rolls its workload at most 6 times in its first hour
    // and twice an hour after, and the pods are never more than 30 minutes behind it.
    /// A held workload still reloads once per this interval with its sources' latest content. 0:
    /// only once they are quiet.
    #[arg(long, env = "RELOADER_FLAP_HOLD_MAX", default_value = "30m", value_parser = duration)]
    pub(crate) flap_hold_max: Duration,
    // The defaults, measured on the loaded 2-core test machine: `kubectl apply -f dir/`
    // (client-side) writes one object every 60-80 ms, up to 180 ms with the CPUs busy;
    // server-side apply (`--server-side`) writes them under 10 ms apart. A 400 ms quiet window
    // folds such a batch into one rollout with room to spare, and a lone change is patched
    // about 450 ms after it is seen, which matters to nobody whose rollout takes seconds. The
    // cap, 3 s, covers a batch of 10 at 180 ms each and bounds what a steady stream can delay.
    /// The most a source change waits for more changes to the same workload; 0: no wait.
    #[arg(long, env = "RELOADER_DEBOUNCE", default_value = "3s", value_parser = duration)]
    pub(crate) debounce: Duration,
    /// A source change waits this long for another to the same workload; each restarts the
    /// wait, up to --debounce after the first. 0: no wait.
    #[arg(long, env = "RELOADER_DEBOUNCE_QUIET", default_value = "400ms", value_parser = duration)]
    pub(crate) debounce_quiet: Duration,
    // The default is kube-controller-manager's own client rate (--kube-api-qps=20): what the
    // cluster's controllers are expected to write at. Waiting costs nothing but time (a change
    // to a workload not yet adopted is decided at once, from its first sight), and 10,000
    // workloads take about 8 minutes 20 s.
    /// Records written to adopt workloads (first sight, no rollout), at most this many a
    /// second, evenly spaced; reloads are never held back by it. 0: unlimited.
    #[arg(long, env = "RELOADER_ADOPTION_WRITES_PER_SECOND", default_value = "20", value_parser = per_second)]
    pub(crate) adoption_writes_per_second: u32,
    // The default is Kubernetes' own default progressDeadlineSeconds (600 s), so StatefulSets
    // and DaemonSets, which have no deadline of their own, are bounded like Deployments.
    /// A rollout a reload started that is not complete and available this long after the
    /// reload counts as failed (Deployments also fail on their own progressDeadlineSeconds). 0: never.
    #[arg(long, env = "RELOADER_ROLLOUT_TIMEOUT", default_value = "10m", value_parser = duration)]
    pub(crate) rollout_timeout: Duration,
    // The default keeps Reloader's behaviour: every reload starts at once.
    /// At most this many rollouts started by reloads in progress at once, cluster-wide; the
    /// other reloads wait, oldest change first. 0: unlimited.
    #[arg(long, env = "RELOADER_MAX_CONCURRENT_ROLLOUTS", default_value = "0")]
    pub(crate) max_concurrent_rollouts: usize,
    // Off by default: a drop-in replacement rolls what Reloader rolls.
    /// With --max-concurrent-rollouts: once this many rollouts caused by one source change
    /// failed, start no more for that change until the source changes again or carries
    /// reloader.kube-reloader.dev/release-hold naming it. 0: off.
    #[arg(long, env = "RELOADER_HALT_ON_FAILED_ROLLOUTS", default_value = "0")]
    pub(crate) halt_on_failed_rollouts: usize,
}

/// The process: Helm release Secrets, workers, the probe and metrics server, the Lease and its identity.
#[derive(Debug, Clone, Args)]
pub struct ProcessArgs {
    /// Watch Helm release Secrets too (type helm.sh/release.v1; excluded by default).
    #[arg(long, env = "RELOADER_WATCH_HELM_RELEASE_SECRETS", default_value = "false", num_args = 0..=1, default_missing_value = "true", value_parser = go_bool)]
    pub(crate) watch_helm_release_secrets: bool,
    /// How the watches list what exists at start: `stream` (streaming lists, one request per
    /// resource), `page` (paged LISTs), or `auto` (stream where the API server serves it).
    #[arg(long, env = "RELOADER_INITIAL_LIST", default_value = "auto", value_parser = ["auto", "stream", "page"])]
    pub(crate) initial_list: String,
    /// Parallel workload reconciles, and the most writes in flight: below it, the writes in
    /// flight adapt to the API server's answers (start at 4, grow while it keeps pace, shrink
    /// when it slows down or answers 429).
    #[arg(long, env = "RELOADER_WORKERS", default_value = "32")]
    pub(crate) workers: usize,
    /// Address of the metrics and probe server (`off` for none).
    #[arg(long, env = "RELOADER_METRICS_ADDR", default_value = "0.0.0.0:9090", value_parser = listen_addr)]
    pub(crate) metrics_addr: ListenAddr,
    /// Name of the Lease used for leader election (in POD_NAMESPACE).
    #[arg(long, env = "RELOADER_LEASE_NAME", default_value = "kube-reloader-lock")]
    pub(crate) lease_name: String,
    /// How long a leader's lease lasts without renewal, in whole seconds; a standby takes over
    /// after it. --leader-election-lease-duration is the same flag (Reloader's name).
    #[arg(long, visible_alias = "leader-election-lease-duration", env = "RELOADER_LEASE_DURATION", default_value = "15s", value_parser = duration)]
    pub(crate) lease_duration: Duration,
    /// How long after its last renewal the leader stops writing; shorter than the lease
    /// duration. Default: two thirds of it (10s at 15s).
    #[arg(long, env = "RELOADER_LEADER_ELECTION_RENEW_DEADLINE", value_parser = duration)]
    pub(crate) leader_election_renew_deadline: Option<Duration>,
    /// How often a standby, or a leader whose renewal failed, tries again; the renew deadline
    /// must exceed 1.2 times it. Default: 2s, or half the renew deadline if that is less.
    #[arg(long, env = "RELOADER_LEADER_ELECTION_RETRY_PERIOD", value_parser = duration)]
    pub(crate) leader_election_retry_period: Option<Duration>,
    /// This replica's identity for leader election.
    #[arg(long = "pod-name", env = "POD_NAME", hide = true)]
    pub(crate) pod_name: Option<String>,
    /// The namespace holding the Lease.
    #[arg(long = "pod-namespace", env = "POD_NAMESPACE", hide = true)]
    pub(crate) pod_namespace: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// The namespace (default: the kubeconfig context's).
    #[arg(short = 'n', long, conflicts_with = "all_namespaces")]
    pub namespace: Option<String>,
    /// Every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    pub output: Output,
    /// The controller's flags, so the answer uses the same annotation keys and options.
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Clone, Args)]
pub struct ExplainArgs {
    /// The workload, as KIND/NAME (deployment/web, sts/db, cronjob/nightly, …).
    pub target: String,
    /// Its namespace (default: the kubeconfig context's).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    pub output: Output,
    /// The controller's flags, so the answer uses the same annotation keys and options.
    #[command(flatten)]
    pub run: RunArgs,
}
