//! HA codec errors. Each variant carries what is needed to debug it (found, expected, sizes).
//! An incomplete frame is not an error: [`super::decode`] returns `Ok(None)` for it. Every
//! error while decoding means the stream can no longer be trusted: close the connection.

use thiserror::Error;

use super::frame::FrameType;

/// Everything that can be wrong with bytes or values handed to the HA codec.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum HaCodecError {
    /// The first four bytes are not the HA magic: not our protocol, or a lost frame boundary.
    #[error("bad magic {found:#010x} (expected {expected:#010x})")]
    Magic { found: u32, expected: u32 },
    /// A framing version this build does not speak.
    #[error("unsupported framing version {found} (this build speaks {supported})")]
    Version { found: u8, supported: u8 },
    /// A frame type byte that names no frame.
    #[error("unknown frame type {0}")]
    FrameType(u8),
    /// A declared (or, when encoding, actual) payload length over the frame type's limit.
    #[error("{frame_type:?} payload of {length} bytes exceeds its limit of {max}")]
    PayloadLength {
        frame_type: FrameType,
        length: usize,
        max: usize,
    },
    /// A buffer handed to [`super::frame::decode_whole`] that is not exactly one frame.
    #[error("{length} bytes are not one whole frame of {frame_size}")]
    NotWholeFrame { length: usize, frame_size: usize },
    /// The CRC-32C over header and payload does not match the one sent.
    #[error("CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Crc { stored: u32, computed: u32 },
    /// The payload ended inside a field.
    #[error(
        "truncated {what} in a {frame_type:?} payload at byte {offset}: need {need}, have {have}"
    )]
    Truncated {
        frame_type: FrameType,
        what: &'static str,
        offset: usize,
        need: usize,
        have: usize,
    },
    /// The payload is longer than its fields.
    #[error("{extra} unexpected bytes after a {frame_type:?} payload")]
    TrailingBytes { frame_type: FrameType, extra: usize },
    /// Text that must be UTF-8 is not.
    #[error("invalid UTF-8 in {what}")]
    Utf8 { what: &'static str },
    /// A text or byte field longer (or, for names, shorter) than its limit allows.
    #[error("{what} is {length} bytes, must be {min} to {max}")]
    FieldLength {
        what: &'static str,
        length: usize,
        min: usize,
        max: usize,
    },
    /// A flag or variant byte with a value that names nothing.
    #[error("unknown {what} tag {value}")]
    Tag { what: &'static str, value: u8 },
    /// Fields that contradict each other or a limit (an end before a start, an offset past
    /// `i64::MAX`, a shard id not below the shard count).
    #[error("invalid {what}: {detail}")]
    Invalid { what: &'static str, detail: String },
}
