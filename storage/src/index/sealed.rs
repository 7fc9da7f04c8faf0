//! On-disk format of a sealed (immutable) index file. Pure encoding and decoding; no I/O.
//!
//! A sealed file is one [`super::active::ActiveTable`] written out once, O_DIRECT, in 4 KiB
//! blocks:
//!
//! ```text
//! block 0                 header: magic, version, slot_count, entry_count, covered CommitLog
//!                         range [begin, end), store-timestamp range, CRC
//! blocks 1 ..= S          hash slots, 511 per block: (first entry u32, entry count u32);
//!                         the block's last 8 bytes: CRC u32 (over the block number and the
//!                         slots), zero u32
//! blocks S+1 ..           entries, 128 per block, 32 bytes each: key_hash u64, phys_offset u64,
//!                         store_timestamp i64, CRC u32 (over the entry number and those
//!                         24 bytes), zero u32
//! ```
//!
//! Entries are sorted by (slot, key hash, phys offset descending), so all entries of one slot
//! are contiguous and one key's entries are contiguous and newest first: a query reads one slot
//! block and usually one entry block. Every CRC is xored with a constant so zero-filled blocks
//! never validate. Must never: return a decoded value whose CRC did not match.

use super::active::{ActiveTable, IndexEntry};

/// Block size of the sealed file (O_DIRECT unit).
pub const BLOCK_SIZE: usize = 4096;
/// Bytes per stored entry.
pub const ENTRY_SIZE: usize = 32;
/// Entries per block.
pub const ENTRIES_PER_BLOCK: usize = BLOCK_SIZE / ENTRY_SIZE;
/// Bytes per hash slot.
const SLOT_SIZE: usize = 8;
/// Slots per slot block (the last 8 bytes hold the block CRC).
pub const SLOTS_PER_BLOCK: usize = (BLOCK_SIZE - 8) / SLOT_SIZE;
/// Average entries per slot the layout aims for: one slot block + one entry block per query.
const ENTRIES_PER_SLOT_TARGET: u32 = 2;
/// File magic, first 8 bytes of block 0.
const MAGIC: [u8; 8] = *b"RMQIDX01";
/// Format version.
const VERSION: u32 = 1;
const HEADER_CRC_XOR: u32 = 0x1d3a_0001;
const SLOT_CRC_XOR: u32 = 0x1d3a_0002;
const ENTRY_CRC_XOR: u32 = 0x1d3a_0003;

const _: () = {
    assert!(
        SLOTS_PER_BLOCK * SLOT_SIZE + 8 == BLOCK_SIZE,
        "slot block must be exactly full"
    );
    assert!(
        ENTRIES_PER_BLOCK * ENTRY_SIZE == BLOCK_SIZE,
        "entries must tile a block"
    );
};

/// Why a sealed file's bytes were rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// Block 0 is not a sealed index header (wrong magic, version or CRC).
    #[error("index header invalid: {reason}")]
    Header {
        /// What was wrong.
        reason: &'static str,
    },
    /// A slot block failed its CRC.
    #[error("index slot block {block} failed its CRC")]
    SlotBlock {
        /// Block number in the file.
        block: u64,
    },
    /// An entry failed its CRC.
    #[error("index entry {entry} failed its CRC")]
    Entry {
        /// Entry number in the file.
        entry: u32,
    },
    /// A slot points outside the file's entries.
    #[error("index slot {slot} points at entries {first}+{count} beyond {entry_count}")]
    SlotRange {
        /// Slot number.
        slot: u32,
        /// First entry of the slot.
        first: u32,
        /// Entries in the slot.
        count: u32,
        /// Entries in the file.
        entry_count: u32,
    },
}

/// What block 0 says about a sealed file. Kept in memory for every sealed file (a few dozen
/// bytes per file, never per entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealedHeader {
    /// Number of hash slots.
    pub slot_count: u32,
    /// Number of entries.
    pub entry_count: u32,
    /// CommitLog range whose records were all offered to this file: `[begin, end)`.
    pub covered_begin: u64,
    /// End of that range (exclusive).
    pub covered_end: u64,
    /// Smallest store timestamp of an entry.
    pub store_timestamp_min: i64,
    /// Largest store timestamp of an entry.
    pub store_timestamp_max: i64,
}

impl SealedHeader {
    /// Number of slot blocks.
    #[must_use]
    pub fn slot_blocks(&self) -> u64 {
        (self.slot_count as usize).div_ceil(SLOTS_PER_BLOCK) as u64
    }

    /// Number of entry blocks.
    #[must_use]
    pub fn entry_blocks(&self) -> u64 {
        (self.entry_count as usize).div_ceil(ENTRIES_PER_BLOCK) as u64
    }

    /// File size in bytes (whole blocks).
    #[must_use]
    pub fn file_size(&self) -> u64 {
        (1 + self.slot_blocks() + self.entry_blocks()) * BLOCK_SIZE as u64
    }

    /// The slot a key hash lives in.
    #[must_use]
    pub fn slot_of(&self, key_hash: u64) -> u32 {
        u32::try_from(key_hash % u64::from(self.slot_count)).expect("slot < slot_count")
    }

    /// Block number and byte position inside it of `slot`.
    #[must_use]
    pub fn slot_location(&self, slot: u32) -> (u64, usize) {
        assert!(slot < self.slot_count, "slot out of range");
        let slot = slot as usize;
        (
            1 + (slot / SLOTS_PER_BLOCK) as u64,
            (slot % SLOTS_PER_BLOCK) * SLOT_SIZE,
        )
    }

    /// Block number holding entry `entry`.
    #[must_use]
    pub fn entry_block(&self, entry: u32) -> u64 {
        assert!(entry < self.entry_count, "entry out of range");
        1 + self.slot_blocks() + (entry as usize / ENTRIES_PER_BLOCK) as u64
    }

    /// Does the file hold entries whose time range overlaps `[begin, end]`?
    #[must_use]
    pub fn overlaps(&self, begin: i64, end: i64) -> bool {
        self.store_timestamp_min <= end && begin <= self.store_timestamp_max
    }
}

fn slot_count_for(entry_count: u32) -> u32 {
    entry_count.div_ceil(ENTRIES_PER_SLOT_TARGET).max(1)
}

/// The header a sealed file for `table` gets.
///
/// # Panics
/// If the table is empty (an empty table is never sealed).
#[must_use]
pub fn header_for(table: &ActiveTable) -> SealedHeader {
    let (store_timestamp_min, store_timestamp_max) = table
        .store_timestamp_range()
        .expect("only non-empty tables are sealed");
    let entry_count = u32::try_from(table.len()).expect("table capacity fits u32");
    let (covered_begin, covered_end) = table.covered();
    SealedHeader {
        slot_count: slot_count_for(entry_count),
        entry_count,
        covered_begin,
        covered_end,
        store_timestamp_min,
        store_timestamp_max,
    }
}

fn crc(xor: u32, number: u64, bytes: &[u8]) -> u32 {
    if bytes.len() == 24 {
        // An entry: one 32-byte update (two short ones cost twice the setup).
        let mut joined = [0u8; 32];
        joined[..8].copy_from_slice(&number.to_le_bytes());
        joined[8..].copy_from_slice(bytes);
        return crc32fast::hash(&joined) ^ xor;
    }
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&number.to_le_bytes());
    hasher.update(bytes);
    hasher.finalize() ^ xor
}

/// Writes an entry's key hash, CommitLog offset and store timestamp (its first 24 bytes; the
/// CRC is written once the entry has its final place).
fn write_entry_fields(bytes: &mut [u8], entry: &IndexEntry) {
    bytes[0..8].copy_from_slice(&entry.key_hash.to_le_bytes());
    bytes[8..16].copy_from_slice(&entry.phys_offset.to_le_bytes());
    bytes[16..24].copy_from_slice(&entry.store_timestamp.to_le_bytes());
}

fn read_entry_fields(bytes: &[u8]) -> IndexEntry {
    IndexEntry {
        key_hash: read_u64(bytes, 0),
        phys_offset: read_u64(bytes, 8),
        store_timestamp: i64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes")),
    }
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

fn write_header(header: &SealedHeader, block: &mut [u8]) {
    block[0..8].copy_from_slice(&MAGIC);
    block[8..12].copy_from_slice(&VERSION.to_le_bytes());
    block[12..16].copy_from_slice(&header.slot_count.to_le_bytes());
    block[16..20].copy_from_slice(&header.entry_count.to_le_bytes());
    block[24..32].copy_from_slice(&header.covered_begin.to_le_bytes());
    block[32..40].copy_from_slice(&header.covered_end.to_le_bytes());
    block[40..48].copy_from_slice(&header.store_timestamp_min.to_le_bytes());
    block[48..56].copy_from_slice(&header.store_timestamp_max.to_le_bytes());
    let crc = crc(HEADER_CRC_XOR, 0, &block[0..56]);
    block[56..60].copy_from_slice(&crc.to_le_bytes());
}

/// Encodes the whole sealed file for `table` into `out`.
///
/// # Panics
/// If `out` is not exactly `header_for(table).file_size()` bytes of zeros, or the table is empty.
pub fn encode_file(table: &ActiveTable, out: &mut [u8]) -> SealedHeader {
    let header = header_for(table);
    assert_eq!(
        out.len() as u64,
        header.file_size(),
        "output must be the file size"
    );
    assert!(
        // A fold without an early exit vectorises (`all` goes byte by byte).
        out.iter().fold(0u8, |any, &byte| any | byte) == 0,
        "output buffer must start zeroed"
    );
    let slot_count = header.slot_count as usize;
    // Counting sort by slot, in sequential passes over the table (this runs on the shard
    // thread that appends): count per slot, then scatter each entry to its slot's next place
    // in the file. Reading the table in order and writing the file at random keeps the
    // memory accesses independent; gathering in file order (the table at random) stalled on
    // a cache miss per entry.
    // Each entry's slot, computed once (a 64-bit remainder per entry).
    let slots: Vec<u32> = table
        .entries()
        .map(|entry| header.slot_of(entry.key_hash))
        .collect();
    let mut counts = vec![0u32; slot_count];
    for &slot in &slots {
        counts[slot as usize] += 1;
    }
    let mut next = Vec::with_capacity(slot_count);
    let mut running = 0u32;
    for &count in &counts {
        next.push(running);
        running += count;
    }
    write_header(&header, &mut out[..BLOCK_SIZE]);
    let slots_start = BLOCK_SIZE;
    let entries_start = BLOCK_SIZE * (1 + usize::try_from(header.slot_blocks()).expect("small"));
    for (entry, &slot) in table.entries().zip(&slots) {
        let position = &mut next[slot as usize];
        let at = entries_start + *position as usize * ENTRY_SIZE;
        *position += 1;
        write_entry_fields(&mut out[at..at + ENTRY_SIZE], entry);
    }
    // Then each slot's few entries by (key hash, newest first).
    let mut scratch: Vec<IndexEntry> = Vec::new();
    let mut first = 0usize;
    for &count in &counts {
        let end = first + count as usize;
        if count > 1 {
            let span =
                &mut out[entries_start + first * ENTRY_SIZE..entries_start + end * ENTRY_SIZE];
            scratch.clear();
            scratch.extend(span.chunks_exact(ENTRY_SIZE).map(read_entry_fields));
            scratch.sort_unstable_by_key(|entry| {
                (entry.key_hash, std::cmp::Reverse(entry.phys_offset))
            });
            for (bytes, entry) in span.chunks_exact_mut(ENTRY_SIZE).zip(&scratch) {
                write_entry_fields(bytes, entry);
            }
        }
        first = end;
    }
    for (number, bytes) in out[entries_start..]
        .chunks_exact_mut(ENTRY_SIZE)
        .take(header.entry_count as usize)
        .enumerate()
    {
        let crc = crc(ENTRY_CRC_XOR, number as u64, &bytes[0..24]);
        bytes[24..28].copy_from_slice(&crc.to_le_bytes());
    }
    let mut first = 0u32;
    for (slot, &count) in counts.iter().enumerate() {
        let at = slots_start + (slot / SLOTS_PER_BLOCK) * BLOCK_SIZE + (slot % SLOTS_PER_BLOCK) * 8;
        out[at..at + 4].copy_from_slice(&first.to_le_bytes());
        out[at + 4..at + 8].copy_from_slice(&count.to_le_bytes());
        first += count;
    }
    assert_eq!(
        first, header.entry_count,
        "every entry belongs to exactly one slot"
    );
    for block in 0..header.slot_blocks() {
        let at = slots_start + usize::try_from(block).expect("small") * BLOCK_SIZE;
        let crc = crc(SLOT_CRC_XOR, 1 + block, &out[at..at + BLOCK_SIZE - 8]);
        out[at + BLOCK_SIZE - 8..at + BLOCK_SIZE - 4].copy_from_slice(&crc.to_le_bytes());
    }
    header
}

/// Decodes and checks block 0.
///
/// # Errors
/// [`FormatError::Header`] when the magic, version, CRC or counts are wrong.
pub fn decode_header(block: &[u8]) -> Result<SealedHeader, FormatError> {
    if block.len() < BLOCK_SIZE || block[0..8] != MAGIC {
        return Err(FormatError::Header {
            reason: "bad magic",
        });
    }
    if read_u32(block, 56) != crc(HEADER_CRC_XOR, 0, &block[0..56]) {
        return Err(FormatError::Header { reason: "bad CRC" });
    }
    if read_u32(block, 8) != VERSION {
        return Err(FormatError::Header {
            reason: "unknown version",
        });
    }
    let header = SealedHeader {
        slot_count: read_u32(block, 12),
        entry_count: read_u32(block, 16),
        covered_begin: read_u64(block, 24),
        covered_end: read_u64(block, 32),
        store_timestamp_min: i64::from_le_bytes(block[40..48].try_into().expect("8 bytes")),
        store_timestamp_max: i64::from_le_bytes(block[48..56].try_into().expect("8 bytes")),
    };
    if header.entry_count == 0 || header.slot_count != slot_count_for(header.entry_count) {
        return Err(FormatError::Header {
            reason: "inconsistent counts",
        });
    }
    if header.covered_begin > header.covered_end {
        return Err(FormatError::Header {
            reason: "inverted covered range",
        });
    }
    Ok(header)
}

/// Reads `slot` from its slot block (numbered `block_number` in the file), checking the CRC.
///
/// # Errors
/// [`FormatError::SlotBlock`] on a CRC mismatch, [`FormatError::SlotRange`] when the slot
/// points outside the file.
pub fn decode_slot(
    header: &SealedHeader,
    block: &[u8],
    slot: u32,
) -> Result<(u32, u32), FormatError> {
    let (block_number, at) = header.slot_location(slot);
    let stored = read_u32(block, BLOCK_SIZE - 8);
    if stored != crc(SLOT_CRC_XOR, block_number, &block[..BLOCK_SIZE - 8]) {
        return Err(FormatError::SlotBlock {
            block: block_number,
        });
    }
    let (first, count) = (read_u32(block, at), read_u32(block, at + 4));
    if u64::from(first) + u64::from(count) > u64::from(header.entry_count) {
        return Err(FormatError::SlotRange {
            slot,
            first,
            count,
            entry_count: header.entry_count,
        });
    }
    Ok((first, count))
}

/// Reads entry `entry` from the entry block that holds it, checking the CRC.
///
/// # Errors
/// [`FormatError::Entry`] on a CRC mismatch.
pub fn decode_entry(block: &[u8], entry: u32) -> Result<IndexEntry, FormatError> {
    let at = (entry as usize % ENTRIES_PER_BLOCK) * ENTRY_SIZE;
    let bytes = &block[at..at + ENTRY_SIZE];
    if read_u32(bytes, 24) != crc(ENTRY_CRC_XOR, u64::from(entry), &bytes[0..24]) {
        return Err(FormatError::Entry { entry });
    }
    Ok(read_entry_fields(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Looks `key_hash` up in an encoded file held in memory, the way the I/O code does it
    /// block by block.
    fn lookup(file: &[u8], key_hash: u64, begin: i64, end: i64, limit: usize) -> Vec<u64> {
        let header = decode_header(&file[..BLOCK_SIZE]).expect("header");
        let block = |number: u64| {
            let at = usize::try_from(number).expect("small") * BLOCK_SIZE;
            &file[at..at + BLOCK_SIZE]
        };
        let slot = header.slot_of(key_hash);
        let (block_number, _) = header.slot_location(slot);
        let (first, count) = decode_slot(&header, block(block_number), slot).expect("slot");
        let mut out = Vec::new();
        for number in first..first + count {
            let entry = decode_entry(block(header.entry_block(number)), number).expect("entry");
            assert_eq!(header.slot_of(entry.key_hash), slot);
            if entry.key_hash > key_hash || out.len() >= limit {
                break;
            }
            if entry.key_hash == key_hash && (begin..=end).contains(&entry.store_timestamp) {
                out.push(entry.phys_offset);
            }
        }
        out
    }

    fn sealed(table: &ActiveTable) -> Vec<u8> {
        let mut file = vec![0u8; usize::try_from(header_for(table).file_size()).expect("small")];
        encode_file(table, &mut file);
        file
    }

    /// The file as the format describes it, built the plain way (sort everything, then
    /// write): the oracle for the counting-sort encoder.
    fn reference_file(table: &ActiveTable) -> Vec<u8> {
        let header = header_for(table);
        let mut file = vec![0u8; usize::try_from(header.file_size()).expect("small")];
        write_header(&header, &mut file[..BLOCK_SIZE]);
        let mut entries: Vec<IndexEntry> = table.entries().copied().collect();
        entries.sort_by_key(|e| {
            (
                header.slot_of(e.key_hash),
                e.key_hash,
                std::cmp::Reverse(e.phys_offset),
            )
        });
        let entries_start =
            BLOCK_SIZE * (1 + usize::try_from(header.slot_blocks()).expect("small"));
        for (number, entry) in entries.iter().enumerate() {
            let at = entries_start + number * ENTRY_SIZE;
            let bytes = &mut file[at..at + ENTRY_SIZE];
            write_entry_fields(bytes, entry);
            let crc = crc(ENTRY_CRC_XOR, number as u64, &bytes[0..24]);
            bytes[24..28].copy_from_slice(&crc.to_le_bytes());
        }
        for slot in 0..header.slot_count {
            let first = entries.partition_point(|e| header.slot_of(e.key_hash) < slot);
            let end = entries.partition_point(|e| header.slot_of(e.key_hash) <= slot);
            let (block, within) = header.slot_location(slot);
            let at = usize::try_from(block).expect("small") * BLOCK_SIZE + within;
            file[at..at + 4].copy_from_slice(&u32::try_from(first).expect("small").to_le_bytes());
            file[at + 4..at + 8]
                .copy_from_slice(&u32::try_from(end - first).expect("small").to_le_bytes());
        }
        for block in 0..header.slot_blocks() {
            let at = usize::try_from(1 + block).expect("small") * BLOCK_SIZE;
            let crc = crc(SLOT_CRC_XOR, 1 + block, &file[at..at + BLOCK_SIZE - 8]);
            file[at + BLOCK_SIZE - 8..at + BLOCK_SIZE - 4].copy_from_slice(&crc.to_le_bytes());
        }
        file
    }

    #[test]
    fn entry_crc_is_the_crc_of_number_then_fields() {
        // The one-update entry CRC equals the format's definition (files written before it
        // still validate).
        let fields: Vec<u8> = (0..24u8).map(|b| b.wrapping_mul(37)).collect();
        for number in [0u64, 1, 127, 1 << 40] {
            let mut hasher = crc32fast::Hasher::new();
            hasher.update(&number.to_le_bytes());
            hasher.update(&fields);
            assert_eq!(
                crc(ENTRY_CRC_XOR, number, &fields),
                hasher.finalize() ^ ENTRY_CRC_XOR
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn encoder_writes_what_the_format_describes(
            // Few distinct hashes (collisions in slots and keys) or any hash.
            hashes in proptest::collection::vec(
                proptest::prop_oneof![0u64..40, proptest::num::u64::ANY], 1..3000),
            timestamps in proptest::collection::vec(-5i64..5, 1..3000),
        ) {
            let mut table = ActiveTable::new(hashes.len(), 64);
            for (i, &key_hash) in hashes.iter().enumerate() {
                table.insert(IndexEntry {
                    key_hash,
                    phys_offset: 64 + i as u64 * 48,
                    store_timestamp: timestamps[i % timestamps.len()],
                });
            }
            proptest::prop_assert!(sealed(&table) == reference_file(&table));
        }
    }

    #[test]
    fn entries_are_in_slot_hash_newest_first_order() {
        // Few distinct hashes (many collisions per slot and per key), offsets inserted ascending.
        let mut table = ActiveTable::new(3000, 0);
        for i in 0..3000u64 {
            table.insert(IndexEntry {
                key_hash: (i * 7919) % 401,
                phys_offset: i * 16,
                store_timestamp: 1,
            });
        }
        let file = sealed(&table);
        let header = decode_header(&file[..BLOCK_SIZE]).expect("header");
        let at = |number: u32| {
            let block = usize::try_from(header.entry_block(number)).expect("small") * BLOCK_SIZE;
            decode_entry(&file[block..block + BLOCK_SIZE], number).expect("entry")
        };
        let mut previous = at(0);
        let mut offsets = vec![previous.phys_offset];
        for number in 1..header.entry_count {
            let entry = at(number);
            let key = |e: &IndexEntry| {
                (
                    header.slot_of(e.key_hash),
                    e.key_hash,
                    std::cmp::Reverse(e.phys_offset),
                )
            };
            assert!(key(&previous) < key(&entry), "entry {number} out of order");
            offsets.push(entry.phys_offset);
            previous = entry;
        }
        offsets.sort_unstable();
        assert_eq!(offsets, (0..3000u64).map(|i| i * 16).collect::<Vec<_>>());
    }

    #[test]
    fn encodes_and_finds_every_key() {
        let mut table = ActiveTable::new(5000, 100);
        for i in 0..4000u64 {
            let key_hash = super::super::key::key_hash("T", &format!("k{}", i % 1000));
            let store_timestamp = i64::try_from(i).expect("small");
            table.insert(IndexEntry {
                key_hash,
                phys_offset: 100 + i * 10,
                store_timestamp,
            });
        }
        table.advance_covered(100 + 40_000);
        let file = sealed(&table);
        let header = decode_header(&file[..BLOCK_SIZE]).expect("header");
        assert_eq!(header.entry_count, 4000);
        assert_eq!((header.covered_begin, header.covered_end), (100, 40_100));
        assert_eq!(
            (header.store_timestamp_min, header.store_timestamp_max),
            (0, 3999)
        );
        assert!(
            header.slot_blocks() > 1,
            "test must span several slot blocks"
        );
        for k in 0..1000u64 {
            let hash = super::super::key::key_hash("T", &format!("k{k}"));
            let expected: Vec<u64> = (0..4).rev().map(|j| 100 + (k + j * 1000) * 10).collect();
            assert_eq!(lookup(&file, hash, i64::MIN, i64::MAX, 100), expected);
            // Same answer as the active table.
            let mut active = Vec::new();
            table.query(hash, i64::MIN, i64::MAX, 100, &mut active);
            assert_eq!(active, expected);
        }
        let hash = super::super::key::key_hash("T", "k7");
        assert_eq!(lookup(&file, hash, 1000, 2007, 100), [20_170, 10_170]);
        assert_eq!(lookup(&file, hash, i64::MIN, i64::MAX, 1), [30_170]);
        assert!(lookup(&file, super::super::key::key_hash("T", "absent"), 0, 9, 9).is_empty());
    }

    #[test]
    fn corruption_is_detected() {
        let mut table = ActiveTable::new(10, 0);
        table.insert(IndexEntry {
            key_hash: 5,
            phys_offset: 1,
            store_timestamp: 2,
        });
        let file = sealed(&table);
        let header = decode_header(&file[..BLOCK_SIZE]).expect("header");
        let mut bad = file.clone();
        bad[20] ^= 1;
        assert!(decode_header(&bad[..BLOCK_SIZE]).is_err());
        let mut bad = file.clone();
        bad[BLOCK_SIZE] ^= 1;
        assert_eq!(
            decode_slot(&header, &bad[BLOCK_SIZE..2 * BLOCK_SIZE], 0),
            Err(FormatError::SlotBlock { block: 1 })
        );
        let mut bad = file;
        bad[2 * BLOCK_SIZE + 9] ^= 1;
        assert_eq!(
            decode_entry(&bad[2 * BLOCK_SIZE..], 0),
            Err(FormatError::Entry { entry: 0 })
        );
        let zeros = vec![0u8; BLOCK_SIZE];
        assert!(decode_header(&zeros).is_err());
        assert!(decode_entry(&zeros, 0).is_err());
    }
}
