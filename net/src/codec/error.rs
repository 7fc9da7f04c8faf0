//! Codec errors. Each variant carries enough to debug (offset, need, have). An incomplete
//! frame is not an error: `frame::check` returns `Ok(None)` for it.

use thiserror::Error;

/// Everything that can be wrong with bytes or values handed to the codec.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CodecError {
    /// A frame's length word (the size after the word itself, as sent: it may be negative) is
    /// out of range; a whole frame must be `min..=max` bytes.
    #[error(
        "frame length word {length_word} out of range (a whole frame is {min} to {max} bytes)"
    )]
    FrameSize {
        length_word: i32,
        min: usize,
        max: usize,
    },
    /// The header length is larger than the frame or the header limit.
    #[error("header length {header_len} invalid (frame body room {room}, max {max})")]
    HeaderLength {
        header_len: usize,
        room: usize,
        max: usize,
    },
    /// Serialize type byte is neither 0 (JSON) nor 1 (ROCKETMQ).
    #[error("unknown serialize type {0}")]
    SerializeType(u8),
    /// Ran out of bytes while reading a field.
    #[error("truncated {what} at offset {offset}: need {need} bytes, have {have}")]
    Truncated {
        what: &'static str,
        offset: usize,
        need: usize,
        have: usize,
    },
    /// A length field is negative or exceeds its limit.
    #[error("bad length for {what} at offset {offset}: {len} (max {max})")]
    Length {
        what: &'static str,
        offset: usize,
        len: i64,
        max: usize,
    },
    /// Text that must be UTF-8 is not.
    #[error("invalid UTF-8 in {what} at offset {offset}")]
    Utf8 { what: &'static str, offset: usize },
    /// JSON that does not parse or has the wrong shape.
    #[error("invalid JSON in {what}: {detail}")]
    Json { what: &'static str, detail: String },
    /// A required header field is missing.
    #[error("missing required header field `{0}`")]
    MissingField(&'static str),
    /// A header field's text does not parse as its type.
    #[error("header field `{field}` has invalid value `{value}`")]
    InvalidField { field: &'static str, value: String },
    /// A value cannot be encoded (too long for its length field, etc.).
    #[error("cannot encode {what}: {detail}")]
    Encode { what: &'static str, detail: String },
    /// A record's magic code is not one we know.
    #[error("unknown magic code {magic:#010x} at offset {offset}")]
    Magic { magic: u32, offset: usize },
    /// A record's stored CRC does not match its body.
    #[error("body CRC mismatch at offset {offset}: stored {stored}, computed {computed}")]
    Crc {
        offset: usize,
        stored: i32,
        computed: i32,
    },
    /// More items than a named limit allows.
    #[error("too many {what}: {count} (max {max})")]
    TooMany {
        what: &'static str,
        count: usize,
        max: usize,
    },
}

impl CodecError {
    /// Shorthand for a JSON error.
    pub(crate) fn json(what: &'static str, err: &impl std::fmt::Display) -> Self {
        Self::Json {
            what,
            detail: err.to_string(),
        }
    }
}
