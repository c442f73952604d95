//! The library's one error type. Each variant says what was being done and on what, so a log
//! line, an Event or an exit message names the object and what to do; `metric_label` sorts
//! failures for `reloader_failures_total{reason}`.

use std::net::SocketAddr;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A flag or environment variable with a value that cannot be used.
    #[error("--{flag}: {message}")]
    Flag { flag: &'static str, message: String },
    /// No cluster configuration, or no client could be built from it.
    #[error("{what}: {message}")]
    Client { what: &'static str, message: String },
    #[error("cannot listen on {addr} (--metrics-addr): {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the probe and metrics server stopped: {0}")]
    Server(#[source] std::io::Error),
    /// A write to a workload (or to the Job a CronJob spawns) was refused or failed.
    #[error("{action} {key} failed: {}", api_message(.source))]
    Write {
        action: &'static str,
        /// `Kind/namespace/name`.
        key: String,
        #[source]
        source: kube::Error,
    },
    /// A read (for `reloader explain`).
    #[error("reading {what} in namespace {namespace}: {}", api_message(.source))]
    Read {
        what: String,
        namespace: String,
        #[source]
        source: kube::Error,
    },
    #[error("{kind} {namespace}/{name} not found")]
    NotFound { kind: &'static str, namespace: String, name: String },
    #[error("{target:?} is not KIND/NAME; KIND is one of {kinds}", target = .0, kinds = crate::core::kinds::WorkloadKind::names())]
    Target(String),
}

impl Error {
    pub fn flag(flag: &'static str, message: impl Into<String>) -> Error {
        Error::Flag { flag, message: message.into() }
    }

    /// A short, bounded label for metrics: what kind of failure, never an object name.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Flag { .. } => "flag",
            Error::Client { .. } => "client",
            Error::Listen { .. } | Error::Server(_) => "server",
            Error::Write { source, .. } | Error::Read { source, .. } => api_label(source),
            Error::NotFound { .. } => "not_found",
            Error::Target(_) => "target",
        }
    }
}

/// An API error as a person reads it: the server's message and code, not the whole Status.
pub fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => status_message(s),
        other => other.to_string(),
    }
}

fn status_message(s: &kube::core::Status) -> String {
    format!("{} ({} {})", s.message, s.code, s.reason)
}

/// A failed watch as a person reads it: what failed (the list, the start of the watch, the
/// stream) and the API error as [`api_message`] gives it. kube-runtime's own wording repeats
/// the server's message and adds a dump of the whole Status.
pub fn watch_message(e: &kube::runtime::watcher::Error) -> String {
    use kube::runtime::watcher::Error as W;
    match e {
        W::InitialListFailed(e) => format!("listing failed: {}", api_message(e)),
        W::WatchStartFailed(e) => format!("starting the watch failed: {}", api_message(e)),
        W::WatchError(s) => format!("the API server ended the watch: {}", status_message(s)),
        W::WatchFailed(e) => format!("the watch stream failed: {}", api_message(e)),
        other @ W::NoResourceVersion => other.to_string(),
    }
}

/// Sorts an API failure by what the user would do about it.
fn api_label(e: &kube::Error) -> &'static str {
    match e {
        kube::Error::Api(s) => match s.code {
            401 | 403 => "forbidden",
            404 | 410 => "not_found",
            409 => "conflict",
            400 | 422 => "invalid",
            429 => "throttled",
            500..=599 => "server_error",
            _ => "api",
        },
        _ => "transport",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::kinds::WorkloadKind;
    use crate::core::model::workload::WorkloadKey;

    fn api(code: u16, message: &str) -> kube::Error {
        kube::Error::Api(kube::core::Status::failure(message, "Reason").with_code(code).boxed())
    }

    #[test]
    fn messages_name_the_object_and_labels_the_kind_of_failure() {
        let key = WorkloadKey { kind: WorkloadKind::Deployment, namespace: "shop".into(), name: "web".into() };
        let rows: Vec<(Error, &str, &str)> = vec![
            (
                Error::Write {
                    action: "reloading",
                    key: key.to_string(),
                    source: api(422, "pod template changes are frozen"),
                },
                "reloading Deployment/shop/web failed: pod template changes are frozen (422 Reason)",
                "invalid",
            ),
            (
                Error::Write {
                    action: "recording",
                    key: key.to_string(),
                    source: api(403, "deployments is forbidden"),
                },
                "recording Deployment/shop/web failed: deployments is forbidden (403 Reason)",
                "forbidden",
            ),
            (
                Error::flag("namespaces", "\"Bad_NS\" is not a namespace name"),
                "--namespaces: \"Bad_NS\" is not a namespace name",
                "flag",
            ),
            (
                Error::NotFound { kind: WorkloadKind::StatefulSet.as_str(), namespace: "a".into(), name: "b".into() },
                "StatefulSet a/b not found",
                "not_found",
            ),
        ];
        for (e, text, label) in rows {
            assert_eq!(e.to_string(), text);
            assert_eq!(e.metric_label(), label, "{text}");
        }
    }

    /// A failed watch is logged with the server's message once, its code and reason, and what
    /// failed; never kube's default wording with the message twice and a Debug dump.
    #[test]
    fn watch_failures_carry_the_api_message_once() {
        use kube::runtime::watcher::Error as W;
        let msg = "configmaps is forbidden: User system:anonymous cannot list resource configmaps";
        let status = || kube::core::Status::failure(msg, "Forbidden").with_code(403);
        let gone = kube::core::Status::failure("too old resource version: 1 (2)", "Expired").with_code(410);
        let rows: Vec<(W, String)> = vec![
            (W::InitialListFailed(api(403, msg)), format!("listing failed: {msg} (403 Reason)")),
            (
                W::WatchStartFailed(kube::Error::Api(status().boxed())),
                format!("starting the watch failed: {msg} (403 Forbidden)"),
            ),
            (
                W::WatchError(Box::new(gone)),
                "the API server ended the watch: too old resource version: 1 (2) (410 Expired)".to_string(),
            ),
            (
                W::WatchFailed(kube::Error::LinesCodecMaxLineLengthExceeded),
                format!("the watch stream failed: {}", kube::Error::LinesCodecMaxLineLengthExceeded),
            ),
            (W::NoResourceVersion, W::NoResourceVersion.to_string()),
        ];
        for (e, want) in rows {
            let got = watch_message(&e);
            assert_eq!(got, want);
            assert!(!got.contains("Status {"), "no Debug dump: {got}");
            if got.contains(msg) {
                assert_eq!(got.matches(msg).count(), 1, "the message once: {got}");
                assert!(e.to_string().matches(msg).count() > 1, "kube's own wording repeats it: {e}");
            }
        }
    }
}
