//! A work queue of workload keys with per-key deadlines: a key scheduled again before it is
//! due keeps its earlier deadline (so changes inside the debounce window fold into one
//! reconcile), and a key is never handed to two workers at once.

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
    /// The deadline of every pending key, and when it was first added.
    pending: HashMap<K, (Instant, Instant)>,
    /// Deadlines in order; entries that no longer match `pending` are stale and skipped.
    heap: BinaryHeap<Reverse<(Instant, u64, K)>>,
    running: HashSet<K>,
    seq: u64,
    closed: bool,
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

    /// Schedules `key` after `delay`, unless it is already due sooner.
    pub(crate) fn add_after(&self, key: K, delay: Duration) {
        let now = Instant::now();
        let at = now + delay;
        let mut g = self.inner.lock().expect("queue lock");
        let added = match g.pending.get(&key) {
            Some((d, _)) if *d <= at => return,
            Some((_, added)) => *added,
            None => now,
        };
        g.pending.insert(key.clone(), (at, added));
        g.seq += 1;
        let seq = g.seq;
        g.heap.push(Reverse((at, seq, key)));
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
        if let Some((at, _)) = g.pending.get(key).copied() {
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
            if self.pending.get(&key).map(|p| p.0) != Some(at) {
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
            let (_, added) = self.pending.remove(&key).expect("pending");
            self.running.insert(key.clone());
            break Ok((key, now - added));
        };
        drop(parked);
        result
    }
}

/// Delay before looking again after the `n`th 409 in a row: 50 ms doubling to 1 s. The
/// newer object is usually in the index by then; a baseline is not lost by waiting, since
/// the decision compares from the workload's first sight (see `core::history`).
pub(crate) fn conflict_backoff(n: u32) -> Duration {
    Duration::from_millis(50u64 << n.saturating_sub(1).min(5)).min(Duration::from_secs(1))
}

/// Delay before retrying a failed workload: 1 s doubling to 5 min.
pub(crate) fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.min(8)).min(Duration::from_secs(300))
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
        // The first deadline holds: later adds inside the window do not push it back.
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
