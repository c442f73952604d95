//! Logging set-up and signal handling.

use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

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
    if json { b.json().flatten_event(true).init() } else { b.init() }
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
