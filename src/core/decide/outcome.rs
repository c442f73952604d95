//! Outcome tracking: how the rollout a reload started ends. A reload writes a small tracking
//! note on the workload (`ROLLOUT_ANNOTATION`: the cause, the time, the generation it made);
//! the workload's own status, as the watch delivers it, says how that rollout goes. Once it
//! ends, the outcome is written into the same note, so a restart or a failover neither reports
//! it twice nor forgets a rollout still under way. Pure: times are passed in.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use serde::{Deserialize, Serialize};

/// The annotation, under this project's own domain, that holds the tracking note.
pub(crate) const ROLLOUT_ANNOTATION: &str = "reloader.kube-reloader.dev/rollout";

/// The field manager of the write that records an outcome: the API server's audit log (its
/// request URI carries `fieldManager`) and `managedFields` tell these writes from reloads.
pub const OUTCOME_FIELD_MANAGER: &str = "kube-reloader-outcome";

/// How a tracked rollout ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Ended {
    Succeeded,
    Failed,
    /// A later reload replaced it before it ended.
    Superseded,
}

impl Ended {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Ended::Succeeded => "succeeded",
            Ended::Failed => "failed",
            Ended::Superseded => "superseded",
        }
    }
}

/// The tracking note a reload writes on the workload, with the reload itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Tracked {
    /// What caused it: `configmap/app-config@1a2b3c4d5e6f` (several joined with `, `).
    pub(crate) cause: String,
    /// When the reload was written, Unix seconds (the controller's clock).
    pub(crate) at: i64,
    /// The generation the reload made: the one it was decided on plus one (the write carries
    /// that `resourceVersion` as a precondition, and a template change bumps it by one).
    pub(crate) generation: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) outcome: Option<Ended>,
    /// When the outcome was seen, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) ended: Option<i64>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
}

/// The cause of one change, as notes name it: `configmap/app@1a2b3c4d5e6f` (`@deleted`).
pub(crate) fn cause_of(c: &crate::core::decide::Change) -> String {
    format!("{}@{}", c.source, c.hash.map_or_else(|| "deleted".to_string(), |h| h.short()))
}

impl Tracked {
    pub(crate) fn encode(&self) -> String {
        serde_json::to_string(self).expect("a tracking note serialises")
    }

    pub(crate) fn decode(s: &str) -> Result<Tracked, String> {
        serde_json::from_str(s).map_err(|e| format!("unreadable {ROLLOUT_ANNOTATION} annotation: {e}"))
    }

    /// Still under way (no outcome recorded yet).
    pub(crate) fn pending(&self) -> bool {
        self.outcome.is_none()
    }

    /// The note with its outcome.
    pub(crate) fn ended(&self, outcome: Ended, now: i64, reason: Option<String>) -> Tracked {
        Tracked { outcome: Some(outcome), ended: Some(now), reason, ..self.clone() }
    }
}

/// The few status fields of a workload that tell how its rollout goes: a compact projection
/// of the object the watch delivers, kept with the workload (never in its fingerprint, so
/// status updates cause no reconcile unless a rollout is tracked).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) enum Progress {
    /// A kind or update strategy without a rollout to follow (CronJob, Job, `OnDelete`, an
    /// Argo Rollout without a template of its own).
    #[default]
    Untracked,
    Deployment {
        generation: i64,
        observed_generation: i64,
        /// `spec.replicas` (default 1).
        desired: i32,
        /// `status.replicas`: old and new pods together.
        replicas: i32,
        updated: i32,
        available: i32,
        /// The `Progressing` condition with reason `ProgressDeadlineExceeded`: its last
        /// update (Unix seconds) and message.
        deadline_exceeded: Option<(i64, String)>,
    },
    StatefulSet {
        generation: i64,
        observed_generation: i64,
        desired: i32,
        /// `spec.updateStrategy.rollingUpdate.partition`.
        partition: i32,
        updated: i32,
        ready: i32,
        current_revision: String,
        update_revision: String,
    },
    DaemonSet {
        generation: i64,
        observed_generation: i64,
        desired: i32,
        updated: i32,
        available: i32,
    },
    /// An Argo Rollout: the phase its own controller computes, read as `kubectl argo rollouts
    /// status` reads it.
    Rollout {
        generation: i64,
        /// `None` when not a number (Argo Rollouts before 0.10 wrote a hash there): taken as
        /// observed, as the plugin does.
        observed_generation: Option<i64>,
        /// `controllerPause` with no pause condition left: the controller has yet to unpause it.
        unpausing: bool,
        /// `Healthy`, `Progressing`, `Paused`, `Degraded` (empty before the controller sets it).
        phase: String,
        message: String,
    },
}

const DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";

impl Progress {
    pub(crate) fn of_deployment(d: &Deployment) -> Progress {
        let spec = d.spec.as_ref();
        let st = d.status.clone().unwrap_or_default();
        let deadline_exceeded = st
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Progressing" && c.reason.as_deref() == Some(DEADLINE_EXCEEDED))
            .map(|c| {
                let t = c.last_update_time.as_ref().or(c.last_transition_time.as_ref()).map_or(0, |t| t.0.as_second());
                (t, c.message.clone().unwrap_or_default())
            });
        Progress::Deployment {
            generation: d.metadata.generation.unwrap_or(0),
            observed_generation: st.observed_generation.unwrap_or(0),
            desired: spec.and_then(|s| s.replicas).unwrap_or(1),
            replicas: st.replicas.unwrap_or(0),
            updated: st.updated_replicas.unwrap_or(0),
            available: st.available_replicas.unwrap_or(0),
            deadline_exceeded,
        }
    }

    pub(crate) fn of_statefulset(s: &StatefulSet) -> Progress {
        let spec = s.spec.as_ref();
        let strategy = spec.and_then(|s| s.update_strategy.as_ref());
        if strategy.and_then(|u| u.type_.as_deref()) == Some("OnDelete") {
            return Progress::Untracked;
        }
        let st = s.status.clone().unwrap_or_default();
        Progress::StatefulSet {
            generation: s.metadata.generation.unwrap_or(0),
            observed_generation: st.observed_generation.unwrap_or(0),
            desired: spec.and_then(|s| s.replicas).unwrap_or(1),
            partition: strategy.and_then(|u| u.rolling_update.as_ref()).and_then(|r| r.partition).unwrap_or(0),
            updated: st.updated_replicas.unwrap_or(0),
            ready: st.ready_replicas.unwrap_or(0),
            current_revision: st.current_revision.unwrap_or_default(),
            update_revision: st.update_revision.unwrap_or_default(),
        }
    }

    pub(crate) fn of_daemonset(d: &DaemonSet) -> Progress {
        let strategy = d.spec.as_ref().and_then(|s| s.update_strategy.as_ref());
        if strategy.and_then(|u| u.type_.as_deref()) == Some("OnDelete") {
            return Progress::Untracked;
        }
        let st = d.status.clone().unwrap_or_default();
        Progress::DaemonSet {
            generation: d.metadata.generation.unwrap_or(0),
            observed_generation: st.observed_generation.unwrap_or(0),
            desired: st.desired_number_scheduled,
            updated: st.updated_number_scheduled.unwrap_or(0),
            available: st.number_available.unwrap_or(0),
        }
    }

    pub(crate) fn of_rollout(r: &crate::core::kinds::rollout::Rollout) -> Progress {
        if r.spec.as_ref().and_then(|s| s.template.as_ref()).is_none() {
            return Progress::Untracked;
        }
        let st = r.status.clone().unwrap_or_default();
        Progress::Rollout {
            generation: r.metadata.generation.unwrap_or(0),
            observed_generation: st.observed_generation.as_deref().map(|g| g.parse::<i64>().ok()).unwrap_or(Some(0)),
            unpausing: st.controller_pause && st.pause_conditions.is_empty(),
            phase: st.phase.unwrap_or_default(),
            message: st.message.unwrap_or_default(),
        }
    }

    /// Whether a reload of this workload has a rollout to follow.
    pub(crate) fn trackable(&self) -> bool {
        !matches!(self, Progress::Untracked)
    }

    /// The generation the object has now (0 when untracked).
    pub(crate) fn generation(&self) -> i64 {
        match self {
            Progress::Untracked => 0,
            Progress::Deployment { generation, .. }
            | Progress::StatefulSet { generation, .. }
            | Progress::DaemonSet { generation, .. }
            | Progress::Rollout { generation, .. } => *generation,
        }
    }
}

/// Where a tracked rollout stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Still rolling; why, in words (for `reloader explain` and logs).
    InProgress(String),
    Succeeded,
    Failed(String),
    /// Nothing to follow (the kind or strategy has no rollout status).
    Untracked,
}

/// Classifies the rollout `t` started from the workload's status `p` at `now` (Unix seconds).
/// `timeout` (`--rollout-timeout`) fails a rollout that has not succeeded that long after the
/// reload, whatever the kind; a Deployment also fails on its own `progressDeadlineSeconds`.
pub(crate) fn classify(t: &Tracked, p: &Progress, now: i64, timeout: Option<Duration>) -> Verdict {
    let verdict = progress(t, p);
    match (&verdict, timeout) {
        (Verdict::InProgress(why), Some(limit)) if now.saturating_sub(t.at) >= limit.as_secs() as i64 => {
            Verdict::Failed(format!(
                "not available {} after the reload (--rollout-timeout): {why}",
                humantime::format_duration(limit)
            ))
        }
        _ => verdict,
    }
}

fn progress(t: &Tracked, p: &Progress) -> Verdict {
    // The status must describe the generation the reload made (or the object's own, if the
    // write turned out not to change the template and so made none).
    let want = |generation: i64| t.generation.min(generation);
    match p {
        Progress::Untracked => Verdict::Untracked,
        Progress::Deployment {
            generation,
            observed_generation,
            desired,
            replicas,
            updated,
            available,
            deadline_exceeded,
        } => {
            if *observed_generation < want(*generation) {
                return Verdict::InProgress(format!(
                    "waiting for the Deployment controller to observe generation {}",
                    want(*generation)
                ));
            }
            // A deadline exceeded before this reload (a condition left from an earlier
            // rollout, kept while an old ReplicaSet is reused) says nothing about this one.
            if let Some((_, message)) = deadline_exceeded.as_ref().filter(|(when, _)| *when >= t.at) {
                return Verdict::Failed(if message.is_empty() {
                    DEADLINE_EXCEEDED.to_string()
                } else {
                    format!("{DEADLINE_EXCEEDED}: {message}")
                });
            }
            if updated < desired {
                return Verdict::InProgress(format!("{updated} of {desired} replicas updated"));
            }
            if replicas > updated {
                return Verdict::InProgress(format!("{} old replicas pending termination", replicas - updated));
            }
            if available < updated {
                return Verdict::InProgress(format!("{available} of {updated} updated replicas available"));
            }
            Verdict::Succeeded
        }
        Progress::StatefulSet {
            generation,
            observed_generation,
            desired,
            partition,
            updated,
            ready,
            current_revision,
            update_revision,
        } => {
            if *observed_generation < want(*generation) {
                return Verdict::InProgress(format!(
                    "waiting for the StatefulSet controller to observe generation {}",
                    want(*generation)
                ));
            }
            if ready < desired {
                return Verdict::InProgress(format!("{ready} of {desired} replicas ready"));
            }
            if *partition > 0 {
                let expected = (desired - partition).max(0);
                if updated < &expected {
                    return Verdict::InProgress(format!(
                        "{updated} of {expected} replicas above the partition updated"
                    ));
                }
                return Verdict::Succeeded;
            }
            if update_revision != current_revision {
                return Verdict::InProgress(format!(
                    "{updated} of {desired} replicas updated to revision {update_revision}"
                ));
            }
            Verdict::Succeeded
        }
        Progress::DaemonSet { generation, observed_generation, desired, updated, available } => {
            if *observed_generation < want(*generation) {
                return Verdict::InProgress(format!(
                    "waiting for the DaemonSet controller to observe generation {}",
                    want(*generation)
                ));
            }
            if updated < desired {
                return Verdict::InProgress(format!("{updated} of {desired} scheduled pods updated"));
            }
            if available < desired {
                return Verdict::InProgress(format!("{available} of {desired} updated pods available"));
            }
            Verdict::Succeeded
        }
        Progress::Rollout { generation, observed_generation, unpausing, phase, message } => {
            if observed_generation.is_some_and(|o| o < want(*generation)) {
                return Verdict::InProgress(format!(
                    "waiting for the Argo Rollouts controller to observe generation {}",
                    want(*generation)
                ));
            }
            if *unpausing {
                return Verdict::InProgress("waiting for the Rollout to unpause".into());
            }
            let said = |what: &str| if message.is_empty() { what.to_string() } else { format!("{what}: {message}") };
            match phase.as_str() {
                "Healthy" => Verdict::Succeeded,
                "Degraded" => Verdict::Failed(said("Degraded")),
                // A canary step waiting for promotion, or a manual pause: still under way, as
                // for the plugin (`--rollout-timeout` ends the wait).
                "Paused" => Verdict::InProgress(said("paused")),
                "" => Verdict::InProgress("no phase reported by the Argo Rollouts controller yet".into()),
                other => Verdict::InProgress(said(other)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const AT: i64 = 1_000_000;

    fn tracked(generation: i64) -> Tracked {
        Tracked {
            cause: "configmap/app@1a2b3c4d5e6f".into(),
            at: AT,
            generation,
            outcome: None,
            ended: None,
            reason: None,
        }
    }

    fn ts(secs: i64) -> String {
        k8s_openapi::jiff::Timestamp::from_second(secs).unwrap().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    }

    fn deployment(status: serde_json::Value) -> Progress {
        let d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "web", "generation": 5},
            "spec": {"replicas": 3, "selector": {}, "template": {}},
            "status": status,
        }))
        .unwrap();
        Progress::of_deployment(&d)
    }

    fn deadline(at: i64) -> serde_json::Value {
        json!([{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                "message": "ReplicaSet \"web-1\" has timed out progressing.",
                "lastUpdateTime": ts(at), "lastTransitionTime": ts(at)}])
    }

    /// What a case expects of the verdict.
    type Check = fn(&Verdict) -> bool;

    fn in_progress(v: &Verdict) -> bool {
        matches!(v, Verdict::InProgress(_))
    }

    #[test]
    fn deployments() {
        let ok = json!({"observedGeneration": 5, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3});
        let cases: Vec<(&str, serde_json::Value, Check)> = vec![
            (
                "not observed yet",
                json!({"observedGeneration": 4, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}),
                in_progress,
            ),
            ("no status at all", json!({}), in_progress),
            (
                "updating",
                json!({"observedGeneration": 5, "replicas": 4, "updatedReplicas": 1, "availableReplicas": 3}),
                in_progress,
            ),
            (
                "old pods terminating",
                json!({"observedGeneration": 5, "replicas": 4, "updatedReplicas": 3, "availableReplicas": 3}),
                in_progress,
            ),
            (
                "new pods not available",
                json!({"observedGeneration": 5, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 2}),
                in_progress,
            ),
            ("complete", ok.clone(), |v| *v == Verdict::Succeeded),
            (
                "a later generation observed and complete",
                json!({"observedGeneration": 7, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}),
                |v| *v == Verdict::Succeeded,
            ),
            (
                "deadline exceeded after the reload",
                json!({"observedGeneration": 5, "replicas": 4, "updatedReplicas": 1, "availableReplicas": 3, "conditions": deadline(AT + 30)}),
                |v| matches!(v, Verdict::Failed(m) if m.starts_with("ProgressDeadlineExceeded: ReplicaSet")),
            ),
            (
                "deadline exceeded in the second of the reload",
                json!({"observedGeneration": 5, "replicas": 4, "updatedReplicas": 1, "availableReplicas": 3, "conditions": deadline(AT)}),
                |v| matches!(v, Verdict::Failed(_)),
            ),
            (
                "a deadline left from before the reload",
                json!({"observedGeneration": 5, "replicas": 4, "updatedReplicas": 1, "availableReplicas": 3, "conditions": deadline(AT - 60)}),
                in_progress,
            ),
            (
                "a deadline reported before the generation is observed is not read yet",
                json!({"observedGeneration": 4, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3, "conditions": deadline(AT + 30)}),
                in_progress,
            ),
        ];
        for (name, status, check) in cases {
            let v = classify(&tracked(5), &deployment(status), AT + 60, None);
            assert!(check(&v), "{name}: {v:?}");
        }
    }

    #[test]
    fn a_reload_that_made_no_generation_waits_for_the_current_one() {
        // The note says 6, but the write changed nothing in the template: the object is at 5.
        let p =
            deployment(json!({"observedGeneration": 5, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}));
        assert_eq!(classify(&tracked(6), &p, AT, None), Verdict::Succeeded);
    }

    #[test]
    fn the_timeout_fails_what_is_still_rolling_and_only_that() {
        let rolling =
            deployment(json!({"observedGeneration": 5, "replicas": 4, "updatedReplicas": 1, "availableReplicas": 3}));
        let done =
            deployment(json!({"observedGeneration": 5, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}));
        let t = tracked(5);
        let limit = Some(Duration::from_secs(600));
        assert!(in_progress(&classify(&t, &rolling, AT + 599, limit)));
        match classify(&t, &rolling, AT + 600, limit) {
            Verdict::Failed(m) => assert!(m.contains("10m") && m.contains("1 of 3 replicas updated"), "{m}"),
            v => panic!("{v:?}"),
        }
        assert!(in_progress(&classify(&t, &rolling, AT + 10_000, None)), "no timeout: waits");
        assert_eq!(classify(&t, &done, AT + 10_000, limit), Verdict::Succeeded);
    }

    fn statefulset(spec: serde_json::Value, status: serde_json::Value) -> Progress {
        let mut s = json!({"replicas": 3, "selector": {}, "template": {}, "serviceName": "web"});
        s.as_object_mut().unwrap().extend(spec.as_object().unwrap().clone());
        let s: StatefulSet =
            serde_json::from_value(json!({"metadata": {"name": "db", "generation": 2}, "spec": s, "status": status}))
                .unwrap();
        Progress::of_statefulset(&s)
    }

    #[test]
    fn statefulsets() {
        let st = |observed: i64, ready: i32, updated: i32, cur: &str, upd: &str| {
            json!({"replicas": 3, "observedGeneration": observed, "readyReplicas": ready, "updatedReplicas": updated,
                   "currentRevision": cur, "updateRevision": upd})
        };
        let cases: Vec<(&str, serde_json::Value, serde_json::Value, Check)> = vec![
            ("not observed", json!({}), st(1, 3, 3, "a", "a"), in_progress),
            ("rolling", json!({}), st(2, 3, 1, "a", "b"), in_progress),
            ("a pod not ready", json!({}), st(2, 2, 3, "b", "b"), in_progress),
            ("all updated, revision not current yet", json!({}), st(2, 3, 3, "a", "b"), in_progress),
            ("complete", json!({}), st(2, 3, 3, "b", "b"), |v| *v == Verdict::Succeeded),
            (
                "partitioned, above the partition updated",
                json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}}),
                st(2, 3, 1, "a", "b"),
                |v| *v == Verdict::Succeeded,
            ),
            (
                "partitioned, not yet",
                json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}}}),
                st(2, 3, 1, "a", "b"),
                in_progress,
            ),
            (
                "OnDelete has no rollout to follow",
                json!({"updateStrategy": {"type": "OnDelete"}}),
                st(2, 3, 0, "a", "b"),
                |v| *v == Verdict::Untracked,
            ),
        ];
        for (name, spec, status, check) in cases {
            let v = classify(&tracked(2), &statefulset(spec, status), AT, None);
            assert!(check(&v), "{name}: {v:?}");
        }
    }

    fn daemonset(strategy: &str, status: serde_json::Value) -> Progress {
        let d: DaemonSet = serde_json::from_value(json!({
            "metadata": {"name": "agent", "generation": 3},
            "spec": {"selector": {}, "template": {}, "updateStrategy": {"type": strategy}},
            "status": status,
        }))
        .unwrap();
        Progress::of_daemonset(&d)
    }

    #[test]
    fn daemonsets() {
        let st = |observed: i64, updated: i32, available: i32| {
            json!({"observedGeneration": observed, "desiredNumberScheduled": 4, "currentNumberScheduled": 4,
                   "numberMisscheduled": 0, "numberReady": available, "updatedNumberScheduled": updated,
                   "numberAvailable": available})
        };
        let cases: Vec<(&str, &str, serde_json::Value, Check)> = vec![
            ("not observed", "RollingUpdate", st(2, 4, 4), in_progress),
            ("rolling", "RollingUpdate", st(3, 2, 4), in_progress),
            ("updated, not all available", "RollingUpdate", st(3, 4, 3), in_progress),
            ("complete", "RollingUpdate", st(3, 4, 4), |v| *v == Verdict::Succeeded),
            ("OnDelete", "OnDelete", st(3, 0, 4), |v| *v == Verdict::Untracked),
        ];
        for (name, strategy, status, check) in cases {
            let v = classify(&tracked(3), &daemonset(strategy, status), AT, None);
            assert!(check(&v), "{name}: {v:?}");
        }
    }

    fn rollout(spec: serde_json::Value, status: serde_json::Value) -> Progress {
        let r: crate::core::kinds::rollout::Rollout = serde_json::from_value(
            json!({"metadata": {"name": "web", "generation": 4}, "spec": spec, "status": status}),
        )
        .unwrap();
        Progress::of_rollout(&r)
    }

    #[test]
    fn argo_rollouts() {
        let spec = json!({"replicas": 3, "template": {"metadata": {}}});
        let st = |observed: &str, phase: &str, message: &str| json!({"observedGeneration": observed, "phase": phase, "message": message});
        let cases: Vec<(&str, serde_json::Value, serde_json::Value, Check)> = vec![
            ("healthy", spec.clone(), st("4", "Healthy", ""), |v| *v == Verdict::Succeeded),
            ("healthy, a later generation observed", spec.clone(), st("5", "Healthy", ""), |v| {
                *v == Verdict::Succeeded
            }),
            ("healthy but the new generation not observed yet", spec.clone(), st("3", "Healthy", ""), in_progress),
            (
                "degraded",
                spec.clone(),
                st("4", "Degraded", "ProgressDeadlineExceeded: ReplicaSet \"web-6d4\" has timed out progressing."),
                |v| matches!(v, Verdict::Failed(m) if m.starts_with("Degraded: ProgressDeadlineExceeded")),
            ),
            (
                "degraded, aborted",
                spec.clone(),
                st("4", "Degraded", "RolloutAborted: metric failed"),
                |v| matches!(v, Verdict::Failed(m) if m.contains("RolloutAborted")),
            ),
            (
                "a degraded phase of the generation before is not read",
                spec.clone(),
                st("3", "Degraded", "x"),
                in_progress,
            ),
            (
                "progressing",
                spec.clone(),
                st("4", "Progressing", "more replicas need to be updated"),
                |v| matches!(v, Verdict::InProgress(m) if m == "Progressing: more replicas need to be updated"),
            ),
            (
                "paused at a canary step",
                spec.clone(),
                st("4", "Paused", "CanaryPauseStep"),
                |v| matches!(v, Verdict::InProgress(m) if m == "paused: CanaryPauseStep"),
            ),
            ("no phase yet", spec.clone(), json!({"observedGeneration": "4"}), in_progress),
            ("no status at all", spec.clone(), json!({}), in_progress),
            (
                "unpausing: controllerPause with no pause condition left",
                spec.clone(),
                json!({"observedGeneration": "4", "phase": "Healthy", "controllerPause": true}),
                in_progress,
            ),
            (
                "paused by the controller, with its pause condition",
                spec.clone(),
                json!({"observedGeneration": "4", "phase": "Paused", "controllerPause": true,
                       "pauseConditions": [{"reason": "CanaryPauseStep", "startTime": ts(AT)}]}),
                in_progress,
            ),
            (
                "an old Rollout's hash in observedGeneration counts as observed",
                spec.clone(),
                st("5d8f9c7b6", "Healthy", ""),
                |v| *v == Verdict::Succeeded,
            ),
            (
                "workloadRef: no template, nothing to follow",
                json!({"workloadRef": {"kind": "Deployment", "name": "web"}}),
                st("4", "Degraded", ""),
                |v| *v == Verdict::Untracked,
            ),
        ];
        for (name, spec, status, check) in cases {
            let v = classify(&tracked(4), &rollout(spec, status), AT, None);
            assert!(check(&v), "{name}: {v:?}");
        }
        // A paused canary never ends by itself: the timeout fails it.
        let paused = rollout(spec, st("4", "Paused", "CanaryPauseStep"));
        let v = classify(&tracked(4), &paused, AT + 600, Some(Duration::from_secs(600)));
        assert!(
            matches!(&v, Verdict::Failed(m) if m.contains("--rollout-timeout") && m.contains("CanaryPauseStep")),
            "{v:?}"
        );
    }

    #[test]
    fn untracked_kinds_are_never_failed_by_the_timeout() {
        let v = classify(&tracked(1), &Progress::Untracked, AT + 100_000, Some(Duration::from_secs(1)));
        assert_eq!(v, Verdict::Untracked);
    }

    #[test]
    fn the_note_round_trips_and_records_its_end() {
        let t = tracked(5);
        let s = t.encode();
        assert_eq!(s, r#"{"cause":"configmap/app@1a2b3c4d5e6f","at":1000000,"generation":5}"#);
        assert_eq!(Tracked::decode(&s).unwrap(), t);
        assert!(t.pending());
        let done = t.ended(Ended::Failed, AT + 70, Some("ProgressDeadlineExceeded".into()));
        assert!(!done.pending());
        assert_eq!(
            done.encode(),
            r#"{"cause":"configmap/app@1a2b3c4d5e6f","at":1000000,"generation":5,"outcome":"failed","ended":1000070,"reason":"ProgressDeadlineExceeded"}"#
        );
        assert_eq!(Tracked::decode(&done.encode()).unwrap(), done);
        assert!(Tracked::decode("{}").is_err());
        assert!(Tracked::decode("not json").is_err());
    }
}
