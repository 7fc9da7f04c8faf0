//! One ConsumeQueue entry: the fixed 32-byte unit that points a queue offset at a CommitLog
//! record. Pure encoding; no I/O.
//!
//! Layout (little-endian):
//!
//! | bytes  | field             | why                                                        |
//! |--------|-------------------|------------------------------------------------------------|
//! | 0..8   | `phys_offset` u64 | where the record starts in this shard's CommitLog          |
//! | 8..12  | `size` u32        | record size in bytes; never 0 for a real entry             |
//! | 12..16 | `crc` u32         | CRC32 over queue offset + the other 28 bytes, xor a const  |
//! | 16..24 | `tags_code` i64   | tag hash for server-side filtering without a record read   |
//! | 24..32 | `store_timestamp` | ms; lets search-by-time skip the CommitLog entirely        |
//!
//! The CRC also covers the entry's own queue offset (implied by its position), so an entry
//! written at the wrong position, a stale entry from an older file, or a zero-filled block never
//! validates. Must never: decode an entry without checking its CRC.

/// Bytes per entry. A power of two so entries never straddle a block.
pub const ENTRY_SIZE: usize = 32;
/// Bytes per O_DIRECT block of a consume-queue file.
pub const BLOCK_SIZE: usize = 4096;
/// Entries per block.
pub const ENTRIES_PER_BLOCK: u64 = (BLOCK_SIZE / ENTRY_SIZE) as u64;

/// Xored into every entry CRC so that an all-zero entry can never validate.
const ENTRY_CRC_XOR: u32 = 0x5a17_c0de;

const _: () = {
    assert!(
        ENTRY_SIZE.is_power_of_two(),
        "entries must tile a block exactly"
    );
    assert!(
        BLOCK_SIZE % ENTRY_SIZE == 0,
        "an entry must never straddle a block"
    );
    assert!(
        ENTRIES_PER_BLOCK == 128,
        "geometry tests and docs assume 128 entries per block"
    );
};

/// A decoded ConsumeQueue entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CqEntry {
    /// CommitLog (shard-local) offset of the record.
    pub phys_offset: u64,
    /// Record size in bytes (> 0).
    pub size: u32,
    /// Tag hash (Java `String.hashCode` of the tag, widened), 0 when untagged.
    pub tags_code: i64,
    /// Store timestamp in milliseconds.
    pub store_timestamp: i64,
}

impl CqEntry {
    /// End of the record in the CommitLog (exclusive).
    #[must_use]
    pub fn phys_end(&self) -> u64 {
        self.phys_offset + u64::from(self.size)
    }
}

fn entry_crc(queue_offset: u64, bytes: &[u8; ENTRY_SIZE]) -> u32 {
    // One update over the 36 covered bytes laid out contiguously: the same CRC as three
    // updates, without three calls' setup on inputs of 8-16 bytes.
    let mut covered = [0u8; 8 + ENTRY_SIZE - 4];
    covered[..8].copy_from_slice(&queue_offset.to_le_bytes());
    covered[8..20].copy_from_slice(&bytes[0..12]);
    covered[20..].copy_from_slice(&bytes[16..32]);
    crc32fast::hash(&covered) ^ ENTRY_CRC_XOR
}

/// Encodes `entry` as the unit for `queue_offset` into `out`.
///
/// # Panics
/// If `entry.size` is 0 (a record is never empty; a zero size marks an unwritten slot).
pub fn encode(queue_offset: u64, entry: &CqEntry, out: &mut [u8; ENTRY_SIZE]) {
    assert!(
        entry.size > 0,
        "a ConsumeQueue entry must point at a non-empty record"
    );
    out[0..8].copy_from_slice(&entry.phys_offset.to_le_bytes());
    out[8..12].copy_from_slice(&entry.size.to_le_bytes());
    out[12..16].fill(0);
    out[16..24].copy_from_slice(&entry.tags_code.to_le_bytes());
    out[24..32].copy_from_slice(&entry.store_timestamp.to_le_bytes());
    let crc = entry_crc(queue_offset, out);
    out[12..16].copy_from_slice(&crc.to_le_bytes());
}

/// Decodes the unit for `queue_offset`; `None` when the slot is unwritten, torn or stale.
#[must_use]
pub fn decode(queue_offset: u64, bytes: &[u8; ENTRY_SIZE]) -> Option<CqEntry> {
    let field = |range: std::ops::Range<usize>| -> [u8; 8] {
        let mut out = [0u8; 8];
        out.copy_from_slice(&bytes[range]);
        out
    };
    let size = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    let crc = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
    if size == 0 || crc != entry_crc(queue_offset, bytes) {
        return None;
    }
    Some(CqEntry {
        phys_offset: u64::from_le_bytes(field(0..8)),
        size,
        tags_code: i64::from_le_bytes(field(16..24)),
        store_timestamp: i64::from_le_bytes(field(24..32)),
    })
}

/// The entry slot for `queue_offset` inside a block whose first entry is `block_first`.
///
/// # Panics
/// If `queue_offset` lies outside the block (a caller bug).
#[must_use]
pub fn slot(block: &[u8], block_first: u64, queue_offset: u64) -> &[u8; ENTRY_SIZE] {
    assert!(queue_offset >= block_first, "offset below the block");
    assert!(
        queue_offset - block_first < ENTRIES_PER_BLOCK,
        "offset beyond the block"
    );
    let start = usize::try_from(queue_offset - block_first).expect("< 128") * ENTRY_SIZE;
    block[start..start + ENTRY_SIZE]
        .try_into()
        .expect("slice is ENTRY_SIZE long")
}

/// Mutable variant of [`slot`].
///
/// # Panics
/// If `queue_offset` lies outside the block (a caller bug).
pub fn slot_mut(block: &mut [u8], block_first: u64, queue_offset: u64) -> &mut [u8; ENTRY_SIZE] {
    assert!(queue_offset >= block_first, "offset below the block");
    assert!(
        queue_offset - block_first < ENTRIES_PER_BLOCK,
        "offset beyond the block"
    );
    let start = usize::try_from(queue_offset - block_first).expect("< 128") * ENTRY_SIZE;
    (&mut block[start..start + ENTRY_SIZE])
        .try_into()
        .expect("slice is ENTRY_SIZE long")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CqEntry {
        CqEntry {
            phys_offset: 123_456,
            size: 77,
            tags_code: -5,
            store_timestamp: 1_700_000_000_000,
        }
    }

    #[test]
    fn entry_crc_is_the_on_disk_definition() {
        // The format: CRC32 over queue offset, bytes 0..12 and 16..32, in that order, xor a
        // constant. Files written before the one-update form must still validate.
        let mut bytes = [0u8; ENTRY_SIZE];
        encode(42, &sample(), &mut bytes);
        for queue_offset in [0, 42, u64::MAX] {
            let mut hasher = crc32fast::Hasher::new();
            hasher.update(&queue_offset.to_le_bytes());
            hasher.update(&bytes[0..12]);
            hasher.update(&bytes[16..32]);
            assert_eq!(
                entry_crc(queue_offset, &bytes),
                hasher.finalize() ^ ENTRY_CRC_XOR
            );
        }
    }

    #[test]
    fn round_trip() {
        let mut buf = [0u8; ENTRY_SIZE];
        encode(42, &sample(), &mut buf);
        assert_eq!(decode(42, &buf), Some(sample()));
        assert_eq!(sample().phys_end(), 123_533);
    }

    #[test]
    fn zeros_never_validate() {
        let buf = [0u8; ENTRY_SIZE];
        for queue_offset in [0, 1, 127, 128, u64::MAX] {
            assert_eq!(decode(queue_offset, &buf), None);
        }
    }

    #[test]
    fn wrong_position_or_flipped_bit_rejected() {
        let mut buf = [0u8; ENTRY_SIZE];
        encode(42, &sample(), &mut buf);
        assert_eq!(
            decode(43, &buf),
            None,
            "entry moved to another slot must not validate"
        );
        for bit in 0..ENTRY_SIZE * 8 {
            let mut flipped = buf;
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(
                decode(42, &flipped),
                None,
                "bit {bit} flip must be detected"
            );
        }
    }

    #[test]
    fn slots_tile_a_block() {
        let mut block = vec![0u8; BLOCK_SIZE];
        for offset in 256..256 + ENTRIES_PER_BLOCK {
            let entry = CqEntry {
                phys_offset: offset * 100,
                ..sample()
            };
            encode(offset, &entry, slot_mut(&mut block, 256, offset));
        }
        for offset in 256..256 + ENTRIES_PER_BLOCK {
            let entry = decode(offset, slot(&block, 256, offset)).expect("valid");
            assert_eq!(entry.phys_offset, offset * 100);
        }
    }

    #[test]
    #[should_panic(expected = "beyond the block")]
    fn slot_outside_block_panics() {
        let block = vec![0u8; BLOCK_SIZE];
        let _ = slot(&block, 0, ENTRIES_PER_BLOCK);
    }
}
