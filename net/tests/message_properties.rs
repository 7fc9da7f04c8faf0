//! Properties strings (PROTOCOL.md §6.1): Java's dropping rules, order preservation, the
//! insert invariant, and a differential proptest against a transcription of Java's
//! `MessageDecoder.string2messageProperties` index arithmetic.

use std::collections::HashMap;
use std::fmt::Write as _;

use bytes::BytesMut;
use proptest::prelude::*;
use rmq_net::codec::message::{keys, Properties};
use rmq_net::CodecError;

/// Java's decoder, index by index: segment `[index, next_sep)`; keep it when it is at least 3
/// long and its first 0x01 (searched from `index` over the whole string) lies strictly inside,
/// not at the start and not at the last position.
fn java_decode(text: &str) -> HashMap<String, String> {
    let bytes = text.as_bytes();
    let find = |from: usize, byte: u8| {
        bytes[from..]
            .iter()
            .position(|&b| b == byte)
            .map(|p| p + from)
    };
    let mut map = HashMap::new();
    let mut index = 0;
    while index < bytes.len() {
        let new_index = find(index, 0x02).unwrap_or(bytes.len());
        if new_index - index >= 3 {
            if let Some(kv) = find(index, 0x01) {
                if kv > index && kv < new_index - 1 {
                    map.insert(
                        text[index..kv].to_owned(),
                        text[kv + 1..new_index].to_owned(),
                    );
                }
            }
        }
        index = new_index + 1;
    }
    map
}

fn as_map(p: &Properties) -> HashMap<String, String> {
    p.iter()
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect()
}

#[test]
fn encodes_each_pair_with_trailing_separator_in_insertion_order() {
    let mut p = Properties::new();
    p.insert(keys::TAGS, "TagA").expect("valid");
    p.insert(keys::KEYS, "order-1 order-2").expect("valid");
    p.insert(keys::WAIT, "true").expect("valid");
    let expected = "TAGS\x01TagA\x02KEYS\x01order-1 order-2\x02WAIT\x01true\x02";
    assert_eq!(p.to_wire_string(), expected);
    assert_eq!(p.encoded_len(), expected.len());
    let mut out = BytesMut::new();
    p.encode(&mut out);
    assert_eq!(&out[..], expected.as_bytes());
    assert_eq!(Properties::decode(expected), p);
    assert_eq!(Properties::new().to_wire_string(), "");
}

#[test]
fn decode_drops_what_java_drops() {
    let text = concat!(
        "TAGS\x01TagA\x02", // kept
        "\x01noname\x02",   // empty name: dropped
        "EMPTY\x01\x02",    // empty value: dropped
        "NOSEP\x02",        // no 0x01: dropped
        "\x02",             // empty segment: dropped
        "V\x01a\x01b\x02",  // value keeps later 0x01s
        "TAGS\x01TagB\x02", // repeat: last value wins, first position kept
        "LAST\x01tail",     // no trailing 0x02: still parsed
    );
    let p = Properties::decode(text);
    let pairs: Vec<(&str, &str)> = p.iter().collect();
    assert_eq!(
        pairs,
        vec![("TAGS", "TagB"), ("V", "a\x01b"), ("LAST", "tail")]
    );
    assert_eq!(as_map(&p), java_decode(text));
    assert_eq!(
        p.to_wire_string(),
        "TAGS\x01TagB\x02V\x01a\x01b\x02LAST\x01tail\x02"
    );
    assert!(Properties::decode("").is_empty());
    assert!(Properties::decode("\x02\x02\x01\x01").is_empty());
}

#[test]
fn insert_get_remove_keep_order() {
    let mut p = Properties::new();
    assert_eq!(p.insert("A", "1"), Ok(None));
    assert_eq!(p.insert("B", "2"), Ok(None));
    assert_eq!(p.insert("C", "3"), Ok(None));
    assert_eq!(p.insert("A", "9"), Ok(Some("1".to_owned())));
    assert_eq!(p.get("A"), Some("9"));
    assert!(p.contains("B"));
    assert_eq!(p.remove("B"), Some("2".to_owned()));
    assert_eq!(p.remove("B"), None);
    assert_eq!(p.to_wire_string(), "A\x019\x02C\x013\x02");
    assert_eq!(p.len(), 2);
}

#[test]
fn insert_refuses_pairs_java_would_not_read_back() {
    let mut p = Properties::new();
    for (name, value) in [
        ("", "v"),
        ("n", ""),
        ("a\x01b", "v"),
        ("a\x02b", "v"),
        ("n", "x\x02y"),
    ] {
        assert!(
            matches!(
                p.insert(name, value),
                Err(CodecError::Encode {
                    what: "property",
                    ..
                })
            ),
            "{name:?}={value:?} must be refused"
        );
    }
    assert!(p.is_empty());
    p.insert("n", "x\x01y")
        .expect("0x01 in a value survives a Java decode");
    assert_eq!(Properties::decode(&p.to_wire_string()), p);
}

#[test]
fn helpers_read_tags_uniq_key_and_space_separated_keys() {
    let p = Properties::decode("KEYS\x01k1  k2 k3\x02TAGS\x01TagA\x02UNIQ_KEY\x01ABC\x02");
    assert_eq!(p.tags(), Some("TagA"));
    assert_eq!(p.uniq_key(), Some("ABC"));
    assert_eq!(p.message_keys().collect::<Vec<_>>(), vec!["k1", "k2", "k3"]);
    assert_eq!(Properties::new().message_keys().count(), 0);
    assert_eq!(keys::TRANSACTION_ID, "__transactionId__");
    assert_eq!(keys::KEY_SEPARATOR, ' ');
}

#[test]
fn extend_from_behaves_like_decoding_the_concatenation() {
    let entry = Properties::decode("UNIQ_KEY\x01u1\x02TAGS\x01a\x02");
    let batch = Properties::decode("TAGS\x01b\x02CLUSTER\x01c\x02");
    let mut merged = entry.clone();
    merged.extend_from(&batch);
    let concatenated = format!("{}{}", entry.to_wire_string(), batch.to_wire_string());
    assert_eq!(merged, Properties::decode(&concatenated));
    assert_eq!(merged.get("TAGS"), Some("b"));
}

#[test]
fn decoding_many_tiny_pairs_stays_fast_and_deduplicates() {
    // 32 KiB of distinct and repeated names: a linear-time decode handles this at once.
    let mut text = String::new();
    for i in 0..8000 {
        write!(text, "{}\x01v\x02", i % 4000).expect("writing to a String cannot fail");
    }
    let p = Properties::decode(&text);
    assert_eq!(p.len(), 4000);
    assert_eq!(as_map(&p), java_decode(&text));
}

fn arb_wire_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just('\x01'),
            Just('\x02'),
            Just('a'),
            Just('b'),
            Just('é'),
            Just('\u{1F600}')
        ],
        0..48,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

proptest! {
    #[test]
    fn decode_agrees_with_java(text in arb_wire_text()) {
        let p = Properties::decode(&text);
        prop_assert_eq!(as_map(&p), java_decode(&text));
        // Whatever decode yields re-encodes to a string that decodes to the same map.
        prop_assert_eq!(Properties::decode(&p.to_wire_string()), p.clone());
        let mut out = BytesMut::new();
        p.encode(&mut out);
        prop_assert_eq!(Properties::decode_bytes(&out, 0).expect("utf-8"), p);
    }

    #[test]
    fn inserted_pairs_round_trip(
        pairs in proptest::collection::vec(("[A-Za-z0-9_#.]{1,10}", "[^\x02]{1,16}"), 0..12),
    ) {
        let mut p = Properties::new();
        for (n, v) in &pairs {
            p.insert(n.clone(), v.clone()).expect("valid pair");
        }
        prop_assert_eq!(Properties::decode(&p.to_wire_string()), p.clone());
        let expected: HashMap<String, String> = pairs.into_iter().collect();
        prop_assert_eq!(as_map(&p), expected);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        match Properties::decode_bytes(&bytes, 5) {
            Ok(p) => prop_assert!(p.iter().all(|(n, v)| !n.is_empty() && !v.is_empty())),
            Err(e) => prop_assert!(
                matches!(e, CodecError::Utf8 { what: "properties", offset: 5 }),
                "unexpected error {:?}", e
            ),
        }
    }
}
