//! The scenarios, and what each records.

use super::*;

#[derive(Serialize, Default)]
pub(crate) struct ScaleRun {
    pub(crate) ready_s: f64,
    pub(crate) cpu_at_ready_s: f64,
    pub(crate) rss_steady_mib: f64,
    pub(crate) rss_peak_mib: f64,
    /// `--only scale`: RSS 320 s after ready, once the watches that carried the initial list
    /// have ended at their timeout (290 s) and resumed without it.
    pub(crate) rss_late_mib: Option<f64>,
    pub(crate) requests_during_sync: Requests,
}

#[derive(Serialize, Default)]
pub(crate) struct SubjectResult {
    pub(crate) name: String,
    pub(crate) scale: Vec<ScaleRun>,
    /// variant → latencies in milliseconds (a missed reload is not included; see `missed`)
    pub(crate) latency_ms: BTreeMap<String, Vec<f64>>,
    pub(crate) fanout_s: Vec<f64>,
    /// Per repeat: requests refused with 429 during the fan-out.
    pub(crate) fanout_throttled: Vec<usize>,
    /// Workload writes per change, outcome notes apart (they are in `fanout_outcomes`).
    pub(crate) fanout_patches: Vec<usize>,
    /// Writes recording how the rollouts of each change ended (ours only), counted until the
    /// next change.
    pub(crate) fanout_outcomes: Vec<usize>,
    pub(crate) burst_spread_ms: Vec<f64>,
    pub(crate) burst_rollouts: Vec<usize>,
    pub(crate) noop_workload_writes: usize,
    /// Outcome notes written meanwhile: late outcomes of the rollouts of earlier scenarios.
    pub(crate) noop_outcome_writes: usize,
    pub(crate) noop_template_changes: usize,
    pub(crate) restart_rollouts: usize,
    pub(crate) restart_workload_writes: usize,
    pub(crate) restart_outcome_writes: usize,
    /// Sources changed while the controller was stopped, their workloads that rolled after it
    /// started again, and the rollouts (exactly once each is the goal).
    pub(crate) down_changes: usize,
    pub(crate) down_rolled: usize,
    pub(crate) down_rollouts: usize,
    pub(crate) lists_after_sync: usize,
    pub(crate) requests_after_sync: Requests,
    /// Workload churn: RSS after each round of create, reload, delete.
    pub(crate) churn_rss_mib: Vec<f64>,
    /// Workload churn: heap in use after each round, as the controller's allocator counts it
    /// (ours: `reloader_heap_bytes`; Go: `go_memstats_heap_inuse_bytes`), when it reports it.
    pub(crate) churn_heap_mib: Vec<f64>,
    /// Large objects: latency of each change (ms), RSS before and after the changes (MiB).
    pub(crate) large_latency_ms: Vec<f64>,
    pub(crate) large_rss_mib: (f64, f64),
    /// API pressure: writes made, the latency of each (ms; until its workload's next rollout),
    /// rollouts per workload, seconds from the last write until the last rollout, and the
    /// workloads whose last rollout came after their source's last write.
    pub(crate) pressure_changes: usize,
    pub(crate) pressure_latency_ms: Vec<f64>,
    pub(crate) pressure_rollouts: Vec<usize>,
    pub(crate) pressure_drain_s: f64,
    pub(crate) pressure_converged: usize,
    /// Mixed kinds and references: latency of each source change that rolled its workload (ms).
    pub(crate) mixed_latency_ms: Vec<f64>,
    /// Many namespaces: the start with the scale set spread over them, and the latency of
    /// changes in different namespaces (ms).
    pub(crate) spread: Option<ScaleRun>,
    pub(crate) spread_latency_ms: Vec<f64>,
    /// Sustained change (scenario 13).
    pub(crate) sustained: Option<Sustained>,
    pub(crate) missed: Vec<String>,
}

pub(crate) fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

// ---------------------------------------------------------------------------------------------
// Scenarios.

pub(crate) struct Bench {
    pub(crate) client: Client,
    pub(crate) audit: Audit,
    pub(crate) templates: Templates,
    pub(crate) sizes: Sizes,
    pub(crate) repeat: usize,
    pub(crate) logs: PathBuf,
    pub(crate) only: Option<String>,
}

impl Bench {
    pub(crate) async fn setup_scale(&self) -> anyhow::Result<()> {
        let sz = &self.sizes;
        let ns = "bench-scale";
        namespace(&self.client, ns).await?;
        let t = Instant::now();
        let secrets = Api::<Secret>::namespaced(self.client.clone(), ns);
        create_all(&secrets, (0..sz.secrets).map(scale_secret).collect()).await?;
        let cms = Api::<ConfigMap>::namespaced(self.client.clone(), ns);
        let filler_cm = |i: usize| {
            let v = String::from_utf8(filler(i as u64 + 7, 1024 + (i * 53) % 3072)).unwrap();
            configmap(&format!("c-{i}"), &v)
        };
        create_all(&cms, (0..sz.configmaps).map(filler_cm).collect()).await?;
        let ds = (0..sz.deployments)
            .map(|i| {
                let s = format!("s-{}", (i * 7) % sz.secrets);
                deployment(&format!("d-{i}"), &[format!("c-{}", (i * 13) % sz.configmaps)], Some(&s))
            })
            .collect();
        create_all(&Api::<Deployment>::namespaced(self.client.clone(), ns), ds).await?;
        eprintln!(
            ">> scale set: {} Secrets, {} ConfigMaps, {} Deployments created in {:.0} s",
            sz.secrets,
            sz.configmaps,
            sz.deployments,
            t.elapsed().as_secs_f64()
        );
        Ok(())
    }

    /// Replaces the one-namespace scale set with the same objects spread over
    /// `spread_namespaces` namespaces: object `i` goes to `bench-spread-{i mod n}`, and
    /// Deployment `d-i` uses `c-i` and `s-i`, which are in its namespace.
    pub(crate) async fn setup_spread(&self) -> anyhow::Result<()> {
        let sz = &self.sizes;
        let t = Instant::now();
        let namespaces = Api::<Namespace>::all(self.client.clone());
        namespaces.delete("bench-scale", &Default::default()).await?;
        while namespaces.get_opt("bench-scale").await?.is_some() {
            if t.elapsed() > Duration::from_secs(600) {
                bail!("namespace bench-scale not deleted within 600 s");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let n = sz.spread_namespaces;
        for k in 0..n {
            namespace(&self.client, &spread_ns(k)).await?;
        }
        let c = &self.client;
        let creates = (0..sz.secrets.max(sz.configmaps)).flat_map(|i| {
            let ns = spread_ns(i % n);
            let mut v: Vec<futures::future::BoxFuture<'_, kube::Result<()>>> = Vec::new();
            if i < sz.secrets {
                let api = Api::<Secret>::namespaced(c.clone(), &ns);
                v.push(Box::pin(async move { api.create(&PostParams::default(), &scale_secret(i)).await.map(|_| ()) }));
            }
            if i < sz.configmaps {
                let api = Api::<ConfigMap>::namespaced(c.clone(), &ns);
                let cm = configmap(
                    &format!("c-{i}"),
                    &String::from_utf8(filler(i as u64 + 7, 1024 + (i * 53) % 3072)).unwrap(),
                );
                v.push(Box::pin(async move { api.create(&PostParams::default(), &cm).await.map(|_| ()) }));
            }
            if i < sz.deployments {
                let api = Api::<Deployment>::namespaced(c.clone(), &ns);
                let d = deployment(&format!("d-{i}"), &[format!("c-{i}")], Some(&format!("s-{i}")));
                v.push(Box::pin(async move { api.create(&PostParams::default(), &d).await.map(|_| ()) }));
            }
            v
        });
        stream::iter(creates).buffer_unordered(32).try_collect::<Vec<_>>().await.context("create the spread set")?;
        eprintln!(
            ">> spread set: the scale set over {n} namespaces, created in {:.0} s (with the deletion of the first)",
            t.elapsed().as_secs_f64()
        );
        Ok(())
    }

    /// Scenario 11, many namespaces: a start with the spread set (time to ready, memory, CPU,
    /// requests), then one change at a time in different namespaces.
    pub(crate) async fn spread(&self, s: &Subject, r: &mut SubjectResult) -> anyhow::Result<()> {
        let tag = s.name.to_lowercase().replace(' ', "-");
        let (p, run) = self.measured_start(s, &format!("{tag}-spread.log")).await?;
        eprintln!(
            ">> {}: many namespaces: ready in {:.2} s, RSS {:.1} MiB (peak {:.1} MiB)",
            s.name, run.ready_s, run.rss_steady_mib, run.rss_peak_mib
        );
        r.spread = Some(run);
        // Deployment d-i is in namespace i mod n: the first ones are each in their own.
        let n = self.sizes.spread_namespaces;
        for i in 0..self.sizes.latency_updates.min(n).min(self.sizes.deployments) {
            let ns = spread_ns(i % n);
            match self.paced_change(s, &ns, i).await? {
                Some(ms) => r.spread_latency_ms.push(ms),
                None => r.missed.push(format!("many namespaces: {ns}/d-{i}")),
            }
        }
        p.stop();
        Ok(())
    }

    /// 2–5, the calm scenarios, on a controller that has synced: latency, fan-out, bursts and
    /// no-op edits; then every request it sent meanwhile.
    async fn calm(&self, s: &Subject, layout: &Layout, r: &mut SubjectResult) -> anyhow::Result<()> {
        let after_sync = self.audit.offset();

        // 2. Latency (first variant: the default settings).
        let (label, _) = &s.latency_variants[0];
        let lat = self.latency(s, &layout.lat[0], r).await?;
        r.latency_ms.insert(label.clone(), lat);

        // 3. Fan-out: one ConfigMap used by many Deployments.
        self.fanout(s, &layout.fan, r).await?;

        // 4. Burst: five sources of one workload changed within ~100 ms → rollouts.
        let rs_api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), &layout.burst);
        for b in 0..self.sizes.bursts {
            let d = format!("d-{b}");
            let before = owned_replicasets(&rs_api, &d).await?;
            let t0 = Instant::now();
            let updates = (0..5).map(|k| {
                let name = format!("b{b}-{k}");
                let c = self.client.clone();
                let ns = layout.burst.clone();
                async move {
                    tokio::time::sleep(Duration::from_millis(20 * k)).await;
                    set_data(&c, &ns, &name, &uniq()).await
                }
            });
            futures::future::try_join_all(updates).await?;
            r.burst_spread_ms.push(t0.elapsed().as_secs_f64() * 1000.0);
            if self.templates.change_after(&format!("{}/{d}", layout.burst), t0).await.is_none() {
                r.missed.push(format!("burst {b}"));
            }
            // Long enough for a second rollout to show if the changes were not coalesced.
            tokio::time::sleep(Duration::from_secs(5)).await;
            r.burst_rollouts.push(owned_replicasets(&rs_api, &d).await?.saturating_sub(before));
        }

        // 5. No-op: label- and annotation-only edits of used sources.
        let from = self.audit.offset();
        let t0 = Instant::now();
        let cms: Api<ConfigMap> = Api::namespaced(self.client.clone(), &layout.noop);
        let used = self.sizes.noop_edits.min(50);
        for i in 0..self.sizes.noop_edits {
            let field = if i % 2 == 0 { "labels" } else { "annotations" };
            let patch = json!({"metadata": {field: {"bench/edit": format!("{i}")}}});
            cms.patch(&format!("c-{}", i % used), &PatchParams::default(), &Patch::Merge(patch)).await?;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
        let q = self.audit.since(from, &s.agent)?;
        r.noop_workload_writes = q.workload_writes();
        r.noop_outcome_writes = q.outcome_writes;
        r.noop_template_changes = self.templates.changes_since(&[&layout.noop], t0);

        r.requests_after_sync = self.audit.since(after_sync, &s.agent)?;
        r.lists_after_sync = r.requests_after_sync.count("list");
        Ok(())
    }

    pub(crate) async fn run_subject(&self, s: &Subject) -> anyhow::Result<SubjectResult> {
        let mut r = SubjectResult { name: s.name.clone(), ..Default::default() };
        let tag = s.name.to_lowercase().replace(' ', "-");
        if self.only.as_deref() == Some("sustained") {
            self.sustained(s, &tag, &mut r).await?;
            return Ok(r);
        }
        let layout = Layout::new(&tag);
        if self.only.as_deref() == Some("scale") {
            self.scale(s, &tag, &mut r).await?;
            return Ok(r);
        }
        if self.only.as_deref() == Some("fanout") {
            layout.create_fan(&self.client, &self.sizes).await?;
            let (p, _) = self.launch(s, &[], &format!("{tag}-fanout.log")).await?;
            self.audit.quiesce(&s.agent, Duration::from_secs(3)).await?;
            self.fanout(s, &layout.fan, &mut r).await?;
            p.stop();
            return Ok(r);
        }
        layout.create(&self.client, &self.sizes).await?;
        if self.only.as_deref() == Some("requests") {
            let (p, _) = self.launch(s, &[], &format!("{tag}-main.log")).await?;
            self.audit.quiesce(&s.agent, Duration::from_secs(3)).await?;
            self.calm(s, &layout, &mut r).await?;
            p.stop();
            return Ok(r);
        }
        if self.only.as_deref() == Some("churn") {
            self.churn(s, &layout, &tag, &mut r).await?;
            return Ok(r);
        }

        // 1. Scale: time to ready, memory and CPU, requests during the initial sync.
        self.scale(s, &tag, &mut r).await?;

        // 2–5 run against one process; its start-up writes (adoption) are over before they begin.
        let (p, _) = self.launch(s, &[], &format!("{tag}-main.log")).await?;
        self.audit.quiesce(&s.agent, Duration::from_secs(3)).await?;
        self.calm(s, &layout, &mut r).await?;

        // 8–9 after the request counts above, so those stay comparable across versions.
        self.large(s, &p, &layout.large, &mut r).await?;
        self.pressure(s, &layout.pressure, &mut r).await?;

        // 10. Mixed kinds and references: each source changed once, one at a time.
        for (i, (kind, name, workload)) in MIXED.iter().enumerate() {
            if i > 0 && MIXED[i - 1].2 == *workload {
                // The same workload again: past our --min-reload-interval (10 s), so this
                // measures the reference, not the storm brake.
                tokio::time::sleep(Duration::from_secs(11)).await;
            }
            self.audit.quiesce(&s.agent, Duration::from_millis(300)).await?;
            let sent = Instant::now();
            layout.change_mixed(&self.client, kind, name, &uniq()).await?;
            let t0 = Instant::now();
            match self.templates.change_after(&format!("{}/{workload}", layout.mixed), sent).await {
                Some(t) => r.mixed_latency_ms.push(t.saturating_duration_since(t0).as_secs_f64() * 1000.0),
                None => r.missed.push(format!("mixed {kind} {name} → {workload}")),
            }
        }
        p.stop();

        // 6. Restart with nothing changed: rollouts and workload writes.
        let from = self.audit.offset();
        let t0 = Instant::now();
        let (p, _) = self.launch(s, &[], &format!("{tag}-restart.log")).await?;
        self.audit.quiesce(&s.agent, Duration::from_secs(3)).await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut all = layout.namespaces();
        all.push("bench-scale");
        r.restart_rollouts = self.templates.changes_since(&all, t0);
        let q = self.audit.since(from, &s.agent)?;
        r.restart_workload_writes = q.workload_writes();
        r.restart_outcome_writes = q.outcome_writes;
        p.stop();

        // 6b. Changes made while the controller is down: each workload must roll once when it
        // is back (the latency namespace's first 20 ConfigMaps, one Deployment each).
        let ns = &layout.lat[0];
        let n = 20.min(self.sizes.latency_updates);
        let t0 = Instant::now();
        for i in 0..n {
            set_data(&self.client, ns, &format!("c-{i}"), &format!("down-{}", uniq())).await?;
        }
        let (p, _) = self.launch(s, &[], &format!("{tag}-down.log")).await?;
        self.audit.quiesce(&s.agent, Duration::from_secs(3)).await?;
        tokio::time::sleep(Duration::from_secs(5)).await;
        let rollouts: Vec<usize> = (0..n).map(|i| self.templates.changes_of(&format!("{ns}/d-{i}"), t0)).collect();
        r.down_changes = n;
        r.down_rolled = rollouts.iter().filter(|c| **c > 0).count();
        r.down_rollouts = rollouts.iter().sum();
        if s.catches_up {
            r.missed.extend(rollouts.iter().enumerate().filter(|(_, c)| **c == 0).map(|(i, _)| format!("down: d-{i}")));
        }
        p.stop();

        // 7. Workload churn.
        self.churn(s, &layout, &tag, &mut r).await?;

        // 13. Sustained change, on a controller of its own.
        self.sustained(s, &tag, &mut r).await?;

        // Further latency variants, each on its own set of workloads.
        for (i, (label, extra)) in s.latency_variants.iter().enumerate().skip(1) {
            let Some(ns) = layout.lat.get(i) else { break };
            let (p, _) = self.launch(s, extra, &format!("{tag}-latency-{i}.log")).await?;
            self.audit.quiesce(&s.agent, Duration::from_secs(3)).await?;
            let lat = self.latency(s, ns, &mut r).await?;
            r.latency_ms.insert(label.clone(), lat);
            p.stop();
        }
        Ok(r)
    }

    /// Scenario 7, workload churn: rounds of creating annotated Deployments, changing their
    /// sources and deleting them; the RSS after each round must not grow round over round.
    pub(crate) async fn churn(
        &self,
        s: &Subject,
        layout: &Layout,
        tag: &str,
        r: &mut SubjectResult,
    ) -> anyhow::Result<()> {
        let (p, _) = self.launch(s, &[], &format!("{tag}-churn.log")).await?;
        self.audit.quiesce(&s.agent, Duration::from_secs(3)).await?;
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), &layout.churn);
        for round in 0..self.sizes.churn_rounds {
            let ds = (0..self.sizes.churn_workloads)
                .map(|i| deployment(&format!("d-{i}"), &[format!("c-{}", i % CHURN_SOURCES)], None))
                .collect();
            create_all(&deployments, ds).await?;
            // Let the controller take them in (ours records each) before their sources change.
            self.audit.quiesce(&s.agent, Duration::from_secs(2)).await?;
            let t0 = Instant::now();
            for c in 0..CHURN_SOURCES {
                set_data(&self.client, &layout.churn, &format!("c-{c}"), &format!("{round}-{}", uniq())).await?;
            }
            for i in 0..self.sizes.churn_workloads {
                if self.templates.change_after(&format!("{}/d-{i}", layout.churn), t0).await.is_none() {
                    r.missed.push(format!("churn {round}: d-{i}"));
                }
            }
            deployments.delete_collection(&Default::default(), &Default::default()).await?;
            while !deployments.list(&ListParams::default().limit(1)).await?.items.is_empty() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            self.templates.forget(&layout.churn);
            self.audit.quiesce(&s.agent, Duration::from_secs(2)).await?;
            tokio::time::sleep(Duration::from_secs(2)).await;
            let rss = mib(p.rss_kib());
            let heap = heap_mib(&s.ready_url).await;
            let heap_text = heap.map_or("not reported".to_string(), |h| format!("{h:.1} MiB"));
            eprintln!(">> {}: churn round {}: RSS {rss:.1} MiB, heap in use {heap_text}", s.name, round + 1);
            r.churn_rss_mib.push(rss);
            if let Some(h) = heap {
                r.churn_heap_mib.push(h);
            }
        }
        p.stop();
        Ok(())
    }

    /// Scenario 8, large objects: ConfigMaps of 100 KiB–1000 KiB (one Deployment each) created
    /// while the controller runs, then each changed to new content of the same size, one at a
    /// time. Latency as in scenario 2; RSS before and after. They are deleted at the end so the
    /// next controller starts on the same cluster.
    pub(crate) async fn large(&self, s: &Subject, p: &Running, ns: &str, r: &mut SubjectResult) -> anyhow::Result<()> {
        let n = self.sizes.large;
        let cms: Api<ConfigMap> = Api::namespaced(self.client.clone(), ns);
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), ns);
        // Sequential creates: 32 MiB-sized requests at once would measure the API server.
        for i in 0..n {
            cms.create(&PostParams::default(), &configmap(&format!("c-{i}"), &large_value(i as u64, i))).await?;
        }
        let ds = (0..n).map(|i| deployment(&format!("d-{i}"), &[format!("c-{i}")], None)).collect();
        create_all(&deployments, ds).await?;
        self.audit.quiesce(&s.agent, Duration::from_secs(3)).await?;
        let before = mib(p.rss_kib());
        for i in 0..n {
            self.audit.quiesce(&s.agent, Duration::from_millis(300)).await?;
            let value = large_value(1_000 + i as u64, i);
            let sent = Instant::now();
            cms.patch(&format!("c-{i}"), &PatchParams::default(), &Patch::Merge(json!({"data": {"v": value}}))).await?;
            let t0 = Instant::now();
            match self.templates.change_after(&format!("{ns}/d-{i}"), sent).await {
                Some(t) => r.large_latency_ms.push(t.saturating_duration_since(t0).as_secs_f64() * 1000.0),
                None => r.missed.push(format!("large {ns}/d-{i}")),
            }
        }
        self.audit.quiesce(&s.agent, Duration::from_secs(2)).await?;
        r.large_rss_mib = (before, mib(p.rss_kib()));
        eprintln!(">> {}: large objects: RSS {before:.1} → {:.1} MiB", s.name, r.large_rss_mib.1);
        deployments.delete_collection(&Default::default(), &Default::default()).await?;
        for i in 0..n {
            cms.delete(&format!("c-{i}"), &Default::default()).await?;
        }
        // Not the namespace's kube-root-ca.crt, which the controller-manager keeps there.
        let left = || async {
            let list = cms.list_metadata(&ListParams::default()).await?;
            anyhow::Ok(list.items.iter().any(|c| c.metadata.name.as_deref().is_some_and(|n| n.starts_with("c-"))))
        };
        while left().await? {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.templates.forget(ns);
        Ok(())
    }

    /// Scenario 9, API pressure: writers change the namespace's sources (one Deployment each)
    /// concurrently, each once a second, for a fixed time. Each write's latency runs until its
    /// workload's next rollout; after the writes stop, the run waits until every workload has
    /// rolled after its source's last write (at most 5 min) and counts those that did.
    pub(crate) async fn pressure(&self, s: &Subject, ns: &str, r: &mut SubjectResult) -> anyhow::Result<()> {
        let sz = self.sizes;
        let start = Instant::now();
        let until = start + Duration::from_secs(sz.pressure_secs);
        let writers = (0..sz.pressure_writers).map(|w| {
            let client = self.client.clone();
            async move {
                let mut writes = Vec::new();
                let mut k = 0;
                while Instant::now() < until {
                    let i = (w * 7 + k * 13) % sz.pressure_sources;
                    let sent = Instant::now();
                    set_data(&client, ns, &format!("c-{i}"), &format!("p{w}-{k}-{}", uniq())).await?;
                    writes.push((i, sent, Instant::now()));
                    k += 1;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                anyhow::Ok(writes)
            }
        });
        let writes: Vec<(usize, Instant, Instant)> =
            futures::future::try_join_all(writers).await?.into_iter().flatten().collect();
        let stopped = Instant::now();
        let keys: Vec<String> = (0..sz.pressure_sources).map(|i| format!("{ns}/d-{i}")).collect();
        let last_change = || {
            let seen = self.templates.seen.lock().unwrap();
            keys.iter().filter_map(|k| seen.get(k).and_then(|(_, c)| c.last().copied())).max()
        };
        let last_writes: Vec<Option<Instant>> =
            (0..sz.pressure_sources).map(|i| writes.iter().filter(|w| w.0 == i).map(|w| w.1).max()).collect();
        let converged = |seen: &HashMap<String, Seen>, i: usize| match last_writes[i] {
            None => true,
            Some(w) => seen.get(&keys[i]).and_then(|(_, c)| c.last()).is_some_and(|c| *c >= w),
        };
        // Held workloads (our flap brake) roll once more after --flap-settle (2 min): wait for
        // every workload to follow its last write, then for 5 s of quiet; at most 5 min.
        loop {
            let all = {
                let seen = self.templates.seen.lock().unwrap();
                (0..sz.pressure_sources).all(|i| converged(&seen, i))
            };
            let quiet = last_change().is_none_or(|t| t.elapsed() > Duration::from_secs(5));
            if (all && quiet) || stopped.elapsed() > Duration::from_secs(300) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.audit.quiesce(&s.agent, Duration::from_secs(1)).await?;
        let seen = self.templates.seen.lock().unwrap().clone();
        let changes = |i: usize| seen.get(&keys[i]).map(|(_, c)| c.clone()).unwrap_or_default();
        r.pressure_changes = writes.len();
        for (i, sent, acked) in &writes {
            if let Some(t) = changes(*i).into_iter().find(|t| t >= sent) {
                r.pressure_latency_ms.push(t.saturating_duration_since(*acked).as_secs_f64() * 1000.0);
            }
        }
        r.pressure_rollouts =
            (0..sz.pressure_sources).map(|i| changes(i).iter().filter(|t| **t >= start).count()).collect();
        r.pressure_drain_s = last_change().map_or(0.0, |t| t.saturating_duration_since(stopped).as_secs_f64());
        for i in 0..sz.pressure_sources {
            if converged(&seen, i) {
                r.pressure_converged += 1;
            } else {
                r.missed.push(format!("pressure {ns}/d-{i}"));
            }
        }
        eprintln!(
            ">> {}: API pressure: {} writes, {}/{} workloads converged, drained {:.1} s after the writes",
            s.name, r.pressure_changes, r.pressure_converged, sz.pressure_sources, r.pressure_drain_s
        );
        Ok(())
    }

    /// Scenario 1: the controller started `repeat` times on the scale set: time to ready,
    /// memory and CPU, requests during the initial sync.
    async fn scale(&self, s: &Subject, tag: &str, r: &mut SubjectResult) -> anyhow::Result<()> {
        for rep in 0..self.repeat {
            let started = Instant::now();
            let (p, mut run) = self.measured_start(s, &format!("{tag}-scale-{rep}.log")).await?;
            if self.only.as_deref() == Some("scale") {
                tokio::time::sleep((started + Duration::from_secs(320)).saturating_duration_since(Instant::now()))
                    .await;
                run.rss_late_mib = Some(mib(p.rss_kib()));
            }
            // Every count below filters the audit log by user agent; zero lists means the filter
            // is wrong, and a "0 writes" would then prove nothing.
            if run.requests_during_sync.count("list") == 0 {
                bail!("no LIST by user agent {:?} in the audit log; is it the controller's?", s.agent);
            }
            eprintln!(
                ">> {}: scale run {}: ready in {:.2} s, RSS {:.1} MiB (peak {:.1} MiB)",
                s.name,
                rep + 1,
                run.ready_s,
                run.rss_steady_mib,
                run.rss_peak_mib
            );
            r.scale.push(run);
            p.stop();
        }
        Ok(())
    }

    /// Scenario 3: one ConfigMap used by `sizes.fanout` Deployments in namespace `fan`, changed
    /// once per repeat; the time until every Deployment's template changed, and the writes.
    pub(crate) async fn fanout(&self, s: &Subject, fan: &str, r: &mut SubjectResult) -> anyhow::Result<()> {
        for rep in 0..self.repeat {
            if rep > 0 {
                // Past our --min-reload-interval default (10 s), so each repeat is a plain reload.
                tokio::time::sleep(Duration::from_secs(11)).await;
            }
            let from = self.audit.offset();
            let t0 = Instant::now();
            set_data(&self.client, fan, "shared", &format!("{rep}-{}", uniq())).await?;
            let mut last = t0;
            for i in 0..self.sizes.fanout {
                match self.templates.change_after(&format!("{fan}/d-{i}"), t0).await {
                    Some(t) => last = last.max(t),
                    None => r.missed.push(format!("fan-out {rep}: d-{i}")),
                }
            }
            r.fanout_s.push((last - t0).as_secs_f64());
            // Until the controller is idle: the outcomes of these rollouts are written too.
            self.audit.quiesce(&s.agent, Duration::from_secs(2)).await?;
            let q = self.audit.since(from, &s.agent)?;
            r.fanout_patches.push(q.workload_writes());
            r.fanout_outcomes.push(q.outcome_writes);
            r.fanout_throttled.push(q.throttled);
        }
        Ok(())
    }

    /// Starts a controller and waits until it is ready (for Stakater Reloader: until its
    /// informers have delivered every ConfigMap and Secret that exists now).
    pub(crate) async fn launch(&self, s: &Subject, extra: &[String], log: &str) -> anyhow::Result<(Running, Duration)> {
        let adds = if s.ready_by_adds {
            let lp = ListParams::default();
            let cms = Api::<ConfigMap>::all(self.client.clone()).list_metadata(&lp).await?.items.len();
            let secrets = Api::<Secret>::all(self.client.clone()).list_metadata(&lp).await?.items.len();
            Some((cms, secrets))
        } else {
            None
        };
        let mut p = Running::start(s, extra, &self.logs.join(log))?;
        let ready = p.wait_ready(&s.ready_url, adds).await?;
        Ok((p, ready))
    }

    /// One update at a time, each to a different workload's ConfigMap: from the update's API
    /// response to the template change seen by the independent watch. Each update waits until
    /// the controller has been idle (no request but watches) for 300 ms, so one update's
    /// trailing work (Reloader lists after each reload) is not charged to the next.
    pub(crate) async fn latency(&self, s: &Subject, ns: &str, r: &mut SubjectResult) -> anyhow::Result<Vec<f64>> {
        let mut out = Vec::new();
        for i in 0..self.sizes.latency_updates {
            match self.paced_change(s, ns, i).await? {
                Some(ms) => out.push(ms),
                None => r.missed.push(format!("latency {ns}/d-{i}")),
            }
        }
        Ok(out)
    }

    /// Once the controller is idle, changes ConfigMap `c-i` of `ns` and waits for Deployment
    /// `d-i` to roll: the latency in milliseconds, `None` if it never rolled.
    async fn paced_change(&self, s: &Subject, ns: &str, i: usize) -> anyhow::Result<Option<f64>> {
        self.audit.quiesce(&s.agent, Duration::from_millis(300)).await?;
        // The reload can be seen before this process gets round to the update's response,
        // so a change counts from the moment the request left; latency from the response.
        let sent = Instant::now();
        set_data(&self.client, ns, &format!("c-{i}"), &uniq()).await?;
        let t0 = Instant::now();
        let seen = self.templates.change_after(&format!("{ns}/d-{i}"), sent).await;
        Ok(seen.map(|t| t.saturating_duration_since(t0).as_secs_f64() * 1000.0))
    }

    /// Starts a controller on what exists and measures its start: time and CPU to ready, RSS
    /// once its start-up work is over, and the requests it made meanwhile.
    async fn measured_start(&self, s: &Subject, log: &str) -> anyhow::Result<(Running, ScaleRun)> {
        let from = self.audit.offset();
        let (p, ready) = self.launch(s, &[], log).await?;
        let cpu = p.cpu_secs();
        self.audit.quiesce(&s.agent, Duration::from_secs(3)).await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let run = ScaleRun {
            ready_s: ready.as_secs_f64(),
            cpu_at_ready_s: cpu,
            rss_steady_mib: mib(p.rss_kib()),
            rss_peak_mib: mib(p.peak_kib()),
            rss_late_mib: None,
            requests_during_sync: self.audit.since(from, &s.agent)?,
        };
        Ok((p, run))
    }
}

pub(crate) fn spread_ns(k: usize) -> String {
    format!("bench-spread-{k}")
}

pub(crate) fn uniq() -> String {
    format!("{:?}", std::time::SystemTime::now())
}

pub(crate) async fn owned_replicasets(api: &Api<ReplicaSet>, deployment: &str) -> anyhow::Result<usize> {
    let list = api.list(&ListParams::default()).await?;
    Ok(list
        .items
        .iter()
        .filter(|rs| {
            rs.metadata.owner_references.iter().flatten().any(|o| o.kind == "Deployment" && o.name == deployment)
        })
        .count())
}

/// The heap in use the controller reports on its metrics endpoint, if it does.
pub(crate) async fn heap_mib(ready_url: &str) -> Option<f64> {
    let base = ready_url.rsplit_once('/').map(|(b, _)| b)?;
    let text = reqwest::get(format!("{base}/metrics")).await.ok()?.text().await.ok()?;
    text.lines()
        .find_map(|l| {
            l.strip_prefix("reloader_heap_bytes ").or_else(|| l.strip_prefix("go_memstats_heap_inuse_bytes "))
        })
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|b| b / (1024.0 * 1024.0))
}
