//! The CommitLog on-disk record format: pure encode / decode, no I/O.
//!
//! Owns the byte layout of a record and of the end-of-segment filler, the CRC rule, and the
//! validation a record must pass before it is written and after it is read back. Every entry
//! starts on a [`RECORD_ALIGN`]-byte boundary and its length is a multiple of it, so the space
//! left at the end of a segment is always 0 or at least [`FILLER_BYTES`].
//!
//! Record (little-endian; `H` = [`RECORD_HEADER_BYTES`] = 64):
//! ```text
//!  0 total_len u32    whole record incl. header and zero padding, multiple of 16
//!  4 crc u32          CRC-32C of bytes [0,4) ++ [8,total_len), xored with RECORD_CRC_XOR
//!  8 magic u32        RECORD_MAGIC ("RMQ" + format version 1)
//! 12 sys_flag i32     RocketMQ MessageSysFlag (transaction type etc.), opaque here
//! 16 phys_offset u64  this record's own log offset (a copy at another offset never validates)
//! 24 queue_offset i64 assigned by the store facade
//! 32 store_timestamp_ms i64
//! 40 tags_code i64
//! 48 queue_id i32
//! 52 payload_len u32
//! 56 topic_len u16
//! 58 keys_len u16
//! 60 generation u32   open count of the log when written; never decreases along the log
//! 64 topic, keys, payload, then zeros up to total_len
//! ```
//! Filler (marks the rest of a segment unused): `[total_len u32][crc u32][FILLER_MAGIC u32]
//! [generation u32]`, CRC over bytes [0,4) ++ [8,16) ++ phys_offset (u64 LE), xored.
//!
//! Zeros never validate: a zero `total_len` is rejected, and the xored CRC of zeros is not zero.
//! A stale record left at an offset by an earlier, truncated run either sits at another offset
//! (phys_offset mismatch) or carries a smaller generation (rejected by the recovery scan).
//!
//! Must never: do I/O, allocate on the encode path, or accept a record whose length fields
//! disagree with `total_len`.

use std::mem::MaybeUninit;

use super::crc32c::Crc32c;

use crate::error::StorageError;
use crate::limits::{KEYS_LEN_MAX, TOPIC_LEN_MAX};

/// Bytes of the fixed record header.
pub const RECORD_HEADER_BYTES: usize = 64;
/// Alignment of every entry's start and length.
pub const RECORD_ALIGN: usize = 16;
/// Bytes of an end-of-segment filler header.
pub const FILLER_BYTES: usize = 16;
/// Magic of a record: "RMQ" then format version 1.
pub const RECORD_MAGIC: u32 = u32::from_le_bytes(*b"RMQ\x01");
/// Magic of an end-of-segment filler.
pub const FILLER_MAGIC: u32 = u32::from_le_bytes(*b"RMQ\xFF");
/// Xored into every entry CRC so all-zero bytes never validate.
pub const RECORD_CRC_XOR: u32 = 0x6A09_E667;

/// The header layout, used only to check offsets and size at compile time (encoding writes the
/// fields at these offsets explicitly, little-endian).
#[repr(C)]
struct RecordHeaderLayout {
    total_len: u32,
    crc: u32,
    magic: u32,
    sys_flag: i32,
    phys_offset: u64,
    queue_offset: i64,
    store_timestamp_ms: i64,
    tags_code: i64,
    queue_id: i32,
    payload_len: u32,
    topic_len: u16,
    keys_len: u16,
    generation: u32,
}

const OFFSET_TOTAL_LEN: usize = std::mem::offset_of!(RecordHeaderLayout, total_len);
const OFFSET_CRC: usize = std::mem::offset_of!(RecordHeaderLayout, crc);
const OFFSET_MAGIC: usize = std::mem::offset_of!(RecordHeaderLayout, magic);
const OFFSET_SYS_FLAG: usize = std::mem::offset_of!(RecordHeaderLayout, sys_flag);
const OFFSET_PHYS_OFFSET: usize = std::mem::offset_of!(RecordHeaderLayout, phys_offset);
const OFFSET_QUEUE_OFFSET: usize = std::mem::offset_of!(RecordHeaderLayout, queue_offset);
const OFFSET_STORE_TIMESTAMP: usize = std::mem::offset_of!(RecordHeaderLayout, store_timestamp_ms);
const OFFSET_TAGS_CODE: usize = std::mem::offset_of!(RecordHeaderLayout, tags_code);
const OFFSET_QUEUE_ID: usize = std::mem::offset_of!(RecordHeaderLayout, queue_id);
const OFFSET_PAYLOAD_LEN: usize = std::mem::offset_of!(RecordHeaderLayout, payload_len);
const OFFSET_TOPIC_LEN: usize = std::mem::offset_of!(RecordHeaderLayout, topic_len);
const OFFSET_KEYS_LEN: usize = std::mem::offset_of!(RecordHeaderLayout, keys_len);
const OFFSET_GENERATION: usize = std::mem::offset_of!(RecordHeaderLayout, generation);

const _: () = {
    assert!(
        std::mem::size_of::<RecordHeaderLayout>() == RECORD_HEADER_BYTES,
        "header size drifted: recovery of existing logs would misparse every record"
    );
    assert!(
        OFFSET_TOTAL_LEN == 0 && OFFSET_CRC == 4,
        "length and CRC lead every entry"
    );
    assert!(OFFSET_MAGIC == 8, "magic at 8 tells records from fillers");
    assert!(OFFSET_SYS_FLAG == 12);
    assert!(OFFSET_PHYS_OFFSET == 16);
    assert!(OFFSET_QUEUE_OFFSET == 24);
    assert!(OFFSET_STORE_TIMESTAMP == 32);
    assert!(OFFSET_TAGS_CODE == 40);
    assert!(OFFSET_QUEUE_ID == 48);
    assert!(OFFSET_PAYLOAD_LEN == 52);
    assert!(OFFSET_TOPIC_LEN == 56);
    assert!(OFFSET_KEYS_LEN == 58);
    assert!(OFFSET_GENERATION == 60);
    assert!(RECORD_HEADER_BYTES % RECORD_ALIGN == 0);
    assert!(
        FILLER_BYTES == RECORD_ALIGN,
        "the smallest gap at a segment end must fit a filler"
    );
    assert!(RECORD_ALIGN.is_power_of_two());
    assert!(RECORD_MAGIC != FILLER_MAGIC);
};

/// What the caller (the store facade) asks to append. The CommitLog adds the envelope (length,
/// CRC, magic, physical offset, generation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendRecord<'a> {
    /// Topic name (at most [`TOPIC_LEN_MAX`] bytes).
    pub topic: &'a [u8],
    /// Queue id within the topic.
    pub queue_id: i32,
    /// Offset in the consume queue, assigned by the facade.
    pub queue_offset: i64,
    /// Hash of the tags, for consume-queue filtering.
    pub tags_code: i64,
    /// Space-separated index keys, incl. the unique key (at most [`KEYS_LEN_MAX`] bytes).
    pub keys: &'a [u8],
    /// Store time, milliseconds since the Unix epoch.
    pub store_timestamp_ms: i64,
    /// RocketMQ `MessageSysFlag` (transaction type, ...), stored as given.
    pub sys_flag: i32,
    /// The rest of the message, opaque to storage.
    pub payload: &'a [u8],
}

impl AppendRecord<'_> {
    /// Encoded size in bytes (header + fields + padding to [`RECORD_ALIGN`]).
    #[must_use]
    pub fn encoded_size(&self) -> u64 {
        encoded_size(self.topic.len(), self.keys.len(), self.payload.len())
    }

    /// Checks field limits and the size limit; returns the encoded size.
    ///
    /// # Errors
    /// [`StorageError::InvalidRecord`] for an over-long topic or keys, or an empty topic;
    /// [`StorageError::RecordTooLarge`] past `size_max_bytes`.
    pub fn validate(&self, size_max_bytes: u32) -> Result<u32, StorageError> {
        if self.topic.is_empty() || self.topic.len() > TOPIC_LEN_MAX {
            return Err(StorageError::InvalidRecord {
                field: "topic",
                reason: format!("length {} not in 1..={TOPIC_LEN_MAX}", self.topic.len()),
            });
        }
        if self.keys.len() > KEYS_LEN_MAX {
            return Err(StorageError::InvalidRecord {
                field: "keys",
                reason: format!("length {} > {KEYS_LEN_MAX}", self.keys.len()),
            });
        }
        let size_bytes = self.encoded_size();
        if size_bytes > u64::from(size_max_bytes) {
            return Err(StorageError::RecordTooLarge {
                size_bytes,
                size_max_bytes: u64::from(size_max_bytes),
            });
        }
        Ok(u32::try_from(size_bytes).expect("bounded by size_max_bytes"))
    }
}

/// Encoded size for the given field lengths.
#[must_use]
pub fn encoded_size(topic_len: usize, keys_len: usize, payload_len: usize) -> u64 {
    let raw = RECORD_HEADER_BYTES as u64 + topic_len as u64 + keys_len as u64 + payload_len as u64;
    raw.div_ceil(RECORD_ALIGN as u64) * RECORD_ALIGN as u64
}

/// The header of `record` placed at `phys_offset`, with its CRC over the header and all field
/// bytes and padding. The caller copies header, topic, keys, payload, then zero padding up to
/// `total_len` (the ring may wrap, so the pieces are copied separately).
///
/// # Panics
/// If the record was not validated (field lengths overflow their on-disk widths).
#[must_use]
pub fn encode_header(
    record: &AppendRecord<'_>,
    phys_offset: u64,
    generation: u32,
) -> [u8; RECORD_HEADER_BYTES] {
    let total_len = u32::try_from(record.encoded_size()).expect("validated record size fits u32");
    let mut header = [0u8; RECORD_HEADER_BYTES];
    put_u32(&mut header, OFFSET_TOTAL_LEN, total_len);
    put_u32(&mut header, OFFSET_MAGIC, RECORD_MAGIC);
    put_u32(&mut header, OFFSET_SYS_FLAG, record.sys_flag as u32);
    put_u64(&mut header, OFFSET_PHYS_OFFSET, phys_offset);
    put_u64(&mut header, OFFSET_QUEUE_OFFSET, record.queue_offset as u64);
    put_u64(
        &mut header,
        OFFSET_STORE_TIMESTAMP,
        record.store_timestamp_ms as u64,
    );
    put_u64(&mut header, OFFSET_TAGS_CODE, record.tags_code as u64);
    put_u32(&mut header, OFFSET_QUEUE_ID, record.queue_id as u32);
    put_u32(
        &mut header,
        OFFSET_PAYLOAD_LEN,
        u32::try_from(record.payload.len()).expect("validated"),
    );
    put_u16(
        &mut header,
        OFFSET_TOPIC_LEN,
        u16::try_from(record.topic.len()).expect("validated"),
    );
    put_u16(
        &mut header,
        OFFSET_KEYS_LEN,
        u16::try_from(record.keys.len()).expect("validated"),
    );
    put_u32(&mut header, OFFSET_GENERATION, generation);
    let padding = padding_len(record);
    let mut hasher = Crc32c::new();
    // CRC is a stream function: the small leading pieces are gathered into one buffer so the
    // hasher sees few, larger updates (many tiny updates dominated the cost of small records).
    let lead_len =
        OFFSET_CRC + (RECORD_HEADER_BYTES - OFFSET_MAGIC) + record.topic.len() + record.keys.len();
    if lead_len <= CRC_LEAD_BUFFER_BYTES {
        // Not zeroed first: only the `lead_len` bytes written below are ever read.
        let mut lead = [MaybeUninit::<u8>::uninit(); CRC_LEAD_BUFFER_BYTES];
        let mut at = 0;
        for piece in [
            &header[..OFFSET_CRC],
            &header[OFFSET_MAGIC..],
            record.topic,
            record.keys,
        ] {
            // SAFETY: `at + piece.len() <= lead_len <= CRC_LEAD_BUFFER_BYTES`, and `piece` is
            // a distinct buffer.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    piece.as_ptr(),
                    lead.as_mut_ptr().add(at).cast::<u8>(),
                    piece.len(),
                );
            }
            at += piece.len();
        }
        assert_eq!(at, lead_len);
        // SAFETY: the loop above initialised exactly `lead[..lead_len]`.
        let gathered = unsafe { std::slice::from_raw_parts(lead.as_ptr().cast::<u8>(), lead_len) };
        hasher.update(gathered);
    } else {
        hasher.update(&header[..OFFSET_CRC]);
        hasher.update(&header[OFFSET_MAGIC..]);
        hasher.update(record.topic);
        hasher.update(record.keys);
    }
    hasher.update(record.payload);
    if padding > 0 {
        hasher.update(&ZEROS[..padding]);
    }
    put_u32(&mut header, OFFSET_CRC, hasher.finalize() ^ RECORD_CRC_XOR);
    header
}

/// Stack buffer for the CRC of header + topic + keys when they are small (the common case).
const CRC_LEAD_BUFFER_BYTES: usize = 512;

/// Zero bytes appended after the payload.
#[must_use]
pub fn padding_len(record: &AppendRecord<'_>) -> usize {
    let unpadded =
        RECORD_HEADER_BYTES + record.topic.len() + record.keys.len() + record.payload.len();
    (record.encoded_size() as usize) - unpadded
}

/// Source of padding zeros (padding is shorter than one alignment unit).
pub const ZEROS: [u8; RECORD_ALIGN] = [0; RECORD_ALIGN];

/// Encodes `record` at `phys_offset` into a fresh `Vec` (tests and tools; the log encodes into
/// its ring piece by piece).
#[must_use]
pub fn encode_to_vec(record: &AppendRecord<'_>, phys_offset: u64, generation: u32) -> Vec<u8> {
    let header = encode_header(record, phys_offset, generation);
    let mut out = Vec::with_capacity(record.encoded_size() as usize);
    out.extend_from_slice(&header);
    out.extend_from_slice(record.topic);
    out.extend_from_slice(record.keys);
    out.extend_from_slice(record.payload);
    out.extend_from_slice(&ZEROS[..padding_len(record)]);
    out
}

/// The 16-byte filler that ends a segment at `phys_offset`, covering `total_len` bytes.
///
/// # Panics
/// If `total_len` is smaller than [`FILLER_BYTES`] or not a multiple of [`RECORD_ALIGN`].
#[must_use]
pub fn encode_filler(phys_offset: u64, total_len: u64, generation: u32) -> [u8; FILLER_BYTES] {
    assert!(
        total_len >= FILLER_BYTES as u64,
        "filler of {total_len} bytes"
    );
    assert!(
        total_len % RECORD_ALIGN as u64 == 0,
        "filler length {total_len} misaligned"
    );
    let mut filler = [0u8; FILLER_BYTES];
    put_u32(
        &mut filler,
        0,
        u32::try_from(total_len).expect("filler shorter than a record"),
    );
    put_u32(&mut filler, 8, FILLER_MAGIC);
    put_u32(&mut filler, 12, generation);
    let crc = filler_crc(&filler, phys_offset);
    put_u32(&mut filler, 4, crc);
    filler
}

fn filler_crc(filler: &[u8], phys_offset: u64) -> u32 {
    let mut hasher = Crc32c::new();
    hasher.update(&filler[0..4]);
    hasher.update(&filler[8..16]);
    hasher.update(&phys_offset.to_le_bytes());
    hasher.finalize() ^ RECORD_CRC_XOR
}

/// A validated record, borrowing the bytes it was decoded from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordView<'a> {
    /// Total encoded length.
    pub total_len: u32,
    /// The record's log offset.
    pub phys_offset: u64,
    /// Generation (log open count) that wrote it.
    pub generation: u32,
    /// The stored (xored) CRC over the whole record.
    pub crc: u32,
    /// See [`AppendRecord`].
    pub sys_flag: i32,
    /// See [`AppendRecord`].
    pub queue_offset: i64,
    /// See [`AppendRecord`].
    pub store_timestamp_ms: i64,
    /// See [`AppendRecord`].
    pub tags_code: i64,
    /// See [`AppendRecord`].
    pub queue_id: i32,
    /// Byte range of the topic within the record.
    pub topic: &'a [u8],
    /// Byte range of the keys within the record.
    pub keys: &'a [u8],
    /// Byte range of the payload within the record.
    pub payload: &'a [u8],
}

/// One entry found by [`parse_entry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry<'a> {
    /// A record.
    Record(RecordView<'a>),
    /// End-of-segment filler: the segment's remaining `total_len` bytes are unused.
    Filler {
        /// Bytes from the filler's start to the segment end.
        total_len: u64,
        /// Generation that wrote it.
        generation: u32,
    },
}

impl Entry<'_> {
    /// Bytes this entry spans in the log.
    #[must_use]
    pub fn span(&self) -> u64 {
        match self {
            Entry::Record(record) => u64::from(record.total_len),
            Entry::Filler { total_len, .. } => *total_len,
        }
    }

    /// Generation that wrote it.
    #[must_use]
    pub fn generation(&self) -> u32 {
        match self {
            Entry::Record(record) => record.generation,
            Entry::Filler { generation, .. } => *generation,
        }
    }
}

/// Why [`parse_entry`] did not return an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// The entry claims `total_len` bytes but fewer are available: read more and retry.
    NeedMore {
        /// Bytes the entry needs.
        total_len: u64,
    },
    /// Not a valid entry (torn, zero-filled, stale or corrupt).
    Invalid(String),
}

/// Why [`parse_entry`] stops at a zero length word: the space no entry was written to, where
/// the log ends normally (a torn write shows as a bad CRC or a short entry instead).
pub const UNWRITTEN_SPACE: &str = "zero length (unwritten space)";

/// Parses the entry starting at `bytes[0]`, which sits at log offset `phys_offset`, fully
/// validating it (length, alignment, magic, CRC, own offset, field lengths). `size_max` bounds
/// a record's length (a larger one is invalid, not "need more").
///
/// # Errors
/// [`ParseError::NeedMore`] if `bytes` is shorter than the entry; [`ParseError::Invalid`]
/// otherwise ([`UNWRITTEN_SPACE`] where the written log ends).
pub fn parse_entry(bytes: &[u8], phys_offset: u64, size_max: u32) -> Result<Entry<'_>, ParseError> {
    entry_length(bytes)?;
    match get_u32(bytes, OFFSET_MAGIC) {
        FILLER_MAGIC => parse_filler(bytes, phys_offset),
        RECORD_MAGIC => parse_record(bytes, phys_offset, size_max).map(Entry::Record),
        other => Err(ParseError::Invalid(format!("bad magic {other:#010x}"))),
    }
}

/// The length word of the entry at `bytes[0]`, checked as every entry's must be: present,
/// not zero (zero is [`UNWRITTEN_SPACE`]), a multiple of [`RECORD_ALIGN`].
fn entry_length(bytes: &[u8]) -> Result<u32, ParseError> {
    if bytes.len() < FILLER_BYTES {
        return Err(ParseError::NeedMore {
            total_len: FILLER_BYTES as u64,
        });
    }
    let total_len = get_u32(bytes, OFFSET_TOTAL_LEN);
    if total_len == 0 {
        return Err(ParseError::Invalid(UNWRITTEN_SPACE.into()));
    }
    if total_len as usize % RECORD_ALIGN != 0 {
        return Err(ParseError::Invalid(format!(
            "length {total_len} not a multiple of {RECORD_ALIGN}"
        )));
    }
    Ok(total_len)
}

fn parse_filler(bytes: &[u8], phys_offset: u64) -> Result<Entry<'_>, ParseError> {
    let crc = get_u32(bytes, OFFSET_CRC);
    if filler_crc(&bytes[..FILLER_BYTES], phys_offset) != crc {
        return Err(ParseError::Invalid("filler CRC mismatch".into()));
    }
    Ok(Entry::Filler {
        total_len: u64::from(get_u32(bytes, OFFSET_TOTAL_LEN)),
        generation: get_u32(bytes, 12),
    })
}

fn parse_record(
    bytes: &[u8],
    phys_offset: u64,
    size_max: u32,
) -> Result<RecordView<'_>, ParseError> {
    let total_len = get_u32(bytes, OFFSET_TOTAL_LEN);
    if (total_len as usize) < RECORD_HEADER_BYTES || total_len > size_max {
        return Err(ParseError::Invalid(format!(
            "record length {total_len} out of range"
        )));
    }
    if bytes.len() < total_len as usize {
        return Err(ParseError::NeedMore {
            total_len: u64::from(total_len),
        });
    }
    let record = &bytes[..total_len as usize];
    let topic_len = usize::from(get_u16(record, OFFSET_TOPIC_LEN));
    let keys_len = usize::from(get_u16(record, OFFSET_KEYS_LEN));
    let payload_len = get_u32(record, OFFSET_PAYLOAD_LEN) as usize;
    if encoded_size(topic_len, keys_len, payload_len) != u64::from(total_len) {
        return Err(ParseError::Invalid(
            "field lengths disagree with the record length".into(),
        ));
    }
    let mut hasher = Crc32c::new();
    hasher.update(&record[..OFFSET_CRC]);
    hasher.update(&record[OFFSET_MAGIC..]);
    if hasher.finalize() ^ RECORD_CRC_XOR != get_u32(record, OFFSET_CRC) {
        return Err(ParseError::Invalid("record CRC mismatch".into()));
    }
    let stored_offset = get_u64(record, OFFSET_PHYS_OFFSET);
    if stored_offset != phys_offset {
        return Err(ParseError::Invalid(format!(
            "record for offset {stored_offset} found at {phys_offset}"
        )));
    }
    let topic_start = RECORD_HEADER_BYTES;
    let keys_start = topic_start + topic_len;
    let payload_start = keys_start + keys_len;
    let payload_end = payload_start + payload_len;
    if record[payload_end..].iter().any(|b| *b != 0) {
        return Err(ParseError::Invalid("non-zero padding".into()));
    }
    Ok(RecordView {
        total_len,
        phys_offset,
        generation: get_u32(record, OFFSET_GENERATION),
        crc: get_u32(record, OFFSET_CRC),
        sys_flag: get_u32(record, OFFSET_SYS_FLAG) as i32,
        queue_offset: get_u64(record, OFFSET_QUEUE_OFFSET) as i64,
        store_timestamp_ms: get_u64(record, OFFSET_STORE_TIMESTAMP) as i64,
        tags_code: get_u64(record, OFFSET_TAGS_CODE) as i64,
        queue_id: get_u32(record, OFFSET_QUEUE_ID) as i32,
        topic: &record[topic_start..keys_start],
        keys: &record[keys_start..payload_start],
        payload: &record[payload_start..payload_end],
    })
}

/// What an entry's header says, without reading (or checking the CRC of) the rest of a record.
/// Two logs hold the same entry at an offset iff offset, span, generation and stored CRC agree
/// (the CRC covers the whole record), which is what a replication divergence check compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryHeader {
    /// Log offset of the entry.
    pub offset: u64,
    /// Bytes the entry spans in the log (a filler: up to its segment's end).
    pub span: u64,
    /// Generation that wrote it.
    pub generation: u32,
    /// The CRC stored in the entry (as stored, xored).
    pub crc: u32,
    /// Record or filler.
    pub kind: EntryKind,
}

/// Kind of a CommitLog entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A message record.
    Record,
    /// An end-of-segment filler.
    Filler,
}

impl EntryHeader {
    /// One past the entry's last byte.
    #[must_use]
    pub fn end(&self) -> u64 {
        self.offset + self.span
    }

    /// Bytes of the entry as it is shipped: the whole record, or a filler's 16-byte header
    /// (the rest of its span is unused space).
    #[must_use]
    pub fn shipped_len(&self) -> u64 {
        match self.kind {
            EntryKind::Record => self.span,
            EntryKind::Filler => FILLER_BYTES as u64,
        }
    }
}

/// Reads the header of the entry at `bytes[0]` (log offset `phys_offset`): a filler is fully
/// checked (its CRC covers its offset); a record's length, magic, own offset and field lengths
/// are checked, not its CRC (that needs the whole record: [`parse_entry`]). `bytes` needs
/// [`FILLER_BYTES`] for a filler and [`RECORD_HEADER_BYTES`] for a record.
///
/// # Errors
/// [`ParseError::NeedMore`] if `bytes` is shorter than the header; [`ParseError::Invalid`] if
/// no entry for `phys_offset` starts there.
pub fn peek_header(
    bytes: &[u8],
    phys_offset: u64,
    size_max: u32,
) -> Result<EntryHeader, ParseError> {
    let total_len = entry_length(bytes)?;
    match get_u32(bytes, OFFSET_MAGIC) {
        FILLER_MAGIC => match parse_filler(bytes, phys_offset)? {
            Entry::Filler {
                total_len,
                generation,
            } => Ok(EntryHeader {
                offset: phys_offset,
                span: total_len,
                generation,
                crc: get_u32(bytes, OFFSET_CRC),
                kind: EntryKind::Filler,
            }),
            Entry::Record(_) => unreachable!("parse_filler returns fillers"),
        },
        RECORD_MAGIC => {
            if (total_len as usize) < RECORD_HEADER_BYTES || total_len > size_max {
                return Err(ParseError::Invalid(format!(
                    "record length {total_len} out of range"
                )));
            }
            if bytes.len() < RECORD_HEADER_BYTES {
                return Err(ParseError::NeedMore {
                    total_len: RECORD_HEADER_BYTES as u64,
                });
            }
            let stored_offset = get_u64(bytes, OFFSET_PHYS_OFFSET);
            if stored_offset != phys_offset {
                return Err(ParseError::Invalid(format!(
                    "record for offset {stored_offset} found at {phys_offset}"
                )));
            }
            let topic_len = usize::from(get_u16(bytes, OFFSET_TOPIC_LEN));
            let keys_len = usize::from(get_u16(bytes, OFFSET_KEYS_LEN));
            let payload_len = get_u32(bytes, OFFSET_PAYLOAD_LEN) as usize;
            if encoded_size(topic_len, keys_len, payload_len) != u64::from(total_len) {
                return Err(ParseError::Invalid(
                    "field lengths disagree with the record length".into(),
                ));
            }
            Ok(EntryHeader {
                offset: phys_offset,
                span: u64::from(total_len),
                generation: get_u32(bytes, OFFSET_GENERATION),
                crc: get_u32(bytes, OFFSET_CRC),
                kind: EntryKind::Record,
            })
        }
        other => Err(ParseError::Invalid(format!("bad magic {other:#010x}"))),
    }
}

/// Reads `total_len` from an entry's first bytes (no validation).
#[must_use]
pub fn peek_total_len(bytes: &[u8]) -> Option<u32> {
    (bytes.len() >= 4).then(|| get_u32(bytes, OFFSET_TOTAL_LEN))
}

fn put_u16(out: &mut [u8], at: usize, value: u16) {
    out[at..at + 2].copy_from_slice(&value.to_le_bytes());
}

fn put_u32(out: &mut [u8], at: usize, value: u32) {
    out[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

fn put_u64(out: &mut [u8], at: usize, value: u64) {
    out[at..at + 8].copy_from_slice(&value.to_le_bytes());
}

fn get_u16(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(bytes[at..at + 2].try_into().expect("2 bytes"))
}

fn get_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn get_u64(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MAX: u32 = 1 << 20;

    fn sample<'a>(payload: &'a [u8], keys: &'a [u8]) -> AppendRecord<'a> {
        AppendRecord {
            topic: b"TopicTest",
            queue_id: 3,
            queue_offset: 42,
            tags_code: -7,
            keys,
            store_timestamp_ms: 1_700_000_000_000,
            sys_flag: 8,
            payload,
        }
    }

    #[test]
    fn roundtrip_fields() {
        let record = sample(b"hello world", b"k1 k2");
        let bytes = encode_to_vec(&record, 4096, 9);
        assert_eq!(bytes.len() as u64, record.encoded_size());
        assert_eq!(bytes.len() % RECORD_ALIGN, 0);
        let Entry::Record(view) = parse_entry(&bytes, 4096, MAX).expect("valid") else {
            panic!("not a record");
        };
        assert_eq!(view.topic, record.topic);
        assert_eq!(view.keys, record.keys);
        assert_eq!(view.payload, record.payload);
        assert_eq!(
            (view.queue_id, view.queue_offset, view.tags_code),
            (3, 42, -7)
        );
        assert_eq!(
            (view.sys_flag, view.generation, view.phys_offset),
            (8, 9, 4096)
        );
        assert_eq!(view.store_timestamp_ms, 1_700_000_000_000);
    }

    #[test]
    fn zeros_and_stale_copies_never_validate() {
        assert!(matches!(
            parse_entry(&[0u8; 256], 0, MAX),
            Err(ParseError::Invalid(_))
        ));
        let record = sample(b"x", b"");
        let bytes = encode_to_vec(&record, 128, 1);
        // The same bytes at another offset are a stale copy.
        assert!(matches!(
            parse_entry(&bytes, 256, MAX),
            Err(ParseError::Invalid(_))
        ));
        // A truncated record asks for more.
        assert_eq!(
            parse_entry(&bytes[..bytes.len() - 16], 128, MAX),
            Err(ParseError::NeedMore {
                total_len: bytes.len() as u64
            })
        );
        // A length past the maximum is invalid, not "need more".
        assert!(matches!(
            parse_entry(&bytes, 128, 64),
            Err(ParseError::Invalid(_))
        ));
    }

    #[test]
    fn filler_roundtrip_and_position_bound() {
        let filler = encode_filler(1 << 20, 4096, 2);
        assert_eq!(
            parse_entry(&filler, 1 << 20, MAX),
            Ok(Entry::Filler {
                total_len: 4096,
                generation: 2
            })
        );
        assert!(matches!(
            parse_entry(&filler, 1 << 21, MAX),
            Err(ParseError::Invalid(_))
        ));
    }

    #[test]
    fn validate_limits() {
        let long_topic = vec![b't'; TOPIC_LEN_MAX + 1];
        let mut record = sample(b"p", b"");
        record.topic = &long_topic;
        assert!(matches!(
            record.validate(MAX),
            Err(StorageError::InvalidRecord { .. })
        ));
        record.topic = b"";
        assert!(matches!(
            record.validate(MAX),
            Err(StorageError::InvalidRecord { .. })
        ));
        let big = vec![0u8; 2000];
        let record = sample(&big, b"");
        assert!(matches!(
            record.validate(1024),
            Err(StorageError::RecordTooLarge { .. })
        ));
        assert_eq!(
            record.validate(MAX).expect("fits") as u64,
            record.encoded_size()
        );
    }

    #[test]
    fn peek_header_agrees_with_parse_and_skips_the_crc() {
        let record = sample(b"payload", b"k");
        let mut bytes = encode_to_vec(&record, 4096, 7);
        let header = peek_header(&bytes, 4096, MAX).expect("header");
        assert_eq!(header.span, record.encoded_size());
        assert_eq!((header.generation, header.kind), (7, EntryKind::Record));
        assert_eq!(header.shipped_len(), header.span);
        assert_eq!(header.end(), 4096 + record.encoded_size());
        assert!(matches!(
            peek_header(&bytes, 4112, MAX),
            Err(ParseError::Invalid(_))
        ));
        assert_eq!(
            peek_header(&bytes[..32], 4096, MAX),
            Err(ParseError::NeedMore {
                total_len: RECORD_HEADER_BYTES as u64
            })
        );
        // A damaged payload is not seen by the header (cheap), only by the full parse.
        let last = bytes.len() - 1;
        bytes[last - 8] ^= 1;
        assert!(peek_header(&bytes, 4096, MAX).is_ok());
        assert!(parse_entry(&bytes, 4096, MAX).is_err());
        let filler = encode_filler(8192, 4096, 3);
        let header = peek_header(&filler, 8192, MAX).expect("filler");
        assert_eq!((header.span, header.kind), (4096, EntryKind::Filler));
        assert_eq!(header.shipped_len(), FILLER_BYTES as u64);
        assert!(peek_header(&filler, 8208, MAX).is_err());
    }

    proptest! {
        #[test]
        fn any_single_bit_flip_is_caught(
            payload in proptest::collection::vec(any::<u8>(), 0..300),
            keys in proptest::collection::vec(any::<u8>(), 0..40),
            bit in any::<prop::sample::Index>(),
        ) {
            let record = sample(&payload, &keys);
            let mut bytes = encode_to_vec(&record, 8192, 3);
            let bit = bit.index(bytes.len() * 8);
            bytes[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(parse_entry(&bytes, 8192, MAX).is_err());
        }

        #[test]
        fn encode_parse_roundtrip(
            payload in proptest::collection::vec(any::<u8>(), 0..300),
            keys in proptest::collection::vec(any::<u8>(), 0..40),
            offset in 0u64..(1 << 50),
        ) {
            let offset = offset / 16 * 16;
            let record = sample(&payload, &keys);
            let bytes = encode_to_vec(&record, offset, 5);
            let entry = parse_entry(&bytes, offset, MAX).expect("valid");
            prop_assert_eq!(entry.span(), record.encoded_size());
            let Entry::Record(view) = entry else { panic!("record expected") };
            prop_assert_eq!(view.payload, &payload[..]);
            prop_assert_eq!(view.keys, &keys[..]);
        }
    }
}
