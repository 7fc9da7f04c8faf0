//! Uppercase hex encoding and case-insensitive decoding for msgIds and `UNIQ_KEY`s.
//! Private to [`super`]; never allocates beyond its output.

/// Upper-case digits, as Java `UtilAll.bytes2string` writes them.
const DIGITS_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// Appends the uppercase hex of `bytes` to `out`.
pub(super) fn encode_upper(bytes: &[u8], out: &mut String) {
    out.reserve(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS_UPPER[usize::from(b >> 4)]));
        out.push(char::from(DIGITS_UPPER[usize::from(b & 0x0F)]));
    }
}

/// Value of one hex digit (either case), or `None`.
fn digit_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Decodes `text` (even length, either case) into `out`, which must be exactly half as long.
/// Returns `None` on a non-hex character or a length mismatch.
pub(super) fn decode_into(text: &[u8], out: &mut [u8]) -> Option<()> {
    if text.len() != out.len().checked_mul(2)? {
        return None;
    }
    for (pair, slot) in text.chunks_exact(2).zip(out.iter_mut()) {
        *slot = (digit_value(pair[0])? << 4) | digit_value(pair[1])?;
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_upper_and_decodes_either_case() {
        let mut s = String::new();
        encode_upper(&[0x00, 0xAB, 0x7f, 0xFF], &mut s);
        assert_eq!(s, "00AB7FFF");
        let mut out = [0u8; 4];
        assert_eq!(decode_into(b"00ab7Fff", &mut out), Some(()));
        assert_eq!(out, [0x00, 0xAB, 0x7F, 0xFF]);
    }

    #[test]
    fn rejects_bad_digits_and_lengths() {
        let mut out = [0u8; 2];
        assert_eq!(decode_into(b"0G00", &mut out), None);
        assert_eq!(decode_into(b"000", &mut out), None);
        assert_eq!(decode_into(b"000000", &mut out), None);
    }
}
