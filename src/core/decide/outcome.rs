//! How the rollout a reload started stands: the workload's own status, as its kind summarises
//! it (`kinds::Progress`), read against the tracking note the reload wrote
//! (`model::note::Tracked`). Pure: times are passed in.

use std::time::Duration;

use crate::core::kinds::{Progress, RolloutStatus};
use crate::core::model::note::{Ended, Tracked};

/// Where a tracked rollout stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Still rolling; why, in words (for `reloader explain` and logs).
    InProgress(String),
    Succeeded,
    Failed(String),
    /// Nothing to follow (the kind or strategy has no rollout status).
    Untracked,
}

/// Classifies the rollout `t` started from the workload's status `p` at `now` (Unix seconds).
/// `timeout` (`--rollout-timeout`) fails a rollout that has not succeeded that long after the
/// reload, whatever the kind; a kind may also report a failure of its own (a Deployment's
/// `progressDeadlineSeconds`, an Argo Rollout's `Degraded`).
pub(crate) fn classify(t: &Tracked, p: &Progress, now: i64, timeout: Option<Duration>) -> Stage {
    let stage = match p {
        Progress::Untracked => Stage::Untracked,
        Progress::Status(s) => stage(t, s),
    };
    match (&stage, timeout) {
        (Stage::InProgress(why), Some(limit)) if now.saturating_sub(t.at) >= limit.as_secs() as i64 => Stage::Failed(
            format!("not available {} after the reload (--rollout-timeout): {why}", humantime::format_duration(limit)),
        ),
        _ => stage,
    }
}

/// How the rollout of the note `t` (as the watch delivers it again) is known to have ended
/// without a write: a success is not written (the workload's status is its record), so it is
/// carried in memory. `before`: the note this process held for the workload, `None` at first
/// sight. At first sight, a rollout that ended while no controller followed it is taken as
/// ended, unreported: a success its status shows, or a failure after a later change of the
/// spec (the generation moved past the reload's), which cannot be blamed on the reload.
/// `None`: nothing known, the note stays pending.
pub(crate) fn carried(t: &Tracked, before: Option<Option<&Tracked>>, p: &Progress) -> Option<Tracked> {
    if !t.pending() {
        return None;
    }
    match before {
        Some(old) => old.filter(|o| !o.pending() && o.same_reload(t)).cloned(),
        None => {
            let Progress::Status(s) = p else { return None };
            let ended = match stage(t, s) {
                Stage::Succeeded => Ended::Succeeded,
                Stage::Failed(_) if s.generation > t.generation => Ended::Superseded,
                _ => return None,
            };
            Some(Tracked { outcome: Some(ended), ..t.clone() })
        }
    }
}

fn stage(t: &Tracked, s: &RolloutStatus) -> Stage {
    // The status must describe the generation the reload made (or the object's own, if the
    // write turned out not to change the template and so made none).
    let want = t.generation.min(s.generation);
    if s.observed_generation.is_some_and(|o| o < want) {
        return Stage::InProgress(format!("waiting for {} to observe generation {want}", s.controller));
    }
    // A failure reported before this reload (a condition left from an earlier rollout) says
    // nothing about this one.
    if let Some((_, why)) = s.failed.as_ref().filter(|(when, _)| when.is_none_or(|w| w >= t.at)) {
        return Stage::Failed(why.clone());
    }
    match &s.rolling {
        Some(why) => Stage::InProgress(why.clone()),
        None => Stage::Succeeded,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::kinds::Kind;
    use crate::core::model::cause::Causes;
    use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
    use serde_json::json;

    const AT: i64 = 1_000_000;

    fn tracked(generation: i64) -> Tracked {
        Tracked {
            cause: Causes::parse("configmap/app@1a2b3c4d5e6f").unwrap(),
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
        d.progress()
    }

    fn deadline(at: i64) -> serde_json::Value {
        json!([{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                "message": "ReplicaSet \"web-1\" has timed out progressing.",
                "lastUpdateTime": ts(at), "lastTransitionTime": ts(at)}])
    }

    /// What a case expects of the verdict.
    type Check = fn(&Stage) -> bool;

    fn in_progress(v: &Stage) -> bool {
        matches!(v, Stage::InProgress(_))
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
            ("complete", ok.clone(), |v| *v == Stage::Succeeded),
            (
                "a later generation observed and complete",
                json!({"observedGeneration": 7, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}),
                |v| *v == Stage::Succeeded,
            ),
            (
                "deadline exceeded after the reload",
                json!({"observedGeneration": 5, "replicas": 4, "updatedReplicas": 1, "availableReplicas": 3, "conditions": deadline(AT + 30)}),
                |v| matches!(v, Stage::Failed(m) if m.starts_with("ProgressDeadlineExceeded: ReplicaSet")),
            ),
            (
                "deadline exceeded in the second of the reload",
                json!({"observedGeneration": 5, "replicas": 4, "updatedReplicas": 1, "availableReplicas": 3, "conditions": deadline(AT)}),
                |v| matches!(v, Stage::Failed(_)),
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
        assert_eq!(classify(&tracked(6), &p, AT, None), Stage::Succeeded);
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
            Stage::Failed(m) => assert!(m.contains("10m") && m.contains("1 of 3 replicas updated"), "{m}"),
            v => panic!("{v:?}"),
        }
        assert!(in_progress(&classify(&t, &rolling, AT + 10_000, None)), "no timeout: waits");
        assert_eq!(classify(&t, &done, AT + 10_000, limit), Stage::Succeeded);
    }

    fn statefulset(spec: serde_json::Value, status: serde_json::Value) -> Progress {
        let mut s = json!({"replicas": 3, "selector": {}, "template": {}, "serviceName": "web"});
        s.as_object_mut().unwrap().extend(spec.as_object().unwrap().clone());
        let s: StatefulSet =
            serde_json::from_value(json!({"metadata": {"name": "db", "generation": 2}, "spec": s, "status": status}))
                .unwrap();
        s.progress()
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
            ("complete", json!({}), st(2, 3, 3, "b", "b"), |v| *v == Stage::Succeeded),
            (
                "partitioned, above the partition updated",
                json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}}),
                st(2, 3, 1, "a", "b"),
                |v| *v == Stage::Succeeded,
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
                |v| *v == Stage::Untracked,
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
        d.progress()
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
            ("complete", "RollingUpdate", st(3, 4, 4), |v| *v == Stage::Succeeded),
            ("OnDelete", "OnDelete", st(3, 0, 4), |v| *v == Stage::Untracked),
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
        r.progress()
    }

    #[test]
    fn argo_rollouts() {
        let spec = json!({"replicas": 3, "template": {"metadata": {}}});
        let st = |observed: &str, phase: &str, message: &str| json!({"observedGeneration": observed, "phase": phase, "message": message});
        let cases: Vec<(&str, serde_json::Value, serde_json::Value, Check)> = vec![
            ("healthy", spec.clone(), st("4", "Healthy", ""), |v| *v == Stage::Succeeded),
            ("healthy, a later generation observed", spec.clone(), st("5", "Healthy", ""), |v| *v == Stage::Succeeded),
            ("healthy but the new generation not observed yet", spec.clone(), st("3", "Healthy", ""), in_progress),
            (
                "degraded",
                spec.clone(),
                st("4", "Degraded", "ProgressDeadlineExceeded: ReplicaSet \"web-6d4\" has timed out progressing."),
                |v| matches!(v, Stage::Failed(m) if m.starts_with("Degraded: ProgressDeadlineExceeded")),
            ),
            (
                "degraded, aborted",
                spec.clone(),
                st("4", "Degraded", "RolloutAborted: metric failed"),
                |v| matches!(v, Stage::Failed(m) if m.contains("RolloutAborted")),
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
                |v| matches!(v, Stage::InProgress(m) if m == "Progressing: more replicas need to be updated"),
            ),
            (
                "paused at a canary step",
                spec.clone(),
                st("4", "Paused", "CanaryPauseStep"),
                |v| matches!(v, Stage::InProgress(m) if m == "paused: CanaryPauseStep"),
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
                |v| *v == Stage::Succeeded,
            ),
            (
                "workloadRef: no template, nothing to follow",
                json!({"workloadRef": {"kind": "Deployment", "name": "web"}}),
                st("4", "Degraded", ""),
                |v| *v == Stage::Untracked,
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
            matches!(&v, Stage::Failed(m) if m.contains("--rollout-timeout") && m.contains("CanaryPauseStep")),
            "{v:?}"
        );
    }

    #[test]
    fn untracked_kinds_are_never_failed_by_the_timeout() {
        let v = classify(&tracked(1), &Progress::Untracked, AT + 100_000, Some(Duration::from_secs(1)));
        assert_eq!(v, Stage::Untracked);
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

    #[test]
    fn what_is_known_of_an_unwritten_end() {
        let ok = json!({"observedGeneration": 5, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3});
        let rolling = json!({"observedGeneration": 5, "replicas": 4, "updatedReplicas": 1, "availableReplicas": 3});
        let failed = json!({"observedGeneration": 5, "replicas": 4, "updatedReplicas": 1, "availableReplicas": 3,
                            "conditions": deadline(AT + 30)});
        let t = tracked(5);
        let older = Tracked { at: AT - 100, ..tracked(4) };
        let succeeded = t.ended(Ended::Succeeded, AT + 20, None);
        let failed_note = t.ended(Ended::Failed, AT + 20, Some("x".into()));
        let older_ended = older.ended(Ended::Succeeded, AT, None);
        let end = |o: Option<Tracked>| o.map(|t| t.outcome);
        /// A case: its name, the note delivered, the note held before (`None`: first sight),
        /// the status, and the outcome expected to be known (`None`: the note stays pending).
        type Case<'a> = (&'a str, &'a Tracked, Option<Option<&'a Tracked>>, serde_json::Value, Option<Option<Ended>>);
        let cases: Vec<Case> = vec![
            ("seen succeeded before: still", &t, Some(Some(&succeeded)), rolling.clone(), Some(Some(Ended::Succeeded))),
            ("seen pending before: the status decides later", &t, Some(Some(&t)), ok.clone(), None),
            ("the end of another reload is not carried", &t, Some(Some(&older_ended)), ok.clone(), None),
            ("seen without a note before", &t, Some(None), ok.clone(), None),
            ("a written outcome needs nothing carried", &failed_note, Some(Some(&succeeded)), ok.clone(), None),
            ("first sight, complete: succeeded, unreported", &t, None, ok.clone(), Some(Some(Ended::Succeeded))),
            ("first sight, rolling: followed", &t, None, rolling.clone(), None),
            ("first sight, failed on the reload's generation: followed (reported)", &t, None, failed.clone(), None),
            (
                "first sight, failed after a later change of the spec: not blamed",
                &older,
                None,
                failed,
                Some(Some(Ended::Superseded)),
            ),
        ];
        for (name, note, before, status, want) in cases {
            assert_eq!(end(carried(note, before, &deployment(status))), want, "{name}");
        }
        assert_eq!(carried(&t, None, &Progress::Untracked), None, "untracked kinds have nothing to carry");
        // What is carried is the note as delivered, with the outcome known before.
        assert_eq!(carried(&t, Some(Some(&succeeded)), &deployment(ok)), Some(succeeded));
    }
}
