//! ROCKETMQ binary header encoding (serialize type 1, PROTOCOL.md §1.5): the header bytes only,
//! never the frame words or the body.
//!
//! Layout (big-endian): `code i16, language u8, version i16, opaque i32, flag i32,
//! remark_len i32, remark, ext_len i32, ext entries (key_len i16, key, val_len i32, val)`.
//! As in Java, a zero-length string reads as null: an empty remark is `None`, and an entry with
//! an empty key or value is dropped (Java's header decoder would see a null field). `code` and
//! `version` are 16 bits here: encoding keeps their low 16 bits, decoding sign-extends.
//! Must never: read past the header, trust a length before checking it against the bytes that
//! remain (checked arithmetic, negative lengths rejected), or exceed the limits in
//! [`limits`](super::limits). All error offsets are relative to the start of the header.

use bytes::BytesMut;

use super::codes::{LanguageCode, SerializeType};
use super::command::{ExtFields, RemotingCommand};
use super::error::CodecError;
use super::limits::{EXT_FIELDS_COUNT_MAX, REMARK_SIZE_MAX};

/// Bytes before the remark: code 2, language 1, version 2, opaque 4, flag 4, `remark_len` 4.
pub const FIXED_PART_SIZE: usize = 2 + 1 + 2 + 4 + 4 + 4;
/// Smallest header: the fixed part plus `ext_len`.
pub const HEADER_SIZE_MIN: usize = FIXED_PART_SIZE + 4;
/// Longest extFields key: its length is an i16.
pub const EXT_KEY_SIZE_MAX: usize = i16::MAX as usize;

const _: () = assert!(
    HEADER_SIZE_MIN == 21,
    "PROTOCOL.md §1.5: fixed part is 21 bytes"
);

/// Decodes a binary header (no body). `serialize_type` is set to ROCKETMQ and `body` left
/// empty; [`frame`](super::frame) fills it.
///
/// # Errors
/// [`CodecError::Truncated`] when a field or string runs past the header,
/// [`CodecError::Length`] for a negative length, a remark over [`REMARK_SIZE_MAX`] or bytes
/// left over after the ext section, [`CodecError::TooMany`] for more than
/// [`EXT_FIELDS_COUNT_MAX`] entries, [`CodecError::Utf8`] for text that is not UTF-8.
pub fn decode(header: &[u8]) -> Result<RemotingCommand, CodecError> {
    let mut reader = Reader::new(header, 0);
    let code = reader.i16("code")?;
    let language = reader.u8("language")?;
    let version = reader.i16("version")?;
    let opaque = reader.i32("opaque")?;
    let flag = reader.i32("flag")?;
    let remark = reader.string_i32_len("remark", REMARK_SIZE_MAX)?;
    let ext_len = reader.length_i32("extFields", usize::MAX)?;
    let ext_offset = reader.position;
    let ext_bytes = reader.bytes("extFields", ext_len)?;
    let ext_fields = decode_ext_fields(ext_bytes, ext_offset)?;
    if reader.remaining() != 0 {
        return Err(CodecError::Length {
            what: "bytes after extFields",
            offset: reader.position,
            len: i64::try_from(reader.remaining()).unwrap_or(i64::MAX),
            max: 0,
        });
    }
    Ok(RemotingCommand {
        code: i32::from(code),
        language: LanguageCode::from_code(language),
        version: i32::from(version),
        opaque,
        flag,
        remark: remark.map(str::to_owned),
        ext_fields,
        serialize_type: SerializeType::RocketMq,
        ..RemotingCommand::default()
    })
}

/// Decodes the ext section: entries back to back, filling it exactly.
fn decode_ext_fields(section: &[u8], section_offset: usize) -> Result<ExtFields, CodecError> {
    let mut reader = Reader::new(section, section_offset);
    // The section's text fits in an arena of its size: no reallocation while filling it.
    let mut fields = ExtFields::with_text_capacity(section.len(), 16);
    let mut count = 0_usize;
    while reader.remaining() > 0 {
        count += 1;
        if count > EXT_FIELDS_COUNT_MAX {
            return Err(CodecError::TooMany {
                what: "extFields entries",
                count,
                max: EXT_FIELDS_COUNT_MAX,
            });
        }
        let key_len = reader.length_i16("extFields key", EXT_KEY_SIZE_MAX)?;
        let key = reader.string("extFields key", key_len)?;
        let value = reader.string_i32_len("extFields value", usize::MAX)?;
        // Zero-length key or value = null in Java: the field is absent. Duplicates: last wins.
        if let (Some(key), Some(value)) = (key, value) {
            fields.insert(key, value);
        }
    }
    Ok(fields)
}

/// Appends the binary header of `command` to `out`. Entries are written in key order (the
/// `BTreeMap` order), so the output is deterministic. On error `out` is left as it was.
///
/// # Errors
/// [`CodecError::Encode`] when the remark, a key, a value or the ext section is too long for
/// its length field (key over [`EXT_KEY_SIZE_MAX`] bytes, others over `i32::MAX`).
///
/// # Panics
/// Only if the bytes written differ from [`encoded_size`], which would be a bug here.
pub fn encode(command: &RemotingCommand, out: &mut BytesMut) -> Result<(), CodecError> {
    // Every length is checked before a byte is written, so a failure leaves `out` untouched.
    let remark = command.remark.as_deref().unwrap_or("");
    let remark_len = length_i32("remark", remark.len())?;
    let mut ext_size = 0;
    for (key, value) in command.ext_fields.iter_bytes() {
        if key.len() > EXT_KEY_SIZE_MAX {
            return Err(CodecError::Encode {
                what: "extFields key",
                detail: format!("{} bytes, max {EXT_KEY_SIZE_MAX}", key.len()),
            });
        }
        length_i32("extFields value", value.len())?;
        ext_size += ext_entry_size(key, value);
    }
    let size = HEADER_SIZE_MIN + remark.len() + ext_size;
    let ext_len = length_i32("extFields", size - HEADER_SIZE_MIN - remark.len())?;
    let start = out.len();
    out.resize(start + size, 0);
    let mut writer = SliceWriter {
        buf: &mut out[start..],
        position: 0,
    };
    // Java writes `(short) code`: the low 16 bits, so 5.x POP codes are garbled (§1.5).
    writer.put(&low_16_bits(command.code).to_be_bytes());
    writer.put(&[command.language.code()]);
    writer.put(&low_16_bits(command.version).to_be_bytes());
    writer.put(&command.opaque.to_be_bytes());
    writer.put(&command.flag.to_be_bytes());
    writer.put(&remark_len.to_be_bytes());
    writer.put(remark.as_bytes());
    writer.put(&ext_len.to_be_bytes());
    for (key, value) in command.ext_fields.iter_bytes() {
        // Both lengths were checked above.
        let key_len = i16::try_from(key.len()).expect("key length checked");
        let value_len = i32::try_from(value.len()).expect("value length checked");
        writer.put(&key_len.to_be_bytes());
        writer.put(key);
        writer.put(&value_len.to_be_bytes());
        writer.put(value);
    }
    assert_eq!(
        writer.position, size,
        "binary header size computed != written"
    );
    Ok(())
}

/// Exact number of bytes [`encode`] appends for `command` (when it succeeds).
#[must_use]
pub fn encoded_size(command: &RemotingCommand) -> usize {
    let remark = command.remark.as_ref().map_or(0, String::len);
    let ext: usize = command
        .ext_fields
        .iter_bytes()
        .map(|(key, value)| ext_entry_size(key, value))
        .sum();
    HEADER_SIZE_MIN + remark + ext
}

/// Bytes of one ext entry: i16 key length, key, i32 value length, value.
fn ext_entry_size(key: &[u8], value: &[u8]) -> usize {
    2 + key.len() + 4 + value.len()
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
}

/// The low 16 bits of `value`, as Java's `(short)` cast keeps them.
fn low_16_bits(value: i32) -> u16 {
    // Masked to 16 bits first, so the conversion cannot fail.
    u16::try_from(value & 0xFFFF).expect("masked to 16 bits")
}

fn length_i32(what: &'static str, len: usize) -> Result<i32, CodecError> {
    i32::try_from(len).map_err(|_| CodecError::Encode {
        what,
        detail: format!("{len} bytes does not fit an i32 length"),
    })
}

/// Bounds-checked big-endian reader over a header slice. `base` is the slice's offset in the
/// header, for error messages.
struct Reader<'a> {
    bytes: &'a [u8],
    base: usize,
    position: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8], base: usize) -> Self {
        Self {
            bytes,
            base,
            position: base,
        }
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - (self.position - self.base)
    }

    /// Takes `len` bytes, or reports how many were missing.
    fn bytes(&mut self, what: &'static str, len: usize) -> Result<&'a [u8], CodecError> {
        let have = self.remaining();
        if len > have {
            return Err(CodecError::Truncated {
                what,
                offset: self.position,
                need: len,
                have,
            });
        }
        let local = self.position - self.base;
        self.position += len;
        Ok(&self.bytes[local..local + len])
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], CodecError> {
        let slice = self.bytes(what, N)?;
        let mut array = [0_u8; N];
        array.copy_from_slice(slice);
        Ok(array)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, CodecError> {
        Ok(self.array::<1>(what)?[0])
    }

    fn i16(&mut self, what: &'static str) -> Result<i16, CodecError> {
        Ok(i16::from_be_bytes(self.array(what)?))
    }

    fn i32(&mut self, what: &'static str) -> Result<i32, CodecError> {
        Ok(i32::from_be_bytes(self.array(what)?))
    }

    /// Validates a declared length read at `field_offset`: not negative, not over `max`, not
    /// past the bytes left.
    fn check_length(
        &self,
        what: &'static str,
        field_offset: usize,
        len: i64,
        max: usize,
    ) -> Result<usize, CodecError> {
        let have = self.remaining();
        match usize::try_from(len) {
            Ok(len) if len <= max && len <= have => Ok(len),
            Ok(len) if len <= max => Err(CodecError::Truncated {
                what,
                offset: self.position,
                need: len,
                have,
            }),
            _ => Err(CodecError::Length {
                what,
                offset: field_offset,
                len,
                max: max.min(have),
            }),
        }
    }

    /// Reads an i16 length and validates it with [`Self::check_length`].
    fn length_i16(&mut self, what: &'static str, max: usize) -> Result<usize, CodecError> {
        let field_offset = self.position;
        let len = self.i16(what)?;
        self.check_length(what, field_offset, i64::from(len), max)
    }

    /// Reads an i32 length and validates it with [`Self::check_length`].
    fn length_i32(&mut self, what: &'static str, max: usize) -> Result<usize, CodecError> {
        let field_offset = self.position;
        let len = self.i32(what)?;
        self.check_length(what, field_offset, i64::from(len), max)
    }

    /// Reads `len` bytes of UTF-8; zero length is `None` (Java null).
    fn string(&mut self, what: &'static str, len: usize) -> Result<Option<&'a str>, CodecError> {
        let offset = self.position;
        let bytes = self.bytes(what, len)?;
        if bytes.is_empty() {
            return Ok(None);
        }
        let text = std::str::from_utf8(bytes).map_err(|_| CodecError::Utf8 { what, offset })?;
        Ok(Some(text))
    }

    /// Reads an i32 length, then that many bytes of UTF-8.
    fn string_i32_len(
        &mut self,
        what: &'static str,
        max: usize,
    ) -> Result<Option<&'a str>, CodecError> {
        let len = self.length_i32(what, max)?;
        self.string(what, len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode_to_vec(command: &RemotingCommand) -> Vec<u8> {
        let mut out = BytesMut::new();
        encode(command, &mut out).expect("encodable");
        assert_eq!(out.len(), encoded_size(command));
        out.to_vec()
    }

    /// A header with the given remark and ext section bytes, everything else fixed.
    fn header_with(remark: &[u8], remark_len: i32, ext: &[u8], ext_len: i32) -> Vec<u8> {
        let mut header = vec![0, 10, 12, 1, 0xDF, 0, 0, 0, 7, 0, 0, 0, 0];
        header.extend_from_slice(&remark_len.to_be_bytes());
        header.extend_from_slice(remark);
        header.extend_from_slice(&ext_len.to_be_bytes());
        header.extend_from_slice(ext);
        header
    }

    #[test]
    fn decodes_minimal_header() {
        let header = header_with(b"", 0, b"", 0);
        assert_eq!(header.len(), HEADER_SIZE_MIN);
        let command = decode(&header).expect("valid");
        assert_eq!(command.code, 10);
        assert_eq!(command.language, LanguageCode::Rust);
        assert_eq!(command.version, 479);
        assert_eq!(command.opaque, 7);
        assert_eq!(command.flag, 0);
        assert_eq!(command.remark, None);
        assert!(command.ext_fields.is_empty());
        assert_eq!(command.serialize_type, SerializeType::RocketMq);
    }

    #[test]
    fn code_and_version_keep_low_16_bits_and_sign_extend() {
        let command = RemotingCommand {
            code: 200_050, // 0x30D72: low 16 bits 0x0D72 = 3442
            version: -2,
            ..RemotingCommand::default()
        };
        let bytes = encode_to_vec(&command);
        assert_eq!(&bytes[0..2], &[0x0D, 0x72]);
        assert_eq!(&bytes[3..5], &[0xFF, 0xFE]);
        let decoded = decode(&bytes).expect("valid");
        assert_eq!(decoded.code, 3442);
        assert_eq!(decoded.version, -2);
        let negative = decode(&[
            0xFF, 0xFF, 0, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ])
        .expect("valid");
        assert_eq!(negative.code, -1);
        assert_eq!(negative.version, i32::from(i16::MIN));
    }

    #[test]
    fn empty_strings_read_as_null() {
        let command = RemotingCommand {
            remark: Some(String::new()),
            ext_fields: [("k", ""), ("", "v"), ("kept", "x")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            ..RemotingCommand::default()
        };
        let decoded = decode(&encode_to_vec(&command)).expect("valid");
        assert_eq!(decoded.remark, None);
        assert_eq!(decoded.ext_fields.len(), 1);
        assert_eq!(decoded.ext("kept"), Some("x"));
    }

    #[test]
    fn duplicate_keys_keep_the_last() {
        let mut ext = Vec::new();
        for value in [b"1", b"2"] {
            ext.extend_from_slice(&[0, 1, b'k', 0, 0, 0, 1]);
            ext.extend_from_slice(value);
        }
        let header = header_with(b"", 0, &ext, i32::try_from(ext.len()).expect("small"));
        assert_eq!(decode(&header).expect("valid").ext("k"), Some("2"));
    }

    #[test]
    fn rejects_every_bad_length() {
        let entry = [0, 1, b'k', 0, 0, 0, 1, b'v'];
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (header_with(b"", -1, b"", 0), "negative remark length"),
            (header_with(b"ab", 3, b"", 0), "remark past the header"),
            (header_with(b"", i32::MAX, b"", 0), "huge remark length"),
            (header_with(b"", 0, b"", -5), "negative ext length"),
            (header_with(b"", 0, &entry, 9), "ext length past the header"),
            (
                header_with(b"", 0, &entry, 7),
                "ext section ends inside an entry",
            ),
            (
                header_with(b"", 0, &[0xFF, 0xFF, b'k'], 3),
                "negative key length",
            ),
            (
                header_with(b"", 0, &[0, 5, b'k'], 3),
                "key past the section",
            ),
            (
                header_with(b"", 0, &[0, 1, b'k', 0xFF, 0xFF, 0xFF, 0xFF], 7),
                "negative value",
            ),
            (
                header_with(b"", 0, &[0, 1, b'k', 0, 0, 0, 9, b'v'], 8),
                "value past the section",
            ),
            (
                header_with(b"", 0, &[0, 1, b'k', 0, 0], 5),
                "value length cut",
            ),
            (
                header_with(b"", 0, &entry, 8)[..20].to_vec(),
                "fixed part cut",
            ),
            (
                [header_with(b"", 0, b"", 0), vec![0]].concat(),
                "trailing byte",
            ),
            (header_with(&[0xC3], 1, b"", 0), "remark not UTF-8"),
            (
                header_with(b"", 0, &[0, 1, 0xFF, 0, 0, 0, 1, b'v'], 8),
                "key not UTF-8",
            ),
        ];
        for (header, why) in cases {
            let err = decode(&header).expect_err(why);
            assert!(
                matches!(
                    err,
                    CodecError::Length { .. }
                        | CodecError::Truncated { .. }
                        | CodecError::Utf8 { .. }
                ),
                "{why}: {err:?}"
            );
        }
        for len in 0..HEADER_SIZE_MIN {
            let header = header_with(b"", 0, b"", 0);
            assert!(matches!(
                decode(&header[..len]),
                Err(CodecError::Truncated { .. })
            ));
        }
    }

    #[test]
    fn remark_limit_and_ext_count_limit() {
        let remark = vec![b'r'; REMARK_SIZE_MAX + 1];
        let len = i32::try_from(remark.len()).expect("small");
        let err = decode(&header_with(&remark, len, b"", 0)).expect_err("too long");
        assert!(
            matches!(
                err,
                CodecError::Length {
                    what: "remark",
                    offset: 13,
                    ..
                }
            ),
            "{err:?}"
        );
        let ok = decode(&header_with(&remark[1..], len - 1, b"", 0)).expect("at the limit");
        assert_eq!(ok.remark.map(|r| r.len()), Some(REMARK_SIZE_MAX));

        let mut ext = Vec::new();
        for index in 0..=EXT_FIELDS_COUNT_MAX {
            let key = format!("k{index:04}");
            ext.extend_from_slice(&i16::try_from(key.len()).expect("small").to_be_bytes());
            ext.extend_from_slice(key.as_bytes());
            ext.extend_from_slice(&[0, 0, 0, 1, b'v']);
        }
        let ext_len = i32::try_from(ext.len()).expect("small");
        let err = decode(&header_with(b"", 0, &ext, ext_len)).expect_err("too many");
        assert!(
            matches!(err, CodecError::TooMany { count, .. } if count == EXT_FIELDS_COUNT_MAX + 1)
        );
    }

    #[test]
    fn encode_rejects_oversized_key_and_leaves_output_untouched() {
        let command = RemotingCommand {
            ext_fields: [("k".repeat(EXT_KEY_SIZE_MAX + 1), "v".to_owned())]
                .into_iter()
                .collect(),
            ..RemotingCommand::default()
        };
        let mut out = BytesMut::from(&b"prefix"[..]);
        let err = encode(&command, &mut out).expect_err("key too long");
        assert!(matches!(
            err,
            CodecError::Encode {
                what: "extFields key",
                ..
            }
        ));
        assert_eq!(&out[..], b"prefix");
    }

    #[test]
    fn round_trips_unicode_and_control_characters() {
        let command = RemotingCommand {
            code: -3,
            language: LanguageCode::NodeJs,
            version: 32_767,
            opaque: i32::MIN,
            flag: i32::MAX,
            remark: Some("ошибка\u{0}\u{1}🎉".into()),
            ext_fields: [("properties", "TAGS\u{1}A\u{2}"), ("中", "\n\"\\")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            serialize_type: SerializeType::RocketMq,
            ..RemotingCommand::default()
        };
        assert_eq!(decode(&encode_to_vec(&command)).expect("valid"), command);
    }
}
