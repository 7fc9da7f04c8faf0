//! Rate-limited reporting of an operation that is retried and keeps failing (the store
//! checkpoint, consume-queue block writes): the first failure of a streak is reported at once,
//! then at most one summary per [`FAILURE_REPORT_INTERVAL`], and the recovery when it succeeds
//! again. Pure: time is an argument, and the caller logs what it is told.
//!
//! Must never: hide the first failure or the recovery, or report more than once per interval
//! while the streak lasts.

use std::time::{Duration, Instant};

/// While an operation keeps failing, at most one report per this interval: a checkpoint retried
/// every 2 s on each shard would otherwise log 30 lines a minute per shard for as long as the
/// resource (file descriptors, disk space) stays gone.
pub const FAILURE_REPORT_INTERVAL: Duration = Duration::from_secs(60);

/// What to report after one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    /// The first failure of a streak.
    First,
    /// Still failing, last reported at least [`FAILURE_REPORT_INTERVAL`] ago.
    Ongoing {
        /// Failures in the streak so far.
        failures: u64,
        /// Since the streak's first failure.
        since: Duration,
    },
    /// Still failing, reported recently: nothing to say.
    Quiet,
    /// Succeeded after a streak of failures.
    Recovered {
        /// Failures in the streak.
        failures: u64,
        /// From the streak's first failure to this success.
        lasted: Duration,
    },
    /// Succeeded; nothing was failing.
    Fine,
}

/// The current streak of failures of one operation.
#[derive(Debug, Default)]
pub struct FailureStreak {
    started: Option<Instant>,
    failures: u64,
    reported: Option<Instant>,
}

impl FailureStreak {
    /// Records a failure at `now`.
    pub fn failed(&mut self, now: Instant) -> Report {
        self.failures += 1;
        let Some(started) = self.started else {
            assert_eq!(self.failures, 1, "a streak starts with its first failure");
            self.started = Some(now);
            self.reported = Some(now);
            return Report::First;
        };
        let reported = self.reported.expect("a running streak was reported");
        if now.saturating_duration_since(reported) < FAILURE_REPORT_INTERVAL {
            return Report::Quiet;
        }
        self.reported = Some(now);
        Report::Ongoing {
            failures: self.failures,
            since: now.saturating_duration_since(started),
        }
    }

    /// Records a success at `now`, ending any streak.
    pub fn succeeded(&mut self, now: Instant) -> Report {
        let Some(started) = self.started.take() else {
            assert_eq!(self.failures, 0, "no streak, no failures");
            return Report::Fine;
        };
        let failures = std::mem::take(&mut self.failures);
        assert!(failures >= 1, "a streak holds at least one failure");
        self.reported = None;
        Report::Recovered {
            failures,
            lasted: now.saturating_duration_since(started),
        }
    }

    /// Failures in the current streak (0 when the last attempt succeeded).
    #[must_use]
    pub fn failures(&self) -> u64 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_failure_then_one_report_per_interval_then_recovery() {
        let start = Instant::now();
        let at = |seconds: u64| start + Duration::from_secs(seconds);
        let mut streak = FailureStreak::default();
        assert_eq!(streak.succeeded(at(0)), Report::Fine);
        assert_eq!(streak.failed(at(0)), Report::First);
        // A checkpoint every 2 s: quiet until the interval passed since the last report.
        let mut reports = Vec::new();
        for seconds in (2..=150).step_by(2) {
            match streak.failed(at(seconds)) {
                Report::Quiet => {}
                report => reports.push((seconds, report)),
            }
        }
        assert_eq!(
            reports,
            vec![
                (
                    60,
                    Report::Ongoing {
                        failures: 31,
                        since: Duration::from_secs(60)
                    }
                ),
                (
                    120,
                    Report::Ongoing {
                        failures: 61,
                        since: Duration::from_secs(120)
                    }
                ),
            ]
        );
        assert_eq!(streak.failures(), 76);
        assert_eq!(
            streak.succeeded(at(152)),
            Report::Recovered {
                failures: 76,
                lasted: Duration::from_secs(152)
            }
        );
        assert_eq!(streak.failures(), 0);
        assert_eq!(streak.succeeded(at(154)), Report::Fine);
        assert_eq!(
            streak.failed(at(156)),
            Report::First,
            "a new streak is reported at once"
        );
    }
}
