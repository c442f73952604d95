//! The API audit log: requests per controller, by user agent, between two offsets.

use super::*;

pub(crate) struct Audit {
    pub(crate) path: PathBuf,
}

#[derive(Default, Debug, Clone, Serialize)]
pub(crate) struct Requests {
    /// verb → resource → count
    pub(crate) by_verb: BTreeMap<String, BTreeMap<String, usize>>,
    /// Of the workload writes, those that record a rollout's outcome (ours: its own field
    /// manager); counted in `by_verb` too.
    pub(crate) outcome_writes: usize,
    /// Requests the API server refused with 429 Too Many Requests (API Priority and Fairness,
    /// or max-in-flight): a client sending faster than the server admits.
    pub(crate) throttled: usize,
}

impl Requests {
    pub(crate) fn count(&self, verb: &str) -> usize {
        self.by_verb.get(verb).map(|m| m.values().sum()).unwrap_or(0)
    }
    /// Workload writes other than outcome notes: the reloads and records.
    pub(crate) fn workload_writes(&self) -> usize {
        self.all_workload_writes() - self.outcome_writes
    }
    fn all_workload_writes(&self) -> usize {
        ["create", "update", "patch", "delete"]
            .iter()
            .filter_map(|v| self.by_verb.get(*v))
            .flat_map(|m| m.iter())
            .filter(|(r, _)| WORKLOAD_RESOURCES.contains(&r.as_str()))
            .map(|(_, n)| n)
            .sum()
    }
    pub(crate) fn total(&self) -> usize {
        self.by_verb.values().flat_map(|m| m.values()).sum()
    }
}

/// A workload write that records a rollout's outcome: the request names the outcome's field
/// manager (a query parameter the audit log keeps in `requestURI`).
fn is_outcome_write(e: &Value, verb: &str, resource: &str) -> bool {
    let manager = format!("fieldManager={}", reloader::OUTCOME_FIELD_MANAGER);
    ["update", "patch"].contains(&verb)
        && WORKLOAD_RESOURCES.contains(&resource)
        && e["requestURI"].as_str().unwrap_or("").split(['?', '&']).any(|p| p == manager)
}

impl Audit {
    pub(crate) fn offset(&self) -> u64 {
        std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0)
    }

    /// Requests whose user agent starts with `agent`, logged between `from` and now. Each
    /// request is counted once: at `ResponseComplete`, or at `ResponseStarted` for watches.
    pub(crate) fn since(&self, from: u64, agent: &str) -> anyhow::Result<Requests> {
        Ok(self.read(from, agent)?.0)
    }

    /// Like `since`, plus the offset just past the last complete line read, to resume from.
    pub(crate) fn read(&self, from: u64, agent: &str) -> anyhow::Result<(Requests, u64)> {
        let mut f = std::fs::File::open(&self.path).with_context(|| format!("open {}", self.path.display()))?;
        f.seek(SeekFrom::Start(from))?;
        let (mut r, mut end) = (Requests::default(), from);
        let mut reader = BufReader::new(f);
        let mut line = String::new();
        while reader.read_line(&mut line)? > 0 {
            if !line.ends_with('\n') {
                break; // still being written; the next read starts at it
            }
            end += line.len() as u64;
            if let Ok(e) = serde_json::from_str::<Value>(&line)
                && e["userAgent"].as_str().unwrap_or("").starts_with(agent)
            {
                let mut verb = e["verb"].as_str().unwrap_or("").to_string();
                let stage = e["stage"].as_str().unwrap_or("");
                let counted = if verb == "watch" { stage == "ResponseStarted" } else { stage == "ResponseComplete" };
                // A streaming list (client-go ≥ 0.35 lists this way) is a WATCH that first sends
                // every object: it does a LIST's work, so it counts as one.
                if verb == "watch" && e["requestURI"].as_str().unwrap_or("").contains("sendInitialEvents=true") {
                    verb = "list".into();
                }
                if counted {
                    let resource = e["objectRef"]["resource"].as_str().unwrap_or("-").to_string();
                    if is_outcome_write(&e, &verb, &resource) {
                        r.outcome_writes += 1;
                    }
                    if e["responseStatus"]["code"].as_u64() == Some(429) {
                        r.throttled += 1;
                    }
                    *r.by_verb.entry(verb).or_default().entry(resource).or_default() += 1;
                }
            }
            line.clear();
        }
        Ok((r, end))
    }

    /// Waits until `agent` has made no request other than a watch for `quiet` (its start-up
    /// work is done). Reads only what was appended since the previous look.
    pub(crate) async fn quiesce(&self, agent: &str, quiet: Duration) -> anyhow::Result<()> {
        let (mut pos, mut since) = (self.offset(), Instant::now());
        let deadline = Instant::now() + Duration::from_secs(600);
        while Instant::now() < deadline {
            let (seen, end) = self.read(pos, agent)?;
            pos = end;
            if seen.total() > seen.count("watch") {
                since = Instant::now();
            } else if since.elapsed() >= quiet {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        bail!("{agent} kept calling the API for 600 s")
    }
}
