//! The stored-message record (PROTOCOL.md §6.6): the CommitLog entry format, which is also the
//! pull, query, view and check-back body format (records back to back, no count).
//!
//! [`MessageRecord::encode`] writes magic v1 unless the topic is longer than 127 bytes (then
//! v2, with a 2-byte topic length), sets the sysFlag host bits from the address kinds, and
//! computes BODYCRC. [`MessageRecord::decode`] checks every length against the buffer before
//! use and requires TOTALSIZE to equal the parsed size. Offsets and magic codes live in
//! [`super::layout`]. Must never panic on input bytes, or write a record whose TOTALSIZE differs from its length.

use std::net::SocketAddr;
use std::ops::Range;

use bytes::{Bytes, BytesMut};

use super::super::error::CodecError;
use super::super::limits::PROPERTIES_SIZE_MAX;
use super::crc::body_crc;
use super::layout::{
    MagicVersion, RecordLayout, BODY_CRC_OFFSET, MAGIC_CODE_OFFSET, TOPIC_V2_SIZE_MAX,
};
use super::properties::Properties;
use super::reader::Reader;
use super::record_writer::RecordParts;
use super::sysflag::{self, BORNHOST_V6, STOREHOSTADDRESS_V6};

/// Whether [`MessageRecord::decode`] checks BODYCRC. Java clients skip it by default; storage
/// recovery must verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrcCheck {
    /// Recompute the body CRC and fail with [`CodecError::Crc`] on a mismatch.
    Verify,
    /// Trust the stored CRC.
    Skip,
}

/// One stored message (PROTOCOL.md §6.6). BODYCRC, TOTALSIZE, MAGICCODE and the sysFlag host
/// bits are derived on encode, so they are not fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRecord {
    /// Queue id within the topic.
    pub queue_id: i32,
    /// User flag.
    pub flag: i32,
    /// Logical offset in the ConsumeQueue.
    pub queue_offset: i64,
    /// CommitLog byte offset of this record.
    pub physical_offset: i64,
    /// sysFlag (§6.3). Bits 4 and 5 are rewritten from the host kinds on encode.
    pub sys_flag: i32,
    /// Producer clock, ms.
    pub born_timestamp: i64,
    /// Producer address.
    pub born_host: SocketAddr,
    /// Broker clock at store, ms.
    pub store_timestamp: i64,
    /// Broker `brokerIP1` + listen port.
    pub store_host: SocketAddr,
    /// Delivery attempts so far.
    pub reconsume_times: i32,
    /// Half-message physical offset for COMMIT records, else 0.
    pub prepared_transaction_offset: i64,
    /// Body, possibly compressed (see the sysFlag).
    pub body: Bytes,
    /// Topic.
    pub topic: String,
    /// Properties (§6.1).
    pub properties: Properties,
}

impl MessageRecord {
    /// The format version this record encodes with.
    #[must_use]
    pub fn version(&self) -> MagicVersion {
        MagicVersion::for_topic_len(self.topic.len())
    }

    /// The sysFlag as encoded: [`Self::sys_flag`] with the host bits set from the addresses.
    #[must_use]
    pub fn wire_sys_flag(&self) -> i32 {
        sysflag::with_host_kinds(self.sys_flag, &self.born_host, &self.store_host)
    }

    /// The layout this record encodes with.
    #[must_use]
    pub fn layout(&self) -> RecordLayout {
        RecordLayout::new(self.version(), self.wire_sys_flag())
    }

    /// Bytes [`Self::encode`] writes (saturating; an oversized record fails to encode).
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        self.layout()
            .fixed_size()
            .saturating_add(self.body.len())
            .saturating_add(self.topic.len())
            .saturating_add(self.properties.encoded_len())
    }

    /// Appends the encoded record to `out`.
    ///
    /// # Errors
    /// [`CodecError::Encode`] if the topic exceeds [`TOPIC_V2_SIZE_MAX`], the properties
    /// exceed [`PROPERTIES_SIZE_MAX`], or the whole record exceeds `i32::MAX`. Nothing is
    /// written then.
    ///
    /// # Panics
    /// Only if the bytes written differ from [`Self::encoded_len`], a bug in this module.
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), CodecError> {
        let parts = RecordParts {
            queue_id: self.queue_id,
            flag: self.flag,
            queue_offset: self.queue_offset,
            physical_offset: self.physical_offset,
            sys_flag: self.sys_flag,
            born_timestamp: self.born_timestamp,
            born_host: self.born_host,
            store_timestamp: self.store_timestamp,
            store_host: self.store_host,
            reconsume_times: self.reconsume_times,
            prepared_transaction_offset: self.prepared_transaction_offset,
            body: &self.body,
            topic: &self.topic,
        };
        let start = out.len();
        let written = parts.encode_with(self.properties.encoded_len(), out, |out| {
            self.properties.encode(out);
        });
        assert!(
            written.is_err() || out.len() - start == self.encoded_len(),
            "the writer and encoded_len agree"
        );
        written
    }

    /// Decodes the record at the front of `buf`, copying the body. Returns it and the bytes
    /// consumed (its TOTALSIZE).
    ///
    /// # Errors
    /// [`CodecError::Magic`] for an unknown magic (including the CommitLog blank filler),
    /// [`CodecError::Truncated`] when a field or the declared TOTALSIZE runs past the buffer,
    /// [`CodecError::Length`] for a negative length or a TOTALSIZE larger than the parsed
    /// fields, [`CodecError::InvalidField`] for a port outside `0..=65535`,
    /// [`CodecError::Utf8`] for a non-UTF-8 topic or properties, [`CodecError::Crc`] on a CRC
    /// mismatch under [`CrcCheck::Verify`].
    pub fn decode(buf: &[u8], crc: CrcCheck) -> Result<(Self, usize), CodecError> {
        decode_at(buf, 0, crc, |range| Bytes::copy_from_slice(&buf[range]))
    }

    /// Like [`Self::decode`], but the body shares `buf` instead of being copied.
    ///
    /// # Errors
    /// As [`Self::decode`].
    pub fn decode_shared(buf: &Bytes, crc: CrcCheck) -> Result<(Self, usize), CodecError> {
        decode_at(buf, 0, crc, |range| buf.slice(range))
    }
}

/// Decodes one record from the front of `buf`, which sits at `base` in the caller's buffer
/// (for error offsets). `body` turns the body's range within `buf` into `Bytes`.
fn decode_at(
    buf: &[u8],
    base: usize,
    crc: CrcCheck,
    body: impl FnOnce(Range<usize>) -> Bytes,
) -> Result<(MessageRecord, usize), CodecError> {
    let mut head = Reader::new(buf, base);
    let total_raw = head.i32("TOTALSIZE")?;
    let magic = head.u32("MAGICCODE")?;
    let version = MagicVersion::from_magic(magic).ok_or(CodecError::Magic {
        magic,
        offset: base + MAGIC_CODE_OFFSET,
    })?;
    let total = Reader::length(i64::from(total_raw), base, i32::MAX as usize, "TOTALSIZE")?;
    if total > buf.len() {
        return Err(CodecError::Truncated {
            what: "record",
            offset: base,
            need: total,
            have: buf.len(),
        });
    }
    let mut r = Reader::new(&buf[..total], base);
    r.take(BODY_CRC_OFFSET, "TOTALSIZE and MAGICCODE")?;
    let stored_crc = r.i32("BODYCRC")?;
    let queue_id = r.i32("QUEUEID")?;
    let flag = r.i32("FLAG")?;
    let queue_offset = r.i64("QUEUEOFFSET")?;
    let physical_offset = r.i64("PHYSICALOFFSET")?;
    let sys_flag = r.i32("SYSFLAG")?;
    let born_timestamp = r.i64("BORNTIMESTAMP")?;
    let born_host = r.socket_addr(sysflag::has(sys_flag, BORNHOST_V6), "BORNHOST")?;
    let store_timestamp = r.i64("STORETIMESTAMP")?;
    let store_host = r.socket_addr(sysflag::has(sys_flag, STOREHOSTADDRESS_V6), "STOREHOST")?;
    let reconsume_times = r.i32("RECONSUMETIMES")?;
    let prepared_transaction_offset = r.i64("PREPARED_TX_OFFSET")?;
    let body_len_offset = r.offset();
    let body_len_raw = r.i32("BODY_LEN")?;
    let body_len = Reader::length(
        i64::from(body_len_raw),
        body_len_offset,
        r.remaining(),
        "BODY_LEN",
    )?;
    let body_start = r.position();
    let body_bytes = r.take(body_len, "BODY")?;
    if crc == CrcCheck::Verify {
        let computed = body_crc(body_bytes);
        if computed != stored_crc {
            return Err(CodecError::Crc {
                offset: base + BODY_CRC_OFFSET,
                stored: stored_crc,
                computed,
            });
        }
    }
    let (topic, properties) = read_topic_and_properties(&mut r, version)?;
    if r.position() != total {
        return Err(CodecError::Length {
            what: "TOTALSIZE (larger than the parsed fields)",
            offset: base,
            len: i64::from(total_raw),
            max: r.position(),
        });
    }
    let record = MessageRecord {
        queue_id,
        flag,
        queue_offset,
        physical_offset,
        sys_flag,
        born_timestamp,
        born_host,
        store_timestamp,
        store_host,
        reconsume_times,
        prepared_transaction_offset,
        body: body(body_start..body_start + body_len),
        topic,
        properties,
    };
    Ok((record, total))
}

/// Reads TOPIC_LEN (width per `version`), TOPIC, PROPERTIES_LEN and PROPERTIES.
fn read_topic_and_properties(
    r: &mut Reader<'_>,
    version: MagicVersion,
) -> Result<(String, Properties), CodecError> {
    let topic_len_offset = r.offset();
    let topic_len_raw = match version {
        MagicVersion::V1 => i64::from(r.u8("TOPIC_LEN")?),
        MagicVersion::V2 => i64::from(r.i16("TOPIC_LEN")?),
    };
    let topic_len = Reader::length(
        topic_len_raw,
        topic_len_offset,
        TOPIC_V2_SIZE_MAX,
        "TOPIC_LEN",
    )?;
    let topic_offset = r.offset();
    let topic = std::str::from_utf8(r.take(topic_len, "TOPIC")?).map_err(|_| CodecError::Utf8 {
        what: "topic",
        offset: topic_offset,
    })?;
    let properties_len_offset = r.offset();
    let properties_len_raw = i64::from(r.i16("PROPERTIES_LEN")?);
    let properties_len = Reader::length(
        properties_len_raw,
        properties_len_offset,
        PROPERTIES_SIZE_MAX,
        "PROPERTIES_LEN",
    )?;
    let properties_offset = r.offset();
    let properties =
        Properties::decode_bytes(r.take(properties_len, "PROPERTIES")?, properties_offset)?;
    Ok((topic.to_owned(), properties))
}

/// Iterates over back-to-back records (a pull body). Yields each record or the first error,
/// then stops: after a bad record the position of the next one is unknown. Bodies share the
/// buffer.
#[derive(Debug, Clone)]
pub struct RecordIter {
    buf: Bytes,
    position: usize,
    crc: CrcCheck,
    failed: bool,
}

impl RecordIter {
    /// Iterates over the records in `buf`.
    #[must_use]
    pub fn new(buf: Bytes, crc: CrcCheck) -> Self {
        Self {
            buf,
            position: 0,
            crc,
            failed: false,
        }
    }

    /// Offset of the next record in the buffer (the buffer length once all are read).
    #[must_use]
    pub fn position(&self) -> usize {
        self.position
    }
}

impl Iterator for RecordIter {
    type Item = Result<MessageRecord, CodecError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.position >= self.buf.len() {
            return None;
        }
        let start = self.position;
        let rest = &self.buf[start..];
        let shared = &self.buf;
        match decode_at(rest, start, self.crc, |range| {
            shared.slice(start + range.start..start + range.end)
        }) {
            Ok((record, consumed)) => {
                assert!(consumed > 0, "a record is never empty");
                self.position = start + consumed;
                Some(Ok(record))
            }
            Err(err) => {
                self.failed = true;
                Some(Err(err))
            }
        }
    }
}

/// Decodes every record of a pull-style body, failing on the first bad one.
///
/// # Errors
/// The first record's error, as [`MessageRecord::decode`].
pub fn decode_all(buf: &Bytes, crc: CrcCheck) -> Result<Vec<MessageRecord>, CodecError> {
    RecordIter::new(buf.clone(), crc).collect()
}
