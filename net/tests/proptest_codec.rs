//! Property tests for the frame and header codecs: `decode(encode(x)) == x` for both header
//! encodings, no panic on arbitrary or mutated bytes, limits enforced from the first 8 bytes,
//! and a truncated frame is "incomplete" (`Ok(None)`) at every prefix length.
//! Uses only the public codec API.

use bytes::{Bytes, BytesMut};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::select;
use rmq_net::codec::codes::{LanguageCode, SerializeType};
use rmq_net::codec::error::CodecError;
use rmq_net::codec::frame::{self, FRAME_SIZE_MIN};
use rmq_net::codec::header_json;
use rmq_net::codec::limits::{FrameLimits, EXT_FIELDS_COUNT_MAX};
use rmq_net::{ExtFields, RemotingCommand};

/// Characters biased toward what breaks codecs: JSON escapes, the properties separators
/// `\u{1}`/`\u{2}`, multi-byte UTF-8, and anything else Unicode.
fn tricky_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => proptest::char::range('a', 'z'),
        2 => (0_u8..0x20).prop_map(char::from),
        1 => select(vec!['"', '\\', '/', '\u{7f}', 'é', '中', '🎉', '\u{2028}', '\u{feff}']),
        2 => any::<char>(),
    ]
}

fn text(len_max: usize) -> impl Strategy<Value = String> {
    vec(tricky_char(), 0..=len_max).prop_map(String::from_iter)
}

fn non_empty_text(len_max: usize) -> impl Strategy<Value = String> {
    vec(tricky_char(), 1..=len_max).prop_map(String::from_iter)
}

fn body() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..2048).prop_map(Bytes::from)
}

/// JSON header: every field can take any value it has in Rust.
fn json_command() -> impl Strategy<Value = RemotingCommand> {
    (
        (
            any::<i32>(),
            select(LanguageCode::ALL.to_vec()),
            any::<i32>(),
        ),
        (any::<i32>(), any::<i32>()),
        proptest::option::of(text(40)),
        btree_map(text(12), text(40), 0..16),
        body(),
    )
        .prop_map(
            |((code, language, version), (opaque, flag), remark, ext_fields, body)| {
                RemotingCommand {
                    code,
                    language,
                    version,
                    opaque,
                    flag,
                    remark,
                    ext_fields: ext_fields.into_iter().collect(),
                    body,
                    serialize_type: SerializeType::Json,
                }
            },
        )
}

/// ROCKETMQ binary header, constrained to what the encoding can carry:
/// - `code` and `version` are i16 on the wire (Java writes the low 16 bits, reads them
///   sign-extended), so only values in i16 range survive;
/// - a zero-length string reads back as null (Java), so a remark is `None` or non-empty, and
///   extFields keys and values are non-empty (an empty one would be dropped as null).
fn binary_command() -> impl Strategy<Value = RemotingCommand> {
    (
        (
            any::<i16>(),
            select(LanguageCode::ALL.to_vec()),
            any::<i16>(),
        ),
        (any::<i32>(), any::<i32>()),
        proptest::option::of(non_empty_text(40)),
        btree_map(non_empty_text(12), non_empty_text(40), 0..16),
        body(),
    )
        .prop_map(
            |((code, language, version), (opaque, flag), remark, ext_fields, body)| {
                RemotingCommand {
                    code: i32::from(code),
                    language,
                    version: i32::from(version),
                    opaque,
                    flag,
                    remark,
                    ext_fields: ext_fields.into_iter().collect(),
                    body,
                    serialize_type: SerializeType::RocketMq,
                }
            },
        )
}

fn any_command() -> impl Strategy<Value = RemotingCommand> {
    prop_oneof![json_command(), binary_command()]
}

/// The keys of a JSON object, in the order they appear.
fn top_level_keys(json: &[u8]) -> Vec<String> {
    struct Keys;
    impl<'de> serde::de::Visitor<'de> for Keys {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut keys = Vec::new();
            while let Some(key) = map.next_key::<String>()? {
                map.next_value::<serde::de::IgnoredAny>()?;
                keys.push(key);
            }
            Ok(keys)
        }
    }
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    serde::Deserializer::deserialize_map(&mut deserializer, Keys).expect("a JSON object")
}

fn decode_one(bytes: &[u8]) -> Result<Option<(RemotingCommand, usize)>, CodecError> {
    frame::decode(bytes, &FrameLimits::default())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn frame_round_trips(command in any_command()) {
        let bytes = frame::encode_to_bytes(&command).expect("encodable");
        let (decoded, used) = decode_one(&bytes).expect("valid").expect("complete");
        prop_assert_eq!(used, bytes.len());
        prop_assert_eq!(&decoded, &command);
        // The zero-copy path agrees.
        let mut buffer = BytesMut::from(&bytes[..]);
        let shared = frame::decode_from(&mut buffer, &FrameLimits::default())
            .expect("valid")
            .expect("complete");
        prop_assert!(buffer.is_empty());
        prop_assert_eq!(shared, command);
    }

    #[test]
    fn back_to_back_frames_decode_in_order(commands in vec(any_command(), 1..6)) {
        let mut stream = BytesMut::new();
        for command in &commands {
            frame::encode(command, &mut stream).expect("encodable");
        }
        let mut offset = 0;
        for command in &commands {
            let (decoded, used) = decode_one(&stream[offset..]).expect("valid").expect("complete");
            prop_assert_eq!(&decoded, command);
            offset += used;
        }
        prop_assert_eq!(offset, stream.len());
    }

    /// Our JSON is standard JSON: serde_json reads back the same values (escaping included),
    /// and the keys come in fastjson's alphabetical order.
    #[test]
    fn json_header_is_standard_sorted_json(command in json_command()) {
        let mut header = BytesMut::new();
        header_json::encode(&command, &mut header).expect("encodable");
        let value: serde_json::Value = serde_json::from_slice(&header).expect("standard JSON");
        prop_assert_eq!(value["code"].as_i64(), Some(i64::from(command.code)));
        prop_assert_eq!(value["remark"].as_str(), command.remark.as_deref());
        if !command.ext_fields.is_empty() {
            let ext: ExtFields = serde_json::from_value::<std::collections::BTreeMap<String, String>>(
                value["extFields"].clone(),
            )
            .expect("map")
            .into_iter()
            .collect();
            prop_assert_eq!(&ext, &command.ext_fields);
        }
        let keys = top_level_keys(&header);
        let mut expected = vec!["code", "extFields", "flag", "language", "opaque", "remark",
            "serializeTypeCurrentRPC", "version"];
        if command.ext_fields.is_empty() {
            expected.retain(|k| *k != "extFields");
        }
        if command.remark.is_none() {
            expected.retain(|k| *k != "remark");
        }
        prop_assert_eq!(keys, expected);
    }

    #[test]
    fn truncated_frame_is_incomplete_at_every_prefix(command in any_command()) {
        let bytes = frame::encode_to_bytes(&command).expect("encodable");
        for len in 0..bytes.len() {
            prop_assert_eq!(decode_one(&bytes[..len]), Ok(None), "prefix {}", len);
            prop_assert_eq!(frame::check(&bytes[..len], &FrameLimits::default()), Ok(None));
        }
        prop_assert!(decode_one(&bytes).expect("valid").is_some());
    }

    #[test]
    fn decoder_never_panics_on_arbitrary_bytes(bytes in vec(any::<u8>(), 0..4096)) {
        if let Ok(Some((_, used))) = decode_one(&bytes) {
            prop_assert!(used <= bytes.len());
            prop_assert!(used >= FRAME_SIZE_MIN);
        }
    }

    /// Arbitrary header bytes behind valid frame words, so the header decoders see them.
    #[test]
    fn header_decoders_never_panic(
        header in vec(any::<u8>(), 0..600),
        body_len in 0_usize..64,
        type_byte in 0_u8..2,
    ) {
        let header_len = u32::try_from(header.len()).expect("small");
        let total = u32::try_from(4 + header.len() + body_len).expect("small");
        let mut bytes = total.to_be_bytes().to_vec();
        bytes.extend_from_slice(&((u32::from(type_byte) << 24) | header_len).to_be_bytes());
        bytes.extend_from_slice(&header);
        bytes.resize(bytes.len() + body_len, 0xAB);
        if let Ok(Some((command, used))) = decode_one(&bytes) {
            prop_assert_eq!(used, bytes.len());
            prop_assert_eq!(command.body.len(), body_len);
            prop_assert!(command.ext_fields.len() <= EXT_FIELDS_COUNT_MAX);
        }
    }

    /// Valid frames with a few header bytes overwritten: every outcome is a value or an error,
    /// and whatever decodes re-encodes to an equal command.
    #[test]
    fn mutated_frames_decode_or_fail_cleanly(
        command in any_command(),
        mutations in vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let mut bytes = frame::encode_to_bytes(&command).expect("encodable").to_vec();
        let info = frame::check(&bytes, &FrameLimits::default()).expect("valid").expect("whole");
        // Keep the two frame words; mutate only the header.
        let header = FRAME_SIZE_MIN..FRAME_SIZE_MIN + info.header_len;
        for (index, byte) in mutations {
            bytes[header.start + index.index(header.len())] = byte;
        }
        if let Ok(Some((decoded, _))) = decode_one(&bytes) {
            let again = frame::encode_to_bytes(&decoded).expect("encodable");
            let (redecoded, _) = decode_one(&again).expect("valid").expect("complete");
            prop_assert_eq!(redecoded, decoded);
        }
    }

    /// A declared size over the limit is refused from the 8 leading bytes alone, before any
    /// frame bytes are buffered (so nothing is allocated for it).
    #[test]
    fn oversized_frame_rejected_before_its_bytes_arrive(
        frame_size_max in FRAME_SIZE_MIN..1 << 20,
        excess in 1_usize..1 << 30,
        header_word in any::<u32>(),
    ) {
        let limits = FrameLimits { frame_size_max, header_size_max: frame_size_max / 2 };
        let declared = frame_size_max - 4 + excess; // whole frame = declared + 4 > max
        let Ok(declared) = i32::try_from(declared) else { return Ok(()); };
        let mut words = declared.to_be_bytes().to_vec();
        words.extend_from_slice(&header_word.to_be_bytes());
        let err = frame::check(&words, &limits).expect_err("over the limit");
        let is_frame_size = matches!(err, CodecError::FrameSize { .. });
        prop_assert!(is_frame_size, "{:?}", err);
        prop_assert!(frame::decode(&words, &limits).is_err());
    }

    #[test]
    fn negative_or_tiny_declared_size_rejected(declared in i32::MIN..4, header_word in any::<u32>()) {
        let mut words = declared.to_be_bytes().to_vec();
        words.extend_from_slice(&header_word.to_be_bytes());
        let err = frame::check(&words, &FrameLimits::default()).expect_err("invalid size");
        let is_frame_size = matches!(err, CodecError::FrameSize { .. });
        prop_assert!(is_frame_size, "{:?}", err);
    }

    /// A header length past the frame, or past the header limit, is refused from 8 bytes too.
    #[test]
    fn header_length_beyond_frame_or_limit_rejected(
        body_room in 0_usize..4096,
        header_len in 0_u32..0x0100_0000,
        type_byte in 0_u8..2,
    ) {
        let limits = FrameLimits { frame_size_max: 1 << 16, header_size_max: 1 << 12 };
        let declared = u32::try_from(4 + body_room).expect("small");
        let mut words = declared.to_be_bytes().to_vec();
        words.extend_from_slice(&((u32::from(type_byte) << 24) | header_len).to_be_bytes());
        let header_len = usize::try_from(header_len).expect("u24 fits");
        let result = frame::check(&words, &limits);
        if header_len > body_room || header_len > limits.header_size_max {
            let rejected = matches!(result, Err(CodecError::HeaderLength { .. }));
            prop_assert!(rejected, "{:?}", result);
        } else {
            prop_assert_eq!(result, Ok(None), "valid words, frame not buffered yet");
        }
    }

    #[test]
    fn unknown_serialize_type_rejected(type_byte in 2_u8..=255) {
        let mut words = 4_u32.to_be_bytes().to_vec();
        words.extend_from_slice(&(u32::from(type_byte) << 24).to_be_bytes());
        prop_assert_eq!(
            frame::check(&words, &FrameLimits::default()),
            Err(CodecError::SerializeType(type_byte))
        );
    }
}
