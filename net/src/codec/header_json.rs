//! JSON header encoding (serialize type 0, PROTOCOL.md §1.4): the header bytes only, never the
//! frame words or the body.
//!
//! Decoding is lenient, as fastjson is: keys in any order, unknown keys ignored, `remark` and
//! `extFields` absent or `null`, `language` as a name or an ordinal, extFields scalars that are
//! JSON numbers or booleans (ali-ons) turned into their text, integer fields also accepted as
//! numeric strings. It runs a typed serde visitor over the bytes (no `serde_json::Value` tree).
//! Encoding writes compact JSON straight into the caller's `BytesMut`, keys in fastjson's
//! alphabetical order. Must never: panic on input, or accept more extFields entries or a longer
//! remark than [`limits`](super::limits) allows.

use std::fmt;

use std::borrow::Cow;

use bytes::BytesMut;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::codes::LanguageCode;
use super::command::{ExtFields, RemotingCommand};
use super::error::CodecError;
use super::limits::{EXT_FIELDS_COUNT_MAX, REMARK_SIZE_MAX};

mod fast;

/// Decodes a JSON header (no body). `serialize_type` is set to JSON and `body` left empty;
/// [`frame`](super::frame) fills them. The common shape takes the scanner in [`fast`];
/// anything else (and every error) goes through the serde decoder.
///
/// # Errors
/// [`CodecError::Json`] for malformed JSON or a field of the wrong type,
/// [`CodecError::TooMany`] for more than [`EXT_FIELDS_COUNT_MAX`] extFields entries,
/// [`CodecError::Length`] for a remark longer than [`REMARK_SIZE_MAX`] bytes.
pub fn decode(header: &[u8]) -> Result<RemotingCommand, CodecError> {
    match fast::decode(header) {
        Some(command) => Ok(command),
        None => decode_with_serde(header),
    }
}

/// The lenient serde decoder: every input the fast path declines, and the reference the fast
/// path is tested against.
fn decode_with_serde(header: &[u8]) -> Result<RemotingCommand, CodecError> {
    let mut limit_error = None;
    let mut deserializer = serde_json::Deserializer::from_slice(header);
    let parsed = HeaderSeed {
        limit_error: &mut limit_error,
    }
    .deserialize(&mut deserializer)
    .and_then(|command| deserializer.end().map(|()| command));
    match (parsed, limit_error) {
        (Ok(command), None) => Ok(command),
        // A limit was hit: the visitor stopped parsing with a placeholder serde error.
        (Err(err), Some(limit)) => Err(with_offset(limit, err.column().saturating_sub(1))),
        (Ok(_), Some(limit)) => Err(limit),
        (Err(err), None) => Err(CodecError::json("header", &err)),
    }
}

/// Fills the parser's position into a limit error (the visitor does not know it). The
/// position is the column on the error's line: real headers are a single line.
fn with_offset(error: CodecError, position: usize) -> CodecError {
    match error {
        CodecError::Length { what, len, max, .. } => CodecError::Length {
            what,
            offset: position,
            len,
            max,
        },
        other => other,
    }
}

/// Appends the JSON header of `command` to `out`: compact, keys in the order fastjson writes
/// them (code, extFields, flag, language, opaque, remark, serializeTypeCurrentRPC, version),
/// `extFields` left out when empty and `remark` when `None`.
///
/// The exact size is computed first, so `out` grows once and the text is written into a plain
/// slice (cheaper than one `BufMut` call per piece).
///
/// # Errors
/// Never: every `RemotingCommand` has a JSON form. The `Result` matches
/// [`header_binary::encode`](super::header_binary::encode).
///
/// # Panics
/// Only if the bytes written differ from the size computed, which would be a bug here.
pub fn encode(command: &RemotingCommand, out: &mut BytesMut) -> Result<(), CodecError> {
    let code = Decimal::new(command.code);
    let flag = Decimal::new(command.flag);
    let opaque = Decimal::new(command.opaque);
    let version = Decimal::new(command.version);
    let language = command.language.name().as_bytes();
    let size = encoded_size(command, [&code, &flag, &opaque, &version], language);
    let start = out.len();
    out.resize(start + size, 0);
    let mut writer = SliceWriter {
        buf: &mut out[start..],
        position: 0,
    };
    writer.put(KEY_CODE);
    writer.put(code.as_bytes());
    if !command.ext_fields.is_empty() {
        writer.put(KEY_EXT_FIELDS);
        for (index, (key, value)) in command.ext_fields.iter_bytes().enumerate() {
            if index > 0 {
                writer.put(b",");
            }
            writer.put_json_string(key);
            writer.put(b":");
            writer.put_json_string(value);
        }
        writer.put(b"}");
    }
    writer.put(KEY_FLAG);
    writer.put(flag.as_bytes());
    writer.put(KEY_LANGUAGE);
    // Language names are plain ASCII capitals and underscores: nothing to escape.
    writer.put(language);
    writer.put(KEY_OPAQUE);
    writer.put(opaque.as_bytes());
    if let Some(remark) = &command.remark {
        writer.put(KEY_REMARK);
        writer.put_json_string(remark.as_bytes());
    }
    writer.put(KEY_SERIALIZE_TYPE_VERSION);
    writer.put(version.as_bytes());
    writer.put(b"}");
    assert_eq!(
        writer.position, size,
        "JSON header size computed != written"
    );
    Ok(())
}

/// The fixed text between values, in output order. `SerializeType::Json.name()` is `JSON`.
const KEY_CODE: &[u8] = b"{\"code\":";
const KEY_EXT_FIELDS: &[u8] = b",\"extFields\":{";
const KEY_FLAG: &[u8] = b",\"flag\":";
const KEY_LANGUAGE: &[u8] = b",\"language\":\"";
const KEY_OPAQUE: &[u8] = b"\",\"opaque\":";
const KEY_REMARK: &[u8] = b",\"remark\":";
const KEY_SERIALIZE_TYPE_VERSION: &[u8] = b",\"serializeTypeCurrentRPC\":\"JSON\",\"version\":";

/// Exact number of bytes [`encode`] writes for `command`.
fn encoded_size(command: &RemotingCommand, numbers: [&Decimal; 4], language: &[u8]) -> usize {
    let fixed = KEY_CODE.len()
        + KEY_FLAG.len()
        + KEY_LANGUAGE.len()
        + language.len()
        + KEY_OPAQUE.len()
        + KEY_SERIALIZE_TYPE_VERSION.len()
        + 1; // closing brace
    let numbers: usize = numbers.iter().map(|number| number.as_bytes().len()).sum();
    let ext = if command.ext_fields.is_empty() {
        0
    } else {
        let entries: usize = command
            .ext_fields
            .iter_bytes()
            .map(|(key, value)| json_string_size(key) + 1 + json_string_size(value))
            .sum();
        // Key, entries, commas between them, closing brace.
        KEY_EXT_FIELDS.len() + entries + (command.ext_fields.len() - 1) + 1
    };
    let remark = command.remark.as_ref().map_or(0, |remark| {
        KEY_REMARK.len() + json_string_size(remark.as_bytes())
    });
    fixed + numbers + ext + remark
}

/// The decimal text of an `i32`, formatted once on the stack.
struct Decimal {
    digits: [u8; 11],
    start: usize,
}

impl Decimal {
    fn new(value: i32) -> Self {
        let mut digits = [0_u8; 11];
        let mut magnitude = value.unsigned_abs();
        let mut start = digits.len();
        loop {
            start -= 1;
            // `magnitude % 10` is below 10, so the cast cannot truncate.
            digits[start] = b'0' + (magnitude % 10) as u8;
            magnitude /= 10;
            if magnitude == 0 {
                break;
            }
        }
        if value < 0 {
            start -= 1;
            digits[start] = b'-';
        }
        Self { digits, start }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.digits[self.start..]
    }
}

/// What to write for each byte: 0 = itself, `u` = `\u00XX`, anything else = backslash + it.
/// The same choices as `serde_json` (and fastjson for the characters RocketMQ uses).
const ESCAPES: [u8; 256] = {
    let mut table = [0_u8; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = b'u';
        byte += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0A] = b'n';
    table[0x0C] = b'f';
    table[0x0D] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

/// Bytes `byte` takes once escaped.
fn escaped_size(byte: u8) -> usize {
    match ESCAPES[usize::from(byte)] {
        0 => 1,
        b'u' => 6,
        _ => 2,
    }
}

/// Bytes of `bytes` (UTF-8 text) as a quoted JSON string.
fn json_string_size(bytes: &[u8]) -> usize {
    let mut size = bytes.len() + 2;
    let mut from = 0;
    while let Some(index) = next_special(bytes, from) {
        size += escaped_size(bytes[index]) - 1;
        from = index + 1;
    }
    size
}

/// Index of the first byte at or after `from` that needs escaping. Skips 8 plain bytes per
/// step (SWAR, no `unsafe`): most header text has nothing to escape, and the properties
/// string has plain runs between its `\u0001`/`\u0002` separators.
fn next_special(bytes: &[u8], from: usize) -> Option<usize> {
    let mut index = from;
    while let Some(chunk) = bytes.get(index..index + 8) {
        let word = u64::from_le_bytes(chunk.try_into().expect("a range of 8 bytes"));
        let bits = escape_bits(word);
        if bits != 0 {
            // The lowest flagged byte is always a real match (false positives only appear
            // above a real one); its flag is its high bit, 8 bits per byte.
            return Some(index + bits.trailing_zeros() as usize / 8);
        }
        index += 8;
    }
    bytes
        .get(index..)?
        .iter()
        .position(|&byte| ESCAPES[usize::from(byte)] != 0)
        .map(|offset| index + offset)
}

/// High bit set in each byte of `word` that is below 0x20, a `"` or a `\` (the classic
/// "has zero byte" / "has byte less than n" bit tricks, little-endian). Exact as a yes/no
/// answer and for the lowest flagged byte; a byte above a real match may be flagged falsely.
fn escape_bits(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let control = word.wrapping_sub(ONES * 0x20) & !word;
    let quote = word ^ (ONES * u64::from(b'"'));
    let backslash = word ^ (ONES * u64::from(b'\\'));
    let quote = quote.wrapping_sub(ONES) & !quote;
    let backslash = backslash.wrapping_sub(ONES) & !backslash;
    (control | quote | backslash) & HIGHS
}

/// Writes into a slice sized in advance; indexing panics (a bug) rather than overruns.
struct SliceWriter<'a> {
    buf: &'a mut [u8],
    position: usize,
}

impl SliceWriter<'_> {
    fn put(&mut self, bytes: &[u8]) {
        let end = self.position + bytes.len();
        self.buf[self.position..end].copy_from_slice(bytes);
        self.position = end;
    }

    /// Writes `bytes` (UTF-8 text) as a quoted JSON string, copying unescaped runs in one
    /// slice each.
    fn put_json_string(&mut self, bytes: &[u8]) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        self.put(b"\"");
        let mut run_start = 0;
        while let Some(index) = next_special(bytes, run_start) {
            self.put(&bytes[run_start..index]);
            let byte = bytes[index];
            let escape = ESCAPES[usize::from(byte)];
            if escape == b'u' {
                self.put(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(byte >> 4)],
                    HEX[usize::from(byte & 0x0F)],
                ]);
            } else {
                self.put(&[b'\\', escape]);
            }
            run_start = index + 1;
        }
        self.put(&bytes[run_start..]);
        self.put(b"\"");
    }
}

/// The top-level keys we read; everything else is skipped.
enum Key {
    Code,
    Language,
    Version,
    Opaque,
    Flag,
    Remark,
    ExtFields,
    Ignored,
}

impl<'de> de::Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_identifier(KeyVisitor)
    }
}

struct KeyVisitor;

impl Visitor<'_> for KeyVisitor {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a header key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
        Ok(match key {
            "code" => Key::Code,
            "language" => Key::Language,
            "version" => Key::Version,
            "opaque" => Key::Opaque,
            "flag" => Key::Flag,
            "remark" => Key::Remark,
            "extFields" => Key::ExtFields,
            _ => Key::Ignored,
        })
    }
}

/// Parses the header object. Limit violations are stored in `limit_error` (serde errors
/// cannot carry a `CodecError`), and parsing stops with a placeholder error.
struct HeaderSeed<'a> {
    limit_error: &'a mut Option<CodecError>,
}

impl<'de> DeserializeSeed<'de> for HeaderSeed<'_> {
    type Value = RemotingCommand;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for HeaderSeed<'_> {
    type Value = RemotingCommand;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a RemotingCommand header object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut command = RemotingCommand::default();
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Code => command.code = map.next_value::<LenientI32>()?.0,
                Key::Version => command.version = map.next_value::<LenientI32>()?.0,
                Key::Opaque => command.opaque = map.next_value::<LenientI32>()?.0,
                Key::Flag => command.flag = map.next_value::<LenientI32>()?.0,
                Key::Language => {
                    if let Some(language) = map.next_value::<Language>()?.0 {
                        command.language = language;
                    }
                }
                Key::Remark => {
                    let remark = map.next_value::<Option<String>>()?;
                    if let Some(len) = remark.as_ref().map(String::len) {
                        if len > REMARK_SIZE_MAX {
                            *self.limit_error = Some(CodecError::Length {
                                what: "remark",
                                offset: 0,
                                len: i64::try_from(len).unwrap_or(i64::MAX),
                                max: REMARK_SIZE_MAX,
                            });
                            return Err(de::Error::custom("remark too long"));
                        }
                    }
                    command.remark = remark;
                }
                Key::ExtFields => {
                    command.ext_fields = map.next_value_seed(ExtFieldsSeed {
                        limit_error: &mut *self.limit_error,
                    })?;
                }
                Key::Ignored => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(command)
    }
}

/// An `i32` given as a JSON integer or a numeric string (fastjson accepts both); `null` is 0.
struct LenientI32(i32);

impl<'de> de::Deserialize<'de> for LenientI32 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(LenientI32Visitor)
    }
}

struct LenientI32Visitor;

impl Visitor<'_> for LenientI32Visitor {
    type Value = LenientI32;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a 32-bit integer")
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<LenientI32, E> {
        i32::try_from(value)
            .map(LenientI32)
            .map_err(|_| E::invalid_value(de::Unexpected::Signed(value), &self))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<LenientI32, E> {
        i32::try_from(value)
            .map(LenientI32)
            .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(value), &self))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<LenientI32, E> {
        value
            .trim()
            .parse()
            .map(LenientI32)
            .map_err(|_| E::invalid_value(de::Unexpected::Str(value), &self))
    }

    fn visit_unit<E: de::Error>(self) -> Result<LenientI32, E> {
        Ok(LenientI32(0))
    }
}

/// `language` as an enum name or an ordinal; unknown values become `OTHER`, `null` is `None`.
struct Language(Option<LanguageCode>);

impl<'de> de::Deserialize<'de> for Language {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(LanguageVisitor)
    }
}

struct LanguageVisitor;

impl Visitor<'_> for LanguageVisitor {
    type Value = Language;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a language name or ordinal")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<Language, E> {
        Ok(Language(Some(LanguageCode::from_name(name))))
    }

    fn visit_u64<E: de::Error>(self, ordinal: u64) -> Result<Language, E> {
        let code = u8::try_from(ordinal).unwrap_or(LanguageCode::Other.code());
        Ok(Language(Some(LanguageCode::from_code(code))))
    }

    fn visit_i64<E: de::Error>(self, ordinal: i64) -> Result<Language, E> {
        let code = u8::try_from(ordinal).unwrap_or(LanguageCode::Other.code());
        Ok(Language(Some(LanguageCode::from_code(code))))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Language, E> {
        Ok(Language(None))
    }
}

/// Parses `extFields` (an object or `null`) and enforces [`EXT_FIELDS_COUNT_MAX`].
struct ExtFieldsSeed<'a> {
    limit_error: &'a mut Option<CodecError>,
}

impl<'de> DeserializeSeed<'de> for ExtFieldsSeed<'_> {
    type Value = ExtFields;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ExtFieldsSeed<'_> {
    type Value = ExtFields;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an extFields object or null")
    }

    fn visit_unit<E: de::Error>(self) -> Result<ExtFields, E> {
        Ok(ExtFields::new())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ExtFields, A::Error> {
        let mut fields = ExtFields::with_capacity(map.size_hint().unwrap_or(16).min(32));
        let mut count = 0_usize;
        while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
            count += 1;
            if count > EXT_FIELDS_COUNT_MAX {
                *self.limit_error = Some(CodecError::TooMany {
                    what: "extFields entries",
                    count,
                    max: EXT_FIELDS_COUNT_MAX,
                });
                return Err(de::Error::custom("too many extFields entries"));
            }
            // Duplicate keys: the last one wins, as in fastjson's HashMap.
            if let Some(value) = map.next_value::<ExtValue>()?.0 {
                fields.insert(key, value);
            } else {
                fields.remove(&key);
            }
        }
        Ok(fields)
    }
}

/// A string key, borrowed from the input when it had no escapes.
struct Text<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(TextVisitor)
    }
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Text<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, value: &'de str) -> Result<Text<'de>, E> {
        Ok(Text(Cow::Borrowed(value)))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Text<'de>, E> {
        Ok(Text(Cow::Owned(value.to_owned())))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Text<'de>, E> {
        Ok(Text(Cow::Owned(value)))
    }
}

/// One extFields value as text: strings as they are, numbers and booleans as their JSON text
/// (ali-ons sends `"d":4,"k":false`), `null` as absent. Objects and arrays are rejected.
struct ExtValue<'de>(Option<Cow<'de, str>>);

impl<'de> de::Deserialize<'de> for ExtValue<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ExtValueVisitor)
    }
}

struct ExtValueVisitor;

impl<'de> Visitor<'de> for ExtValueVisitor {
    type Value = ExtValue<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, number, boolean or null extFields value")
    }

    fn visit_borrowed_str<E: de::Error>(self, value: &'de str) -> Result<Self::Value, E> {
        Ok(ExtValue(Some(Cow::Borrowed(value))))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
        Ok(ExtValue(Some(Cow::Owned(value.to_owned()))))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Self::Value, E> {
        Ok(ExtValue(Some(Cow::Owned(value))))
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Self::Value, E> {
        Ok(ExtValue(Some(Cow::Borrowed(if value {
            "true"
        } else {
            "false"
        }))))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
        Ok(ExtValue(Some(Cow::Owned(value.to_string()))))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
        Ok(ExtValue(Some(Cow::Owned(value.to_string()))))
    }

    /// Fractions are not used by any header field; Rust's shortest round-trip text is kept.
    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Self::Value, E> {
        Ok(ExtValue(Some(Cow::Owned(value.to_string()))))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(ExtValue(None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::codes::SerializeType;

    fn encode_to_string(command: &RemotingCommand) -> String {
        let mut out = BytesMut::new();
        encode(command, &mut out).expect("JSON encode never fails");
        String::from_utf8(out.to_vec()).expect("JSON output is UTF-8")
    }

    #[test]
    fn decodes_ali_ons_numbers_and_booleans_as_text() {
        let header = br#"{"code":310,"language":"JAVA","opaque":2,"flag":0,"version":121,
            "extFields":{"a":"pg","d":4,"g":1795307075074,"k":false,"n":null,"x":-3,"y":1.5}}"#;
        let command = decode(header).expect("valid header");
        assert_eq!(command.code, 310);
        assert_eq!(command.opaque, 2);
        assert_eq!(command.version, 121);
        assert_eq!(command.language, LanguageCode::Java);
        assert_eq!(command.remark, None);
        assert_eq!(command.ext("a"), Some("pg"));
        assert_eq!(command.ext("d"), Some("4"));
        assert_eq!(command.ext("g"), Some("1795307075074"));
        assert_eq!(command.ext("k"), Some("false"));
        assert_eq!(command.ext("n"), None, "null values are dropped");
        assert_eq!(command.ext("x"), Some("-3"));
        assert_eq!(command.ext("y"), Some("1.5"));
        assert_eq!(command.ext_fields.len(), 6);
    }

    #[test]
    fn accepts_absent_and_null_optional_fields_unknown_keys_and_trailing_newline() {
        let header = b"{\"version\":63,\"remark\":null,\"extFields\":null,\"code\":105,\
            \"serializeTypeCurrentRPC\":\"JSON\",\"nested\":{\"a\":[1,{}]},\"opaque\":7}\n";
        let command = decode(header).expect("valid header");
        assert_eq!(command.code, 105);
        assert_eq!(command.version, 63);
        assert_eq!(command.opaque, 7);
        assert_eq!(command.flag, 0);
        assert_eq!(command.remark, None);
        assert!(command.ext_fields.is_empty());
        assert_eq!(
            command.language,
            LanguageCode::Java,
            "absent language is the default"
        );
    }

    #[test]
    fn language_by_name_by_ordinal_and_unknown() {
        let by_ordinal = decode(br#"{"code":1,"language":9}"#).expect("valid");
        assert_eq!(by_ordinal.language, LanguageCode::Go);
        let by_name = decode(br#"{"code":1,"language":"NODE_JS"}"#).expect("valid");
        assert_eq!(by_name.language, LanguageCode::NodeJs);
        let unknown = decode(br#"{"code":1,"language":"COBOL"}"#).expect("valid");
        assert_eq!(unknown.language, LanguageCode::Other);
        let out_of_range = decode(br#"{"code":1,"language":4000}"#).expect("valid");
        assert_eq!(out_of_range.language, LanguageCode::Other);
    }

    #[test]
    fn integer_fields_accept_numeric_strings_and_reject_the_rest() {
        let command = decode(br#"{"code":"310","opaque":" -5 ","flag":null}"#).expect("valid");
        assert_eq!(command.code, 310);
        assert_eq!(command.opaque, -5);
        assert_eq!(command.flag, 0);
        for bad in [
            &br#"{"code":2147483648}"#[..],
            br#"{"code":1.5}"#,
            br#"{"code":"ten"}"#,
            br#"{"code":true}"#,
            br#"{"extFields":{"a":[1]}}"#,
            br#"{"extFields":{"a":{}}}"#,
            br#"{"extFields":[]}"#,
            br#"{"remark":5}"#,
            b"[1,2]",
            b"",
            b"{\"code\":1",
            b"{\"code\":1} x",
            b"{\"extFields\":{\"a\":\"\xff\"}}",
        ] {
            let err = decode(bad).expect_err("must be rejected");
            assert!(matches!(err, CodecError::Json { .. }), "{err:?}");
        }
    }

    #[test]
    fn ext_fields_count_limit() {
        let mut header = String::from("{\"extFields\":{");
        for index in 0..EXT_FIELDS_COUNT_MAX {
            header.push_str(&format!("\"k{index}\":\"v\","));
        }
        let at_limit = format!("{}}}}}", header.trim_end_matches(','));
        let command = decode(at_limit.as_bytes()).expect("at the limit is accepted");
        assert_eq!(command.ext_fields.len(), EXT_FIELDS_COUNT_MAX);
        let over = format!("{header}\"last\":\"v\"}}}}");
        let err = decode(over.as_bytes()).expect_err("over the limit");
        assert_eq!(
            err,
            CodecError::TooMany {
                what: "extFields entries",
                count: EXT_FIELDS_COUNT_MAX + 1,
                max: EXT_FIELDS_COUNT_MAX,
            }
        );
    }

    #[test]
    fn remark_size_limit() {
        let at_limit = format!("{{\"remark\":\"{}\"}}", "r".repeat(REMARK_SIZE_MAX));
        let command = decode(at_limit.as_bytes()).expect("at the limit");
        assert_eq!(command.remark.map(|r| r.len()), Some(REMARK_SIZE_MAX));
        let over = format!("{{\"remark\":\"{}\"}}", "r".repeat(REMARK_SIZE_MAX + 1));
        let err = decode(over.as_bytes()).expect_err("over the limit");
        assert!(
            matches!(err, CodecError::Length { what: "remark", offset, len, max }
                if offset > 0 && len == i64::try_from(REMARK_SIZE_MAX + 1).expect("small")
                    && max == REMARK_SIZE_MAX),
            "{err:?}"
        );
    }

    #[test]
    fn encodes_fastjson_key_order_compactly() {
        let mut ext = ExtFields::new();
        ext.insert("topic", "TopicTest");
        ext.insert("queueId", "1");
        let command = RemotingCommand {
            code: 310,
            language: LanguageCode::Rust,
            version: 479,
            opaque: -7,
            flag: 2,
            remark: Some("a\"b\\c\u{1}\n".into()),
            ext_fields: ext,
            ..RemotingCommand::default()
        };
        assert_eq!(
            encode_to_string(&command),
            r#"{"code":310,"extFields":{"queueId":"1","topic":"TopicTest"},"flag":2,"language":"RUST","opaque":-7,"remark":"a\"b\\c\u0001\n","serializeTypeCurrentRPC":"JSON","version":479}"#
        );
        let empty = RemotingCommand::default();
        assert_eq!(
            encode_to_string(&empty),
            r#"{"code":0,"flag":0,"language":"JAVA","opaque":0,"serializeTypeCurrentRPC":"JSON","version":0}"#
        );
    }

    #[test]
    fn escaping_matches_serde_json_for_every_ascii_byte_and_some_unicode() {
        let mut text: String = (0_u8..0x80).map(char::from).collect();
        text.push_str("é中🎉\u{7f}\u{2028}");
        let reference = serde_json::to_string(&text).expect("serde_json encodes strings");
        let mut buf = vec![0_u8; json_string_size(text.as_bytes())];
        let mut writer = SliceWriter {
            buf: &mut buf,
            position: 0,
        };
        writer.put_json_string(text.as_bytes());
        assert_eq!(writer.position, reference.len());
        assert_eq!(buf, reference.as_bytes());
    }

    #[test]
    fn next_special_agrees_with_the_escape_table() {
        let naive = |bytes: &[u8], from: usize| {
            (from..bytes.len()).find(|&i| ESCAPES[usize::from(bytes[i])] != 0)
        };
        // Every byte value at every position of a 19-byte string (two words + remainder),
        // alone and followed by a second special byte, searched from several offsets.
        for position in 0..19 {
            for byte in 0..=u8::MAX {
                for second in [None, Some(0x00), Some(b'"'), Some(0x1F)] {
                    let mut bytes = [b'a'; 19];
                    bytes[position] = byte;
                    if let Some(second) = second {
                        bytes[(position + 3) % 19] = second;
                    }
                    for from in [0, 1, position, 8, 18, 19] {
                        assert_eq!(
                            next_special(&bytes, from),
                            naive(&bytes, from),
                            "byte {byte:#x} at {position}, then {second:?}, from {from}"
                        );
                    }
                }
            }
        }
        assert_eq!(next_special(b"", 0), None);
        assert_eq!(next_special(b"ab", 5), None);
        assert_eq!(json_string_size(b"plain"), 7);
        assert_eq!(json_string_size(b"a\x01\n\""), 2 + 1 + 6 + 2 + 2);
    }

    #[test]
    fn integers_are_written_like_display() {
        for value in [0, 1, -1, 9, 10, -10, 479, i32::MAX, i32::MIN, 1_000_000_000] {
            assert_eq!(Decimal::new(value).as_bytes(), value.to_string().as_bytes());
        }
    }

    #[test]
    fn serialize_type_literal_matches_the_enum() {
        let literal = std::str::from_utf8(KEY_SERIALIZE_TYPE_VERSION).expect("ASCII");
        assert!(literal.contains(&format!("\"{}\"", SerializeType::Json.name())));
    }

    #[test]
    fn round_trips_through_encode() {
        let mut ext = ExtFields::new();
        ext.insert("properties", "TAGS\u{1}TagA\u{2}");
        ext.insert("empty", String::new());
        ext.insert("ключ", "значение\t");
        let command = RemotingCommand {
            code: 200_050,
            language: LanguageCode::Cpp,
            version: -1,
            opaque: i32::MIN,
            flag: 3,
            remark: Some(String::new()),
            ext_fields: ext,
            ..RemotingCommand::default()
        };
        let mut out = BytesMut::new();
        encode(&command, &mut out).expect("encode");
        assert_eq!(decode(&out).expect("decode"), command);
    }
}
