//! Every limit the codec enforces, named once. Decoders check these before allocating.

/// Largest frame accepted, counting the 4-byte length word (Java `NettyDecoder` default,
/// `com.rocketmq.remoting.frameMaxLength`). A larger frame closes the connection.
pub const FRAME_SIZE_MAX_DEFAULT: usize = 16 * 1024 * 1024;

/// Largest header accepted. The length field has 24 bits; real headers are a few hundred
/// bytes, the biggest legitimate ones (send with long properties) stay far below 64 KiB.
pub const HEADER_SIZE_MAX_DEFAULT: usize = 512 * 1024;

/// Most extFields entries in one header. Real requests carry fewer than 20.
pub const EXT_FIELDS_COUNT_MAX: usize = 256;

/// Longest remark we decode (bytes). Java remarks are one-line error texts.
pub const REMARK_SIZE_MAX: usize = 64 * 1024;

/// Longest message body the broker stores by default (`maxMessageSize`, 4 MiB as in Java).
pub const MESSAGE_BODY_SIZE_MAX_DEFAULT: usize = 4 * 1024 * 1024;

/// Longest properties string in a stored record: its length is an i16.
pub const PROPERTIES_SIZE_MAX: usize = i16::MAX as usize;

/// Longest topic name for ordinary topics; `%RETRY%`/`%DLQ%` topics may reach
/// [`TOPIC_NAME_RETRY_SIZE_MAX`].
pub const TOPIC_NAME_SIZE_MAX: usize = 127;

/// Longest `%RETRY%`/`%DLQ%` topic name.
pub const TOPIC_NAME_RETRY_SIZE_MAX: usize = 255;

/// Longest consumer/producer group name.
pub const GROUP_NAME_SIZE_MAX: usize = 120;

/// Most messages in one batch send body.
pub const BATCH_MESSAGES_MAX: usize = 64 * 1024;

/// Most property pairs the in-place scanner ([`crate::codec::message::raw_properties`])
/// indexes on its stack array. Real messages carry fewer than 10; a string with more takes
/// the general `Properties` path (same bytes, more allocations), so this bounds stack use and
/// the quadratic duplicate-name check, not what a client may send.
pub const RAW_PROPERTIES_PAIRS_MAX: usize = 16;

/// Largest body the object-key JSON reader ([`crate::codec::body::object_keys`]) accepts: a
/// body never exceeds its frame.
pub const OBJECT_KEY_BODY_SIZE_MAX: usize = FRAME_SIZE_MAX_DEFAULT;

/// Deepest nesting of objects and arrays (keys included) the object-key JSON reader follows.
/// Java's object-keyed bodies nest 3 deep (body, table, key object).
pub const OBJECT_KEY_DEPTH_MAX: usize = 64;

/// Most entries one object or array may hold in the object-key JSON reader (bounds what one
/// reply can make us allocate in a single table).
pub const OBJECT_KEY_ENTRIES_MAX: usize = 1_000_000;

/// Limits a frame decoder applies; configurable per listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLimits {
    /// Largest whole frame, length word included.
    pub frame_size_max: usize,
    /// Largest header.
    pub header_size_max: usize,
}

impl Default for FrameLimits {
    fn default() -> Self {
        Self {
            frame_size_max: FRAME_SIZE_MAX_DEFAULT,
            header_size_max: HEADER_SIZE_MAX_DEFAULT,
        }
    }
}

const _: () = assert!(HEADER_SIZE_MAX_DEFAULT < FRAME_SIZE_MAX_DEFAULT);
const _: () = assert!(
    HEADER_SIZE_MAX_DEFAULT <= 0x00FF_FFFF,
    "header length is a u24"
);
const _: () = assert!(MESSAGE_BODY_SIZE_MAX_DEFAULT < FRAME_SIZE_MAX_DEFAULT);
const _: () = assert!(TOPIC_NAME_SIZE_MAX < TOPIC_NAME_RETRY_SIZE_MAX);
const _: () = assert!(
    TOPIC_NAME_RETRY_SIZE_MAX <= u8::MAX as usize,
    "v1 record topic length is a u8"
);
const _: () = assert!(OBJECT_KEY_BODY_SIZE_MAX <= FRAME_SIZE_MAX_DEFAULT);
const _: () = assert!(
    OBJECT_KEY_DEPTH_MAX >= 3 && OBJECT_KEY_DEPTH_MAX <= 128,
    "deep enough for Java's bodies, within serde_json's own nesting limit"
);

/// Longest SQL92 subscription expression the filter compiles (bytes). Java has no limit; a
/// real selector is a line or two, and the parser's work and memory are linear in it.
pub const SQL92_EXPRESSION_BYTES_MAX: usize = 4096;

/// Deepest tree (each operator, parenthesis and unary sign is a level) the SQL92 parser builds before it
/// refuses the expression, so hostile input cannot overflow the stack.
pub const SQL92_NESTING_MAX: usize = 128;
