//! The storm brake. A workload is reloaded at most once per `min_interval` (changes in between
//! fold into the next reload), and one that would reload more than `flap_limit` times within
//! `flap_window` is held until its sources have been quiet for `settle` — so a Secret fought
//! over by two writers cannot roll a workload forever (Reloader #1183). Pure: the caller passes
//! the clock.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BrakeSettings {
    pub(crate) min_interval: Duration,
    pub(crate) flap_limit: usize,
    pub(crate) flap_window: Duration,
    pub(crate) settle: Duration,
}

/// Per-workload history.
#[derive(Clone, Debug, Default)]
pub(crate) struct Brake {
    reloads: VecDeque<Instant>,
    held: bool,
    last_change: Option<Instant>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Check {
    /// Reload now.
    Go,
    /// Too soon after the last reload: look again then.
    Wait(Instant),
    /// Flapping: held; `newly` is true the first time (report it once).
    Hold { until: Instant, newly: bool },
}

impl Brake {
    /// A governing source changed.
    pub(crate) fn changed(&mut self, now: Instant) {
        self.last_change = Some(now);
    }

    pub(crate) fn is_held(&self) -> bool {
        self.held
    }

    /// Nothing to remember: no reload within the window (as last checked), not held.
    pub(crate) fn is_idle(&self) -> bool {
        self.reloads.is_empty() && !self.held
    }

    /// May the workload reload now?
    pub(crate) fn check(&mut self, s: &BrakeSettings, now: Instant) -> Check {
        while self.reloads.front().is_some_and(|t| now.duration_since(*t) > s.flap_window) {
            self.reloads.pop_front();
        }
        if self.held {
            let quiet_since = self.last_change.unwrap_or(now);
            let until = quiet_since + s.settle;
            if now < until {
                return Check::Hold { until, newly: false };
            }
            // Settled: one reload with the latest state, and a fresh start.
            self.held = false;
            self.reloads.clear();
            return Check::Go;
        }
        if s.flap_limit > 0 && self.reloads.len() >= s.flap_limit {
            self.held = true;
            let until = self.last_change.unwrap_or(now) + s.settle;
            return Check::Hold { until: until.max(now + Duration::from_millis(1)), newly: true };
        }
        if let Some(last) = self.reloads.back()
            && now.duration_since(*last) < s.min_interval
        {
            return Check::Wait(*last + s.min_interval);
        }
        Check::Go
    }

    /// A reload was written.
    pub(crate) fn reloaded(&mut self, now: Instant) {
        self.reloads.push_back(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> BrakeSettings {
        BrakeSettings {
            min_interval: Duration::from_secs(10),
            flap_limit: 3,
            flap_window: Duration::from_secs(600),
            settle: Duration::from_secs(60),
        }
    }

    #[test]
    fn min_interval_defers_and_then_allows() {
        let s = settings();
        let t0 = Instant::now();
        let mut b = Brake::default();
        assert_eq!(b.check(&s, t0), Check::Go);
        b.reloaded(t0);
        let t1 = t0 + Duration::from_secs(3);
        assert_eq!(b.check(&s, t1), Check::Wait(t0 + Duration::from_secs(10)));
        assert_eq!(b.check(&s, t0 + Duration::from_secs(10)), Check::Go);
    }

    #[test]
    fn flapping_is_held_until_quiet() {
        let s = settings();
        let t0 = Instant::now();
        let mut b = Brake::default();
        let mut t = t0;
        for _ in 0..3 {
            b.changed(t);
            assert_eq!(b.check(&s, t), Check::Go);
            b.reloaded(t);
            t += Duration::from_secs(20);
        }
        b.changed(t);
        let v = b.check(&s, t);
        assert_eq!(v, Check::Hold { until: t + Duration::from_secs(60), newly: true });
        assert!(b.is_held());
        // Still changing: the hold moves with the last change.
        let t2 = t + Duration::from_secs(30);
        b.changed(t2);
        assert_eq!(
            b.check(&s, t2 + Duration::from_secs(59)),
            Check::Hold { until: t2 + Duration::from_secs(60), newly: false }
        );
        // Quiet for `settle`: released, one reload.
        assert_eq!(b.check(&s, t2 + Duration::from_secs(60)), Check::Go);
        assert!(!b.is_held());
    }

    #[test]
    fn old_reloads_leave_the_window() {
        let s = settings();
        let t0 = Instant::now();
        let mut b = Brake::default();
        for i in 0..3 {
            b.reloaded(t0 + Duration::from_secs(20 * i));
        }
        assert_eq!(b.check(&s, t0 + Duration::from_secs(700)), Check::Go);
    }

    #[test]
    fn zero_settings_disable_the_brake() {
        let s = BrakeSettings {
            min_interval: Duration::ZERO,
            flap_limit: 0,
            flap_window: Duration::ZERO,
            settle: Duration::ZERO,
        };
        let t0 = Instant::now();
        let mut b = Brake::default();
        for i in 0..100 {
            let t = t0 + Duration::from_millis(i);
            assert_eq!(b.check(&s, t), Check::Go);
            b.reloaded(t);
        }
    }
}
