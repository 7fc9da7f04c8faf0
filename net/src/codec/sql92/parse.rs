//! Recursive-descent parser for `SelectorParser.jj`'s grammar (precedence, loosest first:
//! `OR`; `AND`; `=`, `<>`, `IS [NOT] NULL`; `>`, `>=`, `<`, `<=`, `[NOT] BETWEEN`, `[NOT] IN`,
//! `[NOT] CONTAINS|STARTSWITH|ENDSWITH`; unary `+`, `-`, `NOT`; literals, properties,
//! parentheses), and [`compile`], which adds Java's construction-time checks. Must never
//! recurse deeper than [`SQL92_NESTING_MAX`] or accept trailing tokens.

use std::fmt;

use super::ast::{CmpOp, Expr, TextOp};
use super::eval::{compare_values, Selector, Value};
use super::lex::{tokens, Tok};
use super::{SQL92_EXPRESSION_BYTES_MAX, SQL92_NESTING_MAX};

/// Why an expression does not compile: a syntax error or one of Java's checks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid MessageSelector at byte {position}: {message}")]
pub struct ParseError {
    /// Byte position in the expression.
    pub position: usize,
    /// What is wrong.
    pub message: String,
}

impl ParseError {
    pub(super) fn at(position: usize, message: impl Into<String>) -> Self {
        Self {
            position,
            message: message.into(),
        }
    }
}

/// Parses `text` to its syntactic tree (no semantic checks; see [`compile`]).
///
/// # Errors
/// [`ParseError`] for a lexical or syntax error, trailing tokens, an expression longer than
/// [`SQL92_EXPRESSION_BYTES_MAX`] or nested deeper than [`SQL92_NESTING_MAX`].
pub fn parse(text: &str) -> Result<Expr, ParseError> {
    if text.len() > SQL92_EXPRESSION_BYTES_MAX {
        return Err(ParseError::at(
            SQL92_EXPRESSION_BYTES_MAX,
            format!("expression longer than {SQL92_EXPRESSION_BYTES_MAX} bytes"),
        ));
    }
    let toks = tokens(text)?;
    let mut parser = Parser {
        toks,
        pos: 0,
        depth: 0,
        end: text.len(),
    };
    let expr = parser.or()?;
    if parser.pos < parser.toks.len() {
        return Err(parser.error("unexpected token after the expression"));
    }
    Ok(expr)
}

/// Parses `text` and applies Java's checks (operands of `<` etc. that are literals must be
/// numbers; `= NULL` is refused; `IN` needs a property; `BETWEEN` literal bounds in order;
/// `AND`/`OR`/`NOT` operands and the whole expression must be conditions).
///
/// # Errors
/// [`ParseError`] as [`parse`], or naming the failed check.
pub fn compile(text: &str) -> Result<Selector, ParseError> {
    let expr = parse(text)?;
    check(&expr, 0)?;
    as_boolean(&expr)?;
    Ok(Selector::new(expr))
}

struct Parser {
    toks: Vec<(usize, Tok)>,
    pos: usize,
    depth: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(_, t)| t)
    }

    fn peek2(&self) -> Option<&Tok> {
        self.toks.get(self.pos + 1).map(|(_, t)| t)
    }

    fn eat(&mut self, tok: &Tok) -> bool {
        if self.peek() == Some(tok) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, tok: &Tok, what: &str) -> Result<(), ParseError> {
        if self.eat(tok) {
            Ok(())
        } else {
            Err(self.error(&format!("expected {what}")))
        }
    }

    fn error(&self, message: &str) -> ParseError {
        let position = self.toks.get(self.pos).map_or(self.end, |(p, _)| *p);
        let found = match self.toks.get(self.pos) {
            Some((_, tok)) => format!("{tok:?}"),
            None => "end of input".to_owned(),
        };
        ParseError::at(position, format!("{message}, found {found}"))
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > SQL92_NESTING_MAX {
            return Err(self.error(&format!("nesting deeper than {SQL92_NESTING_MAX}")));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        self.enter()?;
        let base = self.depth - 1;
        let mut left = self.and()?;
        while self.eat(&Tok::Or) {
            self.enter()?;
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        self.depth = base;
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let base = self.depth;
        let mut left = self.equality()?;
        while self.eat(&Tok::And) {
            self.enter()?;
            let right = self.equality()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        self.depth = base;
        Ok(left)
    }

    fn equality(&mut self) -> Result<Expr, ParseError> {
        let base = self.depth;
        let mut left = self.comparison()?;
        loop {
            self.enter()?;
            let op = match self.peek() {
                Some(Tok::Eq) => CmpOp::Eq,
                Some(Tok::Ne) => CmpOp::Ne,
                Some(Tok::Is) => {
                    self.pos += 1;
                    let negated = self.eat(&Tok::Not);
                    self.expect(&Tok::Null, "NULL")?;
                    left = Expr::IsNull {
                        expr: Box::new(left),
                        negated,
                    };
                    continue;
                }
                _ => {
                    self.depth = base;
                    return Ok(left);
                }
            };
            self.pos += 1;
            let right = self.comparison()?;
            left = Expr::Compare(op, Box::new(left), Box::new(right));
        }
    }

    fn comparison(&mut self) -> Result<Expr, ParseError> {
        let base = self.depth;
        let mut left = self.unary()?;
        loop {
            self.enter()?;
            let op = match self.peek() {
                Some(Tok::Gt) => Some(CmpOp::Gt),
                Some(Tok::Ge) => Some(CmpOp::Ge),
                Some(Tok::Lt) => Some(CmpOp::Lt),
                Some(Tok::Le) => Some(CmpOp::Le),
                _ => None,
            };
            if let Some(op) = op {
                self.pos += 1;
                let right = self.unary()?;
                left = Expr::Compare(op, Box::new(left), Box::new(right));
                continue;
            }
            // `NOT` here only when a BETWEEN/IN/CONTAINS… follows (Java's LOOKAHEAD(2)).
            let negated = self.peek() == Some(&Tok::Not)
                && matches!(
                    self.peek2(),
                    Some(Tok::Between | Tok::In | Tok::Contains | Tok::StartsWith | Tok::EndsWith)
                );
            if negated {
                self.pos += 1;
            }
            left = match self.peek() {
                Some(Tok::Between) => {
                    self.pos += 1;
                    let low = self.unary()?;
                    self.expect(&Tok::And, "AND")?;
                    let high = self.unary()?;
                    Expr::Between {
                        expr: Box::new(left),
                        low: Box::new(low),
                        high: Box::new(high),
                        negated,
                    }
                }
                Some(Tok::In) => {
                    self.pos += 1;
                    self.expect(&Tok::LParen, "'('")?;
                    let mut list = vec![self.string()?];
                    while self.eat(&Tok::Comma) {
                        list.push(self.string()?);
                    }
                    self.expect(&Tok::RParen, "')'")?;
                    Expr::In {
                        expr: Box::new(left),
                        list,
                        negated,
                    }
                }
                Some(tok @ (Tok::Contains | Tok::StartsWith | Tok::EndsWith)) => {
                    let op = match tok {
                        Tok::Contains => TextOp::Contains,
                        Tok::StartsWith => TextOp::StartsWith,
                        _ => TextOp::EndsWith,
                    };
                    self.pos += 1;
                    let pattern = self.string()?;
                    Expr::Text {
                        op,
                        expr: Box::new(left),
                        pattern,
                        negated,
                    }
                }
                _ => {
                    self.depth = base;
                    return Ok(left);
                }
            };
        }
    }

    fn string(&mut self) -> Result<String, ParseError> {
        match self.peek() {
            Some(Tok::Str(value)) => {
                let value = value.clone();
                self.pos += 1;
                Ok(value)
            }
            _ => Err(self.error("expected a string literal")),
        }
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        self.enter()?;
        let expr = match self.peek() {
            Some(Tok::Plus) => {
                self.pos += 1;
                self.unary()?
            }
            Some(Tok::Minus) => {
                self.pos += 1;
                Expr::Negate(Box::new(self.unary()?))
            }
            Some(Tok::Not) => {
                self.pos += 1;
                Expr::Not(Box::new(self.unary()?))
            }
            _ => self.primary()?,
        };
        self.depth -= 1;
        Ok(expr)
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        let expr = match self.peek() {
            Some(Tok::Str(value)) => Expr::Str(value.clone()),
            Some(Tok::Integer(value)) => Expr::Integer(*value),
            Some(Tok::Float(value)) => Expr::Float(*value),
            Some(Tok::True) => Expr::Bool(true),
            Some(Tok::False) => Expr::Bool(false),
            Some(Tok::Null) => Expr::Null,
            Some(Tok::Id(name)) => Expr::Property(name.clone()),
            Some(Tok::LParen) => {
                self.pos += 1;
                let inner = self.or()?;
                self.expect(&Tok::RParen, "')'")?;
                return Ok(inner);
            }
            _ => return Err(self.error("expected a literal, a property or '('")),
        };
        self.pos += 1;
        Ok(expr)
    }
}

fn refuse(message: String) -> Result<(), ParseError> {
    Err(ParseError::at(0, message))
}

/// Java's `asBooleanExpression`: a condition, or a property (cast to Boolean).
fn as_boolean(expr: &Expr) -> Result<(), ParseError> {
    if expr.is_boolean() || matches!(expr, Expr::Property(_)) {
        Ok(())
    } else {
        refuse(format!(
            "Expression will not result in a boolean value: {expr}"
        ))
    }
}

/// Java's `checkLessThanOperand`.
fn check_ordered(expr: &Expr) -> Result<(), ParseError> {
    match expr {
        Expr::Integer(_) | Expr::Float(_) => Ok(()),
        e if e.is_constant() || e.is_boolean() => {
            refuse(format!("Value '{e}' cannot be compared."))
        }
        _ => Ok(()),
    }
}

/// Java's `checkEqualOperand`.
fn check_equal(expr: &Expr) -> Result<(), ParseError> {
    if *expr == Expr::Null {
        return refuse("'NULL' cannot be compared.".to_owned());
    }
    Ok(())
}

fn literal_value(expr: &Expr) -> Option<Value<'_>> {
    match expr {
        Expr::Str(s) => Some(Value::Str(s)),
        Expr::Integer(v) => Some(Value::from_integer(*v)),
        Expr::Float(v) => Some(Value::Double(*v)),
        Expr::Bool(b) => Some(Value::Bool(*b)),
        _ => None,
    }
}

fn check(expr: &Expr, depth: usize) -> Result<(), ParseError> {
    // The parser bounds the tree's depth (every operator counts); this re-checks it on the
    // tree, so the evaluator's recursion is bounded whatever built the tree.
    if depth > 2 * SQL92_NESTING_MAX {
        return refuse(format!("nesting deeper than {SQL92_NESTING_MAX}"));
    }
    match expr {
        Expr::Or(l, r) | Expr::And(l, r) => {
            check(l, depth + 1)?;
            check(r, depth + 1)?;
            as_boolean(l)?;
            as_boolean(r)
        }
        Expr::Not(e) => {
            check(e, depth + 1)?;
            as_boolean(e)
        }
        Expr::Negate(e) | Expr::IsNull { expr: e, .. } | Expr::Text { expr: e, .. } => {
            check(e, depth + 1)
        }
        Expr::Compare(op, l, r) => {
            check(l, depth + 1)?;
            check(r, depth + 1)?;
            match op {
                CmpOp::Eq | CmpOp::Ne => {
                    check_equal(l)?;
                    check_equal(r)?;
                    let both = l.is_constant() && r.is_constant();
                    if both && l.is_boolean() && !r.is_boolean() {
                        return refuse(format!("'{l}' cannot be compared with '{r}'"));
                    }
                    Ok(())
                }
                _ => {
                    check_ordered(l)?;
                    check_ordered(r)
                }
            }
        }
        Expr::Between {
            expr,
            low,
            high,
            negated,
        } => {
            check(expr, depth + 1)?;
            check(low, depth + 1)?;
            check(high, depth + 1)?;
            if !negated && low.is_constant() && high.is_constant() {
                let (Some(lv), Some(hv)) = (literal_value(low), literal_value(high)) else {
                    return refuse("Illegal values of between, values can not be null!".to_owned());
                };
                if compare_values(&hv, &lv).is_ok_and(|o| o < 0) {
                    return refuse(format!(
                        "Illegal values of between, left value({low}) must less than or equal to right value({high})"
                    ));
                }
            }
            check_ordered(expr)?;
            check_ordered(low)?;
            check_ordered(high)
        }
        Expr::In { expr, .. } => {
            check(expr, depth + 1)?;
            if matches!(**expr, Expr::Property(_)) {
                Ok(())
            } else {
                refuse(format!(
                    "Expected a property for In expression, got: {expr}"
                ))
            }
        }
        Expr::Property(_)
        | Expr::Str(_)
        | Expr::Integer(_)
        | Expr::Float(_)
        | Expr::Bool(_)
        | Expr::Null => Ok(()),
    }
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}
