//! Which ConfigMaps, Secrets and SecretProviderClasses a pod template uses, and which container
//! uses each: Reloader's `getContainerUsingResource`, reproduced exactly (volumes, then volume
//! mounts, then env). A SecretProviderClass is used through a CSI volume's
//! `volumeAttributes.secretProviderClass` (the driver is not checked, as in Reloader), never
//! through env.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, PodSpec, Volume};

use crate::core::model::source::{SourceKind, SourceRef};

fn volume_uses(v: &Volume, kind: SourceKind, name: &str) -> bool {
    match kind {
        SourceKind::ConfigMap => {
            v.config_map.as_ref().is_some_and(|c| c.name == name)
                || v.projected.as_ref().is_some_and(|p| {
                    p.sources.iter().flatten().any(|s| s.config_map.as_ref().is_some_and(|c| c.name == name))
                })
        }
        SourceKind::Secret => {
            v.secret.as_ref().is_some_and(|s| s.secret_name.as_deref() == Some(name))
                || v.projected.as_ref().is_some_and(|p| {
                    p.sources.iter().flatten().any(|s| s.secret.as_ref().is_some_and(|c| c.name == name))
                })
        }
        SourceKind::SecretProviderClass => csi_class(v) == Some(name),
    }
}

/// The SecretProviderClass a CSI volume names.
fn csi_class(v: &Volume) -> Option<&str> {
    v.csi.as_ref()?.volume_attributes.as_ref()?.get(SPC_ATTRIBUTE).map(String::as_str)
}

const SPC_ATTRIBUTE: &str = "secretProviderClass";

fn mounts(c: &Container, volume: &str) -> bool {
    c.volume_mounts.iter().flatten().any(|m| m.name == volume)
}

fn env_uses(c: &Container, kind: SourceKind, name: &str) -> bool {
    let env = c.env.iter().flatten().any(|e| {
        let Some(from) = &e.value_from else { return false };
        match kind {
            SourceKind::ConfigMap => from.config_map_key_ref.as_ref().is_some_and(|r| r.name == name),
            SourceKind::Secret => from.secret_key_ref.as_ref().is_some_and(|r| r.name == name),
            SourceKind::SecretProviderClass => false,
        }
    });
    env || c.env_from.iter().flatten().any(|e| match kind {
        SourceKind::ConfigMap => e.config_map_ref.as_ref().is_some_and(|r| r.name == name),
        SourceKind::Secret => e.secret_ref.as_ref().is_some_and(|r| r.name == name),
        SourceKind::SecretProviderClass => false,
    })
}

/// The container Reloader attributes a source to, or `None` when the template does not use it
/// (no volume that some container mounts, no env reference). A use found only in init
/// containers is attributed to the first regular container.
pub(crate) fn container_using(spec: &PodSpec, kind: SourceKind, name: &str) -> Option<String> {
    let containers = &spec.containers;
    let init = spec.init_containers.as_deref().unwrap_or_default();
    let first = || containers.first().map(|c| c.name.clone());

    if let Some(vol) = spec.volumes.iter().flatten().find(|v| volume_uses(v, kind, name)) {
        if let Some(c) = containers.iter().find(|c| mounts(c, &vol.name)) {
            return Some(c.name.clone());
        }
        if init.iter().any(|c| mounts(c, &vol.name)) {
            return first();
        }
    }
    if let Some(c) = containers.iter().find(|c| env_uses(c, kind, name)) {
        return Some(c.name.clone());
    }
    if init.iter().any(|c| env_uses(c, kind, name)) {
        return first();
    }
    None
}

/// Every source the template uses, with the container each one is attributed to. Sources a
/// template merely declares (a volume nobody mounts) are not uses, as in Reloader.
/// SecretProviderClasses count only with `csi` (`--enable-csi-integration`).
pub(crate) fn references(spec: &PodSpec, csi: bool) -> BTreeMap<SourceRef, String> {
    let mut candidates: Vec<SourceRef> = Vec::new();
    for v in spec.volumes.iter().flatten() {
        if let Some(spc) = csi_class(v).filter(|_| csi) {
            candidates.push(SourceRef::new(SourceKind::SecretProviderClass, spc));
        }
        if let Some(c) = &v.config_map {
            candidates.push(SourceRef::new(SourceKind::ConfigMap, &c.name));
        }
        if let Some(name) = v.secret.as_ref().and_then(|s| s.secret_name.as_ref()) {
            candidates.push(SourceRef::new(SourceKind::Secret, name));
        }
        for s in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            if let Some(c) = &s.config_map {
                candidates.push(SourceRef::new(SourceKind::ConfigMap, &c.name));
            }
            if let Some(c) = &s.secret {
                candidates.push(SourceRef::new(SourceKind::Secret, &c.name));
            }
        }
    }
    for c in spec.containers.iter().chain(spec.init_containers.iter().flatten()) {
        for e in c.env.iter().flatten() {
            if let Some(from) = &e.value_from {
                if let Some(r) = &from.config_map_key_ref {
                    candidates.push(SourceRef::new(SourceKind::ConfigMap, &r.name));
                }
                if let Some(r) = &from.secret_key_ref {
                    candidates.push(SourceRef::new(SourceKind::Secret, &r.name));
                }
            }
        }
        for e in c.env_from.iter().flatten() {
            if let Some(r) = &e.config_map_ref {
                candidates.push(SourceRef::new(SourceKind::ConfigMap, &r.name));
            }
            if let Some(r) = &e.secret_ref {
                candidates.push(SourceRef::new(SourceKind::Secret, &r.name));
            }
        }
    }
    let mut out = BTreeMap::new();
    for r in candidates {
        if r.name.is_empty() || out.contains_key(&r) {
            continue;
        }
        if let Some(c) = container_using(spec, r.kind, &r.name) {
            out.insert(r, c);
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn spec(v: serde_json::Value) -> PodSpec {
        serde_json::from_value(v).expect("valid PodSpec")
    }

    fn cm(n: &str) -> SourceRef {
        SourceRef::new(SourceKind::ConfigMap, n)
    }
    fn sec(n: &str) -> SourceRef {
        SourceRef::new(SourceKind::Secret, n)
    }

    #[test]
    fn container_attribution_table() {
        struct Case {
            name: &'static str,
            spec: serde_json::Value,
            source: SourceRef,
            want: Option<&'static str>,
        }
        let cases = vec![
            Case {
                name: "configMap volume mounted by the second container",
                spec: json!({"containers":[{"name":"a"},{"name":"b","volumeMounts":[{"name":"v","mountPath":"/c"}]}],
                             "volumes":[{"name":"v","configMap":{"name":"cfg"}}]}),
                source: cm("cfg"),
                want: Some("b"),
            },
            Case {
                name: "secret volume whose volume name differs from the secret name",
                spec: json!({"containers":[{"name":"app","volumeMounts":[{"name":"creds","mountPath":"/s"}]}],
                             "volumes":[{"name":"creds","secret":{"secretName":"db-password"}}]}),
                source: sec("db-password"),
                want: Some("app"),
            },
            Case {
                name: "projected configMap and secret",
                spec: json!({"containers":[{"name":"app","volumeMounts":[{"name":"p","mountPath":"/p"}]}],
                             "volumes":[{"name":"p","projected":{"sources":[{"configMap":{"name":"pc"}},{"secret":{"name":"ps"}}]}}]}),
                source: sec("ps"),
                want: Some("app"),
            },
            Case {
                name: "volume mounted only by an init container goes to containers[0]",
                spec: json!({"containers":[{"name":"main"},{"name":"side"}],
                             "initContainers":[{"name":"init","volumeMounts":[{"name":"v","mountPath":"/c"}]}],
                             "volumes":[{"name":"v","configMap":{"name":"cfg"}}]}),
                source: cm("cfg"),
                want: Some("main"),
            },
            Case {
                name: "volume mounted nowhere and no env use is not a use",
                spec: json!({"containers":[{"name":"main"}],"volumes":[{"name":"v","configMap":{"name":"cfg"}}]}),
                source: cm("cfg"),
                want: None,
            },
            Case {
                name: "unmounted volume falls through to env",
                spec: json!({"containers":[{"name":"a"},{"name":"b","envFrom":[{"configMapRef":{"name":"cfg"}}]}],
                             "volumes":[{"name":"v","configMap":{"name":"cfg"}}]}),
                source: cm("cfg"),
                want: Some("b"),
            },
            Case {
                name: "env valueFrom configMapKeyRef",
                spec: json!({"containers":[{"name":"a","env":[{"name":"X","valueFrom":{"configMapKeyRef":{"name":"cfg","key":"k"}}}]}]}),
                source: cm("cfg"),
                want: Some("a"),
            },
            Case {
                name: "env valueFrom secretKeyRef",
                spec: json!({"containers":[{"name":"a"},{"name":"b","env":[{"name":"X","valueFrom":{"secretKeyRef":{"name":"s","key":"k"}}}]}]}),
                source: sec("s"),
                want: Some("b"),
            },
            Case {
                name: "envFrom secretRef",
                spec: json!({"containers":[{"name":"a","envFrom":[{"secretRef":{"name":"s"}}]}]}),
                source: sec("s"),
                want: Some("a"),
            },
            Case {
                name: "a configMapKeyRef does not count for a Secret of the same name",
                spec: json!({"containers":[{"name":"a","env":[{"name":"X","valueFrom":{"configMapKeyRef":{"name":"same","key":"k"}}}]}]}),
                source: sec("same"),
                want: None,
            },
            Case {
                name: "env in an init container goes to containers[0]",
                spec: json!({"containers":[{"name":"main"}],"initContainers":[{"name":"i","envFrom":[{"configMapRef":{"name":"cfg"}}]}]}),
                source: cm("cfg"),
                want: Some("main"),
            },
            Case {
                name: "init-only use with no regular containers",
                spec: json!({"containers":[],"initContainers":[{"name":"i","envFrom":[{"configMapRef":{"name":"cfg"}}]}]}),
                source: cm("cfg"),
                want: None,
            },
            Case {
                name: "unrelated source",
                spec: json!({"containers":[{"name":"a","envFrom":[{"configMapRef":{"name":"other"}}]}]}),
                source: cm("cfg"),
                want: None,
            },
        ];
        for c in cases {
            let got = container_using(&spec(c.spec), c.source.kind, &c.source.name);
            assert_eq!(got.as_deref(), c.want, "{}", c.name);
        }
    }

    #[test]
    fn references_lists_every_use_once() {
        let s = spec(json!({
            "containers":[
                {"name":"a","envFrom":[{"configMapRef":{"name":"env-cm"}},{"secretRef":{"name":"env-s"}}],
                 "env":[{"name":"X","valueFrom":{"configMapKeyRef":{"name":"env-cm","key":"k"}}}],
                 "volumeMounts":[{"name":"v1","mountPath":"/1"},{"name":"p","mountPath":"/p"}]},
                {"name":"b","volumeMounts":[{"name":"v2","mountPath":"/2"}]}],
            "initContainers":[{"name":"i","env":[{"name":"Y","valueFrom":{"secretKeyRef":{"name":"init-s","key":"k"}}}]}],
            "volumes":[
                {"name":"v1","configMap":{"name":"vol-cm"}},
                {"name":"v2","secret":{"secretName":"vol-s"}},
                {"name":"p","projected":{"sources":[{"configMap":{"name":"proj-cm"}},{"secret":{"name":"proj-s"}},{"downwardAPI":{}}]}},
                {"name":"unused","configMap":{"name":"unmounted"}}]
        }));
        let got: Vec<(String, String)> = references(&s, false).into_iter().map(|(r, c)| (r.to_string(), c)).collect();
        let want = [
            ("configmap/env-cm", "a"),
            ("configmap/proj-cm", "a"),
            ("configmap/vol-cm", "a"),
            ("secret/env-s", "a"),
            ("secret/init-s", "a"),
            ("secret/proj-s", "a"),
            ("secret/vol-s", "b"),
        ];
        let want: Vec<(String, String)> = want.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn csi_volumes_name_secret_provider_classes_only_with_the_integration() {
        let s = spec(json!({
            "containers":[{"name":"a","envFrom":[{"secretRef":{"name":"vault-spc"}}]},
                          {"name":"b","volumeMounts":[{"name":"secrets","mountPath":"/mnt/secrets"}]}],
            "initContainers":[{"name":"i","volumeMounts":[{"name":"init-secrets","mountPath":"/s"}]}],
            "volumes":[
                {"name":"secrets","csi":{"driver":"secrets-store.csi.k8s.io","readOnly":true,
                    "volumeAttributes":{"secretProviderClass":"vault-spc"}}},
                {"name":"init-secrets","csi":{"driver":"secrets-store.csi.k8s.io",
                    "volumeAttributes":{"secretProviderClass":"init-spc"}}},
                {"name":"other-attr","csi":{"driver":"x","volumeAttributes":{"class":"nope"}}},
                {"name":"unmounted","csi":{"driver":"secrets-store.csi.k8s.io","volumeAttributes":{"secretProviderClass":"idle"}}}]
        }));
        let got: Vec<(String, String)> = references(&s, true).into_iter().map(|(r, c)| (r.to_string(), c)).collect();
        let want =
            [("secret/vault-spc", "a"), ("secretproviderclass/init-spc", "a"), ("secretproviderclass/vault-spc", "b")];
        let want: Vec<(String, String)> = want.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        assert_eq!(got, want, "a Secret of the same name is another source; init-only goes to containers[0]");
        let off: Vec<String> = references(&s, false).into_keys().map(|r| r.to_string()).collect();
        assert_eq!(off, ["secret/vault-spc"], "without the integration nothing changes");
        let spc = SourceRef::new(SourceKind::SecretProviderClass, "vault-spc");
        assert_eq!(container_using(&s, spc.kind, &spc.name).as_deref(), Some("b"));
    }

    #[test]
    fn no_containers_no_crash() {
        let s = spec(json!({"containers":[]}));
        assert!(references(&s, true).is_empty());
    }
}
