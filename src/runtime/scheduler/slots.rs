//! Per-workload state that lives only in memory: retry counts, when the oldest change not yet
//! applied was seen, the storm brake, and the turn reserved for an adoption write.
//! One map under one lock; an entry is dropped when its workload is deleted, and as soon as it
//! holds nothing, so the map is never larger than the set of workloads with something pending.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::core::gates::brake::{Brake, BrakeSettings};
use crate::core::model::workload::WorkloadKey;
use crate::runtime::scheduler::pacer::Pacer;
use crate::runtime::scheduler::queue;

#[derive(Debug, Default)]
struct Slot {
    failures: u32,
    /// When the retry after the last counted failure is due.
    retry_at: Option<Instant>,
    conflicts: u32,
    first_change: Option<Instant>,
    brake: Brake,
    /// The turn reserved for its adoption write (`--adoption-writes-per-second`).
    adoption_turn: Option<Instant>,
}

impl Slot {
    fn is_empty(&self) -> bool {
        self.failures == 0
            && self.retry_at.is_none()
            && self.conflicts == 0
            && self.first_change.is_none()
            && self.brake.is_idle()
            && self.adoption_turn.is_none()
    }
}

#[derive(Debug, Default)]
pub(crate) struct Slots {
    map: Mutex<HashMap<WorkloadKey, Slot>>,
}

impl Slots {
    /// Runs `f` on the slot of `key` (created empty), and drops the slot if it is left empty.
    fn with<R>(&self, key: &WorkloadKey, f: impl FnOnce(&mut Slot) -> R) -> R {
        let mut map = self.map.lock().expect("slots lock");
        let slot = map.entry(key.clone()).or_default();
        let r = f(slot);
        if slot.is_empty() {
            map.remove(key);
        }
        r
    }

    /// A source of `key` changed at `now`.
    pub(crate) fn changed(&self, key: &WorkloadKey, brake: &BrakeSettings, now: Instant) {
        self.with(key, |s| {
            s.first_change.get_or_insert(now);
            s.brake.changed(brake, now);
        });
    }

    /// The time since the oldest change not yet applied, consumed.
    pub(crate) fn take_change_age(&self, key: &WorkloadKey) -> Option<Duration> {
        self.with(key, |s| s.first_change.take().map(|t| t.elapsed()))
    }

    /// A reconcile finished: retry counts start over.
    pub(crate) fn settled(&self, key: &WorkloadKey) {
        self.with(key, |s| {
            s.failures = 0;
            s.retry_at = None;
            s.conflicts = 0;
        });
    }

    /// A write met a 409: how long until the workload is looked at again.
    pub(crate) fn conflicted(&self, key: &WorkloadKey) -> Duration {
        self.with(key, |s| {
            s.conflicts += 1;
            queue::conflict_backoff(s.conflicts)
        })
    }

    /// A reconcile failed at `now`: how long until it is retried.
    ///
    /// Only a failure at or after the scheduled retry raises the backoff. An attempt that a
    /// new change started earlier keeps the schedule: otherwise, while writes are refused,
    /// a busy source would push its workloads to the longest backoff within seconds, and
    /// they would wait it out after the refusal ends.
    pub(crate) fn failed(&self, key: &WorkloadKey, now: Instant) -> Duration {
        self.with(key, |s| match s.retry_at {
            Some(at) if now < at => at - now,
            _ => {
                s.failures += 1;
                let delay = queue::backoff(s.failures);
                s.retry_at = Some(now + delay);
                delay
            }
        })
    }

    /// Runs `f` on the storm brake of `key`.
    pub(crate) fn with_brake<R>(&self, key: &WorkloadKey, f: impl FnOnce(&mut Brake) -> R) -> R {
        self.with(key, |s| f(&mut s.brake))
    }

    pub(crate) fn brake_reloaded(&self, key: &WorkloadKey, now: Instant) {
        self.with(key, |s| s.brake.reloaded(now));
    }

    /// Whether the adoption write of `key` may go at `now`: `None` if so (its turn, reserved
    /// from `pacer` on first ask, has come, and is used up), else how long until it comes.
    pub(crate) fn adoption_turn(&self, key: &WorkloadKey, pacer: &Pacer, now: Instant) -> Option<Duration> {
        self.with(key, |s| {
            let turn = *s.adoption_turn.get_or_insert_with(|| pacer.reserve(now));
            if turn <= now {
                s.adoption_turn = None;
                None
            } else {
                Some(turn - now)
            }
        })
    }

    /// `key` no longer waits to be adopted (it has a record, or something to roll): its turn
    /// is given up.
    pub(crate) fn drop_adoption_turn(&self, key: &WorkloadKey) {
        let mut map = self.map.lock().expect("slots lock");
        if let Some(s) = map.get_mut(key)
            && s.adoption_turn.take().is_some()
            && s.is_empty()
        {
            map.remove(key);
        }
    }

    /// Workloads whose adoption write waits for its turn.
    pub(crate) fn adoptions_waiting(&self) -> usize {
        self.map.lock().expect("slots lock").values().filter(|s| s.adoption_turn.is_some()).count()
    }

    /// The workload is gone.
    pub(crate) fn forget(&self, key: &WorkloadKey) {
        self.map.lock().expect("slots lock").remove(key);
    }

    pub(crate) fn len(&self) -> usize {
        self.map.lock().expect("slots lock").len()
    }

    /// Workloads the storm brake holds.
    pub(crate) fn held(&self) -> usize {
        self.map.lock().expect("slots lock").values().filter(|s| s.brake.is_held()).count()
    }

    /// Workloads whose reload waits for the storm brake's spacing at `now`.
    pub(crate) fn deferred(&self, now: Instant) -> usize {
        self.map.lock().expect("slots lock").values().filter(|s| s.brake.is_deferred(now)).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::kinds::WorkloadKind;

    fn key(n: &str) -> WorkloadKey {
        WorkloadKey { kind: WorkloadKind::Deployment, namespace: "ns".into(), name: n.into() }
    }

    #[tokio::test(start_paused = true)]
    async fn slots_hold_only_what_is_pending() {
        let slots = Slots::default();
        let (a, b) = (key("a"), key("b"));
        let now = Instant::now();
        slots.changed(
            &a,
            &crate::core::gates::brake::BrakeSettings {
                min_interval: Duration::ZERO,
                flap_limit: 0,
                flap_window: Duration::ZERO,
                settle: Duration::ZERO,
                hold_max: Duration::ZERO,
            },
            now,
        );
        assert_eq!(slots.len(), 1);
        assert!(slots.take_change_age(&a).is_some());
        assert_eq!(slots.len(), 0, "nothing pending: dropped");
        assert_eq!(slots.conflicted(&b), Duration::from_millis(50));
        assert_eq!(slots.conflicted(&b), Duration::from_millis(100));
        slots.settled(&b);
        assert_eq!(slots.len(), 0, "settled: dropped");
        slots.brake_reloaded(&a, now);
        assert_eq!(slots.len(), 1, "a recent reload is kept for the brake");
        assert_eq!(slots.failed(&b, now), Duration::from_secs(2));
        slots.settled(&b);
        slots.forget(&a);
        assert_eq!(slots.len(), 0, "a deleted workload leaves nothing");
    }

    #[tokio::test(start_paused = true)]
    async fn only_failures_of_scheduled_retries_raise_the_backoff() {
        let slots = Slots::default();
        let a = key("a");
        let t0 = Instant::now();
        assert_eq!(slots.failed(&a, t0), Duration::from_secs(2));
        // New changes run it again before the retry is due and fail: the schedule stands.
        for ms in [100, 700, 1900] {
            let now = t0 + Duration::from_millis(ms);
            assert_eq!(slots.failed(&a, now), Duration::from_millis(2000 - ms));
        }
        // The retry itself fails: the backoff doubles.
        assert_eq!(slots.failed(&a, t0 + Duration::from_secs(2)), Duration::from_secs(4));
        slots.settled(&a);
        assert_eq!(slots.len(), 0, "a success starts over");
        assert_eq!(slots.failed(&a, t0 + Duration::from_secs(3)), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn an_adoption_waits_for_its_own_turn_once() {
        let (slots, pacer) = (Slots::default(), Pacer::new(10));
        let (a, b, c) = (key("a"), key("b"), key("c"));
        let t0 = Instant::now();
        assert_eq!(slots.adoption_turn(&a, &pacer, t0), None, "the first goes at once");
        assert_eq!(slots.len(), 0, "and keeps nothing");
        assert_eq!(slots.adoption_turn(&b, &pacer, t0), Some(Duration::from_millis(100)));
        assert_eq!(slots.adoption_turn(&c, &pacer, t0), Some(Duration::from_millis(200)));
        assert_eq!(slots.adoptions_waiting(), 2);
        // Looked at again early (another event): the same turn, not a new one.
        tokio::time::advance(Duration::from_millis(50)).await;
        assert_eq!(slots.adoption_turn(&b, &pacer, Instant::now()), Some(Duration::from_millis(50)));
        tokio::time::advance(Duration::from_millis(50)).await;
        assert_eq!(slots.adoption_turn(&b, &pacer, Instant::now()), None, "its turn");
        assert_eq!(slots.adoptions_waiting(), 1);
        // A workload that needs no adoption any more gives its turn up.
        slots.drop_adoption_turn(&c);
        assert_eq!((slots.adoptions_waiting(), slots.len()), (0, 0));
        // A deleted one too.
        assert!(slots.adoption_turn(&c, &pacer, Instant::now()).is_some());
        slots.forget(&c);
        assert_eq!(slots.len(), 0);
    }
}
