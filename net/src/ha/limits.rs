//! Every limit of the HA protocol, named once with the reason for its value. The decoder checks
//! a frame's declared length against these from its 16 header bytes, before buffering the rest.

use crate::codec::limits::FRAME_SIZE_MAX_DEFAULT;

/// Bytes of the fixed frame header (magic, version, type, shard id, payload length, CRC).
pub const HA_HEADER_SIZE: usize = 16;

/// Most CommitLog bytes in one Data frame. Data frames carry whole entries (a record never
/// spans frames), so one frame must hold the largest record a broker stores: a message is at
/// most one remoting frame ([`FRAME_SIZE_MAX_DEFAULT`], 16 MiB), plus up to 64 KiB of record
/// envelope (the broker checks its own `RECORD_OVERHEAD_MAX` against this at compile time).
/// Batches are far smaller (`haTransferBatchSize`, 32 KiB by default, at most 4 MiB): only a
/// single larger record makes a frame this big, and it is what a slave may have to buffer.
pub const HA_DATA_BYTES_MAX: usize = FRAME_SIZE_MAX_DEFAULT + 64 * 1024;

/// Bytes of a Data payload before the log bytes: start offset and the master's appended end.
pub const HA_DATA_FIXED_SIZE: usize = 16;

/// Largest payload of any frame other than Data. The largest, a Hello with two names of
/// [`HA_NAME_SIZE_MAX`] bytes, is 569 bytes; a Welcome refusal with its text 1,029. A peer
/// that declares more is not speaking this protocol, and is refused before we buffer it.
pub const HA_CONTROL_PAYLOAD_SIZE_MAX: usize = 4096;

/// Largest payload of any frame: a full Data frame.
pub const HA_PAYLOAD_SIZE_MAX: usize = HA_DATA_FIXED_SIZE + HA_DATA_BYTES_MAX;

/// Largest whole frame, header included: what a reader may have to buffer.
pub const HA_FRAME_SIZE_MAX: usize = HA_HEADER_SIZE + HA_PAYLOAD_SIZE_MAX;

/// Longest cluster or broker name in a Hello (a one-byte length). RocketMQ names are short
/// identifiers; the broker refuses longer `brokerName`/`brokerClusterName` at start.
pub const HA_NAME_SIZE_MAX: usize = u8::MAX as usize;

/// Longest refusal text in a Welcome: one line for the other side's log.
pub const HA_REFUSE_TEXT_SIZE_MAX: usize = 1024;

/// Largest offset or end offset on the wire: RocketMQ offsets are `i64`, so a larger value
/// could not be handed to the broker or a client. Also keeps `offset + size` from overflowing.
pub const HA_OFFSET_MAX: u64 = i64::MAX as u64;

/// Most Probe frames a master sends in one handshake, and a slave answers. Finding the common
/// prefix walks back exponentially then bisects over at most 2^63 bytes: under 64 probes each
/// way. Past it the master refuses the slave (`NoCommonPrefix`) and the slave closes.
pub const HA_PROBES_PER_HANDSHAKE_MAX: usize = 128;

/// Size of an entry summary on the wire: offset u64, size u32, generation u32, CRC u32.
pub const HA_ENTRY_SUMMARY_SIZE: usize = 20;

/// Fixed part of a Hello payload: protocol version u16, shard count u16, segment size u64,
/// slave broker id u64, appended end u64, durable end u64, has-entry flag u8.
pub const HA_HELLO_FIXED_SIZE: usize = 2 + 2 + 8 + 8 + 8 + 8 + 1;

/// Largest Hello payload.
pub const HA_HELLO_SIZE_MAX: usize =
    HA_HELLO_FIXED_SIZE + HA_ENTRY_SUMMARY_SIZE + 2 * (1 + HA_NAME_SIZE_MAX);

/// Largest Welcome payload (a refusal: kind u8, reason u16, text length u16, text).
pub const HA_WELCOME_SIZE_MAX: usize = 1 + 2 + 2 + HA_REFUSE_TEXT_SIZE_MAX;

const _: () = assert!(
    HA_HELLO_SIZE_MAX <= HA_CONTROL_PAYLOAD_SIZE_MAX,
    "the largest Hello must pass the control-frame length check"
);
const _: () = assert!(
    HA_WELCOME_SIZE_MAX <= HA_CONTROL_PAYLOAD_SIZE_MAX,
    "the largest refusal must pass the control-frame length check"
);
const _: () = assert!(
    HA_REFUSE_TEXT_SIZE_MAX <= u16::MAX as usize,
    "the refusal text length is a u16"
);
const _: () = assert!(
    HA_CONTROL_PAYLOAD_SIZE_MAX < HA_PAYLOAD_SIZE_MAX,
    "control frames are the small ones"
);
const _: () = assert!(
    HA_FRAME_SIZE_MAX <= u32::MAX as usize,
    "the payload length field is a u32"
);
// An HA frame may exceed a remoting frame by a record's envelope: Data frames carry whole
// entries, and the largest record holds a message of (almost) a whole remoting frame.
const _: () = assert!(
    HA_DATA_BYTES_MAX > FRAME_SIZE_MAX_DEFAULT,
    "a record holding a remoting frame's message fits one Data frame"
);
