//! Leader election (`--enable-ha`) with a Lease in the pod's namespace. Every replica watches
//! and indexes; only the holder writes.
//!
//! The algorithm is client-go's: read the Lease; if this replica holds it, or it is free or
//! expired, write it back with the `resourceVersion` just read, so that of two replicas
//! racing for it one gets a 409. Renewal happens every third of the lease duration (at least
//! twice within the renew deadline).
//!
//! Fencing: a write is allowed only until the *renew deadline*
//! (`--leader-election-renew-deadline`, by default two thirds of the duration) after the last
//! renewal that succeeded, measured from the moment that renewal was sent and by this
//! process's monotonic clock (which keeps running while the process is paused). Other replicas
//! may take the lease a full duration after that renewal was written, by their clocks; the
//! time in between (a third by default) absorbs clock skew and a write in flight. So a leader
//! whose renewals fail, or that was paused (SIGSTOP, a long GC-like stall) past its lease,
//! stops writing before anyone else may start. Writes also carry the workload's
//! `resourceVersion`, so one that left just before the deadline cannot overwrite a newer
//! leader's write.
//!
//! Hand-written rather than kube-lease-manager (which renews without a `resourceVersion`
//! precondition, keeps reporting leadership while renewals fail, and has no renew deadline)
//! or kube-leader-election (not built for kube 5).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::HaSettings;
use crate::core::model::record::FIELD_MANAGER;

impl HaSettings {
    /// How often the holder renews: a third of the duration (5 s of 15 s: fewer writes than
    /// client-go's every retry period), yet at least twice within the renew deadline.
    pub(crate) fn renew_every(&self) -> Duration {
        (self.lease_duration / 3).min(self.renew_deadline / 2)
    }
}

/// What to do with the Lease as read (pure).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// It is ours: renew it.
    Renew,
    /// It is free, or its holder let it expire: take it.
    Acquire,
    /// Another replica holds it until about then.
    Follow { holder: String },
}

/// Decides from the Lease's spec, this replica's identity and the wall-clock time.
pub(crate) fn step(spec: Option<&LeaseSpec>, identity: &str, now: Timestamp) -> Step {
    let Some(spec) = spec else { return Step::Acquire };
    let holder = spec.holder_identity.as_deref().unwrap_or_default();
    if holder == identity {
        return Step::Renew;
    }
    if holder.is_empty() {
        return Step::Acquire;
    }
    let expired = match (&spec.renew_time, spec.lease_duration_seconds) {
        (Some(MicroTime(renewed)), Some(secs)) => {
            renewed.checked_add(SignedDuration::from_secs(i64::from(secs))).map_or(true, |end| end < now)
        }
        // A holder without a renewal time or duration cannot be waited for.
        _ => true,
    };
    if expired { Step::Acquire } else { Step::Follow { holder: holder.to_string() } }
}

/// The write gate and election health, shared with the controller.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    inner: Mutex<GateState>,
}

#[derive(Debug, Default)]
struct GateState {
    /// While leading: the renew deadline of the last successful renewal.
    deadline: Option<Instant>,
    /// When the election last talked to the API server successfully.
    last_ok: Option<Instant>,
    /// The last election error, while failing.
    error: Option<String>,
}

impl Gate {
    /// Whether this replica may write now.
    pub(crate) fn open(&self) -> bool {
        self.inner.lock().expect("gate lock").deadline.is_some_and(|d| Instant::now() < d)
    }

    /// Why no replica may be able to write, if the election has failed for longer than `within`.
    pub(crate) fn failing_for(&self, within: Duration) -> Option<String> {
        let g = self.inner.lock().expect("gate lock");
        let err = g.error.as_ref()?;
        let since = g.last_ok.map_or(within, |t| t.elapsed());
        (since >= within).then(|| format!("leader election failing for {}s: {err}", since.as_secs()))
    }
}

/// Who may write: always this replica without HA; with it, the lease holder within its renew
/// deadline. `leading` follows the gate for transitions (a new leader looks at everything).
pub(crate) struct Leadership {
    pub(crate) leading: tokio::sync::watch::Sender<bool>,
    pub(crate) gate: Option<Arc<Gate>>,
}

impl Leadership {
    pub(crate) fn new(ha: bool) -> Leadership {
        Leadership { leading: tokio::sync::watch::channel(!ha).0, gate: ha.then(|| Arc::new(Gate::default())) }
    }

    /// Whether this replica may write now: checked at each write, against the renew deadline.
    pub(crate) fn may_write(&self) -> bool {
        self.gate.as_ref().is_none_or(|g| g.open())
    }
}

/// Runs the election until `stop`, then releases the lease if held. `leading` follows the gate
/// (for the controller's "became leader: look at everything" and the metric).
pub(crate) async fn run(
    client: kube::Client,
    ha: HaSettings,
    gate: Arc<Gate>,
    leading: tokio::sync::watch::Sender<bool>,
    stop: CancellationToken,
) {
    let api: Api<Lease> = Api::namespaced(client, &ha.namespace);
    info!(lease = %format!("{}/{}", ha.namespace, ha.lease_name), identity = %ha.identity, "leader election started");
    let mut following: Option<String> = None;
    loop {
        let sent = Instant::now();
        // A request the API server holds (its Lease storage reconnecting to etcd, a dead
        // connection) must not stall the loop: give up after half the renew deadline, as
        // client-go's leader-election clients do, and try again.
        let limit = ha.renew_deadline / 2;
        let outcome = match tokio::time::timeout(limit, attempt(&api, &ha)).await {
            Ok(o) => o,
            Err(_) => Err(format!("the API server did not answer within {limit:?}")),
        };
        let now = Instant::now();
        {
            let mut g = gate.inner.lock().expect("gate lock");
            match &outcome {
                Ok(Some(_)) | Ok(None) => {
                    g.last_ok = Some(now);
                    if g.error.take().is_some() {
                        info!("leader election: the API server answers again");
                    }
                }
                Err(e) => {
                    if g.error.is_none() {
                        warn!(error = %e, "leader election: cannot read or write the Lease; retrying");
                    }
                    g.error = Some(e.clone());
                }
            }
            match &outcome {
                Ok(Some(true)) => g.deadline = Some(sent + ha.renew_deadline),
                Ok(Some(false)) | Ok(None) => g.deadline = None,
                Err(_) => {} // the deadline of the last renewal stands
            }
        }
        if let Ok(None) = &outcome {
            // Held by another replica: name it once.
            let holder = current_holder(&api, &ha.lease_name).await;
            if holder != following {
                if let Some(h) = &holder {
                    info!(holder = %h, "another replica leads; standing by");
                }
                following = holder;
            }
        }
        // Sleep until the next renewal, but wake at the deadline to close the gate on time.
        let deadline = gate.inner.lock().expect("gate lock").deadline;
        // The holder renews every third of the duration; a standby, or a holder whose renewal
        // failed, tries again after the retry period (client-go's 2 s by default).
        let every =
            if matches!(outcome, Ok(Some(true))) { ha.renew_every() } else { ha.renew_every().min(ha.retry_period) };
        let next = Instant::now() + every;
        let wake = deadline.map_or(next, |d| d.min(next));
        publish(&gate, &leading, &ha.identity);
        tokio::select! {
            _ = tokio::time::sleep_until(wake) => {}
            _ = stop.cancelled() => break,
        }
        publish(&gate, &leading, &ha.identity);
    }
    let was_leading = gate.open();
    gate.inner.lock().expect("gate lock").deadline = None;
    leading.send_replace(false);
    if was_leading {
        match release(&api, &ha).await {
            Ok(()) => info!("lease released"),
            Err(e) => warn!(error = %e, "releasing the lease failed; it will expire"),
        }
    }
}

/// Sends the gate's state to `leading`, logging transitions.
fn publish(gate: &Gate, leading: &tokio::sync::watch::Sender<bool>, identity: &str) {
    let open = gate.open();
    if leading.send_replace(open) != open {
        if open {
            info!(identity = %identity, "became leader, starting to reconcile");
        } else {
            warn!(identity = %identity, "no longer leader (lease lost or not renewed by its deadline); writes stopped");
        }
    }
}

/// One round: `Ok(Some(true))` renewed or acquired, `Ok(Some(false))` lost a race (409),
/// `Ok(None)` another replica holds it, `Err` the API server could not be asked.
async fn attempt(api: &Api<Lease>, ha: &HaSettings) -> Result<Option<bool>, String> {
    let pp = PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
    let now = Timestamp::now();
    let current = match api.get_opt(&ha.lease_name).await {
        Ok(l) => l,
        Err(e) => return Err(crate::error::api_message(&e)),
    };
    let Some(mut lease) = current else {
        let lease = Lease {
            metadata: ObjectMeta { name: Some(ha.lease_name.clone()), ..Default::default() },
            spec: Some(held(ha, now, None, 0)),
        };
        return match api.create(&pp, &lease).await {
            Ok(_) => Ok(Some(true)),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Some(false)),
            Err(e) => Err(crate::error::api_message(&e)),
        };
    };
    let spec = lease.spec.clone().unwrap_or_default();
    let new_spec = match step(Some(&spec), &ha.identity, now) {
        Step::Follow { .. } => return Ok(None),
        Step::Renew => held(ha, now, spec.acquire_time.clone(), spec.lease_transitions.unwrap_or(0)),
        Step::Acquire => held(ha, now, None, spec.lease_transitions.unwrap_or(0) + 1),
    };
    lease.spec = Some(new_spec);
    lease.metadata.managed_fields = None;
    // `replace` sends the resourceVersion just read: a concurrent writer makes this a 409.
    match api.replace(&ha.lease_name, &pp, &lease).await {
        Ok(_) => Ok(Some(true)),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(Some(false)),
        Err(e) => Err(crate::error::api_message(&e)),
    }
}

fn held(ha: &HaSettings, now: Timestamp, acquired: Option<MicroTime>, transitions: i32) -> LeaseSpec {
    LeaseSpec {
        holder_identity: Some(ha.identity.clone()),
        lease_duration_seconds: Some(ha.lease_duration.as_secs().max(1) as i32),
        acquire_time: Some(acquired.unwrap_or(MicroTime(now))),
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(transitions),
        ..Default::default()
    }
}

async fn current_holder(api: &Api<Lease>, name: &str) -> Option<String> {
    api.get_opt(name).await.ok().flatten()?.spec?.holder_identity
}

/// Gives the lease up so a standby takes over at once: no holder, expired.
async fn release(api: &Api<Lease>, ha: &HaSettings) -> Result<(), String> {
    let mut lease = api.get(&ha.lease_name).await.map_err(|e| crate::error::api_message(&e))?;
    let Some(spec) = lease.spec.as_mut() else { return Ok(()) };
    if spec.holder_identity.as_deref() != Some(ha.identity.as_str()) {
        return Ok(());
    }
    spec.holder_identity = None;
    spec.lease_duration_seconds = Some(1);
    lease.metadata.managed_fields = None;
    let pp = PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
    api.replace(&ha.lease_name, &pp, &lease).await.map(drop).map_err(|e| crate::error::api_message(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: Option<&str>, renewed_secs_ago: Option<i64>, duration: Option<i32>) -> LeaseSpec {
        let now = Timestamp::now();
        LeaseSpec {
            holder_identity: holder.map(String::from),
            renew_time: renewed_secs_ago.map(|s| MicroTime(now.checked_sub(SignedDuration::from_secs(s)).unwrap())),
            lease_duration_seconds: duration,
            ..Default::default()
        }
    }

    #[test]
    fn step_table() {
        let rows: Vec<(&str, Option<LeaseSpec>, Step)> = vec![
            ("no spec", None, Step::Acquire),
            ("ours, fresh", Some(spec(Some("me"), Some(1), Some(15))), Step::Renew),
            ("ours, expired: still ours to renew", Some(spec(Some("me"), Some(60), Some(15))), Step::Renew),
            ("no holder", Some(spec(None, Some(1), Some(15))), Step::Acquire),
            ("released (empty holder)", Some(spec(Some(""), Some(1), Some(1))), Step::Acquire),
            ("another's, fresh", Some(spec(Some("b"), Some(5), Some(15))), Step::Follow { holder: "b".into() }),
            ("another's, expired", Some(spec(Some("b"), Some(16), Some(15))), Step::Acquire),
            ("another's, no renew time", Some(spec(Some("b"), None, Some(15))), Step::Acquire),
            ("another's, no duration", Some(spec(Some("b"), Some(1), None)), Step::Acquire),
        ];
        for (name, s, want) in rows {
            assert_eq!(step(s.as_ref(), "me", Timestamp::now()), want, "{name}");
        }
    }

    #[test]
    fn deadlines_leave_a_third_for_skew() {
        let ha = HaSettings {
            identity: "a".into(),
            namespace: "n".into(),
            lease_name: "l".into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        };
        assert_eq!(ha.renew_every(), Duration::from_secs(5));
        // A deadline set close to the renewal period still leaves two tries before it.
        let tight = HaSettings { renew_deadline: Duration::from_secs(6), ..ha };
        assert_eq!(tight.renew_every(), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn the_gate_closes_at_the_deadline_by_the_monotonic_clock() {
        let gate = Gate::default();
        assert!(!gate.open(), "closed before any renewal");
        gate.inner.lock().unwrap().deadline = Some(Instant::now() + Duration::from_secs(4));
        assert!(gate.open());
        tokio::time::advance(Duration::from_millis(3999)).await;
        assert!(gate.open());
        tokio::time::advance(Duration::from_millis(2)).await;
        assert!(!gate.open(), "closed at the deadline without any renewal");
    }

    /// After an etcd restart the API server held every Lease request for 21 s; the loop must
    /// not wait on one request that long.
    #[tokio::test(start_paused = true)]
    async fn a_lease_request_the_server_holds_is_given_up() {
        let svc = tower::service_fn(|_: http::Request<kube::client::Body>| {
            std::future::pending::<Result<http::Response<kube::client::Body>, std::convert::Infallible>>()
        });
        let ha = HaSettings {
            identity: "a".into(),
            namespace: "n".into(),
            lease_name: "l".into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        };
        let (gate, stop) = (Arc::new(Gate::default()), CancellationToken::new());
        let (leading, _) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(run(kube::Client::new(svc, "n"), ha, gate.clone(), leading, stop.clone()));
        let error = || gate.inner.lock().unwrap().error.clone();
        tokio::time::sleep(Duration::from_millis(4900)).await;
        assert_eq!(error(), None, "still waiting for the first answer");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(error().as_deref(), Some("the API server did not answer within 5s"));
        stop.cancel();
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn failing_elections_are_reported_after_a_while() {
        let gate = Gate::default();
        assert_eq!(gate.failing_for(Duration::from_secs(6)), None);
        {
            let mut g = gate.inner.lock().unwrap();
            g.last_ok = Some(Instant::now());
            g.error = Some("leases is forbidden".into());
        }
        assert_eq!(gate.failing_for(Duration::from_secs(6)), None, "not yet");
        tokio::time::advance(Duration::from_secs(7)).await;
        let why = gate.failing_for(Duration::from_secs(6)).unwrap();
        assert!(why.contains("leader election failing for 7s: leases is forbidden"), "{why}");
    }
}
