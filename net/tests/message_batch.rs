//! Batch send bodies (PROTOCOL.md §6.5): a hand-checked vector, limits, every decode error,
//! and proptests for round trips, truncation and random bytes.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use rmq_net::codec::message::batch::BATCH_ENTRY_FIXED_SIZE;
use rmq_net::codec::message::{decode_batch, encode_batch, BatchEntry, BatchLimits, Properties};
use rmq_net::CodecError;

fn entries() -> Vec<BatchEntry> {
    vec![
        BatchEntry {
            flag: 0,
            body: Bytes::from_static(b"A"),
            properties: Properties::decode("UNIQ_KEY\x01K1\x02"),
        },
        BatchEntry {
            flag: 5,
            body: Bytes::new(),
            properties: Properties::new(),
        },
    ]
}

/// The two entries above, written out field by field.
fn batch_bytes() -> Vec<u8> {
    let parts: &[&[u8]] = &[
        // entry 1
        &[0x00, 0x00, 0x00, 0x23], // TOTALSIZE 35 = 22 + 1 + 12
        &[0x00, 0x00, 0x00, 0x00], // MAGICCODE 0 (Java client)
        &[0x00, 0x00, 0x00, 0x00], // BODYCRC 0 (Java client)
        &[0x00, 0x00, 0x00, 0x00], // FLAG 0
        &[0x00, 0x00, 0x00, 0x01], // BODY_LEN 1
        b"A",                      // BODY
        &[0x00, 0x0C],             // PROPERTIES_LEN 12
        b"UNIQ_KEY\x01K1\x02",     // PROPERTIES
        // entry 2
        &[0x00, 0x00, 0x00, 0x16], // TOTALSIZE 22
        &[0x00, 0x00, 0x00, 0x00], // MAGICCODE
        &[0x00, 0x00, 0x00, 0x00], // BODYCRC
        &[0x00, 0x00, 0x00, 0x05], // FLAG 5
        &[0x00, 0x00, 0x00, 0x00], // BODY_LEN 0
        &[0x00, 0x00],             // PROPERTIES_LEN 0
    ];
    parts.concat()
}

fn encode(entries: &[BatchEntry]) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode_batch(entries, &mut out).expect("encodable");
    out.to_vec()
}

#[test]
fn batch_matches_hand_checked_bytes() {
    assert_eq!(BATCH_ENTRY_FIXED_SIZE, 22);
    let bytes = batch_bytes();
    assert_eq!(bytes.len(), 35 + 22);
    assert_eq!(encode(&entries()), bytes);
    let decoded = decode_batch(&Bytes::from(bytes), &BatchLimits::default()).expect("valid");
    assert_eq!(decoded, entries());
}

#[test]
fn magic_and_crc_written_by_clients_are_ignored() {
    let mut bytes = batch_bytes();
    bytes[4..8].copy_from_slice(&0x1234_5678u32.to_be_bytes());
    bytes[8..12].copy_from_slice(&(-1i32).to_be_bytes());
    let decoded = decode_batch(&Bytes::from(bytes), &BatchLimits::default()).expect("valid");
    assert_eq!(decoded, entries());
}

#[test]
fn bodies_share_the_request_body() {
    let body = Bytes::from(batch_bytes());
    let decoded = decode_batch(&body, &BatchLimits::default()).expect("valid");
    assert_eq!(
        decoded[0].body.as_ptr() as usize - body.as_ptr() as usize,
        20
    );
}

#[test]
fn empty_body_has_no_entries() {
    assert_eq!(
        decode_batch(&Bytes::new(), &BatchLimits::default()),
        Ok(vec![])
    );
}

#[test]
fn limits_bound_count_and_total_size() {
    let body = Bytes::from(batch_bytes());
    let one = BatchLimits {
        messages_max: 1,
        ..BatchLimits::default()
    };
    assert_eq!(
        decode_batch(&body, &one),
        Err(CodecError::TooMany {
            what: "batch messages",
            count: 2,
            max: 1
        })
    );
    let small = BatchLimits {
        body_size_max: 56,
        ..BatchLimits::default()
    };
    assert!(matches!(
        decode_batch(&body, &small),
        Err(CodecError::Length {
            what: "batch body",
            len: 57,
            max: 56,
            ..
        })
    ));
    let exact = BatchLimits {
        messages_max: 2,
        body_size_max: 57,
    };
    assert_eq!(decode_batch(&body, &exact).expect("at the limits").len(), 2);
}

#[test]
fn decode_rejects_inconsistent_lengths() {
    let limits = BatchLimits::default();
    let check = |bytes: Vec<u8>| decode_batch(&Bytes::from(bytes), &limits);

    let mut bigger_total = batch_bytes();
    bigger_total[0..4].copy_from_slice(&36i32.to_be_bytes()); // one byte of entry 2 swallowed
    assert!(matches!(
        check(bigger_total),
        Err(CodecError::Length {
            what: "batch TOTALSIZE (larger than the parsed fields)",
            len: 36,
            max: 35,
            ..
        })
    ));

    let mut smaller_total = batch_bytes();
    smaller_total[0..4].copy_from_slice(&34i32.to_be_bytes());
    assert!(matches!(
        check(smaller_total),
        Err(CodecError::Length {
            what: "batch PROPERTIES_LEN",
            offset: 21,
            len: 12,
            max: 11
        })
    ));

    let mut past_end = batch_bytes();
    past_end[35..39].copy_from_slice(&23i32.to_be_bytes());
    assert!(matches!(
        check(past_end),
        Err(CodecError::Length {
            what: "batch TOTALSIZE",
            offset: 35,
            len: 23,
            max: 22
        })
    ));

    let mut negative_body = batch_bytes();
    negative_body[16..20].copy_from_slice(&(-1i32).to_be_bytes());
    assert!(matches!(
        check(negative_body),
        Err(CodecError::Length {
            what: "batch BODY_LEN",
            offset: 16,
            len: -1,
            ..
        })
    ));

    let mut negative_props = batch_bytes();
    negative_props[21..23].copy_from_slice(&(-1i16).to_be_bytes());
    assert!(matches!(
        check(negative_props),
        Err(CodecError::Length {
            what: "batch PROPERTIES_LEN",
            offset: 21,
            len: -1,
            ..
        })
    ));

    let mut bad_utf8 = batch_bytes();
    bad_utf8[23] = 0xC3; // a lone UTF-8 lead byte in place of 'U'
    assert!(matches!(
        check(bad_utf8),
        Err(CodecError::Utf8 {
            what: "properties",
            offset: 23
        })
    ));
}

#[test]
fn encode_refuses_oversized_properties() {
    let mut properties = Properties::new();
    properties
        .insert("P", "x".repeat(32_765))
        .expect("valid pair"); // 32768 bytes encoded
    let entry = BatchEntry {
        flag: 0,
        body: Bytes::new(),
        properties,
    };
    let mut out = BytesMut::new();
    assert!(matches!(
        entry.encode(&mut out),
        Err(CodecError::Encode {
            what: "batch entry properties",
            ..
        })
    ));
    assert!(out.is_empty());
}

prop_compose! {
    fn arb_entry()(
        flag in any::<i32>(),
        body in proptest::collection::vec(any::<u8>(), 0..64),
        pairs in proptest::collection::vec(("[A-Z_]{1,8}", "[^\x02]{1,12}"), 0..4),
    ) -> BatchEntry {
        let mut properties = Properties::new();
        for (n, v) in pairs {
            properties.insert(n, v).expect("valid pair");
        }
        BatchEntry { flag, body: Bytes::from(body), properties }
    }
}

proptest! {
    #[test]
    fn batch_round_trips(entries in proptest::collection::vec(arb_entry(), 0..8)) {
        let bytes = encode(&entries);
        prop_assert_eq!(bytes.len(), entries.iter().map(BatchEntry::encoded_len).sum::<usize>());
        let decoded = decode_batch(&Bytes::from(bytes), &BatchLimits::default()).expect("valid");
        prop_assert_eq!(decoded, entries);
    }

    #[test]
    fn truncation_is_an_error_except_at_entry_boundaries(
        entries in proptest::collection::vec(arb_entry(), 1..5),
    ) {
        let bytes = encode(&entries);
        let mut boundaries = vec![0];
        for e in &entries {
            boundaries.push(boundaries.last().copied().unwrap_or(0) + e.encoded_len());
        }
        for cut in 0..bytes.len() {
            let result = decode_batch(&Bytes::copy_from_slice(&bytes[..cut]), &BatchLimits::default());
            match boundaries.iter().position(|&b| b == cut) {
                Some(count) => prop_assert_eq!(result.expect("whole entries").len(), count),
                None => prop_assert!(result.is_err(), "cut {} decoded", cut),
            }
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let limits = BatchLimits { messages_max: 4, body_size_max: 256 };
        if let Ok(entries) = decode_batch(&Bytes::from(bytes.clone()), &limits) {
            prop_assert!(entries.len() <= 4);
            prop_assert_eq!(
                entries.iter().map(|e| BATCH_ENTRY_FIXED_SIZE + e.body.len()).sum::<usize>()
                    <= bytes.len(),
                true
            );
        }
    }
}
