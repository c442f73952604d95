//! The Kubernetes client, named: every request carries `User-Agent: kube-reloader/<version>`,
//! so the API server's audit log and request metrics can tell this controller's calls apart.

use kube::{Client, Config};

/// The value sent as `User-Agent`.
pub const USER_AGENT: &str = concat!("kube-reloader/", env!("CARGO_PKG_VERSION"));

/// A client from the usual sources (in-cluster, then `KUBECONFIG`/`~/.kube/config`).
pub async fn build() -> anyhow::Result<Client> {
    let config = Config::infer().await.map_err(|e| anyhow::anyhow!("cannot load a Kubernetes configuration: {e}"))?;
    named(config, USER_AGENT)
}

/// A client for `config` whose requests carry `User-Agent: agent`.
pub fn named(mut config: Config, agent: &'static str) -> anyhow::Result<Client> {
    config.headers.push((http::header::USER_AGENT, http::HeaderValue::from_static(agent)));
    Client::try_from(config).map_err(|e| anyhow::anyhow!("cannot build a Kubernetes client: {e}"))
}

/// An API error as a person reads it: the server's message and code, not the whole Status.
pub fn error_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({} {})", s.message, s.code, s.reason),
        other => other.to_string(),
    }
}
