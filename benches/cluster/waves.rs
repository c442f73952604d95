//! Scenario 12, rollout waves (`make bench ONLY=waves`; this project's controller only, as
//! Stakater Reloader has no waves):
//! - throughput: Deployments (one replica each, pods made ready by kwok) sharing one
//!   ConfigMap, changed once under `--max-concurrent-rollouts` 5, 20 and unlimited; from the
//!   change until every Deployment has rolled and is complete and available again (their
//!   status, read by the bench), with the most seen rolling at once;
//! - a wave halting: Deployments whose new pods cannot be scheduled (kwok pods never read a
//!   ConfigMap, so a node label taken away stands in for a bad value) under
//!   `--max-concurrent-rollouts 5 --halt-on-failed-rollouts 3`, then the fix (the label back and
//!   the ConfigMap changed again); the state of every Deployment sampled over time, for the plot.

use super::*;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::jiff::Timestamp;

/// The tracking note the controller writes on a reloaded workload.
const ROLLOUT_NOTE: &str = "reloader.kube-reloader.dev/rollout";
/// The node label the halt scenario's pods need.
const HALT_LABEL: &str = "bench.kube-reloader.dev/halt-scenario";
const HALT_NODE: &str = "kwok-node-0";

#[derive(Serialize, Default, Clone)]
pub(crate) struct WaveRun {
    pub(crate) label: String,
    pub(crate) limit: Option<usize>,
    pub(crate) workloads: usize,
    /// From the change until the last Deployment was complete and available.
    pub(crate) seconds: f64,
    pub(crate) per_minute: f64,
    /// The most Deployments seen replacing pods at once, by their status (sampled every 250 ms).
    pub(crate) max_rolling: usize,
    /// The most tracking notes seen without an outcome at once: the controller's own count,
    /// which also holds a place from the write until the Deployment controller takes it up.
    pub(crate) max_tracked: usize,
    /// Deployments whose pod template changed exactly once.
    pub(crate) rolled_once: usize,
}

/// How many of the halt scenario's Deployments were in each state, `t` seconds after the bad
/// change, for the latest change (the bad one, then the fix).
#[derive(Serialize, Default, Clone, Copy)]
pub(crate) struct HaltSample {
    pub(crate) t: f64,
    pub(crate) in_progress: usize,
    pub(crate) succeeded: usize,
    pub(crate) failed: usize,
    pub(crate) waiting: usize,
    pub(crate) held: usize,
}

#[derive(Serialize, Default)]
pub(crate) struct HaltRun {
    pub(crate) workloads: usize,
    pub(crate) halted_at: Option<f64>,
    pub(crate) fix_at: f64,
    pub(crate) done_at: Option<f64>,
    pub(crate) samples: Vec<HaltSample>,
}

#[derive(Serialize, Default)]
pub(crate) struct WavesResult {
    pub(crate) throughput: Vec<WaveRun>,
    pub(crate) halt: HaltRun,
    pub(crate) missed: Vec<String>,
}

/// A Deployment of one replica using `cm` through `envFrom`.
fn wave_deployment(name: &str, cm: &str, node_label: bool) -> Deployment {
    let mut spec = json!({"containers": [{"name": "app", "image": "example.com/app:1",
                                           "envFrom": [{"configMapRef": {"name": cm}}]}]});
    let mut d = json!({
        "metadata": {"name": name, "annotations": {"reloader.stakater.com/auto": "true"}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": {}}}
    });
    if node_label {
        spec["nodeSelector"] = json!({HALT_LABEL: "ok"});
        d["spec"]["progressDeadlineSeconds"] = json!(10);
    }
    d["spec"]["template"]["spec"] = spec;
    serde_json::from_value(d).expect("a valid Deployment")
}

/// Rolled out and available: the kubectl rollout status rules.
fn complete(d: &Deployment) -> bool {
    let (Some(spec), Some(st)) = (d.spec.as_ref(), d.status.as_ref()) else { return false };
    let want = spec.replicas.unwrap_or(1);
    let updated = st.updated_replicas.unwrap_or(0);
    st.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
        && updated == want
        && st.replicas.unwrap_or(0) == updated
        && st.available_replicas.unwrap_or(0) == updated
}

/// Replacing pods, by its status alone, as the waves test reads it (not `observedGeneration`:
/// the note recording a failure moves the generation too, and nothing rolls then).
fn replacing(d: &Deployment) -> bool {
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let Some(st) = d.status.as_ref() else { return true };
    let updated = st.updated_replicas.unwrap_or(0);
    updated < want || st.replicas.unwrap_or(0) > updated || st.available_replicas.unwrap_or(0) < updated
}

fn template_of(d: &Deployment) -> String {
    serde_json::to_string(&d.spec.as_ref().map(|s| &s.template)).unwrap_or_default()
}

fn note_of(d: &Deployment) -> Option<Value> {
    serde_json::from_str(d.metadata.annotations.as_ref()?.get(ROLLOUT_NOTE)?).ok()
}

async fn set_node_label(client: &Client, value: Option<&str>) -> anyhow::Result<()> {
    let patch = json!({"metadata": {"labels": {HALT_LABEL: value}}});
    Api::<Node>::all(client.clone()).patch(HALT_NODE, &PatchParams::default(), &Patch::Merge(patch)).await?;
    Ok(())
}

impl Bench {
    pub(crate) async fn waves(&self, s: &Subject, tag: &str) -> anyhow::Result<WavesResult> {
        let mut r = WavesResult::default();
        self.wave_throughput(s, tag, &mut r).await?;
        self.wave_halt(s, tag, &mut r).await?;
        Ok(r)
    }

    /// Waits until every Deployment of `ns` is complete (at most `within`).
    async fn all_complete(&self, ns: &str, within: Duration) -> anyhow::Result<()> {
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), ns);
        let t = Instant::now();
        loop {
            let list = api.list(&ListParams::default()).await?;
            let waiting = list.items.iter().filter(|d| !complete(d)).count();
            if waiting == 0 {
                return Ok(());
            }
            if t.elapsed() > within {
                bail!("{waiting} Deployments of {ns} not complete after {within:?}");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn wave_throughput(&self, s: &Subject, tag: &str, r: &mut WavesResult) -> anyhow::Result<()> {
        let n = self.sizes.wave_workloads;
        let ns = format!("{tag}-waves");
        namespace(&self.client, &ns).await?;
        create_all(&Api::namespaced(self.client.clone(), &ns), vec![configmap("shared", "0")]).await?;
        let ds = (0..n).map(|i| wave_deployment(&format!("w-{i}"), "shared", false)).collect();
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), &ns);
        create_all(&api, ds).await?;
        self.all_complete(&ns, Duration::from_secs(600)).await?;
        eprintln!(">> waves: {n} Deployments of one replica each available");
        let settings: [(&str, Option<usize>); 3] = [("N=5", Some(5)), ("N=20", Some(20)), ("unlimited", None)];
        for (label, limit) in settings {
            let extra: Vec<String> = limit.map(|l| format!("--max-concurrent-rollouts={l}")).into_iter().collect();
            let (p, _) = self.launch(s, &extra, &format!("{tag}-waves-{}.log", label.replace('=', ""))).await?;
            // The first start records every Deployment (adoption, paced): wait until it is done.
            self.audit.quiesce(&s.agent, Duration::from_secs(3)).await?;
            let before: HashMap<String, String> = api
                .list(&ListParams::default())
                .await?
                .items
                .iter()
                .map(|d| (d.metadata.name.clone().unwrap_or_default(), template_of(d)))
                .collect();
            let t0 = Instant::now();
            set_data(&self.client, &ns, "shared", &format!("{label}-{}", uniq())).await?;
            let (mut max_rolling, mut max_tracked) = (0, 0);
            let done = loop {
                let list = api.list(&ListParams::default()).await?;
                let rolled: Vec<&Deployment> = list
                    .items
                    .iter()
                    .filter(|d| before.get(d.metadata.name.as_deref().unwrap_or("")) != Some(&template_of(d)))
                    .collect();
                max_rolling = max_rolling.max(rolled.iter().filter(|d| replacing(d)).count());
                let tracked =
                    list.items.iter().filter(|d| note_of(d).is_some_and(|n| n.get("outcome").is_none())).count();
                max_tracked = max_tracked.max(tracked);
                if rolled.len() == n && rolled.iter().all(|d| complete(d)) {
                    break Some(t0.elapsed());
                }
                if t0.elapsed() > Duration::from_secs(1200) {
                    break None;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            };
            // Long enough for a second rollout of any of them to show.
            tokio::time::sleep(Duration::from_secs(3)).await;
            let rolled_once = (0..n).filter(|i| self.templates.changes_of(&format!("{ns}/w-{i}"), t0) == 1).count();
            p.stop();
            let Some(took) = done else {
                r.missed.push(format!("waves {label}: not all {n} rolled within 20 min"));
                continue;
            };
            let run = WaveRun {
                label: label.into(),
                limit,
                workloads: n,
                seconds: took.as_secs_f64(),
                per_minute: n as f64 / took.as_secs_f64() * 60.0,
                max_rolling,
                max_tracked,
                rolled_once,
            };
            eprintln!(
                ">> waves {label}: {n} Deployments in {:.1} s ({:.0} per minute), at most {max_rolling} replacing \
                 pods and {max_tracked} tracked in progress at once, {rolled_once} rolled exactly once",
                run.seconds, run.per_minute
            );
            r.throughput.push(run);
        }
        Ok(())
    }

    async fn wave_halt(&self, s: &Subject, tag: &str, r: &mut WavesResult) -> anyhow::Result<()> {
        let n = self.sizes.halt_workloads;
        let ns = format!("{tag}-halt");
        namespace(&self.client, &ns).await?;
        set_node_label(&self.client, Some("ok")).await?;
        create_all(&Api::namespaced(self.client.clone(), &ns), vec![configmap("app-config", "0")]).await?;
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), &ns);
        create_all(&api, (0..n).map(|i| wave_deployment(&format!("h-{i}"), "app-config", true)).collect()).await?;
        self.all_complete(&ns, Duration::from_secs(300)).await?;
        let extra = ["--max-concurrent-rollouts=5".to_string(), "--halt-on-failed-rollouts=3".to_string()];
        let (p, _) = self.launch(s, &extra, &format!("{tag}-waves-halt.log")).await?;
        self.audit.quiesce(&s.agent, Duration::from_secs(3)).await?;

        // The bad change: running pods stay (the label is only needed to schedule), new ones
        // cannot be scheduled, and each rollout exceeds its 10 s progress deadline.
        set_node_label(&self.client, None).await?;
        let t0 = Instant::now();
        let mut since = Timestamp::now().as_second();
        set_data(&self.client, &ns, "app-config", &format!("bad-{}", uniq())).await?;
        let events: Api<Event> = Api::namespaced(self.client.clone(), &ns);
        let mut fixed = false;
        loop {
            let list = api.list(&ListParams::default()).await?;
            let halted = events.list(&ListParams::default()).await?.items.iter().any(|e| {
                e.reason.as_deref() == Some("ReloadHalted")
                    && e.regarding.as_ref().and_then(|o| o.kind.as_deref()) == Some("ConfigMap")
                    && e.event_time.as_ref().is_some_and(|t| t.0.as_second() >= since)
            });
            let t = t0.elapsed().as_secs_f64();
            let mut sample = HaltSample { t, ..Default::default() };
            for d in &list.items {
                let note = note_of(d).filter(|n| n["at"].as_i64().unwrap_or(0) >= since);
                // A success is not written on the note (an older build wrote it): the status says.
                match note.as_ref().map(|n| n["outcome"].as_str()) {
                    Some(Some("succeeded")) => sample.succeeded += 1,
                    Some(None) if complete(d) => sample.succeeded += 1,
                    Some(Some("failed")) => sample.failed += 1,
                    Some(_) => sample.in_progress += 1,
                    None if halted => sample.held += 1,
                    None => sample.waiting += 1,
                }
            }
            if halted && r.halt.halted_at.is_none() {
                r.halt.halted_at = Some(t);
            }
            r.halt.samples.push(sample);
            if fixed && sample.succeeded == n {
                r.halt.done_at = Some(t);
                break;
            }
            // The hold is shown for 20 s; then the fix. Nothing halting in 90 s is a failure.
            let fix_due = r.halt.halted_at.map(|h| t >= h + 20.0).unwrap_or(t >= 90.0);
            if !fixed && fix_due {
                if r.halt.halted_at.is_none() {
                    r.missed.push("halt: the breaker never held the bad change".into());
                }
                set_node_label(&self.client, Some("ok")).await?;
                // A later second than the bad change's notes, so each note names its change.
                tokio::time::sleep(Duration::from_millis(1100)).await;
                since = Timestamp::now().as_second();
                set_data(&self.client, &ns, "app-config", &format!("fixed-{}", uniq())).await?;
                r.halt.fix_at = t0.elapsed().as_secs_f64();
                fixed = true;
            }
            if t > 600.0 {
                r.missed.push("halt: the fix did not roll every Deployment within 10 min".into());
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        p.stop();
        r.halt.workloads = n;
        let last = r.halt.samples.iter().rev().find(|s| s.t <= r.halt.fix_at).copied().unwrap_or_default();
        eprintln!(
            ">> waves halt: held at {:?} s with {} failed, {} held; fix at {:.1} s; all {n} rolled at {:?} s",
            r.halt.halted_at.map(|t| format!("{t:.1}")),
            last.failed,
            last.held,
            r.halt.fix_at,
            r.halt.done_at.map(|t| format!("{t:.1}")),
        );
        Ok(())
    }
}

/// The halt scenario's states over time, as a plain SVG: one line per state, the bad change,
/// the hold and the fix marked.
pub(crate) fn halt_svg(h: &HaltRun, limit: usize, k: usize) -> String {
    let (w, ht, left, right, top, bottom) = (900.0, 380.0, 55.0, 150.0, 40.0, 45.0);
    let (pw, ph) = (w - left - right, ht - top - bottom);
    let t_max = h.samples.last().map_or(1.0, |s| s.t).max(1.0);
    let y_max = h.workloads.max(1) as f64;
    let x = |t: f64| left + t / t_max * pw;
    let y = |v: f64| top + ph - v / y_max * ph;
    let mut s = format!(
        "<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{ht}' font-family='sans-serif' font-size='12'>\n\
         <rect width='100%' height='100%' fill='white'/>\n\
         <text x='{left}' y='22' font-size='14'>A wave halting: {} Deployments, --max-concurrent-rollouts {limit} \
         --halt-on-failed-rollouts {k}</text>\n",
        h.workloads
    );
    // Axes, ticks and grid.
    s.push_str(&format!(
        "<line x1='{left}' y1='{}' x2='{}' y2='{}' stroke='black'/>\n<line x1='{left}' y1='{top}' x2='{left}' y2='{}' stroke='black'/>\n",
        top + ph,
        left + pw,
        top + ph,
        top + ph
    ));
    let step = if t_max > 120.0 { 20.0 } else { 10.0 };
    let mut t = 0.0;
    while t <= t_max {
        s.push_str(&format!(
            "<line x1='{0:.1}' y1='{1}' x2='{0:.1}' y2='{2}' stroke='#eee'/><text x='{0:.1}' y='{3}' text-anchor='middle'>{4:.0}</text>\n",
            x(t),
            top,
            top + ph,
            top + ph + 15.0,
            t
        ));
        t += step;
    }
    let ystep = (y_max / 5.0).ceil().max(1.0);
    let mut v = 0.0;
    while v <= y_max {
        s.push_str(&format!(
            "<line x1='{left}' y1='{0}' x2='{1}' y2='{0}' stroke='#eee'/><text x='{2}' y='{3}' text-anchor='end'>{v:.0}</text>\n",
            y(v),
            left + pw,
            left - 5.0,
            y(v) + 4.0
        ));
        v += ystep;
    }
    s.push_str(&format!(
        "<text x='{}' y='{}' text-anchor='middle'>seconds after the bad change</text>\n",
        left + pw / 2.0,
        ht - 8.0
    ));
    s.push_str(&format!(
        "<text x='14' y='{}' transform='rotate(-90 14 {})' text-anchor='middle'>Deployments</text>\n",
        top + ph / 2.0,
        top + ph / 2.0
    ));
    // Markers.
    let mut marks = vec![(0.0, "bad change")];
    if let Some(t) = h.halted_at {
        marks.push((t, "held"));
    }
    marks.push((h.fix_at, "fix"));
    for (i, (t, what)) in marks.iter().enumerate() {
        s.push_str(&format!(
            "<line x1='{0:.1}' y1='{1}' x2='{0:.1}' y2='{2}' stroke='#555' stroke-dasharray='4,3'/><text x='{3:.1}' y='{4}' fill='#555'>{what}</text>\n",
            x(*t),
            top,
            top + ph,
            x(*t) + 3.0,
            top + 12.0 + 13.0 * (i % 2) as f64
        ));
    }
    // One step line per state.
    type Pick = fn(&HaltSample) -> usize;
    let series: [(&str, &str, Pick); 5] = [
        ("in progress", "#1f77b4", |s| s.in_progress),
        ("succeeded", "#2ca02c", |s| s.succeeded),
        ("failed", "#d62728", |s| s.failed),
        ("waiting", "#7f7f7f", |s| s.waiting),
        ("held", "#ff7f0e", |s| s.held),
    ];
    for (i, (name, color, pick)) in series.iter().enumerate() {
        // A step line: a point where the value changes, and the last sample.
        let mut d = String::new();
        let mut prev: Option<f64> = None;
        for (j, smp) in h.samples.iter().enumerate() {
            let v = pick(smp) as f64;
            let last = j + 1 == h.samples.len();
            match prev {
                None => d.push_str(&format!("M{:.1},{:.1}", x(smp.t), y(v))),
                Some(p) if p != v => d.push_str(&format!(" L{:.1},{:.1} L{:.1},{:.1}", x(smp.t), y(p), x(smp.t), y(v))),
                Some(_) if last => d.push_str(&format!(" L{:.1},{:.1}", x(smp.t), y(v))),
                Some(_) => {}
            }
            prev = Some(v);
        }
        s.push_str(&format!("<path d='{d}' fill='none' stroke='{color}' stroke-width='2'/>\n"));
        let ly = top + 20.0 + 18.0 * i as f64;
        s.push_str(&format!(
            "<line x1='{0}' y1='{ly}' x2='{1}' y2='{ly}' stroke='{color}' stroke-width='3'/><text x='{2}' y='{3}'>{name}</text>\n",
            left + pw + 15.0,
            left + pw + 35.0,
            left + pw + 40.0,
            ly + 4.0
        ));
    }
    s.push_str("</svg>\n");
    s
}
