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
    TopicKeyHasher::new(topic.as_bytes()).hash(key.as_bytes())
}

/// [`key_hash`] for many keys of one topic: the FNV state after `topic#` is computed once and
/// each key continues from it (FNV-1a is a byte-serial chain, so this is the same hash).
#[derive(Debug, Clone, Copy)]
pub struct TopicKeyHasher {
    prefix: u64,
}

impl TopicKeyHasher {
    /// The hasher of keys of `topic`.
    #[must_use]
    pub fn new(topic: &[u8]) -> Self {
        Self {
            prefix: fnv1a_from(fnv1a_from(FNV_OFFSET_BASIS, topic), b"#"),
        }
    }

    /// The hash of `topic#key`.
    #[must_use]
    pub fn hash(&self, key: &[u8]) -> u64 {
        finalise(fnv1a_from(self.prefix, key))
    }
}

/// Hashes the keys of a record's `keys` field (split as [`split_keys`] does, on the raw bytes:
/// the hash needs no UTF-8) into `out`, at most `out.len()` of them; returns how many.
pub fn hash_keys(topic: &str, keys: &[u8], out: &mut [u64]) -> usize {
    let hasher = TopicKeyHasher::new(topic.as_bytes());
    let mut count = 0;
    for key in keys
        .split(|&byte| byte == b' ')
        .filter(|key| !key.is_empty())
    {
        if count == out.len() {
            break;
        }
        out[count] = hasher.hash(key);
        count += 1;
    }
    count
}

fn fnv1a_from(mut hash: u64, bytes: &[u8]) -> u64 {
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
        assert_eq!(
            key_hash("", ""),
            finalise(fnv1a_from(FNV_OFFSET_BASIS, b"#"))
        );
        assert_eq!(
            key_hash("T", "k"),
            finalise(fnv1a_from(FNV_OFFSET_BASIS, b"T#k"))
        );
        assert_ne!(key_hash("T", "k1"), key_hash("T", "k2"));
        // The separator matters: "a#b" + "c" differs from "a" + "b#c" only through topic.
        assert_eq!(key_hash("a#b", "c"), key_hash("a", "b#c"));
        assert_ne!(key_hash("T1", "k"), key_hash("T2", "k"));
    }

    #[test]
    fn fnv1a_matches_reference_vectors() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a_from(FNV_OFFSET_BASIS, b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a_from(FNV_OFFSET_BASIS, b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(
            fnv1a_from(FNV_OFFSET_BASIS, b"foobar"),
            0x8594_4171_f739_67e8
        );
    }

    #[test]
    fn hash_keys_matches_key_hash_per_key() {
        let topic = "TopicA";
        let mut out = [0u64; 4];
        let count = hash_keys(topic, b" k1  7F00000100A1 x ", &mut out);
        assert_eq!(count, 3);
        for (hash, key) in out.iter().zip(["k1", "7F00000100A1", "x"]) {
            assert_eq!(*hash, key_hash(topic, key));
        }
        // Capped at the output's length; nothing for an empty field.
        let mut two = [0u64; 2];
        assert_eq!(hash_keys(topic, b"a b c", &mut two), 2);
        assert_eq!(two, [key_hash(topic, "a"), key_hash(topic, "b")]);
        assert_eq!(hash_keys(topic, b"   ", &mut out), 0);
        // Keys that are not UTF-8 hash by their bytes (no query can name them).
        assert_eq!(hash_keys(topic, &[0xff, b' ', b'k'], &mut out), 2);
        assert_eq!(out[1], key_hash(topic, "k"));
    }

    #[test]
    fn splits_keys() {
        let keys: Vec<_> = split_keys(" a  b c ").collect();
        assert_eq!(keys, ["a", "b", "c"]);
        assert_eq!(split_keys("").count(), 0);
    }
}
