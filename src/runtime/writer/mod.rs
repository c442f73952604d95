//! The writer: every write to a workload goes through it. It holds the client, the lease's
//! write gate (with HA only the leader writes, and only until its renew deadline) and dry-run
//! (count and log what would be written; remember the records so decisions see them). A
//! reload is written per its kind's `kinds::Write` mode: one patch of the pod template and the
//! record for Deployments, StatefulSets and DaemonSets; the rest in `modes`.

mod modes;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::future::{BoxFuture, FutureExt};
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tracing::{debug, info};

use crate::core::decide::Change;
use crate::core::decide::patch::{self, Strategy};
use crate::core::kinds::{WorkloadKind, Write};
use crate::core::model::note::{OUTCOME_FIELD_MANAGER, ROLLOUT_ANNOTATION, Tracked};
use crate::core::model::record::{FIELD_MANAGER, Record};
use crate::core::model::workload::{Workload, WorkloadKey};
use crate::error::Error;
use crate::runtime::leader::Leadership;
use crate::runtime::reporter::metrics::{ActionLabel, Metrics, WorkloadKindLabel};
use crate::runtime::throttle::{Class, Throttle};

/// What a write did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Written {
    /// Pods will roll (or a Job was spawned or re-created, or a Rollout restarted).
    Rolled,
    /// Only the record changed, for this reason: there was nothing to roll.
    RecordedOnly(&'static str),
    /// The record, the outcome or the resume is written.
    Done,
    /// The object changed since it was read (a 409, or a Job re-created by someone else): the
    /// watch is about to deliver the newer one; look again soon.
    Stale,
    /// It is gone (404).
    Gone,
    /// Nothing was written: dry-run, or this replica may not write now.
    Withheld,
}

/// Whether a write's time says how loaded the API server is: one request, or several with
/// waits between them (a Job deleted and created again).
#[derive(Clone, Copy)]
enum Timed {
    Yes,
    No,
}

/// One reload to write: the workload as it was decided on, the changes, the record they make,
/// the strategy and the extra fields.
pub(crate) struct Reload<'a> {
    pub(crate) w: &'a Workload,
    pub(crate) changes: &'a [Change],
    pub(crate) record: &'a Record,
    pub(crate) strategy: Strategy,
    pub(crate) extra: Extra,
}

/// Extra fields written with a reload: pause it (Deployments); the rollout's tracking note
/// (kinds whose rollout is followed).
#[derive(Clone, Debug, Default)]
pub(crate) struct Extra {
    pub(crate) pause_at: Option<(String, String)>,
    pub(crate) tracked: Option<Tracked>,
}

pub(crate) struct Writer {
    client: kube::Client,
    leadership: Leadership,
    dry_run: bool,
    /// In dry-run: the records that would have been written, dropped with the workload.
    dry: Mutex<HashMap<WorkloadKey, Record>>,
    metrics: Arc<Metrics>,
    /// How many writes may be in flight: adapted to the API server's answers.
    throttle: Arc<Throttle>,
}

impl Writer {
    pub(crate) fn new(
        client: kube::Client,
        ha: bool,
        dry_run: bool,
        metrics: Arc<Metrics>,
        throttle: Arc<Throttle>,
    ) -> Writer {
        Writer { client, leadership: Leadership::new(ha), dry_run, dry: Mutex::default(), metrics, throttle }
    }

    /// Who may write: the lease and its write gate, with HA.
    pub(crate) fn leadership(&self) -> &Leadership {
        &self.leadership
    }

    /// Whether this replica may write now: checked at each write, against the renew deadline.
    pub(crate) fn is_leader(&self) -> bool {
        self.leadership.may_write()
    }

    /// Whether a write now would be sent: not in dry-run, and leading.
    pub(crate) fn can_write(&self) -> bool {
        !self.dry_run && self.is_leader()
    }

    /// The workload as decisions should see it: in dry-run, with the record that would have
    /// been written.
    pub(crate) fn as_if_written(&self, mut w: Workload) -> Workload {
        if self.dry_run
            && let Some(r) = self.dry.lock().expect("dry-run lock").get(&w.key)
        {
            w.record = Ok(Some(r.clone()));
            w.record_foreign = None;
        }
        w
    }

    /// The workload is gone.
    pub(crate) fn forget(&self, key: &WorkloadKey) {
        if self.dry_run {
            self.dry.lock().expect("dry-run lock").remove(key);
        }
    }

    /// The write gate: not in dry-run (counted and logged instead), and only while leading.
    fn allowed(&self, action: &'static str, w: &Workload) -> bool {
        if self.dry_run {
            self.metrics.dry_run.get_or_create(&ActionLabel { action }).inc();
            info!(workload = %w.key, "dry-run: would {action}");
            return false;
        }
        if !self.is_leader() {
            debug!(workload = %w.key, "not the leader; not writing");
            return false;
        }
        true
    }

    /// In dry-run, what would have been recorded stands in for the record from now on.
    fn withhold(&self, w: &Workload, record: &Record) -> Written {
        if self.dry_run {
            self.dry.lock().expect("dry-run lock").insert(w.key.clone(), record.clone());
        }
        Written::Withheld
    }

    /// Sends a write once the throttle has a place for it. Leadership is checked again then:
    /// the wait can outlast the lease, and a replica that lost it must not write.
    async fn send(
        &self,
        timed: Timed,
        write: BoxFuture<'_, Result<Written, kube::Error>>,
    ) -> Result<Written, kube::Error> {
        let write = async {
            if !self.is_leader() {
                debug!("lost the lease while waiting to write; not writing");
                return Ok(Written::Withheld);
            }
            write.await
        };
        match timed {
            Timed::Yes => self.throttle.send(Class::Workload, write).await,
            Timed::No => self.throttle.send_several(Class::Workload, write).await,
        }
    }

    /// A write's result as reconciles act on it: a 409 (counted) or a replaced object is
    /// stale, a 404 gone, anything else an error naming what was being done.
    fn settle(&self, action: &'static str, w: &Workload, r: Result<Written, kube::Error>) -> Result<Written, Error> {
        let stale = |why: &str| {
            let kind = WorkloadKindLabel { workload_kind: w.key.kind.as_str() };
            self.metrics.write_conflicts.get_or_create(&kind).inc();
            debug!(reason = why, "the workload changed since it was read; looking again");
            Ok(Written::Stale)
        };
        match r {
            Ok(Written::Stale) => stale("the object was replaced meanwhile"),
            Ok(written) => Ok(written),
            Err(kube::Error::Api(s)) if s.code == 409 => stale(&s.message),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(Written::Gone),
            Err(source) => Err(Error::Write { action, key: w.key.to_string(), source }),
        }
    }

    /// Records the given state on the workload: no rollout.
    pub(crate) async fn record(&self, w: &Workload, record: &Record) -> Result<Written, Error> {
        if !self.allowed("record", w) {
            return Ok(self.withhold(w, record));
        }
        let write = async { write_record(&self.client, w, record).await.map(|()| Written::Done) };
        let r = self.send(Timed::Yes, write.boxed()).await;
        self.settle("recording", w, r)
    }

    /// Records how the tracked rollout ended, on the object it was decided on (a newer
    /// reload's note is never overwritten: the precondition fails with 409). Under its own
    /// field manager, so the audit log and `managedFields` tell these writes from reloads.
    pub(crate) async fn outcome(&self, w: &Workload, t: &Tracked) -> Result<Written, Error> {
        if !self.allowed("outcome", w) {
            return Ok(Written::Withheld);
        }
        let body = patch::meta_patch(w, json!({ROLLOUT_ANNOTATION: t.encode()}));
        let write = patch_workload(&self.client, w, body, OUTCOME_FIELD_MANAGER);
        let r = self.send(Timed::Yes, async { write.await.map(|()| Written::Done) }.boxed()).await;
        self.settle("recording the rollout outcome", w, r)
    }

    /// Resumes a Deployment this controller paused.
    pub(crate) async fn resume(&self, w: &Workload, paused_at_key: &str) -> Result<Written, Error> {
        if !self.allowed("resume", w) {
            return Ok(Written::Withheld);
        }
        let mut body = patch::meta_patch(w, json!({paused_at_key: null}));
        body["spec"] = json!({"paused": false});
        let write = patch_workload(&self.client, w, body, FIELD_MANAGER);
        let r = self.send(Timed::Yes, async { write.await.map(|()| Written::Done) }.boxed()).await;
        self.settle("resuming", w, r)
    }

    /// Performs a reload, as its kind writes one.
    pub(crate) async fn reload(&self, r: &Reload<'_>) -> Result<Written, Error> {
        if !self.allowed("reload", r.w) {
            return Ok(self.withhold(r.w, r.record));
        }
        // Boxed: the futures of these writes hold whole objects (a Job re-created), and wrapped
        // in the throttle's they overflowed a 2 MiB test thread's stack in debug builds.
        let c = &self.client;
        let written = match r.w.key.kind.info().write {
            Write::PatchTemplate => self.send(Timed::Yes, patch_template(c, r).boxed()).await,
            Write::SpawnJob => self.send(Timed::No, modes::spawn_job(c, r).boxed()).await,
            Write::Recreate => self.send(Timed::No, modes::recreate(c, r).boxed()).await,
            Write::ArgoRollout => self.send(Timed::No, modes::argo_rollout(c, r).boxed()).await,
        };
        self.settle("reloading", r.w, written)
    }
}

/// The pod template change and the record in one patch, so the record never claims a rollout
/// that did not happen.
async fn patch_template(client: &kube::Client, r: &Reload<'_>) -> Result<Written, kube::Error> {
    let Reload { w, changes, record, strategy, extra } = r;
    let Some(t) = patch::template_patch(w, changes, *strategy, now_unix()) else {
        return recorded_only(client, w, record, "no container to reload").await;
    };
    let mut body = patch::reload_patch(w, t, record);
    if let Some(t) = &extra.tracked {
        body["metadata"]["annotations"][ROLLOUT_ANNOTATION] = json!(t.encode());
    }
    if let Some((key, at)) = &extra.pause_at {
        body["metadata"]["annotations"][key] = json!(at);
        body["spec"]["paused"] = json!(true);
    }
    patch_workload(client, w, body, FIELD_MANAGER).await?;
    Ok(Written::Rolled)
}

fn patch_params(manager: &str) -> PatchParams {
    PatchParams { field_manager: Some(manager.into()), ..Default::default() }
}

fn post_params() -> PostParams {
    PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() }
}

/// RFC 3339 at whole seconds, as Kubernetes times are written.
pub(crate) fn now_rfc3339() -> String {
    k8s_openapi::jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn now_unix() -> i64 {
    k8s_openapi::jiff::Timestamp::now().as_second()
}

/// The API of a workload kind in one namespace, untyped: writes need no type of their own.
fn dynamic_api(client: &kube::Client, kind: WorkloadKind, ns: &str) -> Api<DynamicObject> {
    let i = kind.info();
    let ar = ApiResource {
        group: i.group.into(),
        version: i.version.into(),
        api_version: i.api_version.into(),
        kind: i.kind.into(),
        plural: i.plural.into(),
    };
    Api::namespaced_with(client.clone(), ns, &ar)
}

/// A patch to the workload itself, under `manager`: strategic merge for built-in kinds, JSON
/// merge for custom resources (which do not take strategic merge).
async fn patch_workload(client: &kube::Client, w: &Workload, body: Value, manager: &str) -> Result<(), kube::Error> {
    let body = if w.key.kind.info().custom { Patch::Merge(body) } else { Patch::Strategic(body) };
    dynamic_api(client, w.key.kind, &w.key.namespace).patch(&w.key.name, &patch_params(manager), &body).await.map(drop)
}

/// Records the given state on the workload: no rollout.
async fn write_record(client: &kube::Client, w: &Workload, record: &Record) -> Result<(), kube::Error> {
    patch_workload(client, w, patch::record_patch(w, record), FIELD_MANAGER).await
}

/// Records the change without rolling anything, for the reason given.
async fn recorded_only(
    client: &kube::Client,
    w: &Workload,
    record: &Record,
    why: &'static str,
) -> Result<Written, kube::Error> {
    write_record(client, w, record).await?;
    Ok(Written::RecordedOnly(why))
}
