//! Reporting a reconcile: Events on the workload (with the source as the related object), log
//! lines in Reloader's words, metrics and alerts. Events and alerts are sent off the reload
//! path; a failure to send one is logged and counted, never retried into a storm.

use std::sync::Arc;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType};
use tracing::{info, warn};

use crate::core::decide::{Change, ChangeKind};
use crate::core::workload::Workload;
use crate::runtime::context::Ctx;

/// The source of a change, as an Event's related object.
pub(crate) fn source_ref(namespace: &str, c: &Change) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some(c.source.kind.kind_name().into()),
        name: Some(c.source.name.clone()),
        namespace: Some(namespace.to_string()),
        ..Default::default()
    }
}

/// An Event about a reload, optionally naming the source as the related object.
pub(crate) fn event(type_: EventType, reason: &str, message: String, related: Option<ObjectReference>) -> Event {
    // The API caps notes at 1 KiB.
    let note =
        if message.len() > 1000 { format!("{}…", &message[..message.floor_char_boundary(1000)]) } else { message };
    Event { type_, reason: reason.into(), note: Some(note), action: "Reload".into(), secondary: related }
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
    let msg = crate::runtime::alerts::message(
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
            ctx.metrics.alerts.get_or_create(&crate::runtime::metrics::SinkResult { sink: sink.label(), result }).inc();
        }
    });
}
