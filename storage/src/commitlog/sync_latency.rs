//! fdatasync latency of one CommitLog: a fixed-bucket histogram the flusher feeds once per
//! fdatasync round (the round already reads the clock), read by the broker's metrics scrape.
//! Owned by the log (`Cell`s, single thread).
//!
//! Must never: allocate or take a lock when recording, or record anything but a completed
//! fdatasync round.

use std::cell::Cell;
use std::time::Duration;

/// Upper bounds (microseconds) of the buckets: 0.1 ms to 30 s (the last bucket is `+Inf`).
pub const SYNC_LATENCY_BOUNDS_MICROS: &[u64] = &[
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000, 30_000_000,
];

const BUCKETS: usize = SYNC_LATENCY_BOUNDS_MICROS.len() + 1;

/// The histogram of fdatasync round durations.
#[derive(Debug, Default)]
pub(super) struct SyncLatency {
    counts: [Cell<u64>; BUCKETS],
    sum_micros: Cell<u64>,
}

/// What [`SyncLatency`] counted: observations per bucket (not cumulative, `+Inf` last) and
/// the sum of the durations in microseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncLatencySnapshot {
    /// Rounds per bucket of [`SYNC_LATENCY_BOUNDS_MICROS`], then `+Inf`.
    pub counts: Vec<u64>,
    /// Sum of the round durations, microseconds.
    pub sum_micros: u64,
}

impl SyncLatency {
    /// Counts one fdatasync round that took `elapsed`.
    pub(super) fn record(&self, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let index = SYNC_LATENCY_BOUNDS_MICROS.partition_point(|bound| *bound < micros);
        assert!(index < BUCKETS, "partition_point stays within the buckets");
        let cell = &self.counts[index];
        cell.set(cell.get() + 1);
        self.sum_micros
            .set(self.sum_micros.get().saturating_add(micros));
    }

    /// The counts so far.
    pub(super) fn snapshot(&self) -> SyncLatencySnapshot {
        SyncLatencySnapshot {
            counts: self.counts.iter().map(Cell::get).collect(),
            sum_micros: self.sum_micros.get(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_land_in_their_bucket() {
        let latency = SyncLatency::default();
        latency.record(Duration::from_micros(100));
        latency.record(Duration::from_micros(101));
        latency.record(Duration::from_secs(31));
        let snapshot = latency.snapshot();
        assert_eq!(snapshot.counts.len(), SYNC_LATENCY_BOUNDS_MICROS.len() + 1);
        assert_eq!((snapshot.counts[0], snapshot.counts[1]), (1, 1));
        assert_eq!(*snapshot.counts.last().expect("+Inf"), 1);
        assert_eq!(snapshot.sum_micros, 100 + 101 + 31_000_000);
    }
}
