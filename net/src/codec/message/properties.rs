//! The message properties string (PROTOCOL.md §6.1): `name 0x01 value 0x02` per pair, carried
//! in the send header (`properties` / `i`) and in stored records.
//!
//! [`Properties`] keeps insertion order so a decoded map re-encodes in the order it came in.
//! Its invariant (checked by [`Properties::insert`]) is that every entry survives a Java
//! decode: name and value non-empty, no 0x02 in either, no 0x01 in the name. A value may hold
//! 0x01, because Java's decoder yields such values ("a\x01b\x01c" is name `a`, value `b\x01c`).
//! Must never keep an entry Java would drop, or reorder entries.

use std::collections::HashMap;

use bytes::{BufMut, BytesMut};

use super::super::error::CodecError;
use super::super::ext_fields::same_text;
use super::keys;

/// Byte between a name and its value.
pub const NAME_VALUE_SEPARATOR: u8 = 0x01;
/// Byte after every pair, including the last.
pub const PROPERTY_SEPARATOR: u8 = 0x02;

/// Up to this many entries, decode finds duplicate names by a linear scan; beyond it, by a
/// hash index, so a hostile string of thousands of tiny pairs stays linear time.
const DEDUP_LINEAR_SCAN_MAX: usize = 16;

/// Arena bytes reserved past a decoded string, for the pairs the broker adds to every sent
/// message (`MSG_REGION`, `TRACE_ON`, `CLUSTER`, sometimes `UNIQ_KEY`) without regrowing.
const TEXT_HEADROOM: usize = 128;

/// Entries a decoded map starts with room for: a sent message's own (TAGS, KEYS, UNIQ_KEY,
/// WAIT) and the ones the broker adds (MSG_REGION, TRACE_ON, CLUSTER) fit without regrowing.
const ENTRIES_START: usize = 8;

/// Replaced and removed text is dropped from the arena once it exceeds this much and the live
/// text: the arena stays within twice what the map holds plus this.
const TEXT_GARBAGE_MAX: usize = 1024;

/// A range of the arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: usize,
    end: usize,
}

/// An ordered property map. Lookups are linear: real messages carry fewer than 20 entries.
///
/// The entries are ranges of one text arena (a decoded string is copied once and pointed
/// into; an inserted pair is appended), not a `String` pair each: a send decodes, extends and
/// re-encodes one map, and the per-pair allocations and frees were a visible share of a
/// loaded broker's allocator time.
#[derive(Clone, Default)]
pub struct Properties {
    text: String,
    entries: Vec<(Span, Span)>,
}

impl PartialEq for Properties {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for Properties {}

impl std::fmt::Debug for Properties {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Properties")
            .field("entries", &self.iter().collect::<Vec<_>>())
            .finish()
    }
}

impl Properties {
    /// An empty map.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes a properties string with Java's rules: split on 0x02 (a trailing segment
    /// without 0x02 still counts); the name is the part before the segment's first 0x01 and
    /// the value the rest; segments with no 0x01, an empty name or an empty value are dropped.
    /// A repeated name keeps its first position and its last value (Java `HashMap.put`).
    ///
    /// Never fails. Callers taking this from a header should bound `text` first (a stored
    /// record holds at most [`crate::codec::limits::PROPERTIES_SIZE_MAX`] bytes).
    #[must_use]
    pub fn decode(text: &str) -> Self {
        let base = text.as_ptr() as usize;
        let span_of = |part: &str| {
            let start = part.as_ptr() as usize - base;
            Span {
                start,
                end: start + part.len(),
            }
        };
        let mut entries: Vec<(Span, Span)> = Vec::with_capacity(ENTRIES_START);
        let mut index: HashMap<&str, usize> = HashMap::new();
        for segment in text.split(char::from(PROPERTY_SEPARATOR)) {
            let Some((name, value)) = segment.split_once(char::from(NAME_VALUE_SEPARATOR)) else {
                continue;
            };
            if name.is_empty() || value.is_empty() {
                continue;
            }
            let found = if entries.len() <= DEDUP_LINEAR_SCAN_MAX {
                entries
                    .iter()
                    .position(|(n, _)| same_text(&text.as_bytes()[n.start..n.end], name.as_bytes()))
            } else {
                if index.is_empty() {
                    index.extend(
                        entries
                            .iter()
                            .enumerate()
                            .map(|(i, (n, _))| (&text[n.start..n.end], i)),
                    );
                }
                index.get(name).copied()
            };
            if let Some(i) = found {
                entries[i].1 = span_of(value);
            } else {
                if !index.is_empty() {
                    index.insert(name, entries.len());
                }
                entries.push((span_of(name), span_of(value)));
            }
        }
        let mut arena = String::with_capacity(text.len() + TEXT_HEADROOM);
        arena.push_str(text);
        Self {
            text: arena,
            entries,
        }
    }

    /// Decodes properties bytes (as stored in a record) that sit at `offset` in the caller's
    /// buffer.
    ///
    /// # Errors
    /// [`CodecError::Utf8`] if `bytes` is not UTF-8.
    pub fn decode_bytes(bytes: &[u8], offset: usize) -> Result<Self, CodecError> {
        let text = std::str::from_utf8(bytes).map_err(|_| CodecError::Utf8 {
            what: "properties",
            offset,
        })?;
        Ok(Self::decode(text))
    }

    fn str_of(&self, span: Span) -> &str {
        &self.text[span.start..span.end]
    }

    /// The span's bytes: for comparing and encoding, without `str` slicing's char-boundary
    /// checks (every span lies on boundaries: it was cut at ASCII separators or pushed whole).
    fn bytes_of(&self, span: Span) -> &[u8] {
        &self.text.as_bytes()[span.start..span.end]
    }

    fn push_text(&mut self, part: &str) -> Span {
        let start = self.text.len();
        self.text.push_str(part);
        Span {
            start,
            end: self.text.len(),
        }
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.entries
            .iter()
            .position(|(n, _)| same_text(self.bytes_of(*n), name.as_bytes()))
    }

    /// Bytes of the encoded string.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        self.entries
            .iter()
            .map(|(n, v)| n.end - n.start + v.end - v.start + 2)
            .sum()
    }

    /// Appends the encoded string to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        out.reserve(self.encoded_len());
        for &(name, value) in &self.entries {
            out.put_slice(self.bytes_of(name));
            out.put_u8(NAME_VALUE_SEPARATOR);
            out.put_slice(self.bytes_of(value));
            out.put_u8(PROPERTY_SEPARATOR);
        }
    }

    /// The encoded string, for the send header's `properties` field.
    #[must_use]
    pub fn to_wire_string(&self) -> String {
        let mut out = String::with_capacity(self.encoded_len());
        for (name, value) in self.iter() {
            out.push_str(name);
            out.push(char::from(NAME_VALUE_SEPARATOR));
            out.push_str(value);
            out.push(char::from(PROPERTY_SEPARATOR));
        }
        out
    }

    /// The value of `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&str> {
        self.position(name).map(|i| self.str_of(self.entries[i].1))
    }

    /// Whether `name` is present.
    #[must_use]
    pub fn contains(&self, name: &str) -> bool {
        self.position(name).is_some()
    }

    /// Sets `name` to `value`, in place if present (keeping its position), else at the end.
    /// Returns the previous value.
    ///
    /// # Errors
    /// [`CodecError::Encode`] if the pair would not survive a Java decode: an empty name or
    /// value, 0x01 or 0x02 in the name, or 0x02 in the value. The map is unchanged then.
    pub fn insert(
        &mut self,
        name: impl AsRef<str>,
        value: impl AsRef<str>,
    ) -> Result<Option<String>, CodecError> {
        let (name, value) = (name.as_ref(), value.as_ref());
        check_pair(name, value)?;
        Ok(self.insert_checked(name, value))
    }

    /// [`Self::insert`] of a pair known to satisfy the invariant.
    fn insert_checked(&mut self, name: &str, value: &str) -> Option<String> {
        if let Some(i) = self.position(name) {
            let previous = self.str_of(self.entries[i].1).to_owned();
            self.entries[i].1 = self.push_text(value);
            self.drop_garbage();
            return Some(previous);
        }
        let name = self.push_text(name);
        let value = self.push_text(value);
        self.entries.push((name, value));
        None
    }

    /// Removes `name`, keeping the order of the rest. Returns its value.
    pub fn remove(&mut self, name: &str) -> Option<String> {
        let i = self.position(name)?;
        let (_, value) = self.entries.remove(i);
        let removed = self.str_of(value).to_owned();
        self.drop_garbage();
        Some(removed)
    }

    /// Copies every entry of `other` in, `other` winning on equal names. This is what Java's
    /// decoder yields for `self`'s string followed by `other`'s (Java 5.x appends a batch's
    /// header properties to each entry's properties this way).
    pub fn extend_from(&mut self, other: &Self) {
        for (name, value) in other.iter() {
            // Both pairs already satisfy the invariant, so no check is needed.
            self.insert_checked(name, value);
        }
    }

    /// Rewrites the arena with the live text only, once replaced and removed text outweighs
    /// it by [`TEXT_GARBAGE_MAX`].
    fn drop_garbage(&mut self) {
        let live: usize = self.encoded_len();
        if self.text.len() <= live + TEXT_GARBAGE_MAX {
            return;
        }
        let mut compact = Self {
            text: String::with_capacity(live + TEXT_HEADROOM),
            entries: Vec::with_capacity(self.entries.len()),
        };
        for (name, value) in self.iter() {
            let name = compact.push_text(name);
            let value = compact.push_text(value);
            compact.entries.push((name, value));
        }
        *self = compact;
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

    /// Entries in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries
            .iter()
            .map(|(n, v)| (self.str_of(*n), self.str_of(*v)))
    }

    /// The `TAGS` value.
    #[must_use]
    pub fn tags(&self) -> Option<&str> {
        self.get(keys::TAGS)
    }

    /// The `UNIQ_KEY` value.
    #[must_use]
    pub fn uniq_key(&self) -> Option<&str> {
        self.get(keys::UNIQ_KEY)
    }

    /// The business keys of `KEYS`, split on spaces, empty pieces skipped.
    pub fn message_keys(&self) -> impl Iterator<Item = &str> {
        self.get(keys::KEYS)
            .unwrap_or("")
            .split(keys::KEY_SEPARATOR)
            .filter(|k| !k.is_empty())
    }
}

/// Checks the invariant described in the module doc.
fn check_pair(name: &str, value: &str) -> Result<(), CodecError> {
    let bad = |detail: &str| {
        Err(CodecError::Encode {
            what: "property",
            detail: format!("{detail} (name {name:?})"),
        })
    };
    if name.is_empty() {
        return bad("empty name");
    }
    if value.is_empty() {
        return bad("empty value");
    }
    if name
        .bytes()
        .any(|b| b == NAME_VALUE_SEPARATOR || b == PROPERTY_SEPARATOR)
    {
        return bad("name contains 0x01 or 0x02");
    }
    if value.bytes().any(|b| b == PROPERTY_SEPARATOR) {
        return bad("value contains 0x02");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::*;

    #[test]
    fn duplicate_names_keep_first_position_and_last_value_past_the_scan_threshold() {
        let mut text = String::new();
        for i in 0..40 {
            write!(text, "k{i}\x01v{i}\x02").expect("writing to a String cannot fail");
        }
        text.push_str("k3\x01late\x02k39\x01last\x02new\x01x");
        let p = Properties::decode(&text);
        assert_eq!(p.len(), 41);
        assert_eq!(p.get("k3"), Some("late"));
        assert_eq!(p.get("k39"), Some("last"));
        let names: Vec<&str> = p.iter().map(|(n, _)| n).collect();
        assert_eq!(names[3], "k3");
        assert_eq!(names[39], "k39");
        assert_eq!(names[40], "new");
    }

    #[test]
    fn replaced_text_stays_bounded_and_equality_ignores_the_arena() {
        let mut p = Properties::decode("a\x01x\x02b\x01y\x02");
        for i in 0..10_000 {
            let previous = p.insert("a", format!("value-{i}")).expect("valid");
            assert!(previous.is_some());
            assert!(
                p.text.len() <= p.encoded_len() + TEXT_GARBAGE_MAX + 64,
                "the arena keeps at most the garbage bound"
            );
        }
        p.insert("c", "z").expect("valid");
        assert_eq!(p.remove("b").as_deref(), Some("y"));
        let expected = Properties::decode("a\x01value-9999\x02c\x01z\x02");
        assert_eq!(p, expected, "same entries, different arenas");
        assert_eq!(p.to_wire_string(), "a\x01value-9999\x02c\x01z\x02");
        assert_eq!(format!("{p:?}"), format!("{expected:?}"));
        let mut other = Properties::decode("c\x01w\x02d\x01v\x02");
        other.extend_from(&p);
        assert_eq!(
            other.iter().collect::<Vec<_>>(),
            [("c", "z"), ("d", "v"), ("a", "value-9999")]
        );
    }
}
