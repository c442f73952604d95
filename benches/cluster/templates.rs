//! The independent watch: when each Deployment's pod template changed.

use super::*;

/// A Deployment's current pod template (serialised) and the instants it changed.
pub(crate) type Seen = (String, Vec<Instant>);

#[derive(Clone, Default)]
pub(crate) struct Templates {
    /// namespace/name → what was seen of it
    pub(crate) seen: Arc<Mutex<HashMap<String, Seen>>>,
    pub(crate) ready: Arc<AtomicBool>,
}

impl Templates {
    pub(crate) fn start(client: Client) -> Templates {
        let t = Templates::default();
        let t2 = t.clone();
        tokio::spawn(async move {
            let api: Api<Deployment> = Api::all(client);
            let mut s = watcher::watcher(api, watcher::Config::default()).boxed();
            while let Some(ev) = s.next().await {
                let now = Instant::now();
                match ev {
                    Ok(watcher::Event::Apply(d) | watcher::Event::InitApply(d)) => t2.observe(&d, now),
                    Ok(watcher::Event::InitDone) => t2.ready.store(true, Ordering::SeqCst),
                    _ => {}
                }
            }
        });
        t
    }

    pub(crate) fn observe(&self, d: &Deployment, now: Instant) {
        let key =
            format!("{}/{}", d.metadata.namespace.as_deref().unwrap_or(""), d.metadata.name.as_deref().unwrap_or(""));
        let template = serde_json::to_string(&d.spec.as_ref().map(|s| &s.template)).unwrap_or_default();
        let mut seen = self.seen.lock().unwrap();
        match seen.get_mut(&key) {
            Some((t, changes)) if *t != template => {
                *t = template;
                changes.push(now);
            }
            Some(_) => {}
            None => {
                seen.insert(key, (template, Vec::new()));
            }
        }
    }

    pub(crate) async fn wait_synced(&self) {
        while !self.ready.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The first change of `key` after `after`, waiting up to the reload timeout.
    pub(crate) async fn change_after(&self, key: &str, after: Instant) -> Option<Instant> {
        let deadline = Instant::now() + RELOAD_TIMEOUT;
        loop {
            let hit = self.seen.lock().unwrap().get(key).and_then(|(_, c)| c.iter().find(|t| **t >= after).copied());
            if hit.is_some() || Instant::now() > deadline {
                return hit;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Forgets the Deployments of a namespace (churned ones are created again under the same names).
    pub(crate) fn forget(&self, namespace: &str) {
        self.seen.lock().unwrap().retain(|k, _| !k.starts_with(&format!("{namespace}/")));
    }

    /// Template changes of one Deployment since `after`.
    pub(crate) fn changes_of(&self, key: &str, after: Instant) -> usize {
        self.seen.lock().unwrap().get(key).map(|(_, c)| c.iter().filter(|t| **t >= after).count()).unwrap_or(0)
    }

    /// Template changes of Deployments in `namespaces` since `after`.
    pub(crate) fn changes_since(&self, namespaces: &[&str], after: Instant) -> usize {
        let seen = self.seen.lock().unwrap();
        seen.iter()
            .filter(|(k, _)| namespaces.iter().any(|ns| k.starts_with(&format!("{ns}/"))))
            .map(|(_, (_, c))| c.iter().filter(|t| **t >= after).count())
            .sum()
    }
}
