//! Events on workloads, aggregated into series as kube-runtime's recorder does (a repeat of the
//! same Event within six minutes patches the first one's `series` instead of creating another),
//! but keeping only what a repeat needs: a digest of the key and the Event's name. The recorder
//! of kube-runtime keeps every Event it published, whole, with its key, for six minutes; under
//! workload churn (1,000 Deployments reloaded and deleted per round) that was the live heap
//! that grew round over round.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType};

/// How long repeats join a series (kube-runtime's and client-go's six minutes).
const SERIES_TTL: Duration = Duration::from_secs(6 * 60);

/// Reasons whose note says until when: each is an Event of its own, since a series cannot
/// change its note (the API server refuses: "field is immutable").
const NOTE_KEYED: &[&str] = &["ReloadDeferred"];

struct Series {
    name: String,
    count: i32,
    last: Instant,
}

pub(crate) struct Events {
    client: Client,
    controller: String,
    instance: String,
    series: Mutex<HashMap<u64, Series>>,
    /// One lock per key while an Event of it is being published: publishes run as separate
    /// tasks, and two of the same key at once would both find no series and create two Events.
    busy: Mutex<HashMap<u64, Arc<tokio::sync::Mutex<()>>>>,
}

impl Events {
    pub(crate) fn new(client: Client, controller: &str, instance: Option<&str>) -> Events {
        Events {
            client,
            controller: controller.to_string(),
            instance: instance.unwrap_or(controller).to_string(),
            series: Mutex::new(HashMap::new()),
            busy: Mutex::new(HashMap::new()),
        }
    }

    /// Publishes `ev` about `regarding`: a new Event, or the next count of its series.
    pub(crate) async fn publish(&self, ev: &Event, regarding: &ObjectReference) -> Result<(), kube::Error> {
        let key = key(ev, regarding);
        let lock = self.busy.lock().expect("events lock").entry(key).or_default().clone();
        let result = {
            let _turn = lock.lock().await;
            self.publish_in_turn(key, ev, regarding).await
        };
        let mut busy = self.busy.lock().expect("events lock");
        // Only the map and this task hold it: nobody waits for this key.
        if Arc::strong_count(&lock) == 2 {
            busy.remove(&key);
        }
        result
    }

    async fn publish_in_turn(&self, key: u64, ev: &Event, regarding: &ObjectReference) -> Result<(), kube::Error> {
        let now = Instant::now();
        let ns = regarding.namespace.clone().unwrap_or_else(|| "default".into());
        let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), &ns);
        let repeat = {
            let mut series = self.series.lock().expect("events lock");
            series.retain(|_, s| now.duration_since(s.last) < SERIES_TTL);
            series.get_mut(&key).map(|s| {
                s.count += 1;
                s.last = now;
                (s.name.clone(), s.count)
            })
        };
        if let Some((name, count)) = repeat {
            let series = EventSeries { count, last_observed_time: MicroTime(Timestamp::now()) };
            let patch = serde_json::json!({ "series": series });
            match api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => return Ok(()),
                // The Event is gone (the API server's --event-ttl, an hour by default, or someone
                // deleted it): start a new series instead of failing every repeat from now on.
                Err(kube::Error::Api(s)) if s.code == 404 => {
                    self.series.lock().expect("events lock").remove(&key);
                }
                Err(e) => return Err(e),
            }
        }
        let event = self.event(ev, regarding, &ns);
        let name = event.metadata.name.clone().unwrap_or_default();
        api.create(&PostParams::default(), &event).await?;
        self.series.lock().expect("events lock").insert(key, Series { name, count: 1, last: now });
        Ok(())
    }

    fn event(&self, ev: &Event, regarding: &ObjectReference, ns: &str) -> K8sEvent {
        let now = Timestamp::now();
        K8sEvent {
            action: Some(ev.action.clone()),
            reason: Some(ev.reason.clone()),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            related: ev.secondary.clone(),
            note: ev.note.clone(),
            metadata: ObjectMeta {
                namespace: Some(ns.to_string()),
                name: Some(format!(
                    "{}.{:x}",
                    regarding.name.as_deref().unwrap_or(&self.controller),
                    now.as_nanosecond()
                )),
                ..Default::default()
            },
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            type_: Some(match ev.type_ {
                EventType::Normal => "Normal".into(),
                EventType::Warning => "Warning".into(),
            }),
            ..Default::default()
        }
    }

    /// Series held (for tests).
    #[cfg(test)]
    fn held(&self) -> usize {
        self.series.lock().expect("events lock").len()
    }
}

/// What makes two Events the same series, as kube-runtime keys it (the note is not part of
/// it): type, action, reason, the object and the related object.
fn key(ev: &Event, regarding: &ObjectReference) -> u64 {
    let mut h = DefaultHasher::new();
    let r = |o: &ObjectReference, h: &mut DefaultHasher| {
        (&o.api_version, &o.kind, &o.namespace, &o.name, &o.uid).hash(h);
    };
    matches!(ev.type_, EventType::Warning).hash(&mut h);
    ev.action.hash(&mut h);
    ev.reason.hash(&mut h);
    r(regarding, &mut h);
    if let Some(rel) = &ev.secondary {
        r(rel, &mut h);
    }
    if NOTE_KEYED.contains(&ev.reason.as_str()) {
        ev.note.hash(&mut h);
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(reason: &str, note: &str, related: Option<&str>) -> Event {
        Event {
            type_: EventType::Warning,
            reason: reason.into(),
            note: Some(note.into()),
            action: "Reload".into(),
            secondary: related.map(|n| ObjectReference { name: Some(n.into()), ..Default::default() }),
        }
    }

    fn obj(name: &str) -> ObjectReference {
        ObjectReference { kind: Some("Deployment".into()), name: Some(name.into()), ..Default::default() }
    }

    #[test]
    fn one_series_per_object_reason_and_related_object_whatever_the_note() {
        let a = key(&ev("ReloadFail", "first", Some("cfg")), &obj("web"));
        assert_eq!(a, key(&ev("ReloadFail", "second, other words", Some("cfg")), &obj("web")));
        assert_ne!(a, key(&ev("ReloadFail", "first", Some("other")), &obj("web")));
        assert_ne!(a, key(&ev("ReloadHeld", "first", Some("cfg")), &obj("web")));
        assert_ne!(a, key(&ev("ReloadFail", "first", Some("cfg")), &obj("api")));
        let d = key(&ev("ReloadDeferred", "until 10:00:00", Some("cfg")), &obj("web"));
        assert_ne!(d, key(&ev("ReloadDeferred", "until 10:00:20", Some("cfg")), &obj("web")), "a note with a time");
    }

    #[tokio::test]
    async fn only_a_digest_and_a_name_are_kept() {
        // No API server is reached: a client to an address nothing listens on.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let events = Events::new(Client::try_from(config).unwrap(), "kube-reloader", None);
        assert!(events.publish(&ev("Reloaded", "x", None), &obj("web")).await.is_err());
        assert_eq!(events.held(), 0, "a failed create starts no series");
        assert!(events.busy.lock().unwrap().is_empty(), "no lock left behind");
        assert!(std::mem::size_of::<Series>() <= 64, "a series is small: {}", std::mem::size_of::<Series>());
    }
}
