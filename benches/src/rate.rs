//! Token bucket that caps how many messages a harness thread sends per second (`--rate`).
//! Pure: the caller passes the clock reading, so tests drive time by hand. One bucket per
//! harness thread (the total rate is split evenly), shared by that thread's producers.
//! Must never sleep, read a clock itself, or let a long pause bank more than one burst.

use std::time::{Duration, Instant};

/// The bucket holds at most this many seconds of traffic: enough to absorb timer jitter of a
/// few milliseconds at any rate without letting a stall turn into a long burst.
pub const BURST_WINDOW: Duration = Duration::from_millis(10);

/// Caps a message rate. Tokens refill continuously at `rate_per_second` up to `burst`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate_per_second: f64,
    burst: f64,
    tokens: f64,
    refilled_at: Instant,
}

impl TokenBucket {
    /// A bucket that allows `rate_per_second` on average and bursts of at most
    /// `max(rate × BURST_WINDOW, largest_take)` (so one batch always fits). Starts full.
    ///
    /// # Panics
    /// If `rate_per_second` is not positive and finite, or `largest_take` is 0.
    #[must_use]
    pub fn new(rate_per_second: f64, largest_take: u32, now: Instant) -> Self {
        assert!(rate_per_second.is_finite(), "rate must be finite");
        assert!(rate_per_second > 0.0, "rate must be positive");
        assert!(largest_take > 0, "a take of zero tokens is meaningless");
        let burst = (rate_per_second * BURST_WINDOW.as_secs_f64()).max(f64::from(largest_take));
        Self {
            rate_per_second,
            burst,
            tokens: burst,
            refilled_at: now,
        }
    }

    /// Average rate, tokens per second.
    #[must_use]
    pub fn rate_per_second(&self) -> f64 {
        self.rate_per_second
    }

    /// Largest number of tokens the bucket holds.
    #[must_use]
    pub fn burst(&self) -> f64 {
        self.burst
    }

    /// Takes `count` tokens if they are there at `now`; otherwise takes nothing and returns
    /// how long until they will be.
    ///
    /// # Errors
    /// The wait until `count` tokens are available.
    ///
    /// # Panics
    /// If `count` exceeds the burst (it could never be satisfied).
    pub fn try_take(&mut self, count: u32, now: Instant) -> Result<(), Duration> {
        let wanted = f64::from(count);
        assert!(wanted <= self.burst, "take of {count} exceeds the burst");
        self.refill(now);
        if self.tokens >= wanted {
            self.tokens -= wanted;
            assert!(self.tokens >= 0.0);
            return Ok(());
        }
        let missing = wanted - self.tokens;
        let wait = Duration::from_secs_f64(missing / self.rate_per_second);
        // A wait that rounds to zero would spin; one nanosecond makes the caller yield.
        Err(wait.max(Duration::from_nanos(1)))
    }

    fn refill(&mut self, now: Instant) {
        // A clock reading older than the last one (callers on one thread read a monotonic
        // clock, but in any order) adds nothing.
        let elapsed = now.saturating_duration_since(self.refilled_at);
        if elapsed.is_zero() {
            return;
        }
        self.tokens = (self.tokens + elapsed.as_secs_f64() * self.rate_per_second).min(self.burst);
        self.refilled_at = now;
        assert!(self.tokens <= self.burst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_full_then_refills_at_the_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(1000.0, 1, start);
        // 1000/s × 10 ms = 10 tokens of burst.
        assert!((bucket.burst() - 10.0).abs() < 1e-9);
        for _ in 0..10 {
            assert_eq!(bucket.try_take(1, start), Ok(()));
        }
        let wait = bucket.try_take(1, start).expect_err("bucket is empty");
        assert_eq!(wait, Duration::from_millis(1));
        assert!(bucket
            .try_take(1, start + Duration::from_micros(999))
            .is_err());
        assert_eq!(bucket.try_take(1, start + Duration::from_millis(1)), Ok(()));
    }

    #[test]
    fn long_pause_banks_at_most_one_burst() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(1000.0, 1, start);
        let later = start + Duration::from_secs(60);
        let mut taken = 0;
        while bucket.try_take(1, later).is_ok() {
            taken += 1;
        }
        assert_eq!(taken, 10);
    }

    #[test]
    fn average_rate_holds_over_a_simulated_second() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(50_000.0, 1, start);
        let mut now = start;
        let end = start + Duration::from_secs(1);
        let mut taken = 0_u64;
        while now < end {
            match bucket.try_take(1, now) {
                Ok(()) => taken += 1,
                Err(wait) => now += wait,
            }
        }
        // Initial burst (500) plus one second at the rate, give or take one token.
        assert!((50_499..=50_501).contains(&taken), "took {taken}");
    }

    #[test]
    fn burst_fits_the_largest_batch_and_waits_are_exact() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(100.0, 64, start);
        assert!((bucket.burst() - 64.0).abs() < 1e-9);
        assert_eq!(bucket.try_take(64, start), Ok(()));
        let wait = bucket.try_take(32, start).expect_err("empty");
        assert_eq!(wait, Duration::from_millis(320));
        assert_eq!(bucket.try_take(32, start + wait), Ok(()));
        // An older clock reading neither refills nor panics.
        assert!(bucket.try_take(1, start).is_err());
    }

    #[test]
    #[should_panic(expected = "exceeds the burst")]
    fn take_above_burst_is_a_bug() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(100.0, 1, start);
        let _ = bucket.try_take(2, start);
    }
}
