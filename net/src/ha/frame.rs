//! HA framing (`docs/replication-protocol.md` §2): a 16-byte header, then the payload.
//!
//! ```text
//!  0 magic        u32  HA_MAGIC ("RMHA")
//!  4 version      u8   HA_FRAMING_VERSION (1)
//!  5 frame_type   u8   FrameType
//!  6 shard_id     u16  the shard both ends of this connection serve
//!  8 payload_len  u32  bytes after the header
//! 12 crc          u32  CRC-32C of bytes [0,12) ++ payload
//! 16 payload
//! ```
//! All integers big-endian. [`peek_header`] validates magic, version, type and the declared
//! length (against the type's limit) from the first 16 bytes, so an oversized or foreign frame
//! is refused before it is buffered. [`decode`] then checks the CRC, parses the payload and
//! splits the frame off the buffer; a Data frame's bytes stay shared with it (no copy).
//!
//! Must never: panic on any input, allocate for a frame before its header passed, or return a
//! frame whose CRC or field relations were not checked.

use bytes::{BufMut, BytesMut};

use super::body::{self, Body};
use super::error::HaCodecError;
use super::limits::{
    HA_CONTROL_PAYLOAD_SIZE_MAX, HA_DATA_FIXED_SIZE, HA_HEADER_SIZE, HA_PAYLOAD_SIZE_MAX,
};

/// First four bytes of every HA frame: "RMHA". Not a valid remoting frame start (that would be
/// a 1.3 GB length word), so a remoting client that reaches the HA port is refused at once.
pub const HA_MAGIC: u32 = u32::from_be_bytes(*b"RMHA");
/// The framing version this build reads and writes. A change of the header layout bumps it;
/// payload changes are negotiated with [`super::HA_PROTOCOL_VERSION`] in the Hello instead.
pub const HA_FRAMING_VERSION: u8 = 1;

/// Bytes of the header covered by the CRC (everything before the CRC field).
const CRC_COVERED_HEADER: usize = 12;

const _: () = assert!(
    CRC_COVERED_HEADER + 4 == HA_HEADER_SIZE,
    "the CRC closes the header"
);

/// The type of a frame, its fifth byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameType {
    /// Slave → master: the handshake opener.
    Hello,
    /// Master → slave: accept, truncate or refuse.
    Welcome,
    /// Master → slave: log bytes or a heartbeat.
    Data,
    /// Slave → master: progress or a heartbeat.
    Ack,
    /// Master → slave: asks for an entry summary.
    Probe,
    /// Slave → master: answers a Probe.
    ProbeReply,
}

/// Which end of a connection sends a frame type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    /// The master (accepts connections).
    Master,
    /// The slave (connects).
    Slave,
}

impl FrameType {
    /// Every frame type.
    pub const ALL: [Self; 6] = [
        Self::Hello,
        Self::Welcome,
        Self::Data,
        Self::Ack,
        Self::Probe,
        Self::ProbeReply,
    ];

    /// The wire byte.
    #[must_use]
    pub fn code(self) -> u8 {
        match self {
            Self::Hello => 1,
            Self::Welcome => 2,
            Self::Data => 3,
            Self::Ack => 4,
            Self::Probe => 5,
            Self::ProbeReply => 6,
        }
    }

    /// The type a wire byte names, if any.
    #[must_use]
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.code() == code)
    }

    /// Who may send it: a frame from the wrong end is a protocol error (close).
    #[must_use]
    pub fn sender(self) -> Sender {
        match self {
            Self::Hello | Self::Ack | Self::ProbeReply => Sender::Slave,
            Self::Welcome | Self::Data | Self::Probe => Sender::Master,
        }
    }

    /// Largest payload this type may declare.
    #[must_use]
    pub fn payload_size_max(self) -> usize {
        match self {
            Self::Data => HA_PAYLOAD_SIZE_MAX,
            _ => HA_CONTROL_PAYLOAD_SIZE_MAX,
        }
    }
}

/// One HA frame: the shard it concerns and its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The shard whose CommitLog this connection replicates (same id on both brokers).
    pub shard_id: u16,
    /// The payload.
    pub body: Body,
}

impl Frame {
    /// Checks the payload's field relations and the one between header and payload (a Hello's
    /// shard id is below its shard count).
    ///
    /// # Errors
    /// As [`Body::check`], or [`HaCodecError::Invalid`] for the shard id.
    pub fn check(&self) -> Result<(), HaCodecError> {
        self.body.check()?;
        if let Body::Hello(hello) = &self.body {
            if self.shard_id >= hello.shard_count {
                return Err(HaCodecError::Invalid {
                    what: "Hello shard id",
                    detail: format!(
                        "shard {} of a {}-shard broker",
                        self.shard_id, hello.shard_count
                    ),
                });
            }
        }
        Ok(())
    }
}

/// A header that passed [`peek_header`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The frame's type.
    pub frame_type: FrameType,
    /// The frame's shard.
    pub shard_id: u16,
    /// Payload bytes after the header (within the type's limit).
    pub payload_len: usize,
    /// The CRC the sender computed.
    pub crc: u32,
}

impl Header {
    /// Bytes of the whole frame: what must be buffered before [`decode`] returns it.
    #[must_use]
    pub fn frame_size(&self) -> usize {
        HA_HEADER_SIZE + self.payload_len
    }
}

/// Reads and validates the header at the front of `buf`; `Ok(None)` while fewer than 16 bytes
/// are buffered. Allocation-free; the caller may reserve [`Header::frame_size`] afterwards.
///
/// # Errors
/// [`HaCodecError::Magic`], [`HaCodecError::Version`], [`HaCodecError::FrameType`] or
/// [`HaCodecError::PayloadLength`]: close the connection.
pub fn peek_header(buf: &[u8]) -> Result<Option<Header>, HaCodecError> {
    let Some(header) = buf.get(..HA_HEADER_SIZE) else {
        return Ok(None);
    };
    let word = |at: usize| {
        u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    let magic = word(0);
    if magic != HA_MAGIC {
        return Err(HaCodecError::Magic {
            found: magic,
            expected: HA_MAGIC,
        });
    }
    if header[4] != HA_FRAMING_VERSION {
        return Err(HaCodecError::Version {
            found: header[4],
            supported: HA_FRAMING_VERSION,
        });
    }
    let frame_type = FrameType::from_code(header[5]).ok_or(HaCodecError::FrameType(header[5]))?;
    let payload_len = usize::try_from(word(8)).unwrap_or(usize::MAX);
    let max = frame_type.payload_size_max();
    if payload_len > max {
        return Err(HaCodecError::PayloadLength {
            frame_type,
            length: payload_len,
            max,
        });
    }
    Ok(Some(Header {
        frame_type,
        shard_id: u16::from_be_bytes([header[6], header[7]]),
        payload_len,
        crc: word(12),
    }))
}

/// Decodes the frame at the front of `buf` and splits it off; `Ok(None)` (nothing consumed)
/// until the whole frame is buffered. A Data frame's bytes are a slice of `buf`'s memory.
///
/// # Errors
/// Any [`HaCodecError`]; `buf` is left as it was, and the connection should be closed.
pub fn decode(buf: &mut BytesMut) -> Result<Option<Frame>, HaCodecError> {
    let Some(header) = peek_header(buf)? else {
        return Ok(None);
    };
    let frame_size = header.frame_size();
    if buf.len() < frame_size {
        return Ok(None);
    }
    let mut frame = decode_checked(&header, &buf[..frame_size])?;
    let bytes = buf.split_to(frame_size);
    if let Body::Data(data) = &mut frame.body {
        data.bytes = bytes.freeze().slice(HA_HEADER_SIZE + HA_DATA_FIXED_SIZE..);
    }
    Ok(Some(frame))
}

/// Decodes `whole`, which must be exactly one frame (a reader that sized its buffer from
/// [`peek_header`]); a Data frame's bytes are a slice of `whole`, not a copy.
///
/// # Errors
/// As [`decode`], and [`HaCodecError::NotWholeFrame`] when `whole` is not exactly the frame
/// its header announces.
pub fn decode_whole(whole: &bytes::Bytes) -> Result<Frame, HaCodecError> {
    let not_whole = |frame_size| HaCodecError::NotWholeFrame {
        length: whole.len(),
        frame_size,
    };
    let header = peek_header(whole)?.ok_or_else(|| not_whole(HA_HEADER_SIZE))?;
    if whole.len() != header.frame_size() {
        return Err(not_whole(header.frame_size()));
    }
    let mut frame = decode_checked(&header, whole)?;
    if let Body::Data(data) = &mut frame.body {
        data.bytes = whole.slice(HA_HEADER_SIZE + HA_DATA_FIXED_SIZE..);
    }
    Ok(frame)
}

/// Checks the CRC of `whole` (the frame `header` was peeked from) and decodes its body; a Data
/// frame's bytes are left empty for the caller to point into its buffer.
fn decode_checked(header: &Header, whole: &[u8]) -> Result<Frame, HaCodecError> {
    let payload = &whole[HA_HEADER_SIZE..header.frame_size()];
    let computed = crc(&whole[..CRC_COVERED_HEADER], payload, &[]);
    if computed != header.crc {
        return Err(HaCodecError::Crc {
            stored: header.crc,
            computed,
        });
    }
    let frame = Frame {
        shard_id: header.shard_id,
        body: body::decode(header.frame_type, payload)?,
    };
    frame.check()?;
    Ok(frame)
}

/// Appends `frame` to `out`. A Data frame's bytes are copied into `out` once; to send them
/// without that copy use [`encode_data_prefix`].
///
/// # Errors
/// [`Frame::check`]'s errors; `out` is left as it was.
pub fn encode(frame: &Frame, out: &mut BytesMut) -> Result<(), HaCodecError> {
    frame.check()?;
    if let Body::Data(data) = &frame.body {
        encode_data_prefix(
            frame.shard_id,
            data.start_offset,
            data.master_appended_end,
            &data.bytes,
            out,
        )?;
        out.extend_from_slice(&data.bytes);
        return Ok(());
    }
    let start = out.len();
    put_header(out, frame.body.frame_type(), frame.shard_id);
    body::encode_fixed(&frame.body, out);
    let payload_len = out.len() - start - HA_HEADER_SIZE;
    let frame_type = frame.body.frame_type();
    assert!(
        payload_len <= frame_type.payload_size_max(),
        "a checked {frame_type:?} payload fits its limit"
    );
    seal(out, start, &[]);
    Ok(())
}

/// Appends the header and fixed fields of a Data frame carrying `bytes` (which are not
/// appended): write it, then `bytes`, with one vectored write and no copy.
///
/// # Errors
/// [`HaCodecError::FieldLength`] or [`HaCodecError::Invalid`] for bytes over the limit or past
/// `master_appended_end`; `out` is left as it was.
pub fn encode_data_prefix(
    shard_id: u16,
    start_offset: u64,
    master_appended_end: u64,
    bytes: &[u8],
    out: &mut BytesMut,
) -> Result<(), HaCodecError> {
    body::check_data_fields(start_offset, master_appended_end, bytes.len())?;
    let start = out.len();
    put_header(out, FrameType::Data, shard_id);
    body::put_data_fixed(out, start_offset, master_appended_end);
    seal(out, start, bytes);
    Ok(())
}

fn put_header(out: &mut BytesMut, frame_type: FrameType, shard_id: u16) {
    out.put_u32(HA_MAGIC);
    out.put_u8(HA_FRAMING_VERSION);
    out.put_u8(frame_type.code());
    out.put_u16(shard_id);
    out.put_u32(0); // payload length, patched by seal
    out.put_u32(0); // CRC, patched by seal
}

/// Patches the payload length and CRC of the frame starting at `start` in `out`, whose payload
/// is what follows its header in `out` plus `tail` (bytes the caller sends separately).
fn seal(out: &mut BytesMut, start: usize, tail: &[u8]) {
    let payload_len = out.len() - start - HA_HEADER_SIZE + tail.len();
    let length = u32::try_from(payload_len).expect("payloads are checked to fit a u32");
    out[start + 8..start + 12].copy_from_slice(&length.to_be_bytes());
    let (header, payload) = out[start..].split_at(HA_HEADER_SIZE);
    let crc = crc(&header[..CRC_COVERED_HEADER], payload, tail);
    out[start + CRC_COVERED_HEADER..start + HA_HEADER_SIZE].copy_from_slice(&crc.to_be_bytes());
}

/// CRC-32C of the covered header bytes followed by the payload, given in two parts (`crc-fast`:
/// carry-less multiply, 2.3x the SSE4.2 instruction on 4 MiB frames here; the tests check it
/// against the `crc32c` crate).
fn crc(header: &[u8], payload: &[u8], tail: &[u8]) -> u32 {
    let mut digest = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi);
    digest.update(header);
    digest.update(payload);
    digest.update(tail);
    u32::try_from(digest.finalize()).expect("a CRC-32 fits 32 bits")
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::ha::Data;

    fn data_frame() -> BytesMut {
        let frame = Frame {
            shard_id: 3,
            body: Body::Data(Data {
                start_offset: 4096,
                master_appended_end: 8192,
                bytes: Bytes::from(vec![7u8; 1000]),
            }),
        };
        let mut out = BytesMut::new();
        encode(&frame, &mut out).expect("encodes");
        out
    }

    #[test]
    fn decode_whole_matches_decode_and_needs_exactly_one_frame() {
        let encoded = data_frame();
        let whole = decode_whole(&Bytes::copy_from_slice(&encoded)).expect("one whole frame");
        let streamed = decode(&mut encoded.clone()).expect("valid").expect("whole");
        assert_eq!(whole, streamed);
        let Body::Data(data) = &whole.body else {
            panic!("a Data frame");
        };
        assert_eq!(data.bytes, Bytes::from(vec![7u8; 1000]));

        let short = Bytes::copy_from_slice(&encoded[..encoded.len() - 1]);
        let long = Bytes::from([&encoded[..], &[0u8]].concat());
        let empty = Bytes::new();
        for not_whole in [short, long, empty] {
            assert!(matches!(
                decode_whole(&not_whole),
                Err(HaCodecError::NotWholeFrame { .. })
            ));
        }
        let mut corrupt = encoded.to_vec();
        *corrupt.last_mut().expect("non-empty") ^= 1;
        assert!(matches!(
            decode_whole(&Bytes::from(corrupt)),
            Err(HaCodecError::Crc { .. })
        ));
    }
}
