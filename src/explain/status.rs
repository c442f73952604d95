//! `reloader status` (and `kubectl reloader status`): one line per annotated workload of a
//! namespace, or of all, saying where it stands and since when. It reads the cluster as
//! `explain` does (the workloads, their namespaces' sources, the storm brake's Events, the
//! Lease), so it answers the same against any replica, or with no controller running.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, ListParams};
use serde::Serialize;

use super::{Action, Explanation, answer::explain, complete, events, leader, settings_for, sources};
use crate::cli::{Output, StatusArgs};
use crate::config::Settings;
use crate::core::decide::outcome::{self, Stage};
use crate::core::kinds::{WorkloadType, with_kind_type};
use crate::core::model::note::Ended;
use crate::core::model::workload::{self, Workload};
use crate::error::Error;

/// Where a workload stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Every governing source is as applied, and no rollout is under way or failed.
    UpToDate,
    /// The rollout the last reload started is under way.
    Rolling,
    /// The rollout the last reload started failed.
    Failed,
    /// A source changed and the reload is due (the debounce, the queue, a wave's turn), or
    /// only the record is to be updated.
    Waiting,
    /// The storm brake spaces its reloads.
    Deferred,
    /// The storm brake holds it.
    Held,
    /// The circuit breaker holds it.
    Halted,
    /// The controller paused the Deployment (pause period).
    Paused,
    /// Seen for the first time: to be adopted without a rollout.
    New,
    /// Its annotations are malformed and govern nothing.
    Invalid,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::UpToDate => "up to date",
            State::Rolling => "rolling",
            State::Failed => "failed",
            State::Waiting => "waiting",
            State::Deferred => "deferred",
            State::Held => "held",
            State::Halted => "halted",
            State::Paused => "paused",
            State::New => "new",
            State::Invalid => "invalid",
        }
    }
}

/// One line of the answer.
#[derive(Debug, PartialEq, Serialize)]
pub struct Row {
    pub namespace: String,
    /// `kind/name`, as `explain` takes it.
    pub workload: String,
    pub state: State,
    /// Since when, where it can be told (RFC 3339).
    pub since: Option<String>,
    pub detail: String,
}

fn at(unix: i64) -> Option<String> {
    Timestamp::from_second(unix).ok().map(|t| t.to_string())
}

/// The line of one workload, from its explanation (pure). `brake_since`: when the storm
/// brake's hold or spacing began; `now` in Unix seconds.
pub(crate) fn row(w: &Workload, e: &Explanation, brake_since: Option<Timestamp>, now: i64, s: &Settings) -> Row {
    let d = &e.decision;
    let (state, since, detail) = if !w.policy.is_active() {
        (State::Invalid, None, e.problems.join("; "))
    } else {
        match d.action {
            Action::Held => (State::Held, brake_since.map(|t| t.to_string()), d.detail.clone()),
            Action::Deferred => (State::Deferred, brake_since.map(|t| t.to_string()), d.detail.clone()),
            Action::Halted => (State::Halted, None, d.detail.clone()),
            Action::Reload | Action::Record => (State::Waiting, None, d.detail.clone()),
            Action::Adopt => (State::New, None, d.detail.clone()),
            Action::Resume => (State::Paused, w.controls.paused_at.clone(), d.detail.clone()),
            Action::Nothing if w.controls.paused_at.is_some() && w.controls.spec_paused => {
                (State::Paused, w.controls.paused_at.clone(), d.detail.clone())
            }
            Action::Nothing => rollout(w, now, s).unwrap_or((State::UpToDate, None, d.detail.clone())),
        }
    };
    let workload = format!("{}/{}", w.key.kind.as_str().to_ascii_lowercase(), w.key.name);
    Row { namespace: w.key.namespace.clone(), workload, state, since, detail }
}

/// Where the last reload's rollout stands, when it says more than "up to date".
fn rollout(w: &Workload, now: i64, s: &Settings) -> Option<(State, Option<String>, String)> {
    let t = w.tracked.as_ref()?;
    Some(match t.outcome {
        Some(Ended::Failed) => (
            State::Failed,
            t.ended.and_then(at),
            format!("rollout for {} failed: {}", t.cause, t.reason.as_deref().unwrap_or("unknown")),
        ),
        Some(_) => (State::UpToDate, at(t.at), format!("reloaded for {}", t.cause)),
        None => match outcome::classify(t, &w.progress, now, s.rollout_timeout) {
            Stage::InProgress(why) => (State::Rolling, at(t.at), format!("rollout for {}: {why}", t.cause)),
            Stage::Failed(why) => (State::Failed, None, format!("rollout for {} failed: {why}", t.cause)),
            Stage::Succeeded | Stage::Untracked => (State::UpToDate, at(t.at), format!("reloaded for {}", t.cause)),
        },
    })
}

/// Every workload of the watched kinds in `ns` (`None`: all namespaces).
async fn workloads(client: &Client, ns: Option<&str>, s: &Settings) -> Result<Vec<Workload>, Error> {
    async fn list<K: WorkloadType>(client: &Client, ns: Option<&str>, s: &Settings) -> Result<Vec<Workload>, Error> {
        let api: Api<K> = match ns {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        };
        let items = api.list(&ListParams::default()).await.map_err(|source| Error::Read {
            what: K::INFO.plural.into(),
            namespace: ns.unwrap_or("(all)").into(),
            source,
        })?;
        Ok(items.iter().map(|o| workload::project_object(o, &s.keys, s.auto_reload_all)).collect())
    }
    let mut out = Vec::new();
    for kind in s.watch.kinds.iter().copied() {
        match with_kind_type!(kind, K => list::<K>(client, ns, s).await) {
            Ok(l) => out.extend(l),
            // A custom resource whose API is not installed has none.
            Err(_) if kind.info().custom => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Runs the subcommand against the cluster.
pub async fn status(client: Client, args: &StatusArgs) -> Result<String, Error> {
    let s = settings_for(&args.run)?;
    let scope = if args.all_namespaces {
        None
    } else {
        Some(args.namespace.clone().unwrap_or_else(|| client.default_namespace().to_string()))
    };
    let mut by_ns: BTreeMap<String, Vec<Workload>> = BTreeMap::new();
    for w in workloads(&client, scope.as_deref(), &s).await? {
        by_ns.entry(w.key.namespace.clone()).or_default().push(w);
    }
    let leader = match &s.ha {
        Some(ha) => Some(leader(&client, ha).await?),
        None => None,
    };
    let now = Timestamp::now();
    let mut rows = Vec::new();
    for (ns, all) in &by_ns {
        let annotated: Vec<&Workload> =
            all.iter().filter(|w| w.policy.is_active() || !w.policy.errors.is_empty()).collect();
        if annotated.is_empty() {
            continue;
        }
        let (sources, versions) = sources(&client, ns, &s).await?;
        let mut evs = Vec::new();
        for reason in ["Reloaded", "ReloadHeld", "ReloadDeferred"] {
            evs.extend(events(&client, ns, &format!("reason={reason}")).await?);
        }
        let peers: Vec<Workload> = all.iter().filter(|w| w.key.kind.info().follows_rollouts).cloned().collect();
        for w in annotated {
            let mut e = explain(w, &sources, &versions, &s);
            let since = complete(&client, &s, w, &mut e, &evs, &peers, leader.as_ref()).await;
            rows.push(row(w, &e, since, now.as_second(), &s));
        }
    }
    Ok(match args.output {
        Output::Text => render(&rows, scope.is_none()),
        Output::Json => serde_json::to_string_pretty(&rows).expect("serialisable") + "\n",
    })
}

/// A table like kubectl's: the namespace column only across namespaces.
fn render(rows: &[Row], namespaces: bool) -> String {
    if rows.is_empty() {
        return "No workload annotated for reloads found.\n".into();
    }
    let mut table: Vec<Vec<String>> =
        vec![["NAMESPACE", "WORKLOAD", "STATE", "SINCE", "DETAIL"].map(String::from).to_vec()];
    for r in rows {
        let since = r.since.clone().unwrap_or_else(|| "-".into());
        table.push(vec![r.namespace.clone(), r.workload.clone(), r.state.as_str().into(), since, r.detail.clone()]);
    }
    let skip = usize::from(!namespaces);
    let widths: Vec<usize> = (0..5).map(|c| table.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    let mut o = String::new();
    for r in &table {
        let cells: Vec<String> =
            (skip..5).map(|c| if c == 4 { r[c].clone() } else { format!("{:<w$}", r[c], w = widths[c]) }).collect();
        let _ = writeln!(o, "{}", cells.join("   ").trim_end());
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::{NextStep, RecordSummary};

    fn explanation(action: Action, detail: &str) -> Explanation {
        Explanation {
            kind: "Deployment".into(),
            namespace: "ns".into(),
            name: "web".into(),
            policy: BTreeMap::new(),
            problems: Vec::new(),
            record: RecordSummary { present: true, written_by_other: None, error: None },
            sources: Vec::new(),
            held: None,
            leader: None,
            rollout: None,
            decision: NextStep { action, detail: detail.into() },
            causes: Vec::new(),
        }
    }

    fn settings() -> Settings {
        use clap::Parser;
        crate::cli::Cli::try_parse_from(["reloader"]).unwrap().run.settings().unwrap()
    }

    /// A Deployment annotated `reloader.stakater.com/auto: "true"`, projected.
    fn annotated(s: &Settings) -> Workload {
        let d: k8s_openapi::api::apps::v1::Deployment = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "ns", "annotations": {"reloader.stakater.com/auto": "true"}},
            "spec": {"selector": {}, "template": {"spec": {"containers": [{"name": "app"}]}}}
        }))
        .unwrap();
        workload::project_object(&d, &s.keys, false)
    }

    #[test]
    fn states_from_decisions() {
        let s = settings();
        let w = annotated(&s);
        let since = Timestamp::from_second(1_800_000_000).unwrap();
        let rows: [(Action, Option<Timestamp>, State, Option<&str>); 7] = [
            (Action::Nothing, None, State::UpToDate, None),
            (Action::Reload, None, State::Waiting, None),
            (Action::Record, None, State::Waiting, None),
            (Action::Adopt, None, State::New, None),
            (Action::Held, Some(since), State::Held, Some("2027-01-15T08:00:00Z")),
            (Action::Deferred, Some(since), State::Deferred, Some("2027-01-15T08:00:00Z")),
            (Action::Halted, None, State::Halted, None),
        ];
        for (action, brake, want, want_since) in rows {
            let r = row(&w, &explanation(action, "d"), brake, 1_800_000_100, &s);
            assert_eq!((r.state, r.since.as_deref()), (want, want_since), "{action:?}");
            assert_eq!(r.workload, "deployment/web");
        }
    }

    #[test]
    fn the_table_aligns_and_names_namespaces_only_across_them() {
        let rows = vec![
            Row {
                namespace: "a".into(),
                workload: "deployment/web".into(),
                state: State::UpToDate,
                since: None,
                detail: "x".into(),
            },
            Row {
                namespace: "b".into(),
                workload: "sts/db".into(),
                state: State::Held,
                since: Some("t".into()),
                detail: "y".into(),
            },
        ];
        assert_eq!(
            render(&rows, false),
            "WORKLOAD         STATE        SINCE   DETAIL\n\
             deployment/web   up to date   -       x\n\
             sts/db           held         t       y\n"
        );
        assert!(render(&rows, true).starts_with("NAMESPACE   WORKLOAD"));
        assert_eq!(render(&[], true), "No workload annotated for reloads found.\n");
    }
}
