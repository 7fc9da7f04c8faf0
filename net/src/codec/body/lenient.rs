//! The tolerant JSON reader every body decoder uses (PROTOCOL.md §5.9).
//!
//! fastjson writes and accepts things standard JSON does not. [`parse_lenient`] accepts them:
//! - unquoted integer map keys, `{0:"a"}`, anywhere outside string literals, and `null`
//!   object members: a one-pass byte scanner ([`normalize`]) quotes the keys and drops the
//!   null members (so the struct default applies), respecting strings and escapes;
//! - unknown fields (ignored by serde);
//! - numbers and booleans written as strings, and enums written as ordinals, through the
//!   field helpers [`i32()`], [`i64()`], [`bool()`] and the enum visitor.
//!
//! Must never: panic on input, or recurse deeper than `serde_json`'s nesting limit (128).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde::Deserialize;
use serde_json::Value;

use crate::codec::error::CodecError;

/// Parses a JSON body the way fastjson would accept it: [`normalize`] first, then typed
/// deserialization straight from the bytes (no intermediate tree).
///
/// # Errors
/// [`CodecError::Json`] (with `what`) for malformed JSON, nesting deeper than 128, or a value
/// of the wrong shape for `T`.
pub fn parse_lenient<T: DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
) -> Result<T, CodecError> {
    let normalized = normalize(bytes);
    serde_json::from_slice(&normalized).map_err(|e| CodecError::json(what, &e))
}

/// Rewrites fastjson-only syntax into standard JSON, in one pass over the bytes:
/// - bare integer object keys are quoted (`{0:"a",-1:"b"}` becomes `{"0":"a","-1":"b"}`): an
///   optional `-` and digits right after `{` or `,` (whitespace allowed) and followed by `:`;
/// - object members whose value is `null` are removed (`{"a":null,"b":1}` becomes
///   `{"b":1}`), so serde applies the field's default. `null` inside arrays is kept.
///
/// Bytes inside string literals are never touched. Returns the input unchanged (borrowed)
/// when there is nothing to rewrite. Invalid JSON stays invalid (the parser reports it).
#[must_use]
pub fn normalize(input: &[u8]) -> Cow<'_, [u8]> {
    let mut rewriter = Rewriter {
        input,
        out: Vec::new(),
        copied_upto: 0,
    };
    let mut in_string = false;
    let mut escaped = false;
    // Last byte outside strings that was not whitespace.
    let mut last_token = 0u8;
    // Output position of the last `{` or `,` outside strings, and whether it was `{`.
    let mut member_delimiter: Option<(usize, bool)> = None;
    let mut index = 0;
    while index < input.len() {
        let byte = input[index];
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
                last_token = b'"';
            }
            index += 1;
            continue;
        }
        match byte {
            b'"' => {
                in_string = true;
                index += 1;
            }
            b'{' | b',' => {
                member_delimiter = Some((rewriter.out_position(index), byte == b'{'));
                last_token = byte;
                index += 1;
            }
            b'-' | b'0'..=b'9' if matches!(last_token, b'{' | b',') => {
                if let Some(end) = bare_integer_key_end(input, index) {
                    rewriter.flush(index);
                    rewriter.out.push(b'"');
                    rewriter.flush(end);
                    rewriter.out.push(b'"');
                    last_token = b'"';
                    index = end;
                } else {
                    last_token = b'0';
                    index = scan_number(input, index);
                }
            }
            b'n' if last_token == b':' && is_null_literal(input, index) => {
                let Some((delimiter, is_brace)) = member_delimiter else {
                    last_token = b'n';
                    index += 1;
                    continue;
                };
                // Drop `,"key":null`, or `"key":null` plus the comma after it when the
                // member is the first of its object.
                rewriter.flush(index);
                rewriter
                    .out
                    .truncate(if is_brace { delimiter + 1 } else { delimiter });
                index += NULL_LITERAL.len();
                if is_brace {
                    let next = skip_whitespace(input, index);
                    if input.get(next) == Some(&b',') {
                        index = next + 1;
                    }
                    last_token = b'{';
                } else {
                    member_delimiter = None;
                    last_token = b'0';
                }
                rewriter.copied_upto = index;
            }
            b' ' | b'\t' | b'\n' | b'\r' => index += 1,
            other => {
                last_token = other;
                index += 1;
            }
        }
    }
    assert!(
        rewriter.copied_upto <= input.len(),
        "rewriter copied past the input"
    );
    if rewriter.copied_upto == 0 {
        return Cow::Borrowed(input);
    }
    rewriter.flush(input.len());
    Cow::Owned(rewriter.out)
}

const NULL_LITERAL: &[u8] = b"null";

/// The output being built: `out` holds the rewritten form of `input[..copied_upto]`.
struct Rewriter<'a> {
    input: &'a [u8],
    out: Vec<u8>,
    copied_upto: usize,
}

impl Rewriter<'_> {
    /// Where input byte `index` (not yet copied) will land in `out`.
    fn out_position(&self, index: usize) -> usize {
        assert!(
            index >= self.copied_upto,
            "position of a byte already copied"
        );
        self.out.len() + (index - self.copied_upto)
    }

    /// Copies the input up to `index`.
    fn flush(&mut self, index: usize) {
        self.out
            .extend_from_slice(&self.input[self.copied_upto..index]);
        self.copied_upto = index;
    }
}

/// Whether `null` starts at `index` as a whole literal.
fn is_null_literal(input: &[u8], index: usize) -> bool {
    input[index..].starts_with(NULL_LITERAL)
        && input
            .get(index + NULL_LITERAL.len())
            .is_none_or(|next| !next.is_ascii_alphanumeric())
}

fn skip_whitespace(input: &[u8], mut index: usize) -> usize {
    while index < input.len() && matches!(input[index], b' ' | b'\t' | b'\n' | b'\r') {
        index += 1;
    }
    index
}

/// End of the number starting at `start` (an optional `-` then digits); at least `start + 1`.
fn scan_number(input: &[u8], start: usize) -> usize {
    let mut end = start + 1;
    while end < input.len() && input[end].is_ascii_digit() {
        end += 1;
    }
    end
}

/// If an integer at `start` is an object key (digits, then optional whitespace, then `:`),
/// the end of its digits.
fn bare_integer_key_end(input: &[u8], start: usize) -> Option<usize> {
    let digits_start = if input[start] == b'-' {
        start + 1
    } else {
        start
    };
    let end = scan_number(input, start);
    if end <= digits_start {
        return None;
    }
    let after = skip_whitespace(input, end);
    (input.get(after) == Some(&b':')).then_some(end)
}

/// Field helper: an `i64` given as a number, a numeric string (trimmed; empty = 0) or a
/// boolean (fastjson's coercions).
///
/// # Errors
/// A serde error for anything else, or a fractional number.
pub fn i64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::Number(number) => number
            .as_i64()
            .or_else(|| number.as_u64().and_then(|n| i64::try_from(n).ok()))
            .ok_or_else(|| de::Error::custom(format!("{number} is not an i64"))),
        Value::String(text) if text.trim().is_empty() => Ok(0),
        Value::String(text) => text
            .trim()
            .parse()
            .map_err(|_| de::Error::custom(format!("`{text}` is not an i64"))),
        Value::Bool(flag) => Ok(i64::from(flag)),
        Value::Null => Ok(0),
        other => Err(de::Error::custom(format!("{other} is not an i64"))),
    }
}

/// Field helper: an `i32`, accepted as [`i64()`] is, then range-checked.
///
/// # Errors
/// As [`i64()`], or a value outside `i32`.
pub fn i32<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i32, D::Error> {
    let wide = i64(deserializer)?;
    i32::try_from(wide).map_err(|_| de::Error::custom(format!("{wide} is out of i32 range")))
}

/// Field helper: a boolean given as a boolean, a number (non-zero = true) or a string
/// (`true` in any case, or `1`).
///
/// # Errors
/// A serde error for arrays and objects.
pub fn bool<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::Bool(flag) => Ok(flag),
        Value::Number(number) => Ok(number.as_f64().is_some_and(|n| n != 0.0)),
        Value::String(text) => {
            let text = text.trim();
            Ok(text.eq_ignore_ascii_case("true") || text == "1")
        }
        Value::Null => Ok(false),
        other => Err(de::Error::custom(format!("{other} is not a boolean"))),
    }
}

/// Deserializes a Java enum given by name or by ordinal (used by `name_enum!`).
///
/// # Errors
/// A serde error for an unknown name or ordinal, or another JSON type.
pub(crate) fn deserialize_name_enum<'de, D, T>(
    deserializer: D,
    enum_name: &'static str,
    from_name: fn(&str) -> Option<T>,
    from_ordinal: fn(i64) -> Option<T>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    struct NameVisitor<T> {
        enum_name: &'static str,
        from_name: fn(&str) -> Option<T>,
        from_ordinal: fn(i64) -> Option<T>,
    }

    impl<T> Visitor<'_> for NameVisitor<T> {
        type Value = T;

        fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(formatter, "a {} name or ordinal", self.enum_name)
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<T, E> {
            (self.from_name)(text.trim())
                .ok_or_else(|| E::custom(format!("unknown {} `{text}`", self.enum_name)))
        }

        fn visit_i64<E: de::Error>(self, ordinal: i64) -> Result<T, E> {
            (self.from_ordinal)(ordinal)
                .ok_or_else(|| E::custom(format!("unknown {} ordinal {ordinal}", self.enum_name)))
        }

        fn visit_u64<E: de::Error>(self, ordinal: u64) -> Result<T, E> {
            let ordinal = i64::try_from(ordinal).map_err(|_| E::custom("ordinal out of range"))?;
            self.visit_i64(ordinal)
        }
    }

    deserializer.deserialize_any(NameVisitor {
        enum_name,
        from_name,
        from_ordinal,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    fn normalized(input: &str) -> String {
        String::from_utf8(normalize(input.as_bytes()).into_owned()).expect("utf-8 kept")
    }

    #[test]
    fn quotes_bare_integer_keys() {
        assert_eq!(normalized(r#"{0:"a",1:"b"}"#), r#"{"0":"a","1":"b"}"#);
        assert_eq!(normalized(r#"{ -12 : "x" }"#), r#"{ "-12" : "x" }"#);
        assert_eq!(
            normalized(r#"{"t":{"brokerAddrs":{0:"a:1",10:"b:2"}},"n":[1,2,{3:4}]}"#),
            r#"{"t":{"brokerAddrs":{"0":"a:1","10":"b:2"}},"n":[1,2,{"3":4}]}"#
        );
        assert_eq!(normalized("{\n  7\t:\n1}"), "{\n  \"7\"\t:\n1}");
    }

    #[test]
    fn drops_null_members_only() {
        assert_eq!(normalized(r#"{"a":null}"#), "{}");
        assert_eq!(normalized(r#"{"a":null,"b":1}"#), r#"{"b":1}"#);
        assert_eq!(normalized(r#"{"b":1,"a":null}"#), r#"{"b":1}"#);
        assert_eq!(normalized(r#"{"b":1,"a":null,"c":2}"#), r#"{"b":1,"c":2}"#);
        assert_eq!(
            normalized(r#"{ "a" : null , "b" : null , 3:null, 4:[null] }"#),
            r#"{ "4":[null] }"#
        );
        assert_eq!(
            normalized(r#"{"a":{"x":null},"b":[1,null]}"#),
            r#"{"a":{},"b":[1,null]}"#
        );
        assert_eq!(normalized(r#"{"s":"k\":null"}"#), r#"{"s":"k\":null"}"#);
        // Not a null literal, or not a member value: left for the parser to judge.
        for input in [r#"{"a":nullx}"#, r#"[null]"#, "null", r#":null"#] {
            assert_eq!(normalized(input), input);
        }
    }

    #[test]
    fn leaves_strings_values_and_arrays_alone() {
        for input in [
            r#"{"k":"{0:\"a\",1:2}"}"#,
            r#"{"k":"x\\",0.5:1}"#,
            r#"[0,1,{"a":-2},3]"#,
            r#"{"a":1,"b":-2}"#,
            r#"{"esc":"\"{1:2}\""}"#,
            "",
            "-",
            "{-",
            "{1",
        ] {
            assert_eq!(normalized(input), input, "{input}");
        }
        assert!(matches!(normalize(br#"{"a":1}"#), Cow::Borrowed(_)));
    }

    #[test]
    fn parses_nested_unquoted_keys_and_nulls() {
        #[derive(Debug, Deserialize, PartialEq, Default)]
        #[serde(default)]
        struct Inner {
            addrs: BTreeMap<i64, String>,
            name: String,
        }
        #[derive(Debug, Deserialize, PartialEq, Default)]
        #[serde(default)]
        struct Outer {
            inner: Vec<Inner>,
            #[serde(deserialize_with = "i64")]
            count: i64,
            #[serde(deserialize_with = "bool")]
            flag: bool,
        }
        let parsed: Outer = parse_lenient(
            "test",
            br#"{"inner":[{"addrs":{0:"a",1:"b"},"name":null,"extra":{5:[1]}}],"count":"42","flag":"TRUE","unknown":null}"#,
        )
        .expect("lenient parse");
        assert_eq!(
            parsed,
            Outer {
                inner: vec![Inner {
                    addrs: [(0, "a".to_owned()), (1, "b".to_owned())]
                        .into_iter()
                        .collect(),
                    name: String::new(),
                }],
                count: 42,
                flag: true,
            }
        );
        let empty: Outer = parse_lenient("test", br#"{"count":null,"inner":null}"#).expect("nulls");
        assert_eq!(empty, Outer::default());
        assert!(matches!(
            parse_lenient::<Outer>("test", br#"{"count":"x"}"#),
            Err(CodecError::Json { what: "test", .. })
        ));
        assert!(parse_lenient::<Outer>("test", b"{0:").is_err());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = "[".repeat(100_000);
        assert!(parse_lenient::<Value>("deep", deep.as_bytes()).is_err());
        let deep_objects = "{0:".repeat(10_000);
        assert!(parse_lenient::<Value>("deep", deep_objects.as_bytes()).is_err());
    }

    /// Reference semantics: null object members removed, recursively.
    fn without_null_members(value: &Value) -> Value {
        match value {
            Value::Object(map) => Value::Object(
                map.iter()
                    .filter(|(_, member)| !member.is_null())
                    .map(|(key, member)| (key.clone(), without_null_members(member)))
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.iter().map(without_null_members).collect()),
            other => other.clone(),
        }
    }

    /// fastjson-style text: keys that are canonical integers written bare.
    fn write_fastjson(value: &Value, pretty: bool, out: &mut String) {
        let separator = if pretty { ", " } else { "," };
        match value {
            Value::Object(map) => {
                out.push('{');
                for (index, (key, member)) in map.iter().enumerate() {
                    if index > 0 {
                        out.push_str(separator);
                    }
                    let bare = key.parse::<i64>().is_ok_and(|n| n.to_string() == *key);
                    if bare {
                        out.push_str(key);
                    } else {
                        out.push_str(&Value::from(key.as_str()).to_string());
                    }
                    out.push_str(if pretty { " : " } else { ":" });
                    write_fastjson(member, pretty, out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (index, item) in items.iter().enumerate() {
                    if index > 0 {
                        out.push_str(separator);
                    }
                    write_fastjson(item, pretty, out);
                }
                out.push(']');
            }
            scalar => out.push_str(&scalar.to_string()),
        }
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            "[a-z0-9:,{}\"\\\\ ]{0,6}".prop_map(Value::String),
        ];
        let key = prop_oneof![
            "[a-z0-9:,{}\" ]{0,4}",
            any::<i16>().prop_map(|n| n.to_string())
        ];
        leaf.prop_recursive(4, 48, 5, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                proptest::collection::btree_map(key.clone(), inner, 0..5)
                    .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn normalize_matches_reference_semantics(value in arb_json(), pretty in any::<bool>()) {
            let mut text = String::new();
            write_fastjson(&value, pretty, &mut text);
            let parsed: Value = parse_lenient("fuzz", text.as_bytes()).expect("normalized JSON parses");
            prop_assert_eq!(parsed, without_null_members(&value));
        }

        #[test]
        fn normalizing_standard_json_without_nulls_is_identity(
            value in any::<BTreeMap<String, (i64, String)>>()
        ) {
            let text = serde_json::to_vec(&value).expect("serializable");
            let normalized = normalize(&text);
            prop_assert_eq!(normalized.as_ref(), text.as_slice());
        }

        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_lenient::<Value>("fuzz", &bytes);
        }

        #[test]
        fn never_panics_on_json_like_bytes(text in "[{}\\[\\],:\"\\\\n0-9ul -]{0,64}") {
            let _ = normalize(text.as_bytes());
            let _ = parse_lenient::<Value>("fuzz", text.as_bytes());
        }
    }
}
