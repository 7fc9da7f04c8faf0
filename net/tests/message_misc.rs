//! Tag hash, body CRC, sysFlag helpers and the `UNIQ_KEY` generator (PROTOCOL.md §6.3, §6.7,
//! §6.9, §6.10), against vectors checked with Python (`zlib.crc32`, a UTF-16 `hashCode`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use rmq_net::codec::message::sysflag::{self, CompressionType, TransactionType};
use rmq_net::codec::message::{
    body_crc, keys, tag_hash, tags_code_of, Properties, UniqKeyGenerator,
};
use rmq_net::CodecError;

#[test]
fn tag_hash_is_java_string_hash_code() {
    assert_eq!(tag_hash("TagA"), 2_598_919);
    assert_eq!(tag_hash("TagB"), 2_598_920);
    assert_eq!(tag_hash("*"), 42);
    assert_eq!(tag_hash(""), 0);
    // Non-ASCII hashes UTF-16 code units; an astral char is a surrogate pair.
    assert_eq!(tag_hash("中文标签"), 622_041_809);
    assert_eq!(tag_hash("😀"), 1_772_899);
    // Long tags wrap.
    assert_eq!(
        tag_hash("a-very-long-tag-value-that-overflows"),
        1_537_473_792
    );
}

#[test]
fn tags_code_comes_from_the_tags_property() {
    let mut p = Properties::new();
    assert_eq!(tags_code_of(&p), 0);
    p.insert(keys::KEYS, "k").expect("valid");
    assert_eq!(tags_code_of(&p), 0);
    p.insert(keys::TAGS, "TagA").expect("valid");
    assert_eq!(tags_code_of(&p), 2_598_919);
    p.insert(keys::TAGS, "a-very-long-tag-value-that-overflows")
        .expect("valid");
    assert_eq!(tags_code_of(&p), 1_537_473_792);
}

#[test]
fn body_crc_masks_the_top_bit() {
    assert_eq!(body_crc(b"hello"), 907_060_870);
    assert_eq!(body_crc(b"a"), 1_756_872_259); // crc32 0xE8B7BE43
    assert_eq!(body_crc(b"123456789"), 1_274_296_614); // crc32 0xCBF43926
}

#[test]
fn transaction_type_get_and_set() {
    let flag = sysflag::COMPRESSED | sysflag::MULTI_TAGS;
    assert_eq!(sysflag::transaction_type(flag), TransactionType::NotType);
    let prepared = sysflag::with_transaction_type(flag, TransactionType::Prepared);
    assert_eq!(prepared, 0x7);
    assert_eq!(
        sysflag::transaction_value(prepared),
        sysflag::TRANSACTION_PREPARED_TYPE
    );
    let commit = sysflag::with_transaction_type(prepared, TransactionType::Commit);
    assert_eq!(commit, 0xB);
    assert_eq!(sysflag::transaction_type(commit), TransactionType::Commit);
    let rollback = sysflag::with_transaction_type(commit, TransactionType::Rollback);
    assert_eq!(rollback, 0xF);
    assert_eq!(
        sysflag::transaction_type(rollback),
        TransactionType::Rollback
    );
    assert_eq!(
        sysflag::with_transaction_type(rollback, TransactionType::NotType),
        flag
    );
}

#[test]
fn compression_type_bits() {
    assert_eq!(sysflag::compression(0), Ok(None));
    assert_eq!(
        sysflag::compression(0x300),
        Ok(None),
        "type bits without COMPRESSED"
    );
    assert_eq!(sysflag::compression(0x001), Ok(Some(CompressionType::Zlib)));
    assert_eq!(sysflag::compression(0x101), Ok(Some(CompressionType::Lz4)));
    assert_eq!(sysflag::compression(0x201), Ok(Some(CompressionType::Zstd)));
    assert_eq!(sysflag::compression(0x301), Ok(Some(CompressionType::Zlib)));
    assert!(matches!(
        sysflag::compression(0x401),
        Err(CodecError::InvalidField {
            field: "sysFlag",
            ..
        })
    ));
    let flag = sysflag::with_compression(
        sysflag::TRANSACTION_COMMIT_TYPE,
        Some(CompressionType::Zstd),
    );
    assert_eq!(flag, 0x209);
    assert_eq!(
        sysflag::with_compression(flag, None),
        sysflag::TRANSACTION_COMMIT_TYPE
    );
    for kind in [
        CompressionType::Lz4,
        CompressionType::Zstd,
        CompressionType::Zlib,
    ] {
        assert_eq!(
            sysflag::compression(sysflag::with_compression(0, Some(kind))),
            Ok(Some(kind))
        );
    }
}

#[test]
fn host_kind_bits_follow_the_addresses() {
    let v4 = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 1);
    let v6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 1);
    assert_eq!(sysflag::with_host_kinds(0x30, &v4, &v4), 0);
    assert_eq!(sysflag::with_host_kinds(0, &v6, &v4), sysflag::BORNHOST_V6);
    assert_eq!(
        sysflag::with_host_kinds(1, &v4, &v6),
        1 | sysflag::STOREHOSTADDRESS_V6
    );
    assert!(sysflag::has(
        0x30,
        sysflag::BORNHOST_V6 | sysflag::STOREHOSTADDRESS_V6
    ));
    assert_eq!(sysflag::NEED_UNWRAP, 0x40);
    assert_eq!(sysflag::INNER_BATCH, 0x80);
}

/// 2024-02-01T00:00:00Z in epoch ms.
const FEB_2024_MS: i64 = 1_706_745_600_000;
/// 2024-03-01T00:00:00Z in epoch ms (2024 is a leap year).
const MAR_2024_MS: i64 = 1_709_251_200_000;

#[test]
fn uniq_key_layout_is_java_message_client_id() {
    let ip = IpAddr::V4(Ipv4Addr::new(192, 168, 1, 10));
    let mut generator = UniqKeyGenerator::new(ip, 0x1_2345, 0x0A0B_0C0D, FEB_2024_MS);
    assert_eq!(generator.key_len(), 32);
    let key = generator.next_key(FEB_2024_MS + 1000);
    // ip C0A8010A | pid low 16 bits 2345 | seed 0A0B0C0D | 1000 ms 000003E8 | counter 0000
    assert_eq!(key, "C0A8010A23450A0B0C0D000003E80000");
    assert_eq!(
        generator.next_key(FEB_2024_MS + 1000),
        "C0A8010A23450A0B0C0D000003E80001"
    );
}

#[test]
fn uniq_key_time_restarts_each_month_and_tolerates_small_clock_steps_back() {
    let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    let mut generator = UniqKeyGenerator::new(ip, 1, -1, FEB_2024_MS + 5);
    let time = |key: &str| key[20..28].to_owned();
    assert_eq!(time(&generator.next_key(MAR_2024_MS - 1)), "95586BFF"); // 29 days - 1 ms, wrapped (Python-checked)
    assert_eq!(time(&generator.next_key(MAR_2024_MS + 7)), "00000007");
    assert_eq!(time(&generator.next_key(MAR_2024_MS - 10)), "00000000"); // NTP jitter
    assert_eq!(
        time(&generator.next_key(MAR_2024_MS - 2_000_000)),
        "FFE17B80"
    ); // -2000000
       // Wraps like Java's int cast after 2^31 ms into the month.
    assert_eq!(
        time(&generator.next_key(MAR_2024_MS + (1 << 31))),
        "80000000"
    );
}

#[test]
fn uniq_key_counter_wraps_and_ipv6_keys_are_56_chars() {
    let ip = IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1));
    let mut generator = UniqKeyGenerator::new(ip, 7, 0, FEB_2024_MS);
    assert_eq!(generator.key_len(), 56);
    let first = generator.next_key(FEB_2024_MS);
    assert_eq!(
        first,
        "FE800000000000000000000000000001000700000000000000000000"
    );
    for _ in 1..=u16::MAX {
        generator.next_key(FEB_2024_MS);
    }
    assert_eq!(
        generator.next_key(FEB_2024_MS),
        first,
        "counter wrapped to 0"
    );
}
