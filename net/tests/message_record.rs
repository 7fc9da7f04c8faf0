//! Stored-message records (PROTOCOL.md §6.6): hand-checked byte vectors for IPv4 and IPv6,
//! the v2 magic, every decode error, offset patching, and proptests for round trips and for
//! decoders fed truncated, mutated or random bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use rmq_net::codec::message::layout::{
    self, BLANK_MAGIC_CODE, MAGIC_CODE_V1, MAGIC_CODE_V2, RECORD_FIXED_SIZE_V1_IPV4,
};
use rmq_net::codec::message::{
    decode_all, keys, patch_offsets, patch_store_timestamp, sysflag, CrcCheck, MagicVersion,
    MessageRecord, Properties, RecordIter, RecordLayout,
};
use rmq_net::CodecError;

fn v4(a: u8, b: u8, c: u8, d: u8, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(a, b, c, d)), port)
}

fn props(pairs: &[(&str, &str)]) -> Properties {
    let mut p = Properties::new();
    for (n, v) in pairs {
        p.insert(*n, *v).expect("valid pair");
    }
    p
}

fn ipv4_record() -> MessageRecord {
    MessageRecord {
        queue_id: 1,
        flag: 7,
        queue_offset: 2,
        physical_offset: 0x100,
        sys_flag: 0,
        born_timestamp: 1_700_000_000_000,
        born_host: v4(10, 0, 0, 1, 50000),
        store_timestamp: 1_700_000_000_123,
        store_host: v4(192, 168, 1, 10, 10911),
        reconsume_times: 0,
        prepared_transaction_offset: 0,
        body: Bytes::from_static(b"hello"),
        topic: "T".to_owned(),
        properties: props(&[(keys::TAGS, "TagA")]),
    }
}

/// The IPv4 record, written out field by field.
fn ipv4_record_bytes() -> Vec<u8> {
    let parts: &[&[u8]] = &[
        &[0x00, 0x00, 0x00, 0x6B],       // TOTALSIZE 107 = 91 + 5 + 1 + 10
        &[0xDA, 0xA3, 0x20, 0xA7],       // MAGICCODE v1
        &[0x36, 0x10, 0xA6, 0x86],       // BODYCRC crc32("hello") & 0x7FFFFFFF
        &[0x00, 0x00, 0x00, 0x01],       // QUEUEID 1
        &[0x00, 0x00, 0x00, 0x07],       // FLAG 7
        &[0, 0, 0, 0, 0, 0, 0, 0x02],    // QUEUEOFFSET 2
        &[0, 0, 0, 0, 0, 0, 0x01, 0x00], // PHYSICALOFFSET 0x100
        &[0x00, 0x00, 0x00, 0x00],       // SYSFLAG: both hosts IPv4
        &[0x00, 0x00, 0x01, 0x8B, 0xCF, 0xE5, 0x68, 0x00], // BORNTIMESTAMP 1700000000000
        &[10, 0, 0, 1, 0x00, 0x00, 0xC3, 0x50], // BORNHOST 10.0.0.1:50000
        &[0x00, 0x00, 0x01, 0x8B, 0xCF, 0xE5, 0x68, 0x7B], // STORETIMESTAMP 1700000000123
        &[192, 168, 1, 10, 0x00, 0x00, 0x2A, 0x9F], // STOREHOST 192.168.1.10:10911
        &[0x00, 0x00, 0x00, 0x00],       // RECONSUMETIMES 0
        &[0, 0, 0, 0, 0, 0, 0, 0],       // PREPARED_TX_OFFSET 0
        &[0x00, 0x00, 0x00, 0x05],       // BODY_LEN 5
        b"hello",                        // BODY
        &[0x01],                         // TOPIC_LEN 1 (u8, v1)
        b"T",                            // TOPIC
        &[0x00, 0x0A],                   // PROPERTIES_LEN 10
        b"TAGS\x01TagA\x02",             // PROPERTIES
    ];
    parts.concat()
}

fn ipv6_record() -> MessageRecord {
    MessageRecord {
        queue_id: 3,
        flag: 0,
        queue_offset: 9,
        physical_offset: 4096,
        sys_flag: sysflag::COMPRESSED,
        born_timestamp: 1,
        born_host: SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 8080),
        store_timestamp: 2,
        store_host: SocketAddr::new(
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
            10911,
        ),
        reconsume_times: 2,
        prepared_transaction_offset: 5,
        body: Bytes::from_static(b"hi"),
        topic: "TopicTest".to_owned(),
        properties: Properties::new(),
    }
}

/// The IPv6 record, written out field by field.
fn ipv6_record_bytes() -> Vec<u8> {
    let parts: &[&[u8]] = &[
        &[0x00, 0x00, 0x00, 0x7E],    // TOTALSIZE 126 = 91 + 2*12 + 2 + 9 + 0
        &[0xDA, 0xA3, 0x20, 0xA7],    // MAGICCODE v1
        &[0x58, 0x93, 0x2A, 0xAC],    // BODYCRC crc32("hi") = 0xD8932AAC, top bit masked off
        &[0x00, 0x00, 0x00, 0x03],    // QUEUEID 3
        &[0x00, 0x00, 0x00, 0x00],    // FLAG 0
        &[0, 0, 0, 0, 0, 0, 0, 9],    // QUEUEOFFSET 9
        &[0, 0, 0, 0, 0, 0, 0x10, 0], // PHYSICALOFFSET 4096
        &[0x00, 0x00, 0x00, 0x31],    // SYSFLAG COMPRESSED | BORNHOST_V6 | STOREHOSTADDRESS_V6
        &[0, 0, 0, 0, 0, 0, 0, 1],    // BORNTIMESTAMP 1
        &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], // BORNHOST ::1
        &[0x00, 0x00, 0x1F, 0x90],    // born port 8080
        &[0, 0, 0, 0, 0, 0, 0, 2],    // STORETIMESTAMP 2
        &[0x20, 0x01, 0x0D, 0xB8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], // STOREHOST 2001:db8::1
        &[0x00, 0x00, 0x2A, 0x9F],    // store port 10911
        &[0x00, 0x00, 0x00, 0x02],    // RECONSUMETIMES 2
        &[0, 0, 0, 0, 0, 0, 0, 5],    // PREPARED_TX_OFFSET 5
        &[0x00, 0x00, 0x00, 0x02],    // BODY_LEN 2
        b"hi",                        // BODY
        &[0x09],                      // TOPIC_LEN 9
        b"TopicTest",                 // TOPIC
        &[0x00, 0x00],                // PROPERTIES_LEN 0
    ];
    parts.concat()
}

fn encode(record: &MessageRecord) -> Vec<u8> {
    let mut out = BytesMut::new();
    record.encode(&mut out).expect("encodable");
    assert_eq!(out.len(), record.encoded_len());
    out.to_vec()
}

#[test]
fn ipv4_record_matches_hand_checked_bytes() {
    let record = ipv4_record();
    let expected = ipv4_record_bytes();
    assert_eq!(expected.len(), 107);
    assert_eq!(encode(&record), expected);
    let (decoded, consumed) = MessageRecord::decode(&expected, CrcCheck::Verify).expect("valid");
    assert_eq!(consumed, 107);
    assert_eq!(decoded, record);
}

#[test]
fn ipv6_record_matches_hand_checked_bytes_and_sets_host_bits() {
    let record = ipv6_record();
    let expected = ipv6_record_bytes();
    assert_eq!(expected.len(), 126);
    assert_eq!(record.wire_sys_flag(), 0x31);
    assert_eq!(encode(&record), expected);
    let (decoded, consumed) = MessageRecord::decode(&expected, CrcCheck::Verify).expect("valid");
    assert_eq!(consumed, 126);
    assert_eq!(decoded.sys_flag, 0x31);
    assert_eq!(decoded.born_host, record.born_host);
    assert_eq!(decoded.store_host, record.store_host);
    assert_eq!(decoded.body, record.body);
    assert_eq!(decoded.topic, record.topic);
}

#[test]
fn encode_clears_v6_bits_for_ipv4_hosts() {
    let mut record = ipv4_record();
    record.sys_flag = sysflag::BORNHOST_V6 | sysflag::STOREHOSTADDRESS_V6 | sysflag::MULTI_TAGS;
    let bytes = encode(&record);
    assert_eq!(&bytes[36..40], &[0, 0, 0, 2]);
    assert_eq!(bytes.len(), 107);
}

#[test]
fn long_topic_uses_v2_magic_and_two_byte_length() {
    let mut record = ipv4_record();
    record.topic = format!("%RETRY%{}", "g".repeat(121)); // 128 bytes
    assert_eq!(record.version(), MagicVersion::V2);
    let bytes = encode(&record);
    assert_eq!(&bytes[4..8], &MAGIC_CODE_V2.to_be_bytes());
    assert_eq!(bytes.len(), 92 + 5 + 128 + 10);
    let topic_len_at = 88 + 5;
    assert_eq!(&bytes[topic_len_at..topic_len_at + 2], &[0x00, 0x80]);
    let (decoded, _) = MessageRecord::decode(&bytes, CrcCheck::Verify).expect("valid");
    assert_eq!(decoded, record);

    record.topic = "t".repeat(127);
    assert_eq!(record.version(), MagicVersion::V1);
    let bytes = encode(&record);
    assert_eq!(&bytes[4..8], &MAGIC_CODE_V1.to_be_bytes());
    assert_eq!(bytes[88 + 5], 127);
}

#[test]
fn layout_constants_match_protocol_table() {
    assert_eq!(RECORD_FIXED_SIZE_V1_IPV4, 91);
    let v4 = RecordLayout::new(MagicVersion::V1, 0);
    assert_eq!(v4.body_offset(), 88);
    let mixed = RecordLayout::new(MagicVersion::V1, sysflag::BORNHOST_V6);
    assert_eq!(mixed.store_timestamp_offset(), 68);
    assert_eq!(mixed.store_host_offset(), 76);
    assert_eq!(mixed.body_offset(), 100);
    let bytes = ipv6_record_bytes();
    let layout = RecordLayout::of_record(&bytes).expect("valid prefix");
    assert_eq!(layout.fixed_size(), 115);
    assert_eq!(
        &bytes[layout.store_timestamp_offset()..][..8],
        &2i64.to_be_bytes()
    );
}

#[test]
fn patch_offsets_and_store_timestamp_rewrite_only_their_fields() {
    for (record, bytes) in [
        (ipv4_record(), ipv4_record_bytes()),
        (ipv6_record(), ipv6_record_bytes()),
    ] {
        let mut patched = bytes.clone();
        patch_offsets(&mut patched, 77, 0x0102_0304_0506).expect("record prefix");
        patch_store_timestamp(&mut patched, -5).expect("record prefix");
        let (decoded, _) = MessageRecord::decode(&patched, CrcCheck::Verify).expect("valid");
        let mut expected = record.clone();
        expected.sys_flag = record.wire_sys_flag();
        expected.queue_offset = 77;
        expected.physical_offset = 0x0102_0304_0506;
        expected.store_timestamp = -5;
        assert_eq!(decoded, expected);
        let changed = bytes.iter().zip(&patched).filter(|(a, b)| a != b).count();
        assert!(
            changed <= 24,
            "only three 8-byte fields may change, {changed} bytes did"
        );
    }
}

#[test]
fn patch_refuses_short_or_foreign_bytes() {
    let mut short = ipv4_record_bytes()[..39].to_vec();
    assert!(matches!(
        patch_offsets(&mut short, 1, 1),
        Err(CodecError::Truncated { .. })
    ));
    let mut blank = ipv4_record_bytes();
    blank[4..8].copy_from_slice(&BLANK_MAGIC_CODE.to_be_bytes());
    let before = blank.clone();
    assert_eq!(
        patch_offsets(&mut blank, 1, 1),
        Err(CodecError::Magic {
            magic: BLANK_MAGIC_CODE,
            offset: 4
        })
    );
    assert_eq!(blank, before);
    let mut cut = ipv4_record_bytes()[..60].to_vec();
    assert!(matches!(
        patch_store_timestamp(&mut cut, 1),
        Err(CodecError::Truncated { .. })
    ));
}

#[test]
fn decode_rejects_bad_magic_size_crc_and_port() {
    let good = ipv4_record_bytes();

    let mut blank = good.clone();
    blank[4..8].copy_from_slice(&BLANK_MAGIC_CODE.to_be_bytes());
    assert_eq!(
        MessageRecord::decode(&blank, CrcCheck::Skip),
        Err(CodecError::Magic {
            magic: BLANK_MAGIC_CODE,
            offset: 4
        })
    );

    let mut negative = good.clone();
    negative[0..4].copy_from_slice(&(-1i32).to_be_bytes());
    assert!(matches!(
        MessageRecord::decode(&negative, CrcCheck::Skip),
        Err(CodecError::Length {
            what: "TOTALSIZE",
            ..
        })
    ));

    let mut too_long = good.clone();
    too_long[0..4].copy_from_slice(&108i32.to_be_bytes());
    assert_eq!(
        MessageRecord::decode(&too_long, CrcCheck::Skip),
        Err(CodecError::Truncated {
            what: "record",
            offset: 0,
            need: 108,
            have: 107
        })
    );
    too_long.push(0);
    assert!(matches!(
        MessageRecord::decode(&too_long, CrcCheck::Skip),
        Err(CodecError::Length {
            len: 108,
            max: 107,
            ..
        })
    ));

    let mut too_short = good.clone();
    too_short[0..4].copy_from_slice(&106i32.to_be_bytes());
    assert!(matches!(
        MessageRecord::decode(&too_short, CrcCheck::Skip),
        Err(CodecError::Truncated {
            what: "PROPERTIES",
            ..
        })
    ));

    let mut bad_crc = good.clone();
    bad_crc[88] ^= 0x20; // "hello" -> "Hello"
    assert!(matches!(
        MessageRecord::decode(&bad_crc, CrcCheck::Verify),
        Err(CodecError::Crc {
            offset: 8,
            stored: 907_060_870,
            ..
        })
    ));
    let (skipped, _) = MessageRecord::decode(&bad_crc, CrcCheck::Skip).expect("crc not checked");
    assert_eq!(&skipped.body[..], b"Hello");

    let mut bad_port = good.clone();
    bad_port[52..56].copy_from_slice(&65536i32.to_be_bytes());
    assert!(matches!(
        MessageRecord::decode(&bad_port, CrcCheck::Skip),
        Err(CodecError::InvalidField {
            field: "BORNHOST",
            ..
        })
    ));

    let mut negative_body = good.clone();
    negative_body[84..88].copy_from_slice(&(-5i32).to_be_bytes());
    assert!(matches!(
        MessageRecord::decode(&negative_body, CrcCheck::Skip),
        Err(CodecError::Length {
            what: "BODY_LEN",
            offset: 84,
            len: -5,
            ..
        })
    ));

    let mut bad_utf8 = good.clone();
    bad_utf8[94] = 0xFF; // the topic byte
    assert_eq!(
        MessageRecord::decode(&bad_utf8, CrcCheck::Skip),
        Err(CodecError::Utf8 {
            what: "topic",
            offset: 94
        })
    );

    let mut negative_props = good;
    negative_props[95..97].copy_from_slice(&(-1i16).to_be_bytes());
    assert!(matches!(
        MessageRecord::decode(&negative_props, CrcCheck::Skip),
        Err(CodecError::Length {
            what: "PROPERTIES_LEN",
            ..
        })
    ));
}

#[test]
fn pull_body_of_back_to_back_records_decodes_in_order_and_shares_the_buffer() {
    let mut body = ipv4_record_bytes();
    body.extend(ipv6_record_bytes());
    let body = Bytes::from(body);
    let records = decode_all(&body, CrcCheck::Verify).expect("valid body");
    assert_eq!(records.len(), 2);
    assert_eq!(records[0], ipv4_record());
    assert_eq!(records[1].topic, "TopicTest");
    // Zero-copy: the body points into the pull body.
    let base = body.as_ptr() as usize;
    let at = records[1].body.as_ptr() as usize;
    assert_eq!(at - base, 107 + 112, "IPv6 body offset is 88 + 2 * 12");

    let mut iter = RecordIter::new(body.slice(..107 + 50), CrcCheck::Skip);
    assert!(iter.next().expect("first").is_ok());
    assert_eq!(iter.position(), 107);
    match iter.next() {
        Some(Err(CodecError::Truncated { offset: 107, .. })) => {}
        other => panic!("expected truncation at 107, got {other:?}"),
    }
    assert!(iter.next().is_none(), "iteration stops after an error");
    assert!(decode_all(&body.slice(..107 + 50), CrcCheck::Skip).is_err());
    assert_eq!(decode_all(&Bytes::new(), CrcCheck::Verify), Ok(vec![]));
}

#[test]
fn encode_refuses_oversized_properties_and_topics() {
    let mut record = ipv4_record();
    record
        .properties
        .insert("BIG", "x".repeat(32_767 - 5))
        .expect("valid pair");
    let mut out = BytesMut::new();
    assert!(matches!(
        record.encode(&mut out),
        Err(CodecError::Encode {
            what: "record properties",
            ..
        })
    ));
    assert!(out.is_empty());
    record.properties = props(&[("BIG", &"x".repeat(32_767 - 5))]);
    record
        .encode(&mut out)
        .expect("exactly 32767 bytes of properties fit");
    let (decoded, _) = MessageRecord::decode(&out, CrcCheck::Verify).expect("valid");
    assert_eq!(decoded.properties.encoded_len(), 32_767);

    let mut record = ipv4_record();
    record.topic = "t".repeat(32_768);
    assert!(matches!(
        record.encode(&mut BytesMut::new()),
        Err(CodecError::Encode {
            what: "record topic",
            ..
        })
    ));
}

fn arb_host() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::new(ip.into(), port)),
        (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, port)| {
            SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(ip), port, 0, 0))
        }),
    ]
}

fn arb_properties() -> impl Strategy<Value = Properties> {
    proptest::collection::vec(("[A-Za-z0-9_#.]{1,12}", "[^\x02]{1,24}"), 0..8).prop_map(|pairs| {
        let mut p = Properties::new();
        for (n, v) in pairs {
            p.insert(n, v).expect("generated pairs are valid");
        }
        p
    })
}

fn arb_topic() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9_%|-]{0,127}",
        "%RETRY%[a-z0-9]{121,248}",
        "\\PC{0,20}"
    ]
}

prop_compose! {
    fn arb_record()(
        ints in any::<(i32, i32, i64, i64, i32, i64)>(),
        born_host in arb_host(),
        store_host in arb_host(),
        more in any::<(i64, i32, i64)>(),
        body in proptest::collection::vec(any::<u8>(), 0..300),
        topic in arb_topic(),
        properties in arb_properties(),
    ) -> MessageRecord {
        let (queue_id, flag, queue_offset, physical_offset, sys_flag, born_timestamp) = ints;
        let (store_timestamp, reconsume_times, prepared_transaction_offset) = more;
        MessageRecord {
            queue_id, flag, queue_offset, physical_offset, sys_flag, born_timestamp, born_host,
            store_timestamp, store_host, reconsume_times, prepared_transaction_offset,
            body: Bytes::from(body), topic, properties,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn record_round_trips(record in arb_record(), tail in proptest::collection::vec(any::<u8>(), 0..16)) {
        let mut out = BytesMut::new();
        record.encode(&mut out).expect("encodable");
        prop_assert_eq!(out.len(), record.encoded_len());
        let len = out.len();
        out.extend_from_slice(&tail);
        let (decoded, consumed) = MessageRecord::decode(&out, CrcCheck::Verify).expect("valid");
        prop_assert_eq!(consumed, len);
        let mut expected = record.clone();
        expected.sys_flag = record.wire_sys_flag();
        prop_assert_eq!(&decoded, &expected);
        let shared = out.freeze();
        let (again, _) = MessageRecord::decode_shared(&shared, CrcCheck::Verify).expect("valid");
        prop_assert_eq!(&again, &expected);
        // Decoded records re-encode to the same bytes.
        let mut re = BytesMut::new();
        decoded.encode(&mut re).expect("encodable");
        prop_assert_eq!(&re[..], &shared[..len]);
    }

    #[test]
    fn truncated_records_are_errors_at_every_length(record in arb_record()) {
        let mut out = BytesMut::new();
        record.encode(&mut out).expect("encodable");
        for cut in 0..out.len() {
            prop_assert!(MessageRecord::decode(&out[..cut], CrcCheck::Skip).is_err());
            let mut iter = RecordIter::new(out.clone().freeze().slice(..cut), CrcCheck::Skip);
            if cut > 0 {
                prop_assert!(iter.next().expect("one item").is_err());
            }
            prop_assert!(iter.next().is_none());
        }
    }

    #[test]
    fn mutated_records_never_panic(
        record in arb_record(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut out = BytesMut::new();
        record.encode(&mut out).expect("encodable");
        let mut bytes = out.to_vec();
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        if let Ok((decoded, consumed)) = MessageRecord::decode(&bytes, CrcCheck::Skip) {
            prop_assert!(consumed <= bytes.len());
            prop_assert!(decoded.body.len() <= consumed);
        }
        let _ = decode_all(&Bytes::from(bytes), CrcCheck::Verify);
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = MessageRecord::decode(&bytes, CrcCheck::Verify);
        let _ = RecordLayout::of_record(&bytes);
        let mut copy = bytes.clone();
        let _ = patch_offsets(&mut copy, 1, 2);
        let _ = patch_store_timestamp(&mut copy, 3);
        let _ = decode_all(&Bytes::from(bytes), CrcCheck::Skip);
    }

    #[test]
    fn random_bytes_behind_a_valid_prefix_never_panic(
        magic in prop_oneof![Just(MAGIC_CODE_V1), Just(MAGIC_CODE_V2)],
        sys_flag in 0i32..0x40,
        rest in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut bytes = Vec::new();
        let total = i32::try_from(8 + 28 + 4 + rest.len()).expect("small");
        bytes.extend_from_slice(&total.to_be_bytes());
        bytes.extend_from_slice(&magic.to_be_bytes());
        bytes.extend_from_slice(&[0; 28]);
        bytes.extend_from_slice(&sys_flag.to_be_bytes());
        bytes.extend_from_slice(&rest);
        if let Ok((_, consumed)) = MessageRecord::decode(&bytes, CrcCheck::Skip) {
            prop_assert_eq!(consumed, bytes.len());
        }
    }
}

#[test]
fn record_module_exports_the_magic_codes_as_java_signed_values() {
    assert_eq!(
        i32::from_be_bytes(MAGIC_CODE_V1.to_be_bytes()),
        -626_843_481
    );
    assert_eq!(
        i32::from_be_bytes(MAGIC_CODE_V2.to_be_bytes()),
        -626_843_477
    );
    assert_eq!(
        i32::from_be_bytes(BLANK_MAGIC_CODE.to_be_bytes()),
        -875_286_124
    );
    assert_eq!(layout::TOPIC_V1_SIZE_MAX, 127);
}
