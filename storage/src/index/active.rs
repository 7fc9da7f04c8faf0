//! The active (in-memory, newest) part of the key index: key hash -> chain of
//! (physical offset, store timestamp), newest first. Pure; no I/O.
//!
//! Memory is bounded by the capacity given at construction (the store passes
//! `INDEX_ACTIVE_ENTRIES_MAX` or its configured value): when [`ActiveTable::is_full`], the owner
//! seals the table into an immutable file and starts a new one. Entries arrive in CommitLog
//! order, so the table also knows the CommitLog range it covers. Must never: grow past its
//! capacity, or return an entry outside the asked time range.

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

/// No previous entry in a chain.
const CHAIN_END: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
struct Slot {
    entry: IndexEntry,
    /// Index (in `entries`) of the next older entry with the same key hash.
    previous: u32,
}

/// Hash slots per entry of capacity (rounded up to a power of two): at most half the slots are
/// ever used, so chains stay short. The slot array is 4 bytes per slot, 8 per entry: 2 MiB
/// for the default 2^18 entries, less than the `HashMap<u64, u32>` it replaced (~6 MiB full).
const SLOTS_PER_ENTRY: usize = 2;

/// In-memory hash table with chains, capped at `capacity` entries. Like Java's `IndexFile`, a
/// key hash picks a slot by its low bits (the hashes are already finalised with a 64-bit
/// mixer, see [`super::key::key_hash`]) and a slot heads a chain of every entry whose hash
/// falls in it, newest first; a query skips the other hashes. One memory access per insert
/// instead of a hash map's probe: the insert was ~3 % of a loaded broker's CPU, most of it
/// the map's probe missing the cache.
#[derive(Debug)]
pub struct ActiveTable {
    capacity: u32,
    entries: Vec<Slot>,
    /// Per slot, 1 + the index of the newest entry in it; 0 for none (a zeroed allocation).
    heads: Box<[u32]>,
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
            // Reserved whole: growing by doubling copied the entries (up to 8 MiB) and
            // faulted in every new block again.
            entries: Vec::with_capacity(capacity as usize),
            heads: vec![0u32; slot_count(capacity)].into_boxed_slice(),
            covered_begin,
            covered_end: covered_begin,
            store_timestamp_min: i64::MAX,
            store_timestamp_max: i64::MIN,
        }
    }

    /// An empty table like [`ActiveTable::new`], in the memory of `old` (a table that was
    /// sealed and written) when its capacity is the one asked: its entry vector is cleared
    /// and its slots zeroed instead of a fresh allocation whose every page faults in on first
    /// touch (~4.5 % of a catching-up slave's CPU went to faulting in new tables' pages).
    #[must_use]
    pub fn recycled(old: Self, capacity: usize, covered_begin: u64) -> Self {
        if old.capacity as usize != capacity {
            return Self::new(capacity, covered_begin);
        }
        let Self {
            capacity,
            mut entries,
            mut heads,
            ..
        } = old;
        entries.clear();
        heads.fill(0);
        Self {
            capacity,
            entries,
            heads,
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
        let slot = self.slot_of(entry.key_hash);
        let previous = self.heads[slot].checked_sub(1).unwrap_or(CHAIN_END);
        self.heads[slot] = index + 1;
        self.entries.push(Slot { entry, previous });
        self.store_timestamp_min = self.store_timestamp_min.min(entry.store_timestamp);
        self.store_timestamp_max = self.store_timestamp_max.max(entry.store_timestamp);
    }

    /// Hints the CPU to load the chain head an insert of `key_hash` will update.
    pub fn prefetch(&self, key_hash: u64) {
        let head: &u32 = &self.heads[self.slot_of(key_hash)];
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch is a hint: it never faults, reads nothing into the program and
        // writes nothing; the pointer comes from a live reference.
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(head).cast::<i8>());
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = head;
    }

    /// Physical offsets for `key_hash` with `begin <= store_timestamp <= end`, newest first,
    /// appended to `out` until it holds `limit` items.
    pub fn query(&self, key_hash: u64, begin: i64, end: i64, limit: usize, out: &mut Vec<u64>) {
        let head = self.heads[self.slot_of(key_hash)];
        let mut cursor = head.checked_sub(1).unwrap_or(CHAIN_END);
        let mut steps = 0usize;
        while cursor != CHAIN_END && out.len() < limit {
            steps += 1;
            assert!(steps <= self.entries.len(), "index chain must not loop");
            let slot = &self.entries[cursor as usize];
            assert!(
                slot.previous == CHAIN_END || slot.previous < cursor,
                "chains go back"
            );
            let store_timestamp = slot.entry.store_timestamp;
            if slot.entry.key_hash == key_hash && (begin..=end).contains(&store_timestamp) {
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
        self.heads.fill(0);
        self.store_timestamp_min = i64::MAX;
        self.store_timestamp_max = i64::MIN;
        let mask = self.heads.len() - 1;
        for (index, slot) in self.entries.iter().enumerate() {
            let index = u32::try_from(index).expect("bounded by capacity");
            self.heads[slot_index(slot.entry.key_hash, mask)] = index + 1;
            self.store_timestamp_min = self.store_timestamp_min.min(slot.entry.store_timestamp);
            self.store_timestamp_max = self.store_timestamp_max.max(slot.entry.store_timestamp);
        }
        self.covered_end = self.covered_end.min(phys);
    }

    fn slot_of(&self, key_hash: u64) -> usize {
        slot_index(key_hash, self.heads.len() - 1)
    }

    /// All entries, oldest first (the order they were inserted).
    pub fn entries(&self) -> impl ExactSizeIterator<Item = &IndexEntry> + '_ {
        self.entries.iter().map(|slot| &slot.entry)
    }
}

/// Slots of a table of `capacity` entries: a power of two, [`SLOTS_PER_ENTRY`] per entry.
fn slot_count(capacity: u32) -> usize {
    (capacity as usize * SLOTS_PER_ENTRY).next_power_of_two()
}

fn slot_index(key_hash: u64, mask: usize) -> usize {
    // Truncation intended: the low bits pick the slot (`mask` < 2^32).
    #[allow(clippy::cast_possible_truncation)]
    let low = key_hash as usize;
    low & mask
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
    fn hashes_sharing_a_slot_answer_only_for_themselves() {
        let mut table = ActiveTable::new(16, 0);
        let slots = slot_count(16) as u64;
        // Same low bits, different hashes: one slot, one chain.
        let (a, b) = (5, 5 + slots);
        assert_eq!(table.slot_of(a), table.slot_of(b));
        for i in 0..4u64 {
            table.insert(entry(a, i * 10, 0));
            table.insert(entry(b, i * 10 + 5, 0));
        }
        let mut out = Vec::new();
        table.query(a, 0, i64::MAX, 100, &mut out);
        assert_eq!(out, [30, 20, 10, 0]);
        out.clear();
        table.query(b, 0, i64::MAX, 3, &mut out);
        assert_eq!(out, [35, 25, 15], "the limit counts matches only");
        table.truncate(20);
        out.clear();
        table.query(b, 0, i64::MAX, 100, &mut out);
        assert_eq!(out, [15, 5]);
        out.clear();
        table.query(a, 0, i64::MAX, 100, &mut out);
        assert_eq!(out, [10, 0]);
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
