//! Search by store timestamp over a queue's offsets, as a sans-io state machine: the caller
//! asks [`TimeSearch::next_probe`] which offset to read, reads that entry's store timestamp
//! (from memory or an O_DIRECT block) and hands it back with [`TimeSearch::feed`]. Pure; no I/O.
//!
//! Semantics (PROTOCOL.md §4.5, Java `getOffsetInQueueByTime` then clamped to [min, max]):
//! * [`Boundary::Lower`]: the first offset whose store time is >= the timestamp, or `max` when
//!   every message is older.
//! * [`Boundary::Upper`]: the last offset whose store time is <= the timestamp, or `min` when
//!   every message is newer (Java returns 0 there and then clamps it up to the min offset).
//! * An empty queue answers `min` (== `max`).
//!
//! Store timestamps are assumed non-decreasing along the queue (they are assigned in append
//! order); if a clock stepped back the answer is still an offset inside [min, max].

/// Which side of a run of equal or missing timestamps to land on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Boundary {
    /// First offset with store time >= timestamp (Java `BoundaryType.LOWER`, the default).
    Lower,
    /// Last offset with store time <= timestamp (Java `BoundaryType.UPPER`).
    Upper,
}

/// Binary search state: finds the partition point of the predicate described in the module doc
/// over `[low, high)`.
#[derive(Debug, Clone)]
pub struct TimeSearch {
    min_offset: u64,
    low: u64,
    high: u64,
    timestamp: i64,
    boundary: Boundary,
    probes: u32,
}

/// Upper bound on probes: one per bit of the offset space, so a search can never loop.
const PROBES_MAX: u32 = 64;

impl TimeSearch {
    /// Starts a search over the queue range `[min_offset, max_offset)`.
    ///
    /// # Panics
    /// If `min_offset > max_offset` (a caller bug).
    #[must_use]
    pub fn new(min_offset: u64, max_offset: u64, timestamp: i64, boundary: Boundary) -> Self {
        assert!(min_offset <= max_offset, "queue range must not be inverted");
        Self {
            min_offset,
            low: min_offset,
            high: max_offset,
            timestamp,
            boundary,
            probes: 0,
        }
    }

    /// The offset whose store timestamp the search needs next, or `None` when it is done.
    #[must_use]
    pub fn next_probe(&self) -> Option<u64> {
        (self.low < self.high).then(|| self.low + (self.high - self.low) / 2)
    }

    /// Reports the store timestamp of the offset returned by [`Self::next_probe`].
    ///
    /// # Panics
    /// If `offset` is not the pending probe, or the search ran more probes than possible.
    pub fn feed(&mut self, offset: u64, store_timestamp: i64) {
        assert_eq!(
            Some(offset),
            self.next_probe(),
            "fed an offset that was not asked for"
        );
        self.probes += 1;
        assert!(self.probes <= PROBES_MAX, "binary search must converge");
        // Partition predicate: Lower -> ts >= target; Upper -> ts > target.
        let right_side = match self.boundary {
            Boundary::Lower => store_timestamp >= self.timestamp,
            Boundary::Upper => store_timestamp > self.timestamp,
        };
        if right_side {
            self.high = offset;
        } else {
            self.low = offset + 1;
        }
    }

    /// The answer once [`Self::next_probe`] returns `None`.
    ///
    /// # Panics
    /// If the search is not finished.
    #[must_use]
    pub fn result(&self) -> u64 {
        assert!(
            self.next_probe().is_none(),
            "search still has probes to run"
        );
        match self.boundary {
            Boundary::Lower => self.low,
            Boundary::Upper => self.low.saturating_sub(1).max(self.min_offset),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a search over `timestamps` laid out from `min`.
    fn run(min: u64, timestamps: &[i64], target: i64, boundary: Boundary) -> u64 {
        let max = min + timestamps.len() as u64;
        let mut search = TimeSearch::new(min, max, target, boundary);
        while let Some(probe) = search.next_probe() {
            let index = usize::try_from(probe - min).expect("small");
            search.feed(probe, timestamps[index]);
        }
        search.result()
    }

    /// The same answer computed by a linear scan.
    fn model(min: u64, timestamps: &[i64], target: i64, boundary: Boundary) -> u64 {
        let max = min + timestamps.len() as u64;
        match boundary {
            Boundary::Lower => timestamps
                .iter()
                .position(|&ts| ts >= target)
                .map_or(max, |index| min + index as u64),
            Boundary::Upper => timestamps
                .iter()
                .rposition(|&ts| ts <= target)
                .map_or(min, |index| min + index as u64),
        }
    }

    #[test]
    fn edges_and_equal_runs() {
        let ts = [10, 20, 20, 20, 30, 40];
        // Before the first message.
        assert_eq!(run(100, &ts, 5, Boundary::Lower), 100);
        assert_eq!(run(100, &ts, 5, Boundary::Upper), 100);
        // After the last message.
        assert_eq!(run(100, &ts, 50, Boundary::Lower), 106);
        assert_eq!(run(100, &ts, 50, Boundary::Upper), 105);
        // Equal timestamps: lower lands on the first of the run, upper on the last.
        assert_eq!(run(100, &ts, 20, Boundary::Lower), 101);
        assert_eq!(run(100, &ts, 20, Boundary::Upper), 103);
        // Between two timestamps (Java's "t2 has no entry" case): upper < lower.
        assert_eq!(run(100, &ts, 25, Boundary::Lower), 104);
        assert_eq!(run(100, &ts, 25, Boundary::Upper), 103);
        // Exact first and last.
        assert_eq!(run(100, &ts, 10, Boundary::Upper), 100);
        assert_eq!(run(100, &ts, 40, Boundary::Lower), 105);
    }

    #[test]
    fn empty_queue_answers_min() {
        assert_eq!(run(7, &[], 1, Boundary::Lower), 7);
        assert_eq!(run(7, &[], 1, Boundary::Upper), 7);
    }

    #[test]
    fn matches_linear_model() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..2000 {
            let len = rng.gen_range(0..40);
            let mut ts = Vec::with_capacity(len);
            let mut now = rng.gen_range(0..10);
            for _ in 0..len {
                now += rng.gen_range(0..3);
                ts.push(now);
            }
            let min = rng.gen_range(0..1000);
            let target = rng.gen_range(-2..now + 3);
            for boundary in [Boundary::Lower, Boundary::Upper] {
                assert_eq!(
                    run(min, &ts, target, boundary),
                    model(min, &ts, target, boundary)
                );
            }
        }
    }

    #[test]
    #[should_panic(expected = "not asked for")]
    fn feeding_the_wrong_offset_panics() {
        let mut search = TimeSearch::new(0, 10, 5, Boundary::Lower);
        search.feed(9, 1);
    }
}
