//! The Kubernetes client, named: every request carries `User-Agent: kube-reloader/<version>`,
//! so the API server's audit log and request metrics can tell this controller's calls apart.

use kube::{Client, Config};

/// The value sent as `User-Agent`.
pub const USER_AGENT: &str = concat!("kube-reloader/", env!("CARGO_PKG_VERSION"));

use crate::error::Error;

/// A client from the usual sources (in-cluster, then `KUBECONFIG`/`~/.kube/config`).
pub async fn build() -> Result<Client, Error> {
    let config = Config::infer()
        .await
        .map_err(|e| Error::Client { what: "cannot load a Kubernetes configuration", message: e.to_string() })?;
    named(config, USER_AGENT)
}

/// A client for `config` whose requests carry `User-Agent: agent`.
pub fn named(mut config: Config, agent: &'static str) -> Result<Client, Error> {
    config.headers.push((http::header::USER_AGENT, http::HeaderValue::from_static(agent)));
    Client::try_from(config)
        .map_err(|e| Error::Client { what: "cannot build a Kubernetes client", message: e.to_string() })
}
