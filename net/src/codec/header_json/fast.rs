//! The fast path of JSON header decoding: a scanner for the header shape clients actually send
//! (the eight known keys, integer numbers, string values with simple escapes), which builds
//! the command without serde's visitor machinery. Anything else — an unknown or escaped key, a
//! number or boolean in extFields (ali-ons), a nested value, a surrogate escape, a limit hit,
//! malformed JSON — makes it give up (`None`), and the serde decoder in the parent module
//! decides, so leniency and error reporting stay in one place.
//!
//! Must never: accept an input the serde decoder would reject or read differently (the
//! differential tests below hold it to that), or panic on any input.

use std::ops::Range;

use super::next_special;
use crate::codec::codes::LanguageCode;
use crate::codec::command::{ExtFields, RemotingCommand};
use crate::codec::limits::{EXT_FIELDS_COUNT_MAX, REMARK_SIZE_MAX};

/// Decodes `header` when it has the common shape; `None` sends it to the serde decoder.
pub(super) fn decode(header: &[u8]) -> Option<RemotingCommand> {
    // A JSON text is UTF-8 as a whole; checking it once lets every string be a range of it.
    let text = std::str::from_utf8(header).ok()?;
    let mut scanner = Scanner { text, position: 0 };
    let mut command = RemotingCommand::default();
    scanner.skip_whitespace();
    scanner.eat(b'{')?;
    scanner.skip_whitespace();
    if !scanner.eat_if(b'}') {
        loop {
            let key = scanner.plain_key()?;
            scanner.skip_whitespace();
            scanner.eat(b':')?;
            scanner.skip_whitespace();
            match &header[key] {
                b"code" => command.code = scanner.int32()?,
                b"version" => command.version = scanner.int32()?,
                b"opaque" => command.opaque = scanner.int32()?,
                b"flag" => command.flag = scanner.int32()?,
                b"language" => {
                    let name = scanner.string()?;
                    command.language = LanguageCode::from_name(name.as_str(text));
                }
                b"remark" => {
                    command.remark = if scanner.eat_literal(b"null") {
                        None
                    } else {
                        let remark = scanner.string()?.into_string(text);
                        if remark.len() > REMARK_SIZE_MAX {
                            return None;
                        }
                        Some(remark)
                    };
                }
                b"extFields" => {
                    command.ext_fields = if scanner.eat_literal(b"null") {
                        ExtFields::new()
                    } else {
                        scanner.ext_fields(text)?
                    };
                }
                b"serializeTypeCurrentRPC" => {
                    scanner.string()?;
                }
                _ => return None,
            }
            scanner.skip_whitespace();
            if scanner.eat_if(b'}') {
                break;
            }
            scanner.eat(b',')?;
            scanner.skip_whitespace();
        }
    }
    scanner.skip_whitespace();
    (scanner.position == header.len()).then_some(command)
}

/// A string the scanner read: a range of the header, or its unescaped copy.
enum Text {
    Plain(Range<usize>),
    Unescaped(String),
}

impl Text {
    fn as_str<'a>(&'a self, header: &'a str) -> &'a str {
        match self {
            Self::Plain(range) => &header[range.clone()],
            Self::Unescaped(text) => text,
        }
    }

    fn into_string(self, header: &str) -> String {
        match self {
            Self::Plain(range) => header[range].to_owned(),
            Self::Unescaped(text) => text,
        }
    }
}

/// Scans a header already known to be UTF-8: every range it returns is delimited by ASCII
/// quotes, so it lies on character boundaries.
struct Scanner<'a> {
    text: &'a str,
    position: usize,
}

impl<'a> Scanner<'a> {
    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.position).copied()
    }

    /// JSON whitespace, as serde_json skips it.
    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.position += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        self.eat_if(byte).then_some(())
    }

    fn eat_if(&mut self, byte: u8) -> bool {
        let hit = self.peek() == Some(byte);
        if hit {
            self.position += 1;
        }
        hit
    }

    /// `literal` followed by a byte that cannot continue it (serde_json reads `nullx` as an
    /// error, which is the slow path's business).
    fn eat_literal(&mut self, literal: &[u8]) -> bool {
        let end = self.position + literal.len();
        let hit = self.bytes().get(self.position..end) == Some(literal)
            && !self.bytes().get(end).is_some_and(u8::is_ascii_alphanumeric);
        if hit {
            self.position = end;
        }
        hit
    }

    /// A key without escapes or control bytes: the range of its text.
    fn plain_key(&mut self) -> Option<Range<usize>> {
        self.eat(b'"')?;
        let start = self.position;
        let end = next_special(self.bytes(), start)?;
        if self.bytes()[end] != b'"' {
            return None;
        }
        self.position = end + 1;
        Some(start..end)
    }

    /// A plain decimal integer in `i32` range: `0|-?[1-9][0-9]*`, no fraction or exponent.
    fn int32(&mut self) -> Option<i32> {
        let start = self.position;
        let negative = self.eat_if(b'-');
        let digits = self.position;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.position += 1;
        }
        let count = self.position - digits;
        let leading_zero = self.bytes().get(digits) == Some(&b'0');
        // serde_json reads `-0` as the float -0.0, which an integer field refuses.
        if count == 0 || count > 10 || (leading_zero && (count > 1 || negative)) {
            return None;
        }
        if matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        self.text[start..self.position].parse().ok()
    }

    /// A string: its range when it has no escapes, else its unescaped copy. Gives up on
    /// control bytes and surrogate escapes.
    fn string(&mut self) -> Option<Text> {
        match self.string_head()? {
            Ok(range) => Some(Text::Plain(range)),
            Err((start, escape)) => self.escaped_string(start, escape).map(Text::Unescaped),
        }
    }

    /// Opens a string (the opening quote next): `Ok` with its range when it has no escapes
    /// (and moves past it), `Err((start, first escape))` when it has; `None` on a control
    /// byte or the header's end.
    fn string_head(&mut self) -> Option<Result<Range<usize>, (usize, usize)>> {
        self.eat(b'"')?;
        let start = self.position;
        let special = next_special(self.bytes(), start)?;
        match self.bytes()[special] {
            b'"' => {
                self.position = special + 1;
                Some(Ok(start..special))
            }
            b'\\' => Some(Err((start, special))),
            _ => None,
        }
    }

    /// The rest of a string that has an escape at `escape`; `start` is its first byte.
    fn escaped_string(&mut self, start: usize, escape: usize) -> Option<String> {
        let mut text = String::with_capacity(escape - start + 16);
        self.unescape_onto(start, escape, &mut text)?;
        Some(text)
    }

    /// A string (the opening quote next) pushed onto `arena`'s end, unescaped; its range of
    /// `arena`, or of the header when it has no escapes (nothing is pushed then).
    fn string_onto(&mut self, fields: &mut ExtFields) -> Option<Range<usize>> {
        match self.string_head()? {
            Ok(range) => Some(range),
            Err((start, escape)) => {
                fields.push_with(|arena| self.unescape_onto(start, escape, arena))
            }
        }
    }

    /// Appends the string that starts at `start` and has its first escape at `escape` to
    /// `text`, unescaped, and moves past its closing quote. Gives up (`None`, `text` possibly
    /// extended) on control bytes, bad escapes and surrogates.
    fn unescape_onto(&mut self, start: usize, mut escape: usize, text: &mut String) -> Option<()> {
        let mut run = start;
        loop {
            text.push_str(&self.text[run..escape]);
            let code = *self.bytes().get(escape + 1)?;
            let mut next = escape + 2;
            match code {
                b'"' => text.push('"'),
                b'\\' => text.push('\\'),
                b'/' => text.push('/'),
                b'b' => text.push('\u{8}'),
                b'f' => text.push('\u{c}'),
                b'n' => text.push('\n'),
                b'r' => text.push('\r'),
                b't' => text.push('\t'),
                b'u' => {
                    let hex = self.text.get(next..next + 4)?;
                    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return None;
                    }
                    let unit = u32::from_str_radix(hex, 16).ok()?;
                    // Surrogates (pairs or lone) are left to serde_json's rules.
                    text.push(char::from_u32(unit)?);
                    next += 4;
                }
                _ => return None,
            }
            run = next;
            let special = next_special(self.bytes(), run)?;
            match self.bytes()[special] {
                b'"' => {
                    text.push_str(&self.text[run..special]);
                    self.position = special + 1;
                    return Some(());
                }
                b'\\' => escape = special,
                _ => return None,
            }
        }
    }

    /// An object of plain keys and string values, within [`EXT_FIELDS_COUNT_MAX`] entries,
    /// as ranges of an arena that starts as a copy of `header`.
    fn ext_fields(&mut self, header: &str) -> Option<ExtFields> {
        self.eat(b'{')?;
        self.skip_whitespace();
        if self.eat_if(b'}') {
            return Some(ExtFields::new());
        }
        let mut fields = ExtFields::over_header(header, 16);
        let mut count = 0_usize;
        loop {
            count += 1;
            if count > EXT_FIELDS_COUNT_MAX {
                return None;
            }
            let key = self.plain_key()?;
            self.skip_whitespace();
            self.eat(b':')?;
            self.skip_whitespace();
            let value = self.string_onto(&mut fields)?;
            // Duplicate keys: the last one wins, as in the serde path.
            fields.insert_spans(key, value);
            self.skip_whitespace();
            if self.eat_if(b'}') {
                return Some(fields);
            }
            self.eat(b',')?;
            self.skip_whitespace();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::header_json::decode_with_serde;
    use proptest::prelude::*;

    fn both(header: &[u8]) -> (Option<RemotingCommand>, Result<RemotingCommand, String>) {
        (
            decode(header),
            decode_with_serde(header).map_err(|e| e.to_string()),
        )
    }

    /// Whenever the fast path answers, serde answers the same.
    fn agrees(header: &[u8]) -> Result<(), TestCaseError> {
        let (fast, slow) = both(header);
        if let Some(fast) = fast {
            prop_assert_eq!(
                Ok(fast),
                slow,
                "input {:?}",
                String::from_utf8_lossy(header)
            );
        }
        Ok(())
    }

    #[test]
    fn takes_the_common_shapes() {
        let headers: [&[u8]; 5] = [
            br#"{"code":310,"extFields":{"a":"pg","b":"T","i":"TAGS\u0001A\u0002KEYS\u0001k\u0002"},"flag":0,"language":"JAVA","opaque":-7,"serializeTypeCurrentRPC":"JSON","version":403}"#,
            // Escaped values unescaped onto the arena between plain ones; a later duplicate
            // replaces an escaped one.
            br#"{"code":1,"extFields":{"p":"x\u0001y\\","q":"z","r":"\t","p":"\u00e9"}}"#,
            br#"{"code":0,"flag":1,"language":"RUST","opaque":5,"remark":null,"serializeTypeCurrentRPC":"JSON","version":1}"#,
            b" {\"code\" : 1 , \"remark\":\"a\\\"b\\\\c\\/\\n\\u00e9\\u4e2d\", \"extFields\":{}}\n",
            br#"{"extFields":null,"code":2,"extFields":{"k":"v","k":"w","a":""}}"#,
        ];
        for header in headers {
            let (fast, slow) = both(header);
            assert_eq!(fast.as_ref().map(Ok), Some(slow.as_ref()), "{header:?}");
        }
    }

    #[test]
    fn leaves_the_unusual_to_serde() {
        let headers: [&[u8]; 14] = [
            br#"{"code":"310"}"#,
            br#"{"code":1.0}"#,
            br#"{"code":01}"#,
            br#"{"code":-0}"#,
            br#"{"code":99999999999}"#,
            br#"{"language":5}"#,
            br#"{"extFields":{"d":4}}"#,
            br#"{"extFields":{"k":false}}"#,
            br#"{"nested":{"a":[1]}}"#,
            br#"{"remark":"\ud83d\ude00"}"#,
            br#"{"c\u006fde":1}"#,
            br#"{"code":1}x"#,
            br#"{"code":1,}"#,
            b"{\"remark\":\"a\x01\"}",
        ];
        for header in headers {
            assert!(
                decode(header).is_none(),
                "{}",
                String::from_utf8_lossy(header)
            );
            agrees(header).expect("agrees");
        }
    }

    /// Pieces headers are made of, including the awkward ones.
    fn piece() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "{",
            "}",
            ",",
            ":",
            " ",
            "\"",
            "\\",
            "\\u0001",
            "\\u00",
            "\\ud800",
            "\\n",
            "\"code\"",
            "\"opaque\"",
            "\"language\"",
            "\"remark\"",
            "\"extFields\"",
            "\"version\"",
            "\"flag\"",
            "\"serializeTypeCurrentRPC\"",
            "\"a\"",
            "\"JAVA\"",
            "null",
            "nul",
            "true",
            "-",
            "0",
            "1",
            "12",
            "2147483647",
            "2147483648",
            "-2147483648",
            "1.5",
            "1e3",
            "é",
            "\u{1}",
            "[",
            "]",
        ])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn agrees_with_serde_on_jumbled_pieces(pieces in prop::collection::vec(piece(), 0..40)) {
            agrees(pieces.concat().as_bytes())?;
        }

        #[test]
        fn agrees_with_serde_on_well_formed_headers(
            code in any::<i32>(),
            opaque in any::<i32>(),
            fields in prop::collection::btree_map("[a-zA-Z]{1,6}", "\\PC{0,12}", 0..12),
            remark in proptest::option::of("\\PC{0,12}"),
        ) {
            let command = RemotingCommand {
                code,
                opaque,
                remark,
                ext_fields: fields.into_iter().collect(),
                ..RemotingCommand::default()
            };
            let mut out = bytes::BytesMut::new();
            super::super::encode(&command, &mut out).expect("encodes");
            let (fast, slow) = both(&out);
            prop_assert!(fast.is_some(), "the fast path takes what we encode");
            prop_assert_eq!(fast.map(Ok), Some(slow));
        }

        /// One byte replaced, inserted or removed in a real header: near misses of the shape.
        #[test]
        fn agrees_with_serde_on_edited_headers(
            at in any::<prop::sample::Index>(),
            byte in prop::sample::select(b"{}[],:\"\\u0123456789.-eE nultrsfaJ\x01\xc3\xa9".to_vec()),
            edit in 0..3_u8,
        ) {
            let mut header = br#"{"code":310,"extFields":{"a":"pg","b":"T\u0001x","e":"-1"},"flag":0,"language":"JAVA","opaque":12,"remark":null,"serializeTypeCurrentRPC":"JSON","version":403}"#.to_vec();
            let index = at.index(header.len());
            match edit {
                0 => header[index] = byte,
                1 => header.insert(index, byte),
                _ => {
                    header.remove(index);
                }
            }
            agrees(&header)?;
        }

        #[test]
        fn agrees_with_serde_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            agrees(&bytes)?;
        }
    }
}
