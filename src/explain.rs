//! `reloader explain <kind>/<name>`: why a workload did (or did not) reload. It reads the
//! workload and the ConfigMaps/Secrets of its namespace, and prints the policy as parsed, every
//! source that could govern it and why, each source's current hash against the applied one,
//! and what the controller would do now — the same pure functions the controller runs.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use clap::{Args, ValueEnum};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use serde::Serialize;

use crate::config::{RunArgs, Settings};
use crate::decide::{self, ChangeKind, Considered, Plan, Reason};
use crate::hash;
use crate::policy::{KindPolicy, Origin};
use crate::record::Applied;
use crate::rollout::Rollout;
use crate::source::{NamespaceSources, SourceInfo, SourceKind, SourceRef};
use crate::workload::{self, Workload, WorkloadKind, WorkloadObject};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
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

#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("{0:?} is not KIND/NAME; KIND is one of deployment, statefulset, daemonset, cronjob, job, rollout")]
    Target(String),
    #[error("{kind} {namespace}/{name} not found")]
    NotFound { kind: WorkloadKind, namespace: String, name: String },
    #[error("reading {what} in namespace {namespace}: {source}")]
    Api {
        what: String,
        namespace: String,
        #[source]
        source: kube::Error,
    },
    #[error(transparent)]
    Flags(#[from] crate::config::FlagError),
}

/// The answer, as printed with `-o json`.
#[derive(Debug, Serialize)]
pub struct Explanation {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub policy: BTreeMap<String, PolicySummary>,
    pub problems: Vec<String>,
    pub record: RecordSummary,
    pub sources: Vec<SourceLine>,
    pub decision: Decision,
}

#[derive(Debug, Serialize)]
pub struct PolicySummary {
    pub from: String,
    pub rules: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct RecordSummary {
    pub present: bool,
    pub written_by_other: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct SourceLine {
    pub source: String,
    pub governs: bool,
    pub why: String,
    pub used_by: Option<String>,
    pub current: Option<String>,
    pub applied: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Decision {
    pub action: String,
    pub detail: String,
}

fn parse_target(t: &str) -> Result<(WorkloadKind, String), ExplainError> {
    let (k, n) = t.split_once('/').ok_or_else(|| ExplainError::Target(t.into()))?;
    let kind = WorkloadKind::parse(k).ok_or_else(|| ExplainError::Target(t.into()))?;
    if n.is_empty() {
        return Err(ExplainError::Target(t.into()));
    }
    Ok((kind, n.to_string()))
}

async fn get<K: WorkloadObject>(client: &Client, ns: &str, name: &str, s: &Settings) -> Result<Workload, ExplainError> {
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    match api.get_opt(name).await {
        Ok(Some(obj)) => Ok(workload::project_object(&obj, &s.keys, s.auto_reload_all)),
        Ok(None) => Err(ExplainError::NotFound { kind: K::KIND, namespace: ns.into(), name: name.into() }),
        Err(source) => Err(ExplainError::Api { what: K::RESOURCE.into(), namespace: ns.into(), source }),
    }
}

async fn sources(client: &Client, ns: &str, s: &Settings) -> Result<NamespaceSources, ExplainError> {
    let mut out = NamespaceSources::default();
    let api_err = |what: &str| {
        let what = what.to_string();
        let ns = ns.to_string();
        move |source| ExplainError::Api { what: what.clone(), namespace: ns.clone(), source }
    };
    let mut lp = ListParams::default();
    if let Some(sel) = &s.resource_label_selector {
        lp = lp.labels(sel);
    }
    if s.watch_configmaps {
        for cm in Api::<ConfigMap>::namespaced(client.clone(), ns).list(&lp).await.map_err(api_err("configmaps"))? {
            let (matched, ignored) = s.keys.source_flags(cm.annotations().into());
            out.configmaps.insert(cm.name_any(), SourceInfo { hash: hash::configmap_hash(&cm), matched, ignored });
        }
    }
    if s.watch_secrets {
        let mut lp = lp.clone();
        if !s.watch_helm_release_secrets {
            lp = lp.fields("type!=helm.sh/release.v1");
        }
        for sec in Api::<Secret>::namespaced(client.clone(), ns).list(&lp).await.map_err(api_err("secrets"))? {
            let (matched, ignored) = s.keys.source_flags(sec.annotations().into());
            out.secrets.insert(sec.name_any(), SourceInfo { hash: hash::secret_hash(&sec), matched, ignored });
        }
    }
    Ok(out)
}

fn rules(p: &KindPolicy) -> Vec<String> {
    let mut r = Vec::new();
    if !p.named.is_empty() {
        r.push(format!("named [{}]", p.named.iter().map(|n| n.raw.as_str()).collect::<Vec<_>>().join(", ")));
    }
    if p.search {
        r.push("search (sources with match=\"true\")".into());
    }
    match p.auto {
        Some(true) => r.push("auto".into()),
        Some(false) => r.push("auto: false".into()),
        None => {}
    }
    match p.typed_auto {
        Some(true) => r.push("typed auto".into()),
        Some(false) => r.push("typed auto: false".into()),
        None => {}
    }
    if p.auto_all {
        r.push("--auto-reload-all".into());
    }
    if !p.exclude.is_empty() {
        r.push(format!("exclude [{}]", p.exclude.join(", ")));
    }
    r
}

fn short(a: Applied) -> String {
    match a {
        Applied::Hash(h) => h.short(),
        Applied::Absent => "absent".into(),
    }
}

/// Builds the explanation from a projection and the namespace's sources (pure).
pub fn explain(w: &Workload, sources: &NamespaceSources, s: &Settings) -> Explanation {
    // A one-shot look has no history of changes: every source is taken as it is now.
    let considered = decide::consider(w, Some(sources), None);
    let desired = decide::desired(&considered);
    let plan = decide::plan(w, &desired, &decide::seen(&considered), s.options);
    let recorded = match &w.record {
        Ok(Some(r)) if w.record_foreign.is_none() => Some(r),
        _ => None,
    };
    let mut policy = BTreeMap::new();
    for kind in SourceKind::ALL {
        let p = w.policy.for_kind(kind);
        let from = match p.origin {
            Origin::Workload => "workload annotations",
            Origin::PodTemplate => "pod template annotations (fallback)",
        };
        policy.insert(kind.resource().to_string(), PolicySummary { from: from.into(), rules: rules(p) });
    }
    let mut problems: Vec<String> = w.policy.errors.iter().map(|e| e.to_string()).collect();
    if let Some(Err(e)) = w.controls.pause_period.as_deref().map(crate::duration::parse_go_duration) {
        problems.push(format!("annotation {:?}: {e}", s.keys.pause_period));
    }
    let sources_out = considered
        .iter()
        .map(|(r, c): (&SourceRef, &Considered)| {
            let (governs, why) = match &c.reason {
                Reason::Governs(rule) => (true, rule.to_string()),
                Reason::PreviouslyGoverned => {
                    (true, "governed it before it disappeared; its last content is kept".into())
                }
                Reason::Skipped(skip) => (false, skip.to_string()),
            };
            SourceLine {
                source: r.to_string(),
                governs,
                why,
                used_by: w.refs.get(r).cloned(),
                current: Some(short(c.current)),
                applied: recorded.and_then(|rec| rec.get(r)).map(|a| short(*a)),
            }
        })
        .collect();
    let decision = match &plan {
        Plan::Nothing if desired.is_empty() => Decision { action: "nothing".into(), detail: "no source governs this workload".into() },
        Plan::Nothing => Decision { action: "nothing".into(), detail: "every governing source is as applied".into() },
        Plan::Adopt(r) => Decision {
            action: "adopt".into(),
            detail: format!(
                "no trusted record yet: record the current state of {} source(s) as the baseline, without a rollout",
                r.len()
            ),
        },
        Plan::Record(_) => Decision {
            action: "record".into(),
            detail: "the governing sources changed without a change that rolls (new reference or policy, or a creation/deletion without --reload-on-create/--reload-on-delete): update the record only".into(),
        },
        Plan::Reload { changes, .. } => {
            let list: Vec<String> = changes
                .iter()
                .map(|c| {
                    let what = match c.kind {
                        ChangeKind::Updated => "changed",
                        ChangeKind::Created => "was created",
                        ChangeKind::Deleted => "was deleted",
                    };
                    format!("{} {what}", c.source)
                })
                .collect();
            let mut detail = format!("roll it: {}", list.join(", "));
            if w.key.kind == WorkloadKind::CronJob && w.controls.suspended {
                detail = format!("{detail}; but the CronJob is suspended, so the change is recorded and no Job is created");
            } else if w.key.kind == WorkloadKind::CronJob {
                detail = format!("{detail} (a Job is created from the job template)");
            }
            Decision { action: "reload".into(), detail }
        }
    };
    Explanation {
        kind: w.key.kind.to_string(),
        namespace: w.key.namespace.clone(),
        name: w.key.name.clone(),
        policy,
        problems,
        record: RecordSummary {
            present: matches!(w.record, Ok(Some(_))),
            written_by_other: w.record_foreign.clone(),
            error: w.record.as_ref().err().cloned(),
        },
        sources: sources_out,
        decision,
    }
}

/// Plain text.
pub fn render_text(e: &Explanation) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "{} {}/{}", e.kind, e.namespace, e.name);
    let _ = writeln!(o, "policy:");
    for (kind, p) in &e.policy {
        if p.rules.is_empty() {
            let _ = writeln!(o, "  {kind}: none");
        } else {
            let _ = writeln!(o, "  {kind}: {} (from {})", p.rules.join("; "), p.from);
        }
    }
    if e.problems.is_empty() {
        let _ = writeln!(o, "annotation problems: none");
    } else {
        let _ = writeln!(o, "annotation problems:");
        for p in &e.problems {
            let _ = writeln!(o, "  - {p}");
        }
    }
    let record = match (&e.record.error, &e.record.written_by_other, e.record.present) {
        (Some(err), _, _) => format!("unreadable ({err})"),
        (None, Some(by), _) => format!("written by {by}, not by the controller (not trusted)"),
        (None, None, true) => "present".into(),
        (None, None, false) => "none yet".into(),
    };
    let _ = writeln!(o, "applied record: {record}");
    if e.sources.is_empty() {
        let _ = writeln!(o, "sources: none");
    } else {
        let _ = writeln!(o, "sources:");
        for s in &e.sources {
            let verdict = if s.governs { "governs" } else { "skipped" };
            let _ = write!(o, "  {}: {verdict}: {}", s.source, s.why);
            if let Some(c) = &s.used_by {
                let _ = write!(o, "; used by container {c:?}");
            }
            if s.governs {
                let _ = write!(
                    o,
                    "; current {}, applied {}",
                    s.current.as_deref().unwrap_or("-"),
                    s.applied.as_deref().unwrap_or("not recorded")
                );
            }
            let _ = writeln!(o);
        }
    }
    let _ = writeln!(o, "decision: {}: {}", e.decision.action, e.decision.detail);
    o
}

/// Runs the subcommand against the cluster.
pub async fn run(client: Client, args: &ExplainArgs) -> Result<String, ExplainError> {
    let s = args.run.settings()?;
    let (kind, name) = parse_target(&args.target)?;
    let ns = args.namespace.clone().unwrap_or_else(|| client.default_namespace().to_string());
    let w = match kind {
        WorkloadKind::Deployment => get::<Deployment>(&client, &ns, &name, &s).await?,
        WorkloadKind::StatefulSet => get::<StatefulSet>(&client, &ns, &name, &s).await?,
        WorkloadKind::DaemonSet => get::<DaemonSet>(&client, &ns, &name, &s).await?,
        WorkloadKind::CronJob => get::<CronJob>(&client, &ns, &name, &s).await?,
        WorkloadKind::Job => get::<Job>(&client, &ns, &name, &s).await?,
        WorkloadKind::Rollout => get::<Rollout>(&client, &ns, &name, &s).await?,
    };
    let sources = sources(&client, &ns, &s).await?;
    let e = explain(&w, &sources, &s);
    Ok(match args.output {
        Output::Text => render_text(&e),
        Output::Json => serde_json::to_string_pretty(&e).expect("serialisable") + "\n",
    })
}
