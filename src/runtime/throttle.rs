//! Writes in flight, adapted to the API server's answers. A fixed number is either too few for
//! a big fan-out on an idle server or too many for a busy one, where API Priority and Fairness
//! queues or rejects the excess (429) and every other client of the server waits behind it.
//!
//! The limit grows while writes come back about as fast as the server answers when unloaded,
//! and shrinks when they slow down or are refused: additive increase, multiplicative decrease,
//! as TCP does. Slowness is the signal that counts, because kube's client retries a 429 itself
//! (after its `Retry-After`), so a throttled write mostly shows up here as a slow one. A 429
//! that does reach us also stops all writes until its `Retry-After`.
//!
//! Workload writes go first; Events wait while a workload write waits, so a fan-out's 500
//! Events do not delay its last patches.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::runtime::reporter::metrics::{Metrics, Reason};

/// Writes in flight at the start, before the server's pace is known.
const START: f64 = 4.0;
/// A write slower than this many times the base latency, and `SLACK` over it, shows load.
const TOLERANCE: u32 = 3;
const SLACK: Duration = Duration::from_millis(50);
/// The share of the limit kept on a sign of load.
const BACKOFF: f64 = 0.7;
/// How slowly the base latency follows a server whose normal pace gets slower: 1/64 of the
/// difference per write. It falls at once.
const BASE_DRIFT: u32 = 64;
/// The pause after a 429 that names no `Retry-After`, and the longest one honoured.
const PAUSE: Duration = Duration::from_secs(1);
const PAUSE_MAX: Duration = Duration::from_secs(30);

/// How a write was answered, as far as the limit cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    /// Answered (a success, or a refusal about the object: 404, 409, 422…).
    Answered,
    /// Refused with 429 Too Many Requests, with the server's `retryAfterSeconds` if any.
    Throttled(Option<Duration>),
    /// No answer that says anything about load (a transport error, a 5xx).
    Unknown,
}

impl Answer {
    pub(crate) fn of<T>(r: &Result<T, kube::Error>) -> Answer {
        match r {
            Ok(_) => Answer::Answered,
            Err(kube::Error::Api(s)) if s.code == 429 => Answer::Throttled(
                s.details
                    .as_ref()
                    .map(|d| d.retry_after_seconds)
                    .filter(|s| *s > 0)
                    .map(|s| Duration::from_secs(s.into())),
            ),
            Err(kube::Error::Api(s)) if s.code < 500 => Answer::Answered,
            Err(_) => Answer::Unknown,
        }
    }
}

/// Why the limit was cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cut {
    Slow,
    Throttled,
}

impl Cut {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Cut::Slow => "slow",
            Cut::Throttled => "throttled",
        }
    }
}

/// The limit itself: pure, fed each write's timing and answer.
#[derive(Clone, Debug)]
pub(crate) struct Limit {
    limit: f64,
    max: f64,
    /// What the server answers in when unloaded: the fastest recent write.
    base: Option<Duration>,
    /// Until the first sign of load the limit grows by one per write (doubling per round trip).
    probing: bool,
    /// When the limit was last cut: writes sent before that do not cut it again, so one
    /// congested round counts once.
    cut_at: Option<Instant>,
    paused_until: Option<Instant>,
}

impl Limit {
    pub(crate) fn new(max: usize) -> Limit {
        let max = max.max(1) as f64;
        Limit { limit: START.min(max), max, base: None, probing: true, cut_at: None, paused_until: None }
    }

    /// Writes that may be in flight at `now`: none during a pause, else at least one.
    pub(crate) fn allowed(&self, now: Instant) -> usize {
        match self.paused_until {
            Some(t) if t > now => 0,
            _ => self.limit as usize,
        }
    }

    /// Until when writes wait, after a 429.
    pub(crate) fn paused_until(&self, now: Instant) -> Option<Instant> {
        self.paused_until.filter(|t| *t > now)
    }

    /// A write sent at `sent` was answered at `now`; whether that cut the limit.
    pub(crate) fn observe(&mut self, sent: Instant, now: Instant, answer: Answer) -> Option<Cut> {
        let rtt = now.saturating_duration_since(sent);
        match answer {
            Answer::Unknown => None,
            Answer::Throttled(after) => {
                let pause = after.unwrap_or(PAUSE).min(PAUSE_MAX);
                self.paused_until = Some(self.paused_until.map_or(now + pause, |t| t.max(now + pause)));
                self.cut(sent, now).then_some(Cut::Throttled)
            }
            Answer::Answered => {
                let slow = self.base.is_some_and(|b| rtt > b * TOLERANCE + SLACK);
                self.base = Some(match self.base {
                    Some(b) if rtt > b => b + (rtt - b) / BASE_DRIFT,
                    _ => rtt,
                });
                if slow {
                    return self.cut(sent, now).then_some(Cut::Slow);
                }
                self.limit = (self.limit + if self.probing { 1.0 } else { 1.0 / self.limit }).min(self.max);
                None
            }
        }
    }

    fn cut(&mut self, sent: Instant, now: Instant) -> bool {
        if self.cut_at.is_some_and(|c| sent < c) {
            return false;
        }
        self.probing = false;
        self.limit = (self.limit * BACKOFF).max(1.0);
        self.cut_at = Some(now);
        true
    }
}

/// Who is writing: workloads go before Events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    Workload,
    Event,
}

struct State {
    limit: Limit,
    in_flight: usize,
    /// Workload writes waiting for a place: Events wait behind them.
    workloads_waiting: usize,
}

/// The shared limit on writes in flight.
pub(crate) struct Throttle {
    state: Mutex<State>,
    /// One wake-up per free place (`notify_one`), so a fan-out's hundreds of waiting Events are
    /// not all woken for each write that ends; all of them at the start of a pause.
    workloads: Notify,
    events: Notify,
    metrics: Arc<Metrics>,
}

impl Throttle {
    /// At most `max` writes in flight (`--workers`).
    pub(crate) fn new(max: usize, metrics: Arc<Metrics>) -> Throttle {
        let limit = Limit::new(max);
        metrics.write_limit.set(limit.allowed(Instant::now()) as i64);
        let state = Mutex::new(State { limit, in_flight: 0, workloads_waiting: 0 });
        Throttle { state, workloads: Notify::new(), events: Notify::new(), metrics }
    }

    /// Sends `write` (one request) once a place is free, and learns from its answer.
    pub(crate) async fn send<T>(
        &self,
        class: Class,
        write: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, kube::Error> {
        self.run(class, true, write).await
    }

    /// Like `send`, for a write of several requests with waits between them (a Job deleted
    /// and created again): it takes a place, but its duration says nothing about the server.
    pub(crate) async fn send_several<T>(
        &self,
        class: Class,
        write: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, kube::Error> {
        self.run(class, false, write).await
    }

    async fn run<T>(
        &self,
        class: Class,
        timed: bool,
        write: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, kube::Error> {
        let _place = self.acquire(class).await;
        let sent = Instant::now();
        let r = write.await;
        let now = Instant::now();
        let answer = match Answer::of(&r) {
            Answer::Answered if !timed => Answer::Unknown,
            a => a,
        };
        let mut s = self.state.lock().expect("throttle lock");
        if let Some(cut) = s.limit.observe(sent, now, answer) {
            self.metrics.write_slowdowns.get_or_create(&Reason { reason: cut.as_str() }).inc();
        }
        self.metrics.write_limit.set(s.limit.allowed(now).max(1) as i64);
        if matches!(answer, Answer::Throttled(_)) {
            // Every waiter looks again and sleeps until the pause ends: no write that ends
            // during the pause would wake them after it.
            self.workloads.notify_waiters();
            self.events.notify_waiters();
        }
        r
    }

    async fn acquire(&self, class: Class) -> Place<'_> {
        let mut waiting = None;
        loop {
            // Registered before the look below, so no wake-up sent after it is missed.
            let notified = match class {
                Class::Workload => self.workloads.notified(),
                Class::Event => self.events.notified(),
            };
            tokio::pin!(notified);
            notified.as_mut().enable();
            let pause = {
                let mut s = self.state.lock().expect("throttle lock");
                let now = Instant::now();
                let first = class == Class::Workload || s.workloads_waiting == 0;
                if first && s.in_flight < s.limit.allowed(now) {
                    s.in_flight += 1;
                    drop(s);
                    drop(waiting);
                    return Place(self);
                }
                if class == Class::Workload && waiting.is_none() {
                    s.workloads_waiting += 1;
                    waiting = Some(Waiting(self));
                }
                s.limit.paused_until(now)
            };
            match pause {
                Some(until) => tokio::select! {
                    _ = tokio::time::sleep_until(until) => {}
                    _ = notified => {}
                },
                None => notified.await,
            }
        }
    }

    /// Wakes one waiter per free place: workload writes first, Events once none waits.
    fn wake(&self, s: &State) {
        let free = s.limit.allowed(Instant::now()).saturating_sub(s.in_flight);
        for _ in 0..free.min(s.workloads_waiting) {
            self.workloads.notify_one();
        }
        if s.workloads_waiting == 0 {
            for _ in 0..free {
                self.events.notify_one();
            }
        }
    }
}

/// A place taken: freed on drop (also when the write's future is dropped).
struct Place<'a>(&'a Throttle);

impl Drop for Place<'_> {
    fn drop(&mut self) {
        let mut s = self.0.state.lock().expect("throttle lock");
        s.in_flight -= 1;
        self.0.wake(&s);
    }
}

/// A workload write waiting: counted so Events wait behind it.
struct Waiting<'a>(&'a Throttle);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut s = self.0.state.lock().expect("throttle lock");
        s.workloads_waiting -= 1;
        self.0.wake(&s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Feeds writes of the given latencies (ms), one after another, all answered.
    fn feed(l: &mut Limit, t0: Instant, rtts: &[u64]) -> (Instant, Vec<Option<Cut>>) {
        let mut t = t0;
        let cuts = rtts
            .iter()
            .map(|ms| {
                let sent = t;
                t += MS * *ms as u32;
                l.observe(sent, t, Answer::Answered)
            })
            .collect();
        (t, cuts)
    }

    #[test]
    fn grows_fast_while_the_server_keeps_pace_and_stops_at_the_maximum() {
        let t0 = Instant::now();
        let mut l = Limit::new(32);
        assert_eq!(l.allowed(t0), 4, "starts at 4");
        let (t, cuts) = feed(&mut l, t0, &[10; 10]);
        assert!(cuts.iter().all(Option::is_none));
        assert_eq!(l.allowed(t), 14, "one more per write until a sign of load");
        feed(&mut l, t, &[10; 100]);
        assert_eq!(l.allowed(t), 32, "never past --workers");
        assert_eq!(Limit::new(1).allowed(t0), 1, "--workers=1 is one write at a time");
    }

    #[test]
    fn a_slow_write_cuts_once_per_round_then_growth_is_gentle() {
        // (latencies of the writes after 5 at 10 ms, cuts expected, limit after)
        let table: [(&[u64], usize, usize); 4] = [
            (&[20, 30, 40], 0, 12), // within 3× base + 50 ms: the server keeps pace
            (&[200], 1, 6),         // 9 × 0.7
            (&[10, 200, 10], 1, 7), // 10, cut to 7, then one write grows it by 1/7
            (&[500, 10, 10, 10], 1, 6),
        ];
        for (rtts, want_cuts, want_limit) in table {
            let t0 = Instant::now();
            let mut l = Limit::new(64);
            let (t, _) = feed(&mut l, t0, &[10; 5]);
            let (t, cuts) = feed(&mut l, t, rtts);
            assert_eq!(cuts.iter().flatten().count(), want_cuts, "{rtts:?}");
            assert_eq!(l.allowed(t), want_limit, "{rtts:?}");
        }
    }

    #[test]
    fn writes_in_flight_together_cut_once() {
        let t0 = Instant::now();
        let mut l = Limit::new(64);
        feed(&mut l, t0, &[10; 12]); // limit 16
        let sent = t0 + MS * 120;
        // Eight writes sent together, all slow: one congested round, one cut.
        let cuts: Vec<_> = (0..8).map(|i| l.observe(sent, sent + MS * (300 + i), Answer::Answered)).collect();
        assert_eq!(cuts.iter().flatten().count(), 1);
        assert_eq!(l.allowed(sent + MS * 400), 11);
        // A write sent after the cut and still slow: load persists, cut again.
        assert_eq!(l.observe(sent + MS * 310, sent + MS * 700, Answer::Answered), Some(Cut::Slow));
        assert_eq!(l.allowed(sent + MS * 700), 7);
    }

    #[test]
    fn a_429_pauses_every_write_until_retry_after_and_cuts() {
        let t0 = Instant::now();
        let mut l = Limit::new(32);
        feed(&mut l, t0, &[10; 6]); // 10
        let now = t0 + MS * 70;
        let cut = l.observe(now - MS * 5, now, Answer::Throttled(Some(Duration::from_secs(2))));
        assert_eq!(cut, Some(Cut::Throttled));
        assert_eq!(l.allowed(now + Duration::from_millis(1999)), 0, "paused");
        assert_eq!(l.paused_until(now), Some(now + Duration::from_secs(2)));
        assert_eq!(l.allowed(now + Duration::from_secs(2)), 7);
        // No Retry-After: one second; an absurd one is capped.
        l.observe(now, now + MS, Answer::Throttled(None));
        assert_eq!(l.paused_until(now + MS), Some(now + Duration::from_secs(2)), "the longer pause stands");
        let later = now + Duration::from_secs(10);
        l.observe(later, later, Answer::Throttled(Some(Duration::from_secs(3600))));
        assert_eq!(l.paused_until(later), Some(later + PAUSE_MAX));
        // Never below one write at a time.
        for i in 0..20 {
            let t = later + Duration::from_secs(40 + i);
            l.observe(t, t, Answer::Throttled(None));
        }
        assert_eq!(l.allowed(later + Duration::from_secs(100)), 1);
    }

    #[test]
    fn answers_are_read_from_the_api_status() {
        let status = |code: u16, retry: u32| {
            let s: kube::core::Status = serde_json::from_value(serde_json::json!({
                "status": "Failure", "code": code, "message": "m", "reason": "r",
                "details": {"retryAfterSeconds": retry},
            }))
            .unwrap();
            Err::<(), _>(kube::Error::Api(Box::new(s)))
        };
        assert_eq!(Answer::of(&Ok::<(), kube::Error>(())), Answer::Answered);
        assert_eq!(Answer::of(&status(429, 3)), Answer::Throttled(Some(Duration::from_secs(3))));
        assert_eq!(Answer::of(&status(429, 0)), Answer::Throttled(None));
        assert_eq!(Answer::of(&status(409, 0)), Answer::Answered, "a conflict is a prompt answer");
        assert_eq!(Answer::of(&status(503, 0)), Answer::Unknown);
    }

    #[tokio::test]
    async fn events_wait_behind_workload_writes() {
        let t = Arc::new(Throttle::new(1, Arc::new(Metrics::new(false))));
        let (release, hold) = tokio::sync::oneshot::channel::<()>();
        let first = tokio::spawn({
            let t = t.clone();
            async move {
                t.send(Class::Workload, async {
                    hold.await.ok();
                    Ok::<_, kube::Error>(())
                })
                .await
            }
        });
        tokio::task::yield_now().await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let write = |class: Class, name: &'static str| {
            let (t, order) = (t.clone(), order.clone());
            tokio::spawn(async move {
                t.send(class, async {
                    order.lock().unwrap().push(name);
                    Ok::<_, kube::Error>(())
                })
                .await
            })
        };
        // The Event asks first, the workload write second; one place, taken.
        let event = write(Class::Event, "event");
        tokio::time::sleep(Duration::from_millis(20)).await;
        let workload = write(Class::Workload, "workload");
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(order.lock().unwrap().is_empty(), "no place while the first write is in flight");
        release.send(()).unwrap();
        for h in [event, workload] {
            h.await.unwrap().unwrap();
        }
        first.await.unwrap().unwrap();
        assert_eq!(*order.lock().unwrap(), ["workload", "event"]);
    }

    #[tokio::test]
    async fn every_waiting_write_gets_its_turn() {
        let t = Arc::new(Throttle::new(2, Arc::new(Metrics::new(false))));
        let done = Arc::new(Mutex::new((0, 0)));
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..200 {
            let (t, done) = (t.clone(), done.clone());
            let class = if i % 2 == 0 { Class::Event } else { Class::Workload };
            tasks.spawn(async move {
                t.send(class, async {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    Ok::<_, kube::Error>(())
                })
                .await
                .unwrap();
                let mut d = done.lock().unwrap();
                if class == Class::Event { d.0 += 1 } else { d.1 += 1 }
            });
        }
        tokio::time::timeout(Duration::from_secs(10), async { while tasks.join_next().await.is_some() {} })
            .await
            .expect("no write left waiting");
        assert_eq!(*done.lock().unwrap(), (100, 100));
        let s = t.state.lock().unwrap();
        assert_eq!((s.in_flight, s.workloads_waiting), (0, 0));
    }

    #[tokio::test]
    async fn writes_waiting_when_a_pause_starts_go_once_it_ends() {
        let t = Arc::new(Throttle::new(1, Arc::new(Metrics::new(false))));
        let throttled = || {
            let s: kube::core::Status = serde_json::from_value(serde_json::json!({
                "status": "Failure", "code": 429, "message": "m", "reason": "TooManyRequests",
                "details": {"retryAfterSeconds": 1},
            }))
            .unwrap();
            Err::<(), _>(kube::Error::Api(Box::new(s)))
        };
        let (release, hold) = tokio::sync::oneshot::channel::<()>();
        let first = tokio::spawn({
            let t = t.clone();
            async move {
                t.send(Class::Workload, async {
                    hold.await.ok();
                    throttled()
                })
                .await
            }
        });
        tokio::task::yield_now().await;
        let started = Instant::now();
        let second = tokio::spawn({
            let t = t.clone();
            async move { t.send(Class::Workload, async { Ok::<_, kube::Error>(()) }).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        // The first write is refused with a 1 s Retry-After while the second waits; nothing
        // else ends after that.
        release.send(()).unwrap();
        assert!(first.await.unwrap().is_err());
        tokio::time::timeout(Duration::from_secs(5), second).await.expect("the waiting write went").unwrap().unwrap();
        assert!(started.elapsed() >= Duration::from_millis(990), "it waited for the pause");
    }
}
