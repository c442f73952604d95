//! The storm brake: how often a workload whose sources keep changing is reloaded. Pure: the
//! caller passes the clock.
//!
//! Spacing that grows while the changes go on, and a release that follows the sources' own
//! rhythm:
//! - the first [`FREE`] reloads within `--flap-window` go at once: a typo fixed a few seconds
//!   after a change is applied in about a second;
//! - each further one waits `--min-reload-interval` after the previous, doubling each time
//!   (10 s, 20 s, 40 s at the defaults), changes in between folding into it;
//! - after `--flap-limit` reloads within the window the workload is **held** (Reloader #1183:
//!   two writers fighting over a Secret rolled 80,000 ReplicaSets): it reloads when its sources
//!   go quiet, and otherwise once per `--flap-hold-max`, with their latest content, so it never
//!   falls behind for good;
//! - at any time, a waiting reload goes once the sources have been quiet for twice their
//!   longest recent pause (at least [`QUIET_FLOOR`], at most `--flap-settle`). Writes that
//!   stopped are applied seconds later, while a source changing every P seconds never looks
//!   quiet (2P > P): it stays spaced or held. A pause longer than `--flap-settle` ends a rhythm.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// Reloads within the window that no spacing delays.
pub(crate) const FREE: usize = 2;

/// The shortest quiet that releases a waiting reload: below it, the gaps within a burst, or a
/// writer's stall on a loaded API server, would.
pub(crate) const QUIET_FLOOR: Duration = Duration::from_secs(2);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BrakeSettings {
    /// The spacing after the [`FREE`] reloads, doubled for each further one (0: no spacing).
    pub(crate) min_interval: Duration,
    /// Reloads within `flap_window` after which the workload is held (0: never).
    pub(crate) flap_limit: usize,
    pub(crate) flap_window: Duration,
    /// The most the sources must stay quiet to release a waiting reload.
    pub(crate) settle: Duration,
    /// A held workload still reloads once per this interval (0: only when quiet).
    pub(crate) hold_max: Duration,
}

/// Per-workload history.
#[derive(Clone, Debug, Default)]
pub(crate) struct Brake {
    /// Reloads within the window, oldest first.
    reloads: VecDeque<Instant>,
    last_reload: Option<Instant>,
    held: bool,
    last_change: Option<Instant>,
    /// The longest pause between two changes since the sources were last quiet.
    rhythm: Duration,
    /// When the reload the spacing defers is due.
    deferred: Option<Instant>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Check {
    /// Reload now.
    Go,
    /// Spaced: look again at `at`; changes meanwhile fold into that reload. `newly`: not
    /// deferred before (report it once).
    Wait { at: Instant, newly: bool },
    /// Flapping: held until then; `newly` is true the first time (report it once).
    Hold { until: Instant, newly: bool },
}

impl Brake {
    /// A governing source changed.
    pub(crate) fn changed(&mut self, s: &BrakeSettings, now: Instant) {
        if let Some(last) = self.last_change {
            let pause = now.saturating_duration_since(last);
            self.rhythm = if pause > s.settle { Duration::ZERO } else { self.rhythm.max(pause) };
        }
        self.last_change = Some(now);
    }

    pub(crate) fn is_held(&self) -> bool {
        self.held
    }

    /// Whether a reload waits for its spacing at `now`.
    pub(crate) fn is_deferred(&self, now: Instant) -> bool {
        !self.held && self.deferred.is_some_and(|t| t > now)
    }

    /// Nothing to remember: no reload within the window (as last checked), not held.
    pub(crate) fn is_idle(&self) -> bool {
        self.reloads.is_empty() && !self.held
    }

    /// How long the sources must stay quiet to release a waiting reload.
    pub(crate) fn quiet_needed(&self, s: &BrakeSettings) -> Duration {
        (self.rhythm * 2).clamp(QUIET_FLOOR, s.settle.max(QUIET_FLOOR))
    }

    /// May the workload reload now?
    pub(crate) fn check(&mut self, s: &BrakeSettings, now: Instant) -> Check {
        while self.reloads.front().is_some_and(|t| now.duration_since(*t) > s.flap_window) {
            self.reloads.pop_front();
        }
        // When the sources count as quiet; with no change seen, they are.
        let quiet_at = self.last_change.map_or(now, |c| c + self.quiet_needed(s));
        if self.held {
            if now >= quiet_at {
                // Quiet: one reload with the latest state, and a fresh start.
                self.held = false;
                self.reloads.clear();
                return Check::Go;
            }
            return self.hold(s, quiet_at, now, false);
        }
        if now >= quiet_at {
            return Check::Go;
        }
        let n = self.reloads.len();
        if s.flap_limit > 0 && n >= s.flap_limit {
            self.held = true;
            return self.hold(s, quiet_at, now, true);
        }
        if let (Some(last), Some(spacing)) = (self.reloads.back(), spacing(s, n)) {
            let due = *last + spacing;
            if now < due {
                let at = due.min(quiet_at);
                let newly = self.deferred.is_none_or(|t| t <= now);
                self.deferred = Some(at);
                return Check::Wait { at, newly };
            }
        }
        Check::Go
    }

    /// Held: released at `quiet_at`, or reloaded once `--flap-hold-max` after the last reload.
    fn hold(&mut self, s: &BrakeSettings, quiet_at: Instant, now: Instant, newly: bool) -> Check {
        let turn = (!s.hold_max.is_zero()).then(|| self.last_reload.map_or(now, |t| t + s.hold_max));
        if turn.is_some_and(|t| t <= now) {
            return Check::Go;
        }
        let until = turn.map_or(quiet_at, |t| t.min(quiet_at));
        Check::Hold { until: until.max(now + Duration::from_millis(1)), newly }
    }

    /// A reload was written.
    pub(crate) fn reloaded(&mut self, now: Instant) {
        self.reloads.push_back(now);
        self.last_reload = Some(now);
        self.deferred = None;
    }
}

/// The wait after the `n`-th reload within the window: none for the first [`FREE`], then
/// `min_interval` doubling.
fn spacing(s: &BrakeSettings, n: usize) -> Option<Duration> {
    if n < FREE || s.min_interval.is_zero() {
        return None;
    }
    let doublings = u32::try_from(n - FREE).unwrap_or(u32::MAX).min(20);
    Some(s.min_interval.saturating_mul(1 << doublings))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn defaults() -> BrakeSettings {
        BrakeSettings { min_interval: 10 * S, flap_limit: 5, flap_window: 600 * S, settle: 120 * S, hold_max: 1800 * S }
    }

    /// Drives a brake through changes at the given times (seconds from the start), as the
    /// controller does: each change asks for a reload; a reload the brake defers is looked at
    /// again when it says, until it goes. Returns the reload times, from the start.
    fn run(s: &BrakeSettings, changes: &[f64], until: f64) -> Vec<f64> {
        let t0 = Instant::now();
        let at = |x: f64| t0 + Duration::from_secs_f64(x);
        let mut b = Brake::default();
        let mut reloads = Vec::new();
        let mut next_look: Option<f64> = None;
        let mut i = 0;
        loop {
            let change = changes.get(i).copied();
            // The next event: a change, or a look the brake asked for.
            let (t, is_change) = match (change, next_look) {
                (Some(c), Some(l)) if l < c => (l, false),
                (Some(c), _) => (c, true),
                (None, Some(l)) => (l, false),
                (None, None) => break,
            };
            if t > until {
                break;
            }
            if is_change {
                b.changed(s, at(t));
                i += 1;
            }
            match b.check(s, at(t)) {
                Check::Go => {
                    b.reloaded(at(t));
                    reloads.push(t);
                    next_look = None;
                }
                Check::Wait { at: w, .. } | Check::Hold { until: w, .. } => {
                    next_look = Some(w.duration_since(t0).as_secs_f64());
                }
            }
        }
        reloads
    }

    fn every(period: f64, from: f64, to: f64) -> Vec<f64> {
        let mut v = Vec::new();
        let mut t = from;
        while t < to {
            v.push(t);
            t += period;
        }
        v
    }

    /// A deterministic stand-in for random writers: changes `mean` seconds apart on average,
    /// between 0.2 and 1.8 × the mean.
    fn jittered(mean: f64, to: f64) -> Vec<f64> {
        let mut v = Vec::new();
        let (mut t, mut x) = (0.0, 7u64);
        while t < to {
            v.push(t);
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            t += mean * (0.2 + 1.6 * ((x >> 33) as f64 / (1u64 << 31) as f64));
        }
        v
    }

    #[test]
    fn a_second_change_seconds_later_is_applied_at_once() {
        let r = run(&defaults(), &[0.0, 3.0], 100.0);
        assert_eq!(r, vec![0.0, 3.0]);
    }

    #[test]
    fn the_third_reload_is_spaced_and_folds_what_came_meanwhile() {
        // Changes at 0, 1, 2, 3, 4 then quiet: reloads at 0, 1, then the third waits for the
        // spacing (10 s after 1) or quiet (2 × the 1 s rhythm after 4), whichever is first.
        let r = run(&defaults(), &[0.0, 1.0, 2.0, 3.0, 4.0], 100.0);
        assert_eq!(r, vec![0.0, 1.0, 6.0]);
    }

    #[test]
    fn sustained_writes_converge_within_seconds_of_the_last_and_roll_a_fraction_of_the_changes() {
        for (mean, secs) in [(2.5, 60.0), (2.5, 300.0), (1.0, 600.0), (5.0, 120.0)] {
            let changes = jittered(mean, secs);
            let last = *changes.last().unwrap();
            let r = run(&defaults(), &changes, secs + 600.0);
            let final_reload = *r.last().unwrap();
            assert!(final_reload >= last, "{mean}s × {secs}s: the last change is applied");
            assert!(
                final_reload - last <= 30.0,
                "{mean}s × {secs}s: applied {:.1}s after the last",
                final_reload - last
            );
            let ratio = r.len() as f64 / changes.len() as f64;
            assert!(ratio <= 0.3, "{mean}s × {secs}s: {} rollouts for {} changes", r.len(), changes.len());
        }
    }

    #[test]
    fn a_source_flapping_every_15s_or_60s_rolls_a_bounded_number_of_times_an_hour() {
        let s = defaults();
        // Two free reloads, two spaced (10 s, 20 s, 40 s: the changes fold in), held at the
        // fifth, then once per --flap-hold-max.
        let first = |p: f64| {
            if p == 15.0 {
                vec![0.0, 15.0, 30.0, 50.0, 90.0, 1890.0]
            } else {
                vec![0.0, 60.0, 120.0, 180.0, 240.0, 2040.0]
            }
        };
        for (period, first_hour, after_stop) in [(15.0, 6, 30.0), (60.0, 6, 120.0)] {
            // Flapping for three hours, then it stops.
            let changes = every(period, 0.0, 3.0 * 3600.0);
            let last = *changes.last().unwrap();
            let r = run(&s, &changes, 4.0 * 3600.0);
            assert_eq!(r[..6], first(period), "every {period}s");
            let hour = |h: f64| r.iter().filter(|t| **t >= h * 3600.0 && **t < (h + 1.0) * 3600.0).count();
            assert!(hour(0.0) <= first_hour, "every {period}s: {} in the first hour: {r:?}", hour(0.0));
            assert!(hour(1.0) <= 2 && hour(2.0) <= 2, "every {period}s: {} and {} later", hour(1.0), hour(2.0));
            assert!(hour(1.0) >= 1, "every {period}s: still applied now and then while it flaps");
            let final_reload = *r.last().unwrap();
            assert_eq!(final_reload - last, after_stop, "every {period}s: the last content after it stops");
        }
    }

    #[test]
    fn bursts_with_pauses_shorter_than_settle_stay_bounded() {
        // 5 changes 1 s apart, then 20 s quiet, for an hour: the pauses are part of the rhythm,
        // so a 20 s quiet never releases.
        let mut changes = Vec::new();
        let mut t = 0.0;
        while t < 3600.0 {
            changes.extend((0..5).map(|i| t + i as f64));
            t += 24.0;
        }
        let r = run(&defaults(), &changes, 3600.0);
        assert!(r.len() <= 6, "{} rollouts: {r:?}", r.len());
    }

    #[test]
    fn held_until_quiet_when_hold_max_is_zero_and_a_hold_is_reported_once() {
        let s = BrakeSettings { hold_max: Duration::ZERO, ..defaults() };
        let t0 = Instant::now();
        let mut b = Brake::default();
        let mut newly = 0;
        for i in 0..200u32 {
            let t = t0 + S * 15 * i;
            b.changed(&s, t);
            match b.check(&s, t) {
                Check::Go => b.reloaded(t),
                Check::Hold { newly: true, .. } => newly += 1,
                _ => {}
            }
        }
        assert!(b.is_held());
        assert_eq!(newly, 1);
        let last = t0 + S * 15 * 199;
        assert_eq!(b.check(&s, last + 29 * S), Check::Hold { until: last + 30 * S, newly: false });
        assert_eq!(b.check(&s, last + 30 * S), Check::Go);
        assert!(!b.is_held(), "released: a fresh start");
    }

    #[test]
    fn a_pause_longer_than_settle_ends_the_rhythm() {
        let s = defaults();
        let t0 = Instant::now();
        let mut b = Brake::default();
        b.changed(&s, t0);
        b.changed(&s, t0 + 100 * S);
        assert_eq!(b.quiet_needed(&s), 120 * S, "a 100 s pause: 200 s, at most settle");
        b.changed(&s, t0 + 300 * S);
        assert_eq!(b.quiet_needed(&s), QUIET_FLOOR, "a 200 s pause is quiet, not rhythm");
    }

    #[test]
    fn spacing_doubles_after_the_free_reloads() {
        let s = defaults();
        let got: Vec<_> = (0..6).map(|n| spacing(&s, n)).collect();
        assert_eq!(got, vec![None, None, Some(10 * S), Some(20 * S), Some(40 * S), Some(80 * S)]);
        assert_eq!(spacing(&s, 500), Some(10 * S * (1 << 20)), "bounded, no overflow");
    }

    #[test]
    fn a_deferred_reload_is_known_until_it_goes() {
        let s = defaults();
        let t0 = Instant::now();
        let mut b = Brake::default();
        for i in 0..3u32 {
            b.changed(&s, t0 + S * i / 10);
        }
        b.reloaded(t0);
        b.reloaded(t0 + S / 10);
        b.changed(&s, t0 + S / 5);
        let Check::Wait { at, newly: true } = b.check(&s, t0 + S / 5) else { panic!("spaced") };
        assert!(b.is_deferred(t0 + S / 5));
        assert_eq!(b.check(&s, t0 + S / 4), Check::Wait { at, newly: false }, "reported once");
        assert!(!b.is_deferred(at), "due: no longer deferred");
        b.reloaded(at);
        assert!(!b.is_deferred(t0 + S / 5));
    }

    #[test]
    fn zero_settings_disable_the_brake() {
        let s = BrakeSettings {
            min_interval: Duration::ZERO,
            flap_limit: 0,
            flap_window: Duration::ZERO,
            settle: Duration::ZERO,
            hold_max: Duration::ZERO,
        };
        let r = run(&s, &every(0.01, 0.0, 1.0), 10.0);
        assert_eq!(r.len(), 100);
    }
}
