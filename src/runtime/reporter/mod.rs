//! Reporting a reconcile: Events on the workload (with the source as the related object), log
//! lines in Reloader's words, metrics and alerts. Events and alerts are sent off the reload
//! path; a failure to send one is logged and counted, never retried into a storm.

pub(crate) mod alerts;
pub(crate) mod events;
pub mod metrics;

use std::sync::Arc;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType};
use tracing::{info, warn};

use crate::core::decide::outcome::{Ended, Tracked};
use crate::core::decide::{Change, ChangeKind};
use crate::core::gates::breaker::{Tally, held_note};
use crate::core::model::source::SourceRef;
use crate::core::model::workload::Workload;
use crate::runtime::context::Ctx;

/// The source of a change, as an Event's related object.
pub(crate) fn source_ref(namespace: &str, c: &Change) -> ObjectReference {
    ObjectReference {
        api_version: Some(c.source.kind.api_version().into()),
        kind: Some(c.source.kind.kind_name().into()),
        name: Some(c.source.name.clone()),
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

/// Publishes an Event off the reload path; repeats join a series.
pub(crate) fn publish(ctx: &Arc<Ctx>, w: &Workload, ev: Event) {
    let ctx = ctx.clone();
    let reference = w.object_ref();
    tokio::spawn(async move {
        if let Err(e) = ctx.events.publish(&ev, &reference).await {
            warn!(reason = %ev.reason, "could not publish an Event: {}", crate::error::api_message(&e));
            ctx.metrics.error("event_publish");
        }
    });
}

/// A reload done: the log line, the `Reloaded` Event and the alert, in Reloader's words.
pub(crate) fn report_reload(ctx: &Arc<Ctx>, w: &Workload, c: &Change) {
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
    publish(ctx, w, event(EventType::Normal, "Reloaded", note, Some(source_ref(ns, c))));
    let msg = crate::runtime::reporter::alerts::message(
        src,
        typ,
        &key.name,
        key.kind.as_str(),
        ns,
        ctx.settings.alert.as_ref().and_then(|a| a.additional_info.as_deref()),
    );
    let ctx = ctx.clone();
    tokio::spawn(async move {
        if let Some((sink, result)) = ctx.notifier.alert(&msg).await {
            let result = if result.is_ok() { "success" } else { "error" };
            ctx.metrics
                .alerts
                .get_or_create(&crate::runtime::reporter::metrics::SinkResult { sink: sink.label(), result })
                .inc();
        }
    });
}

/// A reload held by the circuit breaker: a Warning `ReloadHalted` Event on the workload and,
/// once per change, on the source; counted once per workload and change.
pub(crate) fn report_halted(ctx: &Arc<Ctx>, w: &Workload, c: &Change, cause: &str, t: Tally) {
    let ns = &w.key.namespace;
    let note = held_note(cause, t);
    if ctx.first_halt(ns, cause, "source") {
        warn!(source = %c.source, "{note}");
        ctx.metrics.changes_halted.inc();
        let ev = event(EventType::Warning, "ReloadHalted", note.clone(), None);
        let (ctx, reference) = (ctx.clone(), source_ref(ns, c));
        tokio::spawn(async move {
            if let Err(e) = ctx.events.publish(&ev, &reference).await {
                warn!(reason = %ev.reason, "could not publish an Event: {}", crate::error::api_message(&e));
                ctx.metrics.error("event_publish");
            }
        });
    }
    if ctx.first_halt(ns, cause, &w.key.to_string()) {
        info!(cause, "{note}");
        ctx.metrics.rollouts_halted.inc();
        publish(ctx, w, event(EventType::Warning, "ReloadHalted", note, Some(source_ref(ns, c))));
    }
}

/// A hold lifted by the source's release mark (`breaker::RELEASE_ANNOTATION`): once per change
/// and process, a log line and a Normal `ReloadReleased` Event on the source.
pub(crate) fn report_released(ctx: &Arc<Ctx>, ns: &str, c: &Change, cause: &str, t: Tally) {
    if !ctx.first_halt(ns, cause, "released") {
        return;
    }
    let note = format!(
        "released by {}: the rollouts for {cause} start again ({} of the first {} failed)",
        crate::core::gates::breaker::RELEASE_ANNOTATION,
        t.failed,
        t.started
    );
    info!(source = %c.source, "{note}");
    let ev = event(EventType::Normal, "ReloadReleased", note, None);
    let (ctx, reference) = (ctx.clone(), source_ref(ns, c));
    tokio::spawn(async move {
        if let Err(e) = ctx.events.publish(&ev, &reference).await {
            warn!(reason = %ev.reason, "could not publish an Event: {}", crate::error::api_message(&e));
            ctx.metrics.error("event_publish");
        }
    });
}

/// A tracked rollout ended: the log line, the `ReloadSucceeded` or `ReloadRolloutFailed`
/// Event (the first source as the related object), the metrics and, for a failure, the alert.
pub(crate) fn report_outcome(ctx: &Arc<Ctx>, w: &Workload, t: &Tracked) {
    let key = &w.key;
    let kind = key.kind.as_str();
    let ended = t.outcome.unwrap_or(Ended::Succeeded);
    let related = t.cause.split(", ").next().and_then(|c| c.split('@').next()).and_then(SourceRef::parse).map(|r| {
        ObjectReference {
            api_version: Some(r.kind.api_version().into()),
            kind: Some(r.kind.kind_name().into()),
            name: Some(r.name.clone()),
            namespace: Some(key.namespace.clone()),
            ..Default::default()
        }
    });
    let took = t.ended.unwrap_or(t.at).saturating_sub(t.at);
    match ended {
        Ended::Succeeded => {
            ctx.metrics.rollout(kind, ended.as_str(), Some(took as f64));
            let note = format!(
                "Rollout of {kind} '{}' for {} is complete and available, {took} s after the reload",
                key.name, t.cause
            );
            info!(cause = %t.cause, seconds = took, "rollout succeeded");
            publish(ctx, w, event(EventType::Normal, "ReloadSucceeded", note, related));
        }
        Ended::Failed | Ended::Superseded => {
            ctx.metrics.rollout(kind, ended.as_str(), None);
            let why = t.reason.as_deref().unwrap_or("unknown");
            let note = format!("Rollout of {kind} '{}' for {} failed: {why}", key.name, t.cause);
            warn!(cause = %t.cause, reason = why, "rollout failed");
            publish(ctx, w, event(EventType::Warning, "ReloadRolloutFailed", note.clone(), related));
            let msg = format!("Reloader: {note} (namespace '{}')", key.namespace);
            let ctx = ctx.clone();
            tokio::spawn(async move {
                if let Some((sink, result)) = ctx.notifier.alert(&msg).await {
                    let result = if result.is_ok() { "success" } else { "error" };
                    ctx.metrics
                        .alerts
                        .get_or_create(&crate::runtime::reporter::metrics::SinkResult { sink: sink.label(), result })
                        .inc();
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
