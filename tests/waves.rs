//! Rollout waves (`--max-concurrent-rollouts`) against the local control plane: 50 Deployments
//! sharing one ConfigMap roll at most N at a time, all of them exactly once, also across a
//! SIGKILL of the controller in the middle of the wave; the circuit breaker
//! (`--halt-on-failed-rollouts`) holding a bad change, lifted by the next change or by the
//! source's release mark.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::ListParams;
use serde_json::{Value, json};

const ROLLOUT: &str = "reloader.kube-reloader.dev/rollout";
const N: usize = 5;
const WORKLOADS: usize = 50;

fn tracking(d: &Deployment) -> Option<Value> {
    serde_json::from_str(d.metadata.annotations.as_ref()?.get(ROLLOUT)?).ok()
}

/// Whether the Deployment's status shows pods being replaced, read independently of the
/// controller. (Not `observedGeneration`: a Deployment's generation also moves when only its
/// annotations change, as when the outcome is recorded, and nothing rolls then.)
fn rolling(d: &Deployment) -> bool {
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let Some(st) = d.status.as_ref() else { return true };
    st.updated_replicas.unwrap_or(0) < want
        || st.replicas.unwrap_or(0) > st.updated_replicas.unwrap_or(0)
        || st.available_replicas.unwrap_or(0) < st.updated_replicas.unwrap_or(0)
}

/// Whether the rollout the tracking note names is complete by the Deployment's status (a
/// success is not written on it): the generation the reload made observed, nothing rolling.
fn complete(d: &Deployment) -> bool {
    let Some(n) = tracking(d) else { return false };
    let observed = d.status.as_ref().and_then(|s| s.observed_generation).unwrap_or(0);
    n.get("outcome").is_none() && observed >= n["generation"].as_i64().unwrap_or(i64::MAX) && !rolling(d)
}

struct Sampler {
    stop: Arc<AtomicBool>,
    max_rolling: Arc<AtomicUsize>,
    max_pending: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

/// Lists the Deployments every 100 ms: the most rolling at once (by their status), and the
/// most whose tracking note's rollout has not ended (no outcome recorded, not complete).
fn sample(ns: &TestNs) -> Sampler {
    let api = ns.api::<Deployment>();
    let stop = Arc::new(AtomicBool::new(false));
    let max_rolling = Arc::new(AtomicUsize::new(0));
    let max_pending = Arc::new(AtomicUsize::new(0));
    let (s, r, p) = (stop.clone(), max_rolling.clone(), max_pending.clone());
    let task = tokio::spawn(async move {
        while !s.load(Ordering::SeqCst) {
            if let Ok(list) = api.list(&ListParams::default()).await {
                let rolling = list.items.iter().filter(|d| rolling(d)).count();
                let pending = list
                    .items
                    .iter()
                    .filter(|d| tracking(d).is_some_and(|n| n.get("outcome").is_none()) && !complete(d))
                    .count();
                r.fetch_max(rolling, Ordering::SeqCst);
                p.fetch_max(pending, Ordering::SeqCst);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    Sampler { stop, max_rolling, max_pending, task }
}

impl Sampler {
    async fn finish(self) -> (usize, usize) {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap();
        (self.max_rolling.load(Ordering::SeqCst), self.max_pending.load(Ordering::SeqCst))
    }
}

async fn fleet(ns: &TestNs) {
    ns.set_configmap("shared", json!({"v": "1"})).await;
    for i in 0..WORKLOADS {
        let mut d = deployment(
            &format!("w{i:02}"),
            json!({"reloader.stakater.com/auto": "true"}),
            env_from_configmaps(&["shared"]),
        );
        d["spec"]["replicas"] = json!(1);
        ns.apply_json::<Deployment>(d).await;
    }
    eventually(Duration::from_secs(60), "every Deployment available", || async {
        let list = ns.api::<Deployment>().list(&ListParams::default()).await.ok()?;
        list.items.iter().all(|d| !rolling(d)).then_some(())
    })
    .await;
}

async fn outcomes(ns: &TestNs) -> usize {
    let list = ns.api::<Deployment>().list(&ListParams::default()).await.expect("list");
    list.items.iter().filter(|d| complete(d)).count()
}

async fn assert_each_rolled_once(ns: &TestNs) {
    for i in 0..WORKLOADS {
        let name = format!("w{i:02}");
        assert_eq!(replica_sets(ns, &name).await, 2, "{name} rolled exactly once");
    }
}

#[tokio::test]
async fn a_shared_change_rolls_at_most_n_at_a_time_each_once() {
    let ns = TestNs::new("waves").await;
    fleet(&ns).await;
    let n = format!("--max-concurrent-rollouts={N}");
    let ctl = Controller::start(&ns, &[&n]).await;
    eventually(Duration::from_secs(20), "every Deployment recorded", || async {
        let list = ns.api::<Deployment>().list(&ListParams::default()).await.ok()?;
        list.items.iter().all(|d| d.metadata.annotations.as_ref().is_some_and(|a| a.contains_key(RECORD))).then_some(())
    })
    .await;

    let sampler = sample(&ns);
    ns.set_configmap("shared", json!({"v": "2"})).await;
    // A moment in: N roll, the others wait.
    eventually(Duration::from_secs(5), "others waiting", || async {
        (metric(&ctl.ctx.metrics.encode(), "reloader_rollouts_waiting") > 0.0).then_some(())
    })
    .await;
    eventually(Duration::from_secs(120), "every rollout succeeded", || async {
        (outcomes(&ns).await == WORKLOADS).then_some(())
    })
    .await;
    let (max_rolling, max_pending) = sampler.finish().await;
    eprintln!("at most {max_rolling} rolling and {max_pending} tracked in progress at once");
    assert!(max_rolling <= N, "{max_rolling} rolling at once");
    assert!(max_pending <= N, "{max_pending} tracked in progress at once");
    assert!(max_pending >= 2, "the wave ran several at once: {max_pending}");
    assert_each_rolled_once(&ns).await;
    // The controller sees each end from the watch, moments after the status shows it.
    let text = eventually(Duration::from_secs(5), "every success seen by the controller", || async {
        let text = ctl.ctx.metrics.encode();
        let seen = metric(&text, "reloader_rollouts_total{workload_kind=\"Deployment\",outcome=\"succeeded\"}");
        (seen == WORKLOADS as f64).then_some(text)
    })
    .await;
    assert_eq!(metric(&text, "reloader_rollouts_waiting"), 0.0);
    assert_eq!(metric(&text, "reloader_rollouts_in_progress"), 0.0);
}

#[tokio::test]
async fn a_wave_resumes_after_a_sigkill_without_exceeding_n() {
    let ns = TestNs::new("waves-kill").await;
    fleet(&ns).await;
    let n = format!("--max-concurrent-rollouts={N}");
    let first = Process::start(&[&ns], &[&n], &[]);
    first.await_ready().await;
    eventually(Duration::from_secs(20), "every Deployment recorded", || async {
        let list = ns.api::<Deployment>().list(&ListParams::default()).await.ok()?;
        list.items.iter().all(|d| d.metadata.annotations.as_ref().is_some_and(|a| a.contains_key(RECORD))).then_some(())
    })
    .await;

    let sampler = sample(&ns);
    ns.set_configmap("shared", json!({"v": "2"})).await;
    // Killed once the wave is under way: some done, some rolling, most waiting.
    eventually(Duration::from_secs(120), "a part of the wave done", || async {
        (outcomes(&ns).await >= 20).then_some(())
    })
    .await;
    first.signal("KILL");
    drop(first);
    let done_before = outcomes(&ns).await;
    assert!(done_before < WORKLOADS, "killed in the middle: {done_before} done");
    eprintln!("killed with {done_before} of {WORKLOADS} rollouts done");

    let second = Process::start(&[&ns], &[&n], &[]);
    second.await_ready().await;
    eventually(Duration::from_secs(120), "every rollout succeeded", || async {
        (outcomes(&ns).await == WORKLOADS).then_some(())
    })
    .await;
    let (max_rolling, max_pending) = sampler.finish().await;
    eprintln!("at most {max_rolling} rolling and {max_pending} tracked in progress at once");
    assert!(max_rolling <= N, "{max_rolling} rolling at once");
    assert!(max_pending <= N, "{max_pending} tracked in progress at once");
    assert_each_rolled_once(&ns).await;
}

/// Deployments whose new pods no node takes, with a 3 s progress deadline: every rollout fails.
async fn failing_fleet(ns: &TestNs, count: usize) {
    ns.set_configmap("shared", json!({"v": "1"})).await;
    for i in 0..count {
        let mut spec = env_from_configmaps(&["shared"]);
        spec["nodeSelector"] = json!({"kube-reloader.dev/no-such-node": "true"});
        let mut d = deployment(&format!("w{i:02}"), json!({"reloader.stakater.com/auto": "true"}), spec);
        d["spec"]["replicas"] = json!(1);
        d["spec"]["progressDeadlineSeconds"] = json!(3);
        ns.apply_json::<Deployment>(d).await;
    }
}

/// Rollouts so far: ReplicaSets beyond each Deployment's first.
async fn rollouts(ns: &TestNs, count: usize) -> usize {
    let mut n = 0;
    for i in 0..count {
        n += replica_sets(ns, &format!("w{i:02}")).await.saturating_sub(1);
    }
    n
}

async fn halted_events(ns: &TestNs) -> Vec<k8s_openapi::api::events::v1::Event> {
    let list = ns.api::<k8s_openapi::api::events::v1::Event>().list(&ListParams::default()).await.expect("events");
    list.items.into_iter().filter(|e| e.reason.as_deref() == Some("ReloadHalted")).collect()
}

#[tokio::test]
async fn failed_rollouts_halt_a_change_until_the_source_changes_again() {
    const COUNT: usize = 6;
    let ns = TestNs::new("breaker").await;
    failing_fleet(&ns, COUNT).await;
    let ctl = Controller::start(&ns, &["--max-concurrent-rollouts=2", "--halt-on-failed-rollouts=2"]).await;
    eventually(Duration::from_secs(20), "every Deployment recorded", || async {
        let list = ns.api::<Deployment>().list(&ListParams::default()).await.ok()?;
        (list.items.len() == COUNT
            && list.items.iter().all(|d| d.metadata.annotations.as_ref().is_some_and(|a| a.contains_key(RECORD))))
        .then_some(())
    })
    .await;

    ns.set_configmap("shared", json!({"v": "2"})).await;
    // The first wave (2) rolls and fails; that is K failures: the other 4 are held.
    let events = eventually(Duration::from_secs(60), "the hold reported on the source and 4 workloads", || async {
        let e = halted_events(&ns).await;
        (e.len() == 5).then_some(e)
    })
    .await;
    let on_source: Vec<_> =
        events.iter().filter(|e| e.regarding.as_ref().and_then(|r| r.kind.as_deref()) == Some("ConfigMap")).collect();
    assert_eq!(on_source.len(), 1, "one Event on the ConfigMap");
    let note = on_source[0].note.clone().unwrap_or_default();
    assert!(note.starts_with("held: 2 of the first 2 rollouts for configmap/shared@"), "{note}");
    assert!(events.iter().all(|e| e.type_.as_deref() == Some("Warning")));
    holds(Duration::from_secs(5), "exactly the first wave rolled", || async { rollouts(&ns, COUNT).await == 2 }).await;
    let text = ctl.ctx.metrics.encode();
    assert_eq!(metric(&text, "reloader_changes_halted_total"), 1.0);
    assert_eq!(metric(&text, "reloader_rollouts_halted_total"), 4.0);
    assert_eq!(metric(&text, "reloader_rollouts_total{workload_kind=\"Deployment\",outcome=\"failed\"}"), 2.0);
    assert_eq!(metric(&text, "reloader_rollouts_waiting"), 0.0, "the held are out of the line");
    let mut held = None;
    for i in 0..COUNT {
        let name = format!("w{i:02}");
        if replica_sets(&ns, &name).await == 1 {
            held = Some(name);
            break;
        }
    }
    let held = held.expect("a held workload");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_reloader"))
        .args(["explain", &format!("deployment/{held}"), "-n", &ns.name])
        .args(["--max-concurrent-rollouts=2", "--halt-on-failed-rollouts=2"])
        .env("KUBECONFIG", &cluster().kubeconfig)
        .output()
        .expect("run reloader explain");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("decision: halted: would roll it: configmap/shared changed, but held: 2 of the first 2 rollouts for configmap/shared@"),
        "{text}"
    );

    // A second change (a fix, or a revert) lifts the hold: a new wave starts. Its rollouts
    // fail too here, so exactly one more wave rolls and the new change is held in turn.
    ns.set_configmap("shared", json!({"v": "3"})).await;
    eventually(Duration::from_secs(60), "the second change halted too", || async {
        (metric(&ctl.ctx.metrics.encode(), "reloader_changes_halted_total") == 2.0).then_some(())
    })
    .await;
    holds(Duration::from_secs(5), "exactly one more wave rolled", || async { rollouts(&ns, COUNT).await == 4 }).await;
}

/// A label on a fake node for the life of a test (removed when dropped, even on panic).
struct NodeLabel(String);

impl NodeLabel {
    fn set(key: &str) -> NodeLabel {
        let out = kubectl(&["label", "node", "kwok-node-0", &format!("{key}=ok"), "--overwrite"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        NodeLabel(key.to_string())
    }
}

impl Drop for NodeLabel {
    fn drop(&mut self) {
        let _ = kubectl(&["label", "node", "kwok-node-0", &format!("{}-", self.0)]);
    }
}

#[tokio::test]
async fn a_release_mark_lets_a_held_change_go_on_and_a_good_change_rolls_everything_once() {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{Patch, PatchParams};
    const COUNT: usize = 8;
    let ns = TestNs::new("release").await;
    // Pods that need a node label no node has yet: every rollout fails on its 3 s deadline,
    // until the label is put on a node (the "good change" below).
    let label = format!("kube-reloader.dev/{}", ns.name);
    ns.set_configmap("shared", json!({"v": "1"})).await;
    for i in 0..COUNT {
        let mut spec = env_from_configmaps(&["shared"]);
        spec["nodeSelector"] = json!({label.as_str(): "ok"});
        let mut d = deployment(&format!("w{i:02}"), json!({"reloader.stakater.com/auto": "true"}), spec);
        d["spec"]["replicas"] = json!(1);
        d["spec"]["progressDeadlineSeconds"] = json!(3);
        ns.apply_json::<Deployment>(d).await;
    }
    let ctl = Controller::start(&ns, &["--max-concurrent-rollouts=3", "--halt-on-failed-rollouts=3"]).await;
    eventually(Duration::from_secs(20), "every Deployment recorded", || async {
        let list = ns.api::<Deployment>().list(&ListParams::default()).await.ok()?;
        (list.items.len() == COUNT
            && list.items.iter().all(|d| d.metadata.annotations.as_ref().is_some_and(|a| a.contains_key(RECORD))))
        .then_some(())
    })
    .await;

    ns.set_configmap("shared", json!({"v": "2"})).await;
    // The first wave (3) rolls and fails: K = 3, the other 5 are held.
    let events = eventually(Duration::from_secs(60), "the hold reported", || async {
        let e = halted_events(&ns).await;
        (e.len() == 1 + COUNT - 3).then_some(e)
    })
    .await;
    holds(Duration::from_secs(3), "exactly the first wave rolled", || async { rollouts(&ns, COUNT).await == 3 }).await;
    let note = events
        .iter()
        .find(|e| e.regarding.as_ref().and_then(|r| r.kind.as_deref()) == Some("ConfigMap"))
        .and_then(|e| e.note.clone())
        .expect("the Event on the source");
    assert!(note.contains("reloader.kube-reloader.dev/release-hold"), "the Event says how to release it: {note}");
    let hash = note.split("configmap/shared@").nth(1).map(|s| s[..12].to_string()).expect("the change's hash");

    // A mark naming another change lifts nothing.
    let mark = |value: &str| {
        Patch::Merge(json!({"metadata": {"annotations": {"reloader.kube-reloader.dev/release-hold": value}}}))
    };
    let cms = ns.api::<ConfigMap>();
    cms.patch("shared", &PatchParams::default(), &mark("ffffffffffff")).await.unwrap();
    holds(Duration::from_secs(3), "still held", || async { rollouts(&ns, COUNT).await == 3 }).await;
    // The mark naming it lets the rest roll (they fail too; the operator said to go on).
    cms.patch("shared", &PatchParams::default(), &mark(&hash)).await.unwrap();
    eventually(Duration::from_secs(90), "every Deployment rolled once", || async {
        (rollouts(&ns, COUNT).await == COUNT).then_some(())
    })
    .await;
    let released = eventually(Duration::from_secs(5), "a ReloadReleased Event on the source", || async {
        let list = ns.api::<k8s_openapi::api::events::v1::Event>().list(&ListParams::default()).await.ok()?;
        list.items.into_iter().find(|e| e.reason.as_deref() == Some("ReloadReleased"))
    })
    .await;
    assert_eq!(released.type_.as_deref(), Some("Normal"));
    assert_eq!(released.regarding.and_then(|r| r.name).as_deref(), Some("shared"));
    assert_eq!(metric(&ctl.ctx.metrics.encode(), "reloader_changes_halted_total"), 1.0);

    // The good change: new pods can run now, and the next content of the source rolls every
    // Deployment exactly once more, to success.
    let _label = NodeLabel::set(&label);
    eventually(Duration::from_secs(60), "every rollout's outcome recorded", || async {
        let list = ns.api::<Deployment>().list(&ListParams::default()).await.ok()?;
        list.items.iter().all(|d| tracking(d).is_some_and(|n| n.get("outcome").is_some()) || complete(d)).then_some(())
    })
    .await;
    ns.set_configmap("shared", json!({"v": "3"})).await;
    eventually(Duration::from_secs(120), "every Deployment rolled to success", || async {
        let list = ns.api::<Deployment>().list(&ListParams::default()).await.ok()?;
        let ok = list
            .items
            .iter()
            .filter(|d| complete(d))
            .filter_map(tracking)
            .filter(|n| n["cause"].as_str().is_some_and(|c| !c.contains(&hash)))
            .count();
        (ok == COUNT).then_some(())
    })
    .await;
    holds(Duration::from_secs(3), "each rolled exactly once more", || async {
        rollouts(&ns, COUNT).await == 2 * COUNT
    })
    .await;
    assert_eq!(metric(&ctl.ctx.metrics.encode(), "reloader_changes_halted_total"), 1.0, "the good change rolls on");
}

#[tokio::test]
async fn after_a_restart_the_waiting_reloads_keep_their_order_oldest_change_first() {
    let ns = TestNs::new("wave-order").await;
    let one = |name: &str, cm: &str, stuck: bool| {
        let mut spec = env_from_configmaps(&[cm]);
        if stuck {
            spec["nodeSelector"] = json!({"kube-reloader.dev/no-such-node": "true"});
        }
        let mut d = deployment(name, json!({"reloader.stakater.com/auto": "true"}), spec);
        d["spec"]["replicas"] = json!(1);
        d
    };
    // Named so that a controller looking at them in name order would take the later change first.
    for (name, cm, stuck) in [("blocker", "block", true), ("b-early", "early", false), ("a-late", "late", false)] {
        ns.set_configmap(cm, json!({"v": "1"})).await;
        ns.apply_json::<Deployment>(one(name, cm, stuck)).await;
    }
    let args = ["--max-concurrent-rollouts=1", "--rollout-timeout=15s"];
    let ctl = Controller::start(&ns, &args).await;
    eventually(Duration::from_secs(20), "every Deployment recorded", || async {
        let list = ns.api::<Deployment>().list(&ListParams::default()).await.ok()?;
        (list.items.len() == 3
            && list.items.iter().all(|d| d.metadata.annotations.as_ref().is_some_and(|a| a.contains_key(RECORD))))
        .then_some(())
    })
    .await;
    // The blocker takes the one place and keeps it (its pods never start) until the timeout.
    ns.set_configmap("block", json!({"v": "2"})).await;
    let note = |name: &'static str| {
        let api = ns.api::<Deployment>();
        async move { tracking(&api.get(name).await.ok()?) }
    };
    eventually(Duration::from_secs(10), "the blocker reloaded", || note("blocker")).await;
    ns.set_configmap("early", json!({"v": "2"})).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    ns.set_configmap("late", json!({"v": "2"})).await;
    eventually(Duration::from_secs(10), "both waiting", || async {
        (metric(&ctl.ctx.metrics.encode(), "reloader_rollouts_waiting") == 2.0).then_some(())
    })
    .await;
    ctl.stop().await;

    // A new controller: the blocker's rollout still holds the place; when it times out, the
    // older change goes first.
    let _ctl = Controller::start(&ns, &args).await;
    assert!(note("b-early").await.is_none() && note("a-late").await.is_none(), "nothing started past the limit");
    let first = eventually(Duration::from_secs(40), "a waiting reload started", || async {
        match (note("b-early").await, note("a-late").await) {
            (None, None) => None,
            (early, late) => Some((early.is_some(), late.is_some())),
        }
    })
    .await;
    assert_eq!(first, (true, false), "the older change (b-early) first, alone");
    eventually(Duration::from_secs(30), "then the later one", || note("a-late")).await;
}
