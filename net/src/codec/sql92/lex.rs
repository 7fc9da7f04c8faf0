//! Tokens of a SQL92 selector (`SelectorParser.jj`): case-insensitive keywords, identifiers
//! `[a-zA-Z_$][a-zA-Z0-9_$]*`, integers (`0` or no leading zero, optional `L`), floats
//! (`5.`, `.5`, `5.5E-3`, `5E10`), strings in single quotes with `''` for a quote, `--` line
//! comments (ended by a newline) and `/* */` block comments. Must never panic or index past
//! the input.

use super::parse::ParseError;

/// A token.
#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    Not,
    And,
    Or,
    Between,
    In,
    True,
    False,
    Null,
    Is,
    Contains,
    StartsWith,
    EndsWith,
    Integer(i64),
    Float(f64),
    Str(String),
    Id(String),
    LParen,
    RParen,
    Comma,
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Plus,
    Minus,
}

fn keyword(word: &str) -> Option<Tok> {
    const KEYWORDS: [(&str, Tok); 12] = [
        ("NOT", Tok::Not),
        ("AND", Tok::And),
        ("OR", Tok::Or),
        ("BETWEEN", Tok::Between),
        ("IN", Tok::In),
        ("TRUE", Tok::True),
        ("FALSE", Tok::False),
        ("NULL", Tok::Null),
        ("IS", Tok::Is),
        ("CONTAINS", Tok::Contains),
        ("STARTSWITH", Tok::StartsWith),
        ("ENDSWITH", Tok::EndsWith),
    ];
    KEYWORDS
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(word))
        .map(|(_, t)| t.clone())
}

/// Splits `text` into tokens, each with its byte position.
pub fn tokens(text: &str) -> Result<Vec<(usize, Tok)>, ParseError> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        match c {
            b' ' | b'\t' | b'\n' | b'\r' | 0x0c => i += 1,
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                // A line comment only when a line end follows (JavaCC's longest match);
                // otherwise two minus signs.
                match bytes[i..].iter().position(|b| *b == b'\n' || *b == b'\r') {
                    Some(end) => i += end + 1,
                    None => {
                        out.push((i, Tok::Minus));
                        i += 1;
                    }
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let Some(end) = text[i + 2..].find("*/") else {
                    return Err(ParseError::at(i, "unterminated comment"));
                };
                i += 2 + end + 2;
            }
            b'(' | b')' | b',' | b'=' | b'+' | b'-' => {
                out.push((
                    i,
                    match c {
                        b'(' => Tok::LParen,
                        b')' => Tok::RParen,
                        b',' => Tok::Comma,
                        b'=' => Tok::Eq,
                        b'+' => Tok::Plus,
                        _ => Tok::Minus,
                    },
                ));
                i += 1;
            }
            b'<' => {
                let (tok, len) = match bytes.get(i + 1) {
                    Some(b'>') => (Tok::Ne, 2),
                    Some(b'=') => (Tok::Le, 2),
                    _ => (Tok::Lt, 1),
                };
                out.push((i, tok));
                i += len;
            }
            b'>' => {
                let (tok, len) = match bytes.get(i + 1) {
                    Some(b'=') => (Tok::Ge, 2),
                    _ => (Tok::Gt, 1),
                };
                out.push((i, tok));
                i += len;
            }
            b'\'' => {
                let mut value = String::new();
                let mut j = i + 1;
                loop {
                    let Some(rest) = text.get(j..) else {
                        return Err(ParseError::at(start, "unterminated string literal"));
                    };
                    let Some(quote) = rest.find('\'') else {
                        return Err(ParseError::at(start, "unterminated string literal"));
                    };
                    value.push_str(&rest[..quote]);
                    j += quote + 1;
                    if bytes.get(j) == Some(&b'\'') {
                        value.push('\'');
                        j += 1;
                    } else {
                        break;
                    }
                }
                out.push((start, Tok::Str(value)));
                i = j;
            }
            b'0'..=b'9' | b'.' => {
                let (tok, len) = number(&text[i..]).map_err(|m| ParseError::at(start, m))?;
                out.push((start, tok));
                i += len;
            }
            b'a'..=b'z' | b'A'..=b'Z' | b'_' | b'$' => {
                let len = bytes[i..]
                    .iter()
                    .position(|b| !(b.is_ascii_alphanumeric() || *b == b'_' || *b == b'$'))
                    .unwrap_or(bytes.len() - i);
                let word = &text[i..i + len];
                out.push((
                    start,
                    keyword(word).unwrap_or_else(|| Tok::Id(word.to_owned())),
                ));
                i += len;
            }
            _ => {
                let shown = text[i..].chars().next().unwrap_or('?');
                return Err(ParseError::at(i, format!("unexpected character {shown:?}")));
            }
        }
    }
    Ok(out)
}

fn digits(bytes: &[u8]) -> usize {
    bytes.iter().take_while(|b| b.is_ascii_digit()).count()
}

/// A number at the front of `text` and its length.
fn number(text: &str) -> Result<(Tok, usize), String> {
    let bytes = text.as_bytes();
    let int_len = digits(bytes);
    let mut len = int_len;
    let mut frac_len = 0;
    let dot = bytes.get(len) == Some(&b'.');
    if dot {
        frac_len = digits(&bytes[len + 1..]);
        if int_len == 0 && frac_len == 0 {
            return Err("unexpected character '.'".into());
        }
        len += 1 + frac_len;
    }
    let mut exp_len = 0;
    if matches!(bytes.get(len), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(bytes.get(len + 1), Some(b'+' | b'-')));
        let exp_digits = digits(bytes.get(len + 1 + sign..).unwrap_or(&[]));
        if exp_digits > 0 {
            exp_len = 1 + sign + exp_digits;
        }
    }
    if dot || exp_len > 0 {
        let int_part = if int_len == 0 { "0" } else { &text[..int_len] };
        let frac_part = if frac_len == 0 {
            "0"
        } else {
            &text[int_len + 1..int_len + 1 + frac_len]
        };
        let exponent = &text[len..len + exp_len];
        let normal = format!("{int_part}.{frac_part}{exponent}");
        let value: f64 = normal
            .parse()
            .map_err(|_| format!("bad float literal {normal}"))?;
        // Java's createFloat: above Double.MAX_VALUE or below Double.MIN_VALUE is an error.
        if !value.is_finite() || value < f64::from_bits(1) {
            return Err(format!("float literal {normal} out of range"));
        }
        return Ok((Tok::Float(value), len + exp_len));
    }
    let literal = &text[..int_len];
    if int_len > 1 && literal.starts_with('0') {
        return Err(format!("integer literal {literal} has a leading zero"));
    }
    let value: i64 = literal
        .parse()
        .map_err(|_| format!("integer literal {literal} out of range"))?;
    let suffix = usize::from(matches!(bytes.get(int_len), Some(b'l' | b'L')));
    Ok((Tok::Integer(value), int_len + suffix))
}
