//! Every example in examples/ applied to the local control plane, changed as its README says,
//! and checked to reload (or not) as documented.

mod common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};

struct Step {
    /// `kubectl patch` arguments (kind/name and the merge patch).
    patch: (&'static str, &'static str),
    reloads: bool,
}

async fn template(api: &Api<DynamicObject>, name: &str) -> String {
    api.get(name).await.expect("get workload").data["spec"]["template"].to_string()
}

async fn run(dir: &str, flags: &[&str], kind: ApiResource, workload: &str, steps: &[Step]) {
    let ns = TestNs::new(&format!("ex-{dir}")).await;
    let path = repo().join("examples").join(dir).join("manifests.yaml");
    let out = kubectl(&["apply", "-n", &ns.name, "-f", path.to_str().unwrap()]);
    assert!(out.status.success(), "{dir}: {}", String::from_utf8_lossy(&out.stderr));
    let _ctl = Controller::start(&ns, flags).await;
    let api: Api<DynamicObject> = Api::namespaced_with(ns.client.clone(), &ns.name, &kind);
    eventually(Duration::from_secs(10), &format!("{dir}: {workload} recorded"), || async {
        api.get(workload).await.ok()?.metadata.annotations?.contains_key(RECORD).then_some(())
    })
    .await;
    for s in steps {
        let before = template(&api, workload).await;
        let out = kubectl(&["patch", "-n", &ns.name, s.patch.0, "--type=merge", "-p", s.patch.1]);
        assert!(out.status.success(), "{dir}: {}", String::from_utf8_lossy(&out.stderr));
        if s.reloads {
            eventually(Duration::from_secs(2), &format!("{dir}: {} rolls {workload}", s.patch.0), || async {
                (template(&api, workload).await != before).then_some(())
            })
            .await;
            // The rollout is written, so the controller is done with this step: the next
            // step's change is reconciled on its own, whenever it comes.
        } else {
            holds(Duration::from_secs(5), &format!("{dir}: {} does not roll {workload}", s.patch.0), || async {
                template(&api, workload).await == before
            })
            .await;
        }
    }
}

fn deployments() -> ApiResource {
    ApiResource::erase::<Deployment>(&())
}

#[tokio::test]
async fn auto() {
    run(
        "auto",
        &[],
        deployments(),
        "web",
        &[
            Step { patch: ("configmap/web-config", r#"{"metadata":{"labels":{"team":"a"}}}"#), reloads: false },
            Step { patch: ("configmap/web-config", r#"{"data":{"GREETING":"hi"}}"#), reloads: true },
            Step { patch: ("secret/web-secret", r#"{"stringData":{"TOKEN":"other"}}"#), reloads: true },
        ],
    )
    .await;
}

#[tokio::test]
async fn typed_auto() {
    run(
        "typed-auto",
        &[],
        deployments(),
        "api",
        &[
            Step { patch: ("secret/api-secret", r#"{"stringData":{"PASSWORD":"other"}}"#), reloads: false },
            Step { patch: ("configmap/api-config", r#"{"data":{"LOG_LEVEL":"debug"}}"#), reloads: true },
        ],
    )
    .await;
}

#[tokio::test]
async fn named_regex() {
    run(
        "named-regex",
        &[],
        deployments(),
        "shop",
        &[
            Step { patch: ("configmap/unrelated", r#"{"data":{"X":"2"}}"#), reloads: false },
            Step { patch: ("configmap/feature-search", r#"{"data":{"ENABLED":"true"}}"#), reloads: true },
            Step { patch: ("configmap/app-config", r#"{"data":{"MODE":"green"}}"#), reloads: true },
        ],
    )
    .await;
}

#[tokio::test]
async fn search_match() {
    run(
        "search-match",
        &[],
        deployments(),
        "worker",
        &[
            Step { patch: ("configmap/local-settings", r#"{"data":{"CACHE":"off"}}"#), reloads: false },
            Step { patch: ("configmap/shared-settings", r#"{"data":{"REGION":"us"}}"#), reloads: true },
        ],
    )
    .await;
}

#[tokio::test]
async fn exclude() {
    run(
        "exclude",
        &[],
        deployments(),
        "backend",
        &[
            Step { patch: ("configmap/feature-flags", r#"{"data":{"NEW_UI":"true"}}"#), reloads: false },
            Step { patch: ("configmap/tuning", r#"{"data":{"WORKERS":"8"}}"#), reloads: true },
        ],
    )
    .await;
}

#[tokio::test]
async fn ignore() {
    run(
        "ignore",
        &[],
        deployments(),
        "frontend",
        &[
            Step { patch: ("configmap/static-assets", r#"{"data":{"INDEX":"<h1>hi</h1>"}}"#), reloads: false },
            Step { patch: ("configmap/frontend-config", r#"{"data":{"THEME":"dark"}}"#), reloads: true },
        ],
    )
    .await;
}

#[tokio::test]
async fn env_vars() {
    let sts = ApiResource::erase::<StatefulSet>(&());
    run(
        "env-vars",
        &["--reload-strategy=env-vars"],
        sts.clone(),
        "db",
        &[Step { patch: ("secret/db-credentials", r#"{"stringData":{"PASSWORD":"n3w"}}"#), reloads: true }],
    )
    .await;
}

#[tokio::test]
async fn env_vars_sets_the_documented_variable() {
    let ns = TestNs::new("ex-envvar-name").await;
    let path = repo().join("examples/env-vars/manifests.yaml");
    assert!(kubectl(&["apply", "-n", &ns.name, "-f", path.to_str().unwrap()]).status.success());
    let _ctl = Controller::start(&ns, &["--reload-strategy=env-vars"]).await;
    let api = ns.api::<StatefulSet>();
    eventually(Duration::from_secs(10), "db recorded", || async {
        api.get("db").await.ok()?.metadata.annotations?.contains_key(RECORD).then_some(())
    })
    .await;
    assert!(
        kubectl(&[
            "patch",
            "-n",
            &ns.name,
            "secret/db-credentials",
            "--type=merge",
            "-p",
            r#"{"stringData":{"PASSWORD":"n3w"}}"#
        ])
        .status
        .success()
    );
    eventually(Duration::from_secs(2), "STAKATER_DB_CREDENTIALS_SECRET", || async {
        let s = api.get("db").await.ok()?;
        let env = s.spec?.template.spec?.containers[0].env.clone()?;
        env.iter().any(|e| e.name == "STAKATER_DB_CREDENTIALS_SECRET").then_some(())
    })
    .await;
}

#[tokio::test]
async fn cronjob() {
    let ns = TestNs::new("ex-cronjob").await;
    let path = repo().join("examples/cronjob/manifests.yaml");
    assert!(kubectl(&["apply", "-n", &ns.name, "-f", path.to_str().unwrap()]).status.success());
    let _ctl = Controller::start(&ns, &[]).await;
    let cj = ns.api::<k8s_openapi::api::batch::v1::CronJob>();
    eventually(Duration::from_secs(10), "report recorded", || async {
        cj.get("report").await.ok()?.metadata.annotations?.contains_key(RECORD).then_some(())
    })
    .await;
    assert!(
        kubectl(&[
            "patch",
            "-n",
            &ns.name,
            "configmap/report-config",
            "--type=merge",
            "-p",
            r#"{"data":{"RECIPIENTS":"team@example.com"}}"#
        ])
        .status
        .success()
    );
    let job = eventually(Duration::from_secs(2), "a report Job", || async {
        ns.api::<Job>().list(&ListParams::default()).await.ok()?.items.into_iter().next()
    })
    .await;
    let name = job.metadata.name.unwrap();
    assert!(name.starts_with("report-") && name.len() == "report-".len() + 10, "{name}");
    assert_eq!(
        job.metadata.annotations.unwrap().get("cronjob.kubernetes.io/instantiate").map(String::as_str),
        Some("manual")
    );
}

/// The CSI example, with the driver's CRDs and a stand-in for the driver: a rotation reported by
/// the three pods in turn rolls `web` once, and the new pods reporting it roll nothing more.
#[tokio::test]
async fn csi() {
    use common::csi::{Driver, install_csi_crds};
    install_csi_crds();
    let ns = TestNs::new("ex-csi").await;
    let path = repo().join("examples/csi/manifests.yaml");
    let out = kubectl(&["apply", "-n", &ns.name, "-f", path.to_str().unwrap()]);
    assert!(out.status.success(), "csi: {}", String::from_utf8_lossy(&out.stderr));
    let driver = Driver::start(&ns, &[("vault-db", "1")]);
    let ctl = Controller::start(&ns, &["--enable-csi-integration=true"]).await;
    driver.await_mounted("vault-db", "1", 3).await;
    eventually(Duration::from_secs(20), "csi: web recorded with vault-db", || async {
        let r = record_of(&ns, "web").await?;
        (r.contains("secretproviderclass/vault-db") && !r.contains("\"secretproviderclass/vault-db\":\"-\""))
            .then_some(())
    })
    .await;
    let before = pod_template(&ns, "web").await;
    driver.rotate("vault-db", "2", Duration::from_millis(700)).await;
    let after = await_reload(&ns, "web", &before).await;
    driver.await_mounted("vault-db", "2", 3).await;
    assert_no_reload(&ns, "web", &after).await;
    let reloads = ctl.ctx.metrics.reload_executed.get_or_create(&reloader::metrics::Success { success: "true" }).get();
    assert_eq!(reloads, 1);
}

/// The GitOps recipes: the manifests applied server-side as the tool's field manager, a
/// ConfigMap change committed and applied the same way rolls the Deployment, and the next
/// sync (the same apply, forcing conflicts as the tools do) keeps the reload: the pod template
/// stays, the record stays, and `kubectl diff --server-side` as that manager shows nothing.
async fn gitops(dir: &str, manager: &str) {
    let ns = TestNs::new(&format!("ex-{dir}")).await;
    let original = std::fs::read_to_string(repo().join("examples").join(dir).join("manifests.yaml")).unwrap();
    assert!(original.contains("CURRENCY: EUR"), "{dir}: the example changes CURRENCY");
    let changed = std::env::temp_dir().join(format!("{}-{dir}.yaml", ns.name));
    std::fs::write(&changed, original.replace("CURRENCY: EUR", "CURRENCY: USD")).unwrap();
    let manager_flag = format!("--field-manager={manager}");
    let apply = |path: &std::path::Path, extra: &[&str]| {
        let mut args = vec!["apply", "--server-side", &manager_flag, "-n", &ns.name, "-f", path.to_str().unwrap()];
        args.extend_from_slice(extra);
        let out = kubectl(&args);
        assert!(out.status.success(), "{dir}: {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    apply(&repo().join("examples").join(dir).join("manifests.yaml"), &[]);
    let _ctl = Controller::start(&ns, &[]).await;
    await_record(&ns, "shop").await;
    let before = pod_template(&ns, "shop").await;

    apply(&changed, &[]);
    let after = await_reload(&ns, "shop", &before).await;
    let record = record_of(&ns, "shop").await;
    apply(&changed, &["--force-conflicts"]);
    assert_eq!(pod_template(&ns, "shop").await, after, "{dir}: the next sync kept the reload");
    assert_eq!(record_of(&ns, "shop").await, record, "{dir}: and the record");
    // `kubectl diff` compares the whole object, status included: wait until the rollout has
    // settled, and allow a moment for a status write between its two reads. A drift of the
    // controller's fields would stay.
    eventually(Duration::from_secs(30), &format!("{dir}: the rollout settled"), || async {
        let d = ns.api::<Deployment>().get("shop").await.ok()?;
        let (generation, st) = (d.metadata.generation, d.status?);
        let want = d.spec?.replicas;
        (st.observed_generation == generation && st.updated_replicas == want && st.available_replicas == want)
            .then_some(())
    })
    .await;
    let diff = || {
        kubectl(&[
            "diff",
            "--server-side",
            &manager_flag,
            "--force-conflicts",
            "-n",
            &ns.name,
            "-f",
            changed.to_str().unwrap(),
        ])
    };
    let mut last = diff();
    for _ in 0..10 {
        if last.status.code() == Some(0) {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        last = diff();
    }
    let text = String::from_utf8_lossy(&last.stdout);
    assert_eq!(last.status.code(), Some(0), "{dir}: no drift, yet:\n{text}{}", String::from_utf8_lossy(&last.stderr));
    assert_no_reload(&ns, "shop", &after).await;
    assert_eq!(replica_sets(&ns, "shop").await, 2, "{dir}: one rollout, not undone");
}

#[tokio::test]
async fn argocd() {
    gitops("argocd", "argocd-controller").await;
}

#[tokio::test]
async fn flux() {
    gitops("flux", "kustomize-controller").await;
}

#[tokio::test]
async fn external_secrets() {
    run(
        "external-secrets",
        &[],
        deployments(),
        "orders",
        &[
            Step {
                patch: (
                    "secret/db-credentials",
                    r#"{"metadata":{"annotations":{"reconcile.external-secrets.io/data-hash":"7d8e9f"}}}"#,
                ),
                reloads: false,
            },
            Step {
                patch: ("secret/db-credentials", r#"{"stringData":{"password":"second-password"}}"#),
                reloads: true,
            },
        ],
    )
    .await;
}

#[tokio::test]
async fn vault_secrets_operator() {
    run(
        "vault-secrets-operator",
        &[],
        deployments(),
        "payments",
        &[Step { patch: ("secret/payments-db", r#"{"stringData":{"password":"second-password"}}"#), reloads: true }],
    )
    .await;
}

#[tokio::test]
async fn cert_manager() {
    run(
        "cert-manager",
        &[],
        deployments(),
        "web",
        &[
            Step {
                patch: (
                    "secret/web-tls",
                    r#"{"stringData":{"tls.crt":"certificate-2","tls.key":"key-2","ca.crt":"ca-2"}}"#,
                ),
                reloads: true,
            },
            // Nothing more for that renewal.
            Step { patch: ("secret/web-tls", r#"{"metadata":{"labels":{"renewed":"once"}}}"#), reloads: false },
        ],
    )
    .await;
}

#[tokio::test]
async fn trust_manager() {
    run(
        "trust-manager",
        &[],
        deployments(),
        "client",
        &[Step { patch: ("configmap/corp-ca", r#"{"data":{"bundle.pem":"root-1\nroot-2\n"}}"#), reloads: true }],
    )
    .await;
}

#[tokio::test]
async fn istio_cacerts() {
    let cacerts = ("secret/cacerts", r#"{"stringData":{"root-cert.pem":"root-1\nroot-2\n"}}"#);
    let roots = ("configmap/istio-ca-root-cert", r#"{"data":{"root-cert.pem":"root-1\nroot-2\n"}}"#);
    run(
        "istio-cacerts",
        &[],
        deployments(),
        "istiod",
        &[Step { patch: cacerts, reloads: true }, Step { patch: roots, reloads: false }],
    )
    .await;
    run(
        "istio-cacerts",
        &[],
        deployments(),
        "app",
        &[Step { patch: cacerts, reloads: false }, Step { patch: roots, reloads: true }],
    )
    .await;
}
