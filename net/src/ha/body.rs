//! The six HA payloads as values, their byte layouts (big-endian, `docs/replication-protocol.md`
//! §3) and the rules their fields must keep. Pure: no I/O; the framing is in [`super::frame`].
//!
//! Owns the field relations both encoder and decoder check ([`Body::check`]): an end never
//! before its start, durable never past appended, offsets within `i64`, names and texts within
//! their limits. Must never accept a payload with bytes left over or a flag outside 0/1, so a
//! decoded frame re-encodes to exactly the bytes it came from.

use bytes::{BufMut, Bytes, BytesMut};

use super::error::HaCodecError;
use super::frame::FrameType;
use super::limits::{HA_DATA_BYTES_MAX, HA_NAME_SIZE_MAX, HA_OFFSET_MAX, HA_REFUSE_TEXT_SIZE_MAX};

/// What identifies one CommitLog entry (record or end-of-segment filler) across two brokers:
/// where it starts, its length, the generation it was written in, and its CRC. The CRC covers
/// the whole entry including its own offset, so two summaries are equal only for the same bytes
/// at the same place (up to a CRC-32C collision); the generation alone would not do, since two
/// brokers count their log opens independently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntrySummary {
    /// Offset of the entry's first byte in the shard's CommitLog.
    pub offset: u64,
    /// Entry length in bytes, padding included (never 0).
    pub size: u32,
    /// The entry header's generation field.
    pub generation: u32,
    /// The entry header's stored CRC.
    pub crc: u32,
}

impl EntrySummary {
    /// Offset just past the entry. Never overflows for a checked summary.
    #[must_use]
    pub fn end(&self) -> u64 {
        self.offset.saturating_add(u64::from(self.size))
    }

    fn check(&self, what: &'static str) -> Result<(), HaCodecError> {
        if self.size == 0 {
            return Err(invalid(what, "entry size 0".into()));
        }
        check_offset(what, self.end())
    }
}

/// Slave → master, first frame of a connection: who the slave is and where its log ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// The HA protocol level the slave speaks ([`super::HA_PROTOCOL_VERSION`]); the master
    /// refuses one it does not support with [`RefuseReason::ProtocolVersion`].
    pub protocol_version: u16,
    /// The slave's shard count: must equal the master's (offsets are per shard).
    pub shard_count: u16,
    /// The slave's `mappedFileSizeCommitLog`: must equal the master's, since bytes are copied
    /// verbatim and an entry never straddles a segment.
    pub segment_size: u64,
    /// The slave's `brokerId` (> 0 for a slave; the master checks).
    pub slave_broker_id: u64,
    /// End of the slave's log for this shard: an entry boundary (a slave places whole entries
    /// only).
    pub appended_end: u64,
    /// How much of it is on disk (fdatasync'd); never past `appended_end`.
    pub durable_end: u64,
    /// The entry that ends at `appended_end`; `None` for an empty log.
    pub last_entry: Option<EntrySummary>,
    /// `brokerClusterName`: must equal the master's.
    pub cluster_name: String,
    /// `brokerName`: must equal the master's.
    pub broker_name: String,
}

/// Why a master refused a slave (the connection is closed after the Welcome).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefuseReason {
    /// The master does not speak the Hello's protocol version.
    ProtocolVersion,
    /// Another cluster name.
    ClusterName,
    /// Another broker name.
    BrokerName,
    /// A broker id that is not a slave's (0), or a slave with that id is already connected.
    BrokerId,
    /// Another shard count.
    ShardCount,
    /// The header's shard id is not one of the master's shards.
    ShardId,
    /// Another CommitLog segment size.
    SegmentSize,
    /// The broker the slave reached is not a master.
    NotMaster,
    /// No common prefix found within [`super::limits::HA_PROBES_PER_HANDSHAKE_MAX`] probes.
    NoCommonPrefix,
    /// The master cannot serve this slave now (resources); retry later.
    Busy,
    /// A code this build does not know (never one of the named codes).
    Other(u16),
}

impl RefuseReason {
    /// Every named reason, for tests and docs.
    pub const NAMED: [Self; 10] = [
        Self::ProtocolVersion,
        Self::ClusterName,
        Self::BrokerName,
        Self::BrokerId,
        Self::ShardCount,
        Self::ShardId,
        Self::SegmentSize,
        Self::NotMaster,
        Self::NoCommonPrefix,
        Self::Busy,
    ];

    /// The wire code.
    #[must_use]
    pub fn code(self) -> u16 {
        match self {
            Self::ProtocolVersion => 1,
            Self::ClusterName => 2,
            Self::BrokerName => 3,
            Self::BrokerId => 4,
            Self::ShardCount => 5,
            Self::ShardId => 6,
            Self::SegmentSize => 7,
            Self::NotMaster => 8,
            Self::NoCommonPrefix => 9,
            Self::Busy => 10,
            Self::Other(code) => code,
        }
    }

    /// The reason a wire code names; unknown codes are kept as [`RefuseReason::Other`].
    #[must_use]
    pub fn from_code(code: u16) -> Self {
        Self::NAMED
            .into_iter()
            .find(|reason| reason.code() == code)
            .unwrap_or(Self::Other(code))
    }
}

/// Master → slave, the answer to a Hello (after any Probes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Welcome {
    /// Data follows from `start_offset`: the slave's `appended_end`, or, for a slave with an
    /// empty log, where the master chose to start (the slave's log then begins there).
    Accept {
        /// Offset of the first byte the master will send.
        start_offset: u64,
        /// The master's appended end now (lag = this − start).
        master_appended_end: u64,
    },
    /// The slave holds entries the master does not: cut the log to `to` (a common entry
    /// boundary; 0 empties it), make that durable, then reconnect. The master closes.
    Truncate {
        /// New end of the slave's log.
        to: u64,
    },
    /// The master will not serve this slave; it closes the connection.
    Refused {
        /// Machine-readable reason.
        reason: RefuseReason,
        /// One line for the slave's log.
        text: String,
    },
}

/// Master → slave: raw CommitLog bytes, verbatim, as whole entries (one `read_log` chunk; the
/// slave's storage refuses anything else). With no bytes it is the master's heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Data {
    /// Log offset of the first byte: always the end of the previous Data (or the accepted
    /// start).
    pub start_offset: u64,
    /// The master's appended end when the frame was sent (at least the end of these bytes).
    pub master_appended_end: u64,
    /// The bytes, shared with the read buffer when decoded (no copy).
    pub bytes: Bytes,
}

impl Data {
    /// Offset just past the bytes.
    #[must_use]
    pub fn end_offset(&self) -> u64 {
        self.start_offset.saturating_add(self.bytes.len() as u64)
    }
}

/// Slave → master: how far the slave has appended and made durable. Sent after applying Data
/// and, when idle, every `haSendHeartbeatInterval` (the slave's heartbeat).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    /// End of the slave's log.
    pub appended_end: u64,
    /// End of what is fdatasync'd; never past `appended_end`.
    pub durable_end: u64,
}

/// Master → slave, during the handshake: describe your entry starting at `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// A log offset where an entry of the master's starts.
    pub offset: u64,
}

/// Slave → master: the answer to a Probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeReply {
    /// The probed offset.
    pub offset: u64,
    /// The slave's entry starting exactly there; `None` when no entry of the slave's log
    /// starts there (beyond its end, inside an entry, before its first entry).
    pub entry: Option<EntrySummary>,
}

/// A frame's payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// Slave → master.
    Hello(Hello),
    /// Master → slave.
    Welcome(Welcome),
    /// Master → slave.
    Data(Data),
    /// Slave → master.
    Ack(Ack),
    /// Master → slave.
    Probe(Probe),
    /// Slave → master.
    ProbeReply(ProbeReply),
}

impl Body {
    /// The frame type that carries this payload.
    #[must_use]
    pub fn frame_type(&self) -> FrameType {
        match self {
            Self::Hello(_) => FrameType::Hello,
            Self::Welcome(_) => FrameType::Welcome,
            Self::Data(_) => FrameType::Data,
            Self::Ack(_) => FrameType::Ack,
            Self::Probe(_) => FrameType::Probe,
            Self::ProbeReply(_) => FrameType::ProbeReply,
        }
    }

    /// Checks the field relations and limits the encoder and decoder both enforce.
    ///
    /// # Errors
    /// [`HaCodecError::Invalid`] or [`HaCodecError::FieldLength`] naming the field.
    pub fn check(&self) -> Result<(), HaCodecError> {
        match self {
            Self::Hello(hello) => check_hello(hello),
            Self::Welcome(welcome) => check_welcome(welcome),
            Self::Data(data) => check_data(
                data.start_offset,
                data.master_appended_end,
                data.bytes.len(),
            ),
            Self::Ack(ack) => check_progress("Ack", ack.appended_end, ack.durable_end),
            Self::Probe(probe) => check_offset("Probe offset", probe.offset),
            Self::ProbeReply(reply) => check_probe_reply(reply),
        }
    }
}

fn invalid(what: &'static str, detail: String) -> HaCodecError {
    HaCodecError::Invalid { what, detail }
}

fn check_offset(what: &'static str, offset: u64) -> Result<(), HaCodecError> {
    if offset > HA_OFFSET_MAX {
        return Err(invalid(
            what,
            format!("offset {offset} beyond {HA_OFFSET_MAX}"),
        ));
    }
    Ok(())
}

fn check_progress(what: &'static str, appended: u64, durable: u64) -> Result<(), HaCodecError> {
    check_offset(what, appended)?;
    if durable > appended {
        return Err(invalid(
            what,
            format!("durable end {durable} past appended end {appended}"),
        ));
    }
    Ok(())
}

fn check_length(
    what: &'static str,
    length: usize,
    min: usize,
    max: usize,
) -> Result<(), HaCodecError> {
    if length < min || length > max {
        return Err(HaCodecError::FieldLength {
            what,
            length,
            min,
            max,
        });
    }
    Ok(())
}

fn check_hello(hello: &Hello) -> Result<(), HaCodecError> {
    if hello.shard_count == 0 {
        return Err(invalid("Hello shard count", "0".into()));
    }
    if hello.segment_size == 0 {
        return Err(invalid("Hello segment size", "0".into()));
    }
    check_offset("Hello segment size", hello.segment_size)?;
    check_progress("Hello", hello.appended_end, hello.durable_end)?;
    if let Some(entry) = &hello.last_entry {
        entry.check("Hello last entry")?;
        if entry.end() != hello.appended_end {
            return Err(invalid(
                "Hello last entry",
                format!(
                    "ends at {}, not at the appended end {}",
                    entry.end(),
                    hello.appended_end
                ),
            ));
        }
    }
    check_length(
        "Hello cluster name",
        hello.cluster_name.len(),
        1,
        HA_NAME_SIZE_MAX,
    )?;
    check_length(
        "Hello broker name",
        hello.broker_name.len(),
        1,
        HA_NAME_SIZE_MAX,
    )
}

fn check_welcome(welcome: &Welcome) -> Result<(), HaCodecError> {
    match welcome {
        Welcome::Accept {
            start_offset,
            master_appended_end,
        } => {
            check_offset("Welcome master end", *master_appended_end)?;
            if start_offset > master_appended_end {
                return Err(invalid(
                    "Welcome start",
                    format!("start {start_offset} past the master's end {master_appended_end}"),
                ));
            }
            Ok(())
        }
        Welcome::Truncate { to } => check_offset("Welcome truncate", *to),
        Welcome::Refused { reason, text } => {
            if let RefuseReason::Other(code) = reason {
                if RefuseReason::from_code(*code) != *reason {
                    return Err(invalid(
                        "Welcome refusal",
                        format!("Other({code}) is a named reason"),
                    ));
                }
            }
            check_length(
                "Welcome refusal text",
                text.len(),
                0,
                HA_REFUSE_TEXT_SIZE_MAX,
            )
        }
    }
}

fn check_data(start: u64, master_end: u64, len: usize) -> Result<(), HaCodecError> {
    check_length("Data bytes", len, 0, HA_DATA_BYTES_MAX)?;
    check_offset("Data master end", master_end)?;
    let end = start.saturating_add(len as u64);
    if end > master_end {
        return Err(invalid(
            "Data",
            format!("bytes {start}..{end} past the master's end {master_end}"),
        ));
    }
    Ok(())
}

fn check_probe_reply(reply: &ProbeReply) -> Result<(), HaCodecError> {
    check_offset("ProbeReply offset", reply.offset)?;
    if let Some(entry) = &reply.entry {
        entry.check("ProbeReply entry")?;
        if entry.offset != reply.offset {
            return Err(invalid(
                "ProbeReply entry",
                format!(
                    "starts at {}, not at the probed {}",
                    entry.offset, reply.offset
                ),
            ));
        }
    }
    Ok(())
}

// ---- encoding ------------------------------------------------------------------------------

const WELCOME_ACCEPT: u8 = 0;
const WELCOME_TRUNCATE: u8 = 1;
const WELCOME_REFUSED: u8 = 2;

/// Appends the payload of a checked `body` to `out` (for Data only the fixed fields: the caller
/// adds the bytes, so they can be sent without a copy).
pub(super) fn encode_fixed(body: &Body, out: &mut BytesMut) {
    match body {
        Body::Hello(hello) => {
            out.put_u16(hello.protocol_version);
            out.put_u16(hello.shard_count);
            out.put_u64(hello.segment_size);
            out.put_u64(hello.slave_broker_id);
            out.put_u64(hello.appended_end);
            out.put_u64(hello.durable_end);
            put_entry(out, hello.last_entry.as_ref());
            put_name(out, &hello.cluster_name);
            put_name(out, &hello.broker_name);
        }
        Body::Welcome(Welcome::Accept {
            start_offset,
            master_appended_end,
        }) => {
            out.put_u8(WELCOME_ACCEPT);
            out.put_u64(*start_offset);
            out.put_u64(*master_appended_end);
        }
        Body::Welcome(Welcome::Truncate { to }) => {
            out.put_u8(WELCOME_TRUNCATE);
            out.put_u64(*to);
        }
        Body::Welcome(Welcome::Refused { reason, text }) => {
            out.put_u8(WELCOME_REFUSED);
            out.put_u16(reason.code());
            out.put_u16(u16::try_from(text.len()).expect("checked: at most 1 KiB"));
            out.put_slice(text.as_bytes());
        }
        Body::Data(data) => put_data_fixed(out, data.start_offset, data.master_appended_end),
        Body::Ack(ack) => {
            out.put_u64(ack.appended_end);
            out.put_u64(ack.durable_end);
        }
        Body::Probe(probe) => out.put_u64(probe.offset),
        Body::ProbeReply(reply) => {
            out.put_u64(reply.offset);
            put_entry(out, reply.entry.as_ref());
        }
    }
}

pub(super) fn put_data_fixed(out: &mut BytesMut, start: u64, master_end: u64) {
    out.put_u64(start);
    out.put_u64(master_end);
}

pub(super) fn check_data_fields(
    start: u64,
    master_end: u64,
    len: usize,
) -> Result<(), HaCodecError> {
    check_data(start, master_end, len)
}

fn put_entry(out: &mut BytesMut, entry: Option<&EntrySummary>) {
    match entry {
        None => out.put_u8(0),
        Some(entry) => {
            out.put_u8(1);
            out.put_u64(entry.offset);
            out.put_u32(entry.size);
            out.put_u32(entry.generation);
            out.put_u32(entry.crc);
        }
    }
}

fn put_name(out: &mut BytesMut, name: &str) {
    out.put_u8(u8::try_from(name.len()).expect("checked: at most 255 bytes"));
    out.put_slice(name.as_bytes());
}

// ---- decoding ------------------------------------------------------------------------------

/// Bounds-checked reader over one payload.
struct Reader<'a> {
    frame_type: FrameType,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, what: &'static str, need: usize) -> Result<&'a [u8], HaCodecError> {
        let have = self.bytes.len() - self.at;
        if have < need {
            return Err(HaCodecError::Truncated {
                frame_type: self.frame_type,
                what,
                offset: self.at,
                need,
                have,
            });
        }
        let taken = &self.bytes[self.at..self.at + need];
        self.at += need;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], HaCodecError> {
        let mut array = [0; N];
        array.copy_from_slice(self.take(what, N)?);
        Ok(array)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, HaCodecError> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, HaCodecError> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, HaCodecError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, HaCodecError> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }

    fn text(&mut self, what: &'static str, len: usize) -> Result<String, HaCodecError> {
        let bytes = self.take(what, len)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| HaCodecError::Utf8 { what })
    }

    fn entry(&mut self, what: &'static str) -> Result<Option<EntrySummary>, HaCodecError> {
        match self.u8(what)? {
            0 => Ok(None),
            1 => Ok(Some(EntrySummary {
                offset: self.u64(what)?,
                size: self.u32(what)?,
                generation: self.u32(what)?,
                crc: self.u32(what)?,
            })),
            value => Err(HaCodecError::Tag { what, value }),
        }
    }

    fn finish(&self) -> Result<(), HaCodecError> {
        let extra = self.bytes.len() - self.at;
        if extra > 0 {
            return Err(HaCodecError::TrailingBytes {
                frame_type: self.frame_type,
                extra,
            });
        }
        Ok(())
    }
}

/// Decodes and checks one payload. A Data body comes back with empty `bytes`: the caller
/// attaches them from its buffer without copying (their length is already checked).
pub(super) fn decode(frame_type: FrameType, payload: &[u8]) -> Result<Body, HaCodecError> {
    let mut reader = Reader {
        frame_type,
        bytes: payload,
        at: 0,
    };
    let body = match frame_type {
        FrameType::Hello => Body::Hello(decode_hello(&mut reader)?),
        FrameType::Welcome => Body::Welcome(decode_welcome(&mut reader)?),
        FrameType::Data => {
            let start_offset = reader.u64("Data start")?;
            let master_appended_end = reader.u64("Data master end")?;
            check_data(start_offset, master_appended_end, payload.len() - reader.at)?;
            return Ok(Body::Data(Data {
                start_offset,
                master_appended_end,
                bytes: Bytes::new(),
            }));
        }
        FrameType::Ack => Body::Ack(Ack {
            appended_end: reader.u64("Ack appended end")?,
            durable_end: reader.u64("Ack durable end")?,
        }),
        FrameType::Probe => Body::Probe(Probe {
            offset: reader.u64("Probe offset")?,
        }),
        FrameType::ProbeReply => Body::ProbeReply(ProbeReply {
            offset: reader.u64("ProbeReply offset")?,
            entry: reader.entry("ProbeReply entry")?,
        }),
    };
    reader.finish()?;
    body.check()?;
    Ok(body)
}

fn decode_hello(reader: &mut Reader<'_>) -> Result<Hello, HaCodecError> {
    let protocol_version = reader.u16("Hello protocol version")?;
    let shard_count = reader.u16("Hello shard count")?;
    let segment_size = reader.u64("Hello segment size")?;
    let slave_broker_id = reader.u64("Hello broker id")?;
    let appended_end = reader.u64("Hello appended end")?;
    let durable_end = reader.u64("Hello durable end")?;
    let last_entry = reader.entry("Hello last entry")?;
    let cluster_len = usize::from(reader.u8("Hello cluster name length")?);
    let cluster_name = reader.text("Hello cluster name", cluster_len)?;
    let broker_len = usize::from(reader.u8("Hello broker name length")?);
    let broker_name = reader.text("Hello broker name", broker_len)?;
    Ok(Hello {
        protocol_version,
        shard_count,
        segment_size,
        slave_broker_id,
        appended_end,
        durable_end,
        last_entry,
        cluster_name,
        broker_name,
    })
}

fn decode_welcome(reader: &mut Reader<'_>) -> Result<Welcome, HaCodecError> {
    match reader.u8("Welcome kind")? {
        WELCOME_ACCEPT => Ok(Welcome::Accept {
            start_offset: reader.u64("Welcome start")?,
            master_appended_end: reader.u64("Welcome master end")?,
        }),
        WELCOME_TRUNCATE => Ok(Welcome::Truncate {
            to: reader.u64("Welcome truncate")?,
        }),
        WELCOME_REFUSED => {
            let reason = RefuseReason::from_code(reader.u16("Welcome refusal reason")?);
            let len = usize::from(reader.u16("Welcome refusal text length")?);
            let text = reader.text("Welcome refusal text", len)?;
            Ok(Welcome::Refused { reason, text })
        }
        value => Err(HaCodecError::Tag {
            what: "Welcome kind",
            value,
        }),
    }
}
