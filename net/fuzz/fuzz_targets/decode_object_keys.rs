//! Fuzz target: the object-key JSON reader (`body::object_keys`, PROTOCOL.md §5.9) and the
//! ConsumeStats/TopicStatsTable decoders built on it, on arbitrary bytes. None may panic;
//! every tree that parses must re-encode to text that parses to the same tree (floats within
//! an ulp or two: `serde_json`'s default float parsing may round long text differently), and
//! every stats body that decodes must re-encode and decode again to an equal body.
//! `smoke.sh` also runs it with a malloc limit, so an allocation past the codec limits crashes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rmq_net::codec::body::object_keys::{parse_object_keys, ObjectKeyValue};
use rmq_net::codec::body::stats::{ConsumeStats, TopicStatsTable};

/// Whether two floats are equal or at most two representable values apart.
fn close(a: f64, b: f64) -> bool {
    a == b
        || (a.is_sign_negative() == b.is_sign_negative() && a.to_bits().abs_diff(b.to_bits()) <= 2)
}

/// Tree equality with [`close`] for floats.
fn same(a: &ObjectKeyValue, b: &ObjectKeyValue) -> bool {
    match (a, b) {
        (ObjectKeyValue::Number(x), ObjectKeyValue::Number(y)) => {
            x == y
                || (x.is_f64()
                    && y.is_f64()
                    && matches!((x.as_f64(), y.as_f64()), (Some(x), Some(y)) if close(x, y)))
        }
        (ObjectKeyValue::Array(x), ObjectKeyValue::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (ObjectKeyValue::Object(x), ObjectKeyValue::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((xk, xv), (yk, yv))| same(xk, yk) && same(xv, yv))
        }
        _ => a == b,
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(tree) = parse_object_keys(data) {
        let encoded = tree.to_json();
        let again = parse_object_keys(&encoded).expect("a re-encoded tree parses");
        assert!(
            same(&again, &tree),
            "decode(encode(decode(bytes))) == decode(bytes)"
        );
    }
    if let Ok(stats) = ConsumeStats::from_json(data) {
        let again = ConsumeStats::from_json(&stats.to_json()).expect("re-encoded ConsumeStats");
        assert_eq!(again.offset_table, stats.offset_table);
        assert!(close(again.consume_tps, stats.consume_tps));
    }
    if let Ok(stats) = TopicStatsTable::from_json(data) {
        let again =
            TopicStatsTable::from_json(&stats.to_json()).expect("re-encoded TopicStatsTable");
        assert_eq!(again, stats);
    }
});
