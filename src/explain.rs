//! `reloader explain <kind>/<name>`: why a workload did (or did not) reload. It reads the
//! workload and the ConfigMaps/Secrets of its namespace, and prints the policy as parsed, every
//! source that could govern it and why, each source's current hash against the applied one,
//! and what the controller would do now — the same pure functions the controller runs.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use serde::Serialize;

use crate::cli::{ExplainArgs, Output};
use crate::config::Settings;
use crate::core::decide::{self, ChangeKind, Considered, Plan, Reason, Resume};
use crate::core::model::policy::{KindPolicy, Origin};
use crate::core::model::record::Applied;
use crate::core::model::source::{NamespaceSources, SourceInfo, SourceKind, SourceRef};
use crate::core::model::workload::{self, Workload, WorkloadKind, WorkloadObject, with_workload_type};
use crate::error::Error;

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
    /// Held by the storm brake, as the controller's Events show.
    pub held: Option<String>,
    /// With `--enable-ha`: who may write.
    pub leader: Option<String>,
    /// The rollout the last reload started: under way, or how it ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<String>,
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
    /// SecretProviderClasses: the objects and versions mounted now (`id=version`; the driver
    /// reports no values).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub versions: Option<Vec<String>>,
}

#[derive(Debug, Serialize)]
pub struct Decision {
    pub action: String,
    pub detail: String,
}

fn parse_target(t: &str) -> Result<(WorkloadKind, String), Error> {
    let (k, n) = t.split_once('/').ok_or_else(|| Error::Target(t.into()))?;
    let kind = WorkloadKind::parse(k).ok_or_else(|| Error::Target(t.into()))?;
    if n.is_empty() {
        return Err(Error::Target(t.into()));
    }
    Ok((kind, n.to_string()))
}

async fn get<K: WorkloadObject>(client: &Client, ns: &str, name: &str, s: &Settings) -> Result<Workload, Error> {
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    match api.get_opt(name).await {
        Ok(Some(obj)) => Ok(workload::project_object(&obj, &s.keys, s.auto_reload_all)),
        Ok(None) => Err(Error::NotFound { kind: K::KIND.as_str(), namespace: ns.into(), name: name.into() }),
        Err(source) => Err(Error::Read { what: K::RESOURCE.into(), namespace: ns.into(), source }),
    }
}

/// The `id=version` lines of each SecretProviderClass's current content.
pub(crate) type SpcVersions = BTreeMap<String, Vec<String>>;

async fn sources(client: &Client, ns: &str, s: &Settings) -> Result<(NamespaceSources, SpcVersions), Error> {
    let mut out = NamespaceSources::default();
    let mut versions = SpcVersions::new();
    let api_err = |what: &str| {
        let what = what.to_string();
        let ns = ns.to_string();
        move |source| Error::Read { what: what.clone(), namespace: ns.clone(), source }
    };
    let mut lp = ListParams::default();
    if let Some(sel) = &s.resource_label_selector {
        lp = lp.labels(sel);
    }
    if s.watch_configmaps {
        for cm in Api::<ConfigMap>::namespaced(client.clone(), ns).list(&lp).await.map_err(api_err("configmaps"))? {
            out.configmaps.insert(cm.name_any(), SourceInfo::of(&cm, &s.keys));
        }
    }
    if s.watch_secrets {
        let mut lp = lp.clone();
        if let Some(f) = s.secret_field_selector() {
            lp = lp.fields(f);
        }
        for sec in Api::<Secret>::namespaced(client.clone(), ns).list(&lp).await.map_err(api_err("secrets"))? {
            out.secrets.insert(sec.name_any(), SourceInfo::of(&sec, &s.keys));
        }
    }
    if s.keys.csi {
        versions = spc_sources(client, ns, s, &mut out).await?;
    }
    Ok((out, versions))
}

/// SecretProviderClasses as the controller sees them: each one's content by the same rule
/// (`core::csi`) from its pods' status objects, with its flags. Not installed: none.
async fn spc_sources(
    client: &Client,
    ns: &str,
    s: &Settings,
    out: &mut NamespaceSources,
) -> Result<SpcVersions, Error> {
    use crate::core::model::csi::{self, SecretProviderClass, SecretProviderClassPodStatus, SpcMounts};
    let read = |what: &str, source: kube::Error| Error::Read { what: what.into(), namespace: ns.into(), source };
    let not_served = |e: &kube::Error| matches!(e, kube::Error::Api(s) if s.code == 404);
    let statuses =
        match Api::<SecretProviderClassPodStatus>::namespaced(client.clone(), ns).list(&ListParams::default()).await {
            Ok(l) => l.items,
            Err(e) if not_served(&e) => return Ok(SpcVersions::new()),
            Err(e) => return Err(read("secretproviderclasspodstatuses", e)),
        };
    let mut flags = BTreeMap::new();
    match Api::<SecretProviderClass>::namespaced(client.clone(), ns).list(&ListParams::default()).await {
        Ok(l) => {
            for spc in l.items {
                flags.insert(spc.name_any(), s.keys.source_flags(spc.metadata.annotations.as_ref()));
            }
        }
        Err(e) if not_served(&e) => {}
        Err(e) => return Err(read("secretproviderclasses", e)),
    }
    let mut mounts: BTreeMap<String, SpcMounts> = BTreeMap::new();
    let mut by_hash = BTreeMap::new();
    for st in &statuses {
        let Some((spc, hash)) = csi::mount_of(st) else { continue };
        let rv = crate::core::index::history::parse_rv(st.metadata.resource_version.as_deref()).unwrap_or(u64::MAX);
        mounts.entry(spc.clone()).or_default().set(&st.name_any(), hash, rv);
        by_hash.entry((spc, hash)).or_insert_with(|| csi::versions_of(st));
    }
    let mut versions = SpcVersions::new();
    for (name, m) in mounts {
        let Some(hash) = m.current() else { continue };
        let (matched, ignored) = flags.get(&name).copied().unwrap_or_default();
        if let Some(v) = by_hash.get(&(name.clone(), hash)) {
            versions.insert(name.clone(), v.clone());
        }
        out.secret_provider_classes.insert(name, SourceInfo { hash, matched, ignored, content_rv: None });
    }
    Ok(versions)
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
pub(crate) fn explain(w: &Workload, sources: &NamespaceSources, versions: &SpcVersions, s: &Settings) -> Explanation {
    // A one-shot look has no history of changes: every source is taken as it is now.
    let now = k8s_openapi::jiff::Timestamp::now();
    let (considered, d) = decide::decide(w, Some(sources), None, s.options, &s.keys.pause_period, now);
    let desired = decide::desired(&considered);
    let plan = d.plan.clone();
    let recorded = match &w.record {
        Ok(Some(r)) if w.record_foreign.is_none() => Some(r),
        _ => None,
    };
    let mut policy = BTreeMap::new();
    for kind in SourceKind::ALL {
        if kind == SourceKind::SecretProviderClass && !s.keys.csi {
            continue;
        }
        let p = w.policy.for_kind(kind);
        let from = match p.origin {
            Origin::Workload => "workload annotations",
            Origin::PodTemplate => "pod template annotations (fallback)",
        };
        policy.insert(kind.resource().to_string(), PolicySummary { from: from.into(), rules: rules(p) });
    }
    let problems = d.problems.clone();
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
                versions: (r.kind == SourceKind::SecretProviderClass)
                    .then(|| versions.get(&r.name).cloned().unwrap_or_default()),
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
            if let Some(why) = d.record_only {
                detail = format!("{detail}; but {why}, so the change is recorded and nothing rolls");
            } else if w.key.kind == WorkloadKind::CronJob {
                detail = format!("{detail} (a Job is created from the job template)");
            }
            if let Some(p) = d.pause_for {
                detail = format!("{detail}; the Deployment is paused for {} with it", humantime::format_duration(p));
            }
            Decision { action: "reload".into(), detail }
        }
    };
    let decision = match d.resume {
        Some(Resume::Now) => Decision {
            action: "resume".into(),
            detail: "the controller paused this Deployment and its pause period is over: resume it first".into(),
        },
        Some(Resume::After(left)) => Decision {
            detail: format!(
                "{}; the controller paused this Deployment, which resumes in {}",
                decision.detail,
                humantime::format_duration(std::time::Duration::from_secs(left.as_secs()))
            ),
            ..decision
        },
        None => decision,
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
        held: None,
        leader: None,
        rollout: rollout_line(w, now.as_second(), s.rollout_timeout),
        decision,
    }
}

/// Where the rollout the last reload started stands, in words.
fn rollout_line(w: &Workload, now: i64, timeout: Option<std::time::Duration>) -> Option<String> {
    use crate::core::decide::outcome::{self, Ended, Verdict};
    let t = w.tracked.as_ref()?;
    let ago =
        |at: i64| humantime::format_duration(std::time::Duration::from_secs(now.saturating_sub(at).max(0) as u64));
    let took = t.ended.unwrap_or(t.at).saturating_sub(t.at);
    Some(match t.outcome {
        Some(Ended::Succeeded) => format!("succeeded for {}: available {took} s after the reload", t.cause),
        Some(Ended::Failed) => format!("failed for {}: {}", t.cause, t.reason.as_deref().unwrap_or("unknown")),
        Some(Ended::Superseded) => format!("superseded for {}", t.cause),
        None => match outcome::classify(t, &w.progress, now, timeout) {
            Verdict::InProgress(why) => format!("in progress for {} (reloaded {} ago): {why}", t.cause, ago(t.at)),
            Verdict::Succeeded => format!("succeeded for {} (not recorded by the controller yet)", t.cause),
            Verdict::Failed(why) => format!("failed for {} (not recorded by the controller yet): {why}", t.cause),
            Verdict::Untracked => format!("not followed for {}: the workload has no rollout status", t.cause),
        },
    })
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
            if let Some(v) = &s.versions {
                let mounted = if v.is_empty() { "nothing (no pod mounts it)".to_string() } else { v.join(", ") };
                let _ = write!(o, "; mounted versions: {mounted}");
            }
            let _ = writeln!(o);
        }
    }
    if let Some(h) = &e.held {
        let _ = writeln!(o, "storm brake: {h}");
    }
    if let Some(l) = &e.leader {
        let _ = writeln!(o, "leader: {l}");
    }
    if let Some(r) = &e.rollout {
        let _ = writeln!(o, "rollout: {r}");
    }
    let _ = writeln!(o, "decision: {}: {}", e.decision.action, e.decision.detail);
    o
}

/// Runs the subcommand against the cluster.
pub async fn run(client: Client, args: &ExplainArgs) -> Result<String, Error> {
    let mut run = args.run.clone();
    if run.enable_ha && run.pod_name.is_none() {
        // Explaining elects nothing: it only reads the Lease in POD_NAMESPACE.
        run.pod_name = Some("reloader-explain".into());
    }
    let s = run.settings()?;
    let (kind, name) = parse_target(&args.target)?;
    let ns = args.namespace.clone().unwrap_or_else(|| client.default_namespace().to_string());
    let w = with_workload_type!(kind, K => get::<K>(&client, &ns, &name, &s).await?);
    let (sources, versions) = sources(&client, &ns, &s).await?;
    let mut e = explain(&w, &sources, &versions, &s);
    // What the controller would act on besides the objects: a hold of the storm brake (from its
    // Events) and, with HA, whether any replica may write (from the Lease).
    e.held = held(&client, &w).await?;
    if e.held.is_some() && e.decision.action == "reload" {
        e.decision.action = "held".into();
        e.decision.detail = format!("would {}, but the storm brake holds it", e.decision.detail);
    }
    if s.halt_on_failed_rollouts.is_some() && e.decision.action == "reload" && w.progress.trackable() {
        let peers = peers(&client, &ns, &s).await?;
        let marks = release_marks(&client, &ns, &e).await;
        if let Some(note) = halted(&e, &peers, s.halt_on_failed_rollouts, &marks) {
            e.decision.action = "halted".into();
            e.decision.detail = format!("would {}, but {note}", e.decision.detail);
        }
    }
    if let Some(ha) = &s.ha {
        let (line, can_write) = leader(&client, ha).await?;
        e.leader = Some(line);
        if !can_write && matches!(e.decision.action.as_str(), "reload" | "adopt" | "record" | "resume") {
            e.decision.detail =
                format!("{}; but no replica holds the lease, so nothing is written yet", e.decision.detail);
        }
    }
    Ok(match args.output {
        Output::Text => render_text(&e),
        Output::Json => serde_json::to_string_pretty(&e).expect("serialisable") + "\n",
    })
}

/// The Deployments, StatefulSets, DaemonSets and Argo Rollouts of the namespace: their
/// tracking notes are what the circuit breaker counts.
async fn peers(client: &Client, ns: &str, s: &Settings) -> Result<Vec<Workload>, Error> {
    use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
    async fn list<K: WorkloadObject>(client: &Client, ns: &str, s: &Settings) -> Result<Vec<Workload>, Error> {
        let api: Api<K> = Api::namespaced(client.clone(), ns);
        let items = api.list(&ListParams::default()).await.map_err(|source| Error::Read {
            what: K::RESOURCE.into(),
            namespace: ns.into(),
            source,
        })?;
        Ok(items.iter().map(|o| workload::project_object(o, &s.keys, s.auto_reload_all)).collect())
    }
    let mut out = list::<Deployment>(client, ns, s).await?;
    out.extend(list::<StatefulSet>(client, ns, s).await?);
    out.extend(list::<DaemonSet>(client, ns, s).await?);
    if s.is_argo_rollouts {
        // Without the Rollout API installed there are no Rollouts to count (the controller
        // does not watch them either).
        out.extend(list::<crate::core::kinds::rollout::Rollout>(client, ns, s).await.unwrap_or_default());
    }
    Ok(out)
}

/// The release marks (`breaker::RELEASE_ANNOTATION`) of the changed sources `e` lists, by
/// source (`configmap/app`); metadata only, so no Secret data is read.
async fn release_marks(client: &Client, ns: &str, e: &Explanation) -> BTreeMap<String, String> {
    use crate::core::gates::breaker::RELEASE_ANNOTATION;
    let mut marks = BTreeMap::new();
    for l in e.sources.iter().filter(|l| l.governs && l.current != l.applied) {
        let Some(r) = SourceRef::parse(&l.source) else { continue };
        let annotations = match r.kind {
            SourceKind::ConfigMap => Api::<ConfigMap>::namespaced(client.clone(), ns)
                .get_metadata_opt(&r.name)
                .await
                .map(|m| m.and_then(|m| m.metadata.annotations)),
            SourceKind::Secret => Api::<Secret>::namespaced(client.clone(), ns)
                .get_metadata_opt(&r.name)
                .await
                .map(|m| m.and_then(|m| m.metadata.annotations)),
            SourceKind::SecretProviderClass => continue,
        };
        if let Some(mark) = annotations.ok().flatten().and_then(|a| a.get(RELEASE_ANNOTATION).cloned()) {
            marks.insert(l.source.clone(), mark);
        }
    }
    marks
}

/// The circuit breaker's hold on the reload `e` decides, if any, unless the source's release
/// mark lifts it (pure).
fn halted(
    e: &Explanation,
    peers: &[Workload],
    limit: Option<usize>,
    marks: &BTreeMap<String, String>,
) -> Option<String> {
    use crate::core::gates::breaker::{self, Gate};
    let notes: Vec<_> = peers.iter().filter_map(|p| p.tracked.as_ref()).collect();
    e.sources.iter().filter(|l| l.governs && l.current != l.applied).find_map(|l| {
        let hash = match l.current.as_deref() {
            Some("absent") | None => "deleted",
            Some(h) => h,
        };
        let short = (hash != "deleted").then_some(hash);
        if breaker::released(marks.get(&l.source).map(String::as_str), short) {
            return None;
        }
        let cause = format!("{}@{hash}", l.source);
        match breaker::gate(limit, breaker::tally(&cause, notes.iter().copied())) {
            Gate::Held(t) => Some(breaker::held_note(&cause, t)),
            _ => None,
        }
    })
}

/// The time an Event last happened: its series' last observation, else its own time.
fn last_seen(ev: &k8s_openapi::api::events::v1::Event) -> Option<k8s_openapi::jiff::Timestamp> {
    ev.series
        .as_ref()
        .map(|s| s.last_observed_time.0)
        .or(ev.event_time.as_ref().map(|t| t.0))
        .or(ev.deprecated_last_timestamp.as_ref().map(|t| t.0))
}

/// Whether the controller holds the workload with its storm brake: its latest `ReloadHeld`
/// Event is newer than its latest `Reloaded` one (a hold ends with one reload).
async fn held(client: &Client, w: &Workload) -> Result<Option<String>, Error> {
    use k8s_openapi::api::events::v1::Event;
    let api: Api<Event> = Api::namespaced(client.clone(), &w.key.namespace);
    let lp = ListParams::default().fields(&format!("regarding.name={}", w.key.name));
    let events = api.list(&lp).await.map_err(|source| Error::Read {
        what: "events".into(),
        namespace: w.key.namespace.clone(),
        source,
    })?;
    let latest = |reason: &str| {
        events
            .items
            .iter()
            .filter(|e| {
                e.reason.as_deref() == Some(reason)
                    && e.regarding.as_ref().and_then(|r| r.kind.as_deref()) == Some(w.key.kind.as_str())
            })
            .filter_map(|e| Some((last_seen(e)?, e.note.clone().unwrap_or_default())))
            .max_by_key(|(t, _)| *t)
    };
    Ok(match (latest("ReloadHeld"), latest("Reloaded")) {
        (Some((t, note)), reloaded) if reloaded.as_ref().is_none_or(|(r, _)| *r < t) => {
            Some(format!("held since {t}: {note}"))
        }
        _ => None,
    })
}

/// Who holds the Lease, and whether that holder may still write.
async fn leader(client: &Client, ha: &crate::config::HaSettings) -> Result<(String, bool), Error> {
    use k8s_openapi::api::coordination::v1::Lease;
    let api: Api<Lease> = Api::namespaced(client.clone(), &ha.namespace);
    let lease = api.get_opt(&ha.lease_name).await.map_err(|source| Error::Read {
        what: format!("lease {}", ha.lease_name),
        namespace: ha.namespace.clone(),
        source,
    })?;
    let spec = lease.and_then(|l| l.spec);
    let now = k8s_openapi::jiff::Timestamp::now();
    Ok(match crate::runtime::leader::step(spec.as_ref(), "", now) {
        crate::runtime::leader::Step::Follow { holder } => (format!("{holder} holds the lease"), true),
        _ => ("no replica holds a valid lease".to_string(), false),
    })
}
