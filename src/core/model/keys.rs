//! The annotation keys the controller reads: Reloader's, with the overridable ones set by
//! its flags. The policy parser (`policy`) and the sources (`source`) both read them.

use std::collections::BTreeMap;

use crate::core::model::source::{SourceFlags, SourceKind};

/// Annotation keys; the overridable ones follow Reloader's flags.
#[derive(Clone, Debug)]
pub(crate) struct Keys {
    pub(crate) auto: String,
    pub(crate) configmap_auto: String,
    pub(crate) secret_auto: String,
    pub(crate) configmap_reload: String,
    pub(crate) secret_reload: String,
    pub(crate) search: String,
    pub(crate) match_: String,
    pub(crate) ignore: String,
    pub(crate) pause_period: String,
    pub(crate) paused_at: String,
    /// `--enable-csi-integration`: SecretProviderClasses are sources, and the SecretProviderClass
    /// annotations (fixed keys, as in Reloader) are read. Off, they are not policy at all.
    pub(crate) csi: bool,
}

impl Keys {
    /// Whether a workload annotation is one the policy is parsed from.
    pub(crate) fn is_policy_key(&self, k: &str) -> bool {
        [&self.auto, &self.configmap_auto, &self.secret_auto, &self.configmap_reload, &self.secret_reload, &self.search]
            .iter()
            .any(|key| key.as_str() == k)
            || k == CONFIGMAP_EXCLUDE
            || k == SECRET_EXCLUDE
            || (self.csi && [SPC_AUTO, SPC_RELOAD, SPC_EXCLUDE].contains(&k))
    }
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
            csi: false,
        }
    }
}

/// Exclude keys are fixed in Reloader (no flag).
pub(crate) const CONFIGMAP_EXCLUDE: &str = "configmaps.exclude.reloader.stakater.com/reload";
pub(crate) const SECRET_EXCLUDE: &str = "secrets.exclude.reloader.stakater.com/reload";
pub(crate) const SPC_EXCLUDE: &str = "secretproviderclasses.exclude.reloader.stakater.com/reload";
/// SecretProviderClass typed auto and named reload: fixed in Reloader (no flag).
pub(crate) const SPC_AUTO: &str = "secretproviderclass.reloader.stakater.com/auto";
pub(crate) const SPC_RELOAD: &str = "secretproviderclass.reloader.stakater.com/reload";

impl Keys {
    pub(crate) fn typed_auto(&self, kind: SourceKind) -> &str {
        match kind {
            SourceKind::ConfigMap => &self.configmap_auto,
            SourceKind::Secret => &self.secret_auto,
            SourceKind::SecretProviderClass => SPC_AUTO,
        }
    }
    pub(crate) fn named(&self, kind: SourceKind) -> &str {
        match kind {
            SourceKind::ConfigMap => &self.configmap_reload,
            SourceKind::Secret => &self.secret_reload,
            SourceKind::SecretProviderClass => SPC_RELOAD,
        }
    }
    pub(crate) fn exclude(kind: SourceKind) -> &'static str {
        match kind {
            SourceKind::ConfigMap => CONFIGMAP_EXCLUDE,
            SourceKind::Secret => SECRET_EXCLUDE,
            SourceKind::SecretProviderClass => SPC_EXCLUDE,
        }
    }

    /// A source's `match` and `ignore` flags: whether its annotations say `match: "true"` /
    /// `ignore: "true"` (exact strings).
    pub(crate) fn flags(&self, annotations: Option<&BTreeMap<String, String>>) -> SourceFlags {
        let is_true = |k: &str| annotations.and_then(|a| a.get(k)).is_some_and(|v| v == "true");
        SourceFlags { matched: is_true(&self.match_), ignored: is_true(&self.ignore) }
    }
}

/// Go's `strconv.ParseBool`.
pub(crate) fn parse_go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}
