//! Adoption on first start: workloads that exist before the controller starts get their record
//! in one write each, paced by `--adoption-writes-per-second`, while a change to any of them
//! is reloaded at once. Writes are counted from outside, by a watch started before the
//! controller, and requests from the controller's own counters (a 409 leaves no trace in a
//! watch).

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use reloader::metrics::{ResultLabel, WorkloadKindLabel};
use serde_json::json;

/// What a Deployment looked like in one watch event.
#[derive(Clone, Debug, PartialEq)]
struct Seen {
    rv: String,
    record: Option<String>,
    reloaded_from: Option<String>,
    /// Whether this controller's field manager owns fields of it.
    ours: bool,
}

/// A write of this controller, as the watch saw it.
#[derive(Clone, Debug)]
struct Write {
    at: Instant,
    /// It changed the pod template (a reload), not only the record.
    rolled: bool,
}

/// Per Deployment, what each watch event showed and when.
type Log = BTreeMap<String, Vec<(Instant, Seen)>>;

/// Every change of every Deployment of a namespace, from a watch started before the controller.
#[derive(Clone, Default)]
struct Observer {
    log: Arc<Mutex<Log>>,
}

impl Observer {
    async fn start(ns: &TestNs) -> Observer {
        let api: Api<Deployment> = ns.api();
        let list = api.list(&ListParams::default()).await.expect("list");
        let o = Observer::default();
        for d in &list.items {
            o.note(d);
        }
        let mut rv = list.metadata.resource_version.expect("list resourceVersion");
        let o2 = o.clone();
        tokio::spawn(async move {
            loop {
                let stream = api.watch(&WatchParams::default().timeout(290), &rv).await.expect("watch");
                futures::pin_mut!(stream);
                while let Some(ev) = stream.next().await {
                    match ev.expect("watch event") {
                        WatchEvent::Added(d) | WatchEvent::Modified(d) => {
                            rv = d.metadata.resource_version.clone().unwrap_or_default();
                            o2.note(&d);
                        }
                        WatchEvent::Bookmark(b) => rv = b.metadata.resource_version,
                        WatchEvent::Deleted(_) => {}
                        WatchEvent::Error(e) => panic!("watch error: {e:?}"),
                    }
                }
            }
        });
        o
    }

    fn note(&self, d: &Deployment) {
        let template = d.spec.as_ref().and_then(|s| s.template.metadata.as_ref()).and_then(|m| m.annotations.as_ref());
        let seen = Seen {
            rv: d.metadata.resource_version.clone().unwrap_or_default(),
            record: d.metadata.annotations.as_ref().and_then(|a| a.get(RECORD).cloned()),
            reloaded_from: template.and_then(|a| a.get(LAST_RELOADED_FROM).cloned()),
            ours: d.metadata.managed_fields.iter().flatten().any(|m| m.manager.as_deref() == Some("kube-reloader")),
        };
        let name = d.metadata.name.clone().unwrap_or_default();
        self.log.lock().unwrap().entry(name).or_default().push((Instant::now(), seen));
    }

    /// Per Deployment, the writes of this controller: changes of the record or of the pod
    /// template's `last-reloaded-from`, which nothing else here writes. (A write that changes
    /// nothing makes no event; the request counters below see those.)
    fn writes(&self) -> BTreeMap<String, Vec<Write>> {
        let log = self.log.lock().unwrap();
        log.iter()
            .map(|(name, seen)| {
                let writes = seen
                    .windows(2)
                    .filter(|p| p[0].1.record != p[1].1.record || p[0].1.reloaded_from != p[1].1.reloaded_from)
                    .inspect(|p| assert!(p[1].1.ours, "{name}: the record written by kube-reloader: {p:?}"))
                    .map(|p| Write { at: p[1].0, rolled: p[0].1.reloaded_from != p[1].1.reloaded_from })
                    .collect();
                (name.clone(), writes)
            })
            .collect()
    }

    /// Waits until no Deployment has changed for `quiet` (the controller-manager and kwok have
    /// settled them): a quiet cluster, as at a real cutover.
    async fn settled(&self, quiet: Duration) {
        let count = || self.log.lock().unwrap().values().map(Vec::len).sum::<usize>();
        let (mut last, mut since) = (count(), Instant::now());
        let start = Instant::now();
        while since.elapsed() < quiet {
            assert!(start.elapsed() < Duration::from_secs(60), "the Deployments did not settle");
            tokio::time::sleep(Duration::from_millis(100)).await;
            if count() != last {
                (last, since) = (count(), Instant::now());
            }
        }
    }
}

/// `n` auto-annotated Deployments `d-<i>`, each using its own ConfigMap `cfg-<i>`.
async fn workloads(ns: &TestNs, n: usize) {
    for i in 0..n {
        ns.set_configmap(&format!("cfg-{i}"), json!({"v": "1"})).await;
    }
    for i in 0..n {
        let (name, cm) = (format!("d-{i}"), format!("cfg-{i}"));
        let annotations = json!({"reloader.stakater.com/auto": "true"});
        ns.apply_json::<Deployment>(deployment(&name, annotations, env_from_configmaps(&[&cm]))).await;
    }
}

/// The Deployments still without a record.
async fn unrecorded(ns: &TestNs) -> Vec<String> {
    let list = ns.api::<Deployment>().list(&ListParams::default()).await.expect("list");
    list.items
        .iter()
        .filter(|d| !d.metadata.annotations.as_ref().is_some_and(|a| a.contains_key(RECORD)))
        .map(|d| d.metadata.name.clone().unwrap_or_default())
        .collect()
}

async fn await_all_recorded(ns: &TestNs, within: Duration) {
    eventually(within, "every Deployment recorded", || async { unrecorded(ns).await.is_empty().then_some(()) }).await;
}

/// The controller's write requests: each reconcile that wrote, each 409, each failed one.
fn requests(ctl: &Controller) -> (u64, u64, u64) {
    let m = &ctl.ctx.metrics;
    let wrote = m.reconcile.get_or_create(&ResultLabel { result: "success" }).get();
    let conflicts = m.write_conflicts.get_or_create(&WorkloadKindLabel { workload_kind: "Deployment" }).get();
    let errors = m.reconcile.get_or_create(&ResultLabel { result: "error" }).get();
    (wrote, conflicts, errors)
}

#[tokio::test]
async fn each_workload_is_adopted_with_one_write() {
    let n = 30;
    let ns = TestNs::new("adopt-once").await;
    workloads(&ns, n).await;
    let obs = Observer::start(&ns).await;
    obs.settled(Duration::from_secs(2)).await;

    let ctl = Controller::start(&ns, &[]).await;
    await_all_recorded(&ns, Duration::from_secs(20)).await;
    // Our own writes come back through the watch and are looked at again: nothing more to write.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let writes = obs.writes();
    assert_eq!(writes.len(), n);
    for (name, w) in &writes {
        assert_eq!(w.len(), 1, "{name}: one write: {w:?}");
        assert!(!w[0].rolled, "{name}: adopted without a rollout");
    }
    // One request per workload: no 409, no retry, no second write of the same record.
    assert_eq!(requests(&ctl), (n as u64, 0, 0), "(writes, 409s, errors)");
    assert_eq!(ctl.ctx.metrics.adoption_writes.get(), n as u64);
    ctl.ctx.refresh_gauges();
    assert_eq!(ctl.ctx.metrics.adoptions_waiting.get(), 0);
}

#[tokio::test]
async fn adoption_writes_are_paced_and_reloads_are_not() {
    let n = 30;
    let ns = TestNs::new("adopt-paced").await;
    workloads(&ns, n).await;
    let obs = Observer::start(&ns).await;
    obs.settled(Duration::from_secs(2)).await;

    let ctl = Controller::start(&ns, &["--adoption-writes-per-second=10"]).await;
    // 30 turns at 10 a second: the last one 2.9 s after the first. Pick a workload still
    // waiting for its turn and change its ConfigMap.
    let waiting = unrecorded(&ns).await;
    assert!(waiting.len() >= 20, "most adoptions still wait their turn: {} of {n}", waiting.len());
    ctl.ctx.refresh_gauges();
    assert!(ctl.ctx.metrics.adoptions_waiting.get() >= 20, "counted as waiting");
    let target = waiting.last().unwrap().clone();
    let cm = target.replace("d-", "cfg-");
    let before = pod_template(&ns, &target).await;
    ns.set_configmap(&cm, json!({"v": "2"})).await;
    // Within the usual 2 s, while most adoptions still wait.
    await_reload(&ns, &target, &before).await;
    let still_waiting = unrecorded(&ns).await.len();
    assert!(still_waiting >= 10, "reloaded ahead of the adoptions: {still_waiting} still waiting");

    await_all_recorded(&ns, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let writes = obs.writes();
    for (name, w) in &writes {
        assert_eq!(w.len(), 1, "{name}: one write: {w:?}");
        assert_eq!(w[0].rolled, *name == target, "{name}: only {target} rolled");
    }
    let adopted: Vec<Instant> = writes.values().filter(|w| !w[0].rolled).map(|w| w[0].at).collect();
    let span = *adopted.iter().max().unwrap() - *adopted.iter().min().unwrap();
    // 29 adoptions, evenly spaced at 100 ms (the reloaded workload's turn is left unused):
    // 2.8–2.9 s from the first to the last, less what the watch's delivery jitter takes off.
    assert!(span >= Duration::from_millis(2600), "29 adoptions at 10/s took {span:?}");
    assert!(span < Duration::from_secs(6), "and not much longer: {span:?}");
    // The reload's rollout ends: seen from the status, and not written (no more writes).
    eventually(Duration::from_secs(30), "the reload's rollout seen succeeded", || async {
        let text = ctl.ctx.metrics.encode();
        (metric(&text, "reloader_rollouts_total{workload_kind=\"Deployment\",outcome=\"succeeded\"}") == 1.0)
            .then_some(())
    })
    .await;
    let (writes, conflicts, errors) = requests(&ctl);
    assert_eq!((writes, errors), (n as u64, 0), "(writes, errors)");
    assert_eq!(conflicts, 0, "adoptions and the reload meet no 409");
    assert_eq!(ctl.ctx.metrics.adoption_writes.get(), n as u64 - 1);
    ctl.ctx.refresh_gauges();
    assert_eq!(ctl.ctx.metrics.adoptions_waiting.get(), 0, "no turn left behind");
}
