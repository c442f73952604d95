//! `reloader explain <kind>/<name>`: why a workload did (or did not) reload. It reads the
//! workload and the ConfigMaps/Secrets of its namespace, and prints the policy as parsed, every
//! source that could govern it and why, each source's current hash against the applied one,
//! and what the controller would do now — the same pure functions the controller runs.
//! `reloader status` does the same for every annotated workload of a namespace (or all), one
//! line each.

mod answer;
mod status;

pub use answer::{Action, Explanation, NextStep, PolicySummary, RecordSummary, SourceLine, render_text};
pub use status::{Row, State, status};

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};

use crate::cli::{ExplainArgs, Output};
use crate::config::Settings;
use crate::core::kinds::{WorkloadKind, WorkloadType, with_kind_type};
use crate::core::model::source::{NamespaceSources, SourceFlags, SourceInfo, SourceKind, SourceRef};
use crate::core::model::workload::{self, Workload};
use crate::error::Error;
use answer::{SpcVersions, explain, halted};

fn parse_target(t: &str) -> Result<(WorkloadKind, String), Error> {
    let (k, n) = t.split_once('/').ok_or_else(|| Error::Target(t.into()))?;
    let kind = WorkloadKind::parse(k).ok_or_else(|| Error::Target(t.into()))?;
    if n.is_empty() {
        return Err(Error::Target(t.into()));
    }
    Ok((kind, n.to_string()))
}

async fn get<K: WorkloadType>(client: &Client, ns: &str, name: &str, s: &Settings) -> Result<Workload, Error> {
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    match api.get_opt(name).await {
        Ok(Some(obj)) => Ok(workload::project_object(&obj, &s.keys, s.auto_reload_all)),
        Ok(None) => Err(Error::NotFound { kind: K::INFO.kind, namespace: ns.into(), name: name.into() }),
        Err(source) => Err(Error::Read { what: K::INFO.plural.into(), namespace: ns.into(), source }),
    }
}

async fn sources(client: &Client, ns: &str, s: &Settings) -> Result<(NamespaceSources, SpcVersions), Error> {
    let mut out = NamespaceSources::default();
    let mut versions = SpcVersions::new();
    let api_err = |what: &str| {
        let what = what.to_string();
        let ns = ns.to_string();
        move |source| Error::Read { what: what.clone(), namespace: ns.clone(), source }
    };
    let mut lp = ListParams::default();
    if let Some(sel) = &s.watch.label_selector {
        lp = lp.labels(sel);
    }
    if s.watch.configmaps {
        for cm in Api::<ConfigMap>::namespaced(client.clone(), ns).list(&lp).await.map_err(api_err("configmaps"))? {
            out.configmaps.insert(cm.name_any(), SourceInfo::of(&cm, s.keys.flags(cm.metadata.annotations.as_ref())));
        }
    }
    if s.watch.secrets {
        let mut lp = lp.clone();
        if let Some(f) = s.secret_field_selector() {
            lp = lp.fields(f);
        }
        for sec in Api::<Secret>::namespaced(client.clone(), ns).list(&lp).await.map_err(api_err("secrets"))? {
            out.secrets.insert(sec.name_any(), SourceInfo::of(&sec, s.keys.flags(sec.metadata.annotations.as_ref())));
        }
    }
    if s.keys.csi {
        versions = spc_sources(client, ns, s, &mut out).await?;
    }
    Ok((out, versions))
}

/// SecretProviderClasses as the controller sees them: each one's content by the same rule
/// (`core::model::csi`) from its pods' status objects, with its flags. Not installed: none.
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
                flags.insert(spc.name_any(), s.keys.flags(spc.metadata.annotations.as_ref()));
            }
        }
        Err(e) if not_served(&e) => {}
        Err(e) => return Err(read("secretproviderclasses", e)),
    }
    let mut mounts: BTreeMap<String, SpcMounts> = BTreeMap::new();
    let mut by_hash = BTreeMap::new();
    for st in &statuses {
        let Some((spc, hash)) = csi::mount_of(st) else { continue };
        let rv = crate::core::model::parse_rv(st.metadata.resource_version.as_deref()).unwrap_or(u64::MAX);
        mounts.entry(spc.clone()).or_default().set(&st.name_any(), hash, rv);
        by_hash.entry((spc, hash)).or_insert_with(|| csi::versions_of(st));
    }
    let mut versions = SpcVersions::new();
    for (name, m) in mounts {
        let Some(hash) = m.current() else { continue };
        let SourceFlags { matched, ignored } = flags.get(&name).copied().unwrap_or_default();
        if let Some(v) = by_hash.get(&(name.clone(), hash)) {
            versions.insert(name.clone(), v.clone());
        }
        out.secret_provider_classes
            .insert(name, SourceInfo { hash, matched, ignored, content_rv: None, reloader: Default::default() });
    }
    Ok(versions)
}

/// The controller's settings for a look from outside: with HA, nothing is elected, the Lease
/// in POD_NAMESPACE is only read.
fn settings_for(run: &crate::cli::RunArgs) -> Result<Settings, Error> {
    let mut run = run.clone();
    if run.mode.enable_ha && run.process.pod_name.is_none() {
        run.process.pod_name = Some("reloader-explain".into());
    }
    run.settings()
}

/// Runs the subcommand against the cluster.
pub async fn run(client: Client, args: &ExplainArgs) -> Result<String, Error> {
    let s = settings_for(&args.run)?;
    let (kind, name) = parse_target(&args.target)?;
    let ns = args.namespace.clone().unwrap_or_else(|| client.default_namespace().to_string());
    let w = with_kind_type!(kind, K => get::<K>(&client, &ns, &name, &s).await?);
    let (sources, versions) = sources(&client, &ns, &s).await?;
    let mut e = explain(&w, &sources, &versions, &s);
    let events = events(&client, &ns, &format!("regarding.name={name}")).await?;
    let peers = if needs_peers(&s, &w, &e) { peers(&client, &ns, &s).await? } else { Vec::new() };
    let leader = match &s.ha {
        Some(ha) => Some(leader(&client, ha).await?),
        None => None,
    };
    complete(&client, &s, &w, &mut e, &events, &peers, leader.as_ref()).await;
    Ok(match args.output {
        Output::Text => render_text(&e),
        Output::Json => serde_json::to_string_pretty(&e).expect("serialisable") + "\n",
    })
}

/// Whether the circuit breaker's check needs the namespace's other workloads.
fn needs_peers(s: &Settings, w: &Workload, e: &Explanation) -> bool {
    s.limits.halt_on_failed_rollouts.is_some() && e.decision.action == Action::Reload && w.progress.trackable()
}

/// What the controller would act on besides the objects: a hold of the storm brake (from its
/// Events), of the circuit breaker (from the other workloads' notes) and, with HA, whether any
/// replica may write (from the Lease). Returns when the brake's hold began.
async fn complete(
    client: &Client,
    s: &Settings,
    w: &Workload,
    e: &mut Explanation,
    events: &[k8s_openapi::api::events::v1::Event],
    peers: &[Workload],
    leader: Option<&(String, bool)>,
) -> Option<k8s_openapi::jiff::Timestamp> {
    let brake = brake_of(events, w);
    if let (Some(b), Action::Reload) = (&brake, e.decision.action) {
        e.decision.detail = format!("would {}, but the storm brake {} it", e.decision.detail, b.how);
        e.decision.action = b.action;
    }
    let since = brake.as_ref().map(|b| b.since);
    e.held = brake.map(|b| b.line);
    let limit = s.limits.halt_on_failed_rollouts;
    if needs_peers(s, w, e) {
        let marks = release_marks(client, &w.key.namespace, e).await;
        if let Some(note) = halted(e, peers, limit, &marks) {
            e.decision.action = Action::Halted;
            e.decision.detail = format!("would {}, but {note}", e.decision.detail);
        }
    }
    if let Some((line, can_write)) = leader {
        e.leader = Some(line.clone());
        if !can_write && e.decision.action.writes() {
            e.decision.detail =
                format!("{}; but no replica holds the lease, so nothing is written yet", e.decision.detail);
        }
    }
    since
}

/// The workloads of the namespace whose rollouts are followed: their tracking notes are what
/// the circuit breaker counts.
async fn peers(client: &Client, ns: &str, s: &Settings) -> Result<Vec<Workload>, Error> {
    async fn list<K: WorkloadType>(client: &Client, ns: &str, s: &Settings) -> Result<Vec<Workload>, Error> {
        let api: Api<K> = Api::namespaced(client.clone(), ns);
        let items = api.list(&ListParams::default()).await.map_err(|source| Error::Read {
            what: K::INFO.plural.into(),
            namespace: ns.into(),
            source,
        })?;
        Ok(items.iter().map(|o| workload::project_object(o, &s.keys, s.auto_reload_all)).collect())
    }
    let mut out = Vec::new();
    for kind in s.watch.kinds.iter().copied().filter(|k| k.info().follows_rollouts) {
        let listed = with_kind_type!(kind, K => list::<K>(client, ns, s).await);
        match listed {
            Ok(l) => out.extend(l),
            // Without a custom resource's API installed there are none to count (the
            // controller does not watch them either).
            Err(_) if kind.info().custom => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// The release marks (`breaker::RELEASE_ANNOTATION`) of the sources a reload would apply
/// changes of; metadata only, so no Secret data is read.
async fn release_marks(client: &Client, ns: &str, e: &Explanation) -> BTreeMap<SourceRef, String> {
    use crate::core::gates::breaker::RELEASE_ANNOTATION;
    let mut marks = BTreeMap::new();
    for r in e.causes.iter().map(|c| &c.source) {
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
            marks.insert(r.clone(), mark);
        }
    }
    marks
}

/// The time an Event last happened: its series' last observation, else its own time.
fn last_seen(ev: &k8s_openapi::api::events::v1::Event) -> Option<k8s_openapi::jiff::Timestamp> {
    ev.series
        .as_ref()
        .map(|s| s.last_observed_time.0)
        .or(ev.event_time.as_ref().map(|t| t.0))
        .or(ev.deprecated_last_timestamp.as_ref().map(|t| t.0))
}

/// The Events of a namespace that a field selector picks.
async fn events(client: &Client, ns: &str, selector: &str) -> Result<Vec<k8s_openapi::api::events::v1::Event>, Error> {
    use k8s_openapi::api::events::v1::Event;
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    let lp = ListParams::default().fields(selector);
    let list =
        api.list(&lp).await.map_err(|source| Error::Read { what: "events".into(), namespace: ns.into(), source })?;
    Ok(list.items)
}

/// A hold or spacing of the storm brake, as its Events show.
struct Brake {
    action: Action,
    /// "holds" or "defers".
    how: &'static str,
    line: String,
    since: k8s_openapi::jiff::Timestamp,
}

/// Whether the controller holds or spaces the workload with its storm brake: its latest
/// `ReloadHeld` or `ReloadDeferred` Event is newer than its latest `Reloaded` one (both end
/// with one reload). Pure, over any Events (those of other objects are left out).
fn brake_of(events: &[k8s_openapi::api::events::v1::Event], w: &Workload) -> Option<Brake> {
    let latest = |reason: &str| {
        events
            .iter()
            .filter(|e| {
                let r = e.regarding.as_ref();
                e.reason.as_deref() == Some(reason)
                    && r.and_then(|r| r.kind.as_deref()) == Some(w.key.kind.as_str())
                    && r.and_then(|r| r.name.as_deref()) == Some(w.key.name.as_str())
            })
            .filter_map(|e| Some((last_seen(e)?, e.note.clone().unwrap_or_default())))
            .max_by_key(|(t, _)| *t)
    };
    let reloaded = latest("Reloaded").map(|(t, _)| t);
    let newest =
        [(Action::Held, "holds", latest("ReloadHeld")), (Action::Deferred, "defers", latest("ReloadDeferred"))]
            .into_iter()
            .filter_map(|(action, how, e)| e.map(|(t, note)| (t, action, how, note)))
            .filter(|(t, ..)| reloaded.is_none_or(|r| r < *t))
            .max_by_key(|(t, ..)| *t);
    newest.map(|(t, action, how, note)| Brake {
        action,
        how,
        line: format!("{} since {t}: {note}", action.as_str()),
        since: t,
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
