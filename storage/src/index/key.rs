//! Index keys: `topic#key` (as Java builds them) hashed to a stable 64-bit value. Pure.
//!
//! The hash is part of the on-disk format of sealed index files, so it must never change
//! between releases: FNV-1a 64 over the bytes of `topic`, `#`, `key`, then the murmur3 64-bit
//! finaliser to spread FNV's weak low bits across slots. Never `std`'s `DefaultHasher` (its
//! algorithm is not promised to stay the same).

const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Stable hash of the index key `topic#key`.
#[must_use]
pub fn key_hash(topic: &str, key: &str) -> u64 {
    finalise(fnv1a(
        topic.as_bytes().iter().chain(b"#").chain(key.as_bytes()),
    ))
}

fn fnv1a<'a>(bytes: impl Iterator<Item = &'a u8>) -> u64 {
    let mut hash = FNV_OFFSET_BASIS;
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash
}

fn finalise(mut hash: u64) -> u64 {
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^ (hash >> 33)
}

/// Splits a record's `keys` field (space-separated, as Java's `KEYS` property plus the
/// `UNIQ_KEY`) into the individual keys, skipping empty pieces.
pub fn split_keys(keys: &str) -> impl Iterator<Item = &str> + Clone {
    keys.split(' ').filter(|key| !key.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_known_values() {
        // Pinned: changing these breaks every sealed index file on disk.
        assert_eq!(key_hash("", ""), finalise(fnv1a(b"#".iter())));
        assert_eq!(key_hash("T", "k"), finalise(fnv1a(b"T#k".iter())));
        assert_ne!(key_hash("T", "k1"), key_hash("T", "k2"));
        // The separator matters: "a#b" + "c" differs from "a" + "b#c" only through topic.
        assert_eq!(key_hash("a#b", "c"), key_hash("a", "b#c"));
        assert_ne!(key_hash("T1", "k"), key_hash("T2", "k"));
    }

    #[test]
    fn fnv1a_matches_reference_vectors() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a(b"".iter()), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a".iter()), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar".iter()), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn splits_keys() {
        let keys: Vec<_> = split_keys(" a  b c ").collect();
        assert_eq!(keys, ["a", "b", "c"]);
        assert_eq!(split_keys("").count(), 0);
    }
}
