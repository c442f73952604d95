//! Notifications: Reloader's post-reload alerts (`ALERT_*` variables; Slack, Teams, Google Chat
//! or a raw webhook) and `--webhook-url` mode (a POST instead of a reload). Delivery runs off the
//! reload path, is bounded in time, and failures are logged and counted, never retried into a
//! reload.

use std::time::Duration;

use serde_json::json;
use tracing::{info, warn};

use crate::config::alerts::{AlertConfig, Sink};

/// Bounded: a slow receiver must not pile up tasks.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Reloader's alert text.
pub(crate) fn message(
    source: &str,
    source_type: &str,
    workload: &str,
    kind: &str,
    namespace: &str,
    extra: Option<&str>,
) -> String {
    let msg = format!(
        "Reloader detected changes in *{source}* of type *{source_type}* in namespace *{namespace}*. Hence reloaded *{workload}* of type *{kind}* in namespace *{namespace}*"
    );
    match extra {
        Some(info) => format!("{} : {msg}", info.trim()),
        None => msg,
    }
}

/// The request a sink gets: content type, body, and whether a status counts as success.
pub(crate) fn request(sink: Sink, msg: &str) -> (&'static str, String, fn(u16) -> bool) {
    match sink {
        Sink::Slack => (
            "application/json",
            json!({"attachments": [{"color": "good", "author_name": "Reloader", "text": msg}]}).to_string(),
            |s| s < 400,
        ),
        Sink::Teams | Sink::GChat => ("application/json", json!({"text": msg}).to_string(), |s| s == 200),
        Sink::Raw => ("text/plain", msg.replace('*', ""), |s| s < 400),
    }
}

fn client(proxy: Option<&str>) -> Result<reqwest::Client, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut b = reqwest::Client::builder().timeout(TIMEOUT).redirect(reqwest::redirect::Policy::none());
    if let Some(p) = proxy {
        b = b.proxy(reqwest::Proxy::all(p).map_err(|e| format!("ALERT_WEBHOOK_PROXY {p:?}: {e}"))?);
    }
    b.build().map_err(|e| e.to_string())
}

/// Sends alerts and webhook notifications.
#[derive(Clone)]
pub(crate) struct Notifier {
    alert: Option<(AlertConfig, reqwest::Client)>,
    webhook: Option<(String, reqwest::Client)>,
}

impl Notifier {
    pub(crate) fn new(alert: Option<AlertConfig>, webhook_url: Option<String>) -> Result<Notifier, String> {
        let alert = match alert {
            Some(c) => {
                let cl = client(c.proxy.as_deref())?;
                Some((c, cl))
            }
            None => None,
        };
        let webhook = match webhook_url {
            Some(u) => Some((u, client(None)?)),
            None => None,
        };
        Ok(Notifier { alert, webhook })
    }

    pub(crate) fn webhook_mode(&self) -> bool {
        self.webhook.is_some()
    }

    /// Posts an alert; `Ok(None)` when alerts are off.
    pub(crate) async fn alert(&self, msg: &str) -> Option<(Sink, Result<(), String>)> {
        let (cfg, client) = self.alert.as_ref()?;
        let (ctype, body, ok) = request(cfg.sink, msg);
        let res = client.post(&cfg.url).header("Content-Type", ctype).body(body).send().await;
        let result = match res {
            Ok(r) if r.status().is_redirection() => Err("incorrect token (redirection)".to_string()),
            Ok(r) if ok(r.status().as_u16()) => Ok(()),
            Ok(r) => Err(format!("status {}", r.status())),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = &result {
            warn!(sink = cfg.sink.label(), "Error sending alert: {e}");
        }
        Some((cfg.sink, result))
    }

    /// `--webhook-url` mode: Reloader's body, once per source change.
    pub(crate) async fn webhook(&self, source: &str, source_type: &str, namespace: &str) -> Option<Result<(), String>> {
        let (url, client) = self.webhook.as_ref()?;
        info!(
            "Changes detected in '{source}' of type '{source_type}' in namespace '{namespace}', Sending webhook to '{url}'"
        );
        let mut last = Err(String::new());
        for attempt in 0..3u32 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
            }
            match client.post(url).json(&json!({"webhook": "update successful"})).send().await {
                // Non-2xx answers are not errors, as in Reloader; only transport errors retry.
                Ok(r) => {
                    let status = r.status();
                    let body = r.text().await.unwrap_or_default();
                    info!(status = status.as_u16(), "webhook response: {body}");
                    return Some(Ok(()));
                }
                Err(e) => last = Err(e.to_string()),
            }
        }
        if let Err(e) = &last {
            warn!("webhook to {url} failed: {e}");
        }
        Some(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_and_bodies() {
        let m = message("cfg", "CONFIGMAP", "web", "Deployment", "ns", None);
        assert_eq!(
            m,
            "Reloader detected changes in *cfg* of type *CONFIGMAP* in namespace *ns*. Hence reloaded *web* of type *Deployment* in namespace *ns*"
        );
        assert!(
            message("a", "SECRET", "w", "StatefulSet", "n", Some(" prod ")).starts_with("prod : Reloader detected")
        );
        let (ct, body, ok) = request(Sink::Slack, "x*y");
        assert_eq!(
            (ct, body.as_str()),
            ("application/json", r#"{"attachments":[{"author_name":"Reloader","color":"good","text":"x*y"}]}"#)
        );
        assert!(ok(201) && !ok(400));
        let (_, body, ok) = request(Sink::Teams, "m");
        assert_eq!(body, r#"{"text":"m"}"#);
        assert!(ok(200) && !ok(201));
        let (ct, body, _) = request(Sink::Raw, "*a* b");
        assert_eq!((ct, body.as_str()), ("text/plain", "a b"));
    }
}
