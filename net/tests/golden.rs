//! Golden tests: bytes captured from real RocketMQ clients (`tests/data/wire-captures/`, see its
//! README) must decode exactly as the capture's `.txt` says, and re-encode to an equal command;
//! the ROCKETMQ-binary captures must re-encode byte for byte. Two hand-checked frames pin the
//! encoder's exact output. Uses only the public codec API.

use std::fs;
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use rmq_net::codec::codes::{LanguageCode, SerializeType};
use rmq_net::codec::frame;
use rmq_net::codec::limits::FrameLimits;
use rmq_net::{ExtFields, RemotingCommand};
use serde_json::Value;

fn captures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/wire-captures")
}

/// Every `.bin` capture, sorted, as a path relative to the captures directory.
fn capture_files() -> Vec<String> {
    let root = captures_dir();
    let mut files = Vec::new();
    for client in fs::read_dir(&root).expect("captures directory exists") {
        let client = client.expect("directory entry").path();
        if !client.is_dir() {
            continue;
        }
        for file in fs::read_dir(&client).expect("client directory") {
            let path = file.expect("directory entry").path();
            if path.extension().is_some_and(|e| e == "bin") {
                let relative = path.strip_prefix(&root).expect("under root");
                files.push(relative.to_string_lossy().into_owned());
            }
        }
    }
    files.sort();
    assert_eq!(
        files.len(),
        19,
        "expected the full capture set, found {files:?}"
    );
    files
}

fn read_capture(relative: &str) -> Vec<u8> {
    fs::read(captures_dir().join(relative)).expect("capture readable")
}

/// Decodes every frame of a capture; they are back to back and must fill it exactly.
fn decode_all(bytes: &[u8]) -> Vec<(usize, RemotingCommand)> {
    let limits = FrameLimits::default();
    let mut frames = Vec::new();
    let mut offset = 0;
    while offset < bytes.len() {
        let (command, used) = frame::decode(&bytes[offset..], &limits)
            .expect("capture frame decodes")
            .expect("capture frame is complete");
        frames.push((offset, command));
        offset += used;
    }
    assert_eq!(offset, bytes.len(), "frames fill the capture exactly");
    frames
}

fn decode_capture(relative: &str) -> Vec<RemotingCommand> {
    decode_all(&read_capture(relative))
        .into_iter()
        .map(|(_, command)| command)
        .collect()
}

/// One frame as the capture's `.txt` describes it.
struct Expected {
    offset: usize,
    total_length: usize,
    serialize_type: u8,
    header_len: usize,
    body_len: usize,
    header: Value,
    body_hex_prefix: Option<String>,
}

/// `key=value` from a `frame N: offset=.. totalLength=..` line.
fn field(line: &str, key: &str) -> usize {
    let start = line.find(&format!(" {key}=")).expect("field present") + key.len() + 2;
    let digits: String = line[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().expect("decimal field")
}

fn parse_txt(relative: &str) -> Vec<Expected> {
    let path = captures_dir().join(relative).with_extension("txt");
    let text = fs::read_to_string(path).expect("txt next to every bin");
    let mut frames: Vec<Expected> = Vec::new();
    for line in text.lines() {
        if line.starts_with("frame ") {
            frames.push(Expected {
                offset: field(line, "offset"),
                total_length: field(line, "totalLength"),
                serialize_type: u8::try_from(field(line, "serializeType")).expect("type byte"),
                header_len: field(line, "headerLen"),
                body_len: field(line, "bodyLen"),
                header: Value::Null,
                body_hex_prefix: None,
            });
        } else if let Some(json) = line.strip_prefix("  header: ") {
            let frame = frames.last_mut().expect("header after frame line");
            frame.header = serde_json::from_str(json).expect("txt header is JSON");
        } else if let Some(hex) = line.strip_prefix("  body[:256] hex: ") {
            frames
                .last_mut()
                .expect("body after frame line")
                .body_hex_prefix = Some(hex.into());
        }
    }
    frames
}

/// The capture tool's scalar as the text a Java server would see.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(text) => Some(text.clone()),
        Value::Bool(flag) => Some(flag.to_string()),
        Value::Number(number) => Some(number.to_string()),
        other => panic!("unexpected extFields value {other}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn assert_matches_txt(
    relative: &str,
    index: usize,
    command: &RemotingCommand,
    expected: &Expected,
) {
    let at = format!("{relative} frame {index}");
    let header = &expected.header;
    assert_eq!(
        i64::from(command.code),
        header["code"].as_i64().expect("code"),
        "{at}"
    );
    assert_eq!(
        i64::from(command.flag),
        header["flag"].as_i64().expect("flag"),
        "{at}"
    );
    assert_eq!(
        i64::from(command.opaque),
        header["opaque"].as_i64().expect("opaque"),
        "{at}"
    );
    assert_eq!(
        i64::from(command.version),
        header["version"].as_i64().expect("version"),
        "{at}"
    );
    assert_eq!(
        Some(command.language.name()),
        header["language"].as_str(),
        "{at}"
    );
    assert_eq!(command.remark.as_deref(), header["remark"].as_str(), "{at}");
    let expected_ext: ExtFields = header["extFields"]
        .as_object()
        .map(|map| {
            map.iter()
                .filter_map(|(k, v)| scalar_text(v).map(|text| (k.clone(), text)))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(command.ext_fields, expected_ext, "{at}");
    assert_eq!(
        command.serialize_type.code(),
        expected.serialize_type,
        "{at}"
    );
    assert_eq!(command.body.len(), expected.body_len, "{at}");
    let shown = command.body.len().min(256);
    assert_eq!(
        expected.body_hex_prefix.as_deref().unwrap_or(""),
        hex(&command.body[..shown]),
        "{at}"
    );
}

#[test]
fn every_frame_of_every_capture_decodes_as_its_txt_says() {
    let mut frame_count = 0;
    for relative in capture_files() {
        let bytes = read_capture(&relative);
        let frames = decode_all(&bytes);
        let expected = parse_txt(&relative);
        assert_eq!(frames.len(), expected.len(), "{relative}: frame count");
        for (index, ((offset, command), want)) in frames.iter().zip(&expected).enumerate() {
            assert_eq!(*offset, want.offset, "{relative} frame {index} offset");
            let info = frame::check(&bytes[*offset..], &FrameLimits::default())
                .expect("valid")
                .expect("complete");
            assert_eq!(
                info.frame_size,
                want.total_length + 4,
                "{relative} frame {index}"
            );
            assert_eq!(info.header_len, want.header_len, "{relative} frame {index}");
            assert_eq!(info.body_len, want.body_len, "{relative} frame {index}");
            assert_matches_txt(&relative, index, command, want);
            frame_count += 1;
        }
    }
    assert_eq!(frame_count, 73, "every frame of the capture set");
}

#[test]
fn ali_ons_send_v2_fields() {
    let frames = decode_capture("ali-ons/route-mode-broker-conn-send-v2.bin");
    assert_eq!(frames.len(), 3);
    let send = &frames[0];
    assert_eq!(send.code, 310);
    assert_eq!(send.opaque, 2);
    assert_eq!(send.flag, 0);
    assert_eq!(send.language, LanguageCode::Java);
    assert_eq!(send.version, 121);
    assert_eq!(send.remark, None);
    assert_eq!(send.serialize_type, SerializeType::Json);
    assert_eq!(send.ext("a"), Some("ali_ons_smoke_pg"));
    assert_eq!(send.ext("b"), Some("TopicTest"));
    // ali-ons sends these as JSON number / boolean; they arrive as text.
    assert_eq!(send.ext("d"), Some("4"));
    assert_eq!(send.ext("g"), Some("1795307075074"));
    assert_eq!(send.ext("k"), Some("false"));
    assert_eq!(send.ext("i"), Some("TAGS\u{1}TagA\u{2}KEYS\u{1}key-0\u{2}"));
    assert_eq!(send.ext_fields.len(), 11);
    assert_eq!(&send.body[..], b"hello-0");
    assert_eq!(frames[1].opaque, 3);
    assert_eq!(&frames[1].body[..], b"hello-1");
    assert_eq!(frames[2].code, 35, "UNREGISTER_CLIENT at shutdown");
    assert!(frames[2].body.is_empty());
}

#[test]
fn cpp_send_v1_fields() {
    let frames = decode_capture("rocketmq-cpp-py/route-mode-broker-conn-send-v1.bin");
    let send = &frames[0];
    assert_eq!(send.code, 10);
    assert_eq!(send.opaque, 1);
    assert_eq!(send.language, LanguageCode::Cpp);
    assert_eq!(send.version, 63);
    assert_eq!(
        send.remark.as_deref(),
        Some(""),
        "C++ sends an empty remark"
    );
    assert_eq!(send.ext("AccessKey"), Some(""));
    assert_eq!(send.ext("OnsChannel"), Some("ALIYUN"));
    assert_eq!(send.ext("defaultTopicQueueNums"), Some("4"));
    assert_eq!(send.ext("queueId"), Some("0"));
    assert_eq!(send.ext("unitMode"), Some("0"));
    assert_eq!(&send.body[..], b"hello-0");
    assert_eq!(frames[1].ext("queueId"), Some("1"));
}

#[test]
fn rust_client_binary_header_fields() {
    let frames =
        decode_capture("rocketmq-client-rust/rocketmq-serialize-route-mode-broker-conn.bin");
    assert_eq!(frames.len(), 4);
    let heartbeat = &frames[0];
    assert_eq!(heartbeat.code, 34);
    assert_eq!(heartbeat.serialize_type, SerializeType::RocketMq);
    assert_eq!(heartbeat.language, LanguageCode::Rust);
    assert_eq!(heartbeat.version, 474);
    assert!(heartbeat.ext_fields.is_empty());
    assert!(heartbeat
        .body
        .starts_with(br#"{"clientID":"192.0.2.2@7438#"#));
    let send = &frames[1];
    assert_eq!(send.code, 10);
    assert_eq!(send.opaque, 1);
    assert_eq!(send.remark, None);
    assert_eq!(send.ext("bname"), Some("broker-a"));
    assert_eq!(send.ext("queueId"), Some("1"));
    assert_eq!(send.ext("batch"), Some("false"));
    assert_eq!(send.ext_fields.len(), 13);
    assert_eq!(&send.body[..], b"hello-0");
}

#[test]
fn every_capture_frame_reencodes_to_an_equal_command() {
    for relative in capture_files() {
        for (index, command) in decode_capture(&relative).into_iter().enumerate() {
            let bytes = frame::encode_to_bytes(&command).expect("encodable");
            let (again, used) = frame::decode(&bytes, &FrameLimits::default())
                .expect("re-encoded frame decodes")
                .expect("complete");
            assert_eq!(used, bytes.len(), "{relative} frame {index}");
            assert_eq!(again, command, "{relative} frame {index}");
        }
    }
}

#[test]
fn rocketmq_binary_captures_reencode_byte_for_byte() {
    let binary: Vec<String> = capture_files()
        .into_iter()
        .filter(|f| f.contains("rocketmq-serialize-"))
        .collect();
    assert_eq!(binary.len(), 2);
    for relative in binary {
        let original = read_capture(&relative);
        let mut reencoded = BytesMut::new();
        for command in decode_capture(&relative) {
            assert_eq!(command.serialize_type, SerializeType::RocketMq);
            frame::encode(&command, &mut reencoded).expect("encodable");
        }
        assert_eq!(&reencoded[..], &original[..], "{relative}");
    }
}

#[test]
fn zero_copy_decode_from_agrees_with_decode() {
    let limits = FrameLimits::default();
    for relative in capture_files() {
        let expected = decode_capture(&relative);
        let mut buffer = BytesMut::from(&read_capture(&relative)[..]);
        let mut decoded = Vec::new();
        while let Some(command) = frame::decode_from(&mut buffer, &limits).expect("valid") {
            decoded.push(command);
        }
        assert!(buffer.is_empty(), "{relative}: bytes left over");
        assert_eq!(decoded, expected, "{relative}");
    }
}

/// A small response, JSON header, written out byte by byte.
#[test]
fn hand_checked_json_frame() {
    let command = RemotingCommand {
        code: 17, // TOPIC_NOT_EXIST
        language: LanguageCode::Java,
        version: 479,
        opaque: 5,
        flag: 1, // RESPONSE
        remark: Some("no\u{1}".into()),
        ext_fields: [("t".to_owned(), "T".to_owned())].into_iter().collect(),
        body: Bytes::from_static(b"ok"),
        serialize_type: SerializeType::Json,
    };
    // The header, one field per line; every byte is written out (`\\` is one backslash).
    let header: Vec<u8> = [
        &b"{"[..],                                // object open
        b"\"code\":17",                           // 9 bytes
        b",\"extFields\":{\"t\":\"T\"}",          // 22 bytes, omitted when empty
        b",\"flag\":1",                           // 9 bytes
        b",\"language\":\"JAVA\"",                // 18 bytes, the enum name
        b",\"opaque\":5",                         // 11 bytes
        b",\"remark\":\"no\\u0001\"",             // 20 bytes, control char escaped
        b",\"serializeTypeCurrentRPC\":\"JSON\"", // 33 bytes
        b",\"version\":479",                      // 14 bytes
        b"}",                                     // object close
    ]
    .concat();
    assert_eq!(header.len(), 138);
    let mut expected = vec![
        0x00, 0x00, 0x00, 0x90, // total length: 4 + 138 header + 2 body = 144
        0x00, 0x00, 0x00, 0x8A, // serialize type 0 (JSON) << 24 | header length 138
    ];
    expected.extend_from_slice(&header);
    expected.extend_from_slice(b"ok"); // body
    let encoded = frame::encode_to_bytes(&command).expect("encodable");
    assert_eq!(&encoded[..], &expected[..]);
    let (decoded, used) = frame::decode(&expected, &FrameLimits::default())
        .expect("valid")
        .expect("complete");
    assert_eq!(used, expected.len());
    assert_eq!(decoded, command);
}

/// GET_ROUTEINFO_BY_TOPIC with a remark, ROCKETMQ binary header, written out byte by byte.
#[test]
fn hand_checked_binary_frame() {
    let command = RemotingCommand {
        code: 105, // GET_ROUTEINFO_BY_TOPIC
        language: LanguageCode::Rust,
        version: 479,
        opaque: 0x0102_0304,
        flag: 2, // ONEWAY
        remark: Some("hi".into()),
        ext_fields: [("topic".to_owned(), "T".to_owned())].into_iter().collect(),
        body: Bytes::new(),
        serialize_type: SerializeType::RocketMq,
    };
    let expected: &[u8] = &[
        0x00, 0x00, 0x00, 0x27, // total length: 4 + 35 header + 0 body = 39
        0x01, 0x00, 0x00, 0x23, // serialize type 1 (ROCKETMQ) << 24 | header length 35
        0x00, 0x69, // code i16 = 105
        0x0C, // language u8 = 12 (RUST)
        0x01, 0xDF, // version i16 = 479
        0x01, 0x02, 0x03, 0x04, // opaque i32
        0x00, 0x00, 0x00, 0x02, // flag i32 = ONEWAY
        0x00, 0x00, 0x00, 0x02, // remark_len i32 = 2
        b'h', b'i', // remark
        0x00, 0x00, 0x00, 0x0C, // ext_len i32 = 2 + 5 + 4 + 1 = 12
        0x00, 0x05, // key_len i16 = 5
        b't', b'o', b'p', b'i', b'c', // key
        0x00, 0x00, 0x00, 0x01, // val_len i32 = 1
        b'T', // value
    ];
    let encoded = frame::encode_to_bytes(&command).expect("encodable");
    assert_eq!(&encoded[..], expected);
    let (decoded, used) = frame::decode(expected, &FrameLimits::default())
        .expect("valid")
        .expect("complete");
    assert_eq!(used, expected.len());
    assert_eq!(decoded, command);
}
