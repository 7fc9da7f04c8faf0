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
use super::keys;

/// Byte between a name and its value.
pub const NAME_VALUE_SEPARATOR: u8 = 0x01;
/// Byte after every pair, including the last.
pub const PROPERTY_SEPARATOR: u8 = 0x02;

/// Up to this many entries, decode finds duplicate names by a linear scan; beyond it, by a
/// hash index, so a hostile string of thousands of tiny pairs stays linear time.
const DEDUP_LINEAR_SCAN_MAX: usize = 16;

/// An ordered property map. Lookups are linear: real messages carry fewer than 20 entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Properties {
    entries: Vec<(String, String)>,
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
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        let mut index: HashMap<&str, usize> = HashMap::new();
        for segment in text.split(char::from(PROPERTY_SEPARATOR)) {
            let Some((name, value)) = segment.split_once(char::from(NAME_VALUE_SEPARATOR)) else {
                continue;
            };
            if name.is_empty() || value.is_empty() {
                continue;
            }
            let found = if pairs.len() <= DEDUP_LINEAR_SCAN_MAX {
                pairs.iter().position(|(n, _)| *n == name)
            } else {
                if index.is_empty() {
                    index.extend(pairs.iter().enumerate().map(|(i, (n, _))| (*n, i)));
                }
                index.get(name).copied()
            };
            if let Some(i) = found {
                pairs[i].1 = value;
            } else {
                if !index.is_empty() {
                    index.insert(name, pairs.len());
                }
                pairs.push((name, value));
            }
        }
        let entries = pairs
            .into_iter()
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect();
        Self { entries }
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

    /// Bytes of the encoded string.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        self.entries
            .iter()
            .map(|(n, v)| n.len() + v.len() + 2)
            .sum()
    }

    /// Appends the encoded string to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        out.reserve(self.encoded_len());
        for (name, value) in &self.entries {
            out.put_slice(name.as_bytes());
            out.put_u8(NAME_VALUE_SEPARATOR);
            out.put_slice(value.as_bytes());
            out.put_u8(PROPERTY_SEPARATOR);
        }
    }

    /// The encoded string, for the send header's `properties` field.
    #[must_use]
    pub fn to_wire_string(&self) -> String {
        let mut out = String::with_capacity(self.encoded_len());
        for (name, value) in &self.entries {
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
        self.entries
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether `name` is present.
    #[must_use]
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Sets `name` to `value`, in place if present (keeping its position), else at the end.
    /// Returns the previous value.
    ///
    /// # Errors
    /// [`CodecError::Encode`] if the pair would not survive a Java decode: an empty name or
    /// value, 0x01 or 0x02 in the name, or 0x02 in the value. The map is unchanged then.
    pub fn insert(
        &mut self,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Option<String>, CodecError> {
        let name = name.into();
        let value = value.into();
        check_pair(&name, &value)?;
        if let Some(slot) = self.entries.iter_mut().find(|(n, _)| *n == name) {
            return Ok(Some(std::mem::replace(&mut slot.1, value)));
        }
        self.entries.push((name, value));
        Ok(None)
    }

    /// Removes `name`, keeping the order of the rest. Returns its value.
    pub fn remove(&mut self, name: &str) -> Option<String> {
        let i = self.entries.iter().position(|(n, _)| n == name)?;
        Some(self.entries.remove(i).1)
    }

    /// Copies every entry of `other` in, `other` winning on equal names. This is what Java's
    /// decoder yields for `self`'s string followed by `other`'s (Java 5.x appends a batch's
    /// header properties to each entry's properties this way).
    pub fn extend_from(&mut self, other: &Self) {
        for (name, value) in &other.entries {
            // Both pairs already satisfy the invariant, so no check is needed.
            if let Some(slot) = self.entries.iter_mut().find(|(n, _)| n == name) {
                slot.1.clone_from(value);
            } else {
                self.entries.push((name.clone(), value.clone()));
            }
        }
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
        self.entries.iter().map(|(n, v)| (n.as_str(), v.as_str()))
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
}
