//! Scenario 13, sustained change: what the storm brake and the debounce do with the changes of
//! a busy cluster. One `kubectl apply -f dir/` of 3 and of 10 changed ConfigMaps of one
//! Deployment (rollouts), a second change 3 s after a first (time to its rollout), and two
//! Secrets that keep being rewritten, every 15 s and every 60 s (rollouts while they flap, and
//! how long after they stop their last content is applied). Runs inside the full benchmark, and
//! alone with `make bench ONLY=sustained`.

use super::*;

/// A Secret rewritten every `period_s` for `minutes`.
#[derive(Serialize, Default, Clone)]
pub(crate) struct Flap {
    pub(crate) period_s: u64,
    pub(crate) minutes: f64,
    pub(crate) writes: usize,
    /// Rollouts of its Deployment from the first write until the last.
    pub(crate) rollouts: usize,
    /// From the last write to the rollout that applied it (`None`: not within 5 minutes).
    pub(crate) last_applied_s: Option<f64>,
}

#[derive(Serialize, Default, Clone)]
pub(crate) struct Sustained {
    /// Rollouts for each `kubectl apply` of 3 and of 10 changed ConfigMaps.
    pub(crate) batch3_rollouts: Vec<usize>,
    pub(crate) batch10_rollouts: Vec<usize>,
    /// Seconds from the second of two changes 3 s apart to its rollout.
    pub(crate) second_change_s: Vec<f64>,
    pub(crate) flaps: Vec<Flap>,
}

/// How long after a batch's first rollout a second one would still be counted: past our
/// debounce cap (3 s) with room.
const BATCH_SETTLE: Duration = Duration::from_secs(8);

impl Bench {
    pub(crate) async fn sustained(&self, s: &Subject, tag: &str, r: &mut SubjectResult) -> anyhow::Result<()> {
        let ns = format!("bench-sustained-{tag}");
        namespace(&self.client, &ns).await?;
        let cms: Api<ConfigMap> = Api::namespaced(self.client.clone(), &ns);
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), &ns);
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &ns);
        let mut objects = Vec::new();
        let mut workloads = Vec::new();
        for rep in 0..self.repeat {
            for n in [3, 10] {
                let names: Vec<String> = (0..n).map(|k| format!("b{n}-{rep}-{k}")).collect();
                objects.extend(names.iter().map(|c| configmap(c, "0")));
                workloads.push(deployment(&format!("b{n}-{rep}"), &names, None));
            }
            objects.push(configmap(&format!("t-{rep}"), "0"));
            workloads.push(deployment(&format!("t-{rep}"), &[format!("t-{rep}")], None));
        }
        let flap_secrets = [15u64, 60].map(|p| format!("f-{p}"));
        for name in &flap_secrets {
            secrets.create(&PostParams::default(), &secret(name, "0")).await?;
            workloads.push(deployment(name, &[], Some(name)));
        }
        create_all(&cms, objects).await?;
        create_all(&deployments, workloads).await?;
        let (p, _) = self.launch(s, &[], &format!("{tag}-sustained.log")).await?;
        self.audit.quiesce(&s.agent, Duration::from_secs(3)).await?;
        let mut out = Sustained::default();
        let dir = std::env::temp_dir().join(format!("bench-apply-{tag}"));
        for rep in 0..self.repeat {
            for n in [3, 10] {
                let rollouts = self.apply_batch(&ns, &dir, &format!("b{n}-{rep}"), n).await?;
                if n == 3 { &mut out.batch3_rollouts } else { &mut out.batch10_rollouts }.push(rollouts);
            }
            match self.second_change(&ns, &format!("t-{rep}")).await? {
                Some(secs) => out.second_change_s.push(secs),
                None => r.missed.push(format!("sustained: second change of t-{rep}")),
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        let minutes = self.sizes.flap_minutes;
        out.flaps = futures::future::try_join_all(
            [15u64, 60]
                .into_iter()
                .zip(&flap_secrets)
                .map(|(period, name)| self.flap(&secrets, &ns, name, period, minutes)),
        )
        .await?;
        for f in &out.flaps {
            if f.last_applied_s.is_none() && s.catches_up {
                r.missed.push(format!("sustained: last write of f-{} never applied", f.period_s));
            }
        }
        eprintln!(
            ">> {}: sustained: batches of 3 / 10 → {:?} / {:?} rollouts; second change {:?} s; flaps {:?}",
            s.name,
            out.batch3_rollouts,
            out.batch10_rollouts,
            out.second_change_s,
            out.flaps.iter().map(|f| (f.period_s, f.writes, f.rollouts, f.last_applied_s)).collect::<Vec<_>>()
        );
        r.sustained = Some(out);
        p.stop();
        Ok(())
    }

    /// `kubectl apply -f` of `n` changed ConfigMaps used by Deployment `workload`: its rollouts.
    async fn apply_batch(&self, ns: &str, dir: &Path, workload: &str, n: usize) -> anyhow::Result<usize> {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir)?;
        let value = uniq();
        for k in 0..n {
            let doc = format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {workload}-{k}\ndata:\n  v: \"{value}\"\n"
            );
            std::fs::write(dir.join(format!("{workload}-{k}.yaml")), doc)?;
        }
        let t0 = Instant::now();
        let out = Command::new("kubectl")
            .args(["apply", "-n", ns, "-f"])
            .arg(dir)
            .output()
            .context("run kubectl (hack/bench.sh puts the pinned one on PATH)")?;
        if !out.status.success() {
            bail!("kubectl apply: {}", String::from_utf8_lossy(&out.stderr));
        }
        let key = format!("{ns}/{workload}");
        if self.templates.change_after(&key, t0).await.is_none() {
            return Ok(0);
        }
        tokio::time::sleep(BATCH_SETTLE).await;
        Ok(self.templates.changes_of(&key, t0))
    }

    /// A change, its rollout, and a second change 3 s after the first: seconds from the second
    /// change's response to its rollout.
    async fn second_change(&self, ns: &str, name: &str) -> anyhow::Result<Option<f64>> {
        let key = format!("{ns}/{name}");
        let first = Instant::now();
        set_data(&self.client, ns, name, &uniq()).await?;
        if self.templates.change_after(&key, first).await.is_none() {
            return Ok(None);
        }
        tokio::time::sleep((first + Duration::from_secs(3)).saturating_duration_since(Instant::now())).await;
        let sent = Instant::now();
        set_data(&self.client, ns, name, &uniq()).await?;
        let acked = Instant::now();
        Ok(self.templates.change_after(&key, sent).await.map(|t| t.saturating_duration_since(acked).as_secs_f64()))
    }

    /// Rewrites Secret `name` every `period` seconds for `minutes`, then waits for its last
    /// content to be applied (at most 5 minutes).
    async fn flap(
        &self,
        secrets: &Api<Secret>,
        ns: &str,
        name: &str,
        period: u64,
        minutes: f64,
    ) -> anyhow::Result<Flap> {
        let key = format!("{ns}/{name}");
        let start = Instant::now();
        let until = start + Duration::from_secs_f64(minutes * 60.0);
        let mut writes = 0;
        let mut last = (start, start);
        while Instant::now() < until {
            let sent = Instant::now();
            let patch = json!({"stringData": {"v": format!("{writes}-{}", uniq())}});
            secrets.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
            last = (sent, Instant::now());
            writes += 1;
            let next = start + Duration::from_secs(period * writes as u64);
            tokio::time::sleep(
                next.saturating_duration_since(Instant::now()).min(until.saturating_duration_since(Instant::now())),
            )
            .await;
        }
        let rollouts = self.templates.changes_of(&key, start) - self.templates.changes_of(&key, last.0);
        let applied = self.templates.change_within(&key, last.0, Duration::from_secs(300)).await;
        Ok(Flap {
            period_s: period,
            minutes,
            writes,
            rollouts,
            last_applied_s: applied.map(|t| t.saturating_duration_since(last.1).as_secs_f64()),
        })
    }
}

fn secret(name: &str, value: &str) -> Secret {
    serde_json::from_value(json!({"metadata": {"name": name}, "stringData": {"v": value}})).unwrap()
}

/// The rows of scenario 13 (and of 9's rollouts per write), for RESULTS.md and `--only sustained`.
pub(crate) fn sustained_rows(row: &mut Row) {
    let counts = |v: &[usize]| spread(&v.iter().map(|n| *n as f64).collect::<Vec<_>>(), 0);
    let of = |r: &SubjectResult, f: &dyn Fn(&Sustained) -> String| r.sustained.as_ref().map_or("–".into(), f);
    row("13 sustained", "rollouts for one `kubectl apply -f dir/` of 3 changed sources", &|r| {
        of(r, &|s| counts(&s.batch3_rollouts))
    });
    row("13 sustained", "rollouts for one `kubectl apply -f dir/` of 10 changed sources", &|r| {
        of(r, &|s| counts(&s.batch10_rollouts))
    });
    row("13 sustained", "second of two changes 3 s apart: to its rollout (s)", &|r| {
        of(r, &|s| spread(&s.second_change_s, 2))
    });
    for (i, period) in [15, 60].into_iter().enumerate() {
        row(
            "13 sustained",
            &format!(
                "a Secret rewritten every {period} s: writes / rollouts while it flaps / its last content applied after it stops (s)"
            ),
            &|r| {
                of(r, &|s| {
                    s.flaps.get(i).map_or("–".into(), |f| {
                        let applied = f.last_applied_s.map_or("never".into(), |v| format!("{v:.1}"));
                        format!("{} / {} / {applied}", f.writes, f.rollouts)
                    })
                })
            },
        );
    }
}
