//! The Kubernetes client, named: every request carries `User-Agent: kube-reloader/<version>`,
//! so the API server's audit log and request metrics can tell this controller's calls apart.
//! With leader election on, the replica's identity follows in parentheses, so the audit log
//! also tells which replica wrote.

use kube::{Client, Config};

/// The value sent as `User-Agent`.
pub const USER_AGENT: &str = concat!("kube-reloader/", env!("CARGO_PKG_VERSION"));

use crate::error::Error;

/// A client from the usual sources (in-cluster, then `KUBECONFIG`/`~/.kube/config`); its
/// user agent names `replica` when given (`kube-reloader/<version> (<replica>)`).
pub async fn build(replica: Option<&str>) -> Result<Client, Error> {
    let config = Config::infer()
        .await
        .map_err(|e| Error::Client { what: "cannot load a Kubernetes configuration", message: e.to_string() })?;
    named(config, &agent(replica))
}

/// The user agent of a replica: `kube-reloader/<version>`, then ` (<replica>)` when named.
pub fn agent(replica: Option<&str>) -> String {
    match replica {
        Some(r) => format!("{USER_AGENT} ({r})"),
        None => USER_AGENT.to_string(),
    }
}

/// A client for `config` whose requests carry `User-Agent: agent`.
pub fn named(mut config: Config, agent: &str) -> Result<Client, Error> {
    let value = http::HeaderValue::from_str(agent).map_err(|_| Error::Client {
        what: "cannot build a Kubernetes client",
        message: format!("{agent:?} is not a valid User-Agent (the replica name must be printable ASCII)"),
    })?;
    config.headers.push((http::header::USER_AGENT, value));
    Client::try_from(config)
        .map_err(|e| Error::Client { what: "cannot build a Kubernetes client", message: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replica_is_named_in_its_user_agent() {
        assert_eq!(agent(None), USER_AGENT);
        assert_eq!(agent(Some("reloader-7d9f-abc")), format!("{USER_AGENT} (reloader-7d9f-abc)"));
        // A name a header cannot carry is refused with a message naming it, not a panic.
        let config = Config::new("https://127.0.0.1:1".parse().unwrap());
        let Err(err) = named(config, &agent(Some("bad\nname"))) else { panic!("a newline in a header") };
        assert!(err.to_string().contains("not a valid User-Agent"), "{err}");
    }
}
