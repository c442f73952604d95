//! Logging set-up and signal handling. JSON logs carry logrus's field names, as Stakater
//! Reloader writes them (`level`, `msg`, `time`), so log-based alerts written for it still match.

use std::fmt;

use tokio_util::sync::CancellationToken;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Text or JSON logs at `level`; `RUST_LOG`, when set, takes precedence.
pub fn init(json: bool, level: &str) {
    // An empty RUST_LOG counts as unset (otherwise it would silence everything).
    let from_env = std::env::var("RUST_LOG").ok().filter(|v| !v.trim().is_empty());
    // kube-client logs every failed request at ERROR and every dropped watch stream as a WARN
    // with a Debug dump; the controller already reports each failure once, in its own words,
    // so by default those are left out (an outage gave ~40 such lines per second).
    let filter = from_env.and_then(|v| EnvFilter::try_new(v).ok()).unwrap_or_else(|| {
        EnvFilter::new(format!(
            "{level},kube=warn,kube_client=error,kube_client::client::builder=off,hyper=warn,tower=warn,rustls=warn,reqwest=warn,h2=warn"
        ))
    });
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let b = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    if json { b.fmt_fields(JsonFields::new()).event_format(LogrusJson).init() } else { b.init() }
}

/// One JSON object per line with logrus's keys, sorted as logrus sorts them: `level` (`info`,
/// `warning`, `error`, `debug`, `trace`), `msg`, `time` (RFC 3339, seconds), then the event's
/// own fields, `target`, and `span` (the innermost span's fields and name).
pub(crate) struct LogrusJson;

impl<S> FormatEvent<S, JsonFields> for LogrusJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, JsonFields>, mut w: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let meta = event.metadata();
        let mut map = fields.map;
        map.insert("level".into(), logrus_level(*meta.level()).into());
        map.insert("msg".into(), fields.message.into());
        let now = k8s_openapi::jiff::Timestamp::now();
        map.insert("time".into(), now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string().into());
        map.insert("target".into(), meta.target().into());
        if let Some(span) = ctx.event_scope().and_then(|scope| scope.from_root().last()) {
            let ext = span.extensions();
            let mut o = match ext.get::<FormattedFields<JsonFields>>().map(|f| serde_json::from_str(f.as_str())) {
                Some(Ok(serde_json::Value::Object(o))) => o,
                _ => serde_json::Map::new(),
            };
            o.insert("name".into(), span.name().into());
            map.insert("span".into(), o.into());
        }
        writeln!(w, "{}", serde_json::Value::Object(map))
    }
}

/// logrus's level names.
fn logrus_level(l: Level) -> &'static str {
    match l {
        Level::ERROR => "error",
        Level::WARN => "warning",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

/// An event's fields: the message apart; a field named like one of logrus's own keys is
/// prefixed `fields.`, as logrus does.
#[derive(Default)]
struct Fields {
    message: String,
    map: serde_json::Map<String, serde_json::Value>,
}

impl Fields {
    fn put(&mut self, f: &Field, v: serde_json::Value) {
        match f.name() {
            "message" => self.message = v.as_str().map_or_else(|| v.to_string(), String::from),
            n @ ("level" | "msg" | "time" | "target" | "span") => {
                self.map.insert(format!("fields.{n}"), v);
            }
            n => {
                self.map.insert(n.to_string(), v);
            }
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, f: &Field, v: &str) {
        self.put(f, v.into());
    }
    fn record_bool(&mut self, f: &Field, v: bool) {
        self.put(f, v.into());
    }
    fn record_i64(&mut self, f: &Field, v: i64) {
        self.put(f, v.into());
    }
    fn record_u64(&mut self, f: &Field, v: u64) {
        self.put(f, v.into());
    }
    fn record_f64(&mut self, f: &Field, v: f64) {
        self.put(f, v.into());
    }
    fn record_debug(&mut self, f: &Field, v: &dyn fmt::Debug) {
        self.put(f, format!("{v:?}").into());
    }
}

/// Cancels `token` on SIGTERM or SIGINT.
pub async fn shutdown_on_signal(token: CancellationToken) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
    token.cancel();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Logs through the JSON format into a buffer, and returns the lines.
    fn logged(f: impl FnOnce()) -> Vec<serde_json::Value> {
        let buf = Arc::new(Mutex::new(Vec::<u8>::new()));
        let sink = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(Level::TRACE)
            .with_writer(move || Sink(sink.clone()))
            .fmt_fields(JsonFields::new())
            .event_format(LogrusJson)
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
        text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"))).collect()
    }

    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn json_lines_carry_logrus_keys() {
        let lines = logged(|| {
            let span = tracing::info_span!("reconcile", workload = "Deployment/ns/web");
            let _g = span.enter();
            tracing::info!(
                source = "configmap/cfg",
                hash = "1a2b3c4d5e6f",
                "Changes detected in 'cfg' of type 'CONFIGMAP' in namespace 'ns'; updated 'web' of type 'Deployment' in namespace 'ns'"
            );
            tracing::warn!(level = 3, "careful");
        });
        let v = &lines[0];
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["hash", "level", "msg", "source", "span", "target", "time"], "sorted, as logrus: {v}");
        assert_eq!(v["level"], "info");
        assert!(v["msg"].as_str().unwrap().starts_with("Changes detected in 'cfg' of type 'CONFIGMAP'"));
        assert_eq!(v["span"]["workload"], "Deployment/ns/web");
        assert_eq!(v["span"]["name"], "reconcile");
        let time = v["time"].as_str().unwrap();
        assert!(
            time.parse::<k8s_openapi::jiff::Timestamp>().is_ok() && time.len() == 20 && time.ends_with('Z'),
            "{time}"
        );
        assert_eq!(lines[1]["level"], "warning", "logrus's name");
        assert_eq!(lines[1]["fields.level"], 3, "a clashing field is prefixed as logrus does");
    }

    #[test]
    fn levels_are_logrus_names() {
        let names: Vec<&str> = [Level::ERROR, Level::WARN, Level::INFO, Level::DEBUG, Level::TRACE]
            .into_iter()
            .map(logrus_level)
            .collect();
        assert_eq!(names, ["error", "warning", "info", "debug", "trace"]);
    }
}
