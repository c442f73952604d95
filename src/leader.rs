//! Leader election (`--enable-ha`) with a Lease in the pod's namespace. Every replica watches
//! and indexes; only the holder writes. Losing the lease closes the write gate at once; the lease
//! is released on shutdown so a standby takes over without waiting for it to expire.

use std::sync::Arc;
use std::time::Duration;

use kube_lease_manager::LeaseManagerBuilder;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::controller::Ctx;
use crate::record::FIELD_MANAGER;

/// HA settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HaSettings {
    /// `POD_NAME`.
    pub identity: String,
    /// `POD_NAMESPACE`.
    pub namespace: String,
    pub lease_name: String,
    pub lease_duration: Duration,
}

/// A running election.
pub struct Lease {
    forward: JoinHandle<()>,
    manager: JoinHandle<Result<kube_lease_manager::LeaseManager, kube_lease_manager::LeaseManagerError>>,
    ctx: Arc<Ctx>,
}

pub async fn start(ctx: Arc<Ctx>, ha: HaSettings) -> anyhow::Result<Lease> {
    let secs = ha.lease_duration.as_secs().max(2);
    // Renew a third of the duration before expiry (Reloader: 15 s lease, 10 s renew deadline).
    let grace = (secs / 3).max(1);
    let manager = LeaseManagerBuilder::new(ctx.client.clone(), &ha.lease_name)
        .with_namespace(&ha.namespace)
        .with_identity(&ha.identity)
        .with_duration(secs)
        .with_grace(grace)
        .with_field_manager(FIELD_MANAGER)
        .build()
        .await
        .map_err(|e| anyhow::anyhow!("leader election: cannot use Lease {}/{}: {e}", ha.namespace, ha.lease_name))?;
    let (mut rx, manager) = manager.watch().await;
    info!(lease = %format!("{}/{}", ha.namespace, ha.lease_name), identity = %ha.identity, "leader election started");
    let c = ctx.clone();
    let identity = ha.identity.clone();
    let forward = tokio::spawn(async move {
        loop {
            let leading = *rx.borrow_and_update();
            if c.leader.send_replace(leading) != leading {
                if leading {
                    info!(identity = %identity, "became leader, starting to reconcile");
                } else {
                    warn!(identity = %identity, "no longer leader, writes stopped");
                }
            }
            if rx.changed().await.is_err() {
                c.leader.send_replace(false);
                warn!("leader election ended; writes stopped");
                return;
            }
        }
    });
    Ok(Lease { forward, manager, ctx })
}

impl Lease {
    /// Stops writing and gives the lease up.
    pub async fn release(self) {
        self.ctx.leader.send_replace(false);
        // Dropping the receiver makes the manager release the lease and return.
        self.forward.abort();
        let _ = self.forward.await;
        match tokio::time::timeout(Duration::from_secs(5), self.manager).await {
            Ok(Ok(Ok(_))) => info!("lease released"),
            Ok(Ok(Err(e))) => warn!(error = %e, "releasing the lease failed; it will expire"),
            Ok(Err(e)) => warn!(error = %e, "the lease task failed"),
            Err(_) => warn!("releasing the lease timed out; it will expire"),
        }
    }
}
