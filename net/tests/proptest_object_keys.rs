//! Property tests for the object-key JSON reader and the bodies built on it: random trees with
//! keys of every type and random ConsumeStats/TopicStatsTable bodies survive
//! `decode(encode(x)) == x`; arbitrary bytes, mutations and every truncation of valid text
//! never panic, and a truncated container is always an error.
//! Uses only the public codec API.

use std::collections::BTreeMap;

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::select;
use rmq_net::codec::body::object_keys::{parse_object_keys, ObjectKeyError, ObjectKeyValue};
use rmq_net::codec::body::queue::MessageQueue;
use rmq_net::codec::body::stats::{ConsumeStats, OffsetWrapper, TopicOffset, TopicStatsTable};

/// Characters that break naive JSON walkers: structure inside strings, escapes, control
/// characters, multi-byte UTF-8.
fn tricky_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => proptest::char::range('a', 'z'),
        2 => select(vec!['{', '}', '[', ']', ':', ',', '"', '\\', '/', ' ']),
        1 => (0_u8..0x20).prop_map(char::from),
        1 => select(vec!['\u{7f}', 'é', '中', '🎉', '\u{2028}', '\u{feff}']),
        1 => any::<char>(),
    ]
}

fn text(len_max: usize) -> impl Strategy<Value = String> {
    vec(tricky_char(), 0..=len_max).prop_map(String::from_iter)
}

/// Numbers that survive text exactly: any integer, and floats with few significant digits.
fn number() -> impl Strategy<Value = serde_json::Number> {
    prop_oneof![
        any::<i64>().prop_map(serde_json::Number::from),
        any::<u64>().prop_map(serde_json::Number::from),
        (any::<i32>(), 0_u32..8).prop_filter_map("finite", |(mantissa, shift)| {
            serde_json::Number::from_f64(f64::from(mantissa) / f64::from(1_u32 << shift))
        }),
    ]
}

fn leaf() -> impl Strategy<Value = ObjectKeyValue> {
    prop_oneof![
        Just(ObjectKeyValue::Null),
        any::<bool>().prop_map(ObjectKeyValue::Bool),
        number().prop_map(ObjectKeyValue::Number),
        text(8).prop_map(ObjectKeyValue::String),
    ]
}

/// Any tree: object keys are arbitrary trees too (objects, arrays, numbers, strings, ...).
fn tree() -> impl Strategy<Value = ObjectKeyValue> {
    tree_sized(5, 64)
}

/// A tree at most `depth` deep with about `nodes` nodes.
fn tree_sized(depth: u32, nodes: u32) -> impl Strategy<Value = ObjectKeyValue> {
    leaf().prop_recursive(depth, nodes, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(ObjectKeyValue::Array),
            vec((inner.clone(), inner), 0..6).prop_map(ObjectKeyValue::Object),
        ]
    })
}

/// A map keyed by objects, as Java writes `Map<MessageQueue, V>`, with values of any shape.
fn object_key_map() -> impl Strategy<Value = ObjectKeyValue> {
    object_key_map_of(tree(), 8)
}

/// A map of up to `entries_max` entries keyed by `MessageQueue`-like objects.
fn object_key_map_of(
    value: impl Strategy<Value = ObjectKeyValue>,
    entries_max: usize,
) -> impl Strategy<Value = ObjectKeyValue> {
    let key = (text(6), text(6), any::<i32>()).prop_map(|(topic, broker, queue_id)| {
        ObjectKeyValue::Object(vec![
            (
                ObjectKeyValue::String("brokerName".into()),
                ObjectKeyValue::String(broker),
            ),
            (
                ObjectKeyValue::String("queueId".into()),
                ObjectKeyValue::Number(queue_id.into()),
            ),
            (
                ObjectKeyValue::String("topic".into()),
                ObjectKeyValue::String(topic),
            ),
        ])
    });
    vec((key, value), 0..=entries_max).prop_map(ObjectKeyValue::Object)
}

/// Inserts whitespace after every structural byte outside strings, as pretty printers do.
fn spaced(json: &[u8], gap: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len() * 2);
    let (mut in_string, mut escaped) = (false, false);
    out.extend_from_slice(gap);
    for &byte in json {
        out.push(byte);
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
        } else if byte == b'"' {
            in_string = true;
        } else if matches!(byte, b'{' | b'}' | b'[' | b']' | b':' | b',') {
            out.extend_from_slice(gap);
        }
    }
    out
}

fn queue() -> impl Strategy<Value = MessageQueue> {
    (text(10), text(6), any::<i32>())
        .prop_map(|(topic, broker, queue_id)| MessageQueue::new(topic, broker, queue_id))
}

fn consume_stats(entries_max: usize) -> impl Strategy<Value = ConsumeStats> {
    let wrapper = any::<(i64, i64, i64, i64)>().prop_map(
        |(broker_offset, consumer_offset, last_timestamp, pull_offset)| OffsetWrapper {
            broker_offset,
            consumer_offset,
            last_timestamp,
            pull_offset,
        },
    );
    (
        (any::<i32>(), 0_u32..8),
        btree_map(queue(), wrapper, 0..=entries_max),
    )
        .prop_map(|((mantissa, shift), offset_table)| ConsumeStats {
            consume_tps: f64::from(mantissa) / f64::from(1_u32 << shift),
            offset_table,
        })
}

fn topic_stats() -> impl Strategy<Value = TopicStatsTable> {
    let offset =
        any::<(i64, i64, i64)>().prop_map(|(last_update_timestamp, max_offset, min_offset)| {
            TopicOffset {
                last_update_timestamp,
                max_offset,
                min_offset,
            }
        });
    btree_map(queue(), offset, 0..12).prop_map(|offset_table| TopicStatsTable { offset_table })
}

/// Every decoder of object-key text, on the same bytes; none may panic.
fn decode_all(bytes: &[u8]) -> Result<ObjectKeyValue, ObjectKeyError> {
    let _ = ConsumeStats::from_json(bytes);
    let _ = TopicStatsTable::from_json(bytes);
    parse_object_keys(bytes)
}

proptest! {
    #[test]
    fn object_key_maps_round_trip(map in object_key_map()) {
        let text = map.to_json();
        prop_assert_eq!(parse_object_keys(&text).expect("encoded map parses"), map);
    }

    #[test]
    fn any_tree_round_trips(value in tree()) {
        let text = value.to_json();
        prop_assert_eq!(parse_object_keys(&text).expect("encoded tree parses"), value);
    }

    #[test]
    fn whitespace_between_tokens_is_ignored(
        value in tree(),
        gap in select(vec![&b" "[..], b"\n", b"\t\r\n ", b""]),
    ) {
        let text = spaced(&value.to_json(), gap);
        prop_assert_eq!(parse_object_keys(&text).expect("spaced tree parses"), value);
    }

    #[test]
    fn trees_with_string_keys_agree_with_serde_json(value in tree()) {
        // Where the text is standard JSON, the tree converts to what serde_json reads.
        let text = value.to_json();
        if let Ok(standard) = serde_json::from_slice::<serde_json::Value>(&text) {
            let converted = parse_object_keys(&text)
                .expect("standard JSON parses")
                .into_standard_json()
                .expect("standard JSON has string keys");
            prop_assert_eq!(converted, standard);
        }
    }

    #[test]
    fn consume_stats_round_trip(stats in consume_stats(12)) {
        prop_assert_eq!(ConsumeStats::from_json(&stats.to_json()).expect("parses"), stats);
    }

    #[test]
    fn topic_stats_round_trip(stats in topic_stats()) {
        prop_assert_eq!(TopicStatsTable::from_json(&stats.to_json()).expect("parses"), stats);
    }

    #[test]
    fn every_truncation_of_a_container_is_an_error(
        map in object_key_map_of(tree_sized(3, 12), 4),
        stats in consume_stats(3),
    ) {
        for text in [map.to_json(), stats.to_json()] {
            for len in 0..text.len() {
                prop_assert!(decode_all(&text[..len]).is_err(), "prefix of {} bytes parsed", len);
            }
        }
    }

    #[test]
    fn mutated_text_never_panics(
        value in tree(),
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut text = value.to_json();
        for (index, byte) in edits {
            if !text.is_empty() {
                let at = index.index(text.len());
                text[at] = byte;
            }
        }
        let _ = decode_all(&text);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..512)) {
        let _ = decode_all(&bytes);
    }

    #[test]
    fn json_like_bytes_never_panic(text in "[{}\\[\\]:,\"\\\\ 0-9a-z.eE+-]{0,96}") {
        if let Ok(value) = decode_all(text.as_bytes()) {
            // Whatever parses re-encodes to text that parses (equality is not asserted: a
            // float read from long text may move by an ulp when written back).
            prop_assert!(parse_object_keys(&value.to_json()).is_ok());
        }
    }
}

#[test]
fn deep_and_wide_inputs_are_refused_without_panicking() {
    let deep_keys = "{".repeat(100_000);
    assert!(matches!(
        parse_object_keys(deep_keys.as_bytes()),
        Err(ObjectKeyError::TooDeep { .. })
    ));
    let deep_values = "{\"a\":[".repeat(50_000);
    assert!(matches!(
        ConsumeStats::from_json(deep_values.as_bytes()),
        Err(ObjectKeyError::TooDeep { .. })
    ));
    let mut keyed: BTreeMap<MessageQueue, OffsetWrapper> = BTreeMap::new();
    keyed.insert(MessageQueue::new("t", "b", 0), OffsetWrapper::default());
    let stats = ConsumeStats {
        consume_tps: 0.0,
        offset_table: keyed,
    };
    assert_eq!(
        ConsumeStats::from_json(&stats.to_json()).expect("parses"),
        stats
    );
}
