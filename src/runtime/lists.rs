//! How the watches list what exists when they start. A **streaming list** (KEP-3157: a watch
//! asked to send every existing object first, then a bookmark marking the end) is one request
//! per resource, where paged LISTs are one per page, and its objects arrive one at a time, where
//! a page is held whole while it is processed: fewer requests and a lower memory peak. Kubernetes
//! serves it by default since 1.34 (the `WatchList` feature); elsewhere the watches list in
//! pages. `--initial-list=auto` asks the API server once, at start.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use kube::Client;
use kube::api::{Api, WatchEvent, WatchParams};
use kube::runtime::watcher;
use tracing::{info, warn};

use crate::config::InitialList;

/// Objects per page of a paged (re)list. A page is held whole (response text and decoded
/// objects) while it is processed, and Deployments carry kilobytes of managedFields each, so
/// pages of client-go's 500 set the memory peak; at 100 the RSS at 10k Secrets + 10k ConfigMaps
/// + 1k Deployments drops from ~68 MiB to ~37 MiB for a few more list calls (bench/README.md).
pub const LIST_PAGE_SIZE: u32 = 100;

/// The annotation of the bookmark that ends a streaming list's initial events.
const INITIAL_EVENTS_END: &str = "k8s.io/initial-events-end";

/// How long the probe waits for the end of its (empty) streaming list.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// How the watches list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lists {
    Stream,
    Paged,
}

impl Lists {
    /// `cfg`, listing this way.
    pub(crate) fn apply(self, cfg: watcher::Config) -> watcher::Config {
        match self {
            Lists::Stream => cfg.streaming_lists(),
            Lists::Paged => cfg.page_size(LIST_PAGE_SIZE),
        }
    }
}

/// The way `--initial-list` asks for: for `auto`, whether the API server ends a streaming list
/// of Deployments (every scope watches them) that matches nothing, in `namespace` or cluster-wide.
pub(crate) async fn choose(client: &Client, mode: InitialList, namespace: Option<&str>) -> Lists {
    match mode {
        InitialList::Stream => {
            info!("initial lists: streaming (--initial-list=stream)");
            return Lists::Stream;
        }
        InitialList::Page => {
            info!("initial lists: paged, {LIST_PAGE_SIZE} objects a page (--initial-list=page)");
            return Lists::Paged;
        }
        InitialList::Auto => {}
    }
    let api: Api<Deployment> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    // A name no object can have (names are lower case): nothing is sent but the bookmark.
    let wp = WatchParams::streaming_lists()
        .fields("metadata.name=Kube-Reloader-Probe")
        .timeout(PROBE_TIMEOUT.as_secs() as u32);
    let first = match api.watch(&wp, "0").await {
        Err(e) => Probe::Refused(crate::error::api_message(&e)),
        Ok(stream) => {
            let mut stream = stream.boxed();
            match tokio::time::timeout(PROBE_TIMEOUT, stream.try_next()).await {
                Err(_) => Probe::Silent,
                Ok(Err(e)) => Probe::Refused(crate::error::api_message(&e)),
                Ok(Ok(None)) => Probe::Silent,
                Ok(Ok(Some(ev))) => Probe::First(ended(&ev)),
            }
        }
    };
    let lists = verdict(&first);
    match (&first, lists) {
        (_, Lists::Stream) => info!("the API server serves streaming lists: each watch lists with one request"),
        (Probe::Refused(why), _) => {
            warn!("the API server refused a streaming list ({why}); listing in pages of {LIST_PAGE_SIZE}")
        }
        _ => warn!("the API server did not end a streaming list; listing in pages of {LIST_PAGE_SIZE}"),
    }
    lists
}

/// What the probe saw.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Probe {
    /// The watch was refused (an old server, or the feature off): why.
    Refused(String),
    /// Nothing came within the timeout: a server that ignores `sendInitialEvents`.
    Silent,
    /// The first event: whether it was the bookmark that ends the initial events.
    First(bool),
}

fn ended(ev: &WatchEvent<Deployment>) -> bool {
    matches!(ev, WatchEvent::Bookmark(b) if b.metadata.annotations.contains_key(INITIAL_EVENTS_END))
}

/// Streaming lists only where the server ended one.
fn verdict(p: &Probe) -> Lists {
    match p {
        Probe::First(true) => Lists::Stream,
        _ => Lists::Paged,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_ended_streaming_list_streams() {
        for (probe, want) in [
            (Probe::First(true), Lists::Stream),
            (Probe::First(false), Lists::Paged),
            (Probe::Silent, Lists::Paged),
            (Probe::Refused("sendInitialEvents is forbidden".into()), Lists::Paged),
        ] {
            assert_eq!(verdict(&probe), want, "{probe:?}");
        }
    }

    #[test]
    fn the_end_is_the_annotated_bookmark() {
        let bookmark = |annotated: bool| {
            let annotations =
                if annotated { format!(r#","annotations":{{"{INITIAL_EVENTS_END}":"true"}}"#) } else { String::new() };
            let raw = format!(
                r#"{{"type":"BOOKMARK","object":{{"kind":"Deployment","apiVersion":"apps/v1","metadata":{{"resourceVersion":"12"{annotations}}}}}}}"#
            );
            serde_json::from_str::<WatchEvent<Deployment>>(&raw).unwrap()
        };
        assert!(ended(&bookmark(true)));
        assert!(!ended(&bookmark(false)));
        let added: WatchEvent<Deployment> =
            serde_json::from_str(r#"{"type":"ADDED","object":{"metadata":{"name":"web"}}}"#).unwrap();
        assert!(!ended(&added));
    }

    #[test]
    fn each_way_configures_the_watcher() {
        let s = Lists::Stream.apply(watcher::Config::default());
        assert_eq!(s.initial_list_strategy, watcher::InitialListStrategy::StreamingList);
        let p = Lists::Paged.apply(watcher::Config::default());
        assert_eq!(
            (p.initial_list_strategy, p.page_size),
            (watcher::InitialListStrategy::ListWatch, Some(LIST_PAGE_SIZE))
        );
    }
}
