//! The active (in-memory, newest) part of the key index: key hash -> chain of
//! (physical offset, store timestamp), newest first. Pure; no I/O.
//!
//! Memory is bounded by the capacity given at construction (the store passes
//! `INDEX_ACTIVE_ENTRIES_MAX` or its configured value): when [`ActiveTable::is_full`], the owner
//! seals the table into an immutable file and starts a new one. Entries arrive in CommitLog
//! order, so the table also knows the CommitLog range it covers. Must never: grow past its
//! capacity, or return an entry outside the asked time range.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// One indexed occurrence of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    /// Stable hash of `topic#key` ([`super::key::key_hash`]).
    pub key_hash: u64,
    /// CommitLog offset of the record carrying the key.
    pub phys_offset: u64,
    /// Store timestamp of that record (ms).
    pub store_timestamp: i64,
}

/// The table's keys are already [`super::key::key_hash`] values, finalised with a 64-bit mixer
/// (every bit depends on every input bit), so hashing them again only costs time: SipHash was
/// ~3.5 % of a loaded broker's CPU. SipHash would not protect against chosen keys either: keys
/// that collide in `key_hash` collide whatever the map hashes them with.
#[derive(Debug, Default, Clone, Copy)]
struct KeyHashHasher(u64);

impl Hasher for KeyHashHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed here (`write_u64`); anything else folds in byte by byte.
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

type Heads = HashMap<u64, u32, BuildHasherDefault<KeyHashHasher>>;

/// No previous entry in a chain.
const CHAIN_END: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
struct Slot {
    entry: IndexEntry,
    /// Index (in `entries`) of the next older entry with the same key hash.
    previous: u32,
}

/// In-memory hash table with chains, capped at `capacity` entries.
#[derive(Debug)]
pub struct ActiveTable {
    capacity: u32,
    entries: Vec<Slot>,
    heads: Heads,
    /// CommitLog range whose records have all been offered to this table:
    /// `[covered_begin, covered_end)`.
    covered_begin: u64,
    covered_end: u64,
    store_timestamp_min: i64,
    store_timestamp_max: i64,
}

impl ActiveTable {
    /// An empty table covering nothing yet, starting at CommitLog offset `covered_begin`.
    ///
    /// # Panics
    /// If `capacity` is 0 or does not fit the on-disk `u32` entry numbers.
    #[must_use]
    pub fn new(capacity: usize, covered_begin: u64) -> Self {
        assert!(capacity > 0, "an index table must hold at least one entry");
        let capacity = u32::try_from(capacity).expect("index table capacity must fit in u32");
        assert!(
            capacity < CHAIN_END,
            "capacity must leave room for the chain terminator"
        );
        Self {
            capacity,
            entries: Vec::new(),
            heads: Heads::default(),
            covered_begin,
            covered_end: covered_begin,
            store_timestamp_min: i64::MAX,
            store_timestamp_max: i64::MIN,
        }
    }

    /// Number of entries held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is indexed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// True when no further entry may be inserted: the owner must seal.
    #[must_use]
    pub fn is_full(&self) -> bool {
        self.entries.len() >= self.capacity as usize
    }

    /// Free entry slots.
    #[must_use]
    pub fn remaining(&self) -> usize {
        self.capacity as usize - self.entries.len()
    }

    /// `[covered_begin, covered_end)`: every record in this CommitLog range has been offered.
    #[must_use]
    pub fn covered(&self) -> (u64, u64) {
        (self.covered_begin, self.covered_end)
    }

    /// Smallest and largest store timestamps held, `None` when empty.
    #[must_use]
    pub fn store_timestamp_range(&self) -> Option<(i64, i64)> {
        (!self.is_empty()).then_some((self.store_timestamp_min, self.store_timestamp_max))
    }

    /// Records that every record before `phys_end` has been offered (keys or not).
    ///
    /// # Panics
    /// If the coverage would move backwards (records are dispatched in CommitLog order).
    pub fn advance_covered(&mut self, phys_end: u64) {
        assert!(
            phys_end >= self.covered_end,
            "index coverage must only move forward"
        );
        self.covered_end = phys_end;
    }

    /// Adds one key occurrence.
    ///
    /// # Panics
    /// If the table is full (the owner must seal first), or the entry lies before the range
    /// already covered (dispatch order is CommitLog order).
    pub fn insert(&mut self, entry: IndexEntry) {
        assert!(
            !self.is_full(),
            "insert into a full index table; seal first"
        );
        assert!(
            entry.phys_offset >= self.covered_begin,
            "entry before the table's range"
        );
        let index = u32::try_from(self.entries.len()).expect("bounded by capacity");
        let previous = self
            .heads
            .insert(entry.key_hash, index)
            .unwrap_or(CHAIN_END);
        self.entries.push(Slot { entry, previous });
        self.store_timestamp_min = self.store_timestamp_min.min(entry.store_timestamp);
        self.store_timestamp_max = self.store_timestamp_max.max(entry.store_timestamp);
    }

    /// Physical offsets for `key_hash` with `begin <= store_timestamp <= end`, newest first,
    /// appended to `out` until it holds `limit` items.
    pub fn query(&self, key_hash: u64, begin: i64, end: i64, limit: usize, out: &mut Vec<u64>) {
        let mut cursor = self.heads.get(&key_hash).copied().unwrap_or(CHAIN_END);
        let mut steps = 0usize;
        while cursor != CHAIN_END && out.len() < limit {
            steps += 1;
            assert!(steps <= self.entries.len(), "index chain must not loop");
            let slot = &self.entries[cursor as usize];
            assert_eq!(
                slot.entry.key_hash, key_hash,
                "chain holds one key hash only"
            );
            let store_timestamp = slot.entry.store_timestamp;
            if (begin..=end).contains(&store_timestamp) {
                out.push(slot.entry.phys_offset);
            }
            cursor = slot.previous;
        }
    }

    /// Drops the entries of records at or after `phys` (the CommitLog was truncated there) and
    /// ends the covered range at `phys`.
    ///
    /// # Panics
    /// If `phys` lies before the table's covered range.
    pub fn truncate(&mut self, phys: u64) {
        assert!(
            phys >= self.covered_begin,
            "truncation before the table's range"
        );
        // Entries were inserted in CommitLog order.
        let cut = self
            .entries
            .partition_point(|slot| slot.entry.phys_offset < phys);
        self.entries.truncate(cut);
        // Chains point only at older entries, so the kept prefix stays linked; heads move back.
        self.heads.clear();
        self.store_timestamp_min = i64::MAX;
        self.store_timestamp_max = i64::MIN;
        for (index, slot) in self.entries.iter().enumerate() {
            let index = u32::try_from(index).expect("bounded by capacity");
            self.heads.insert(slot.entry.key_hash, index);
            self.store_timestamp_min = self.store_timestamp_min.min(slot.entry.store_timestamp);
            self.store_timestamp_max = self.store_timestamp_max.max(slot.entry.store_timestamp);
        }
        self.covered_end = self.covered_end.min(phys);
    }

    /// All entries, oldest first (the order they were inserted).
    pub fn entries(&self) -> impl ExactSizeIterator<Item = &IndexEntry> + '_ {
        self.entries.iter().map(|slot| &slot.entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key_hash: u64, phys_offset: u64, store_timestamp: i64) -> IndexEntry {
        IndexEntry {
            key_hash,
            phys_offset,
            store_timestamp,
        }
    }

    #[test]
    fn chains_newest_first_with_time_range_and_limit() {
        let mut table = ActiveTable::new(16, 0);
        for i in 0..6u64 {
            table.insert(entry(1, i * 10, i64::try_from(i).expect("small") * 100));
            table.insert(entry(2, i * 10 + 5, 0));
        }
        table.advance_covered(60);
        let mut out = Vec::new();
        table.query(1, 0, i64::MAX, 100, &mut out);
        assert_eq!(out, [50, 40, 30, 20, 10, 0]);
        out.clear();
        table.query(1, 100, 300, 100, &mut out);
        assert_eq!(out, [30, 20, 10]);
        out.clear();
        table.query(1, 0, i64::MAX, 2, &mut out);
        assert_eq!(out, [50, 40]);
        out.clear();
        table.query(3, 0, i64::MAX, 2, &mut out);
        assert!(out.is_empty());
        assert_eq!(table.covered(), (0, 60));
        assert_eq!(table.store_timestamp_range(), Some((0, 500)));
    }

    #[test]
    fn truncate_drops_entries_from_an_offset_and_keeps_chains() {
        let mut table = ActiveTable::new(16, 0);
        for i in 0..6u64 {
            table.insert(entry(1, i * 10, i64::try_from(i).expect("small")));
            table.insert(entry(2, i * 10 + 5, 100));
        }
        table.advance_covered(60);
        table.truncate(25);
        let mut out = Vec::new();
        table.query(1, 0, i64::MAX, 100, &mut out);
        assert_eq!(out, [20, 10, 0]);
        out.clear();
        table.query(2, 0, i64::MAX, 100, &mut out);
        assert_eq!(out, [15, 5]);
        assert_eq!(table.covered(), (0, 25));
        assert_eq!(table.store_timestamp_range(), Some((0, 100)));
        table.insert(entry(1, 30, 7));
        out.clear();
        table.query(1, 0, i64::MAX, 100, &mut out);
        assert_eq!(out, [30, 20, 10, 0], "new entries chain onto the kept ones");
        table.truncate(0);
        assert!(table.is_empty());
        assert_eq!(table.store_timestamp_range(), None);
    }

    #[test]
    fn capacity_is_respected() {
        let mut table = ActiveTable::new(3, 0);
        for i in 0..3 {
            assert!(!table.is_full());
            table.insert(entry(i, i, 0));
        }
        assert!(table.is_full());
        assert_eq!(table.remaining(), 0);
    }

    #[test]
    #[should_panic(expected = "seal first")]
    fn insert_past_capacity_panics() {
        let mut table = ActiveTable::new(1, 0);
        table.insert(entry(1, 0, 0));
        table.insert(entry(1, 1, 0));
    }
}
