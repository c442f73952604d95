//! Rollout waves (`--max-concurrent-rollouts N`): at most N rollouts started by reloads in
//! progress at once, cluster-wide; the other reloads wait, oldest change first, and start as
//! earlier rollouts end. What is in progress is derived from the workloads themselves: a
//! workload whose tracking note (`core::model::note`) has no outcome yet holds a place. So a
//! restarted controller, or a new leader, counts exactly the rollouts still under way once its
//! watches have listed, and never starts more than N. Pure: the runtime keeps the few
//! in-memory parts (places taken by writes the watch has not delivered yet, the waiting line).

use std::collections::{BTreeSet, HashSet};

use crate::core::model::workload::WorkloadKey;

/// A reload waiting for a place: ordered by its change (`place`), then by workload.
pub(crate) type Waiting = (u64, WorkloadKey);

/// The place in line of a reload applying changes whose sources' content last changed at the
/// resourceVersions `rvs` (`None`: not known, as for a deletion, which goes last): its oldest
/// change. A restarted controller or a new leader reads the same resourceVersions from the
/// sources it lists, so the line keeps its order across them.
pub(crate) fn place(rvs: impl IntoIterator<Item = Option<u64>>) -> u64 {
    rvs.into_iter().map(|r| r.unwrap_or(u64::MAX)).min().unwrap_or(u64::MAX)
}

/// The state of the wave the planner reads.
#[derive(Debug, Default)]
pub(crate) struct Wave {
    /// Workloads whose last reload's rollout has no outcome yet (from the index).
    pub(crate) in_progress: HashSet<WorkloadKey>,
    /// Reloads written whose note the watch has not delivered yet.
    pub(crate) reserved: HashSet<WorkloadKey>,
    /// Reloads waiting for a place, oldest change first.
    pub(crate) waiting: BTreeSet<Waiting>,
    /// Reloads the circuit breaker pauses (a rollout of their change failed and others still
    /// roll): out of the line, so that they hold up no other change, and looked at again
    /// whenever places free; they keep the tick of their change.
    pub(crate) paused: BTreeSet<Waiting>,
}

/// The planner's answer for one reload.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Start it: it has taken a place.
    Go,
    /// Wait: `ahead` older reloads wait too; `in_progress` places are taken.
    Wait { ahead: usize, in_progress: usize },
}

impl Wave {
    /// Places taken: rollouts in progress and reloads written but not yet seen.
    pub(crate) fn taken(&self) -> usize {
        self.in_progress.len() + self.reserved.iter().filter(|k| !self.in_progress.contains(*k)).count()
    }

    /// Asks for a place for the reload of `key`, whose change was first seen at `tick`.
    /// `limit`: `None` is unlimited. A workload whose own rollout is still in progress takes
    /// no second place (the reload supersedes it). Admitted reloads take a place (`reserved`)
    /// until their note is seen in progress; the others join the waiting line.
    pub(crate) fn admit(&mut self, limit: Option<usize>, key: &WorkloadKey, tick: u64) -> Admit {
        let Some(limit) = limit else {
            return Admit::Go;
        };
        let own = self.in_progress.contains(key) || self.reserved.contains(key);
        // Its place in the line: the older reloads waiting go first (a paused one is back in
        // line at the place of its change).
        let tick = self.waiting.iter().chain(&self.paused).find(|(_, k)| k == key).map_or(tick, |(t, _)| *t);
        self.paused.retain(|(_, k)| k != key);
        let ahead = self.waiting.iter().filter(|(t, k)| (*t, k) < (tick, key)).count();
        let free = limit.saturating_sub(self.taken());
        if own || ahead < free {
            self.waiting.retain(|(_, k)| k != key);
            self.reserved.insert(key.clone());
            return Admit::Go;
        }
        self.waiting.insert((tick, key.clone()));
        Admit::Wait { ahead, in_progress: self.taken() }
    }

    /// Sets a reload aside without a place (the breaker pauses its change): out of the line,
    /// looked at again when places free.
    pub(crate) fn wait(&mut self, key: &WorkloadKey, tick: u64) {
        let tick = self.waiting.iter().chain(&self.paused).find(|(_, k)| k == key).map_or(tick, |(t, _)| *t);
        self.waiting.retain(|(_, k)| k != key);
        self.paused.insert((tick, key.clone()));
    }

    /// Reloads waiting for a place or paused.
    pub(crate) fn waiting_count(&self) -> usize {
        self.waiting.len() + self.paused.len()
    }

    /// The workload's note was seen: in progress (`true`) or ended or gone (`false`). Its
    /// reservation, if any, has served.
    pub(crate) fn seen(&mut self, key: &WorkloadKey, in_progress: bool) {
        if in_progress {
            self.reserved.remove(key);
            self.in_progress.insert(key.clone());
        } else {
            self.in_progress.remove(key);
        }
    }

    /// A reload that wrote nothing after all (a conflict, an error, or nothing to roll): its
    /// place is given back. Whether it held one.
    pub(crate) fn release(&mut self, key: &WorkloadKey) -> bool {
        self.reserved.remove(key)
    }

    /// The workload no longer waits (nothing to reload any more, or deleted). Whether it was
    /// in line or held a place.
    pub(crate) fn leave(&mut self, key: &WorkloadKey) -> bool {
        let before = self.waiting_count();
        self.waiting.retain(|(_, k)| k != key);
        self.paused.retain(|(_, k)| k != key);
        self.reserved.remove(key) || self.waiting_count() != before
    }

    /// The reloads to look at again now that places may be free: the oldest waiting, as many
    /// as there are free places (they stay in line until they are admitted), and, when a place
    /// is free, every paused one (the breaker decides again whether it may go).
    pub(crate) fn next(&self, limit: Option<usize>) -> Vec<WorkloadKey> {
        let free = limit.map_or(self.waiting.len(), |l| l.saturating_sub(self.taken()));
        let paused = self.paused.iter().take(if free > 0 { self.paused.len() } else { 0 });
        self.waiting.iter().take(free).chain(paused).map(|(_, k)| k.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::kinds::WorkloadKind;

    fn k(name: &str) -> WorkloadKey {
        WorkloadKey { kind: WorkloadKind::Deployment, namespace: "ns".into(), name: name.into() }
    }

    #[test]
    fn a_reload_takes_the_place_of_its_oldest_change() {
        let cases: [(&[Option<u64>], u64); 5] = [
            (&[Some(120)], 120),
            (&[Some(120), Some(80), Some(300)], 80),
            (&[Some(120), None], 120),
            (&[None], u64::MAX),
            (&[], u64::MAX),
        ];
        for (rvs, want) in cases {
            assert_eq!(place(rvs.iter().copied()), want, "{rvs:?}");
        }
    }

    #[test]
    fn unlimited_admits_everything_and_keeps_nothing() {
        let mut w = Wave::default();
        for i in 0..100 {
            assert_eq!(w.admit(None, &k(&format!("w{i}")), i), Admit::Go);
        }
        assert_eq!(w.taken(), 0);
        assert!(w.waiting.is_empty());
    }

    #[test]
    fn at_most_n_in_progress_the_rest_wait_oldest_first() {
        let mut w = Wave::default();
        let n = Some(2);
        // Five reloads arrive, not in the order of their changes.
        let arrivals = [("c", 3), ("a", 1), ("e", 5), ("b", 2), ("d", 4)];
        let mut went = vec![];
        for (name, tick) in arrivals {
            if w.admit(n, &k(name), tick) == Admit::Go {
                went.push(name);
            }
        }
        assert_eq!(went, ["c", "a"], "the first two to ask take the two free places");
        assert_eq!(w.taken(), 2);
        assert_eq!(w.next(n), Vec::<WorkloadKey>::new(), "no free place");
        // Their notes are seen in progress: still two places taken.
        w.seen(&k("c"), true);
        w.seen(&k("a"), true);
        assert_eq!(w.taken(), 2);
        // One ends: the oldest waiting change is next, and a younger one asking first waits.
        w.seen(&k("a"), false);
        assert_eq!(w.next(n), vec![k("b")]);
        assert!(matches!(w.admit(n, &k("d"), 4), Admit::Wait { ahead: 1, in_progress: 1 }));
        assert_eq!(w.admit(n, &k("b"), 2), Admit::Go);
        assert_eq!(w.taken(), 2);
        assert!(matches!(w.admit(n, &k("d"), 4), Admit::Wait { ahead: 0, in_progress: 2 }));
    }

    #[test]
    fn a_restart_counts_what_the_workloads_say_and_never_exceeds_n() {
        // A new controller: the index holds three rollouts in progress (their notes), the
        // limit is two; nothing starts until two of them end.
        let mut w = Wave::default();
        for name in ["a", "b", "c"] {
            w.seen(&k(name), true);
        }
        let n = Some(2);
        assert!(matches!(w.admit(n, &k("x"), 10), Admit::Wait { in_progress: 3, .. }));
        w.seen(&k("a"), false);
        assert!(matches!(w.admit(n, &k("x"), 10), Admit::Wait { .. }));
        w.seen(&k("b"), false);
        assert_eq!(w.next(n), vec![k("x")]);
        assert_eq!(w.admit(n, &k("x"), 10), Admit::Go);
    }

    #[test]
    fn a_workload_rolling_already_takes_no_second_place() {
        let mut w = Wave::default();
        let n = Some(1);
        w.seen(&k("a"), true);
        assert_eq!(w.admit(n, &k("a"), 7), Admit::Go, "a second change of a: supersedes its own rollout");
        assert_eq!(w.taken(), 1);
        assert!(matches!(w.admit(n, &k("b"), 8), Admit::Wait { .. }));
    }

    #[test]
    fn places_given_back_and_reloads_that_leave() {
        let mut w = Wave::default();
        let n = Some(1);
        assert_eq!(w.admit(n, &k("a"), 1), Admit::Go);
        assert!(matches!(w.admit(n, &k("b"), 2), Admit::Wait { .. }));
        assert!(matches!(w.admit(n, &k("c"), 3), Admit::Wait { .. }));
        // a's write was refused: its place is free again, for b.
        assert!(w.release(&k("a")));
        assert!(!w.release(&k("a")), "given back once");
        assert_eq!(w.next(n), vec![k("b")]);
        // b's source was reverted meanwhile: it leaves the line, c is next.
        assert!(w.leave(&k("b")));
        assert!(!w.leave(&k("b")), "gone already");
        assert_eq!(w.next(n), vec![k("c")]);
        assert_eq!(w.admit(n, &k("c"), 3), Admit::Go);
        assert!(w.waiting.is_empty());
    }

    #[test]
    fn a_paused_reload_keeps_the_place_of_its_change_and_holds_up_no_other() {
        let mut w = Wave::default();
        let n = Some(1);
        w.seen(&k("a"), true);
        w.wait(&k("b"), 1);
        w.wait(&k("b"), 5);
        assert_eq!(w.waiting_count(), 1);
        // c (another change) is not behind the paused b.
        assert!(matches!(w.admit(n, &k("c"), 2), Admit::Wait { ahead: 0, .. }));
        w.seen(&k("a"), false);
        assert_eq!(w.next(n), vec![k("c"), k("b")], "c in line, and b looked at again");
        // The breaker still pauses b: c takes the place.
        w.wait(&k("b"), 9);
        assert_eq!(w.admit(n, &k("c"), 2), Admit::Go);
        assert_eq!(w.next(n), Vec::<WorkloadKey>::new(), "no place free: nothing to look at");
        // Its change may go again: b is back in line at its first tick, ahead of a younger d.
        w.seen(&k("c"), true);
        assert!(matches!(w.admit(n, &k("d"), 3), Admit::Wait { ahead: 0, .. }));
        assert!(matches!(w.admit(n, &k("b"), 9), Admit::Wait { ahead: 0, .. }));
        w.seen(&k("c"), false);
        assert_eq!(w.next(n), vec![k("b")], "b (tick 1) before d (tick 3)");
        assert!(matches!(w.admit(n, &k("d"), 3), Admit::Wait { ahead: 1, .. }));
        assert_eq!(w.admit(n, &k("b"), 9), Admit::Go);
    }

    #[test]
    fn a_paused_reload_that_leaves_is_gone() {
        let mut w = Wave::default();
        w.wait(&k("b"), 1);
        assert!(w.leave(&k("b")));
        assert_eq!(w.waiting_count(), 0);
        assert!(!w.leave(&k("b")));
    }

    #[test]
    fn a_reservation_is_not_counted_twice_once_seen() {
        let mut w = Wave::default();
        let n = Some(3);
        assert_eq!(w.admit(n, &k("a"), 1), Admit::Go);
        w.seen(&k("a"), true);
        assert_eq!(w.taken(), 1);
        assert!(w.reserved.is_empty());
        // The note seen ended before the reservation was cleared by a later write.
        w.reserved.insert(k("b"));
        w.in_progress.insert(k("b"));
        assert_eq!(w.taken(), 2);
    }
}
