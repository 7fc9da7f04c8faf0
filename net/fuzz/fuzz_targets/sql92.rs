//! Fuzz target: the SQL92 selector (`codec::sql92`) on arbitrary text and record bytes. It
//! must never panic; whatever compiles must print to text that compiles to the same tree, and
//! evaluate against arbitrary properties without panicking.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rmq_net::codec::sql92::{compile, parse};

fuzz_target!(|data: &[u8]| {
    // First line: the expression; the rest: a record (or properties) to evaluate it on.
    let split = data.iter().position(|b| *b == 0).unwrap_or(data.len());
    let (expr, rest) = data.split_at(split);
    let Ok(text) = std::str::from_utf8(expr) else {
        return;
    };
    let _ = parse(text);
    let Ok(selector) = compile(text) else {
        return;
    };
    let printed = selector.expr().to_string();
    // The printed form parenthesises every compound operand, so near the nesting limit it may
    // need more depth than the input did; anything else must round-trip.
    match compile(&printed) {
        Ok(again) => assert_eq!(again.expr(), selector.expr(), "compile(print(e)) == e"),
        Err(err) => assert!(
            err.message.contains("nesting deeper"),
            "printed selector {printed:?} does not compile: {err}"
        ),
    }
    let _ = selector.matches_record(rest);
    if let Ok(props) = std::str::from_utf8(rest) {
        let _ = selector.matches(&|name: &str| {
            props
                .split('\u{2}')
                .filter_map(|s| s.split_once('\u{1}'))
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v)
        });
    }
});
