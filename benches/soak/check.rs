//! What the soak checks, from outside the controller: an independent watch on the workloads
//! (every pod-template change and the record it came with), and the API server's audit log
//! (who wrote, and who held the Lease at that moment).

use super::*;

/// One workload as watched.
#[derive(Clone, Default)]
pub(crate) struct Seen {
    pub(crate) template: String,
    /// The record annotation now (raw JSON).
    pub(crate) record: Option<String>,
    /// The first record seen (the adoption).
    pub(crate) adopted: Option<String>,
    /// Each pod-template change: the record that came with it.
    pub(crate) rollouts: Vec<Option<String>>,
}

/// Template and record of every soak workload, from one watch per kind.
#[derive(Clone, Default)]
pub(crate) struct Observer {
    seen: Arc<Mutex<HashMap<String, Seen>>>,
    synced: Arc<AtomicUsize>,
}

impl Observer {
    pub(crate) fn start(client: &Client) -> Observer {
        let o = Observer::default();
        o.watch::<Deployment>(client, |d| d.spec.as_ref().map(|s| serde_json::to_string(&s.template)));
        o.watch::<StatefulSet>(client, |d| d.spec.as_ref().map(|s| serde_json::to_string(&s.template)));
        o.watch::<DaemonSet>(client, |d| d.spec.as_ref().map(|s| serde_json::to_string(&s.template)));
        o
    }

    fn watch<K>(&self, client: &Client, template: fn(&K) -> Option<serde_json::Result<String>>)
    where
        K: kube::Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    {
        let api: Api<K> = Api::all(client.clone());
        let me = self.clone();
        tokio::spawn(async move {
            let cfg = watcher::Config::default().labels("soak=true");
            // The default backoff keeps the watch going through API server restarts.
            let mut s = watcher::watcher(api, cfg).default_backoff().boxed();
            while let Some(ev) = s.next().await {
                match ev {
                    Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                        let t = template(&o).and_then(|r| r.ok()).unwrap_or_default();
                        me.observe(&o, t);
                    }
                    Ok(watcher::Event::InitDone) => {
                        me.synced.fetch_add(1, Ordering::SeqCst);
                    }
                    _ => {}
                }
            }
        });
    }

    fn observe<K: kube::Resource>(&self, o: &K, template: String) {
        let m = o.meta();
        let key = format!("{}/{}", m.namespace.as_deref().unwrap_or(""), m.name.as_deref().unwrap_or(""));
        let record = m.annotations.as_ref().and_then(|a| a.get(RECORD)).cloned();
        let mut seen = self.seen.lock().unwrap();
        let s = seen.entry(key).or_insert_with(|| Seen { template: template.clone(), ..Default::default() });
        if s.template != template {
            s.template = template;
            s.rollouts.push(record.clone());
        }
        if s.adopted.is_none() {
            s.adopted = record.clone();
        }
        s.record = record;
    }

    pub(crate) async fn wait_synced(&self) {
        while self.synced.load(Ordering::SeqCst) < 3 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<Seen> {
        self.seen.lock().unwrap().get(key).cloned()
    }
}

pub(crate) fn parse_record(s: &str) -> BTreeMap<String, String> {
    serde_json::from_str(s).unwrap_or_default()
}

/// The verdict on one workload.
#[derive(Default)]
pub(crate) struct Verdict {
    pub(crate) rollouts: usize,
    pub(crate) lost: Option<String>,
    pub(crate) extra: usize,
    pub(crate) bogus: Vec<String>,
}

/// Checks one workload against what the driver wrote.
/// - lost: its record differs from the hashes of its governing sources now, or a governing
///   source changed and the last rollout did not carry the final hashes;
/// - extra: rollouts beyond the changes of its governing sources, or a rollout whose record
///   repeats the previous one (a roll that applied nothing new);
/// - bogus: a recorded hash no governing source ever had.
pub(crate) fn judge(
    seen: Option<&Seen>,
    expected: &BTreeMap<String, String>,
    changes: usize,
    history: &HashMap<String, HashSet<String>>,
) -> Verdict {
    let Some(seen) = seen else {
        return Verdict { lost: Some("never seen by the watch".into()), ..Default::default() };
    };
    let mut v = Verdict { rollouts: seen.rollouts.len(), ..Default::default() };
    let now = seen.record.as_deref().map(parse_record);
    if now.as_ref() != Some(expected) {
        v.lost = Some(format!("record {:?}, expected {:?}", seen.record, expected));
    } else if changes > 0
        && seen.rollouts.last().and_then(|r| r.as_deref()).map(parse_record).as_ref() != Some(expected)
    {
        v.lost = Some(format!("{changes} governing changes, but the last rollout carried {:?}", seen.rollouts.last()));
    }
    let mut repeats = 0;
    let mut previous = seen.adopted.clone();
    for r in &seen.rollouts {
        if *r == previous {
            repeats += 1;
        }
        for (source, hash) in r.as_deref().map(parse_record).unwrap_or_default() {
            if hash != "-" && !history.get(&source).is_some_and(|h| h.contains(&hash)) {
                v.bogus.push(format!("{source}@{}", &hash[..hash.len().min(12)]));
            }
        }
        previous = r.clone();
    }
    v.extra = repeats.max(seen.rollouts.len().saturating_sub(changes));
    v
}

/// One workload write in the audit log, by a replica.
#[derive(Clone)]
pub(crate) struct Write {
    at: Timestamp,
    replica: String,
    /// It records a rollout's outcome (its own field manager), not a reload or a record.
    pub(crate) outcome: bool,
}

/// One successful Lease write: when it was received, when it completed, by whom.
pub(crate) type LeaseWrite = (Timestamp, Timestamp, String);

/// The replicas' successful Lease writes and all their workload writes received before `until`.
pub(crate) fn read_audit(path: &Path, from: u64, until: Timestamp) -> anyhow::Result<(Vec<LeaseWrite>, Vec<Write>)> {
    let mut f = std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
    f.seek(SeekFrom::Start(from))?;
    let (mut leases, mut writes) = (Vec::new(), Vec::new());
    for line in BufReader::new(f).lines() {
        let Ok(e) = serde_json::from_str::<Value>(&line?) else { continue };
        if e["stage"] != "ResponseComplete" {
            continue;
        }
        let agent = e["userAgent"].as_str().unwrap_or("");
        let Some(replica) = REPLICAS.iter().find(|r| agent.ends_with(&format!("(replica-{r})"))) else { continue };
        let verb = e["verb"].as_str().unwrap_or("");
        let resource = e["objectRef"]["resource"].as_str().unwrap_or("");
        let code = e["responseStatus"]["code"].as_i64().unwrap_or(0);
        let ts = |field: &str| e[field].as_str().and_then(|t| t.parse::<Timestamp>().ok());
        let (Some(received), Some(done)) = (ts("requestReceivedTimestamp"), ts("stageTimestamp")) else { continue };
        if received > until {
            continue;
        }
        if resource == "leases" && ["create", "update", "patch"].contains(&verb) && (200..300).contains(&code) {
            leases.push((received, done, replica.to_string()));
        } else if WORKLOADS.contains(&resource) && ["update", "patch", "create", "delete"].contains(&verb) {
            // Every attempt counts, refused or not: a fenced replica must not even send. That
            // holds for outcome notes too; they are told apart only to be counted on their own.
            let manager = format!("fieldManager={}", reloader::OUTCOME_FIELD_MANAGER);
            let outcome = e["requestURI"].as_str().unwrap_or("").split(['?', '&']).any(|p| p == manager);
            writes.push(Write { at: received, replica: replica.to_string(), outcome });
        }
    }
    leases.sort_by_key(|l| l.1);
    Ok((leases, writes))
}

/// Writes by a replica that was not the leader when the API server received them: the last
/// Lease write completed before it was by the other replica, or the writer's own last one was
/// received more than a lease duration earlier. Returns (offending writes, failovers).
pub(crate) fn non_leader_writes(leases: &[LeaseWrite], writes: &[Write], lease: Duration) -> (Vec<String>, usize) {
    let failovers = leases.windows(2).filter(|w| w[0].2 != w[1].2).count();
    let lease = SignedDuration::try_from(lease).unwrap_or(SignedDuration::MAX);
    let mut bad = Vec::new();
    for w in writes {
        let last = leases.iter().rev().find(|l| l.1 <= w.at);
        let own = leases.iter().rev().find(|l| l.2 == w.replica && l.1 <= w.at);
        let ok = match (last, own) {
            (Some(last), Some(own)) => last.2 == w.replica && w.at.duration_since(own.0) <= lease,
            _ => false,
        };
        if !ok {
            bad.push(format!(
                "replica-{} wrote at {} while {} held the Lease",
                w.replica,
                w.at,
                last.map(|l| format!("replica-{}", l.2)).unwrap_or_else(|| "nobody".into())
            ));
        }
    }
    (bad, failovers)
}

/// The checks, checked: each is run again on this run's own data with one fault planted (a
/// hash changed, a rollout repeated, a write credited to the other replica) and must catch it.
/// A check that cannot fail would pass here and be reported.
pub(crate) fn self_test(
    seen: &Seen,
    expected: &BTreeMap<String, String>,
    changes: usize,
    history: &HashMap<String, HashSet<String>>,
    leases: &[LeaseWrite],
    writes: &[Write],
) -> Vec<&'static str> {
    let mut blind = Vec::new();
    let mut wrong = expected.clone();
    if let Some(v) = wrong.values_mut().next() {
        *v = "0".repeat(64);
    }
    if judge(Some(seen), &wrong, changes, history).lost.is_none() {
        blind.push("a record that differs from the sources' hashes was not reported lost");
    }
    let mut twice = seen.clone();
    if let Some(last) = twice.rollouts.last().cloned() {
        twice.rollouts.push(last);
        if judge(Some(&twice), expected, twice.rollouts.len(), history).extra == 0 {
            blind.push("a rollout that applied nothing new was not reported extra");
        }
    }
    let mut extra = seen.clone();
    extra.rollouts.push(Some(serde_json::to_string(&wrong).unwrap_or_default()));
    if judge(Some(&extra), expected, changes, history).bogus.is_empty() {
        blind.push("a recorded hash that no source had was not reported");
    }
    if let Some(w) = writes.first() {
        let other = REPLICAS.iter().find(|r| **r != w.replica).map(|r| r.to_string()).unwrap_or_default();
        let planted = [Write { at: w.at, replica: other, outcome: w.outcome }];
        if non_leader_writes(leases, &planted, LEASE_DURATION).0.is_empty() {
            blind.push("a write credited to the replica that did not hold the Lease was not reported");
        }
    } else {
        blind.push("the audit log shows no workload write by either replica");
    }
    blind
}

const WORKLOADS: [&str; 3] = ["deployments", "statefulsets", "daemonsets"];
