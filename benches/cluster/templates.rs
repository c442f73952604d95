//! The independent watch: when each Deployment's, StatefulSet's and DaemonSet's pod template changed.

use super::*;

/// A Deployment's current pod template (serialised) and the instants it changed.
pub(crate) type Seen = (String, Vec<Instant>);

#[derive(Clone, Default)]
pub(crate) struct Templates {
    /// namespace/name → what was seen of it
    pub(crate) seen: Arc<Mutex<HashMap<String, Seen>>>,
    /// Watches that have not finished their initial list.
    pub(crate) pending: Arc<AtomicUsize>,
}

impl Templates {
    /// Watches Deployments (keys `namespace/name`), StatefulSets (`namespace/statefulset/name`)
    /// and DaemonSets (`namespace/daemonset/name`).
    pub(crate) fn start(client: Client) -> Templates {
        let t = Templates::default();
        t.watch::<Deployment>(client.clone(), "", |d| d.spec.as_ref().map(|s| &s.template));
        t.watch::<StatefulSet>(client.clone(), "statefulset/", |d| d.spec.as_ref().map(|s| &s.template));
        t.watch::<DaemonSet>(client, "daemonset/", |d| d.spec.as_ref().map(|s| &s.template));
        t
    }

    fn watch<K>(&self, client: Client, prefix: &'static str, template: fn(&K) -> Option<&PodTemplateSpec>)
    where
        K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + std::fmt::Debug
            + serde::de::DeserializeOwned
            + Send
            + 'static,
    {
        let t = self.clone();
        self.pending.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            let api: Api<K> = Api::all(client);
            let mut s = watcher::watcher(api, watcher::Config::default()).boxed();
            let mut synced = false;
            while let Some(ev) = s.next().await {
                let now = Instant::now();
                match ev {
                    Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                        let m = o.meta();
                        let key = format!(
                            "{}/{prefix}{}",
                            m.namespace.as_deref().unwrap_or(""),
                            m.name.as_deref().unwrap_or("")
                        );
                        t.observe(key, serde_json::to_string(&template(&o)).unwrap_or_default(), now);
                    }
                    Ok(watcher::Event::InitDone) if !synced => {
                        synced = true;
                        t.pending.fetch_sub(1, Ordering::SeqCst);
                    }
                    _ => {}
                }
            }
        });
    }

    pub(crate) fn observe(&self, key: String, template: String, now: Instant) {
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
        while self.pending.load(Ordering::SeqCst) > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The first change of `key` after `after`, waiting up to the reload timeout.
    pub(crate) async fn change_after(&self, key: &str, after: Instant) -> Option<Instant> {
        self.change_within(key, after, RELOAD_TIMEOUT).await
    }

    /// The first change of `key` after `after`, waiting up to `timeout`.
    pub(crate) async fn change_within(&self, key: &str, after: Instant, timeout: Duration) -> Option<Instant> {
        let deadline = Instant::now() + timeout;
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
