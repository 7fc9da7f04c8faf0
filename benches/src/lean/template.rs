//! Frame templates: a request or response header encoded once by `rmq-net`'s own codec with
//! marker values, cut at the markers, and rendered per message by copying the fixed pieces
//! and writing only what changes (opaque and a few extFields values) plus the body.
//! A rendered frame is byte for byte what `rmq_net::codec::frame::encode` writes for the same
//! command (the unit tests compare both, for JSON and ROCKETMQ headers), so the wire stays
//! what a real client or broker sends; lengths (frame, header, binary extFields section and
//! value lengths) are recomputed per frame, so values may change width.
//! Must never allocate while rendering (the caller's buffer grows only until it is large
//! enough), nor be built from a command whose marker values could collide with real text.

use bytes::BytesMut;
use rmq_net::codec::codes::SerializeType;
use rmq_net::codec::command::RemotingCommand;
use rmq_net::codec::error::CodecError;
use rmq_net::codec::frame::{self, FRAME_SIZE_MIN, LENGTH_FIELD_SIZE};
use rmq_net::codec::header_binary::FIXED_PART_SIZE;

/// The opaque the template is encoded with; found by its decimal text in a JSON header. No
/// other header field of a send request or response can hold this exact text.
const OPAQUE_MARKER: i32 = -1_987_654_321;
/// Offset of the opaque in a ROCKETMQ header: code i16, language u8, version i16.
const BINARY_OPAQUE_OFFSET: usize = 2 + 1 + 2;
/// Offset of the extFields section length in a ROCKETMQ header without a remark.
const BINARY_EXT_LEN_OFFSET: usize = FIXED_PART_SIZE;
/// Bytes of an i32 length or opaque in a ROCKETMQ header.
const I32_SIZE: usize = 4;

/// What goes into a cut of the template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// The request id: decimal in JSON, 4 bytes big-endian in ROCKETMQ.
    Opaque,
    /// The `index`-th value given to [`FrameTemplate::begin`]: a JSON string's content, or a
    /// ROCKETMQ `val_len i32 ‖ val`.
    Value(usize),
}

/// Why a template could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The codec refused the command.
    #[error("encoding the template: {0}")]
    Encode(#[from] CodecError),
    /// A marker was not found exactly once (the command already held such text).
    #[error("template marker {marker:?} found {count} times in the header")]
    Marker {
        /// The marker.
        marker: String,
        /// How often it was found.
        count: usize,
    },
    /// Templates are made for commands without a remark or body.
    #[error("a template command must have no remark and no body")]
    Shape,
}

/// A header with cuts where the per-frame values go.
#[derive(Debug, Clone)]
pub struct FrameTemplate {
    serialize_type: SerializeType,
    /// The header bytes without the slot values (and, in ROCKETMQ, their length fields).
    pieces: Vec<u8>,
    /// Where each slot goes in `pieces`, in increasing order.
    cuts: Vec<(usize, Slot)>,
    /// Values per frame.
    value_count: usize,
}

/// Where a frame started in the output, until [`FrameTemplate::finish`] closes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a begun frame must be finished"]
pub struct FrameStart {
    start: usize,
}

/// The text standing for value `index` in the encoded template.
fn value_marker(index: usize) -> String {
    format!("~rmq-bench-slot-{index}~")
}

/// Every position of `needle` in `haystack`.
fn positions(haystack: &[u8], needle: &[u8]) -> Vec<usize> {
    haystack
        .windows(needle.len())
        .enumerate()
        .filter(|(_, window)| *window == needle)
        .map(|(index, _)| index)
        .collect()
}

fn find_once(haystack: &[u8], needle: &[u8]) -> Result<usize, TemplateError> {
    let found = positions(haystack, needle);
    match found.as_slice() {
        [position] => Ok(*position),
        _ => Err(TemplateError::Marker {
            marker: String::from_utf8_lossy(needle).into_owned(),
            count: found.len(),
        }),
    }
}

impl FrameTemplate {
    /// A template of `command` (no remark, no body) whose opaque and whose extFields `keys`
    /// change per frame; value `i` of [`Self::begin`] is the value of `keys[i]`.
    ///
    /// # Errors
    /// [`TemplateError`] if the command cannot be encoded, has a remark or body, or already
    /// holds marker text.
    ///
    /// # Panics
    /// If a key is not among the command's extFields (a caller bug).
    pub fn new(command: &RemotingCommand, keys: &[&str]) -> Result<Self, TemplateError> {
        if command.remark.is_some() || !command.body.is_empty() {
            return Err(TemplateError::Shape);
        }
        let mut marked = command.clone();
        marked.opaque = OPAQUE_MARKER;
        for (index, key) in keys.iter().enumerate() {
            assert!(
                marked.ext_fields.contains_key(key),
                "template key {key} is not in the command"
            );
            marked.ext_fields.insert(*key, value_marker(index));
        }
        let mut encoded = BytesMut::new();
        frame::encode(&marked, &mut encoded)?;
        let header = &encoded[FRAME_SIZE_MIN..];
        // (position in header, bytes removed there, slot)
        let mut found: Vec<(usize, usize, Slot)> = Vec::with_capacity(keys.len() + 1);
        for index in 0..keys.len() {
            let marker = value_marker(index);
            let at = find_once(header, marker.as_bytes())?;
            found.push(match command.serialize_type {
                SerializeType::Json => (at, marker.len(), Slot::Value(index)),
                SerializeType::RocketMq => {
                    // The value's length field precedes it; both are written per frame.
                    (at - I32_SIZE, I32_SIZE + marker.len(), Slot::Value(index))
                }
            });
        }
        match command.serialize_type {
            SerializeType::Json => {
                let text = format!("\"opaque\":{OPAQUE_MARKER}");
                let at = find_once(header, text.as_bytes())?;
                let digits = text.len() - "\"opaque\":".len();
                found.push((at + text.len() - digits, digits, Slot::Opaque));
            }
            SerializeType::RocketMq => {
                let at = BINARY_OPAQUE_OFFSET;
                assert_eq!(
                    header[at..at + I32_SIZE],
                    OPAQUE_MARKER.to_be_bytes(),
                    "the ROCKETMQ opaque sits after code, language and version"
                );
                found.push((at, I32_SIZE, Slot::Opaque));
            }
        }
        found.sort_unstable_by_key(|(at, _, _)| *at);
        let mut pieces = Vec::with_capacity(header.len());
        let mut cuts = Vec::with_capacity(found.len());
        let mut copied_to = 0;
        for (at, removed, slot) in found {
            assert!(at >= copied_to, "template cuts overlap");
            pieces.extend_from_slice(&header[copied_to..at]);
            cuts.push((pieces.len(), slot));
            copied_to = at + removed;
        }
        pieces.extend_from_slice(&header[copied_to..]);
        Ok(Self {
            serialize_type: command.serialize_type,
            pieces,
            cuts,
            value_count: keys.len(),
        })
    }

    /// Header encoding of the frames.
    #[must_use]
    pub fn serialize_type(&self) -> SerializeType {
        self.serialize_type
    }

    /// Appends the frame's length words and header to `out`; the caller then appends the
    /// body and calls [`Self::finish`].
    ///
    /// # Panics
    /// If `values` does not hold one value per template key, a ROCKETMQ value is empty (Java
    /// would read it as null) or longer than `i32::MAX`, or the header outgrows 16 MiB.
    pub fn begin(&self, out: &mut Vec<u8>, opaque: i32, values: &[&[u8]]) -> FrameStart {
        assert_eq!(values.len(), self.value_count, "one value per template key");
        let start = out.len();
        out.extend_from_slice(&[0; FRAME_SIZE_MIN]);
        let header_start = out.len();
        let mut copied_to = 0;
        for &(at, slot) in &self.cuts {
            out.extend_from_slice(&self.pieces[copied_to..at]);
            copied_to = at;
            match (self.serialize_type, slot) {
                (SerializeType::Json, Slot::Opaque) => push_decimal(out, i64::from(opaque)),
                (SerializeType::RocketMq, Slot::Opaque) => {
                    out.extend_from_slice(&opaque.to_be_bytes());
                }
                (SerializeType::Json, Slot::Value(index)) => push_json_content(out, values[index]),
                (SerializeType::RocketMq, Slot::Value(index)) => {
                    let value = values[index];
                    assert!(!value.is_empty(), "an empty ROCKETMQ value reads as null");
                    let len = i32::try_from(value.len()).expect("a header value below 2 GiB");
                    out.extend_from_slice(&len.to_be_bytes());
                    out.extend_from_slice(value);
                }
            }
        }
        out.extend_from_slice(&self.pieces[copied_to..]);
        let header_len = out.len() - header_start;
        assert!(header_len <= 0x00FF_FFFF, "header length fits 24 bits");
        if self.serialize_type == SerializeType::RocketMq {
            // No remark: the extFields section is everything after its length field.
            let ext_len = header_len - BINARY_EXT_LEN_OFFSET - I32_SIZE;
            let ext_len = i32::try_from(ext_len).expect("below 16 MiB");
            let at = header_start + BINARY_EXT_LEN_OFFSET;
            out[at..at + I32_SIZE].copy_from_slice(&ext_len.to_be_bytes());
        }
        let header_word = (u32::from(self.serialize_type.code()) << 24)
            | u32::try_from(header_len).expect("24 bits");
        out[start + LENGTH_FIELD_SIZE..header_start].copy_from_slice(&header_word.to_be_bytes());
        FrameStart { start }
    }

    /// Writes the total length of the frame begun at `frame` (everything appended to `out`
    /// since is its body).
    ///
    /// # Panics
    /// If `out` is shorter than when the frame began, or the frame is 2 GiB or more.
    pub fn finish(&self, out: &mut [u8], frame: FrameStart) {
        let total = out.len() - frame.start - LENGTH_FIELD_SIZE;
        let total = i32::try_from(total).expect("a frame below 2 GiB");
        out[frame.start..frame.start + LENGTH_FIELD_SIZE].copy_from_slice(&total.to_be_bytes());
    }

    /// [`Self::begin`], the body, [`Self::finish`].
    pub fn render(&self, out: &mut Vec<u8>, opaque: i32, values: &[&[u8]], body: &[u8]) {
        let frame = self.begin(out, opaque, values);
        out.extend_from_slice(body);
        self.finish(out, frame);
    }
}

/// Bytes of the longest text [`signed_decimal`] and [`unsigned_decimal`] write: the 20 digits
/// of `u64::MAX`, or 19 digits and a sign.
pub const DECIMAL_TEXT_MAX: usize = 21;

/// The decimal text of `value`, written at the end of `buf` (no allocation).
pub fn signed_decimal(buf: &mut [u8; DECIMAL_TEXT_MAX], value: i64) -> &[u8] {
    decimal(buf, value < 0, value.unsigned_abs())
}

/// The decimal text of `value`, written at the end of `buf` (no allocation).
pub fn unsigned_decimal(buf: &mut [u8; DECIMAL_TEXT_MAX], value: u64) -> &[u8] {
    decimal(buf, false, value)
}

fn decimal(buf: &mut [u8; DECIMAL_TEXT_MAX], negative: bool, mut magnitude: u64) -> &[u8] {
    let mut start = buf.len();
    loop {
        start -= 1;
        // Below 10: the cast cannot truncate.
        buf[start] = b'0' + (magnitude % 10) as u8;
        magnitude /= 10;
        if magnitude == 0 {
            break;
        }
    }
    if negative {
        start -= 1;
        buf[start] = b'-';
    }
    &buf[start..]
}

/// Appends the decimal text of `value` (no allocation).
pub fn push_decimal(out: &mut Vec<u8>, value: i64) {
    let mut buf = [0_u8; DECIMAL_TEXT_MAX];
    out.extend_from_slice(signed_decimal(&mut buf, value));
}

/// Appends `text` as the content of a JSON string, escaped as `rmq-net`'s JSON header
/// encoder (and `serde_json`) does: `\"`, `\\`, the short forms of \b \t \n \f \r, and
/// `\u00xx` (lower-case hex) for other control bytes.
pub fn push_json_content(out: &mut Vec<u8>, text: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut run_start = 0;
    for (index, &byte) in text.iter().enumerate() {
        let short = match byte {
            b'"' => b'"',
            b'\\' => b'\\',
            0x08 => b'b',
            0x09 => b't',
            0x0A => b'n',
            0x0C => b'f',
            0x0D => b'r',
            0..=0x1F => b'u',
            _ => continue,
        };
        out.extend_from_slice(&text[run_start..index]);
        run_start = index + 1;
        if short == b'u' {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(byte >> 4)]);
            out.push(HEX[usize::from(byte & 0x0F)]);
        } else {
            out.push(b'\\');
            out.push(short);
        }
    }
    out.extend_from_slice(&text[run_start..]);
}

#[cfg(test)]
mod tests {
    use rmq_net::codec::codes::{RequestCode, ResponseCode};
    use rmq_net::codec::command::ExtFields;

    use super::*;

    fn command(serialize_type: SerializeType) -> RemotingCommand {
        let ext: ExtFields = [
            ("a", "PG"),
            ("e", "0"),
            ("g", "0"),
            ("i", "x"),
            ("z", "q\""),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect();
        let mut command = RemotingCommand::request(RequestCode::SendMessageV2, ext);
        command.serialize_type = serialize_type;
        command
    }

    #[test]
    fn rendered_frames_equal_the_codec_for_both_header_types() {
        for serialize_type in [SerializeType::Json, SerializeType::RocketMq] {
            let base = command(serialize_type);
            let template = FrameTemplate::new(&base, &["e", "g", "i"]).expect("template");
            let mut out = Vec::new();
            let cases: [(i32, &str, &str, &str, &[u8]); 4] = [
                (0, "0", "1", "WAIT\u{1}true\u{2}", b"body"),
                (i32::MAX, "1023", "1700000000123", "\u{1}\"\\\n\u{1f}", b""),
                (i32::MIN, "7", "-5", "plain", &[0_u8, 1, 2, 255]),
                (-1, "12", "9", "é\u{7f}", b"x"),
            ];
            for (opaque, queue, born, properties, body) in cases {
                out.clear();
                template.render(
                    &mut out,
                    opaque,
                    &[queue.as_bytes(), born.as_bytes(), properties.as_bytes()],
                    body,
                );
                let mut expected = base.clone().with_opaque(opaque).with_body(body.to_vec());
                for (key, value) in [("e", queue), ("g", born), ("i", properties)] {
                    expected.ext_fields.insert(key, value);
                }
                let encoded = frame::encode_to_bytes(&expected).expect("encodes");
                assert_eq!(out, encoded, "{serialize_type:?} opaque {opaque}");
            }
        }
    }

    #[test]
    fn frames_render_back_to_back_in_one_buffer() {
        let base = command(SerializeType::Json);
        let template = FrameTemplate::new(&base, &["e"]).expect("template");
        let mut out = Vec::new();
        template.render(&mut out, 1, &[b"1"], b"first");
        let first_len = out.len();
        template.render(&mut out, 22, &[b"333"], b"second");
        let (command, consumed) = frame::decode(&out, &Default::default())
            .expect("decodes")
            .expect("whole");
        assert_eq!(consumed, first_len);
        assert_eq!(command.opaque, 1);
        let (command, _) = frame::decode(&out[first_len..], &Default::default())
            .expect("decodes")
            .expect("whole");
        assert_eq!((command.opaque, command.ext("e")), (22, Some("333")));
        assert_eq!(&command.body[..], b"second");
    }

    #[test]
    fn a_command_already_holding_marker_text_is_refused() {
        let mut base = command(SerializeType::Json);
        base.ext_fields.insert("a", value_marker(0));
        assert!(matches!(
            FrameTemplate::new(&base, &["e"]),
            Err(TemplateError::Marker { count: 2, .. })
        ));
        let response = RemotingCommand::response_to(&base, ResponseCode::Success).with_remark("r");
        assert!(matches!(
            FrameTemplate::new(&response, &[]),
            Err(TemplateError::Shape)
        ));
    }

    #[test]
    fn decimals_and_escapes() {
        let mut out = Vec::new();
        for value in [0_i64, -1, 42, i64::MIN, i64::MAX] {
            out.clear();
            push_decimal(&mut out, value);
            assert_eq!(out, value.to_string().as_bytes());
        }
        let mut digits = [0_u8; DECIMAL_TEXT_MAX];
        assert_eq!(unsigned_decimal(&mut digits, 0), b"0");
        assert_eq!(
            unsigned_decimal(&mut digits, u64::MAX),
            u64::MAX.to_string().as_bytes()
        );
        out.clear();
        push_json_content(&mut out, b"a\x01\x02\"\\\tb");
        assert_eq!(out, br#"a\u0001\u0002\"\\\tb"#);
    }
}
