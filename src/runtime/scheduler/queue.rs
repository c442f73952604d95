//! A work queue of workload keys with per-key deadlines, and a key is never handed to two
//! workers at once. Two kinds of add: `add_after` (retries, backoffs, brakes, resyncs) keeps the
//! earliest deadline asked for; `add_debounced` (a source changed) waits for a quiet window that
//! each further change restarts, never past a cap measured from the first pending change, so a
//! lone change goes out almost at once and a burst still folds into one reconcile.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::hash::Hash;
use std::sync::Mutex;

use tokio::sync::Notify;
use tokio::time::{Duration, Instant};

pub(crate) struct WorkQueue<K> {
    inner: Mutex<Inner<K>>,
    notify: Notify,
}

struct Inner<K> {
    pending: HashMap<K, Pending>,
    /// Deadlines in order; entries that no longer match `pending` are stale and skipped.
    heap: BinaryHeap<Reverse<(Instant, u64, K)>>,
    running: HashSet<K>,
    seq: u64,
    closed: bool,
}

/// A waiting key. Each kind of add keeps its own constraint; the key is due at the earlier.
#[derive(Clone, Copy)]
struct Pending {
    /// When the key is due: the earlier of `firm` and the window's end.
    at: Instant,
    /// When it was first added, for the queue-latency metric.
    added: Instant,
    /// The earliest deadline asked for with `add_after`.
    firm: Option<Instant>,
    /// The debounce window, while changes are pending.
    window: Option<Window>,
}

#[derive(Clone, Copy)]
struct Window {
    /// The last change plus the quiet window.
    due: Instant,
    /// The first change plus the cap: later changes never extend the window past it.
    cap_at: Instant,
}

impl Pending {
    fn due(&self) -> Instant {
        match (self.firm, self.window) {
            (Some(f), Some(w)) => f.min(w.due),
            (Some(f), None) => f,
            (None, Some(w)) => w.due,
            (None, None) => self.added,
        }
    }
}

impl<K: Clone + Eq + Hash + Ord> Default for WorkQueue<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Clone + Eq + Hash + Ord> WorkQueue<K> {
    pub(crate) fn new() -> Self {
        WorkQueue {
            inner: Mutex::new(Inner {
                pending: HashMap::new(),
                heap: BinaryHeap::new(),
                running: HashSet::new(),
                seq: 0,
                closed: false,
            }),
            notify: Notify::new(),
        }
    }

    /// Schedules `key` now unless a source change of it waits for its quiet window (that
    /// reconcile will see what this one would): a rollout's progress must not cut short the
    /// debounce of a change.
    pub(crate) fn add_unless_debounced(&self, key: K) {
        if self.inner.lock().expect("queue lock").pending.get(&key).is_some_and(|p| p.window.is_some()) {
            return;
        }
        self.add_after(key, Duration::ZERO);
    }

    /// Schedules `key` after `delay`, unless it is already due sooner.
    pub(crate) fn add_after(&self, key: K, delay: Duration) {
        let at = Instant::now() + delay;
        self.update(key, |p, _| p.firm = Some(p.firm.map_or(at, |f| f.min(at))));
    }

    /// Schedules `key` for a change: due once no other change came for `quiet`, but no later
    /// than `cap` after the first change still pending. A deadline from `add_after` that is
    /// sooner still wins. `quiet` or `cap` zero: due now.
    pub(crate) fn add_debounced(&self, key: K, quiet: Duration, cap: Duration) {
        self.update(key, |p, now| {
            let cap_at = p.window.map_or(now + cap, |w| w.cap_at);
            p.window = Some(Window { due: (now + quiet).min(cap_at), cap_at });
        });
    }

    fn update(&self, key: K, f: impl FnOnce(&mut Pending, Instant)) {
        let now = Instant::now();
        let mut g = self.inner.lock().expect("queue lock");
        let before = g.pending.get(&key).copied();
        let mut p = before.unwrap_or(Pending { at: now, added: now, firm: None, window: None });
        f(&mut p, now);
        p.at = p.due();
        g.pending.insert(key.clone(), p);
        if before.is_some_and(|b| b.at == p.at) {
            return;
        }
        g.seq += 1;
        let seq = g.seq;
        g.heap.push(Reverse((p.at, seq, key)));
        drop(g);
        self.notify.notify_waiters();
        self.notify.notify_one();
    }

    /// Number of keys waiting.
    pub(crate) fn len(&self) -> usize {
        self.inner.lock().expect("queue lock").pending.len()
    }

    /// Stops handing out keys; `next` returns `None` from then on.
    pub(crate) fn close(&self) {
        self.inner.lock().expect("queue lock").closed = true;
        self.notify.notify_waiters();
        self.notify.notify_one();
    }

    /// Waits for the next due key that no worker holds, and says how long it was queued
    /// (debounce included). Call `done` when finished with it.
    pub(crate) async fn next(&self) -> Option<(K, Duration)> {
        loop {
            let notified = self.notify.notified();
            let wait = {
                let mut g = self.inner.lock().expect("queue lock");
                if g.closed {
                    return None;
                }
                match g.take_due(Instant::now()) {
                    Ok(k) => return Some(k),
                    Err(wait) => wait,
                }
            };
            match wait {
                Some(at) => {
                    tokio::select! {
                        _ = notified => {}
                        _ = tokio::time::sleep_until(at) => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Releases a key taken with `next`; if it was scheduled again meanwhile, it becomes
    /// available to workers again.
    pub(crate) fn done(&self, key: &K) {
        let mut g = self.inner.lock().expect("queue lock");
        g.running.remove(key);
        if let Some(at) = g.pending.get(key).map(|p| p.at) {
            g.seq += 1;
            let seq = g.seq;
            g.heap.push(Reverse((at, seq, key.clone())));
        }
        drop(g);
        self.notify.notify_waiters();
        self.notify.notify_one();
    }
}

impl<K: Clone + Eq + Hash + Ord> Inner<K> {
    /// A due key nobody is running, or the time to wait for the next deadline.
    fn take_due(&mut self, now: Instant) -> Result<(K, Duration), Option<Instant>> {
        let mut parked = Vec::new();
        let result = loop {
            let Some(Reverse((at, _, key))) = self.heap.peek().cloned() else { break Err(None) };
            if self.pending.get(&key).map(|p| p.at) != Some(at) {
                self.heap.pop();
                continue;
            }
            if at > now {
                break Err(Some(at));
            }
            let entry = self.heap.pop().expect("peeked");
            if self.running.contains(&key) {
                // Re-queued by `done` when the running worker finishes.
                parked.push(entry);
                continue;
            }
            let p = self.pending.remove(&key).expect("pending");
            self.running.insert(key.clone());
            break Ok((key, now - p.added));
        };
        drop(parked);
        result
    }
}

/// Delay before looking again after the `n`th 409 in a row: 50 ms doubling to 1 s. The
/// newer object is usually in the index by then; a baseline is not lost by waiting, since
/// the decision compares from the workload's first sight (see `core::index::history`).
pub(crate) fn conflict_backoff(n: u32) -> Duration {
    Duration::from_millis(50u64 << n.saturating_sub(1).min(5)).min(Duration::from_secs(1))
}

/// Delay before retrying a failed workload after its `n`th failure: 2 s doubling to 128 s.
/// Short enough that a refusal that ends (RBAC given back, a policy lifted) is noticed within
/// about two minutes even without a new change.
pub(crate) fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.clamp(1, 7))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn folds_repeated_adds_into_one() {
        let q = WorkQueue::new();
        q.add_after("a", Duration::from_millis(500));
        tokio::time::advance(Duration::from_millis(100)).await;
        q.add_after("a", Duration::from_millis(500));
        q.add_after("a", Duration::from_millis(500));
        let t0 = Instant::now();
        assert_eq!(q.next().await.map(|n| n.0), Some("a"));
        // Plain adds keep the first deadline: later ones do not push it back.
        assert!(Instant::now() - t0 <= Duration::from_millis(400));
        q.done(&"a");
        assert_eq!(q.len(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn earlier_deadline_wins() {
        let q = WorkQueue::new();
        q.add_after("a", Duration::from_secs(10));
        q.add_after("a", Duration::from_millis(1));
        let t0 = Instant::now();
        assert_eq!(q.next().await.map(|n| n.0), Some("a"));
        assert!(Instant::now() - t0 < Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn order_by_deadline() {
        let q = WorkQueue::new();
        q.add_after("late", Duration::from_millis(20));
        q.add_after("early", Duration::from_millis(10));
        assert_eq!(q.next().await.map(|n| n.0), Some("early"));
        assert_eq!(q.next().await.map(|n| n.0), Some("late"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_running_key_is_not_handed_out_twice() {
        let q = std::sync::Arc::new(WorkQueue::new());
        q.add_after("a", Duration::ZERO);
        assert_eq!(q.next().await.map(|n| n.0), Some("a"));
        q.add_after("a", Duration::ZERO);
        q.add_after("b", Duration::ZERO);
        // "a" is running, so the next worker gets "b".
        assert_eq!(q.next().await.map(|n| n.0), Some("b"));
        let q2 = q.clone();
        let waiter = tokio::spawn(async move { q2.next().await });
        tokio::time::advance(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished());
        q.done(&"a");
        assert_eq!(waiter.await.unwrap().map(|n| n.0), Some("a"));
    }

    const QUIET: Duration = Duration::from_millis(50);
    const CAP: Duration = Duration::from_millis(500);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Takes the next key and says when, relative to `t0`, it was handed out.
    async fn next_at(q: &WorkQueue<&'static str>, t0: Instant) -> (&'static str, Duration) {
        let (k, _) = q.next().await.expect("a key");
        (k, Instant::now() - t0)
    }

    #[tokio::test(start_paused = true)]
    async fn a_lone_change_is_due_after_the_quiet_window() {
        let q = WorkQueue::new();
        let t0 = Instant::now();
        q.add_debounced("a", QUIET, CAP);
        assert_eq!(next_at(&q, t0).await, ("a", QUIET));
    }

    #[tokio::test(start_paused = true)]
    async fn progress_does_not_cut_a_quiet_window_short() {
        let q = WorkQueue::new();
        let t0 = Instant::now();
        q.add_debounced("a", QUIET, CAP);
        q.add_unless_debounced("a");
        assert_eq!(next_at(&q, t0).await, ("a", QUIET), "the change's window holds");
        q.add_after("b", Duration::from_secs(600));
        q.add_unless_debounced("b");
        assert_eq!(next_at(&q, t0).await, ("b", QUIET), "a key without a change pending is due at once");
    }

    #[tokio::test(start_paused = true)]
    async fn each_change_restarts_the_quiet_window() {
        let q = WorkQueue::new();
        let t0 = Instant::now();
        for _ in 0..5 {
            q.add_debounced("a", QUIET, CAP);
            tokio::time::advance(ms(20)).await;
        }
        // Last change at 80 ms: due 50 ms later, one hand-out for all five.
        assert_eq!(next_at(&q, t0).await, ("a", ms(130)));
        q.done(&"a");
        assert_eq!(q.len(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_steady_stream_is_due_at_the_cap_from_the_first_change() {
        let q = std::sync::Arc::new(WorkQueue::new());
        let t0 = Instant::now();
        let q2 = q.clone();
        let stream = tokio::spawn(async move {
            for _ in 0..40 {
                q2.add_debounced("a", QUIET, CAP);
                tokio::time::sleep(ms(30)).await;
            }
        });
        assert_eq!(next_at(&q, t0).await, ("a", CAP));
        q.done(&"a");
        // The changes after the hand-out (the first at 510 ms) open a new window, capped from
        // its own first change.
        assert_eq!(next_at(&q, t0).await, ("a", ms(510) + CAP));
        stream.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn zero_cap_or_zero_quiet_is_due_at_once() {
        let q = WorkQueue::new();
        let t0 = Instant::now();
        q.add_debounced("a", QUIET, Duration::ZERO);
        assert_eq!(next_at(&q, t0).await, ("a", Duration::ZERO));
        q.add_debounced("b", Duration::ZERO, CAP);
        assert_eq!(next_at(&q, t0).await, ("b", Duration::ZERO));
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_window_as_long_as_the_cap_is_a_fixed_window() {
        let q = WorkQueue::new();
        let t0 = Instant::now();
        q.add_debounced("a", CAP, CAP);
        tokio::time::advance(ms(100)).await;
        q.add_debounced("a", CAP, CAP);
        assert_eq!(next_at(&q, t0).await, ("a", CAP));
    }

    #[tokio::test(start_paused = true)]
    async fn a_sooner_plain_deadline_wins_over_the_window() {
        let q = WorkQueue::new();
        let t0 = Instant::now();
        q.add_debounced("a", QUIET, CAP);
        tokio::time::advance(ms(10)).await;
        q.add_after("a", Duration::ZERO);
        assert_eq!(next_at(&q, t0).await, ("a", ms(10)));
    }

    #[tokio::test(start_paused = true)]
    async fn changes_never_extend_past_a_plain_deadline() {
        let q = std::sync::Arc::new(WorkQueue::new());
        let t0 = Instant::now();
        q.add_debounced("a", QUIET, CAP);
        q.add_after("a", ms(300));
        let q2 = q.clone();
        let stream = tokio::spawn(async move {
            for _ in 0..20 {
                tokio::time::sleep(ms(20)).await;
                q2.add_debounced("a", QUIET, CAP);
            }
        });
        assert_eq!(next_at(&q, t0).await, ("a", ms(300)));
        stream.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_brings_a_backed_off_retry_forward() {
        let q = WorkQueue::new();
        let t0 = Instant::now();
        q.add_after("a", backoff(3));
        q.add_debounced("a", QUIET, CAP);
        assert_eq!(next_at(&q, t0).await, ("a", QUIET));
    }

    #[tokio::test(start_paused = true)]
    async fn retries_keep_their_backoff() {
        let q = WorkQueue::new();
        let t0 = Instant::now();
        q.add_after("a", backoff(1));
        q.add_after("a", backoff(2));
        assert_eq!(next_at(&q, t0).await, ("a", Duration::from_secs(2)));
        q.done(&"a");
        let t1 = Instant::now();
        q.add_after("a", conflict_backoff(1));
        q.add_after("a", conflict_backoff(3));
        assert_eq!(next_at(&q, t1).await, ("a", ms(50)));
        assert_eq!([1, 2, 6, 9].map(conflict_backoff), [ms(50), ms(100), ms(1000), ms(1000)]);
        assert_eq!([1, 2, 7, 30].map(backoff), [2, 4, 128, 128].map(Duration::from_secs));
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_while_running_is_handed_out_after_done() {
        let q = WorkQueue::new();
        let t0 = Instant::now();
        q.add_debounced("a", QUIET, CAP);
        assert_eq!(next_at(&q, t0).await, ("a", QUIET));
        q.add_debounced("a", QUIET, CAP);
        tokio::time::advance(ms(200)).await;
        q.done(&"a");
        assert_eq!(next_at(&q, t0).await, ("a", ms(250)));
    }

    #[tokio::test(start_paused = true)]
    async fn close_wakes_waiters() {
        let q = std::sync::Arc::new(WorkQueue::<&str>::new());
        let q2 = q.clone();
        let waiter = tokio::spawn(async move { q2.next().await });
        tokio::task::yield_now().await;
        q.close();
        assert_eq!(waiter.await.unwrap(), None);
    }
}
