//! The `SEND_BATCH_MESSAGE` body (PROTOCOL.md §6.5): entries back to back, each
//! `TOTALSIZE i32 ‖ MAGICCODE i32 ‖ BODYCRC i32 ‖ FLAG i32 ‖ BODY_LEN i32 ‖ BODY ‖
//! PROPERTIES_LEN i16 ‖ PROPERTIES`. MAGICCODE and BODYCRC are written as 0 by Java clients
//! and ignored on decode (the broker computes the stored CRC itself).
//!
//! Decoding checks the whole body and the entry count against [`BatchLimits`] and every
//! length against the buffer before use; bodies share the input buffer. Must never panic on
//! input bytes or allocate more entries than the limit.

use bytes::{BufMut, Bytes, BytesMut};

use super::super::error::CodecError;
use super::super::limits::{
    BATCH_MESSAGES_MAX, MESSAGE_BODY_SIZE_MAX_DEFAULT, PROPERTIES_SIZE_MAX,
};
use super::properties::Properties;
use super::reader::Reader;

/// Fixed bytes per entry: five i32 fields and the i16 properties length.
pub const BATCH_ENTRY_FIXED_SIZE: usize = 4 * 5 + 2;

const _: () = assert!(
    BATCH_ENTRY_FIXED_SIZE == 22,
    "PROTOCOL.md §6.5 fixed overhead"
);

/// One message of a batch: what varies per message (topic, queue, sysFlag and born time come
/// from the send header).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BatchEntry {
    /// User flag.
    pub flag: i32,
    /// Body.
    pub body: Bytes,
    /// This message's own properties (its `UNIQ_KEY`, `TAGS`, `KEYS`, `WAIT`).
    pub properties: Properties,
}

/// Bounds for [`decode_batch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Most entries in one body.
    pub messages_max: usize,
    /// Largest whole batch body. Java 5.x checks the whole body against `maxMessageSize`
    /// (so each message body is bounded by it too).
    pub body_size_max: usize,
}

impl Default for BatchLimits {
    fn default() -> Self {
        Self {
            messages_max: BATCH_MESSAGES_MAX,
            body_size_max: MESSAGE_BODY_SIZE_MAX_DEFAULT,
        }
    }
}

impl BatchEntry {
    /// Bytes [`Self::encode`] writes (saturating; an oversized entry fails to encode).
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        BATCH_ENTRY_FIXED_SIZE
            .saturating_add(self.body.len())
            .saturating_add(self.properties.encoded_len())
    }

    /// Appends the encoded entry to `out`, with MAGICCODE and BODYCRC 0 as Java clients write.
    ///
    /// # Errors
    /// [`CodecError::Encode`] if the properties exceed [`PROPERTIES_SIZE_MAX`] or the entry
    /// exceeds `i32::MAX`. Nothing is written then.
    ///
    /// # Panics
    /// Only if the bytes written differ from [`Self::encoded_len`], a bug in this module.
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), CodecError> {
        let properties_len = self.properties.encoded_len();
        if properties_len > PROPERTIES_SIZE_MAX {
            return Err(CodecError::Encode {
                what: "batch entry properties",
                detail: format!("{properties_len} bytes, max {PROPERTIES_SIZE_MAX}"),
            });
        }
        let total = self.encoded_len();
        let total_i32 = i32::try_from(total).map_err(|_| CodecError::Encode {
            what: "batch entry",
            detail: format!("{total} bytes, max {}", i32::MAX),
        })?;
        let start = out.len();
        out.reserve(total);
        out.put_i32(total_i32);
        out.put_i32(0);
        out.put_i32(0);
        out.put_i32(self.flag);
        out.put_i32(i32::try_from(self.body.len()).expect("body < total <= i32::MAX"));
        out.put_slice(&self.body);
        out.put_i16(i16::try_from(properties_len).expect("properties checked above"));
        self.properties.encode(out);
        assert_eq!(
            out.len() - start,
            total,
            "TOTALSIZE must equal the bytes written"
        );
        Ok(())
    }
}

/// Appends the batch body of `entries` to `out`.
///
/// # Errors
/// The first entry's [`BatchEntry::encode`] error; entries before it stay written.
pub fn encode_batch(entries: &[BatchEntry], out: &mut BytesMut) -> Result<(), CodecError> {
    out.reserve(entries.iter().map(BatchEntry::encoded_len).sum());
    entries.iter().try_for_each(|entry| entry.encode(out))
}

/// One entry of a batch body, borrowed from it: what [`decode_batch_raw`] yields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawBatchEntry<'a> {
    /// User flag.
    pub flag: i32,
    /// Body.
    pub body: &'a [u8],
    /// The properties string as sent (checked UTF-8, not parsed).
    pub properties: &'a str,
}

/// Decodes a batch body. Bodies share `body`. An empty body gives no entries.
///
/// # Errors
/// As [`decode_batch_raw`].
pub fn decode_batch(body: &Bytes, limits: &BatchLimits) -> Result<Vec<BatchEntry>, CodecError> {
    Ok(decode_batch_raw(body, limits)?
        .into_iter()
        .map(|raw| BatchEntry {
            flag: raw.flag,
            body: body.slice_ref(raw.body),
            properties: Properties::decode(raw.properties),
        })
        .collect())
}

/// Decodes a batch body into entries that borrow it, with the properties strings unparsed.
/// An empty body gives no entries.
///
/// # Errors
/// [`CodecError::Length`] if the body exceeds `limits.body_size_max`, a length is negative or
/// runs past the buffer, or an entry's TOTALSIZE differs from its parsed size; [`CodecError::TooMany`] past
/// `limits.messages_max` entries; [`CodecError::Truncated`] when a field runs past its entry or
/// the buffer; [`CodecError::Utf8`] for non-UTF-8 properties.
///
/// # Panics
/// Only on a broken internal invariant (an entry consuming fewer than 22 bytes).
pub fn decode_batch_raw<'a>(
    body: &'a [u8],
    limits: &BatchLimits,
) -> Result<Vec<RawBatchEntry<'a>>, CodecError> {
    if body.len() > limits.body_size_max {
        return Err(CodecError::Length {
            what: "batch body",
            offset: 0,
            len: i64::try_from(body.len()).unwrap_or(i64::MAX),
            max: limits.body_size_max,
        });
    }
    let mut entries = Vec::new();
    let mut position = 0;
    while position < body.len() {
        if entries.len() >= limits.messages_max {
            return Err(CodecError::TooMany {
                what: "batch messages",
                count: entries.len() + 1,
                max: limits.messages_max,
            });
        }
        let (entry, consumed) = decode_entry(body, position)?;
        assert!(consumed >= BATCH_ENTRY_FIXED_SIZE);
        entries.push(entry);
        position += consumed;
    }
    assert_eq!(position, body.len());
    Ok(entries)
}

/// Decodes the entry at `start` of `body`; returns it and its size.
fn decode_entry(body: &[u8], start: usize) -> Result<(RawBatchEntry<'_>, usize), CodecError> {
    let rest = &body[start..];
    let total_raw = Reader::new(rest, start).i32("batch TOTALSIZE")?;
    let total = Reader::length(i64::from(total_raw), start, rest.len(), "batch TOTALSIZE")?;
    let mut r = Reader::new(&rest[..total], start);
    r.take(4, "batch TOTALSIZE")?;
    r.i32("batch MAGICCODE")?;
    r.i32("batch BODYCRC")?;
    let flag = r.i32("batch FLAG")?;
    let body_len_offset = r.offset();
    let body_len_raw = i64::from(r.i32("batch BODY_LEN")?);
    let body_len = Reader::length(
        body_len_raw,
        body_len_offset,
        r.remaining(),
        "batch BODY_LEN",
    )?;
    let body_start = start + r.position();
    r.take(body_len, "batch BODY")?;
    let properties_len_offset = r.offset();
    let properties_len_raw = i64::from(r.i16("batch PROPERTIES_LEN")?);
    let properties_len = Reader::length(
        properties_len_raw,
        properties_len_offset,
        r.remaining(),
        "batch PROPERTIES_LEN",
    )?;
    let properties_offset = r.offset();
    let properties =
        std::str::from_utf8(r.take(properties_len, "batch PROPERTIES")?).map_err(|_| {
            CodecError::Utf8 {
                what: "properties",
                offset: properties_offset,
            }
        })?;
    if r.position() != total {
        return Err(CodecError::Length {
            what: "batch TOTALSIZE (larger than the parsed fields)",
            offset: start,
            len: i64::from(total_raw),
            max: r.position(),
        });
    }
    let entry = RawBatchEntry {
        flag,
        body: &body[body_start..body_start + body_len],
        properties,
    };
    Ok((entry, total))
}
