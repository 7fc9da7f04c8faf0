//! Writes one stored-message record (PROTOCOL.md §6.6) from borrowed parts straight into a
//! caller's buffer. It is the one encoder behind [`super::record::MessageRecord::encode`] and
//! the broker's batch send path, which holds a body slice and an already encoded properties
//! string but no `MessageRecord` (no topic `String`, no property map, no body `Bytes`).
//!
//! The fixed fields are gathered on the stack and appended with one copy, so a small record
//! costs one reserve and four copies instead of one bounds-checked `put_*` per field.
//!
//! Must never write a record whose TOTALSIZE differs from the bytes written, or write anything
//! when a field is too long (the error leaves `out` as it was).

use std::net::SocketAddr;

use bytes::BytesMut;

use super::super::error::CodecError;
use super::super::limits::PROPERTIES_SIZE_MAX;
use super::crc::body_crc;
use super::layout::{MagicVersion, RecordLayout, HOST_V6_SIZE, TOPIC_V2_SIZE_MAX};
use super::sysflag;

/// Most bytes of the fixed fields before BODY: v2 magic and two IPv6 hosts.
const HEAD_SIZE_MAX: usize =
    4 + 4 + 4 + 4 + 4 + 8 + 8 + 4 + 8 + HOST_V6_SIZE + 8 + HOST_V6_SIZE + 4 + 8 + 4;

const _: () = assert!(
    HEAD_SIZE_MAX == 112,
    "the head buffer must hold the largest fixed prefix (PROTOCOL.md §6.6)"
);

/// The fields of one record, borrowed. BODYCRC, TOTALSIZE, MAGICCODE and the sysFlag host
/// bits are derived.
#[derive(Debug, Clone, Copy)]
pub struct RecordParts<'a> {
    /// Queue id within the topic.
    pub queue_id: i32,
    /// User flag.
    pub flag: i32,
    /// Logical offset in the ConsumeQueue.
    pub queue_offset: i64,
    /// CommitLog byte offset.
    pub physical_offset: i64,
    /// sysFlag (§6.3); bits 4 and 5 are rewritten from the host kinds.
    pub sys_flag: i32,
    /// Producer clock, ms.
    pub born_timestamp: i64,
    /// Producer address.
    pub born_host: SocketAddr,
    /// Broker clock at store, ms.
    pub store_timestamp: i64,
    /// Broker address.
    pub store_host: SocketAddr,
    /// Delivery attempts so far.
    pub reconsume_times: i32,
    /// Half-message physical offset for COMMIT records, else 0.
    pub prepared_transaction_offset: i64,
    /// Body, possibly compressed.
    pub body: &'a [u8],
    /// Topic.
    pub topic: &'a str,
}

impl RecordParts<'_> {
    /// The sysFlag as written: host bits from the address kinds.
    #[must_use]
    pub fn wire_sys_flag(&self) -> i32 {
        sysflag::with_host_kinds(self.sys_flag, &self.born_host, &self.store_host)
    }

    /// The layout this record is written with.
    #[must_use]
    pub fn layout(&self) -> RecordLayout {
        RecordLayout::new(
            MagicVersion::for_topic_len(self.topic.len()),
            self.wire_sys_flag(),
        )
    }

    /// Bytes [`Self::encode_with`] writes with `properties_len` bytes of properties
    /// (saturating; an oversized record fails to encode).
    #[must_use]
    pub fn encoded_len(&self, properties_len: usize) -> usize {
        self.layout()
            .fixed_size()
            .saturating_add(self.body.len())
            .saturating_add(self.topic.len())
            .saturating_add(properties_len)
    }

    /// Appends the record to `out`; the properties string is the concatenation of `pieces`
    /// (each an encoded `name 0x01 value 0x02` run; the caller vouches for their form).
    ///
    /// # Errors
    /// As [`Self::encode_with`].
    pub fn encode_pieces(&self, pieces: &[&[u8]], out: &mut BytesMut) -> Result<(), CodecError> {
        let properties_len = pieces.iter().map(|piece| piece.len()).sum();
        self.encode_with(properties_len, out, |out| {
            for piece in pieces {
                out.extend_from_slice(piece);
            }
        })
    }

    /// Appends the record to `out`; `write_properties` appends exactly `properties_len` bytes
    /// of encoded properties.
    ///
    /// # Errors
    /// [`CodecError::Encode`] if the topic exceeds [`TOPIC_V2_SIZE_MAX`], the properties
    /// exceed [`PROPERTIES_SIZE_MAX`], or the record exceeds `i32::MAX`. Nothing is written
    /// then.
    ///
    /// # Panics
    /// If `write_properties` writes other than `properties_len` bytes (a caller bug).
    pub fn encode_with(
        &self,
        properties_len: usize,
        out: &mut BytesMut,
        write_properties: impl FnOnce(&mut BytesMut),
    ) -> Result<(), CodecError> {
        let too_big = |what: &'static str, len: usize, max: usize| CodecError::Encode {
            what,
            detail: format!("{len} bytes, max {max}"),
        };
        if properties_len > PROPERTIES_SIZE_MAX {
            return Err(too_big(
                "record properties",
                properties_len,
                PROPERTIES_SIZE_MAX,
            ));
        }
        if self.topic.len() > TOPIC_V2_SIZE_MAX {
            return Err(too_big("record topic", self.topic.len(), TOPIC_V2_SIZE_MAX));
        }
        let total = self.encoded_len(properties_len);
        let total_i32 =
            i32::try_from(total).map_err(|_| too_big("record", total, i32::MAX as usize))?;
        let body_len = i32::try_from(self.body.len()).expect("body < total <= i32::MAX");
        let layout = self.layout();
        let mut head = Head::default();
        head.put(&total_i32.to_be_bytes());
        head.put(&layout.version.magic().to_be_bytes());
        head.put(&body_crc(self.body).to_be_bytes());
        head.put(&self.queue_id.to_be_bytes());
        head.put(&self.flag.to_be_bytes());
        head.put(&self.queue_offset.to_be_bytes());
        head.put(&self.physical_offset.to_be_bytes());
        head.put(&self.wire_sys_flag().to_be_bytes());
        head.put(&self.born_timestamp.to_be_bytes());
        head.put_host(&self.born_host);
        head.put(&self.store_timestamp.to_be_bytes());
        head.put_host(&self.store_host);
        head.put(&self.reconsume_times.to_be_bytes());
        head.put(&self.prepared_transaction_offset.to_be_bytes());
        assert_eq!(
            head.len,
            layout.body_len_offset(),
            "fixed prefix per layout"
        );
        head.put(&body_len.to_be_bytes());
        let start = out.len();
        out.reserve(total);
        out.extend_from_slice(head.bytes());
        out.extend_from_slice(self.body);
        let mut middle = Head::default();
        match layout.version {
            MagicVersion::V1 => {
                middle.put(&[u8::try_from(self.topic.len()).expect("v1 topic <= 127 bytes")]);
            }
            MagicVersion::V2 => middle.put(
                &i16::try_from(self.topic.len())
                    .expect("topic checked above")
                    .to_be_bytes(),
            ),
        }
        out.extend_from_slice(middle.bytes());
        out.extend_from_slice(self.topic.as_bytes());
        let properties_len_i16 = i16::try_from(properties_len).expect("properties checked above");
        out.extend_from_slice(&properties_len_i16.to_be_bytes());
        write_properties(out);
        assert_eq!(
            out.len() - start,
            total,
            "TOTALSIZE must equal the bytes written"
        );
        Ok(())
    }
}

/// The fixed fields, gathered on the stack.
struct Head {
    bytes: [u8; HEAD_SIZE_MAX],
    len: usize,
}

impl Default for Head {
    fn default() -> Self {
        Self {
            bytes: [0; HEAD_SIZE_MAX],
            len: 0,
        }
    }
}

impl Head {
    fn put(&mut self, field: &[u8]) {
        self.bytes[self.len..self.len + field.len()].copy_from_slice(field);
        self.len += field.len();
    }

    /// An IPv4 (4 bytes) or IPv6 (16 bytes) address and the port as an i32.
    fn put_host(&mut self, host: &SocketAddr) {
        match host {
            SocketAddr::V4(v4) => self.put(&v4.ip().octets()),
            SocketAddr::V6(v6) => self.put(&v6.ip().octets()),
        }
        self.put(&i32::from(host.port()).to_be_bytes());
    }

    fn bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}
