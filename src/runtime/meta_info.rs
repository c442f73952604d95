//! The `reloader-meta-info` ConfigMap Stakater Reloader publishes at start: its build, its
//! options and where it runs, in Reloader's shape, so whatever reads it (a dashboard, an
//! inventory script, a support bundle) keeps working after a switch. Written once at start
//! when `RELOADER_NAMESPACE` is set (the chart and `deploy/` set it); a failure is a warning
//! and nothing else.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use serde::Serialize;
use tracing::{info, warn};

use crate::cli::RunArgs;
use crate::core::decide::patch::Strategy;
use crate::core::kinds::rollout::ROLLOUT_STRATEGY;
use crate::core::model::keys::{CONFIGMAP_EXCLUDE, SECRET_EXCLUDE, SPC_AUTO, SPC_EXCLUDE, SPC_RELOAD};
use crate::core::model::record::FIELD_MANAGER;

/// The ConfigMap's name and label, as in Reloader.
pub const NAME: &str = "reloader-meta-info";
pub const LABEL: &str = "reloader.stakater.com/meta-info";

/// Reloader's `BuildInfo`, fields in its order. The commit and its time come from the build's
/// environment (`RELOADER_COMMIT`, `RELOADER_BUILD_DATE`), as Reloader's come from its linker
/// flags; `goVersion` is empty: no Go here.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BuildInfo {
    go_version: &'static str,
    release_version: &'static str,
    commit_hash: &'static str,
    commit_time: String,
    edition: &'static str,
}

/// Reloader's `ReloaderOptions`, fields in its order, from the flags as given.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Options<'a> {
    auto_reload_all: bool,
    configmap_update_on_change_annotation: &'a str,
    secret_update_on_change_annotation: &'a str,
    secret_provider_class_update_on_change_annotation: &'a str,
    reloader_auto_annotation: &'a str,
    ignore_resource_annotation: &'a str,
    configmap_reloader_auto_annotation: &'a str,
    secret_reloader_auto_annotation: &'a str,
    secret_provider_class_reloader_auto_annotation: &'a str,
    configmap_exclude_reloader_annotation: &'a str,
    secret_exclude_reloader_annotation: &'a str,
    secret_provider_class_exclude_reloader_annotation: &'a str,
    auto_search_annotation: &'a str,
    search_match_annotation: &'a str,
    rollout_strategy_annotation: &'a str,
    pause_deployment_annotation: &'a str,
    pause_deployment_time_annotation: &'a str,
    log_format: &'a str,
    log_level: &'a str,
    is_argo_rollouts: bool,
    reload_strategy: &'a str,
    reload_on_create: bool,
    reload_on_delete: bool,
    sync_after_restart: bool,
    #[serde(rename = "enableHA")]
    enable_ha: bool,
    #[serde(rename = "enableCSIIntegration")]
    enable_csi_integration: bool,
    webhook_url: &'a str,
    resources_to_ignore: &'a [String],
    workload_types_to_ignore: &'a [String],
    namespace_selectors: &'a [String],
    resource_selectors: &'a [String],
    namespaces_to_ignore: &'a [String],
    #[serde(rename = "enablePProf")]
    enable_pprof: bool,
    #[serde(rename = "pprofAddr")]
    pprof_addr: &'a str,
}

/// Reloader's `deploymentInfo`: an ObjectMeta as Go writes it (an empty name left out, the
/// creation time `null`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DeploymentInfo<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    name: &'a str,
    namespace: &'a str,
    creation_timestamp: Option<()>,
}

impl<'a> Options<'a> {
    fn from_args(a: &'a RunArgs) -> Options<'a> {
        let (p, m, r, s) = (&a.policy, &a.mode, &a.reload, &a.scope);
        Options {
            auto_reload_all: p.auto_reload_all,
            configmap_update_on_change_annotation: &p.configmap_annotation,
            secret_update_on_change_annotation: &p.secret_annotation,
            secret_provider_class_update_on_change_annotation: SPC_RELOAD,
            reloader_auto_annotation: &p.auto_annotation,
            ignore_resource_annotation: &p.ignore_annotation,
            configmap_reloader_auto_annotation: &p.configmap_auto_annotation,
            secret_reloader_auto_annotation: &p.secret_auto_annotation,
            secret_provider_class_reloader_auto_annotation: SPC_AUTO,
            configmap_exclude_reloader_annotation: CONFIGMAP_EXCLUDE,
            secret_exclude_reloader_annotation: SECRET_EXCLUDE,
            secret_provider_class_exclude_reloader_annotation: SPC_EXCLUDE,
            auto_search_annotation: &p.auto_search_annotation,
            search_match_annotation: &p.search_match_annotation,
            rollout_strategy_annotation: ROLLOUT_STRATEGY,
            pause_deployment_annotation: &p.pause_deployment_annotation,
            pause_deployment_time_annotation: &p.pause_deployment_time_annotation,
            log_format: &a.log.log_format,
            log_level: &a.log.log_level,
            is_argo_rollouts: m.is_argo_rollouts,
            reload_strategy: match r.reload_strategy {
                Strategy::Annotations => "annotations",
                Strategy::EnvVars => "env-vars",
            },
            reload_on_create: r.reload_on_create,
            reload_on_delete: r.reload_on_delete,
            sync_after_restart: r.sync_after_restart,
            enable_ha: m.enable_ha,
            enable_csi_integration: m.enable_csi_integration,
            webhook_url: &m.webhook_url,
            resources_to_ignore: &s.resources_to_ignore,
            workload_types_to_ignore: &s.ignored_workload_types,
            namespace_selectors: &s.namespace_selector,
            resource_selectors: &s.resource_label_selector,
            namespaces_to_ignore: &s.namespaces_to_ignore,
            enable_pprof: m.enable_pprof,
            pprof_addr: &m.pprof_addr,
        }
    }
}

/// An RFC 3339 build date as Go's `time.Time` writes it; its zero time when absent or bad.
fn commit_time(build_date: Option<&str>) -> String {
    build_date
        .and_then(|d| d.parse::<Timestamp>().ok())
        .map_or_else(|| "0001-01-01T00:00:00Z".to_string(), |t| t.to_string())
}

fn build_info() -> BuildInfo {
    BuildInfo {
        go_version: "",
        release_version: env!("CARGO_PKG_VERSION"),
        commit_hash: option_env!("RELOADER_COMMIT").unwrap_or("unknown"),
        commit_time: commit_time(option_env!("RELOADER_BUILD_DATE")),
        edition: "oss",
    }
}

/// Plain structs of strings, booleans and lists: serialising cannot fail.
fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// The ConfigMap for these flags, in `namespace`, naming the Deployment `deployment` (pure).
pub(crate) fn config_map(args: &RunArgs, namespace: &str, deployment: &str) -> ConfigMap {
    let deployment = DeploymentInfo { name: deployment, namespace, creation_timestamp: None };
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(NAME.into()),
            namespace: Some(namespace.into()),
            labels: Some(BTreeMap::from([(LABEL.to_string(), "reloader".to_string())])),
            ..Default::default()
        },
        data: Some(BTreeMap::from([
            ("buildInfo".to_string(), json(&build_info())),
            ("reloaderOptions".to_string(), json(&Options::from_args(args))),
            ("deploymentInfo".to_string(), json(&deployment)),
        ])),
        ..Default::default()
    }
}

/// Creates or updates the ConfigMap in the background, as Reloader does at start, when
/// `RELOADER_NAMESPACE` is set. Never fails the start: a refusal is a warning naming what to grant.
pub fn spawn(client: &kube::Client, args: &RunArgs) {
    let Some(namespace) = std::env::var("RELOADER_NAMESPACE").ok().filter(|n| !n.is_empty()) else {
        info!("RELOADER_NAMESPACE is not set, skipping meta info configmap creation");
        return;
    };
    let deployment = std::env::var("RELOADER_DEPLOYMENT_NAME").unwrap_or_default();
    let cm = config_map(args, &namespace, &deployment);
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
    tokio::spawn(async move {
        if let Err(e) = publish(&api, &cm).await {
            warn!(
                namespace = %namespace,
                error = %crate::error::api_message(&e),
                "cannot write the {NAME} ConfigMap (it needs get, create and update on it in that namespace); reloads are not affected"
            );
        }
    });
}

async fn publish(api: &Api<ConfigMap>, cm: &ConfigMap) -> Result<(), kube::Error> {
    let pp = PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
    if api.get_opt(NAME).await?.is_some() {
        info!("Meta info configmap already exists, updating it");
        // No resourceVersion: the last replica to start wins, as in Reloader.
        api.replace(NAME, &pp, cm).await?;
    } else {
        api.create(&pp, cm).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::Parser;
    use serde_json::Value;

    fn map(args: &[&str]) -> BTreeMap<String, String> {
        let cli = Cli::try_parse_from(std::iter::once("reloader").chain(args.iter().copied())).unwrap();
        let cm = config_map(&cli.run, "common-service", "reloader-reloader");
        assert_eq!(cm.metadata.name.as_deref(), Some("reloader-meta-info"));
        assert_eq!(cm.metadata.labels.unwrap()["reloader.stakater.com/meta-info"], "reloader");
        cm.data.unwrap()
    }

    /// Reloader's key order (`shared/spec/reloader-compat.md` §10), which Go keeps from its struct.
    const KEYS: [&str; 34] = [
        "autoReloadAll",
        "configmapUpdateOnChangeAnnotation",
        "secretUpdateOnChangeAnnotation",
        "secretProviderClassUpdateOnChangeAnnotation",
        "reloaderAutoAnnotation",
        "ignoreResourceAnnotation",
        "configmapReloaderAutoAnnotation",
        "secretReloaderAutoAnnotation",
        "secretProviderClassReloaderAutoAnnotation",
        "configmapExcludeReloaderAnnotation",
        "secretExcludeReloaderAnnotation",
        "secretProviderClassExcludeReloaderAnnotation",
        "autoSearchAnnotation",
        "searchMatchAnnotation",
        "rolloutStrategyAnnotation",
        "pauseDeploymentAnnotation",
        "pauseDeploymentTimeAnnotation",
        "logFormat",
        "logLevel",
        "isArgoRollouts",
        "reloadStrategy",
        "reloadOnCreate",
        "reloadOnDelete",
        "syncAfterRestart",
        "enableHA",
        "enableCSIIntegration",
        "webhookUrl",
        "resourcesToIgnore",
        "workloadTypesToIgnore",
        "namespaceSelectors",
        "resourceSelectors",
        "namespacesToIgnore",
        "enablePProf",
        "pprofAddr",
    ];

    #[test]
    fn the_options_have_reloaders_keys_in_its_order_and_the_flags_values() {
        let data = map(&["--reload-strategy=env-vars", "--is-Argo-Rollouts", "--resources-to-ignore=secrets"]);
        let text = &data["reloaderOptions"];
        let positions: Vec<usize> =
            KEYS.iter().map(|k| text.find(&format!("\"{k}\":")).unwrap_or_else(|| panic!("{k} in {text}"))).collect();
        assert!(positions.is_sorted(), "in Reloader's order: {text}");
        let v: Value = serde_json::from_str(text).unwrap();
        assert_eq!(v.as_object().unwrap().len(), KEYS.len(), "no other key: {text}");
        assert_eq!(v["reloadStrategy"], "env-vars");
        assert_eq!(v["isArgoRollouts"], true);
        assert_eq!(v["resourcesToIgnore"], serde_json::json!(["secrets"]));
        assert_eq!(v["workloadTypesToIgnore"], serde_json::json!([]));
        assert_eq!(v["reloaderAutoAnnotation"], "reloader.stakater.com/auto");
        assert_eq!(v["secretProviderClassExcludeReloaderAnnotation"], SPC_EXCLUDE);
        assert_eq!(v["rolloutStrategyAnnotation"], "reloader.stakater.com/rollout-strategy");
        assert_eq!(v["pprofAddr"], ":6060");
        assert_eq!(v["enableHA"], false);
    }

    #[test]
    fn build_and_deployment_info_as_go_writes_them() {
        let data = map(&[]);
        assert_eq!(
            data["deploymentInfo"],
            r#"{"name":"reloader-reloader","namespace":"common-service","creationTimestamp":null}"#
        );
        let build: Value = serde_json::from_str(&data["buildInfo"]).unwrap();
        let keys: Vec<&String> = build.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 5, "{build}");
        assert_eq!(build["releaseVersion"], env!("CARGO_PKG_VERSION"));
        assert_eq!(build["edition"], "oss");
        assert!(data["buildInfo"].starts_with(r#"{"goVersion":"","releaseVersion":"#), "{build}");
        for (given, want) in [
            (None, "0001-01-01T00:00:00Z"),
            (Some("unknown"), "0001-01-01T00:00:00Z"),
            (Some("2026-12-08T01:02:03Z"), "2026-12-08T01:02:03Z"),
        ] {
            assert_eq!(commit_time(given), want, "{given:?}");
        }
        let nameless = config_map(&Cli::try_parse_from(["reloader"]).unwrap().run, "ns", "");
        assert_eq!(nameless.data.unwrap()["deploymentInfo"], r#"{"namespace":"ns","creationTimestamp":null}"#);
    }
}
