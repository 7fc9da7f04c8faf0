//! A properties string (PROTOCOL.md §6.1) read in place, for the send path: no `String` per
//! pair, lookups against the caller's bytes.
//!
//! [`RawProperties::scan`] accepts only a *canonical* string: one that
//! [`super::properties::Properties::decode`] followed by `encode` gives back byte for byte.
//! That is every pair `name 0x01 value 0x02` (the last one too), name and value non-empty,
//! no 0x01 in the name, no name twice, at most [`RAW_PROPERTIES_PAIRS_MAX`] pairs. For such a
//! string the stored bytes may be the client's bytes as they are; anything else returns
//! `None` and the caller takes the general `Properties` path, which drops, merges and
//! reorders as Java's decoder does.
//!
//! Must never accept a string whose decode-and-re-encode differs from itself (a proptest
//! checks this against `Properties`), or panic on input bytes.

use super::super::limits::RAW_PROPERTIES_PAIRS_MAX;
use super::properties::{NAME_VALUE_SEPARATOR, PROPERTY_SEPARATOR};

/// One pair: the name is `start..separator`, the value `separator + 1..end`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Pair {
    start: usize,
    separator: usize,
    end: usize,
}

/// A canonical properties string, indexed in place.
#[derive(Debug, Clone)]
pub struct RawProperties<'a> {
    text: &'a str,
    pairs: [Pair; RAW_PROPERTIES_PAIRS_MAX],
    len: usize,
}

impl<'a> RawProperties<'a> {
    /// Indexes `text` if it is canonical (see the module doc); `None` otherwise.
    #[must_use]
    pub fn scan(text: &'a str) -> Option<Self> {
        let bytes = text.as_bytes();
        let mut raw = Self {
            text,
            pairs: [Pair::default(); RAW_PROPERTIES_PAIRS_MAX],
            len: 0,
        };
        let mut start = 0;
        while start < bytes.len() {
            if raw.len == RAW_PROPERTIES_PAIRS_MAX {
                return None;
            }
            let rest = &bytes[start..];
            // The pair ends at the next 0x02; a trailing pair without one is not canonical.
            let end = start + rest.iter().position(|&b| b == PROPERTY_SEPARATOR)?;
            let separator = start
                + bytes[start..end]
                    .iter()
                    .position(|&b| b == NAME_VALUE_SEPARATOR)?;
            if separator == start || separator + 1 == end {
                return None;
            }
            let name = &bytes[start..separator];
            if raw.pairs[..raw.len]
                .iter()
                .any(|pair| &bytes[pair.start..pair.separator] == name)
            {
                return None;
            }
            raw.pairs[raw.len] = Pair {
                start,
                separator,
                end,
            };
            raw.len += 1;
            start = end + 1;
        }
        assert_eq!(start, bytes.len(), "a canonical string ends with 0x02");
        Some(raw)
    }

    /// The value of `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&'a str> {
        let text: &'a str = self.text;
        self.pairs[..self.len]
            .iter()
            .find(|pair| &text.as_bytes()[pair.start..pair.separator] == name.as_bytes())
            // The separators are ASCII, so both ends are char boundaries.
            .map(|pair| &text[pair.separator + 1..pair.end])
    }

    /// Whether `name` is present.
    #[must_use]
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The scanned string.
    #[must_use]
    pub fn as_str(&self) -> &'a str {
        self.text
    }

    /// Number of pairs.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no pairs.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use proptest::prelude::*;

    use super::super::properties::Properties;
    use super::*;

    fn reencoded(text: &str) -> Vec<u8> {
        let mut out = BytesMut::new();
        Properties::decode(text).encode(&mut out);
        out.to_vec()
    }

    #[test]
    fn canonical_strings_are_indexed_in_place() {
        let raw = RawProperties::scan("TAGS\x01a\x02KEYS\x01k1 k2\x02V\x01x\x01y\x02")
            .expect("canonical");
        assert_eq!(raw.len(), 3);
        assert_eq!(raw.get("TAGS"), Some("a"));
        assert_eq!(raw.get("KEYS"), Some("k1 k2"));
        assert_eq!(raw.get("V"), Some("x\x01y"));
        assert_eq!(raw.get("TAG"), None);
        assert!(RawProperties::scan("")
            .expect("empty is canonical")
            .is_empty());
    }

    #[test]
    fn what_java_would_rewrite_is_refused() {
        for text in [
            "a\x01b",               // no trailing 0x02
            "a\x01b\x02a\x01c\x02", // a name twice
            "\x01b\x02",            // empty name
            "a\x01\x02",            // empty value
            "ab\x02",               // no 0x01
            "a\x01b\x02\x02",       // empty segment
        ] {
            assert!(RawProperties::scan(text).is_none(), "{text:?}");
        }
        let many: String = (0..=RAW_PROPERTIES_PAIRS_MAX)
            .map(|i| format!("k{i}\x01v\x02"))
            .collect();
        assert!(RawProperties::scan(&many).is_none());
    }

    proptest! {
        /// Accepted strings are exactly their own decode-and-re-encode, with the same lookups.
        #[test]
        fn accepted_strings_survive_a_java_decode(
            pieces in proptest::collection::vec(
                prop_oneof![Just("a"), Just("b"), Just("TAGS"), Just("\x01"), Just("\x02"), Just("x y")],
                0..24,
            )
        ) {
            let text: String = pieces.concat();
            if let Some(raw) = RawProperties::scan(&text) {
                prop_assert_eq!(reencoded(&text), text.as_bytes().to_vec());
                let decoded = Properties::decode(&text);
                prop_assert_eq!(decoded.len(), raw.len());
                for (name, value) in decoded.iter() {
                    prop_assert_eq!(raw.get(name), Some(value));
                }
            }
        }
    }
}
