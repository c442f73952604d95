//! The reporter: what the controller tells people about a reconcile. Log lines in Reloader's
//! words, Events on the workload (with the source as the related object), metrics, and
//! alerts. Events and alerts are sent off the reload path; a failure to send one is logged and
//! counted, never retried into a storm.

pub(crate) mod alerts;
pub(crate) mod events;
pub mod metrics;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType};
use tracing::{debug, error, info, warn};

use crate::core::decide::{Change, ChangeKind, Decision};
use crate::core::gates::brake::{self, BrakeSettings};
use crate::core::gates::breaker::{self, Reported, Subject, Tally, held_note};
use crate::core::model::cause::Cause;
use crate::core::model::note::{Ended, Tracked};
use crate::core::model::source::{SourceKind, SourceRef};
use crate::core::model::workload::{Workload, WorkloadKey};
use crate::runtime::reporter::alerts::Notifier;
use crate::runtime::reporter::events::Events;
use crate::runtime::reporter::metrics::{Metrics, ResultLabel, SinkResult};
use crate::runtime::throttle::{Class, Throttle};

/// A source of `namespace`, as an Event's related object.
pub(crate) fn source_ref(namespace: &str, source: &SourceRef) -> ObjectReference {
    ObjectReference {
        api_version: Some(source.kind.api_version().into()),
        kind: Some(source.kind.kind_name().into()),
        name: Some(source.name.clone()),
        namespace: Some(namespace.to_string()),
        ..Default::default()
    }
}

/// The longest note sent whole: the API refuses notes over 1,024 bytes.
const NOTE_MAX: usize = 1000;

/// An Event about a reload, optionally naming the source as the related object.
pub(crate) fn event(type_: EventType, reason: &str, message: String, related: Option<ObjectReference>) -> Event {
    let note = if message.len() > NOTE_MAX {
        format!("{}…", &message[..message.floor_char_boundary(NOTE_MAX)])
    } else {
        message
    };
    Event { type_, reason: reason.into(), note: Some(note), action: "Reload".into(), secondary: related }
}

/// The note of the `InvalidAnnotation` Event: every problem of the workload, numbered when
/// there are several. One Event names them all because the Events of one workload and reason
/// are one series whatever their note: a second Event would only count as a repeat of the
/// first, and its text would never be shown. Past [`NOTE_MAX`] bytes the list is cut with "…"
/// and the count of the problems left out.
pub(crate) fn problems_note(problems: &[String]) -> String {
    const TAIL: &str = "; the workload's other rules still apply";
    /// Less than this of a problem is not worth showing: it is counted as left out instead.
    const MIN_SHOWN: usize = 24;
    let n = problems.len();
    let items: Vec<String> = if n == 1 {
        problems.to_vec()
    } else {
        problems.iter().enumerate().map(|(i, p)| format!("({}) {p}", i + 1)).collect()
    };
    let head = if n > 1 { format!("{n} annotation problems: ") } else { String::new() };
    let whole = format!("{head}{}{TAIL}", items.join("; "));
    if whole.len() <= NOTE_MAX {
        return whole;
    }
    let marker = |left: usize| if left == 0 { "…".to_string() } else { format!("… (and {left} more)") };
    let budget = NOTE_MAX - TAIL.len();
    let mut note = head;
    for (i, item) in items.iter().enumerate() {
        let sep = if i == 0 { "" } else { "; " };
        let after = n - i - 1;
        // Whole, with room left for the marker of those after it.
        if note.len() + sep.len() + item.len() + 2 + marker(after).len() <= budget {
            note.push_str(sep);
            note.push_str(item);
            continue;
        }
        // Cut: as much of it as fits before the marker, or none of it.
        let room = budget.saturating_sub(note.len() + sep.len() + marker(after).len());
        if room >= MIN_SHOWN {
            note.push_str(sep);
            note.push_str(&item[..item.floor_char_boundary(room)]);
            note.push_str(&marker(after));
        } else {
            note.push_str(sep);
            note.push_str(&marker(after + 1));
        }
        break;
    }
    note.push_str(TAIL);
    note
}

/// The note of a `ReloadFail` Event, in Reloader's words: the API server's message once, with
/// its code and reason, never kube's `Display` of the error (which repeats the message and
/// appends a `Debug` dump of the whole Status).
pub(crate) fn fail_note(key: &WorkloadKey, e: &kube::Error) -> String {
    format!(
        "Update for '{}' of type '{}' in namespace '{}' failed with error {}",
        key.name,
        key.kind,
        key.namespace,
        crate::error::api_message(e)
    )
}

pub(crate) struct Reporter {
    events: Arc<Events>,
    notifier: Notifier,
    metrics: Arc<Metrics>,
    /// Events wait behind workload writes for a place among the writes in flight.
    throttle: Arc<Throttle>,
    /// Holds of the circuit breaker already reported.
    halts: Mutex<Reported>,
    /// `ALERT_ADDITIONAL_INFO`.
    alert_info: Option<String>,
}

impl Reporter {
    pub(crate) fn new(
        events: Events,
        notifier: Notifier,
        metrics: Arc<Metrics>,
        throttle: Arc<Throttle>,
        alert_info: Option<String>,
    ) -> Self {
        Reporter { events: Arc::new(events), notifier, metrics, throttle, halts: Mutex::default(), alert_info }
    }

    /// `--webhook-url`: sources changes are posted there, and nothing is reloaded.
    pub(crate) fn webhook_mode(&self) -> bool {
        self.notifier.webhook_mode()
    }

    /// Publishes an Event about the workload off the reload path; repeats join a series.
    pub(crate) fn publish(&self, w: &Workload, ev: Event) {
        self.publish_on(w.object_ref(), ev);
    }

    fn publish_on(&self, reference: ObjectReference, ev: Event) {
        let (events, metrics, throttle) = (self.events.clone(), self.metrics.clone(), self.throttle.clone());
        tokio::spawn(async move {
            if let Err(e) = throttle.send(Class::Event, events.publish(&ev, &reference)).await {
                warn!(reason = %ev.reason, "could not publish an Event: {}", crate::error::api_message(&e));
                metrics.error("event_publish");
            }
        });
    }

    /// Posts an alert off the reload path, and counts it by sink and result.
    fn alert(&self, msg: String) {
        let (notifier, metrics) = (self.notifier.clone(), self.metrics.clone());
        tokio::spawn(async move {
            if let Some((sink, result)) = notifier.alert(&msg).await {
                let result = if result.is_ok() { "success" } else { "error" };
                metrics.alerts.get_or_create(&SinkResult { sink: sink.label(), result }).inc();
            }
        });
    }

    /// The decision's problems: malformed annotations (an error line each and one Event for
    /// all), a pause period on a kind that ignores it, a record not trusted.
    pub(crate) fn problems(&self, w: &Workload, d: &Decision, pause_key: &str) {
        let key = &w.key;
        // Reported on every evaluation that sees them, like Reloader; the rest of the policy applies.
        for e in &d.problems {
            error!(
                "Skipping invalid reload annotation on {} '{}' in namespace '{}': {e}",
                key.kind, key.name, key.namespace
            );
        }
        if !d.problems.is_empty() {
            // One Event for all of them: they would be one series, showing the first one's note only.
            let mut ev = event(EventType::Warning, "InvalidAnnotation", problems_note(&d.problems), None);
            ev.action = "Evaluate".into();
            self.publish(w, ev);
        }
        if d.pause_ignored {
            warn!("Annotation '{pause_key}' only applicable for deployments");
        }
        if let Err(e) = &w.record {
            warn!(error = %e, "unreadable {} annotation; adopting the current state", crate::core::model::record::RECORD_ANNOTATION);
        }
        if let Some(by) = &w.record_foreign {
            info!(writer = %by, "the applied record was written by someone else (e.g. a rollout undo); adopting the current state");
        }
    }

    /// A reload done: the log line, the `Reloaded` Event and the alert, in Reloader's words.
    pub(crate) fn reload(&self, w: &Workload, c: &Change) {
        let key = &w.key;
        let what = match c.kind {
            ChangeKind::Updated => "Changes detected",
            ChangeKind::Created => "Creation detected",
            ChangeKind::Deleted => "Deletion detected",
        };
        let (src, typ, ns) = (&c.source.name, c.source.kind.type_name(), &key.namespace);
        info!(
            source = %c.source,
            hash = c.hash.map(|h| h.short()).unwrap_or_default(),
            "{what} in '{src}' of type '{typ}' in namespace '{ns}'; updated '{}' of type '{}' in namespace '{ns}'",
            key.name,
            key.kind
        );
        let note = format!(
            "{what} in '{src}' of type '{typ}' in namespace '{ns}', Updated '{}' of type '{}' in namespace '{ns}'",
            key.name, key.kind
        );
        self.publish(w, event(EventType::Normal, "Reloaded", note, Some(source_ref(ns, &c.source))));
        let info = self.alert_info.as_deref();
        self.alert(alerts::message(src, typ, &key.name, key.kind.as_str(), ns, info));
    }

    /// A reload write refused or failed: counted, and a `ReloadFail` Event in Reloader's words.
    pub(crate) fn reload_failed(&self, w: &Workload, changes: &[Change], e: &kube::Error) {
        let key = &w.key;
        self.metrics.reload(key.kind.as_str(), &key.namespace, false, 0.0);
        let related = changes.first().map(|c| source_ref(&key.namespace, &c.source));
        self.publish(w, event(EventType::Warning, "ReloadFail", fail_note(key, e), related));
    }

    /// The storm brake holds a flapping workload: a warn line and a `ReloadHeld` Event, once.
    pub(crate) fn held(&self, w: &Workload, changes: &[Change], b: &BrakeSettings) {
        let every = if b.hold_max.is_zero() {
            String::new()
        } else {
            format!(", and reloading once per {} meanwhile", humantime::format_duration(b.hold_max))
        };
        let msg = format!(
            "more than {} reloads within {}; holding reloads until its sources stay unchanged for twice their \
             longest recent pause (at most {}){every}",
            b.flap_limit,
            humantime::format_duration(b.flap_window),
            humantime::format_duration(b.settle)
        );
        warn!("{msg}");
        let related = changes.first().map(|c| source_ref(&w.key.namespace, &c.source));
        self.publish(w, event(EventType::Warning, "ReloadHeld", msg, related));
    }

    /// A reload the storm brake spaces: a Normal `ReloadDeferred` Event saying until when,
    /// once per wait (`explain` reads it).
    pub(crate) fn deferred(&self, w: &Workload, changes: &[Change], after: Duration, b: &BrakeSettings) {
        let at = k8s_openapi::jiff::Timestamp::now()
            .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(after.as_secs().saturating_add(1) as i64))
            .map(|t| t.round(k8s_openapi::jiff::Unit::Second).unwrap_or(t).to_string())
            .unwrap_or_default();
        let msg = format!(
            "reloaded {} or more times within {}; the next reload, with every change until then, waits until {at} \
             (--min-reload-interval, doubling), or less if its sources go quiet",
            brake::FREE,
            humantime::format_duration(b.flap_window),
        );
        debug!("{msg}");
        let related = changes.first().map(|c| source_ref(&w.key.namespace, &c.source));
        self.publish(w, event(EventType::Normal, "ReloadDeferred", msg, related));
    }

    /// A change nothing rolls for: recorded, with the reason (a suspended CronJob, no container).
    pub(crate) fn not_reloading(&self, w: &Workload, why: &str) {
        info!(
            "not reloading '{}' of type '{}' in namespace '{}': {why}; the change is recorded",
            w.key.name, w.key.kind, w.key.namespace
        );
        self.metrics.skip("strategy_not_updated");
    }

    /// Whether `what` of the hold of `cause` in `ns` is reported for the first time.
    fn first_halt(&self, ns: &str, cause: &Cause, what: Subject) -> bool {
        self.halts.lock().expect("halts lock").first(ns, cause, what)
    }

    /// A reload held by the circuit breaker: a Warning `ReloadHalted` Event on the workload and,
    /// once per change, on the source; counted once per workload and change.
    pub(crate) fn halted(&self, w: &Workload, cause: &Cause, t: Tally) {
        let ns = &w.key.namespace;
        let note = held_note(cause, t);
        if self.first_halt(ns, cause, Subject::Source) {
            warn!(source = %cause.source, "{note}");
            self.metrics.changes_halted.inc();
            self.publish_on(
                source_ref(ns, &cause.source),
                event(EventType::Warning, "ReloadHalted", note.clone(), None),
            );
        }
        if self.first_halt(ns, cause, Subject::Workload(w.key.clone())) {
            info!(cause = %cause, "{note}");
            self.metrics.rollouts_halted.inc();
            let related = Some(source_ref(ns, &cause.source));
            self.publish(w, event(EventType::Warning, "ReloadHalted", note, related));
        }
    }

    /// A hold lifted by the source's release mark (`breaker::RELEASE_ANNOTATION`): once per
    /// change and process, a log line and a Normal `ReloadReleased` Event on the source.
    pub(crate) fn released(&self, ns: &str, cause: &Cause, t: Tally) {
        if !self.first_halt(ns, cause, Subject::Released) {
            return;
        }
        let note = format!(
            "released by {}: the rollouts for {cause} start again ({} of the first {} failed)",
            breaker::RELEASE_ANNOTATION,
            t.failed,
            t.started
        );
        info!(source = %cause.source, "{note}");
        self.publish_on(source_ref(ns, &cause.source), event(EventType::Normal, "ReloadReleased", note, None));
    }

    /// A tracked rollout ended: the log line and the metrics; for a failure, also the
    /// `ReloadRolloutFailed` Event (the first source as the related object) and the alert. A
    /// success has no Event: `Reloaded` said the rollout began, and an Event per success would
    /// be a request per reload that tells nobody anything the workload's status does not.
    pub(crate) fn outcome(&self, w: &Workload, t: &Tracked) {
        let key = &w.key;
        let kind = key.kind.as_str();
        let ended = t.outcome.unwrap_or(Ended::Succeeded);
        let related = t.cause.first().map(|c| source_ref(&key.namespace, &c.source));
        let took = t.ended.unwrap_or(t.at).saturating_sub(t.at);
        match ended {
            Ended::Succeeded => {
                self.metrics.rollout(kind, ended.as_str(), Some(took as f64));
                info!(cause = %t.cause, seconds = took, "rollout succeeded: complete and available");
            }
            Ended::Failed | Ended::Superseded => {
                self.metrics.rollout(kind, ended.as_str(), None);
                let why = t.reason.as_deref().unwrap_or("unknown");
                let note = format!("Rollout of {kind} '{}' for {} failed: {why}", key.name, t.cause);
                warn!(cause = %t.cause, reason = why, "rollout failed");
                self.publish(w, event(EventType::Warning, "ReloadRolloutFailed", note.clone(), related));
                self.alert(format!("Reloader: {note} (namespace '{}')", key.namespace));
            }
        }
    }

    /// `--webhook-url` mode: a source of `ns` changed; post it off the watch's path.
    pub(crate) fn webhook(&self, ns: &str, kind: SourceKind, name: &str) {
        let (notifier, metrics) = (self.notifier.clone(), self.metrics.clone());
        let (name, ns) = (name.to_string(), ns.to_string());
        tokio::spawn(async move {
            if let Some(r) = notifier.webhook(&name, kind.type_name(), &ns).await {
                let result = if r.is_ok() { "success" } else { "error" };
                metrics.webhooks.get_or_create(&ResultLabel { result }).inc();
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::kinds::WorkloadKind;

    const TAIL: &str = "; the workload's other rules still apply";

    fn problem(key: &str, len: usize) -> String {
        let value = "é".repeat(len / 2);
        format!("annotation {key:?} = {value:?}: invalid regular expression")
    }

    /// The numbers shown in a note, and the count it says was left out.
    fn shown_and_left_out(note: &str) -> (Vec<usize>, usize) {
        let shown = (1..100).filter(|i| note.contains(&format!("({i}) "))).collect();
        let left =
            note.split("(and ").nth(1).and_then(|r| r.split(' ').next()).map_or(0, |k| k.parse().expect("a count"));
        (shown, left)
    }

    #[test]
    fn one_note_names_every_problem_within_the_limit() {
        let one = "annotation \"reloader.stakater.com/auto\" = \"maybe\": not a boolean; use \"true\" or \"false\" (treated as false)";
        assert_eq!(problems_note(&[one.to_string()]), format!("{one}{TAIL}"), "one problem: its own words");
        let regex = "annotation \"configmap.reloader.stakater.com/reload\" = \"(\": invalid regular expression";
        assert_eq!(
            problems_note(&[regex.to_string(), one.to_string()]),
            format!("2 annotation problems: (1) {regex}; (2) {one}{TAIL}"),
            "two problems: both, numbered"
        );

        // (problems, how long each is)
        let rows: [(usize, usize); 7] = [(1, 2000), (2, 600), (3, 300), (4, 250), (10, 300), (40, 40), (120, 10)];
        for (n, len) in rows {
            let problems: Vec<String> = (0..n).map(|i| problem(&format!("key-{i}"), len)).collect();
            let note = problems_note(&problems);
            let what = format!("{n} problems of {len} bytes: {note}");
            assert!(note.len() <= NOTE_MAX, "{} bytes; {what}", note.len());
            assert!(note.ends_with(TAIL), "{what}");
            assert!(note.contains('…'), "cut: {what}");
            assert!(
                note.starts_with("annotation") || note.starts_with(&format!("{n} annotation problems: ")),
                "{what}"
            );
            assert_eq!(event(EventType::Warning, "InvalidAnnotation", note.clone(), None).note, Some(note.clone()));
            if n > 1 {
                // Every problem is either shown (whole or cut) or counted, once.
                let (shown, left) = shown_and_left_out(&note);
                assert!(!shown.is_empty(), "{what}");
                assert_eq!(shown, (1..=shown.len()).collect::<Vec<_>>(), "{what}");
                assert_eq!(shown.len() + left, n, "{what}");
                assert!(problems[..shown.len() - 1].iter().all(|p| note.contains(p.as_str())), "{what}");
            }
        }
    }

    #[test]
    fn a_reload_fail_note_carries_the_api_message_once() {
        let key = WorkloadKey { kind: WorkloadKind::Deployment, namespace: "shop".into(), name: "web".into() };
        // What the API server answers when an admission policy refuses the patch.
        let message = "deployments.apps \"web\" is forbidden: ValidatingAdmissionPolicy 'freeze' with binding \
                       'freeze' denied request: pod template changes are frozen here";
        let status = kube::core::Status::failure(message, "Forbidden").with_code(403);
        let e = kube::Error::Api(status.boxed());
        assert_eq!(e.to_string().matches("frozen here").count(), 2, "kube's Display repeats it");
        let note = fail_note(&key, &e);
        assert_eq!(
            note,
            format!(
                "Update for 'web' of type 'Deployment' in namespace 'shop' failed with error {message} (403 Forbidden)"
            )
        );
        assert_eq!(note.matches("frozen here").count(), 1, "{note}");
        assert!(!note.contains("Status {") && !note.contains("ApiError"), "no Debug dump: {note}");
    }
}
