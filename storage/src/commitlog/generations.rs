//! Which generation the entries of the log's recent tail carry: pure bookkeeping, no I/O.
//!
//! Owns [`Generations`]: the generation of the last entry before a base offset plus the runs of
//! equal generation appended since. Entries written by this open carry its generation; entries
//! replicated from a master carry the master's (any value not below the last entry's). The
//! CommitLog checkpoint stores, for its durable offset, the generation of the last entry before
//! it as the recovery scan's floor: every entry after it has at least that generation, so the
//! scan may reject a lower one as stale, and a slave's log (whose entries can be older than the
//! slave's own generation) still recovers.
//!
//! Must never: let the generation of appended entries decrease, or answer for an offset below
//! its base (the caller must find that generation by scanning, then [`Generations::reset`]).

use std::collections::VecDeque;

/// Generation runs of the log from `base_offset` to the append mark. Bounded: runs below the
/// newest checkpoint are dropped ([`Generations::forget_before`]), and a run starts only when
/// the generation rises (once per open of the log or of a master it replicates).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Generations {
    /// Offset from which the runs are known.
    base_offset: u64,
    /// Generation of the last entry ending at or before `base_offset` (0: none).
    base_generation: u32,
    /// (start offset, generation) of each later run, ascending in both.
    runs: VecDeque<(u64, u32)>,
}

impl Generations {
    /// Known from `offset` on, where the last entry before it has `generation`.
    pub(crate) fn new(offset: u64, generation: u32) -> Self {
        Self {
            base_offset: offset,
            base_generation: generation,
            runs: VecDeque::new(),
        }
    }

    /// Generation of the last entry appended (or of the last one before the base).
    pub(crate) fn last(&self) -> u32 {
        self.runs
            .back()
            .map_or(self.base_generation, |&(_, generation)| generation)
    }

    /// Records an entry appended at `offset` with `generation`.
    ///
    /// # Panics
    /// If the generation decreases or the offset goes backwards (callers validate first).
    pub(crate) fn appended(&mut self, offset: u64, generation: u32) {
        assert!(
            generation >= self.last(),
            "entry generations never decrease along the log"
        );
        let start = self
            .runs
            .back()
            .map_or(self.base_offset, |&(start, _)| start);
        assert!(offset >= start, "entries are appended in log order");
        if generation > self.last() {
            self.runs.push_back((offset, generation));
        }
    }

    /// Generation of the last entry ending at or before `offset` (an entry boundary at or
    /// after the base); `None` below the base.
    pub(crate) fn before(&self, offset: u64) -> Option<u32> {
        if offset < self.base_offset {
            return None;
        }
        let run = self.runs.iter().rev().find(|&&(start, _)| start < offset);
        Some(run.map_or(self.base_generation, |&(_, generation)| generation))
    }

    /// Drops what is known below `offset` (a checkpoint was written there).
    pub(crate) fn forget_before(&mut self, offset: u64) {
        let Some(generation) = self.before(offset) else {
            return;
        };
        self.base_offset = offset;
        self.base_generation = generation;
        self.runs.retain(|&(start, _)| start >= offset);
    }

    /// Starts over at `offset`, where the last entry before it has `generation`.
    pub(crate) fn reset(&mut self, offset: u64, generation: u32) {
        *self = Self::new(offset, generation);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_answer_the_generation_before_an_offset() {
        let mut gens = Generations::new(1000, 3);
        assert_eq!((gens.last(), gens.before(1000)), (3, Some(3)));
        assert_eq!(gens.before(999), None);
        gens.appended(1000, 3);
        gens.appended(1100, 5);
        gens.appended(1200, 5);
        gens.appended(1300, 9);
        assert_eq!(gens.last(), 9);
        assert_eq!(gens.before(1100), Some(3), "the entry before 1100 is gen 3");
        assert_eq!(gens.before(1200), Some(5));
        assert_eq!(gens.before(1300), Some(5));
        assert_eq!(gens.before(1400), Some(9));
        gens.forget_before(1200);
        assert_eq!(gens.before(1200), Some(5));
        assert_eq!(gens.before(1100), None);
        assert_eq!(gens.before(1400), Some(9));
        gens.reset(1100, 3);
        assert_eq!((gens.last(), gens.before(1100)), (3, Some(3)));
    }

    #[test]
    #[should_panic(expected = "never decrease")]
    fn a_decreasing_generation_panics() {
        let mut gens = Generations::new(0, 4);
        gens.appended(0, 3);
    }
}
