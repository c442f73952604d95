//! Paces adoption writes (`--adoption-writes-per-second`). A caller reserves the next free
//! turn and is told when it is; the worker re-queues the workload for then instead of sleeping,
//! so a waiting adoption holds no worker and a reload never queues behind one.
//!
//! Turns are handed out evenly spaced, with no burst beyond one: the first adoption after a
//! quiet spell goes at once, the second 1/N s later, and so on. A token bucket with a burst
//! would let a first start write N records in its first instant. Reserving (rather than asking
//! "may I now?", which is what `governor`'s limiters answer, with the earliest time to ask again)
//! means each waiting workload is looked at twice, to reserve and to write: 10,000 workloads
//! told "not before T" would all come back at T and all but one be turned away again.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
pub(crate) struct Pacer {
    /// Time between two turns; `None`: unlimited.
    interval: Option<Duration>,
    /// The earliest time the next reservation may have.
    next: Mutex<Option<Instant>>,
}

impl Pacer {
    /// `per_second` turns a second; 0: unlimited.
    pub(crate) fn new(per_second: u32) -> Pacer {
        let interval = (per_second > 0).then(|| Duration::from_secs(1) / per_second);
        Pacer { interval, next: Mutex::new(None) }
    }

    /// Reserves the next turn at or after `now` and returns its time.
    pub(crate) fn reserve(&self, now: Instant) -> Instant {
        let Some(interval) = self.interval else { return now };
        let mut next = self.next.lock().expect("pacer lock");
        let turn = next.map_or(now, |n| n.max(now));
        *next = Some(turn + interval);
        turn
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[tokio::test(start_paused = true)]
    async fn turns_are_evenly_spaced() {
        let p = Pacer::new(10);
        let t0 = Instant::now();
        let turns: Vec<Duration> = (0..5).map(|_| p.reserve(Instant::now()) - t0).collect();
        assert_eq!(turns, [ms(0), ms(100), ms(200), ms(300), ms(400)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_spell_gives_no_burst_afterwards() {
        let p = Pacer::new(10);
        let t0 = Instant::now();
        assert_eq!(p.reserve(t0), t0);
        tokio::time::advance(Duration::from_secs(5)).await;
        let t1 = Instant::now();
        // Time passed unused is not saved up: one turn now, the next one interval later.
        assert_eq!(p.reserve(t1), t1);
        assert_eq!(p.reserve(t1), t1 + ms(100));
    }

    #[tokio::test(start_paused = true)]
    async fn reservations_made_while_waiting_line_up_behind_the_last() {
        let p = Pacer::new(20);
        let t0 = Instant::now();
        for _ in 0..10 {
            p.reserve(t0);
        }
        tokio::time::advance(ms(120)).await;
        // Ten turns were taken up to 450 ms; the next is at 500 ms, however late it is asked for.
        assert_eq!(p.reserve(Instant::now()) - t0, ms(500));
    }

    #[tokio::test(start_paused = true)]
    async fn zero_is_unlimited() {
        let p = Pacer::new(0);
        let t0 = Instant::now();
        for _ in 0..1000 {
            assert_eq!(p.reserve(t0), t0);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn one_thousand_turns_at_twenty_a_second_take_fifty_seconds() {
        let p = Pacer::new(20);
        let t0 = Instant::now();
        let last = (0..1000).map(|_| p.reserve(t0)).last().unwrap();
        assert_eq!(last - t0, Duration::from_millis(49_950));
    }
}
