//! [`ExtFields`]: a command's custom header fields as text, sorted by key (PROTOCOL.md §1.3).
//!
//! A request carries 10–20 short fields and is read a few times, so the map is a sorted vector
//! of [`ByteString`]s, not a tree of `String`s: decoding a JSON header slices keys and values
//! out of the frame's bytes (no allocation unless a value had escapes), static keys written by
//! the broker cost nothing, and lookups are a binary search over a handful of entries. The
//! per-field `String` + `BTreeMap` node allocations were ~10 % of a loaded broker's CPU.
//!
//! Must never: hold two entries with the same key, or iterate out of key order (the encoders
//! write entries in iteration order, as fastjson writes a sorted map).

use std::fmt;

use bytestring::ByteString;

/// Custom header fields as text, sorted by key; a key appears once.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct ExtFields {
    entries: Vec<(ByteString, ByteString)>,
}

impl ExtFields {
    /// An empty map.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            entries: Vec::new(),
        }
    }

    /// An empty map with room for `capacity` entries.
    #[must_use]
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            entries: Vec::with_capacity(capacity),
        }
    }

    fn position(&self, key: &str) -> Result<usize, usize> {
        self.entries
            .binary_search_by(|(existing, _)| (**existing).cmp(key))
    }

    /// The value of `key`.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&str> {
        self.get_shared(key).map(|value| &**value)
    }

    /// The shared text of `key`'s value (cloning it is a reference count, not a copy).
    ///
    /// A linear scan comparing lengths and first bytes before anything else: a header has a
    /// few short keys (a send's are `a`..`n`), where a binary search's `memcmp` calls cost
    /// more (they were 7 % of a loaded broker's CPU). [`EXT_FIELDS_COUNT_MAX`] bounds the
    /// scan.
    ///
    /// [`EXT_FIELDS_COUNT_MAX`]: super::limits::EXT_FIELDS_COUNT_MAX
    #[must_use]
    pub fn get_shared(&self, key: &str) -> Option<&ByteString> {
        let key = key.as_bytes();
        self.entries
            .iter()
            .find(|(existing, _)| same_text(existing.as_bytes(), key))
            .map(|(_, value)| value)
    }

    /// Whether `key` is present.
    #[must_use]
    pub fn contains_key(&self, key: &str) -> bool {
        self.get_shared(key).is_some()
    }

    /// Sets `key` to `value`, returning the value it replaces. Appending keys in ascending
    /// order (as decoders see fastjson's sorted output) costs no search.
    pub fn insert(
        &mut self,
        key: impl Into<ByteString>,
        value: impl Into<ByteString>,
    ) -> Option<ByteString> {
        let key = key.into();
        let value = value.into();
        if self.entries.last().is_none_or(|(last, _)| **last < *key) {
            self.entries.push((key, value));
            return None;
        }
        match self.position(&key) {
            Ok(index) => Some(std::mem::replace(&mut self.entries[index].1, value)),
            Err(index) => {
                self.entries.insert(index, (key, value));
                None
            }
        }
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<ByteString> {
        self.position(key)
            .ok()
            .map(|index| self.entries.remove(index).1)
    }

    /// Number of entries.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries in key order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + '_ {
        self.entries.iter().map(|(key, value)| (&**key, &**value))
    }

    /// Keys in order.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.entries.iter().map(|(key, _)| &**key)
    }
}

/// Equality of two short texts without a `memcmp` call for the common mismatches.
fn same_text(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.first() == b.first() && a == b
}

impl fmt::Debug for ExtFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<'a> IntoIterator for &'a ExtFields {
    type Item = (&'a str, &'a str);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (ByteString, ByteString)>,
        fn(&'a (ByteString, ByteString)) -> (&'a str, &'a str),
    >;

    fn into_iter(self) -> Self::IntoIter {
        fn pair(entry: &(ByteString, ByteString)) -> (&str, &str) {
            (&*entry.0, &*entry.1)
        }
        self.entries.iter().map(pair)
    }
}

impl<K: Into<ByteString>, V: Into<ByteString>> FromIterator<(K, V)> for ExtFields {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut fields = Self::new();
        fields.extend(iter);
        fields
    }
}

impl<K: Into<ByteString>, V: Into<ByteString>> Extend<(K, V)> for ExtFields {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        for (key, value) in iter {
            self.insert(key, value);
        }
    }
}

impl<K: Into<ByteString>, V: Into<ByteString>, const N: usize> From<[(K, V); N]> for ExtFields {
    fn from(pairs: [(K, V); N]) -> Self {
        pairs.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    #[test]
    fn behaves_as_a_sorted_map() {
        let mut fields = ExtFields::new();
        assert_eq!(fields.insert("b", "2"), None);
        assert_eq!(fields.insert("a", String::from("1")), None);
        assert_eq!(fields.insert("c", "3"), None);
        assert_eq!(fields.insert("b", "two").as_deref(), Some("2"));
        assert_eq!(fields.get("b"), Some("two"));
        assert_eq!(fields.get("z"), None);
        assert_eq!(fields.keys().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(fields.remove("a").as_deref(), Some("1"));
        assert!(!fields.contains_key("a"));
        assert_eq!(fields.len(), 2);
        assert_eq!(format!("{fields:?}"), r#"{"b": "two", "c": "3"}"#);
    }

    proptest! {
        /// Any sequence of inserts and removes leaves the same content, in the same order, as a
        /// `BTreeMap` given the same operations.
        #[test]
        fn matches_a_btree_map(ops in prop::collection::vec(
            (any::<bool>(), "[a-e]{0,2}", "[x-z]{0,2}"), 0..40)
        ) {
            let mut fields = ExtFields::new();
            let mut model = BTreeMap::new();
            for (insert, key, value) in ops {
                if insert {
                    prop_assert_eq!(
                        fields.insert(key.clone(), value.clone()).map(|v| v.to_string()),
                        model.insert(key, value)
                    );
                } else {
                    prop_assert_eq!(
                        fields.remove(&key).map(|v| v.to_string()),
                        model.remove(&key)
                    );
                }
            }
            let got: Vec<(&str, &str)> = fields.iter().collect();
            let want: Vec<(&str, &str)> =
                model.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            prop_assert_eq!(got, want);
        }
    }
}
