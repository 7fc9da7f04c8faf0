//! Tag hash codes (PROTOCOL.md §6.10): Java `String.hashCode()` of the tag, which is the
//! ConsumeQueue tag code and the subscription `codeSet` entry. Pure; must never hash UTF-8
//! bytes instead of UTF-16 code units, or use non-wrapping arithmetic.

use super::properties::Properties;

/// Java `String.hashCode()`: `h = 31*h + c` over UTF-16 code units, wrapping in i32.
/// `""` gives 0.
#[must_use]
pub fn tag_hash(tag: &str) -> i32 {
    tag.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

/// The ConsumeQueue tags code of a message (Java `tagsString2tagsCode`): the hash of its
/// `TAGS` property, or 0 when absent or empty. An i64 because the ConsumeQueue slot is one
/// (scheduled messages keep their delivery time there instead).
#[must_use]
pub fn tags_code_of(properties: &Properties) -> i64 {
    properties
        .tags()
        .map_or(0, |tags| i64::from(tag_hash(tags)))
}
