//! [`ExtFields`]: a command's custom header fields as text, sorted by key (PROTOCOL.md §1.3).
//!
//! A request carries 10–20 short fields and is read a few times, so the map is one text arena
//! plus a sorted vector of (key, value) ranges into it, not a tree of `String`s: decoding a
//! JSON header copies the header into the arena once and points into it (an escaped value is
//! unescaped onto the arena's end), so a decoded header costs two allocations whatever its
//! field count. The per-field `String` + `BTreeMap` node allocations were ~10 % of a loaded
//! broker's CPU, and shared `Bytes` slices per field cost ~6 % in reference counting.
//!
//! Must never: hold two entries with the same key, or iterate out of key order (the encoders
//! write entries in iteration order, as fastjson writes a sorted map). Replacing or removing a
//! value leaves its old text in the arena until the map is dropped (maps are short-lived).

use std::fmt;
use std::ops::Range;

/// Arena bytes reserved per entry by [`ExtFields::with_capacity`]: a response's key and value
/// (`queueOffset` and a number, `msgId` and 32 hex digits) fit on average.
const TEXT_PER_ENTRY: usize = 24;

/// A range of the arena (`u32`: headers are far below 4 GiB, see the frame limits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    fn range(self) -> Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// Custom header fields as text, sorted by key; a key appears once.
#[derive(Clone, Default)]
pub struct ExtFields {
    text: String,
    entries: Vec<(Span, Span)>,
}

impl ExtFields {
    /// An empty map.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            text: String::new(),
            entries: Vec::new(),
        }
    }

    /// An empty map with room for `capacity` entries.
    #[must_use]
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            text: String::with_capacity(capacity * TEXT_PER_ENTRY),
            entries: Vec::with_capacity(capacity),
        }
    }

    /// An empty map whose arena holds `text` bytes and whose index holds `entries` before
    /// either reallocates.
    #[must_use]
    pub fn with_text_capacity(text: usize, entries: usize) -> Self {
        Self {
            text: String::with_capacity(text),
            entries: Vec::with_capacity(entries),
        }
    }

    /// A map whose arena starts as a copy of `header` (a decoder's input), with room for as
    /// much again: an unescaped value is never longer than its escaped text, so unescaping
    /// every value onto the arena's end never reallocates. Entries are added with
    /// [`Self::insert_spans`] as ranges of it.
    pub(crate) fn over_header(header: &str, capacity: usize) -> Self {
        let mut text = String::with_capacity(header.len() * 2);
        text.push_str(header);
        Self {
            text,
            entries: Vec::with_capacity(capacity),
        }
    }

    /// Appends `extra` to the arena and returns its range (an unescaped value).
    pub(crate) fn push_text(&mut self, extra: &str) -> Range<usize> {
        let start = self.text.len();
        self.text.push_str(extra);
        start..self.text.len()
    }

    /// Appends what `write` pushes onto the arena's end and returns its range; if `write`
    /// gives up (`None`), the arena is cut back to where it was. An unescaping decoder writes
    /// a value straight into the arena this way (no copy of its own).
    pub(crate) fn push_with(
        &mut self,
        write: impl FnOnce(&mut String) -> Option<()>,
    ) -> Option<Range<usize>> {
        let start = self.text.len();
        if write(&mut self.text).is_none() {
            self.text.truncate(start);
            return None;
        }
        Some(start..self.text.len())
    }

    fn str_of(&self, span: Span) -> &str {
        &self.text[span.range()]
    }

    fn span(start: usize, end: usize) -> Span {
        Span {
            start: u32::try_from(start).expect("extFields text below 4 GiB"),
            end: u32::try_from(end).expect("extFields text below 4 GiB"),
        }
    }

    /// Sets the key at `key` to the value at `value` (both ranges of the arena), returning
    /// the range of the value it replaced (still in the arena). Keys arriving in ascending order (fastjson's sorted output)
    /// cost no search.
    ///
    /// # Panics
    /// If a range is not inside the arena or not on character boundaries (a decoder bug): the
    /// arena is sliced with them here and on every read.
    pub(crate) fn insert_spans(
        &mut self,
        key: Range<usize>,
        value: Range<usize>,
    ) -> Option<Range<usize>> {
        // Both ranges on character boundaries (slicing panics otherwise): every later read
        // compares or copies their bytes without checking again.
        let _checked = (&self.text[key.clone()], &self.text[value.clone()]);
        let key = Self::span(key.start, key.end);
        let value = Self::span(value.start, value.end);
        let text = self.text.as_bytes();
        let key_bytes = &text[key.range()];
        if self
            .entries
            .last()
            .is_none_or(|(last, _)| text_cmp(&text[last.range()], key_bytes).is_lt())
        {
            self.entries.push((key, value));
            return None;
        }
        match self.position_bytes(key_bytes) {
            Ok(index) => Some(std::mem::replace(&mut self.entries[index].1, value).range()),
            Err(index) => {
                self.entries.insert(index, (key, value));
                None
            }
        }
    }

    fn position(&self, key: &str) -> Result<usize, usize> {
        self.position_bytes(key.as_bytes())
    }

    /// [`Self::position`] on bytes: byte order is `str` order, and the arena's ranges were
    /// checked for character boundaries when inserted.
    fn position_bytes(&self, key: &[u8]) -> Result<usize, usize> {
        let text = self.text.as_bytes();
        self.entries
            .binary_search_by(|(existing, _)| text_cmp(&text[existing.range()], key))
    }

    /// The value of `key`.
    ///
    /// A linear scan comparing lengths and first bytes before anything else: a header has a
    /// few short keys (a send's are `a`..`n`), where a binary search's `memcmp` calls cost
    /// more (they were 7 % of a loaded broker's CPU). [`EXT_FIELDS_COUNT_MAX`] bounds the
    /// scan.
    ///
    /// [`EXT_FIELDS_COUNT_MAX`]: super::limits::EXT_FIELDS_COUNT_MAX
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&str> {
        let key = key.as_bytes();
        let text = self.text.as_bytes();
        self.entries
            .iter()
            .find(|(existing, _)| same_text(&text[existing.range()], key))
            .map(|(_, value)| self.str_of(*value))
    }

    /// Whether `key` is present.
    #[must_use]
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Sets `key` to `value`, returning the value it replaces.
    pub fn insert(&mut self, key: impl AsRef<str>, value: impl AsRef<str>) -> Option<String> {
        let key = self.push_text(key.as_ref());
        let value = self.push_text(value.as_ref());
        let replaced = self.insert_spans(key, value)?;
        Some(self.text[replaced].to_owned())
    }

    /// Sets `key` to the text `write` appends to the arena (a header field formatting itself
    /// in place, without a `String` of its own).
    pub fn insert_with(&mut self, key: &str, write: impl FnOnce(&mut String)) {
        let key = self.push_text(key);
        let start = self.text.len();
        write(&mut self.text);
        let value = start..self.text.len();
        self.insert_spans(key, value);
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        let index = self.position(key).ok()?;
        let (_, value) = self.entries.remove(index);
        Some(self.str_of(value).to_owned())
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
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            text: &self.text,
            entries: self.entries.iter(),
        }
    }

    /// Entries in key order as bytes: what the encoders write, without re-checking character
    /// boundaries on every step (the arena's ranges were checked when inserted).
    pub fn iter_bytes(&self) -> impl ExactSizeIterator<Item = (&[u8], &[u8])> + '_ {
        let text = self.text.as_bytes();
        self.entries
            .iter()
            .map(move |(key, value)| (&text[key.range()], &text[value.range()]))
    }

    /// Keys in order.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.iter().map(|(key, _)| key)
    }
}

/// Entries of an [`ExtFields`] in key order.
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    text: &'a str,
    entries: std::slice::Iter<'a, (Span, Span)>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        let (key, value) = self.entries.next()?;
        Some((&self.text[key.range()], &self.text[value.range()]))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.entries.size_hint()
    }
}

impl ExactSizeIterator for Iter<'_> {}

/// `a.cmp(b)`, deciding on the first bytes when they differ (no `memcmp` call): keys are
/// short and mostly differ there.
fn text_cmp(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    match (a.first(), b.first()) {
        (Some(x), Some(y)) if x != y => x.cmp(y),
        _ => a.cmp(b),
    }
}

/// Equality of two short texts without a `memcmp` call for the common mismatches (names
/// that differ in length or first byte).
pub(crate) fn same_text(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.first() == b.first() && a == b
}

impl PartialEq for ExtFields {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for ExtFields {}

impl fmt::Debug for ExtFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<'a> IntoIterator for &'a ExtFields {
    type Item = (&'a str, &'a str);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<K: AsRef<str>, V: AsRef<str>> FromIterator<(K, V)> for ExtFields {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut fields = Self::new();
        fields.extend(iter);
        fields
    }
}

impl<K: AsRef<str>, V: AsRef<str>> Extend<(K, V)> for ExtFields {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        for (key, value) in iter {
            self.insert(key, value);
        }
    }
}

impl<K: AsRef<str>, V: AsRef<str>, const N: usize> From<[(K, V); N]> for ExtFields {
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
                        fields.insert(&key, &value),
                        model.insert(key, value)
                    );
                } else {
                    prop_assert_eq!(fields.remove(&key), model.remove(&key));
                }
            }
            let got: Vec<(&str, &str)> = fields.iter().collect();
            let want: Vec<(&str, &str)> =
                model.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            prop_assert_eq!(got, want);
        }
    }
}
