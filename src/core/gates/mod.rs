//! The safety gates a reload passes before it is written, in this order: the storm brake
//! (`brake`: at most one reload per interval, a flapping workload held), the circuit breaker
//! (`breaker`: no more rollouts for a change whose rollouts failed) and the waves (`waves`: at
//! most N rollouts at once). [`admit`] asks them all and gives one answer; the caller carries
//! it out. Pure: the clock is passed in, and the gates' state (a workload's brake, the wave) is
//! handed over by whoever keeps it.

pub(crate) mod brake;
pub(crate) mod breaker;
pub(crate) mod waves;

use std::time::Duration;

use tokio::time::Instant;

use crate::core::gates::brake::{Brake, BrakeSettings, Check};
use crate::core::gates::breaker::{Gate, Tally};
use crate::core::gates::waves::{Admit, Wave};
use crate::core::model::cause::Cause;
use crate::core::model::workload::WorkloadKey;

/// The gates' settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Limits {
    pub(crate) brake: BrakeSettings,
    /// `--max-concurrent-rollouts` (`None`: unlimited).
    pub(crate) max_concurrent_rollouts: Option<usize>,
    /// `--halt-on-failed-rollouts` (`None`: off).
    pub(crate) halt_on_failed_rollouts: Option<usize>,
}

/// One change of a reload, as the circuit breaker sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ChangeRollouts {
    pub(crate) cause: Cause,
    /// How the rollouts it caused went so far, from the tracking notes of the workloads that
    /// use its source.
    pub(crate) tally: Tally,
    /// The source's release mark (`breaker::RELEASE_ANNOTATION`), if it has one.
    pub(crate) mark: Option<String>,
}

/// A reload the gates are asked about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Request {
    pub(crate) key: WorkloadKey,
    /// Its rollout can be followed: the breaker and the waves apply only then.
    pub(crate) trackable: bool,
    /// Its changes, for the breaker (empty when it is off).
    pub(crate) changes: Vec<ChangeRollouts>,
    /// Its place in the wave's line (`waves::place`).
    pub(crate) place: u64,
}

/// Whether a reload may be written now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Write it now.
    Go,
    /// Reloaded repeatedly: spaced, look again after this long; changes meanwhile fold into
    /// that reload. `newly`: the first time for this wait (report it once).
    Later { after: Duration, newly: bool },
    /// The storm brake holds a flapping workload: look again after this long. `newly`: the
    /// first time (report it once).
    Held { after: Duration, newly: bool },
    /// A rollout of one of its changes failed while others still roll: set aside, out of the
    /// wave's line, until places free.
    Paused,
    /// K rollouts of `cause` failed: held until the source changes again or is released.
    Halted { cause: Cause, tally: Tally },
    /// No place in the wave: it waits in line, looked at again when a place frees.
    Queued { ahead: usize, in_progress: usize },
}

/// The gates' answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Answer {
    pub(crate) admission: Admission,
    /// Holds of the breaker that the sources' release marks lifted (report each once).
    pub(crate) released: Vec<(Cause, Tally)>,
    /// The reload left the wave's line or gave a place back: look at those waiting.
    pub(crate) freed: bool,
}

impl Answer {
    fn of(admission: Admission) -> Answer {
        Answer { admission, released: Vec::new(), freed: false }
    }
}

/// Asks the gates about the reload `r` at `now`, given the workload's brake and the wave.
pub(crate) fn admit(r: &Request, limits: &Limits, brake: &mut Brake, wave: &mut Wave, now: Instant) -> Answer {
    match brake.check(&limits.brake, now) {
        Check::Go => {}
        Check::Wait { at, newly } => {
            return Answer::of(Admission::Later { after: at.saturating_duration_since(now), newly });
        }
        Check::Hold { until, newly } => {
            return Answer::of(Admission::Held { after: until.saturating_duration_since(now), newly });
        }
    }
    let mut answer = Answer::of(Admission::Go);
    if let (Some(limit), true) = (limits.halt_on_failed_rollouts, r.trackable) {
        let mut verdict = Gate::Go;
        let mut halted = None;
        for c in &r.changes {
            let g = breaker::gate(Some(limit), c.tally);
            if g != Gate::Go && breaker::released(c.mark.as_deref(), c.cause.content) {
                // The source says to go on with this change: its rollouts start again.
                if let Gate::Held(t) = g {
                    answer.released.push((c.cause.clone(), t));
                }
                continue;
            }
            if let (Gate::Held(t), None) = (&g, &halted) {
                halted = Some((c.cause.clone(), *t));
            }
            verdict = verdict.and(g);
        }
        match (verdict, halted) {
            (Gate::Go, _) => {}
            (Gate::Pause, _) => {
                wave.wait(&r.key, r.place);
                answer.admission = Admission::Paused;
                return answer;
            }
            (Gate::Held(_), Some((cause, tally))) => {
                answer.freed = wave.leave(&r.key);
                answer.admission = Admission::Halted { cause, tally };
                return answer;
            }
            (Gate::Held(_), None) => unreachable!("a held gate comes from a held change"),
        }
    }
    if let (Some(n), true) = (limits.max_concurrent_rollouts, r.trackable)
        && let Admit::Wait { ahead, in_progress } = wave.admit(Some(n), &r.key, r.place)
    {
        answer.admission = Admission::Queued { ahead, in_progress };
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::kinds::WorkloadKind;

    fn key(n: &str) -> WorkloadKey {
        WorkloadKey { kind: WorkloadKind::Deployment, namespace: "ns".into(), name: n.into() }
    }

    fn limits(waves: Option<usize>, halt: Option<usize>) -> Limits {
        Limits {
            brake: BrakeSettings {
                min_interval: Duration::from_secs(10),
                flap_limit: 3,
                flap_window: Duration::from_secs(600),
                settle: Duration::from_secs(60),
                hold_max: Duration::from_secs(1800),
            },
            max_concurrent_rollouts: waves,
            halt_on_failed_rollouts: halt,
        }
    }

    fn change(failed: usize, in_progress: usize, mark: Option<&str>) -> ChangeRollouts {
        ChangeRollouts {
            cause: Cause::parse("configmap/app@1a2b3c4d5e6f").unwrap(),
            tally: Tally { started: failed + in_progress, in_progress, failed },
            mark: mark.map(String::from),
        }
    }

    fn request(name: &str, changes: Vec<ChangeRollouts>) -> Request {
        Request { key: key(name), trackable: true, changes, place: 7 }
    }

    /// Each gate's answer, in order, from one table: what the brake remembers, what the
    /// breaker counts, how full the wave is.
    #[test]
    fn the_gates_answer_in_order() {
        let t0 = Instant::now();
        let cause = Cause::parse("configmap/app@1a2b3c4d5e6f").unwrap();
        // (case, reloads the brake saw (seconds before now), changes, wave places taken, limits, answer)
        type Row = (&'static str, Vec<u64>, Vec<ChangeRollouts>, usize, Limits, Admission);
        let rows: Vec<Row> = vec![
            ("nothing in the way", vec![], vec![change(0, 0, None)], 0, limits(Some(2), Some(1)), Admission::Go),
            (
                "a third reload, 3 s after the second: spaced",
                vec![30, 3],
                vec![],
                0,
                limits(None, None),
                Admission::Later { after: Duration::from_secs(7), newly: true },
            ),
            (
                "flapping: held until the sources are quiet for twice their 10 s rhythm",
                vec![30, 20, 10],
                vec![],
                0,
                limits(None, None),
                Admission::Held { after: Duration::from_secs(20), newly: true },
            ),
            (
                "a failure while others roll",
                vec![],
                vec![change(1, 2, None)],
                0,
                limits(Some(2), Some(2)),
                Admission::Paused,
            ),
            (
                "K failures",
                vec![],
                vec![change(2, 0, None)],
                0,
                limits(Some(2), Some(2)),
                Admission::Halted { cause: cause.clone(), tally: Tally { started: 2, in_progress: 0, failed: 2 } },
            ),
            (
                "K failures, released by the source",
                vec![],
                vec![change(2, 0, Some("1a2b3c4d5e6f"))],
                0,
                limits(Some(2), Some(2)),
                Admission::Go,
            ),
            ("K failures, breaker off", vec![], vec![change(2, 0, None)], 0, limits(Some(2), None), Admission::Go),
            (
                "the wave is full",
                vec![],
                vec![],
                2,
                limits(Some(2), None),
                Admission::Queued { ahead: 0, in_progress: 2 },
            ),
            ("the wave has a place", vec![], vec![], 1, limits(Some(2), None), Admission::Go),
        ];
        for (case, reloads, changes, taken, limits, want) in rows {
            let mut brake = Brake::default();
            for ago in reloads {
                brake.changed(&limits.brake, t0 - Duration::from_secs(ago));
                brake.reloaded(t0 - Duration::from_secs(ago));
            }
            brake.changed(&limits.brake, t0);
            let mut wave = Wave::default();
            for i in 0..taken {
                wave.seen(&key(&format!("other-{i}")), true);
            }
            let answer = admit(&request("web", changes), &limits, &mut brake, &mut wave, t0);
            assert_eq!(answer.admission, want, "{case}");
            let released = !answer.released.is_empty();
            assert_eq!(released, case.contains("released"), "{case}: {answer:?}");
        }
    }

    #[test]
    fn a_workload_without_a_rollout_to_follow_passes_the_breaker_and_the_waves() {
        let t0 = Instant::now();
        let mut r = request("job", vec![change(5, 0, None)]);
        r.trackable = false;
        let mut wave = Wave::default();
        wave.seen(&key("other"), true);
        let answer = admit(&r, &limits(Some(1), Some(1)), &mut Brake::default(), &mut wave, t0);
        assert_eq!(answer.admission, Admission::Go);
    }

    #[test]
    fn a_halted_reload_leaves_the_line_and_a_paused_one_keeps_its_place() {
        let t0 = Instant::now();
        let mut wave = Wave::default();
        wave.seen(&key("a"), true);
        // Waits in line first: the wave is full.
        let a = admit(&request("web", vec![]), &limits(Some(1), Some(1)), &mut Brake::default(), &mut wave, t0);
        assert!(matches!(a.admission, Admission::Queued { .. }));
        assert_eq!(wave.waiting_count(), 1);
        let a = admit(
            &request("web", vec![change(1, 1, None)]),
            &limits(Some(1), Some(2)),
            &mut Brake::default(),
            &mut wave,
            t0,
        );
        assert_eq!(a.admission, Admission::Paused);
        assert_eq!(wave.waiting_count(), 1, "set aside, still counted as waiting");
        let a = admit(
            &request("web", vec![change(2, 0, None)]),
            &limits(Some(1), Some(2)),
            &mut Brake::default(),
            &mut wave,
            t0,
        );
        assert!(matches!(a.admission, Admission::Halted { .. }));
        assert!(a.freed, "it left the line");
        assert_eq!(wave.waiting_count(), 0);
    }
}
