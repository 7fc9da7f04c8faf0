//! The message body CRC (PROTOCOL.md §6.7): standard CRC-32 (IEEE, the zlib/`crc32fast`
//! value) masked to 31 bits and stored as an i32, as Java `UtilAll.crc32` does.
//! Pure function; must never use a different polynomial or skip the mask.

/// `crc32(body) & 0x7FFFFFFF`, the value of a stored record's BODYCRC field. Never panics.
#[must_use]
pub fn body_crc(body: &[u8]) -> i32 {
    let masked = crc32fast::hash(body) & 0x7FFF_FFFF;
    // A 31-bit value: the cast cannot wrap.
    #[allow(clippy::cast_possible_wrap)]
    let stored = masked as i32;
    stored
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_protocol_and_zlib_vectors() {
        // PROTOCOL.md §6.7: crc32("hello") = 0x3610A686 -> 907060870.
        assert_eq!(body_crc(b"hello"), 907_060_870);
        // zlib.crc32(b"a") = 0xE8B7BE43; the mask drops the top bit.
        assert_eq!(body_crc(b"a"), 0x68B7_BE43);
        // The CRC-32 check value: crc32("123456789") = 0xCBF43926.
        assert_eq!(body_crc(b"123456789"), 0x4BF4_3926);
        assert_eq!(body_crc(b""), 0);
    }
}
