//! Lean reading of frames: the few header fields the load generator's hot paths need (code,
//! opaque, flag, and extFields values by key) read straight from the buffered bytes of a
//! JSON or ROCKETMQ header, with no `RemotingCommand`, no map and no allocation.
//! Framing and its limits are `rmq_net::codec::frame::check`'s; this module only reads
//! headers it has delimited. Must never panic on input bytes, nor accept a header the full
//! decoder would reject for the fields it reads (arrays or a malformed structure are errors).

use rmq_net::codec::codes::SerializeType;
use rmq_net::codec::error::CodecError;
use rmq_net::codec::frame::{check, FrameInfo, FRAME_SIZE_MIN};
use rmq_net::codec::header_binary::HEADER_SIZE_MIN;
use rmq_net::codec::limits::FrameLimits;

/// Why a header could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The frame words are invalid (the stream cannot be trusted any more).
    #[error(transparent)]
    Frame(#[from] CodecError),
    /// The header is malformed at `offset`.
    #[error("malformed {what} header at offset {offset}")]
    Header {
        /// JSON or ROCKETMQ.
        what: &'static str,
        /// Offset in the header.
        offset: usize,
    },
}

/// The fields every command has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Request or response code.
    pub code: i32,
    /// Request id.
    pub opaque: i32,
    /// Bit 0 response, bit 1 oneway.
    pub flag: i32,
}

/// Raw extFields values, one per key asked for (`None` = absent).
pub type ExtValues<'a, const N: usize> = [Option<&'a [u8]>; N];

/// One buffered frame, delimited but not decoded.
#[derive(Debug, Clone, Copy)]
pub struct RawFrame<'a> {
    /// Header encoding.
    pub serialize_type: SerializeType,
    /// Header bytes.
    pub header: &'a [u8],
    /// Body bytes.
    pub body: &'a [u8],
    /// Whole frame, length word included.
    pub bytes: &'a [u8],
}

/// The first frame of `buf`, if it is whole.
///
/// # Errors
/// [`WireError::Frame`] when the frame words break `limits`.
pub fn next_frame<'a>(
    buf: &'a [u8],
    limits: &FrameLimits,
) -> Result<Option<RawFrame<'a>>, WireError> {
    let Some(FrameInfo {
        frame_size,
        serialize_type,
        header_len,
        ..
    }) = check(buf, limits)?
    else {
        return Ok(None);
    };
    let body_start = FRAME_SIZE_MIN + header_len;
    Ok(Some(RawFrame {
        serialize_type,
        header: &buf[FRAME_SIZE_MIN..body_start],
        body: &buf[body_start..frame_size],
        bytes: &buf[..frame_size],
    }))
}

impl RawFrame<'_> {
    /// Code, opaque and flag.
    ///
    /// # Errors
    /// [`WireError::Header`] when the header is malformed or lacks one of them (JSON).
    pub fn head(&self) -> Result<Head, WireError> {
        match self.serialize_type {
            SerializeType::Json => json_head(self.header),
            SerializeType::RocketMq => binary_head(self.header),
        }
    }

    /// Code, opaque and flag, and the extFields values of `keys` (raw, as [`Self::ext`]),
    /// in one pass over the header.
    ///
    /// # Errors
    /// As [`Self::head`].
    pub fn fields<const N: usize>(
        &self,
        keys: [&str; N],
    ) -> Result<(Head, ExtValues<'_, N>), WireError> {
        let mut values = [None; N];
        match self.serialize_type {
            SerializeType::Json => {
                let mut top = TopFields::default();
                json_fields(self.header, |field| {
                    if field.in_ext_fields {
                        if let Some(index) = keys.iter().position(|key| key.as_bytes() == field.key)
                        {
                            values[index] = Some(field.value);
                        }
                    } else {
                        top.visit(&field);
                    }
                })?;
                Ok((top.head()?, values))
            }
            SerializeType::RocketMq => {
                let head = binary_head(self.header)?;
                for (value, key) in values.iter_mut().zip(keys) {
                    *value = binary_ext(self.header, key.as_bytes())?;
                }
                Ok((head, values))
            }
        }
    }

    /// The extFields value of `key` (raw: JSON escapes are not undone, which no numeric or
    /// boolean value has), or `None` when absent.
    ///
    /// # Errors
    /// [`WireError::Header`] when the header is malformed.
    pub fn ext(&self, key: &str) -> Result<Option<&[u8]>, WireError> {
        match self.serialize_type {
            SerializeType::Json => {
                let mut found = None;
                json_fields(self.header, |field| {
                    if field.in_ext_fields && field.key == key.as_bytes() {
                        found = Some(field.value);
                    }
                })?;
                Ok(found)
            }
            SerializeType::RocketMq => binary_ext(self.header, key.as_bytes()),
        }
    }
}

/// One scalar field of a JSON header.
struct JsonField<'a> {
    /// Inside `extFields` (depth 2) rather than at the top.
    in_ext_fields: bool,
    key: &'a [u8],
    /// A string's content without quotes, or a number's or literal's text.
    value: &'a [u8],
}

fn json_error(offset: usize) -> WireError {
    WireError::Header {
        what: "JSON",
        offset,
    }
}

fn skip_whitespace(bytes: &[u8], mut at: usize) -> usize {
    while bytes.get(at).is_some_and(u8::is_ascii_whitespace) {
        at += 1;
    }
    at
}

/// The end (index of the closing quote) of the string whose content starts at `at`.
fn string_end(bytes: &[u8], mut at: usize) -> Result<usize, WireError> {
    loop {
        at = next_quote_or_backslash(bytes, at).ok_or_else(|| json_error(bytes.len()))?;
        if bytes[at] == b'"' {
            return Ok(at);
        }
        // A backslash escapes the byte after it (`\u00xx` has no quote or backslash).
        at += 2;
    }
}

/// Index of the first `"` or `\` at or after `from`, 8 bytes per step (SWAR, no `unsafe`):
/// header strings are mostly plain runs.
fn next_quote_or_backslash(bytes: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut index = from;
    while let Some(chunk) = bytes.get(index..index + 8) {
        let word = u64::from_le_bytes(chunk.try_into().expect("a range of 8 bytes"));
        let quote = word ^ (ONES * u64::from(b'"'));
        let backslash = word ^ (ONES * u64::from(b'\\'));
        // "Has a zero byte": exact for the lowest flagged byte, little-endian.
        let bits =
            (quote.wrapping_sub(ONES) & !quote | backslash.wrapping_sub(ONES) & !backslash) & HIGHS;
        if bits != 0 {
            return Some(index + bits.trailing_zeros() as usize / 8);
        }
        index += 8;
    }
    bytes
        .get(index..)?
        .iter()
        .position(|&byte| byte == b'"' || byte == b'\\')
        .map(|offset| index + offset)
}

/// Walks a RocketMQ JSON header (an object of scalars and one level of nested objects),
/// handing every scalar field at depth 1 and inside `extFields` to `visit`.
fn json_fields<'a>(
    header: &'a [u8],
    mut visit: impl FnMut(JsonField<'a>),
) -> Result<(), WireError> {
    let mut at = skip_whitespace(header, 0);
    if header.get(at) != Some(&b'{') {
        return Err(json_error(at));
    }
    at += 1;
    // Depth 1 = the command, 2 = a nested object such as extFields.
    let mut depth = 1_u32;
    let mut in_ext_fields = false;
    // An empty object closes at once.
    let mut expect_key = header.get(skip_whitespace(header, at)) != Some(&b'}');
    loop {
        at = skip_whitespace(header, at);
        match header.get(at) {
            Some(b'}') if !expect_key => {
                depth -= 1;
                at += 1;
                if depth == 0 {
                    return if skip_whitespace(header, at) == header.len() {
                        Ok(())
                    } else {
                        Err(json_error(at))
                    };
                }
                in_ext_fields = false;
                expect_key = false;
                continue;
            }
            Some(b',') if !expect_key => {
                at += 1;
                expect_key = true;
                continue;
            }
            Some(b'"') if expect_key => {}
            _ => return Err(json_error(at)),
        }
        let key_start = at + 1;
        let key_end = string_end(header, key_start)?;
        let key = &header[key_start..key_end];
        at = skip_whitespace(header, key_end + 1);
        if header.get(at) != Some(&b':') {
            return Err(json_error(at));
        }
        at = skip_whitespace(header, at + 1);
        expect_key = false;
        if header.get(at) == Some(&b'{') && depth == 1 {
            depth = 2;
            in_ext_fields = key == b"extFields";
            at += 1;
            expect_key = header.get(skip_whitespace(header, at)) != Some(&b'}');
            continue;
        }
        let (value, next) = json_scalar(header, at)?;
        visit(JsonField {
            in_ext_fields,
            key,
            value,
        });
        at = next;
    }
}

/// The scalar value starting at `at` (a string's content, or a number's or literal's text)
/// and the index after it.
fn json_scalar(header: &[u8], at: usize) -> Result<(&[u8], usize), WireError> {
    match header.get(at) {
        Some(b'"') => {
            let end = string_end(header, at + 1)?;
            Ok((&header[at + 1..end], end + 1))
        }
        Some(byte) if byte.is_ascii_alphanumeric() || *byte == b'-' => {
            let mut end = at;
            while header
                .get(end)
                .is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'+' | b'.'))
            {
                end += 1;
            }
            Ok((&header[at..end], end))
        }
        _ => Err(json_error(at)),
    }
}

/// Parses a JSON integer field value.
fn json_int(value: &[u8], offset: usize) -> Result<i32, WireError> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| json_error(offset))
}

/// The top-level numbers of a JSON header, as they are visited.
#[derive(Default)]
struct TopFields {
    code: Option<i32>,
    opaque: Option<i32>,
    flag: Option<i32>,
    bad: bool,
}

impl TopFields {
    fn visit(&mut self, field: &JsonField<'_>) {
        let slot = match field.key {
            b"code" => &mut self.code,
            b"opaque" => &mut self.opaque,
            b"flag" => &mut self.flag,
            _ => return,
        };
        match json_int(field.value, 0) {
            Ok(value) => *slot = Some(value),
            Err(_) => self.bad = true,
        }
    }

    fn head(&self) -> Result<Head, WireError> {
        match (self.code, self.bad) {
            // A missing flag or opaque is 0, as the full decoder (and Java) default them.
            (Some(code), false) => Ok(Head {
                code,
                opaque: self.opaque.unwrap_or(0),
                flag: self.flag.unwrap_or(0),
            }),
            _ => Err(json_error(0)),
        }
    }
}

fn json_head(header: &[u8]) -> Result<Head, WireError> {
    let mut top = TopFields::default();
    json_fields(header, |field| {
        if !field.in_ext_fields {
            top.visit(&field);
        }
    })?;
    top.head()
}

fn binary_error(offset: usize) -> WireError {
    WireError::Header {
        what: "ROCKETMQ",
        offset,
    }
}

fn be_i32(bytes: &[u8], at: usize) -> Result<i32, WireError> {
    bytes
        .get(at..at + 4)
        .map(|word| i32::from_be_bytes([word[0], word[1], word[2], word[3]]))
        .ok_or_else(|| binary_error(at))
}

fn binary_head(header: &[u8]) -> Result<Head, WireError> {
    if header.len() < HEADER_SIZE_MIN {
        return Err(binary_error(header.len()));
    }
    Ok(Head {
        code: i32::from(i16::from_be_bytes([header[0], header[1]])),
        opaque: be_i32(header, 5)?,
        flag: be_i32(header, 9)?,
    })
}

/// A length field as a `usize`, rejected when negative.
fn binary_length(header: &[u8], at: usize) -> Result<usize, WireError> {
    usize::try_from(be_i32(header, at)?).map_err(|_| binary_error(at))
}

fn binary_ext<'a>(header: &'a [u8], key: &[u8]) -> Result<Option<&'a [u8]>, WireError> {
    let remark_len = binary_length(header, 13)?;
    let ext_len_at = 17 + remark_len;
    let ext_len = binary_length(header, ext_len_at)?;
    let mut at = ext_len_at + 4;
    let end = at
        .checked_add(ext_len)
        .filter(|end| *end == header.len())
        .ok_or_else(|| binary_error(ext_len_at))?;
    let mut found = None;
    while at < end {
        let key_len = header
            .get(at..at + 2)
            .map(|word| i16::from_be_bytes([word[0], word[1]]))
            .and_then(|len| usize::try_from(len).ok())
            .ok_or_else(|| binary_error(at))?;
        let entry_key = header
            .get(at + 2..at + 2 + key_len)
            .ok_or_else(|| binary_error(at))?;
        at += 2 + key_len;
        let value_len = binary_length(header, at)?;
        let value = header
            .get(at + 4..at + 4 + value_len)
            .ok_or_else(|| binary_error(at))?;
        at += 4 + value_len;
        // As the full decoder: an empty key or value is null (absent); the last one wins.
        if entry_key == key && !value.is_empty() {
            found = Some(value);
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use rmq_net::codec::codes::{RequestCode, ResponseCode};
    use rmq_net::codec::command::{ExtFields, RemotingCommand};
    use rmq_net::codec::frame::encode_to_bytes;

    use super::*;

    fn response(serialize_type: SerializeType, opaque: i32) -> RemotingCommand {
        let request = RemotingCommand {
            opaque,
            serialize_type,
            ..RemotingCommand::default()
        };
        let ext: ExtFields = [
            ("msgId", "7F00000100002A9F0000000000000000"),
            ("queueId", "3"),
            ("queueOffset", "12345"),
            ("code", "77"),
            ("opaque", "\"odd\" {text}"),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect();
        RemotingCommand::response_to(&request, ResponseCode::FlushDiskTimeout)
            .with_ext_fields(ext)
            .with_remark("a \"remark\", with {braces}")
            .with_body(Bytes::from_static(b"body"))
    }

    #[test]
    fn head_and_ext_values_match_the_full_decoder() {
        let limits = FrameLimits::default();
        for serialize_type in [SerializeType::Json, SerializeType::RocketMq] {
            for opaque in [0, 7, -3, i32::MAX] {
                let command = response(serialize_type, opaque);
                let bytes = encode_to_bytes(&command).expect("encodes");
                let frame = next_frame(&bytes, &limits).expect("valid").expect("whole");
                assert_eq!(frame.bytes.len(), bytes.len());
                assert_eq!(frame.body, b"body");
                let head = frame.head().expect("head");
                assert_eq!(
                    head,
                    Head {
                        code: command.code,
                        opaque,
                        flag: command.flag
                    }
                );
                assert_eq!(frame.ext("queueOffset").expect("ok"), Some(&b"12345"[..]));
                assert_eq!(frame.ext("code").expect("ok"), Some(&b"77"[..]));
                assert_eq!(frame.ext("absent").expect("ok"), None);
                let (fields_head, values) = frame
                    .fields(["queueId", "absent", "msgId"])
                    .expect("fields");
                assert_eq!(fields_head, head);
                assert_eq!(
                    values,
                    [
                        Some(&b"3"[..]),
                        None,
                        Some(&b"7F00000100002A9F0000000000000000"[..])
                    ]
                );
                assert!(next_frame(&bytes[..bytes.len() - 1], &limits)
                    .expect("valid so far")
                    .is_none());
            }
        }
    }

    #[test]
    fn quote_search_finds_the_first_quote_or_backslash_at_any_position() {
        for length in 0..40 {
            for position in 0..=length {
                for special in [b'"', b'\\'] {
                    let mut text = vec![b'a'; length];
                    if position < length {
                        text[position] = special;
                        // A later special must not hide the first one.
                        if position + 3 < length {
                            text[position + 3] = b'"';
                        }
                    }
                    let expected = (position < length).then_some(position);
                    assert_eq!(next_quote_or_backslash(&text, 0), expected);
                }
            }
        }
        assert_eq!(next_quote_or_backslash(b"\"xyz", 1), None);
    }

    #[test]
    fn a_request_without_ext_fields_reads() {
        let mut command = RemotingCommand::request(RequestCode::HeartBeat, ExtFields::new());
        command.opaque = 9;
        let bytes = encode_to_bytes(&command).expect("encodes");
        let frame = next_frame(&bytes, &FrameLimits::default())
            .expect("valid")
            .expect("whole");
        assert_eq!(frame.head().expect("head").opaque, 9);
        assert_eq!(frame.ext("e").expect("ok"), None);
    }

    #[test]
    fn malformed_headers_are_errors_not_panics() {
        for header in [
            &b""[..],
            b"{",
            b"{\"code\":",
            b"{\"code\":[1]}",
            b"{\"code\":1,}",
            b"{\"code\":1} x",
            b"{\"a\":{\"b\":{}}}",
            b"{\"code\":\"x\"}",
        ] {
            assert!(
                json_head(header).is_err(),
                "{:?}",
                String::from_utf8_lossy(header)
            );
        }
        assert!(json_head(b"{\"extFields\":{},\"code\":1}").is_ok());
        let mut binary = vec![0_u8; HEADER_SIZE_MIN];
        binary[20] = 9; // ext_len 9 with nothing after it
        assert!(binary_ext(&binary, b"e").is_err());
        assert!(binary_head(&binary[..5]).is_err());
        binary[13] = 0xFF; // negative remark length
        assert!(binary_ext(&binary, b"e").is_err());
    }
}
