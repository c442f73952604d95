//! The scheduler: when each workload is looked at, and the only way into the work queue (every
//! add is counted in `reloader_workqueue_adds`). It owns the queue (`queue`: per-key deadlines,
//! the debounce), the per-workload slots (`slots`: retry counts, the oldest pending change, the
//! storm brake, adoption turns), the pace of adoption writes (`pacer`) and the wave; it hands
//! the gates their state (`core::gates::admit`) and keeps the wave's gauges.

pub(crate) mod pacer;
pub(crate) mod queue;
pub(crate) mod slots;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::core::gates::waves::Wave;
use crate::core::gates::{self, Answer, Limits, Request};
use crate::core::model::workload::WorkloadKey;
use crate::runtime::reporter::metrics::Metrics;
use crate::runtime::scheduler::pacer::Pacer;
use crate::runtime::scheduler::queue::WorkQueue;
use crate::runtime::scheduler::slots::Slots;

/// How a reconcile ended, for the retry policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Finished {
    /// Done: its retry counts start over.
    Done,
    /// A write met a 409: the watch delivers the newer object; look again soon.
    Stale,
    /// It failed: retry with backoff.
    Failed,
}

pub(crate) struct Scheduler {
    queue: WorkQueue<WorkloadKey>,
    slots: Slots,
    /// `--adoption-writes-per-second`.
    adoption: Pacer,
    /// `--max-concurrent-rollouts`: the rollouts in progress and the reloads waiting.
    wave: Mutex<Wave>,
    limits: Limits,
    /// `--debounce-quiet` and `--debounce`.
    quiet: Duration,
    cap: Duration,
    metrics: Arc<Metrics>,
}

/// The quiet window of a change written by a batch tool (`kubectl apply`, Helm, Argo CD,
/// Flux): its writes of one run come a few hundred milliseconds apart, and more than the
/// 400 ms default on a loaded API server, where a window that closes between two of them makes
/// a second rollout. Within `--debounce` still, and none where `--debounce-quiet` is 0.
const BATCH_QUIET: Duration = Duration::from_millis(1500);

/// How long a change waits for more: `--debounce-quiet`, or for a batch tool's change at
/// least `BATCH_QUIET`, never beyond `--debounce`.
fn quiet_for(quiet: Duration, cap: Duration, batch: bool) -> Duration {
    if batch && !quiet.is_zero() { quiet.max(BATCH_QUIET).min(cap) } else { quiet }
}

impl Scheduler {
    pub(crate) fn new(
        limits: Limits,
        debounce_quiet: Duration,
        debounce: Duration,
        adoption_writes_per_second: u32,
        metrics: Arc<Metrics>,
    ) -> Scheduler {
        Scheduler {
            queue: WorkQueue::new(),
            slots: Slots::default(),
            adoption: Pacer::new(adoption_writes_per_second),
            wave: Mutex::new(Wave::default()),
            limits,
            quiet: debounce_quiet,
            cap: debounce,
            metrics,
        }
    }

    /// Looks at `key` after `delay` (now: zero), unless it is due sooner already.
    pub(crate) fn after(&self, key: WorkloadKey, delay: Duration) {
        self.metrics.queue_adds.inc();
        self.queue.add_after(key, delay);
    }

    /// A source of `key` changed: it waits `--debounce-quiet` for more changes, each restarting
    /// the wait, up to `--debounce` after the first, so a burst folds into one reconcile.
    pub(crate) fn changed(&self, key: WorkloadKey, batch: bool) {
        self.slots.changed(&key, &self.limits.brake, Instant::now());
        self.metrics.queue_adds.inc();
        self.queue.add_debounced(key, quiet_for(self.quiet, self.cap, batch), self.cap);
    }

    /// The rollout of `key` moved: look now, unless a source change of it waits for its quiet
    /// window (that reconcile will see the same).
    pub(crate) fn progressed(&self, key: WorkloadKey) {
        self.metrics.queue_adds.inc();
        self.queue.add_unless_debounced(key);
    }

    /// The next due key no worker holds, and how long it waited; `None` once closed.
    pub(crate) async fn next(&self) -> Option<(WorkloadKey, Duration)> {
        let next = self.queue.next().await;
        if let Some((_, waited)) = &next {
            self.metrics.queue_latency.observe(waited.as_secs_f64());
        }
        next
    }

    /// A worker finished `key`: it is released, and looked at again as `how` asks.
    pub(crate) fn finished(&self, key: WorkloadKey, how: Finished) -> Option<Duration> {
        let retry = match how {
            Finished::Done => {
                self.slots.settled(&key);
                None
            }
            Finished::Stale => Some(self.slots.conflicted(&key)),
            Finished::Failed => {
                self.metrics.retries.inc();
                Some(self.slots.failed(&key, Instant::now()))
            }
        };
        self.queue.done(&key);
        if let Some(d) = retry {
            self.after(key, d);
        }
        retry
    }

    /// Stops handing out keys.
    pub(crate) fn close(&self) {
        self.queue.close();
    }

    /// Asks the gates about a reload; the state they keep (the workload's brake, the wave) is
    /// handed to them under its locks.
    pub(crate) fn admit(&self, r: &Request) -> Answer {
        let now = Instant::now();
        self.slots.with_brake(&r.key, |brake| {
            let mut wave = self.wave.lock().expect("wave lock");
            let answer = gates::admit(r, &self.limits, brake, &mut wave, now);
            if answer.freed {
                self.wave_next(&wave);
            }
            self.wave_gauges(&wave);
            answer
        })
    }

    /// A reload of `key` was written (or would have been, in dry-run): the brake counts it.
    pub(crate) fn reloaded(&self, key: &WorkloadKey) {
        self.slots.brake_reloaded(key, Instant::now());
    }

    /// Whether the adoption write of `key` may go now (`None`), or how long until its turn.
    pub(crate) fn adoption_turn(&self, key: &WorkloadKey) -> Option<Duration> {
        self.slots.adoption_turn(key, &self.adoption, Instant::now())
    }

    /// `key` no longer waits to be adopted: its turn is given up.
    pub(crate) fn drop_adoption_turn(&self, key: &WorkloadKey) {
        self.slots.drop_adoption_turn(key);
    }

    /// The time since the oldest pending source change of `key`, consumed.
    pub(crate) fn take_change_age(&self, key: &WorkloadKey) -> Option<Duration> {
        self.slots.take_change_age(key)
    }

    /// What the watch saw of a workload's rollout (in progress or not), or that it is gone
    /// (`gone`: it also leaves the waiting line). Frees places: the oldest waiting go next.
    pub(crate) fn rollout_seen(&self, key: &WorkloadKey, in_progress: bool, gone: bool) {
        if self.limits.max_concurrent_rollouts.is_none() {
            return;
        }
        let mut wave = self.wave.lock().expect("wave lock");
        wave.seen(key, in_progress);
        if gone {
            wave.leave(key);
        }
        self.wave_next(&wave);
        self.wave_gauges(&wave);
    }

    /// `key` needs no reload any more: it leaves the wave's line, or gives its place back.
    pub(crate) fn no_reload(&self, key: &WorkloadKey) {
        self.release(key, true);
    }

    /// A reload of `key` was admitted but wrote no rollout: its place goes to the next one.
    pub(crate) fn not_written(&self, key: &WorkloadKey) {
        self.release(key, false);
    }

    fn release(&self, key: &WorkloadKey, leave: bool) {
        if self.limits.max_concurrent_rollouts.is_none() {
            return;
        }
        let mut wave = self.wave.lock().expect("wave lock");
        let changed = if leave { wave.leave(key) } else { wave.release(key) };
        if changed {
            self.wave_next(&wave);
            self.wave_gauges(&wave);
        }
    }

    fn wave_next(&self, wave: &Wave) {
        for k in wave.next(self.limits.max_concurrent_rollouts) {
            self.after(k, Duration::ZERO);
        }
    }

    fn wave_gauges(&self, wave: &Wave) {
        self.metrics.rollouts_in_progress.set(wave.taken() as i64);
        self.metrics.rollouts_waiting.set(wave.waiting_count() as i64);
    }

    /// Drops every per-workload slot of a workload that is gone, so churn leaves nothing
    /// behind, and its place in the wave.
    pub(crate) fn forget(&self, key: &WorkloadKey) {
        self.slots.forget(key);
        self.rollout_seen(key, false, true);
    }

    /// Keys waiting in the queue.
    pub(crate) fn queue_len(&self) -> usize {
        self.queue.len()
    }

    /// Workloads with per-workload state held (something pending, or a recent reload).
    pub(crate) fn slot_count(&self) -> usize {
        self.slots.len()
    }

    /// Workloads the storm brake holds.
    pub(crate) fn held(&self) -> usize {
        self.slots.held()
    }

    /// Workloads whose reload waits for the storm brake's spacing.
    pub(crate) fn deferred(&self) -> usize {
        self.slots.deferred(Instant::now())
    }

    /// Workloads whose adoption write waits for its turn.
    pub(crate) fn adoptions_waiting(&self) -> usize {
        self.slots.adoptions_waiting()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::gates::brake::BrakeSettings;
    use crate::core::kinds::WorkloadKind;

    fn scheduler(metrics: &Arc<Metrics>) -> Scheduler {
        let limits = Limits {
            brake: BrakeSettings {
                min_interval: Duration::from_secs(10),
                flap_limit: 5,
                flap_window: Duration::from_secs(600),
                settle: Duration::from_secs(120),
                hold_max: Duration::from_secs(1800),
            },
            max_concurrent_rollouts: Some(1),
            halt_on_failed_rollouts: None,
        };
        Scheduler::new(limits, Duration::from_millis(50), Duration::from_millis(500), 20, metrics.clone())
    }

    fn key(n: &str) -> WorkloadKey {
        WorkloadKey { kind: WorkloadKind::Deployment, namespace: "ns".into(), name: n.into() }
    }

    #[test]
    fn a_batch_tools_change_waits_longer_for_the_rest_of_the_batch() {
        let ms = Duration::from_millis;
        // (quiet, cap, batch, window)
        let cases = [
            (ms(400), ms(3000), false, ms(400)),
            (ms(400), ms(3000), true, ms(1500)),
            (ms(2000), ms(3000), true, ms(2000)),
            (ms(400), ms(1000), true, ms(1000)),
            (Duration::ZERO, ms(3000), true, Duration::ZERO),
        ];
        for (quiet, cap, batch, want) in cases {
            assert_eq!(quiet_for(quiet, cap, batch), want, "quiet {quiet:?}, cap {cap:?}, batch {batch}");
        }
    }

    /// Every way into the queue is counted: a change, a look now, progress, a retry, a wait of
    /// the brake, a turn in the wave.
    #[tokio::test(start_paused = true)]
    async fn every_add_is_counted() {
        let m = Arc::new(Metrics::new(false));
        let s = scheduler(&m);
        s.changed(key("a"), false);
        s.after(key("b"), Duration::ZERO);
        s.progressed(key("c"));
        assert_eq!(m.queue_adds.get(), 3);
        let (k, _) = s.next().await.expect("a key");
        assert_eq!(s.finished(k, Finished::Failed), Some(Duration::from_secs(2)), "a retry after 2 s");
        assert_eq!(m.queue_adds.get(), 4, "the retry is an add");
        assert_eq!(m.retries.get(), 1);
        let (k, _) = s.next().await.expect("a key");
        assert_eq!(s.finished(k.clone(), Finished::Stale), Some(Duration::from_millis(50)));
        assert_eq!(m.queue_adds.get(), 5, "the look after a 409 is an add");
        // The wave: one place, taken by "a"; "w" waits, and is queued again when "a" ends.
        s.rollout_seen(&key("a"), true, false);
        let r = Request { key: key("w"), trackable: true, changes: vec![], place: 1 };
        assert!(matches!(s.admit(&r).admission, gates::Admission::Queued { .. }));
        let before = m.queue_adds.get();
        s.rollout_seen(&key("a"), false, false);
        assert_eq!(m.queue_adds.get(), before + 1, "its turn in the wave is an add");
        assert_eq!(m.rollouts_waiting.get(), 1, "still in line until admitted");
    }
}
