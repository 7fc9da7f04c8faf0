//! Timer load (`--timer-delay-ms MIN..MAX`): every single send carries `TIMER_DELIVER_MS`, an
//! absolute due time spread uniformly over `[anchor + MIN, anchor + MAX]`, where the anchor is
//! the message's born time (`--timer-anchor born`) or the run's start (`start`, so that every
//! timer of a run falls due in one window after the sends). The spread comes from a hash of
//! (producer, sequence): no state beyond the producer's message counter, no allocation, and
//! consecutive messages land in different wheel slots.
//! Must never make a due time outside the range (the broker refuses one beyond
//! `timerMaxDelaySec`), nor be used on a batch or a transaction half message (the broker
//! refuses timer properties there; the CLI rejects the combination first).

use std::fmt;
use std::str::FromStr;

use clap::ValueEnum;
use serde::Serialize;

/// Longest delay accepted: the broker's largest `timerMaxDelaySec` (2 years), in ms.
pub const TIMER_DELAY_MS_MAX: u64 = 63_072_000_000;

/// What a timer's delay is counted from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TimerAnchor {
    /// The message's born timestamp (each message due MIN..MAX after it is sent).
    Born,
    /// The run's start (every message due in one window, whenever it is sent).
    Start,
}

/// A `MIN..MAX` range of delays, ms (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DelayRange {
    /// Shortest delay, ms.
    pub min_ms: u64,
    /// Longest delay, ms.
    pub max_ms: u64,
}

/// Why a `--timer-delay-ms` value does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a delay range is MIN..MAX in ms with MIN <= MAX <= {TIMER_DELAY_MS_MAX}: {0}")]
pub struct DelayRangeError(String);

impl FromStr for DelayRange {
    type Err = DelayRangeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || DelayRangeError(text.to_owned());
        let (min, max) = match text.split_once("..") {
            Some((min, max)) => (min, max),
            None => (text, text),
        };
        let min_ms: u64 = min.trim().parse().map_err(|_| bad())?;
        let max_ms: u64 = max.trim().parse().map_err(|_| bad())?;
        if min_ms > max_ms || max_ms > TIMER_DELAY_MS_MAX {
            return Err(bad());
        }
        Ok(Self { min_ms, max_ms })
    }
}

impl fmt::Display for DelayRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.min_ms, self.max_ms)
    }
}

/// The timer part of a run's message spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerSpec {
    /// Delays.
    pub delay: DelayRange,
    /// The run's start, ms since the epoch, when delays count from it; `None`: from each
    /// message's born time.
    pub start_anchor_ms: Option<i64>,
}

impl TimerSpec {
    /// The due time of message `sequence` of producer `producer_index`, born at `born_ms`.
    #[must_use]
    pub fn deliver_ms(&self, producer_index: usize, sequence: u64, born_ms: i64) -> i64 {
        let span = self.delay.max_ms - self.delay.min_ms + 1;
        let draw = mix((producer_index as u64) << 40 ^ sequence) % span;
        let delay = self.delay.min_ms + draw;
        debug_assert!(delay <= self.delay.max_ms);
        let delay = i64::try_from(delay).expect("delays are capped far below i64::MAX");
        self.start_anchor_ms
            .unwrap_or(born_ms)
            .saturating_add(delay)
    }
}

/// SplitMix64's finaliser: a bijection on u64 whose outputs look uniform for counters.
fn mix(value: u64) -> u64 {
    let mut z = value.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_bad_ones_are_refused() {
        let range: DelayRange = "3600000..7200000".parse().expect("range");
        assert_eq!((range.min_ms, range.max_ms), (3_600_000, 7_200_000));
        assert_eq!(range.to_string(), "3600000..7200000");
        let single: DelayRange = "500".parse().expect("one value");
        assert_eq!((single.min_ms, single.max_ms), (500, 500));
        for bad in ["", "a..b", "5..4", "-1..3", "1..", "0..63072000001"] {
            assert!(bad.parse::<DelayRange>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn due_times_stay_in_range_and_fill_it_evenly() {
        let spec = TimerSpec {
            delay: DelayRange {
                min_ms: 1_000,
                max_ms: 100_999,
            },
            start_anchor_ms: None,
        };
        let born = 1_700_000_000_000;
        let mut buckets = [0_u32; 100];
        for sequence in 0..100_000 {
            let due = spec.deliver_ms(3, sequence, born);
            let delay = due - born;
            assert!((1_000..=100_999).contains(&delay), "{delay}");
            buckets[usize::try_from((delay - 1_000) / 1_000).expect("small")] += 1;
        }
        // 1 000 expected per 1 s bucket; a uniform draw stays well within ±20 %.
        assert!(
            buckets.iter().all(|&n| (800..=1_200).contains(&n)),
            "{buckets:?}"
        );
        let anchored = TimerSpec {
            start_anchor_ms: Some(5_000),
            ..spec
        };
        let due = anchored.deliver_ms(0, 7, born);
        assert!((6_000..=105_999).contains(&due));
        assert_ne!(spec.deliver_ms(0, 7, born), spec.deliver_ms(1, 7, born));
    }
}
