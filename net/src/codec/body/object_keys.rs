//! fastjson text whose object keys may be any JSON value (PROTOCOL.md §5.9).
//!
//! Java writes maps keyed by objects as the key object itself, e.g. the `offsetTable` of
//! ConsumeStats and TopicStatsTable:
//! `{"offsetTable":{{"brokerName":"b","queueId":0,"topic":"t"}:{"brokerOffset":4}}}`. Standard
//! JSON (and so `serde_json` and [`super::parse_lenient`]) rejects that. This module owns the
//! reader for it: [`parse_object_keys`] turns such text into an [`ObjectKeyValue`] tree whose
//! objects are ordered `(key, value)` lists with keys of any type, plus the compact writer
//! ([`ObjectKeyValue::to_json`]) and the error type ([`ObjectKeyError`]). Structure (objects,
//! arrays) is walked here; scalars (strings, numbers, literals) are parsed by `serde_json`.
//! Accepted besides standard JSON: keys of any type (`{{"a":1}:2}`, `{0:"x"}`), and form feed
//! as whitespace between tokens (fastjson skips it too). Mapping a tree onto typed bodies is left to the body modules
//! ([`super::stats`]).
//!
//! Must never: panic on any input, read an input larger than [`OBJECT_KEY_BODY_SIZE_MAX`],
//! follow nesting deeper than [`OBJECT_KEY_DEPTH_MAX`], grow one object or array past
//! [`OBJECT_KEY_ENTRIES_MAX`] entries, or accept trailing bytes after the value.

use serde_json::{Map, Number, Value};
use thiserror::Error;

use crate::codec::limits::{
    OBJECT_KEY_BODY_SIZE_MAX, OBJECT_KEY_DEPTH_MAX, OBJECT_KEY_ENTRIES_MAX,
};

/// A JSON value whose object keys may be any value. Objects keep their members in input order
/// (duplicates included); lookups by name take the last one, as `serde_json` does.
#[derive(Debug, Clone, PartialEq)]
pub enum ObjectKeyValue {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number, as `serde_json` holds it.
    Number(Number),
    /// A string.
    String(String),
    /// `[...]`.
    Array(Vec<ObjectKeyValue>),
    /// `{key:value,...}` with keys of any type, in input order.
    Object(Vec<(ObjectKeyValue, ObjectKeyValue)>),
}

/// Why object-key text (or a tree made from it) was refused.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ObjectKeyError {
    /// The input is larger than [`OBJECT_KEY_BODY_SIZE_MAX`].
    #[error("object-key body of {len} bytes is too large (max {max})")]
    TooLarge {
        /// Input length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The input ended where a value or delimiter was due.
    #[error("unexpected end of object-key JSON at byte {offset}")]
    UnexpectedEnd {
        /// Input length.
        offset: usize,
    },
    /// A structural byte other than the one due.
    #[error("expected `{expected}` at byte {offset}")]
    Expected {
        /// The byte due (`:`, `,`, `}` or `]`).
        expected: char,
        /// Where.
        offset: usize,
    },
    /// A string, number or literal that `serde_json` refused.
    #[error("invalid JSON value at byte {offset}: {source}")]
    Scalar {
        /// Where the value starts.
        offset: usize,
        /// `serde_json`'s reason (its line/column count from `offset`).
        source: serde_json::Error,
    },
    /// Objects and arrays nested deeper than [`OBJECT_KEY_DEPTH_MAX`].
    #[error("object-key JSON nested deeper than {max} at byte {offset}")]
    TooDeep {
        /// Where the container that is one too deep opens.
        offset: usize,
        /// The limit.
        max: usize,
    },
    /// One object or array with more than [`OBJECT_KEY_ENTRIES_MAX`] entries.
    #[error("more than {max} entries in one object-key JSON container at byte {offset}")]
    TooManyEntries {
        /// Where the entry past the limit starts.
        offset: usize,
        /// The limit.
        max: usize,
    },
    /// Bytes other than whitespace after the value.
    #[error("trailing bytes after object-key JSON at byte {offset}")]
    Trailing {
        /// Where they start.
        offset: usize,
    },
    /// A body (or one of its members) that must be an object is not.
    #[error("{what} is not a JSON object")]
    NotAnObject {
        /// Which body or member.
        what: &'static str,
    },
    /// A body member whose name is not a string.
    #[error("{what} has a member name that is not a string")]
    MemberName {
        /// Which body.
        what: &'static str,
    },
    /// A key other than a string or a number, where standard JSON is needed
    /// ([`ObjectKeyValue::into_standard_json`]).
    #[error("object key that is not a string or number where standard JSON is needed")]
    NonStringKey,
    /// A value of the wrong shape for the type it maps to.
    #[error("{what}: {source}")]
    Shape {
        /// What was being read.
        what: &'static str,
        /// `serde_json`'s reason.
        source: serde_json::Error,
    },
}

/// Parses object-key JSON text (see the module doc) into a tree.
///
/// # Errors
/// [`ObjectKeyError`]: the input is too large, not JSON apart from its keys, nested too deep,
/// has too many entries in one container, or has trailing bytes.
pub fn parse_object_keys(bytes: &[u8]) -> Result<ObjectKeyValue, ObjectKeyError> {
    if bytes.len() > OBJECT_KEY_BODY_SIZE_MAX {
        return Err(ObjectKeyError::TooLarge {
            len: bytes.len(),
            max: OBJECT_KEY_BODY_SIZE_MAX,
        });
    }
    let mut reader = Reader { bytes, position: 0 };
    let value = reader.value(0)?;
    reader.skip_whitespace();
    if reader.position < bytes.len() {
        return Err(ObjectKeyError::Trailing {
            offset: reader.position,
        });
    }
    Ok(value)
}

/// A cursor over the input. `position` never passes `bytes.len()`.
struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl Reader<'_> {
    /// Skips JSON whitespace and form feed.
    fn skip_whitespace(&mut self) {
        while self
            .bytes
            .get(self.position)
            .is_some_and(u8::is_ascii_whitespace)
        {
            self.position += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_whitespace();
        self.bytes.get(self.position).copied()
    }

    /// Consumes `byte` after optional whitespace.
    fn eat(&mut self, byte: u8) -> bool {
        if self.peek() == Some(byte) {
            self.position += 1;
            return true;
        }
        false
    }

    fn expect(&mut self, byte: u8) -> Result<(), ObjectKeyError> {
        if self.eat(byte) {
            return Ok(());
        }
        Err(self.unexpected(byte))
    }

    fn unexpected(&self, expected: u8) -> ObjectKeyError {
        if self.position >= self.bytes.len() {
            ObjectKeyError::UnexpectedEnd {
                offset: self.position,
            }
        } else {
            ObjectKeyError::Expected {
                expected: char::from(expected),
                offset: self.position,
            }
        }
    }

    /// One value inside `depth` open containers.
    fn value(&mut self, depth: usize) -> Result<ObjectKeyValue, ObjectKeyError> {
        match self.peek() {
            None => Err(ObjectKeyError::UnexpectedEnd {
                offset: self.position,
            }),
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(_) => self.scalar(),
        }
    }

    /// Steps over the opening byte of the container that makes the nesting `depth` deep.
    fn open(&mut self, depth: usize) -> Result<(), ObjectKeyError> {
        if depth > OBJECT_KEY_DEPTH_MAX {
            return Err(ObjectKeyError::TooDeep {
                offset: self.position,
                max: OBJECT_KEY_DEPTH_MAX,
            });
        }
        self.position += 1;
        Ok(())
    }

    fn check_entries(&self, count: usize) -> Result<(), ObjectKeyError> {
        if count >= OBJECT_KEY_ENTRIES_MAX {
            return Err(ObjectKeyError::TooManyEntries {
                offset: self.position,
                max: OBJECT_KEY_ENTRIES_MAX,
            });
        }
        Ok(())
    }

    /// `{K:V,...}`, the `{` next; keys of any type.
    fn object(&mut self, depth: usize) -> Result<ObjectKeyValue, ObjectKeyError> {
        self.open(depth)?;
        let mut entries = Vec::new();
        if self.eat(b'}') {
            return Ok(ObjectKeyValue::Object(entries));
        }
        loop {
            self.check_entries(entries.len())?;
            let key = self.value(depth)?;
            self.expect(b':')?;
            let value = self.value(depth)?;
            entries.push((key, value));
            if self.eat(b'}') {
                return Ok(ObjectKeyValue::Object(entries));
            }
            if !self.eat(b',') {
                return Err(self.unexpected(b'}'));
            }
        }
    }

    /// `[V,...]`, the `[` next.
    fn array(&mut self, depth: usize) -> Result<ObjectKeyValue, ObjectKeyError> {
        self.open(depth)?;
        let mut items = Vec::new();
        if self.eat(b']') {
            return Ok(ObjectKeyValue::Array(items));
        }
        loop {
            self.check_entries(items.len())?;
            items.push(self.value(depth)?);
            if self.eat(b']') {
                return Ok(ObjectKeyValue::Array(items));
            }
            if !self.eat(b',') {
                return Err(self.unexpected(b']'));
            }
        }
    }

    /// A string, number or literal (the next byte is neither `{` nor `[`), by `serde_json`,
    /// which also checks that a number or literal ends at a delimiter.
    fn scalar(&mut self) -> Result<ObjectKeyValue, ObjectKeyError> {
        let start = self.position;
        let rest = self.bytes.get(start..).unwrap_or_default();
        let mut stream = serde_json::Deserializer::from_slice(rest).into_iter::<Value>();
        match stream.next() {
            Some(Ok(value)) => {
                // A prefix of `rest`, so the sum stays within the input.
                self.position = start + stream.byte_offset().min(rest.len());
                Ok(ObjectKeyValue::from(value))
            }
            Some(Err(source)) => Err(ObjectKeyError::Scalar {
                offset: start,
                source,
            }),
            None => Err(ObjectKeyError::UnexpectedEnd {
                offset: self.bytes.len(),
            }),
        }
    }
}

impl ObjectKeyValue {
    /// The last member named `name` (a string key) of an object; `None` for other values.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&Self> {
        self.as_object()?
            .iter()
            .rev()
            .find(|(key, _)| key.as_str() == Some(name))
            .map(|(_, value)| value)
    }

    /// An object's members, in input order.
    #[must_use]
    pub fn as_object(&self) -> Option<&[(Self, Self)]> {
        match self {
            Self::Object(entries) => Some(entries),
            _ => None,
        }
    }

    /// A string's text.
    #[must_use]
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(text) => Some(text),
            _ => None,
        }
    }

    /// A number that is an integer in `i64` range.
    #[must_use]
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Self::Number(number) => number.as_i64(),
            _ => None,
        }
    }

    /// Any number, as `f64`.
    #[must_use]
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Number(number) => number.as_f64(),
            _ => None,
        }
    }

    /// Compact JSON text in the form [`parse_object_keys`] reads: keys written as the values
    /// they are (objects as objects, numbers bare, strings quoted).
    ///
    /// Recursion follows the tree's depth: trees from [`parse_object_keys`] are at most
    /// [`OBJECT_KEY_DEPTH_MAX`] deep.
    #[must_use]
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_json(&mut out);
        out
    }

    /// Appends [`Self::to_json`]'s text to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            Self::Null => out.extend_from_slice(b"null"),
            Self::Bool(true) => out.extend_from_slice(b"true"),
            Self::Bool(false) => out.extend_from_slice(b"false"),
            Self::Number(number) => out.extend_from_slice(number.to_string().as_bytes()),
            Self::String(text) => write_string(text, out),
            Self::Array(items) => {
                out.push(b'[');
                for (index, item) in items.iter().enumerate() {
                    if index > 0 {
                        out.push(b',');
                    }
                    item.write_json(out);
                }
                out.push(b']');
            }
            Self::Object(entries) => {
                out.push(b'{');
                for (index, (key, value)) in entries.iter().enumerate() {
                    if index > 0 {
                        out.push(b',');
                    }
                    key.write_json(out);
                    out.push(b':');
                    value.write_json(out);
                }
                out.push(b'}');
            }
        }
    }

    /// The standard JSON value, for trees whose keys are all strings or numbers (a number key
    /// becomes its text, as fastjson's integer keys do); duplicate keys keep the last value.
    ///
    /// # Errors
    /// [`ObjectKeyError::NonStringKey`] for a key of any other type.
    pub fn into_standard_json(self) -> Result<Value, ObjectKeyError> {
        Ok(match self {
            Self::Null => Value::Null,
            Self::Bool(flag) => Value::Bool(flag),
            Self::Number(number) => Value::Number(number),
            Self::String(text) => Value::String(text),
            Self::Array(items) => Value::Array(
                items
                    .into_iter()
                    .map(Self::into_standard_json)
                    .collect::<Result<_, _>>()?,
            ),
            Self::Object(entries) => {
                let mut map = Map::new();
                for (key, value) in entries {
                    let key = match key {
                        Self::String(text) => text,
                        Self::Number(number) => number.to_string(),
                        _ => return Err(ObjectKeyError::NonStringKey),
                    };
                    map.insert(key, value.into_standard_json()?);
                }
                Value::Object(map)
            }
        })
    }
}

impl From<Value> for ObjectKeyValue {
    fn from(value: Value) -> Self {
        match value {
            Value::Null => Self::Null,
            Value::Bool(flag) => Self::Bool(flag),
            Value::Number(number) => Self::Number(number),
            Value::String(text) => Self::String(text),
            Value::Array(items) => Self::Array(items.into_iter().map(Self::from).collect()),
            Value::Object(map) => Self::Object(
                map.into_iter()
                    .map(|(key, value)| (Self::String(key), Self::from(value)))
                    .collect(),
            ),
        }
    }
}

/// A JSON string literal, escaped as `serde_json` and fastjson escape.
fn write_string(text: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for byte in text.bytes() {
        match byte {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            0x00..=0x1f => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 0x0f)],
            ]),
            other => out.push(other),
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ObjectKeyValue, ObjectKeyError> {
        parse_object_keys(text.as_bytes())
    }

    fn string(text: &str) -> ObjectKeyValue {
        ObjectKeyValue::String(text.to_owned())
    }

    fn int(n: i64) -> ObjectKeyValue {
        ObjectKeyValue::Number(n.into())
    }

    #[test]
    fn reads_object_keys_and_keeps_member_order() {
        let text = r#"{"offsetTable":{{"brokerName":"b","queueId":0,"topic":"t"}:{"brokerOffset":4}},"consumeTps":1.5}"#;
        let tree = parse(text).expect("parses");
        let key = ObjectKeyValue::Object(vec![
            (string("brokerName"), string("b")),
            (string("queueId"), int(0)),
            (string("topic"), string("t")),
        ]);
        let table = tree.get("offsetTable").expect("table");
        assert_eq!(
            table,
            &ObjectKeyValue::Object(vec![(
                key,
                ObjectKeyValue::Object(vec![(string("brokerOffset"), int(4))])
            )])
        );
        assert_eq!(
            tree.get("consumeTps").and_then(ObjectKeyValue::as_f64),
            Some(1.5)
        );
        assert_eq!(tree.to_json(), text.as_bytes());
    }

    #[test]
    fn tolerates_whitespace_bare_keys_and_string_held_keys() {
        let loose = concat!(
            r#" { "offsetTable" : { "{\"brokerName\":\"b\",\"queueId\":2,\"topic\":\"t\"}" "#,
            r#": {"brokerOffset":4} } , "x":[1,{"y":2}], 0 : null, "consumeTps" : 1 } "#
        );
        let tree = parse(loose).expect("parses");
        let members = tree.as_object().expect("object");
        assert_eq!(members.len(), 4);
        assert_eq!(members[2], (int(0), ObjectKeyValue::Null));
        assert_eq!(
            tree.get("consumeTps").and_then(ObjectKeyValue::as_i64),
            Some(1)
        );
        let table = tree.get("offsetTable").and_then(ObjectKeyValue::as_object);
        assert!(table.is_some_and(|t| t[0].0.as_str().is_some_and(|k| k.contains("queueId"))));
    }

    #[test]
    fn duplicate_members_resolve_to_the_last() {
        let tree = parse(r#"{"a":1,"a":2}"#).expect("parses");
        assert_eq!(tree.get("a"), Some(&int(2)));
        assert_eq!(
            tree.into_standard_json().expect("string keys"),
            serde_json::json!({"a": 2})
        );
    }

    #[test]
    fn standard_json_conversion_refuses_object_keys_only() {
        let numeric = parse(r#"{0:{"k":[true,null]}}"#).expect("parses");
        assert_eq!(
            numeric
                .into_standard_json()
                .expect("number keys become text"),
            serde_json::json!({"0": {"k": [true, null]}})
        );
        let keyed = parse(r#"{{"a":1}:2}"#).expect("parses");
        assert!(matches!(
            keyed.into_standard_json(),
            Err(ObjectKeyError::NonStringKey)
        ));
    }

    #[test]
    fn malformed_text_is_an_error() {
        for bad in [
            "",
            "  ",
            "{",
            "{\"a\"",
            "{\"a\":",
            "{\"a\":1",
            "{\"a\":1,",
            "{\"a\" 1}",
            "{\"a\":1 \"b\":2}",
            "[1 2]",
            "[1,]",
            "{,}",
            "{}}",
            "{} x",
            "\"unterminated",
            "tru",
            "1x",
            "{1x:2}",
            "}",
            ":",
            "\"\\u12\"",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert!(matches!(
            parse("{} x"),
            Err(ObjectKeyError::Trailing { offset: 3 })
        ));
        assert!(matches!(
            parse("{\"a\" 1}"),
            Err(ObjectKeyError::Expected {
                expected: ':',
                offset: 5
            })
        ));
        assert!(matches!(
            parse("{\"a\":1"),
            Err(ObjectKeyError::UnexpectedEnd { offset: 6 })
        ));
        assert!(matches!(
            parse("[1,tru]"),
            Err(ObjectKeyError::Scalar { offset: 3, .. })
        ));
        assert!(matches!(
            parse_object_keys(b"\"\xff\""),
            Err(ObjectKeyError::Scalar { .. })
        ));
    }

    #[test]
    fn nesting_is_bounded() {
        let at_limit = format!(
            "{}{}",
            "[".repeat(OBJECT_KEY_DEPTH_MAX),
            "]".repeat(OBJECT_KEY_DEPTH_MAX)
        );
        assert!(parse(&at_limit).is_ok());
        let too_deep = format!(
            "{}{}",
            "[".repeat(OBJECT_KEY_DEPTH_MAX + 1),
            "]".repeat(OBJECT_KEY_DEPTH_MAX + 1)
        );
        assert!(matches!(
            parse(&too_deep),
            Err(ObjectKeyError::TooDeep { offset, max: OBJECT_KEY_DEPTH_MAX })
                if offset == OBJECT_KEY_DEPTH_MAX
        ));
        // Keys count as nesting too, and a huge depth is refused without recursing into it.
        let deep_keys = "{".repeat(1_000_000);
        assert!(matches!(
            parse(&deep_keys),
            Err(ObjectKeyError::TooDeep { .. })
        ));
    }

    #[test]
    fn size_and_entries_are_bounded() {
        let huge = vec![b' '; OBJECT_KEY_BODY_SIZE_MAX + 1];
        assert!(matches!(
            parse_object_keys(&huge),
            Err(ObjectKeyError::TooLarge { len, max: OBJECT_KEY_BODY_SIZE_MAX })
                if len == OBJECT_KEY_BODY_SIZE_MAX + 1
        ));
        let mut many = b"[".to_vec();
        for _ in 0..=OBJECT_KEY_ENTRIES_MAX {
            many.extend_from_slice(b"0,");
        }
        many.extend_from_slice(b"0]");
        assert!(matches!(
            parse_object_keys(&many),
            Err(ObjectKeyError::TooManyEntries {
                max: OBJECT_KEY_ENTRIES_MAX,
                ..
            })
        ));
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let text = "q\"b\\s/\n\r\t\u{8}\u{c}\u{1}\u{1f}é中🎉";
        let written = ObjectKeyValue::String(text.to_owned()).to_json();
        assert_eq!(
            written,
            serde_json::to_vec(text).expect("serializable"),
            "{}",
            String::from_utf8_lossy(&written)
        );
        assert_eq!(parse_object_keys(&written).expect("parses"), string(text));
    }
}
